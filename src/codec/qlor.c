/* SPDX-License-Identifier: Apache-2.0 */
/*
 * QLOR metadata block: the seed's v1 encoding, bit for bit, plus the lcpfs
 * extension that carries `extra`, a total length and a checksum (layout in
 * include/lcpfs/qlor.h).
 *
 * The parser reads through a bounds-checked cursor and checks every count
 * against the bytes that remain before allocating, so a damaged count can
 * neither read past the end nor ask for gigabytes. Parsed arrays are built in
 * locals and handed to the caller only on success, so every error path frees
 * exactly what it allocated and leaves the caller's struct owning nothing.
 */
#include "lcpfs/qlor.h"

#include <stdint.h>
#include <string.h>

#include "common/alloc.h"
#include "common/checksum.h"
#include "common/le.h"

static const uint8_t v1_magic[4] = {'Q', 'L', 'O', 'R'};
static const uint8_t ext_magic[3] = {'Q', 'L', 'X'};

#define V1_VERSION 1
#define EXT_VERSION 1
#define EXT_FLAG_EXTRA 0x01u
/* magic 3 + version 1 + ext_len 4 + flags 1 + extra_len 4 + xxh3 8 */
#define EXT_FIXED_BYTES 21u
/* Everything of v1 except the arrays and the optional zero-point count. */
#define V1_FIXED_BYTES (4u + 1 + 8 + 1 + 2 + 1 + 2 + 4 + 1 + 8 + 8)
_Static_assert(V1_FIXED_BYTES == 40, "v1 fixed part: the golden v1_default block is 40 bytes");

void lcp_qlor_init(struct lcp_qlor *m, uint64_t original_size, uint8_t bits, uint16_t rank)
{
	memset(m, 0, sizeof *m);
	m->original_size = original_size;
	m->bits = bits;
	m->rank = rank;
	m->dtype = LCP_DTYPE_F32;
}

void lcp_qlor_free(struct lcp_qlor *m)
{
	lcp_free(m->dims);
	lcp_free(m->scales);
	lcp_free(m->zero_points);
	lcp_free(m->extra);
	lcp_qlor_init(m, 0, 4, 16);
}

double lcp_qlor_compression_ratio(const struct lcp_qlor *m, uint64_t compressed_size)
{
	if (compressed_size == 0)
		return 0.0;
	return (double)m->original_size / (double)compressed_size;
}

double lcp_qlor_expected_ratio(const struct lcp_qlor *m)
{
	/* The seed would divide by zero here (giving inf); bits 0 marks a
	 * lossless tensor in lcpfs, for which no ratio is expected. */
	if (m->bits == 0)
		return 0.0;
	return (double)lcp_dtype_bits(m->dtype) / (double)m->bits * 0.85;
}

bool lcp_qlor_is_valid(const struct lcp_qlor *m)
{
	uint64_t total;

	if (m->original_size == 0)
		return false;
	if (m->bits != 4 && m->bits != 8)
		return false;
	if (m->rank == 0 || m->rank > 1024)
		return false;
	if (m->nscales == 0 || !m->scales)
		return false;
	if (m->ndims == 0)
		return true;
	if (!m->dims)
		return false;
	/* The seed multiplies without overflow checks; a product that does not
	 * fit cannot equal original_size, so overflow means invalid. */
	total = lcp_dtype_bits(m->dtype) / 8;
	for (uint16_t i = 0; i < m->ndims; i++) {
		if (m->dims[i] != 0 && total > UINT64_MAX / m->dims[i])
			return false;
		total *= m->dims[i];
	}
	return total == m->original_size;
}

/* Bytes of the v1 encoding of m, or LCP_ERR_INVAL for a struct that cannot
 * be encoded (arrays missing for non-zero counts, dtype outside the enum). */
static lcp_err v1_size(const struct lcp_qlor *m, size_t *out)
{
	uint64_t n = V1_FIXED_BYTES;
	enum lcp_dtype dt;

	if ((m->ndims && !m->dims) || (m->nscales && !m->scales) ||
	    (m->has_zero_points && m->nzero_points && !m->zero_points))
		return LCP_ERR_INVAL;
	if ((unsigned)m->dtype > UINT8_MAX || !lcp_dtype_from_u8((uint8_t)m->dtype, &dt))
		return LCP_ERR_INVAL;
	n += (uint64_t)m->ndims * 4 + (uint64_t)m->nscales * 4;
	if (m->has_zero_points)
		n += 4 + (uint64_t)m->nzero_points;
	if (n > SIZE_MAX)
		return LCP_ERR_RANGE;
	*out = (size_t)n;
	return LCP_OK;
}

static uint8_t *put(uint8_t *p, const void *src, size_t n)
{
	memcpy(p, src, n);
	return p + n;
}

/* Writes the v1 bytes (exactly v1_size bytes) to p; returns the end. */
static uint8_t *write_v1(const struct lcp_qlor *m, uint8_t *p)
{
	p = put(p, v1_magic, sizeof v1_magic);
	*p++ = V1_VERSION;
	lcp_store_le64(p, m->original_size);
	p += 8;
	*p++ = m->bits;
	lcp_store_le16(p, m->rank);
	p += 2;
	*p++ = (uint8_t)m->dtype;
	lcp_store_le16(p, m->ndims);
	p += 2;
	for (uint16_t i = 0; i < m->ndims; i++, p += 4)
		lcp_store_le32(p, m->dims[i]);
	lcp_store_le32(p, m->nscales);
	p += 4;
	for (uint32_t i = 0; i < m->nscales; i++, p += 4)
		lcp_store_lef32(p, m->scales[i]);
	if (m->has_zero_points) {
		*p++ = 1;
		lcp_store_le32(p, m->nzero_points);
		p += 4;
		for (uint32_t i = 0; i < m->nzero_points; i++)
			*p++ = (uint8_t)m->zero_points[i];
	} else {
		*p++ = 0;
	}
	lcp_store_le64(p, m->original_checksum);
	p += 8;
	lcp_store_le64(p, m->timestamp);
	return p + 8;
}

lcp_err lcp_qlor_serialize_v1(const struct lcp_qlor *m, uint8_t **out, size_t *out_len)
{
	size_t n;
	uint8_t *buf;
	lcp_err err;

	*out = NULL;
	*out_len = 0;
	err = v1_size(m, &n);
	if (err != LCP_OK)
		return err;
	buf = lcp_malloc(n);
	if (!buf)
		return LCP_ERR_NOMEM;
	write_v1(m, buf);
	*out = buf;
	*out_len = n;
	return LCP_OK;
}

lcp_err lcp_qlor_serialize(const struct lcp_qlor *m, uint8_t **out, size_t *out_len)
{
	size_t v1, extra_len = 0, total;
	uint8_t *buf, *p;
	lcp_err err;

	*out = NULL;
	*out_len = 0;
	err = v1_size(m, &v1);
	if (err != LCP_OK)
		return err;
	if (m->extra)
		extra_len = strlen(m->extra);
	if (extra_len > UINT32_MAX - EXT_FIXED_BYTES || v1 > SIZE_MAX - EXT_FIXED_BYTES - extra_len)
		return LCP_ERR_RANGE;
	total = v1 + EXT_FIXED_BYTES + extra_len;
	buf = lcp_malloc(total);
	if (!buf)
		return LCP_ERR_NOMEM;
	p = write_v1(m, buf);
	p = put(p, ext_magic, sizeof ext_magic);
	*p++ = EXT_VERSION;
	lcp_store_le32(p, (uint32_t)(EXT_FIXED_BYTES + extra_len));
	p += 4;
	*p++ = m->extra ? EXT_FLAG_EXTRA : 0;
	lcp_store_le32(p, (uint32_t)extra_len);
	p += 4;
	if (extra_len)
		p = put(p, m->extra, extra_len);
	lcp_store_le64(p, lcp_xxh3(buf, (size_t)(p - buf)));
	*out = buf;
	*out_len = total;
	return LCP_OK;
}

/* Allocates an array for count elements, or sets *out to NULL without
 * allocating when count is 0 (the struct's "empty" is NULL). The caller has
 * already checked that count elements fit in the remaining input, which
 * bounds count * size. */
static void *alloc_array(size_t count, size_t size, lcp_err *err)
{
	void *p;

	if (count == 0)
		return NULL;
	p = lcp_malloc(count * size);
	if (!p)
		*err = LCP_ERR_NOMEM;
	return p;
}

/*
 * Parses the extension that starts at c->pos (known to begin with the
 * extension magic). The checksum is verified before any field is
 * interpreted, so a damaged byte anywhere in the block reports
 * LCP_ERR_CHECKSUM rather than a confusing field error.
 */
static lcp_err parse_ext(struct lcp_cursor *c, char **extra)
{
	size_t start = c->pos;
	const uint8_t *p;
	uint8_t version, flags;
	uint32_t ext_len, extra_len;
	uint64_t stored;

	*extra = NULL;
	if (!lcp_cursor_take(c, &p, sizeof ext_magic) || !lcp_cursor_u8(c, &version))
		return LCP_ERR_TRUNCATED;
	if (version != EXT_VERSION)
		return LCP_ERR_VERSION;
	if (!lcp_cursor_u32(c, &ext_len))
		return LCP_ERR_TRUNCATED;
	if (ext_len < EXT_FIXED_BYTES)
		return LCP_ERR_FORMAT;
	if (ext_len > c->len - start)
		return LCP_ERR_TRUNCATED;
	stored = lcp_load_le64(c->buf + start + ext_len - 8);
	if (lcp_xxh3(c->buf, start + ext_len - 8) != stored)
		return LCP_ERR_CHECKSUM;

	if (!lcp_cursor_u8(c, &flags) || !lcp_cursor_u32(c, &extra_len))
		return LCP_ERR_TRUNCATED;
	if ((flags & ~EXT_FLAG_EXTRA) != 0 || extra_len != ext_len - EXT_FIXED_BYTES ||
	    (!(flags & EXT_FLAG_EXTRA) && extra_len != 0))
		return LCP_ERR_FORMAT;
	if (!lcp_cursor_take(c, &p, extra_len))
		return LCP_ERR_TRUNCATED;
	/* extra is a C string: an embedded NUL would silently shorten it. */
	if (memchr(p, '\0', extra_len))
		return LCP_ERR_FORMAT;
	if (flags & EXT_FLAG_EXTRA) {
		char *s = lcp_malloc((size_t)extra_len + 1);
		if (!s)
			return LCP_ERR_NOMEM;
		memcpy(s, p, extra_len);
		s[extra_len] = '\0';
		*extra = s;
	}
	c->pos = start + ext_len;
	return LCP_OK;
}

lcp_err lcp_qlor_parse(const uint8_t *buf, size_t len, struct lcp_qlor *m, size_t *consumed)
{
	struct lcp_cursor c = {.buf = buf, .len = buf ? len : 0, .pos = 0};
	struct lcp_qlor r;
	const uint8_t *p;
	uint8_t version, dtype_byte, has_zp;
	lcp_err err = LCP_ERR_TRUNCATED;

	lcp_qlor_init(&r, 0, 4, 16);
	if (consumed)
		*consumed = 0;

	if (!lcp_cursor_take(&c, &p, sizeof v1_magic))
		goto fail;
	if (memcmp(p, v1_magic, sizeof v1_magic) != 0) {
		err = LCP_ERR_FORMAT;
		goto fail;
	}
	if (!lcp_cursor_u8(&c, &version))
		goto fail;
	if (version != V1_VERSION) {
		err = LCP_ERR_VERSION;
		goto fail;
	}
	if (!lcp_cursor_u64(&c, &r.original_size) || !lcp_cursor_u8(&c, &r.bits) ||
	    !lcp_cursor_u16(&c, &r.rank) || !lcp_cursor_u8(&c, &dtype_byte))
		goto fail;
	if (!lcp_dtype_from_u8(dtype_byte, &r.dtype)) {
		err = LCP_ERR_FORMAT;
		goto fail;
	}

	if (!lcp_cursor_u16(&c, &r.ndims) || !lcp_cursor_has(&c, (size_t)r.ndims * 4))
		goto fail;
	err = LCP_OK;
	r.dims = alloc_array(r.ndims, sizeof *r.dims, &err);
	if (err != LCP_OK)
		goto fail;
	/* The reads below cannot fail: lcp_cursor_has checked the whole array. */
	for (uint16_t i = 0; i < r.ndims; i++)
		lcp_cursor_u32(&c, &r.dims[i]);

	err = LCP_ERR_TRUNCATED;
	/* Divide rather than multiply: nscales * 4 may not fit in size_t. */
	if (!lcp_cursor_u32(&c, &r.nscales) || r.nscales > (c.len - c.pos) / 4)
		goto fail;
	err = LCP_OK;
	r.scales = alloc_array(r.nscales, sizeof *r.scales, &err);
	if (err != LCP_OK)
		goto fail;
	for (uint32_t i = 0; i < r.nscales; i++) {
		lcp_cursor_take(&c, &p, 4);
		r.scales[i] = lcp_load_lef32(p);
	}

	err = LCP_ERR_TRUNCATED;
	if (!lcp_cursor_u8(&c, &has_zp))
		goto fail;
	/* The seed writes only 0 or 1; anything else is damage. */
	if (has_zp > 1) {
		err = LCP_ERR_FORMAT;
		goto fail;
	}
	r.has_zero_points = has_zp;
	if (has_zp) {
		if (!lcp_cursor_u32(&c, &r.nzero_points) || r.nzero_points > c.len - c.pos)
			goto fail;
		err = LCP_OK;
		r.zero_points = alloc_array(r.nzero_points, 1, &err);
		if (err != LCP_OK)
			goto fail;
		lcp_cursor_take(&c, &p, r.nzero_points);
		if (r.nzero_points)
			memcpy(r.zero_points, p, r.nzero_points);
	}

	err = LCP_ERR_TRUNCATED;
	if (!lcp_cursor_u64(&c, &r.original_checksum) || !lcp_cursor_u64(&c, &r.timestamp))
		goto fail;

	if (lcp_cursor_has(&c, sizeof ext_magic) &&
	    memcmp(c.buf + c.pos, ext_magic, sizeof ext_magic) == 0) {
		err = parse_ext(&c, &r.extra);
		if (err != LCP_OK)
			goto fail;
	}

	*m = r;
	if (consumed)
		*consumed = c.pos;
	return LCP_OK;
fail:
	lcp_qlor_free(&r);
	*m = r;
	return err;
}
