#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A POSIX ACL set through an allow_other,default_permissions mount is either
# refused (EOPNOTSUPP) or enforced: when the owner denies one user with
# user:U:--- on a 0644 file, U cannot read it through the mount, as U
# cannot on the backing.
# When enforced, a tensor file keeps its ACL (and U stays denied) when it is
# compressed and when a write makes it raw again.
# Regression: the daemon did not ask for FUSE_CAP_POSIX_ACL, so the kernel
# passed system.posix_acl_access through as a plain xattr: the ACL landed on
# the backing file while the mount checked the mode bits only and let U read.
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
deny() { # deny PATH: user:U:--- on PATH (a 0644 file); exit 3 when refused
"$PYTHON" - "$1" "$UNPRIVILEGED" <<'PY'
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
}
deny "$M/f" || rc=$?
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

make_tensor "$WORK/t.safetensors" 5
cp "$WORK/t.safetensors" "$M/t"
wait_state "$M/t" compressed
chmod 644 "$M/t"
deny "$M/t" || fail "setting the ACL on a compressed file failed"
denied() { # denied WHAT: U cannot read t through the mount; its payload has the ACL
	as_user cat "$M/t" > /dev/null 2>&1 && fail "$1: user $UNPRIVILEGED reads t through the mount"
	"$PYTHON" - "$B/t" "$UNPRIVILEGED" <<'PY' || fail "$1: the backing file lost the ACL"
import os, struct, sys
acl = os.getxattr(sys.argv[1], "system.posix_acl_access")
entries = [struct.unpack_from("<HHI", acl, off) for off in range(4, len(acl), 8)]
sys.exit(0 if (0x02, 0, int(sys.argv[2])) in entries else 1)
PY
}
denied "compressed file"
# A byte of the last tensor's data: made raw, then packed again.
printf 'x' | dd of="$M/t" bs=1 seek=$(( $(stat -c %s "$M/t") - 1 )) conv=notrunc status=none
wait_state "$M/t" compressed
# (The backing's inode number cannot tell: a freed number is reused.)
[ "$(grep -cF "$B/t: compressed" "$WORK/daemon.log")" = 2 ] ||
	fail "the write did not make the file raw and compressed again: the test proves nothing"
denied "written and compressed again"
say "a tensor file keeps its ACL through a write and a compression"
