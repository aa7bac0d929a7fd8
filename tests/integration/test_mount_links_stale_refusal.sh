#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The refusal "file has several hard links" does not outlive the second
# link: once one of the two names is removed, the file left is compressed,
# or at least no longer said to have several links, also after a remount.
# Defect on main: the refusal mark (user.lcpfs.refused) stays on the backing
# file and nothing tries the file again, so a one-link file reads "refused:
# file has several hard links" forever (until it is rewritten).
set -eu
cd "$(dirname "$0")/../.."
. tests/integration/fsx/mount_lib.sh
. tests/integration/fsx/integrity_lib.sh

REASON="file has several hard links"
B=$WORK/backing M=$WORK/mnt
mkdir -p "$B" "$M"
make_tensor "$WORK/t.safetensors" 32
mount_fs "$B" "$M"

cp "$WORK/t.safetensors" "$M/c"
ln "$M/c" "$M/d"
wait_state "$M/d" refused
rm "$M/c"
[ "$(stat -c %h "$M/d")" = 1 ] || fail "d has $(stat -c %h "$M/d") links"
not_stale() {
	state_is "$M/d" compressed || [ "$(xattr_get "$M/d" user.lcpfs.reason 2>/dev/null)" != "$REASON" ]
}
poll "$COMMIT_TIMEOUT" not_stale ||
	fail "d has one link but stays $(xattr_get "$M/d" user.lcpfs.state): '$REASON'"
unmount_fs "$M" "$DAEMON_PID" || fail "unmount"
mount_fs "$B" "$M"
not_stale || fail "after a remount d (one link) is $(xattr_get "$M/d" user.lcpfs.state): '$REASON'"
say "a refusal for hard links ends with the second link"

# The newer name removed (the one the daemon last looked up), through the
# mount: the same.
cp "$WORK/t.safetensors" "$M/e"
ln "$M/e" "$M/f"
wait_state "$M/f" refused
rm "$M/f"
poll "$COMMIT_TIMEOUT" state_is "$M/e" compressed ||
	fail "e (one link left) stays $(xattr_get "$M/e" user.lcpfs.state): $(xattr_get "$M/e" user.lcpfs.reason 2>/dev/null)"
say "the newer name removed: the older one is compressed"

# A link replaced by a rename over it: the same.
cp "$WORK/t.safetensors" "$M/i"
ln "$M/i" "$M/j"
wait_state "$M/j" refused
echo other > "$M/k"
mv "$M/k" "$M/j"
poll "$COMMIT_TIMEOUT" state_is "$M/i" compressed ||
	fail "i (its other link renamed over) stays $(xattr_get "$M/i" user.lcpfs.state): $(xattr_get "$M/i" user.lcpfs.reason 2>/dev/null)"
say "a link renamed over: the other name is compressed"

# A link removed on the backing while unmounted: the next mount packs the
# file when it first looks it up.
cp "$WORK/t.safetensors" "$M/g"
ln "$M/g" "$M/h"
wait_state "$M/h" refused
unmount_fs "$M" "$DAEMON_PID" || fail "unmount"
rm "$B/g"
mount_fs "$B" "$M"
poll "$COMMIT_TIMEOUT" state_is "$M/h" compressed ||
	fail "h (one link left on the backing) stays $(xattr_get "$M/h" user.lcpfs.state): $(xattr_get "$M/h" user.lcpfs.reason 2>/dev/null)"
say "a link removed on the backing: compressed by the next mount"
