#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Writes a safetensors file holding one BF16 [ROWS, COLS] tensor "w" whose
data are a hole (the file is extended with truncate): a tensor of any size
that costs no disk and reads as zeros.

Usage: sparse_model.py OUT ROWS COLS
"""
import json
import struct
import sys


def main():
    out, rows, cols = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    n = rows * cols * 2
    h = json.dumps({"w": {"dtype": "BF16", "shape": [rows, cols], "data_offsets": [0, n]}})
    hb = h.encode()
    hb += b" " * (-len(hb) % 8)
    with open(out, "wb") as f:
        f.write(struct.pack("<Q", len(hb)) + hb)
        f.truncate(8 + len(hb) + n)


if __name__ == "__main__":
    main()
