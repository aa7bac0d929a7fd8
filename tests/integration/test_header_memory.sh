#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A safetensors file written by anyone through the mount cannot make the
# daemon use many times its header's size in memory: a 48 MB header (under
# the 100 MB limit of lcpfs(5)) made of a JSON array of zeros is refused
# while the daemon's peak resident size grows by less than 4 times the
# header.
# A pre-scan of the header counts its JSON tokens and refuses more than
# 2^20 (lcpfs(5) LIMITS) before jansson runs. Before, the header was parsed
# whole with jansson (about 40 bytes per 2-byte array element): the daemon
# peaked near 1 GB for this file (2 GB for a 98 MB header).
set -eu
cd "$(dirname "$0")/../.."
. tests/integration/fsx/mount_lib.sh
. tests/integration/fsx/integrity_lib.sh

B=$WORK/backing M=$WORK/mnt
mkdir -p "$B" "$M"
HEADER=48000000
"$PYTHON" - "$WORK/big-header.safetensors" "$HEADER" <<'PY' || fail "cannot make the test file"
import struct, sys
path, size = sys.argv[1], int(sys.argv[2])
head, tail = b'{"junk":[', b'0]}'
body = head + b"0," * ((size - len(head) - len(tail)) // 2) + tail
body += b" " * (-len(body) % 8)
with open(path, "wb") as f:
    f.write(struct.pack("<Q", len(body)) + body)
PY
mount_fs "$B" "$M"
hwm() { awk '/^VmHWM:/ { print $2 * 1024 }' "/proc/$DAEMON_PID/status"; }
before=$(hwm)
cp "$WORK/big-header.safetensors" "$M/h.safetensors"
wait_state "$M/h.safetensors" refused
grown=$(( $(hwm) - before ))
echo "daemon peak RSS grew by $grown bytes for a $HEADER-byte header"
[ "$grown" -lt $((4 * HEADER)) ] ||
	fail "the daemon's peak RSS grew by $((grown >> 20)) MiB for a $((HEADER >> 20)) MiB header"
cmp -s "$WORK/big-header.safetensors" "$M/h.safetensors" || fail "the refused file does not read as written"
say "a huge header costs the daemon less than 4x its size"
