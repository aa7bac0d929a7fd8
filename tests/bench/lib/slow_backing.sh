# SPDX-License-Identifier: Apache-2.0
# A slow backing for benchmarks (sourced): a directory served over sshfs by an
# sshd in a private network namespace, reached through a veth pair whose
# server side sends through a token bucket (tc tbf) at SLOW_RATE (default
# 1600mbit, about 200 MB/s). Only this pair is shaped: loopback and every
# other interface are left alone, so other users of the machine see no
# change. Everything is undone by slow_backing_down (call it from an EXIT
# trap): sshfs unmounted, sshd stopped, namespace and veth pair deleted.
#
#   slow_backing_check          status 0 when it can run, else 1 with the reason
#                               in SLOW_REASON
#   slow_backing_up DIR MNT     serves DIR at MNT (read-only); on failure
#                               status 1 with the reason in SLOW_REASON
#   slow_backing_down
# Call them directly, never in $(...): they set variables of this shell.
#
# Needs root, sshd and sshfs (Debian: openssh-server, sshfs), ip and tc
# (iproute2), and veth, network namespaces and sch_tbf in the kernel.

: "${SLOW_RATE:=1600mbit}"
SLOW_NS=lcpfs-slow-$$
SLOW_IF=lcps$$
SLOW_NET=198.18.$(($$ % 250)) # RFC 2544 benchmarking range
SLOW_DIR=""
SLOW_SSHD_PID=""
SLOW_MNTS=()
SLOW_MADE_RUNDIR=""
SLOW_REASON=""

slow_backing_check() {
	local t
	[ "$(id -u)" = 0 ] || { SLOW_REASON="needs root"; return 1; }
	for t in /usr/sbin/sshd sshfs ssh-keygen ip tc; do
		command -v "$t" > /dev/null ||
			{ SLOW_REASON="$t is missing (Debian packages openssh-server, sshfs, iproute2)"; return 1; }
	done
	return 0
}

slow_backing_up() {
	local dir=$1 mnt=$2
	SLOW_REASON="cannot set up the shaped link (see above)"
	if [ -z "$SLOW_DIR" ]; then
		SLOW_DIR=$(mktemp -d "${TMPDIR:-/tmp}/lcpfs-slow.XXXXXX") || return 1
		ssh-keygen -q -t ed25519 -N "" -f "$SLOW_DIR/host" || return 1
		ssh-keygen -q -t ed25519 -N "" -f "$SLOW_DIR/client" || return 1
		cp "$SLOW_DIR/client.pub" "$SLOW_DIR/authorized_keys"
		chmod 600 "$SLOW_DIR/authorized_keys"
		cat > "$SLOW_DIR/sshd_config" <<-EOF
			ListenAddress $SLOW_NET.2
			HostKey $SLOW_DIR/host
			AuthorizedKeysFile $SLOW_DIR/authorized_keys
			PidFile $SLOW_DIR/sshd.pid
			PermitRootLogin prohibit-password
			StrictModes no
			UsePAM no
			Subsystem sftp internal-sftp
			LogLevel ERROR
		EOF
		# sshd insists on its privilege separation directory.
		if [ ! -d /run/sshd ]; then
			mkdir -p /run/sshd && SLOW_MADE_RUNDIR=1
		fi
		ip netns add "$SLOW_NS" || return 1
		ip link add "${SLOW_IF}a" type veth peer name "${SLOW_IF}b" || return 1
		ip link set "${SLOW_IF}b" netns "$SLOW_NS" || return 1
		ip addr add "$SLOW_NET.1/30" dev "${SLOW_IF}a" || return 1
		ip link set "${SLOW_IF}a" up || return 1
		ip netns exec "$SLOW_NS" ip addr add "$SLOW_NET.2/30" dev "${SLOW_IF}b" || return 1
		ip netns exec "$SLOW_NS" ip link set "${SLOW_IF}b" up || return 1
		ip netns exec "$SLOW_NS" ip link set lo up || return 1
		# The server's sending side is the read direction. burst: a few
		# jiffies' worth at this rate; latency bounds the queue.
		ip netns exec "$SLOW_NS" tc qdisc add dev "${SLOW_IF}b" root tbf rate "$SLOW_RATE" \
			burst 1mb latency 50ms || return 1
		ip netns exec "$SLOW_NS" /usr/sbin/sshd -D -f "$SLOW_DIR/sshd_config" \
			-E "$SLOW_DIR/sshd.log" < /dev/null > /dev/null 2>&1 &
		SLOW_SSHD_PID=$!
	fi
	local i
	for i in $(seq 100); do
		sshfs "root@$SLOW_NET.2:$dir" "$mnt" -o ro,IdentityFile="$SLOW_DIR/client" \
			-o StrictHostKeyChecking=no,UserKnownHostsFile=/dev/null,LogLevel=ERROR \
			-o Ciphers=aes128-gcm@openssh.com,Compression=no 2>> "$SLOW_DIR/sshfs.log" &&
			{ SLOW_MNTS+=("$mnt"); return 0; }
		sleep 0.1 # sshd still starting
	done
	SLOW_REASON="sshfs mount failed: $(tail -n 3 "$SLOW_DIR/sshfs.log" "$SLOW_DIR/sshd.log")"
	return 1
}

slow_backing_down() {
	local m
	for m in "${SLOW_MNTS[@]}"; do
		fusermount3 -u "$m" 2> /dev/null || fusermount3 -uz "$m" 2> /dev/null || true
	done
	SLOW_MNTS=()
	if [ -n "$SLOW_SSHD_PID" ]; then
		kill "$SLOW_SSHD_PID" 2> /dev/null || true
		wait "$SLOW_SSHD_PID" 2> /dev/null || true
		SLOW_SSHD_PID=""
	fi
	ip netns del "$SLOW_NS" 2> /dev/null || true # takes the veth pair with it
	ip link del "${SLOW_IF}a" 2> /dev/null || true
	if [ -n "$SLOW_MADE_RUNDIR" ]; then
		rmdir /run/sshd 2> /dev/null || true
		SLOW_MADE_RUNDIR=""
	fi
	if [ -n "$SLOW_DIR" ]; then
		rm -rf "$SLOW_DIR"
		SLOW_DIR=""
	fi
	return 0
}
