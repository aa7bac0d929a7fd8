/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer harness: the PyTorch zip (zip container, central directory, local headers, data.pkl) parser through lcp_format_parse, with the
 * format's magic forced in place; the map must meet format.h's contract
 * (fuzz_format_common.h).
 */
#include "fuzz_format_common.h"

FUZZ_TARGET(torchzip)
{
	fuzz_parse_as(data, size, "PK\x03\x04", 0, 4);
	return 0;
}
