#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A file keeps its inode number when it is compressed: POSIX tools take
# (st_dev, st_ino) as a file's identity (tail -F, rsync -H, tar and du
# hard-link detection, os.path.samefile, caches keyed by inode), so fstat of
# a descriptor held open across the commit, and stat of the name, give the
# same st_ino before and after, and readdir's d_ino agrees.
# Defect on main: the mount reports the backing object's inode number, and
# a commit (like a materialize) puts a new backing object (the payload)
# behind the same file, so st_ino changes under an open descriptor.
set -eu
cd "$(dirname "$0")/../.."
. tests/integration/fsx/mount_lib.sh
. tests/integration/fsx/integrity_lib.sh

B=$WORK/backing M=$WORK/mnt
mkdir -p "$B" "$M"
make_tensor "$WORK/t.safetensors" 101
LCPFS_TEST_HOLD=start LCPFS_TEST_HOLD_DIR=$HOLD_DIR mount_fs "$B" "$M"
cp "$WORK/t.safetensors" "$M/x"
hold_wait start
"$PYTHON" - "$M" "$HOLD_DIR" <<'PY' || fail "st_ino changed when the file was compressed"
import os, sys, time
m, hold = sys.argv[1:3]
path = os.path.join(m, "x")
fd = os.open(path, os.O_RDONLY)
before = os.fstat(fd).st_ino
open(os.path.join(hold, "start.go"), "w").close()
deadline = time.time() + 120
while os.getxattr(path, "user.lcpfs.state") != b"compressed":
    if time.time() > deadline:
        sys.exit("never compressed")
    time.sleep(0.05)
after = (os.fstat(fd).st_ino, os.stat(path).st_ino,
         [e.inode() for e in os.scandir(m) if e.name == "x"][0])
print("st_ino before the commit %d; after: fstat %d, stat %d, readdir %d" % ((before,) + after))
sys.exit(0 if after == (before, before, before) else 1)
PY
say "the inode number survives compression"
