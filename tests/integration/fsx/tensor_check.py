#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Checks for tests/integration/test_mount_tensor.sh (run with /usr/bin/python3).

  header ORIG FILE            the safetensors header bytes (8 + n) are identical
  floor ORIG FILE FLOOR       every float tensor's cosine to the original >= FLOOR
  reads FILE SEED N           N random preads (4 KiB..1 MiB) and mmap slices equal a
                              sequential read; prints the sha256 of the file
  sha FILE                    prints the sha256 of a sequential read
  rename-while-open DIR NAME NEWFILE
                              opens DIR/NAME, renames NEWFILE over it, then checks the
                              open descriptor still reads the old bytes and the name
                              the new ones
  readers FILE SHA N ROUNDS   N processes each read FILE ROUNDS times; all equal SHA
"""
import hashlib
import json
import mmap
import os
import random
import struct
import sys

import numpy as np


def sha(path):
	h = hashlib.sha256()
	with open(path, "rb") as f:
		while True:
			b = f.read(1 << 20)
			if not b:
				break
			h.update(b)
	return h.hexdigest()


def st_tensors(path):
	b = open(path, "rb").read()
	n = struct.unpack_from("<Q", b)[0]
	h = json.loads(b[8:8 + n])
	h.pop("__metadata__", None)
	out = {}
	for k, v in h.items():
		s, e = v["data_offsets"]
		dt = {"F32": np.float32, "F16": np.float16, "BF16": None}.get(v["dtype"])
		if dt is None:
			continue
		out[k] = np.frombuffer(b[8 + n + s:8 + n + e], dtype=dt).astype(np.float64)
	return out


def main():
	cmd = sys.argv[1]
	if cmd == "header":
		a = open(sys.argv[2], "rb").read()
		b = open(sys.argv[3], "rb").read()
		n = struct.unpack_from("<Q", a)[0]
		assert len(a) == len(b), "sizes %d vs %d" % (len(a), len(b))
		assert a[:8 + n] == b[:8 + n], "header differs"
		print("header identical (%d bytes), size %d" % (8 + n, len(b)))
	elif cmd == "floor":
		floor = float(sys.argv[4])
		a, b = st_tensors(sys.argv[2]), st_tensors(sys.argv[3])
		worst = 1.0
		for k, x in a.items():
			y = b[k]
			nx, ny = np.linalg.norm(x), np.linalg.norm(y)
			c = 1.0 if nx == 0 and ny == 0 else float(x @ y / (nx * ny))
			worst = min(worst, c)
			assert c >= floor, "tensor %s cosine %.6f below floor %.3f" % (k, c, floor)
		print("all %d float tensors within the floor %.3f (worst cosine %.6f)" % (len(a), floor, worst))
	elif cmd == "reads":
		path, seed, n = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
		data = open(path, "rb").read()
		size = len(data)
		assert os.stat(path).st_size == size, "stat size %d, read %d" % (os.stat(path).st_size, size)
		rng = random.Random(seed)
		fd = os.open(path, os.O_RDONLY)
		m = mmap.mmap(fd, size, prot=mmap.PROT_READ)
		for i in range(n):
			ln = rng.choice([1, 4096, 65536, 131072, 1 << 20, rng.randrange(1, 300000)])
			off = rng.randrange(0, size)
			got = os.pread(fd, ln, off)
			assert got == data[off:off + ln], "pread %d at %d differs" % (ln, off)
			assert m[off:off + ln] == data[off:off + ln], "mmap %d at %d differs" % (ln, off)
		m.close()
		os.close(fd)
		print(hashlib.sha256(data).hexdigest())
	elif cmd == "sha":
		print(sha(sys.argv[2]))
	elif cmd == "rename-while-open":
		d, name, newfile = sys.argv[2], sys.argv[3], sys.argv[4]
		old = open(os.path.join(d, name), "rb").read()
		fd = os.open(os.path.join(d, name), os.O_RDONLY)
		first = os.pread(fd, 4096, 0)
		os.rename(newfile, os.path.join(d, name))
		rest = b""
		off = 0
		while True:
			b = os.pread(fd, 1 << 20, off)
			if not b:
				break
			rest += b
			off += len(b)
		os.close(fd)
		assert first == old[:4096] and rest == old, "open descriptor lost the old bytes"
		new = open(os.path.join(d, name), "rb").read()
		print("old descriptor kept %d old bytes; name reads %d new bytes" % (len(rest), len(new)))
	elif cmd == "readers":
		path, want, n, rounds = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
		pids = []
		for _ in range(n):
			pid = os.fork()
			if pid == 0:
				ok = all(sha(path) == want for _ in range(rounds))
				os._exit(0 if ok else 1)
			pids.append(pid)
		bad = sum(1 for p in pids if os.waitpid(p, 0)[1] != 0)
		assert bad == 0, "%d of %d readers saw different bytes" % (bad, n)
		print("%d readers x %d rounds: identical" % (n, rounds))
	else:
		sys.exit("unknown command " + cmd)


main()
