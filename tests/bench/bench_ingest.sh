#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Ingest benchmark (`make bench`, issues 9 and 11), one run, with zstd -1 -T2
# on the same files as the reference printed beside:
#   - `lcpfs pack` of a >= 256 MiB F16 model (tiled real weights,
#     tests/bench/lib/tiled_model.py) with -j 1 and -j 2, its peak RSS and
#     CPU seconds (the wall time on shared cores counts other processes);
#   - cp-to-commit through a mount (threads = the cores) of that model and
#     of its BF16 twin: cp into the mount until user.lcpfs.state is
#     compressed; the daemon's peak RSS and the bound it must stay under;
#     the peak extra backing space while a file is compressed (payload and
#     sidecar temporaries beside the raw file);
#   - sequential reads of another (compressed) file in the same mount, idle
#     and during an ingest: the mount stays responsive;
#   - a sparse 1 GiB and 6 GiB BF16 tensor (truncate: no disk) packed by
#     `lcpfs pack` and by the daemon: peak RSS next to the tensor size
#     (target <= 700 MiB).
# Targets printed beside: cp-to-commit and pack >= 150 MB/s on 2 cores.
# Env: BENCH_SIZE_MIB (default 256), LCPFS, PYTHON.
set -eu
cd "$(dirname "$0")/../.."
. tests/integration/fsx/mount_lib.sh

SIZE_MIB=${BENCH_SIZE_MIB:-256}
COMMIT_TIMEOUT=${BENCH_COMMIT_TIMEOUT:-3600}
RSS_TARGET_MIB=700
TARGET_MBS=150
HOLD_MAX_MIB=64   # LCP_ENCODE_HOLD_MAX_ELEMS as binary32 (codec.h)
CHUNK_SET_MIB=4   # one encoder thread's chunk working set, rounded up
WINDOW_MIB=1      # one reorder-window slot, rounded up

command -v zstd >/dev/null || { echo "SKIP: no zstd command"; exit 0; }
cores=$(nproc)
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg); cores: $cores"

now_ns() { date +%s%N; }
mbs() { awk -v b="$1" -v ns="$2" 'BEGIN { printf "%.0f", b / 1e6 / (ns / 1e9) }'; }
verdict() { awk -v v="$1" -v t="$2" 'BEGIN { print (v >= t) ? "met" : "MISSED" }'; }
hwm_kib() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }
# The state, by getfattr when there is one: a python start per poll would
# take a good part of a core from the compression being timed.
if command -v getfattr >/dev/null; then
	state_is() { [ "$(getfattr --only-values -n user.lcpfs.state "$1" 2>/dev/null)" = "$2" ]; }
fi
settled() { state_is "$1" compressed || state_is "$1" refused; }

echo "building a ${SIZE_MIB} MiB F16 model and its BF16 twin from ../shared/data ..."
"$PYTHON" tests/bench/lib/tiled_model.py "$WORK/f16.safetensors" "$SIZE_MIB"
"$PYTHON" - "$WORK/f16.safetensors" "$WORK/bf16.safetensors" <<'PY'
import json, struct, sys
import numpy as np
src, dst = sys.argv[1:]
b = open(src, "rb").read()
n = struct.unpack_from("<Q", b)[0]
h = json.loads(b[8:8 + n])
for v in h.values():
	v["dtype"] = "BF16"
hb = json.dumps(h, separators=(",", ":")).encode()
hb += b" " * (-len(hb) % 8)
x = np.frombuffer(b[8 + n:], dtype="<f2").astype(np.float32)
bf = (x.view(np.uint32) >> 16).astype("<u2")
with open(dst, "wb") as f:
	f.write(struct.pack("<Q", len(hb)) + hb)
	f.write(bf.tobytes())
PY
BYTES=$(stat -c %s "$WORK/f16.safetensors")
BF_BYTES=$(stat -c %s "$WORK/bf16.safetensors")
cat "$WORK/f16.safetensors" "$WORK/bf16.safetensors" > /dev/null # page cache, as for cp

# cpu_s: the user + sys seconds /usr/bin/time wrote to $WORK/cpu ("%U %S",
# its last line).
cpu_s() { tail -n 1 "$WORK/cpu" | awk '{ printf "%.2f", $1 + $2 }'; }

# zstd_ns FILE: "ns cpu_s" of zstd -1 -T2 on FILE (output discarded).
zstd_ns() {
	local t0 t
	t0=$(now_ns)
	/usr/bin/time -f "%U %S" -o "$WORK/cpu" zstd -q -1 -T2 -c "$1" > /dev/null
	t=$(( $(now_ns) - t0 ))
	echo "$t $(cpu_s)"
}

# pack_row J: `lcpfs pack -j J` of the F16 model; prints "ns rss_kib cpu_s".
pack_row() {
	rm -f "$WORK/p.safetensors" "$WORK/.p.safetensors.lcpfs"
	local t0 t
	t0=$(now_ns)
	/usr/bin/time -f "%U %S %M" -o "$WORK/cpu" "$LCPFS" pack -j "$1" "$WORK/f16.safetensors" \
		"$WORK/p.safetensors" > /dev/null
	t=$(( $(now_ns) - t0 ))
	echo "$t $(tail -n 1 "$WORK/cpu" | awk '{ print $3 }') $(cpu_s)"
}
read -r p1_ns p1_rss p1_cpu < <(pack_row 1)
read -r p2_ns p2_rss p2_cpu < <(pack_row 2)
read -r z_f16 z_f16_cpu < <(zstd_ns "$WORK/f16.safetensors")
read -r z_bf16 _ < <(zstd_ns "$WORK/bf16.safetensors")
stored=$(( $(stat -c %s "$WORK/p.safetensors") + $(stat -c %s "$WORK/.p.safetensors.lcpfs") ))

# The mount: cp-to-commit of each model, backing use polled meanwhile.
B=$WORK/backing M=$WORK/mnt
mkdir -p "$B" "$M"
mount_fs "$B" "$M" -o cache=16M
PID=$DAEMON_PID

# ingest NAME SRC: cp SRC into the mount as NAME and waits for the commit,
# polling the backing's allocated bytes; prints "ns peak_extra_bytes" (the
# peak over what the backing held before, less the raw file itself).
ingest() {
	local name=$1 src=$2 t0 t1 peak=0 used raw base
	raw=$(stat -c %s "$src")
	base=$(du -s -B1 "$B" | cut -f1)
	t0=$(now_ns)
	cp "$src" "$M/$name"
	while ! settled "$M/$name"; do
		used=$(du -s -B1 "$B" | cut -f1)
		[ "$used" -gt "$peak" ] && peak=$used
		[ $(( $(now_ns) - t0 )) -lt $(( COMMIT_TIMEOUT * 1000000000 )) ] ||
			fail "$name: no commit within ${COMMIT_TIMEOUT}s"
		sleep 0.1
	done
	t1=$(now_ns)
	state_is "$M/$name" compressed || fail "$name refused: $(xattr_get "$M/$name" user.lcpfs.reason)"
	extra=$(( peak > base + raw ? peak - base - raw : 0 ))
	echo "$(( t1 - t0 )) $extra"
}
read -r c16_ns c16_extra < <(ingest model-f16.safetensors "$WORK/f16.safetensors")
read -r cbf_ns cbf_extra < <(ingest model-bf16.safetensors "$WORK/bf16.safetensors")
hwm_ingest=$(hwm_kib "$PID")

# Reads of a compressed file (its kernel pages dropped before each read, and
# a small chunk cache: every read decodes), idle and while another file is
# being compressed (from the moment its cp returns until it commits).
coldread_mbs() {
	"$PYTHON" - "$1" <<'PY'
import os, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY)
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
n, t = 0, time.perf_counter()
while True:
	b = os.read(fd, 1 << 20)
	if not b:
		break
	n += len(b)
print("%.0f" % (n / 1e6 / (time.perf_counter() - t)))
PY
}
read_idle=$(coldread_mbs "$M/model-f16.safetensors")
cp "$WORK/bf16.safetensors" "$M/busy.safetensors"
reads=0 sum=0 first_pending=
while :; do
	r=$(coldread_mbs "$M/model-f16.safetensors")
	still=$(xattr_get "$M/busy.safetensors" user.lcpfs.state)
	[ -n "$first_pending" ] || first_pending=$still
	reads=$((reads + 1)) sum=$((sum + r))
	[ "$still" = pending ] || break
done
read_busy=$((sum / reads))
poll "$COMMIT_TIMEOUT" settled "$M/busy.safetensors" || fail "busy file: no commit"

# Sparse tensors: pack and daemon peak RSS.
sparse_st() { "$PYTHON" tests/tools/sparse_model.py "$@"; }
# Mostly holes, with enough real values to be worth compressing (a file of
# holes alone is refused: it takes less disk raw).
sparse_st "$WORK/s1.safetensors" 32768 16384 1
sparse_st "$WORK/s6.safetensors" 98304 32768 8
declare -A SP
for s in s1 s6; do
	rm -f "$WORK/ps.safetensors" "$WORK/.ps.safetensors.lcpfs"
	t0=$(now_ns)
	/usr/bin/time -f %M -o "$WORK/rss" "$LCPFS" pack "$WORK/$s.safetensors" "$WORK/ps.safetensors" > /dev/null
	SP[${s}_pack_ns]=$(( $(now_ns) - t0 ))
	SP[${s}_pack_rss]=$(tail -n 1 "$WORK/rss")
done
unmount_fs "$M" "$PID" || fail "unmount"
for s in s1 s6; do
	rm -rf "$B"/*
	mount_fs "$B" "$M"
	t0=$(now_ns)
	cp --sparse=always "$WORK/$s.safetensors" "$M/$s.safetensors"
	poll "$COMMIT_TIMEOUT" settled "$M/$s.safetensors" || fail "$s: no commit"
	SP[${s}_mount_ns]=$(( $(now_ns) - t0 ))
	SP[${s}_mount_rss]=$(hwm_kib "$DAEMON_PID")
	state_is "$M/$s.safetensors" compressed || fail "$s refused"
	unmount_fs "$M" "$DAEMON_PID" || fail "unmount"
done

bound_mib=$(( (cores + 1) * (HOLD_MAX_MIB + 4 * cores * WINDOW_MIB) + cores * CHUNK_SET_MIB ))
echo
echo "bench_ingest: $(( BYTES >> 20 )) MiB F16 / $(( BF_BYTES >> 20 )) MiB BF16 safetensors (tiled real weights), $cores cores"
printf '%-44s %10s %10s %14s\n' "" "seconds" "MB/s" "zstd -1 -T2"
printf '%-44s %10.2f %10s %14s\n' "lcpfs pack -j 1 (F16)" "$(awk -v n="$p1_ns" 'BEGIN{print n/1e9}')" "$(mbs "$BYTES" "$p1_ns")" "$(mbs "$BYTES" "$z_f16") MB/s"
printf '%-44s %10.2f %10s %14s\n' "lcpfs pack -j 2 (F16)" "$(awk -v n="$p2_ns" 'BEGIN{print n/1e9}')" "$(mbs "$BYTES" "$p2_ns")" "$(mbs "$BYTES" "$z_f16") MB/s"
printf '%-44s %10.2f %10s %14s\n' "cp-to-commit through the mount (F16)" "$(awk -v n="$c16_ns" 'BEGIN{print n/1e9}')" "$(mbs "$BYTES" "$c16_ns")" "$(mbs "$BYTES" "$z_f16") MB/s"
printf '%-44s %10.2f %10s %14s\n' "cp-to-commit through the mount (BF16)" "$(awk -v n="$cbf_ns" 'BEGIN{print n/1e9}')" "$(mbs "$BF_BYTES" "$cbf_ns")" "$(mbs "$BF_BYTES" "$z_bf16") MB/s"
# On the shared machine the wall times above count other processes too; the
# CPU seconds do not (2 cores free would give at best CPU / 2 of wall time).
echo "CPU seconds (user + sys): lcpfs pack -j 1 $p1_cpu, -j 2 $p2_cpu; zstd -1 -T2 $z_f16_cpu (F16)"
echo "stored: $stored bytes of $BYTES ($(awk -v a="$BYTES" -v b="$stored" 'BEGIN{printf "%.2f", a/b}')x)"
echo "peak RSS: lcpfs pack -j 1 $(( p1_rss / 1024 )) MiB, -j 2 $(( p2_rss / 1024 )) MiB; daemon after both ingests $(( hwm_ingest / 1024 )) MiB (bound: (threads+1) x (${HOLD_MAX_MIB} MiB held tensor + window) + threads x ${CHUNK_SET_MIB} MiB = ${bound_mib} MiB, $(verdict "$bound_mib" "$(( hwm_ingest / 1024 ))"))"
echo "peak extra backing space while compressing: F16 $(( c16_extra >> 20 )) MiB, BF16 $(( cbf_extra >> 20 )) MiB (the payload and sidecar written beside the raw file)"
echo "cold sequential read of a compressed file through the mount: idle $read_idle MB/s, while another file is compressed $read_busy MB/s (mean of $reads reads; state after the first: $first_pending)"
for s in s1 s6; do
	size=$(stat -c %s "$WORK/$s.safetensors")
	printf 'sparse %4.1f GiB BF16 tensor: lcpfs pack %6.2f s, peak RSS %4d MiB (%s); daemon cp-to-commit %6.2f s, peak RSS %4d MiB (%s)\n' \
		"$(awk -v b="$size" 'BEGIN{print b/2^30}')" \
		"$(awk -v n="${SP[${s}_pack_ns]}" 'BEGIN{print n/1e9}')" "$(( SP[${s}_pack_rss] / 1024 ))" \
		"$(verdict "$RSS_TARGET_MIB" "$(( SP[${s}_pack_rss] / 1024 ))")" \
		"$(awk -v n="${SP[${s}_mount_ns]}" 'BEGIN{print n/1e9}')" "$(( SP[${s}_mount_rss] / 1024 ))" \
		"$(verdict "$RSS_TARGET_MIB" "$(( SP[${s}_mount_rss] / 1024 ))")"
done
echo "target: lcpfs pack -j 2 >= ${TARGET_MBS} MB/s: $(mbs "$BYTES" "$p2_ns") MB/s ($(verdict "$(mbs "$BYTES" "$p2_ns")" "$TARGET_MBS"))"
echo "target: cp-to-commit >= ${TARGET_MBS} MB/s: F16 $(mbs "$BYTES" "$c16_ns") MB/s ($(verdict "$(mbs "$BYTES" "$c16_ns")" "$TARGET_MBS")), BF16 $(mbs "$BF_BYTES" "$cbf_ns") MB/s ($(verdict "$(mbs "$BF_BYTES" "$cbf_ns")" "$TARGET_MBS"))"
echo "target: sparse tensors peak RSS <= ${RSS_TARGET_MIB} MiB (see the sparse rows)"
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
