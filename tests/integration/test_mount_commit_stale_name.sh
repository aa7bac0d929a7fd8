#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A commit while a reader holds the file open makes the committed file a new
# inode; until the daemon has told the kernel to forget the name, the kernel
# still maps the name to the old inode (entries are kept 60 s). An open or a
# user.lcpfs.state read by the name in that moment (held at the daemon's
# "announce" point) must reach the committed file: the reconstruction, whole,
# and "compressed"; never the raw bytes the old inode stands for. Each is
# checked first in a mount of its own (the first one makes the kernel look
# the name up again). The reader from before keeps reading the raw bytes.
set -eu
cd "$(dirname "$0")/../.."
. tests/integration/fsx/mount_lib.sh
. tests/integration/fsx/integrity_lib.sh

make_tensor "$WORK/t.safetensors" 23 512
trap 'hold_go announce; cleanup' EXIT

# run_case FIRST: FIRST (open or state) is what the name is asked first.
run_case() {
	local first=$1 B=$WORK/$1/backing M=$WORK/$1/mnt
	mkdir -p "$B" "$M"
	hold_reset announce
	LCPFS_TEST_HOLD=announce LCPFS_TEST_HOLD_DIR=$HOLD_DIR mount_fs "$B" "$M"
	"$PYTHON" - "$M/x.safetensors" "$HOLD_DIR" "$WORK" "$first" <<'PY' || fail "$first: the reader script failed"
import os, sys, time
path, hold, work, first = sys.argv[1:5]
out = os.path.join(work, first)
sys.path.insert(0, "tests/integration/fsx")
import held
from held import read_all
def keep(name, data):
    held.keep(out, name, data)
raw = open(os.path.join(work, "t.safetensors"), "rb").read()
size = len(raw)
writer = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
done = 0
while done < size:
    done += os.write(writer, raw[done:])
old = os.open(path, os.O_RDONLY)          # open before the job is queued
os.close(writer)                          # the last writer: the job starts
head = os.pread(old, size // 2, 0)
deadline = time.time() + 120
while not os.path.exists(os.path.join(hold, "announce.reached")):
    if time.time() > deadline:
        sys.exit("the commit never came")
    time.sleep(0.05)
def state():
    keep("state.txt", os.getxattr(path, "user.lcpfs.state"))
def reopen():
    new = os.open(path, os.O_RDONLY)      # by the name the kernel still has
    keep("new.bin", read_all(new, size))
    os.close(new)
if first == "open":
    reopen(); state()
else:
    state(); reopen()
open(os.path.join(hold, "announce.go"), "w").close()
keep("old.bin", head + read_all(old, size)[size // 2:])
os.close(old)
PY
	unmount_fs "$M" "$DAEMON_PID" || fail "$first: unmount"
	local out=$WORK/$first
	"$LCPFS" unpack "$B/x.safetensors" "$out/recon.bin" || fail "$first: unpack of the backing"
	cmp -s "$WORK/t.safetensors" "$out/recon.bin" &&
		fail "$first: the reconstruction equals the raw file: the test proves nothing"
	[ "$(cat "$out/state.txt")" = compressed ] ||
		fail "$first: user.lcpfs.state by the name right after the commit: $(cat "$out/state.txt"), wanted compressed"
	cmp -s "$out/new.bin" "$out/recon.bin" ||
		fail "$first: an open by the name right after the commit did not read the reconstruction whole"
	cmp -s "$out/old.bin" "$WORK/t.safetensors" ||
		fail "$first: a descriptor opened before the commit did not read the raw bytes whole"
}
run_case open
run_case state
say "the name reaches the committed file as soon as the commit is done"
