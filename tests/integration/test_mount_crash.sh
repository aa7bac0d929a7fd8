#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Crash safety of the commit: the daemon dies (LCPFS_CRASH_AT=<point> makes it
# _exit at a named point of the commit path; then kill -9 at spread-out times
# during compression) and, after a remount, the file reads as exactly its raw
# bytes or as its committed version (state compressed, header identical,
# tensors within the floor); the backing holds no leftovers beyond the file
# and its sidecar.
set -eu
cd "$(dirname "$0")/../.."
. tests/integration/fsx/mount_lib.sh

SRC=tests/data/llama2c-stories260K.safetensors
COMMIT_TIMEOUT=120
FLOOR=0.97
KILL_RUNS=${CRASH_KILL_RUNS:-8}
KILL_STEP_MS=40 # compression of the 14 MB file takes a few hundred ms here: the kills spread over it
BIG=$WORK/big.safetensors # 14 MiB of the vendored weights, tiled
"$PYTHON" tests/tools/tile_model.py "$BIG" 14 "$SRC" tests/data/faceres-subset.safetensors || fail "tile_model.py"
CHECK="$PYTHON tests/integration/fsx/tensor_check.py"
[ -r "$SRC" ] || fail "missing $SRC"

state_is() { [ "$(xattr_get "$1" user.lcpfs.state 2>/dev/null)" = "$2" ]; }
dead_or_compressed() { pid_gone "$DAEMON_PID" || state_is "$1" compressed; }

# After a crash: remount and check that the file is one of its two versions.
check_after_crash() {
	local b=$1 m=$2 what=$3 src=$4
	fusermount3 -u "$m" 2>/dev/null || fusermount3 -uz "$m" 2>/dev/null || true
	mount_fs "$b" "$m"
	local f=$m/model.safetensors st
	st=$(xattr_get "$f" user.lcpfs.state) || fail "$what: no state after remount"
	if [ "$st" = compressed ]; then
		$CHECK header "$src" "$f" > /dev/null || fail "$what: committed version has a wrong header"
		$CHECK floor "$src" "$f" "$FLOOR" > /dev/null || fail "$what: committed version off the floor"
	else
		cmp -s "$src" "$f" || fail "$what: state $st but bytes are not the raw file"
	fi
	local n
	n=$(backing_ls "$b" | wc -l)
	[ "$n" -le 2 ] || fail "$what: leftovers in the backing: $(backing_ls "$b" | tr '\n' ' ')"
	[ "$(ls -A "$m")" = model.safetensors ] || fail "$what: mount lists $(ls -A "$m")"
	unmount_fs "$m" "$DAEMON_PID" || fail "$what: unmount"
	echo "ok: $what: reads as its $st version, $n backing entries"
}

# Named crash points: the daemon's own (LCPFS_CRASH_AT: when a background job
# starts, at the commit gate, right after the commit) and the store's commit
# steps inside the daemon (LCPFS_TEST_CRASH: after the temporaries are synced,
# after the sidecar rename, after the payload rename).
run=0
for spec in LCPFS_CRASH_AT=pack-start LCPFS_CRASH_AT=gate LCPFS_CRASH_AT=committed \
	LCPFS_TEST_CRASH=temps LCPFS_TEST_CRASH=sidecar LCPFS_TEST_CRASH=payload; do
	run=$((run + 1))
	B=$WORK/b$run M=$WORK/m$run
	mkdir -p "$B" "$M"
	export "${spec?}"
	mount_fs "$B" "$M"
	unset "${spec%%=*}"
	cp "$SRC" "$M/model.safetensors"
	poll "$COMMIT_TIMEOUT" pid_gone "$DAEMON_PID" || fail "$spec: daemon did not reach the point"
	{ wait "$DAEMON_PID"; } 2>/dev/null || true
	check_after_crash "$B" "$M" "crash at $spec" "$SRC"
done

# kill -9 at times spread over the compression of a bigger file (a delay, not
# a synchronization: each run checks whatever state the kill left).
for i in $(seq 1 "$KILL_RUNS"); do
	run=$((run + 1))
	B=$WORK/b$run M=$WORK/m$run
	mkdir -p "$B" "$M"
	mount_fs "$B" "$M"
	cp "$BIG" "$M/model.safetensors"
	delay_ms=$(( (i - 1) * KILL_STEP_MS ))
	sleep "$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))"
	kill -9 "$DAEMON_PID" 2>/dev/null || true
	poll 10 pid_gone "$DAEMON_PID" || fail "kill -9 did not stop the daemon"
	{ wait "$DAEMON_PID"; } 2>/dev/null || true
	check_after_crash "$B" "$M" "kill -9 ${delay_ms} ms after cp" "$BIG"
done
echo "crash: all checks passed"
