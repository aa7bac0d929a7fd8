#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Crash injection during a commit (LCPFS_TEST_CRASH: the packing process
# kills itself with SIGKILL at each step): the file must read as its raw or
# its committed version at once, and after `lcpfs recover` no temporary or
# stale sidecar is left. Also a crash state of a rename: sidecar moved,
# payload not; recover re-pairs them.
set -u
cd "$(dirname "$0")/../.." || exit 2
: "${LCPFS:?set LCPFS to the lcpfs binary}"
: "${PYTHON:=/usr/bin/python3}"
W=$(mktemp -d /tmp/lcpfs-test-crash.XXXXXX)
trap 'rm -rf "$W"' EXIT
"$PYTHON" tests/tools/make_test_files.py "$W/src" > /dev/null || { echo "make_test_files failed"; exit 1; }
src="$W/src/stories_f16.safetensors"
fail=0
bad() { echo "FAIL: $*"; fail=1; }
for step in temps sidecar payload; do
	d="$W/$step"
	mkdir -p "$d"
	cp "$src" "$d/m.safetensors"
	LCPFS_TEST_CRASH=$step "$LCPFS" pack "$d/m.safetensors" "$d/m.safetensors" > /dev/null 2>&1
	rc=$?
	[ $rc -eq 137 ] || bad "$step: pack was not killed (exit $rc)"
	echo "after a crash at '$step': $(ls -A "$d" | tr '\n' ' ')"
	"$LCPFS" unpack "$d/m.safetensors" "$d.out" || bad "$step: unreadable after the crash"
	if [ -e "$d/.m.safetensors.lcpfs" ] && "$LCPFS" verify "$d/m.safetensors" | grep -q ': ok$'; then
		state=committed
	else
		cmp -s "$src" "$d.out" || bad "$step: neither committed nor the raw bytes"
		state=raw
	fi
	echo "  reads as: $state"
	"$LCPFS" recover "$d" || bad "$step: recover failed"
	# The store's lock file stays: it is no leftover.
	left=$(ls -A "$d" | grep -vx '\.lcpfs-lock' | tr '\n' ' ')
	case $state in
	raw) [ "$left" = "m.safetensors " ] || bad "$step: leftovers after recover: $left" ;;
	committed) [ "$left" = ".m.safetensors.lcpfs m.safetensors " ] || bad "$step: leftovers after recover: $left" ;;
	esac
	"$LCPFS" unpack "$d/m.safetensors" "$d.out2" && cmp -s "$d.out" "$d.out2" || bad "$step: content changed by recover"
done
# A rename interrupted between its two steps.
d="$W/rename"
mkdir -p "$d"
"$LCPFS" pack "$src" "$d/a.safetensors" > /dev/null || bad "pack"
"$LCPFS" unpack "$d/a.safetensors" "$W/a.out" || bad "unpack"
mv "$d/.a.safetensors.lcpfs" "$d/.b.safetensors.lcpfs"
"$LCPFS" recover "$d" || bad "recover after a half rename"
"$LCPFS" verify "$d/a.safetensors" | grep -q ': ok$' || bad "half rename not undone"
"$LCPFS" unpack "$d/a.safetensors" "$W/a.out2" && cmp -s "$W/a.out" "$W/a.out2" || bad "content after re-pairing"
[ $fail -eq 0 ] && echo "test_cli_crash: all checks passed"
exit $fail
