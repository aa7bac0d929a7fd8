/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The decoder: parses params blocks and reconstructs chunks (layout in
 * codec_format.h). Plain C with a fixed operation order, no BLAS, no
 * allocation beyond a per-thread scratch bounded by the chunk size, so the
 * same chunk gives the same bytes on every call and thread.
 */
#include <math.h>
#include <pthread.h>
#include <string.h>
#include <zstd.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "codec/codec_format.h"
#include "codec/half.h"
#include "codec/quant.h"
#include "common/alloc.h"
#include "common/checksum.h"
#include "common/le.h"
#include "lcpfs/codec.h"

unsigned lcp_codec_elem_bytes(enum lcp_dtype dt)
{
	switch (dt) {
	case LCP_DTYPE_F32:
		return 4;
	case LCP_DTYPE_F16:
	case LCP_DTYPE_BF16:
		return 2;
	case LCP_DTYPE_F64:
		return 8;
	default:
		return 0;
	}
}

void lcp_codec_touched_rows(uint64_t cols, uint64_t b, uint64_t m, uint64_t *r0, uint64_t *nrows)
{
	*r0 = b / cols;
	*nrows = (b + m - 1) / cols - *r0 + 1;
}

void lcp_codec_lr_segment(const float *urow, const float *vt, uint64_t cols, uint16_t rank,
			  uint64_t c0, uint64_t len, float *l)
{
	for (uint64_t j = 0; j < len; j++)
		l[j] = 0.0f;
	for (uint16_t k = 0; k < rank; k++) {
		float uk = urow[k];
		const float *vk = vt + (uint64_t)k * cols + c0;
		uint64_t j = 0;
#ifdef __SSE2__
		__m128 vu = _mm_set1_ps(uk);
		for (; j + 4 <= len; j += 4)
			_mm_storeu_ps(l + j, _mm_add_ps(_mm_loadu_ps(l + j),
							_mm_mul_ps(vu, _mm_loadu_ps(vk + j))));
#endif
		for (; j < len; j++)
			l[j] = l[j] + uk * vk[j];
	}
}

/* y[i] = y[i] + l[i], four lanes at a time where SSE2 is there (each lane
 * is the scalar add). */
static void add_segment(float *y, const float *l, uint64_t n)
{
	uint64_t i = 0;
#ifdef __SSE2__
	for (; i + 4 <= n; i += 4)
		_mm_storeu_ps(y + i, _mm_add_ps(_mm_loadu_ps(y + i), _mm_loadu_ps(l + i)));
#endif
	for (; i < n; i++)
		y[i] = y[i] + l[i];
}

/* Values decode_quant reconstructs before storing them: a few groups at a
 * time, so the per-call costs of the output conversion are shared. */
#define DEC_BATCH 1024u

/* Writes n (<= DEC_BATCH) float values in the output dtype, rounding to
 * nearest even. The 16-bit conversions (vectorized, half.c) write straight
 * into a 2-byte-aligned little-endian output, else through a staging
 * array. */
static void store_elems(enum lcp_dtype dt, const float *y, uint32_t n, uint8_t *out)
{
	uint16_t h[DEC_BATCH];
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	if ((dt == LCP_DTYPE_F16 || dt == LCP_DTYPE_BF16) && ((uintptr_t)out & 1u) == 0) {
		if (dt == LCP_DTYPE_F16)
			lcp_f16_from_f32_n(y, (uint16_t *)(void *)out, n);
		else
			lcp_bf16_from_f32_n(y, (uint16_t *)(void *)out, n);
		return;
	}
#endif
	switch (dt) {
	case LCP_DTYPE_F32:
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
		memcpy(out, y, (size_t)n * 4); /* already the stored byte order */
#else
		for (uint32_t i = 0; i < n; i++)
			lcp_store_lef32(out + 4 * i, y[i]);
#endif
		return;
	case LCP_DTYPE_F16:
		lcp_f16_from_f32_n(y, h, n);
		break;
	case LCP_DTYPE_BF16:
		lcp_bf16_from_f32_n(y, h, n);
		break;
	default:
		for (uint32_t i = 0; i < n; i++)
			lcp_store_lef64(out + 8 * i, (double)y[i]);
		return;
	}
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	memcpy(out, h, (size_t)n * 2);
#else
	for (uint32_t i = 0; i < n; i++)
		lcp_store_le16(out + 2 * i, h[i]);
#endif
}

lcp_err lcp_codec_tensor_open(const uint8_t *params, size_t params_len,
			      struct lcp_codec_tensor **out)
{
	*out = NULL;
	if (!params || params_len < 5)
		return LCP_ERR_TRUNCATED;
	if (memcmp(params, PARAMS_MAGIC, 4) != 0)
		return LCP_ERR_FORMAT;
	if (params[4] != PARAMS_VERSION)
		return LCP_ERR_VERSION;
	if (params_len < PARAMS_FIXED_LEN)
		return LCP_ERR_TRUNCATED;
	uint8_t ndims = params[24];
	if (ndims > LCP_MAX_DIMS)
		return LCP_ERR_FORMAT;
	size_t dims_end = PARAMS_FIXED_LEN + 8u * ndims;
	if (params_len < dims_end + 8u)
		return LCP_ERR_TRUNCATED;
	/* Element count, refusing anything whose byte size would overflow. */
	uint64_t n = 1, cols = 1;
	for (unsigned i = 0; i < ndims; i++) {
		uint64_t d = lcp_load_le64(params + PARAMS_FIXED_LEN + 8u * i);
		if (d && n > (UINT64_MAX / 16) / d)
			return LCP_ERR_FORMAT;
		n *= d;
		cols = d;
	}
	uint16_t rank = lcp_load_le16(params + 10);
	if (rank > MAX_RANK || (rank && (cols == 0 || rank > cols || cols > (UINT64_MAX / 4) / MAX_RANK)))
		return LCP_ERR_FORMAT;
	uint64_t vt_bytes = 2u * (uint64_t)rank * cols;
	if (vt_bytes > params_len - dims_end - 8u)
		return LCP_ERR_TRUNCATED;
	size_t total = dims_end + (size_t)vt_bytes + 8u;
	if (params_len > total)
		return LCP_ERR_FORMAT;
	if (lcp_load_le64(params + total - 8) != lcp_xxh3(params, total - 8))
		return LCP_ERR_CHECKSUM;

	struct lcp_codec_tensor t;
	memset(&t, 0, sizeof t);
	uint8_t enc = params[5], dt = params[6], bits = params[7], flags = params[8];
	uint8_t steps = params[9];
	t.rank = rank;
	t.group_size = lcp_load_le32(params + 12);
	t.chunk_elems = lcp_load_le32(params + 16);
	t.q.super = lcp_load_lef32(params + 20);
	t.q.scale_log2_steps = steps;
	t.q.bits = bits;
	t.q.symmetric = flags & 1;
	t.ecsq = flags & 2;
	if (dt > LCP_DTYPE_F64 || flags > 3 || (t.ecsq && (enc != LCP_ENC_Q4 || !t.q.symmetric)))
		return LCP_ERR_FORMAT;
	if (t.ecsq)
		t.q.bits = 8; /* 8-bit symbols, symmetric: off 128 */
	t.dtype = (enum lcp_dtype)dt;
	t.elem_bytes = lcp_codec_elem_bytes(t.dtype);
	if (enc == LCP_ENC_LOSSLESS) {
		if (bits || flags || steps || t.rank || t.group_size || t.q.super != 0.0f)
			return LCP_ERR_FORMAT;
	} else if (enc == LCP_ENC_Q4 || enc == LCP_ENC_Q8) {
		if (bits != (enc == LCP_ENC_Q4 ? 4 : 8) || steps != (enc == LCP_ENC_Q4 ? 4 : 8) ||
		    t.group_size < 8 || t.group_size > 256 || !(t.q.super >= 0.0f) ||
		    !isfinite(t.q.super) || (t.rank && t.rank > n / cols))
			return LCP_ERR_FORMAT;
	} else {
		return LCP_ERR_FORMAT;
	}
	t.encoding = (enum lcp_encoding)enc;
	if (steps == 4)
		for (unsigned c = 0; c < 256; c++)
			t.scale8[c] = lcp_qscale(&t.q, (uint16_t)c);
	t.n = n;
	t.cols = cols;
	if (n && (t.chunk_elems == 0 || (t.group_size && t.chunk_elems % t.group_size)))
		return LCP_ERR_FORMAT;
	if ((uint64_t)t.chunk_elems * t.elem_bytes > 64u * CHUNK_TARGET_BYTES)
		return LCP_ERR_FORMAT; /* bounds the decoder's scratch */
	if (t.rank) {
		/* V^T in binary32, decoded once per open rather than per chunk. */
		t.vt = lcp_malloc((size_t)cols * t.rank * sizeof(float));
		if (!t.vt)
			return LCP_ERR_NOMEM;
		const uint8_t *vt = params + dims_end;
		for (uint64_t k = 0; k < t.rank; k++)
			for (uint64_t c = 0; c < cols; c++)
				t.vt[k * cols + c] = lcp_f16_to_f32(lcp_load_le16(vt + 2 * (k * cols + c)));
	}
	struct lcp_codec_tensor *p = lcp_malloc(sizeof *p);
	if (!p) {
		lcp_free(t.vt);
		return LCP_ERR_NOMEM;
	}
	*p = t;
	*out = p;
	return LCP_OK;
}

void lcp_codec_tensor_free(struct lcp_codec_tensor *t)
{
	if (t)
		lcp_free(t->vt);
	lcp_free(t);
}

enum lcp_dtype lcp_codec_tensor_dtype(const struct lcp_codec_tensor *t)
{
	return t->dtype;
}

uint64_t lcp_codec_tensor_elems(const struct lcp_codec_tensor *t)
{
	return t->n;
}

/*
 * Per-thread decode scratch: a grow-only buffer and a zstd context, kept
 * between calls (creating a zstd context and faulting in fresh pages per
 * chunk cost more than the decode itself) and released by a thread-exit
 * destructor. Its size is bounded by the largest chunk seen.
 */
struct dscratch {
	uint8_t *buf;
	size_t cap;
	ZSTD_DCtx *dctx;
};

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static bool scratch_key_ok;

static void scratch_destroy(void *p)
{
	struct dscratch *s = p;
	ZSTD_freeDCtx(s->dctx);
	lcp_free(s->buf);
	lcp_free(s);
}

static void scratch_key_init(void)
{
	scratch_key_ok = pthread_key_create(&scratch_key, scratch_destroy) == 0;
}

static lcp_err scratch_get(size_t need, struct dscratch **out)
{
	pthread_once(&scratch_once, scratch_key_init);
	if (!scratch_key_ok)
		return LCP_ERR_NOMEM;
	struct dscratch *s = pthread_getspecific(scratch_key);
	if (!s) {
		s = lcp_calloc(1, sizeof *s);
		if (!s)
			return LCP_ERR_NOMEM;
		s->dctx = ZSTD_createDCtx();
		if (!s->dctx || pthread_setspecific(scratch_key, s) != 0) {
			ZSTD_freeDCtx(s->dctx);
			lcp_free(s);
			return LCP_ERR_NOMEM;
		}
	}
	if (need > s->cap) {
		uint8_t *b = lcp_malloc(need);
		if (!b)
			return LCP_ERR_NOMEM;
		lcp_free(s->buf);
		s->buf = b;
		s->cap = need;
	}
	*out = s;
	return LCP_OK;
}

/* Decompresses one stream; exactly raw_len bytes or LCP_ERR_FORMAT. */
static lcp_err unzstd(struct dscratch *ds, const uint8_t *src, size_t len, uint8_t *dst,
		      size_t raw_len)
{
	size_t r = ZSTD_decompressDCtx(ds->dctx, dst, raw_len, src, len);
	if (ZSTD_isError(r) || r != raw_len)
		return LCP_ERR_FORMAT;
	return LCP_OK;
}

static lcp_err decode_lossless(const struct lcp_codec_tensor *t, const uint8_t *data,
			       size_t data_len, uint64_t m, uint8_t *out)
{
	size_t bytes = (size_t)m * t->elem_bytes;
	if (data_len < 1)
		return LCP_ERR_FORMAT;
	if (data[0] == 0) {
		if (data_len != 1 + bytes)
			return LCP_ERR_FORMAT;
		memcpy(out, data + 1, bytes);
		return LCP_OK;
	}
	if (data[0] != 1)
		return LCP_ERR_FORMAT;
	struct dscratch *ds;
	lcp_err err = scratch_get(bytes, &ds);
	if (!err)
		err = unzstd(ds, data + 1, data_len - 1, ds->buf, bytes);
	if (!err) {
		unsigned eb = t->elem_bytes;
		for (unsigned b = 0; b < eb; b++) {
			const uint8_t *pl = ds->buf + (size_t)b * m;
			for (uint64_t i = 0; i < m; i++)
				out[i * eb + b] = pl[i];
		}
	}
	return err;
}

static lcp_err decode_quant(const struct lcp_codec_tensor *t, const uint8_t *data,
			    size_t data_len, uint64_t b, uint64_t m, uint8_t *out)
{
	uint32_t G = t->group_size;
	uint64_t ng = (m + G - 1) / G;
	uint64_t r0 = 0, nrows = 0;
	if (t->rank)
		lcp_codec_touched_rows(t->cols, b, m, &r0, &nrows);
	uint64_t u_bytes = 2u * nrows * t->rank;
	uint64_t packed_len = t->q.bits == 4 ? (m + 1) / 2 : m;
	unsigned sbytes = t->q.scale_log2_steps == 8 ? 2 : 1; /* bytes per scale code */
	size_t side_raw = (size_t)ng * (sbytes + 1);
	if (data_len < QCHUNK_HEADER_LEN + u_bytes || data[0] > 3)
		return LCP_ERR_FORMAT;
	uint32_t side_len = lcp_load_le32(data + 1);
	if (side_len > data_len - QCHUNK_HEADER_LEN - u_bytes)
		return LCP_ERR_FORMAT;
	size_t code_len = data_len - QCHUNK_HEADER_LEN - (size_t)u_bytes - side_len;
	bool side_z = data[0] & 1, code_z = data[0] & 2;
	if ((!side_z && side_len != side_raw) || (!code_z && code_len != packed_len))
		return LCP_ERR_FORMAT;
	const uint8_t *side_src = data + QCHUNK_HEADER_LEN, *code_src = side_src + side_len;

	/* Scratch: low-rank rows, side bytes, packed codes, unpacked 4-bit
	 * codes; bounded by the chunk size that tensor_open checked. Every
	 * 4-bit code unpacks to <= 15 and every byte is a valid 8-bit code, so
	 * damaged streams that pass the checksum can give wrong numbers but
	 * never out-of-range math. */
	struct dscratch *ds;
	size_t u_floats = (size_t)nrows * t->rank;
	size_t unpacked = t->q.bits == 4 ? (size_t)m : 0;
	lcp_err err = scratch_get(u_floats * sizeof(float) + side_raw + packed_len + unpacked, &ds);
	if (err)
		return err;
	float *u = (float *)(void *)ds->buf; /* malloc'ed: aligned for float */
	uint8_t *side = ds->buf + u_floats * sizeof(float);
	uint8_t *packed = side + side_raw;
	if (side_z)
		err = unzstd(ds, side_src, side_len, side, side_raw);
	else
		memcpy(side, side_src, side_raw);
	if (!err && code_z)
		err = unzstd(ds, code_src, code_len, packed, packed_len);
	else if (!err)
		memcpy(packed, code_src, packed_len);
	if (err)
		return err;
	uint8_t *codes = t->q.bits == 4 ? packed + packed_len : packed;
	if (t->q.bits == 4)
		for (uint64_t i = 0; i < m; i++)
			codes[i] = (packed[i / 2] >> (4 * (i & 1))) & 0xf;
	const uint8_t *u_src = code_src + code_len;
	for (size_t i = 0; i < u_floats; i++)
		u[i] = lcp_f16_to_f32(lcp_load_le16(u_src + 2 * i));
	/* Position of the chunk's next element in the 2-D view. */
	uint64_t row = t->rank ? b / t->cols - r0 : 0, col = t->rank ? b % t->cols : 0;
	/* Groups are reconstructed into y batch by batch (whole groups, up to
	 * DEC_BATCH values) and stored once per batch. */
	float y[DEC_BATCH], l[256];
	uint64_t per_batch = DEC_BATCH / G, batch_beg = 0;
	uint32_t filled = 0;
	for (uint64_t g = 0; g < ng; g++) {
		uint64_t beg = g * G;
		uint32_t len = (uint32_t)(m - beg < G ? m - beg : G);
		float sd;
		int off;
		float *yg = y + filled;
		/* Side stream: scale codes (16-bit ones as a high-byte plane
		 * then a low-byte plane), then aux bytes. */
		uint16_t sc = sbytes == 2 ? (uint16_t)(side[g] << 8 | side[ng + g]) : side[g];
		uint8_t aux = side[sbytes * ng + g];
		if (sbytes == 1) { /* lcp_quant_group_params through the open-time table */
			sd = t->q.symmetric && aux ? -t->scale8[sc] : t->scale8[sc];
			off = t->q.symmetric ? 1 << (t->q.bits - 1) : aux;
		} else {
			lcp_quant_group_params(&t->q, sc, aux, &sd, &off);
		}
		lcp_dequant(codes + beg, len, sd, off, yg);
		/* Add the low-rank term one row piece at a time. */
		for (uint32_t j = 0; t->rank && j < len;) {
			uint64_t seg = t->cols - col < len - j ? t->cols - col : len - j;
			lcp_codec_lr_segment(u + row * t->rank, t->vt, t->cols, t->rank, col, seg, l);
			add_segment(yg + j, l, seg);
			j += (uint32_t)seg;
			col += seg;
			if (col == t->cols) {
				col = 0;
				row++;
			}
		}
		filled += len;
		if (g + 1 == ng || (g + 1) % per_batch == 0) {
			store_elems(t->dtype, y, filled, out + batch_beg * t->elem_bytes);
			batch_beg += filled;
			filled = 0;
		}
	}
	return LCP_OK;
}

lcp_err lcp_codec_decode_chunk(const struct lcp_codec_tensor *t, const struct lcp_chunk_info *chunk,
			       const uint8_t *data, size_t data_len, void *out, size_t out_len)
{
	if (!t || !chunk || (!data && data_len) || !out)
		return LCP_ERR_INVAL;
	uint64_t b = chunk->elem_begin, e = chunk->elem_end;
	if (b >= t->n || b % t->chunk_elems || e != (t->n - b < t->chunk_elems ? t->n : b + t->chunk_elems))
		return LCP_ERR_RANGE;
	uint64_t m = e - b;
	if (out_len != m * t->elem_bytes)
		return LCP_ERR_RANGE;
	if (lcp_xxh3(data, data_len) != chunk->stored_xxh3)
		return LCP_ERR_CHECKSUM;
	if (t->encoding == LCP_ENC_LOSSLESS)
		return decode_lossless(t, data, data_len, m, out);
	return decode_quant(t, data, data_len, b, m, out);
}
