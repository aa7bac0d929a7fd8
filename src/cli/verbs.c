/* SPDX-License-Identifier: Apache-2.0 */
/* Placeholder verb table until the offline tool lands. */
#include <stddef.h>
#include <string.h>

#include "cli/cli.h"

const struct lcp_cli_verb *lcp_cli_find_verb(const char *name)
{
	(void)name;
	return NULL;
}
