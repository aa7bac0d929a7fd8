#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `lcpfs inspect` and `lcpfs stats` inside a mount tell the truth about a
# compressed file with many tensors (500 here; real checkpoints have
# hundreds to thousands), whose inspect report is over 64 KiB.
# The report comes in pieces (user.lcpfs.inspect.parts, .0, .1, ...), the
# same bytes as on the backing; the whole user.lcpfs.inspect says E2BIG and
# is not listed; stats takes user.lcpfs.stored_size; a compressed file whose
# report cannot be had makes inspect fail, never print a raw parse.
# Regression: user.lcpfs.inspect was larger than an xattr value can be
# (E2BIG); inspect fell back to parsing the file as raw and printed stored
# size = logical size, ratio 1.000x, every tensor "exact"; stats failed.
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
cmp -s "$WORK/backing.json" "$WORK/mount.json" || fail "inspect --json inside the mount differs from the backing's"
stored=$("$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))["stored_bytes"])' "$WORK/stats.json")
[ "$stored" = "$want_stored" ] || fail "stats inside the mount: stored_bytes $stored, the backing says $want_stored"
"$PYTHON" - "$M/many.safetensors" <<'PY' || fail "the inspect attributes are not listed or sized as documented"
import errno, os, sys
path = sys.argv[1]
names = set(os.listxattr(path))
count = int(os.getxattr(path, "user.lcpfs.inspect.parts").split()[0])
assert count > 1, count
want = {"user.lcpfs.inspect.%d" % k for k in range(count)} | {"user.lcpfs.inspect.parts", "user.lcpfs.stored_size", "user.lcpfs.preset"}
assert want <= names, sorted(want - names)
assert "user.lcpfs.inspect" not in names
try:
    os.getxattr(path, "user.lcpfs.inspect")
    sys.exit("the whole report was given")
except OSError as e:
    assert e.errno == errno.E2BIG, e
for bad in ("user.lcpfs.inspect.%d" % count, "user.lcpfs.inspect.00", "user.lcpfs.inspect.-1"):
    try:
        os.getxattr(path, bad)
        sys.exit(bad + " has a value")
    except OSError as e:
        assert e.errno == errno.ENODATA, e
PY
say "inspect and stats inside the mount report a 500-tensor file right"

# A damaged sidecar (found at the next mount): the file is compressed but has
# no report; inspect says so and fails instead of parsing the bytes as raw.
unmount_fs "$M" "$DAEMON_PID" || fail "unmount"
printf 'XXXX' | dd of="$B/.many.safetensors.lcpfs" bs=1 seek=100 conv=notrunc status=none
mount_fs "$B" "$M"
if "$LCPFS" inspect --json "$M/many.safetensors" > "$WORK/damaged.json" 2> "$WORK/damaged.err"; then
	fail "inspect of a compressed file without a report succeeded: $(head -c 200 "$WORK/damaged.json")"
fi
[ ! -s "$WORK/damaged.json" ] || fail "inspect printed a report for a file that has none"
grep -q "no report" "$WORK/damaged.err" || fail "inspect's error does not say why: $(cat "$WORK/damaged.err")"
say "a compressed file without a report: inspect fails clearly ($(cat "$WORK/damaged.err"))"
