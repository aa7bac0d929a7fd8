#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# torch.load(weights_only=True) is the reference reader of PyTorch zips: no
# file it refuses may be taken by lcpfs as a PyTorch file with tensors.
# Saves a state dict with torch (F32, F16, BF16, int64, 1-D, a Parameter, a
# tied and a strided tensor), then writes seeded mutations of its data.pkl
# (byte changes, pickle opcodes inserted, globals renamed to allowed and
# refused names), each re-zipped with the same storages; asks torch, then
# `lcpfs inspect --json`. The verdicts come from torch alone.
set -u
cd "$(dirname "$0")/../.." || exit 2
: "${LCPFS:?}" "${PYTHON:=/usr/bin/python3}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$PYTHON" - "$work" <<'EOF' || exit 1
import io, random, sys, warnings, zipfile
import torch

out = sys.argv[1]
w = torch.arange(12, dtype=torch.float32).reshape(3, 4)
state = {"w": w, "h": torch.ones(2, 3, dtype=torch.float16), "b": torch.ones(2, 2, dtype=torch.bfloat16),
         "ids": torch.arange(4), "bias": torch.zeros(5), "p": torch.nn.Parameter(torch.zeros(2, 2)),
         "tied": w, "col": w[:, 1]}
buf = io.BytesIO()
torch.save(state, buf)
z = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
names = z.namelist()
entries = {n: z.read(n) for n in names}
pkl_name = [n for n in names if n.endswith("/data.pkl")][0]
pkl = entries[pkl_name]

rng = random.Random(20261202)
opcodes = b"()}]NKJMXUtqrhjQRbsua.\x80\x81\x85\x86\x87\x88\x89\x8a\x8f" + b"02dl\x8c\x93\x94\x95Gc"
swaps = [(b"FloatStorage", b"FloatStoragf"), (b"FloatStorage", b"FlxatStorage"), (b"FloatStorage", b"QInt8Storage"),
         (b"FloatStorage", b"LongStorage"), (b"_rebuild_tensor_v2", b"_rebuild_tensor_v3"),
         (b"_rebuild_tensor_v2", b"_rebuild_qtensor\x00\x00"), (b"collections\nOrderedDict", b"collections\nOrderedDicx"),
         (b"torch._utils", b"torch._utilz"), (b"_rebuild_parameter", b"_rebuild_parametex")]
mutants = [pkl.replace(a, b, 1) for a, b in swaps]
for _ in range(700):
    p = bytearray(pkl)
    for _ in range(rng.randint(1, 3)):
        at = rng.randrange(len(p))
        op = rng.randrange(4)
        if op == 0:
            p[at] = rng.randrange(256)
        elif op == 1:
            p[at] = rng.choice(opcodes)
        elif op == 2:
            p.insert(at, rng.choice(opcodes))
        else:
            del p[at]
    mutants.append(bytes(p))

with open(out + "/list", "w") as lst:
    for i, m in enumerate(mutants):
        path = "%s/%04d.pt" % (out, i)
        with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as o:
            for n in names:
                o.writestr(n, m if n == pkl_name else entries[n])
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.load(path, weights_only=True)
            verdict = "accept"
        except Exception:
            verdict = "refuse"
        lst.write("%s %s\n" % (path, verdict))
EOF

total=0 refused=0 accepted_by_both=0 bad=0
while read -r path verdict; do
	total=$((total + 1))
	json=$("$LCPFS" inspect --json "$path") || { echo "inspect failed on $path"; exit 1; }
	taken=no
	case $json in *'"format":"pytorch"'*'"tensors":[{'*) taken=yes ;; esac
	if [ "$verdict" = refuse ]; then
		refused=$((refused + 1))
		if [ $taken = yes ]; then
			echo "taken as PyTorch, torch.load(weights_only=True) refuses it: $path"
			cp "$path" "/tmp/lcpfs-torch-mismatch-$(basename "$path")"
			bad=$((bad + 1))
		fi
	elif [ $taken = yes ]; then
		accepted_by_both=$((accepted_by_both + 1))
	fi
done < "$work/list"
echo "torch conformance: $total files, $refused refused by torch, $bad of those taken by lcpfs;" \
	"$accepted_by_both taken by both"
[ "$refused" -gt 100 ] || { echo "too few refused files: the generator is broken"; exit 1; }
[ "$accepted_by_both" -gt 10 ] || { echo "too few files taken by both: lcpfs refuses what torch reads"; exit 1; }
[ "$bad" -eq 0 ]
