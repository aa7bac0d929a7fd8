# SPDX-License-Identifier: Apache-2.0
"""How far lossless coding of the shared weights can go (issue 12).

The lossless preset's target is a ratio of at least 1.05x a byte-plane zstd -3
reference. This script measures, on the same tensors bench_codec uses (every
F32 tensor of >= 2 dims and >= 4096 elements of the files in BENCH_DATA, as F32
and rounded to nearest-even F16 and BF16), what stronger coders reach on the
same input:
  - general compressors on each tensor's byte planes (one stream per tensor,
    like the reference): zstd -19, xz -9e, bzip2 -9;
  - context models that learn as they go: each element's top byte below the
    sign (the plane lcpfs splits off: F32/BF16 exponent, F16 exponent and top
    three mantissa bits) coded under a context, the other bits raw or (F16)
    conditioned on the exponent. The cost is the exact sequential code length
    of an adaptive Dirichlet(alpha) estimator per context (order-free, so a
    closed form), which includes what the model pays to learn, unlike an
    empirical entropy over many contexts.
Prints each as a ratio and as a multiple of the reference.
"""
import json
import math
import os
import struct
import subprocess
import sys

import numpy as np

COMPRESSORS = [("zstd -3 (reference)", ["zstd", "-3", "-c", "-q"]),
               ("zstd -19", ["zstd", "-19", "-c", "-q"]),
               ("xz -9e", ["xz", "-9e", "-c", "-q"]),
               ("bzip2 -9", ["bzip2", "-9", "-c"])]
FILES = ["human-faceres-deep.safetensors", "llama2c-stories260K.safetensors"]
_lgamma = np.vectorize(math.lgamma)


def tensors(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    header = json.loads(b[8:8 + n])
    for name, v in header.items():
        if name == "__metadata__" or v["dtype"] != "F32":
            continue
        s, e = v["data_offsets"]
        a = np.frombuffer(b[8 + n + s:8 + n + e], dtype="<f4").reshape(v["shape"])
        if a.ndim >= 2 and a.size >= 4096:
            yield a


def as_dtype(a, dt):
    """Element bit patterns as uint32, and their width in bits."""
    u = a.view(np.uint32).ravel()
    if dt == "F32":
        return u.copy(), 32
    if dt == "F16":
        return a.astype(np.float16).view(np.uint16).ravel().astype(np.uint32), 16
    u = u.astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint32), 16


def adaptive_bits(sym, ctx, alphabet, alpha):
    """Code length of sym under an adaptive Dirichlet(alpha) model per context."""
    key = ctx.astype(np.int64) * 65536 + sym.astype(np.int64)
    _, per_symbol = np.unique(key, return_counts=True)
    _, per_ctx = np.unique(ctx, return_counts=True)
    nats = ((_lgamma(per_ctx + alphabet * alpha) - math.lgamma(alphabet * alpha)).sum()
            - (_lgamma(per_symbol + alpha) - math.lgamma(alpha)).sum())
    return nats / math.log(2)


def neighbours(x, cols):
    """The element to the left and the one above (0 at the edges)."""
    g = x.reshape(-1, cols)
    left = np.concatenate([np.zeros((g.shape[0], 1), g.dtype), g[:, :-1]], axis=1)
    above = np.concatenate([np.zeros((1, cols), g.dtype), g[:-1]], axis=0)
    return left.ravel(), above.ravel()


def model_bits(v, width, cols, buckets, alpha):
    """Bits for one tensor: top byte below the sign given the left and upper
    neighbours' exponents (in `buckets` levels around the most common one);
    for F16 the 7 mantissa bits below it given the exponent; the rest raw."""
    rest = width - 9
    top = (v >> rest) & 255
    exp = top if width == 32 else top >> 3
    left, above = neighbours(exp, cols)
    lo = np.bincount(exp).argmax() - buckets // 2
    ctx = (np.clip(left.astype(np.int64) - lo, 0, buckets - 1) * buckets
           + np.clip(above.astype(np.int64) - lo, 0, buckets - 1))
    bits = adaptive_bits(top, ctx, 256, alpha)
    if width == 16:
        return bits + adaptive_bits(v & 127, exp, 128, alpha) + v.size  # + sign
    return bits + v.size * (rest + 1)


def main():
    data = os.environ.get("BENCH_DATA", "../shared/data")
    ts = [a for f in FILES for a in tensors(os.path.join(data, f))]
    print("Lossless bound (issue 12): %d tensors, %d weights; ratio = input bytes / output bytes"
          % (len(ts), sum(a.size for a in ts)))
    for dt in ("F32", "F16", "BF16"):
        raw = 0
        out = {name: 0 for name, _ in COMPRESSORS}
        models = {}
        for a in ts:
            v, width = as_dtype(a, dt)
            raw += v.size * width // 8
            planes = b"".join(((v >> (8 * i)) & 255).astype(np.uint8).tobytes()
                              for i in range(width // 8))
            for name, cmd in COMPRESSORS:
                out[name] += len(subprocess.run(cmd, input=planes, stdout=subprocess.PIPE,
                                                check=True).stdout)
            for buckets in (1, 4, 16):
                for alpha in (0.1, 0.5):
                    key = ("context model: %2d x %2d neighbour contexts, alpha %.1f"
                           % (buckets, buckets, alpha))
                    models[key] = models.get(key, 0) + model_bits(v, width, a.shape[-1],
                                                                  buckets, alpha) / 8
        ref = raw / out[COMPRESSORS[0][0]]
        print("\n%s: %.1f MB; the target, 1.05x the reference, is %.3fx" % (dt, raw / 1e6,
                                                                          1.05 * ref))
        print("  %-58s %7s %9s" % ("coder", "ratio", "vs ref"))
        rows = list(out.items()) + sorted(models.items(), key=lambda kv: kv[1])[:3]
        for name, size in rows:
            print("  %-58s %6.3fx %8.3fx" % (name, raw / size, raw / size / ref))
    return 0


if __name__ == "__main__":
    sys.exit(main())
