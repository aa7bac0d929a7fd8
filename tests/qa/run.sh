#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Runs the adversarial regression tests of tests/qa (each one shows a defect
# found on main and fails until it is fixed; the lead moves a test into
# tests/integration when its fix lands, so `make test` stays green).
#   tests/qa/run.sh [TEST...]      (default: every tests/qa/test_*.sh)
# Environment as for scripts/run-integration.sh: LCPFS (default build/lcpfs),
# PYTHON (default /usr/bin/python3), TEST_TIMEOUT (seconds per test, 600).
set -u
cd "$(dirname "$0")/../.." || exit 2
: "${LCPFS:=$PWD/build/lcpfs}"
: "${PYTHON:=/usr/bin/python3}"
export LCPFS PYTHON
TEST_TIMEOUT=${TEST_TIMEOUT:-600}
LOGDIR=$(mktemp -d "${TMPDIR:-/tmp}/lcpfs-qa.XXXXXX") || exit 2

if [ $# -eq 0 ]; then
	set -- tests/qa/test_*.sh
fi
passed=0 failed=0 skipped=0
for t in "$@"; do
	[ -e "$t" ] || continue
	name=$(basename "$t" .sh)
	timeout -k 10 "$TEST_TIMEOUT" bash "$t" > "$LOGDIR/$name.log" 2>&1
	rc=$?
	case $rc in
	0) passed=$((passed + 1)); echo "PASS $name" ;;
	77) skipped=$((skipped + 1)); echo "SKIP $name: $(tail -n 1 "$LOGDIR/$name.log")" ;;
	*) failed=$((failed + 1))
	   echo "FAIL $name (exit $rc): $(grep -m1 '^FAIL' "$LOGDIR/$name.log" || tail -n 1 "$LOGDIR/$name.log")" ;;
	esac
done
echo "qa: $passed passed, $failed failed, $skipped skipped (logs in $LOGDIR)"
[ "$failed" -eq 0 ]
