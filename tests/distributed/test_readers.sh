#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# One writer node and two read-only nodes over one GlusterFS volume, each
# node with its own lcpfs daemon and its own gluster client mount:
# - a read-only mount (-o ro) answers EROFS to every change and leaves the
#   backing exactly as it was (no recovery, no compression, no xattr), even
#   with someone's temporary and a stale sidecar lying there;
# - a model copied in through the writer reads on every node as its raw
#   bytes or as the committed reconstruction (whole reads and ranges checked
#   against both), while the commit is held at its first rename and after;
# - readers see the committed version within two attribute timeouts
#   (mounted with attr_timeout=1; without such an option the daemon's 60 s);
# - a reader holding the file open across the commit reads one version;
# - a rewrite of the committed file through the writer reads on the readers
#   as one whole version, never an error or a mix, and they converge on it.
set -u
cd "$(dirname "$0")/../.."
. tests/integration/fsx/mount_lib.sh
. tests/distributed/dist_lib.sh

# c0: the writer's node; c1, c2: readers, whose gluster clients cache names
# and attributes for 5 s (default 1 s), which makes the window after a commit
# where a reader's backing still names the replaced file wide enough to hit
# every time.
gluster_setup 3 --entry-timeout=5 --attribute-timeout=5
S0=${GM[0]}/store S1=${GM[1]}/store S2=${GM[2]}/store
mkdir -p "$S0"
echo "ok: backing probe: POSIX locks: $($CHECK locks "$S0/lockprobe" "$S1/lockprobe")"
rm -f "$S0/lockprobe"
make_model m1.safetensors 6 1
make_model m2.safetensors 6 2
RAW1=$WORK/m1.safetensors REC1=$WORK/m1.safetensors.rec
RAW2=$WORK/m2.safetensors REC2=$WORK/m2.safetensors.rec

# What a read-only node must never change: names, sizes, times, inodes,
# xattrs. Seeded with an in-flight temporary of some other process, a stale
# sidecar, and a tensor file placed directly in the backing.
cp "$RAW1" "$S0/direct.safetensors"
"$LCPFS" pack "$RAW2" "$S0/stale.safetensors" > /dev/null || fail "pack stale.safetensors"
cp "$RAW1" "$S0/stale.safetensors" # the sidecar beside it is now stale
printf 'in flight' > "$S0/.lcpfs-tmp.00112233aabbccdd.p"
snapshot() {
	(cd "$1" && find . -printf '%p %s %T@ %i\n' | sort &&
		getfattr -R -d -m - --absolute-names . 2> /dev/null | grep -v '^trusted\.' | sort)
}
snapshot "$S0" > "$WORK/before"

# Readers: ro, with a short attribute timeout when the daemon has the option,
# and no decoded-chunk cache (cache=0), so every read reaches the backing as
# it does for a model larger than the cache.
TIMEOUT_SEC=1
RO_OPTS=ro,cache=0,attr_timeout=$TIMEOUT_SEC
if node_mount r1 "$S1" "$WORK/r1" -o "$RO_OPTS"; then
	pass reader.attr_timeout_option "readers mounted with -o $RO_OPTS"
else
	bad reader.attr_timeout_option "no attribute timeout option: -o $RO_OPTS refused: $(tail -n 2 "$WORK/r1.log" | tr '\n' ' '); readers keep the daemon's 60 s"
	TIMEOUT_SEC=60
	RO_OPTS=ro,cache=0
	node_mount r1 "$S1" "$WORK/r1" -o "$RO_OPTS" || fail "mount -o ro"
fi
R1_PID=$NODE_PID
R1=$WORK/r1
node_mount r2 "$S2" "$WORK/r2" -o "$RO_OPTS" || fail "second reader mount"
R2=$WORK/r2

# Every change through a read-only node fails with EROFS.
erofs_all() {
	"$PYTHON" - "$1" <<-'PY'
	import errno, os, sys
	m = sys.argv[1]
	f = m + "/direct.safetensors"
	ops = {
	    "create": lambda: os.open(m + "/new", os.O_WRONLY | os.O_CREAT, 0o644),
	    "open for write": lambda: os.open(f, os.O_WRONLY),
	    "truncate": lambda: os.truncate(f, 0),
	    "unlink": lambda: os.unlink(f),
	    "rename": lambda: os.rename(f, m + "/moved"),
	    "mkdir": lambda: os.mkdir(m + "/d"),
	    "link": lambda: os.link(f, m + "/l"),
	    "symlink": lambda: os.symlink("x", m + "/s"),
	    "chmod": lambda: os.chmod(f, 0o600),
	    "utime": lambda: os.utime(f, (1, 1)),
	    "setxattr": lambda: os.setxattr(f, "user.note", b"x"),
	}
	wrong = []
	for name, op in ops.items():
	    try:
	        op()
	        wrong.append(name + " succeeded")
	    except OSError as e:
	        if e.errno != errno.EROFS:
	            wrong.append("%s: %s" % (name, e.strerror))
	if wrong:
	    sys.exit("; ".join(wrong))
	PY
}
check ro.erofs "every change through an ro node gives EROFS" erofs_all "$R1"
cmp -s "$R1/direct.safetensors" "$RAW1" || bad ro.reads "a raw tensor file read through the ro node differs"
check ro.state_raw "a tensor file placed in the backing shows state raw on an ro node" state_is "$R1/direct.safetensors" raw
snapshot "$S0" > "$WORK/after"
if diff "$WORK/before" "$WORK/after" > "$WORK/ro.diff"; then
	pass ro.no_recovery "two ro mounts and their reads left the backing as it was"
else
	bad ro.no_recovery "an ro mount changed the backing (recovery ran): $(tr '\n' ' ' < "$WORK/ro.diff" | cut -c1-300)"
fi
rm -f "$S0/.lcpfs-tmp.00112233aabbccdd.p" "$S0/.stale.safetensors.lcpfs" "$S0/stale.safetensors"

# The writer, held where its pack is about to create its payload temporary
# (point 1), at its first rename with the temporaries written (point 2),
# right after the payload replaced the raw file (point 3; points 2 and 3 are
# inside the commit, where the writer's namespace is locked), and where the
# pack of the later rewrite creates its temporary (point 4).
G=$WORK/gate
gate_env "$G" "create:.lcpfs-tmp.*.p rename-before:.m1.safetensors.lcpfs rename-after:m1.safetensors create:.lcpfs-tmp.*.p"
node_mount w "$S0" "$WORK/w" || fail "writer mount"
NODE_ENV=()
W=$WORK/w
cp "$RAW1" "$W/m1.safetensors" || fail "cp into the writer"
poll "$COMMIT_TIMEOUT" gate_arrived "$G" 1 || fail "the writer's pack never started (state $(state_of "$W/m1.safetensors") $(reason_of "$W/m1.safetensors"))"
for r in r1 r2; do
	v=$($CHECK version "$WORK/$r/m1.safetensors" "$RAW1" "$REC1" 2>&1) &&
		pass "reader.before_pack.$r" "reads as version $v (0 raw, 1 committed) before the pack" ||
		bad "reader.before_pack.$r" "$v"
done
# Readers on both kinds of node open the file now and hold it across the commit.
for n in r1 w; do
	$CHECK --drop hold "$WORK/$n/m1.safetensors" "$WORK/held.$n" "$WORK/go.hold" "$RAW1" "$REC1" \
		> "$WORK/hold.$n.out" 2>&1 &
	eval "HOLD_$n=\$!"
	poll 30 test -e "$WORK/held.$n" || fail "holder on $n did not start: $(cat "$WORK/hold.$n.out")"
done
gate_open "$G" 1
poll "$COMMIT_TIMEOUT" gate_arrived "$G" 2 || fail "the writer's commit never reached its first rename (state $(state_of "$S0/m1.safetensors"))"
pass writer.holds "commit held with its temporaries written: $(ls -A "$S0" | tr '\n' ' ')"
for r in r1 r2; do
	v=$($CHECK --drop version "$WORK/$r/m1.safetensors" "$RAW1" "$REC1" 2>&1) &&
		pass "reader.during_commit.$r" "reads as version $v (0 raw, 1 committed) while the commit is held" ||
		bad "reader.during_commit.$r" "$v"
done
# The readers' gluster clients look the name up now (as any other program on
# those nodes might), so their own caches (5 s) still name the raw file when
# it is replaced: the moment a reader node's backing is behind the writer.
stat "$S1/m1.safetensors" "$S2/m1.safetensors" > /dev/null
gate_open "$G" 2
poll "$COMMIT_TIMEOUT" gate_arrived "$G" 3 || fail "the writer's commit never renamed its payload"
v=$($CHECK --drop version "$R1/m1.safetensors" "$RAW1" "$REC1" 2>&1) &&
	pass reader.right_after_commit "reads as version $v (0 raw, 1 committed) the moment the payload replaced the raw file" ||
	bad reader.right_after_commit "$v"
gate_open "$G" 3
wait_settled "$W/m1.safetensors" || fail "writer: state $(state_of "$W/m1.safetensors") after the commit"
check writer.compressed "the writer committed ($(state_of "$W/m1.safetensors") $(reason_of "$W/m1.safetensors"))" \
	state_is "$W/m1.safetensors" compressed
"$LCPFS" unpack "$S0/m1.safetensors" "$WORK/m1.fromstore" || fail "offline unpack of the committed file"
check writer.deterministic "the committed file reconstructs exactly as an offline pack of the same bytes" \
	cmp "$WORK/m1.fromstore" "$REC1"
touch "$WORK/go.hold"
for n in r1 w; do
	eval "p=\$HOLD_$n"
	if wait "$p"; then
		pass "reader.held_open.$n" "an open file read across the commit as one version ($(cat "$WORK/hold.$n.out"): 0 raw, 1 committed)"
	else
		bad "reader.held_open.$n" "$(cat "$WORK/hold.$n.out")"
	fi
done

# Readers converge on the committed version within two attribute timeouts:
# a reader whose entry expires while its node's gluster client still names the
# old file renews the entry on it once.
reads_as() { cmp -s "$1" "$2" 2> /dev/null; }
converge() { # ID VERSION: polls both readers together until each reads VERSION
	local id=$1 want=$2 r left="r1 r2" t0 deadline
	t0=$(date +%s)
	deadline=$((t0 + 2 * TIMEOUT_SEC + 10))
	while [ -n "${left// /}" ] && [ "$(date +%s)" -le "$deadline" ]; do
		for r in $left; do
			if reads_as "$WORK/$r/m1.safetensors" "$want"; then
				pass "$id.$r" "reads $(basename "$want") after $(( $(date +%s) - t0 ))s (timeout ${TIMEOUT_SEC}s)"
				left=${left/$r/}
			fi
		done
		sleep 0.1
	done
	for r in $left; do
		bad "$id.$r" "after $(( $(date +%s) - t0 ))s: $($CHECK version "$WORK/$r/m1.safetensors" "$RAW1" "$REC1" "$RAW2" "$REC2" 2>&1) (candidates: 0 m1 raw, 1 m1 committed, 2 m2 raw, 3 m2 committed)"
	done
}
converge reader.sees_commit "$REC1"
for r in r1 r2; do
	v=$($CHECK --drop version "$WORK/$r/m1.safetensors" "$REC1" 2>&1) &&
		pass "reader.committed.$r" "reads the committed reconstruction, whole and in ranges" ||
		bad "reader.committed.$r" "$v"
done

# A rewrite of the committed file through the writer (cp over it: O_TRUNC),
# its pack held before its temporary (point 4). Readers that knew the
# committed file may show it until their timeout, then the new bytes raw or
# committed: never an error or a mix. Their nodes' page caches of the backing
# file are dropped first, as on a node that has not read it lately.
$CHECK --drop hold "$R2/m1.safetensors" "$WORK/held.rw" "$WORK/go.rw" "$REC1" "$RAW2" "$REC2" \
	> "$WORK/hold.rw.out" 2>&1 &
HOLD_RW=$!
poll 30 test -e "$WORK/held.rw" || fail "holder across the rewrite did not start"
cp "$RAW2" "$W/m1.safetensors" || fail "cp over the committed file"
poll "$COMMIT_TIMEOUT" gate_arrived "$G" 4 || fail "the rewrite's pack never started (state $(state_of "$W/m1.safetensors") $(reason_of "$W/m1.safetensors"))"
$CHECK drop "$S1/m1.safetensors" "$S2/m1.safetensors" || fail "dropping the readers' backing caches"
v=$($CHECK --drop version "$R1/m1.safetensors" "$REC1" "$RAW2" "$REC2" 2>&1) &&
	pass reader.during_rewrite "reads as version $v (0 old committed, 1 new raw, 2 new committed) after the rewrite, before its pack" ||
	bad reader.during_rewrite "$v"
touch "$WORK/go.rw"
if wait "$HOLD_RW"; then
	pass reader.held_across_rewrite "an open file read across the rewrite as one version ($(cat "$WORK/hold.rw.out"))"
else
	bad reader.held_across_rewrite "$(cat "$WORK/hold.rw.out")"
fi
gate_open "$G" 4
wait_settled "$W/m1.safetensors" || fail "rewrite: state $(state_of "$W/m1.safetensors")"
check writer.recompressed "the rewrite was compressed ($(state_of "$W/m1.safetensors") $(reason_of "$W/m1.safetensors"))" \
	state_is "$W/m1.safetensors" compressed
converge reader.sees_rewrite "$REC2"

# The readers never changed anything; the backing holds one committed file.
unmount_fs "$R1" "$R1_PID" || bad ro.unmount "unmount of a reader"
check store.verify "the backing file verifies" "$LCPFS" verify "$S0/m1.safetensors"
left=$(cd "$S0" && ls -A | grep -v -x -e m1.safetensors -e .m1.safetensors.lcpfs -e direct.safetensors -e .lcpfs-lock | tr '\n' ' ')
[ -z "$left" ] && pass store.clean "no temporaries or stray sidecars left" || bad store.clean "left in the backing: $left"
grep -iE 'error|damaged' "$WORK"/r[12].log > "$WORK/ro.errors" &&
	bad ro.quiet "ro nodes logged: $(head -n 3 "$WORK/ro.errors" | tr '\n' ' ')" ||
	pass ro.quiet "ro nodes logged no error"
finish
