#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A backing filesystem that is full when compression runs (a small tmpfs,
# filled while the tensor file is still open for writing) keeps the raw file
# intact: state refused with a reason, bytes unchanged, no temporaries left.
set -eu
cd "$(dirname "$0")/../.."
. tests/integration/fsx/mount_lib.sh

SRC=tests/data/llama2c-stories260K.safetensors
COMMIT_TIMEOUT=120
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

state_is() { [ "$(xattr_get "$1" user.lcpfs.state 2>/dev/null)" = "$2" ]; }

# Write the tensor file, and while it is still open (nothing queued yet) fill
# the backing to the last block; closing it then queues the compression.
"$PYTHON" - "$SRC" "$M/model.safetensors" "$B/filler" <<'PY'
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
poll "$COMMIT_TIMEOUT" state_is "$M/model.safetensors" refused ||
	fail "state $(xattr_get "$M/model.safetensors" user.lcpfs.state), wanted refused"
reason=$(xattr_get "$M/model.safetensors" user.lcpfs.reason)
echo "$reason" | grep -qi 'space' || fail "reason does not say the disk is full: $reason"
cmp "$SRC" "$M/model.safetensors" || fail "raw file changed"
cmp "$SRC" "$B/model.safetensors" || fail "raw file changed in the backing"
[ "$(backing_ls "$B" | sort | tr '\n' ' ')" = "filler model.safetensors " ] || fail "leftovers: $(ls -A "$B")"
echo "ok: full backing: state refused ($reason), raw file intact, no temporaries"

# The refusal and its reason survive a remount.
unmount_fs "$M" "$DAEMON_PID" || fail "unmount"
mount_fs "$B" "$M"
state_is "$M/model.safetensors" refused || fail "after remount: state $(xattr_get "$M/model.safetensors" user.lcpfs.state)"
[ "$(xattr_get "$M/model.safetensors" user.lcpfs.reason)" = "$reason" ] || fail "after remount: reason lost"
echo "ok: refusal and reason kept across remount"

# With room again, a rewrite compresses.
rm "$B/filler"
cat "$SRC" > "$M/model.safetensors"
poll "$COMMIT_TIMEOUT" state_is "$M/model.safetensors" compressed || fail "no commit once space is back"
echo "ok: space back: compressed"
unmount_fs "$M" "$DAEMON_PID" || fail "unmount"
echo "enospc: all checks passed"
