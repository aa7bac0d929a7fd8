/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Sidecar and payload-header serialization. Every field is little-endian
 * through common/le.h and read through a bounds-checked cursor; the trailing
 * xxh3 is verified before any field is trusted, and every count is checked
 * against the bytes that remain before anything is allocated, so a damaged
 * sidecar gives LCP_ERR_CHECKSUM / FORMAT / TRUNCATED and never a crash.
 */
#include "store/sidecar.h"

#include <string.h>

#include "common/alloc.h"
#include "common/checksum.h"
#include "common/le.h"
#include "lcpfs/dtype.h"
#include "lcpfs/qlor.h"

#define SC_FIXED_LEN 108   /* magic through nregions */
#define SC_CHUNK_LEN LCP_SC_CHUNK_RECORD_BYTES
#define SC_REGION_MIN_LEN 25 /* kind..len, name_len, two string lengths */
#define SC_TRAILER_LEN 8
#define NO_DTYPE 0xff

void lcp_payload_header_build(const uint8_t file_id[LCP_FILE_ID_LEN],
			      uint8_t out[LCP_PAYLOAD_HEADER_LEN])
{
	memcpy(out, LCP_PAYLOAD_MAGIC, 8);
	lcp_store_le32(out + 8, LCP_CONTAINER_VERSION);
	lcp_store_le32(out + 12, LCP_PAYLOAD_HEADER_LEN);
	memcpy(out + 16, file_id, LCP_FILE_ID_LEN);
}

bool lcp_payload_header_check(const uint8_t *hdr, uint8_t file_id[LCP_FILE_ID_LEN])
{
	if (memcmp(hdr, LCP_PAYLOAD_MAGIC, 8) != 0 ||
	    lcp_load_le32(hdr + 8) != LCP_CONTAINER_VERSION ||
	    lcp_load_le32(hdr + 12) != LCP_PAYLOAD_HEADER_LEN)
		return false;
	memcpy(file_id, hdr + 16, LCP_FILE_ID_LEN);
	return true;
}

unsigned lcp_sc_unit_bytes(const struct lcp_sc_region *r)
{
	if (r->kind == LCP_REGION_TENSOR)
		return lcp_dtype_bytes((enum lcp_dtype)r->dtype);
	return 1;
}

static lcp_err put_str(struct lcp_buf *b, const char *s, size_t max, bool wide)
{
	size_t n = s ? strlen(s) : 0;
	lcp_err err;
	if (n > max)
		return LCP_ERR_RANGE;
	err = wide ? lcp_buf_append_le16(b, (uint16_t)n) : lcp_buf_append_u8(b, (uint8_t)n);
	if (err == LCP_OK)
		err = lcp_buf_append(b, s, n);
	return err;
}

static lcp_err put_chunks(struct lcp_buf *b, const struct lcp_sc_region *r)
{
	lcp_err err = lcp_buf_append_le32(b, r->nchunks);
	for (uint32_t i = 0; i < r->nchunks && err == LCP_OK; i++) {
		const struct lcp_sc_chunk *c = &r->chunks[i];
		err = lcp_buf_append_le64(b, c->begin);
		if (err == LCP_OK)
			err = lcp_buf_append_le64(b, c->end);
		if (err == LCP_OK)
			err = lcp_buf_append_le64(b, c->payload_off);
		if (err == LCP_OK)
			err = lcp_buf_append_le64(b, c->stored_len);
		if (err == LCP_OK)
			err = lcp_buf_append_le64(b, c->stored_xxh3);
		if (err == LCP_OK)
			err = lcp_buf_append_le64(b, c->output_xxh3);
	}
	return err;
}

static lcp_err put_region(struct lcp_buf *b, const struct lcp_sc_region *r)
{
	lcp_err err;
	uint8_t h[20];
	if (r->ndims > LCP_MAX_DIMS)
		return LCP_ERR_RANGE;
	h[0] = (uint8_t)r->kind;
	h[1] = r->dtype;
	h[2] = r->encoding;
	h[3] = (uint8_t)r->ndims;
	lcp_store_le64(h + 4, r->off);
	lcp_store_le64(h + 12, r->len);
	err = lcp_buf_append(b, h, sizeof h);
	if (err == LCP_OK)
		err = put_str(b, r->name, UINT16_MAX, true);
	if (err == LCP_OK)
		err = put_str(b, r->dtype_name, 15, false);
	if (err == LCP_OK)
		err = put_str(b, r->exact_reason, UINT8_MAX, false);
	for (uint32_t d = 0; d < r->ndims && err == LCP_OK; d++)
		err = lcp_buf_append_le64(b, r->dims[d]);
	if (err)
		return err;
	switch (r->kind) {
	case LCP_REGION_EXACT:
		return put_chunks(b, r);
	case LCP_REGION_TENSOR:
		err = lcp_buf_append_u8(b, r->bits);
		if (err == LCP_OK)
			err = lcp_buf_append_u8(b, r->symmetric ? 1 : 0);
		if (err == LCP_OK)
			err = lcp_buf_append_le16(b, r->rank);
		if (err == LCP_OK)
			err = lcp_buf_append_le32(b, r->group_size);
		if (err == LCP_OK)
			err = lcp_buf_append_lef64(b, r->cosine);
		if (err == LCP_OK)
			err = lcp_buf_append_lef64(b, r->sqnr_db);
		if (err == LCP_OK)
			err = lcp_buf_append_le64(b, r->stored_bytes);
		if (err == LCP_OK)
			err = lcp_buf_append_le32(b, r->params_len);
		if (err == LCP_OK)
			err = lcp_buf_append(b, r->params, r->params_len);
		if (err == LCP_OK)
			err = lcp_buf_append_le32(b, r->qlor_len);
		if (err == LCP_OK)
			err = lcp_buf_append(b, r->qlor, r->qlor_len);
		if (err == LCP_OK)
			err = put_chunks(b, r);
		return err;
	case LCP_REGION_CRC32:
		err = lcp_buf_append_le32(b, r->crc_of);
		if (err == LCP_OK)
			err = lcp_buf_append_le32(b, r->crc_value);
		return err;
	}
	return LCP_ERR_INVAL;
}

lcp_err lcp_sidecar_serialize(const struct lcp_sidecar *sc, struct lcp_buf *out)
{
	uint8_t h[SC_FIXED_LEN];
	size_t start = out->len;
	lcp_err err;

	memset(h, 0, sizeof h);
	memcpy(h, LCP_SIDECAR_MAGIC, 8);
	lcp_store_le32(h + 8, LCP_CONTAINER_VERSION);
	lcp_store_le32(h + 12, 0);
	/* h + 16: total length, patched below */
	memcpy(h + 24, sc->file_id, LCP_FILE_ID_LEN);
	lcp_store_le64(h + 40, sc->payload_size);
	lcp_store_le64(h + 48, sc->payload_header_xxh3);
	lcp_store_le64(h + 56, sc->logical_size);
	lcp_store_le64(h + 64, sc->original_xxh3);
	h[72] = (uint8_t)sc->format;
	h[73] = sc->config.bits;
	h[74] = sc->config.symmetric ? 1 : 0;
	h[75] = sc->config.lossless ? 1 : 0;
	lcp_store_le16(h + 76, sc->config.rank);
	lcp_store_le32(h + 80, sc->config.group_size);
	lcp_store_lef32(h + 84, sc->config.quality_threshold);
	lcp_store_le64(h + 88, sc->config.min_size);
	lcp_store_le64(h + 96, sc->config.max_size);
	lcp_store_le32(h + 104, sc->nregions);
	err = lcp_buf_append(out, h, sizeof h);
	for (uint32_t i = 0; i < sc->nregions && err == LCP_OK; i++)
		err = put_region(out, &sc->regions[i]);
	if (err == LCP_OK)
		err = lcp_buf_reserve(out, SC_TRAILER_LEN);
	if (err) {
		out->len = start;
		return err;
	}
	lcp_store_le64(out->data + start + 16, (uint64_t)(out->len - start + SC_TRAILER_LEN));
	return lcp_buf_append_le64(out, lcp_xxh3(out->data + start, out->len - start));
}

static void region_free(struct lcp_sc_region *r)
{
	lcp_free(r->name);
	lcp_free(r->exact_reason);
	lcp_free(r->params);
	lcp_free(r->qlor);
	lcp_free(r->chunks);
	memset(r, 0, sizeof *r);
}

void lcp_sidecar_free(struct lcp_sidecar *sc)
{
	for (uint32_t i = 0; i < sc->nregions; i++)
		region_free(&sc->regions[i]);
	lcp_free(sc->regions);
	memset(sc, 0, sizeof *sc);
}

/* A length-prefixed string: NULL when empty; no NUL byte allowed inside. */
static lcp_err get_str(struct lcp_cursor *c, bool wide, char **out)
{
	const uint8_t *p;
	size_t n;
	if (wide) {
		uint16_t v;
		if (!lcp_cursor_u16(c, &v))
			return LCP_ERR_TRUNCATED;
		n = v;
	} else {
		uint8_t v;
		if (!lcp_cursor_u8(c, &v))
			return LCP_ERR_TRUNCATED;
		n = v;
	}
	if (!lcp_cursor_take(c, &p, n))
		return LCP_ERR_TRUNCATED;
	*out = NULL;
	if (n == 0)
		return LCP_OK;
	if (memchr(p, 0, n))
		return LCP_ERR_FORMAT;
	*out = lcp_malloc(n + 1);
	if (!*out)
		return LCP_ERR_NOMEM;
	memcpy(*out, p, n);
	(*out)[n] = 0;
	return LCP_OK;
}

static lcp_err get_blob(struct lcp_cursor *c, uint8_t **out, uint32_t *out_len)
{
	const uint8_t *p;
	uint32_t n;
	if (!lcp_cursor_u32(c, &n) || !lcp_cursor_take(c, &p, n))
		return LCP_ERR_TRUNCATED;
	*out_len = n;
	*out = lcp_malloc(n ? n : 1);
	if (!*out)
		return LCP_ERR_NOMEM;
	memcpy(*out, p, n);
	return LCP_OK;
}

/* Chunks must tile [0, units) of the region in order, and their stored bytes
 * must lie inside the payload after its header. */
static lcp_err get_chunks(struct lcp_cursor *c, struct lcp_sc_region *r, uint64_t payload_size)
{
	uint32_t n;
	uint64_t unit = lcp_sc_unit_bytes(r), expect = 0;
	if (!lcp_cursor_u32(c, &n))
		return LCP_ERR_TRUNCATED;
	if (!lcp_cursor_has(c, (size_t)n * SC_CHUNK_LEN))
		return LCP_ERR_TRUNCATED;
	if (unit == 0 || r->len % unit)
		return LCP_ERR_FORMAT;
	if ((n == 0) != (r->len == 0))
		return LCP_ERR_FORMAT;
	r->chunks = lcp_calloc(n ? n : 1, sizeof *r->chunks);
	if (!r->chunks)
		return LCP_ERR_NOMEM;
	r->nchunks = n;
	for (uint32_t i = 0; i < n; i++) {
		struct lcp_sc_chunk *k = &r->chunks[i];
		lcp_cursor_u64(c, &k->begin);
		lcp_cursor_u64(c, &k->end);
		lcp_cursor_u64(c, &k->payload_off);
		lcp_cursor_u64(c, &k->stored_len);
		lcp_cursor_u64(c, &k->stored_xxh3);
		lcp_cursor_u64(c, &k->output_xxh3);
		if (k->begin != expect || k->end <= k->begin ||
		    k->end - k->begin > LCP_MAX_CHUNK_OUT_BYTES / unit)
			return LCP_ERR_FORMAT;
		if (k->payload_off < LCP_PAYLOAD_HEADER_LEN || k->payload_off > payload_size ||
		    k->stored_len > payload_size - k->payload_off ||
		    k->stored_len > 2 * (uint64_t)LCP_MAX_CHUNK_OUT_BYTES)
			return LCP_ERR_FORMAT;
		expect = k->end;
	}
	if (expect != r->len / unit)
		return LCP_ERR_FORMAT;
	return LCP_OK;
}

static lcp_err get_region(struct lcp_cursor *c, struct lcp_sc_region *r, uint64_t payload_size)
{
	const uint8_t *h;
	char *dn = NULL;
	lcp_err err;

	if (!lcp_cursor_take(c, &h, 20))
		return LCP_ERR_TRUNCATED;
	if (h[0] > LCP_REGION_CRC32 || h[3] > LCP_MAX_DIMS)
		return LCP_ERR_FORMAT;
	r->kind = (enum lcp_region_kind)h[0];
	r->dtype = h[1];
	r->encoding = h[2];
	r->ndims = h[3];
	r->off = lcp_load_le64(h + 4);
	r->len = lcp_load_le64(h + 12);
	if ((err = get_str(c, true, &r->name)) != LCP_OK)
		return err;
	if ((err = get_str(c, false, &dn)) != LCP_OK)
		return err;
	if (dn && strlen(dn) > 15) {
		lcp_free(dn);
		return LCP_ERR_FORMAT;
	}
	if (dn)
		strcpy(r->dtype_name, dn);
	lcp_free(dn);
	if ((err = get_str(c, false, &r->exact_reason)) != LCP_OK)
		return err;
	for (uint32_t d = 0; d < r->ndims; d++)
		if (!lcp_cursor_u64(c, &r->dims[d]))
			return LCP_ERR_TRUNCATED;
	switch (r->kind) {
	case LCP_REGION_EXACT:
		if (r->encoding != 0)
			return LCP_ERR_FORMAT;
		return get_chunks(c, r, payload_size);
	case LCP_REGION_TENSOR: {
		const uint8_t *t;
		enum lcp_dtype dt;
		struct lcp_qlor q;
		size_t used = 0;
		if (!lcp_dtype_from_u8(r->dtype, &dt) || r->encoding < LCP_ENC_Q4 ||
		    r->encoding > LCP_ENC_LOSSLESS || !r->name)
			return LCP_ERR_FORMAT;
		if (!lcp_cursor_take(c, &t, 32))
			return LCP_ERR_TRUNCATED;
		r->bits = t[0];
		if (t[1] > 1)
			return LCP_ERR_FORMAT;
		r->symmetric = t[1] == 1;
		r->rank = lcp_load_le16(t + 2);
		r->group_size = lcp_load_le32(t + 4);
		r->cosine = lcp_load_lef64(t + 8);
		r->sqnr_db = lcp_load_lef64(t + 16);
		r->stored_bytes = lcp_load_le64(t + 24);
		if ((err = get_blob(c, &r->params, &r->params_len)) != LCP_OK)
			return err;
		if ((err = get_blob(c, &r->qlor, &r->qlor_len)) != LCP_OK)
			return err;
		err = lcp_qlor_parse(r->qlor, r->qlor_len, &q, &used);
		if (err)
			return err == LCP_ERR_NOMEM ? err : LCP_ERR_FORMAT;
		lcp_qlor_free(&q);
		if (used != r->qlor_len)
			return LCP_ERR_FORMAT;
		return get_chunks(c, r, payload_size);
	}
	case LCP_REGION_CRC32:
		if (!lcp_cursor_u32(c, &r->crc_of) || !lcp_cursor_u32(c, &r->crc_value))
			return LCP_ERR_TRUNCATED;
		if (r->len != 4 || r->encoding != 0)
			return LCP_ERR_FORMAT;
		return LCP_OK;
	}
	return LCP_ERR_FORMAT;
}

lcp_err lcp_sidecar_parse(const uint8_t *buf, size_t len, struct lcp_sidecar *sc)
{
	struct lcp_cursor c;
	uint64_t total, expect_off = 0;
	uint32_t n;
	lcp_err err = LCP_OK;

	memset(sc, 0, sizeof *sc);
	if (len < SC_FIXED_LEN + SC_TRAILER_LEN)
		return len >= 8 && memcmp(buf, LCP_SIDECAR_MAGIC, 8) != 0 ? LCP_ERR_FORMAT
									 : LCP_ERR_TRUNCATED;
	if (memcmp(buf, LCP_SIDECAR_MAGIC, 8) != 0)
		return LCP_ERR_FORMAT;
	total = lcp_load_le64(buf + 16);
	if (total != len)
		return total > len ? LCP_ERR_TRUNCATED : LCP_ERR_FORMAT;
	if (lcp_load_le64(buf + len - SC_TRAILER_LEN) != lcp_xxh3(buf, len - SC_TRAILER_LEN))
		return LCP_ERR_CHECKSUM;
	if (lcp_load_le32(buf + 8) != LCP_CONTAINER_VERSION)
		return LCP_ERR_VERSION;
	if (lcp_load_le32(buf + 12) != 0 || buf[72] > LCP_FORMAT_UNKNOWN || buf[74] > 1 ||
	    buf[75] > 1 || lcp_load_le16(buf + 78) != 0)
		return LCP_ERR_FORMAT;
	memcpy(sc->file_id, buf + 24, LCP_FILE_ID_LEN);
	sc->payload_size = lcp_load_le64(buf + 40);
	sc->payload_header_xxh3 = lcp_load_le64(buf + 48);
	sc->logical_size = lcp_load_le64(buf + 56);
	sc->original_xxh3 = lcp_load_le64(buf + 64);
	sc->format = (enum lcp_format)buf[72];
	sc->config.bits = buf[73];
	sc->config.symmetric = buf[74] == 1;
	sc->config.lossless = buf[75] == 1;
	sc->config.rank = lcp_load_le16(buf + 76);
	sc->config.group_size = lcp_load_le32(buf + 80);
	sc->config.quality_threshold = lcp_load_lef32(buf + 84);
	sc->config.min_size = lcp_load_le64(buf + 88);
	sc->config.max_size = lcp_load_le64(buf + 96);
	n = lcp_load_le32(buf + 104);
	if (sc->payload_size < LCP_PAYLOAD_HEADER_LEN)
		return LCP_ERR_FORMAT;
	c.buf = buf;
	c.len = len - SC_TRAILER_LEN;
	c.pos = SC_FIXED_LEN;
	if (n > (c.len - c.pos) / SC_REGION_MIN_LEN)
		return LCP_ERR_FORMAT;
	sc->regions = lcp_calloc(n ? n : 1, sizeof *sc->regions);
	if (!sc->regions)
		return LCP_ERR_NOMEM;
	sc->nregions = n;
	for (uint32_t i = 0; i < n && err == LCP_OK; i++) {
		struct lcp_sc_region *r = &sc->regions[i];
		err = get_region(&c, r, sc->payload_size);
		if (err == LCP_OK && (r->off != expect_off || r->len > UINT64_MAX - r->off))
			err = LCP_ERR_FORMAT;
		expect_off = r->off + r->len;
	}
	if (err == LCP_OK && (expect_off != sc->logical_size || c.pos != c.len))
		err = LCP_ERR_FORMAT;
	for (uint32_t i = 0; i < n && err == LCP_OK; i++) {
		const struct lcp_sc_region *r = &sc->regions[i];
		if (r->kind == LCP_REGION_CRC32 &&
		    (r->crc_of >= n || sc->regions[r->crc_of].kind == LCP_REGION_CRC32))
			err = LCP_ERR_FORMAT;
	}
	if (err)
		lcp_sidecar_free(sc);
	return err;
}
