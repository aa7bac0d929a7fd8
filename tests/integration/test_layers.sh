#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The dependency arrows of DESIGN.md are rules, checked here on the includes:
# common <- codec <- format <- store <- fs, cli; only src/fs includes FUSE
# headers, only src/codec/lowrank.c includes cblas/lapacke, only
# src/common/checksum.c includes xxhash.
set -u
cd "$(dirname "$0")/../.." || exit 2
status=0

# allowed[layer] = layers it may include from src/
declare -A allowed=(
	[common]="common"
	[codec]="common codec"
	[format]="common codec format"
	[store]="common codec format store"
	[fs]="common codec format store fs"
	[cli]="common codec format store cli fs"
)
for layer in "${!allowed[@]}"; do
	for f in src/"$layer"/*.[ch]; do
		[ -e "$f" ] || continue
		while IFS= read -r inc; do
			dep=${inc%%/*}
			case " ${allowed[$layer]} " in
			*" $dep "*) ;;
			*) echo "layer violation: $f includes \"$inc\""; status=1 ;;
			esac
		done < <(sed -n 's/^#include "\([a-z]*\/[^"]*\)".*/\1/p' "$f" | grep -v '^lcpfs/')
	done
done

only_in() { # only_in PATTERN ALLOWED_FILES...
	local pattern=$1; shift
	local hits
	hits=$(grep -lE "^#include <($pattern)" src/*/*.[ch] 2>/dev/null)
	for h in $hits; do
		local ok=0
		for a in "$@"; do [ "$h" = "$a" ] && ok=1; done
		[ $ok -eq 1 ] || { echo "$h includes <$pattern>, reserved to $*"; status=1; }
	done
}
only_in 'fuse' $(ls src/fs/*.[ch] 2>/dev/null)
only_in 'cblas|lapacke' src/codec/lowrank.c
only_in 'xxhash' src/common/checksum.c
only_in 'zstd' $(ls src/codec/*.c src/store/*.c 2>/dev/null)

# Public headers never include private ones.
if grep -nE '^#include "(common|codec|format|store|fs|cli)/' include/lcpfs/*.h; then
	echo "public header includes a private one"; status=1
fi
[ $status -eq 0 ] && echo "layers: ok"
exit $status
