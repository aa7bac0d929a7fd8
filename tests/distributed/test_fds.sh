#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Open files stay bounded over a FUSE backing too (issue 9): an lcpfs node
# over a GlusterFS client, started under a limit of 256 open files, creates,
# lists and reads 2,000 files with 100 held open at once, with no error.
# (The same at 1024 and 10,000 files on a local backing:
# tests/integration/test_mount_fds.sh.)
set -u
cd "$(dirname "$0")/../.."
. tests/integration/fsx/mount_lib.sh
. tests/distributed/dist_lib.sh

LIMIT=256 NFILES=2000 HELD=100
gluster_setup 1
S0=${GM[0]}/store
mkdir -p "$S0" "$WORK/n"
prlimit --nofile=$LIMIT:$LIMIT "$LCPFS" "$S0" "$WORK/n" -f 2>> "$WORK/n.log" &
NODE_PID=$!
DAEMON_PIDS+=("$NODE_PID")
MOUNTS+=("$WORK/n")
poll "$MOUNT_TIMEOUT" is_mounted "$WORK/n" || fail "mount under a limit of $LIMIT: $(node_log n)"
out=$("$PYTHON" - "$WORK/n/d" "$NFILES" "$HELD" 2>&1 <<'PY'
import os, sys
d, n, held = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.mkdir(d)
errors = []
for i in range(n):
    try:
        with open("%s/f%d" % (d, i), "wb") as f:
            f.write(b"file %d\n" % i)
    except OSError as e:
        errors.append("create f%d: %s" % (i, e.strerror))
names = os.listdir(d)
if len(names) != n:
    errors.append("listdir: %d names" % len(names))
for name in names:
    try:
        os.stat(os.path.join(d, name))
    except OSError as e:
        errors.append("stat %s: %s" % (name, e.strerror))
opened = [open("%s/f%d" % (d, i), "rb") for i in range(held)]
for i in range(n):
    try:
        with open("%s/f%d" % (d, i), "rb") as f:
            if f.read() != b"file %d\n" % i:
                errors.append("read f%d: wrong bytes" % i)
    except OSError as e:
        errors.append("read f%d: %s" % (i, e.strerror))
for i, f in enumerate(opened):
    if f.read() != b"file %d\n" % i:
        errors.append("held f%d: wrong bytes" % i)
    f.close()
if errors:
    sys.exit("%d errors, the first: %s" % (len(errors), "; ".join(errors[:5])))
print("%d files created, listed and read, %d held open at once" % (n, held))
PY
) && pass fds.gluster "under a limit of $LIMIT open files over GlusterFS: $out" ||
	bad fds.gluster "under a limit of $LIMIT open files over GlusterFS: $out"
grep -qi 'too many open files' "$WORK/n.log" && bad fds.quiet "the node logged: $(grep -i -m1 'too many open files' "$WORK/n.log")" ||
	pass fds.quiet "the node logged no 'too many open files'"
finish
