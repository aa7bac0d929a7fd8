#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `lcpfs verify` on a backing directory that a mount is using never calls a
# healthy compressed file "DAMAGED" or "raw (not packed)": while the mount
# renames and exchanges two compressed files (x and y, both intact all
# along), every verify of x says "ok", or fails because x is absent at that
# instant, or says it cannot tell now; never damage, never raw.
# verify decides from one store probe per try (never a second, racing
# access() check) and retries a name the probe cannot tell now; the probe
# says "cannot tell" for a payload renamed away while it looked for the
# sidecar. Before that, verify printed "DAMAGED: ... cannot tell now" (exit
# 1) or "raw (not packed)" (exit 0) within a second or two of renames.
# The renames race the verifies until the first wrong verdict or
# VERIFY_SECONDS (default 10).
set -eu
cd "$(dirname "$0")/../.."
. tests/integration/fsx/mount_lib.sh
. tests/integration/fsx/integrity_lib.sh

B=$WORK/backing M=$WORK/mnt
mkdir -p "$B" "$M"
make_tensor "$WORK/x.src" 61
make_tensor "$WORK/y.src" 62
mount_fs "$B" "$M"
cp "$WORK/x.src" "$M/x"
cp "$WORK/y.src" "$M/y"
wait_state "$M/x" compressed
wait_state "$M/y" compressed

: > "$WORK/renaming"
"$PYTHON" - "$M" "$WORK/renaming" <<'PY' &
import ctypes, os, sys
m, flag = sys.argv[1:3]
libc = ctypes.CDLL(None, use_errno=True)
RENAME_EXCHANGE = 2
while os.path.exists(flag):
    libc.renameat2(-100, (m + "/x").encode(), -100, (m + "/y").encode(), RENAME_EXCHANGE)
    os.rename(m + "/x", m + "/z")
    os.rename(m + "/z", m + "/x")
PY
RENAMER=$!
trap 'rm -f "$WORK/renaming"; wait "$RENAMER" 2>/dev/null; cleanup' EXIT

deadline=$(( $(date +%s) + ${VERIFY_SECONDS:-10} ))
n=0
while [ "$(date +%s)" -lt "$deadline" ]; do
	n=$((n + 1))
	rc=0
	out=$("$LCPFS" verify "$B/x" 2>&1) || rc=$?
	case $out in
	*": ok") ;;
	*"No such file or directory") ;;
	*DAMAGED*) fail "verify #$n of a healthy compressed file under renames: '$out' (exit $rc)" ;;
	*"raw (not packed)"*) fail "verify #$n of a compressed file under renames: '$out' (exit $rc)" ;;
	*"cannot tell now, try again"*) [ "$rc" = 3 ] || fail "verify #$n: '$out' with exit $rc, not 3" ;;
	*) fail "verify #$n: unexpected '$out' (exit $rc)" ;;
	esac
done
rm -f "$WORK/renaming"
wait "$RENAMER" || fail "the renamer failed"
cmp -s "$M/x" "$M/y" && fail "x and y read the same"
"$LCPFS" verify "$B/x" "$B/y" > /dev/null || fail "x or y damaged after the renames"
say "$n verifies during renames: none called a healthy file damaged or raw"
