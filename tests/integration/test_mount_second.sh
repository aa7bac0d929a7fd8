#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A second process on a backing in use never breaks the first: while a
# mount holds a compression between its prepare and its commit (its
# temporaries written), an offline `lcpfs recover` is refused (busy), a
# second read-write mount of the same backing is refused with a clear
# error (two writers would write one file in place at once), a read-only
# mount leaves the temporaries alone, and the compression then commits.
# Once the first mount is gone, a read-write mount is accepted again.
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

# A second read-write mount: refused once its wait for the writer lock
# (5 s) is over, nothing mounted.
MOUNTS+=("$M2")
"$LCPFS" "$B" "$M2" -f 2> "$WORK/second.err" &
REFUSED=$!
DAEMON_PIDS+=("$REFUSED")
poll "$MOUNT_TIMEOUT" pid_gone "$REFUSED" || fail "a second read-write mount was not refused (mounted: $(is_mounted "$M2" && echo yes || echo no))"
rc=0
wait "$REFUSED" || rc=$?
[ "$rc" != 0 ] || fail "the refused mount exited 0"
is_mounted "$M2" && fail "the refused mount is mounted"
grep -q "another read-write lcpfs mount of this backing directory is running" "$WORK/second.err" ||
	fail "no clear error for the second read-write mount: $(cat "$WORK/second.err")"
say "a second read-write mount is refused: $(cat "$WORK/second.err")"

mount_fs "$B" "$M2" -o ro
SECOND=$DAEMON_PID
[ "$(ls -A "$B" | grep -c '^\.lcpfs-tmp\.')" = 2 ] || fail "the first mount's temporaries were removed"
hold_go prepared
DAEMON_PID=$FIRST wait_state "$M/model.safetensors" compressed
unmount_fs "$M2" "$SECOND" || fail "unmount of the second mount"
unmount_fs "$M" "$FIRST" || fail "unmount of the first mount"
[ "$(backing_ls "$B" | tr '\n' ' ')" = ".model.safetensors.lcpfs model.safetensors " ] ||
	fail "backing: $(ls -A "$B" | tr '\n' ' ')"
say "lcpfs recover and a read-only mount leave a running mount's compression alone; it commits"

mount_fs "$B" "$M"
cmp -s "$M/model.safetensors" "$WORK/t.safetensors" && fail "the committed file reads as its raw bytes"
unmount_fs "$M" "$DAEMON_PID" || fail "unmount"
say "after the first mount ended, a read-write mount is accepted again"
echo "second: all checks passed"
