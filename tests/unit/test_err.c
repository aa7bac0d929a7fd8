/* SPDX-License-Identifier: Apache-2.0 */
/* lcp_err values are pinned (they appear in logs and tests) and each has a message. */
#include <criterion/criterion.h>
#include <string.h>

#include "lcpfs/err.h"

Test(err, values_are_pinned)
{
	cr_expect_eq(LCP_OK, 0);
	cr_expect_eq(LCP_ERR_NOMEM, 1);
	cr_expect_eq(LCP_ERR_IO, 3);
	cr_expect_eq(LCP_ERR_CHECKSUM, 7);
	cr_expect_eq(LCP_ERR_NOSPC, 10);
	cr_expect_eq(LCP_ERR_ACCES, 15);
}

Test(err, every_code_has_a_distinct_message)
{
	for (int a = 0; a < LCP_ERR__COUNT; a++) {
		cr_assert_not_null(lcp_strerror((lcp_err)a));
		cr_expect_neq(strcmp(lcp_strerror((lcp_err)a), "unknown error"), 0, "code %d", a);
		cr_expect_eq(strncmp(lcp_err_name((lcp_err)a), "LCP_", 4), 0);
		for (int b = a + 1; b < LCP_ERR__COUNT; b++)
			cr_expect_neq(strcmp(lcp_strerror((lcp_err)a), lcp_strerror((lcp_err)b)), 0);
	}
}

Test(err, unknown_codes_do_not_crash)
{
	cr_expect_str_eq(lcp_strerror((lcp_err)999), "unknown error");
	cr_expect_str_eq(lcp_strerror((lcp_err)-1), "unknown error");
	cr_expect_str_eq(lcp_err_name((lcp_err)LCP_ERR__COUNT), "LCP_ERR_UNKNOWN");
}
