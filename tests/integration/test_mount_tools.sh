#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The offline tool on paths inside a real mount, where sidecars are hidden
# and the daemon answers through user.lcpfs.* xattrs: `lcpfs inspect`
# (human and --json) lists every tensor of a compressed file with its
# encoding, and a raw one as raw.
set -eu
cd "$(dirname "$0")/../.."
. tests/integration/fsx/mount_lib.sh

SRC=tests/data/llama2c-stories260K.safetensors
COMMIT_TIMEOUT=120 # seconds for one small file's compression on a busy 2-core machine
[ -r "$SRC" ] || fail "missing $SRC"

B=$WORK/backing M=$WORK/mnt
mkdir -p "$B" "$M"
mount_fs "$B" "$M"
state_is() { [ "$(xattr_get "$1" user.lcpfs.state 2>/dev/null)" = "$2" ]; }
wait_state() {
	poll "$COMMIT_TIMEOUT" state_is "$1" "$2" ||
		fail "$1: state $(xattr_get "$1" user.lcpfs.state) (reason: $(xattr_get "$1" user.lcpfs.reason 2>/dev/null)), wanted $2"
}
# The tensor names as an independent reader sees them, one per line.
tensor_names() {
	"$PYTHON" -c 'import json,struct,sys
b = open(sys.argv[1], "rb").read(); n = struct.unpack_from("<Q", b)[0]
print("\n".join(k for k in json.loads(b[8:8 + n]) if k != "__metadata__"))' "$1"
}

F=$M/model.safetensors
cp "$SRC" "$F"
wait_state "$F" compressed
tensor_names "$SRC" | sort > "$WORK/names"
[ "$(wc -l < "$WORK/names")" = 49 ] || fail "expected the 49 tensors of stories260K"

# Human output: exit 0, the state, and one row per tensor.
"$LCPFS" inspect "$F" > "$WORK/inspect.txt" 2> "$WORK/inspect.err" ||
	fail "inspect on a mount path: exit $?: $(cat "$WORK/inspect.err")"
grep -q '^  state: *compressed$' "$WORK/inspect.txt" || fail "inspect: no compressed state: $(head -5 "$WORK/inspect.txt")"
grep -q '^  format: *safetensors$' "$WORK/inspect.txt" || fail "inspect: format"
awk 'f { print $1 } /^  tensor /{ f = 1 }' "$WORK/inspect.txt" | sort > "$WORK/listed"
cmp -s "$WORK/names" "$WORK/listed" || fail "inspect lists other tensors: $(diff "$WORK/names" "$WORK/listed" | head)"
grep -Eq '^  tok_embeddings\.weight .* q[48] ' "$WORK/inspect.txt" || fail "inspect: the embedding is not quantized"
grep -Eq '^  norm\.weight .* exact ' "$WORK/inspect.txt" || fail "inspect: the 1-D norm is not exact"
say "inspect on a mount path: 49 tensors, state compressed"

# --json: the daemon's report, same tensors.
"$LCPFS" inspect --json "$F" | "$PYTHON" -c 'import json,sys
r = json.load(sys.stdin)
print("\n".join(sorted(t["name"] for t in r["tensors"])))' > "$WORK/json_names" || fail "inspect --json on a mount path"
cmp -s "$WORK/names" "$WORK/json_names" || fail "inspect --json lists other tensors"
say "inspect --json on a mount path"

# A raw (non-tensor) file through the mount.
printf 'plain text\n' > "$M/notes.txt"
"$LCPFS" inspect "$M/notes.txt" > "$WORK/raw.txt" 2>&1 || fail "inspect of a raw file: exit $?"
grep -q '^  state: *raw$' "$WORK/raw.txt" || fail "inspect of a raw file: $(cat "$WORK/raw.txt")"
say "inspect of a raw file on a mount path"

unmount_fs "$M" "$DAEMON_PID" || fail "unmount"
echo "mount tools: all checks passed"
