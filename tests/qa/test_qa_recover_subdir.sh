#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Recovery never runs on a part of a backing tree that a read-write mount is
# using: `lcpfs recover BACKING/sub` while the mount renames a compressed
# file in sub (A -> T -> A ...) either refuses ("resource busy", as for
# BACKING itself) or leaves every name readable; the file never loses its
# sidecar. The same holds for a second mount whose backing is a
# subdirectory of a mounted one (its recovery at start is this code).
# Defect on main: the exclusion is an flock of the top directory only, so
# recovery of a subdirectory runs beside the mount. Between the mount's
# link of A's sidecar to T's sidecar name and its rename of A over T, the
# recovery removes T's sidecar (T holds no payload of it yet); the mount
# then renames A over T and unlinks A's sidecar: the file has no sidecar
# left, and after a remount it reads as its payload (container) bytes, its
# model lost. Here that happens within a second (tens of recoveries).
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
deadline=$(( $(date +%s) + ${RACE_SECONDS:-60} ))
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
say "recovery of a subdirectory did not harm the mount's files ($refused of $runs refused)"
