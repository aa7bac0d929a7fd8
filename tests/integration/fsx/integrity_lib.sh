# SPDX-License-Identifier: Apache-2.0
# Helpers for the integrity tests (sourced after mount_lib.sh): tensor files
# made here (no data set needed), operations bounded in time so that a hang
# fails the test, an unprivileged caller, and the daemon's test hold points.

TENSORFILE="$PYTHON tests/integration/fsx/tensorfile.py"
COMMIT_TIMEOUT=${COMMIT_TIMEOUT:-120} # one small file's compression on a busy 2-core machine
OP_TIMEOUT=${OP_TIMEOUT:-20}           # one namespace operation or small read
UNPRIVILEGED=1234

# make_tensor PATH SEED [ROWS]: a small safetensors file of random weights.
make_tensor() {
	$TENSORFILE "$@" || fail "cannot make a tensor file $1"
}

state_is() { [ "$(xattr_get "$1" user.lcpfs.state 2>/dev/null)" = "$2" ]; }
wait_state() {
	poll "$COMMIT_TIMEOUT" state_is "$1" "$2" ||
		fail "$1: state $(xattr_get "$1" user.lcpfs.state 2>&1) (reason: $(xattr_get "$1" user.lcpfs.reason 2>/dev/null)), wanted $2"
}

# bounded WHAT CMD...: runs CMD in the background and fails the test when it
# has not ended within OP_TIMEOUT seconds (a hang); otherwise returns its
# exit status.
exec 9>&1 # the test's own output, for failures inside redirected calls
bounded() {
	local what=$1 pid
	shift
	"$@" &
	pid=$!
	poll "$OP_TIMEOUT" pid_gone "$pid" ||
		fail "$what: still running after ${OP_TIMEOUT}s: the mount hangs" >&9 2>&9
	wait "$pid"
}

as_user() {
	setpriv --reuid="$UNPRIVILEGED" --regid="$UNPRIVILEGED" --clear-groups "$@"
}

# Whoever blocks opening a FIFO in DIR (a hung daemon) gets its other end.
unblock_fifos() {
	[ -d "$1" ] || return 0
	find "$1" -type p 2>/dev/null | while read -r f; do
		"$PYTHON" -c 'import os,sys
for mode in (os.O_WRONLY, os.O_RDONLY):
	try: os.close(os.open(sys.argv[1], mode | os.O_NONBLOCK))
	except OSError: pass' "$f"
	done
}

# The daemon's hold points (LCPFS_TEST_HOLD, see lcpfs(1)): hold_wait POINT
# waits until a job reached it; hold_go POINT lets every job go on.
HOLD_DIR=$WORK/hold
mkdir -p "$HOLD_DIR"
hold_reached() { [ -e "$HOLD_DIR/$1.reached" ]; }
hold_wait() { poll "$COMMIT_TIMEOUT" hold_reached "$1" || fail "no job reached hold point $1"; }
hold_go() { : > "$HOLD_DIR/$1.go"; }
hold_reset() { rm -f "$HOLD_DIR/$1.reached" "$HOLD_DIR/$1.go"; }

# sha FILE: sha256 of its bytes (through whatever reads it).
sha() { sha256sum < "$1" | cut -d' ' -f1; }

# is_container FILE: its bytes begin with the payload magic.
is_container() { [ "$(head -c 8 "$1" 2>/dev/null | od -An -tx1 | tr -d ' \n')" = 6c63706673504c1a ]; }
