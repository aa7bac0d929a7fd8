#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Writes an F16 safetensors of about SIZE_MIB MiB made of the real weights in
DATA (default ../shared/data): every 2-D F32/F16 tensor of the faceres and
stories260K files, in turn, laid out as 1024 x 4096 layers whose rows are
consecutive runs of those weights (so the value statistics are those of
trained weights; the runs start at different offsets, so no layer repeats).

Usage (with /usr/bin/python3, which has numpy): tiled_model.py OUT SIZE_MIB [DATA]
"""
import json
import struct
import sys

import numpy as np

ROWS, COLS = 1024, 4096


def tensors(path):
    with open(path, "rb") as f:
        b = f.read()
    n = struct.unpack_from("<Q", b)[0]
    header = json.loads(b[8:8 + n])
    header.pop("__metadata__", None)
    for _, v in sorted(header.items()):
        if v["dtype"] not in ("F32", "F16") or len(v["shape"]) != 2:
            continue
        s, e = v["data_offsets"]
        dt = np.float32 if v["dtype"] == "F32" else np.float16
        yield np.frombuffer(b[8 + n + s:8 + n + e], dtype=dt).astype(np.float16)


def main():
    out, size_mib = sys.argv[1], int(sys.argv[2])
    data = sys.argv[3] if len(sys.argv) > 3 else "../shared/data"
    pool = np.concatenate(
        list(tensors(data + "/human-faceres-deep.safetensors")) +
        list(tensors(data + "/llama2c-stories260K.safetensors")))
    per = ROWS * COLS
    layers = size_mib * (1 << 20) // (per * 2)
    header, off = {}, 0
    for i in range(layers):
        header["layers.%d.weight" % i] = {"dtype": "F16", "shape": [ROWS, COLS],
                                          "data_offsets": [off, off + per * 2]}
        off += per * 2
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * ((8 - len(hb) % 8) % 8)
    with open(out, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for i in range(layers):
            start = (i * 7919 * COLS) % max(1, pool.size - per)
            f.write(np.resize(pool[start:start + per], per).astype("<f2").tobytes())


if __name__ == "__main__":
    main()
