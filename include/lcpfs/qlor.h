/* SPDX-License-Identifier: Apache-2.0 */
/*
 * QLOR metadata block: the seed's per-tensor metadata and its v1 byte layout.
 *
 * v1 layout (little-endian, exactly the seed's to_bytes()):
 *   "QLOR" u8 version=1, u64 original_size, u8 bits, u16 rank, u8 dtype,
 *   u16 ndims, u32 dims[ndims], u32 nscales, f32 scales[nscales],
 *   u8 has_zero_points [, u32 nzp, i8 zp[nzp]], u64 original_checksum,
 *   u64 timestamp.
 * lcpfs appends a versioned extension after those bytes (documented in
 * man/lcpfs.5) that carries `extra`, a total length and a checksum; a block
 * without it is a plain seed v1 block and parses as such.
 */
#ifndef LCPFS_QLOR_H
#define LCPFS_QLOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lcpfs/dtype.h"
#include "lcpfs/err.h"

struct lcp_qlor {
	uint64_t original_size;     /* bytes of the original tensor */
	uint8_t bits;               /* 4 or 8 */
	uint16_t rank;              /* low-rank components */
	enum lcp_dtype dtype;
	uint16_t ndims;
	uint32_t *dims;             /* ndims entries, owned */
	uint32_t nscales;
	float *scales;              /* nscales entries, owned */
	bool has_zero_points;
	uint32_t nzero_points;
	int8_t *zero_points;        /* nzero_points entries, owned */
	uint64_t original_checksum; /* provenance only: a lossy codec never matches it */
	uint64_t timestamp;         /* Unix seconds */
	char *extra;                /* NUL-terminated, owned, or NULL */
};

/* The seed's QLoraMetadata::new(original_size, bits, rank): other fields
 * zero/empty, dtype F32. Owns nothing yet. */
void lcp_qlor_init(struct lcp_qlor *m, uint64_t original_size, uint8_t bits, uint16_t rank);
/* Releases owned arrays and resets to lcp_qlor_init(m, 0, 4, 16) (the seed's default). */
void lcp_qlor_free(struct lcp_qlor *m);

/* original_size / compressed_size; 0 when compressed_size is 0 (seed). */
double lcp_qlor_compression_ratio(const struct lcp_qlor *m, uint64_t compressed_size);
/* dtype bits / bits * 0.85 (seed). */
double lcp_qlor_expected_ratio(const struct lcp_qlor *m);
/* The seed's is_valid(): size > 0, bits 4/8, rank 1..1024, scales non-empty,
 * and dims (if any) consistent with original_size. */
bool lcp_qlor_is_valid(const struct lcp_qlor *m);

/* Exactly the seed's v1 bytes (no extension). *out is malloc'ed. */
lcp_err lcp_qlor_serialize_v1(const struct lcp_qlor *m, uint8_t **out, size_t *out_len);
/* v1 bytes followed by the lcpfs extension (extra, length, checksum). */
lcp_err lcp_qlor_serialize(const struct lcp_qlor *m, uint8_t **out, size_t *out_len);
/*
 * Parses a block (v1, optionally followed by the extension). Never reads
 * outside buf[0..len). *consumed (if non-NULL) receives the bytes used, so
 * blocks can be concatenated. Errors: LCP_ERR_TRUNCATED, LCP_ERR_FORMAT (bad
 * magic, dtype, counts), LCP_ERR_VERSION, LCP_ERR_CHECKSUM (extension).
 * On error *m is left in the lcp_qlor_init(…, 0, 4, 16) state, owning nothing.
 */
lcp_err lcp_qlor_parse(const uint8_t *buf, size_t len, struct lcp_qlor *m, size_t *consumed);

#endif
