#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A random-operation exerciser (tests/integration/fsx/fsx.c: write, truncate,
# pread, mmap read/write, rename, reopen, fsync) runs thousands of operations
# on an ordinary file through the mount, checked against an in-memory model;
# then the same sequence runs on the backing directory directly and the two
# resulting files must be identical; then three run at once in separate
# directories. The seed is fixed (FSX_SEED overrides).
set -eu
cd "$(dirname "$0")/../.."
. tests/integration/fsx/mount_lib.sh

SEED=${FSX_SEED:-20261127}
NOPS=${FSX_OPS:-6000}
cc -O2 -std=c11 -Wall -Wextra -Werror -o "$WORK/fsx" tests/integration/fsx/fsx.c || fail "cannot build fsx"

B=$WORK/backing M=$WORK/mnt R=$WORK/reference
mkdir -p "$B" "$M" "$R"
mount_fs "$B" "$M"
timeout 300 "$WORK/fsx" "$M" "$NOPS" "$SEED" || fail "exerciser through the mount (seed $SEED)"
timeout 300 "$WORK/fsx" "$R" "$NOPS" "$SEED" > /dev/null || fail "exerciser on the plain directory"
for f in "$R"/fsx-file-*; do
	cmp "$f" "$M/$(basename "$f")" || fail "final file differs from the plain-directory run"
done
# A second seed, with the kernel's caches dropped in between runs.
echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
timeout 300 "$WORK/fsx" "$M" "$NOPS" $((SEED + 1)) || fail "exerciser, seed $((SEED + 1))"
# Three exercisers at once in separate directories: the inode table, the
# handles and the multithreaded loop under concurrent load.
pids=()
for i in 1 2 3; do
	mkdir "$M/par$i"
	timeout 300 "$WORK/fsx" "$M/par$i" $((NOPS / 2)) $((SEED + 10 + i)) > "$WORK/par$i.out" 2>&1 &
	pids+=($!)
done
for i in 1 2 3; do
	wait "${pids[$((i - 1))]}" || fail "parallel exerciser $i: $(tail -n 2 "$WORK/par$i.out")"
	tail -n 1 "$WORK/par$i.out"
done
unmount_fs "$M" "$DAEMON_PID" || fail "unmount"
echo "exerciser: passed"
