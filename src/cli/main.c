/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The lcpfs command: `lcpfs VERB ...` runs an offline verb (src/cli);
 * anything else (`lcpfs BACKING MOUNTPOINT [-o OPTIONS]`, as typed or as
 * mount.fuse3 runs it for an fstab line of type fuse.lcpfs) mounts (src/fs).
 * -h/--help and -V/--version answer the same wherever they stand among the
 * mount arguments: the help is the mount usage (the daemon's own text) then
 * the verbs; the version is the tool's.
 */
#include <string.h>

#include "cli/cli.h"
#include "fs/fs.h"

enum request { MOUNT, HELP, VERSION };

/* What the mount arguments ask for. An -o value is an option list, never a
 * request, even when it looks like one. */
static enum request mount_request(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-o") == 0)
			i++;
		else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
			return HELP;
		else if (strcmp(argv[i], "-V") == 0 || strcmp(argv[i], "--version") == 0)
			return VERSION;
	}
	return MOUNT;
}

int main(int argc, char **argv)
{
	if (argc >= 2) {
		const struct lcp_cli_verb *verb = lcp_cli_find_verb(argv[1]);
		if (verb)
			return verb->run(argc - 1, argv + 1);
	}
	switch (mount_request(argc, argv)) {
	case HELP: {
		/* The same text however the program was named or reached. */
		char prog[] = "lcpfs", help[] = "--help";
		char *args[] = {prog, help, NULL};
		int rc = lcp_fs_main(2, args);
		lcp_cli_print_verbs(stdout);
		return rc;
	}
	case VERSION:
		lcp_cli_print_version(stdout);
		return 0;
	case MOUNT:
		break;
	}
	return lcp_fs_main(argc, argv);
}
