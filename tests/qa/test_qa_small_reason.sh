#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A valid tensor file smaller than min_size stays raw "with the reason
# recorded" (lcpfs(1), DESCRIPTION and user.lcpfs.reason): its
# user.lcpfs.reason is not empty.
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
say "a tensor file under min_size says why it stays raw"
