#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `lcpfs stats` on a tree of 10,000 files (FILES; 100 of them compressed
# tensor files, the rest small raw files, in 100 directories): wall time on
# the backing directory (the store's API) and through a mount (the daemon's
# xattrs), against `du -s` of the same tree in the same run. Each command
# runs once first to warm the kernel's caches, then its best of 3 is printed.
# Target: seconds, not minutes.
set -eu
cd "$(dirname "$0")/../.."
. tests/integration/fsx/mount_lib.sh

FILES=${BENCH_STATS_FILES:-10000}
PACKED=100
DIRS=100
SRC=tests/data/faceres-subset.safetensors

B=$WORK/backing M=$WORK/mnt
mkdir -p "$B" "$M"
echo "building $FILES files ($PACKED compressed by lcpfs pack) in $DIRS directories ..."
"$LCPFS" pack "$SRC" "$B/model.safetensors" > /dev/null
for d in $(seq 1 $DIRS); do mkdir "$B/d$d"; done
for i in $(seq 2 $PACKED); do
	"$LCPFS" pack "$B/model.safetensors" "$B/d$(( i % DIRS + 1 ))/m$i.safetensors" > /dev/null
done
"$PYTHON" - "$B" "$((FILES - PACKED))" "$DIRS" <<'PY'
import os, sys
root, n, dirs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(n):
    with open(os.path.join(root, "d%d" % (i % dirs + 1), "f%d.txt" % i), "w") as f:
        f.write("x" * (i % 3000))
PY
mount_fs "$B" "$M"

# best3 CMD...: best wall time of 3 runs after a warm-up, in seconds.
best3() {
	local best= t0 t1 t
	"$@" > /dev/null
	for _ in 1 2 3; do
		t0=$(date +%s%N)
		"$@" > /dev/null
		t1=$(date +%s%N)
		t=$(( (t1 - t0) / 1000 ))
		[ -z "$best" ] || [ "$t" -lt "$best" ] && best=$t
	done
	printf '%d.%06d' $((best / 1000000)) $((best % 1000000))
}
n=$("$LCPFS" stats --json "$B" | "$PYTHON" -c 'import json,sys; r=json.load(sys.stdin); print(r["files"], r["by_state"]["compressed"]["files"])')
[ "$n" = "$FILES $PACKED" ] || fail "stats counted '$n', expected '$FILES $PACKED'"
t_back=$(best3 "$LCPFS" stats "$B")
t_mnt=$(best3 "$LCPFS" stats "$M")
t_du_back=$(best3 du -s "$B")
t_du_mnt=$(best3 du -s "$M")
unmount_fs "$M" "$DAEMON_PID" || fail "unmount"
printf 'stats, %d files (%d compressed): backing %.3f s, mount %.3f s; reference du -s: backing %.3f s, mount %.3f s\n' \
	"$FILES" "$PACKED" "$t_back" "$t_mnt" "$t_du_back" "$t_du_mnt"
