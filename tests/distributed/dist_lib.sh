# SPDX-License-Identifier: Apache-2.0
# Shared helpers for tests/distributed/test_*.sh (sourced, after
# tests/integration/fsx/mount_lib.sh): a private GlusterFS (glusterd, a
# two-brick volume, FUSE client mounts) that the test starts and always tears
# down, lcpfs daemons standing in for nodes, named checks that keep going
# after a failure, and the expected versions of a model file.
#
# GlusterFS is isolated per run: glusterd gets its own working, run and log
# directories under $GW (option working-directory, run-directory,
# logging-directory, glusterd-sockfile) and listens on port 24007 of a loopback
# address of its own (127.x.y.z, option transport.socket.bind-address; the
# bricks ask glusterd for their volfile on port 24007 of the brick host, so
# the port cannot move, the address can). Nothing is left in /var/lib/glusterd;
# the only files outside $GW are the bricks' sockets in /var/run/gluster, which
# the teardown removes. The gluster CLI refuses 127.0.0.1 and "localhost" as
# brick hosts (not overridable by force); any other 127.x address is accepted
# with force, which bricks on the root filesystem need anyway.

# The volume is distribute by default: one directory's files spread over both
# bricks, so a rename onto a name that hashes to the other brick goes through
# DHT's link files (renames are how lcpfs commits), and no self-heal daemon
# runs. DIST_LAYOUT=replica makes it replica 2 (every write to both bricks).
DIST_LAYOUT=${DIST_LAYOUT:-distribute}
GLUSTER_TIMEOUT=60  # seconds for one gluster CLI command
GLUSTER_UP_TIMEOUT=30
CHECK="$PYTHON tests/distributed/dist_check.py"
GATE_SO=${GATE_SO:-build/tests/distributed/rename_gate.so}
case $GATE_SO in /*) ;; *) GATE_SO=$PWD/$GATE_SO ;; esac

GW=$(mktemp -d /tmp/lcpfs-gluster.XXXXXX)
chmod 755 "$GW"
GADDR=127.$((RANDOM % 200 + 20)).$((RANDOM % 250 + 1)).$((RANDOM % 250 + 1))
GVOL=lcpfs$$
GD_PID=
GLUSTER_MOUNTS=()
EXIT_HOOKS=()
CHECKS_FAILED=0

# Like mount_lib's fail, with every node's daemon log.
fail() {
	local l
	echo "FAIL: $*"
	for l in "$WORK"/*.log; do
		[ -s "$l" ] || continue
		echo "last lines of $(basename "$l"):"
		tail -n 15 "$l" | sed 's/^/    /'
	done
	exit 1
}

# Named checks: "PASS id: text" or "FAIL id: text" (the runner matches FAIL
# ids against tests/distributed/xfail). A failed check does not stop the test.
pass() {
	local id=$1
	shift
	echo "PASS $id: $*"
}
bad() {
	local id=$1
	shift
	echo "FAIL $id: $*"
	CHECKS_FAILED=$((CHECKS_FAILED + 1))
}
# check ID TEXT CMD...: PASS when CMD succeeds, else FAIL with its output.
check() {
	local id=$1 text=$2 out
	shift 2
	if out=$("$@" 2>&1); then
		pass "$id" "$text"
	else
		bad "$id" "$text: $(printf '%s' "$out" | tail -n 5 | tr '\n' ' ')"
	fi
}
finish() {
	[ "$CHECKS_FAILED" -eq 0 ] || exit 1
	exit 0
}

gl() {
	timeout -k 5 "$GLUSTER_TIMEOUT" gluster --mode=script --glusterd-sock="$GW/cli.socket" \
		--log-file="$GW/log/cli.log" "$@"
}

glusterd_answers() {
	[ -S "$GW/cli.socket" ] && gl volume list > /dev/null 2>&1
}

gluster_start() {
	local b
	for b in glusterd glusterfs gluster; do
		command -v "$b" > /dev/null ||
			fail "$b is not installed (scripts/install-deps.sh installs glusterfs-server and glusterfs-client)"
	done
	mkdir -p "$GW/lib" "$GW/run" "$GW/log"
	cat > "$GW/glusterd.vol" <<-EOF
	volume management
	    type mgmt/glusterd
	    option working-directory $GW/lib
	    option run-directory $GW/run
	    option logging-directory $GW/log
	    option glusterd-sockfile $GW/cli.socket
	    option transport-type socket
	    option transport.address-family inet
	    option transport.socket.bind-address $GADDR
	    option ping-timeout 0
	    option event-threads 1
	end-volume
	EOF
	glusterd -N -f "$GW/glusterd.vol" -p "$GW/glusterd.pid" -l "$GW/log/glusterd.log" \
		--log-level=WARNING &
	GD_PID=$!
	poll "$GLUSTER_UP_TIMEOUT" glusterd_answers ||
		fail "glusterd did not come up on $GADDR; its log: $(tail -n 20 "$GW/log/glusterd.log")"
}

all_bricks_online() { # both brick processes started and alive
	local f n=0
	for f in "$GW/run/vols/$GVOL"/*.pid; do
		[ -s "$f" ] && kill -0 "$(cat "$f")" 2> /dev/null && n=$((n + 1))
	done
	[ "$n" -eq 2 ]
}

# gluster_volume: a two-brick volume, distribute (default) or replica 2,
# with the volume options in GLUSTER_VOLUME_SET ("key value" words).
GLUSTER_VOLUME_SET=()
gluster_volume() {
	local layout= i
	mkdir -p "$GW/brick1" "$GW/brick2"
	[ "$DIST_LAYOUT" = replica ] && layout="replica 2"
	# shellcheck disable=SC2086
	gl volume create "$GVOL" $layout "$GADDR:$GW/brick1" "$GADDR:$GW/brick2" force > "$GW/log/create.out" 2>&1 ||
		fail "gluster volume create: $(cat "$GW/log/create.out")"
	for ((i = 0; i + 1 < ${#GLUSTER_VOLUME_SET[@]}; i += 2)); do
		gl volume set "$GVOL" "${GLUSTER_VOLUME_SET[$i]}" "${GLUSTER_VOLUME_SET[$((i + 1))]}" > "$GW/log/set.out" 2>&1 ||
			fail "gluster volume set ${GLUSTER_VOLUME_SET[*]:$i:2}: $(cat "$GW/log/set.out")"
	done
	gl volume start "$GVOL" > "$GW/log/start.out" 2>&1 ||
		fail "gluster volume start: $(cat "$GW/log/start.out"); glusterd log: $(tail -n 5 "$GW/log/glusterd.log")"
	poll "$GLUSTER_UP_TIMEOUT" all_bricks_online ||
		fail "bricks not online: $(gl volume status "$GVOL" 2>&1)"
}

gluster_mounted() {
	grep -q " $1 fuse.glusterfs " /proc/self/mounts
}

gluster_usable() {
	touch "$1/.probe" 2> /dev/null && rm -f "$1/.probe"
}

# gluster_mount DIR [glusterfs options]: one more client of the volume (a
# "node's" view of it).
gluster_mount() {
	local d=$1 n=${#GLUSTER_MOUNTS[@]}
	shift
	mkdir -p "$d"
	glusterfs --volfile-server="$GADDR" --volfile-id="$GVOL" -p "$GW/client$n.pid" \
		-l "$GW/log/client$n.log" "$@" "$d" || fail "glusterfs client mount of $d failed"
	GLUSTER_MOUNTS+=("$d")
	poll "$GLUSTER_UP_TIMEOUT" gluster_mounted "$d" || fail "gluster mount $d did not appear"
	poll "$GLUSTER_UP_TIMEOUT" gluster_usable "$d" ||
		fail "gluster mount $d not usable: $(tail -n 5 "$GW/log/client$n.log")"
}

# gluster_setup N [glusterfs options]: glusterd, the volume, and N client
# mounts $GW/c0.. whose paths go to GM[0..N-1]; the options go to every
# client but the first.
gluster_setup() {
	local i n=$1
	shift
	GM=()
	gluster_start
	gluster_volume
	for ((i = 0; i < n; i++)); do
		if [ "$i" -eq 0 ]; then gluster_mount "$GW/c$i"; else gluster_mount "$GW/c$i" "$@"; fi
		GM+=("$GW/c$i")
	done
	echo "ok: GlusterFS $DIST_LAYOUT volume $GVOL on $GADDR (bricks $GW/brick1, $GW/brick2), $n client mounts $*"
}

kill_and_wait() { # PID...: TERM, a deadline, then KILL
	local p
	for p in "$@"; do kill "$p" 2> /dev/null; done
	for p in "$@"; do poll 10 pid_gone "$p" || kill -9 "$p" 2> /dev/null; done
}

gluster_teardown() {
	local m p pids=() socks=() i
	for ((i = ${#GLUSTER_MOUNTS[@]} - 1; i >= 0; i--)); do
		m=${GLUSTER_MOUNTS[$i]}
		if gluster_mounted "$m"; then
			umount "$m" 2> /dev/null || umount -l "$m" 2> /dev/null
		fi
		p=$(cat "$GW/client$i.pid" 2> /dev/null) && [ -n "$p" ] && kill_and_wait "$p"
	done
	# Every process whose command line names our private directory (bricks,
	# the self-heal daemon of a replica volume), and the sockets the bricks
	# keep in /var/run/gluster, noted before the volume stop ends them.
	for m in /proc/[0-9]*; do
		p=${m#/proc/}
		[ "$p" = "$$" ] && continue
		[ -r "$m/cmdline" ] || continue
		if tr '\0' ' ' 2> /dev/null < "$m/cmdline" | grep -qF -- "$GW/"; then
			pids+=("$p")
			socks+=($(tr '\0' '\n' 2> /dev/null < "$m/cmdline" | grep -A1 -x -- -S | grep '^/var/run/gluster/.*\.socket$'))
		fi
	done
	if [ -n "$GD_PID" ] && ! pid_gone "$GD_PID"; then
		gl volume stop "$GVOL" force > /dev/null 2>&1
	fi
	[ ${#pids[@]} -gt 0 ] && kill_and_wait "${pids[@]}"
	if [ -n "$GD_PID" ]; then
		kill_and_wait "$GD_PID"
		wait "$GD_PID" 2> /dev/null
	fi
	for m in "${socks[@]}"; do rm -f "$m"; done
	rm -rf "$GW"
}

dist_cleanup() {
	local i p
	# Background helpers first (readers, writers), then the daemons.
	for p in $(jobs -p); do
		[[ " ${DAEMON_PIDS[*]} " == *" $p "* ]] || kill "$p" 2> /dev/null
	done
	cleanup # mount_lib: lcpfs mounts and daemons, $WORK
	for ((i = ${#EXIT_HOOKS[@]} - 1; i >= 0; i--)); do eval "${EXIT_HOOKS[$i]}"; done
	gluster_teardown
}
trap dist_cleanup EXIT
# A timeout TERMinates the test: leave through the EXIT trap, so nothing leaks.
trap "exit 143" TERM INT

# node_mount NAME BACKING MOUNTPOINT [lcpfs options...]: an lcpfs daemon
# standing in for one node, logging to $WORK/NAME.log. Extra environment for
# the daemon comes from the array NODE_ENV (e.g. the rename gate). Sets
# NODE_PID; returns 1 (with the log in $WORK/NAME.log) when no mount appears.
NODE_ENV=()
node_mount() {
	local name=$1 b=$2 m=$3
	shift 3
	mkdir -p "$m"
	env "${NODE_ENV[@]}" "$LCPFS" "$b" "$m" -f "$@" 2>> "$WORK/$name.log" &
	NODE_PID=$!
	DAEMON_PIDS+=("$NODE_PID")
	MOUNTS+=("$m")
	poll "$MOUNT_TIMEOUT" is_mounted "$m" && stat "$m" > /dev/null && return 0
	pid_gone "$NODE_PID" || { kill "$NODE_PID"; poll 5 pid_gone "$NODE_PID"; }
	return 1
}

node_unmount() { # MOUNTPOINT PID
	unmount_fs "$1" "$2"
}

node_log() { # NAME: the last lines of a node's daemon log, indented
	tail -n "${2:-10}" "$WORK/$1.log" 2> /dev/null | sed 's/^/    /'
}

state_of() { xattr_get "$1" user.lcpfs.state 2> /dev/null; }
reason_of() { xattr_get "$1" user.lcpfs.reason 2> /dev/null; }
state_is() { [ "$(state_of "$1")" = "$2" ]; }
# Compressed or refused. (Not raw: right after the writer's close the state
# can still be raw, as the kernel sends the release that queues the job later.)
settled() { local s; s=$(state_of "$1"); [ "$s" = compressed ] || [ "$s" = refused ]; }
COMMIT_TIMEOUT=120 # seconds for one small file's compression on a busy 2-core machine
wait_settled() { poll "$COMMIT_TIMEOUT" settled "$1"; }

# make_model NAME MIB SEED: a synthetic model $WORK/NAME and its expected
# reconstruction $WORK/NAME.rec (packed and unpacked offline on local disk
# with the mount's default settings: the codec is deterministic, so a daemon's
# commit of the same bytes must read back exactly as this).
make_model() {
	local d=$WORK/models
	mkdir -p "$d/p"
	"$PYTHON" tests/distributed/gen_model.py "$WORK/$1" "$2" "$3" || fail "gen_model.py $1"
	"$LCPFS" pack "$WORK/$1" "$d/p/$1" > /dev/null || fail "offline pack of $1"
	"$LCPFS" unpack "$d/p/$1" "$WORK/$1.rec" || fail "offline unpack of $1"
	cmp -s "$WORK/$1" "$WORK/$1.rec" && fail "$1: reconstruction equals the raw bytes (not lossy?)"
	return 0
}

# The gate (rename_gate.c): gate_env DIR POINTS sets NODE_ENV for a process
# that stops at each of POINTS ("create:PREFIX", "rename-before:NAME",
# "rename-after:NAME"); gate_arrived DIR I tells whether it reached point I,
# gate_open DIR I lets it go on.
gate_env() {
	[ -r "$GATE_SO" ] || fail "missing $GATE_SO (make test-distributed builds it)"
	mkdir -p "$1"
	rm -f "$1"/arrived.* "$1"/go.* "$1"/timeout.*
	NODE_ENV=(LD_PRELOAD="$GATE_SO" LCPFS_GATE_DIR="$1" "LCPFS_GATE_POINTS=$2")
}
gate_arrived() { [ -e "$1/arrived.$2" ]; }
gate_open() { touch "$1/go.$2"; }

