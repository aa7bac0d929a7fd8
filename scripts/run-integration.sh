#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Runs every tests/integration/test_*.sh with a timeout and prints one
# closing line "integration: N passed, N failed, N skipped".
# A script exits 0 to pass, 77 to skip (only when /dev/fuse is missing, with
# a message saying so), anything else to fail.
# Environment: LCPFS (the built binary), PYTHON (a python3 with numpy).
set -u
cd "$(dirname "$0")/.." || exit 2
: "${LCPFS:?set LCPFS to the lcpfs binary}"
: "${PYTHON:=/usr/bin/python3}"
export LCPFS PYTHON
TEST_TIMEOUT=${TEST_TIMEOUT:-600}
# One log directory per run: several checkouts may run their tests at once.
LOGDIR=$(mktemp -d "${TMPDIR:-/tmp}/lcpfs-integration.XXXXXX") || exit 2

passed=0 failed=0 skipped=0
failures=()
for t in tests/integration/test_*.sh; do
	[ -e "$t" ] || continue
	name=$(basename "$t" .sh)
	start=$(date +%s)
	timeout -k 10 "$TEST_TIMEOUT" bash "$t" > "$LOGDIR/$name.log" 2>&1
	rc=$?
	secs=$(( $(date +%s) - start ))
	case $rc in
	0) passed=$((passed + 1)); echo "PASS $name (${secs}s)" ;;
	77) skipped=$((skipped + 1)); echo "SKIP $name: $(tail -n 1 "$LOGDIR/$name.log")" ;;
	*) failed=$((failed + 1)); failures+=("$name")
	   echo "FAIL $name (exit $rc, ${secs}s); last lines of its log:"
	   tail -n 30 "$LOGDIR/$name.log" | sed 's/^/    /' ;;
	esac
done
echo "integration: $passed passed, $failed failed, $skipped skipped (logs in $LOGDIR)"
[ "$failed" -eq 0 ]
