/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer harness: the GGUF parser through lcp_format_parse, with the
 * format's magic forced in place; the map must meet format.h's contract
 * (fuzz_format_common.h).
 */
#include "fuzz_format_common.h"

FUZZ_TARGET(gguf)
{
	fuzz_parse_as(data, size, "GGUF", 0, 4);
	return 0;
}
