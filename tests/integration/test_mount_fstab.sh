#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Mounting as users do: an fstab line of type fuse.lcpfs, mounted by
# util-linux mount(8) from a private fstab file (`mount -T FILE MOUNTPOINT`,
# /etc/fstab untouched), which runs mount.fuse3, which runs `lcpfs SOURCE
# MOUNTPOINT -o OPTIONS` through /bin/sh. mount(8) removes PATH from a
# helper's environment, so the shell looks in its default path
# (/usr/local/sbin:/usr/local/bin:/usr/sbin:...): the test runs in a private
# mount namespace where a temporary directory holding an lcpfs symlink is
# bind-mounted on /usr/local/sbin (the real one is untouched). The backing
# path has a space (fstab's \040).
# Checks the mount's source, type and FUSE options, that our own option
# (preset=quality) reached the daemon (a copied model gets 8-bit tensors,
# the default gives 4-bit), that allow_other lets another user read, and
# umount. Then --version and --help, alone and among mount arguments as
# mount.fuse3 lays them out: they answer and mount nothing.
set -eu
cd "$(dirname "$0")/../.."
if [ -z "${LCPFS_FSTAB_NS:-}" ]; then
	exec env LCPFS_FSTAB_NS=1 unshare --mount --propagation private bash "$0" "$@"
fi
. tests/integration/fsx/mount_lib.sh

SRC=tests/data/llama2c-stories260K.safetensors
OTHER_UID=65534 # nobody
[ -r "$SRC" ] || fail "missing $SRC"
command -v mount.fuse3 > /dev/null || fail "mount.fuse3 is missing (Debian package fuse3)"

BIN=$WORK/bin B="$WORK/model backing" M=$WORK/mnt FSTAB=$WORK/fstab
mkdir -p "$BIN" "$B" "$M"
ln -s "$LCPFS" "$BIN/lcpfs"
mount --bind "$BIN" /usr/local/sbin || fail "cannot bind-mount $BIN on /usr/local/sbin in the test's namespace"
OPTS=preset=quality,cache=64M,allow_other,noauto,nofail,_netdev
printf '# lcpfs test fstab\n%s %s fuse.lcpfs %s 0 0\n' "${B// /\\040}" "$M" "$OPTS" > "$FSTAB"
MOUNTS+=("$M")

# pids of lcpfs daemons serving $M (mount.fuse3 started them, not us).
daemon_pids() {
	local d args
	for d in /proc/[0-9]*; do
		args=$( { tr '\0' '\n' < "$d/cmdline"; } 2>/dev/null) || continue # gone meanwhile
		grep -qxF "$M" <<< "$args" && head -n 1 <<< "$args" | grep -q 'lcpfs$' &&
			echo "${d#/proc/}"
	done
	return 0
}
timeout 30 mount -T "$FSTAB" "$M" || fail "mount -T $FSTAB $M failed"
poll "$MOUNT_TIMEOUT" is_mounted "$M" || fail "no fuse.lcpfs mount at $M"
mapfile -t pids < <(daemon_pids)
[ "${#pids[@]}" = 1 ] || fail "expected one lcpfs daemon for $M, found: ${pids[*]:-none}"
DAEMON_PID=${pids[0]}
DAEMON_PIDS+=("$DAEMON_PID")
read -r src _ type mopts _ < <(grep " $M " /proc/self/mounts)
[ "$src" = "${B// /\\040}" ] || fail "mount source '$src', expected the backing '$B'"
[ "$type" = fuse.lcpfs ] || fail "mount type $type"
case ",$mopts," in *,allow_other,*) ;; *) fail "allow_other not applied: $mopts" ;; esac
say "mount -T FSTAB: $src on $M type $type ($mopts), daemon $DAEMON_PID"

cp "$SRC" "$M/model.safetensors"
wait_state "$M/model.safetensors" compressed
encodings=$(xattr_get "$M/model.safetensors" user.lcpfs.inspect | "$PYTHON" -c 'import json,sys
print(" ".join(sorted({t["encoding"] for t in json.load(sys.stdin)["tensors"]})))')
[ "$encodings" = "exact q8" ] || fail "preset=quality from fstab not applied: encodings '$encodings'"
say "preset=quality from the fstab line reached the daemon: encodings $encodings"
setpriv --reuid=$OTHER_UID --regid=$OTHER_UID --clear-groups cmp -s "$M/model.safetensors" "$M/model.safetensors" ||
	fail "another user cannot read through an allow_other mount"
say "uid $OTHER_UID reads through the allow_other mount"

umount "$M" || fail "umount $M"
poll "$MOUNT_TIMEOUT" pid_gone "$DAEMON_PID" || fail "daemon $DAEMON_PID still running after umount"
is_mounted "$M" && fail "still mounted after umount"
[ -s "$B/model.safetensors" ] || fail "backing lost the file"
say "umount: daemon exited, the backing keeps the file"

# --version and --help: alone, through /bin/sh as mount.fuse3 quotes a
# command, and after the mount arguments; none of them mounts.
v=$(env -u PATH /bin/sh -c "'lcpfs' '--version'") || fail "lcpfs --version: exit $?"
echo "$v" | grep -Eq '^lcpfs [0-9]+\.[0-9]+\.[0-9]+ ' || fail "--version printed '$v'"
for form in short after-mount-args; do
	case $form in
	short) out=$("$LCPFS" -V) ;;
	after-mount-args) out=$("$LCPFS" "$B" "$M" -o rw,dev,suid --version) ;;
	esac || fail "--version ($form): exit $?"
	[ "$out" = "$v" ] || fail "--version ($form) printed '$out', not '$v'"
done
is_mounted "$M" && fail "--version mounted"
say "--version: '$v', the same in every form"
h=$("$LCPFS" --help) || fail "lcpfs --help: exit $?"
for word in BACKING MOUNTPOINT preset= cache= threads= readahead= allow_other \
	pack unpack inspect verify recover stats --version; do
	grep -qF -- "$word" <<< "$h" || fail "--help does not mention $word"
done
for form in -h "mount-args"; do
	case $form in
	-h) out=$("$LCPFS" -h) ;;
	mount-args) out=$(env -u PATH /bin/sh -c "'lcpfs' '$B' '$M' '-o' 'rw,dev,suid' '-h'") ;;
	esac || fail "help ($form): exit $?"
	[ "$out" = "$h" ] || fail "help ($form) differs from --help"
done
is_mounted "$M" && fail "--help mounted"
say "--help: one text (mount options and verbs) in every form, exit 0"
echo "fstab: all checks passed"
