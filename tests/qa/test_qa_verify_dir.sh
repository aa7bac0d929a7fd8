#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `lcpfs verify DIR` does not report a directory holding a damaged
# compressed file as "raw (not packed), nothing to verify" with exit status
# 0: it either checks the files below DIR or fails (the man page: PATH is a
# file; exit 1 if any file is damaged).
# Defect on main: lcp_cli_verify takes any path that is no packed file for
# a raw one, so `lcpfs verify /srv/models-backing` says all is well while a
# file in it is damaged.
set -eu
cd "$(dirname "$0")/../.."
. tests/integration/fsx/mount_lib.sh
. tests/integration/fsx/integrity_lib.sh

D=$WORK/store
mkdir -p "$D"
make_tensor "$WORK/t.safetensors" 51
"$LCPFS" pack "$WORK/t.safetensors" "$D/model.safetensors" > /dev/null || fail "pack"
# Damage the stored bytes of the first chunk (past the 32-byte header).
printf '\377\377\377\377' | dd of="$D/model.safetensors" bs=1 seek=100 conv=notrunc status=none
"$LCPFS" verify "$D/model.safetensors" > /dev/null && fail "verify of the damaged file itself passes: the test proves nothing"
rc=0
"$LCPFS" verify "$D" > "$WORK/verify.out" 2>&1 || rc=$?
if [ "$rc" = 0 ]; then
	fail "lcpfs verify of a directory holding a damaged file exits 0: $(cat "$WORK/verify.out")"
fi
say "verify of a directory does not pass a damaged file"
