#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A compressed file is never served as its container bytes. Its sidecar
# replaced by a symlink or a FIFO: reads fail with EIO and a log line, and
# nothing hangs. Its sidecar deleted: it reads as the bytes it has (nothing
# else to read them as; the log points at the lost sidecar) and the
# payload is kept, so restoring the sidecar brings the file back. A damaged
# payload header, then `lcpfs recover`, then a mount: EIO, state compressed,
# never raw. The daemon out of file descriptors (prlimit) while opening a
# compressed file: EIO, and the right bytes once descriptors are back.
set -eu
cd "$(dirname "$0")/../.."
. tests/integration/fsx/mount_lib.sh
. tests/integration/fsx/integrity_lib.sh

B=$WORK/backing M=$WORK/mnt
mkdir -p "$B" "$M"
trap 'unblock_fifos "$B"; cleanup' EXIT
make_tensor "$WORK/t.safetensors" 5
for n in sym fifo gone header fds; do
	"$LCPFS" pack "$WORK/t.safetensors" "$B/$n.safetensors" > /dev/null
done
"$LCPFS" unpack "$B/sym.safetensors" "$WORK/expected"
mv "$B/.sym.safetensors.lcpfs" "$WORK/sym.sidecar"
ln -s "$WORK/sym.sidecar" "$B/.sym.safetensors.lcpfs"
mv "$B/.fifo.safetensors.lcpfs" "$WORK/fifo.sidecar"
mkfifo "$B/.fifo.safetensors.lcpfs"
mv "$B/.gone.safetensors.lcpfs" "$WORK/gone.sidecar"
printf m | dd of="$B/header.safetensors" bs=1 conv=notrunc status=none
bounded "lcpfs recover" "$LCPFS" recover "$B" 2> /dev/null || fail "recover"
[ -e "$B/.header.safetensors.lcpfs" ] || fail "recover removed the sidecar of a damaged header"

# expect_eio NAME WHY: reading NAME fails, without container bytes or a hang.
expect_eio() {
	local out=$WORK/$1.out
	if bounded "read of $1" cat "$M/$1" > "$out" 2> "$WORK/$1.err"; then
		fail "$2: read succeeded ($(stat -c %s "$out") bytes)"
	fi
	is_container "$out" && fail "$2: container bytes served"
	grep -q 'Input/output error' "$WORK/$1.err" || fail "$2: $(cat "$WORK/$1.err")"
	return 0
}

mount_fs "$B" "$M"
bounded "ls" ls -l "$M" > /dev/null || fail "ls"
expect_eio sym.safetensors "sidecar replaced by a symlink"
expect_eio fifo.safetensors "sidecar replaced by a FIFO"
grep -q 'sym.safetensors: cannot tell' "$WORK/daemon.log" || fail "no log line for the symlinked sidecar"
expect_eio header.safetensors "damaged payload header after recover"
[ "$(xattr_get "$M/header.safetensors" user.lcpfs.state)" = compressed ] ||
	fail "damaged header: state $(xattr_get "$M/header.safetensors" user.lcpfs.state)"
grep -q 'header.safetensors: damaged' "$WORK/daemon.log" || fail "no log line for the damaged header"
say "sidecar as a symlink or a FIFO, damaged header after recover: EIO, logged, no hang"

# The sidecar deleted: the payload's own bytes (nothing else to read them
# as), kept; the log says what happened; the sidecar restored brings it back.
[ "$(xattr_get "$M/gone.safetensors" user.lcpfs.state)" = raw ] || fail "gone: not raw"
grep -q 'gone.safetensors: its bytes are an lcpfs payload, but no sidecar' "$WORK/daemon.log" ||
	fail "no log line about the lost sidecar"
unmount_fs "$M" "$DAEMON_PID" || fail "unmount"
[ -e "$B/gone.safetensors" ] || fail "the payload of a lost sidecar was removed"
mv "$WORK/gone.sidecar" "$B/.gone.safetensors.lcpfs"
rm "$B/.sym.safetensors.lcpfs" "$B/.fifo.safetensors.lcpfs"
mv "$WORK/sym.sidecar" "$B/.sym.safetensors.lcpfs"
mv "$WORK/fifo.sidecar" "$B/.fifo.safetensors.lcpfs"
mount_fs "$B" "$M"
for n in gone sym fifo; do
	cmp -s "$M/$n.safetensors" "$WORK/expected" || fail "$n: restored sidecar, wrong bytes"
done
say "sidecar deleted: its payload kept and reading as its bytes; sidecars restored: whole again"

# Out of file descriptors while the daemon opens a compressed file.
fds=$(ls "/proc/$DAEMON_PID/fd" | wc -l)
soft=$(prlimit --pid "$DAEMON_PID" --nofile --noheadings --output SOFT)
# Room for the probe's directory fd, none for the payload and sidecar.
prlimit --pid "$DAEMON_PID" --nofile=$((fds + 1)): || fail "prlimit"
expect_eio fds.safetensors "too many open files"
grep -q 'fds.safetensors: cannot tell.*too many open files' "$WORK/daemon.log" ||
	fail "no log line for EMFILE"
prlimit --pid "$DAEMON_PID" --nofile="$soft": || fail "prlimit back to $soft"
bounded "read after EMFILE" cat "$M/fds.safetensors" > "$WORK/fds.out" || fail "read once descriptors are back"
cmp -s "$WORK/fds.out" "$WORK/expected" || fail "fds: wrong bytes once descriptors are back"
unmount_fs "$M" "$DAEMON_PID" || fail "unmount"
say "EMFILE while opening a compressed file: EIO and a log line; asked again, right bytes"
echo "sidecar: all checks passed"
