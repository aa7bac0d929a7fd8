#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# What stronger coders reach on the lossless preset's input (issue 12): the
# byte-plane zstd -3 reference next to zstd -19, xz -9e, bzip2 -9 and
# adaptive context models, on the weights bench_codec uses
# (tests/bench/lib/lossless_bound.py says how each is measured).
set -eu
cd "$(dirname "$0")/../.."
exec "${PYTHON:-/usr/bin/python3}" tests/bench/lib/lossless_bound.py
