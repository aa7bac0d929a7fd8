#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A refused tensor file keeps answering user.lcpfs.format after a remount,
# as its refusal reason does: `lcpfs stats` inside the mount then counts it
# under the same format before and after.
# Regression guarded (fixed): the format of a refused file lives only in the daemon's
# memory (inode->format, set by the pack attempt); after a remount the file
# is refused with its reason (from the backing's mark) but has no format,
# and stats counts it under "other".
set -eu
cd "$(dirname "$0")/../.."
. tests/integration/fsx/mount_lib.sh
. tests/integration/fsx/integrity_lib.sh

B=$WORK/backing M=$WORK/mnt
mkdir -p "$B" "$M"
make_tensor "$WORK/t.safetensors" 141
head -c 200000 "$WORK/t.safetensors" > "$WORK/cut.safetensors" # its data runs past the end
mount_fs "$B" "$M"
cp "$WORK/cut.safetensors" "$M/cut.safetensors"
wait_state "$M/cut.safetensors" refused
before=$(xattr_get "$M/cut.safetensors" user.lcpfs.format) || fail "no format before the remount"
[ "$before" = safetensors ] || fail "format '$before' before the remount"
unmount_fs "$M" "$DAEMON_PID" || fail "unmount"
mount_fs "$B" "$M"
state_is "$M/cut.safetensors" refused || fail "not refused after the remount"
after=$(xattr_get "$M/cut.safetensors" user.lcpfs.format 2>/dev/null) || after="(none)"
[ "$after" = "$before" ] || fail "user.lcpfs.format of a refused file: '$before' before a remount, $after after"
say "a refused file keeps its format across a remount"
