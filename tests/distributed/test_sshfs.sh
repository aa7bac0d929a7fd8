#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# lcpfs over a backing filesystem without the features a local disk has:
# sshfs (SFTP) to an sshd the test starts on a loopback port, with its own
# host key, config and authorized key. The test first probes what the
# backing itself lacks (user xattrs, O_TMPFILE, RENAME_EXCHANGE,
# RENAME_NOREPLACE, ...) and prints it; then lcpfs must work on it with a
# clear reduced behaviour: plain files, compression and reads, remount,
# rewrite in place, rename and unlink of a compressed file, an open file
# across its commit, and clean errors (never EIO) where a feature is missing.
set -u
cd "$(dirname "$0")/../.."
. tests/integration/fsx/mount_lib.sh
. tests/distributed/dist_lib.sh

for b in sshd sshfs ssh-keygen; do
	command -v "$b" > /dev/null || [ -x "/usr/sbin/$b" ] ||
		fail "$b is not installed (scripts/install-deps.sh installs openssh-server and sshfs)"
done
# Outside $WORK: the sshfs mount must outlive the lcpfs cleanup that removes it.
T=$(mktemp -d /tmp/lcpfs-sshfs.XXXXXX)
EXIT_HOOKS+=("rm -rf '$T'")
mkdir -p "$T/export" "$T/mnt" "$T/mnt2"
ssh-keygen -q -t ed25519 -N '' -f "$T/host" || fail "host key"
ssh-keygen -q -t ed25519 -N '' -f "$T/id" || fail "client key"
cp "$T/id.pub" "$T/authorized_keys"
PORT=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$T/sshd_config" <<EOF
Port $PORT
ListenAddress 127.0.0.1
HostKey $T/host
PidFile $T/sshd.pid
AuthorizedKeysFile $T/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
Subsystem sftp internal-sftp
LogLevel ERROR
EOF
# sshd insists on its privilege separation directory.
if [ ! -d /run/sshd ]; then
	mkdir -p -m 755 /run/sshd
	EXIT_HOOKS+=("rmdir /run/sshd 2> /dev/null")
fi
SSH_OPTS=(-o IdentityFile="$T/id" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
	-o BatchMode=yes -o LogLevel=ERROR)
/usr/sbin/sshd -D -e -f "$T/sshd_config" 2> "$WORK/sshd.log" &
SSHD_PID=$!
EXIT_HOOKS+=("kill_and_wait $SSHD_PID; wait $SSHD_PID 2> /dev/null")
ssh_answers() { ssh "${SSH_OPTS[@]}" -p "$PORT" root@127.0.0.1 true 2> /dev/null; }
poll 20 ssh_answers || fail "sshd on 127.0.0.1:$PORT does not answer: $(cat "$WORK/sshd.log")"
sshfs_mounted() { grep -q " $1 fuse.sshfs " /proc/self/mounts; }
for m in "$T/mnt" "$T/mnt2"; do # the second: another client, for the lock probe
	sshfs -p "$PORT" "${SSH_OPTS[@]}" "root@127.0.0.1:$T/export" "$m" || fail "sshfs mount"
	EXIT_HOOKS+=("fusermount3 -u '$m' 2> /dev/null || fusermount3 -uz '$m' 2> /dev/null")
	poll 20 sshfs_mounted "$m" || fail "sshfs mount $m did not appear"
done
echo "ok: sshfs over sshd on 127.0.0.1:$PORT, backing $T/mnt"
echo "ok: backing probe: POSIX locks: $($CHECK locks "$T/mnt/lockprobe" "$T/mnt2/lockprobe")"
rm -f "$T/mnt/lockprobe"

# What the backing lacks (facts about sshfs, printed for the deployment
# notes; lcpfs is checked below).
"$PYTHON" - "$T/mnt" <<'PY'
import ctypes, errno, os, sys
d = sys.argv[1]
libc = ctypes.CDLL(None, use_errno=True)
def rn(a, b, flags):
    r = libc.renameat2(-100, a.encode(), -100, b.encode(), flags)
    return "works" if r == 0 else os.strerror(ctypes.get_errno())
p, q = d + "/probe1", d + "/probe2"
for f in (p, q):
    open(f, "w").write(f)
out = {}
try:
    os.setxattr(p, "user.t", b"v"); out["user xattrs"] = "work"
except OSError as e:
    out["user xattrs"] = e.strerror
try:
    os.close(os.open(d, os.O_WRONLY | os.O_TMPFILE, 0o600)); out["O_TMPFILE"] = "works"
except OSError as e:
    out["O_TMPFILE"] = e.strerror
out["RENAME_EXCHANGE"] = rn(p, q, 2)
out["RENAME_NOREPLACE"] = rn(p, d + "/probe3", 1)
if os.path.exists(d + "/probe3"):
    os.rename(d + "/probe3", p)
out["rename over a file"] = rn(p, q, 0)
open(p, "w").write("again")
try:
    os.link(p, d + "/probe4"); out["hard links"] = "work"
    out["st_ino of hard links"] = "equal" if os.stat(p).st_ino == os.stat(d + "/probe4").st_ino else "differ"
except OSError as e:
    out["hard links"] = e.strerror
fd = os.open(p, os.O_RDONLY)
os.unlink(p)
try:
    out["read after unlink"] = "works" if os.pread(fd, 5, 0) == b"again" else "wrong bytes"
except OSError as e:
    out["read after unlink"] = e.strerror
os.close(fd)
for k, v in out.items():
    print("ok: backing probe: %s: %s" % (k, v))
for f in os.listdir(d):
    os.unlink(os.path.join(d, f))
PY

B=$T/mnt/store M=$WORK/m
mkdir -p "$B"
node_mount n "$B" "$M" || fail "lcpfs over sshfs did not mount: $(node_log n)"
N_PID=$NODE_PID
pass sshfs.mount "lcpfs mounted over sshfs"

# One writer: a second read-write mount through the same sshfs client is
# refused (the lock is kept by this machine's kernel). Through another
# sshfs client it cannot be: sshfs shares no locks (the documented limit).
if node_mount n2 "$B" "$WORK/m2"; then
	bad sshfs.second_rw_refused "a second read-write mount through the same sshfs client was accepted"
	unmount_fs "$WORK/m2" "$NODE_PID"
elif grep -q 'another read-write lcpfs mount' "$WORK/n2.log"; then
	pass sshfs.second_rw_refused "a second read-write mount through the same client is refused"
else
	bad sshfs.second_rw_refused "the second read-write mount failed without the reason: $(node_log n2 3 | tr '\n' ' ')"
fi
mkdir -p "$T/mnt2/store"
if node_mount other "$T/mnt2/store" "$WORK/m3"; then
	echo "ok: a read-write mount through a second sshfs client is not refused (no shared locks); unmounted at once"
	unmount_fs "$WORK/m3" "$NODE_PID" || fail "unmount of the second client's mount"
else
	echo "ok: a read-write mount through a second sshfs client was refused: $(node_log other 1)"
fi

plain() {
	set -e
	head -c 200000 /dev/urandom > "$WORK/plain"
	cp "$WORK/plain" "$M/plain"
	cmp "$WORK/plain" "$M/plain"
	mkdir -p "$M/d/e"
	mv "$M/plain" "$M/d/e/plain2"
	cmp "$WORK/plain" "$M/d/e/plain2"
	printf 'x' >> "$M/d/e/plain2"
	[ "$(stat -c %s "$M/d/e/plain2")" = 200001 ]
	rm -r "$M/d"
	[ ! -e "$B/d" ]
}
check sshfs.plain "plain files: copy, rename across directories, append, remove" plain

make_model m.safetensors 4 7
make_model m2.safetensors 4 8
RAW=$WORK/m.safetensors REC=$WORK/m.safetensors.rec
cp "$RAW" "$M/m.safetensors" || fail "cp a model"
wait_settled "$M/m.safetensors" || fail "m never settled: $(state_of "$M/m.safetensors")"
check sshfs.compressed "a model copied in is compressed ($(state_of "$M/m.safetensors") $(reason_of "$M/m.safetensors"))" \
	state_is "$M/m.safetensors" compressed
check sshfs.reads "it reads as its committed reconstruction, whole and in ranges" \
	$CHECK --drop version "$M/m.safetensors" "$REC"
stored=$(du -k "$B/m.safetensors" | cut -f1) orig=$(du -k "$RAW" | cut -f1)
[ "$stored" -lt "$orig" ] && pass sshfs.smaller "the backing holds $stored KiB for $orig KiB" ||
	bad sshfs.smaller "the backing holds $stored KiB for $orig KiB"

# An open file across a commit on this backing.
cp "$RAW" "$M/h.safetensors" || fail "cp h"
$CHECK --drop hold "$M/h.safetensors" "$WORK/held" "$WORK/go" "$RAW" "$(dirname "$REC")/m.safetensors.rec" > "$WORK/hold.out" 2>&1 &
HOLD=$!
poll 30 test -e "$WORK/held" || fail "holder did not start"
wait_settled "$M/h.safetensors" || fail "h never settled"
touch "$WORK/go"
wait "$HOLD" && pass sshfs.held_open "an open file read across its commit as one version ($(cat "$WORK/hold.out"))" ||
	bad sshfs.held_open "$(cat "$WORK/hold.out")"

# User xattrs: the backing has none, so setting one fails with a clear
# "not supported", never EIO; lcpfs's own computed ones still answer.
if setfattr -n user.note -v x "$M/m.safetensors" 2> "$WORK/xattr.err"; then
	pass sshfs.xattr "a user xattr was set"
elif grep -q 'not supported' "$WORK/xattr.err"; then
	pass sshfs.xattr "setting a user xattr fails cleanly: $(cat "$WORK/xattr.err")"
else
	bad sshfs.xattr "setting a user xattr: $(cat "$WORK/xattr.err")"
fi
check sshfs.inspect_xattr "user.lcpfs.inspect answers" xattr_get "$M/m.safetensors" user.lcpfs.inspect

# A malformed tensor file is refused with a reason and stays as written.
head -c 100000 "$RAW" > "$WORK/bad.safetensors"
cp "$WORK/bad.safetensors" "$M/bad.safetensors"
wait_settled "$M/bad.safetensors"
s=$(state_of "$M/bad.safetensors") r=$(reason_of "$M/bad.safetensors")
[ "$s" = refused ] && [ -n "$r" ] && cmp -s "$WORK/bad.safetensors" "$M/bad.safetensors" &&
	pass sshfs.refused "a truncated file is refused ($r) and kept as written" ||
	bad sshfs.refused "a truncated file: state $s ($r)"

# Rewrite in place (materialize, patch, compress again).
cp "$REC" "$WORK/expected"
off=$(( $(stat -c %s "$RAW") - 4096 ))
dd if="$RAW" of="$WORK/patch" bs=16 skip=4000 count=1 status=none
dd if="$WORK/patch" of="$M/m.safetensors" bs=1 seek=$off conv=notrunc status=none
dd if="$WORK/patch" of="$WORK/expected" bs=1 seek=$off conv=notrunc status=none
check sshfs.rewrite_bytes "a committed file patched in place reads as patched" cmp "$M/m.safetensors" "$WORK/expected"
wait_settled "$M/m.safetensors"
check sshfs.rewrite_compressed "and is compressed again ($(state_of "$M/m.safetensors") $(reason_of "$M/m.safetensors"))" \
	state_is "$M/m.safetensors" compressed

# Namespace operations on compressed files.
cp "$M/m.safetensors" "$WORK/m.now"
mv "$M/m.safetensors" "$M/moved.safetensors" && cmp -s "$M/moved.safetensors" "$WORK/m.now" &&
	state_is "$M/moved.safetensors" compressed && pass sshfs.rename "a compressed file renamed keeps its bytes and state" ||
	bad sshfs.rename "rename of a compressed file: $(state_of "$M/moved.safetensors")"
cp "$RAW" "$M/over.safetensors" && wait_settled "$M/over.safetensors"
mv "$M/moved.safetensors" "$M/over.safetensors" && cmp -s "$M/over.safetensors" "$WORK/m.now" &&
	pass sshfs.rename_over "renamed over another compressed file" || bad sshfs.rename_over "rename over a compressed file"
exchange() {
	"$PYTHON" - "$M" <<-'PY'
	import ctypes, errno, os, sys
	m = sys.argv[1]
	a, b = m + "/over.safetensors", m + "/h.safetensors"
	before = (open(a, "rb").read(), open(b, "rb").read())
	libc = ctypes.CDLL(None, use_errno=True)
	r = libc.renameat2(-100, a.encode(), -100, b.encode(), 2)
	e = ctypes.get_errno()
	after = (open(a, "rb").read(), open(b, "rb").read())
	if r == 0:
	    sys.exit(0 if after == before[::-1] else "exchanged, but the contents are not swapped")
	if e not in (errno.EINVAL, errno.EOPNOTSUPP, errno.ENOSYS):
	    sys.exit("RENAME_EXCHANGE failed with %s" % os.strerror(e))
	if after != before:
	    sys.exit("RENAME_EXCHANGE failed (%s) and changed the files" % os.strerror(e))
	print("RENAME_EXCHANGE: %s, both files intact" % os.strerror(e))
	PY
}
check sshfs.exchange "RENAME_EXCHANGE of two compressed files works or fails cleanly" exchange
rm "$M/over.safetensors" && [ -z "$(cd "$B" && ls -A | grep -e '^\.over' -e '^over')" ] &&
	pass sshfs.unlink "unlink removes payload and sidecar" || bad sshfs.unlink "left: $(ls -A "$B" | tr '\n' ' ')"

# Remount: what was compressed still is.
cp "$RAW" "$M/m3.safetensors" && wait_settled "$M/m3.safetensors"
unmount_fs "$M" "$N_PID" || fail "unmount"
node_mount n2 "$B" "$M" || fail "remount over sshfs"
check sshfs.remount "after a remount the file is compressed and reads as before" \
	$CHECK --drop version "$M/m3.safetensors" "$REC"
s=$(state_of "$M/bad.safetensors")
echo "ok: after a remount the refused file shows state $s (a backing without user xattrs cannot keep the refusal)"
left=$(cd "$B" && ls -A | grep -e '^\.lcpfs-tmp\.' -e '^\.fuse_hidden' | tr '\n' ' ')
[ -z "$left" ] && pass sshfs.no_leftovers "no temporaries or .fuse_hidden files left" || bad sshfs.no_leftovers "left: $left"
grep -iE 'error|damaged' "$WORK"/n*.log > "$WORK/errs" &&
	bad sshfs.no_errors "the daemon logged: $(head -n 3 "$WORK/errs" | tr '\n' ' ')" || pass sshfs.no_errors "the daemon logged no error"
finish
