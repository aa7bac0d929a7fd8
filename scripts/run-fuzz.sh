#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Runs every libFuzzer harness in FUZZ_BUILD for FUZZ_SECONDS each, niced, one
# job at a time, from its committed corpus (tests/fuzz/corpus/<target>/, read
# only: new inputs go to a scratch directory). A crash leaves its input in
# FUZZ_OUT/crashes (default: a fresh /tmp directory, kept on failure) and
# fails the run; add it to the corpus as a regression once fixed.
# FUZZ_SECONDS=0 replays the corpus once without fuzzing.
set -u
cd "$(dirname "$0")/.." || exit 2
: "${FUZZ_BUILD:?}" "${FUZZ_SECONDS:=60}"
out=${FUZZ_OUT:-$(mktemp -d /tmp/lcpfs-fuzz.XXXXXX)}
mkdir -p "$out/crashes"
rc=0
for bin in "$FUZZ_BUILD"/fuzz_*; do
	[ -x "$bin" ] || continue
	t=${bin##*/fuzz_}
	seeds=tests/fuzz/corpus/$t
	work=$out/corpus/$t
	mkdir -p "$work"
	if [ "$FUZZ_SECONDS" -gt 0 ]; then
		args=(-max_total_time="$FUZZ_SECONDS" "$work" "$seeds")
	else
		args=(-runs=0 "$seeds")
	fi
	# -timeout: one input may not run longer than 10 s (a hang is a bug);
	# -rss_limit_mb: nor take more than 2 GiB; -max_len: the largest seed
	# sets the default, which keeps mutations small.
	if nice "$bin" -timeout=10 -rss_limit_mb=2048 -print_final_stats=0 \
		-artifact_prefix="$out/crashes/$t-" "${args[@]}" > "$out/$t.log" 2>&1; then
		echo "fuzz $t: ok ($(grep -Eo '#[0-9]+' "$out/$t.log" | tail -1 | tr -d '#') runs in ${FUZZ_SECONDS}s)"
	else
		echo "fuzz $t: FAILED, see $out/$t.log and $out/crashes/"
		tail -n 30 "$out/$t.log" | sed 's/^/    /'
		rc=1
	fi
done
if [ $rc -eq 0 ] && [ -z "${FUZZ_OUT:-}" ]; then
	rm -rf "$out"
fi
exit $rc
