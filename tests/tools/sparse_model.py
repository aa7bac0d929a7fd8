#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Writes a safetensors file holding one BF16 [ROWS, COLS] tensor "w" whose
data are a hole (the file is extended with truncate): a tensor of any size
that costs no disk and reads as zeros. With DATA_MIB, the first DATA_MIB MiB
of the tensor are real values (seeded normal), the rest a hole: the file
then takes more disk raw than compressed, so lcpfs compresses it (a file of
holes alone takes less disk raw and is refused, see lcpfs(5)).

Usage: sparse_model.py OUT ROWS COLS [DATA_MIB]
"""
import json
import struct
import sys

import numpy as np


def main():
    out, rows, cols = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    data_mib = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    n = rows * cols * 2
    h = json.dumps({"w": {"dtype": "BF16", "shape": [rows, cols], "data_offsets": [0, n]}})
    hb = h.encode()
    hb += b" " * (-len(hb) % 8)
    vals = np.random.default_rng(7).standard_normal(min(data_mib << 19, n // 2), np.float32)
    bf16 = (vals.view(np.uint32) >> 16).astype("<u2")
    with open(out, "wb") as f:
        f.write(struct.pack("<Q", len(hb)) + hb)
        f.write(bf16.tobytes())
        f.truncate(8 + len(hb) + n)


if __name__ == "__main__":
    main()
