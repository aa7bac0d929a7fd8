#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `rm -rf DIR` through the mount removes DIR while a file in it is being
# compressed (the job held between its prepare and its commit by the
# daemon's test hold point): the mount shows DIR empty after the file is
# removed, so rmdir must not fail with "Directory not empty".
# Defect on main: the job's hidden temporaries (.lcpfs-tmp.*) stay in DIR
# until the job ends; rmdir passes ENOTEMPTY through from the backing for a
# directory that lists as empty.
set -eu
cd "$(dirname "$0")/../.."
. tests/integration/fsx/mount_lib.sh
. tests/integration/fsx/integrity_lib.sh

B=$WORK/backing M=$WORK/mnt
mkdir -p "$B" "$M"
make_tensor "$WORK/t.safetensors" 41
LCPFS_TEST_HOLD=prepared LCPFS_TEST_HOLD_DIR=$HOLD_DIR mount_fs "$B" "$M"
trap 'hold_go prepared; cleanup' EXIT

mkdir "$M/d"
cp "$WORK/t.safetensors" "$M/d/x.safetensors"
hold_wait prepared
rm "$M/d/x.safetensors"
[ -z "$(ls -A "$M/d")" ] || fail "d lists $(ls -A "$M/d") after its only file was removed"
rmdir "$M/d" 2> "$WORK/rmdir.err" ||
	fail "rmdir of a directory that lists as empty: $(cat "$WORK/rmdir.err") (backing holds: $(ls -A "$B/d" | tr '\n' ' '))"
[ ! -e "$M/d" ] || fail "d still exists"
hold_go prepared
say "a directory is removed while a compression in it was under way"

# A temporary the daemon does not have open (another process's, say an
# offline pack's) is never removed: the directory stays.
mkdir "$M/e"
touch "$B/e/.lcpfs-tmp.00000000000000aa.p"
[ -z "$(ls -A "$M/e")" ] || fail "e lists $(ls -A "$M/e")"
if rmdir "$M/e" 2> "$WORK/rmdir.err"; then
	fail "rmdir removed a directory holding another process's temporary"
fi
grep -q "not empty" "$WORK/rmdir.err" || fail "rmdir of e: $(cat "$WORK/rmdir.err")"
[ -e "$B/e/.lcpfs-tmp.00000000000000aa.p" ] || fail "another process's temporary was removed"
say "another process's temporary keeps its directory (ENOTEMPTY)"
