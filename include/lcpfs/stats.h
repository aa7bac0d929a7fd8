/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Compression statistics: the seed's QLoraStatistics (eight running
 * counters) and its ratio and throughput helpers, with the seed's formulas.
 * A provider fills one of these on request (lcp_provider_ops.statistics).
 */
#ifndef LCPFS_STATS_H
#define LCPFS_STATS_H

#include <stdint.h>

struct lcp_stats {
	uint64_t bytes_in;            /* total bytes given to compress */
	uint64_t bytes_out;           /* total compressed bytes produced */
	uint64_t compress_count;      /* successful compressions */
	uint64_t decompress_count;    /* successful decompressions */
	uint64_t candidates_detected; /* inputs is_candidate accepted */
	uint64_t candidates_rejected; /* candidates refused (quality floor) */
	uint64_t compress_time_us;    /* total time spent compressing, microseconds */
	uint64_t decompress_time_us;  /* total time spent decompressing, microseconds */
};

/* bytes_in / bytes_out; 0 when bytes_out is 0 (seed). Pure, thread-safe. */
double lcp_stats_compression_ratio(const struct lcp_stats *s);

/* (bytes_in / 1e6) / (compress_time_us / 1e6), in MB/s (decimal megabytes);
 * 0 when compress_time_us is 0 (seed). Pure, thread-safe. */
double lcp_stats_compress_throughput_mbps(const struct lcp_stats *s);

/* (bytes_in / 1e6) / (decompress_time_us / 1e6), in MB/s; 0 when
 * decompress_time_us is 0. Note: this is the seed's formula verbatim, which
 * divides bytes_in (the uncompressed bytes, i.e. what decompression
 * produces when every compressed tensor is read back once), not bytes_out,
 * by the decompression time. Kept so numbers match the seed. Pure,
 * thread-safe. */
double lcp_stats_decompress_throughput_mbps(const struct lcp_stats *s);

#endif
