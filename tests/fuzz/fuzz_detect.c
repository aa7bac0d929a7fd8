/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer harness: format detection on raw bytes. lcp_format_detect must
 * agree with lcp_format_parse (an ok map's format, else UNKNOWN), and the map
 * must meet format.h's contract.
 */
#include "fuzz_format_common.h"

FUZZ_TARGET(detect)
{
	struct lcp_mem_source src = {data, size};
	struct lcp_reader r;
	struct lcp_region_map m;
	lcp_reader_from_memory(&r, &src);
	FUZZ_CHECK(lcp_format_parse(&r, 0, &m) == LCP_OK);
	fuzz_check_map(&m, size);
	enum lcp_format f = m.ok ? m.format : LCP_FORMAT_UNKNOWN;
	lcp_region_map_free(&m);
	FUZZ_CHECK(lcp_format_detect(data, size) == f);
	return 0;
}
