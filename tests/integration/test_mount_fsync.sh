#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A slow fsync (held at the daemon's "fsync" hold point, as on a slow or
# hung network backing) holds no lock other requests need: while it waits,
# a read through the same open file, a stat of the file (attributes not
# cached) and a rename in the mount all answer. The same for the fsynced
# empty file an O_TRUNC open of a compressed file writes (hold point
# "discard"): lookups and renames answer meanwhile.
# Regressions: fs_fsync ran fsync(2) holding the handle's lock; a read of
# the same handle then waited for it holding the inode's lock, a getattr of
# the file waited for that holding the namespace lock, and a rename queued
# for the namespace lock stopped every lookup of the mount. An O_TRUNC open
# of a compressed file wrote and fsynced its empty file holding the
# namespace lock for writing.
set -eu
cd "$(dirname "$0")/../.."
. tests/integration/fsx/mount_lib.sh
. tests/integration/fsx/integrity_lib.sh

ANSWER_TIMEOUT=10 # seconds a request may take while the fsync is held
COMMIT_TIMEOUT=120 # seconds for one small file's compression on a busy 2-core machine

B=$WORK/backing M=$WORK/mnt
mkdir -p "$B" "$M"
head -c 1M /dev/urandom > "$B/f"
echo other > "$B/g"
LCPFS_TEST_HOLD=fsync LCPFS_TEST_HOLD_DIR=$HOLD_DIR mount_fs "$B" "$M" -o attr_timeout=0
# One process holds the file open; one thread fsyncs it, another reads it
# through the same descriptor (O_DIRECT: the read reaches the daemon).
"$PYTHON" - "$M/f" "$HOLD_DIR" "$ANSWER_TIMEOUT" > "$WORK/py.out" 2>&1 <<'PY' &
import os, sys, threading, time
path, hold, limit = sys.argv[1], sys.argv[2], float(sys.argv[3])
fd = os.open(path, os.O_RDWR | os.O_DIRECT)
os.pwrite(fd, b"x" * 4096, 0)
t = threading.Thread(target=os.fsync, args=(fd,))
t.start()
deadline = time.monotonic() + 120
while not os.path.exists(os.path.join(hold, "fsync.reached")):
    if time.monotonic() > deadline:
        sys.exit("the fsync never reached the hold point")
    time.sleep(0.05)
done = []
r = threading.Thread(target=lambda: done.append(len(os.pread(fd, 4096, 8192))), daemon=True)
r.start()
r.join(limit)
print("read:", "answered" if done else "stuck", flush=True)
t.join()  # until the test lets the fsync go
os.close(fd)
PY
py=$!
# Failing while the fsync is held: let it go first, so that nothing waits
# out the hold's 120 s.
held_fail() { hold_go fsync; fail "$@"; }
hold_wait fsync
poll "$((ANSWER_TIMEOUT + 5))" grep -q "^read:" "$WORK/py.out" || held_fail "the reader never finished: $(cat "$WORK/py.out")"
timeout "$ANSWER_TIMEOUT" stat "$M/f" > /dev/null || held_fail "stat of the file hangs while its fsync is held"
timeout "$ANSWER_TIMEOUT" mv "$M/g" "$M/g2" || held_fail "a rename hangs while an fsync is held"
timeout "$ANSWER_TIMEOUT" stat "$M/g2" > /dev/null || held_fail "a lookup hangs while an fsync is held"
hold_go fsync
wait "$py" || fail "the fsync process failed: $(cat "$WORK/py.out")"
grep -qx "read: answered" "$WORK/py.out" || fail "a read of the same open file hangs while its fsync is held"
say "a held fsync blocks no read, stat, rename or lookup"
unmount_fs "$M" "$DAEMON_PID" || fail "unmount"

make_tensor "$WORK/t.safetensors" 9
LCPFS_TEST_HOLD=discard LCPFS_TEST_HOLD_DIR=$HOLD_DIR mount_fs "$B" "$M" -o attr_timeout=0
cp "$WORK/t.safetensors" "$M/t"
wait_state "$M/t" compressed
: > "$M/t" &
trunc=$!
hold_wait discard
held_fail() { hold_go discard; fail "$@"; }
timeout "$ANSWER_TIMEOUT" stat "$M/f" > /dev/null || held_fail "stat hangs while an O_TRUNC's empty file is written"
timeout "$ANSWER_TIMEOUT" mv "$M/g2" "$M/g3" || held_fail "a rename hangs while an O_TRUNC's empty file is written"
hold_go discard
wait "$trunc" || fail "the O_TRUNC open failed"
[ "$(stat -c %s "$M/t")" = 0 ] || fail "t is $(stat -c %s "$M/t") bytes after the O_TRUNC"
[ ! -e "$B/.t.lcpfs" ] || fail "the sidecar of the emptied file is left"
say "an O_TRUNC of a compressed file blocks no lookup or rename while its empty file is written"
