#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# What a compression must keep besides bytes: a chmod 6755 and a chown made
# while the file is being compressed (held between prepare and commit) are
# there after the commit; setuid and setgid survive the commit, a
# materialize (first write) and the recompression. `touch` of a compressed
# file leaves it compressed with identical bytes. Names of 249..255 bytes
# are compressed, renamed, linked and read back.
set -eu
cd "$(dirname "$0")/../.."
. tests/integration/fsx/mount_lib.sh
. tests/integration/fsx/integrity_lib.sh

B=$WORK/backing M=$WORK/mnt
mkdir -p "$B" "$M"
make_tensor "$WORK/t.safetensors" 7
LCPFS_TEST_HOLD=prepared LCPFS_TEST_HOLD_DIR=$HOLD_DIR mount_fs "$B" "$M"

mode_owner() { stat -c '%a %u:%g' "$1"; }

# chmod and chown while the compression is held after its prepare.
F=$M/model.safetensors
cp "$WORK/t.safetensors" "$F"
hold_wait prepared
chown 1234:2345 "$F"
chmod 6755 "$F"
hold_go prepared
wait_state "$F" compressed
[ "$(mode_owner "$F")" = "6755 1234:2345" ] || fail "after the commit: $(mode_owner "$F")"
[ "$(mode_owner "$B/model.safetensors")" = "6755 1234:2345" ] || fail "backing payload: $(mode_owner "$B/model.safetensors")"
[ -e "$B/.model.safetensors.lcpfs" ] || fail "not compressed on the backing"
say "chown and chmod 6755 during compression: kept by the commit"

# setuid/setgid through a materialize (first write) and the recompression.
cp "$F" "$WORK/recon"
off=$(( $(stat -c %s "$F") - 4096 ))
dd if="$WORK/t.safetensors" bs=1 skip="$off" count=16 of="$WORK/patch" status=none
dd if="$WORK/patch" of="$F" bs=1 seek="$off" conv=notrunc status=none
[ "$(mode_owner "$F")" = "6755 1234:2345" ] || fail "after the materialize: $(mode_owner "$F")"
wait_state "$F" compressed
[ "$(mode_owner "$F")" = "6755 1234:2345" ] || fail "after recompression: $(mode_owner "$F")"
unmount_fs "$M" "$DAEMON_PID" || fail "unmount"
mount_fs "$B" "$M"
[ "$(mode_owner "$F")" = "6755 1234:2345" ] || fail "after remount: $(mode_owner "$F")"
say "setuid and setgid kept through commit, materialize, recompression and remount"

# touch keeps a compressed file compressed, with identical bytes.
cp "$F" "$WORK/before-touch"
sc_ino=$(stat -c %i "$B/.model.safetensors.lcpfs")
touch "$F"
[ "$(xattr_get "$F" user.lcpfs.state)" = compressed ] || fail "touch: state $(xattr_get "$F" user.lcpfs.state)"
"$PYTHON" -c 'import os,sys; fd=os.open(sys.argv[1], os.O_WRONLY); os.close(fd)' "$F"
[ "$(xattr_get "$F" user.lcpfs.state)" = compressed ] || fail "open for writing: state $(xattr_get "$F" user.lcpfs.state)"
cmp -s "$F" "$WORK/before-touch" || fail "touch changed the bytes"
[ "$(stat -c %i "$B/.model.safetensors.lcpfs" 2>/dev/null)" = "$sc_ino" ] || fail "touch replaced the sidecar"
unmount_fs "$M" "$DAEMON_PID" || fail "unmount"
mount_fs "$B" "$M"
[ "$(xattr_get "$F" user.lcpfs.state)" = compressed ] || fail "touch: not compressed after remount"
cmp -s "$F" "$WORK/before-touch" || fail "touch: bytes changed after remount"
say "touch and an open for writing without a write: still compressed, same bytes, same sidecar"

# Names of 249..255 bytes.
for len in 249 252 255; do
	a=$(printf '%*s' $((len - 12)) '' | tr ' ' a).safetensors
	b=$(printf '%*s' $((len - 12)) '' | tr ' ' b).safetensors
	cp "$WORK/t.safetensors" "$M/$a"
	wait_state "$M/$a" compressed
	cp "$M/$a" "$WORK/long.expected"
	mv "$M/$a" "$M/$b" || fail "rename to a $len-byte name"
	cmp -s "$M/$b" "$WORK/long.expected" || fail "$len bytes: wrong bytes after rename"
	[ "$(xattr_get "$M/$b" user.lcpfs.state)" = compressed ] || fail "$len bytes: not compressed after rename"
	ln "$M/$b" "$M/$a" || fail "link to a $len-byte name"
	cmp -s "$M/$a" "$WORK/long.expected" || fail "$len bytes: wrong bytes through the link"
	rm "$M/$a" "$M/$b"
done
[ "$(backing_ls "$B" | grep -vc '^\.\?model.safetensors')" = 0 ] || fail "leftovers: $(ls -A "$B")"
unmount_fs "$M" "$DAEMON_PID" || fail "unmount"
say "names of 249..255 bytes: compressed, renamed, linked, read back, removed"
echo "metadata: all checks passed"
