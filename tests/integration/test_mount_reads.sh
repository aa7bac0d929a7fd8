#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The read path through a real mount gives the same bytes whichever way it
# runs. Two compressed files (F32, F16 and BF16 tensors of several chunks
# each, tests/integration/fsx/read_check.py) are read through mounts with
# the fast decode kernels and the plain-C ones (LCPFS_DECODE=ref), with
# decode-ahead on and off (-o decode_ahead=0), with range decoding and with
# whole-chunk decoding (LCPFS_DECODE_RANGE=0), and without a chunk cache:
# O_DIRECT reads of 1 byte, 4 KiB, 128 KiB and 1 MiB at unaligned offsets,
# whole-file passes in 4 KiB, 128 KiB and 1 MiB steps, buffered reads after
# a cache drop, and mmap. The reference is `lcpfs unpack` with the plain-C
# kernels and whole-chunk decodes, each chunk checked against the output
# checksum the encoder recorded. Then concurrent readers (processes and
# threads, random ranges of both files) while a third file is compressed
# and committed; then a damaged chunk, with decode-ahead on: EIO for exactly
# one chunk's bytes, and every read before and after it succeeds and matches.
set -eu
cd "$(dirname "$0")/../.."
. tests/integration/fsx/mount_lib.sh

RC="$PYTHON tests/integration/fsx/read_check.py"
B=$WORK/backing M=$WORK/mnt REF=$WORK/ref
mkdir -p "$B" "$M" "$REF"
for f in a b c; do
	$RC make "$WORK/$f.safetensors" "$(printf '%d' "'$f")"
done

# cold: nothing cached in the kernel, so reads reach the daemon.
cold() {
	sync
	echo 3 > /proc/sys/vm/drop_caches
}

mount_fs "$B" "$M"
cp "$WORK/a.safetensors" "$WORK/b.safetensors" "$M/"
wait_state "$M/a.safetensors" compressed
wait_state "$M/b.safetensors" compressed
unmount_fs "$M" "$DAEMON_PID" || fail "unmount"
for f in a b; do
	LCPFS_DECODE=ref LCPFS_DECODE_RANGE=0 "$LCPFS" unpack "$B/$f.safetensors" "$REF/$f.safetensors" \
		> /dev/null || fail "reference unpack of $f"
	cmp -s "$REF/$f.safetensors" "$WORK/$f.safetensors" && fail "$f reads back unchanged: not lossy?"
done
say "two compressed files and their reference reconstructions"

# variant NAME ENV OPTS: every read pattern through a mount run that way.
variant() {
	local name=$1 env=$2 opts=$3 f
	env $env "$LCPFS" "$B" "$M" -f -o "$opts" 2>> "$WORK/daemon.log" &
	DAEMON_PID=$!
	DAEMON_PIDS+=("$DAEMON_PID")
	MOUNTS+=("$M")
	poll "$MOUNT_TIMEOUT" is_mounted "$M" || fail "$name: mount did not appear"
	for f in a b; do
		cold
		$RC sizes "$M/$f.safetensors" "$REF/$f.safetensors" 1 || fail "$name: $f: O_DIRECT reads"
		cold
		$RC buffered "$M/$f.safetensors" "$REF/$f.safetensors" || fail "$name: $f: buffered read"
		cold
		$RC mmap "$M/$f.safetensors" "$REF/$f.safetensors" 2 || fail "$name: $f: mmap"
	done
	unmount_fs "$M" "$DAEMON_PID" || fail "$name: unmount"
	say "$name: O_DIRECT 1 B/4 KiB/128 KiB/1 MiB, sequential passes, buffered and mmap reads equal the reference"
}
variant "fast kernels, range decode, decode-ahead" "" "ro"
variant "plain-C kernels (LCPFS_DECODE=ref)" "LCPFS_DECODE=ref" "ro"
variant "decode-ahead off" "" "ro,decode_ahead=0"
variant "whole-chunk decodes (LCPFS_DECODE_RANGE=0)" "LCPFS_DECODE_RANGE=0" "ro"
variant "no chunk cache" "" "ro,cache=0"

# Concurrent readers while another file is compressed and committed.
mount_fs "$B" "$M"
cold
pids=()
for k in 1 2 3; do
	$RC random "$M/a.safetensors" "$REF/a.safetensors" "$k" 150 3 & pids+=($!)
done
for k in 4 5; do
	$RC random "$M/b.safetensors" "$REF/b.safetensors" "$k" 150 3 & pids+=($!)
done
cp "$WORK/c.safetensors" "$M/c.safetensors"
for p in "${pids[@]}"; do
	wait "$p" || fail "a concurrent reader saw wrong bytes or an error"
done
wait_state "$M/c.safetensors" compressed
cold
$RC sizes "$M/a.safetensors" "$REF/a.safetensors" 3 || fail "a after the commit of c"
unmount_fs "$M" "$DAEMON_PID" || fail "unmount"
say "5 reader processes x 3 threads on two files during a commit: every read equals the reference"

# A damaged chunk: one byte flipped in the middle of a's payload.
size=$(stat -c %s "$B/a.safetensors")
"$PYTHON" - "$B/a.safetensors" $((size / 2)) <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(int(sys.argv[2]))
    v = f.read(1)[0]
    f.seek(int(sys.argv[2]))
    f.write(bytes([v ^ 0x5a]))
PY
mount_fs "$B" "$M" # decode-ahead on (the default)
tensors=$($RC tensors "$REF/a.safetensors")
for step in 65536 1048576; do
	cold
	out=$($RC damage "$M/a.safetensors" "$REF/a.safetensors" "$step") || fail "damage, steps of $step: $out"
	read -r _ lo hi <<< "$out"
	# One chunk of one tensor: the largest chunk is 131072 F32 elements.
	inside=$(awk -v lo="$lo" -v hi="$hi" '$2 <= lo && hi <= $2 + $3 { print $1 }' <<< "$tensors")
	[ -n "$inside" ] || fail "damaged range [$lo, $hi) is not inside one tensor"
	[ $((hi - lo)) -le 524288 ] || fail "damaged range [$lo, $hi) is larger than a chunk"
	grep -q "damaged payload at offset $lo " "$WORK/daemon.log" ||
		fail "no log line names the damaged chunk at $lo"
done
unmount_fs "$M" "$DAEMON_PID" || fail "unmount"
say "damaged chunk: EIO for exactly [$lo, $hi) of tensor $inside, every other read equals the reference"
