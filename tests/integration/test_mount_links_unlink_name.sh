#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# When one of two hard links is removed, the name left is an ordinary file:
# a tensor file rewritten through it (its dentry still cached by the kernel,
# so no new lookup tells the daemon its name) is compressed.
# Regression guarded (fixed): fs_unlink clears the inode's only recorded name
# (fs_inode_set_name(victim, NULL, NULL)) although another name still holds
# the inode, so the job finds "no name to pack under" and the file stays
# raw with no reason, silently (the same happens when a rename replaces one
# of the names).
set -eu
cd "$(dirname "$0")/../.."
. tests/integration/fsx/mount_lib.sh
. tests/integration/fsx/integrity_lib.sh

B=$WORK/backing M=$WORK/mnt
mkdir -p "$B" "$M"
make_tensor "$WORK/t.safetensors" 31
mount_fs "$B" "$M"

cp "$WORK/t.safetensors" "$M/a"
ln "$M/a" "$M/b"
wait_state "$M/b" refused
exec 3<> "$M/b"
rm "$M/a"
cat "$WORK/t.safetensors" >&3
exec 3>&-
[ "$(stat -c %h "$M/b")" = 1 ] || fail "b has $(stat -c %h "$M/b") links"
poll "$COMMIT_TIMEOUT" state_is "$M/b" compressed ||
	fail "b (one link, rewritten as a tensor file) is $(xattr_get "$M/b" user.lcpfs.state), reason '$(xattr_get "$M/b" user.lcpfs.reason 2>/dev/null)'; wanted compressed"
say "a file rewritten after its other link was removed is compressed"
