/* SPDX-License-Identifier: Apache-2.0 */
/* Offline verbs of the lcpfs command (pack, unpack, inspect, verify, recover, stats). */
#ifndef LCPFS_CLI_CLI_H
#define LCPFS_CLI_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>

#include "lcpfs/store.h"
#include "lcpfs/version.h"

struct lcp_cli_verb {
	const char *name;
	int (*run)(int argc, char **argv); /* argv[0] is the verb; returns exit status */
};

/* The verb called name ("pack", "stats", ...), or NULL. */
const struct lcp_cli_verb *lcp_cli_find_verb(const char *name);

/* The offline verbs' part of `lcpfs --help` (the mount usage comes first,
 * from the daemon), and the `lcpfs --version` line. */
void lcp_cli_print_verbs(FILE *to);
void lcp_cli_print_version(FILE *to);

/* Verbs (argv[0] is the verb name). Exit status 0 ok, 1 failure/damage,
 * 2 usage error, LCP_CLI_EXIT_UNSURE (verify) a file that could not be told
 * now (another process was renaming it): try again. */
#define LCP_CLI_EXIT_UNSURE 3
int lcp_cli_pack(int argc, char **argv);
int lcp_cli_unpack(int argc, char **argv);
int lcp_cli_inspect(int argc, char **argv);
int lcp_cli_verify(int argc, char **argv);
int lcp_cli_recover(int argc, char **argv);
int lcp_cli_stats(int argc, char **argv);

/* The mark a mount leaves on a raw backing file whose compression it
 * refused: the reason, kept across remounts (lcpfs(5)). */
#define LCP_CLI_REFUSED_XATTR "user.lcpfs.refused"

/* Writes r as a self-contained SVG picture to f (cli_svg.c): per tensor the
 * encoding, bits per weight and SQNR; path and state head it. Returns 0, or
 * -1 on no memory or a write error (f is left open either way). */
int lcp_cli_write_svg(FILE *f, const char *path, const char *state,
		      const struct lcp_file_report *r);

/* Opens the directory holding path and points *base at its last component
 * (inside path or a static "."). Returns a directory fd or -1 (errno set). */
int lcp_cli_open_parent(const char *path, char *dirbuf, size_t dirbuf_len, const char **base);

/* A recursive walk of a directory (cli_walk.c). */
struct lcp_cli_walk {
	const char *verb; /* messages read "lcpfs VERB: PATH: why" */
	/* Called for every entry that is not a directory (st from fstatat, not
	 * following symlinks), named by name in dirfd and shown as path. */
	void (*file)(struct lcp_cli_walk *w, int dirfd, const char *name, const char *path,
		     const struct stat *st);
	void *arg;        /* the caller's, for file */
	uint64_t dirs;    /* directories walked */
	unsigned errors;  /* entries that could not be examined (each printed) */
};

/* Walks directory fd (owned: closed here), shown as path, and everything
 * below it; symbolic links are not followed. Not thread-safe per w. */
void lcp_cli_walk_dir(struct lcp_cli_walk *w, int fd, const char *path);

#endif
