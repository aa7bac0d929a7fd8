#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Unmount and mount again (to change options, say) while the old daemon is
# still compressing a file: a write made through the new mount is never
# lost. The old daemon's job is held by the test hold point between its
# prepare and its commit; after `fusermount3 -u` it lives on (the queue is
# drained at unmount) while a new mount of the same backing opens the file
# for writing; then the old job goes on, and the new mount writes.
# Defect on main: the old daemon commits after its unmount (the raw file is
# unchanged: the new mount only opened it), renaming the payload over the
# name; the new mount's open descriptor still points at the old raw inode,
# now unlinked, so the write lands in a deleted file (the new mount even
# reads it back from there) and is lost once that mount ends: the backing
# holds the old daemon's compressed version.
set -eu
cd "$(dirname "$0")/../.."
. tests/integration/fsx/mount_lib.sh
. tests/integration/fsx/integrity_lib.sh

B=$WORK/backing M=$WORK/mnt
mkdir -p "$B" "$M"
make_tensor "$WORK/t.safetensors" 131
LCPFS_TEST_HOLD=prepared LCPFS_TEST_HOLD_DIR=$HOLD_DIR mount_fs "$B" "$M"
OLD=$DAEMON_PID
trap 'hold_go prepared; cleanup' EXIT
cp "$WORK/t.safetensors" "$M/x"
hold_wait prepared
fusermount3 -u "$M" || fail "unmount"
kill -0 "$OLD" 2> /dev/null || fail "the old daemon ended before its job: the test proves nothing"

mount_fs "$B" "$M"
size=$(stat -c %s "$WORK/t.safetensors")
exec 3<> "$M/x"
hold_go prepared
poll "$COMMIT_TIMEOUT" pid_gone "$OLD" || fail "the old daemon did not finish"
printf 'WRITTEN!' >&3 # at offset 0: the new bytes of the file's first 8 bytes
exec 3>&-
unmount_fs "$M" "$DAEMON_PID" || fail "unmount of the new mount"
# What the backing holds now, as the next mount (or lcpfs unpack) sees it.
"$LCPFS" unpack "$B/x" "$WORK/after" || fail "unpack of the backing"
head -c 8 "$WORK/after" > "$WORK/head"
printf 'WRITTEN!' > "$WORK/want"
cmp -s "$WORK/head" "$WORK/want" ||
	fail "a write through the new mount is lost: the file on the backing starts with '$(od -An -c "$WORK/head" | tr -s ' ')' ($(ls -A "$B" | tr '\n' ' '))"
say "a write through a new mount survives the old daemon's drain"
