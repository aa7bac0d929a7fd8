#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Runs every benchmark: the compiled ones in BENCH_DIR, then the shell ones in
# tests/bench/. Each prints its own table with the reference it is compared to.
set -u
cd "$(dirname "$0")/.." || exit 2
: "${BENCH_DIR:?}" "${LCPFS:?}"
: "${PYTHON:=/usr/bin/python3}"
export LCPFS PYTHON
rc=0
for b in "$BENCH_DIR"/bench_*; do
	[ -x "$b" ] || continue
	echo "== $(basename "$b")"
	"$b" || rc=1
done
for s in tests/bench/bench_*.sh; do
	[ -e "$s" ] || continue
	echo "== $(basename "$s" .sh)"
	bash "$s" || rc=1
done
exit $rc
