#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The daemon's open files are bounded by what is in use, not by what the
# kernel knows (issue 9: one O_PATH fd per known inode ran out at 1024).
# The daemon raises its soft open-file limit to the hard one at start; and
# started under a limit of 1024 it cannot raise, 10,000 files are created,
# listed with their attributes and read back through the mount with no
# error, while 300 of them are held open at once; and 1,500 compressed
# files (more than the limit) are listed and read, 100 held open at once.
set -eu
cd "$(dirname "$0")/../.."
. tests/integration/fsx/mount_lib.sh
. tests/integration/fsx/integrity_lib.sh

NFILES=10000
NCOMPRESSED=1500
LIMIT=1024
HELD=300 # open at once, well under LIMIT: the daemon needs one fd per open file
B=$WORK/backing M=$WORK/mnt
mkdir -p "$B" "$M"

# Started with a soft limit of 512 under a hard one of 4096, the daemon
# raises its own to 4096.
prlimit --nofile=512:4096 "$LCPFS" "$B" "$M" -f 2>> "$WORK/daemon.log" &
DAEMON_PID=$!
DAEMON_PIDS+=("$DAEMON_PID")
MOUNTS+=("$M")
poll "$MOUNT_TIMEOUT" is_mounted "$M" || fail "mount did not appear"
soft=$(prlimit --pid "$DAEMON_PID" --nofile --noheadings --output SOFT)
[ "$soft" = 4096 ] || fail "soft open-file limit $soft after start, wanted the hard limit 4096"
unmount_fs "$M" "$DAEMON_PID" || fail "unmount"
say "the daemon raised its soft open-file limit from 512 to the hard limit 4096"

# Compressed files, more than the limit: one packed model's payload and
# sidecar copied under 1,500 names (each pair agrees; only bytes are read).
make_tensor "$WORK/t.safetensors" 5 64
"$LCPFS" pack "$WORK/t.safetensors" "$WORK/packed.safetensors" > /dev/null || fail "pack"
"$LCPFS" unpack "$WORK/packed.safetensors" "$WORK/t.rec" || fail "unpack"
mkdir "$B/comp"
for ((i = 0; i < NCOMPRESSED; i++)); do
	cp "$WORK/packed.safetensors" "$B/comp/c$i.safetensors"
	cp "$WORK/.packed.safetensors.lcpfs" "$B/comp/.c$i.safetensors.lcpfs"
done

# Started under a limit of 1024 it cannot raise (the common default).
prlimit --nofile=$LIMIT:$LIMIT "$LCPFS" "$B" "$M" -f 2>> "$WORK/daemon.log" &
DAEMON_PID=$!
DAEMON_PIDS+=("$DAEMON_PID")
poll "$MOUNT_TIMEOUT" is_mounted "$M" || fail "mount did not appear"
"$PYTHON" - "$M/many" "$NFILES" "$HELD" <<'PY' || fail "files through a daemon limited to $LIMIT open files"
import os, sys
d, n, held = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.mkdir(d)
body = lambda i: (b"file %d\n" % i) * (1 + i % 7)
errors = []
def note(what, e):
    if len(errors) < 5:
        errors.append("%s: %s" % (what, e))
    else:
        errors.append(None)
for i in range(n):
    try:
        with open("%s/f%05d" % (d, i), "wb") as f:
            f.write(body(i))
    except OSError as e:
        note("create f%05d" % i, e.strerror)
names = sorted(os.listdir(d))
if len(names) != n:
    note("listdir", "%d names, wanted %d" % (len(names), n))
for name in names:
    try:
        st = os.stat(os.path.join(d, name))
        if st.st_size != len(body(int(name[1:]))):
            note("stat " + name, "size %d" % st.st_size)
    except OSError as e:
        note("stat " + name, e.strerror)
opened = []
for i in range(held):
    try:
        opened.append((i, open("%s/f%05d" % (d, i), "rb")))
    except OSError as e:
        note("hold f%05d" % i, e.strerror)
for i in range(n):
    try:
        with open("%s/f%05d" % (d, i), "rb") as f:
            if f.read() != body(i):
                note("read f%05d" % i, "wrong bytes")
    except OSError as e:
        note("read f%05d" % i, e.strerror)
for i, f in opened:
    try:
        if f.read() != body(i):
            note("held f%05d" % i, "wrong bytes")
        f.close()
    except OSError as e:
        note("held f%05d" % i, e.strerror)
if errors:
    shown = [e for e in errors if e]
    sys.exit("%d errors, the first: %s" % (len(errors), "; ".join(shown)))
print("created, listed, stat'ed and read %d files, %d held open at once" % (n, held))
PY
"$PYTHON" - "$M/comp" "$NCOMPRESSED" "$WORK/t.rec" <<'PY' || fail "compressed files through a daemon limited to $LIMIT open files"
import os, sys
d, n, rec = sys.argv[1], int(sys.argv[2]), open(sys.argv[3], "rb").read()
errors = []
names = sorted(os.listdir(d))
if len(names) != n:
    errors.append("listdir: %d names, wanted %d" % (len(names), n))
for name in names:
    try:
        if os.stat(os.path.join(d, name)).st_size != len(rec):
            errors.append("stat %s: not the logical size" % name)
        if os.getxattr(os.path.join(d, name), "user.lcpfs.state") != b"compressed":
            errors.append("%s: not compressed" % name)
    except OSError as e:
        errors.append("stat %s: %s" % (name, e.strerror))
held = []
for name in names[:100]:
    held.append(open(os.path.join(d, name), "rb"))
for name in names:
    try:
        with open(os.path.join(d, name), "rb") as f:
            if f.read() != rec:
                errors.append("read %s: not the reconstruction" % name)
    except OSError as e:
        errors.append("read %s: %s" % (name, e.strerror))
for f in held:
    if f.read() != rec:
        errors.append("held %s: not the reconstruction" % f.name)
    f.close()
if errors:
    sys.exit("%d errors, the first: %s" % (len(errors), "; ".join(errors[:5])))
print("listed, stat'ed and read %d compressed files, 100 held open at once" % n)
PY
grep -qi 'too many open files' "$WORK/daemon.log" && fail "the daemon logged: $(grep -i -m1 'too many open files' "$WORK/daemon.log")"
fds=$(ls "/proc/$DAEMON_PID/fd" | wc -l)
say "$NFILES plain and $NCOMPRESSED compressed files listed and read under a limit of $LIMIT open files ($fds open now)"
unmount_fs "$M" "$DAEMON_PID" || fail "unmount"
echo "fds: all checks passed"
