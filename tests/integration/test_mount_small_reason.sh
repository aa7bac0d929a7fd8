#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A valid tensor file smaller than min_size stays raw "with the reason
# recorded" (lcpfs(1), DESCRIPTION and user.lcpfs.reason): state refused,
# user.lcpfs.reason names min_size, user.lcpfs.format its format, also
# after a remount; a small file that is no tensor file has no reason.
# Defect on main: fs_tensor_released skips files under min_size before any
# job runs (fs_track_released(small)), so the file shows state raw with no
# reason and no format, exactly like a file that is no tensor file.
set -eu
cd "$(dirname "$0")/../.."
. tests/integration/fsx/mount_lib.sh
. tests/integration/fsx/integrity_lib.sh

B=$WORK/backing M=$WORK/mnt
mkdir -p "$B" "$M"
"$PYTHON" - "$WORK/small.safetensors" <<'PY' || fail "cannot make the test file"
import sys
import numpy as np
sys.path.insert(0, "tests/integration/fsx")
import tensorfile
tensorfile.write(sys.argv[1], [("w", "F32", [16, 32], np.ones((16, 32), "<f4"))])
PY
size=$(stat -c %s "$WORK/small.safetensors")
[ "$size" -lt 4096 ] || fail "the test file ($size bytes) is not under the default min_size"
mount_fs "$B" "$M"
cp "$WORK/small.safetensors" "$M/small.safetensors"
has_reason() { [ -n "$(xattr_get "$M/small.safetensors" user.lcpfs.reason 2>/dev/null)" ]; }
poll 30 has_reason ||
	fail "a $size-byte safetensors file is $(xattr_get "$M/small.safetensors" user.lcpfs.state) with no user.lcpfs.reason"
reason=$(xattr_get "$M/small.safetensors" user.lcpfs.reason)
case $reason in *min_size*) ;; *) fail "reason of a small tensor file: '$reason'" ;; esac
format=$(xattr_get "$M/small.safetensors" user.lcpfs.format 2>/dev/null) || format=none
[ "$format" = safetensors ] || fail "format of a small tensor file: $format"
state=$(xattr_get "$M/small.safetensors" user.lcpfs.state)
[ "$state" = refused ] || fail "state of a small tensor file: $state"
cmp -s "$WORK/small.safetensors" "$B/small.safetensors" || fail "the small file changed on the backing"
say "a tensor file under min_size says why it stays raw: $state, '$reason', $format"

# A small file that is no tensor file stays raw with no reason.
head -c 1000 /dev/zero > "$M/plain"
state_is "$M/plain" raw || fail "a small plain file is $(xattr_get "$M/plain" user.lcpfs.state)"
if xattr_get "$M/plain" user.lcpfs.reason > /dev/null 2>&1; then
	fail "a small plain file has a reason: $(xattr_get "$M/plain" user.lcpfs.reason)"
fi
say "a small plain file: raw, no reason"

# The reason is kept across a remount (as the refusal mark).
unmount_fs "$M" "$DAEMON_PID" || fail "unmount"
mount_fs "$B" "$M"
[ "$(xattr_get "$M/small.safetensors" user.lcpfs.reason 2>/dev/null)" = "$reason" ] ||
	fail "after a remount: reason '$(xattr_get "$M/small.safetensors" user.lcpfs.reason 2>/dev/null)'"
say "the reason is kept across a remount"
