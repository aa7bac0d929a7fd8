/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The encoder: quality-floor loop, low-rank choice, quantization plan,
 * chunking, entropy coding and the params block (layout in codec_format.h);
 * the chosen encoding is checked by decoding it through decode.c, so its
 * metrics and output checksums describe exactly what readers will get
 * (candidates are ranked on their real stored bytes and the quantizer's own
 * error sums, which spares a decode per candidate).
 */
#include "lcpfs/codec.h"

#include <math.h>
#include <string.h>
#include <zstd.h>

#include "codec/codec_format.h"
#include "codec/half.h"
#include "codec/lossless.h"
#include "codec/lowrank.h"
#include "codec/quant.h"
#include "codec/rans.h"
#include "codec/stream.h"
#include "common/alloc.h"
#include "common/buf.h"
#include "common/checksum.h"
#include "common/le.h"
#include "lcpfs/qlor.h"

/* zstd level for all streams. Code streams are almost pure Huffman
 * literals: measured on faceres 4-bit codes, level 1 stores 3.49 bits/code
 * for nibble-packed codes (order-0 entropy 3.52), while levels 3-9 on
 * one-code-per-byte streams find many useless short matches (3.99). */
#define ZSTD_LEVEL 1
/* The 4-bit symmetric class (plan_quant) is dependent quantization
 * (quant.h) with half-step D = DQ_DELTA * rms_group; DQ_DELTA sets the
 * rate. Measured choices are in docs/DESIGN-notes.md ("4-bit fidelity"). */
#define DQ_DELTA 0.14f
/* Low rank (lowrank_choose, encode_as): the exchange rate between stored
 * bits and error, ~6.02 dB per bit per weight for a uniform quantizer at
 * high rate; the most bits/weight the factors may take; fp16 factor peaks
 * kept away from overflow and from the subnormal range; the fixed seed of
 * the randomized SVD. */
#define LR_DB_PER_BIT 6.02
#define LR_MAX_BPW 1.0
#define LR_FP16_MAX 1.0e4f
#define LR_FP16_MIN 1.0e-3f
#define LR_SEED 0x6c637066734c52ull
/* Rank of the first, cheaper low-rank fit (lowrank_choose). */
#define LR_PROBE_RANK 8
/* Bits per weight a low-rank encoding may exceed the plain one by before
 * its step is corrected. */
#define LR_RATE_SLACK 0.01

struct lcp_codec_ctx {
	ZSTD_CCtx *zc;
};

/* Low-rank part of a tensor during encoding: fp16 factors as stored, and
 * their binary32 values as the decoder will see them. */
struct lowrank {
	uint16_t rank;
	uint64_t rows, cols;
	uint16_t *u16;  /* rows x rank */
	uint16_t *vt16; /* rank x cols */
	float *u;       /* rows x rank, binary32 values of u16 */
	float *vt;      /* rank x cols */
};

void lcp_encoded_free(struct lcp_encoded *enc)
{
	if (!enc)
		return;
	lcp_free(enc->params);
	lcp_free(enc->data);
	lcp_free(enc->chunks);
	lcp_qlor_free(&enc->qlor);
	memset(enc, 0, sizeof *enc);
}

lcp_err lcp_codec_ctx_create(struct lcp_codec_ctx **out)
{
	*out = NULL;
	struct lcp_codec_ctx *c = lcp_calloc(1, sizeof *c);
	if (!c)
		return LCP_ERR_NOMEM;
	c->zc = ZSTD_createCCtx();
	/* No content size in frames: the params block already fixes every
	 * stream's length, and small chunks feel every byte. */
	if (!c->zc || ZSTD_isError(ZSTD_CCtx_setParameter(c->zc, ZSTD_c_compressionLevel, ZSTD_LEVEL)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(c->zc, ZSTD_c_contentSizeFlag, 0))) {
		ZSTD_freeCCtx(c->zc);
		lcp_free(c);
		return LCP_ERR_NOMEM;
	}
	*out = c;
	return LCP_OK;
}

void lcp_codec_ctx_free(struct lcp_codec_ctx *ctx)
{
	if (!ctx)
		return;
	ZSTD_freeCCtx(ctx->zc);
	lcp_free(ctx);
}

bool lcp_codec_config_ok(const struct lcp_config *cfg)
{
	return cfg && (cfg->bits == 4 || cfg->bits == 8) && cfg->rank <= MAX_RANK &&
	       cfg->group_size >= 8 && cfg->group_size <= 256 &&
	       cfg->quality_threshold > 0.0f && cfg->quality_threshold <= 1.0f;
}

/* Element i of the input as float (F64 rounds to nearest; overflow -> inf). */
static float load_elem(enum lcp_dtype dt, const uint8_t *p, uint64_t i)
{
	switch (dt) {
	case LCP_DTYPE_F32:
		return lcp_load_lef32(p + 4 * i);
	case LCP_DTYPE_F16:
		return lcp_f16_to_f32(lcp_load_le16(p + 2 * i));
	case LCP_DTYPE_BF16:
		return lcp_bf16_to_f32(lcp_load_le16(p + 2 * i));
	default:
		return (float)lcp_load_lef64(p + 8 * i);
	}
}

/* Elements [0, m) of p as float into x; false if any is NaN or infinite.
 * F32, the common case, gets its own loop: no per-element dispatch, and the
 * finiteness test on the bits so the loop has no early exit. */
static bool load_elems(enum lcp_dtype dt, const uint8_t *p, uint64_t m, float *x)
{
	if (dt == LCP_DTYPE_F32) {
		uint32_t bad = 0;
		for (uint64_t i = 0; i < m; i++) {
			uint32_t u = lcp_load_le32(p + 4 * i);
			bad |= (u & 0x7f800000u) == 0x7f800000u;
			memcpy(&x[i], &u, sizeof u);
		}
		return !bad;
	}
	bool finite = true;
	for (uint64_t i = 0; i < m; i++) {
		x[i] = load_elem(dt, p, i);
		finite = finite && isfinite(x[i]);
	}
	return finite;
}

/* Adds sum(a^2), sum(b^2), sum(ab), sum((a-b)^2) over m elements of two
 * arrays of dtype dt to s[0..3], in double. */
static void acc_metrics(enum lcp_dtype dt, const uint8_t *pa, const uint8_t *pb, uint64_t m,
			double s[4])
{
	double xx = s[0], yy = s[1], xy = s[2], ee = s[3];
	for (uint64_t i = 0; i < m; i++) {
		double a, b;
		if (dt == LCP_DTYPE_F32) {
			a = lcp_load_lef32(pa + 4 * i);
			b = lcp_load_lef32(pb + 4 * i);
		} else if (dt == LCP_DTYPE_F64) {
			a = lcp_load_lef64(pa + 8 * i);
			b = lcp_load_lef64(pb + 8 * i);
		} else {
			a = load_elem(dt, pa, i);
			b = load_elem(dt, pb, i);
		}
		xx += a * a;
		yy += b * b;
		xy += a * b;
		ee += (a - b) * (a - b);
	}
	s[0] = xx;
	s[1] = yy;
	s[2] = xy;
	s[3] = ee;
}

/* Chunk length in elements: about target, a multiple of unit (the group
 * size, or 1 for lossless), and of cols when whole rows fit the target. */
static uint32_t chunk_elems_for(uint64_t cols, uint64_t target, uint32_t unit)
{
	uint64_t step = unit;
	if (cols > 0 && cols <= target) {
		uint64_t a = cols, b = unit;
		while (b) {
			uint64_t t = a % b;
			a = b;
			b = t;
		}
		uint64_t l = cols / a * unit;
		if (l <= target)
			step = l;
	}
	uint64_t c = target / step * step;
	return (uint32_t)(c ? c : step);
}

/* The params block: version 3 for dependent quantization and lossless
 * tensors, version 2 for the other quantized ones (codec_format.h). */
static lcp_err params_build(const struct lcp_tensor_view *t, enum lcp_encoding enc,
			    const struct lcp_qparams *q, bool dq, const struct lowrank *lr,
			    uint32_t group_size, uint32_t chunk_elems, uint32_t block_elems,
			    uint8_t **out, size_t *out_len)
{
	struct lcp_buf b = LCP_BUF_INIT;
	lcp_err err = lcp_buf_append(&b, PARAMS_MAGIC, 4);
	if (!err)
		err = lcp_buf_append_u8(&b, dq || enc == LCP_ENC_LOSSLESS ? PARAMS_VERSION_3 : PARAMS_VERSION_2);
	if (!err)
		err = lcp_buf_append_u8(&b, (uint8_t)enc);
	if (!err)
		err = lcp_buf_append_u8(&b, (uint8_t)t->dtype);
	if (!err)
		err = lcp_buf_append_u8(&b, enc == LCP_ENC_LOSSLESS ? 0 : enc == LCP_ENC_Q4 ? 4 : 8);
	if (!err)
		err = lcp_buf_append_u8(&b, (uint8_t)((enc != LCP_ENC_LOSSLESS && q->symmetric ? 1 : 0) |
						     (dq ? PARAMS_FLAG_ENTROPY | PARAMS_FLAG_DQ : 0)));
	if (!err)
		err = lcp_buf_append_u8(&b, enc == LCP_ENC_LOSSLESS ? 0 : q->scale_log2_steps);
	if (!err)
		err = lcp_buf_append_le16(&b, lr ? lr->rank : 0);
	if (!err)
		err = lcp_buf_append_le32(&b, group_size);
	if (!err)
		err = lcp_buf_append_le32(&b, chunk_elems);
	if (!err)
		err = lcp_buf_append_lef32(&b, enc == LCP_ENC_LOSSLESS ? 0.0f : q->super);
	if (!err)
		err = lcp_buf_append_u8(&b, (uint8_t)t->ndims);
	for (uint32_t i = 0; !err && i < t->ndims; i++)
		err = lcp_buf_append_le64(&b, t->dims[i]);
	for (uint64_t i = 0; !err && lr && i < (uint64_t)lr->rank * lr->cols; i++)
		err = lcp_buf_append_le16(&b, lr->vt16[i]);
	if (!err && block_elems)
		err = lcp_buf_append_le32(&b, block_elems);
	if (!err)
		err = lcp_buf_append_le64(&b, lcp_xxh3(b.data, b.len));
	if (err) {
		lcp_buf_free(&b);
		return err;
	}
	*out = b.data;
	*out_len = b.len;
	return LCP_OK;
}

/* Appends src as a zstd frame when that is smaller (*mode = 1), else as it
 * is (*mode = 0). */
static lcp_err put_stream(struct lcp_codec_ctx *ctx, struct lcp_buf *b, const uint8_t *src,
			  size_t len, uint8_t *mode)
{
	size_t bound = ZSTD_compressBound(len);
	lcp_err err = lcp_buf_reserve(b, bound > len ? bound : len);
	if (err)
		return err;
	size_t z = ZSTD_compress2(ctx->zc, b->data + b->len, bound, src, len);
	if (!ZSTD_isError(z) && z < len) {
		*mode = 1;
		b->len += z;
		return LCP_OK;
	}
	*mode = 0;
	return lcp_buf_append(b, src, len);
}

struct chunk_plan {
	uint64_t n;
	uint32_t chunk_elems;
	uint32_t nchunks;
};

static lcp_err alloc_chunks(struct lcp_encoded *out, const struct chunk_plan *pl)
{
	out->nchunks = pl->nchunks;
	out->chunks = lcp_calloc(pl->nchunks ? pl->nchunks : 1, sizeof *out->chunks);
	return out->chunks ? LCP_OK : LCP_ERR_NOMEM;
}

static void plan_chunks(struct chunk_plan *pl, uint64_t n, uint64_t cols, uint64_t target,
			uint32_t unit)
{
	pl->n = n;
	pl->chunk_elems = chunk_elems_for(cols, target, unit);
	pl->nchunks = (uint32_t)((n + pl->chunk_elems - 1) / pl->chunk_elems);
}

static lcp_err encode_lossless_chunks(struct lcp_codec_ctx *ctx, const struct lcp_tensor_view *t,
				      const struct chunk_plan *pl, uint64_t period, uint32_t block_elems,
				      struct lcp_encoded *out)
{
	unsigned eb = lcp_codec_elem_bytes(t->dtype);
	struct lcp_buf data = LCP_BUF_INIT;
	uint8_t *scratch = lcp_malloc(lcp_lossless_encode_scratch(eb, pl->chunk_elems));
	lcp_err err = scratch ? LCP_OK : LCP_ERR_NOMEM;
	const uint8_t *src = t->data;
	for (uint32_t c = 0; !err && c < pl->nchunks; c++) {
		struct lcp_chunk_info *ci = &out->chunks[c];
		ci->elem_begin = (uint64_t)c * pl->chunk_elems;
		ci->elem_end = ci->elem_begin + pl->chunk_elems < pl->n ? ci->elem_begin + pl->chunk_elems : pl->n;
		ci->data_off = data.len;
		err = lcp_lossless_encode_chunk(ctx->zc, eb, src + ci->elem_begin * eb,
						ci->elem_end - ci->elem_begin, period, block_elems, scratch,
						&data);
		ci->data_len = data.len - ci->data_off;
	}
	lcp_free(scratch);
	if (err) {
		lcp_buf_free(&data);
		return err;
	}
	out->data = data.data;
	out->data_len = data.len;
	return LCP_OK;
}

/* How the groups of one tensor are quantized. */
struct qplan {
	struct lcp_qparams q; /* the kernel's parameters (bits = symbol width) */
	bool dq;              /* dependent quantization: q is {8, symmetric} */
	float *gstep;         /* dq: every group's half-step, then its
	                         representable scale */
};

/* Sums of squares in four interleaved partial sums: a fixed order (the
 * payload stays deterministic) that is not one long chain of dependent adds,
 * which made these loops latency-bound. */
static float group_rms(const float *x, uint32_t n)
{
	float s[4] = {0.0f, 0.0f, 0.0f, 0.0f};
	uint32_t i = 0;
	for (; i + 4 <= n; i += 4)
		for (unsigned k = 0; k < 4; k++)
			s[k] += x[i + k] * x[i + k];
	for (; i < n; i++)
		s[0] += x[i] * x[i];
	return sqrtf(((s[0] + s[1]) + (s[2] + s[3])) / (float)n);
}

static double sumsq(const float *x, uint64_t n)
{
	double s[4] = {0.0, 0.0, 0.0, 0.0};
	uint64_t i = 0;
	for (; i + 4 <= n; i += 4)
		for (unsigned k = 0; k < 4; k++)
			s[k] += (double)x[i + k] * x[i + k];
	for (; i < n; i++)
		s[0] += (double)x[i] * x[i];
	return (s[0] + s[1]) + (s[2] + s[3]);
}

/* A chunk's streams while the encoder chooses how to store its codes. */
struct chunk_streams {
	struct lcp_buf side;  /* side stream as stored */
	uint8_t side_mode;    /* enum side_mode */
	struct lcp_buf alt;   /* codes raw or as a zstd frame, whichever is smaller */
	uint8_t alt_mode;     /* CODE_RAW or CODE_ZSTD */
	struct lcp_buf rans;  /* codes as rANS blocks (empty without a model) */
};

static void chunk_streams_free(struct chunk_streams *cs, uint32_t n)
{
	for (uint32_t c = 0; cs && c < n; c++) {
		lcp_buf_free(&cs[c].side);
		lcp_buf_free(&cs[c].alt);
		lcp_buf_free(&cs[c].rans);
	}
	lcp_free(cs);
}

/* Side streams go as planes unless zstd or raw is smaller by more than 1
 * part in SIDE_PREFERENCE: measured on the decode benchmark's matrix, zstd
 * decoded the 8-bit class's side streams (0.55 bits/weight) in 0.11 ns per
 * weight, a sixth of the whole decode, and their planes take fewer bytes;
 * the 4-bit class's planes take ~7% more than zstd there (0.005 bits per
 * weight for 0.03 ns per weight), and a 10% margin cost stories260K's 8-bit
 * tensors 0.04 bits/weight, so the margin is the codes' 2%. */
#define SIDE_PREFERENCE 50u

/* Dependent quantization of the whole tensor (quant.h): every group's
 * scale code, then each rANS block's chains. */
static lcp_err quant_dq(const float *x, const struct qplan *qp, uint32_t G,
			const struct chunk_plan *pl, uint32_t block_elems, uint8_t *codes, uint16_t *sc,
			uint8_t *aux, double *sqerr)
{
	uint64_t n = pl->n;
	void *work = lcp_malloc(lcp_quant_dq_work_bytes(block_elems));
	if (!work)
		return LCP_ERR_NOMEM;
	for (uint64_t g = 0; g < (n + G - 1) / G; g++) {
		sc[g] = lcp_quant_scale_code(&qp->q, qp->gstep[g], &qp->gstep[g]);
		aux[g] = 0;
	}
	double e = 0.0;
	for (uint64_t b = 0; b < n;) {
		uint64_t chunk_end = (b / pl->chunk_elems + 1) * pl->chunk_elems;
		uint64_t end = b + block_elems < chunk_end ? b + block_elems : chunk_end;
		end = end < n ? end : n;
		e += lcp_quant_dq_block(x + b, (uint32_t)(end - b), qp->gstep + b / G, G,
					(uint32_t)(b % G), codes + b, work);
		b = end;
	}
	lcp_free(work);
	*sqerr += e;
	return LCP_OK;
}

/*
 * Quantizes every group, then entropy-codes chunk by chunk: each chunk's
 * codes as rANS blocks with the chunk's own table, or raw or as zstd when
 * that is clearly smaller (RANS_PREFERENCE).
 */
static lcp_err encode_quant_chunks(struct lcp_codec_ctx *ctx, const float *x,
				   const struct qplan *qp, const struct lowrank *lr, uint32_t G,
				   const struct chunk_plan *pl, uint32_t block_elems,
				   struct lcp_encoded *out, double *sqerr)
{
	const struct lcp_qparams *q = &qp->q;
	uint64_t n = pl->n, ngroups = (n + G - 1) / G;
	unsigned sbytes = q->scale_log2_steps == 8 ? 2 : 1;
	uint8_t *codes = lcp_malloc(n ? n : 1), *aux = lcp_malloc(ngroups ? ngroups : 1);
	uint16_t *sc = lcp_malloc((ngroups ? ngroups : 1) * sizeof *sc);
	/* side bytes, then codes packed for raw and zstd (two per byte for
	 * 4-bit symbols) */
	uint64_t cg = pl->chunk_elems / G;
	uint8_t *stream = lcp_malloc((sbytes + 1) * cg + pl->chunk_elems);
	struct chunk_streams *cs = lcp_calloc(pl->nchunks ? pl->nchunks : 1, sizeof *cs);
	lcp_err err = codes && aux && sc && stream && cs ? LCP_OK : LCP_ERR_NOMEM;
	double e = 0.0;
	for (uint64_t g = 0; !err && !qp->dq && g < ngroups; g++) {
		uint64_t beg = g * G;
		uint32_t len = (uint32_t)(n - beg < G ? n - beg : G);
		e += lcp_quant_group(x + beg, len, q, codes + beg, &sc[g], &aux[g]);
	}
	if (!err && qp->dq)
		err = quant_dq(x, qp, G, pl, block_elems, codes, sc, aux, &e);
	for (uint32_t c = 0; !err && c < pl->nchunks; c++) {
		uint64_t cb = (uint64_t)c * pl->chunk_elems;
		uint64_t m = cb + pl->chunk_elems < n ? pl->chunk_elems : n - cb;
		uint64_t ng = (m + G - 1) / G, g0 = cb / G;
		uint8_t *side = stream, *packed = stream + (sbytes + 1) * ng;
		for (uint64_t g = 0; g < ng; g++) {
			if (sbytes == 2) {
				side[g] = (uint8_t)(sc[g0 + g] >> 8);
				side[ng + g] = (uint8_t)sc[g0 + g];
			} else {
				side[g] = (uint8_t)sc[g0 + g];
			}
			side[sbytes * ng + g] = aux[g0 + g];
		}
		size_t code_len = m;
		if (q->bits == 4) {
			code_len = (m + 1) / 2;
			memset(packed, 0, code_len);
			for (uint64_t i = 0; i < m; i++)
				packed[i / 2] |= (uint8_t)(codes[cb + i] << (4 * (i & 1)));
		} else {
			memcpy(packed, codes + cb, m);
		}
		struct lcp_buf planes = LCP_BUF_INIT;
		uint8_t zmode = 0;
		for (unsigned k = 0; !err && k <= sbytes; k++)
			err = lcp_stream_put_plane(&planes, side + k * ng, ng, (uint32_t)ng, LCP_RANS_MAX_LANES);
		if (!err)
			err = put_stream(ctx, &cs[c].side, side, (sbytes + 1) * ng, &zmode);
		cs[c].side_mode = zmode ? SIDE_ZSTD : SIDE_RAW;
		if (!err && (uint64_t)planes.len * SIDE_PREFERENCE <=
				    (uint64_t)cs[c].side.len * (SIDE_PREFERENCE + 1)) {
			lcp_buf_free(&cs[c].side);
			cs[c].side = planes;
			cs[c].side_mode = SIDE_PLANES;
		} else {
			lcp_buf_free(&planes);
		}
		if (!err)
			err = put_stream(ctx, &cs[c].alt, packed, code_len, &zmode);
		cs[c].alt_mode = zmode ? CODE_ZSTD : CODE_RAW;
		if (!err)
			err = lcp_stream_put_rans(&cs[c].rans, codes + cb, m, block_elems,
						  lcp_stream_lanes(m, block_elems), NULL);
	}
	/* The chunks as stored: header, side stream, codes, low-rank rows. */
	struct lcp_buf data = LCP_BUF_INIT;
	for (uint32_t c = 0; !err && c < pl->nchunks; c++) {
		struct lcp_chunk_info *ci = &out->chunks[c];
		ci->elem_begin = (uint64_t)c * pl->chunk_elems;
		ci->elem_end = ci->elem_begin + pl->chunk_elems < n ? ci->elem_begin + pl->chunk_elems : n;
		bool use_rans = lcp_stream_prefer_rans(cs[c].rans.len, cs[c].alt.len,
						       lcp_stream_lanes(ci->elem_end - ci->elem_begin, block_elems));
		const struct lcp_buf *code = use_rans ? &cs[c].rans : &cs[c].alt;
		uint8_t modes = (uint8_t)(cs[c].side_mode | (use_rans ? CODE_RANS : cs[c].alt_mode) << 2);
		ci->data_off = data.len;
		err = lcp_buf_append_u8(&data, modes);
		if (!err)
			err = lcp_buf_append_le32(&data, (uint32_t)cs[c].side.len);
		if (!err)
			err = lcp_buf_append(&data, cs[c].side.data, cs[c].side.len);
		if (!err)
			err = lcp_buf_append(&data, code->data, code->len);
		if (!err && lr) {
			uint64_t r0, nrows;
			lcp_codec_touched_rows(lr->cols, ci->elem_begin, ci->elem_end - ci->elem_begin, &r0,
					       &nrows);
			for (uint64_t i = 0; !err && i < nrows * lr->rank; i++)
				err = lcp_buf_append_le16(&data, lr->u16[r0 * lr->rank + i]);
		}
		ci->data_len = data.len - ci->data_off;
	}
	chunk_streams_free(cs, pl->nchunks);
	lcp_free(codes);
	lcp_free(aux);
	lcp_free(sc);
	lcp_free(stream);
	*sqerr = e;
	if (err) {
		lcp_buf_free(&data);
		return err;
	}
	out->data = data.data;
	out->data_len = data.len;
	return LCP_OK;
}

/* Decodes every chunk through the public decode path (so the metrics and
 * output checksums describe exactly what readers will get), fills
 * output_xxh3, cosine and SQNR. */
static lcp_err measure(const struct lcp_tensor_view *t, struct lcp_encoded *out)
{
	struct lcp_codec_tensor *ct;
	lcp_err err = lcp_codec_tensor_open(out->params, out->params_len, &ct);
	if (err)
		return err;
	unsigned eb = ct->elem_bytes;
	uint8_t *buf = lcp_malloc((size_t)ct->chunk_elems * eb);
	if (!buf) {
		lcp_codec_tensor_free(ct);
		return LCP_ERR_NOMEM;
	}
	double sums[4] = {0.0, 0.0, 0.0, 0.0};
	/* Lossless must give the input bytes back; then the metrics are exact
	 * by definition (and NaN/Inf inputs would make the sums meaningless). */
	bool exact = out->encoding == LCP_ENC_LOSSLESS;
	for (uint32_t c = 0; !err && c < out->nchunks; c++) {
		struct lcp_chunk_info *ci = &out->chunks[c];
		uint64_t m = ci->elem_end - ci->elem_begin;
		ci->stored_xxh3 = lcp_xxh3(out->data + ci->data_off, ci->data_len);
		err = lcp_codec_decode_chunk(ct, ci, out->data + ci->data_off, ci->data_len, buf, m * eb);
		if (err)
			break;
		ci->output_xxh3 = lcp_xxh3(buf, m * eb);
		const uint8_t *src = (const uint8_t *)t->data + ci->elem_begin * eb;
		if (exact) {
			if (memcmp(src, buf, m * eb) != 0)
				err = LCP_ERR_CHECKSUM;
			continue;
		}
		acc_metrics(t->dtype, src, buf, m, sums);
	}
	lcp_free(buf);
	lcp_codec_tensor_free(ct);
	if (err)
		return err;
	double xx = sums[0], yy = sums[1], xy = sums[2], ee = sums[3];
	if (exact) {
		out->cosine = 1.0;
		out->sqnr_db = INFINITY;
		return LCP_OK;
	}
	if (xx == 0.0 && yy == 0.0)
		out->cosine = 1.0;
	else if (xx == 0.0 || yy == 0.0)
		out->cosine = 0.0;
	else
		out->cosine = xy / (sqrt(xx) * sqrt(yy));
	out->sqnr_db = ee == 0.0 ? INFINITY : 10.0 * log10(xx / ee);
	return LCP_OK;
}

/*
 * Chooses the quantizer. The 4-bit symmetric class (the default preset) is
 * dependent quantization with a step proportional to each group's RMS
 * (docs/DESIGN-notes.md has what it was measured against); the other
 * classes are 16 or 256 uniform levels with an MSE scale search.
 */
static lcp_err plan_quant(struct qplan *qp, const float *x, uint64_t n, enum lcp_encoding enc,
			  const struct lcp_config *cfg, float step_mult)
{
	memset(qp, 0, sizeof *qp);
	qp->q.bits = enc == LCP_ENC_Q4 ? 4 : 8;
	qp->q.symmetric = cfg->symmetric;
	qp->q.scale_log2_steps = enc == LCP_ENC_Q4 ? 4 : 8;
	qp->dq = enc == LCP_ENC_Q4 && cfg->symmetric;
	if (!qp->dq) {
		qp->q.super = lcp_quant_super(x, n, cfg->group_size, qp->q.bits, qp->q.symmetric);
		return LCP_OK;
	}
	uint32_t G = cfg->group_size;
	qp->gstep = lcp_malloc(((n + G - 1) / G + 1) * sizeof *qp->gstep);
	if (!qp->gstep)
		return LCP_ERR_NOMEM;
	qp->q.bits = 8;
	float coef = step_mult * DQ_DELTA, top = 0.0f;
	for (uint64_t g = 0; g < n; g += G) {
		uint32_t len = (uint32_t)(n - g < G ? n - g : G);
		float s = coef * group_rms(x + g, len);
		qp->gstep[g / G] = s;
		if (s > top)
			top = s;
	}
	/* One scale code of headroom: the largest step rounds to a code
	 * below 255, never above the grid. */
	float super = top * 1.05f;
	qp->q.super = isfinite(super) ? super : top;
	return LCP_OK;
}

static uint64_t elem_count(const struct lcp_tensor_view *t, uint64_t *cols)
{
	uint64_t n = 1;
	*cols = 1;
	for (uint32_t i = 0; i < t->ndims; i++) {
		n *= t->dims[i];
		*cols = t->dims[i];
	}
	return n;
}

static void lowrank_free(struct lowrank *lr)
{
	lcp_free(lr->u16);
	lcp_free(lr->vt16);
	lcp_free(lr->u);
	lcp_free(lr->vt);
	memset(lr, 0, sizeof *lr);
}

/*
 * Fits W ~ U V^T of rank up to a ceiling and keeps the prefix r that the
 * rule in DESIGN.md prefers: each kept component must remove more error (in
 * dB, from the singular values: 10 log10 of the energy left) than spending
 * its stored bits on quantization would (LR_DB_PER_BIT per bit per weight).
 * The factors are stored in fp16, balanced per component so both sides share
 * the dynamic range. lr->rank == 0 when nothing pays (the common case: trained
 * weights are mostly full-rank noise at the scale of 4-bit error).
 * total: the sum of squares of x.
 */
static lcp_err lowrank_choose(const float *x, uint64_t rows, uint64_t cols, double total,
			      uint16_t ceiling, struct lowrank *lr)
{
	memset(lr, 0, sizeof *lr);
	double comp_bpw = 16.0 * (double)(rows + cols) / ((double)rows * (double)cols);
	uint64_t kmax = ceiling;
	if (kmax > rows)
		kmax = rows;
	if (kmax > cols)
		kmax = cols;
	if ((double)kmax * comp_bpw > LR_MAX_BPW)
		kmax = (uint64_t)(LR_MAX_BPW / comp_bpw);
	if (kmax == 0 || rows > UINT32_MAX || cols > UINT32_MAX)
		return LCP_OK;
	float *u = lcp_malloc(rows * kmax * sizeof *u);
	float *vt = lcp_malloc(kmax * cols * sizeof *vt);
	float *sv = lcp_malloc(kmax * sizeof *sv);
	lcp_err err = u && vt && sv ? LCP_OK : LCP_ERR_NOMEM;
	/* Probe at a small rank first (the sketch, and so the fit's cost, grows
	 * with k): kept ranks are 0 or 1 on the shared weights. Only when every
	 * probed component pays is the fit redone at the full ceiling. */
	uint64_t kf = kmax < LR_PROBE_RANK ? kmax : LR_PROBE_RANK, best_r = 0;
	while (!err) {
		err = lcp_lowrank_fit(x, (uint32_t)rows, (uint32_t)cols, (uint32_t)kf, LR_SEED, u, vt,
				      sv);
		if (err == LCP_ERR_NOMEM)
			goto out;
		if (err) { /* a numerical failure only costs the low-rank part */
			err = LCP_OK;
			goto out;
		}
		double left = total, best_j = 0.0;
		best_r = 0;
		for (uint64_t r = 1; r <= kf && total > 0.0; r++) {
			left -= (double)sv[r - 1] * sv[r - 1];
			if (!(left > 0.0))
				left = total * 1e-12; /* (numerically) exact fit */
			double j = 10.0 * log10(left / total) + LR_DB_PER_BIT * comp_bpw * (double)r;
			if (j < best_j) {
				best_j = j;
				best_r = r;
			}
		}
		if (best_r < kf || kf == kmax)
			break;
		kf = kmax;
	}
	if (err || best_r == 0)
		goto out;
	lr->rank = (uint16_t)best_r;
	lr->rows = rows;
	lr->cols = cols;
	lr->u16 = lcp_malloc(rows * best_r * sizeof *lr->u16);
	lr->vt16 = lcp_malloc(best_r * cols * sizeof *lr->vt16);
	lr->u = lcp_malloc(rows * best_r * sizeof *lr->u);
	lr->vt = lcp_malloc(best_r * cols * sizeof *lr->vt);
	if (!lr->u16 || !lr->vt16 || !lr->u || !lr->vt) {
		err = LCP_ERR_NOMEM;
		goto out;
	}
	for (uint64_t k = 0; k < best_r; k++) {
		float ua = 0.0f, va = 0.0f;
		for (uint64_t i = 0; i < rows; i++)
			ua = fmaxf(ua, fabsf(u[i * kf + k]));
		for (uint64_t c = 0; c < cols; c++)
			va = fmaxf(va, fabsf(vt[k * cols + c]));
		float f = ua > 0.0f && va > 0.0f ? sqrtf(va / ua) : 1.0f;
		float peak = sqrtf(ua * va);
		/* Outside fp16's comfortable range the factors would lose
		 * their precision or overflow: no low-rank part then. */
		if (!(peak < LR_FP16_MAX) || !(peak > LR_FP16_MIN) || !isfinite(f)) {
			lowrank_free(lr);
			goto out;
		}
		for (uint64_t i = 0; i < rows; i++) {
			lr->u16[i * best_r + k] = lcp_f16_from_f32(u[i * kf + k] * f);
			lr->u[i * best_r + k] = lcp_f16_to_f32(lr->u16[i * best_r + k]);
		}
		for (uint64_t c = 0; c < cols; c++) {
			lr->vt16[k * cols + c] = lcp_f16_from_f32(vt[k * cols + c] / f);
			lr->vt[k * cols + c] = lcp_f16_to_f32(lr->vt16[k * cols + c]);
		}
	}
out:
	lcp_free(u);
	lcp_free(vt);
	lcp_free(sv);
	return err;
}

/* The quantizer's input: x itself, or with a low-rank part the residual
 * W - U V^T, computed exactly as decoding adds the product back. *res gets
 * the buffer to free (NULL when x is used as is). */
static lcp_err quant_input(const float *x, uint64_t n, uint64_t cols, const struct lowrank *lr,
			   const float **xq, float **res)
{
	*xq = x;
	*res = NULL;
	if (!lr)
		return LCP_OK;
	float *r = lcp_malloc(n * sizeof *r);
	if (!r)
		return LCP_ERR_NOMEM;
	for (uint64_t i = 0; i < n / cols; i++) {
		float *row = r + i * cols;
		lcp_codec_lr_segment(lr->u + i * lr->rank, lr->vt, cols, lr->rank, 0, cols, row);
		for (uint64_t j = 0; j < cols; j++)
			row[j] = x[i * cols + j] - row[j];
	}
	*xq = r;
	*res = r;
	return LCP_OK;
}

/* Encodes the quantizer input xq (x, or its low-rank residual: quant_input):
 * chunks and params block. sqnr_db is the quantizer's own estimate (its
 * squared error against x); measure() replaces it, and cosine, by the
 * decoded truth once the encoding is chosen. */
static lcp_err encode_quant(struct lcp_codec_ctx *ctx, const struct lcp_tensor_view *t,
			    double energy, const float *xq, enum lcp_encoding enc,
			    const struct lcp_config *cfg, const struct lowrank *lr, float step_mult,
			    struct lcp_encoded *out)
{
	uint64_t cols;
	uint64_t n = elem_count(t, &cols);
	struct qplan qp;
	struct chunk_plan pl;
	double sqerr = 0.0;
	lcp_err err = plan_quant(&qp, xq, n, enc, cfg, step_mult);
	out->encoding = enc;
	out->bits = enc == LCP_ENC_Q4 ? 4 : 8;
	out->group_size = cfg->group_size;
	out->symmetric = cfg->symmetric;
	out->rank = lr ? lr->rank : 0;
	plan_chunks(&pl, n, cols, CHUNK_TARGET_ELEMS, cfg->group_size);
	uint32_t block_elems = BLOCK_ELEMS < pl.chunk_elems ? BLOCK_ELEMS : pl.chunk_elems;
	if (!err)
		err = alloc_chunks(out, &pl);
	if (!err)
		err = encode_quant_chunks(ctx, xq, &qp, lr, cfg->group_size, &pl, block_elems, out,
					  &sqerr);
	lcp_free(qp.gstep);
	if (!err)
		err = params_build(t, enc, &qp.q, qp.dq, lr, cfg->group_size, pl.chunk_elems,
				   block_elems, &out->params, &out->params_len);
	if (!err) {
		out->sqnr_db = sqerr > 0.0 ? 10.0 * log10(energy / sqerr) : INFINITY;
		out->stored_bytes = out->params_len + out->data_len;
		out->qlor.nscales = 1;
		out->qlor.scales = lcp_malloc(sizeof(float));
		if (!out->qlor.scales)
			err = LCP_ERR_NOMEM;
		else
			out->qlor.scales[0] = qp.q.super;
		out->qlor.has_zero_points = !cfg->symmetric;
	}
	return err;
}

/* Stored bits per weight plus the dB of error: lower is better, with one bit
 * per weight worth LR_DB_PER_BIT (the exchange rate of DESIGN.md). */
static double rd_cost(const struct lcp_encoded *e, uint64_t n)
{
	return -e->sqnr_db + LR_DB_PER_BIT * 8.0 * (double)e->stored_bytes / (double)n;
}

/*
 * Quantized encoding with a low-rank part lr that the singular values
 * predict a gain from. In the entropy-coded class, the factors are paid for
 * with a coarser step (one bit per weight doubles it), corrected once by the
 * measured excess, so the tensor keeps about the bits it had and the low
 * rank must win in dB at equal size. The candidates are compared on their
 * real stored bytes and on the error the quantizer reports (the decoder
 * check, which costs as much as the quantization, runs only on the winner,
 * in the caller).
 */
static lcp_err encode_quant_lr(struct lcp_codec_ctx *ctx, const struct lcp_tensor_view *t,
			       const float *x, double energy, enum lcp_encoding enc,
			       const struct lcp_config *cfg, const struct lowrank *lr,
			       struct lcp_encoded *out)
{
	uint64_t cols;
	uint64_t n = elem_count(t, &cols);
	const float *xq;
	float *res;
	lcp_err err = encode_quant(ctx, t, energy, x, enc, cfg, NULL, 1.0f, out);
	if (!err)
		err = quant_input(x, n, cols, lr, &xq, &res);
	if (err)
		return err;
	double bpw0 = 8.0 * (double)out->stored_bytes / (double)n;
	double comp = 16.0 * (double)lr->rank * (double)(lr->rows + cols) / (double)n;
	float mult = (float)exp2(comp);
	struct lcp_encoded with;
	memset(&with, 0, sizeof with);
	err = encode_quant(ctx, t, energy, xq, enc, cfg, lr, mult, &with);
	double excess = 8.0 * (double)with.stored_bytes / (double)n - bpw0;
	if (!err && out->symmetric && enc == LCP_ENC_Q4 && excess > LR_RATE_SLACK) {
		lcp_encoded_free(&with);
		err = encode_quant(ctx, t, energy, xq, enc, cfg, lr, mult * (float)exp2(excess), &with);
	}
	if (!err && rd_cost(&with, n) < rd_cost(out, n)) {
		lcp_encoded_free(out);
		*out = with;
	} else {
		lcp_encoded_free(&with);
	}
	lcp_free(res);
	return err;
}

static lcp_err encode_as(struct lcp_codec_ctx *ctx, const struct lcp_tensor_view *t,
			 const float *x, enum lcp_encoding enc, const struct lcp_config *cfg,
			 struct lcp_encoded *out)
{
	uint64_t cols;
	uint64_t n = elem_count(t, &cols);
	lcp_err err;
	if (enc == LCP_ENC_LOSSLESS) {
		struct lcp_qparams q = {0, false, 0, 0.0f};
		struct chunk_plan pl;
		out->encoding = enc;
		plan_chunks(&pl, n, cols, CHUNK_TARGET_BYTES / lcp_codec_elem_bytes(t->dtype), 1);
		uint32_t block_elems = BLOCK_ELEMS < pl.chunk_elems ? BLOCK_ELEMS : pl.chunk_elems;
		err = alloc_chunks(out, &pl);
		if (!err)
			err = encode_lossless_chunks(ctx, t, &pl, lcp_lossless_period(t), block_elems, out);
		if (!err)
			err = params_build(t, enc, &q, false, NULL, 0, pl.chunk_elems, block_elems,
					   &out->params, &out->params_len);
		if (!err)
			err = measure(t, out);
	} else {
		struct lowrank lr = {0};
		uint64_t rows = cols ? n / cols : 0;
		/* Sum of squares of the input: the signal side of every SQNR. */
		double energy = sumsq(x, n);
		err = rows >= 2 && cols >= 2 ? lowrank_choose(x, rows, cols, energy, cfg->rank, &lr)
					     : LCP_OK;
		if (!err && lr.rank)
			err = encode_quant_lr(ctx, t, x, energy, enc, cfg, &lr, out);
		else if (!err)
			err = encode_quant(ctx, t, energy, x, enc, cfg, NULL, 1.0f, out);
		if (!err)
			err = measure(t, out);
		lowrank_free(&lr);
	}
	if (!err) {
		out->stored_bytes = out->params_len + out->data_len;
		out->qlor.original_size = t->len;
		out->qlor.bits = out->bits;
		out->qlor.rank = out->rank;
		out->qlor.dtype = t->dtype;
	}
	return err;
}

static lcp_err fill_dims(const struct lcp_tensor_view *t, struct lcp_qlor *m)
{
	for (uint32_t i = 0; i < t->ndims; i++)
		if (t->dims[i] > UINT32_MAX)
			return LCP_OK; /* not representable in QLOR v1: leave dims empty */
	if (!t->ndims)
		return LCP_OK;
	m->dims = lcp_malloc(t->ndims * sizeof *m->dims);
	if (!m->dims)
		return LCP_ERR_NOMEM;
	m->ndims = (uint16_t)t->ndims;
	for (uint32_t i = 0; i < t->ndims; i++)
		m->dims[i] = (uint32_t)t->dims[i];
	return LCP_OK;
}

/* Group statistics square values in binary32: magnitudes past this would
 * overflow them (and no trained weight comes near it), so such a tensor is
 * stored lossless like one holding Inf. */
#define QUANT_MAX_ABS 1e15f

static bool within_quant_range(const float *x, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++)
		if (!(fabsf(x[i]) <= QUANT_MAX_ABS))
			return false;
	return true;
}

/* A lossless encoding replaces the lossy one when it stores at most 1 part
 * in EXACT_MARGIN or EXACT_SLACK_BYTES more, whichever is larger: the bits
 * then buy exact values (a 4096-element coordinate grid takes ~200 bytes
 * exact, ~160 at 4 bits). */
#define EXACT_MARGIN 16u
#define EXACT_SLACK_BYTES 64u

/* Stores *out exact instead when that costs at most that much more
 * (lcp_lossless_may_pay screens out the tensors where it cannot, such as
 * trained weights, without encoding them); *reason then says so. */
static lcp_err exact_if_cheap(struct lcp_codec_ctx *ctx, const struct lcp_tensor_view *t,
			      const float *x, const struct lcp_config *cfg, struct lcp_encoded *out,
			      const char **reason)
{
	uint64_t cols;
	uint64_t n = elem_count(t, &cols);
	uint64_t limit = out->stored_bytes + (out->stored_bytes / EXACT_MARGIN > EXACT_SLACK_BYTES
						      ? out->stored_bytes / EXACT_MARGIN
						      : EXACT_SLACK_BYTES);
	if (!lcp_lossless_may_pay(lcp_codec_elem_bytes(t->dtype), t->data, n, lcp_lossless_period(t),
				  limit))
		return LCP_OK;
	struct lcp_encoded exact;
	memset(&exact, 0, sizeof exact);
	lcp_err err = encode_as(ctx, t, x, LCP_ENC_LOSSLESS, cfg, &exact);
	if (!err && exact.stored_bytes <= limit) {
		*reason = out->encoding == LCP_ENC_Q4 ? "exact: no larger than 4-bit"
						      : "exact: no larger than 8-bit";
		lcp_encoded_free(out);
		*out = exact;
	} else {
		lcp_encoded_free(&exact);
	}
	return err;
}

lcp_err lcp_codec_encode(struct lcp_codec_ctx *ctx, const struct lcp_tensor_view *t,
			 const struct lcp_config *cfg, struct lcp_encoded *out)
{
	if (out)
		memset(out, 0, sizeof *out);
	if (!ctx || !t || !cfg || !out || !lcp_codec_config_ok(cfg) || t->ndims > LCP_MAX_DIMS)
		return LCP_ERR_INVAL;
	unsigned eb = lcp_codec_elem_bytes(t->dtype);
	if (!eb)
		return LCP_ERR_UNSUPPORTED;
	uint64_t n = 1;
	for (uint32_t i = 0; i < t->ndims; i++) {
		if (t->dims[i] && n > (UINT64_MAX / 16) / t->dims[i])
			return LCP_ERR_INVAL;
		n *= t->dims[i];
	}
	if (n * eb != t->len || (!t->data && t->len))
		return LCP_ERR_INVAL;

	/* The lossless preset needs no float copy (nor a finiteness check). */
	float *x = lcp_malloc(n && !cfg->lossless ? n * sizeof(float) : 1);
	if (!x)
		return LCP_ERR_NOMEM;
	bool finite = cfg->lossless || load_elems(t->dtype, t->data, n, x);

	lcp_err err = LCP_OK;
	enum lcp_encoding tries[2] = {cfg->bits == 4 ? LCP_ENC_Q4 : LCP_ENC_Q8, LCP_ENC_Q8};
	unsigned ntries = cfg->bits == 4 ? 2 : 1;
	const char *reason = NULL;
	bool done = false;
	if (cfg->lossless) {
		ntries = 0;
	} else if (!finite) {
		reason = "NaN or Inf in tensor";
		ntries = 0;
	} else if (!within_quant_range(x, n)) {
		reason = "values too large to quantize";
		ntries = 0;
	} else if (n == 0) {
		ntries = 0;
	}
	for (unsigned k = 0; k < ntries && !err && !done; k++) {
		err = encode_as(ctx, t, x, tries[k], cfg, out);
		if (!err && out->cosine >= (double)cfg->quality_threshold) {
			done = true;
			if (k > 0)
				reason = "quality floor: 4-bit cosine below threshold, stored 8-bit";
		} else {
			lcp_encoded_free(out);
			reason = "quality floor: quantized cosine below threshold, stored lossless";
		}
	}
	if (!err && !done)
		err = encode_as(ctx, t, x, LCP_ENC_LOSSLESS, cfg, out);
	else if (!err)
		err = exact_if_cheap(ctx, t, x, cfg, out, &reason);
	lcp_free(x);
	if (!err) {
		out->fallback_reason = reason;
		out->qlor.original_checksum = lcp_xxh3(t->data, t->len);
		err = fill_dims(t, &out->qlor);
	}
	if (err)
		lcp_encoded_free(out);
	return err;
}

