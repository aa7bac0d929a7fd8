#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Independent readers for the tensor file formats lcpfs handles.

None of this shares code or logic with src/format: safetensors and GGUF are
read here from their specs with numpy only, .npy with np.load, PyTorch files
with torch.load (plus zipfile for where the bytes sit). Tests use them to
check what lcpfs parses, packs and unpacks.

Usage (run with /usr/bin/python3, which has numpy and torch):
  readers.py list FILE              one line per tensor: name dtype shape offset nbytes
  readers.py list --json FILE       the same as a JSON document (see describe())
  readers.py compare A B [--min-cosine C] [--max-abs D]
                                    compares two files of the same format tensor
                                    by tensor: names, dtypes and shapes must be
                                    equal; prints max |a-b| and cosine per tensor;
                                    exits 1 when a tensor differs in name, dtype or
                                    shape, or is under C / over D (defaults: any
                                    value passes), 2 on a read error.
  readers.py format FILE            prints safetensors|gguf|numpy|pytorch|unknown

In Python: describe(path) -> {"format", "tensors": [{"name", "dtype", "shape",
"offset", "nbytes", ...}]} with offset the absolute file offset of the
tensor's bytes and shape in storage order (row-major over the bytes: GGUF
dims reversed, Fortran-order .npy dims reversed); load(path) -> {name:
float64 numpy array in that storage order} for comparisons.
"""
import json
import struct
import sys
import zipfile

import numpy as np

# safetensors dtypes -> (numpy dtype or None, bytes per element)
ST_DTYPES = {
    "F64": ("<f8", 8), "F32": ("<f4", 4), "F16": ("<f2", 2), "BF16": (None, 2),
    "I64": ("<i8", 8), "I32": ("<i4", 4), "I16": ("<i2", 2), "I8": ("i1", 1),
    "U64": ("<u8", 8), "U32": ("<u4", 4), "U16": ("<u2", 2), "U8": ("u1", 1),
    "BOOL": ("u1", 1), "F8_E4M3": ("u1", 1), "F8_E5M2": ("u1", 1),
}

# ggml types: name, elements per block, bytes per block (ggml-common.h)
GGML_TYPES = {
    0: ("F32", 1, 4), 1: ("F16", 1, 2), 2: ("Q4_0", 32, 18), 3: ("Q4_1", 32, 20),
    6: ("Q5_0", 32, 22), 7: ("Q5_1", 32, 24), 8: ("Q8_0", 32, 34), 9: ("Q8_1", 32, 36),
    10: ("Q2_K", 256, 84), 11: ("Q3_K", 256, 110), 12: ("Q4_K", 256, 144),
    13: ("Q5_K", 256, 176), 14: ("Q6_K", 256, 210), 15: ("Q8_K", 256, 292),
    24: ("I8", 1, 1), 25: ("I16", 1, 2), 26: ("I32", 1, 4), 27: ("I64", 1, 8),
    28: ("F64", 1, 8), 30: ("BF16", 1, 2),
}


def bf16_to_f32(raw):
    """bfloat16 bytes -> float32 array (bf16 is the high half of an f32)."""
    u = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
    return u.view(np.float32)


def detect(path):
    with open(path, "rb") as f:
        head = f.read(16)
    if head[:6] == b"\x93NUMPY":
        return "numpy"
    if head[:4] == b"GGUF":
        return "gguf"
    if head[:2] == b"PK":
        try:
            with zipfile.ZipFile(path) as z:
                if any(n.endswith("/data.pkl") for n in z.namelist()):
                    return "pytorch"
        except zipfile.BadZipFile:
            pass
        return "unknown"
    if len(head) >= 9 and head[8:9] == b"{":
        return "safetensors"
    return "unknown"


# safetensors ---------------------------------------------------------------

def st_describe(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    base = 8 + n
    tensors = []
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        tensors.append({"name": name, "dtype": e["dtype"], "shape": list(e["shape"]),
                        "offset": base + b, "nbytes": end - b})
    tensors.sort(key=lambda t: t["offset"])
    return {"format": "safetensors", "header_bytes": base, "tensors": tensors}


def st_load(path):
    d = st_describe(path)
    out = {}
    with open(path, "rb") as f:
        for t in d["tensors"]:
            f.seek(t["offset"])
            raw = f.read(t["nbytes"])
            np_dt = ST_DTYPES[t["dtype"]][0]
            a = bf16_to_f32(raw) if t["dtype"] == "BF16" else np.frombuffer(raw, dtype=np_dt)
            out[t["name"]] = (t["dtype"], a.astype(np.float64).reshape(t["shape"]))
    return out


# GGUF (docs/gguf.md) -------------------------------------------------------

class _Cur:
    def __init__(self, f):
        self.f = f

    def take(self, fmt):
        size = struct.calcsize(fmt)
        raw = self.f.read(size)
        if len(raw) != size:
            raise ValueError("gguf: truncated")
        return struct.unpack(fmt, raw)

    def string(self):
        (n,) = self.take("<Q")
        raw = self.f.read(n)
        if len(raw) != n:
            raise ValueError("gguf: truncated string")
        return raw.decode("utf-8")

    def value(self, vtype):
        scalar = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
                  10: "<Q", 11: "<q", 12: "<d"}
        if vtype in scalar:
            return self.take(scalar[vtype])[0]
        if vtype == 8:
            return self.string()
        if vtype == 9:
            (etype,) = self.take("<I")
            (count,) = self.take("<Q")
            return [self.value(etype) for _ in range(count)]
        raise ValueError("gguf: unknown value type %d" % vtype)


def gguf_describe(path):
    with open(path, "rb") as f:
        c = _Cur(f)
        magic, version = c.take("<4sI")
        if magic != b"GGUF" or version not in (2, 3):
            raise ValueError("not a GGUF v2/v3 file")
        n_tensors, n_kv = c.take("<QQ")
        kv = {}
        for _ in range(n_kv):
            key = c.string()
            (vtype,) = c.take("<I")
            kv[key] = c.value(vtype)
        infos = []
        for _ in range(n_tensors):
            name = c.string()
            (nd,) = c.take("<I")
            dims = list(c.take("<%dQ" % nd)) if nd else []
            ttype, off = c.take("<IQ")
            infos.append((name, dims, ttype, off))
        align = kv.get("general.alignment", 32)
        pos = f.tell()
        data_start = (pos + align - 1) // align * align
    tensors = []
    for name, dims, ttype, off in infos:
        tname, blck, bsize = GGML_TYPES[ttype]
        numel = int(np.prod(dims)) if dims else 1
        tensors.append({"name": name, "dtype": tname, "shape": dims[::-1],
                        "offset": data_start + off, "nbytes": numel // blck * bsize,
                        "ggml_type": ttype})
    tensors.sort(key=lambda t: t["offset"])
    return {"format": "gguf", "version": version, "alignment": align, "kv": kv,
            "header_bytes": data_start, "tensors": tensors}


def dequant_q8_0(raw):
    blocks = np.frombuffer(raw, dtype=np.dtype([("d", "<f2"), ("q", "i1", 32)]))
    return (blocks["d"].astype(np.float32)[:, None] * blocks["q"].astype(np.float32)).reshape(-1)


def gguf_load(path):
    d = gguf_describe(path)
    out = {}
    with open(path, "rb") as f:
        for t in d["tensors"]:
            f.seek(t["offset"])
            raw = f.read(t["nbytes"])
            kind = t["dtype"]
            if kind == "F32":
                a = np.frombuffer(raw, "<f4")
            elif kind == "F16":
                a = np.frombuffer(raw, "<f2")
            elif kind == "BF16":
                a = bf16_to_f32(raw)
            elif kind == "Q8_0":
                a = dequant_q8_0(raw)
            else:
                a = np.frombuffer(raw, "u1")  # compared as bytes
                out[t["name"]] = (kind, a.astype(np.float64))
                continue
            out[t["name"]] = (kind, a.astype(np.float64).reshape(t["shape"]))
    return out


# NumPy -----------------------------------------------------------------------

def npy_describe(path):
    a = np.load(path, mmap_mode="r", allow_pickle=False)
    shape = list(a.shape)
    if a.flags.f_contiguous and not a.flags.c_contiguous:
        shape = shape[::-1]
    return {"format": "numpy", "header_bytes": int(a.offset),
            "tensors": [{"name": "array", "dtype": a.dtype.str, "shape": shape,
                         "offset": int(a.offset), "nbytes": int(a.nbytes),
                         "fortran_order": bool(a.flags.f_contiguous and not a.flags.c_contiguous)}]}


def npy_load(path):
    a = np.load(path, allow_pickle=False)
    if a.flags.f_contiguous and not a.flags.c_contiguous:
        a = a.T  # storage order
    return {"array": (a.dtype.str, a.astype(np.float64))}


# PyTorch zip -----------------------------------------------------------------

def _zip_data_offset(path, info):
    """Absolute offset of an entry's bytes: after its local header."""
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        h = f.read(30)
        nlen, xlen = struct.unpack("<HH", h[26:30])
        return info.header_offset + 30 + nlen + xlen


class _KeyUnpickler:
    """Runs data.pkl with the stdlib unpickler, but resolves storages to their
    zip keys and _rebuild_tensor_v2 calls to plain records, so each tensor's
    storage key, offset, size and stride are known without torch internals."""

    @staticmethod
    def scan(raw):
        import collections
        import io
        import pickle

        class Storage:
            def __init__(self, pid):
                self.type_name = getattr(pid[1], "__name__", str(pid[1]))
                self.key, self.location, self.numel = pid[2], pid[3], pid[4]

        def rebuild(storage, offset, size, stride, *rest):
            return {"storage": storage, "offset": offset, "size": tuple(size),
                    "stride": tuple(stride)}

        def parameter(data, *rest):
            return data

        class U(pickle.Unpickler):
            def find_class(self, module, name):
                if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
                    return rebuild
                if module == "torch._utils" and name.startswith("_rebuild_parameter"):
                    return parameter
                if (module, name) == ("collections", "OrderedDict"):
                    return collections.OrderedDict
                if module == "torch" and name.endswith("Storage"):
                    return type(name, (), {})
                raise pickle.UnpicklingError("unexpected global %s.%s" % (module, name))

            def persistent_load(self, pid):
                return Storage(pid)

        return U(io.BytesIO(raw)).load()


def torch_describe(path):
    import torch
    sd = torch.load(path, map_location="cpu")
    if not isinstance(sd, dict):
        raise ValueError("pytorch: top-level object is not a dict")
    z = zipfile.ZipFile(path)
    pkl = [n for n in z.namelist() if n.endswith("/data.pkl")][0]
    prefix = pkl[:-len("data.pkl")]
    records = _KeyUnpickler.scan(z.read(pkl))
    uses = {}
    for rec in records.values():
        if isinstance(rec, dict):
            uses[rec["storage"].key] = uses.get(rec["storage"].key, 0) + 1
    tensors = []
    for name, t in sd.items():
        if not isinstance(t, torch.Tensor):
            continue
        rec = records[name]
        info = z.getinfo(prefix + "data/" + rec["storage"].key)
        contiguous = t.is_contiguous() and rec["offset"] == 0 and \
            t.numel() * t.element_size() == info.file_size
        tensors.append({"name": name, "dtype": str(t.dtype).replace("torch.", ""),
                        "storage_type": rec["storage"].type_name,
                        "shape": list(t.shape), "offset": _zip_data_offset(path, info),
                        "nbytes": info.file_size, "entry": info.filename, "crc": info.CRC,
                        "whole_storage": bool(contiguous and uses[rec["storage"].key] == 1)})
    tensors.sort(key=lambda t: t["offset"])
    return {"format": "pytorch", "tensors": tensors}


def torch_load(path):
    import torch
    sd = torch.load(path, map_location="cpu")
    return {k: (str(v.dtype).replace("torch.", ""), v.detach().to(torch.float64).numpy())
            for k, v in sd.items() if isinstance(v, torch.Tensor)}


# dispatch --------------------------------------------------------------------

DESCRIBE = {"safetensors": st_describe, "gguf": gguf_describe, "numpy": npy_describe,
            "pytorch": torch_describe}
LOAD = {"safetensors": st_load, "gguf": gguf_load, "numpy": npy_load, "pytorch": torch_load}


def describe(path):
    fmt = detect(path)
    if fmt not in DESCRIBE:
        return {"format": "unknown", "tensors": []}
    return DESCRIBE[fmt](path)


def load(path):
    fmt = detect(path)
    if fmt not in LOAD:
        raise ValueError("%s: unknown format" % path)
    return LOAD[fmt](path)


def compare(a_path, b_path, min_cosine=None, max_abs=None):
    a, b = load(a_path), load(b_path)
    bad = 0
    if sorted(a) != sorted(b):
        print("tensor names differ: %s vs %s" % (sorted(set(a) - set(b)), sorted(set(b) - set(a))))
        return 1
    for name in sorted(a):
        (da, xa), (db, xb) = a[name], b[name]
        if da != db or xa.shape != xb.shape:
            print("%s: dtype/shape %s %s vs %s %s" % (name, da, xa.shape, db, xb.shape))
            bad += 1
            continue
        fa, fb = xa.reshape(-1), xb.reshape(-1)
        diff = float(np.max(np.abs(fa - fb))) if fa.size else 0.0
        na, nb = float(np.linalg.norm(fa)), float(np.linalg.norm(fb))
        cos = float(np.dot(fa, fb) / (na * nb)) if na > 0 and nb > 0 else (1.0 if na == nb else 0.0)
        flag = ""
        if (min_cosine is not None and cos < min_cosine) or (max_abs is not None and diff > max_abs):
            flag = "  FAIL"
            bad += 1
        print("%s %s %s max_abs=%.6g cosine=%.8f%s" % (name, da, list(xa.shape), diff, cos, flag))
    return 1 if bad else 0


def main(argv):
    if len(argv) >= 2 and argv[0] == "format":
        print(detect(argv[1]))
        return 0
    if len(argv) >= 2 and argv[0] == "list":
        as_json = argv[1] == "--json"
        path = argv[-1]
        d = describe(path)
        if as_json:
            json.dump(d, sys.stdout, default=str)
            print()
        else:
            for t in d["tensors"]:
                print(t["name"], t["dtype"], "x".join(map(str, t["shape"])) or "scalar",
                      t["offset"], t["nbytes"])
        return 0
    if len(argv) >= 3 and argv[0] == "compare":
        min_cos = max_abs = None
        rest = argv[3:]
        while rest:
            if rest[0] == "--min-cosine":
                min_cos = float(rest[1])
            elif rest[0] == "--max-abs":
                max_abs = float(rest[1])
            else:
                print(__doc__)
                return 2
            rest = rest[2:]
        return compare(argv[1], argv[2], min_cos, max_abs)
    print(__doc__)
    return 2


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except (ValueError, KeyError, OSError, zipfile.BadZipFile) as e:
        print("error: %s" % e, file=sys.stderr)
        sys.exit(2)
