#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Listing compressed files costs the daemon no memory beyond its documented
# bound ("cache plus the decode-ahead window plus up to 2 MiB for each
# thread serving requests", lcpfs(1)): `ls -l` of 40 compressed files
# (32 MiB each, with low-rank parts, 0.5 MiB sidecars) through a mount with
# cache=1M and decode_ahead=0 grows the daemon's resident size by less than
# 1 MiB + 10 x 2 MiB; nothing is read.
# Regression: every lookup/getattr used to open the file with the store and
# keep it open (the parsed sidecar and every tensor's decoder state, about 3
# times the sidecar's size) for as long as the kernel cached the inode; the
# daemon grew by about 32 MiB here. Now an idle inode keeps only its sizes.
set -eu
cd "$(dirname "$0")/../.."
. tests/integration/fsx/mount_lib.sh
. tests/integration/fsx/integrity_lib.sh

B=$WORK/backing M=$WORK/mnt
mkdir -p "$B" "$M"
"$PYTHON" - "$WORK/lr.safetensors" <<'PY' || fail "cannot make the test file"
import sys
import numpy as np
sys.path.insert(0, "tests/integration/fsx")
import tensorfile
rng = np.random.default_rng(7)
ts = []
for i in range(4):  # a strong rank-32 part the encoder keeps, plus noise
    w = (rng.standard_normal((1024, 32)) @ rng.standard_normal((32, 4096))) * 0.01
    w += rng.standard_normal((1024, 4096)) * 0.002
    ts.append(("w%d" % i, "F16", [1024, 4096], w.astype("<f2")))
tensorfile.write(sys.argv[1], ts)
PY
"$LCPFS" pack "$WORK/lr.safetensors" "$B/m0" > /dev/null || fail "pack"
sidecar=$(stat -c %s "$B/.m0.lcpfs")
# Copies of the pair (each name has its own sidecar: recovery keeps them).
for i in $(seq 1 39); do
	cp "$B/m0" "$B/m$i"
	cp "$B/.m0.lcpfs" "$B/.m$i.lcpfs"
done
# Under AddressSanitizer (CI's SAN=1 pass) freed memory sits in a
# quarantine and every allocation has shadow and redzones: RSS says nothing
# about the daemon's own bound there.
if [ -n "$(asan_runtime)" ]; then
	echo "SKIP: the daemon is a sanitizer (SAN=1) build: its resident size is not the daemon's"
	exit 77
fi
mount_fs "$B" "$M" -o cache=1M,decode_ahead=0
rss() { awk '/^VmRSS:/ { print $2 * 1024 }' "/proc/$DAEMON_PID/status"; }
before=$(rss)
ls -l "$M" > "$WORK/ls.out" || fail "ls -l"
[ "$(grep -c ' m[0-9]*$' "$WORK/ls.out")" = 40 ] || fail "ls -l lists $(grep -c ' m[0-9]*$' "$WORK/ls.out") files"
grown=$(( $(rss) - before ))
bound=$(( (1 + 10 * 2) << 20 ))
echo "sidecars of $sidecar bytes each; the daemon grew by $grown bytes for ls -l of 40 files (bound $bound)"
[ "$grown" -lt "$bound" ] || fail "ls -l of 40 compressed files grew the daemon by $((grown >> 20)) MiB, over cache + threads ($((bound >> 20)) MiB)"
say "listing compressed files stays within the daemon's memory bound"
