#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Nobody can freeze the mount with a FIFO, a device or a socket. Under
# allow_other,default_permissions an unprivileged user renames, links,
# unlinks and opens a FIFO, a character device and a socket; each operation
# (and an `ls` by someone else afterwards) must end within a timeout. FIFOs
# named like sidecars on the backing at start-up neither hang the mount nor
# make anything read as container bytes.
set -eu
cd "$(dirname "$0")/../.."
. tests/integration/fsx/mount_lib.sh
. tests/integration/fsx/integrity_lib.sh

B=$WORK/backing M=$WORK/mnt
mkdir -p "$B" "$M"
chmod 755 "$B"
trap 'unblock_fifos "$B"; cleanup' EXIT

# The backing as found at start-up: a compressed file; a compressed file whose
# sidecar was replaced by a FIFO; a FIFO named like the sidecar of a name that
# does not exist; a FIFO with a temporary's name.
make_tensor "$WORK/t.safetensors" 1
"$LCPFS" pack "$WORK/t.safetensors" "$B/packed.safetensors" > /dev/null
"$LCPFS" unpack "$B/packed.safetensors" "$WORK/packed.expected"
"$LCPFS" pack "$WORK/t.safetensors" "$B/beside.safetensors" > /dev/null
rm "$B/.beside.safetensors.lcpfs"
mkfifo "$B/.beside.safetensors.lcpfs" "$B/.nothing.lcpfs" "$B/.lcpfs-tmp.0123456789abcdef.p"

mount_fs "$B" "$M" -o allow_other,default_permissions
bounded "ls of a backing with FIFOs named like sidecars" ls -la "$M" > "$WORK/ls.out" ||
	fail "ls failed"
[ "$(ls -A "$M" | tr '\n' ' ')" = "beside.safetensors packed.safetensors " ] ||
	fail "mount lists: $(ls -A "$M" | tr '\n' ' ')"
bounded "read of a compressed file" cat "$M/packed.safetensors" > "$WORK/packed.out" ||
	fail "read of packed.safetensors"
cmp -s "$WORK/packed.out" "$WORK/packed.expected" || fail "packed.safetensors reads wrong bytes"
if bounded "read of a file whose sidecar is a FIFO" cat "$M/beside.safetensors" > "$WORK/beside.out" 2>/dev/null; then
	fail "a payload whose sidecar is a FIFO was read ($(stat -c %s "$WORK/beside.out") bytes)"
fi
is_container "$WORK/beside.out" && fail "a payload was served as content"
grep -q 'beside.safetensors.*cannot tell' "$WORK/daemon.log" || fail "no log line for the FIFO sidecar"
[ -p "$B/.beside.safetensors.lcpfs" ] && [ -p "$B/.nothing.lcpfs" ] && [ -p "$B/.lcpfs-tmp.0123456789abcdef.p" ] ||
	fail "recovery removed a FIFO that is not its own"
say "start-up with FIFOs named like a sidecar and a temporary: no hang, EIO where it cannot tell"

# Special files through the mount, by an unprivileged user.
mkdir "$M/shared"
chmod 1777 "$M/shared"
S=$M/shared
mknod "$B/shared/null" c 1 3 # /dev/null: made on the backing (mknod needs CAP_MKNOD)
chmod 666 "$B/shared/null"
chown "$UNPRIVILEGED:$UNPRIVILEGED" "$B/shared/null" # sticky directory: its owner may move it

bounded "mkfifo" as_user mkfifo "$S/f" || fail "mkfifo"
bounded "mv of a FIFO" as_user mv "$S/f" "$S/g" || fail "mv of a FIFO"
bounded "ls after mv of a FIFO" ls -la "$S" > /dev/null || fail "ls"
bounded "ln of a FIFO" as_user ln "$S/g" "$S/h" || fail "ln of a FIFO"
[ "$(stat -c %h "$S/g")" = 2 ] || fail "FIFO link count $(stat -c %h "$S/g")"
got=$(bounded "FIFO through the mount" as_user sh -c "echo through > '$S/h' & head -n 1 '$S/g'; wait") ||
	fail "data through the FIFO"
[ "$got" = through ] || fail "FIFO carried '$got'"
bounded "rm of a FIFO" as_user rm "$S/g" "$S/h" || fail "rm of a FIFO"
say "FIFO: mv, ln, open (reader and writer), rm by uid $UNPRIVILEGED, no hang"

bounded "mv of a char device" as_user mv "$S/null" "$S/null2" || fail "mv of a char device"
bounded "ln of a char device" as_user ln "$S/null2" "$S/null3" || fail "ln of a char device"
# Opening it works as /dev/null, or is refused (FUSE mounts are nodev):
# either way it ends, and the daemon never opens it.
bounded "write to a char device" as_user sh -c "echo discard > '$S/null3'" 2>/dev/null || true
[ "$(bounded "read of a char device" as_user cat "$S/null2" 2>/dev/null | wc -c)" = 0 ] ||
	fail "read of /dev/null gave bytes"
[ "$(stat -c %t:%T "$B/shared/null3")" = 1:3 ] || fail "device numbers changed"
bounded "rm of a char device" as_user rm "$S/null2" "$S/null3" || fail "rm of a char device"
say "character device: mv, ln, open (nodev), rm by uid $UNPRIVILEGED"

bounded "socket" as_user "$PYTHON" - "$S" <<'PY' || fail "socket operations"
import os, socket, sys
d = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(d + "/sock")
s.listen(1)
os.rename(d + "/sock", d + "/sock2")
os.link(d + "/sock2", d + "/sock3")
c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
c.connect(d + "/sock3")
a, _ = s.accept()
c.sendall(b"hi")
assert a.recv(2) == b"hi"
for n in ("sock2", "sock3"):
	os.unlink(d + "/" + n)
PY
say "socket: bind, mv, ln, connect, rm by uid $UNPRIVILEGED"

# A compressed file and a FIFO next to each other, renamed over each other.
cp "$WORK/t.safetensors" "$S/model.safetensors"
wait_state "$S/model.safetensors" compressed
chown "$UNPRIVILEGED:$UNPRIVILEGED" "$S/model.safetensors" # sticky directory: its owner may replace it
bounded "mkfifo" as_user mkfifo "$S/pipe"
bounded "mv of a FIFO over a compressed file" as_user mv "$S/pipe" "$S/model.safetensors" ||
	fail "mv of a FIFO over a compressed file"
[ -p "$S/model.safetensors" ] || fail "not a FIFO after mv"
[ "$(backing_ls "$B/shared")" = model.safetensors ] || fail "backing after mv: $(ls -A "$B/shared" | tr '\n' ' ')"
bounded "ls" ls -la "$S" > /dev/null || fail "ls"
say "a FIFO renamed over a compressed file: the sidecar goes, no hang"

unmount_fs "$M" "$DAEMON_PID" || fail "unmount"
echo "special: all checks passed"
