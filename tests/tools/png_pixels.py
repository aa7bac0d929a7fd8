#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Counts the pixels of a PNG image, to tell a drawing from a blank page.

usage: png_pixels.py IMAGE.png [#RRGGBB...]

Decodes an 8-bit, non-interlaced RGB or RGBA PNG (what rsvg-convert writes)
with zlib alone: chunks, IDAT inflate, the five scanline filters of the PNG
specification. Prints one JSON object: width, height, "ink" (pixels that
differ from the top-left pixel, the background) and, for each colour given,
how many pixels have exactly that colour (alpha ignored).
"""
import json
import struct
import sys
import zlib


def decode(path):
    with open(path, "rb") as f:
        blob = f.read()
    if blob[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG file")
    off, idat, width = 8, b"", None
    while off < len(blob):
        (n,) = struct.unpack_from(">I", blob, off)
        kind = blob[off + 4:off + 8]
        data = blob[off + 8:off + 8 + n]
        off += 12 + n
        if kind == b"IHDR":
            width, height, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", data)
            if depth != 8 or ctype not in (2, 6) or interlace:
                raise ValueError("only 8-bit RGB/RGBA, not interlaced")
            bpp = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat += data
        elif kind == b"IEND":
            break
    if width is None:
        raise ValueError("no IHDR")
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows, prev = [], bytearray(stride)
    for y in range(height):
        base = y * (stride + 1)
        ftype, line = raw[base], bytearray(raw[base + 1:base + 1 + stride])
        if ftype == 1:  # Sub
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 0xFF
        elif ftype == 2:  # Up
            line = bytearray((a + b) & 0xFF for a, b in zip(line, prev))
        elif ftype == 3:  # Average
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 0xFF
        elif ftype == 4:  # Paeth
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b = prev[i]
                c = prev[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 0xFF
        elif ftype != 0:
            raise ValueError("bad filter type %d" % ftype)
        rows.append(line)
        prev = line
    return width, height, bpp, rows


def main(argv):
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    width, height, bpp, rows = decode(argv[0])
    wanted = {c: bytes.fromhex(c.lstrip("#")) for c in argv[1:]}
    counts = {c: 0 for c in wanted}
    background = bytes(rows[0][:3])
    ink = 0
    for line in rows:
        for x in range(0, len(line), bpp):
            rgb = bytes(line[x:x + 3])
            if rgb != background:
                ink += 1
            for c, v in wanted.items():
                if rgb == v:
                    counts[c] += 1
    print(json.dumps({"width": width, "height": height, "ink": ink, "colours": counts}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
