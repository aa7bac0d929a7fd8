#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The offline tool on a damaged or hostile backing directory: a payload whose
# header was damaged stays damaged through `lcpfs recover` (its sidecar is
# kept: the issue's repro); a sidecar replaced by a FIFO or a symlink never
# makes a payload read as its container bytes, and a FIFO never hangs
# recover or unpack; a temporary held by a live process survives recover;
# names of 249..255 bytes pack, verify and unpack. Every command runs under a
# timeout so a hang fails.
set -u
cd "$(dirname "$0")/../.." || exit 2
: "${LCPFS:?set LCPFS to the lcpfs binary}"
: "${PYTHON:=/usr/bin/python3}"
W=$(mktemp -d "${TMPDIR:-/tmp}/lcpfs-test-integrity.XXXXXX")
HOLDER=
cleanup() {
	[ -n "$HOLDER" ] && kill "$HOLDER" 2>/dev/null
	# A FIFO someone may still be blocked on: open its other end.
	find "$W" -type p -exec timeout 2 sh -c 'exec 3<>"$1"' sh {} \; 2>/dev/null
	rm -rf "$W"
}
trap cleanup EXIT
STEP_TIMEOUT=30 # seconds for one command on a small file
fail=0
bad() { echo "FAIL: $*"; fail=1; }
run() { timeout -k 5 "$STEP_TIMEOUT" "$@"; }
MAGIC=$(printf 'lcpfsPL\032')

"$PYTHON" tests/integration/fsx/tensorfile.py "$W/src.safetensors" 1 || exit 1

# The issue's repro: a damaged payload header, then recover.
d=$W/damaged
mkdir -p "$d"
run "$LCPFS" pack "$W/src.safetensors" "$d/m.safetensors" > /dev/null || bad "pack"
run "$LCPFS" unpack "$d/m.safetensors" "$W/m.good" || bad "unpack before damage"
printf m | dd of="$d/m.safetensors" bs=1 conv=notrunc status=none
run "$LCPFS" recover "$d" 2> "$W/recover.log" || bad "recover failed"
[ -e "$d/.m.safetensors.lcpfs" ] || bad "recover removed the sidecar of a damaged payload"
out=$(run "$LCPFS" verify "$d/m.safetensors")
case $out in *DAMAGED*) ;; *) bad "verify after recover says: $out" ;; esac
if run "$LCPFS" unpack "$d/m.safetensors" "$W/m.out" 2> /dev/null; then
	bad "unpack of a damaged payload succeeded"
fi
[ ! -e "$W/m.out" ] || bad "unpack left bytes behind"
printf l | dd of="$d/m.safetensors" bs=1 conv=notrunc status=none
run "$LCPFS" unpack "$d/m.safetensors" "$W/m.back" && cmp -s "$W/m.good" "$W/m.back" ||
	bad "the repaired header does not read as before"
echo "ok: damaged payload header: recover keeps its sidecar, verify says DAMAGED, unpack fails"

# A sidecar replaced by a symlink (to a good copy) or a FIFO: never raw.
d=$W/hostile
mkdir -p "$d"
run "$LCPFS" pack "$W/src.safetensors" "$d/m.safetensors" > /dev/null || bad "pack"
mv "$d/.m.safetensors.lcpfs" "$W/saved.lcpfs"
ln -s "$W/saved.lcpfs" "$d/.m.safetensors.lcpfs"
if run "$LCPFS" unpack "$d/m.safetensors" "$W/sym.out" 2> /dev/null; then
	head -c 8 "$W/sym.out" | grep -q "$MAGIC" && bad "symlinked sidecar: unpack gave the container bytes"
	bad "symlinked sidecar: unpack succeeded"
fi
rm "$d/.m.safetensors.lcpfs"
mkfifo "$d/.m.safetensors.lcpfs"
run "$LCPFS" recover "$d" 2> /dev/null
rc=$?
[ $rc -lt 124 ] || bad "recover with a FIFO named like a sidecar hung (exit $rc)"
if run "$LCPFS" unpack "$d/m.safetensors" "$W/fifo.out" 2> /dev/null; then
	bad "FIFO sidecar: unpack succeeded"
fi
rc=$?
[ $rc -lt 124 ] || bad "unpack with a FIFO sidecar hung (exit $rc)"
[ -p "$d/.m.safetensors.lcpfs" ] || bad "recover removed a FIFO that is not its own"
rm "$d/.m.safetensors.lcpfs"
mv "$W/saved.lcpfs" "$d/.m.safetensors.lcpfs"
run "$LCPFS" verify "$d/m.safetensors" | grep -q ': ok$' || bad "restored sidecar does not verify"
echo "ok: sidecar as a symlink or a FIFO: no container bytes, no hang, nothing removed"

# A temporary held by a live process (another mount's or pack's) survives.
d=$W/live
mkdir -p "$d"
tmpname=.lcpfs-tmp.0123456789abcdef.p
"$PYTHON" - "$d/$tmpname" <<'PY' &
import fcntl, os, struct, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
# struct flock: l_type, l_whence, l_start, l_len, l_pid
fcntl.fcntl(fd, fcntl.F_OFD_SETLK, struct.pack("hhqqi", fcntl.F_WRLCK, 0, 0, 0, 0))
open(sys.argv[1] + ".held", "w").close()
time.sleep(600)
PY
HOLDER=$!
for _ in $(seq 1 200); do [ -e "$d/$tmpname.held" ] && break; sleep 0.05; done
rm -f "$d/$tmpname.held"
: > "$d/.lcpfs-tmp.fedcba9876543210.p" # a crashed process's: nobody holds it
run "$LCPFS" recover "$d" || bad "recover"
[ -e "$d/$tmpname" ] || bad "recover removed a temporary a live process holds"
[ ! -e "$d/.lcpfs-tmp.fedcba9876543210.p" ] || bad "recover kept a dead temporary"
kill "$HOLDER"
wait "$HOLDER" 2>/dev/null
HOLDER=
run "$LCPFS" recover "$d" || bad "recover"
[ ! -e "$d/$tmpname" ] || bad "a temporary nobody holds any more was kept"
echo "ok: recover removes only temporaries nobody holds"

# Offline pack keeps what a file is besides its bytes, copied or in place.
d=$W/meta
mkdir -p "$d"
cp "$W/src.safetensors" "$d/src.safetensors"
chown 1234:2345 "$d/src.safetensors"
chmod 6750 "$d/src.safetensors"
"$PYTHON" -c 'import os,sys; os.setxattr(sys.argv[1], "user.note", b"kept")' "$d/src.safetensors"
touch -d '2001-02-03 04:05:06' "$d/src.safetensors"
run "$LCPFS" pack "$d/src.safetensors" "$d/copy.safetensors" > /dev/null || bad "pack with metadata"
cp -a "$d/src.safetensors" "$d/inplace.safetensors"
run "$LCPFS" pack "$d/inplace.safetensors" "$d/inplace.safetensors" > /dev/null || bad "pack in place"
for n in copy inplace; do
	f=$d/$n.safetensors
	[ -e "$d/.$n.safetensors.lcpfs" ] || bad "$n: not compressed"
	[ "$(stat -c '%a %u:%g %Y' "$f")" = "6750 1234:2345 $(date -d '2001-02-03 04:05:06' +%s)" ] ||
		bad "$n: mode, owner, mtime $(stat -c '%a %u:%g %Y' "$f")"
	[ "$("$PYTHON" -c 'import os,sys; print(os.getxattr(sys.argv[1], "user.note").decode())' "$f")" = kept ] ||
		bad "$n: xattr lost"
done
echo "ok: offline pack keeps owner, setuid/setgid mode, xattrs and times"

# Names up to NAME_MAX.
d=$W/long
mkdir -p "$d"
run "$LCPFS" unpack "$W/src.safetensors" "$W/src.copy" || bad "unpack of a raw file"
for len in 249 250 253 255; do
	name=$(printf '%*s' $((len - 12)) '' | tr ' ' x).safetensors
	run "$LCPFS" pack "$W/src.safetensors" "$d/$name" > "$W/long.out" 2>&1 || bad "pack to $len bytes"
	grep -q ' -> ' "$W/long.out" || bad "a $len-byte name was not compressed: $(cat "$W/long.out")"
	run "$LCPFS" verify "$d/$name" | grep -q ': ok$' || bad "verify of a $len-byte name"
	run "$LCPFS" unpack "$d/$name" "$W/long.$len" || bad "unpack of a $len-byte name"
	cmp -s "$W/long.$len" "$W/m.good" || bad "a $len-byte name reads differently"
done
run "$LCPFS" recover "$d" || bad "recover"
n=$(ls -A "$d" | grep -cvx '\.lcpfs-lock') # the store's lock file aside
[ "$n" = 8 ] || bad "long names: $n entries, wanted 4 payloads + 4 sidecars"
echo "ok: names of 249..255 bytes pack, verify, unpack and survive recover"

[ $fail -eq 0 ] && echo "test_cli_integrity: all checks passed"
exit $fail
