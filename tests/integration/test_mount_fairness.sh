#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Fairness: a huge file being compressed does not hold back a small one
# copied after it. With one encoder thread (threads=1), a 128 MiB F16 model
# is copied into the mount, then the small stories260K model; the small one
# must commit within a generous deadline and while the huge one is still
# pending (one thread serving files first come, first served would finish
# the huge one first). Also: the huge one commits in the end.
set -eu
cd "$(dirname "$0")/../.."
. tests/integration/fsx/mount_lib.sh

SMALL=tests/data/llama2c-stories260K.safetensors
HUGE_MIB=128
SMALL_DEADLINE=60    # seconds: the small file's few chunks, on a loaded machine
COMMIT_TIMEOUT=600   # the huge one on one thread
[ -r "$SMALL" ] || fail "missing $SMALL"

B=$WORK/backing M=$WORK/mnt
mkdir -p "$B" "$M"
mount_fs "$B" "$M" -o threads=1

# A real-looking F16 tensor file: one random 1 MiB block of weights tiled.
"$PYTHON" - "$M/huge.safetensors" "$HUGE_MIB" <<'PY'
import json, struct, sys
import numpy as np
out, mib = sys.argv[1], int(sys.argv[2])
rows, cols = mib * 128, 4096
block = (np.random.default_rng(3).standard_normal(512 * 1024) * 0.02).astype("<f2").tobytes()
n = rows * cols * 2
h = json.dumps({"w": {"dtype": "F16", "shape": [rows, cols], "data_offsets": [0, n]}}).encode()
h += b" " * (-len(h) % 8)
with open(out, "wb") as f:
	f.write(struct.pack("<Q", len(h)) + h)
	for _ in range(n // len(block)):
		f.write(block)
PY
cp "$SMALL" "$M/small.safetensors"
poll "$SMALL_DEADLINE" state_is "$M/small.safetensors" compressed ||
	fail "small file not compressed within ${SMALL_DEADLINE}s: $(xattr_get "$M/small.safetensors" user.lcpfs.state)"
huge_state=$(xattr_get "$M/huge.safetensors" user.lcpfs.state)
[ "$huge_state" = pending ] ||
	fail "the huge file is '$huge_state' when the small one committed: it was not overtaken"
say "small file committed while the huge one was still being compressed"
wait_state "$M/huge.safetensors" compressed
say "huge file committed too"
unmount_fs "$M" "$DAEMON_PID" || fail "unmount"
echo "fairness: all checks passed"
