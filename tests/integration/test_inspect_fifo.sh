#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `lcpfs inspect` of a FIFO (on a backing directory, or through a mount)
# ends at once with an error instead of waiting for a writer, as the daemon
# and the other verbs (unpack, pack, stats, verify) already do.
# (Before, lcp_store_report_raw_at opened the name with a plain blocking
# O_RDONLY open, which never returned for a FIFO nobody writes; it now uses
# the store's lcp_store_open_regular.)
set -eu
cd "$(dirname "$0")/../.."
. tests/integration/fsx/mount_lib.sh
. tests/integration/fsx/integrity_lib.sh

B=$WORK/backing M=$WORK/mnt
mkdir -p "$B" "$M"
trap 'unblock_fifos "$B"; cleanup' EXIT
mkfifo "$B/fifo"
rc=0
bounded "lcpfs inspect of a FIFO on the backing" "$LCPFS" inspect "$B/fifo" > /dev/null 2>&1 || rc=$?
[ "$rc" != 0 ] || fail "lcpfs inspect of a FIFO succeeded"
mount_fs "$B" "$M"
rc=0
bounded "lcpfs inspect --json of a FIFO in the mount" "$LCPFS" inspect --json "$M/fifo" > /dev/null 2>&1 || rc=$?
[ "$rc" != 0 ] || fail "lcpfs inspect of a FIFO in the mount succeeded"
say "inspect of a FIFO fails at once"
