#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Writes a small safetensors file of random weights, independent of any data
set (run with /usr/bin/python3, which has numpy):

  tensorfile.py OUT SEED [ROWS]

Tensors: "w" F32 [ROWS, 256], "h" F16 [ROWS, 128], "b" F32 [256] (1-D: kept
exact), "i" I32 [16, 16]. ROWS defaults to 256 (about 450 KiB in all).

In Python: write(out, [(name, dtype, shape, little-endian numpy array)])
writes any such list as a safetensors file.
"""
import json
import struct
import sys

import numpy as np


def main(argv):
    out, seed = argv[0], int(argv[1])
    rows = int(argv[2]) if len(argv) > 2 else 256
    rng = np.random.default_rng(seed)
    write(out, [
        ("w", "F32", [rows, 256], (rng.standard_normal((rows, 256)) * 0.05).astype("<f4")),
        ("h", "F16", [rows, 128], (rng.standard_normal((rows, 128)) * 0.1).astype("<f2")),
        ("b", "F32", [256], rng.standard_normal(256).astype("<f4")),
        ("i", "I32", [16, 16], rng.integers(-1000, 1000, (16, 16)).astype("<i4")),
    ])
    return 0


def write(out, tensors):
    header, blobs, off = {}, [], 0
    for name, dtype, shape, arr in tensors:
        b = arr.tobytes()
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(out, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
