/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The lcpfs command: `lcpfs VERB ...` runs an offline verb (src/cli);
 * anything else (`lcpfs BACKING MOUNTPOINT [-o OPTIONS]`, as mount.fuse3
 * calls it) mounts (src/fs).
 */
#include <string.h>

#include "cli/cli.h"
#include "fs/fs.h"

int main(int argc, char **argv)
{
	if (argc >= 2) {
		const struct lcp_cli_verb *verb = lcp_cli_find_verb(argv[1]);
		if (verb)
			return verb->run(argc - 1, argv + 1);
	}
	return lcp_fs_main(argc, argv);
}
