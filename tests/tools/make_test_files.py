#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Writes real-data test files of every format lcpfs parses, plus malformed ones.

Usage (run with /usr/bin/python3, which has numpy and torch):
  make_test_files.py OUTDIR [--data DIR] [--edge-pt]

DIR defaults to tests/data relative to the current directory (tests run
from the repository root). Reads llama2c-stories260K.safetensors and
faceres-subset.safetensors from DIR with the numpy-only reader in
readers.py and writes into OUTDIR:

  stories_bf16.safetensors, stories_f16.safetensors, faceres_f16.safetensors
  stories_v2.gguf          GGUF v2, default alignment 32: F32, F16, one Q8_0
  stories_v3_a64.gguf      GGUF v3, general.alignment 64: F16, BF16, F32, Q8_0
  npy_v1_c_f4.npy npy_v1_f_f4.npy npy_v2_c_f2.npy npy_v2_f_f2.npy
  npy_v3_c_f8.npy npy_v3_f_f8.npy npy_v1_c_3d_f4.npy   (.npy header versions
                           1.0/2.0/3.0, C and Fortran order, f4/f2/f8)
  stories.pt               torch.save of a dict of F32/F16/BF16/int64 tensors
  edge_cases.safetensors   the TENSOR/EXACT rule's edges: odd sizes, exactly
                           min_size and under, F64, 4-D, zero-length,
                           zeros, constant, outliers, NaN/inf, BOOL, F8, a
                           rotary table
  npy_v1_f_odd_f4.npy      Fortran order, 33 x 137 (no group divides it)
  edge.pt                  (only with --edge-pt) torch.save with a storage
                           shared by two keys, a view, a transpose: several
                           tensors at one offset, which test_format_real.c's
                           one-tensor-per-offset lookup does not expect
  bad_truncated.safetensors, bad_overlap.safetensors, bad_header_len.safetensors,
  bad_truncated.gguf, bad_counts.gguf, bad_truncated.pt, bad_nopkl.zip,
  bad_size.npy             malformed variants

and OUTDIR/manifest.json: {"files": [{"file", "expect", "format",
"describe"}]} where expect is "valid" (describe = readers.describe() of the
file: what an independent reader sees), "invalid" (must fail validation) or
"unknown" (must not be taken for a tensor format at all).
"""
import json
import os
import struct
import sys
import zipfile

import numpy as np

sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import readers  # noqa: E402


def f32_to_bf16_bytes(a):
    """Round-to-nearest-even float32 -> bfloat16 bytes."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return u.astype("<u2").tobytes()


def write_safetensors(path, tensors, metadata=None):
    """tensors: list of (name, dtype string, shape, raw bytes)."""
    header = {}
    if metadata:
        header["__metadata__"] = metadata
    off = 0
    for name, dt, shape, raw in tensors:
        header[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + len(raw)]}
        off += len(raw)
    js = json.dumps(header, separators=(",", ":")).encode()
    js += b" " * ((8 - len(js) % 8) % 8)  # the reference writer pads to 8
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(js)))
        f.write(js)
        for _, _, _, raw in tensors:
            f.write(raw)


# GGUF writer (docs/gguf.md) -------------------------------------------------

GG_U8, GG_I8, GG_U16, GG_I16, GG_U32, GG_I32, GG_F32, GG_BOOL, GG_STR, GG_ARR, GG_U64, GG_I64, GG_F64 = range(13)
SCALAR_FMT = {GG_U8: "<B", GG_I8: "<b", GG_U16: "<H", GG_I16: "<h", GG_U32: "<I", GG_I32: "<i",
              GG_F32: "<f", GG_BOOL: "<?", GG_U64: "<Q", GG_I64: "<q", GG_F64: "<d"}


def gg_str(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def gg_value(vtype, v):
    if vtype in SCALAR_FMT:
        return struct.pack(SCALAR_FMT[vtype], v)
    if vtype == GG_STR:
        return gg_str(v)
    etype, items = v
    return struct.pack("<IQ", etype, len(items)) + b"".join(gg_value(etype, x) for x in items)


def q8_0_encode(x):
    """ggml Q8_0: blocks of 32 values, an f16 scale d = max|x|/127, int8 codes."""
    x = np.ascontiguousarray(x, dtype=np.float32).reshape(-1, 32)
    amax = np.abs(x).max(axis=1)
    d = amax / 127.0
    inv = np.where(d > 0, 1.0 / np.where(d > 0, d, 1), 0)
    q = np.clip(np.round(x * inv[:, None]), -127, 127).astype(np.int8)
    blocks = np.zeros(x.shape[0], dtype=np.dtype([("d", "<f2"), ("q", "i1", 32)]))
    blocks["d"] = d.astype(np.float16)
    blocks["q"] = q
    return blocks.tobytes()


def write_gguf(path, version, kvs, tensors, alignment=None):
    """kvs: list of (key, type, value); tensors: (name, ggml type, storage shape, raw)."""
    align = alignment or 32
    kv_list = list(kvs)
    if alignment:
        kv_list.append(("general.alignment", GG_U32, alignment))
    out = bytearray(b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(kv_list)))
    for key, vtype, v in kv_list:
        out += gg_str(key) + struct.pack("<I", vtype) + gg_value(vtype, v)
    off = 0
    offsets = []
    for name, gtype, shape, raw in tensors:
        offsets.append(off)
        dims = list(shape)[::-1]  # GGUF lists the fastest-varying dim first
        out += gg_str(name) + struct.pack("<I", len(dims)) + struct.pack("<%dQ" % len(dims), *dims)
        out += struct.pack("<IQ", gtype, off)
        off += len(raw)
        off = (off + align - 1) // align * align
    out += b"\0" * ((align - len(out) % align) % align)
    base = len(out)
    for (_, _, _, raw), o in zip(tensors, offsets):
        out += b"\0" * (base + o - len(out))  # padding up to the aligned offset
        out += raw
    with open(path, "wb") as f:
        f.write(out)


# torch -------------------------------------------------------------------------

def write_pt(path, arrays):
    import torch
    sd = {}
    for name, (kind, a) in arrays.items():
        t = torch.from_numpy(np.ascontiguousarray(a))
        sd[name] = t.to({"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16,
                         "i64": torch.int64}[kind])
    torch.save(sd, path)


def write_edge_pt(path, k):
    """A torch.save whose storages are shared by two keys, viewed, transposed:
    those tensors must stay exact, the two plain ones compress."""
    import torch
    base = torch.from_numpy(k[:8192].reshape(64, 128).copy())
    torch.save({"whole": torch.from_numpy(k[8192:16384].reshape(128, 64).copy()),
                "shared_a": base, "shared_b": base,  # one storage, two keys
                "view_rows": base[8:40], "transposed": base.t(),
                "half": torch.from_numpy(k[:6000].reshape(60, 100).copy()).half()},
               path)


def main(argv):
    if not argv or argv[0].startswith("-"):
        print(__doc__)
        return 2
    out = argv[0]
    data = "tests/data"
    edge_pt = "--edge-pt" in argv
    argv = [a for a in argv if a != "--edge-pt"]
    if len(argv) >= 3 and argv[1] == "--data":
        data = argv[2]
    os.makedirs(out, exist_ok=True)
    stories = readers.st_load(os.path.join(data, "llama2c-stories260K.safetensors"))
    faceres = readers.st_load(os.path.join(data, "faceres-subset.safetensors"))
    s32 = {k: v.astype(np.float32) for k, (_, v) in stories.items()}
    f32 = {k: v.astype(np.float32) for k, (_, v) in faceres.items()}
    manifest = []

    def add(name, expect, fmt):
        entry = {"file": name, "expect": expect, "format": fmt}
        if expect == "valid":
            entry["describe"] = readers.describe(os.path.join(out, name))
            assert entry["describe"]["format"] == fmt, name
        manifest.append(entry)

    # safetensors
    write_safetensors(os.path.join(out, "stories_bf16.safetensors"),
                      [(k, "BF16", v.shape, f32_to_bf16_bytes(v)) for k, v in s32.items()],
                      {"format": "pt", "source": "stories260K"})
    add("stories_bf16.safetensors", "valid", "safetensors")
    extra = [("positions", "I32", (4, 4), np.arange(16, dtype="<i4").tobytes()),
             ("step", "I64", (1,), struct.pack("<q", 7))]
    write_safetensors(os.path.join(out, "stories_f16.safetensors"),
                      [(k, "F16", v.shape, v.astype("<f2").tobytes()) for k, v in s32.items()] + extra)
    add("stories_f16.safetensors", "valid", "safetensors")
    write_safetensors(os.path.join(out, "faceres_f16.safetensors"),
                      [(k, "F16", v.shape, v.astype("<f2").tobytes()) for k, v in f32.items()])
    add("faceres_f16.safetensors", "valid", "safetensors")

    # GGUF
    kvs = [("general.architecture", GG_STR, "llama"), ("general.name", GG_STR, "stories260K"),
           ("llama.context_length", GG_U32, 512), ("llama.embedding_length", GG_U64, 64),
           ("llama.rope.freq_base", GG_F32, 10000.0), ("general.flag", GG_BOOL, True),
           ("test.i8", GG_I8, -3), ("test.u16", GG_U16, 9), ("test.i16", GG_I16, -9),
           ("test.i32", GG_I32, -99), ("test.i64", GG_I64, -999), ("test.f64", GG_F64, 0.5),
           ("test.u8", GG_U8, 200),
           ("tokenizer.ggml.tokens", GG_ARR, (GG_STR, ["<unk>", "<s>", "</s>", "hello"])),
           ("tokenizer.ggml.scores", GG_ARR, (GG_F32, [0.0, -1.0, -2.0, -3.0])),
           ("test.nested", GG_ARR, (GG_ARR, [(GG_I32, [1, 2]), (GG_I32, [3])]))]
    names = list(s32)
    t2 = []
    for i, k in enumerate(names):
        v = s32[k]
        if k == "tok_embeddings.weight":
            t2.append((k, 8, v.shape, q8_0_encode(v)))
        elif v.ndim >= 2 and i % 3 == 0:
            t2.append((k, 1, v.shape, v.astype("<f2").tobytes()))
        else:
            t2.append((k, 0, v.shape, v.astype("<f4").tobytes()))
    write_gguf(os.path.join(out, "stories_v2.gguf"), 2, kvs, t2)
    add("stories_v2.gguf", "valid", "gguf")
    t3 = []
    for i, k in enumerate(names):
        v = s32[k]
        q8_ok = v.ndim >= 2 and v.shape[-1] % 32 == 0  # Q8_0 blocks run along a row
        if q8_ok and (k == "output.weight" or i % 4 == 1):
            t3.append((k, 8, v.shape, q8_0_encode(v)))
        elif v.ndim >= 2 and i % 4 == 2:
            t3.append((k, 30, v.shape, f32_to_bf16_bytes(v)))
        elif v.ndim >= 2:
            t3.append((k, 1, v.shape, v.astype("<f2").tobytes()))
        else:
            t3.append((k, 0, v.shape, v.astype("<f4").tobytes()))
    write_gguf(os.path.join(out, "stories_v3_a64.gguf"), 3, kvs, t3, alignment=64)
    add("stories_v3_a64.gguf", "valid", "gguf")

    # .npy: a non-square matrix so Fortran order visibly reverses the dims
    m = f32["age_pred/kernel"]  # 256 x 100
    for ver, order, dt in [((1, 0), "c", "<f4"), ((1, 0), "f", "<f4"), ((2, 0), "c", "<f2"),
                           ((2, 0), "f", "<f2"), ((3, 0), "c", "<f8"), ((3, 0), "f", "<f8")]:
        a = m.astype(dt)
        a = np.asfortranarray(a) if order == "f" else np.ascontiguousarray(a)
        name = "npy_v%d_%s_%s.npy" % (ver[0], order, dt[1:])
        with open(os.path.join(out, name), "wb") as f:
            np.lib.format.write_array(f, a, version=ver)
        add(name, "valid", "numpy")
    np.save(os.path.join(out, "npy_v1_c_3d_f4.npy"), m.reshape(4, 64, 100))
    add("npy_v1_c_3d_f4.npy", "valid", "numpy")

    # torch
    pt = {}
    for i, k in enumerate(names):
        kind = "f32" if i % 3 == 0 else ("f16" if i % 3 == 1 else "bf16")
        pt[k] = (kind, s32[k])
    pt["step"] = ("i64", np.array([7, 8, 9], dtype=np.int64))
    write_pt(os.path.join(out, "stories.pt"), pt)
    add("stories.pt", "valid", "pytorch")

    # edge cases of the TENSOR/EXACT rule (format.h): odd sizes against the
    # group size, exactly min_size and one element under, F64, 4-D,
    # zero-length, all-zero and constant tensors, outliers, NaN/inf, non-float
    # dtypes, a rotary table; an odd Fortran-order .npy; with --edge-pt, a
    # .pt with shared storages and views
    k = f32["conv_pw_4/convolution/merged_input"].reshape(-1)  # 32768 real weights
    outl = k[:4096].copy().reshape(64, 64)
    outl[3, 5], outl[40, 2] = 1e4, -3e3
    nonfin = k[4096:12288].copy().reshape(64, 128)
    nonfin[1, 2], nonfin[9, 9], nonfin[60, 100] = np.nan, np.inf, -np.inf
    edge = [("odd_f32", "F32", (33, 37), k[:1221].astype("<f4").tobytes()),
            ("min_size_f32", "F32", (32, 32), k[:1024].astype("<f4").tobytes()),
            ("under_min_f32", "F32", (31, 33), k[:1023].astype("<f4").tobytes()),
            ("mat_f64", "F64", (40, 30), k[:1200].astype("<f8").tobytes()),
            ("four_d_f16", "F16", (4, 6, 8, 16), k[:3072].astype("<f2").tobytes()),
            ("empty_f32", "F32", (0, 4), b""),
            ("zeros_f32", "F32", (64, 64), np.zeros(4096, "<f4").tobytes()),
            ("const_f16", "F16", (64, 64), np.full(4096, 0.5, "<f2").tobytes()),
            ("outliers_f32", "F32", (64, 64), outl.astype("<f4").tobytes()),
            ("nonfinite_f32", "F32", (64, 128), nonfin.astype("<f4").tobytes()),
            ("mask_bool", "BOOL", (64, 80), (k[:5120] > 0).astype("u1").tobytes()),
            ("codes_f8", "F8_E4M3", (64, 80), (k[:5120] * 1e3).astype("i1").tobytes()),
            ("rope_freqs.weight", "F32", (64, 64), k[:4096].astype("<f4").tobytes()),
            ("tail_bf16", "BF16", (100, 81), f32_to_bf16_bytes(k[:8100]))]
    write_safetensors(os.path.join(out, "edge_cases.safetensors"), edge, {"note": "edge cases"})
    add("edge_cases.safetensors", "valid", "safetensors")
    a = np.asfortranarray(k[:33 * 137].reshape(33, 137).astype("<f4"))
    np.save(os.path.join(out, "npy_v1_f_odd_f4.npy"), a)
    add("npy_v1_f_odd_f4.npy", "valid", "numpy")
    if edge_pt:
        write_edge_pt(os.path.join(out, "edge.pt"), k)
        add("edge.pt", "valid", "pytorch")

    # malformed
    def variant(src, dst, mutate):
        with open(os.path.join(out, src), "rb") as f:
            b = bytearray(f.read())
        with open(os.path.join(out, dst), "wb") as f:
            f.write(mutate(b))

    variant("stories_f16.safetensors", "bad_truncated.safetensors", lambda b: b[: len(b) * 3 // 5])
    add("bad_truncated.safetensors", "invalid", "safetensors")
    variant("stories_f16.safetensors", "bad_header_len.safetensors",
            lambda b: struct.pack("<Q", 1 << 62) + b[8:])
    add("bad_header_len.safetensors", "invalid", "safetensors")
    w = s32["layers.0.attention.wq.weight"]
    raw = w.astype("<f4").tobytes()
    hdr = {"a": {"dtype": "F32", "shape": [64, 64], "data_offsets": [0, len(raw)]},
           "b": {"dtype": "F32", "shape": [64, 64], "data_offsets": [len(raw) - 256, 2 * len(raw) - 256]}}
    js = json.dumps(hdr).encode()
    with open(os.path.join(out, "bad_overlap.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(js)) + js + raw + raw[256:])
    add("bad_overlap.safetensors", "invalid", "safetensors")
    variant("stories_v2.gguf", "bad_truncated.gguf", lambda b: b[: len(b) - 100])
    add("bad_truncated.gguf", "invalid", "gguf")
    variant("stories_v2.gguf", "bad_counts.gguf", lambda b: b[:8] + struct.pack("<Q", 1 << 40) + b[16:])
    add("bad_counts.gguf", "invalid", "gguf")
    variant("stories.pt", "bad_truncated.pt", lambda b: b[: len(b) - 30])
    add("bad_truncated.pt", "unknown", "unknown")  # the zip end record is gone
    with zipfile.ZipFile(os.path.join(out, "bad_nopkl.zip"), "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data/0", raw)
        z.writestr("archive/version", "3\n")
    add("bad_nopkl.zip", "unknown", "unknown")
    variant("npy_v1_c_f4.npy", "bad_size.npy", lambda b: b + b"\0\0\0\0")
    add("bad_size.npy", "invalid", "numpy")

    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump({"files": manifest}, f, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
