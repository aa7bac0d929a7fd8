#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Sparse files stay sparse, and a huge tensor is packed in bounded memory:
#   - `lcpfs pack` of a 1 GiB BF16 safetensors made with truncate (holes
#     but for its first 2 MiB, so that it is worth compressing; lossless,
#     so that bytes compare) never reads the holes as data: peak RSS under
#     700 MiB (the issue's bound; the old pack held the tensor several
#     times over) and a small payload;
#   - `lcpfs unpack` of it writes a sparse file (few blocks) with the same
#     bytes; a sparse file that is not a tensor file is stored as a sparse
#     plain copy;
#   - materializing it through a mount (first write) leaves a sparse raw
#     file on the backing, and it compresses again after the close.
set -eu
cd "$(dirname "$0")/../.."
. tests/integration/fsx/mount_lib.sh

RSS_LIMIT_KIB=$((700 * 1024))
MAX_SPARSE_KIB=4096 # allocated size of a file that must be (nearly) all holes
COMMIT_TIMEOUT=120

# sparse_st PATH ROWS COLS [DATA_MIB]: a safetensors file with one BF16
# [ROWS, COLS] tensor whose data are a hole but for its first DATA_MIB MiB.
sparse_st() { "$PYTHON" tests/tools/sparse_model.py "$@"; }
alloc_kib() { echo $(( $(stat -c %b "$1") * $(stat -c %B "$1") / 1024 )); }

S=$WORK/src
mkdir -p "$S"
sparse_st "$S/big.safetensors" 32768 16384 2
size=$(stat -c %s "$S/big.safetensors")
[ "$size" -gt $((1 << 30)) ] || fail "test file too small: $size"

/usr/bin/time -f %M -o "$WORK/rss" "$LCPFS" pack -o preset=lossless "$S/big.safetensors" "$S/packed.safetensors" ||
	fail "pack failed"
rss=$(tail -n 1 "$WORK/rss")
[ "$rss" -le "$RSS_LIMIT_KIB" ] || fail "pack peak RSS $rss KiB > $RSS_LIMIT_KIB KiB"
stored=$(( $(stat -c %s "$S/packed.safetensors") + $(stat -c %s "$S/.packed.safetensors.lcpfs") ))
[ "$stored" -lt $((16 << 20)) ] || fail "a 1 GiB hole stored in $stored bytes"
"$LCPFS" verify "$S/packed.safetensors" > /dev/null || fail "verify"
say "pack of a 1 GiB sparse BF16 tensor: peak RSS $rss KiB, stored $stored bytes"

"$LCPFS" unpack "$S/packed.safetensors" "$S/unpacked.safetensors" || fail "unpack failed"
[ "$(stat -c %s "$S/unpacked.safetensors")" = "$size" ] || fail "unpacked size"
kib=$(alloc_kib "$S/unpacked.safetensors")
[ "$kib" -le "$MAX_SPARSE_KIB" ] || fail "unpacked file allocates $kib KiB: not sparse"
cmp "$S/unpacked.safetensors" "$S/big.safetensors" || fail "unpacked bytes differ"
say "unpack is sparse ($kib KiB allocated) and byte-identical"

# Not a tensor file (no header): stored as a plain copy, holes kept.
truncate -s 256M "$S/holes.bin"
printf 'not a header' | dd of="$S/holes.bin" conv=notrunc status=none
out=$("$LCPFS" pack "$S/holes.bin" "$S/copy.bin") || fail "pack of a non-tensor file failed"
echo "$out" | grep -q "plain copy" || fail "not a plain copy: $out"
kib=$(alloc_kib "$S/copy.bin")
[ "$kib" -le "$MAX_SPARSE_KIB" ] || fail "plain copy allocates $kib KiB: not sparse"
cmp "$S/copy.bin" "$S/holes.bin" || fail "plain copy differs"
say "a sparse plain copy stays sparse ($kib KiB allocated)"

# Materialized through a mount: sparse on the backing, then packed again.
B=$WORK/backing M=$WORK/mnt
mkdir -p "$B" "$M"
"$LCPFS" pack -o preset=lossless "$S/big.safetensors" "$B/big.safetensors" > /dev/null ||
	fail "pack into backing"
mount_fs "$B" "$M" -o preset=lossless
state_is "$M/big.safetensors" compressed || fail "not compressed in the mount"
"$PYTHON" - "$M/big.safetensors" "$B/big.safetensors" "$MAX_SPARSE_KIB" <<'PY' || fail "materialize"
import os, sys
mnt, backing, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
fd = os.open(mnt, os.O_RDWR)
os.pwrite(fd, b"\0", 512 << 20)  # a zero over a zero (a hole): same bytes, now raw
os.fsync(fd)
st = os.stat(backing)  # the writer is open: no recompression yet
kib = st.st_blocks * 512 // 1024
os.close(fd)
if kib > limit:
	sys.exit("materialized file allocates %d KiB: not sparse" % kib)
print("ok: materialized through the mount: %d KiB allocated" % kib)
PY
wait_state "$M/big.safetensors" compressed
cmp "$M/big.safetensors" "$S/big.safetensors" || fail "bytes changed through materialize and repack"
say "compressed again after the close, same bytes"
unmount_fs "$M" "$DAEMON_PID" || fail "unmount"
echo "sparse: all checks passed"
