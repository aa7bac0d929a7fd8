#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The offline tool on paths inside a real mount, where sidecars are hidden
# and the daemon answers through user.lcpfs.* xattrs: `lcpfs inspect`
# (human, --json and --svg) lists every tensor of a compressed file with its
# encoding, and a raw one as raw; `lcpfs stats` on the mount, on files in it
# and on its backing directory agrees with stat and du.
set -eu
cd "$(dirname "$0")/../.."
. tests/integration/fsx/mount_lib.sh

SRC=tests/data/llama2c-stories260K.safetensors
[ -r "$SRC" ] || fail "missing $SRC"

B=$WORK/backing M=$WORK/mnt
mkdir -p "$B" "$M"
mount_fs "$B" "$M"
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
"$LCPFS" inspect --svg "$WORK/m.svg" "$F" || fail "inspect --svg on a mount path: exit $?"
while read -r name; do
	grep -qF ">$name" "$WORK/m.svg" || fail "inspect --svg on a mount path: $name missing"
done < "$WORK/names"
rsvg-convert -o "$WORK/m.png" "$WORK/m.svg" || fail "rsvg-convert of the mount's picture"
say "inspect --svg on a mount path: every tensor drawn"

# A raw (non-tensor) file through the mount.
printf 'plain text\n' > "$M/notes.txt"
"$LCPFS" inspect "$M/notes.txt" > "$WORK/raw.txt" 2>&1 || fail "inspect of a raw file: exit $?"
grep -q '^  state: *raw$' "$WORK/raw.txt" || fail "inspect of a raw file: $(cat "$WORK/raw.txt")"
say "inspect of a raw file on a mount path"

# stats: a tree with every state a settled mount shows. Expected counts
# come from what was copied in; byte totals from stat and du of the same
# files, through the mount (logical, allocated as the mount reports it) and
# on the backing (stored: payloads, sidecars and raw files; allocated).
mkdir "$M/sub"
cp tests/data/faceres-subset.safetensors "$M/sub/cnn.safetensors"
cp "$SRC" "$M/sub/copy.safetensors"
head -c 5000 "$SRC" > "$M/sub/truncated.safetensors" # header promises more data: refused
wait_state "$M/sub/cnn.safetensors" compressed
wait_state "$M/sub/copy.safetensors" compressed
wait_state "$M/sub/truncated.safetensors" refused
REASON=$(xattr_get "$M/sub/truncated.safetensors" user.lcpfs.reason)
# A refusal recalled from its mark (here after a remount; also once the
# kernel forgets the inode) still names the file's format.
unmount_fs "$M" "$DAEMON_PID" || fail "unmount"
mount_fs "$B" "$M"
[ "$(xattr_get "$M/sub/truncated.safetensors" user.lcpfs.format)" = safetensors ] ||
	fail "a recalled refusal lost its format"
say "a refusal recalled after a remount keeps its format"
# sum_sizes FILE...: apparent sizes by stat; du_apparent / du_alloc: du's totals.
sum_sizes() { stat -c %s "$@" | awk '{ s += $1 } END { print s }'; }
du_apparent() { du -cb "$@" | tail -n 1 | cut -f1; }
du_alloc() { du -cB1 "$@" | tail -n 1 | cut -f1; }
mapfile -t mfiles < <(find "$M" -type f)
mapfile -t bfiles < <(find "$B" -type f)
[ "${#mfiles[@]}" = 5 ] || fail "expected 5 files in the mount, found ${#mfiles[@]}"
LOGICAL=$(sum_sizes "${mfiles[@]}")
[ "$LOGICAL" = "$(du_apparent "${mfiles[@]}")" ] || fail "stat and du --apparent-size disagree on the mount"
STORED=$(sum_sizes "${bfiles[@]}")
M_ALLOC=$(du_alloc "${mfiles[@]}")
B_ALLOC=$(du_alloc "${bfiles[@]}")
# check_stats JSON WHERE ALLOC PRESET: totals, per state, per preset, the reason.
check_stats() {
	"$PYTHON" - "$@" "$LOGICAL" "$STORED" "$REASON" <<'PY'
import json, sys
doc, where, alloc, preset, logical, stored, reason = sys.argv[1:]
r = json.loads(doc)
def eq(what, got, want):
    assert got == want, "%s: %s is %r, expected %r" % (where, what, got, want)
eq("files", r["files"], 5)
eq("errors", r["errors"], 0)
eq("logical_bytes", r["logical_bytes"], int(logical))
eq("stored_bytes", r["stored_bytes"], int(stored))
eq("saved_bytes", r["saved_bytes"], int(logical) - int(stored))
eq("disk_bytes", r["disk_bytes"], int(alloc))
eq("states", {k: v["files"] for k, v in r["by_state"].items()},
   {"compressed": 3, "refused": 1, "raw": 1})
for table in ("by_state", "by_format", "by_preset"):
    parts = r[table].values()
    if table != "by_preset":
        eq(table + " logical sum", sum(v["logical_bytes"] for v in parts), int(logical))
        eq(table + " stored sum", sum(v["stored_bytes"] for v in parts), int(stored))
eq("formats", {k: v["files"] for k, v in r["by_format"].items()}, {"safetensors": 4, "other": 1})
eq("presets", {k: v["files"] for k, v in r["by_preset"].items()}, {preset: 3})
eq("compressed stored < logical", r["by_state"]["compressed"]["stored_bytes"] <
   r["by_state"]["compressed"]["logical_bytes"], True)
eq("reasons", [(x["state"], x["reason"], x["files"]) for x in r["reasons"]], [("refused", reason, 1)])
print("%s: %d files, %d -> %d bytes, disk %d" % (where, r["files"], r["logical_bytes"],
                                                 r["stored_bytes"], r["disk_bytes"]))
PY
}
out=$("$LCPFS" stats --json "$M") || fail "stats --json on the mount: exit $?"
check_stats "$out" mount "$M_ALLOC" balanced || fail "stats on the mount"
"$LCPFS" stats "$M" > "$WORK/stats.txt" || fail "stats on the mount (human)"
grep -Eq '^compressed +3 ' "$WORK/stats.txt" || fail "human stats: $(cat "$WORK/stats.txt")"
grep -Eq '^total +5 ' "$WORK/stats.txt" || fail "human stats: no total row"
say "stats on the mount: totals equal stat and du of the same files"
out=$("$LCPFS" stats --json "$M/model.safetensors" "$M/notes.txt") || fail "stats on two files"
"$PYTHON" -c 'import json, sys
r = json.loads(sys.argv[1])
assert r["files"] == 2 and r["logical_bytes"] == int(sys.argv[2]), r' "$out" \
	"$(sum_sizes "$M/model.safetensors" "$M/notes.txt")" || fail "stats on two files: $out"
say "stats on files given by name"
unmount_fs "$M" "$DAEMON_PID" || fail "unmount"

# The backing directory, read through the store: the same totals, and the
# configuration each file was compressed with. A hard link counts once, as
# in du.
out=$("$LCPFS" stats --json "$B") || fail "stats --json on the backing: exit $?"
check_stats "$out" backing "$B_ALLOC" balanced || fail "stats on the backing"
ln "$B/notes.txt" "$B/notes.link"
out=$("$LCPFS" stats --json "$B") || fail "stats with a hard link"
check_stats "$out" "backing with a hard link" "$(du -cB1 $(find "$B" -type f) | tail -n 1 | cut -f1)" \
	balanced || fail "stats counted a hard link twice"
say "stats on the backing: same totals, preset balanced, hard link counted once"
# A damaged sidecar (whatever its name: the one other file beside a packed
# file): the file is counted as damaged, not as raw or compressed.
D=$WORK/damaged
mkdir "$D"
"$LCPFS" pack "$SRC" "$D/m.safetensors" > /dev/null || fail "pack"
mapfile -t side < <(find "$D" -type f ! -name m.safetensors ! -name .lcpfs-lock)
[ "${#side[@]}" = 1 ] || fail "expected one sidecar beside the packed file: ${side[*]}"
"$PYTHON" -c 'import os, sys
with open(sys.argv[1], "r+b") as f:
    f.seek(os.path.getsize(sys.argv[1]) // 2); b = f.read(1)
    f.seek(-1, 1); f.write(bytes([b[0] ^ 1]))' "${side[0]}"
out=$("$LCPFS" stats --json "$D") || fail "stats on a damaged file: exit $?"
"$PYTHON" -c 'import json,sys
r = json.loads(sys.argv[1])
assert {k: v["files"] for k, v in r["by_state"].items()} == {"damaged": 1}, r["by_state"]
assert r["reasons"][0]["state"] == "damaged", r["reasons"]' "$out" || fail "damaged sidecar: $out"
say "stats: a damaged sidecar counts as damaged"
if "$LCPFS" stats "$WORK/nonexistent" > /dev/null 2> "$WORK/err"; then fail "stats of a missing path succeeded"; fi
grep -q 'No such file' "$WORK/err" || fail "stats of a missing path: $(cat "$WORK/err")"
say "stats of a missing path: exit 1 with the error"
echo "mount tools: all checks passed"
