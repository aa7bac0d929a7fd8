/* SPDX-License-Identifier: Apache-2.0 */
/* Offline verbs of the lcpfs command (pack, unpack, inspect, verify). */
#ifndef LCPFS_CLI_CLI_H
#define LCPFS_CLI_CLI_H

struct lcp_cli_verb {
	const char *name;
	int (*run)(int argc, char **argv); /* argv[0] is the verb; returns exit status */
};

/* The verb called name, or NULL. Also answers "--help", "-h", "--version". */
const struct lcp_cli_verb *lcp_cli_find_verb(const char *name);

#endif
