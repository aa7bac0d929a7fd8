#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Hard links never split a file. A link made before a compression starts,
# while it runs (held between its prepare and its commit by the daemon's
# test hold point) and after it committed: every time both names stay one
# inode, the file ends refused with the reason "file has several hard links"
# (state refused, not raw), and a write through either name is read through
# the other, also after a remount. A compressed file linked on the backing
# (made offline) reads the same under both names and opens read-only
# (EMLINK, logged) instead of splitting.
set -eu
cd "$(dirname "$0")/../.."
. tests/integration/fsx/mount_lib.sh
. tests/integration/fsx/integrity_lib.sh

make_tensor "$WORK/t.safetensors" 3
REASON="file has several hard links"

# Both names one inode with two links, reading the same bytes.
same_file() {
	local a=$1 b=$2 what=$3
	[ "$(stat -c %i "$a")" = "$(stat -c %i "$b")" ] || fail "$what: the link was split"
	[ "$(stat -c %h "$a")" = 2 ] || fail "$what: link count $(stat -c %h "$a")"
	cmp -s "$a" "$b" || fail "$what: the names read different bytes"
}

# A write through each name shows through the other.
write_through_each() {
	local a=$1 b=$2 what=$3 off
	off=$(( $(stat -c %s "$a") - 4096 ))
	printf 'AAAA' | dd of="$a" bs=1 seek="$off" conv=notrunc status=none
	[ "$(dd if="$b" bs=1 skip="$off" count=4 status=none)" = AAAA ] || fail "$what: write through $a not seen through $b"
	printf 'BBBB' | dd of="$b" bs=1 seek=$((off + 4)) conv=notrunc status=none
	[ "$(dd if="$a" bs=1 skip=$((off + 4)) count=4 status=none)" = BBBB ] || fail "$what: write through $b not seen through $a"
	same_file "$a" "$b" "$what, after writes"
}

refused_for_links() {
	wait_state "$1" refused
	[ "$(xattr_get "$1" user.lcpfs.reason)" = "$REASON" ] || fail "$1: reason '$(xattr_get "$1" user.lcpfs.reason)'"
}

run=0
case_mount() { # case_mount HOLD_POINT: a fresh backing and mount, jobs held at the point
	run=$((run + 1))
	B=$WORK/b$run M=$WORK/m$run
	mkdir -p "$B" "$M"
	hold_reset start
	hold_reset prepared
	LCPFS_TEST_HOLD=$1 LCPFS_TEST_HOLD_DIR=$HOLD_DIR mount_fs "$B" "$M"
}

# Before: the job has not prepared yet when the link appears.
case_mount start
cp "$WORK/t.safetensors" "$M/a.safetensors"
hold_wait start
ln "$M/a.safetensors" "$M/b.safetensors"
hold_go start
refused_for_links "$M/a.safetensors"
same_file "$M/a.safetensors" "$M/b.safetensors" "linked before compression"
cmp -s "$M/a.safetensors" "$WORK/t.safetensors" || fail "linked before compression: bytes changed"
write_through_each "$M/a.safetensors" "$M/b.safetensors" "linked before compression"
cp "$M/a.safetensors" "$WORK/before.expected"
unmount_fs "$M" "$DAEMON_PID" || fail "unmount"
mount_fs "$B" "$M"
same_file "$M/a.safetensors" "$M/b.safetensors" "linked before compression, remounted"
cmp -s "$M/b.safetensors" "$WORK/before.expected" || fail "writes lost at remount"
[ "$(xattr_get "$M/b.safetensors" user.lcpfs.state)" = refused ] || fail "refusal forgotten at remount"
unmount_fs "$M" "$DAEMON_PID" || fail "unmount"
say "link before compression: one inode, refused ($REASON), writes through each name, after remount too"

# During: the temporaries are written; the link comes before the commit.
case_mount prepared
cp "$WORK/t.safetensors" "$M/a.safetensors"
hold_wait prepared
ln "$M/a.safetensors" "$M/b.safetensors"
hold_go prepared
refused_for_links "$M/a.safetensors"
same_file "$M/a.safetensors" "$M/b.safetensors" "linked during compression"
cmp -s "$M/a.safetensors" "$WORK/t.safetensors" || fail "linked during compression: bytes changed"
[ "$(backing_ls "$B" | tr '\n' ' ')" = "a.safetensors b.safetensors " ] ||
	fail "backing after a refused commit: $(ls -A "$B" | tr '\n' ' ')"
write_through_each "$M/a.safetensors" "$M/b.safetensors" "linked during compression"
unmount_fs "$M" "$DAEMON_PID" || fail "unmount"
say "link during compression (between prepare and commit): the commit refuses, nothing splits"

# After: a compressed file is linked (it is materialized first).
case_mount none
cp "$WORK/t.safetensors" "$M/a.safetensors"
wait_state "$M/a.safetensors" compressed
cp "$M/a.safetensors" "$WORK/recon"
ln "$M/a.safetensors" "$M/b.safetensors"
same_file "$M/a.safetensors" "$M/b.safetensors" "linked after compression"
cmp -s "$M/b.safetensors" "$WORK/recon" || fail "linked after compression: not the bytes it read as"
refused_for_links "$M/b.safetensors"
write_through_each "$M/b.safetensors" "$M/a.safetensors" "linked after compression"
cp "$M/a.safetensors" "$WORK/after.expected"
unmount_fs "$M" "$DAEMON_PID" || fail "unmount"
mount_fs "$B" "$M"
same_file "$M/a.safetensors" "$M/b.safetensors" "linked after compression, remounted"
cmp -s "$M/a.safetensors" "$WORK/after.expected" || fail "writes lost at remount"
unmount_fs "$M" "$DAEMON_PID" || fail "unmount"
say "link after compression: materialized, one inode, refused, writes through each name"

# Linked on the backing while compressed (made offline).
run=$((run + 1))
B=$WORK/b$run M=$WORK/m$run
mkdir -p "$B" "$M"
"$LCPFS" pack "$WORK/t.safetensors" "$B/a.safetensors" > /dev/null
"$LCPFS" unpack "$B/a.safetensors" "$WORK/offline.expected"
ln "$B/a.safetensors" "$B/b.safetensors"
mount_fs "$B" "$M"
for n in a b; do
	cmp -s "$M/$n.safetensors" "$WORK/offline.expected" || fail "offline link: $n reads wrong bytes"
	[ "$(xattr_get "$M/$n.safetensors" user.lcpfs.state)" = compressed ] || fail "offline link: $n not compressed"
done
if printf x 2>/dev/null >> "$M/b.safetensors"; then fail "a write to a compressed file with two links succeeded"; fi
printf x 2>&1 >> "$M/a.safetensors" | grep -q 'Too many links' || fail "no EMLINK for a write through the other name"
grep -q 'several hard links.*unpack it first' "$WORK/daemon.log" || fail "no log line for the refused write"
cmp -s "$M/a.safetensors" "$WORK/offline.expected" || fail "offline link: bytes changed"
[ "$(stat -c %i "$B/a.safetensors")" = "$(stat -c %i "$B/b.safetensors")" ] || fail "offline link split"
unmount_fs "$M" "$DAEMON_PID" || fail "unmount"
say "compressed file linked on the backing: both names read it, writes refused with EMLINK, never split"
echo "links: all checks passed"
