#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# numpy is the reference reader of .npy files: no file numpy.load refuses may
# be taken by lcpfs as a NumPy tensor file (issue 8, item 12: a NUL inside
# descr was). Writes hand-picked header variants and seeded random mutations
# of valid headers (NUL, control and non-ASCII bytes, quotes, digits, dtype
# letters, brackets), each with data sized by a lenient reading of its shape
# and descr; asks numpy.load, then `lcpfs inspect --json` (a file taken as
# NumPy lists its array as a tensor). The verdicts come from numpy alone.
set -u
cd "$(dirname "$0")/../.." || exit 2
: "${LCPFS:?}" "${PYTHON:=/usr/bin/python3}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$PYTHON" - "$work" <<'EOF' || exit 1
import random, re, struct, sys, warnings
import numpy as np

out = sys.argv[1]
base = ["{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }",
        "{'descr': '<f2', 'fortran_order': True, 'shape': (4, 2), }",
        "{'descr': '<M8[ns]', 'fortran_order': False, 'shape': (3,), }",
        "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 8), }"]
fixed = [h.replace("'<f4'", d) for h in base[:1] for d in
         ["'<f4\0'", "'<f4\\x00'", "'<f3'", "'<i3'", "'<b2'", "'<c4'", "'<M4'", "'<M8[foo]'", "'<f4\\t'",
          "' <f4'", "''", "'<f16'", "'<U2'", "'|S3'", "'>b1'", "'<M8[D]x'", "'<V4'"]]
fixed += [base[0].replace("'descr'", "'descr\0'")]
fixed += [base[0].replace("(2, 3)", s) for s in ["(02, 3)", "(2L, 3)", "(00, 3)", "(2, 3", "(2,, 3)", "(-2, 3)"]]
rng = random.Random(20261202)
alphabet = "\0\t\n\r\x0b\x0c \x7f\xe9'\"0123456789LfiubcMmUSV<>|=[](),:{}_ "
mutants = []
for _ in range(600):
    h = list(rng.choice(base))
    for _ in range(rng.randint(1, 3)):
        at = rng.randrange(len(h))
        op = rng.randrange(3)
        c = rng.choice(alphabet)
        if op == 0:
            h[at] = c
        elif op == 1:
            h.insert(at, c)
        else:
            del h[at]
    mutants.append("".join(h))

def lenient_size(h):
    """Bytes of data the header seems to ask for, read generously."""
    m = re.search(r"descr'?\"?\s*:\s*['\"][<>|=]?([a-zA-Z])(\d+)", h)
    item = int(m.group(2)) * (4 if m.group(1) == "U" else 1) if m else 4
    s = re.search(r"shape'?\"?\s*:\s*\(([^)]*)\)", h)
    n = 1
    for d in re.findall(r"\d+", s.group(1)) if s else []:
        n *= int(d)
    return min(item * n, 1 << 16)

with open(out + "/list", "w") as lst:
    for i, h in enumerate(fixed + mutants):
        hb = h.encode("latin1")
        hb += b" " * ((64 - (10 + len(hb) + 1) % 64) % 64) + b"\n"
        path = "%s/%04d.npy" % (out, i)
        with open(path, "wb") as f:
            f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(hb)) + hb + bytes(lenient_size(h)))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                np.load(path, allow_pickle=False)
            verdict = "accept"
        except Exception as e:
            verdict = "refuse"
        lst.write("%s %s %r\n" % (path, verdict, h))
EOF

total=0 numpy_refused=0 bad=0
while read -r path verdict header; do
	total=$((total + 1))
	[ "$verdict" = refuse ] || continue
	numpy_refused=$((numpy_refused + 1))
	json=$("$LCPFS" inspect --json "$path") || { echo "inspect failed on $path"; exit 1; }
	case $json in
	*'"format":"numpy"'*'"tensors":[{'*)
		echo "taken as NumPy, numpy.load refuses it: $header"
		bad=$((bad + 1))
		;;
	esac
done < "$work/list"
echo "numpy conformance: $total headers, $numpy_refused refused by numpy, $bad of those taken by lcpfs"
[ "$numpy_refused" -gt 50 ] || { echo "too few refused headers: the generator is broken"; exit 1; }
[ "$bad" -eq 0 ]
