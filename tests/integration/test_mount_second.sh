#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A second process on a backing in use never breaks the first: while a
# mount holds a compression between its prepare and its commit (its
# temporaries written), a second mount of the same backing and an offline
# `lcpfs recover` leave its temporaries alone (recovery is skipped while the
# backing is in use), and the compression then commits.
set -eu
cd "$(dirname "$0")/../.."
. tests/integration/fsx/mount_lib.sh
. tests/integration/fsx/integrity_lib.sh

B=$WORK/backing M=$WORK/mnt M2=$WORK/mnt2
mkdir -p "$B" "$M" "$M2"
make_tensor "$WORK/t.safetensors" 9
LCPFS_TEST_HOLD=prepared LCPFS_TEST_HOLD_DIR=$HOLD_DIR mount_fs "$B" "$M"
FIRST=$DAEMON_PID
cp "$WORK/t.safetensors" "$M/model.safetensors"
hold_wait prepared
temps=$(ls -A "$B" | grep -c '^\.lcpfs-tmp\.' || true)
[ "$temps" = 2 ] || fail "$temps temporaries while held, wanted payload and sidecar"
if "$LCPFS" recover "$B" 2> "$WORK/recover.err"; then fail "lcpfs recover ran on a backing in use"; fi
grep -q 'busy' "$WORK/recover.err" || fail "recover: $(cat "$WORK/recover.err")"
mount_fs "$B" "$M2"
SECOND=$DAEMON_PID
grep -q 'another lcpfs process uses this backing: recovery skipped' "$WORK/daemon.log" ||
	fail "the second mount did not skip its recovery"
[ "$(ls -A "$B" | grep -c '^\.lcpfs-tmp\.')" = 2 ] || fail "the first mount's temporaries were removed"
hold_go prepared
DAEMON_PID=$FIRST wait_state "$M/model.safetensors" compressed
unmount_fs "$M2" "$SECOND" || fail "unmount of the second mount"
unmount_fs "$M" "$FIRST" || fail "unmount of the first mount"
[ "$(ls -A "$B" | tr '\n' ' ')" = ".model.safetensors.lcpfs model.safetensors " ] ||
	fail "backing: $(ls -A "$B" | tr '\n' ' ')"
say "a second mount and lcpfs recover leave a running mount's compression alone; it commits"
echo "second: all checks passed"
