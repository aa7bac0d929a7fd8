#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Writes a synthetic safetensors model of about SIZE MiB, the same bytes for
the same SEED, so the distributed tests and the benchmark need no data files.

Usage (run with /usr/bin/python3, which has numpy):
  gen_model.py OUT SIZE_MIB SEED [--dtype F16|F32|BF16]

The model is a stack of 2-D weight matrices (rows of 1024 or 256 columns)
drawn from a Gaussian with per-row scales and a few outliers, like trained
weights, plus a small 1-D norm vector (kept exact by lcpfs). It is a valid
tensor file for lcpfs, so a mount compresses it after its last close.
"""
import json
import struct
import sys

import numpy as np


def bf16_bytes(a):
    """Round-to-nearest-even float32 -> bfloat16 bytes."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return u.astype("<u2").tobytes()


def main(argv):
    if len(argv) not in (3, 5) or (len(argv) == 5 and argv[3] != "--dtype"):
        print(__doc__.strip().splitlines()[3], file=sys.stderr)
        return 2
    out, size_mib, seed = argv[0], float(argv[1]), int(argv[2])
    dtype = argv[4] if len(argv) == 5 else "F16"
    elem = {"F16": 2, "BF16": 2, "F32": 4}[dtype]
    rng = np.random.default_rng(seed)
    target = int(size_mib * (1 << 20))
    tensors = []  # (name, shape, bytes)
    norm = rng.standard_normal(1024).astype(np.float32)
    tensors.append(("norm.weight", [1024], norm.astype("<f4").tobytes(), "F32"))
    total, layer = 4096, 0
    while total < target:
        cols = 1024 if layer % 2 == 0 else 256
        rows = max(16, min(1024, (target - total) // (cols * elem)))
        w = rng.standard_normal((rows, cols), dtype=np.float32)
        w *= rng.uniform(0.01, 0.05, size=(rows, 1)).astype(np.float32)
        w.flat[rng.integers(0, w.size, size=max(1, w.size // 4096))] *= 8.0
        if dtype == "F16":
            raw = w.astype("<f2").tobytes()
        elif dtype == "BF16":
            raw = bf16_bytes(w)
        else:
            raw = w.astype("<f4").tobytes()
        tensors.append(("layers.%d.weight" % layer, [rows, cols], raw, dtype))
        total += len(raw)
        layer += 1
    header, off = {"__metadata__": {"generator": "gen_model.py", "seed": str(seed)}}, 0
    for name, shape, raw, dt in tensors:
        header[name] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + len(raw)]}
        off += len(raw)
    hjson = json.dumps(header, separators=(",", ":")).encode()
    hjson += b" " * (-len(hjson) % 8)
    with open(out, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for _, _, raw, _ in tensors:
            f.write(raw)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
