#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Compression never makes a file take much more disk than it took raw: a
# safetensors file of one 4 GiB F32 tensor that is all holes (4 KiB on
# disk, written through the mount by truncate and a header write, as any
# user can) takes at most 64 KiB more once compressed (payload and sidecar,
# counted as du counts).
# The store refuses such a compression when payload and sidecar take more
# (allocated blocks compared, lcpfs(5) REFUSAL MARKER), and here before it
# encodes anything: every chunk of the holes would get a 48-byte sidecar
# record (8193 chunks: 384 KiB), which alone outgrows the
# raw file's 4 KiB. Before that early check the refusal came after about 6
# CPU seconds of encoding per 16 GiB of holes, which the reason then did not
# say ("at least N compressed" is the early form).
set -eu
cd "$(dirname "$0")/../.."
. tests/integration/fsx/mount_lib.sh
. tests/integration/fsx/integrity_lib.sh

B=$WORK/backing M=$WORK/mnt
mkdir -p "$B" "$M"
mount_fs "$B" "$M"
"$PYTHON" - "$M/holes.safetensors" <<'PY' || fail "cannot write the sparse file"
import json, struct, sys
rows, cols = 32768, 32768  # 4 GiB of F32
h = json.dumps({"w": {"dtype": "F32", "shape": [rows, cols],
                      "data_offsets": [0, rows * cols * 4]}}).encode()
h += b" " * (-len(h) % 8)
with open(sys.argv[1], "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h)
    f.truncate(8 + len(h) + rows * cols * 4)
PY
raw=$(du -B1 "$B/holes.safetensors" | cut -f1)
settled() { ! state_is "$M/holes.safetensors" pending; }
poll "$COMMIT_TIMEOUT" settled || fail "still pending after ${COMMIT_TIMEOUT}s"
stored=$(du -B1 -c "$B/holes.safetensors" "$B"/.holes.safetensors.lcpfs 2>/dev/null | tail -n 1 | cut -f1)
state=$(xattr_get "$M/holes.safetensors" user.lcpfs.state)
echo "raw: $raw bytes on disk; now $stored ($state)"
[ "$stored" -le $((raw + 65536)) ] ||
	fail "a file of holes took $raw bytes of disk raw and $stored compressed"
[ "$state" = refused ] || fail "a file of holes is $state, not refused"
reason=$(xattr_get "$M/holes.safetensors" user.lcpfs.reason)
case $reason in *"not smaller on disk"*) ;; *) fail "refused for another reason: $reason" ;; esac
case $reason in *"at least"*) ;; *) fail "refused only after encoding the holes: $reason" ;; esac
say "a file of holes does not grow on disk"
