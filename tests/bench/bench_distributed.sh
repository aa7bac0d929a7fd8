#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Distributed benchmark (`make bench`): a model on a GlusterFS volume (two
# bricks on loopback, distribute, set up and torn down here), read by a node
# through its own read-only lcpfs mount: the compressed model (written to the
# volume by an offline `lcpfs pack` batch job) against the same model kept
# raw on the same volume, in one run. Each read is cold: kernel caches
# dropped, the node's gluster client and lcpfs daemon both fresh.
# Measured twice: over the plain loopback, and with the bricks' replies
# throttled to 1 Gbit/s (tc on lo: an htb qdisc whose default class is
# unlimited and a 1 Gbit/s class that a u32 filter on the volume's own 127.x
# address feeds, so no other loopback traffic is slowed; removed at once and
# in the EXIT trap) to stand in for a network. Also prints
# the batch pack's throughput onto the volume and the bytes each read pulls
# from the backing. BENCH_SIZE_MIB sets the model size (default 256),
# BENCH_REPS the rounds of which the best is shown (default 2).
set -u
cd "$(dirname "$0")/../.."
. tests/integration/fsx/mount_lib.sh
. tests/distributed/dist_lib.sh

SIZE_MIB=${BENCH_SIZE_MIB:-256}
LINK_RATE=1gbit
REPS=${BENCH_REPS:-2}

echo "building a ${SIZE_MIB} MiB F16 safetensors (synthetic, tests/distributed/gen_model.py) ..."
"$PYTHON" tests/distributed/gen_model.py "$WORK/model.safetensors" "$SIZE_MIB" 11 || fail "gen_model.py"
FILE_BYTES=$(stat -c %s "$WORK/model.safetensors")
gluster_setup 2 # c0: where the batch job writes, c1: the reading node
S0=${GM[0]}/store S1=${GM[1]}/store
mkdir -p "$S0"
cp "$WORK/model.safetensors" "$S0/raw.safetensors" || fail "cp to the volume"
now_ns() { date +%s%N; }
t0=$(now_ns)
"$LCPFS" pack "$WORK/model.safetensors" "$S0/packed.safetensors" > "$WORK/pack.out" ||
	fail "lcpfs pack onto the volume: $(cat "$WORK/pack.out")"
t1=$(now_ns)
PACK_MIBS=$("$PYTHON" -c "print('%.1f' % ($FILE_BYTES / 2**20 / (($t1 - $t0) / 1e9)))")
STORED_BYTES=$(( $(stat -c %s "$S0/packed.safetensors") + $(stat -c %s "$S0/.packed.safetensors.lcpfs") ))

# cold_read NAME: sets RATE to the MiB/s of one sequential read of NAME
# through a fresh read-only lcpfs node over a fresh gluster client, after
# dropping caches. With NAME "direct:NAME", the gluster client is read
# without lcpfs. (Not in a command substitution: the daemon would hold its
# pipe open.)
seq_mibs() {
	dd if="$1" of=/dev/null bs=1M 2>&1 | awk '/copied/ { printf "%.0f", $1 / 1048576 / $(NF-3) }'
}
cold_read() {
	local name=${1#direct:} i
	for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
		is_mounted "${MOUNTS[$i]}" && unmount_fs "${MOUNTS[$i]}" "${DAEMON_PIDS[$i]}"
	done
	umount "${GM[1]}" || fail "unmount the node's gluster client"
	gluster_mounted "${GM[1]}" && fail "gluster client still mounted"
	glusterfs --volfile-server="$GADDR" --volfile-id="$GVOL" -l "$GW/log/bench-client.log" "${GM[1]}" ||
		fail "remount the node's gluster client"
	poll "$GLUSTER_UP_TIMEOUT" gluster_mounted "${GM[1]}" || fail "gluster client did not come back"
	poll "$GLUSTER_UP_TIMEOUT" test -e "$S1/raw.safetensors" || fail "gluster client not usable: $(tail -n 5 "$GW/log/bench-client.log")"
	sync
	echo 3 > /proc/sys/vm/drop_caches
	if [ "$name" = "$1" ]; then
		node_mount node "$S1" "$WORK/node" -o ro || fail "node mount: $(node_log node)"
		RATE=$(seq_mibs "$WORK/node/$name")
	else
		RATE=$(seq_mibs "$S1/$name")
	fi
}

# measure_all SUFFIX: R[packedSUFFIX], R[rawSUFFIX], R[directSUFFIX], the
# best of REPS interleaved rounds (the machine is shared: one sample is noisy).
declare -A R
measure_all() {
	local r k
	for ((r = 0; r < REPS; r++)); do
		for k in packed raw direct; do
			if [ "$k" = direct ]; then cold_read direct:raw.safetensors; else cold_read "$k.safetensors"; fi
			[ "${R[$k$1]:-0}" -ge "$RATE" ] || R[$k$1]=$RATE
		done
	done
}
measure_all ""
# The node read the right bytes: the packed file's reconstruction, in full.
"$LCPFS" unpack "$S0/packed.safetensors" "$WORK/expected" || fail "unpack"
node_mount check "$S1" "$WORK/check" -o ro || fail "check mount"
cmp "$WORK/check/packed.safetensors" "$WORK/expected" || fail "the node read other bytes than the reconstruction"
cmp "$WORK/check/raw.safetensors" "$WORK/model.safetensors" || fail "the node read other bytes than the raw model"

THROTTLED=
if [ "$(tc qdisc show dev lo | head -n 1 | awk '{print $2}')" != noqueue ]; then
	THROTTLE_NOTE="lo already has a qdisc ($(tc qdisc show dev lo | head -n 1)): not throttled"
elif ! tc qdisc add dev lo root handle 1: htb default 10 2> "$WORK/tc.err"; then
	THROTTLE_NOTE="tc htb on lo failed: $(cat "$WORK/tc.err")"
else
	EXIT_HOOKS+=("tc qdisc del dev lo root 2> /dev/null")
	# Class 1:10 (everything else) is left unlimited; 1:20 holds the bricks.
	if tc class add dev lo parent 1: classid 1:10 htb rate 100gbit 2> "$WORK/tc.err" &&
		tc class add dev lo parent 1: classid 1:20 htb rate "$LINK_RATE" burst 256k cburst 256k 2>> "$WORK/tc.err" &&
		tc filter add dev lo parent 1: protocol ip prio 1 u32 match ip src "$GADDR/32" flowid 1:20 2>> "$WORK/tc.err"; then
		measure_all _t
		THROTTLED=1
		THROTTLE_NOTE="bricks' replies (from $GADDR) limited to $LINK_RATE by tc htb on lo"
	else
		THROTTLE_NOTE="tc htb classes or u32 filter on lo failed: $(cat "$WORK/tc.err")"
	fi
	tc qdisc del dev lo root
fi

x() { "$PYTHON" -c "print('%.2f' % ($1))"; }
echo
echo "bench_distributed: $(( FILE_BYTES >> 20 )) MiB F16 safetensors, GlusterFS $DIST_LAYOUT volume of 2 bricks on loopback"
echo "stored: raw $(( FILE_BYTES >> 20 )) MiB, compressed $(( STORED_BYTES >> 20 )) MiB (payload + sidecar, ratio $(x "$FILE_BYTES / $STORED_BYTES"))"
echo "batch conversion: lcpfs pack onto the volume at $PACK_MIBS MiB/s of model"
printf '%-44s %12s %12s %12s %10s\n' "cold sequential read, best of $REPS (MiB/s)" "compressed" "raw" "raw direct" "comp/raw"
printf '%-44s %12s %12s %12s %10s\n' "through a node's ro lcpfs mount, loopback" "${R[packed]}" "${R[raw]}" "${R[direct]}" \
	"$(x "${R[packed]} / ${R[raw]}")x"
if [ -n "$THROTTLED" ]; then
	printf '%-44s %12s %12s %12s %10s\n' "the same, bricks' replies at $LINK_RATE" "${R[packed_t]}" "${R[raw_t]}" "${R[direct_t]}" \
		"$(x "${R[packed_t]} / ${R[raw_t]}")x"
fi
echo "($THROTTLE_NOTE; raw direct: the node's gluster client read without lcpfs)"
