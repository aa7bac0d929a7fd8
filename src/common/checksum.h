/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Checksums. This is the only file pair that includes xxhash.h: the rest of
 * lcpfs sees xxh3-64 through these wrappers, so the hash can be pinned (the
 * values are on disk) independently of the library's inline/namespace build
 * options. CRC-32 (zip's polynomial) comes from zlib.
 */
#ifndef LCPFS_COMMON_CHECKSUM_H
#define LCPFS_COMMON_CHECKSUM_H

#include <stddef.h>
#include <stdint.h>

#include "lcpfs/err.h"

/* xxh3-64 with seed 0 of len bytes at data (data may be NULL when len is 0). */
uint64_t lcp_xxh3(const void *data, size_t len);

/* xxh3-128 with seed 0: out[0] the high 64 bits, out[1] the low 64 bits
 * (the canonical big-endian order when printed high first). */
void lcp_xxh3_128(const void *data, size_t len, uint64_t out[2]);

/* Streaming xxh3-64. Create, update any number of times, digest, free.
 * Digest of the concatenation equals lcp_xxh3 of it. Not thread-safe per state. */
struct lcp_xxh3_stream;
lcp_err lcp_xxh3_stream_create(struct lcp_xxh3_stream **out);
void lcp_xxh3_stream_update(struct lcp_xxh3_stream *s, const void *data, size_t len);
uint64_t lcp_xxh3_stream_digest(const struct lcp_xxh3_stream *s);
void lcp_xxh3_stream_free(struct lcp_xxh3_stream *s);

/* CRC-32 (ISO-HDLC, as zip uses); crc is the running value, 0 to start. */
uint32_t lcp_crc32(uint32_t crc, const void *data, size_t len);
/* The CRC-32 of A followed by B from crc_a, crc_b and B's length. */
uint32_t lcp_crc32_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b);

#endif
