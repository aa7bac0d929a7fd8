#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A second mount of the same backing must not break the first: while one
# node's commit is held with its temporaries written, another node tries to
# mount read-write (refused: one writer per backing) and then mounts
# read-only (no recovery, no change); the first commit must still land. An
# offline `lcpfs pack` batch job held at its final rename while a node
# mounts read-write (and runs its recovery) keeps its temporaries and
# finishes. A commit whose temporaries vanished anyway (an administrator's
# cleanup) is retried, and never remembered as "refused" across a remount.
set -u
cd "$(dirname "$0")/../.."
. tests/integration/fsx/mount_lib.sh
. tests/distributed/dist_lib.sh

gluster_setup 3
S0=${GM[0]}/store S1=${GM[1]}/store S2=${GM[2]}/store
mkdir -p "$S0"
make_model f.safetensors 4 3
RAW=$WORK/f.safetensors REC=$WORK/f.safetensors.rec
temps() { (cd "$S0" && ls -A | grep '^\.lcpfs-tmp\.' | tr '\n' ' '); }

# Node 1 commits f1, f2, f3 in turn, each held at its first rename.
G=$WORK/gate
gate_env "$G" "rename-before:.f1.safetensors.lcpfs rename-before:.f2.safetensors.lcpfs rename-before:.f3.safetensors.lcpfs"
node_mount w1 "$S0" "$WORK/w1" || fail "node 1 mount"
NODE_ENV=()
W1=$WORK/w1 W1_PID=$NODE_PID

# mount_during_commit KIND FILE POINT NODE CLIENT [lcpfs options]: while node
# 1's commit of FILE is held at gate POINT, node NODE mounts over gluster
# client CLIENT (a read-write one must be refused); node 1's temporaries
# must stay and its commit must land.
mount_during_commit() {
	local kind=$1 f=$2 point=$3 node=$4 client=$5 held now
	shift 5
	cp "$RAW" "$W1/$f" || fail "cp $f"
	poll "$COMMIT_TIMEOUT" gate_arrived "$G" "$point" || fail "$f's commit never reached its rename ($(state_of "$W1/$f"))"
	held=$(temps)
	if [ "$kind" = rw ]; then
		if node_mount "$node" "$client" "$WORK/$node" "$@"; then
			bad recovery.rw_refused "a second read-write mount was accepted while node 1 writes"
			unmount_fs "$WORK/$node" "$NODE_PID"
		elif grep -q 'another read-write lcpfs mount' "$WORK/$node.log"; then
			pass recovery.rw_refused "a second read-write mount was refused: $(tail -n 1 "$WORK/$node.log")"
		else
			bad recovery.rw_refused "the second read-write mount failed without the reason: $(node_log "$node" 3 | tr '\n' ' ')"
		fi
	else
		node_mount "$node" "$client" "$WORK/$node" "$@" || fail "$kind node mount: $(node_log "$node" 3)"
	fi
	now=$(temps)
	[ "$now" = "$held" ] && pass "recovery.${kind}_keeps_live_temps" "a $kind mount left node 1's temporaries ($held)" ||
		bad "recovery.${kind}_keeps_live_temps" "the $kind mount removed node 1's in-flight temporaries: before [$held] after [$now]"
	gate_open "$G" "$point"
	wait_settled "$W1/$f" || fail "$f never settled"
	check "recovery.${kind}_first_commit_lands" "node 1's commit of $f after a $kind node mounted: $(state_of "$W1/$f") $(reason_of "$W1/$f")" \
		state_is "$W1/$f" compressed
	if [ "$kind" != rw ]; then
		unmount_fs "$WORK/$node" "$NODE_PID" || fail "unmount $node"
	fi
}
mount_during_commit rw f1.safetensors 1 w2 "$S1"
mount_during_commit ro f2.safetensors 2 r "$S2" -o ro

# f3's temporaries vanish while its commit is held (as by an administrator's
# `lcpfs recover` at the wrong time): the commit fails, and the daemon must
# try again rather than leave f3 refused for good.
cp "$RAW" "$W1/f3.safetensors" || fail "cp f3"
poll "$COMMIT_TIMEOUT" gate_arrived "$G" 3 || fail "f3's commit never reached its rename ($(state_of "$W1/f3.safetensors"))"
rm -f "$S0"/.lcpfs-tmp.*
gate_open "$G" 3
# Settled: compressed or refused (a retry shows pending meanwhile).
if wait_settled "$W1/f3.safetensors" && state_is "$W1/f3.safetensors" compressed; then
	pass recovery.vanished_temps_retried "f3 compressed after its temporaries vanished mid-commit"
else
	bad recovery.vanished_temps_retried "f3 after its temporaries vanished: $(state_of "$W1/f3.safetensors") ($(reason_of "$W1/f3.safetensors"))"
fi
unmount_fs "$W1" "$W1_PID" || fail "unmount node 1"
node_mount w1b "$S0" "$WORK/w1b" || fail "node 1 remount"
s=$(state_of "$WORK/w1b/f3.safetensors") r=$(reason_of "$WORK/w1b/f3.safetensors")
[ "$s" != refused ] && pass recovery.io_error_not_sticky "after a remount f3 is $s" ||
	bad recovery.io_error_not_sticky "after a remount f3 is still refused ($r): a transient error was stored as a verdict"
for f in f1 f2; do
	v=$($CHECK version "$WORK/w1b/$f.safetensors" "$RAW" "$REC" 2>&1) &&
		pass "recovery.$f.whole" "$f reads as one whole version ($v: 0 raw, 1 committed)" ||
		bad "recovery.$f.whole" "$f: $v"
done

# An offline batch job (`lcpfs pack` onto the shared backing) held at its
# final rename while a node mounts read-write (node 1 gone: one writer).
unmount_fs "$WORK/w1b" "$NODE_PID" || fail "unmount node 1"
gate_env "$WORK/gate2" "rename-before:.batch.safetensors.lcpfs"
env "${NODE_ENV[@]}" "$LCPFS" pack "$RAW" "$S0/batch.safetensors" > "$WORK/batch.out" 2>&1 &
PACK_PID=$!
NODE_ENV=()
poll "$COMMIT_TIMEOUT" gate_arrived "$WORK/gate2" 1 || fail "the batch pack never reached its final rename: $(cat "$WORK/batch.out")"
held=$(temps)
node_mount w3 "$S1" "$WORK/w3" || fail "node 3 mount"
now=$(temps)
[ "$now" = "$held" ] && pass recovery.batch_keeps_temps "a mount left the batch job's temporaries ($held)" ||
	bad recovery.batch_keeps_temps "a mount removed a running batch job's temporaries: before [$held] after [$now]"
gate_open "$WORK/gate2" 1
if wait "$PACK_PID" && "$LCPFS" verify "$S0/batch.safetensors" > /dev/null 2>&1; then
	pass recovery.batch_survives_mount "the batch pack finished and its output verifies: $(cat "$WORK/batch.out")"
else
	bad recovery.batch_survives_mount "batch pack: $(tr '\n' ' ' < "$WORK/batch.out"); verify: $("$LCPFS" verify "$S0/batch.safetensors" 2>&1 | tr '\n' ' ')"
fi
finish
