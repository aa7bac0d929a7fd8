#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A read-only mount (a fleet node) never serves a compressed file's
# container bytes, even when it looks the file up at the moment a
# read-write mount of the same backing removes it: its probe is held by an
# LD_PRELOAD shim (tests/integration/fsx/probe_gate.c) after it opened NAME and before
# it looks for the sidecar, the read-write mount runs `rm`, and then a
# reader on the node gets ENOENT, EIO or the file's reconstruction.
# The same when the read-write mount materializes the file for a truncate
# (the decoded file renamed over NAME, then the sidecar removed): the file
# still exists and must read as its old or new version.
# Regression guarded (fixed): lcp_store_probe_at finds NAME (the payload, still linked
# when opened) but no sidecar (removed meanwhile) and answers "raw"; the
# node caches that answer with the payload's fd, and `cat` on the node
# prints the lcpfs container ("lcpfsPL\x1a...").
set -eu
cd "$(dirname "$0")/../.."
. tests/integration/fsx/mount_lib.sh
. tests/integration/fsx/integrity_lib.sh

SHIM=$WORK/probe_gate.so
cc -shared -fPIC -O1 -o "$SHIM" tests/integration/fsx/probe_gate.c -ldl || fail "cannot build the shim"
# A sanitizer build's runtime must come first among preloaded libraries.
PRELOAD=$(asan_runtime)
PRELOAD=${PRELOAD:+$PRELOAD:}$SHIM
B=$WORK/backing M1=$WORK/rw
mkdir -p "$B" "$M1"
make_tensor "$WORK/t.safetensors" 121
mount_fs "$B" "$M1"
cp "$WORK/t.safetensors" "$M1/x"
wait_state "$M1/x" compressed
cp "$M1/x" "$WORK/recon"

# node_case NAME WHAT CHANGE...: a fresh read-only node whose probe of NAME
# is held at its sidecar lookup while CHANGE runs through the read-write
# mount; then NAME is read on the node.
node_case() {
	local name=$1 what=$2 gate=$WORK/gate.$1 node=$WORK/ro.$1 lookup rc=0
	shift 2
	mkdir -p "$gate" "$node"
	LD_PRELOAD=$PRELOAD LCPFS_QA_GATE_DIR=$gate LCPFS_QA_GATE_NAME=.$name.lcpfs mount_fs "$B" "$node" -o ro
	stat "$node/$name" > /dev/null 2>&1 &
	lookup=$!
	poll 30 test -e "$gate/arrived" || { : > "$gate/go"; fail "$what: the node never probed $name"; }
	"$@"
	: > "$gate/go"
	wait "$lookup" || true
	cat "$node/$name" > "$WORK/seen" 2> "$WORK/cat.err" || rc=$?
	if [ "$rc" = 0 ]; then
		is_container "$WORK/seen" && fail "$what: the read-only node served the container bytes of $name as its content"
		cmp -s "$WORK/seen" "$WORK/recon" || cmp -s "$WORK/seen" "$WORK/new.$name" ||
			fail "$what: the read-only node served $(stat -c %s "$WORK/seen") bytes that are neither version of $name"
	fi
	say "$what: the node did not serve container bytes (cat: exit $rc $(cat "$WORK/cat.err"))"
}

cp "$WORK/t.safetensors" "$M1/y"
wait_state "$M1/y" compressed
# A truncate also materializes first; the shorter file is no valid tensor
# file any more, so the read-write mount leaves it raw (no new version).
short=$(( $(stat -c %s "$WORK/recon") - 100 ))
head -c "$short" "$WORK/recon" > "$WORK/new.y"
node_case x "removed by the read-write node" rm "$M1/x"
node_case y "truncated (materialized) by the read-write node" truncate -s "$short" "$M1/y"
