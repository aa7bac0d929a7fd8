#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `lcpfs inspect` and `lcpfs stats` inside a mount tell the truth about a
# compressed file with many tensors (500 here; real checkpoints have
# hundreds to thousands), whose inspect report is over 64 KiB.
# Defect on main: user.lcpfs.inspect is larger than an xattr value can be
# (XATTR_SIZE_MAX, 64 KiB), getxattr fails with E2BIG; `lcpfs inspect`
# then falls back to parsing the file as raw and prints "state: compressed"
# with stored size = logical size, ratio 1.000x and every tensor "exact";
# `lcpfs stats` counts nothing and fails.
set -eu
cd "$(dirname "$0")/../.."
. tests/integration/fsx/mount_lib.sh
. tests/integration/fsx/integrity_lib.sh

B=$WORK/backing M=$WORK/mnt
mkdir -p "$B" "$M"
"$PYTHON" - "$WORK/many.safetensors" <<'PY' || fail "cannot make the test file"
import sys
import numpy as np
sys.path.insert(0, "tests/integration/fsx")
import tensorfile
rng = np.random.default_rng(1)
tensorfile.write(sys.argv[1], [
    ("model.layers.%d.self_attn.q_proj.weight" % i, "F16", [64, 64],
     (rng.standard_normal((64, 64)) * 0.05).astype("<f2")) for i in range(500)])
PY
mount_fs "$B" "$M"
cp "$WORK/many.safetensors" "$M/many.safetensors"
wait_state "$M/many.safetensors" compressed

"$LCPFS" inspect --json "$B/many.safetensors" > "$WORK/backing.json" || fail "inspect on the backing"
field() { "$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }
want_stored=$(field "$WORK/backing.json" stored_size)
want_logical=$(field "$WORK/backing.json" logical_size)
[ "$want_stored" -lt "$want_logical" ] || fail "the file did not get smaller: the test proves nothing"

"$LCPFS" inspect --json "$M/many.safetensors" > "$WORK/mount.json" || fail "inspect inside the mount failed"
got=$(field "$WORK/mount.json" stored_size)
[ "$got" = "$want_stored" ] ||
	fail "inspect inside the mount: stored_size $got, the backing says $want_stored (state $(xattr_get "$M/many.safetensors" user.lcpfs.state))"

"$LCPFS" stats --json "$M" > "$WORK/stats.json" 2> "$WORK/stats.err" ||
	fail "stats inside the mount failed: $(head -n 2 "$WORK/stats.err")"
n=$("$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))["by_state"].get("compressed", {}).get("files", 0))' "$WORK/stats.json")
[ "$n" = 1 ] || fail "stats inside the mount counts $n compressed files, wanted 1"
say "inspect and stats inside the mount report a 500-tensor file right"
