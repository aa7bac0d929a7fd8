/* SPDX-License-Identifier: Apache-2.0 */
/* Placeholder until the daemon lands. */
#include <stdio.h>

#include "fs/fs.h"

int lcp_fs_main(int argc, char **argv)
{
	(void)argc;
	fprintf(stderr, "%s: mounting is not implemented yet\n", argv[0]);
	return 1;
}
