#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# kill -9 of the daemon between every pair of steps of the namespace
# operations on compressed files: `mv A T` (T compressed, raw, absent, in
# another directory), an exchange, `rm`, the materialize of a first write,
# an O_TRUNC rewrite. The store's LCPFS_TEST_CRASH hook kills the daemon
# right after the named step. Before any recovery, `lcpfs unpack` of each
# name gives its old or its new version or fails (never container bytes);
# after a remount (which recovers), every name reads as one whole version,
# all names the same version (old, or new), with nothing left over.
set -eu
cd "$(dirname "$0")/../.."
. tests/integration/fsx/mount_lib.sh
. tests/integration/fsx/integrity_lib.sh

make_tensor "$WORK/a.src" 11
make_tensor "$WORK/t.src" 12
printf 'a raw file, not a tensor file\n' > "$WORK/raw.src"

EXCHANGE='import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
sys.exit(0 if libc.renameat2(-100, sys.argv[1].encode(), -100, sys.argv[2].encode(), 2) == 0 else 1)'

run=0
# setup KIND: a backing with A compressed and T as KIND (compressed, raw,
# absent, sub = compressed in a subdirectory); records each name's bytes.
setup() {
	run=$((run + 1))
	B=$WORK/b$run M=$WORK/m$run
	mkdir -p "$B/sub" "$M"
	mount_fs "$B" "$M"
	cp "$WORK/a.src" "$M/A"
	TNAME=T
	case $1 in
	compressed) cp "$WORK/t.src" "$M/T" ;;
	raw) cp "$WORK/raw.src" "$M/T" ;;
	sub) cp "$WORK/t.src" "$M/sub/T"; TNAME=sub/T ;;
	esac
	wait_state "$M/A" compressed
	case $1 in compressed | sub) wait_state "$M/$TNAME" compressed ;; esac
	cp "$M/A" "$WORK/A.old"
	rm -f "$WORK/T.old"
	[ -e "$M/$TNAME" ] && cp "$M/$TNAME" "$WORK/T.old"
	unmount_fs "$M" "$DAEMON_PID" || fail "unmount"
}

# same_as NAME FILE: NAME in the mount has FILE's bytes (FILE absent: NAME absent).
same_as() {
	if [ -e "$2" ]; then cmp -s "$M/$1" "$2"; else [ ! -e "$M/$1" ]; fi
}

# The version each name may read before recovery, through the offline tool.
never_container() {
	local n
	for n in "$@"; do
		[ -e "$B/$n" ] || continue
		if "$LCPFS" unpack "$B/$n" "$WORK/unpacked" 2> /dev/null; then
			is_container "$WORK/unpacked" && fail "$what: $n reads as container bytes before recovery"
		fi
	done
	return 0
}

# crash STEP WHAT CMD...: mounts with the crash hook, runs CMD through the
# mount, and requires the daemon to die at STEP.
crash() {
	local step=$1
	what=$2
	shift 2
	LCPFS_TEST_CRASH=$step mount_fs "$B" "$M"
	"$@" > /dev/null 2>&1 || true
	poll 30 pid_gone "$DAEMON_PID" || fail "$what: the daemon did not reach step $step"
	{ wait "$DAEMON_PID"; } 2> /dev/null || true
	fusermount3 -u "$M" 2> /dev/null || fusermount3 -uz "$M" 2> /dev/null || true
}

# check_versions OLD_A OLD_T NEW_A NEW_T ENTRIES_OLD ENTRIES_NEW: after a
# remount both names read as the old pair or the new pair.
check_versions() {
	local oa=$1 ot=$2 na=$3 nt=$4 eo=$5 en=$6 v have
	never_container A "$TNAME"
	mount_fs "$B" "$M"
	have=$(( $(backing_ls "$B" | wc -l) + $(backing_ls "$B/sub" | wc -l) ))
	# When both versions read the same (a materialize), either layout is right.
	if same_as A "$oa" && same_as "$TNAME" "$ot" && [ "$have" = "$eo" ]; then
		v=old
	elif same_as A "$na" && same_as "$TNAME" "$nt" && [ "$have" = "$en" ]; then
		v=new
	else
		fail "$what: after recovery neither the old nor the new version ($have backing entries: $(ls -AR "$B" | tr '\n' ' '))"
	fi
	unmount_fs "$M" "$DAEMON_PID" || fail "unmount"
	say "$what: $v version after recovery, $have backing entries"
}

# mv A T, for every kind of T and every step the store takes for it.
for kind in compressed raw absent sub; do
	case $kind in
	compressed | sub) steps="rename-payload" ;;
	*) steps="rename-link rename-payload" ;;
	esac
	for step in $steps; do
		setup $kind
		crash "$step" "mv A $TNAME ($kind) crashed after $step" mv "$M/A" "$M/$TNAME"
		# old: A and T (A, its sidecar, sub/, T, T's sidecar when compressed)
		case $kind in
		compressed | sub) eo=5 ;;
		raw) eo=4 ;;
		absent) eo=3 ;;
		esac
		check_versions "$WORK/A.old" "$WORK/T.old" /nonexistent "$WORK/A.old" "$eo" 3
	done
done

# An exchange of two compressed files, and of a compressed and a raw file.
for kind in compressed raw; do
	setup $kind
	crash exchange "exchange A and T ($kind) crashed between payloads and sidecars" \
		"$PYTHON" -c "$EXCHANGE" "$M/A" "$M/T"
	n=$([ $kind = compressed ] && echo 5 || echo 4)
	check_versions "$WORK/A.old" "$WORK/T.old" "$WORK/T.old" "$WORK/A.old" "$n" "$n"
done

# rm of a compressed file, between payload and sidecar.
setup absent
crash unlink "rm A crashed after the payload" rm "$M/A"
check_versions "$WORK/A.old" /nonexistent /nonexistent /nonexistent 3 1

# A first write materializes: crash after the swap, before the sidecar goes.
setup absent
crash materialize "write to A crashed inside its materialize" \
	dd if=/dev/zero of="$M/A" bs=1 count=1 seek=100000 conv=notrunc status=none
check_versions "$WORK/A.old" /nonexistent "$WORK/A.old" /nonexistent 3 2

# cp over a compressed file (O_TRUNC): crash after the payload was emptied.
setup absent
: > "$WORK/empty"
crash discard "cp over A crashed after emptying it" cp "$WORK/raw.src" "$M/A"
check_versions "$WORK/A.old" /nonexistent "$WORK/empty" /nonexistent 3 2
echo "crash_ns: all checks passed"
