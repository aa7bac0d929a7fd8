#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Readers and writers for the distributed tests: which whole version a file
reads as, a reader that holds one open file across a commit, and a writer
that pauses half way (for deterministic interleavings between two nodes).

Usage (exit 0 when the check holds, 1 with a message when not):
  dist_check.py [--drop] version FILE CAND...
      One open, whole sequential read, then RANGES random preads through
      the same descriptor and RANGES more through fresh opens. Prints the
      index of the candidate the whole read equals. Fails when the whole
      read equals no candidate, or a range read equals the same range of no
      candidate, or the ranges of one descriptor come from two candidates.
  dist_check.py [--drop] hold FILE SIGNAL GO CAND...
      Opens FILE, reads its first half, creates SIGNAL, waits for GO (a file)
      to exist, then reads the second half and re-reads everything through
      the same descriptor. Fails unless every byte it read belongs to one
      candidate. Prints that candidate's index.
  --drop: before each read phase, drop the file's pages from this machine's
      page cache (posix_fadvise DONTNEED), so the reads reach the daemon the
      way they do on a node that has not cached the file.
  dist_check.py write-pause FILE SRC SIGNAL GO
      Opens FILE with O_TRUNC, writes the first half of SRC, creates SIGNAL,
      waits for GO, writes the rest, closes.
  dist_check.py drop FILE...
      Drops each file's pages from this machine's page cache (a client
      still naming a replaced file is made to list its directory first).
  dist_check.py locks PATH1 PATH2
      PATH1 and PATH2 name one file through two client mounts: takes an OFD
      write lock through the first, tries another through the second and
      prints whether the backing shares locks between its clients.
  dist_check.py wait-file PATH SECONDS
      Polls for PATH to exist; fails after SECONDS.
"""
import errno
import fcntl
import hashlib
import os
import random
import struct
import sys
import time

RANGES = 40            # random range reads per check
POLL_SEC = 0.02
WAIT_DEADLINE_SEC = 120
DROP = False


def read_all(path):
    with open(path, "rb") as f:
        return f.read()


def pread_full(fd, n, off):
    out = b""
    while len(out) < n:
        b = os.pread(fd, n - len(out), off + len(out))
        if not b:
            break
        out += b
    return out


def drop(fd):
    if DROP:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)


def drop_path(path):
    """Drops path's pages. A network client that still names a file another
    client replaced fails the open (ESTALE): listing the directory makes it
    learn the new file, whose pages are dropped then."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as e:
        if e.errno not in (errno.ESTALE, errno.ENOENT):
            raise
        os.listdir(os.path.dirname(path) or ".")
        fd = os.open(path, os.O_RDONLY)
    try:
        drop(fd)
    finally:
        os.close(fd)


def matches(data, off, cands):
    """Indexes of the candidates whose bytes at off equal data."""
    return [i for i, c in enumerate(cands) if c[off:off + len(data)] == data and
            off + len(data) <= len(c)]


def wait_file(path, seconds):
    deadline = time.monotonic() + seconds
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(POLL_SEC)
    return True


def digest(b):
    return hashlib.sha256(b).hexdigest()[:16]


def cmd_version(path, cand_paths):
    cands = [read_all(p) for p in cand_paths]
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        drop(fd)
        whole = pread_full(fd, size + 1, 0)
        who = [i for i, c in enumerate(cands) if c == whole]
        if not who:
            near = ", ".join("cand%d %d bytes %s" % (i, len(c), digest(c)) for i, c in enumerate(cands))
            first = min((next((k for k in range(min(len(c), len(whole))) if c[k] != whole[k]),
                              min(len(c), len(whole))) for c in cands))
            print("%s: whole read (%d bytes, st_size %d, sha %s) equals no candidate (%s); "
                  "first byte differing from the closest at %d" %
                  (path, len(whole), size, digest(whole), near, first))
            return 1
        rng = random.Random(size)
        same_fd = set(range(len(cands)))
        drop(fd)
        for _ in range(RANGES):
            off = rng.randrange(0, max(1, size))
            n = rng.randrange(1, 1 << 20)
            data = pread_full(fd, n, off)
            m = matches(data, off, cands)
            if not m:
                print("%s: pread of %d at %d on the open descriptor equals no candidate" %
                      (path, n, off))
                return 1
            same_fd &= set(m)
        if not same_fd:
            print("%s: range reads through one descriptor mix candidates" % path)
            return 1
    finally:
        os.close(fd)
    for _ in range(RANGES):
        off = rng.randrange(0, max(1, size))
        n = rng.randrange(1, 1 << 20)
        fd = os.open(path, os.O_RDONLY)
        try:
            drop(fd)
            data = pread_full(fd, n, off)
        finally:
            os.close(fd)
        if not matches(data, off, cands):
            print("%s: pread of %d at %d after a fresh open equals no candidate" % (path, n, off))
            return 1
    print(who[0])
    return 0


def cmd_hold(path, signal, go, cand_paths):
    cands = [read_all(p) for p in cand_paths]
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        half = size // 2
        first = pread_full(fd, half, 0)
        open(signal, "w").close()
        if not wait_file(go, WAIT_DEADLINE_SEC):
            print("hold: %s never appeared" % go)
            return 1
        drop(fd)
        second = pread_full(fd, size - half + 1, half)
        again = pread_full(fd, size + 1, 0)
        size2 = os.fstat(fd).st_size
    finally:
        os.close(fd)
    whole = first + second
    who = [i for i, c in enumerate(cands) if c == whole and c == again]
    if not who:
        print("%s: read across the commit is not one version: first half %s, second half %s, "
              "re-read %s (st_size %d then %d)" %
              (path, [i for i in matches(first, 0, cands)],
               [i for i in matches(second, half, cands)],
               [i for i, c in enumerate(cands) if c == again], size, size2))
        return 1
    print(who[0])
    return 0


def write_lock(fd):
    """Non-blocking OFD write lock on the whole file (struct flock, x86-64)."""
    fl = struct.pack("hhxxxxqqixxxx", fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
    fcntl.fcntl(fd, fcntl.F_OFD_SETLK, fl)


def cmd_locks(a, b):
    with open(a, "w"):
        pass
    fa = os.open(a, os.O_RDWR)
    fb = os.open(b, os.O_RDWR)
    try:
        write_lock(fa)
        try:
            write_lock(fb)
            print("not shared between clients (each client only sees its own locks)")
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            print("shared between clients")
    finally:
        os.close(fa)
        os.close(fb)
    return 0


def cmd_write_pause(path, src, signal, go):
    data = read_all(src)
    half = len(data) // 2
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data[:half])
        open(signal, "w").close()
        if not wait_file(go, WAIT_DEADLINE_SEC):
            print("write-pause: %s never appeared" % go)
            return 1
        off = half
        while off < len(data):
            off += os.pwrite(fd, data[off:off + (1 << 20)], off)
    finally:
        os.close(fd)
    return 0


def main(argv):
    global DROP
    if argv and argv[0] == "--drop":
        DROP = True
        argv = argv[1:]
    if len(argv) >= 3 and argv[0] == "version":
        return cmd_version(argv[1], argv[2:])
    if len(argv) >= 5 and argv[0] == "hold":
        return cmd_hold(argv[1], argv[2], argv[3], argv[4:])
    if len(argv) == 5 and argv[0] == "write-pause":
        return cmd_write_pause(*argv[1:])
    if len(argv) >= 2 and argv[0] == "drop":
        DROP = True
        for p in argv[1:]:
            drop_path(p)
        return 0
    if len(argv) == 3 and argv[0] == "locks":
        return cmd_locks(argv[1], argv[2])
    if len(argv) == 3 and argv[0] == "wait-file":
        return 0 if wait_file(argv[1], float(argv[2])) else 1
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except OSError as e:
        args = [a for a in sys.argv[1:] if a != "--drop"]
        tb = e.__traceback__
        while tb.tb_next:
            tb = tb.tb_next
        print("%s: %s (in %s, line %d)" % (e.filename or (args[1] if len(args) > 1 else "?"),
                                          e.strerror, tb.tb_frame.f_code.co_name, tb.tb_lineno))
        sys.exit(1)
