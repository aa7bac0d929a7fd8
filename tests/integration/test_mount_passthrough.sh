#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Ordinary files through a real mount behave as in the backing directory:
# create/read/write/append/truncate, directories and readdir, rename (plain,
# RENAME_NOREPLACE, RENAME_EXCHANGE), hard and symbolic links, fifos, chmod,
# chown, utimens, statfs, fsync, fallocate, xattrs (user.lcpfs.* read-only),
# flock and POSIX locks, copy_file_range; a non-root caller's files get its
# uid and gid (allow_other, default_permissions) and its permission limits.
set -eu
cd "$(dirname "$0")/../.."
. tests/integration/fsx/mount_lib.sh

B=$WORK/backing M=$WORK/mnt
mkdir -p "$B" "$M"
chmod 755 "$B"
mount_fs "$B" "$M" -o allow_other,default_permissions
say "mounted"

# Files: write, read, append, truncate, sizes agree with the backing.
printf 'hello\n' > "$M/a"
[ "$(cat "$M/a")" = hello ] || fail "read back"
printf 'more\n' >> "$M/a"
[ "$(cat "$B/a")" = "$(printf 'hello\nmore')" ] || fail "append not in backing"
truncate -s 3 "$M/a"
[ "$(stat -c %s "$M/a")" = 3 ] && [ "$(cat "$M/a")" = hel ] || fail "truncate down"
truncate -s 100000 "$M/a"
[ "$(stat -c %s "$M/a")" = 100000 ] && [ "$(stat -c %s "$B/a")" = 100000 ] || fail "truncate up"
head -c 20000000 /dev/urandom > "$WORK/big"
cp "$WORK/big" "$M/big"
cmp "$WORK/big" "$M/big" && cmp "$WORK/big" "$B/big" || fail "20 MB copy differs"
say "files: write, append, truncate, 20 MB copy"

# Directories and readdir.
mkdir -p "$M/d1/d2/d3"
for i in $(seq 1 300); do : > "$M/d1/f$i"; done
[ "$(ls "$M/d1" | wc -l)" = 301 ] || fail "readdir count $(ls "$M/d1" | wc -l)"
[ "$(ls -a "$M/d1" | sort)" = "$(ls -a "$B/d1" | sort)" ] || fail "readdir differs from backing"
rmdir "$M/d1/d2/d3"
rmdir "$M/d1/d2" 
if rmdir "$M/d1" 2>/dev/null; then fail "rmdir of a non-empty dir succeeded"; fi
rm "$M"/d1/f*
rmdir "$M/d1"
[ ! -e "$B/d1" ] || fail "rmdir not in backing"
say "directories: mkdir -p, readdir of 300 entries, rmdir (ENOTEMPTY too)"

# Rename, with renameat2 flags.
echo x > "$M/r1"; echo y > "$M/r2"
"$PYTHON" - "$M" <<'PY'
import ctypes, errno, os, sys
m = sys.argv[1]
libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD = -100
def renameat2(a, b, flags):
	r = libc.renameat2(AT_FDCWD, a.encode(), AT_FDCWD, b.encode(), flags)
	return 0 if r == 0 else ctypes.get_errno()
NOREPLACE, EXCHANGE = 1, 2
assert renameat2(m + "/r1", m + "/r2", NOREPLACE) == errno.EEXIST, "NOREPLACE over existing"
assert renameat2(m + "/r1", m + "/r2", EXCHANGE) == 0, "EXCHANGE"
assert open(m + "/r1").read() == "y\n" and open(m + "/r2").read() == "x\n", "exchanged contents"
assert renameat2(m + "/r1", m + "/r3", NOREPLACE) == 0, "NOREPLACE to new name"
os.rename(m + "/r3", m + "/r2")
assert open(m + "/r2").read() == "y\n" and not os.path.exists(m + "/r3")
PY
[ "$(cat "$B/r2")" = y ] && [ ! -e "$B/r1" ] || fail "rename not in backing"
mkdir "$M/rd"; echo z > "$M/rd/in"; mv "$M/rd" "$M/rd2"
[ "$(cat "$M/rd2/in")" = z ] || fail "directory rename"
say "rename: plain, RENAME_NOREPLACE, RENAME_EXCHANGE, directories"

# Links, symlinks, fifos.
ln "$M/r2" "$M/hard"
[ "$(stat -c %h "$M/r2")" = 2 ] && [ "$(stat -c %i "$M/r2")" = "$(stat -c %i "$M/hard")" ] || fail "hard link"
echo again >> "$M/hard"
[ "$(tail -n 1 "$M/r2")" = again ] || fail "hard link shares content"
rm "$M/hard"
[ "$(stat -c %h "$M/r2")" = 1 ] || fail "link count after unlink"
ln -s r2 "$M/sym"
[ "$(readlink "$M/sym")" = r2 ] && [ "$(head -n 1 "$M/sym")" = y ] || fail "symlink"
[ "$(readlink "$B/sym")" = r2 ] || fail "symlink in backing"
touch -h -d '2001-02-03 04:05:06' "$M/sym"
[ "$(stat -c %Y "$M/sym")" = "$(date -d '2001-02-03 04:05:06' +%s)" ] || fail "utimens on a symlink"
mkfifo "$M/fifo"
[ -p "$M/fifo" ] && [ -p "$B/fifo" ] || fail "mkfifo"
say "hard links, symlinks (readlink, lutimes), mkfifo"

# Attributes.
chmod 640 "$M/r2"
[ "$(stat -c %a "$B/r2")" = 640 ] || fail "chmod"
chown 1234:2345 "$M/r2"
[ "$(stat -c %u:%g "$B/r2")" = 1234:2345 ] && [ "$(stat -c %u:%g "$M/r2")" = 1234:2345 ] || fail "chown"
touch -d '2010-01-01 00:00:00' "$M/r2"
[ "$(stat -c %Y "$M/r2")" = "$(date -d '2010-01-01 00:00:00' +%s)" ] || fail "utimens"
[ "$(stat -f -c %b "$M")" = "$(stat -f -c %b "$B")" ] || fail "statfs blocks"
fallocate -l 1048576 "$M/falloc"
[ "$(stat -c %s "$M/falloc")" = 1048576 ] || fail "fallocate size"
fallocate -p -o 0 -l 65536 "$M/falloc" || fail "punch hole"
say "chmod, chown, utimens, statfs, fallocate (allocate, punch hole)"

# xattrs, fsync, copy_file_range, locks.
"$PYTHON" - "$M" "$B" <<'PY'
import errno, fcntl, os, sys
m, b = sys.argv[1], sys.argv[2]
p = m + "/r2"
os.setxattr(p, "user.test", b"value")
assert os.getxattr(b + "/r2", "user.test") == b"value", "xattr not in backing"
assert os.getxattr(p, "user.test") == b"value"
names = os.listxattr(p)
assert "user.test" in names and "user.lcpfs.state" in names, names
assert os.getxattr(p, "user.lcpfs.state") == b"raw"
try:
	os.setxattr(p, "user.lcpfs.state", b"compressed"); raise SystemExit("set user.lcpfs.state allowed")
except PermissionError:
	pass
os.removexattr(p, "user.test")
assert "user.test" not in os.listxattr(p)
try:
	os.getxattr(p, "user.test"); raise SystemExit("removed xattr still there")
except OSError as e:
	assert e.errno == errno.ENODATA
fd = os.open(m + "/sync", os.O_CREAT | os.O_WRONLY, 0o644)
os.write(fd, b"x" * 10000); os.fsync(fd); os.fdatasync(fd); os.close(fd)
dfd = os.open(m, os.O_RDONLY | os.O_DIRECTORY); os.fsync(dfd); os.close(dfd)
src = os.open(m + "/big", os.O_RDONLY)
dst = os.open(m + "/bigcopy", os.O_CREAT | os.O_WRONLY, 0o644)
n, left = 0, os.fstat(src).st_size
while left:
	k = os.copy_file_range(src, dst, left)
	assert k > 0
	left -= k
os.close(src); os.close(dst)
assert open(m + "/bigcopy", "rb").read() == open(m + "/big", "rb").read(), "copy_file_range"
PY
say "xattrs (set/get/list/remove, user.lcpfs.state read-only), fsync, fsyncdir, copy_file_range"

# flock: a holder in another process makes a non-blocking attempt fail.
: > "$M/lock"
exec 8>"$M/lock"
flock -x 8
if timeout 5 flock -n -x "$M/lock" true; then fail "flock not exclusive"; fi
flock -u 8
timeout 5 flock -n -x "$M/lock" true || fail "flock after unlock"
exec 8>&-
"$PYTHON" - "$M/lock" <<'PY'
import fcntl, os, sys, time
p = sys.argv[1]
fd = os.open(p, os.O_RDWR)
fcntl.lockf(fd, fcntl.LOCK_EX, 10, 0)
pid = os.fork()
if pid == 0:
	f2 = os.open(p, os.O_RDWR)
	try:
		fcntl.lockf(f2, fcntl.LOCK_EX | fcntl.LOCK_NB, 10, 0)
		os._exit(1)
	except OSError:
		pass
	fcntl.lockf(f2, fcntl.LOCK_EX | fcntl.LOCK_NB, 10, 20)  # other range is free
	os._exit(0)
_, st = os.waitpid(pid, 0)
assert os.WEXITSTATUS(st) == 0, "POSIX lock conflict not seen"
PY
say "flock and POSIX byte-range locks (kernel-local)"

# A non-root caller gets its own uid and gid, and its own permission limits.
mkdir "$M/shared"; chmod 1777 "$M/shared"
as_user() { setpriv --reuid 1234 --regid 2345 --clear-groups "$@"; }
as_user touch "$M/shared/ufile"
as_user mkdir "$M/shared/udir"
as_user ln -s ufile "$M/shared/ulink"
as_user mkfifo "$M/shared/ufifo"
for n in ufile udir ulink ufifo; do
	[ "$(stat -c %u:%g "$B/shared/$n")" = 1234:2345 ] || fail "$n owned by $(stat -c %u:%g "$B/shared/$n")"
done
echo root > "$M/shared/rootfile"; chmod 644 "$M/shared/rootfile"
if as_user sh -c "echo x >> '$M/shared/rootfile'" 2>/dev/null; then fail "non-root wrote a 0644 root file"; fi
mkdir "$M/private"; chmod 700 "$M/private"
if as_user touch "$M/private/x" 2>/dev/null; then fail "non-root created in a 0700 root dir"; fi
as_user sh -c "echo mine > '$M/shared/ufile'"
[ "$(cat "$M/shared/ufile")" = mine ] || fail "non-root write"
say "non-root caller: files, dirs, symlinks, fifos get uid:gid 1234:2345; EACCES where due"

# Unmount and remount: everything is still there.
unmount_fs "$M" "$DAEMON_PID" || fail "unmount"
mount_fs "$B" "$M"
cmp "$WORK/big" "$M/big" || fail "after remount"
[ "$(readlink "$M/sym")" = r2 ] || fail "symlink after remount"
unmount_fs "$M" "$DAEMON_PID" || fail "second unmount"
say "remount keeps everything; clean unmount"

# As mount(8) runs it for an fstab line of type fuse.lcpfs: through
# mount.fuse3, with mount(8) noise among the options, daemonized.
mount.fuse3 "$LCPFS#$B" "$M" -o rw,nosuid,nodev,_netdev,allow_other,preset=quality,cache=64M,threads=2 ||
	fail "mount.fuse3"
poll "$MOUNT_TIMEOUT" is_mounted "$M" || fail "mount.fuse3 mount did not appear"
MOUNTS+=("$M")
DAEMON_PID=$(pgrep -f -- " $B $M") || fail "no daemon process for $M"
DAEMON_PIDS+=("$DAEMON_PID")
grep " $M fuse.lcpfs " /proc/self/mounts | grep -q "default_permissions,allow_other" || fail "allow_other not passed on with default_permissions added"
cmp "$WORK/big" "$M/big" || fail "read through the mount.fuse3 mount"
unmount_fs "$M" "$DAEMON_PID" || fail "unmount of the daemonized mount"
say "mount.fuse3 (fstab form), daemonized, options sorted, fusermount3 -u ends the daemon"
echo "passthrough: all checks passed"
