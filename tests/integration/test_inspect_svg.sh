#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `lcpfs inspect --svg`: the picture is well-formed, self-contained SVG (no
# script, no external reference), names every tensor (exact ones included),
# and a real renderer (rsvg-convert, Debian librsvg2-bin) draws it as a
# non-blank PNG with bars in the colours of the encodings chosen. Covers a
# compressed file, a raw one, an 8-bit one, a file with more tensors than
# rows (grouped by name pattern), names that need XML escaping, and
# standard output. The blank-page check is itself checked on a blank SVG.
set -u
cd "$(dirname "$0")/../.." || exit 2
: "${LCPFS:?set LCPFS to the lcpfs binary}"
: "${PYTHON:=/usr/bin/python3}"
SRC=tests/data/llama2c-stories260K.safetensors
CNN=tests/data/faceres-subset.safetensors
PIX="$PYTHON tests/tools/png_pixels.py"
# Colours of the encodings (src/cli/cli_svg.c): the bars must show them.
Q4='#3b6fd4' Q8='#2e9e5b' EXACT='#8c8c8c'
LEGEND_SWATCH_PX=168 # 14 x 12: a colour seen no more than this is only in the legend
W=$(mktemp -d "${TMPDIR:-/tmp}/lcpfs-svg.XXXXXX")
trap 'rm -rf "$W"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
command -v rsvg-convert > /dev/null || fail "rsvg-convert is missing (scripts/install-deps.sh installs librsvg2-bin)"

# check_svg SVG TENSOR_FILE: well-formed, self-contained, every tensor named.
check_svg() {
	"$PYTHON" - "$1" "$2" <<'PY'
import json, re, struct, sys
import xml.etree.ElementTree as ET
svg, src = sys.argv[1:]
text = open(svg, encoding="utf-8").read()
root = ET.fromstring(text)  # raises on malformed XML
assert root.tag == "{http://www.w3.org/2000/svg}svg", root.tag
for bad in ("<script", "href", "@import", "<image", "<foreignObject"):
    assert bad not in text, "not self-contained: %s" % bad
for ref in re.findall(r"url\(([^)]*)\)", text):
    assert ref.startswith("#"), "external reference url(%s)" % ref
b = open(src, "rb").read()
n = struct.unpack_from("<Q", b)[0]
names = [k for k in json.loads(b[8:8 + n]) if k != "__metadata__"]
strings = "\n".join(el.text or "" for el in root.iter())
missing = [k for k in names if k not in strings]
assert not missing, "tensors missing from the SVG: %s" % missing[:5]
print("%s: well-formed, self-contained, all %d tensors named" % (svg.split("/")[-1], len(names)))
PY
}
# render SVG PNG: rsvg-convert, then prints the pixel counts as JSON.
render() {
	rsvg-convert -o "$2" "$1" || fail "rsvg-convert $1"
	$PIX "$2" "$Q4" "$Q8" "$EXACT" || fail "png_pixels $2"
}
# expect_ink JSON MIN_SHARE [COLOUR MIN_PX]...: enough drawn pixels, and of
# each colour more than the legend alone has.
expect_ink() {
	"$PYTHON" - "$@" <<'PY'
import json, sys
r, share = json.loads(sys.argv[1]), float(sys.argv[2])
assert r["ink"] >= share * r["width"] * r["height"], "nearly blank: %r" % r
pairs = sys.argv[3:]
for colour, least in zip(pairs[::2], pairs[1::2]):
    assert r["colours"][colour] > int(least), "too few %s pixels: %r" % (colour, r)
PY
}

# The checker sees a blank page as blank.
printf '<svg xmlns="http://www.w3.org/2000/svg" width="200" height="100"><rect width="200" height="100" fill="#fff"/></svg>\n' > "$W/blank.svg"
out=$(render "$W/blank.svg" "$W/blank.png")
if expect_ink "$out" 0.01 2> /dev/null; then fail "a blank picture passed the ink check: $out"; fi
echo "ok: a blank page is recognised as blank ($out)"

# A compressed file: q4 bars, exact rows (norms, RoPE tables) drawn too.
"$LCPFS" pack "$SRC" "$W/m.safetensors" > /dev/null || fail "pack"
"$LCPFS" inspect --svg "$W/m.svg" "$W/m.safetensors" > "$W/out" || fail "inspect --svg: exit $?"
[ ! -s "$W/out" ] || fail "inspect --svg printed on stdout: $(head -3 "$W/out")"
check_svg "$W/m.svg" "$SRC" || fail "compressed file's SVG"
grep -q 'class="enc" fill="[^"]*">exact<' "$W/m.svg" || fail "no tensor marked exact"
grep -q 'class="enc" fill="[^"]*">q4<' "$W/m.svg" || fail "no tensor marked q4"
out=$(render "$W/m.svg" "$W/m.png")
expect_ink "$out" 0.05 "$Q4" 5000 "$EXACT" 5000 || fail "compressed file's picture: $out"
echo "ok: compressed: $out"

# The 8-bit preset on the CNN: q8 bars.
"$LCPFS" pack -o preset=quality "$CNN" "$W/c.safetensors" > /dev/null || fail "pack quality"
"$LCPFS" inspect --svg "$W/c.svg" "$W/c.safetensors" || fail "inspect --svg (quality)"
check_svg "$W/c.svg" "$CNN" || fail "8-bit file's SVG"
out=$(render "$W/c.svg" "$W/c.png")
expect_ink "$out" 0.05 "$Q8" "$LEGEND_SWATCH_PX" || fail "8-bit file's picture: $out"
echo "ok: 8-bit: $out"

# A raw file: every tensor exact, nothing quantized.
"$LCPFS" inspect --svg "$W/raw.svg" "$SRC" || fail "inspect --svg of a raw file"
check_svg "$W/raw.svg" "$SRC" || fail "raw file's SVG"
grep -q 'class="enc" fill="[^"]*">q4<' "$W/raw.svg" && fail "a raw file shows a q4 tensor"
out=$(render "$W/raw.svg" "$W/raw.png")
expect_ink "$out" 0.05 "$EXACT" 5000 || fail "raw file's picture: $out"
echo "ok: raw: $out"

# More tensors than rows: one row per name pattern, still every name.
"$PYTHON" tests/tools/tile_model.py "$W/big.safetensors" 16 "$SRC" "$CNN" || fail "tile_model"
"$LCPFS" pack "$W/big.safetensors" "$W/bigp.safetensors" > /dev/null || fail "pack big"
"$LCPFS" inspect --svg "$W/big.svg" "$W/bigp.safetensors" || fail "inspect --svg (big)"
check_svg "$W/big.svg" "$W/big.safetensors" || fail "big file's SVG"
grep -q 'One row per name pattern' "$W/big.svg" || fail "big file not grouped"
out=$(render "$W/big.svg" "$W/big.png")
expect_ink "$out" 0.05 "$Q4" 2000 || fail "big file's picture: $out"
"$PYTHON" -c 'import json,sys; r=json.loads(sys.argv[1]); assert r["height"] < 1200, r' "$out" ||
	fail "grouped picture too tall: $out"
echo "ok: grouped: $out"

# Names that need escaping, and bytes that are not UTF-8, stay well-formed.
"$PYTHON" - "$W/odd.safetensors" <<'PY'
import json, struct, sys
import numpy as np
a = (np.arange(4096, dtype="<f4") % 37 - 18) / 50
names = ['a<b>&"c\'', "caf\u00e9 \u2192 w", "plain.weight"]
hdr, off = {}, 0
for nm in names:
    hdr[nm] = {"dtype": "F32", "shape": [64, 64], "data_offsets": [off, off + a.nbytes]}
    off += a.nbytes
h = json.dumps(hdr, ensure_ascii=False).encode()
h += b" " * (-len(h) % 8)
open(sys.argv[1], "wb").write(struct.pack("<Q", len(h)) + h + a.tobytes() * len(names))
PY
"$LCPFS" inspect --svg - "$W/odd.safetensors" > "$W/odd.svg" || fail "inspect --svg - (stdout)"
check_svg "$W/odd.svg" "$W/odd.safetensors" || fail "escaped names"
rsvg-convert -o "$W/odd.png" "$W/odd.svg" || fail "rsvg-convert of escaped names"
echo "ok: names with markup characters and UTF-8, written to standard output"

if "$LCPFS" inspect --svg "$W/no/such/dir/x.svg" "$W/m.safetensors" 2> "$W/err"; then
	fail "inspect --svg into a missing directory succeeded"
fi
grep -q 'No such file' "$W/err" || fail "unwritable picture: $(cat "$W/err")"
echo "ok: an unwritable picture path fails with the error"
echo "inspect --svg: all checks passed"
