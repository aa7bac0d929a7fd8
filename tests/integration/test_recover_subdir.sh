#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Recovery never runs on a part of a backing tree that a read-write mount is
# using: `lcpfs recover BACKING/sub` while the mount renames a compressed
# file in sub (A -> T -> A ...) either refuses ("resource busy", as for
# BACKING itself) or leaves every name readable; the file never loses its
# sidecar. The same holds for a second mount whose backing is a
# subdirectory of a mounted one (its recovery at start is this code): it
# is refused.
# Recovery also needs the use locks of the directories above its tree (and
# below) to be free, so `lcpfs recover BACKING/sub` is refused here. Before
# that fix the exclusion was an flock of the top directory only: between
# the mount's link of A's sidecar to T's sidecar name and its rename of A
# over T, the recovery removed T's sidecar; the mount then renamed A over T
# and unlinked A's sidecar, and after a remount the file read as its
# payload (container) bytes. That happened within a second (tens of
# recoveries); RACE_SECONDS (default 10) bounds the race here.
set -eu
cd "$(dirname "$0")/../.."
. tests/integration/fsx/mount_lib.sh
. tests/integration/fsx/integrity_lib.sh

B=$WORK/backing M=$WORK/mnt
mkdir -p "$B/sub" "$M"
make_tensor "$WORK/t.safetensors" 91
mount_fs "$B" "$M"
cp "$WORK/t.safetensors" "$M/sub/A"
wait_state "$M/sub/A" compressed
cp "$M/sub/A" "$WORK/expected"

: > "$WORK/renaming"
"$PYTHON" - "$M/sub" "$WORK/renaming" <<'PY' &
import os, sys
d, flag = sys.argv[1:3]
while os.path.exists(flag):
    os.rename(d + "/A", d + "/T")
    os.rename(d + "/T", d + "/A")
PY
RENAMER=$!
trap 'rm -f "$WORK/renaming"; wait "$RENAMER" 2>/dev/null; cleanup' EXIT

sidecars() { ls -A "$B/sub" | grep -c '^\..*\.lcpfs$' || true; }
deadline=$(( $(date +%s) + ${RACE_SECONDS:-10} ))
runs=0 refused=0 lost=0
while [ "$(date +%s)" -lt "$deadline" ]; do
	runs=$((runs + 1))
	"$LCPFS" recover "$B/sub" 2> /dev/null || refused=$((refused + 1))
	# The mount links the new sidecar name before each rename and unlinks
	# the old one after it: at least one sidecar is there at every instant.
	if [ "$(sidecars)" = 0 ]; then
		lost=$runs
		break
	fi
done
rm -f "$WORK/renaming"
wait "$RENAMER" || fail "the renamer failed"
echo "$runs recoveries of sub, $refused refused"
if [ "$lost" != 0 ]; then
	unmount_fs "$M" "$DAEMON_PID" || fail "unmount"
	mount_fs "$B" "$M"
	what="neither version"
	cmp -s "$M/sub/A" "$WORK/expected" && what="its reconstruction"
	is_container "$M/sub/A" && what="its payload (container) bytes"
	fail "recovery #$lost of a subdirectory, run while the mount renamed a compressed file in it, removed its sidecar; after a remount the file is $(xattr_get "$M/sub/A" user.lcpfs.state) and reads as $what"
fi
cmp -s "$M/sub/A" "$WORK/expected" || fail "A reads different bytes after the renames"

# A second read-write mount whose backing is inside the mounted one would
# run that recovery at start and then write the same files: it is refused,
# naming the mounted backing. (If it ever starts, timeout's SIGTERM
# unmounts it.)
# refused BACKING MNT WHAT NAMED: a read-write mount of BACKING (WHAT)
# exits with an error that contains NAMED.
refused() {
	mkdir -p "$2"
	local rc=0
	timeout -k 5 "$MOUNT_TIMEOUT" "$LCPFS" "$1" "$2" -f 2> "$WORK/refusal.err" || rc=$?
	[ "$rc" != 0 ] && [ "$rc" != 124 ] || fail "a read-write mount of $3 started (exit $rc)"
	grep -qF "$4" "$WORK/refusal.err" ||
		fail "the refusal of $3 does not name the mounted backing: $(cat "$WORK/refusal.err")"
}
refused "$B/sub" "$WORK/mnt2" "a subdirectory of a mounted backing" \
	"mount of $B, which holds this directory"

# The other way round: with a read-write mount of sub running, a read-write
# mount of the backing above it would be a second writer of sub's files.
unmount_fs "$M" "$DAEMON_PID" || fail "unmount"
mount_fs "$B/sub" "$WORK/mnt2"
refused "$B" "$WORK/mnt3" "a directory holding a mounted backing" "$B/sub"
mount_fs "$B" "$WORK/mnt3" -o ro
cmp -s "$WORK/mnt3/sub/A" "$WORK/expected" || fail "a read-only mount above reads A wrong"
say "recovery of a subdirectory did not harm the mount's files ($refused of $runs refused); nested read-write mounts are refused both ways"
