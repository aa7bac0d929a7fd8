#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A compressed file's sidecar follows the file's owner and read/write bits
# (lcpfs(5): "It has the file's owner and its read and write bits") also
# after a chmod or chown through the mount: once the file is chmod 600 and
# given to another user, its sidecar on the backing is no longer readable
# by group and others, and belongs to the new owner.
# Granting comes back too (chmod 664, chgrp), and a raw file's chmod and a
# directory's go on as before.
# Regression: fs_setattr changed the payload only; the sidecar kept the mode
# and owner of the commit (0644 root here), so on a shared backing anyone
# could still read the tensor names, shapes, dtypes, the configuration and
# the per-tensor QLOR blocks of a file made private.
set -eu
cd "$(dirname "$0")/../.."
. tests/integration/fsx/mount_lib.sh
. tests/integration/fsx/integrity_lib.sh

B=$WORK/backing M=$WORK/mnt
mkdir -p "$B" "$M"
make_tensor "$WORK/t.safetensors" 71
mount_fs "$B" "$M"
cp "$WORK/t.safetensors" "$M/x"
wait_state "$M/x" compressed
chmod 600 "$M/x"
chown "$UNPRIVILEGED" "$M/x"
SC=$B/.x.lcpfs
[ -f "$SC" ] || fail "no sidecar at $SC"
[ "$(stat -c '%a %u' "$B/x")" = "600 $UNPRIVILEGED" ] || fail "payload is $(stat -c '%a %u' "$B/x")"
mode=$(stat -c %a "$SC")
owner=$(stat -c %u "$SC")
[ $((0$mode & 066)) = 0 ] || fail "sidecar mode $mode after chmod 600 of the file: group/others can read it"
[ "$owner" = "$UNPRIVILEGED" ] || fail "sidecar owner $owner after chown $UNPRIVILEGED of the file"
chmod 4775 "$M/x"
chgrp 4321 "$M/x"
[ "$(stat -c '%a %u %g' "$SC")" = "664 $UNPRIVILEGED 4321" ] ||
	fail "sidecar is $(stat -c '%a %u %g' "$SC") after chmod 4775 and chgrp 4321 (payload $(stat -c '%a %u %g' "$B/x"))"
echo raw > "$M/r"
chmod 600 "$M/r"
mkdir "$M/d"
chmod 700 "$M/d"
[ "$(stat -c %a "$B/r") $(stat -c %a "$B/d")" = "600 700" ] || fail "chmod of a raw file or a directory"
say "the sidecar follows chmod and chown"
