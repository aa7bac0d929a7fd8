/* SPDX-License-Identifier: Apache-2.0 */
/* The verb table, the help and version texts, and path helpers shared by the verbs. */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"

void lcp_cli_print_verbs(FILE *to)
{
	fprintf(to,
		"\n"
		"Offline verbs, on the same on-disk representation (no mount needed):\n"
		"    lcpfs pack [-j N] [-o OPTIONS] SRC DST\n"
		"                                      store SRC at DST compressed (payload + sidecar)\n"
		"                                      on N threads (default: the cores); OPTIONS: the\n"
		"                                      compression options above\n"
		"    lcpfs unpack SRC DST              write the reconstructed bytes of SRC to DST\n"
		"    lcpfs inspect [--json] [--svg OUT.svg] PATH\n"
		"                                      format, sizes, ratio and per-tensor quality\n"
		"    lcpfs verify PATH...              check every checksum of each file, or of every\n"
		"                                      file below a directory; exit 1 on damage, 3\n"
		"                                      when a file being renamed cannot be told now\n"
		"    lcpfs recover DIR...              clean up after a crash (what a mount does)\n"
		"    lcpfs stats [--json] PATH...      files by state, format and preset; bytes saved\n"
		"    lcpfs -h | --help | -V | --version\n"
		"See lcpfs(1) and lcpfs(5).\n");
}

void lcp_cli_print_version(FILE *to)
{
	fprintf(to, "lcpfs %s (container format 1)\n", LCPFS_VERSION_STRING);
}

static const struct lcp_cli_verb verbs[] = {
	{"pack", lcp_cli_pack},       {"unpack", lcp_cli_unpack},   {"inspect", lcp_cli_inspect},
	{"verify", lcp_cli_verify},   {"recover", lcp_cli_recover}, {"stats", lcp_cli_stats},
};

const struct lcp_cli_verb *lcp_cli_find_verb(const char *name)
{
	for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
		if (strcmp(verbs[i].name, name) == 0)
			return &verbs[i];
	return NULL;
}

int lcp_cli_open_parent(const char *path, char *dirbuf, size_t dirbuf_len, const char **base)
{
	const char *slash = strrchr(path, '/');
	if (!slash) {
		*base = path;
		return open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	if (slash[1] == 0) {
		errno = EISDIR;
		return -1;
	}
	*base = slash + 1;
	size_t n = (size_t)(slash - path);
	if (n == 0)
		n = 1; /* "/name" */
	if (n >= dirbuf_len) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(dirbuf, path, n);
	dirbuf[n] = 0;
	return open(dirbuf, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}
