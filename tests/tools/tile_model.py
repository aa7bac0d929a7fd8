#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Writes a bigger safetensors file made of copies of real weights.

usage: tile_model.py OUT MIB SRC.safetensors...

Copies every tensor of the SRC files (bytes, dtype and shape unchanged) under
the names "copyN/<name>", N = 0, 1, ..., until OUT holds at least MIB MiB of
tensor data. For tests that need a compression long enough to interrupt
(tests/integration/test_mount_crash.sh) from the small vendored files in
tests/data. Deterministic: the same inputs give the same bytes.
"""
import json
import struct
import sys


def tensors(path):
    with open(path, "rb") as f:
        blob = f.read()
    (hlen,) = struct.unpack_from("<Q", blob)
    header = json.loads(blob[8:8 + hlen])
    header.pop("__metadata__", None)
    for name, info in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        begin, end = info["data_offsets"]
        yield name, info["dtype"], info["shape"], blob[8 + hlen + begin:8 + hlen + end]


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    out, want = argv[0], int(argv[1]) << 20
    sources = [t for path in argv[2:] for t in tensors(path)]
    header, chunks, size, copy = {}, [], 0, 0
    while size < want:
        for name, dtype, shape, data in sources:
            header["copy%d/%s" % (copy, name)] = {"dtype": dtype, "shape": shape,
                                                  "data_offsets": [size, size + len(data)]}
            chunks.append(data)
            size += len(data)
        copy += 1
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(out, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        for c in chunks:
            f.write(c)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
