/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Statistics helpers: the seed's ratio and throughput formulas, including
 * its decompression throughput over bytes_in. Ports the seed's
 * test_statistics_calculations.
 */
#include <criterion/criterion.h>
#include <math.h>

#include "lcpfs/stats.h"

/* The seed's own test tolerance (abs < 0.01). */
#define SEED_TOL 0.01
/* The inputs below are exact in binary up to one rounding of each of the
 * three divisions: a few ulps of the result. */
#define EXACT_TOL 1e-12

static const struct lcp_stats seed_stats = {
	.bytes_in = 1000000,
	.bytes_out = 100000,
	.compress_count = 10,
	.decompress_count = 5,
	.candidates_detected = 15,
	.candidates_rejected = 5,
	.compress_time_us = 1000000, /* 1 second */
	.decompress_time_us = 500000, /* 0.5 seconds */
};

/* Seed: test_statistics_calculations */
Test(stats, seed_calculations)
{
	cr_expect(fabs(lcp_stats_compression_ratio(&seed_stats) - 10.0) < SEED_TOL);
	cr_expect(fabs(lcp_stats_compress_throughput_mbps(&seed_stats) - 1.0) < SEED_TOL);
	cr_expect(fabs(lcp_stats_decompress_throughput_mbps(&seed_stats) - 2.0) < SEED_TOL);
}

Test(stats, zero_denominators_give_zero)
{
	struct lcp_stats z = {0};

	cr_expect_eq(lcp_stats_compression_ratio(&z), 0.0);
	cr_expect_eq(lcp_stats_compress_throughput_mbps(&z), 0.0);
	cr_expect_eq(lcp_stats_decompress_throughput_mbps(&z), 0.0);
	z.bytes_in = 12345;
	cr_expect_eq(lcp_stats_compression_ratio(&z), 0.0);
	cr_expect_eq(lcp_stats_compress_throughput_mbps(&z), 0.0);
	cr_expect_eq(lcp_stats_decompress_throughput_mbps(&z), 0.0);
}

/* The seed divides bytes_in (not bytes_out) by the decompression time. */
Test(stats, decompress_throughput_uses_bytes_in)
{
	struct lcp_stats s = {
		.bytes_in = 8000000,
		.bytes_out = 1000000,
		.compress_time_us = 4000000,
		.decompress_time_us = 2000000,
	};

	cr_expect(fabs(lcp_stats_decompress_throughput_mbps(&s) - 4.0) < EXACT_TOL);
	cr_expect(fabs(lcp_stats_compress_throughput_mbps(&s) - 2.0) < EXACT_TOL);
	cr_expect(fabs(lcp_stats_compression_ratio(&s) - 8.0) < EXACT_TOL);
}

Test(stats, fields_are_the_seeds_eight_u64)
{
	cr_expect_eq(sizeof(struct lcp_stats), 8 * sizeof(uint64_t));
}
