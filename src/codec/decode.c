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
#include "codec/kernels.h"
#include "codec/lossless.h"
#include "codec/quant.h"
#include "codec/rans.h"
#include "codec/stream.h"
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

uint64_t lcp_codec_max_chunk_bytes(enum lcp_dtype dt)
{
	/* plan_chunks (codec.c): chunks of about the target (CHUNK_TARGET_ELEMS
	 * elements quantized, CHUNK_TARGET_BYTES lossless), never more */
	uint64_t quantized = (uint64_t)CHUNK_TARGET_ELEMS * lcp_codec_elem_bytes(dt);
	return quantized > CHUNK_TARGET_BYTES ? quantized : CHUNK_TARGET_BYTES;
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

/* The tail of a version-2 or -3 params block (after V^T): u32 block
 * elements, 0 for a lossless tensor in version 2. */
static lcp_err open_v2_tail(struct lcp_codec_tensor *t, const uint8_t *p, size_t len)
{
	if (len < PARAMS_V2_TAIL_LEN)
		return LCP_ERR_TRUNCATED;
	if (len > PARAMS_V2_TAIL_LEN)
		return LCP_ERR_FORMAT;
	uint32_t block_elems = lcp_load_le32(p);
	if (t->encoding == LCP_ENC_LOSSLESS && t->version == PARAMS_VERSION_2)
		return block_elems ? LCP_ERR_FORMAT : LCP_OK;
	if (block_elems < MIN_BLOCK_ELEMS || block_elems > t->chunk_elems)
		return LCP_ERR_FORMAT;
	t->block_elems = block_elems;
	return LCP_OK;
}

lcp_err lcp_codec_tensor_open(const uint8_t *params, size_t params_len,
			      struct lcp_codec_tensor **out)
{
	*out = NULL;
	if (!params || params_len < 5)
		return LCP_ERR_TRUNCATED;
	if (memcmp(params, PARAMS_MAGIC, 4) != 0)
		return LCP_ERR_FORMAT;
	uint8_t version = params[4];
	if (version < PARAMS_VERSION_1 || version > PARAMS_VERSION_5)
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
	size_t vt_end = dims_end + (size_t)vt_bytes;
	/* Version 1 ends with V^T; versions 2 and 3 have a tail of their own. */
	if (version == PARAMS_VERSION_1 && params_len > vt_end + 8u)
		return LCP_ERR_FORMAT;
	if (lcp_load_le64(params + params_len - 8) != lcp_xxh3(params, params_len - 8))
		return LCP_ERR_CHECKSUM;

	struct lcp_codec_tensor t;
	memset(&t, 0, sizeof t);
	uint8_t enc = params[5], dt = params[6], bits = params[7], flags = params[8];
	uint8_t steps = params[9];
	t.version = version;
	t.rank = rank;
	t.group_size = lcp_load_le32(params + 12);
	t.chunk_elems = lcp_load_le32(params + 16);
	t.q.super = lcp_load_lef32(params + 20);
	t.q.scale_log2_steps = steps;
	t.q.bits = bits;
	t.q.symmetric = flags & PARAMS_FLAG_SYMMETRIC;
	t.ecsq = flags & PARAMS_FLAG_ENTROPY;
	t.dq = flags & PARAMS_FLAG_DQ;
	uint8_t known = version == PARAMS_VERSION_3 || version == PARAMS_VERSION_5 ? 7 : 3;
	if (dt > LCP_DTYPE_F64 || (flags & ~known) || (t.ecsq && (enc != LCP_ENC_Q4 || !t.q.symmetric)) ||
	    (t.dq && !t.ecsq) || (version == PARAMS_VERSION_4 && enc != LCP_ENC_Q8) ||
	    (version == PARAMS_VERSION_5 && !t.dq && enc != LCP_ENC_Q8))
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
	for (unsigned k = 0; steps && k < (1u << steps); k++)
		t.frac16[k] = lcp_qscale_frac(&t.q, k);
	t.n = n;
	t.cols = cols;
	if (n && (t.chunk_elems == 0 || (t.group_size && t.chunk_elems % t.group_size)))
		return LCP_ERR_FORMAT;
	if ((uint64_t)t.chunk_elems * t.elem_bytes > MAX_CHUNK_BYTES)
		return LCP_ERR_FORMAT; /* bounds the decoder's scratch */
	t.block_elems = t.chunk_elems;
	lcp_err err = LCP_OK;
	if (version >= PARAMS_VERSION_2)
		err = open_v2_tail(&t, params + vt_end, params_len - 8 - vt_end);
	if (!err && t.rank) {
		/* V^T in binary32, decoded once per open rather than per chunk. */
		t.vt = lcp_malloc((size_t)cols * t.rank * sizeof(float));
		if (!t.vt)
			err = LCP_ERR_NOMEM;
		const uint8_t *vt = params + dims_end;
		for (uint64_t k = 0; !err && k < t.rank; k++)
			for (uint64_t c = 0; c < cols; c++)
				t.vt[k * cols + c] = lcp_f16_to_f32(lcp_load_le16(vt + 2 * (k * cols + c)));
	}
	struct lcp_codec_tensor *p = err ? NULL : lcp_malloc(sizeof *p);
	if (!p) {
		lcp_free(t.vt);
		return err ? err : LCP_ERR_NOMEM;
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

uint64_t lcp_codec_tensor_block_elems(const struct lcp_codec_tensor *t)
{
	return t->block_elems;
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

/* Lays out a scratch buffer: regions are appended 64-byte aligned (for
 * floats and vector loads); with base NULL it only measures. */
struct layout {
	uint8_t *base;
	size_t len;
};

static void *take(struct layout *l, size_t len)
{
	l->len = (l->len + 63u) & ~(size_t)63u;
	void *p = l->base ? l->base + l->len : NULL;
	l->len += len;
	return p;
}

/* Elements [first, first + count) of a lossless chunk of m elements. */
static lcp_err decode_lossless(const struct lcp_codec_tensor *t, const uint8_t *data,
			       size_t data_len, uint64_t m, uint64_t first, uint64_t count, uint8_t *out)
{
	unsigned eb = t->elem_bytes;
	size_t bytes = (size_t)m * eb;
	if (data_len < 1)
		return LCP_ERR_FORMAT;
	if (data[0] == LOSSLESS_RAW) {
		if (data_len != 1 + bytes)
			return LCP_ERR_FORMAT;
		memcpy(out, data + 1 + first * eb, (size_t)count * eb);
		return LCP_OK;
	}
	struct dscratch *ds;
	if (data[0] == LOSSLESS_SPLIT && t->version == PARAMS_VERSION_3) {
		lcp_err err = scratch_get(lcp_lossless_decode_scratch(eb, m), &ds);
		return err ? err : lcp_lossless_decode_split(lcp_kernels(), eb, data + 1, data_len - 1, m,
							     t->block_elems, first, count, out, ds->buf,
							     data + data_len);
	}
	if (data[0] != LOSSLESS_ZSTD_PLANES)
		return LCP_ERR_FORMAT;
	lcp_err err = scratch_get(bytes, &ds);
	if (!err)
		err = unzstd(ds, data + 1, data_len - 1, ds->buf, bytes);
	if (!err) {
		/* The chunk is stored as byte planes: byte b of every element. */
		for (unsigned b = 0; b < eb; b++) {
			const uint8_t *pl = ds->buf + (size_t)b * m + first;
			for (uint64_t i = 0; i < count; i++)
				out[i * eb + b] = pl[i];
		}
	}
	return err;
}

/*
 * Decodes the blocks of the rANS code stream (alias set: alias stream)
 * src[0, len) that hold codes [first, first + count) of a chunk of m
 * codes, into the same positions of
 * codes, with table as the decoding table's storage; with fuse, straight to
 * the output instead. The stream's table and block lengths are checked
 * first, so damage there is an error before anything is decoded.
 */
static lcp_err decode_rans_range(const struct lcp_codec_tensor *t, const struct lcp_kernels *k,
				 const uint8_t *src, size_t len, uint64_t m, uint64_t first,
				 uint64_t count, bool alias, uint8_t *codes, struct lcp_rans_dec *table,
				 const uint8_t *readable_end, struct lcp_rans_fuse *fuse)
{
	struct lcp_stream rs;
	size_t used;
	lcp_err err = lcp_stream_parse_as(src, len, m, t->block_elems, 1u << t->q.bits, alias, table,
					  &rs, &used);
	if (!err && used != len)
		err = LCP_ERR_FORMAT;
	return err ? err : lcp_stream_decode_range(k, &rs, m, first, count, codes, readable_end, fuse);
}

/*
 * Codes [first, first + count) of a chunk of m codes stored as pairs
 * (code mode CODE_PAIRS, codec_format.h) from its code stream src[0, len):
 * the pairs from the first touched block's start to the end of the step
 * that holds the last code are decoded into psym (indexed by the chunk's
 * pair), then unpaired into the same positions of codes; with fuse, every
 * block goes straight to the output instead (a whole chunk).
 */
static lcp_err decode_pairs_range(const struct lcp_codec_tensor *t, const struct lcp_kernels *k,
				  const uint8_t *src, size_t len, uint64_t m, uint64_t first,
				  uint64_t count, uint8_t *psym, uint8_t *codes,
				  struct lcp_rans_dec *table, const uint8_t *readable_end,
				  struct lcp_rans_fuse *fuse)
{
	uint64_t B = t->block_elems, pb = lcp_pairs_in(B), np = lcp_pairs_in_chunk(m, B);
	if (len < np)
		return LCP_ERR_FORMAT;
	const uint8_t *nib = src;
	struct lcp_stream rs;
	size_t used;
	lcp_err err = lcp_stream_parse(src + np, len - np, np, pb, 256, table, &rs, &used);
	if (!err && used != len - np)
		err = LCP_ERR_FORMAT;
	if (err)
		return err;
	uint64_t last = first + count - 1, jl = last / B, r = last % B;
	uint64_t nl = m - jl * B < B ? m - jl * B : B;
	uint64_t in_step = 16u * (r / 32u) + 16u, pl = lcp_pairs_in(nl);
	uint64_t pfirst = first / B * pb, pend = jl * pb + (in_step < pl ? in_step : pl);
	if (fuse) {
		fuse->nibbles = nib;
		fuse->codes = codes;
		fuse->m = m;
	}
	err = lcp_stream_decode_range(k, &rs, np, pfirst, pend - pfirst, psym, readable_end, fuse);
	for (uint64_t j = first / B; !err && !fuse && j <= jl; j++) {
		uint64_t e0 = first > j * B ? first - j * B : 0;
		uint64_t e1 = first + count < (j + 1) * B ? first + count - j * B : B;
		lcp_pairs_unpair(psym + j * pb, nib + j * pb, e0, e1, codes + j * B);
	}
	return err;
}

/*
 * The side stream stored as planes (side mode SIDE_PLANES): nplanes planes
 * of ng bytes into side, each u8 mode then 0: ng raw bytes, 1: one byte
 * repeated, 2: a rANS stream of ng symbols in blocks of block_elems,
 * decoded up to symbol upto only. The rANS planes' blocks, each plane with
 * its table in tables[], decode side by side, RANS_BATCH at a time.
 */
static lcp_err decode_side_planes(const struct lcp_kernels *k, const uint8_t *src, size_t len,
				  uint64_t ng, uint64_t block_elems, unsigned nplanes, uint64_t upto,
				  uint8_t *side, struct lcp_rans_dec *tables, const uint8_t *readable_end)
{
	struct lcp_rans_block batch[RANS_BATCH];
	unsigned nb = 0, lanes = 0, ntables = 0;
	const uint8_t *p = src, *end = src + len;
	lcp_err err = LCP_OK;
	for (unsigned i = 0; !err && i < nplanes; i++) {
		uint8_t *out = side + i * ng;
		struct lcp_plane pl;
		err = lcp_stream_parse_plane(&p, end, ng, block_elems, &tables[ntables], &pl);
		if (err)
			return err;
		if (pl.mode == PLANE_RAW) {
			memcpy(out, pl.raw, ng);
		} else if (pl.mode == PLANE_CONSTANT) {
			memset(out, pl.value, ng);
		} else {
			if (ntables++ && pl.rs.lanes != lanes)
				return LCP_ERR_FORMAT; /* the encoder gives every plane the same lanes */
			lanes = pl.rs.lanes;
			const uint8_t *at = pl.rs.blocks;
			for (uint64_t b = 0; !err && b < pl.rs.nblocks && b * block_elems < upto; b++) {
				batch[nb] = lcp_stream_block(&pl.rs, b, ng, upto, at, out);
				at += batch[nb].len;
				if (++nb == RANS_BATCH) {
					err = k->rans_decode(batch, nb, lanes, readable_end);
					nb = 0;
				}
			}
		}
	}
	if (!err && p != end)
		err = LCP_ERR_FORMAT;
	return err || !nb ? err : k->rans_decode(batch, nb, lanes, readable_end);
}

/*
 * Elements [first, first + count) of the quantized chunk that starts at
 * element cb and holds m elements. Only the rANS blocks and the groups that
 * the range touches are decoded; the side stream (one small zstd frame) and
 * codes stored raw or as zstd are decoded whole.
 */
static lcp_err decode_quant(const struct lcp_codec_tensor *t, const uint8_t *data,
			    size_t data_len, uint64_t cb, uint64_t m, uint64_t first, uint64_t count,
			    uint8_t *out)
{
	const struct lcp_kernels *kern = lcp_kernels();
	uint32_t G = t->group_size;
	uint64_t ng = (m + G - 1) / G;
	uint64_t r0 = 0, nrows = 0;
	if (t->rank)
		lcp_codec_touched_rows(t->cols, cb, m, &r0, &nrows);
	uint64_t u_bytes = 2u * nrows * t->rank;
	uint64_t packed_len = t->q.bits == 4 ? (m + 1) / 2 : m;
	unsigned sbytes = t->q.scale_log2_steps == 8 ? 2 : 1; /* bytes per scale code */
	size_t side_raw = (size_t)ng * (sbytes + 1);
	if (data_len < QCHUNK_HEADER_LEN + u_bytes)
		return LCP_ERR_FORMAT;
	uint8_t modes = data[0];
	enum side_mode sm;
	enum code_mode cm;
	if (t->version == PARAMS_VERSION_1) {
		if (modes > 3)
			return LCP_ERR_FORMAT;
		sm = modes & 1 ? SIDE_ZSTD : SIDE_RAW;
		cm = modes & 2 ? CODE_ZSTD : CODE_RAW;
	} else {
		/* version 5: a third code mode bit, for CODE_ALIAS */
		unsigned cm_bits = t->version == PARAMS_VERSION_5 ? 7 : 3;
		sm = (enum side_mode)(modes & 3);
		cm = (enum code_mode)(modes >> 2 & cm_bits);
		if (modes >> (t->version == PARAMS_VERSION_5 ? 5 : 4) || sm > SIDE_PLANES ||
		    (cm == CODE_PAIRS && (t->encoding != LCP_ENC_Q8 || t->version < PARAMS_VERSION_4)) ||
		    (cm == CODE_ALIAS && (!t->dq || t->version != PARAMS_VERSION_5)) || cm > CODE_ALIAS)
			return LCP_ERR_FORMAT;
	}
	uint32_t side_len = lcp_load_le32(data + 1);
	if (side_len > data_len - QCHUNK_HEADER_LEN - u_bytes)
		return LCP_ERR_FORMAT;
	size_t code_len = data_len - QCHUNK_HEADER_LEN - (size_t)u_bytes - side_len;
	if ((sm == SIDE_RAW && side_len != side_raw) || (cm == CODE_RAW && code_len != packed_len))
		return LCP_ERR_FORMAT;
	const uint8_t *side_src = data + QCHUNK_HEADER_LEN, *code_src = side_src + side_len;
	uint64_t g0 = first / G, g1 = (first + count - 1) / G + 1;

	/* Scratch: low-rank rows, side bytes, packed codes, codes, and the
	 * touched groups' scales and offsets; bounded by the chunk size that
	 * tensor_open checked. Every 4-bit code unpacks to <= 15 and every byte
	 * is a valid 8-bit code, so damaged streams that pass the checksum can
	 * give wrong numbers but never out-of-range math. */
	size_t u_floats = (size_t)nrows * t->rank;
	bool entropy = cm == CODE_RANS || cm == CODE_PAIRS || cm == CODE_ALIAS;
	bool unpack = !entropy && t->q.bits == 4;
	struct layout l = { NULL, 0 };
	struct dscratch *ds = NULL;
	float *u, *sd, *off;
	uint8_t *side, *packed, *codes, *cls, *psym;
	struct lcp_rans_dec *table, *side_tables;
	for (int pass = 0; pass < 2; pass++) {
		table = take(&l, entropy ? sizeof *table : 0);
		side_tables = take(&l, sm == SIDE_PLANES ? SIDE_MAX_PLANES * sizeof *side_tables : 0);
		u = take(&l, u_floats * sizeof(float));
		side = take(&l, side_raw);
		packed = take(&l, entropy ? 0 : packed_len);
		codes = entropy || unpack ? take(&l, m) : packed;
		psym = take(&l, cm == CODE_PAIRS ? lcp_pairs_in_chunk(m, t->block_elems) : 0);
		cls = take(&l, t->dq ? m : 0);
		sd = take(&l, (g1 - g0) * sizeof(float));
		off = take(&l, (g1 - g0) * sizeof(float));
		if (pass == 0) {
			lcp_err err = scratch_get(l.len, &ds);
			if (err)
				return err;
			l = (struct layout){ ds->buf, 0 };
		}
	}

	lcp_err err = LCP_OK;
	if (sm == SIDE_ZSTD)
		err = unzstd(ds, side_src, side_len, side, side_raw);
	else if (sm == SIDE_PLANES)
		err = decode_side_planes(kern, side_src, side_len, ng,
					 t->version == PARAMS_VERSION_5 ? plane_block_elems(ng) : ng, sbytes + 1,
					 g1, side, side_tables,
					 data + data_len);
	else
		memcpy(side, side_src, side_raw);
	if (err)
		return err;
	/* The touched groups' scales (quant.h, through the open-time tables)
	 * and offsets. */
	struct lcp_side_params sp = { side, ng, sbytes, g0, g1 - g0, t->scale8, t->frac16,
				      t->q.symmetric, (float)(1 << (t->q.bits - 1)), sd, off };
	kern->side_params(&sp);
	/* A whole chunk without a low-rank term goes from rANS straight to the
	 * output where the kernels can (codes never stored). */
	bool fusable = entropy &&
		       (cm == CODE_ALIAS ? kern->alias_decode_fused : kern->rans_decode_fused) &&
		       !t->rank && first == 0 &&
		       count == m &&
		       (t->dtype == LCP_DTYPE_F32 || t->dtype == LCP_DTYPE_F16 || t->dtype == LCP_DTYPE_BF16);
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
	fusable = false;
#endif
	struct lcp_rans_fuse fuse = { sd, off, G, t->block_elems, 0, t->dtype, t->dq, out, NULL, NULL, 0 };
	if (cm == CODE_PAIRS)
		err = decode_pairs_range(t, kern, code_src, code_len, m, first, count, psym, codes, table,
					 data + data_len, fusable ? &fuse : NULL);
	else if (cm == CODE_RANS || cm == CODE_ALIAS)
		err = decode_rans_range(t, kern, code_src, code_len, m, first, count, cm == CODE_ALIAS,
					codes, table, data + data_len, fusable ? &fuse : NULL);
	else if (cm == CODE_ZSTD)
		err = unzstd(ds, code_src, code_len, packed, packed_len);
	else
		memcpy(packed, code_src, packed_len);
	if (err || fusable)
		return err;
	if (unpack)
		for (uint64_t i = first; i < first + count; i++)
			codes[i] = (packed[i / 2] >> (4 * (i & 1))) & 0xf;
	/* Dependent quantization: the classes, walked from the start of each
	 * touched block (the codes are there: rANS decodes whole blocks up to
	 * the range's end, the other modes whole chunks). */
	for (uint64_t b = first / t->block_elems * t->block_elems; t->dq && b < first + count;
	     b += t->block_elems) {
		uint64_t e = b + t->block_elems < first + count ? b + t->block_elems : first + count;
		kern->dq_classes(codes + b, (uint32_t)(e - b), cls + b);
	}
	struct lcp_dequant_run r = { .group_size = G, .sd = sd, .off = off, .rank = t->rank,
				     .vt = t->vt, .cols = t->cols };
	if (!t->rank) {
		r.cls = t->dq ? cls + first : NULL;
		r.codes = codes + first;
		r.n = (uint32_t)count;
		r.phase = (uint32_t)(first % G);
		r.out = out;
		kern->dequant_store(&r, t->dtype);
		return LCP_OK;
	}
	/* With a low-rank term, one run per row piece, each with its row of U. */
	const uint8_t *u_src = code_src + code_len;
	for (size_t i = 0; i < u_floats; i++)
		u[i] = lcp_f16_to_f32(lcp_load_le16(u_src + 2 * i));
	for (uint64_t pos = first; pos < first + count;) {
		uint64_t e = cb + pos, col = e % t->cols;
		uint64_t len = t->cols - col < first + count - pos ? t->cols - col : first + count - pos;
		r.codes = codes + pos;
		r.cls = t->dq ? cls + pos : NULL;
		r.n = (uint32_t)len;
		r.sd = sd + (pos / G - g0);
		r.off = off + (pos / G - g0);
		r.phase = (uint32_t)(pos % G);
		r.u = u + (e / t->cols - r0) * t->rank;
		r.col = col;
		r.out = out + (pos - first) * t->elem_bytes;
		kern->dequant_store(&r, t->dtype);
		pos += len;
	}
	return LCP_OK;
}

/* Elements of a chunk, checked against the tensor's chunking. */
static lcp_err chunk_elems(const struct lcp_codec_tensor *t, const struct lcp_chunk_info *chunk,
			   uint64_t *m)
{
	uint64_t b = chunk->elem_begin, e = chunk->elem_end;
	if (b >= t->n || b % t->chunk_elems || e != (t->n - b < t->chunk_elems ? t->n : b + t->chunk_elems))
		return LCP_ERR_RANGE;
	*m = e - b;
	return LCP_OK;
}

static lcp_err decode(const struct lcp_codec_tensor *t, const struct lcp_chunk_info *chunk,
		      const uint8_t *data, size_t data_len, uint64_t m, uint64_t first,
		      uint64_t count, void *out)
{
	if (lcp_xxh3(data, data_len) != chunk->stored_xxh3)
		return LCP_ERR_CHECKSUM;
	if (t->encoding == LCP_ENC_LOSSLESS)
		return decode_lossless(t, data, data_len, m, first, count, out);
	return decode_quant(t, data, data_len, chunk->elem_begin, m, first, count, out);
}

lcp_err lcp_codec_decode_chunk(const struct lcp_codec_tensor *t, const struct lcp_chunk_info *chunk,
			       const uint8_t *data, size_t data_len, void *out, size_t out_len)
{
	if (!t || !chunk || (!data && data_len) || !out)
		return LCP_ERR_INVAL;
	uint64_t m;
	lcp_err err = chunk_elems(t, chunk, &m);
	if (!err && out_len != m * t->elem_bytes)
		err = LCP_ERR_RANGE;
	return err ? err : decode(t, chunk, data, data_len, m, 0, m, out);
}

lcp_err lcp_codec_decode_range(const struct lcp_codec_tensor *t, const struct lcp_chunk_info *chunk,
			       const uint8_t *data, size_t data_len, uint64_t first, uint64_t count,
			       void *out, size_t out_len)
{
	if (!t || !chunk || (!data && data_len) || !out)
		return LCP_ERR_INVAL;
	uint64_t m;
	lcp_err err = chunk_elems(t, chunk, &m);
	if (!err && (count == 0 || first < chunk->elem_begin || first >= chunk->elem_end ||
		     count > chunk->elem_end - first || out_len != count * t->elem_bytes))
		err = LCP_ERR_RANGE;
	return err ? err : decode(t, chunk, data, data_len, m, first - chunk->elem_begin, count, out);
}
