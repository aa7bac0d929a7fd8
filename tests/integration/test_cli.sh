#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The offline tool on every format, checked with independent readers
# (tests/tools/readers.py: numpy-only safetensors/GGUF/npy readers, torch for
# .pt): pack -> unpack -> same size, header bytes, names, shapes, dtypes and
# offsets; tensors within the quality floor; exact tensors byte-identical;
# torch.load accepts the unpacked .pt; malformed files and a plain zip are
# stored as they came; one damaged payload or sidecar byte makes verify and
# unpack fail; every form of the encoder's search packs the same bytes. Prints
# `lcpfs inspect` of each packed file (ratios per format).
set -u
cd "$(dirname "$0")/../.." || exit 2
: "${LCPFS:?set LCPFS to the lcpfs binary}"
: "${PYTHON:=/usr/bin/python3}"
# The balanced preset's cosine floor (the default config): every tensor the
# codec kept lossy must reach it, as measured by an independent reader.
MIN_COSINE=0.97

W=$(mktemp -d /tmp/lcpfs-test-cli.XXXXXX)
trap 'rm -rf "$W"' EXIT
fail=0
bad() { echo "FAIL: $*"; fail=1; }

"$PYTHON" tests/tools/make_test_files.py "$W/src" > /dev/null || { echo "make_test_files failed"; exit 1; }
mkdir -p "$W/packed" "$W/out"

"$LCPFS" --version | grep -q '^lcpfs ' || bad "--version"
"$LCPFS" --help | grep -q 'lcpfs pack' || bad "--help"
"$LCPFS" pack -o bits=5 "$W/src/npy_v1_c_f4.npy" "$W/packed/x" 2> /dev/null && bad "bits=5 accepted"

# checks.py MANIFEST SRC PACKED OUT FILE: compares one file with the readers.
cat > "$W/check.py" <<'PY'
import json, os, subprocess, sys
sys.path.insert(0, "tests/tools")
import readers
man, src, out, name, lcpfs, min_cos = sys.argv[1:7]
entry = [e for e in json.load(open(man))["files"] if e["file"] == name][0]
a, b = os.path.join(src, name), os.path.join(out, name)
ok = True
def bad(msg):
    global ok
    print("FAIL %s: %s" % (name, msg)); ok = False
da, db = open(a, "rb").read(), open(b, "rb").read()
if len(da) != len(db):
    bad("size %d vs %d" % (len(da), len(db)))
if entry["expect"] != "valid":
    if da != db:
        bad("malformed input not byte-identical")
    sys.exit(0 if ok else 1)
desc_a, desc_b = readers.describe(a), readers.describe(b)
if entry["format"] == "pytorch":
    # CRC fields are patched to the reconstructed bytes: compare the rest,
    # and let zipfile check every CRC against the entry's bytes.
    import zipfile
    for t in desc_a["tensors"] + desc_b["tensors"]:
        t.pop("crc", None)
    if zipfile.ZipFile(b).testzip() is not None:
        bad("zip CRC-32 does not match the unpacked bytes")
if desc_a != desc_b:
    bad("reader sees different structure")
hb = desc_a.get("header_bytes")
if isinstance(hb, int) and da[:hb] != db[:hb]:
    bad("header bytes differ")
rep = json.loads(subprocess.check_output([lcpfs, "inspect", "--json", os.path.join(os.path.dirname(out), "packed", name)]))
enc = {t["name"]: t["encoding"] for t in rep["tensors"]}
for t in desc_a["tensors"]:
    if enc.get(t["name"], "exact") == "exact" and "offset" in t and "nbytes" in t:
        o, n = t["offset"], t["nbytes"]
        if da[o:o + n] != db[o:o + n]:
            bad("exact tensor %s differs" % t["name"])
# Quality: identical values (NaN where NaN: non-finite tensors are stored
# lossless) or cosine >= the floor, measured in float64 on what the
# independent reader loads.
import numpy as np
la, lb = readers.load(a), readers.load(b)
if sorted(la) != sorted(lb):
    bad("tensor names differ")
for k in sorted(la):
    (dta, xa), (dtb, xb) = la[k], lb[k]
    if dta != dtb or xa.shape != xb.shape:
        bad("%s: dtype/shape %s %s vs %s %s" % (k, dta, xa.shape, dtb, xb.shape))
        continue
    fa, fb = xa.reshape(-1).astype(np.float64), xb.reshape(-1).astype(np.float64)
    if np.array_equal(fa, fb, equal_nan=True):
        print("%s %s %s identical" % (k, dta, list(xa.shape)))
        continue
    na, nb = np.linalg.norm(fa), np.linalg.norm(fb)
    cos = float(np.dot(fa, fb) / (na * nb)) if na > 0 and nb > 0 else 0.0
    flag = "" if np.isfinite(cos) and cos >= float(min_cos) else "  FAIL"
    print("%s %s %s cosine=%.6f%s" % (k, dta, list(xa.shape), cos, flag))
    if flag:
        bad("%s under the quality floor" % k)
if entry["format"] == "pytorch":
    import torch
    ta, tb = torch.load(a), torch.load(b)
    if sorted(ta) != sorted(tb) or any(ta[k].shape != tb[k].shape or ta[k].dtype != tb[k].dtype for k in ta):
        bad("torch.load sees different tensors")
sys.exit(0 if ok else 1)
PY

for f in $("$PYTHON" -c 'import json,sys; print(" ".join(e["file"] for e in json.load(open(sys.argv[1]))["files"]))' "$W/src/manifest.json"); do
	expect=$("$PYTHON" -c 'import json,sys; print([e["expect"] for e in json.load(open(sys.argv[1]))["files"] if e["file"] == sys.argv[2]][0])' "$W/src/manifest.json" "$f")
	echo "== $f ($expect)"
	"$LCPFS" pack "$W/src/$f" "$W/packed/$f" || { bad "$f: pack exit $?"; continue; }
	if [ "$expect" = valid ]; then
		# The real-weight files must compress; edge-case files may
		# legitimately stay raw (their reason is printed above).
		case $f in
		stories*|faceres*|npy_v[123]_[cf]_*)
			[ -e "$W/packed/.$f.lcpfs" ] || bad "$f: valid tensor file not compressed" ;;
		esac
		"$LCPFS" verify "$W/packed/$f" > /dev/null || bad "$f: verify of an intact file failed"
	else
		[ -e "$W/packed/.$f.lcpfs" ] && bad "$f: malformed file got a sidecar"
	fi
	"$LCPFS" inspect "$W/packed/$f"
	"$LCPFS" unpack "$W/packed/$f" "$W/out/$f" || { bad "$f: unpack exit $?"; continue; }
	"$PYTHON" "$W/check.py" "$W/src/manifest.json" "$W/src" "$W/out" "$f" "$LCPFS" "$MIN_COSINE" \
		> "$W/check.log" 2>&1 || bad "$f: reader checks"
	sed 's/^/  reader: /' "$W/check.log"
done

# A zip that is not a PyTorch file is left alone.
grep -q 'stored as a plain copy' <("$LCPFS" pack "$W/src/bad_nopkl.zip" "$W/packed/z.zip") || bad "plain zip not left alone"
cmp -s "$W/src/bad_nopkl.zip" "$W/packed/z.zip" || bad "plain zip changed"

# Every form of the encoder's Viterbi search (LCPFS_DQ_SEARCH; a form this
# CPU lacks falls back to the fastest) writes the same payload bytes as the
# plain-C one past the 32-byte header (its file id is random), and the file
# unpacks to the same bytes: the payload never depends on the CPU.
mkdir -p "$W/dq"
for src in "$W"/src/stories*.safetensors "$W"/src/faceres*.safetensors; do
	f=$(basename "$src")
	LCPFS_DQ_SEARCH=scalar "$LCPFS" pack "$src" "$W/dq/scalar-$f" > /dev/null || bad "$f: scalar pack"
	[ -e "$W/dq/.scalar-$f.lcpfs" ] || bad "$f: not compressed by the scalar search"
	"$LCPFS" unpack "$W/dq/scalar-$f" "$W/dq/scalar-$f.out" || bad "$f: scalar unpack"
	for form in sse2 avx2 avx512; do
		LCPFS_DQ_SEARCH=$form "$LCPFS" pack "$src" "$W/dq/$form-$f" > /dev/null || bad "$f: $form pack"
		cmp -s -i 32 "$W/dq/scalar-$f" "$W/dq/$form-$f" || bad "$f: $form search, payload differs from scalar"
		"$LCPFS" unpack "$W/dq/$form-$f" "$W/dq/$form-$f.out" || bad "$f: $form unpack"
		cmp -s "$W/dq/scalar-$f.out" "$W/dq/$form-$f.out" || bad "$f: $form search, unpacks differently"
	done
done

# Damage: one payload byte, then one sidecar byte.
flip() { # flip FILE OFFSET
	"$PYTHON" -c 'import sys
p, o = sys.argv[1], int(sys.argv[2])
with open(p, "r+b") as f:
    f.seek(o); b = f.read(1); f.seek(o); f.write(bytes([b[0] ^ 0x5a]))' "$1" "$2"
}
d=stories_f16.safetensors
cp "$W/packed/$d" "$W/packed/.$d.lcpfs" "$W/" 2> /dev/null
size=$(stat -c %s "$W/packed/$d")
flip "$W/packed/$d" $((size / 2))
"$LCPFS" verify "$W/packed/$d" && bad "verify passed a damaged payload"
"$LCPFS" verify "$W/packed/$d" | grep -q "DAMAGED: tensor '" || bad "verify does not name the damaged tensor"
"$LCPFS" unpack "$W/packed/$d" "$W/out/damaged" && bad "unpack of a damaged payload succeeded"
[ -e "$W/out/damaged" ] && bad "unpack left bytes of a damaged file"
flip "$W/packed/$d" $((size / 2))
"$LCPFS" verify "$W/packed/$d" > /dev/null || bad "verify after restoring the payload"
ssize=$(stat -c %s "$W/packed/.$d.lcpfs")
flip "$W/packed/.$d.lcpfs" $((ssize / 2))
"$LCPFS" verify "$W/packed/$d" && bad "verify passed a damaged sidecar"
"$LCPFS" unpack "$W/packed/$d" "$W/out/damaged" && bad "unpack with a damaged sidecar succeeded"

# The store's own names cannot be a destination.
if "$LCPFS" pack "$W/src/npy_v1_c_f4.npy" "$W/.reserved.lcpfs" 2>/dev/null; then
	bad "pack accepted a reserved sidecar name as DST"
fi

# A missing path is an error, not damage.
if out=$("$LCPFS" verify "$W/no-such-file" 2>&1); then
	bad "verify of a missing file exited 0"
elif echo "$out" | grep -q DAMAGED; then
	bad "verify calls a missing file damaged: $out"
fi

if [ $fail -ne 0 ]; then
	echo "test_cli: FAILED"
	exit 1
fi
echo "test_cli: all checks passed"
