/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer harness: the safetensors (no magic: byte 8 is the JSON's '{') parser through lcp_format_parse, with the
 * format's magic forced in place; the map must meet format.h's contract
 * (fuzz_format_common.h).
 */
#include "fuzz_format_common.h"

FUZZ_TARGET(safetensors)
{
	fuzz_parse_as(data, size, "{", 8, 1);
	return 0;
}
