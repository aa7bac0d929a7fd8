#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The model-level check itself (tests/tools/llama2c_model.py), which other
# tests trust: the vendored stories260K weights reproduce llama2.c's greedy
# text and agree with themselves (kld 0, top1 1); a damaged copy (one layer's
# query matrix negated) is caught (greedy text changes, kld well above 0).
set -eu
cd "$(dirname "$0")/../.."
: "${PYTHON:=/usr/bin/python3}"
MODEL=tests/data/llama2c-stories260K.safetensors
TOOL=tests/tools/llama2c_model.py
# A broken attention layer costs far more than this; 8-bit rounding far less.
MIN_DAMAGE_KLD=0.05
W=$(mktemp -d "${TMPDIR:-/tmp}/lcpfs-model.XXXXXX")
trap 'rm -rf "$W"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

out=$("$PYTHON" "$TOOL" "$MODEL" "$MODEL") || fail "$TOOL on the original weights"
echo "original: $out"
"$PYTHON" - "$out" <<'PY' || fail "original weights"
import json, sys
r = json.loads(sys.argv[1])
assert r["greedy_matches_expected"], "greedy text differs from llama2.c's"
assert r["kld"] == 0.0 and r["top1"] == 1.0 and r["greedy_same"], r
assert 900 < r["tokens"] < 1000, "the evaluation text should be about 940 tokens: %d" % r["tokens"]
assert 1.0 < r["ppl"] < 20.0, "implausible perplexity %g" % r["ppl"]
PY

"$PYTHON" - "$MODEL" "$W/damaged.safetensors" <<'PY'
import json, struct, sys
import numpy as np
src, dst = sys.argv[1:]
b = bytearray(open(src, "rb").read())
n = struct.unpack_from("<Q", b)[0]
info = json.loads(b[8:8 + n])["layers.2.attention.wq.weight"]
s, e = info["data_offsets"]
w = np.frombuffer(bytes(b[8 + n + s:8 + n + e]), "<f4")
b[8 + n + s:8 + n + e] = (-w).astype("<f4").tobytes()
open(dst, "wb").write(b)
PY
out=$("$PYTHON" "$TOOL" "$W/damaged.safetensors" "$MODEL") || fail "$TOOL on the damaged weights"
echo "damaged: $out"
"$PYTHON" - "$out" "$MIN_DAMAGE_KLD" <<'PY' || fail "damage not detected"
import json, sys
r, floor = json.loads(sys.argv[1]), float(sys.argv[2])
assert not r["greedy_same"], "greedy text unchanged"
assert r["kld"] > floor, "kld %g" % r["kld"]
assert r["top1"] < 1.0 and r["ppl_delta_pct"] > 0, r
PY
echo "model check: all checks passed"
