/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rANS streams and planes as stored (stream.h, layouts in codec_format.h).
 */
#include "codec/stream.h"

#include <stdlib.h>
#include <string.h>

#include "codec/codec_format.h"
#include "common/le.h"

unsigned lcp_stream_lanes(uint64_t m, uint32_t block_elems)
{
	uint64_t per_block = m < block_elems ? m : block_elems;
	unsigned lanes = LCP_RANS_MAX_LANES;
	while (lanes > 1 && (uint64_t)lanes * LANE_MIN_SYMBOLS > per_block)
		lanes /= 2;
	return lanes;
}

/* The histogram of p[0, m) into hist, counted in four interleaved tables:
 * runs of one value (most codes are near zero) would make each increment
 * wait for the previous one. Four named tables, not an array of them
 * indexed in an inner loop: GCC -O2 compiles that one about twice as slow
 * (0.65 against 0.31-0.38 ns per byte, exponent, mantissa and code
 * planes). m < 2^32. */
static void count_bytes(const uint8_t *p, uint64_t m, uint64_t hist[256])
{
	uint32_t h0[256] = {0}, h1[256] = {0}, h2[256] = {0}, h3[256] = {0};
	uint64_t i = 0;
	for (; i + 4 <= m; i += 4) {
		h0[p[i]]++;
		h1[p[i + 1]]++;
		h2[p[i + 2]]++;
		h3[p[i + 3]]++;
	}
	for (; i < m; i++)
		h0[p[i]]++;
	for (unsigned v = 0; v < 256; v++)
		hist[v] = (uint64_t)h0[v] + h1[v] + h2[v] + h3[v];
}

/* Appends the stream of sym[0, m) with table freq: lanes, table, block
 * lengths, then each block coded by e (rANS) or, if set, ae (alias). */
static lcp_err put_blocks(struct lcp_buf *b, const uint16_t freq[256], const uint8_t *sym,
			  uint64_t m, uint32_t block_elems, unsigned lanes, const struct lcp_rans_enc *e,
			  const struct lcp_rans_alias_enc *ae)
{
	unsigned lg = 0;
	while ((1u << lg) < lanes)
		lg++;
	uint64_t nblocks = (m + block_elems - 1) / block_elems;
	lcp_err err = lcp_buf_reserve(b, 1 + LCP_RANS_TABLE_MAX);
	if (!err) {
		b->data[b->len++] = (uint8_t)lg;
		b->len += lcp_rans_table_write(freq, b->data + b->len);
	}
	size_t lens_at = b->len;
	for (uint64_t k = 0; !err && k < nblocks; k++)
		err = lcp_buf_append_le32(b, 0);
	for (uint64_t k = 0; !err && k < nblocks; k++) {
		uint64_t beg = k * block_elems;
		uint32_t bn = (uint32_t)(m - beg < block_elems ? m - beg : block_elems);
		err = lcp_buf_reserve(b, ae ? lcp_rans_alias_block_bound(bn, lanes)
					    : lcp_rans_block_bound(bn, lanes));
		if (err)
			break;
		size_t len = ae ? lcp_rans_alias_encode(ae, sym + beg, bn, lanes, b->data + b->len)
				: lcp_rans_encode(e, sym + beg, bn, lanes, b->data + b->len);
		b->len += len;
		lcp_store_le32(b->data + lens_at + 4 * k, (uint32_t)len);
	}
	return err;
}

lcp_err lcp_stream_put_rans(struct lcp_buf *b, const uint8_t *sym, uint64_t m,
			    uint32_t block_elems, unsigned lanes, const uint64_t hist[256])
{
	uint64_t counted[256];
	uint16_t freq[256];
	struct lcp_rans_enc e;
	if (!hist) {
		count_bytes(sym, m, counted);
		hist = counted;
	}
	lcp_rans_normalize(hist, freq);
	lcp_rans_enc_init(&e, freq);
	return put_blocks(b, freq, sym, m, block_elems, lanes, &e, NULL);
}

/* The alias model of hist (rans.h): its most frequent symbols in
 * LCP_ALIAS_SYM_MIN .. LCP_ALIAS_SYM_MAX, at most LCP_ALIAS_BUCKETS - 1
 * (the lower symbol first among equals), the others as escapes (symbol
 * 0); false when that leaves fewer than one symbol to code directly. */
static bool alias_model(const uint64_t hist[256], uint16_t freq[256])
{
	uint64_t h[256] = {0}, esc = 0;
	bool taken[256] = {false};
	for (unsigned k = 0; k + 1 < LCP_ALIAS_BUCKETS; k++) {
		unsigned best = 0;
		for (unsigned v = LCP_ALIAS_SYM_MIN; v <= LCP_ALIAS_SYM_MAX; v++)
			if (!taken[v] && hist[v] > hist[best])
				best = v;
		if (best == 0 || hist[best] == 0)
			break;
		taken[best] = true;
		h[best] = hist[best];
	}
	unsigned direct = 0;
	for (unsigned v = 0; v < 256; v++) {
		direct += taken[v];
		esc += taken[v] ? 0 : hist[v];
	}
	if (direct == 0)
		return false;
	h[0] = esc;
	lcp_rans_normalize(h, freq);
	/* a lone direct symbol gets a neighbour of frequency 1 */
	return lcp_rans_alias_model(freq);
}

void lcp_stream_count(const uint8_t *sym, uint64_t m, uint64_t hist[256])
{
	count_bytes(sym, m, hist);
}

uint64_t lcp_stream_alias_cost_bytes(const uint64_t hist[256])
{
	uint16_t freq[256];
	if (!alias_model(hist, freq))
		return UINT64_MAX;
	uint64_t h[256], words = 0;
	for (unsigned s = 0; s < 256; s++) {
		bool direct = s != 0 && freq[s];
		h[s] = direct ? hist[s] : 0;
		words += direct ? 0 : hist[s];
	}
	h[0] = words;
	return lcp_stream_cost_bytes(h) + 2 * words;
}

lcp_err lcp_stream_put_alias(struct lcp_buf *b, const uint8_t *sym, uint64_t m,
			     uint32_t block_elems, unsigned lanes, const uint64_t hist[256])
{
	uint16_t freq[256];
	if (!alias_model(hist, freq))
		return LCP_ERR_INVAL;
	struct lcp_rans_alias_enc *e = malloc(sizeof *e); /* 12 KiB */
	if (!e)
		return LCP_ERR_NOMEM;
	lcp_rans_alias_enc_init(e, freq);
	lcp_err err = put_blocks(b, freq, sym, m, block_elems, lanes, NULL, e);
	free(e);
	return err;
}

/* rANS with 16 lanes is kept unless raw or zstd is smaller by more than 1
 * part in RANS_PREFERENCE: it decodes several times faster than zstd's
 * Huffman literals (zstd wins on repeated rows, as in embedding tables with
 * untrained tokens). With fewer lanes (chunks under 16K codes) it decodes in
 * scalar code, slower than zstd (1.5 against 0.5 ns per code), and its
 * table weighs more (a 256-symbol table is ~230 bytes): then it must be
 * smaller by that margin. */
#define RANS_PREFERENCE 50u

bool lcp_stream_prefer_rans(size_t rans_len, size_t alt_len, unsigned lanes)
{
	if (lanes < LCP_RANS_MAX_LANES)
		return (uint64_t)rans_len * (RANS_PREFERENCE + 1) <= (uint64_t)alt_len * RANS_PREFERENCE;
	return (uint64_t)rans_len * RANS_PREFERENCE <= (uint64_t)alt_len * (RANS_PREFERENCE + 1);
}

/* floor(65536 * log2(v)) for 1 <= v < 2^16, in integers (bit by bit, by
 * squaring the mantissa), so estimates are the same on every machine. */
static uint32_t log2_q16(uint32_t v)
{
	unsigned ip = 0;
	while (v >> (ip + 1))
		ip++;
	uint64_t x = (uint64_t)v << (31 - ip); /* [1, 2) in Q31 */
	uint32_t r = ip << 16;
	for (unsigned bit = 1u << 15; bit; bit >>= 1) {
		x = (x * x) >> 31;
		if (x >> 32) {
			x >>= 1;
			r |= bit;
		}
	}
	return r;
}

uint64_t lcp_stream_cost_bytes(const uint64_t hist[256])
{
	uint16_t freq[256];
	lcp_rans_normalize(hist, freq);
	uint64_t q16 = 0;
	for (unsigned s = 0; s < 256; s++)
		if (hist[s])
			q16 += hist[s] * (uint64_t)(log2_q16(LCP_RANS_SCALE) - log2_q16(freq[s]));
	return q16 >> 19; /* bits / 8 */
}

lcp_err lcp_stream_put_plane(struct lcp_buf *b, const uint8_t *p, uint64_t m,
			     uint32_t block_elems, unsigned lanes)
{
	uint64_t hist[256];
	count_bytes(p, m, hist);
	if (m && hist[p[0]] == m) {
		lcp_err err = lcp_buf_append_u8(b, PLANE_CONSTANT);
		return err ? err : lcp_buf_append_u8(b, p[0]);
	}
	size_t at = b->len;
	/* Not even attempted unless the order-0 cost promises 1 part in
	 * RANS_PREFERENCE: a near-uniform plane (mantissa bits) would come out
	 * about as large, after an encode as slow as the rest of a lossless
	 * chunk, and raw bytes decode faster. */
	if (lcp_stream_cost_bytes(hist) * (RANS_PREFERENCE + 1) < m * RANS_PREFERENCE) {
		lcp_err err = lcp_buf_append_u8(b, PLANE_RANS);
		if (!err)
			err = lcp_stream_put_rans(b, p, m, block_elems, lanes, hist);
		if (err || b->len - at - 1 < m)
			return err;
		b->len = at; /* rANS would not pay: raw */
	}
	lcp_err err = lcp_buf_append_u8(b, PLANE_RAW);
	return err ? err : lcp_buf_append(b, p, m);
}

lcp_err lcp_stream_parse(const uint8_t *src, size_t len, uint64_t m, uint64_t block_elems,
			 unsigned limit, struct lcp_rans_dec *table, struct lcp_stream *rs,
			 size_t *used)
{
	return lcp_stream_parse_as(src, len, m, block_elems, limit, false, table, rs, used);
}

lcp_err lcp_stream_parse_as(const uint8_t *src, size_t len, uint64_t m, uint64_t block_elems,
			    unsigned limit, bool alias, struct lcp_rans_dec *table,
			    struct lcp_stream *rs, size_t *used)
{
	uint16_t freq[256];
	size_t table_len;
	if (len < 1 || src[0] > RANS_MAX_LOG2_LANES)
		return LCP_ERR_FORMAT;
	if (lcp_rans_table_read(src + 1, len - 1, &table_len, freq) != LCP_OK)
		return LCP_ERR_FORMAT;
	for (unsigned s = limit; s < 256; s++)
		if (freq[s])
			return LCP_ERR_FORMAT;
	if (alias && !lcp_rans_alias_model(freq))
		return LCP_ERR_FORMAT;
	uint64_t nblocks = (m + block_elems - 1) / block_elems;
	size_t head = 1 + table_len;
	if ((len - head) / 4 < nblocks)
		return LCP_ERR_FORMAT;
	uint64_t total = 0;
	for (uint64_t b = 0; b < nblocks; b++)
		total += lcp_load_le32(src + head + 4 * b);
	if (total > len - head - 4 * nblocks)
		return LCP_ERR_FORMAT;
	if (alias)
		lcp_rans_dec_init_alias(table, freq);
	else
		lcp_rans_dec_init(table, freq);
	*rs = (struct lcp_stream){ 1u << src[0], nblocks, block_elems, src + head,
				   src + head + 4 * nblocks, table };
	*used = head + 4 * nblocks + (size_t)total;
	return LCP_OK;
}

lcp_err lcp_stream_parse_plane(const uint8_t **p, const uint8_t *end, uint64_t m,
			       uint64_t block_elems, struct lcp_rans_dec *table, struct lcp_plane *pl)
{
	const uint8_t *q = *p;
	if (q == end)
		return LCP_ERR_FORMAT;
	pl->mode = *q++;
	if (pl->mode == PLANE_RAW) {
		if ((uint64_t)(end - q) < m)
			return LCP_ERR_FORMAT;
		pl->raw = q;
		q += m;
	} else if (pl->mode == PLANE_CONSTANT) {
		if (q == end)
			return LCP_ERR_FORMAT;
		pl->value = *q++;
	} else if (pl->mode == PLANE_RANS) {
		size_t used;
		lcp_err err = lcp_stream_parse(q, (size_t)(end - q), m, block_elems, 256, table, &pl->rs,
					       &used);
		if (err)
			return err;
		q += used;
	} else {
		return LCP_ERR_FORMAT;
	}
	*p = q;
	return LCP_OK;
}

struct lcp_rans_block lcp_stream_block(const struct lcp_stream *rs, uint64_t b, uint64_t m,
				       uint64_t upto, const uint8_t *at, uint8_t *out)
{
	uint64_t beg = b * rs->block_elems;
	uint32_t n = (uint32_t)(m - beg < rs->block_elems ? m - beg : rs->block_elems);
	uint32_t stop = upto - beg < n ? (uint32_t)(upto - beg) : n;
	return (struct lcp_rans_block){ rs->table, at, lcp_load_le32(rs->lens + 4 * b), n, stop,
					out + beg };
}

lcp_err lcp_stream_decode_range(const struct lcp_kernels *k, const struct lcp_stream *rs,
				uint64_t m, uint64_t first, uint64_t count, uint8_t *out,
				const uint8_t *readable_end, struct lcp_rans_fuse *fuse)
{
	uint64_t b0 = first / rs->block_elems, b1 = (first + count - 1) / rs->block_elems + 1;
	struct lcp_rans_block batch[RANS_BATCH];
	unsigned nb = 0;
	const uint8_t *p = rs->blocks;
	lcp_err err = LCP_OK;
	for (uint64_t b = 0; !err && b < b1; b++) {
		/* The range's last block stops at its last symbol; it goes
		 * alone, as blocks decoded side by side all stop at the
		 * shortest. */
		struct lcp_rans_block blk = lcp_stream_block(rs, b, m, first + count, p, out);
		p += blk.len;
		if (b < b0)
			continue;
		if (nb && blk.stop < blk.n) {
			err = (rs->table->alias ? k->alias_decode : k->rans_decode)(batch, nb, rs->lanes,
										   readable_end);
			nb = 0;
		}
		batch[nb] = blk;
		if (!err && (++nb == RANS_BATCH || b + 1 == b1)) {
			if (fuse) {
				/* in elements: a pair stream's blocks hold fewer symbols */
				fuse->first = (b + 1 - nb) * fuse->block_elems;
				err = (rs->table->alias ? k->alias_decode_fused : k->rans_decode_fused)(
					batch, nb, rs->lanes, readable_end, fuse);
			} else {
				err = (rs->table->alias ? k->alias_decode : k->rans_decode)(
					batch, nb, rs->lanes, readable_end);
			}
			nb = 0;
		}
	}
	return err;
}
