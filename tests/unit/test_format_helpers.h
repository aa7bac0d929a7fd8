/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Shared helpers for the tests/unit/test_format_*.c suites: parse a buffer
 * and assert the region-map invariants every map must meet (regions ordered,
 * contiguous, non-empty, covering [0, size) exactly; a failed map is one
 * EXACT region; CRC32 regions are 4 bytes and point at a TENSOR), and small
 * byte-level builders for the formats. The expected values in the tests are
 * written out by hand from the format specs, never computed by the parser.
 */
#ifndef LCPFS_TEST_FORMAT_HELPERS_H
#define LCPFS_TEST_FORMAT_HELPERS_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "common/buf.h"
#include "common/checksum.h"
#include "common/le.h"
#include "lcpfs/format.h"

static inline void fmt_check_invariants(const struct lcp_region_map *m, uint64_t size)
{
	cr_assert_eq(m->file_size, size);
	uint64_t at = 0;
	for (size_t i = 0; i < m->nregions; i++) {
		const struct lcp_region *r = &m->regions[i];
		cr_assert_eq(r->off, at, "region %zu starts at %llu, expected %llu", i,
			     (unsigned long long)r->off, (unsigned long long)at);
		cr_assert_gt(r->len, 0, "region %zu is empty", i);
		cr_assert_leq(r->len, size - r->off);
		if (r->kind == LCP_REGION_CRC32) {
			cr_assert_eq(r->len, 4);
			cr_assert_lt(r->crc_of, m->nregions);
			cr_assert_eq(m->regions[r->crc_of].kind, LCP_REGION_TENSOR);
		} else if (r->kind == LCP_REGION_TENSOR) {
			cr_assert_geq(r->ndims, 2);
			cr_assert_leq(r->ndims, LCP_MAX_DIMS);
			/* element widths written out here (dtype.h numbering) */
			static const uint64_t width[] = {4, 2, 2, 8, 1, 1};
			cr_assert_lt((unsigned)r->dtype, 4u, "TENSOR regions are F32/F16/BF16/F64");
			uint64_t n = width[r->dtype];
			for (uint32_t d = 0; d < r->ndims; d++)
				n *= r->dims[d];
			cr_assert_eq(n, r->len, "tensor region %zu: shape does not match its length", i);
		} else {
			cr_assert_eq(r->kind, LCP_REGION_EXACT);
		}
		at += r->len;
	}
	cr_assert_eq(at, size, "regions cover %llu of %llu bytes", (unsigned long long)at,
		     (unsigned long long)size);
	if (!m->ok) {
		cr_assert_neq(m->reason[0], '\0', "a failed map must say why");
		cr_assert_eq(m->nregions, size ? 1u : 0u);
	}
}

/* Parses data and checks the invariants; the caller frees *m. */
static inline void fmt_parse_buf(const void *data, size_t len, uint64_t min_size, struct lcp_region_map *m)
{
	struct lcp_mem_source src = {data, len};
	struct lcp_reader r;
	lcp_reader_from_memory(&r, &src);
	cr_assert_eq(lcp_format_parse(&r, min_size, m), LCP_OK);
	fmt_check_invariants(m, len);
}

/* Parses and expects a validation failure whose reason contains needle. */
static inline void fmt_expect_invalid(const void *data, size_t len, enum lcp_format format, const char *needle)
{
	struct lcp_region_map m;
	fmt_parse_buf(data, len, 0, &m);
	cr_expect_not(m.ok, "expected failure containing '%s'", needle);
	cr_expect_eq(m.format, format, "format %s, expected %s", lcp_format_name(m.format),
		     lcp_format_name(format));
	cr_expect(strstr(m.reason, needle) != NULL, "reason '%s' lacks '%s'", m.reason, needle);
	lcp_region_map_free(&m);
}

/* Every proper prefix of a valid file must fail validation, never crash. */
static inline void fmt_expect_truncations_rejected(const uint8_t *data, size_t len)
{
	for (size_t n = 0; n < len; n++) {
		struct lcp_region_map m;
		fmt_parse_buf(data, n, 0, &m);
		cr_expect_not(m.ok, "prefix of %zu/%zu bytes accepted as %s", n, len, lcp_format_name(m.format));
		lcp_region_map_free(&m);
	}
}

static inline void fmt_append(struct lcp_buf *b, const void *p, size_t n)
{
	cr_assert_eq(lcp_buf_append(b, p, n), LCP_OK);
}

static inline void fmt_append_str(struct lcp_buf *b, const char *s)
{
	fmt_append(b, s, strlen(s));
}

static inline void fmt_append_fill(struct lcp_buf *b, size_t n, uint8_t v)
{
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(lcp_buf_append_u8(b, v), LCP_OK);
}

/* safetensors: u64 length, the JSON as given, then data_len bytes. */
static inline void fmt_build_st(struct lcp_buf *b, const char *json, size_t data_len)
{
	cr_assert_eq(lcp_buf_append_le64(b, strlen(json)), LCP_OK);
	fmt_append_str(b, json);
	for (size_t i = 0; i < data_len; i++)
		cr_assert_eq(lcp_buf_append_u8(b, (uint8_t)(i * 7 + 1)), LCP_OK);
}

struct fmt_zip_entry {
	const char *name;
	const void *data;
	size_t len;
	uint16_t method;          /* 0 stored; the data is written as given */
};

/* Offsets the builder used, for tests that check CRC field positions. */
struct fmt_zip_layout {
	uint64_t lho[8];
	uint64_t data_off[8];
	uint64_t cdh[8];
	uint64_t dd[8];           /* data descriptor offset when descriptor */
};

/*
 * A zip as torch.save writes one: local headers (flag bit 3 and a data
 * descriptor with signature when descriptor is set, CRC and sizes zero in the
 * local header then), central directory, and optionally the zip64 end of
 * central directory record and locator before the classic record.
 */
static inline void fmt_build_zip(struct lcp_buf *b, const struct fmt_zip_entry *e, size_t n, bool descriptor,
				 bool zip64, struct fmt_zip_layout *lay)
{
	struct fmt_zip_layout dummy;
	if (!lay)
		lay = &dummy;
	cr_assert_leq(n, 8);
	uint16_t flags = descriptor ? 8 : 0;
	for (size_t i = 0; i < n; i++) {
		uint32_t crc = lcp_crc32(0, e[i].data, e[i].len);
		lay->lho[i] = b->len;
		lcp_buf_append_le32(b, 0x04034b50u);
		lcp_buf_append_le16(b, 20);
		lcp_buf_append_le16(b, flags);
		lcp_buf_append_le16(b, e[i].method);
		lcp_buf_append_le32(b, 0); /* time, date */
		lcp_buf_append_le32(b, descriptor ? 0 : crc);
		lcp_buf_append_le32(b, descriptor ? 0 : (uint32_t)e[i].len);
		lcp_buf_append_le32(b, descriptor ? 0 : (uint32_t)e[i].len);
		lcp_buf_append_le16(b, (uint16_t)strlen(e[i].name));
		lcp_buf_append_le16(b, 0);
		fmt_append_str(b, e[i].name);
		lay->data_off[i] = b->len;
		fmt_append(b, e[i].data, e[i].len);
		if (descriptor) {
			lay->dd[i] = b->len;
			lcp_buf_append_le32(b, 0x08074b50u);
			lcp_buf_append_le32(b, crc);
			lcp_buf_append_le32(b, (uint32_t)e[i].len);
			lcp_buf_append_le32(b, (uint32_t)e[i].len);
		}
	}
	uint64_t cd = b->len;
	for (size_t i = 0; i < n; i++) {
		lay->cdh[i] = b->len;
		lcp_buf_append_le32(b, 0x02014b50u);
		lcp_buf_append_le16(b, 20);
		lcp_buf_append_le16(b, 20);
		lcp_buf_append_le16(b, flags);
		lcp_buf_append_le16(b, e[i].method);
		lcp_buf_append_le32(b, 0);
		lcp_buf_append_le32(b, lcp_crc32(0, e[i].data, e[i].len));
		lcp_buf_append_le32(b, (uint32_t)e[i].len);
		lcp_buf_append_le32(b, (uint32_t)e[i].len);
		lcp_buf_append_le16(b, (uint16_t)strlen(e[i].name));
		lcp_buf_append_le16(b, 0);
		lcp_buf_append_le16(b, 0);
		lcp_buf_append_le16(b, 0);
		lcp_buf_append_le16(b, 0);
		lcp_buf_append_le32(b, 0);
		lcp_buf_append_le32(b, (uint32_t)lay->lho[i]);
		fmt_append_str(b, e[i].name);
	}
	uint64_t cd_size = b->len - cd;
	if (zip64) {
		uint64_t z64 = b->len;
		lcp_buf_append_le32(b, 0x06064b50u);
		lcp_buf_append_le64(b, 44);
		lcp_buf_append_le16(b, 45);
		lcp_buf_append_le16(b, 45);
		lcp_buf_append_le32(b, 0);
		lcp_buf_append_le32(b, 0);
		lcp_buf_append_le64(b, n);
		lcp_buf_append_le64(b, n);
		lcp_buf_append_le64(b, cd_size);
		lcp_buf_append_le64(b, cd);
		lcp_buf_append_le32(b, 0x07064b50u);
		lcp_buf_append_le32(b, 0);
		lcp_buf_append_le64(b, z64);
		lcp_buf_append_le32(b, 1);
	}
	lcp_buf_append_le32(b, 0x06054b50u);
	lcp_buf_append_le16(b, 0);
	lcp_buf_append_le16(b, 0);
	lcp_buf_append_le16(b, (uint16_t)n);
	lcp_buf_append_le16(b, (uint16_t)n);
	lcp_buf_append_le32(b, (uint32_t)cd_size);
	lcp_buf_append_le32(b, (uint32_t)cd);
	lcp_buf_append_le16(b, 0);
}

/* The smallest torch data.pkl: protocol 2, an empty dict, STOP. */
static const uint8_t fmt_empty_pickle[] = {0x80, 0x02, '}', 'q', 0x00, '.'};

#endif
