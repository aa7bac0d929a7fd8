#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Writers over one GlusterFS backing:
# - a second read-write mount of the backing, from another node's gluster
#   client, is refused with a clear error (the writer lock is an OFD lock,
#   which GlusterFS shares between its clients); a read-only one is not;
# - files written at once through the one writer all land;
# - a name replaced behind the writer's back (by a user on another node, or
#   by a batch `lcpfs pack` there) is not written through the writer's
#   cached name: a write after the change goes to the new file, not to the
#   one renamed away or replaced;
# - offline: two `lcpfs pack` of the same destination at once, interleaved
#   exactly (the first held between its sidecar and payload renames while
#   the second runs), never interleave their renames: the second waits for
#   the first (its wait is signalled by LCPFS_TEST_LOCK_WAIT), and the name
#   ends as one whole version, also after the recovery a mount runs.
# A fresh node finally reads every file as one whole version.
set -u
cd "$(dirname "$0")/../.."
. tests/integration/fsx/mount_lib.sh
. tests/distributed/dist_lib.sh

# c0: a node where users and batch jobs work on the backing directly; c1:
# the writer node, whose gluster client caches no name or attribute, in the
# kernel or in its metadata cache (stat-prefetch off), so what it sees of
# c0's changes is lcpfs's own cache, the subject here (with GlusterFS's
# defaults a client keeps a replaced name for about a second, whatever runs
# on it); c2: the checker's client, which caches nothing either, also used
# by a fresh node at the end.
GLUSTER_VOLUME_SET=(performance.stat-prefetch off)
gluster_setup 2 --entry-timeout=0 --attribute-timeout=0 --negative-timeout=0
gluster_mount "$GW/c2" --entry-timeout=0 --attribute-timeout=0 --negative-timeout=0
S0=${GM[0]}/store S1=${GM[1]}/store S2=$GW/c2/store
mkdir -p "$S0"
for m in a:4 b:5 c:6; do make_model "${m%:*}.safetensors" 4 "${m#*:}"; done
A=$WORK/a.safetensors B=$WORK/b.safetensors C=$WORK/c.safetensors
one_of() { # FILE MODEL...: reads as the raw bytes or the reconstruction of one MODEL
	local f=$1 m cands=()
	shift
	for m in "$@"; do cands+=("$m" "$m.rec"); done
	$CHECK version "$f" "${cands[@]}"
}
# stored_one_of NAME MODEL...: the same for the backing file NAME, read with
# `lcpfs unpack` through node c2's client (which has cached nothing).
stored_one_of() {
	local n=$1
	shift
	rm -f "$WORK/unpacked"
	"$LCPFS" unpack "$S2/$n" "$WORK/unpacked" || return 1
	one_of "$WORK/unpacked" "$@"
}
name_of() { # index printed by one_of -> "a raw", "b committed", ...
	local i=$1
	shift
	local m=("$@")
	echo "$(basename "${m[$((i / 2))]}" .safetensors) $([ $((i % 2)) = 0 ] && echo raw || echo committed)"
}

node_mount w1 "$S1" "$WORK/w1" || fail "writer mount: $(node_log w1)"
W1=$WORK/w1
if node_mount w2 "$S0" "$WORK/w2"; then
	bad writers.second_rw_refused "a second read-write mount of the backing (another gluster client) was accepted"
	unmount_fs "$WORK/w2" "$NODE_PID"
elif grep -q 'another read-write lcpfs mount of this backing directory is running' "$WORK/w2.log"; then
	pass writers.second_rw_refused "a second read-write mount from another node was refused: $(tail -n 1 "$WORK/w2.log")"
else
	bad writers.second_rw_refused "the second read-write mount failed without the reason: $(node_log w2 3 | tr '\n' ' ')"
fi
if node_mount r "$S0" "$WORK/r" -o ro; then
	pass writers.ro_beside_rw "a read-only mount beside the writer is accepted"
else
	bad writers.ro_beside_rw "a read-only mount beside the writer failed: $(node_log r 3 | tr '\n' ' ')"
fi

# Files written at once through the writer all land.
head -c 300000 /dev/urandom > "$WORK/x1"
cp "$A" "$W1/a.safetensors" & P1=$!
cp "$WORK/x1" "$W1/x1" & P2=$!
wait "$P1" && wait "$P2" || bad writers.cp "cp through the writer failed"
wait_settled "$W1/a.safetensors" || fail "a never settled"
check writers.diff_files "the writer compressed a ($(state_of "$W1/a.safetensors") $(reason_of "$W1/a.safetensors"))" \
	state_is "$W1/a.safetensors" compressed

# A user on node c0 renames q to q.old and makes a new q; the writer, which
# had looked q up, then writes over q: the new q gets it, q.old keeps its
# bytes.
head -c 200000 /dev/urandom > "$WORK/x2"
head -c 200000 /dev/urandom > "$WORK/x3"
cp "$WORK/x1" "$W1/q" || fail "cp q"
stat "$W1/q" > /dev/null || fail "stat q"
mv "$S0/q" "$S0/q.old" && cp "$WORK/x2" "$S0/q" || fail "mv and cp on c0"
cp "$WORK/x3" "$W1/q" || bad writers.stale_name "cp over q through the writer failed"
if cmp -s "$S2/q" "$WORK/x3" && cmp -s "$S2/q.old" "$WORK/x1"; then
	pass writers.stale_name "a write through a name replaced on another node went to the new file; the renamed one kept its bytes"
else
	bad writers.stale_name "after q was renamed to q.old and made anew on another node, the writer's write over q: q $(cmp -s "$S2/q" "$WORK/x3" && echo has || echo lacks) it, q.old $(cmp -s "$S2/q.old" "$WORK/x1" && echo kept || echo lost) its bytes"
fi

# A batch job on node c0 packs c onto r, which the writer had committed
# (and looked up); the writer then copies b over r: r ends as b.
cp "$A" "$W1/r.safetensors" || fail "cp r"
wait_settled "$W1/r.safetensors" || fail "r never settled"
"$LCPFS" pack "$C" "$S0/r.safetensors" > "$WORK/batch.out" 2>&1 || fail "batch pack of c onto r: $(cat "$WORK/batch.out")"
cp "$B" "$W1/r.safetensors" || bad writers.replaced_by_batch "cp b over r through the writer failed"
wait_settled "$W1/r.safetensors"
v=$(stored_one_of r.safetensors "$A" "$B" "$C" 2>&1) && r_is=$(name_of "$v" "$A" "$B" "$C") || r_is=$v
[ "${r_is% *}" = b ] && pass writers.replaced_by_batch "a write over a name a batch job had replaced landed there: r is $r_is" ||
	bad writers.replaced_by_batch "the writer copied b over r after a batch job packed c onto it: r is $r_is"

# Offline: two packs of one destination. Pack a renames its sidecar into
# place and is held there, inside its commit; pack b then runs: it must
# wait for a (and say so through LCPFS_TEST_LOCK_WAIT), never rename
# anything meanwhile (gate point 1 of b: its first rename).
gate_env "$WORK/ga" "rename-after:.p.safetensors.lcpfs"
env "${NODE_ENV[@]}" "$LCPFS" pack "$A" "$S0/p.safetensors" > "$WORK/pa.out" 2>&1 &
PA=$!
poll "$COMMIT_TIMEOUT" gate_arrived "$WORK/ga" 1 || fail "pack a never renamed its sidecar: $(cat "$WORK/pa.out")"
gate_env "$WORK/gb" "rename-before:.lcpfs-p.* rename-before:.p.safetensors.lcpfs"
NODE_ENV+=("LCPFS_TEST_LOCK_WAIT=$WORK/gb/waiting")
env "${NODE_ENV[@]}" "$LCPFS" pack "$B" "$S0/p.safetensors" > "$WORK/pb.out" 2>&1 &
PB=$!
NODE_ENV=()
b_waits_or_renames() { [ -e "$WORK/gb/waiting" ] || gate_arrived "$WORK/gb" 1 || gate_arrived "$WORK/gb" 2; }
poll "$COMMIT_TIMEOUT" b_waits_or_renames || fail "pack b neither waited nor renamed: $(cat "$WORK/pb.out")"
if gate_arrived "$WORK/gb" 1 || gate_arrived "$WORK/gb" 2; then
	bad packs.exclusive "pack b renamed its files while pack a was inside its commit"
elif [ -e "$WORK/gb/waiting" ]; then
	pass packs.exclusive "pack b waits for pack a's commit of the same name"
fi
gate_open "$WORK/ga" 1
gate_open "$WORK/gb" 1
gate_open "$WORK/gb" 2
wait "$PA" || bad packs.interleaved "pack a: $(cat "$WORK/pa.out")"
wait "$PB" || bad packs.interleaved "pack b: $(cat "$WORK/pb.out")"
v=$(stored_one_of p.safetensors "$A" "$B" 2>&1) &&
	pass packs.interleaved "two packs of one name at once end as one whole version ($(name_of "$v" "$A" "$B"))" ||
	bad packs.interleaved "two packs of one name at once: $v ($("$LCPFS" verify "$S2/p.safetensors" 2>&1 | tr '\n' ' '))"
"$LCPFS" recover "$S2" > /dev/null 2>&1
v=$(stored_one_of p.safetensors "$A" "$B" 2>&1) &&
	pass packs.interleaved_recovered "after a recovery it still reads as one whole version ($(name_of "$v" "$A" "$B"))" ||
	bad packs.interleaved_recovered "after a recovery (lcpfs recover): $v"

# A fresh read-only node reads every file as one whole version; nothing lost.
node_mount fresh "$S2" "$WORK/fresh" -o ro || fail "fresh node mount"
F=$WORK/fresh
for n in p a r; do
	if [ ! -e "$F/$n.safetensors" ]; then
		bad "fresh.$n" "$n.safetensors is missing"
		continue
	fi
	v=$(one_of "$F/$n.safetensors" "$A" "$B" "$C" 2>&1) &&
		pass "fresh.$n" "$n reads as $(name_of "$v" "$A" "$B" "$C")" || bad "fresh.$n" "$v"
done
cmp -s "$F/x1" "$WORK/x1" && cmp -s "$F/q" "$WORK/x3" && pass fresh.plain "plain files intact" ||
	bad fresh.plain "a plain file differs"
left=$(cd "$S0" && ls -A | grep '^\.lcpfs-tmp\.' | tr '\n' ' ')
[ -z "$left" ] && pass writers.no_temps "no temporaries left" || bad writers.no_temps "left: $left"
finish
