#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Checks that every user-visible name in the C sources is in the man pages.

usage: docs_check.py SRC_DIR MAN_DIR [--xattrs FILE]

Reads the C sources under SRC_DIR (comments removed) and collects:
  options     mount and tool options and flags: the literals compared with
              strcmp/strncmp in src/fs (except xattr keys), in the option
              parser src/codec/config.c and in the verbs' argument loops
              (src/cli: argv[...] compared with a "-..." literal), and the
              items of src/fs arrays named *options* (not *ignored*)
  verbs       the offline verbs of src/cli/verbs.c's table
  xattrs      "user.lcpfs.*" literals, and the keys src/fs compares a
              computed attribute's name with (strcmp(key, "...")) or lists
              in an array named *keys*, as user.lcpfs.KEY
  env         getenv / secure_getenv names
  crash       values of the crash_point("...") test hooks
  temp tags   the tag letters given to lcp_store_temp_name
With --xattrs FILE, the names in FILE (one a line: what a real mount listed)
count as xattrs too. Options, verbs, xattrs, environment variables and crash
points must appear in MAN_DIR/lcpfs.1, temp tags in MAN_DIR/lcpfs.5 (as a
`.B TAG` line). Prints what is missing with where the code names it; exits 1
if anything is, 0 otherwise.
"""
import os
import re
import sys

# Literals compared in src/fs that are not options, each with why.
NOT_OPTIONS = {
    "x-": "prefix of mount(8)'s x-* words, ignored as a group",
    "comment=": "mount(8)'s comment= word, ignored",
    "fuse": "a filesystem type read from /proc/self/mountinfo",
    "-o": "the option flag itself; documented as -o",
}
OPTION_LITERAL = re.compile(r'^(-{1,2}[A-Za-z][-A-Za-z0-9]*|[a-z_][a-z0-9_]*=?)$')


def strip_comments(text):
    def repl(m):
        s = m.group(0)
        return "\n" * s.count("\n") if s.startswith("/") else s  # keep line numbers
    # Comments, but not comment-like text inside string or char literals.
    return re.sub(r'//[^\n]*|/\*.*?\*/|"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'',
                  repl, text, flags=re.S)


def sources(src):
    for root, _, files in os.walk(src):
        for f in sorted(files):
            if f.endswith((".c", ".h")):
                path = os.path.join(root, f)
                with open(path, encoding="utf-8", errors="replace") as fh:
                    yield os.path.relpath(path, os.path.dirname(src.rstrip("/"))), strip_comments(fh.read())


def line_of(text, pos):
    return text.count("\n", 0, pos) + 1


def array_items(text, name_pattern):
    """(array name, item, offset) for string-literal arrays whose name matches."""
    for m in re.finditer(r'\b(\w+)\s*\[\s*\]\s*=\s*\{(.*?)\}\s*;', text, flags=re.S):
        if re.search(name_pattern, m.group(1)):
            for item in re.finditer(r'"([^"]*)"', m.group(2)):
                yield m.group(1), item.group(1), m.start(2) + item.start()


def collect(src, extra_xattrs):
    found = {k: {} for k in ("options", "verbs", "xattrs", "env", "crash", "temp tags")}

    def add(kind, name, where):
        found[kind].setdefault(name, where)

    for rel, text in sources(src):
        where = lambda pos: "%s:%d" % (rel, line_of(text, pos))
        in_fs = "/fs/" in "/" + rel
        in_cli = "/cli/" in "/" + rel
        for m in re.finditer(r'"user\.lcpfs\.([A-Za-z0-9_.-]+)"', text):
            add("xattrs", "user.lcpfs." + m.group(1), where(m.start()))
        for m in re.finditer(r'\b(?:secure_)?getenv\s*\(\s*"([^"]+)"', text):
            add("env", m.group(1), where(m.start()))
        for m in re.finditer(r'\bcrash_point\s*\(\s*"([^"]+)"', text):
            add("crash", m.group(1), where(m.start()))
        for m in re.finditer(r"temp_name\s*\(\s*'(.)'", text):
            add("temp tags", m.group(1), where(m.start()))
        compares = re.finditer(r'\bstrn?cmp\s*\(\s*([\w\[\]+ ]+?)\s*,\s*"([^"]*)"', text)
        for m in compares:
            var, lit = m.group(1).strip(), m.group(2)
            if in_fs and var == "key":
                add("xattrs", "user.lcpfs." + lit, where(m.start()))
            elif in_fs or rel.endswith("codec/config.c") or (in_cli and var.startswith("argv[")):
                if OPTION_LITERAL.match(lit) and lit not in NOT_OPTIONS:
                    add("options", lit.rstrip("="), where(m.start()))
        if in_fs:
            for arr, item, pos in array_items(text, r'options'):
                if "ignored" not in arr:
                    add("options", item.rstrip("="), where(pos))
            for arr, item, pos in array_items(text, r'keys'):
                add("xattrs", "user.lcpfs." + item, where(pos))
        if rel.endswith("cli/verbs.c"):
            for m in re.finditer(r'\{\s*"([a-z]+)"\s*,\s*lcp_cli_\w+\s*\}', text):
                add("verbs", m.group(1), where(m.start()))
    for name in extra_xattrs:
        add("xattrs", name, "listed by a mount")
    return found


def man_text(path):
    with open(path, encoding="utf-8") as f:
        t = f.read()
    t = re.sub(r'\\f[BIRP]|\\f\(..|\\&|\\%', "", t)
    t = re.sub(r'\\\(..', " ", t)
    return t.replace("\\-", "-").replace("\\e", "\\")


def mentioned(text, name):
    if name.endswith("="):
        name = name[:-1]
    return re.search(r'(?<![\w.=-])' + re.escape(name) + r'(?![\w])', text) is not None


def main(argv):
    if len(argv) not in (2, 4) or (len(argv) == 4 and argv[2] != "--xattrs"):
        print(__doc__, file=sys.stderr)
        return 2
    src, man = argv[0], argv[1]
    extra = []
    if len(argv) == 4:
        with open(argv[3]) as f:
            extra = [ln.strip() for ln in f if ln.strip()]
    found = collect(src, extra)
    page1 = man_text(os.path.join(man, "lcpfs.1"))
    with open(os.path.join(man, "lcpfs.5"), encoding="utf-8") as f:
        page5_lines = {ln.strip() for ln in f}
    missing = []
    for kind, names in found.items():
        for name, where in sorted(names.items()):
            ok = (".B " + name) in page5_lines if kind == "temp tags" else mentioned(page1, name)
            if not ok:
                page = "lcpfs.5" if kind == "temp tags" else "lcpfs.1"
                missing.append("%s '%s' (%s) is not in %s" % (kind[:-1] if kind.endswith("s") else kind,
                                                             name, where, page))
    for kind, names in found.items():
        print("%-9s %d: %s" % (kind, len(names), " ".join(sorted(names))))
    for m in missing:
        print("UNDOCUMENTED: " + m)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
