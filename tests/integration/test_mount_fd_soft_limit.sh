#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Listing a directory with more entries than the daemon's soft limit of
# open files works: `ls -l` of 600 files through a daemon started with a
# soft limit of 256 (hard limit unchanged, as under a default systemd unit:
# 1024 soft) shows every file.
# Regression guarded (fixed): the daemon keeps one O_PATH fd per inode the kernel has
# looked up (fs_inode_add) for as long as the kernel caches it, and never
# raises its soft RLIMIT_NOFILE; past the limit every lookup fails with
# EMFILE ("Too many open files") until the kernel forgets inodes, and the
# log blames "it has no name to ask the store about".
set -eu
cd "$(dirname "$0")/../.."
. tests/integration/fsx/mount_lib.sh

B=$WORK/backing M=$WORK/mnt
mkdir -p "$B/many" "$M"
for i in $(seq 1 600); do echo "$i" > "$B/many/f$i"; done
soft=$(ulimit -Sn)
hard=$(ulimit -Hn)
[ "$hard" = unlimited ] || [ "$hard" -ge 2048 ] || { echo "SKIP: hard fd limit $hard too low for this test"; exit 77; }
ulimit -Sn 256
mount_fs "$B" "$M"
ulimit -Sn "$soft"
ls -l "$M/many" > "$WORK/ls.out" 2> "$WORK/ls.err" || true
errors=$(grep -c . "$WORK/ls.err" || true)
[ "$errors" = 0 ] || fail "ls -l of 600 files: $errors errors, first: $(head -n 1 "$WORK/ls.err")"
[ "$(grep -c ' f[0-9]*$' "$WORK/ls.out")" = 600 ] || fail "ls -l listed $(grep -c ' f[0-9]*$' "$WORK/ls.out") files"
say "600 files listed by a daemon with a soft fd limit of 256"
