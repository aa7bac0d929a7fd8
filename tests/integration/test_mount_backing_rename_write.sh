#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A compressed file open for writing through the mount whose name changes
# on the backing (renamed by another machine sharing the backing, by an
# admin, or turned raw in place by `lcpfs unpack B/x B/x`) cannot freeze the
# daemon: the next write through the open descriptor ends (done, or failed
# with an error) within seconds, and the daemon does not flood its log.
# Defect on main: materialize() gets LCP_ERR_NOENT from the store (the name
# holds no compressed file any more), returns 0 as if the file were raw;
# fs_tensor_write_fd sees the inode still compressed and calls it again,
# forever: one request thread spins at 100% CPU, logs "cannot materialize
# for writing: no such file" about 400,000 times a second (15 GB in 10
# minutes here), and the writer hangs in D state until the daemon dies.
set -eu
cd "$(dirname "$0")/../.."
. tests/integration/fsx/mount_lib.sh
. tests/integration/fsx/integrity_lib.sh

B=$WORK/backing M=$WORK/mnt
mkdir -p "$B" "$M"
make_tensor "$WORK/t.safetensors" 81
mount_fs "$B" "$M"
cp "$WORK/t.safetensors" "$M/x"
wait_state "$M/x" compressed

# check_write WHAT NAME CHANGE...: opens NAME for writing, runs CHANGE on the backing,
# then writes one byte through the open descriptor.
check_write() {
	local what=$1 name=$2 writer
	shift 2
	exec 3<> "$M/$name"
	"$@"
	# Two writes: the second must end the same way and log nothing new.
	"$PYTHON" -c 'import os
for _ in range(2):
    try: os.pwrite(3, b"\0", 1000)
    except OSError as e: print(e)' > "$WORK/write.err" 2>&1 &
	writer=$!
	if ! poll 5 pid_gone "$writer"; then
		local log=$(stat -c %s "$WORK/daemon.log")
		kill -9 "$DAEMON_PID" # stop the spinning daemon before its log fills the disk
		fail "$what: a one-byte write did not end within 5 s; the daemon log grew to $log bytes"
	fi
	wait "$writer" || true
	exec 3>&-
	local log=$(stat -c %s "$WORK/daemon.log")
	[ "$log" -lt 100000 ] || fail "$what: the daemon log grew to $log bytes"
	say "$what: the write ended ($(tail -c 200 "$WORK/write.err" | tr '\n' ' '))"
}

rename_on_backing() { mv "$B/x" "$B/y"; mv "$B/.x.lcpfs" "$B/.y.lcpfs"; }
check_write "renamed on the backing" x rename_on_backing
n=$(grep -c "cannot materialize" "$WORK/daemon.log" || true)
[ "$n" -eq 1 ] || fail "two failed writes logged 'cannot materialize' $n times, want once"
say "logged once"

# Unpacked in place by the offline tool: a raw file of another inode takes
# the name; the write must end too (failed: the object written to is gone).
cp "$WORK/t.safetensors" "$M/z"
wait_state "$M/z" compressed
check_write "unpacked in place on the backing" z "$LCPFS" unpack "$B/z" "$B/z"
