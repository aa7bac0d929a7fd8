#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `lcpfs verify DIR` checks every file below DIR, recursively: a directory
# holding a damaged compressed file (two levels down) fails with exit 1 and
# names it; one holding only intact and raw files passes; the store's own
# files are not listed. (Before, verify took any path that was no packed
# file for a raw one: "raw (not packed), nothing to verify", exit 0.)
set -eu
cd "$(dirname "$0")/../.."
. tests/integration/fsx/mount_lib.sh
. tests/integration/fsx/integrity_lib.sh

D=$WORK/store
mkdir -p "$D/a/b"
make_tensor "$WORK/t.safetensors" 51
"$LCPFS" pack "$WORK/t.safetensors" "$D/good.safetensors" > /dev/null || fail "pack"
"$LCPFS" pack "$WORK/t.safetensors" "$D/a/b/model.safetensors" > /dev/null || fail "pack"
echo "plain bytes" > "$D/a/notes.txt"
rc=0
"$LCPFS" verify "$D" > "$WORK/intact.out" 2>&1 || rc=$?
[ "$rc" = 0 ] || fail "verify of an intact directory exits $rc: $(cat "$WORK/intact.out")"
grep -qx "$D/a/b/model.safetensors: ok" "$WORK/intact.out" ||
	fail "verify of a directory does not check the file two levels down: $(cat "$WORK/intact.out")"
grep -qx "$D/a/notes.txt: raw (not packed), nothing to verify" "$WORK/intact.out" ||
	fail "verify of a directory does not list its raw file: $(cat "$WORK/intact.out")"
! grep -q "\.lcpfs" "$WORK/intact.out" || fail "verify lists the store's own files: $(cat "$WORK/intact.out")"

# Damage the stored bytes of the first chunk (past the 32-byte header).
printf '\377\377\377\377' | dd of="$D/a/b/model.safetensors" bs=1 seek=100 conv=notrunc status=none
"$LCPFS" verify "$D/a/b/model.safetensors" > /dev/null && fail "verify of the damaged file itself passes: the test proves nothing"
rc=0
"$LCPFS" verify "$D" > "$WORK/verify.out" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "lcpfs verify of a directory holding a damaged file exits $rc: $(cat "$WORK/verify.out")"
grep -q "^$D/a/b/model.safetensors: DAMAGED" "$WORK/verify.out" ||
	fail "verify of the directory does not name the damaged file: $(cat "$WORK/verify.out")"
grep -qx "$D/good.safetensors: ok" "$WORK/verify.out" || fail "the intact file is not reported ok: $(cat "$WORK/verify.out")"
say "verify of a directory checks every file below it"
