/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer harness: the QLOR block parser (lcp_qlor_parse, v1 and the
 * lcpfs extension). It never consumes more than it was given; a block that
 * parses serializes and parses back to the same fields.
 */
#include <string.h>

#include "common/alloc.h"
#include "fuzz.h"
#include "lcpfs/qlor.h"

FUZZ_TARGET(qlor)
{
	struct lcp_qlor m;
	size_t used = 0;
	lcp_err e = lcp_qlor_parse(data, size, &m, &used);
	FUZZ_CHECK(e == LCP_OK || e == LCP_ERR_FORMAT || e == LCP_ERR_TRUNCATED || e == LCP_ERR_CHECKSUM ||
		   e == LCP_ERR_VERSION || e == LCP_ERR_NOMEM);
	if (e)
		return 0;
	FUZZ_CHECK(used <= size);
	uint8_t *out;
	size_t out_len;
	if (lcp_qlor_serialize(&m, &out, &out_len) == LCP_OK) {
		struct lcp_qlor back;
		size_t used2;
		FUZZ_CHECK(lcp_qlor_parse(out, out_len, &back, &used2) == LCP_OK && used2 == out_len);
		FUZZ_CHECK(back.original_size == m.original_size && back.bits == m.bits && back.rank == m.rank &&
			   back.ndims == m.ndims && back.nscales == m.nscales);
		lcp_qlor_free(&back);
		lcp_free(out);
	}
	lcp_qlor_free(&m);
	return 0;
}
