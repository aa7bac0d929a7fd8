#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Read patterns through a mount, each compared byte for byte with a
reference file (run with /usr/bin/python3, which has numpy):

  read_check.py make OUT SEED       a ~10 MiB safetensors of random weights:
                                    "a" F32 [1024, 1024], "b" F16 [1500, 1000],
                                    "c" BF16 [1024, 1536], "n" F32 [300] (1-D),
                                    "i" I32 [64, 64]
  read_check.py sizes FILE REF SEED O_DIRECT preads (each reaches the daemon
                                    as it is) of 1 byte, 4 KiB, 128 KiB and
                                    1 MiB at random, mostly unaligned offsets,
                                    then whole-file passes front to back in
                                    steps of 4096, 131075 and 1 MiB bytes
  read_check.py buffered FILE REF   one read of the whole file in 1 MiB steps
                                    (the kernel's read-ahead path)
  read_check.py mmap FILE REF SEED  random slices of a mapping, then all of it
  read_check.py random FILE REF SEED N THREADS
                                    N random preads per thread (sizes 1 byte to
                                    1 MiB, buffered and O_DIRECT in turn)
  read_check.py damage FILE REF STEP
                                    O_DIRECT reads front to back in STEP bytes:
                                    the reads that fail must fail with EIO and
                                    cover one range, whose exact edges are then
                                    found with 1-byte reads and printed as
                                    "bad LO HI"; every other read must succeed
                                    and equal REF
  read_check.py tensors FILE        "NAME OFFSET NBYTES" per tensor

Exit status 0 when every read equals the reference, 1 otherwise (with a
message naming the read), 2 on a usage error.
"""
import errno
import json
import mmap
import os
import random
import struct
import sys
import threading

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tensorfile  # noqa: E402  (a sibling helper)


def fail(msg):
    print("read_check: " + msg)
    sys.exit(1)


def make(out, seed):
    rng = np.random.default_rng(seed)

    def rows_scaled(r, c, dt):
        # Rows of different scales, as in trained weights.
        scale = 0.02 * (1 + rng.integers(0, 8, (r, 1)))
        return (rng.standard_normal((r, c)) * scale).astype(dt)

    c32 = rows_scaled(1024, 1536, "<f4")
    bf16 = (c32.view("<u4") >> 16).astype("<u2")
    tensorfile.write(out, [
        ("a", "F32", [1024, 1024], rows_scaled(1024, 1024, "<f4")),
        ("b", "F16", [1500, 1000], rows_scaled(1500, 1000, "<f2")),
        ("c", "BF16", [1024, 1536], bf16),
        ("n", "F32", [300], rng.standard_normal(300).astype("<f4")),
        ("i", "I32", [64, 64], rng.integers(-1000, 1000, (64, 64)).astype("<i4")),
    ])


def tensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    header.pop("__metadata__", None)
    for name, v in header.items():
        s, e = v["data_offsets"]
        yield name, 8 + n + s, e - s


def load(path):
    with open(path, "rb") as f:
        return f.read()


def check(got, ref, off, what):
    want = ref[off:off + len(got)]
    if got != want:
        fail("%s at %d: %d bytes differ from the reference" % (what, off, len(got)))


def pread_exact(fd, ref, off, length, what):
    got = os.pread(fd, length, off)
    if len(got) != min(length, max(0, len(ref) - off)):
        fail("%s at %d: %d bytes, expected %d" % (what, off, len(got), min(length, len(ref) - off)))
    check(got, ref, off, what)


def sizes(path, ref, seed):
    rng = random.Random(seed)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    for length, count in ((1, 300), (4096, 300), (131072, 100), (1 << 20, 30)):
        for _ in range(count):
            off = rng.randrange(0, len(ref))
            pread_exact(fd, ref, off, length, "O_DIRECT read of %d" % length)
    for step in (4096, 131075, 1 << 20):
        for off in range(0, len(ref), step):
            pread_exact(fd, ref, off, step, "sequential O_DIRECT read of %d" % step)
    os.close(fd)


def buffered(path, ref):
    with open(path, "rb", buffering=0) as f:
        off = 0
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            check(b, ref, off, "buffered read")
            off += len(b)
    if off != len(ref):
        fail("buffered read gave %d bytes, expected %d" % (off, len(ref)))


def mmapped(path, ref, seed):
    rng = random.Random(seed)
    with open(path, "rb") as f:
        m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
        if len(m) != len(ref):
            fail("mapping of %d bytes, expected %d" % (len(m), len(ref)))
        for _ in range(300):
            off = rng.randrange(0, len(ref))
            check(m[off:off + rng.choice((1, 4096, 70001))], ref, off, "mmap slice")
        check(m[:], ref, 0, "whole mapping")
        m.close()


def random_reads(path, ref, seed, n, threads):
    errors = []

    def run(k):
        rng = random.Random(seed * 1000 + k)
        fds = [os.open(path, os.O_RDONLY), os.open(path, os.O_RDONLY | os.O_DIRECT)]
        try:
            for i in range(n):
                length = rng.choice((1, 4096, 4096, 65536, 131072, 1 << 20))
                off = rng.randrange(0, len(ref))
                got = os.pread(fds[i % 2], length, off)
                if got != ref[off:off + length]:
                    errors.append("thread %d: %d bytes at %d differ" % (k, length, off))
                    return
        except OSError as e:
            errors.append("thread %d: %s" % (k, e))
        finally:
            for fd in fds:
                os.close(fd)

    ts = [threading.Thread(target=run, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        fail("; ".join(errors))


def fails(fd, off, length):
    """True when the read fails with EIO; any other error is a failure."""
    try:
        os.pread(fd, length, off)
        return False
    except OSError as e:
        if e.errno != errno.EIO:
            fail("read of %d at %d: %s, expected EIO or success" % (length, off, e))
        return True


def damage(path, ref, step):
    old_step = step
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    bad = []
    for off in range(0, len(ref), step):
        try:
            got = os.pread(fd, step, off)
        except OSError as e:
            if e.errno != errno.EIO:
                fail("read of %d at %d: %s, expected EIO or success" % (step, off, e))
            bad.append(off)
            continue
        check(got, ref, off, "read of %d outside the damage" % step)
    if not bad:
        fail("no read failed")
    if bad != list(range(bad[0], bad[-1] + step, step)):
        fail("the failing reads are not one range: %s" % bad)
    if len(bad) == 1:
        # The damage lies inside one step: look at that step in pages.
        start, step = bad[0], 4096
        bad = [o for o in range(start, min(start + old_step, len(ref)), step) if fails(fd, o, step)]
        if len(bad) < 2 or bad != list(range(bad[0], bad[-1] + step, step)):
            fail("the damaged pages inside [%d, +%d) are not one range of >= 2 pages: %s"
                 % (start, old_step, bad))
    # Exact edges by bisection: the damaged range runs across the step
    # boundaries, so byte bad[1] fails and so does byte bad[-1] - 1.
    a, b = bad[0], bad[1]  # a may fail; b fails
    while a < b:
        mid = (a + b) // 2
        if fails(fd, mid, 1):
            b = mid
        else:
            a = mid + 1
    lo = a
    a, b = bad[-1] - 1, min(bad[-1] + step, len(ref))  # a fails; b is past the end
    while b - a > 1:
        mid = (a + b) // 2
        if fails(fd, mid, 1):
            a = mid
        else:
            b = mid
    hi = a + 1
    for off in (lo, (lo + hi) // 2, hi - 1):
        if not fails(fd, off, 1):
            fail("byte %d inside the damaged range [%d, %d) reads" % (off, lo, hi))
    for off in (lo - 1, hi):
        if 0 <= off < len(ref):
            pread_exact(fd, ref, off, 1, "byte next to the damaged range")
    os.close(fd)
    print("bad %d %d" % (lo, hi))


def main(argv):
    if len(argv) < 2:
        print(__doc__)
        return 2
    cmd, args = argv[0], argv[1:]
    if cmd == "make" and len(args) == 2:
        make(args[0], int(args[1]))
    elif cmd == "tensors" and len(args) == 1:
        for name, off, nbytes in tensors(args[0]):
            print(name, off, nbytes)
    elif cmd == "sizes" and len(args) == 3:
        sizes(args[0], load(args[1]), int(args[2]))
    elif cmd == "buffered" and len(args) == 2:
        buffered(args[0], load(args[1]))
    elif cmd == "mmap" and len(args) == 3:
        mmapped(args[0], load(args[1]), int(args[2]))
    elif cmd == "random" and len(args) == 5:
        random_reads(args[0], load(args[1]), int(args[2]), int(args[3]), int(args[4]))
    elif cmd == "damage" and len(args) == 3:
        damage(args[0], load(args[1]), int(args[2]))
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
