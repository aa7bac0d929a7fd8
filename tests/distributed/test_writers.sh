#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Two writers over one GlusterFS backing. Either the second read-write mount
# is refused with a clear error, or, with both mounted:
# - different files written at once from both nodes all land, compressed;
# - the same file written from both at once (interleaved exactly: node 1
#   writes half, node 2 writes it whole, node 1 finishes) ends as one whole
#   version, never a mix;
# - a write on node 2 after node 1 renamed the file away and put a new one
#   under its name goes to the new file, not to the renamed one;
# And offline: two `lcpfs pack` of the same destination at once (interleaved
# exactly: one held between its sidecar and payload renames while the other
# runs) end as one whole version, also after the recovery a mount runs. A
# fresh node finally reads every file as one whole version.
set -u
cd "$(dirname "$0")/../.."
. tests/integration/fsx/mount_lib.sh
. tests/distributed/dist_lib.sh

# c0: node 1, c1: node 2, c2: the checker's client, which caches no name or
# attribute in the kernel (so it never reads a version another client just
# replaced), also used by a fresh node at the end.
gluster_setup 2
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

G=$WORK/gate
node_mount w1 "$S0" "$WORK/w1" || fail "node 1 mount"
W1=$WORK/w1
gate_env "$G" "create:.lcpfs-tmp.*.p"
if node_mount w2 "$S1" "$WORK/w2"; then
	NODE_ENV=()
	W2=$WORK/w2
	pass writers.two_rw_mounts "a second read-write mount of the backing is accepted"
	TWO=1
else
	NODE_ENV=()
	msg=$(tail -n 3 "$WORK/w2.log" | tr '\n' ' ')
	if [ -n "$msg" ]; then
		pass writers.two_rw_mounts "the second read-write mount was refused: $msg"
	else
		bad writers.two_rw_mounts "the second read-write mount failed without a message"
	fi
	TWO=0
fi

if [ "$TWO" = 1 ]; then
	# Node 2's first pack is held (gate point 1) until the interleaved
	# same-file case below; different files from both nodes at once first.
	cp "$A" "$W1/a.safetensors" & P1=$!
	head -c 300000 /dev/urandom > "$WORK/x1"
	cp "$WORK/x1" "$W1/x1" & P2=$!
	wait "$P1" && wait "$P2" || bad writers.cp "cp through node 1 failed"
	wait_settled "$W1/a.safetensors" || fail "a never settled on node 1"
	check writers.diff_files.node1 "node 1 compressed a ($(state_of "$W1/a.safetensors") $(reason_of "$W1/a.safetensors"))" \
		state_is "$W1/a.safetensors" compressed

	# The same file from both at once: node 1 writes half of a, node 2 writes
	# all of b (its pack held at gate point 1), node 1 finishes.
	$CHECK write-pause "$W1/s.safetensors" "$A" "$WORK/half" "$WORK/go.half" > "$WORK/wp.out" 2>&1 &
	WP=$!
	poll 60 test -e "$WORK/half" || fail "node 1's writer did not start: $(cat "$WORK/wp.out")"
	cp "$B" "$W2/s.safetensors" || bad writers.same_file "cp on node 2 failed"
	cp "$WORK/x1" "$W2/x2" || bad writers.cp "cp through node 2 failed"
	touch "$WORK/go.half"
	wait "$WP" || bad writers.same_file "node 1's writer: $(cat "$WORK/wp.out")"
	gate_open "$G" 1
	wait_settled "$W1/s.safetensors" && wait_settled "$W2/s.safetensors" ||
		fail "s never settled: node 1 $(state_of "$W1/s.safetensors"), node 2 $(state_of "$W2/s.safetensors")"
	v=$(stored_one_of s.safetensors "$A" "$B" 2>&1) &&
		pass writers.same_file_whole "written from both nodes at once, s reads as one whole version ($(name_of "$v" "$A" "$B"))" ||
		bad writers.same_file_whole "written from both nodes at once: $v; node 1 says $(state_of "$W1/s.safetensors") $(reason_of "$W1/s.safetensors"), node 2 says $(state_of "$W2/s.safetensors") $(reason_of "$W2/s.safetensors")"

	# Node 1 renames r to r.old and puts c under the name r; node 2, which
	# had looked r up before, then writes b to r: b must land under the name
	# r, and r.old must keep a.
	cp "$A" "$W1/r.safetensors" || fail "cp r"
	wait_settled "$W1/r.safetensors" || fail "r never settled"
	stat "$W2/r.safetensors" > /dev/null || fail "node 2 cannot see r"
	mv "$W1/r.safetensors" "$W1/r.old.safetensors" || fail "mv on node 1"
	cp "$C" "$W1/r.safetensors" || fail "cp c on node 1"
	wait_settled "$W1/r.safetensors" || fail "the new r never settled on node 1"
	cp "$B" "$W2/r.safetensors" || bad writers.stale_name "cp b on node 2 failed"
	wait_settled "$W2/r.safetensors"
	v=$(stored_one_of r.safetensors "$A" "$B" "$C" 2>&1) && r_is=$(name_of "$v" "$A" "$B" "$C") || r_is=$v
	v=$(stored_one_of r.old.safetensors "$A" "$B" "$C" 2>&1) && old_is=$(name_of "$v" "$A" "$B" "$C") || old_is=$v
	if [ "${r_is% *}" = b ] && [ "${old_is% *}" = a ]; then
		pass writers.stale_name "node 2's write after node 1's rename landed under r ($r_is); r.old kept a ($old_is)"
	else
		bad writers.stale_name "node 2 wrote b to r after node 1 renamed r to r.old and made a new r: r reads as $r_is, r.old as $old_is (wanted b and a)"
	fi
fi

# Offline: two packs of the same destination, interleaved exactly: the
# first renames its sidecar into place and waits; the second runs whole.
gate_env "$WORK/gp" "rename-after:.p.safetensors.lcpfs"
env "${NODE_ENV[@]}" "$LCPFS" pack "$A" "$S0/p.safetensors" > "$WORK/pa.out" 2>&1 &
PA=$!
NODE_ENV=()
poll "$COMMIT_TIMEOUT" gate_arrived "$WORK/gp" 1 || fail "pack a never renamed its sidecar: $(cat "$WORK/pa.out")"
"$LCPFS" pack "$B" "$S0/p.safetensors" > "$WORK/pb.out" 2>&1 || bad packs.interleaved "pack b: $(cat "$WORK/pb.out")"
gate_open "$WORK/gp" 1
wait "$PA" || bad packs.interleaved "pack a: $(cat "$WORK/pa.out")"
v=$(stored_one_of p.safetensors "$A" "$B" 2>&1) &&
	pass packs.interleaved "two packs of one name at once end as one whole version ($(name_of "$v" "$A" "$B"))" ||
	bad packs.interleaved "two packs of one name at once: $v ($("$LCPFS" verify "$S2/p.safetensors" 2>&1 | tr '\n' ' '))"
"$LCPFS" recover "$S2" > /dev/null 2>&1
v=$(stored_one_of p.safetensors "$A" "$B" 2>&1) &&
	pass packs.interleaved_recovered "after a mount's recovery it still reads as one whole version ($(name_of "$v" "$A" "$B"))" ||
	bad packs.interleaved_recovered "after a mount's recovery (lcpfs recover): $v"
# A fresh read-only node reads every file as one whole version; nothing lost.
node_mount fresh "$S2" "$WORK/fresh" -o ro || fail "fresh node mount"
F=$WORK/fresh
expect=(p)
[ "$TWO" = 1 ] && expect+=(a s r)
for n in "${expect[@]}"; do
	if [ ! -e "$F/$n.safetensors" ]; then
		bad "fresh.$n" "$n.safetensors is missing"
		continue
	fi
	v=$(one_of "$F/$n.safetensors" "$A" "$B" "$C" 2>&1) &&
		pass "fresh.$n" "$n reads as $(name_of "$v" "$A" "$B" "$C")" || bad "fresh.$n" "$v"
done
if [ "$TWO" = 1 ]; then
	cmp -s "$F/x1" "$WORK/x1" && cmp -s "$F/x2" "$WORK/x1" && pass fresh.plain "plain files from both nodes intact" ||
		bad fresh.plain "a plain file from a writer node differs"
fi
left=$(cd "$S0" && ls -A | grep '^\.lcpfs-tmp\.' | tr '\n' ' ')
[ -z "$left" ] && pass writers.no_temps "no temporaries left" || bad writers.no_temps "left: $left"
finish
