#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A reader that opened a file while it was raw and reads it after its
# compression committed must not make later readers see raw bytes: every
# open after the commit reads the reconstruction (what `lcpfs unpack` of the
# backing gives), the same bytes each time; so does the old reader (the
# page cache is the inode's: after a commit it holds one version only).
# Defect on main: the old handle keeps its raw fd (resolve_handle), its
# reads fill the shared page cache with raw pages, and the next open is
# granted keep_cache (unchanged_since_last_open), so it reads those pages.
set -eu
cd "$(dirname "$0")/../.."
. tests/integration/fsx/mount_lib.sh
. tests/integration/fsx/integrity_lib.sh

B=$WORK/backing M=$WORK/mnt
mkdir -p "$B" "$M"
make_tensor "$WORK/t.safetensors" 21
LCPFS_TEST_HOLD=start LCPFS_TEST_HOLD_DIR=$HOLD_DIR mount_fs "$B" "$M"

cp "$WORK/t.safetensors" "$M/x.safetensors"
hold_wait start
"$PYTHON" - "$M/x.safetensors" "$HOLD_DIR" "$WORK" <<'PY' || fail "the reader script failed"
import os, sys, time
path, hold, work = sys.argv[1:4]
size = os.path.getsize(path)
old = os.open(path, os.O_RDONLY)          # opened while the file is raw
open(os.path.join(hold, "start.go"), "w").close()
deadline = time.time() + 120
while os.getxattr(path, "user.lcpfs.state") != b"compressed":
    if time.time() > deadline:
        sys.exit("never compressed")
    time.sleep(0.05)
os.close(os.open(path, os.O_RDONLY))      # an open after the commit
oldbytes = os.pread(old, size, 0)         # the old reader reads everything
open(os.path.join(work, "old.bin"), "wb").write(oldbytes)
with open(path, "rb") as f:               # a new reader
    open(os.path.join(work, "after.bin"), "wb").write(f.read())
os.close(old)
PY
unmount_fs "$M" "$DAEMON_PID" || fail "unmount"
"$LCPFS" unpack "$B/x.safetensors" "$WORK/recon.bin" || fail "unpack of the backing"
cmp -s "$WORK/t.safetensors" "$WORK/recon.bin" && fail "the reconstruction equals the raw file: the test proves nothing"
if cmp -s "$WORK/after.bin" "$WORK/t.safetensors"; then
	fail "a reader that opened after the commit read the raw bytes left in the page cache by a reader from before it"
fi
cmp -s "$WORK/after.bin" "$WORK/recon.bin" || fail "a reader that opened after the commit read neither version whole"
cmp -s "$WORK/old.bin" "$WORK/recon.bin" || fail "a reader opened before the commit read other bytes than the reconstruction after it"
say "readers after a commit read the reconstruction"
