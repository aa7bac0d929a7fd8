#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The inode number of a file in the mount is that of its object on the
# backing (lcpfs(1), BUGS): it changes when the file is compressed. Stat of
# the name and readdir's d_ino agree with the payload's number afterwards;
# a descriptor held open across the commit keeps the raw file's number, as
# it keeps reading the raw file (the commit is a rename over the name), and
# that object lives while the descriptor does, so no two files of the mount
# ever share one. (Giving the committed file the raw file's number instead
# was judged unsafe: the backing may reuse it for another file, and tar,
# rsync -H, du, cp and mv would take the two for one.)
set -eu
cd "$(dirname "$0")/../.."
. tests/integration/fsx/mount_lib.sh
. tests/integration/fsx/integrity_lib.sh

B=$WORK/backing M=$WORK/mnt
mkdir -p "$B" "$M"
make_tensor "$WORK/t.safetensors" 101
LCPFS_TEST_HOLD=start LCPFS_TEST_HOLD_DIR=$HOLD_DIR mount_fs "$B" "$M"
trap 'hold_go start; cleanup' EXIT
cp "$WORK/t.safetensors" "$M/x"
hold_wait start
"$PYTHON" - "$M" "$B" "$HOLD_DIR" <<'PY' || fail "inode numbers disagree with the backing"
import os, sys, time
m, b, hold = sys.argv[1:4]
path = os.path.join(m, "x")
fd = os.open(path, os.O_RDONLY)
before, raw = os.fstat(fd).st_ino, os.stat(os.path.join(b, "x")).st_ino
if before != raw:
    sys.exit("raw: the mount says %d, the backing %d" % (before, raw))
open(os.path.join(hold, "start.go"), "w").close()
deadline = time.time() + 120
while os.getxattr(path, "user.lcpfs.state") != b"compressed":
    if time.time() > deadline:
        sys.exit("never compressed")
    time.sleep(0.05)
payload = os.stat(os.path.join(b, "x")).st_ino
if payload == raw:
    sys.exit("the payload kept the raw file's inode: the test proves nothing")
after = (os.fstat(fd).st_ino, os.stat(path).st_ino,
         [e.inode() for e in os.scandir(m) if e.name == "x"][0])
print("raw %d; payload %d; after the commit: fstat %d, stat %d, readdir %d"
      % ((raw, payload) + after))
sys.exit(0 if after == (raw, payload, payload) else 1)
PY
say "the inode number is the backing object's, before and after the commit"
