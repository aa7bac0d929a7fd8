#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Tensor files through a real mount: a safetensors copied in is compressed
# after its last close (user.lcpfs.state polled), reads back with the same
# size and header, every tensor within the quality floor, a smaller backing,
# and the stories260K model running on it; random preads and mmap equal a
# sequential read, also after drop_caches and remount; rewrite in place,
# append, truncate, rename over it while it is open; concurrent readers while
# other files are written; a damaged payload byte gives EIO and a log line.
set -eu
cd "$(dirname "$0")/../.."
. tests/integration/fsx/mount_lib.sh

SRC=tests/data/llama2c-stories260K.safetensors
COMMIT_TIMEOUT=120 # seconds for one small file's compression on a busy 2-core machine
FLOOR=0.97         # the balanced preset's per-tensor cosine floor (the mount default)
CHECK="$PYTHON tests/integration/fsx/tensor_check.py"
[ -r "$SRC" ] || fail "missing $SRC"

B=$WORK/backing M=$WORK/mnt
mkdir -p "$B" "$M"
mount_fs "$B" "$M"

state_is() { [ "$(xattr_get "$1" user.lcpfs.state 2>/dev/null)" = "$2" ]; }
wait_state() {
	poll "$COMMIT_TIMEOUT" state_is "$1" "$2" ||
		fail "$1: state $(xattr_get "$1" user.lcpfs.state) (reason: $(xattr_get "$1" user.lcpfs.reason 2>/dev/null)), wanted $2"
}

F=$M/model.safetensors
cp "$SRC" "$F"
wait_state "$F" compressed
say "compressed after cp: ratio $(xattr_get "$F" user.lcpfs.ratio), format $(xattr_get "$F" user.lcpfs.format), worst sqnr $(xattr_get "$F" user.lcpfs.sqnr_db) dB, min cosine $(xattr_get "$F" user.lcpfs.min_cosine)"
$CHECK header "$SRC" "$F"
$CHECK floor "$SRC" "$F" "$FLOOR"
orig_k=$(du -k "$SRC" | cut -f1)
backing_k=$(du -sk "$B" | cut -f1)
mnt_k=$(du -k "$F" | cut -f1)
[ "$backing_k" -lt "$orig_k" ] || fail "backing uses $backing_k KiB, original $orig_k KiB"
[ "$mnt_k" -lt "$orig_k" ] || fail "du through the mount shows $mnt_k KiB, original $orig_k KiB"
say "du: original $orig_k KiB, backing $backing_k KiB, du in mount $mnt_k KiB"
# st_blocks is what the backing allocates for payload and sidecar (not their
# byte sizes rounded), so du through the mount equals du of the backing.
want_blocks=$(( $(stat -c %b "$B/model.safetensors") + $(stat -c %b "$B/.model.safetensors.lcpfs") ))
[ "$(stat -c %b "$F")" = "$want_blocks" ] ||
	fail "st_blocks through the mount $(stat -c %b "$F"), the backing allocates $want_blocks for payload and sidecar"
[ "$(ls -A "$M")" = model.safetensors ] || fail "readdir shows internal names: $(ls -A "$M")"
internal=$(ls -A "$B" | grep -vx model.safetensors | head -n 1)
[ -n "$internal" ] || fail "no sidecar beside the committed payload in the backing"
if stat "$M/$internal" > /dev/null 2>&1; then fail "lookup of internal name $internal succeeded"; fi
if touch "$M/$internal" 2> "$WORK/touch.err"; then fail "creating internal name $internal succeeded"; fi
grep -q 'not permitted' "$WORK/touch.err" || fail "creating $internal: $(cat "$WORK/touch.err"), wanted EPERM"
say "internal name $internal: hidden from readdir, ENOENT on lookup, EPERM on create"
xattr_get "$F" user.lcpfs.inspect | "$PYTHON" -c 'import json,sys; r=json.load(sys.stdin); assert r["tensors"], r; print("ok: inspect xattr: %d tensors" % len(r["tensors"]))'
out=$(timeout 300 "$PYTHON" tests/tools/llama2c_model.py "$F" "$SRC") || fail "llama2c_model.py on the mounted file"
echo "ok: llama2c_model.py: $out"

# Same bytes every way and every time.
REF=$($CHECK reads "$F" 1 300)
say "300 random preads and mmap slices equal the sequential read"
echo 3 > /proc/sys/vm/drop_caches
[ "$($CHECK reads "$F" 2 100)" = "$REF" ] || fail "bytes changed after drop_caches"
unmount_fs "$M" "$DAEMON_PID" || fail "unmount"
mount_fs "$B" "$M"
state_is "$F" compressed || fail "not compressed after remount"
[ "$($CHECK reads "$F" 3 100)" = "$REF" ] || fail "bytes changed after remount"
say "identical after drop_caches and after remount"

# Concurrent readers of the compressed file while other files are written.
cp_pids=()
for i in 1 2 3; do cp "$SRC" "$M/other$i.safetensors" & cp_pids+=($!); done
$CHECK readers "$F" "$REF" 4 5 || fail "concurrent readers"
for p in "${cp_pids[@]}"; do wait "$p" || fail "cp of other$p"; done
for i in 1 2 3; do wait_state "$M/other$i.safetensors" compressed; done
say "concurrent readers while three other files were written and compressed"

# Rewrite in place: the committed file is materialized, patched, recompressed
# (and a user xattr set on it survives both swaps).
"$PYTHON" -c 'import os,sys; os.setxattr(sys.argv[1], "user.note", b"kept")' "$F"
cp "$F" "$WORK/expected"
off=$(( $(stat -c %s "$F") - 4096 ))
# 16 bytes of real weights from elsewhere in the file: plausible values.
dd if="$SRC" of="$WORK/patch" bs=16 skip=40000 count=1 status=none
dd if="$WORK/patch" of="$WORK/expected" bs=1 seek=$off conv=notrunc status=none
# Byte by byte through one writer, which stays open while the raw bytes are
# checked: a 1 MB file recompresses within tens of ms of its last close.
"$PYTHON" - "$F" "$WORK/patch" "$off" "$WORK/expected" <<'PY' || fail "rewrite in place: bytes before recompression"
import os, sys
path, patch, off, expected = sys.argv[1], open(sys.argv[2], "rb").read(), int(sys.argv[3]), sys.argv[4]
w = os.open(path, os.O_WRONLY)
for i in range(len(patch)):
	os.pwrite(w, patch[i:i + 1], off + i)
with open(path, "rb") as r:
	same = r.read() == open(expected, "rb").read()
os.close(w)
sys.exit(0 if same else 1)
PY
wait_state "$F" compressed
$CHECK header "$WORK/expected" "$F"
$CHECK floor "$WORK/expected" "$F" "$FLOOR"
[ "$(xattr_get "$F" user.note)" = kept ] || fail "user xattr lost across materialize and commit"
say "rewrite in place: raw bytes right, compressed again, user xattr kept"

# Jobs overtaken while pending: a write and a rename right after the copy
# (whether the job was queued, encoding or done by then) still end with the
# latest bytes compressed under the latest name.
cp "$SRC" "$WORK/expected"
cp "$SRC" "$M/o.safetensors"
dd if="$WORK/patch" of="$M/o.safetensors" bs=1 seek=$off conv=notrunc status=none
dd if="$WORK/patch" of="$WORK/expected" bs=1 seek=$off conv=notrunc status=none
mv "$M/o.safetensors" "$M/o2.safetensors"
wait_state "$M/o2.safetensors" compressed
$CHECK header "$WORK/expected" "$M/o2.safetensors" > /dev/null || fail "overtaken job: header"
$CHECK floor "$WORK/expected" "$M/o2.safetensors" "$FLOOR" > /dev/null || fail "overtaken job: floor"
rm "$M/o2.safetensors"
say "write and rename while the job was pending: latest bytes compressed under the new name"

# Append: compressed again (trailing bytes kept verbatim) or refused with a
# reason (left raw); either way the bytes are the appended file's.
cp "$F" "$WORK/expected"
printf 'tail' >> "$F"; printf 'tail' >> "$WORK/expected"
settled() { state_is "$1" compressed || state_is "$1" refused; }
poll "$COMMIT_TIMEOUT" settled "$F" || fail "append: state $(xattr_get "$F" user.lcpfs.state)"
if state_is "$F" refused; then
	cmp "$F" "$WORK/expected" || fail "append: raw bytes"
else
	$CHECK header "$WORK/expected" "$F" > /dev/null || fail "append: header"
	[ "$(tail -c 4 "$F")" = tail ] || fail "append: trailing bytes"
fi
say "append: state $(xattr_get "$F" user.lcpfs.state) $(xattr_get "$F" user.lcpfs.reason 2>/dev/null || true), bytes right"

# Truncate a committed file.
cp "$SRC" "$M/t.safetensors"
wait_state "$M/t.safetensors" compressed
head -c 100000 "$M/t.safetensors" > "$WORK/expected"
truncate -s 100000 "$M/t.safetensors"
[ "$(stat -c %s "$M/t.safetensors")" = 100000 ] || fail "truncate: size"
cmp "$M/t.safetensors" "$WORK/expected" || fail "truncate: bytes"
truncate -s 0 "$M/t.safetensors"
[ "$(stat -c %s "$M/t.safetensors")" = 0 ] || fail "truncate to 0"
say "truncate of a committed file: to 100000 bytes and to 0"

# cp over a committed file (open with O_TRUNC): the new bytes, compressed.
cp "$SRC" "$M/c.safetensors"
wait_state "$M/c.safetensors" compressed
cp "$SRC" "$WORK/expected"
dd if="$WORK/patch" of="$WORK/expected" bs=1 seek=$off conv=notrunc status=none
cp "$WORK/expected" "$M/c.safetensors"
cmp -s "$WORK/expected" "$M/c.safetensors" || state_is "$M/c.safetensors" compressed || fail "cp over: raw bytes"
wait_state "$M/c.safetensors" compressed
$CHECK header "$WORK/expected" "$M/c.safetensors" > /dev/null || fail "cp over: header"
$CHECK floor "$WORK/expected" "$M/c.safetensors" "$FLOOR" > /dev/null || fail "cp over: floor"
truncate -s 0 "$M/c.safetensors"
[ "$(stat -c %s "$M/c.safetensors")" = 0 ] && [ ! -s "$M/c.safetensors" ] || fail "truncate to 0 of a committed file"
rm "$M/c.safetensors"
say "cp over a committed file (O_TRUNC): new bytes compressed; truncate to 0 of a committed file"

# Rename over a committed file while a process holds it open.
cp "$SRC" "$M/r.safetensors"
wait_state "$M/r.safetensors" compressed
head -c 5000 /dev/urandom > "$M/newbytes"
$CHECK rename-while-open "$M" r.safetensors "$M/newbytes"
[ "$(stat -c %s "$M/r.safetensors")" = 5000 ] || fail "rename over: new size"
say "rename over an open committed file"

# Unlink and rename carry sidecars: nothing internal is left or shown.
mv "$M/other1.safetensors" "$M/moved.safetensors"
[ "$($CHECK sha "$M/moved.safetensors")" = "$($CHECK sha "$M/other2.safetensors")" ] || fail "renamed file bytes"
rm "$M/other2.safetensors" "$M/other3.safetensors"
n_backing=$(ls -A "$B" | wc -l); n_mount=$(ls -A "$M" | wc -l)
unmount_fs "$M" "$DAEMON_PID" || fail "unmount"
mount_fs "$B" "$M"
[ "$(ls -A "$M" | wc -l)" = "$n_mount" ] || fail "names changed across remount"
state_is "$M/moved.safetensors" compressed || fail "renamed file not compressed after remount"
say "rename/unlink: $n_mount names in the mount, $n_backing entries in the backing"

# A damaged payload byte: EIO for reads that touch it, a log line naming it.
P=$B/moved.safetensors
unmount_fs "$M" "$DAEMON_PID" || fail "unmount"
size=$(stat -c %s "$P")
pos=$(( size / 2 ))
byte=$(od -An -tu1 -j $pos -N1 "$P" | tr -d ' ')
printf "$(printf '\\%03o' $(( (byte + 1) % 256 )))" | dd of="$P" bs=1 seek=$pos conv=notrunc status=none
mount_fs "$B" "$M"
if cat "$M/moved.safetensors" > /dev/null 2> "$WORK/cat.err"; then fail "damaged payload read without error"; fi
grep -q 'Input/output error' "$WORK/cat.err" || fail "damaged payload: $(cat "$WORK/cat.err")"
poll 5 grep -q 'damaged payload at offset' "$WORK/daemon.log" || fail "no log line for the damage"
say "damaged payload: EIO; log: $(grep -m1 'damaged payload' "$WORK/daemon.log")"
unmount_fs "$M" "$DAEMON_PID" || fail "unmount"

# Copied in and unmounted at once: the daemon commits nothing after the
# unmount (a new mount may have the raw file open), so unless its job
# committed first the file stays raw, marked for a retry, and the next
# mount compresses it when it first looks it up.
mount_fs "$B" "$M"
cp "$SRC" "$M/late.safetensors"
unmount_fs "$M" "$DAEMON_PID" || fail "unmount right after cp"
if [ ! -e "$B/.late.safetensors.lcpfs" ]; then
	cmp -s "$SRC" "$B/late.safetensors" || fail "late file: neither compressed nor the raw bytes"
	mark=$(xattr_get "$B/late.safetensors" user.lcpfs.refused) || fail "late file: raw without a mark"
	case $mark in "retry: "*) ;; *) fail "late file: mark does not ask for a retry: $mark" ;; esac
	say "copied just before unmount: left raw, marked '$mark'"
fi
mount_fs "$B" "$M"
poll "$COMMIT_TIMEOUT" state_is "$M/late.safetensors" compressed ||
	fail "late file state after remount: $(xattr_get "$M/late.safetensors" user.lcpfs.state)"
cmp -s "$SRC" "$B/late.safetensors" && fail "late file: the backing still holds the raw bytes"
say "copied just before unmount: compressed by the next mount at the latest"
unmount_fs "$M" "$DAEMON_PID" || fail "unmount"
echo "tensor: all checks passed"
