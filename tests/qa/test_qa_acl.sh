#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A POSIX ACL set through an allow_other,default_permissions mount is either
# refused (EOPNOTSUPP) or enforced: when the owner denies one user with
# user:U:--- on a 0644 file, U cannot read it through the mount, as U
# cannot on the backing.
# Defect on main: the daemon does not ask for FUSE_CAP_POSIX_ACL, so the
# kernel passes system.posix_acl_access through as a plain xattr: the ACL
# lands on the backing file (ls shows "+", the backing denies U) while the
# mount checks the mode bits only and lets U read.
set -eu
cd "$(dirname "$0")/../.."
. tests/integration/fsx/mount_lib.sh
. tests/integration/fsx/integrity_lib.sh

B=$WORK/backing M=$WORK/mnt
mkdir -p "$B" "$M"
chmod 755 "$B"
mount_fs "$B" "$M" -o allow_other,default_permissions
echo secret > "$M/f"
chmod 644 "$M/f"
rc=0
"$PYTHON" - "$M/f" "$UNPRIVILEGED" <<'PY' || rc=$?
import errno, os, struct, sys
path, uid = sys.argv[1], int(sys.argv[2])
USER_OBJ, USER, GROUP_OBJ, MASK, OTHER = 0x01, 0x02, 0x04, 0x10, 0x20
UNDEFINED = 0xFFFFFFFF
acl = struct.pack("<I", 2) + b"".join(struct.pack("<HHI", tag, perm, qid) for tag, perm, qid in (
    (USER_OBJ, 6, UNDEFINED), (USER, 0, uid), (GROUP_OBJ, 4, UNDEFINED),
    (MASK, 4, UNDEFINED), (OTHER, 4, UNDEFINED)))
try:
    os.setxattr(path, "system.posix_acl_access", acl)
except OSError as e:
    if e.errno in (errno.EOPNOTSUPP, errno.ENOTSUP):
        sys.exit(3)  # refused: nothing to enforce
    raise
PY
case $rc in
3) say "ACLs are refused through the mount"; exit 0 ;;
0) ;;
*) fail "setting the ACL failed unexpectedly" ;;
esac
as_user cat "$B/f" > /dev/null 2>&1 && fail "the backing does not enforce the ACL: the test proves nothing"
if as_user cat "$M/f" > /dev/null 2>&1; then
	fail "user $UNPRIVILEGED, denied by an ACL set through the mount (the backing refuses it), reads the file through the mount"
fi
say "an ACL set through the mount is enforced"
