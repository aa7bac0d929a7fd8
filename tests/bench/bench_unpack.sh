#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Unpack benchmark (`make bench`, issue 10): on a >= 256 MiB F16 safetensors
# built from the real weights in ../shared/data (tests/bench/lib/tiled_model.py),
# times in one run, alternating, best of RUNS, inputs in the page cache:
#   - lcpfs unpack of its packed form (default preset), which writes the
#     reconstruction and fsyncs it;
#   - zstd -d of a zstd -1 copy of the same file, and the same followed by an
#     fsync of its output (sync FILE), the same work as unpack's.
# Target printed beside: unpack >= 1.0x zstd -d (without the fsync); and the
# default preset's bits per weight, everything stored (issue 12: <= 4.0).
set -eu
cd "$(dirname "$0")/../.."
: "${LCPFS:=build/lcpfs}"
: "${PYTHON:=/usr/bin/python3}"
SIZE_MIB=${BENCH_SIZE_MIB:-256}
RUNS=3

command -v zstd >/dev/null || { echo "SKIP: no zstd command"; exit 0; }
WORK=$(mktemp -d "${TMPDIR:-/tmp}/lcpfs-bench-unpack.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

now_ns() { date +%s%N; }
secs() { awk -v ns="$1" 'BEGIN { printf "%.3f", ns / 1e9 }'; }

echo "building a ${SIZE_MIB} MiB F16 safetensors from ../shared/data ..."
"$PYTHON" tests/bench/lib/tiled_model.py "$WORK/model.safetensors" "$SIZE_MIB"
BYTES=$(stat -c %s "$WORK/model.safetensors")
WEIGHTS=$("$PYTHON" -c 'import json, struct, sys
b = open(sys.argv[1], "rb").read(8); n = struct.unpack("<Q", b)[0]
h = json.loads(open(sys.argv[1], "rb").read(8 + n)[8:])
tot = 0
for k, v in h.items():
    if k != "__metadata__":
        c = 1
        for d in v["shape"]:
            c *= d
        tot += c
print(tot)' "$WORK/model.safetensors")
t0=$(now_ns)
"$LCPFS" pack "$WORK/model.safetensors" "$WORK/packed.safetensors" >/dev/null
pack_ns=$(( $(now_ns) - t0 ))
zstd -q -1 -f "$WORK/model.safetensors" -o "$WORK/model.zst"
rm "$WORK/model.safetensors"
stored=$(( $(stat -c %s "$WORK/packed.safetensors") + $(stat -c %s "$WORK/.packed.safetensors.lcpfs") ))
zbytes=$(stat -c %s "$WORK/model.zst")
# Warm the page cache with the inputs.
cat "$WORK/packed.safetensors" "$WORK/.packed.safetensors.lcpfs" "$WORK/model.zst" >/dev/null

best_u= best_z= best_zs=
for _ in $(seq $RUNS); do
	rm -f "$WORK/out.u" "$WORK/out.z"
	t0=$(now_ns); "$LCPFS" unpack "$WORK/packed.safetensors" "$WORK/out.u"; t=$(( $(now_ns) - t0 ))
	[ -z "$best_u" ] || [ "$t" -lt "$best_u" ] && best_u=$t
	rm -f "$WORK/out.u"
	t0=$(now_ns); zstd -q -d -f "$WORK/model.zst" -o "$WORK/out.z"; t=$(( $(now_ns) - t0 ))
	[ -z "$best_z" ] || [ "$t" -lt "$best_z" ] && best_z=$t
	rm -f "$WORK/out.z"
	t0=$(now_ns); zstd -q -d -f "$WORK/model.zst" -o "$WORK/out.z"; sync "$WORK/out.z"; t=$(( $(now_ns) - t0 ))
	[ -z "$best_zs" ] || [ "$t" -lt "$best_zs" ] && best_zs=$t
done

mib() { awk -v b="$1" -v ns="$2" 'BEGIN { printf "%.0f", b / 1048576 / (ns / 1e9) }'; }
echo "file: $BYTES bytes; lcpfs pack (default preset) $(secs "$pack_ns") s -> $stored bytes;" \
	"zstd -1 -> $zbytes bytes"
printf "%-32s %9s %10s\n" "command (best of $RUNS)" "seconds" "MiB/s out"
printf "%-32s %9s %10s\n" "lcpfs unpack" "$(secs "$best_u")" "$(mib "$BYTES" "$best_u")"
printf "%-32s %9s %10s\n" "zstd -d" "$(secs "$best_z")" "$(mib "$BYTES" "$best_z")"
printf "%-32s %9s %10s\n" "zstd -d, then sync FILE" "$(secs "$best_zs")" "$(mib "$BYTES" "$best_zs")"
ratio=$(awk -v a="$best_z" -v b="$best_u" 'BEGIN { printf "%.2f", a / b }')
ratio_s=$(awk -v a="$best_zs" -v b="$best_u" 'BEGIN { printf "%.2f", a / b }')
verdict=$(awk -v r="$ratio" 'BEGIN { print (r >= 1.0) ? "PASS" : "FAIL" }')
echo "$verdict lcpfs unpack ${ratio}x >= 1.0x zstd -d (${ratio_s}x zstd -d with the fsync unpack does)"
# Issue 12: the default preset on a file of large tensors, everything stored
# (payload, header bytes, sidecar) per weight.
bpw=$(awk -v s="$stored" -v w="$WEIGHTS" 'BEGIN { printf "%.3f", s * 8 / w }')
echo "$(awk -v b="$bpw" 'BEGIN { print (b <= 4.0) ? "PASS" : "MISS" }') default preset" \
	"$bpw bits/weight all-in (payload + sidecar, $WEIGHTS weights) <= 4.0"
