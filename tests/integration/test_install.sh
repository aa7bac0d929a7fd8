#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `make install` puts the binary and both man pages under DESTDIR/PREFIX, the
# installed binary runs, and the man pages render without roff warnings.
set -eu
cd "$(dirname "$0")/../.."
dest=$(mktemp -d)
trap 'rm -rf "$dest"' EXIT
make -s install DESTDIR="$dest" PREFIX=/usr > /dev/null
for f in usr/bin/lcpfs usr/share/man/man1/lcpfs.1 usr/share/man/man5/lcpfs.5; do
	[ -s "$dest/$f" ] || { echo "missing after install: $f"; exit 1; }
done
"$dest/usr/bin/lcpfs" --version | grep -q '^lcpfs ' || { echo "--version does not print 'lcpfs VERSION'"; exit 1; }
for page in man/lcpfs.1 man/lcpfs.5; do
	warnings=$(LC_ALL=C.UTF-8 MANROFFSEQ='' MANWIDTH=80 man --warnings -E UTF-8 -l -Tutf8 "$page" 2>&1 >/dev/null || true)
	[ -z "$warnings" ] || { echo "$page: $warnings"; exit 1; }
done
echo "install: ok"
