/* SPDX-License-Identifier: Apache-2.0 */
/*
 * QLOR metadata block: the seed's per-tensor metadata and its v1 byte layout.
 *
 * v1 layout (little-endian, exactly the seed's to_bytes()):
 *   "QLOR" u8 version=1, u64 original_size, u8 bits, u16 rank, u8 dtype,
 *   u16 ndims, u32 dims[ndims], u32 nscales, f32 scales[nscales],
 *   u8 has_zero_points [, u32 nzp, i8 zp[nzp]], u64 original_checksum,
 *   u64 timestamp.
 * lcpfs appends a versioned extension after those bytes that carries
 * `extra`, a total length and a checksum; a block without it is a plain seed
 * v1 block and parses as such. Extension layout, offsets from its first byte
 * (integers little-endian):
 *   0  3 bytes   magic "QLX" (51 4c 58); differs from "QLOR" in its third
 *                byte, so a following plain v1 block is never mistaken for it
 *   3  u8        ext_version = 1 (another value: LCP_ERR_VERSION)
 *   4  u32       ext_len: bytes of the extension, magic through checksum
 *                inclusive = 21 + extra_len (less than 21: LCP_ERR_FORMAT)
 *   8  u8        flags: bit 0 set = extra present; other bits must be 0
 *   9  u32       extra_len: bytes of extra, without a NUL; must equal
 *                ext_len - 21, and be 0 when bit 0 of flags is clear
 *  13  extra_len bytes of extra (no NUL byte inside)
 *  13+extra_len  u64 xxh3-64 (seed 0) of every byte of the block before this
 *                field: the v1 bytes and the extension up to here
 * Total block length = v1 length + ext_len. The checksum is verified before
 * any other extension field is interpreted (mismatch: LCP_ERR_CHECKSUM).
 * Detection: after the v1 bytes, the extension is present exactly when at
 * least 3 bytes remain and they are "QLX"; otherwise the block is plain v1
 * (extra NULL) and whatever follows is not part of it. Consequence: damage
 * to the extension magic, or to a v1 count, can make a damaged extended
 * block parse as a shorter plain v1 block. A caller that knows the length
 * of the block it stored must therefore check *consumed == len.
 */
#ifndef LCPFS_QLOR_H
#define LCPFS_QLOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lcpfs/dtype.h"
#include "lcpfs/err.h"

/* The seed's QLoraMetadata. "owned" arrays are lcp_malloc'ed and released by
 * lcp_qlor_free; an empty array is NULL with a count of 0. */
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
/* dtype bits / bits * 0.85 (seed): 6.8 for F32 at 4 bits. 0 when bits is 0
 * (a lossless tensor; the seed would return infinity). */
double lcp_qlor_expected_ratio(const struct lcp_qlor *m);
/* The seed's is_valid(): size > 0, bits 4/8, rank 1..1024, scales non-empty,
 * and dims (if any) consistent with original_size. */
bool lcp_qlor_is_valid(const struct lcp_qlor *m);

/* Exactly the seed's v1 bytes (no extension; extra is dropped, as the seed
 * drops it). *out is lcp_malloc'ed and owned by the caller (lcp_free). On
 * error *out is NULL and *out_len 0. Errors: LCP_ERR_INVAL (a non-zero count
 * with a NULL array, dtype outside the enum), LCP_ERR_RANGE, LCP_ERR_NOMEM. */
lcp_err lcp_qlor_serialize_v1(const struct lcp_qlor *m, uint8_t **out, size_t *out_len);
/* v1 bytes followed by the lcpfs extension (extra, length, checksum), always
 * appended, also when extra is NULL. Ownership and errors as
 * lcp_qlor_serialize_v1. */
lcp_err lcp_qlor_serialize(const struct lcp_qlor *m, uint8_t **out, size_t *out_len);
/*
 * Parses a block (v1, optionally followed by the extension). Never reads
 * outside buf[0..len). *consumed (if non-NULL) receives the bytes used, so
 * blocks can be concatenated. Errors: LCP_ERR_TRUNCATED, LCP_ERR_FORMAT (bad
 * magic, dtype, counts), LCP_ERR_VERSION, LCP_ERR_CHECKSUM (extension).
 * On error *m is left in the lcp_qlor_init(…, 0, 4, 16) state, owning nothing.
 * *m need not be initialised on entry; anything it owned is not released.
 * A count that points past the end of buf gives LCP_ERR_TRUNCATED, checked
 * before anything is allocated. has_zero_points must be 0 or 1 (the seed
 * writes nothing else). Field values are not range-checked (the seed's
 * default block has original_size 0): use lcp_qlor_is_valid for that.
 * Thread-safe (touches only its arguments).
 */
lcp_err lcp_qlor_parse(const uint8_t *buf, size_t len, struct lcp_qlor *m, size_t *consumed);

#endif
