# SPDX-License-Identifier: Apache-2.0
# Shared helpers for the tests/integration/test_mount*.sh scripts (sourced):
# skip when /dev/fuse is absent, mount under mktemp -d with the daemon in the
# foreground (so its pid is ours), unmount and clean up in an EXIT trap, and
# poll with deadlines instead of sleeping; wait for a file's user.lcpfs.state.

: "${LCPFS:=build/lcpfs}"
: "${PYTHON:=/usr/bin/python3}"
case $LCPFS in /*) ;; *) LCPFS=$PWD/$LCPFS ;; esac

MOUNT_TIMEOUT=10 # seconds for a mount to appear or a daemon to exit

if [ ! -c /dev/fuse ]; then
	echo "SKIP: /dev/fuse is absent, cannot mount"
	exit 77
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/lcpfs-test.XXXXXX")
chmod 755 "$WORK"
DAEMON_PIDS=()
MOUNTS=()

fail() {
	echo "FAIL: $*"
	if [ -s "$WORK/daemon.log" ]; then
		echo "last lines of the daemon log:"
		tail -n 20 "$WORK/daemon.log" | sed 's/^/    /'
	fi
	exit 1
}

say() {
	echo "ok: $*"
}

# poll SECONDS CMD...: runs CMD every 50 ms until it succeeds or the
# deadline passes (returns 1).
poll() {
	local deadline=$(( $(date +%s%N) / 1000000 + $1 * 1000 ))
	shift
	while ! "$@"; do
		[ $(( $(date +%s%N) / 1000000 )) -lt $deadline ] || return 1
		sleep 0.05
	done
}

is_mounted() {
	grep -q " $1 fuse.lcpfs " /proc/self/mounts
}

# mount_fs BACKING MOUNTPOINT [-o OPTS]: sets DAEMON_PID.
mount_fs() {
	local b=$1 m=$2
	shift 2
	"$LCPFS" "$b" "$m" -f "$@" 2>>"$WORK/daemon.log" &
	DAEMON_PID=$!
	DAEMON_PIDS+=("$DAEMON_PID")
	MOUNTS+=("$m")
	poll "$MOUNT_TIMEOUT" is_mounted "$m" || fail "mount of $m did not appear; daemon log:
$(tail -n 20 "$WORK/daemon.log")"
}

# asan_runtime: prints the AddressSanitizer runtime the lcpfs binary is
# linked with (the SAN=1 build), nothing for a normal build.
asan_runtime() {
	ldd "$LCPFS" 2>/dev/null | awk '/libasan/ { print $3 }'
}

pid_gone() {
	! kill -0 "$1" 2>/dev/null
}

# unmount_fs MOUNTPOINT PID: unmounts and waits for the daemon to exit.
unmount_fs() {
	fusermount3 -u "$1" || fusermount3 -uz "$1" || return 1
	poll "$MOUNT_TIMEOUT" pid_gone "$2" || { kill -9 "$2" 2>/dev/null; return 1; }
	wait "$2" 2>/dev/null
	return 0
}

cleanup() {
	local m p
	for m in "${MOUNTS[@]}"; do
		if is_mounted "$m"; then
			fusermount3 -u "$m" 2>/dev/null || fusermount3 -uz "$m" 2>/dev/null
		fi
	done
	for p in "${DAEMON_PIDS[@]}"; do
		poll 5 pid_gone "$p" || kill -9 "$p" 2>/dev/null
	done
	rm -rf "$WORK"
}
trap cleanup EXIT

# backing_ls DIR: ls -A of a backing directory without the store's lock file
# (.lcpfs-lock, kept where the store committed or moved a compressed file).
backing_ls() {
	ls -A "$1" | grep -vx '\.lcpfs-lock' || true
}

# xattr_get PATH NAME: prints the value (fails when absent).
xattr_get() {
	"$PYTHON" -c 'import os,sys; sys.stdout.write(os.getxattr(sys.argv[1], sys.argv[2]).decode())' "$1" "$2"
}

# state_is PATH STATE: user.lcpfs.state of PATH is STATE.
state_is() {
	[ "$(xattr_get "$1" user.lcpfs.state 2>/dev/null)" = "$2" ]
}

# wait_state PATH STATE: polls up to COMMIT_TIMEOUT seconds (default 120: one
# small file's compression on a busy 2-core machine), else fails.
wait_state() {
	poll "${COMMIT_TIMEOUT:-120}" state_is "$1" "$2" ||
		fail "$1: state $(xattr_get "$1" user.lcpfs.state) (reason: $(xattr_get "$1" user.lcpfs.reason 2>/dev/null)), wanted $2"
}
