#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A full disk during a pack keeps the raw file: on a small tmpfs that holds
# the raw file but not raw + payload, `lcpfs pack FILE FILE` (in place) must
# report "no space left on device", leave the raw file byte-identical and
# leave no temporary behind. Needs root for the tmpfs mount.
set -u
cd "$(dirname "$0")/../.." || exit 2
: "${LCPFS:?set LCPFS to the lcpfs binary}"
: "${PYTHON:=/usr/bin/python3}"

W=$(mktemp -d /tmp/lcpfs-test-enospc.XXXXXX)
M="$W/mnt"
mkdir -p "$M"
cleanup() { umount "$M" 2> /dev/null; rm -rf "$W"; }
trap cleanup EXIT
"$PYTHON" tests/tools/make_test_files.py "$W/src" > /dev/null || { echo "make_test_files failed"; exit 1; }
f="$W/src/stories_f16.safetensors"
size=$(stat -c %s "$f")
# Room for the raw file plus 64 KiB: the payload (~150 KB) cannot fit.
if ! mount -t tmpfs -o size=$((size + 65536)) tmpfs "$M"; then
	echo "FAIL: cannot mount a tmpfs (this test needs root)"
	exit 1
fi
cp "$f" "$M/m.safetensors" || { echo "FAIL: copy onto the tmpfs"; exit 1; }
out=$("$LCPFS" pack "$M/m.safetensors" "$M/m.safetensors")
rc=$?
echo "$out"
fail=0
[ $rc -eq 0 ] || { echo "FAIL: pack exit $rc"; fail=1; }
echo "$out" | grep -q 'no space left on device' || { echo "FAIL: reason not reported"; fail=1; }
cmp "$f" "$M/m.safetensors" || { echo "FAIL: raw file changed"; fail=1; }
left=$(ls -A "$M")
[ "$left" = "m.safetensors" ] || { echo "FAIL: leftovers: $left"; fail=1; }
# The copying form ends as a plain copy when the copy itself does not fit.
"$LCPFS" pack "$f" "$M/other.safetensors" && { echo "FAIL: copy onto a full disk succeeded"; fail=1; }
left=$(ls -A "$M")
[ "$left" = "m.safetensors" ] || { echo "FAIL: leftovers after failed copy: $left"; fail=1; }
[ $fail -eq 0 ] && echo "test_cli_enospc: all checks passed"
exit $fail
