#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Peak memory of `lcpfs pack` on a file with many tensors: encoding streams
# one tensor at a time, so peak RSS should be a small multiple of the largest
# tensor, not of the file. Also prints pack and unpack throughput.
# Env: LCPFS, PYTHON; NTENSORS (default 96) tensors of 512 x 1024 F16 (1 MiB).
set -u
cd "$(dirname "$0")/../.." || exit 2
: "${LCPFS:?}"
: "${PYTHON:=/usr/bin/python3}"
N=${NTENSORS:-96}
W=$(mktemp -d /tmp/lcpfs-bench-store.XXXXXX)
trap 'rm -rf "$W"' EXIT
"$PYTHON" - "$W/many.safetensors" "$N" <<'PY'
import json, struct, sys
import numpy as np
path, n = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(1)
hdr, off, blobs = {}, 0, []
for i in range(n):
    a = (rng.standard_normal((512, 1024)) * 0.02).astype("<f2").tobytes()
    hdr["t%03d" % i] = {"dtype": "F16", "shape": [512, 1024], "data_offsets": [off, off + len(a)]}
    off += len(a)
    blobs.append(a)
h = json.dumps(hdr).encode()
h += b" " * (-len(h) % 8)
with open(path, "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h)
    for b in blobs:
        f.write(b)
PY
size=$(stat -c %s "$W/many.safetensors")
t0=$(date +%s.%N)
/usr/bin/time -f "%M" -o "$W/rss" "$LCPFS" pack "$W/many.safetensors" "$W/p.safetensors" > /dev/null || exit 1
t1=$(date +%s.%N)
"$LCPFS" unpack "$W/p.safetensors" "$W/u.safetensors" || exit 1
t2=$(date +%s.%N)
rss_kb=$(cat "$W/rss")
stored=$(( $(stat -c %s "$W/p.safetensors") + $(stat -c %s "$W/.p.safetensors.lcpfs") ))
awk -v n="$N" -v size="$size" -v rss="$rss_kb" -v t0="$t0" -v t1="$t1" -v t2="$t2" -v st="$stored" 'BEGIN {
	printf "file: %d tensors of 1 MiB (F16 512x1024), %.1f MiB, stored %.1f MiB (%.2fx)\n", n, size / 1048576, st / 1048576, size / st
	printf "pack peak RSS: %.1f MiB (%.1f x the largest tensor, %.2f x the file)\n", rss / 1024, rss / 1024, rss * 1024 / size
	printf "pack:   %.1f MiB/s\n", size / 1048576 / (t1 - t0)
	printf "unpack: %.1f MiB/s\n", size / 1048576 / (t2 - t1)
}'
