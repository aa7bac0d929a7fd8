#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Mount benchmark (`make bench`): on a >= 256 MiB F16 safetensors built by
# tiling the real weights in ../shared/data, measures in one run
#   - cp-to-commit throughput (cp into the mount until user.lcpfs.state is
#     compressed),
#   - cold sequential, random 4 KiB and random 128 KiB reads of the compressed
#     file through the mount, of the same bytes kept raw through a second mount
#     (min_size above the file size), and of the raw file read directly,
#   - re-read from the page cache, and the daemon's peak RSS (VmHWM).
# Cold means: kernel caches dropped, and the compressed mount remounted so the
# daemon's chunk cache is empty too. Targets printed beside: compressed cold
# sequential >= 0.7x raw-through-mount; re-read from cache >= 4 GiB/s.
set -eu
cd "$(dirname "$0")/../.."
. tests/integration/fsx/mount_lib.sh

SIZE_MIB=${BENCH_SIZE_MIB:-256}
COMMIT_TIMEOUT=${BENCH_COMMIT_TIMEOUT:-3600} # seconds: encoding 256 MiB on 2 shared cores
RAND4K_N=2000
RAND128K_N=400

echo "building a ${SIZE_MIB} MiB F16 safetensors from ../shared/data ..."
"$PYTHON" - "$WORK/model.safetensors" "$SIZE_MIB" <<'PY'
import json, struct, sys
import numpy as np
out, size_mib = sys.argv[1], int(sys.argv[2])
def tensors(path):
	b = open(path, "rb").read()
	n = struct.unpack_from("<Q", b)[0]
	h = json.loads(b[8:8 + n]); h.pop("__metadata__", None)
	for k, v in sorted(h.items()):
		if v["dtype"] not in ("F32", "F16") or len(v["shape"]) != 2:
			continue
		s, e = v["data_offsets"]
		dt = np.float32 if v["dtype"] == "F32" else np.float16
		yield np.frombuffer(b[8 + n + s:8 + n + e], dtype=dt).reshape(v["shape"]).astype(np.float16)
pool = list(tensors("../shared/data/human-faceres-deep.safetensors")) + \
	list(tensors("../shared/data/llama2c-stories260K.safetensors"))
# Real weights, tiled into 1024 x 4096 layers (8 MiB each in F16): each layer
# is rows taken from the pool's matrices in turn, so value statistics stay
# those of trained weights.
flat = np.concatenate([t.reshape(-1) for t in pool])
rows, cols = 1024, 4096
per = rows * cols
nlayers = size_mib * (1 << 20) // (per * 2)
header, blobs, off = {}, [], 0
for i in range(nlayers):
	start = (i * 7919 * cols) % max(1, flat.size - per)
	w = flat[start:start + per]
	if w.size < per:
		w = np.resize(flat, per)
	blobs.append(w.astype("<f2").tobytes())
	header["layers.%d.weight" % i] = {"dtype": "F16", "shape": [rows, cols], "data_offsets": [off, off + per * 2]}
	off += per * 2
hb = json.dumps(header, separators=(",", ":")).encode()
hb += b" " * ((8 - len(hb) % 8) % 8)
with open(out, "wb") as f:
	f.write(struct.pack("<Q", len(hb))); f.write(hb)
	for b in blobs:
		f.write(b)
PY
FILE_BYTES=$(stat -c %s "$WORK/model.safetensors")

BC=$WORK/b-compressed MC=$WORK/m-compressed BR=$WORK/b-raw MR=$WORK/m-raw
mkdir -p "$BC" "$MC" "$BR" "$MR"
mount_fs "$BC" "$MC"
PID_C=$DAEMON_PID
mount_fs "$BR" "$MR" -o min_size=1G
PID_R=$DAEMON_PID

state_is() { [ "$(xattr_get "$1" user.lcpfs.state 2>/dev/null)" = "$2" ]; }
settled() { state_is "$1" compressed || state_is "$1" refused; }
now_ns() { date +%s%N; }

t0=$(now_ns)
cp "$WORK/model.safetensors" "$MC/model.safetensors"
poll "$COMMIT_TIMEOUT" settled "$MC/model.safetensors" || fail "no commit within ${COMMIT_TIMEOUT}s"
t1=$(now_ns)
state_is "$MC/model.safetensors" compressed ||
	fail "refused: $(xattr_get "$MC/model.safetensors" user.lcpfs.reason)"
CP_COMMIT_MIBS=$("$PYTHON" -c "print('%.1f' % ($FILE_BYTES / 2**20 / (($t1 - $t0) / 1e9)))")
RATIO=$(xattr_get "$MC/model.safetensors" user.lcpfs.ratio)
HWM_COMMIT=$(awk '/VmHWM/ {print $2}' /proc/$PID_C/status)
cp "$WORK/model.safetensors" "$MR/model.safetensors"
poll 60 settled "$MR/model.safetensors" || true
state_is "$MR/model.safetensors" compressed && fail "the raw mount compressed its copy"
cmp -s "$MR/model.safetensors" "$WORK/model.safetensors" || fail "raw copy differs"

remount_compressed() {
	unmount_fs "$MC" "$PID_C" || fail "unmount"
	mount_fs "$BC" "$MC"
	PID_C=$DAEMON_PID
}

# seqread PATH: MiB/s of one sequential read with dd (1 MiB reads).
seqread() {
	dd if="$1" of=/dev/null bs=1M 2>&1 | awk '/copied/ { printf "%.0f\n", $1 / 1048576 / $(NF-3) }'
}

# measure KIND PATH: MiB/s (seq, reread) or reads/s (rand4k, rand128k).
measure() {
	case $1 in
	seq) seqread "$2"; return ;;
	reread) seqread "$2" > /dev/null; seqread "$2"; return ;;
	esac
	"$PYTHON" - "$1" "$2" "$RAND4K_N" "$RAND128K_N" <<'PY'
import os, random, sys, time
kind, path, n4, n128 = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
fd = os.open(path, os.O_RDONLY)
size = os.fstat(fd).st_size
ln, n = (4096, n4) if kind == "rand4k" else (131072, n128)
rng = random.Random(7)
offs = [rng.randrange(0, size - ln) for _ in range(n)]
t = time.perf_counter()
for o in offs:
	assert len(os.pread(fd, ln, o)) == ln
print("%.0f" % (n / (time.perf_counter() - t)))
PY
}

cold() {
	sync
	echo 3 > /proc/sys/vm/drop_caches
}

declare -A R
for kind in seq rand4k rand128k; do
	remount_compressed; cold
	R[c_$kind]=$(measure $kind "$MC/model.safetensors")
	cold
	R[r_$kind]=$(measure $kind "$MR/model.safetensors")
	cold
	R[d_$kind]=$(measure $kind "$WORK/model.safetensors")
done
R[c_reread]=$(measure reread "$MC/model.safetensors")
R[r_reread]=$(measure reread "$MR/model.safetensors")
R[d_reread]=$(measure reread "$WORK/model.safetensors")
HWM_C=$(awk '/VmHWM/ {print $2}' /proc/$PID_C/status)
HWM_R=$(awk '/VmHWM/ {print $2}' /proc/$PID_R/status)

seq_ratio=$("$PYTHON" -c "print('%.2f' % (${R[c_seq]} / ${R[r_seq]}))")
reread_gib=$("$PYTHON" -c "print('%.2f' % (${R[c_reread]} / 1024))")
verdict() { "$PYTHON" -c "print('met' if $1 else 'MISSED')"; }

echo
echo "bench_mount: $(( FILE_BYTES >> 20 )) MiB F16 safetensors (tiled real weights), ratio $RATIO"
printf '%-34s %14s %14s %14s\n' "" "compressed" "raw via mount" "raw direct"
printf '%-34s %14s %14s %14s\n' "cold sequential read (MiB/s)" "${R[c_seq]}" "${R[r_seq]}" "${R[d_seq]}"
printf '%-34s %14s %14s %14s\n' "cold random 4 KiB reads (ops/s)" "${R[c_rand4k]}" "${R[r_rand4k]}" "${R[d_rand4k]}"
printf '%-34s %14s %14s %14s\n' "cold random 128 KiB reads (ops/s)" "${R[c_rand128k]}" "${R[r_rand128k]}" "${R[d_rand128k]}"
printf '%-34s %14s %14s %14s\n' "re-read from cache (MiB/s)" "${R[c_reread]}" "${R[r_reread]}" "${R[d_reread]}"
printf '%-34s %14s\n' "cp-to-commit (MiB/s)" "$CP_COMMIT_MIBS"
printf '%-34s %14s\n' "peak daemon RSS, cp+commit (MiB)" "$((HWM_COMMIT / 1024))"
printf '%-34s %14s %14s\n' "peak daemon RSS, reads (MiB)" "$((HWM_C / 1024))" "$((HWM_R / 1024))"
echo "target: compressed cold sequential >= 0.70x raw via mount: ${seq_ratio}x ($(verdict "$seq_ratio >= 0.70"))"
echo "target: re-read from cache >= 4 GiB/s: ${reread_gib} GiB/s ($(verdict "$reread_gib >= 4.0"))"
unmount_fs "$MC" "$PID_C" || true
unmount_fs "$MR" "$PID_R" || true
