#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The lossless tier end to end. preset=lossless: the vendored stories260K
# model and its BF16 and F16 versions copied into a mount read back with the
# same sha256, take less room on the backing, and inspect lists no tensor as
# quantized (the compressed ones lossless, the rest exact regions); `lcpfs pack -o preset=lossless` then `unpack` gives the
# same sha256, `verify` passes, and one flipped payload byte makes verify and
# unpack fail. The default preset stores a pose model's [64, 64, 1] F16
# coordinate grids exact (inspect says why) and its weights 4-bit.
set -eu
cd "$(dirname "$0")/../.."
. tests/integration/fsx/mount_lib.sh

SRC=tests/data/llama2c-stories260K.safetensors
[ -r "$SRC" ] || fail "missing $SRC"
STEP_TIMEOUT=60 # one tool call on a 1 MB file

# BF16 and F16 versions (rounded to nearest even), and a pose-like model:
# two coordinate grids and a weight matrix.
"$PYTHON" - "$SRC" "$WORK" <<'PY'
import json, struct, sys
import numpy as np
src, out = sys.argv[1], sys.argv[2]
b = open(src, "rb").read()
n = struct.unpack_from("<Q", b)[0]
h = json.loads(b[8:8 + n])
meta = h.pop("__metadata__", None)
def write(path, tensors):
    hdr, off, blobs = {}, 0, []
    if meta is not None:
        hdr["__metadata__"] = meta
    for name, (dt, arr) in tensors.items():
        raw = arr.tobytes()
        hdr[name] = {"dtype": dt, "shape": list(arr.shape), "data_offsets": [off, off + len(raw)]}
        off += len(raw)
        blobs.append(raw)
    hb = json.dumps(hdr).encode()
    hb += b" " * (-len(hb) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)) + hb + b"".join(blobs))
W = {}
for k, v in h.items():
    s, e = v["data_offsets"]
    W[k] = np.frombuffer(b[8 + n + s:8 + n + e], dtype="<f4").reshape(v["shape"])
def bf16(x):
    u = x.astype("<f4").view("<u4").astype(np.uint64)
    return ((u + 0x7fff + ((u >> 16) & 1)) >> 16).astype("<u2")
write(out + "/bf16.safetensors", {k: ("BF16", bf16(v)) for k, v in W.items()})
write(out + "/f16.safetensors", {k: ("F16", v.astype("<f2")) for k, v in W.items()})
yy, xx = np.mgrid[0:64, 0:64]
write(out + "/pose.safetensors", {
    "grid_x": ("F16", xx.astype("<f2").reshape(64, 64, 1)),
    "grid_y": ("F16", yy.astype("<f2").reshape(64, 64, 1)),
    "conv.weight": ("F32", W["layers.0.feed_forward.w1.weight"].copy()),
})
PY

B=$WORK/backing M=$WORK/mnt
mkdir -p "$B" "$M"
mount_fs "$B" "$M" -o preset=lossless
for f in f32 bf16 f16; do
	case $f in f32) in=$SRC ;; *) in=$WORK/$f.safetensors ;; esac
	cp "$in" "$M/$f.safetensors"
done
for f in f32 bf16 f16; do
	case $f in f32) in=$SRC ;; *) in=$WORK/$f.safetensors ;; esac
	wait_state "$M/$f.safetensors" compressed
	want=$(sha256sum < "$in") got=$(sha256sum < "$M/$f.safetensors")
	[ "$want" = "$got" ] || fail "$f: read through the mount differs from the original"
	orig=$(stat -c %s "$in") stored=$(stat -c %s "$B/$f.safetensors")
	[ "$stored" -lt "$orig" ] || fail "$f: payload of $stored bytes, original $orig"
	xattr_get "$M/$f.safetensors" user.lcpfs.inspect | "$PYTHON" -c '
import json, sys
r = json.load(sys.stdin)
bad = [t["name"] for t in r["tensors"] if t["encoding"] not in ("lossless", "exact")]
assert not bad, "quantized: %s" % bad
assert any(t["encoding"] == "lossless" for t in r["tensors"])' || fail "$f: inspect"
	say "$f: same sha256 through the mount, payload $stored of $orig bytes, no tensor quantized"
done
unmount_fs "$M" "$DAEMON_PID" || fail "unmount"

for f in f32 bf16 f16; do
	case $f in f32) in=$SRC ;; *) in=$WORK/$f.safetensors ;; esac
	timeout "$STEP_TIMEOUT" "$LCPFS" pack -o preset=lossless "$in" "$WORK/p-$f" > /dev/null || fail "pack $f"
	timeout "$STEP_TIMEOUT" "$LCPFS" unpack "$WORK/p-$f" "$WORK/u-$f" || fail "unpack $f"
	[ "$(sha256sum < "$in")" = "$(sha256sum < "$WORK/u-$f")" ] || fail "$f: pack/unpack changed bytes"
	timeout "$STEP_TIMEOUT" "$LCPFS" verify "$WORK/p-$f" > /dev/null || fail "verify $f"
done
timeout "$STEP_TIMEOUT" "$LCPFS" inspect "$WORK/p-bf16" | grep -q 'config: *lossless' ||
	fail "inspect does not name the lossless preset"
say "pack/unpack: same sha256 for F32, BF16, F16; verify passes"

# One flipped byte in the middle of the BF16 payload (inside a tensor).
"$PYTHON" -c 'import os, sys
p = sys.argv[1]; o = os.path.getsize(p) // 2
with open(p, "r+b") as f:
    f.seek(o); c = f.read(1); f.seek(o); f.write(bytes([c[0] ^ 0xff]))' "$WORK/p-bf16"
if timeout "$STEP_TIMEOUT" "$LCPFS" verify "$WORK/p-bf16" > "$WORK/verify.out" 2>&1; then
	fail "verify passed a damaged lossless payload"
fi
if timeout "$STEP_TIMEOUT" "$LCPFS" unpack "$WORK/p-bf16" "$WORK/u-damaged" 2> /dev/null; then
	fail "unpack gave bytes from a damaged lossless payload"
fi
say "a flipped payload byte: verify and unpack fail ($(head -n 1 "$WORK/verify.out"))"

# Default preset: the grids exact, with the reason, the weights 4-bit.
timeout "$STEP_TIMEOUT" "$LCPFS" pack "$WORK/pose.safetensors" "$WORK/p-pose" > /dev/null || fail "pack pose"
timeout "$STEP_TIMEOUT" "$LCPFS" inspect --json "$WORK/p-pose" | "$PYTHON" -c '
import json, sys
t = {x["name"]: x for x in json.load(sys.stdin)["tensors"]}
for g in ("grid_x", "grid_y"):
    assert t[g]["encoding"] == "lossless" and t[g]["note"] == "exact: no larger than 4-bit", t[g]
assert t["conv.weight"]["encoding"] == "q4", t["conv.weight"]' || fail "pose model: grids not exact or weights not 4-bit"
timeout "$STEP_TIMEOUT" "$LCPFS" unpack "$WORK/p-pose" "$WORK/u-pose" || fail "unpack pose"
"$PYTHON" - "$WORK/pose.safetensors" "$WORK/u-pose" <<'PY' || fail "pose grids changed"
import sys
a, b = open(sys.argv[1], "rb").read(), open(sys.argv[2], "rb").read()
# the grids are the first 2 * 64 * 64 * 2 bytes of the data section
import struct
n = struct.unpack_from("<Q", a)[0]
assert a[:8 + n + 16384] == b[:8 + n + 16384]
PY
say "default preset: coordinate grids exact with the reason, weights 4-bit"
