#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A commit replaces a file as a rename over it does: what was opened before
# the commit keeps reading the raw bytes, whole, until it closes (a read
# descriptor and a read-only MAP_SHARED mapping, each of which read a part
# before the commit); every open after it reads the reconstruction (what
# `lcpfs unpack` of the backing gives), also one made after the old
# readers filled their page cache with raw pages, whole.
# Defects this guards against: before the switch to a new inode at the
# commit, the old reader's raw pages filled the inode's page cache and a
# later open (granted keep_cache) read them; then (1b772d2) the old reader
# switched to the reconstruction at its next read, so a read across the
# commit mixed two versions (issue 14).
set -eu
cd "$(dirname "$0")/../.."
. tests/integration/fsx/mount_lib.sh
. tests/integration/fsx/integrity_lib.sh

B=$WORK/backing M=$WORK/mnt
mkdir -p "$B" "$M"
make_tensor "$WORK/t.safetensors" 21 512
LCPFS_TEST_HOLD=start LCPFS_TEST_HOLD_DIR=$HOLD_DIR mount_fs "$B" "$M"

cp "$WORK/t.safetensors" "$M/x.safetensors"
hold_wait start
"$PYTHON" - "$M/x.safetensors" "$HOLD_DIR" "$WORK" <<'PY' || fail "the reader script failed"
import mmap, os, sys, time
path, hold, work = sys.argv[1:4]
sys.path.insert(0, "tests/integration/fsx")
import held
from held import read_all
def keep(name, data):
    held.keep(work, name, data)
size = os.path.getsize(path)
half = size // 2
old = os.open(path, os.O_RDONLY)          # opened while the file is raw
mapfd = os.open(path, os.O_RDONLY)
mapped = mmap.mmap(mapfd, size, mmap.MAP_SHARED, mmap.PROT_READ)
os.close(mapfd)                           # the mapping holds the file open
oldhead = os.pread(old, half, 0)          # each reads a part before the commit
maphead = mapped[:half]
open(os.path.join(hold, "start.go"), "w").close()
deadline = time.time() + 120
while os.getxattr(path, "user.lcpfs.state") != b"compressed":
    if time.time() > deadline:
        sys.exit("never compressed")
    time.sleep(0.05)
first = os.open(path, os.O_RDONLY)        # an open after the commit
keep("old.bin", oldhead + read_all(old, size)[half:])
keep("map.bin", maphead + mapped[half:])
keep("first.bin", read_all(first, size))
with open(path, "rb") as f:               # a new open after the old readers read all
    keep("after.bin", f.read())
keep("old_again.bin", read_all(old, size))
os.close(first)
os.close(old)
mapped.close()
PY
unmount_fs "$M" "$DAEMON_PID" || fail "unmount"
"$LCPFS" unpack "$B/x.safetensors" "$WORK/recon.bin" || fail "unpack of the backing"
cmp -s "$WORK/t.safetensors" "$WORK/recon.bin" && fail "the reconstruction equals the raw file: the test proves nothing"
cmp -s "$WORK/old.bin" "$WORK/t.safetensors" ||
	fail "a descriptor opened before the commit, read across it, did not read the raw bytes whole"
cmp -s "$WORK/old_again.bin" "$WORK/t.safetensors" ||
	fail "a descriptor opened before the commit read other bytes than the raw file at its second read"
cmp -s "$WORK/map.bin" "$WORK/t.safetensors" ||
	fail "a mapping made before the commit, read across it, did not read the raw bytes whole"
cmp -s "$WORK/first.bin" "$WORK/recon.bin" ||
	fail "a descriptor opened after the commit did not read the reconstruction whole"
if cmp -s "$WORK/after.bin" "$WORK/t.safetensors"; then
	fail "an open after the old readers read the raw bytes they left in a page cache"
fi
cmp -s "$WORK/after.bin" "$WORK/recon.bin" || fail "an open after the old readers read neither version whole"
say "readers from before a commit read the raw bytes; opens after it read the reconstruction"
