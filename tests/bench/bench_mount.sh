#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Mount benchmark (`make bench`, issue 10): on a >= 256 MiB F16 safetensors
# built from the real weights in ../shared/data (tests/bench/lib/tiled_model.py),
# measures in one run
#   - cp-to-commit throughput (cp into the mount until user.lcpfs.state is
#     compressed);
#   - cold sequential reads (dd, 1 MiB), cold random 128 KiB and 4 KiB preads
#     (unaligned offsets) of the compressed file through the mount, next to
#     the same bytes kept raw and read through a second mount (min_size above
#     the file size) and the raw file read directly;
#   - cold sequential reads with the backing limited to about 200 MB/s: both
#     backings served over sshfs from a network namespace whose link is
#     shaped by tc tbf (tests/bench/lib/slow_backing.sh; skipped, with the
#     reason, without sshd/sshfs);
#   - the compressed file with decode-ahead off, and with the kernel's own
#     128 KiB readahead (what a daemon that is not root gets);
#   - re-reads from the page cache;
#   - the daemon's peak RSS (VmHWM) over all the read patterns above, and
#     with a small cache and window, against its bound: the chunk cache plus
#     the decode-ahead window plus each thread's read buffers.
# Cold: page cache dropped (echo 3 > /proc/sys/vm/drop_caches) and both
# daemons started afresh before each measurement. The machine is shared, so
# each cold figure is the median of REPEAT runs that alternate compressed,
# raw through the mount and raw direct, and the load average is printed.
# Targets printed beside each ratio (issue 10).
set -eu
cd "$(dirname "$0")/../.."
. tests/integration/fsx/mount_lib.sh
. tests/bench/lib/slow_backing.sh
trap 'exit 130' INT TERM # run the EXIT trap's cleanup on these too

SIZE_MIB=${BENCH_SIZE_MIB:-256}
COMMIT_TIMEOUT=${BENCH_COMMIT_TIMEOUT:-3600} # seconds: encoding 256 MiB on 2 shared cores
REPEAT=${BENCH_REPEAT:-3}
RAND4K_N=2000
RAND128K_N=400
# The compressed mount's read options, as the daemon's defaults (lcpfs.1).
CACHE=256M
WINDOW=16M
READAHEAD=4M
MOUNT_OPTS="cache=$CACHE,decode_ahead=$WINDOW,readahead=$READAHEAD"

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
echo "building a ${SIZE_MIB} MiB F16 safetensors from ../shared/data ..."
"$PYTHON" tests/bench/lib/tiled_model.py "$WORK/model.safetensors" "$SIZE_MIB"
FILE_BYTES=$(stat -c %s "$WORK/model.safetensors")

BC=$WORK/b-compressed MC=$WORK/m-compressed BR=$WORK/b-raw MR=$WORK/m-raw
MC_SLOW=$WORK/m-compressed-slow MR_SLOW=$WORK/m-raw-slow
mkdir -p "$BC" "$MC" "$BR" "$MR"
mount_fs "$BC" "$MC" -o "$MOUNT_OPTS"
PID_C=$DAEMON_PID
mount_fs "$BR" "$MR" -o min_size=1G
PID_R=$DAEMON_PID

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
unmount_fs "$MC" "$PID_C" || fail "unmount"
unmount_fs "$MR" "$PID_R" || fail "unmount"
rm "$WORK/model.safetensors" # the raw backing holds the same bytes

# Peak RSS of the compressed daemons, over every read measurement.
HWM_READS=0
# start MOUNTPOINT [OPTS]: a fresh daemon on the matching backing.
declare -A PID_OF BACKING_OF
BACKING_OF[$MC]=$BC BACKING_OF[$MR]=$BR
start() {
	mount_fs "${BACKING_OF[$1]}" "$1" ${2:+-o "$2"}
	PID_OF[$1]=$DAEMON_PID
}
stop() {
	if [ "$1" = "$MC" ] || [ "$1" = "$MC_SLOW" ]; then
		local h
		h=$(awk '/VmHWM/ {print $2}' "/proc/${PID_OF[$1]}/status")
		[ "$h" -gt "$HWM_READS" ] && HWM_READS=$h
	fi
	unmount_fs "$1" "${PID_OF[$1]}" || fail "unmount of $1"
}
cold() {
	sync
	echo 3 > /proc/sys/vm/drop_caches
}

# seqread PATH: MiB/s of one sequential read with dd (1 MiB reads).
seqread() {
	dd if="$1" of=/dev/null bs=1M 2>&1 | awk '/copied/ { printf "%.0f\n", $1 / 1048576 / $(NF-3) }'
}

# randread KIND PATH: reads/s of RAND4K_N random 4 KiB or RAND128K_N random
# 128 KiB preads at unaligned offsets (the same offsets every time).
randread() {
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

measure() {
	case $1 in
	seq) seqread "$2" ;;
	*) randread "$1" "$2" ;;
	esac
}

median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

declare -A R
# cold_row ROW KIND MC MR DIRECT_PATH [COMPRESSED_OPTS]: medians of REPEAT
# alternating cold runs of measurement KIND into R[c_ROW], R[r_ROW], R[d_ROW].
cold_row() {
	local name=$1 kind=$2 mc=$3 mr=$4 direct=$5 opts=${6:-$MOUNT_OPTS} i c=() r=() d=()
	for i in $(seq "$REPEAT"); do
		start "$mc" "$opts"
		start "$mr" "${6:+ro}"
		cold
		c+=("$(measure "$kind" "$mc/model.safetensors")")
		cold
		r+=("$(measure "$kind" "$mr/model.safetensors")")
		stop "$mc"
		stop "$mr"
		cold
		d+=("$(measure "$kind" "$direct")")
	done
	R[c_$name]=$(median "${c[@]}")
	R[r_$name]=$(median "${r[@]}")
	R[d_$name]=$(median "${d[@]}")
}

cold_row seq seq "$MC" "$MR" "$BR/model.safetensors"
cold_row rand128k rand128k "$MC" "$MR" "$BR/model.safetensors"
cold_row rand4k rand4k "$MC" "$MR" "$BR/model.safetensors"
# The compressed file alone, with decode-ahead off, and with the kernel's
# default 128 KiB readahead (0: the daemon leaves it alone).
for variant in noahead ra128k; do
	opts="cache=$CACHE,decode_ahead=0,readahead=$READAHEAD"
	[ "$variant" = ra128k ] && opts="cache=$CACHE,decode_ahead=$WINDOW,readahead=0"
	c=()
	for i in $(seq "$REPEAT"); do
		start "$MC" "$opts"
		cold
		c+=("$(seqread "$MC/model.safetensors")")
		stop "$MC"
	done
	R[c_$variant]=$(median "${c[@]}")
done

# Re-reads from the page cache: the best of REPEAT passes after a first one.
for where in c r d; do
	case $where in
	c) start "$MC" "$MOUNT_OPTS"; path=$MC/model.safetensors ;;
	r) start "$MR"; path=$MR/model.safetensors ;;
	d) path=$BR/model.safetensors ;;
	esac
	seqread "$path" > /dev/null
	best=0
	for i in $(seq "$REPEAT"); do
		v=$(seqread "$path")
		[ "$v" -gt "$best" ] && best=$v
	done
	R[${where}_reread]=$best
	case $where in c) stop "$MC" ;; r) stop "$MR" ;; esac
done

# Memory: a daemon with a small cache (so that it fills) runs small O_DIRECT
# reads all over the file (each keeps a block in the cache), a sequential
# read (decode-ahead) and random 128 KiB reads, several readers at once.
RSS_CACHE=32 RSS_WINDOW=16
start "$MC" "cache=${RSS_CACHE}M,decode_ahead=${RSS_WINDOW}M,readahead=$READAHEAD"
head -c 1 "$MC/model.safetensors" > /dev/null
RSS_BASE=$(awk '/VmRSS/ {print $2}' "/proc/${PID_OF[$MC]}/status")
cold
"$PYTHON" - "$MC/model.safetensors" <<'PY' &
import os, random, sys
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECT)
size, rng = os.fstat(fd).st_size, random.Random(3)
for _ in range(4000):
	os.pread(fd, 4096, rng.randrange(0, size - 4096))
PY
small=$!
seqread "$MC/model.safetensors" > /dev/null
randread rand128k "$MC/model.safetensors" > /dev/null
wait $small
RSS_PEAK=$(awk '/VmHWM/ {print $2}' "/proc/${PID_OF[$MC]}/status")
RSS_THREADS=$(awk '/Threads/ {print $2}' "/proc/${PID_OF[$MC]}/status")
stop "$MC"

# The slow backing: both backings over sshfs at about 200 MB/s; the mounts
# on top are read-only (nothing to recover or compress there).
if slow_backing_check; then
	# Our mounts on top of sshfs go first, then sshfs and its sshd.
	trap 'for m in "$MC_SLOW" "$MR_SLOW"; do fusermount3 -u "$m" 2>/dev/null || true; done
		slow_backing_down; cleanup' EXIT
	mkdir -p "$WORK/s-compressed" "$WORK/s-raw" "$MC_SLOW" "$MR_SLOW"
	if slow_backing_up "$BC" "$WORK/s-compressed" && slow_backing_up "$BR" "$WORK/s-raw"; then
		BACKING_OF[$MC_SLOW]=$WORK/s-compressed BACKING_OF[$MR_SLOW]=$WORK/s-raw
		cold_row slow seq "$MC_SLOW" "$MR_SLOW" "$WORK/s-raw/model.safetensors" "$MOUNT_OPTS,ro"
	fi
	slow_backing_down
fi

ratio() { "$PYTHON" -c "print('%.2f' % ($1 / $2))"; }
verdict() { "$PYTHON" -c "print('met' if $1 else 'MISSED')"; }
row() { printf '%-44s %11s %11s %11s %7s\n' "$@"; }
# target_line LABEL RATIO MIN
target_line() {
	echo "target: $1 >= $3x raw through the mount: $2x ($(verdict "$2 >= $3"))"
}

LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
echo
echo "bench_mount: $((FILE_BYTES >> 20)) MiB F16 safetensors (tiled real weights), ratio $RATIO;"
echo "compressed mount: -o $MOUNT_OPTS; medians of $REPEAT cold runs"
echo "load average: $LOAD_START at the start, $LOAD_END at the end (2 cores)"
row "" compressed "raw mount" "raw direct" ratio
row "cold sequential read, local disk (MiB/s)" "${R[c_seq]}" "${R[r_seq]}" "${R[d_seq]}" \
	"$(ratio "${R[c_seq]}" "${R[r_seq]}")x"
if [ -n "${R[c_slow]:-}" ]; then
	row "cold sequential read, ~200 MB/s (MiB/s)" "${R[c_slow]}" "${R[r_slow]}" "${R[d_slow]}" \
		"$(ratio "${R[c_slow]}" "${R[r_slow]}")x"
else
	echo "cold sequential read, ~200 MB/s: SKIPPED: $SLOW_REASON"
fi
row "cold random 128 KiB reads (reads/s)" "${R[c_rand128k]}" "${R[r_rand128k]}" "${R[d_rand128k]}" \
	"$(ratio "${R[c_rand128k]}" "${R[r_rand128k]}")x"
row "cold random 4 KiB reads (reads/s)" "${R[c_rand4k]}" "${R[r_rand4k]}" "${R[d_rand4k]}" \
	"$(ratio "${R[c_rand4k]}" "${R[r_rand4k]}")x"
row "re-read from the page cache (MiB/s, best)" "${R[c_reread]}" "${R[r_reread]}" "${R[d_reread]}" \
	"$(ratio "${R[c_reread]}" "${R[r_reread]}")x"
row "cold sequential, decode_ahead=0 (MiB/s)" "${R[c_noahead]}" "" "" \
	"$(ratio "${R[c_noahead]}" "${R[r_seq]}")x"
row "cold sequential, kernel readahead 128K (MiB/s)" "${R[c_ra128k]}" "" "" \
	"$(ratio "${R[c_ra128k]}" "${R[r_seq]}")x"
printf '%-44s %11s\n' "cp-to-commit (MiB/s)" "$CP_COMMIT_MIBS"
printf '%-44s %11s\n' "peak daemon RSS, cp+commit (MiB)" "$((HWM_COMMIT / 1024))"
echo "peak daemon RSS, all reads above: $((HWM_READS / 1024)) MiB (cache $CACHE, decode-ahead window $WINDOW)"
RSS_BOUND=$((RSS_CACHE + RSS_WINDOW + 2 * RSS_THREADS))
echo "peak daemon RSS with cache=${RSS_CACHE}M,decode_ahead=${RSS_WINDOW}M, 4000 small O_DIRECT reads (filling" \
	"the cache) during a sequential read and random 128 KiB reads: $((RSS_PEAK / 1024)) MiB =" \
	"$((RSS_BASE / 1024)) MiB after the first read + $(((RSS_PEAK - RSS_BASE) / 1024)) MiB"
echo "target: daemon RSS over the first read <= cache + window + 2 MiB per thread ($RSS_THREADS threads)" \
	"= $RSS_BOUND MiB: $(((RSS_PEAK - RSS_BASE) / 1024)) MiB ($(verdict "$RSS_PEAK - $RSS_BASE <= $RSS_BOUND * 1024"))"
target_line "compressed cold sequential, local disk" "$(ratio "${R[c_seq]}" "${R[r_seq]}")" 1.0
if [ -n "${R[c_slow]:-}" ]; then
	target_line "compressed cold sequential, ~200 MB/s backing" \
		"$(ratio "${R[c_slow]}" "${R[r_slow]}")" 2.0
fi
target_line "cold random 128 KiB reads" "$(ratio "${R[c_rand128k]}" "${R[r_rand128k]}")" 0.7
target_line "cold random 4 KiB reads" "$(ratio "${R[c_rand4k]}" "${R[r_rand4k]}")" 0.5
reread_gib=$("$PYTHON" -c "print('%.2f' % (${R[c_reread]} / 1024))")
echo "target: re-read from the page cache >= 5 GiB/s: $reread_gib GiB/s ($(verdict "$reread_gib >= 5.0"))"
