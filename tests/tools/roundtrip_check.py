#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Checks files unpacked by `lcpfs unpack` against their originals with the
independent readers in readers.py (numpy, torch.load, a GGUF reader written
from the spec); nothing here uses lcpfs code.

Usage (run with /usr/bin/python3, which has numpy and torch):
  roundtrip_check.py [--min-cosine C] [--min-size N] [--min-ratio R] [--label L] LIST

LIST has one line per file: ORIGINAL UNPACKED PACKED [INSPECT_JSON]
(PACKED is the payload path; its sidecar is .NAME.lcpfs beside it;
INSPECT_JSON is the output of `lcpfs inspect --json PACKED`, or "-").
Per file it checks:
  - same size; same format, names, dtypes, shapes, offsets (and for GGUF
    the key/value pairs, for .npy the order) per the independent readers;
  - every byte outside tensor data identical: headers, padding, metadata,
    the whole zip structure except the CRC-32 fields of tensor entries;
    for a zip, every CRC-32 (local, central, descriptor) matches its data;
  - tensors that must stay exact (not a float dtype, fewer than 2 or more
    than 8 dims, under min_size bytes, a rotary table, a .pt tensor not
    spanning its own storage, a quantized GGUF type, NaN or inf in the
    original) byte-identical; every other tensor has cosine
    >= C against the original (computed here in float64);
  - the readers accept the file: np.load for .npy, torch.load (with
    weights_only=True when this torch has it) for .pt, the spec GGUF reader;
  - when INSPECT_JSON is given: its logical_size equals the unpacked size,
    its stored_size equals payload + sidecar bytes, its format matches, it
    lists every tensor (but a .pt's) with the readers' dtype and shape, a
    tensor it calls "exact" or "lossless" is byte-identical, and its cosine
    per tensor agrees with the one computed here.
Prints one "SUMMARY" line per file and one "FORMAT" line per format:
format, files, logical bytes, stored bytes, ratio, min cosine; with
--min-ratio, each format's overall ratio must reach R (catches a codec that
silently stores everything losslessly). Exits 1 when any check fails, 2 on
a usage error.
"""
import json
import os
import struct
import sys
import zipfile
import zlib

import numpy as np

sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import readers  # noqa: E402

FLOAT_DTYPES = {"F32", "F16", "BF16", "F64", "<f4", "<f2", "<f8",
                "float32", "float16", "bfloat16", "float64"}
# inspect's cosine is computed by the encoder on its own reconstruction; ours
# comes from the bytes a reader sees. Both are float64 over the same values,
# so they agree to rounding; the slack covers summation order and a cosine
# printed with few digits.
COSINE_REPORT_TOL = 1e-4
DEFAULT_MIN_SIZE = 4096


def sidecar_path(packed):
    d, n = os.path.split(packed)
    return os.path.join(d, "." + n + ".lcpfs")


def zip_crc_fields(path):
    """{entry name: [absolute offsets of its CRC-32 fields]} and the list of
    (name, local CRC, central CRC, descriptor CRC or None, CRC of the stored
    data or None when compressed, has a data descriptor)."""
    fields = {}
    checks = []
    with open(path, "rb") as f:
        raw = f.read()
    z = zipfile.ZipFile(path)
    pos = z.start_dir
    for info in z.infolist():
        if raw[pos:pos + 4] != b"PK\x01\x02":
            raise ValueError("central directory entry for %s not at %d" % (info.filename, pos))
        central_crc = struct.unpack_from("<I", raw, pos + 16)[0]
        nlen, xlen, clen = struct.unpack_from("<HHH", raw, pos + 28)
        offs = [pos + 16]
        lh = info.header_offset
        local_crc = struct.unpack_from("<I", raw, lh + 14)[0]
        offs.append(lh + 14)
        lnlen, lxlen = struct.unpack_from("<HH", raw, lh + 26)
        data_off = lh + 30 + lnlen + lxlen
        desc_crc = None
        if info.flag_bits & 0x8:
            d = data_off + info.compress_size
            if raw[d:d + 4] == b"PK\x07\x08":
                d += 4
            desc_crc = struct.unpack_from("<I", raw, d)[0]
            offs.append(d)
        data_crc = zlib.crc32(raw[data_off:data_off + info.compress_size]) \
            if info.compress_type == zipfile.ZIP_STORED else None
        fields[info.filename] = offs
        checks.append((info.filename, local_crc, central_crc, desc_crc, data_crc,
                       bool(info.flag_bits & 0x8)))
        pos += 46 + nlen + xlen + clen
    return fields, checks


def cosine(a, b):
    a, b = a.reshape(-1), b.reshape(-1)
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na == 0 or nb == 0:
        return 1.0 if na == nb else 0.0
    return float(np.dot(a, b) / (na * nb))


# format.h: rotary-embedding tables stay exact (a substring, any case).
POSITIONAL_MARKERS = ("freqs", "inv_freq", "rotary", "rope")
MAX_DIMS = 8  # LCP_MAX_DIMS


def must_be_exact(fmt, t, min_size):
    if fmt == "gguf" and t["dtype"] not in FLOAT_DTYPES:
        return "quantized/integer"
    if t["dtype"] not in FLOAT_DTYPES:
        return "dtype"
    if len(t["shape"]) < 2:
        return "1-D"
    if len(t["shape"]) > MAX_DIMS:
        return "too many dims"
    if t["nbytes"] < min_size:
        return "under min_size"
    if any(m in t["name"].lower() for m in POSITIONAL_MARKERS):
        return "positional table"
    if fmt == "pytorch" and not t.get("whole_storage", False):
        return "not a whole storage"
    return None


def strip_volatile(d):
    """describe() output without the fields a repack may change (zip CRCs)."""
    out = json.loads(json.dumps(d, default=str))
    for t in out.get("tensors", []):
        t.pop("crc", None)
    return out


class Checker:
    def __init__(self, min_cosine, min_size):
        self.min_cosine = min_cosine
        self.min_size = min_size
        self.failures = 0
        self.per_format = {}

    def fail(self, name, msg):
        self.failures += 1
        print("FAIL %s: %s" % (name, msg))

    def check(self, orig, unp, packed, inspect_path):
        name = os.path.basename(orig)
        nfail = self.failures
        if not os.path.exists(unp):
            self.fail(name, "no unpacked file")
            return
        with open(orig, "rb") as f:
            a = f.read()
        with open(unp, "rb") as f:
            b = f.read()
        if len(a) != len(b):
            self.fail(name, "size %d, original %d" % (len(b), len(a)))
            return
        fmt = readers.detect(orig)
        if readers.detect(unp) != fmt:
            self.fail(name, "format %s, original %s" % (readers.detect(unp), fmt))
            return
        try:
            da, db = readers.describe(orig), readers.describe(unp)
        except Exception as e:  # any reader error on the unpacked file is a failure
            self.fail(name, "reader refuses the unpacked file: %r" % (e,))
            return
        if strip_volatile(da) != strip_volatile(db):
            self.fail(name, "readers describe it differently (names/dtypes/shapes/offsets/kv)")
            return

        # Bytes outside tensor data (and outside zip CRC fields of tensor entries).
        mask = np.ones(len(a), dtype=bool)
        for t in da["tensors"]:
            mask[t["offset"]:t["offset"] + t["nbytes"]] = False
        if fmt == "pytorch":
            fields_a, _ = zip_crc_fields(orig)
            entries = {t["entry"] for t in da["tensors"]}
            for ent, offs in fields_a.items():
                if ent in entries:
                    for o in offs:
                        mask[o:o + 4] = False
            _, checks = zip_crc_fields(unp)
            for ent, local, central, desc, data, has_desc in checks:
                # With a data descriptor (flag bit 3) the local field may be 0.
                if (local != central and not (has_desc and local == 0)) or (desc is not None and desc != central) or \
                        (data is not None and data != central):
                    self.fail(name, "zip entry %s: CRC local %08x central %08x descriptor %s data %s"
                              % (ent, local, central, "-" if desc is None else "%08x" % desc,
                                 "-" if data is None else "%08x" % data))
            with zipfile.ZipFile(unp) as z:
                bad = z.testzip()
                if bad is not None:
                    self.fail(name, "zipfile.testzip: bad CRC in %s" % bad)
        va = np.frombuffer(a, dtype=np.uint8)
        vb = np.frombuffer(b, dtype=np.uint8)
        diff = np.nonzero((va != vb) & mask)[0]
        if diff.size:
            self.fail(name, "%d non-tensor bytes differ, first at offset %d" % (diff.size, diff[0]))

        # Tensor values through the real readers.
        try:
            la, lb = readers.load(orig), readers.load(unp)
            if fmt == "pytorch":
                import inspect as pyinspect
                import torch
                if "weights_only" in pyinspect.signature(torch.load).parameters:
                    torch.load(unp, map_location="cpu", weights_only=True)
            if fmt == "numpy":
                arr = np.load(unp, allow_pickle=False)
                if bool(arr.flags.f_contiguous and not arr.flags.c_contiguous) != \
                        da["tensors"][0]["fortran_order"]:
                    self.fail(name, "np.load order differs")
        except Exception as e:
            self.fail(name, "reader refuses the unpacked file: %r" % (e,))
            return
        report = None
        if inspect_path and inspect_path != "-":
            try:
                with open(inspect_path) as f:
                    report = json.load(f)
            except (OSError, ValueError) as e:
                self.fail(name, "inspect --json output unreadable: %s" % e)
        rep_tensors = {t.get("name"): t for t in (report or {}).get("tensors", [])}
        min_cos = 1.0
        ncomp = nexact = 0
        for t in da["tensors"]:
            tn = t["name"]
            raw_a = a[t["offset"]:t["offset"] + t["nbytes"]]
            raw_b = b[t["offset"]:t["offset"] + t["nbytes"]]
            why = must_be_exact(fmt, t, self.min_size)
            rt = rep_tensors.get(tn)
            if report is not None and fmt != "pytorch" and t["nbytes"] > 0:
                # A .pt storage may be listed under another key; elsewhere
                # every tensor is one region with the file's own dtype.
                if rt is None:
                    self.fail(name, "inspect does not list tensor %s" % tn)
                elif rt.get("dtype") != t["dtype"] or list(rt.get("shape", [])) != list(t["shape"]):
                    self.fail(name, "inspect lists %s as %s %s, readers see %s %s"
                              % (tn, rt.get("dtype"), rt.get("shape"), t["dtype"], t["shape"]))
            if rt is not None and rt.get("encoding") in ("exact", "lossless") and why is None:
                why = "inspect says %s" % rt.get("encoding")
            if why is not None:
                nexact += 1
                if raw_a != raw_b:
                    self.fail(name, "tensor %s (%s, exact: %s) not byte-identical" % (tn, t["dtype"], why))
                continue
            ncomp += 1
            if tn not in la or tn not in lb:
                self.fail(name, "tensor %s missing from a reader's load" % tn)
                continue
            (dta, xa), (dtb, xb) = la[tn], lb[tn]
            if dta != dtb or xa.shape != xb.shape:
                self.fail(name, "tensor %s loads as %s %s, original %s %s" % (tn, dtb, xb.shape, dta, xa.shape))
                continue
            if not np.all(np.isfinite(xa)):
                # NaN/inf have no cosine: such a tensor must come back as it was.
                nexact += 1
                ncomp -= 1
                if raw_a != raw_b:
                    self.fail(name, "tensor %s holds NaN/inf and is not byte-identical" % tn)
                continue
            if not np.all(np.isfinite(xb)):
                self.fail(name, "tensor %s has non-finite values" % tn)
            c = cosine(xa, xb)
            min_cos = min(min_cos, c)
            if not c >= self.min_cosine:  # NaN fails too
                self.fail(name, "tensor %s cosine %.6f < floor %.4f" % (tn, c, self.min_cosine))
            if rt is not None and rt.get("cosine") is not None and \
                    abs(float(rt["cosine"]) - c) > COSINE_REPORT_TOL:
                self.fail(name, "tensor %s: inspect says cosine %.6f, readers measure %.6f"
                          % (tn, float(rt["cosine"]), c))
        logical = len(b)
        stored = os.path.getsize(packed) + (os.path.getsize(sidecar_path(packed))
                                            if os.path.exists(sidecar_path(packed)) else 0)
        if report is not None:
            if report.get("logical_size") != logical:
                self.fail(name, "inspect logical_size %s != %d" % (report.get("logical_size"), logical))
            if report.get("stored_size") != stored:
                self.fail(name, "inspect stored_size %s != payload + sidecar %d"
                          % (report.get("stored_size"), stored))
            if report.get("format") != fmt:
                self.fail(name, "inspect format %s, readers say %s" % (report.get("format"), fmt))
        print("SUMMARY %-26s %-11s logical %9d stored %9d ratio %5.2f min_cos %.4f tensors %d compressed %d exact %d %s"
              % (name, fmt, logical, stored, logical / max(stored, 1), min_cos, len(da["tensors"]),
                 ncomp, nexact, "ok" if self.failures == nfail else "FAILED"))
        agg = self.per_format.setdefault(fmt, [0, 0, 0, 1.0])
        agg[0] += 1
        agg[1] += logical
        agg[2] += stored
        agg[3] = min(agg[3], min_cos)


def main(argv):
    min_cos, min_size, label, min_ratio = 0.97, DEFAULT_MIN_SIZE, "", None
    while argv and argv[0].startswith("--"):
        if len(argv) < 2:
            print(__doc__)
            return 2
        if argv[0] == "--min-cosine":
            min_cos = float(argv[1])
        elif argv[0] == "--min-size":
            min_size = int(argv[1])
        elif argv[0] == "--min-ratio":
            min_ratio = float(argv[1])
        elif argv[0] == "--label":
            label = argv[1] + " "
        else:
            print(__doc__)
            return 2
        argv = argv[2:]
    if len(argv) != 1:
        print(__doc__)
        return 2
    c = Checker(min_cos, min_size)
    n = 0
    with open(argv[0]) as f:
        for line in f:
            parts = line.split()
            if not parts:
                continue
            c.check(parts[0], parts[1], parts[2], parts[3] if len(parts) > 3 else None)
            n += 1
    if n == 0:
        print("FAIL: empty list")
        return 1
    for fmt, (files, logical, stored, mc) in sorted(c.per_format.items()):
        ratio = logical / max(stored, 1)
        print("FORMAT %s%-11s files %d logical %9d stored %9d ratio %5.2f min_cos %.4f"
              % (label, fmt, files, logical, stored, ratio, mc))
        if min_ratio is not None and ratio < min_ratio:
            c.fail(fmt, "overall ratio %.2f under %.2f" % (ratio, min_ratio))
    print("%schecked %d files, %d failures (floor %.4f)" % (label, n, c.failures, min_cos))
    return 1 if c.failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
