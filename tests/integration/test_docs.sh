#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The man pages name everything the code lets a user see: every mount and
# tool option, verb, user.lcpfs.* extended attribute (those named in the
# sources and those a real mount lists on a raw, a compressed and a refused
# file), environment variable, crash-hook value (lcpfs.1) and temporary-file
# tag (lcpfs.5); tests/tools/docs_check.py does the extraction. Then the
# check itself is shown to fail: on a copy of the sources with one new name
# of each kind added, it must report all of them.
set -eu
cd "$(dirname "$0")/../.."
. tests/integration/fsx/mount_lib.sh

SRC=tests/data/llama2c-stories260K.safetensors
CHECK="$PYTHON tests/tools/docs_check.py"

# What a mount lists: a raw file, a compressed one and a refused one.
B=$WORK/backing M=$WORK/mnt
mkdir -p "$B" "$M"
mount_fs "$B" "$M"
printf 'notes\n' > "$M/notes.txt"
cp "$SRC" "$M/model.safetensors"
head -c 5000 "$SRC" > "$M/truncated.safetensors"
wait_state "$M/model.safetensors" compressed
wait_state "$M/truncated.safetensors" refused
"$PYTHON" - "$M" > "$WORK/xattrs" <<'PY'
import os, sys
names = set()
for f in ("notes.txt", "model.safetensors", "truncated.safetensors"):
    names.update(n for n in os.listxattr(os.path.join(sys.argv[1], f)) if n.startswith("user.lcpfs."))
print("\n".join(sorted(names)))
PY
unmount_fs "$M" "$DAEMON_PID" || fail "unmount"
grep -qx user.lcpfs.state "$WORK/xattrs" || fail "the mount listed no user.lcpfs.state: $(cat "$WORK/xattrs")"
say "a mount lists: $(tr '\n' ' ' < "$WORK/xattrs")"

$CHECK src man --xattrs "$WORK/xattrs" > "$WORK/check.log" || {
	cat "$WORK/check.log"
	fail "names in the code are missing from the man pages"
}
sed 's/^/    /' "$WORK/check.log"
say "every name the code shows is in man/lcpfs.1 and man/lcpfs.5"

# The check can fail: one undocumented name of each kind, added to a copy.
cp -r src man "$WORK/"
cat >> "$WORK/src/fs/fs.c" <<'EOF'
static void undocumented(const char *o, char *t)
{
	if (strncmp(o, "frobnicate=", 11) == 0 && getenv("LCPFS_FROBNICATE"))
		crash_point("frobnicated");
	(void)getxattr(t, "user.lcpfs.frobnication", NULL, 0);
	(void)lcp_store_temp_name('z', t, 64);
}
EOF
sed -i 's/{"stats", lcp_cli_stats},/{"stats", lcp_cli_stats}, {"frobnicate", lcp_cli_frobnicate},/' \
	"$WORK/src/cli/verbs.c"
if $CHECK "$WORK/src" "$WORK/man" > "$WORK/mutant.log"; then
	cat "$WORK/mutant.log"
	fail "docs_check passed with undocumented names added"
fi
for what in "option 'frobnicate'" "env 'LCPFS_FROBNICATE'" "crash 'frobnicated'" \
	"xattr 'user.lcpfs.frobnication'" "temp tag 'z'" "verb 'frobnicate'"; do
	grep -qF "UNDOCUMENTED: $what" "$WORK/mutant.log" || {
		cat "$WORK/mutant.log"
		fail "docs_check did not report the added $what"
	}
done
say "with one undocumented name of each kind added, the check fails and names all six"
echo "docs: all checks passed"
