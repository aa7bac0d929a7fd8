#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A backing filesystem that is full when compression runs (a small tmpfs,
# filled while the tensor file is still open for writing) keeps the raw file
# intact and leaves no temporaries; a full disk says nothing about the file,
# so it is not refused for good: the file stays pending with the cause as its
# reason, carries a retry mark, and is compressed once space is back - after
# the backoff while mounted, and by the next mount when it was unmounted
# meanwhile. A refusal for the file's own content is kept.
set -eu
cd "$(dirname "$0")/../.."
. tests/integration/fsx/mount_lib.sh

SRC=tests/data/llama2c-stories260K.safetensors
COMMIT_TIMEOUT=120 # the backoff doubles from 1 s: a few retries fit well within
TMPFS_SIZE=4m # room for the 1 MiB tensor file and the filler, nothing more
[ -r "$SRC" ] || fail "missing $SRC"

B=$WORK/backing M=$WORK/mnt
mkdir -p "$B" "$M"
mount -t tmpfs -o size=$TMPFS_SIZE lcpfs-enospc "$B" || fail "cannot mount a tmpfs (need root)"
trap 'cleanup_enospc' EXIT
cleanup_enospc() {
	cleanup_mounts_only
	umount "$B" 2>/dev/null || umount -l "$B" 2>/dev/null
	rm -rf "$WORK"
}
cleanup_mounts_only() {
	local p
	if is_mounted "$M"; then fusermount3 -u "$M" 2>/dev/null || fusermount3 -uz "$M" 2>/dev/null; fi
	for p in "${DAEMON_PIDS[@]}"; do poll 5 pid_gone "$p" || kill -9 "$p" 2>/dev/null; done
}
mount_fs "$B" "$M"

# fill_while_writing DST: writes the tensor file, and while it is still open
# (nothing queued yet) fills the backing to the last block; closing it then
# queues the compression.
fill_while_writing() {
	"$PYTHON" - "$SRC" "$1" "$B/filler" <<'PY'
import errno, os, sys
src, dst, filler = sys.argv[1:]
data = open(src, "rb").read()
fd = os.open(dst, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
os.write(fd, data)
ff = os.open(filler, os.O_CREAT | os.O_WRONLY, 0o644)
try:
	while True:
		os.write(ff, b"\0" * 4096)
except OSError as e:
	assert e.errno == errno.ENOSPC, e
os.close(ff)
os.close(fd)
PY
}
reason_says_space() {
	state_is "$1" pending && xattr_get "$1" user.lcpfs.reason 2>/dev/null | grep -qi 'space'
}
only() { [ "$(backing_ls "$B" | sort | tr '\n' ' ')" = "$1" ]; }

fill_while_writing "$M/model.safetensors"
poll "$COMMIT_TIMEOUT" reason_says_space "$M/model.safetensors" ||
	fail "state $(xattr_get "$M/model.safetensors" user.lcpfs.state) ($(xattr_get "$M/model.safetensors" user.lcpfs.reason 2>/dev/null)), wanted pending for lack of space"
reason=$(xattr_get "$M/model.safetensors" user.lcpfs.reason)
cmp "$SRC" "$M/model.safetensors" || fail "raw file changed"
cmp "$SRC" "$B/model.safetensors" || fail "raw file changed in the backing"
mark=$(xattr_get "$B/model.safetensors" user.lcpfs.refused) || fail "no mark on the backing file"
case $mark in "retry: "*) ;; *) fail "mark does not ask for a retry: $mark" ;; esac
# Between two tries nothing of a try is left behind.
poll 30 only "filler model.safetensors " || fail "leftovers: $(ls -A "$B")"
echo "ok: full backing: state pending ($reason), mark '$mark', raw file intact, no temporaries"

rm "$B/filler"
poll "$COMMIT_TIMEOUT" state_is "$M/model.safetensors" compressed ||
	fail "not compressed once space is back: state $(xattr_get "$M/model.safetensors" user.lcpfs.state)"
cmp "$SRC" "$B/model.safetensors" >/dev/null 2>&1 && fail "backing still holds the raw bytes"
echo "ok: space back: compressed after the backoff, with no new write"

# A file left raw for lack of space when the mount ends is tried again by
# the next mount (when first looked up).
fill_while_writing "$M/again.safetensors"
poll "$COMMIT_TIMEOUT" reason_says_space "$M/again.safetensors" || fail "again: not pending for lack of space"
unmount_fs "$M" "$DAEMON_PID" || fail "unmount"
rm "$B/filler"
mount_fs "$B" "$M"
poll "$COMMIT_TIMEOUT" state_is "$M/again.safetensors" compressed ||
	fail "after remount: state $(xattr_get "$M/again.safetensors" user.lcpfs.state) ($(xattr_get "$M/again.safetensors" user.lcpfs.reason 2>/dev/null))"
cmp "$SRC" "$M/again.safetensors" >/dev/null && fail "after remount: reads as the raw bytes"
echo "ok: deferred at unmount: compressed by the next mount"

# A refusal for the file's content is kept (not retried), across a remount.
head -c 104 "$SRC" > "$M/truncated.safetensors"
"$PYTHON" -c 'import sys; open(sys.argv[1], "ab").write(b"\1" * 8192)' "$M/truncated.safetensors"
poll "$COMMIT_TIMEOUT" state_is "$M/truncated.safetensors" refused || fail "truncated: not refused"
mark=$(xattr_get "$B/truncated.safetensors" user.lcpfs.refused) || fail "truncated: no mark"
case $mark in "retry: "*) fail "a content refusal asks for a retry: $mark" ;; esac
unmount_fs "$M" "$DAEMON_PID" || fail "unmount"
mount_fs "$B" "$M"
state_is "$M/truncated.safetensors" refused || fail "truncated: after remount $(xattr_get "$M/truncated.safetensors" user.lcpfs.state)"
echo "ok: a content refusal ($mark) is kept across a remount"
unmount_fs "$M" "$DAEMON_PID" || fail "unmount"
echo "enospc: all checks passed"
