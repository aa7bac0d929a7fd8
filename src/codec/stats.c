/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The seed's statistics helpers. The formulas are the seed's, including
 * the decompression throughput that divides bytes_in (see stats.h).
 */
#include "lcpfs/stats.h"

double lcp_stats_compression_ratio(const struct lcp_stats *s)
{
	if (s->bytes_out == 0)
		return 0.0;
	return (double)s->bytes_in / (double)s->bytes_out;
}

double lcp_stats_compress_throughput_mbps(const struct lcp_stats *s)
{
	if (s->compress_time_us == 0)
		return 0.0;
	return ((double)s->bytes_in / 1e6) / ((double)s->compress_time_us / 1e6);
}

double lcp_stats_decompress_throughput_mbps(const struct lcp_stats *s)
{
	if (s->decompress_time_us == 0)
		return 0.0;
	return ((double)s->bytes_in / 1e6) / ((double)s->decompress_time_us / 1e6);
}
