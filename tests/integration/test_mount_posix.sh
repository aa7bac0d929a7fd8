#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The mount answers namespace and attribute operations as the backing
# filesystem does: the same sequence of renames (plain, over files and
# directories, RENAME_NOREPLACE, RENAME_EXCHANGE, of FIFOs, devices and
# symlinks), links, unlinks, chmod (setuid/setgid), chown, truncate, utimes
# and creations, with their errors, runs in a plain directory and through an
# allow_other,default_permissions mount, as root and as an unprivileged user
# in a sticky directory; the two transcripts (errno of each operation, then
# every entry's type, mode, owner, link count and size) must be identical.
set -eu
cd "$(dirname "$0")/../.."
. tests/integration/fsx/mount_lib.sh
. tests/integration/fsx/integrity_lib.sh

OPS="$PYTHON tests/integration/fsx/posix_ops.py"
R=$WORK/plain B=$WORK/backing M=$WORK/mnt
mkdir -p "$R" "$B" "$M"
chmod 755 "$R" "$B"
mount_fs "$B" "$M" -o allow_other,default_permissions

for d in "$R" "$M"; do
	bounded "setup in $d" $OPS "$d" setup > /dev/null || fail "setup in $d"
done
bounded "root phase, plain" $OPS "$R" root > "$WORK/plain.root" || fail "root phase, plain"
bounded "root phase, mount" $OPS "$M" root > "$WORK/mount.root" || fail "root phase, mount"
diff -u "$WORK/plain.root" "$WORK/mount.root" || fail "root: the mount differs from a plain directory"
say "root: $(wc -l < "$WORK/plain.root") lines of transcript identical"
bounded "user phase, plain" as_user $OPS "$R" user > "$WORK/plain.user" || fail "user phase, plain"
bounded "user phase, mount" as_user $OPS "$M" user > "$WORK/mount.user" || fail "user phase, mount"
diff -u "$WORK/plain.user" "$WORK/mount.user" || fail "user: the mount differs from a plain directory"
say "uid $UNPRIVILEGED in a sticky directory: $(wc -l < "$WORK/plain.user") lines of transcript identical"
[ -z "$(backing_ls "$B" | grep "^\\.lcpfs" || true)" ] || fail "store names left in the backing"
unmount_fs "$M" "$DAEMON_PID" || fail "unmount"
echo "posix: all checks passed"
