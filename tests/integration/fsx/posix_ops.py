#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Runs a fixed sequence of namespace and attribute operations in DIR and
prints a transcript (each operation's errno, then what it left: types,
modes, owners, link counts, sizes; never times or inode numbers), for
tests/integration/test_mount_posix.sh to compare a mount against a plain
directory.

  posix_ops.py DIR setup     as root: the shared tree the user phase works in
  posix_ops.py DIR root      as root
  posix_ops.py DIR user      as an unprivileged user, in DIR/sticky
"""
import ctypes
import errno
import os
import stat
import sys

libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD = -100
RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2
out = []


def renameat2(a, b, flags):
    if libc.renameat2(AT_FDCWD, a.encode(), AT_FDCWD, b.encode(), flags) == 0:
        return 0
    return ctypes.get_errno()


def run(label, fn, *args):
    try:
        r = fn(*args)
        e = r if isinstance(r, int) and r > 0 else 0
    except OSError as ex:
        e = ex.errno
    out.append("%-40s %s" % (label, errno.errorcode.get(e, "OK") if e else "OK"))


def describe(d):
    for root, dirs, files in os.walk(d):
        dirs.sort()
        for n in sorted(dirs + files):
            p = os.path.join(root, n)
            st = os.lstat(p)
            kind = stat.S_IFMT(st.st_mode)
            size = st.st_size if stat.S_ISREG(st.st_mode) else "-"
            out.append("  %s %o %d:%d nlink=%d size=%s" % (os.path.relpath(p, d), st.st_mode,
                       st.st_uid, st.st_gid, st.st_nlink if kind != stat.S_IFDIR else 0, size))


def write(p, data=b"x" * 100):
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, data)
    os.close(fd)


def setup(d):
    os.mkdir(d + "/sticky", 0o777)
    os.chmod(d + "/sticky", 0o1777)
    write(d + "/sticky/rootfile")
    os.chmod(d + "/sticky/rootfile", 0o666)
    os.mkdir(d + "/private", 0o700)
    write(d + "/private/secret")


def root_phase(d):
    j = lambda *n: os.path.join(d, *n)
    write(j("f"))
    write(j("g"), b"y" * 50)
    os.mkdir(j("dir"))
    os.mkdir(j("full"))
    write(j("full", "x"))
    os.mkfifo(j("fifo"))
    os.symlink("f", j("sym"))
    os.mknod(j("null"), 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    run("rename file over file", os.rename, j("g"), j("f2"))
    run("rename file over file (replace)", os.rename, j("f2"), j("f"))
    write(j("g"), b"y" * 50)
    run("rename file over dir", os.rename, j("g"), j("dir"))
    run("rename dir over file", os.rename, j("dir"), j("g"))
    run("rename dir over non-empty dir", os.rename, j("dir"), j("full"))
    run("rename dir into itself", os.rename, j("dir"), j("dir", "sub"))
    run("rename missing", os.rename, j("nothing"), j("x"))
    run("rename into missing dir", os.rename, j("g"), j("nodir", "g"))
    run("rename name to itself", os.rename, j("g"), j("g"))
    os.link(j("g"), j("g2"))
    run("rename link onto its other name", os.rename, j("g"), j("g2"))
    run("noreplace onto existing", renameat2, j("g"), j("f"), RENAME_NOREPLACE)
    run("noreplace to new name", renameat2, j("g"), j("g3"), RENAME_NOREPLACE)
    run("exchange file and dir", renameat2, j("g3"), j("dir"), RENAME_EXCHANGE)
    run("exchange back", renameat2, j("g3"), j("dir"), RENAME_EXCHANGE)
    run("exchange with missing", renameat2, j("g3"), j("nothing"), RENAME_EXCHANGE)
    run("rename fifo", os.rename, j("fifo"), j("fifo2"))
    run("rename chardev over file", os.rename, j("null"), j("g2"))
    run("rename symlink over dir", os.rename, j("sym"), j("dir"))
    run("rename symlink", os.rename, j("sym"), j("sym2"))
    run("link file", os.link, j("f"), j("fl"))
    run("link onto existing", os.link, j("f"), j("g3"))
    run("link dir", os.link, j("dir"), j("dl"))
    run("link missing", os.link, j("nothing"), j("x"))
    run("link into missing dir", os.link, j("f"), j("nodir", "x"))
    run("link fifo", os.link, j("fifo2"), j("fifo3"))
    run("link symlink", os.link, j("sym2"), j("sym3"))
    run("unlink dir", os.unlink, j("dir"))
    run("unlink missing", os.unlink, j("nothing"))
    run("unlink link", os.unlink, j("fl"))
    run("unlink fifo", os.unlink, j("fifo3"))
    run("rmdir non-empty", os.rmdir, j("full"))
    run("rmdir file", os.rmdir, j("f"))
    run("chmod 4755", os.chmod, j("f"), 0o4755)
    run("chown", os.chown, j("f"), 1234, 2345)
    run("chmod 6755 after chown", os.chmod, j("f"), 0o6755)
    run("chown keeps? (uid only)", os.chown, j("f"), 4321, -1)
    run("truncate up", os.truncate, j("f"), 5000)
    run("truncate down", os.truncate, j("f"), 10)
    run("truncate dir", os.truncate, j("dir"), 0)
    run("open excl existing", os.open, j("f"), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    run("open dir for writing", os.open, j("dir"), os.O_WRONLY)
    run("mkdir existing", os.mkdir, j("dir"))
    run("mknod fifo existing", os.mkfifo, j("f"))
    describe(d)


def user_phase(d):
    s = os.path.join(d, "sticky")
    j = lambda *n: os.path.join(s, *n)
    write(j("mine"))
    os.mkdir(j("mydir"))
    run("user: rename own file", os.rename, j("mine"), j("mine2"))
    run("user: rename root file in sticky", os.rename, j("rootfile"), j("taken"))
    run("user: unlink root file in sticky", os.unlink, j("rootfile"))
    run("user: rename own over root file", os.rename, j("mine2"), j("rootfile"))
    run("user: link root file", os.link, j("rootfile"), j("rl"))
    run("user: unlink own link", os.unlink, j("rl"))
    run("user: chmod root file", os.chmod, j("rootfile"), 0o777)
    run("user: chown own file", os.chown, j("mine2"), 0, 0)
    run("user: chmod own setuid", os.chmod, j("mine2"), 0o4755)
    run("user: chmod own setgid foreign group", os.chmod, j("mine2"), 0o2755)
    run("user: truncate root file (666)", os.truncate, j("rootfile"), 3)
    run("user: utime now on root file", os.utime, j("rootfile"), None)
    run("user: utime set on root file", os.utime, j("rootfile"), (1, 1))
    run("user: create in private", write, os.path.join(d, "private", "x"))
    run("user: read private", os.stat, os.path.join(d, "private", "secret"))
    run("user: mkfifo", os.mkfifo, j("ufifo"))
    run("user: mknod chardev", os.mknod, j("udev"), 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    run("user: rename own dir over own file", os.rename, j("mydir"), j("mine2"))
    run("user: rmdir own dir", os.rmdir, j("mydir"))
    describe(s)


def main(argv):
    d, phase = argv[0], argv[1]
    os.umask(0o022)
    {"setup": setup, "root": root_phase, "user": user_phase}[phase](d)
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
