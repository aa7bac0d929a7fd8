/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The encoder: quality-floor loop, low-rank choice, quantization plan,
 * chunking, entropy coding and the params block (layout in codec_format.h).
 *
 * A tensor is encoded as a stream, so memory stays bounded whatever its
 * size (codec.h, lcp_codec_encode_stream):
 *  1. Scan. The tensor is read once in parts (the chunks of the quantized
 *     plan), in parallel, each part reduced to statistics: finiteness and
 *     range, sum of squares, what the first encoding's plan needs (the
 *     largest group RMS of the dependent-quantization class, or the
 *     super-scale of a uniform class) and the sample that screens an exact
 *     encoding (lossless.h). The parts are combined in order, which also
 *     hashes the bytes in order. A tensor that may get a low-rank part (at most
 *     LCP_ENCODE_HOLD_MAX_ELEMS elements) is kept as binary32 meanwhile,
 *     with the first pass of its top-component estimate.
 *  2. Attempts. Chunks are encoded in parallel, each checked by decoding it
 *     through decode.c (so the metrics and output checksums describe
 *     exactly what readers will get), and handed to the sink in order. The
 *     plain encoding comes first; a held tensor is then screened for a
 *     low-rank part (lowrank_decide), and only if one wins against the
 *     plain encoding's real size and error is the tensor encoded again
 *     with it (the sink restarts). The quality floor reads the summed
 *     metrics; a fallback restarts the sink and encodes the tensor again at
 *     the next setting. A kept lossy encoding is replaced by an exact one
 *     when that is no larger (exact_if_cheap), screened on the scan's
 *     sample first. The lossless preset skips all of this but the scan's
 *     hash: every chunk is stored exact.
 * Every per-chunk result depends on the chunk and the plan only, and the
 * per-chunk sums are added in chunk order, so the output bytes are the same
 * whatever the executor's thread count.
 */
#include "lcpfs/codec.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <zstd.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

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
#include "common/io.h"
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

/* Low-rank screening (lowrank_may_pay, lowrank_decide): how far below the
 * energy share at which a low-rank part could start to pay the quick
 * estimate of the top component may fall before the rank probe is
 * skipped (the estimate is a lower bound, measured within 0.6x of the
 * truth on the shared weights' tensors that pay; noise-like tensors land
 * far below), the seed of its test matrix, and the chunks a candidate is
 * measured on (evenly spaced; all of them in smaller tensors), in the
 * rank-1 pre-check and in the final comparison. */
#define LR_SCREEN_MARGIN 0.5
#define LR_SCREEN_SEED 0x6c637066734b53ull
#define LR_CANDIDATE_CHUNKS 8u
#define LR_PRECHECK_CHUNKS 4u

/* Grown-on-demand buffer of a context, reused from chunk to chunk. */
struct scratch {
	void *p;
	size_t cap;
};

/* The last all-zero chunk a context encoded: every zero chunk of the same
 * length in the same attempt without a low-rank part (lossless ones too)
 * encodes to the same bytes (a chunk's encoding depends on its elements
 * and the plan only), so the holes of a sparse tensor cost one encoding
 * per thread and attempt. */
struct zero_chunk {
	uint64_t attempt_id; /* 0: none */
	uint64_t m;
	struct lcp_buf bytes;
	struct lcp_chunk_info info;
	double sums[4];
	double sqerr;
	uint32_t crc;
};

struct lcp_codec_ctx {
	ZSTD_CCtx *zc;
	struct scratch raw, x, xq, codes, sc, aux, stream, dec, delta, dqwork, pairs;
	struct lcp_buf side, planes, alt, rans, pairbuf, aliasbuf;
	struct zero_chunk zero;
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

/* Every binary16 value as binary32 (lcp_f16_to_f32, tabulated once: one
 * load per element where the conversion branches on subnormals). */
static float f16_table[65536];
static pthread_once_t f16_once = PTHREAD_ONCE_INIT;

static void f16_table_fill(void)
{
	for (uint32_t h = 0; h < 65536; h++)
		f16_table[h] = lcp_f16_to_f32((uint16_t)h);
}

static inline float f16_value(uint16_t h)
{
	return f16_table[h];
}

static void *scratch(struct scratch *s, size_t bytes)
{
	if (bytes > s->cap) {
		lcp_free(s->p);
		s->p = lcp_malloc(bytes);
		s->cap = s->p ? bytes : 0;
	}
	return s->p;
}

static void scratch_free(struct scratch *s)
{
	lcp_free(s->p);
	s->p = NULL;
	s->cap = 0;
}

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
	pthread_once(&f16_once, f16_table_fill);
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
	struct scratch *all[] = {&ctx->raw, &ctx->x, &ctx->xq, &ctx->codes, &ctx->sc, &ctx->aux,
				 &ctx->stream, &ctx->dec, &ctx->delta, &ctx->dqwork, &ctx->pairs};
	for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
		scratch_free(all[i]);
	lcp_buf_free(&ctx->side);
	lcp_buf_free(&ctx->planes);
	lcp_buf_free(&ctx->alt);
	lcp_buf_free(&ctx->rans);
	lcp_buf_free(&ctx->pairbuf);
	lcp_buf_free(&ctx->aliasbuf);
	lcp_buf_free(&ctx->zero.bytes);
	lcp_free(ctx);
}

bool lcp_codec_config_ok(const struct lcp_config *cfg)
{
	return cfg && (cfg->bits == 4 || cfg->bits == 8) && cfg->rank <= MAX_RANK &&
	       cfg->group_size >= 8 && cfg->group_size <= 256 &&
	       cfg->quality_threshold > 0.0f && cfg->quality_threshold <= 1.0f;
}

/* Sums of squares in four interleaved partial sums: a fixed order (the
 * payload stays deterministic) that is not one long chain of dependent adds,
 * which made these loops latency-bound. SSE2 keeps the four sums in one
 * register: lane k adds x[i + k]^2 rounded as the scalar code does (no
 * contraction), so the bits are the same; GCC -O2 left the scalar loop
 * unvectorized (8 instructions per element, twice per element under
 * dependent quantization: the scan's largest RMS, then the chunk's steps). */
static float group_rms(const float *x, uint32_t n)
{
	float s[4] = {0.0f, 0.0f, 0.0f, 0.0f};
	uint32_t i = 0;
#ifdef __SSE2__
	__m128 acc = _mm_setzero_ps();
	for (; i + 4 <= n; i += 4) {
		__m128 v = _mm_loadu_ps(x + i);
		acc = _mm_add_ps(acc, _mm_mul_ps(v, v));
	}
	_mm_storeu_ps(s, acc);
#endif
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

/* The tensor being encoded. */
struct tensor_in {
	const struct lcp_tensor_source *src;
	enum lcp_dtype dtype;
	unsigned eb;        /* bytes per element */
	uint64_t n, rows, cols;
	uint64_t period;    /* lcp_lossless_period: the lossless repeat checks' row */
	const float *held;  /* all n elements as binary32 while a low-rank part is
			       chosen (candidate encodes read them), else NULL */
	const float *sketch; /* with held: W Omega (rows x 2, column-major), the
				first pass of the top-component estimate,
				taken by the scan; or NULL */
};

/* Elements [b, b + m) as stored: the source's memory, or read into buf. */
static lcp_err load_raw(const struct tensor_in *t, uint64_t b, uint64_t m, struct scratch *buf,
			const uint8_t **raw)
{
	if (t->src->mem) {
		*raw = (const uint8_t *)t->src->mem + b * t->eb;
		return LCP_OK;
	}
	uint8_t *p = scratch(buf, m ? m * t->eb : 1);
	if (!p)
		return LCP_ERR_NOMEM;
	*raw = p;
	return m ? t->src->read(t->src->arg, p, m * t->eb, b * t->eb) : LCP_OK;
}

/* Element i of the input as float (F64 rounds to nearest; overflow -> inf). */
static float load_elem(enum lcp_dtype dt, const uint8_t *p, uint64_t i)
{
	switch (dt) {
	case LCP_DTYPE_F32:
		return lcp_load_lef32(p + 4 * i);
	case LCP_DTYPE_F16:
		return f16_value(lcp_load_le16(p + 2 * i));
	case LCP_DTYPE_BF16:
		return lcp_bf16_to_f32(lcp_load_le16(p + 2 * i));
	default:
		return (float)lcp_load_lef64(p + 8 * i);
	}
}

/* Elements [0, m) of p as float into x; false if any is NaN or infinite.
 * Each dtype gets its own loop: no per-element dispatch, and the finiteness
 * test on the bits so the loop has no early exit. */
static bool load_elems(enum lcp_dtype dt, const uint8_t *p, uint64_t m, float *x)
{
	uint32_t bad = 0;
	switch (dt) {
	case LCP_DTYPE_F32:
		for (uint64_t i = 0; i < m; i++) {
			uint32_t u = lcp_load_le32(p + 4 * i);
			bad |= (u & 0x7f800000u) == 0x7f800000u;
			memcpy(&x[i], &u, sizeof u);
		}
		return !bad;
	case LCP_DTYPE_BF16:
		for (uint64_t i = 0; i < m; i++) {
			uint32_t u = (uint32_t)lcp_load_le16(p + 2 * i) << 16;
			bad |= (u & 0x7f800000u) == 0x7f800000u;
			memcpy(&x[i], &u, sizeof u);
		}
		return !bad;
	case LCP_DTYPE_F16:
		/* F16C where the CPU has it (4% of lcpfs pack's CPU went to the
		 * table loop); a file with a NaN or infinity goes through the
		 * table, which keeps their bits */
		if (lcp_f16_to_f32_finite_n(p, m, x))
			return true;
		for (uint64_t i = 0; i < m; i++) {
			uint16_t h = lcp_load_le16(p + 2 * i);
			bad |= (h & 0x7c00u) == 0x7c00u;
			x[i] = f16_value(h);
		}
		return !bad;
	default: {
		bool finite = true;
		for (uint64_t i = 0; i < m; i++) {
			x[i] = load_elem(dt, p, i);
			finite = finite && isfinite(x[i]);
		}
		return finite;
	}
	}
}

/* Elements [b, b + m) as binary32: the held copy, or loaded into ctx->x
 * (*raw then points at the stored bytes; NULL when held). */
static lcp_err load_floats(struct lcp_codec_ctx *ctx, const struct tensor_in *t, uint64_t b,
			   uint64_t m, const float **x, const uint8_t **raw)
{
	*raw = NULL;
	if (t->held) {
		*x = t->held + b;
		return LCP_OK;
	}
	float *xf = scratch(&ctx->x, (m ? m : 1) * sizeof(float));
	lcp_err err = xf ? load_raw(t, b, m, &ctx->raw, raw) : LCP_ERR_NOMEM;
	if (!err)
		load_elems(t->dtype, *raw, m, xf);
	*x = xf;
	return err;
}

/* Accumulates one pair into the four metric sums. */
static inline void acc_pair(double a, double b, double *xx, double *yy, double *xy, double *ee)
{
	*xx += a * a;
	*yy += b * b;
	*xy += a * b;
	*ee += (a - b) * (a - b);
}

/* Partial sums per metric in acc_metrics: element i goes to partial i mod
 * METRIC_LANES, so the additions of one partial do not wait for the
 * others'. One running sum per metric was 17% of `lcp pack -j 1` on the
 * 256 MiB bench model (its four add chains, each one add per element). */
#define METRIC_LANES 8

/* The 8 partial sums of acc_metrics for elements [i, i + METRIC_LANES) with
 * a = A(k), b = B(k) for element k. */
#define ACC_LANES(A, B)                                                                        \
	for (unsigned j = 0; j < METRIC_LANES; j++) {                                          \
		double a_ = (A(i + j)), b_ = (B(i + j));                                       \
		p[0][j] += a_ * a_;                                                            \
		p[1][j] += b_ * b_;                                                            \
		p[2][j] += a_ * b_;                                                            \
		p[3][j] += (a_ - b_) * (a_ - b_);                                              \
	}

/* Adds sum(a^2), sum(b^2), sum(ab), sum((a-b)^2) over m elements to s[0..3]
 * in double: a the original (x, or for F64 its stored bytes raw), b the
 * reconstruction dec in the tensor's dtype. Each sum in a fixed order (the
 * partials in element order, then the partials 0 .. 7 added to s), so
 * encoding stays deterministic. */
static void acc_metrics(enum lcp_dtype dt, const float *x, const uint8_t *raw, const uint8_t *dec,
			uint64_t m, double s[4])
{
	double p[4][METRIC_LANES] = {{0.0}};
	uint64_t whole = m / METRIC_LANES * METRIC_LANES;
#define X_OF(k) x[k]
#define F32_OF(k) lcp_load_lef32(dec + 4 * (k))
#define F16_OF(k) f16_value(lcp_load_le16(dec + 2 * (k)))
#define BF16_OF(k) lcp_bf16_to_f32(lcp_load_le16(dec + 2 * (k)))
#define RAW64_OF(k) lcp_load_lef64(raw + 8 * (k))
#define F64_OF(k) lcp_load_lef64(dec + 8 * (k))
	for (uint64_t i = 0; i < whole; i += METRIC_LANES) {
		switch (dt) {
		case LCP_DTYPE_F32:
			ACC_LANES(X_OF, F32_OF)
			break;
		case LCP_DTYPE_F16:
			ACC_LANES(X_OF, F16_OF)
			break;
		case LCP_DTYPE_BF16:
			ACC_LANES(X_OF, BF16_OF)
			break;
		default:
			ACC_LANES(RAW64_OF, F64_OF)
			break;
		}
	}
	for (uint64_t k = whole; k < m; k++) {
		double a = dt == LCP_DTYPE_F64 ? RAW64_OF(k) : X_OF(k);
		double b = dt == LCP_DTYPE_F32 ? F32_OF(k) : dt == LCP_DTYPE_F16 ? F16_OF(k)
			 : dt == LCP_DTYPE_BF16 ? BF16_OF(k) : F64_OF(k);
		acc_pair(a, b, &p[0][0], &p[1][0], &p[2][0], &p[3][0]);
	}
#undef X_OF
#undef F32_OF
#undef F16_OF
#undef BF16_OF
#undef RAW64_OF
#undef F64_OF
	for (unsigned q = 0; q < 4; q++)
		for (unsigned j = 0; j < METRIC_LANES; j++)
			s[q] += p[q][j];
}
#undef ACC_LANES

/* The params block's version for encoding enc (codec_format.h): 5 for
 * dependent quantization and the 8-bit class, 3 for lossless tensors, 2
 * for the other quantized ones. */
static uint8_t params_version(enum lcp_encoding enc, bool dq)
{
	return enc == LCP_ENC_Q8 || dq ? PARAMS_VERSION_5
	       : enc == LCP_ENC_LOSSLESS ? PARAMS_VERSION_3
					 : PARAMS_VERSION_2;
}

/* The params block (codec_format.h). */
static lcp_err params_build(const struct lcp_tensor_source *t, enum lcp_encoding enc,
			    const struct lcp_qparams *q, bool dq, const struct lowrank *lr,
			    uint32_t group_size, uint32_t chunk_elems, uint32_t block_elems,
			    uint8_t **out, size_t *out_len)
{
	struct lcp_buf b = LCP_BUF_INIT;
	lcp_err err = lcp_buf_append(&b, PARAMS_MAGIC, 4);
	if (!err)
		err = lcp_buf_append_u8(&b, params_version(enc, dq));
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

struct chunk_plan {
	uint64_t n;
	uint32_t chunk_elems;
	uint32_t nchunks;
};

static void plan_chunks(struct chunk_plan *pl, uint64_t n, uint64_t cols, uint64_t target,
			uint32_t unit)
{
	pl->n = n;
	pl->chunk_elems = chunk_elems_for(cols, target, unit);
	pl->nchunks = (uint32_t)((n + pl->chunk_elems - 1) / pl->chunk_elems);
}

/* Elements [*b, *b + *m) of chunk c. */
static void chunk_range(const struct chunk_plan *pl, uint32_t c, uint64_t *b, uint64_t *m)
{
	*b = (uint64_t)c * pl->chunk_elems;
	*m = pl->n - *b < pl->chunk_elems ? pl->n - *b : pl->chunk_elems;
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

/* Side streams go as planes unless zstd or raw is smaller by more than 1
 * part in SIDE_PREFERENCE: measured on the decode benchmark's matrix, zstd
 * decoded the 8-bit class's side streams (0.55 bits/weight) in 0.11 ns per
 * weight, a sixth of the whole decode, and their planes take fewer bytes;
 * the 4-bit class's planes take ~7% more than zstd there (0.005 bits per
 * weight for 0.03 ns per weight), and a 10% margin cost stories260K's 8-bit
 * tensors 0.04 bits/weight, so the margin is the codes' 2%. */
#define SIDE_PREFERENCE 50u

/* A side plane of the 8-bit class (16-bit scale codes) is stored raw unless
 * rANS saves at least 1 part in SIDE_RANS_MIN_SAVING of its bytes: on the
 * decode benchmark's matrix the aux (zero point) plane saved 8% (0.019
 * bits/weight) and cost ~4% of the 8-bit decode time, the scale codes'
 * high bytes save 86% and keep rANS (DESIGN-notes, "Decode, pairs"). */
#define SIDE_RANS_MIN_SAVING 8u

/* The 8-bit class stores codes it would store as rANS as pairs instead,
 * with the same lanes, unless they take more than 1 part in
 * PAIRS_PREFERENCE more bytes: on the decode benchmark's matrix pairs took
 * 1.5% more (7.87 against 7.75 bits per code) and decode with half the
 * rANS steps, in SIMD or (fewer lanes) scalar code. */
#define PAIRS_PREFERENCE 25u

/* Dependent quantization's codes go as an alias stream (rans.h) rather
 * than rANS unless its estimate (lcp_stream_alias_cost_bytes) is larger by
 * more than 1 part in ALIAS_PREFERENCE: it decodes without a gather per
 * code, 1.3-1.4x as fast on the decode benchmark's matrix (Zen 5), whose
 * chunks it stores 0.18% larger (escapes). */
#define ALIAS_PREFERENCE 50u

/* The 8-bit class's 16-lane chunks keep rANS (then pairs) unless raw or
 * zstd is smaller by more than 1 part in Q8_ALT_PREFERENCE, not 2%: on
 * the decode benchmark's matrix its zstd chunks decoded 3.3x slower than
 * its pair chunks (385K against 116K cycles each) for 5-7% fewer bytes,
 * and the 5% of chunks that took zstd took 14% of the decode time. */
#define Q8_ALT_PREFERENCE 8u

/*
 * Appends the m 8-bit codes of a chunk to b as pairs (codec_format.h): the
 * nibble plane, then the rANS stream of the pair symbols with `lanes` lanes
 * in blocks of the pairs of block_elems codes. work holds 2 * the chunk's
 * pairs bytes.
 */
static lcp_err put_pairs(struct lcp_buf *b, const uint8_t *codes, uint64_t m, uint32_t block_elems,
			 unsigned lanes, uint8_t *work)
{
	uint64_t np = lcp_pairs_in_chunk(m, block_elems);
	uint8_t *nib = work, *sym = work + np;
	uint64_t p = 0;
	for (uint64_t beg = 0; beg < m; beg += block_elems) {
		uint64_t n = m - beg < block_elems ? m - beg : block_elems;
		const uint8_t *c = codes + beg;
		for (uint64_t q = 0; q < lcp_pairs_in(n); q++, p++) {
			uint64_t i = 32u * (q / 16u) + q % 16u;
			uint8_t second = i + 16u < n ? c[i + 16u] : 0; /* padding: code 0 */
			nib[p] = (uint8_t)((c[i] & 15u) | (second & 15u) << 4);
			sym[p] = (uint8_t)(c[i] >> 4 | (second >> 4) << 4);
		}
	}
	lcp_err err = lcp_buf_append(b, nib, np);
	return err ? err : lcp_stream_put_rans(b, sym, np, (uint32_t)lcp_pairs_in(block_elems),
					       lanes, NULL);
}

/* Statistics a quantization plan for one encoding needs, of the
 * quantizer's input (the tensor, or its low-rank residual). */
struct qstats {
	double sumsq;
	float top_rms;      /* dependent-quantization class: the largest group RMS */
	float super;        /* uniform classes: lcp_quant_super */
};

/* How the groups of one tensor are quantized. */
struct qplan {
	struct lcp_qparams q; /* the kernel's parameters (bits = symbol width) */
	bool dq;              /* dependent quantization: q is {8, symmetric} */
	float step_coef;      /* dq: half-step = step_coef * group_rms */
};

static bool uses_dq(enum lcp_encoding enc, const struct lcp_config *cfg)
{
	return enc == LCP_ENC_Q4 && cfg->symmetric;
}

/* The statistics of elements x[0, m) (whole groups of G but the tensor's
 * last) for encoding enc, folded into s: what plan_quant needs, so a tensor
 * too large to hold is planned from its parts. The super-scale of a union
 * of groups is the largest of its parts'. */
static void qstats_add(struct qstats *s, const float *x, uint64_t m, const struct lcp_config *cfg,
		       enum lcp_encoding enc)
{
	uint32_t G = cfg->group_size;
	s->sumsq += sumsq(x, m);
	if (uses_dq(enc, cfg)) {
		for (uint64_t g = 0; g < m; g += G) {
			uint32_t len = (uint32_t)(m - g < G ? m - g : G);
			float r = group_rms(x + g, len);
			if (r > s->top_rms)
				s->top_rms = r;
		}
	} else {
		float sup = lcp_quant_super(x, m, G, enc == LCP_ENC_Q4 ? 4 : 8, cfg->symmetric);
		if (sup > s->super)
			s->super = sup;
	}
}

/* Folds the statistics of a later part into s. */
static void qstats_fold(struct qstats *s, const struct qstats *part)
{
	s->sumsq += part->sumsq;
	if (part->top_rms > s->top_rms)
		s->top_rms = part->top_rms;
	if (part->super > s->super)
		s->super = part->super;
}

/*
 * Chooses the quantizer. The 4-bit symmetric class (the default preset) is
 * dependent quantization with a step proportional to each group's RMS
 * (docs/DESIGN-notes.md has what it was measured against): alpha 1, so the
 * plan needs only the largest group RMS, and each chunk computes its own
 * groups' steps. The other classes are 16 or 256 uniform levels with an
 * MSE scale search.
 */
static void plan_quant(struct qplan *qp, const struct qstats *st, enum lcp_encoding enc,
		       const struct lcp_config *cfg, float step_mult)
{
	memset(qp, 0, sizeof *qp);
	qp->q.bits = enc == LCP_ENC_Q4 ? 4 : 8;
	qp->q.symmetric = cfg->symmetric;
	qp->q.scale_log2_steps = enc == LCP_ENC_Q4 ? 4 : 8;
	qp->dq = uses_dq(enc, cfg);
	if (!qp->dq) {
		qp->q.super = st->super;
		return;
	}
	qp->q.bits = 8;
	qp->step_coef = step_mult * DQ_DELTA;
	/* The largest group's step (a positive factor keeps the order of the
	 * group RMS values, also after rounding). */
	float top = qp->step_coef * st->top_rms;
	/* One scale code of headroom: the largest step rounds to a code
	 * below 255, never above the grid. */
	float super = top * 1.05f;
	qp->q.super = isfinite(super) ? super : top;
}

/* One attempt at encoding a tensor: what every chunk task needs. */
struct attempt {
	const struct tensor_in *t;
	const struct lcp_config *cfg;
	enum lcp_encoding enc;
	struct qplan qp;                 /* quantized */
	const struct lowrank *lr;        /* NULL: none */
	struct chunk_plan pl;
	uint32_t block_elems;            /* rANS block */
	const struct lcp_codec_tensor *ct; /* the params opened, for the decode
					      check; NULL: size-only (candidates) */
	bool want_crc;
	uint64_t id;                     /* unique per attempt in the process */
	struct chunk_out *slots;         /* window slots */
	uint32_t window;
};

/* A chunk task's result. */
struct chunk_out {
	struct lcp_buf bytes;
	struct lcp_chunk_info info; /* data_off 0: the consumer places it */
	double sums[4];             /* acc_metrics against the decode */
	double sqerr;               /* the quantizer's own squared error */
	uint32_t crc;               /* of the reconstruction, when wanted */
};

/* Every attempt gets its own id: a context's zero chunk belongs to one. */
static _Atomic uint64_t next_attempt_id = 1;

/* True when m elements of input (stored bytes raw, or binary32 x) are all
 * zero bits. */
static bool all_zero(const uint8_t *raw, const float *x, uint64_t m, unsigned eb)
{
	return raw ? lcp_bytes_zero(raw, m * eb) : lcp_bytes_zero(x, m * sizeof *x);
}

/* The quantizer's input for elements [b, b + m) of x: x itself, or with a
 * low-rank part the residual W - U V^T into xq, computed exactly as
 * decoding adds the product back (row by row, the same bits whatever the
 * segment). */
static lcp_err quant_input(struct lcp_codec_ctx *ctx, const struct lowrank *lr, const float *x,
			   uint64_t b, uint64_t m, const float **xq)
{
	*xq = x;
	if (!lr)
		return LCP_OK;
	float *r = scratch(&ctx->xq, m * sizeof *r);
	if (!r)
		return LCP_ERR_NOMEM;
	for (uint64_t i = 0; i < m;) {
		uint64_t e = b + i, row = e / lr->cols, c0 = e % lr->cols;
		uint64_t len = lr->cols - c0 < m - i ? lr->cols - c0 : m - i;
		lcp_codec_lr_segment(lr->u + row * lr->rank, lr->vt, lr->cols, lr->rank, c0, len, r + i);
		for (uint64_t j = 0; j < len; j++)
			r[i + j] = x[i + j] - r[i + j];
		i += len;
	}
	*xq = r;
	return LCP_OK;
}

/*
 * Dependent quantization of one chunk, xq[0, m) (quant.h): every group's
 * scale code (aux 0), then each rANS block's chains, blocks counted from
 * the chunk's start (which starts a group). The chunk's squared error is
 * added to *sqerr.
 */
static lcp_err quant_dq_chunk(struct lcp_codec_ctx *ctx, const struct attempt *a, const float *xq,
			      uint64_t m, uint8_t *codes, uint16_t *sc, uint8_t *aux, double *sqerr)
{
	uint32_t G = a->cfg->group_size, B = a->block_elems;
	uint64_t ng = (m + G - 1) / G;
	float *delta = scratch(&ctx->delta, (ng ? ng : 1) * sizeof *delta);
	void *work = scratch(&ctx->dqwork, lcp_quant_dq_work_bytes(B));
	if (!delta || !work)
		return LCP_ERR_NOMEM;
	for (uint64_t g = 0; g < ng; g++) {
		uint64_t gb = g * G;
		uint32_t len = (uint32_t)(m - gb < G ? m - gb : G);
		float step = a->qp.step_coef * group_rms(xq + gb, len);
		sc[g] = lcp_quant_scale_code(&a->qp.q, step, &delta[g]);
		aux[g] = 0;
	}
	double e = 0.0;
	for (uint64_t b = 0; b < m; b += B) {
		uint32_t len = (uint32_t)(m - b < B ? m - b : B);
		e += lcp_quant_dq_block(xq + b, len, delta + b / G, G, (uint32_t)(b % G), codes + b,
					work);
	}
	*sqerr += e;
	return LCP_OK;
}

/*
 * Quantizes chunk [b, b + m) of xq group by group, then stores its codes as
 * rANS blocks with the chunk's own table, or raw or as zstd when that is
 * clearly smaller (RANS_PREFERENCE); appends the chunk (header, side
 * stream, codes, low-rank rows) to o->bytes.
 */
static lcp_err encode_quant_chunk(struct lcp_codec_ctx *ctx, const struct attempt *a,
				  const float *xq, uint64_t b, uint64_t m, struct chunk_out *o)
{
	const struct lcp_qparams *q = &a->qp.q;
	uint32_t G = a->cfg->group_size;
	uint64_t ng = (m + G - 1) / G;
	unsigned sbytes = q->scale_log2_steps == 8 ? 2 : 1;
	uint8_t *codes = scratch(&ctx->codes, m ? m : 1);
	uint8_t *aux = scratch(&ctx->aux, ng ? ng : 1);
	uint16_t *sc = scratch(&ctx->sc, (ng ? ng : 1) * sizeof *sc);
	/* side bytes, then codes packed for raw and zstd (two per byte for
	 * 4-bit symbols) */
	uint8_t *stream = scratch(&ctx->stream, (sbytes + 1) * ng + m + 1);
	if (!codes || !aux || !sc || !stream)
		return LCP_ERR_NOMEM;
	double e = 0.0;
	if (a->qp.dq) {
		lcp_err err = quant_dq_chunk(ctx, a, xq, m, codes, sc, aux, &e);
		if (err)
			return err;
	}
	for (uint64_t g = 0; !a->qp.dq && g < ng; g++) {
		uint64_t gb = g * G;
		uint32_t len = (uint32_t)(m - gb < G ? m - gb : G);
		e += lcp_quant_group(xq + gb, len, q, codes + gb, &sc[g], &aux[g]);
	}
	o->sqerr = e;
	uint8_t *side = stream, *packed = stream + (sbytes + 1) * ng;
	for (uint64_t g = 0; g < ng; g++) {
		if (sbytes == 2) {
			side[g] = (uint8_t)(sc[g] >> 8);
			side[ng + g] = (uint8_t)sc[g];
		} else {
			side[g] = (uint8_t)sc[g];
		}
		side[sbytes * ng + g] = aux[g];
	}
	size_t code_len = m;
	if (q->bits == 4) {
		code_len = (m + 1) / 2;
		for (uint64_t i = 0; i + 1 < m; i += 2)
			packed[i / 2] = (uint8_t)(codes[i] | codes[i + 1] << 4);
		if (m & 1)
			packed[m / 2] = codes[m - 1];
	} else {
		memcpy(packed, codes, m);
	}
	struct lcp_buf *sidebuf = &ctx->side, *planes = &ctx->planes, *alt = &ctx->alt;
	struct lcp_buf *rans = &ctx->rans, *pairs = &ctx->pairbuf, *aliasbuf = &ctx->aliasbuf;
	sidebuf->len = planes->len = alt->len = rans->len = pairs->len = aliasbuf->len = 0;
	uint8_t zmode = 0, side_mode, alt_mode;
	lcp_err err = LCP_OK;
	size_t raw_extra = 0; /* bytes the 8-bit class's raw rule added */
	uint32_t plane_block = (uint32_t)(params_version(a->enc, a->qp.dq) == PARAMS_VERSION_5
						  ? plane_block_elems(ng) : ng);
	for (unsigned k = 0; !err && k <= sbytes; k++) {
		size_t at = planes->len;
		err = lcp_stream_put_plane(planes, side + k * ng, ng, plane_block, LCP_RANS_MAX_LANES);
		if (!err && sbytes == 2 && planes->data[at] == PLANE_RANS &&
		    (planes->len - at - 1) * SIDE_RANS_MIN_SAVING > ng * (SIDE_RANS_MIN_SAVING - 1)) {
			raw_extra += ng + 1 - (planes->len - at);
			planes->len = at;
			err = lcp_buf_append_u8(planes, PLANE_RAW);
			if (!err)
				err = lcp_buf_append(planes, side + k * ng, ng);
		}
	}
	if (!err)
		err = put_stream(ctx, sidebuf, side, (sbytes + 1) * ng, &zmode);
	side_mode = zmode ? SIDE_ZSTD : SIDE_RAW;
	/* planes against zstd as if every plane took its smallest form: the
	 * raw rule trades bytes for speed, never for zstd's slower decode */
	if (!err && (uint64_t)(planes->len - raw_extra) * SIDE_PREFERENCE <=
			    (uint64_t)sidebuf->len * (SIDE_PREFERENCE + 1)) {
		sidebuf = planes;
		side_mode = SIDE_PLANES;
	}
	if (!err)
		err = put_stream(ctx, alt, packed, code_len, &zmode);
	alt_mode = zmode ? CODE_ZSTD : CODE_RAW;
	unsigned lanes = lcp_stream_lanes(m, a->block_elems);
	/* Dependent quantization's codes: an alias stream or rANS, whichever
	 * the histogram's estimate prefers (encoding both cost pack -j 1 12%
	 * of its time on the 256 MiB bench model). */
	uint64_t hist[256];
	lcp_stream_count(codes, m, hist);
	bool alias = a->qp.dq && lcp_stream_alias_cost_bytes(hist) * ALIAS_PREFERENCE <=
					 lcp_stream_cost_bytes(hist) * (ALIAS_PREFERENCE + 1);
	struct lcp_buf *entropy = alias ? aliasbuf : rans;
	if (!err && alias)
		err = lcp_stream_put_alias(aliasbuf, codes, m, a->block_elems, lanes, hist);
	else if (!err)
		err = lcp_stream_put_rans(rans, codes, m, a->block_elems, lanes, hist);
	if (err)
		return err;
	bool use_rans = a->enc == LCP_ENC_Q8 && lanes == LCP_RANS_MAX_LANES
				? (uint64_t)entropy->len * Q8_ALT_PREFERENCE <=
					  (uint64_t)alt->len * (Q8_ALT_PREFERENCE + 1)
				: lcp_stream_prefer_rans(entropy->len, alt->len, lanes);
	const struct lcp_buf *code = use_rans ? entropy : alt;
	uint8_t code_mode = use_rans ? (alias ? CODE_ALIAS : CODE_RANS) : alt_mode;
	if (use_rans && a->enc == LCP_ENC_Q8) {
		uint8_t *work = scratch(&ctx->pairs, 2 * lcp_pairs_in_chunk(m, a->block_elems));
		err = work ? put_pairs(pairs, codes, m, a->block_elems, lanes, work) : LCP_ERR_NOMEM;
		if (err)
			return err;
		if ((uint64_t)pairs->len * PAIRS_PREFERENCE <= (uint64_t)rans->len * (PAIRS_PREFERENCE + 1)) {
			code = pairs;
			code_mode = CODE_PAIRS;
		}
	}
	uint8_t modes = (uint8_t)(side_mode | code_mode << 2);
	err = lcp_buf_append_u8(&o->bytes, modes);
	if (!err)
		err = lcp_buf_append_le32(&o->bytes, (uint32_t)sidebuf->len);
	if (!err)
		err = lcp_buf_append(&o->bytes, sidebuf->data, sidebuf->len);
	if (!err)
		err = lcp_buf_append(&o->bytes, code->data, code->len);
	if (!err && a->lr) {
		const struct lowrank *lr = a->lr;
		uint64_t r0, nrows;
		lcp_codec_touched_rows(lr->cols, b, m, &r0, &nrows);
		for (uint64_t i = 0; !err && i < nrows * lr->rank; i++)
			err = lcp_buf_append_le16(&o->bytes, lr->u16[r0 * lr->rank + i]);
	}
	return err;
}

/* Lossless chunk [b, b + m) (lossless.h: split planes, zstd byte planes
 * or raw, whichever is smallest). */
static lcp_err encode_lossless_chunk(struct lcp_codec_ctx *ctx, const struct attempt *a,
				     const uint8_t *raw, uint64_t m, struct chunk_out *o)
{
	unsigned eb = a->t->eb;
	uint8_t *work = scratch(&ctx->stream, m ? lcp_lossless_encode_scratch(eb, m) : 1);
	if (!work)
		return LCP_ERR_NOMEM;
	return lcp_lossless_encode_chunk(ctx->zc, eb, raw, m, a->t->period, a->block_elems, work,
					 &o->bytes);
}

/* The decode check: decodes the chunk as readers will, fills the output
 * checksum, the CRC if wanted and the metrics (lossless: must give the
 * input bytes back, LCP_ERR_CHECKSUM otherwise). */
static lcp_err check_chunk(struct lcp_codec_ctx *ctx, const struct attempt *a, const float *x,
			   const uint8_t *raw, struct chunk_out *o)
{
	uint64_t m = o->info.elem_end - o->info.elem_begin;
	size_t len = m * a->t->eb;
	uint8_t *dec = scratch(&ctx->dec, len ? len : 1);
	if (!dec)
		return LCP_ERR_NOMEM;
	lcp_err err = lcp_codec_decode_chunk(a->ct, &o->info, o->bytes.data, o->bytes.len, dec, len);
	if (err)
		return err;
	o->info.output_xxh3 = lcp_xxh3(dec, len);
	o->crc = a->want_crc ? lcp_crc32(0, dec, len) : 0;
	if (a->enc == LCP_ENC_LOSSLESS)
		return memcmp(raw, dec, len) == 0 ? LCP_OK : LCP_ERR_CHECKSUM;
	acc_metrics(a->t->dtype, x, raw, dec, m, o->sums);
	return LCP_OK;
}

static lcp_err zero_chunk_put(struct zero_chunk *z, const struct chunk_out *o)
{
	z->bytes.len = 0;
	z->info = o->info;
	memcpy(z->sums, o->sums, sizeof z->sums);
	z->sqerr = o->sqerr;
	z->crc = o->crc;
	return lcp_buf_append(&z->bytes, o->bytes.data, o->bytes.len);
}

/* The remembered zero chunk as o (its element range kept). */
static lcp_err zero_chunk_get(const struct zero_chunk *z, struct chunk_out *o)
{
	uint64_t b = o->info.elem_begin, e = o->info.elem_end;
	o->info = z->info;
	o->info.elem_begin = b;
	o->info.elem_end = e;
	memcpy(o->sums, z->sums, sizeof o->sums);
	o->sqerr = z->sqerr;
	o->crc = z->crc;
	return lcp_buf_append(&o->bytes, z->bytes.data, z->bytes.len);
}

/* Encodes chunk c of attempt a into o (and checks it when a->ct). */
static lcp_err encode_chunk(struct lcp_codec_ctx *ctx, const struct attempt *a, uint32_t c,
			    struct chunk_out *o)
{
	uint64_t b, m;
	bool zero = false;
	const float *x = NULL, *xq;
	const uint8_t *raw = NULL;
	lcp_err err;

	chunk_range(&a->pl, c, &b, &m);
	o->bytes.len = 0;
	memset(&o->info, 0, sizeof o->info);
	memset(o->sums, 0, sizeof o->sums);
	o->sqerr = 0.0;
	o->crc = 0;
	o->info.elem_begin = b;
	o->info.elem_end = b + m;
	if (a->enc == LCP_ENC_LOSSLESS) {
		err = load_raw(a->t, b, m, &ctx->raw, &raw);
		zero = !err && all_zero(raw, NULL, m, a->t->eb);
	} else {
		err = load_floats(ctx, a->t, b, m, &x, &raw);
		zero = !err && !a->lr && all_zero(raw, x, m, a->t->eb);
	}
	if (zero && ctx->zero.attempt_id == a->id && ctx->zero.m == m)
		return zero_chunk_get(&ctx->zero, o);
	if (!err && a->enc == LCP_ENC_LOSSLESS) {
		err = encode_lossless_chunk(ctx, a, raw, m, o);
	} else if (!err) {
		err = quant_input(ctx, a->lr, x, b, m, &xq);
		if (!err)
			err = encode_quant_chunk(ctx, a, xq, b, m, o);
	}
	o->info.data_len = o->bytes.len;
	if (!err && a->ct) {
		o->info.stored_xxh3 = lcp_xxh3(o->bytes.data, o->bytes.len);
		err = check_chunk(ctx, a, x, raw, o);
	}
	/* Remembered for the attempt (a size-only one too: its records are
	 * not kept, only its sizes). */
	if (!err && zero) {
		ctx->zero.attempt_id = 0;
		err = zero_chunk_put(&ctx->zero, o);
		ctx->zero.attempt_id = err ? 0 : a->id;
		ctx->zero.m = m;
	}
	return err;
}

static lcp_err chunk_task(void *arg, uint32_t c, struct lcp_codec_ctx *ctx)
{
	const struct attempt *a = arg;
	return encode_chunk(ctx, a, c, &a->slots[c % a->window]);
}

/* Runs fn(arg, 0, ctx) as one task of exec (or on this thread). */
static lcp_err run_one(struct lcp_codec_ctx *ctx, struct lcp_encode_exec *exec, lcp_task_fn fn,
		       void *arg)
{
	struct lcp_encode_run *run;
	uint32_t i;
	lcp_err err = lcp_encode_run_start(exec, ctx, 1, 1, fn, arg, &run);
	if (!err)
		err = lcp_encode_run_next(run, &i);
	lcp_encode_run_end(run);
	return err;
}

/* What an attempt produced, summed over its chunks in order. */
struct attempt_result {
	double sums[4];
	double sqerr;
	uint64_t data_len;
};

/* Runs every chunk of attempt a through the executor and consumes them in
 * order: with out, records them in out->chunks and hands them to the sink;
 * without (a size-only candidate), only sums their sizes and errors. */
static lcp_err run_attempt(struct lcp_codec_ctx *ctx, struct lcp_encode_exec *exec,
			   struct attempt *a, const struct lcp_encode_sink *sink,
			   struct lcp_encoded *out, struct attempt_result *res)
{
	struct lcp_encode_run *run = NULL;
	lcp_err err = LCP_OK;

	memset(res, 0, sizeof *res);
	a->window = exec ? lcp_encode_exec_window(exec) : 1;
	a->slots = lcp_calloc(a->window, sizeof *a->slots);
	if (!a->slots)
		return LCP_ERR_NOMEM;
	if (out) {
		out->nchunks = a->pl.nchunks;
		out->chunks = lcp_calloc(a->pl.nchunks ? a->pl.nchunks : 1, sizeof *out->chunks);
		if (!out->chunks)
			err = LCP_ERR_NOMEM;
	}
	if (!err && out && sink->restart)
		err = sink->restart(sink->arg);
	if (!err && a->pl.nchunks)
		err = lcp_encode_run_start(exec, ctx, a->pl.nchunks, a->window, chunk_task, a, &run);
	for (uint32_t k = 0; !err && k < a->pl.nchunks; k++) {
		uint32_t c;
		err = lcp_encode_run_next(run, &c);
		if (err)
			break;
		struct chunk_out *o = &a->slots[c % a->window];
		o->info.data_off = res->data_len;
		res->data_len += o->bytes.len;
		res->sqerr += o->sqerr;
		for (unsigned s = 0; s < 4; s++)
			res->sums[s] += o->sums[s];
		if (out) {
			out->chunks[c] = o->info;
			err = sink->put(sink->arg, &o->info, o->bytes.data, o->crc);
		}
	}
	lcp_encode_run_end(run);
	for (uint32_t s = 0; s < a->window; s++)
		lcp_buf_free(&a->slots[s].bytes);
	lcp_free(a->slots);
	a->slots = NULL;
	return err;
}

/* Cosine and SQNR from summed metrics (xx, yy, xy, ee). */
static void metrics_from(const double s[4], double *cosine, double *sqnr_db)
{
	double xx = s[0], yy = s[1], xy = s[2], ee = s[3];
	if (xx == 0.0 && yy == 0.0)
		*cosine = 1.0;
	else if (xx == 0.0 || yy == 0.0)
		*cosine = 0.0;
	else
		*cosine = xy / (sqrt(xx) * sqrt(yy));
	*sqnr_db = ee == 0.0 ? INFINITY : 10.0 * log10(xx / ee);
}

/* Sets up attempt a for encoding enc (quantized: with plan stats st, low
 * rank lr, step multiplier mult) and builds its params block into
 * *params. */
static lcp_err attempt_init(struct attempt *a, const struct tensor_in *t,
			    const struct lcp_config *cfg, enum lcp_encoding enc,
			    const struct qstats *st, const struct lowrank *lr, float mult,
			    uint8_t **params, size_t *params_len)
{
	memset(a, 0, sizeof *a);
	a->t = t;
	a->cfg = cfg;
	a->enc = enc;
	a->id = atomic_fetch_add(&next_attempt_id, 1);
	a->lr = lr && lr->rank ? lr : NULL;
	if (enc == LCP_ENC_LOSSLESS) {
		struct lcp_qparams q = {0, false, 0, 0.0f};
		plan_chunks(&a->pl, t->n, t->cols, CHUNK_TARGET_BYTES / t->eb, 1);
		a->block_elems = BLOCK_ELEMS < a->pl.chunk_elems ? BLOCK_ELEMS : a->pl.chunk_elems;
		return params_build(t->src, enc, &q, false, NULL, 0, a->pl.chunk_elems, a->block_elems,
				    params, params_len);
	}
	plan_quant(&a->qp, st, enc, cfg, mult);
	plan_chunks(&a->pl, t->n, t->cols, CHUNK_TARGET_ELEMS, cfg->group_size);
	a->block_elems = BLOCK_ELEMS < a->pl.chunk_elems ? BLOCK_ELEMS : a->pl.chunk_elems;
	return params_build(t->src, enc, &a->qp.q, a->qp.dq, a->lr, cfg->group_size,
			    a->pl.chunk_elems, a->block_elems, params, params_len);
}

/* Encodes the tensor as enc for real: every chunk checked and put, out
 * filled (encoding, metrics, params, chunks, sizes); *sqerr (may be NULL)
 * gets the quantizer's own squared error. */
static lcp_err encode_as(struct lcp_codec_ctx *ctx, struct lcp_encode_exec *exec,
			 const struct tensor_in *t, const struct lcp_config *cfg,
			 enum lcp_encoding enc, const struct qstats *st, const struct lowrank *lr,
			 float mult, const struct lcp_encode_sink *sink, struct lcp_encoded *out,
			 double *sqerr)
{
	struct attempt a;
	struct attempt_result res;
	struct lcp_codec_tensor *ct = NULL;
	lcp_err err = attempt_init(&a, t, cfg, enc, st, lr, mult, &out->params, &out->params_len);
	if (!err)
		err = lcp_codec_tensor_open(out->params, out->params_len, &ct);
	if (err)
		return err;
	a.ct = ct;
	a.want_crc = sink->want_crc;
	err = run_attempt(ctx, exec, &a, sink, out, &res);
	lcp_codec_tensor_free(ct);
	if (err)
		return err;
	if (sqerr)
		*sqerr = res.sqerr;
	out->encoding = enc;
	out->data_len = res.data_len;
	out->stored_bytes = out->params_len + out->data_len;
	if (enc == LCP_ENC_LOSSLESS) {
		/* Lossless gave the input bytes back (checked per chunk): the
		 * metrics are exact by definition (and NaN/Inf inputs would make
		 * the sums meaningless). */
		out->cosine = 1.0;
		out->sqnr_db = INFINITY;
		return LCP_OK;
	}
	out->bits = enc == LCP_ENC_Q4 ? 4 : 8;
	out->group_size = cfg->group_size;
	out->symmetric = cfg->symmetric;
	out->rank = a.lr ? a.lr->rank : 0;
	metrics_from(res.sums, &out->cosine, &out->sqnr_db);
	out->qlor.nscales = 1;
	out->qlor.scales = lcp_malloc(sizeof(float));
	if (!out->qlor.scales)
		return LCP_ERR_NOMEM;
	out->qlor.scales[0] = a.qp.q.super;
	out->qlor.has_zero_points = !cfg->symmetric;
	return LCP_OK;
}

/* A scanned part's statistics (scan_part). */
struct part_stats {
	struct scratch raw;  /* the part's bytes when read (hashed in order later) */
	const uint8_t *bytes;
	uint64_t len;
	bool finite, in_range;
	struct qstats q;
	struct lcp_lossless_screen screen; /* the part's share of the sample */
};

struct scan {
	const struct tensor_in *t;
	const struct lcp_config *cfg;
	struct chunk_plan pl;
	enum lcp_encoding enc;    /* the first attempt's, whose statistics it takes */
	float *held;              /* n floats: the tensor kept as binary32 for the
				     low-rank choice and the attempts, or NULL */
	float *omega, *sketch;    /* with held and parts of whole rows: the
				     estimate's test matrix and W omega */
	bool hash_only;           /* the lossless preset: only the bytes matter */
	struct part_stats *slots;
	uint32_t window;
	/* The combined result. */
	bool finite, in_range;
	struct qstats q;          /* of the tensor */
	struct lcp_lossless_screen screen; /* the exact encoding's screen */
	struct lcp_xxh3_stream *hash;
};

/* Group statistics square values in binary32: magnitudes past this would
 * overflow them (and no trained weight comes near it), so such a tensor is
 * stored lossless like one holding Inf. */
#define QUANT_MAX_ABS 1e15f

static bool within_quant_range(const float *x, uint64_t n)
{
	bool ok = true;
	for (uint64_t i = 0; i < n; i++)
		ok &= fabsf(x[i]) <= QUANT_MAX_ABS;
	return ok;
}

/* The screen's reader for a source in memory. */
static lcp_err read_mem(void *arg, void *buf, size_t len, uint64_t off)
{
	memcpy(buf, (const uint8_t *)arg + off, len);
	return LCP_OK;
}

static lcp_err scan_part(void *arg, uint32_t p, struct lcp_codec_ctx *ctx)
{
	const struct scan *s = arg;
	const struct tensor_in *t = s->t;
	struct part_stats *ps = &s->slots[p % s->window];
	uint64_t b, m;

	chunk_range(&s->pl, p, &b, &m);
	lcp_err err = load_raw(t, b, m, &ps->raw, &ps->bytes);
	if (err)
		return err;
	ps->len = m * t->eb;
	if (s->hash_only)
		return LCP_OK;
	float *x = s->held ? s->held + b : scratch(&ctx->x, m * sizeof *x);
	if (!x)
		return LCP_ERR_NOMEM;
	memset(&ps->screen, 0, sizeof ps->screen);
	err = t->src->mem ? lcp_lossless_screen_part(&ps->screen, t->eb, t->n, t->period, ps->bytes, b,
						     m, read_mem, (void *)(uintptr_t)t->src->mem)
			  : lcp_lossless_screen_part(&ps->screen, t->eb, t->n, t->period, ps->bytes, b,
						     m, t->src->read, t->src->arg);
	if (err)
		return err;
	memset(&ps->q, 0, sizeof ps->q);
	if (all_zero(ps->bytes, NULL, m, t->eb)) {
		/* A hole, typically: zeros have zero statistics (every group's
		 * step and super-scale are 0). */
		if (s->held)
			memset(x, 0, m * sizeof *x);
		if (s->sketch) {
			memset(s->sketch + b / t->cols, 0, m / t->cols * sizeof *s->sketch);
			memset(s->sketch + t->rows + b / t->cols, 0, m / t->cols * sizeof *s->sketch);
		}
		ps->finite = ps->in_range = true;
		return LCP_OK;
	}
	ps->finite = load_elems(t->dtype, ps->bytes, m, x);
	ps->in_range = ps->finite && within_quant_range(x, m);
	if (ps->in_range) /* else lossless anyway: nothing else matters */
		qstats_add(&ps->q, x, m, s->cfg, s->enc);
	/* The estimate's first pass while the rows are in cache. */
	if (ps->in_range && s->sketch)
		lcp_lowrank_times2(x, m / t->cols, t->cols, s->omega, s->sketch + b / t->cols, t->rows);
	return LCP_OK;
}

/* Folds part p's statistics into the scan's, in part order. */
static void scan_fold(struct scan *s, const struct part_stats *ps,
		      const struct lcp_encode_sink *sink)
{
	if (s->hash)
		lcp_xxh3_stream_update(s->hash, ps->bytes, ps->len);
	if (sink->scanned)
		sink->scanned(sink->arg, ps->bytes, ps->len);
	if (s->hash_only)
		return;
	lcp_lossless_screen_fold(&s->screen, &ps->screen, s->t->eb);
	s->finite &= ps->finite;
	s->in_range &= ps->in_range;
	if (!s->in_range)
		return;
	qstats_fold(&s->q, &ps->q);
}

/* Low-rank ceiling for a rows x cols tensor: the config's rank, at most
 * min(rows, cols) and LR_MAX_BPW bits per weight of fp16 factors (each
 * component costs *comp_bpw); 0 when no low-rank part is possible. */
static uint64_t lowrank_kmax(uint64_t rows, uint64_t cols, uint16_t ceiling, double *comp_bpw)
{
	*comp_bpw = 0.0;
	if (rows < 2 || cols < 2 || rows > UINT32_MAX || cols > UINT32_MAX)
		return 0;
	*comp_bpw = 16.0 * (double)(rows + cols) / ((double)rows * (double)cols);
	uint64_t kmax = ceiling;
	if (kmax > rows)
		kmax = rows;
	if (kmax > cols)
		kmax = cols;
	if ((double)kmax * *comp_bpw > LR_MAX_BPW)
		kmax = (uint64_t)(LR_MAX_BPW / *comp_bpw);
	return kmax;
}

/*
 * Whether a low-rank part can pay, from an estimate of the top component's
 * share p of the energy T: lowrank_choose keeps r components when
 * 10 log10(1 - (s_1 + .. + s_r) / T) + c r < 0 (s_k the squared singular
 * values, c = LR_DB_PER_BIT dB per stored bit times the bits per weight of
 * one component). With every s_k <= s_1 = p T, that sum is at least
 * f(r) = 10 log10(1 - r p) + c r, concave in r with f(0) = 0, so nothing in
 * 1..kmax pays unless f(kmax) < 0, i.e. p > (1 - 10^(-c kmax / 10)) / kmax.
 * The estimate is a lower bound, hence LR_SCREEN_MARGIN.
 */
static bool lowrank_may_pay(double top_sq, double energy, uint64_t kmax, double comp_bpw)
{
	if (!(energy > 0.0))
		return false;
	double cost = LR_DB_PER_BIT * comp_bpw * (double)kmax;
	double p_min = (1.0 - pow(10.0, -cost / 10.0)) / (double)kmax;
	return top_sq / energy >= LR_SCREEN_MARGIN * p_min;
}

/* The scan: statistics of the whole tensor, its bytes hashed in order;
 * with hold, the tensor kept in s->held as binary32. */
static lcp_err run_scan(struct lcp_codec_ctx *ctx, struct lcp_encode_exec *exec, struct scan *s,
			bool hold, const struct lcp_encode_sink *sink)
{
	const struct tensor_in *t = s->t;
	struct lcp_encode_run *run = NULL;
	lcp_err err = LCP_OK;

	plan_chunks(&s->pl, t->n, t->cols, CHUNK_TARGET_ELEMS, s->cfg->group_size);
	if (hold && !(s->held = lcp_malloc(t->n * sizeof *s->held)))
		return LCP_ERR_NOMEM;
	if (hold && s->pl.chunk_elems % t->cols == 0) {
		s->omega = lcp_malloc(t->cols * 2 * sizeof *s->omega);
		s->sketch = lcp_malloc(t->rows * 2 * sizeof *s->sketch);
		if (!s->omega || !s->sketch)
			return LCP_ERR_NOMEM;
		lcp_lowrank_test2(s->omega, t->cols, LR_SCREEN_SEED);
	}
	s->window = exec ? lcp_encode_exec_window(exec) : 1;
	s->slots = lcp_calloc(s->window, sizeof *s->slots);
	if (!s->slots)
		err = LCP_ERR_NOMEM;
	if (!err)
		err = lcp_encode_run_start(exec, ctx, s->pl.nchunks, s->window, scan_part, s, &run);
	for (uint32_t k = 0; !err && k < s->pl.nchunks; k++) {
		uint32_t p;
		err = lcp_encode_run_next(run, &p);
		if (!err)
			scan_fold(s, &s->slots[p % s->window], sink);
	}
	lcp_encode_run_end(run);
	for (uint32_t k = 0; s->slots && k < s->window; k++)
		scratch_free(&s->slots[k].raw);
	lcp_free(s->slots);
	s->slots = NULL;
	return err;
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
 * The first r components of a fit (u: rows x stride, column k = sigma_k
 * u_k; vt: r x cols) as stored: fp16, balanced per component so both sides
 * share the dynamic range, with their binary32 values as the decoder sees
 * them. Outside fp16's comfortable range the factors would lose their
 * precision or overflow: then no low-rank part (lr rank 0).
 */
static lcp_err lowrank_store(const float *u, uint64_t stride, const float *vt, uint64_t r,
			     uint64_t rows, uint64_t cols, struct lowrank *lr)
{
	lr->rank = (uint16_t)r;
	lr->rows = rows;
	lr->cols = cols;
	lr->u16 = lcp_malloc(rows * r * sizeof *lr->u16);
	lr->vt16 = lcp_malloc(r * cols * sizeof *lr->vt16);
	lr->u = lcp_malloc(rows * r * sizeof *lr->u);
	lr->vt = lcp_malloc(r * cols * sizeof *lr->vt);
	if (!lr->u16 || !lr->vt16 || !lr->u || !lr->vt) {
		lowrank_free(lr);
		return LCP_ERR_NOMEM;
	}
	for (uint64_t k = 0; k < r; k++) {
		float ua = 0.0f, va = 0.0f;
		for (uint64_t i = 0; i < rows; i++)
			ua = fmaxf(ua, fabsf(u[i * stride + k]));
		for (uint64_t c = 0; c < cols; c++)
			va = fmaxf(va, fabsf(vt[k * cols + c]));
		float f = ua > 0.0f && va > 0.0f ? sqrtf(va / ua) : 1.0f;
		float peak = sqrtf(ua * va);
		if (!(peak < LR_FP16_MAX) || !(peak > LR_FP16_MIN) || !isfinite(f)) {
			lowrank_free(lr);
			return LCP_OK;
		}
		for (uint64_t i = 0; i < rows; i++) {
			lr->u16[i * r + k] = lcp_f16_from_f32(u[i * stride + k] * f);
			lr->u[i * r + k] = lcp_f16_to_f32(lr->u16[i * r + k]);
		}
		for (uint64_t c = 0; c < cols; c++) {
			lr->vt16[k * cols + c] = lcp_f16_from_f32(vt[k * cols + c] / f);
			lr->vt[k * cols + c] = lcp_f16_to_f32(lr->vt16[k * cols + c]);
		}
	}
	return LCP_OK;
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
	double comp_bpw;
	uint64_t kmax = lowrank_kmax(rows, cols, ceiling, &comp_bpw);
	if (kmax == 0)
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
	if (!err && best_r)
		err = lowrank_store(u, kf, vt, best_r, rows, cols, lr);
out:
	lcp_free(u);
	lcp_free(vt);
	lcp_free(sv);
	return err;
}

/* Stored bits per weight plus the dB of error: lower is better, with one bit
 * per weight worth LR_DB_PER_BIT (the exchange rate of DESIGN.md). */
static double rd_cost(const struct lcp_encoded *e, uint64_t n)
{
	return -e->sqnr_db + LR_DB_PER_BIT * 8.0 * (double)e->stored_bytes / (double)n;
}

/* The choice of a low-rank part for one encoding, and the plan statistics
 * that go with it. */
struct lr_choice {
	const struct tensor_in *t;   /* held */
	const struct lcp_config *cfg;
	enum lcp_encoding enc;
	struct lcp_codec_ctx *ctx;   /* the caller's (exec NULL: every step) */
	struct lcp_encode_exec *exec;
	struct lcp_encoded plain_enc; /* the plain encoding as encoded for real:
					 stored_bytes, and sqnr_db from the
					 quantizer's error, as candidates have */
	double energy;
	uint64_t kmax;
	double comp_bpw;
	struct lowrank lr;           /* rank 0: none */
	struct qstats q;             /* of the residual, when lr.rank */
	float mult;                  /* step multiplier */
};

/* A candidate's sampled chunks (candidate): chunk k * nc / ns into slot k. */
struct sample {
	struct attempt a;
	uint32_t ns;
};

static lcp_err sample_task(void *arg, uint32_t k, struct lcp_codec_ctx *ctx)
{
	struct sample *sm = arg;
	uint32_t c = (uint32_t)((uint64_t)k * sm->a.pl.nchunks / sm->ns);
	return encode_chunk(ctx, &sm->a, c, &sm->a.slots[k]);
}

/* Stored bytes and quantizer error of one candidate, from a size-only
 * encode (no check, nothing put) of up to `chunks` evenly spaced chunks, in
 * parallel, scaled to the tensor: the candidates of a large tensor are
 * ranked on a fixed sample, a small one's on all of it. */
static lcp_err candidate(const struct lr_choice *ch, const struct qstats *st,
			 const struct lowrank *lr, float mult, uint32_t chunks,
			 struct lcp_encoded *e)
{
	struct sample sm;
	struct lcp_encode_run *run = NULL;
	uint8_t *params = NULL;
	size_t params_len = 0;
	double bytes = 0.0, sqerr = 0.0;
	uint64_t elems = 0;
	lcp_err err = attempt_init(&sm.a, ch->t, ch->cfg, ch->enc, st, lr, mult, &params,
				   &params_len);
	lcp_free(params);
	uint32_t nc = sm.a.pl.nchunks;
	sm.ns = nc < chunks ? nc : chunks;
	sm.a.window = sm.ns;
	sm.a.slots = err || !sm.ns ? NULL : lcp_calloc(sm.ns, sizeof *sm.a.slots);
	if (!err && sm.ns && !sm.a.slots)
		err = LCP_ERR_NOMEM;
	if (!err && sm.ns)
		err = lcp_encode_run_start(ch->exec, ch->ctx, sm.ns, sm.ns, sample_task, &sm, &run);
	for (uint32_t k = 0; !err && k < sm.ns; k++) {
		uint32_t j;
		err = lcp_encode_run_next(run, &j);
		if (err)
			break;
		const struct chunk_out *o = &sm.a.slots[j];
		bytes += (double)o->bytes.len;
		sqerr += o->sqerr;
		elems += o->info.elem_end - o->info.elem_begin;
	}
	lcp_encode_run_end(run);
	for (uint32_t k = 0; sm.a.slots && k < sm.ns; k++)
		lcp_buf_free(&sm.a.slots[k].bytes);
	lcp_free(sm.a.slots);
	if (err)
		return err;
	double scale = elems ? (double)ch->t->n / (double)elems : 1.0;
	e->stored_bytes = params_len + (uint64_t)(bytes * scale + 0.5);
	sqerr *= scale;
	e->sqnr_db = sqerr > 0.0 ? 10.0 * log10(ch->energy / sqerr) : INFINITY;
	return LCP_OK;
}

/* Plan statistics of the quantizer's input: the tensor, or its residual
 * x - U V^T (input_stats). */
struct stats_scan {
	const struct tensor_in *t;
	const struct lcp_config *cfg;
	enum lcp_encoding enc;
	const struct lowrank *lr;
	struct chunk_plan pl;
	uint32_t ns;             /* parts scanned: all, or an even sample */
	struct qstats *slots;
	uint32_t window;
};

static lcp_err stats_task(void *arg, uint32_t k, struct lcp_codec_ctx *ctx)
{
	const struct stats_scan *ss = arg;
	struct qstats *q = &ss->slots[k % ss->window];
	uint32_t c = (uint32_t)((uint64_t)k * ss->pl.nchunks / ss->ns);
	uint64_t b, m;
	const float *x, *xq;
	const uint8_t *raw;
	chunk_range(&ss->pl, c, &b, &m);
	memset(q, 0, sizeof *q);
	lcp_err err = load_floats(ctx, ss->t, b, m, &x, &raw);
	if (!err)
		err = quant_input(ctx, ss->lr, x, b, m, &xq);
	if (!err)
		qstats_add(q, xq, m, ss->cfg, ss->enc);
	return err;
}

/* The plan statistics for encoding enc of tensor t (with lr: of its
 * residual), from every part or, with sample > 0, from that many evenly
 * spaced parts (sumsq scaled to the tensor: an estimate for ranking
 * candidates, never for an encoding that is kept). */
static lcp_err input_stats(struct lcp_codec_ctx *ctx, struct lcp_encode_exec *exec,
			   const struct tensor_in *t, const struct lcp_config *cfg,
			   enum lcp_encoding enc, const struct lowrank *lr, uint32_t sample,
			   struct qstats *q)
{
	struct stats_scan ss = {.t = t, .cfg = cfg, .enc = enc, .lr = lr,
				.window = exec ? lcp_encode_exec_window(exec) : 1};
	struct lcp_encode_run *run = NULL;
	memset(q, 0, sizeof *q);
	plan_chunks(&ss.pl, t->n, t->cols, CHUNK_TARGET_ELEMS, cfg->group_size);
	ss.ns = sample && sample < ss.pl.nchunks ? sample : ss.pl.nchunks;
	ss.slots = lcp_calloc(ss.window, sizeof *ss.slots);
	lcp_err err = ss.slots ? LCP_OK : LCP_ERR_NOMEM;
	uint64_t elems = 0;
	if (!err && ss.ns)
		err = lcp_encode_run_start(exec, ctx, ss.ns, ss.window, stats_task, &ss, &run);
	for (uint32_t k = 0; !err && k < ss.ns; k++) {
		uint32_t i, c = (uint32_t)((uint64_t)k * ss.pl.nchunks / ss.ns);
		uint64_t b, m;
		err = lcp_encode_run_next(run, &i);
		if (!err)
			qstats_fold(q, &ss.slots[i % ss.window]);
		chunk_range(&ss.pl, c, &b, &m);
		elems += m;
	}
	lcp_encode_run_end(run);
	lcp_free(ss.slots);
	if (!err && ss.ns < ss.pl.nchunks && elems)
		q->sumsq *= (double)t->n / (double)elems;
	return err;
}

/*
 * Whether low-rank part lr wins against the plain encoding, whose
 * candidate is plain: in the entropy-coded class, the factors are paid for
 * with a coarser step (one bit per weight doubles it), corrected once by
 * the measured excess, so the tensor keeps about the bits it had and the
 * low rank must win in dB at equal size. Candidates are compared on their
 * stored bytes and on the error the quantizer reports. A precheck takes
 * LR_PRECHECK_CHUNKS sampled chunks and no excess correction (it only has
 * to reject cheaply what cannot win). On a win, ch->q holds the residual's
 * statistics and *mult the step multiplier.
 */
static lcp_err lowrank_wins(struct lr_choice *ch, const struct lcp_encoded *plain,
			    const struct lowrank *lr, bool precheck, float *mult, bool *wins)
{
	uint32_t sample = precheck ? LR_PRECHECK_CHUNKS : 0;
	struct lcp_encoded with;
	double n = (double)ch->t->n;
	double comp = 16.0 * (double)lr->rank * (double)(lr->rows + ch->t->cols) / n;
	*mult = (float)exp2(comp);
	*wins = false;
	memset(&with, 0, sizeof with);
	lcp_err err = input_stats(ch->ctx, ch->exec, ch->t, ch->cfg, ch->enc, lr, sample, &ch->q);
	if (!err)
		err = candidate(ch, &ch->q, lr, *mult, sample ? sample : LR_CANDIDATE_CHUNKS, &with);
	double excess = 8.0 * (double)with.stored_bytes / n - 8.0 * (double)plain->stored_bytes / n;
	if (!err && !precheck && uses_dq(ch->enc, ch->cfg) && excess > LR_RATE_SLACK) {
		*mult *= (float)exp2(excess);
		err = candidate(ch, &ch->q, lr, *mult, LR_CANDIDATE_CHUNKS, &with);
	}
	*wins = !err && rd_cost(&with, ch->t->n) < rd_cost(plain, ch->t->n);
	return err;
}

/* The quick estimate of the top component and its rank-1 fit
 * (lowrank.h), each of its three passes split into row blocks run in
 * parallel; the blocks' parts of W^T Y are added in block order. */
struct top_job {
	const struct tensor_in *t;
	uint64_t block_rows;
	uint32_t nblocks;
	unsigned pass;       /* 0: y = W omega, 1: z parts = W^T y, 2: y = W z */
	float *omega, *y, *z;
	float *zparts;       /* window slots of cols x 2 */
	uint32_t window;
};

static lcp_err top_task(void *arg, uint32_t k, struct lcp_codec_ctx *ctx)
{
	struct top_job *tj = arg;
	const struct tensor_in *t = tj->t;
	uint64_t r0 = (uint64_t)k * tj->block_rows;
	uint64_t rows = t->rows - r0 < tj->block_rows ? t->rows - r0 : tj->block_rows;
	const float *w = t->held + r0 * t->cols;
	(void)ctx;
	if (tj->pass == 1)
		lcp_lowrank_times2t(w, rows, t->cols, tj->y + r0, t->rows,
				    tj->zparts + (k % tj->window) * t->cols * 2);
	else
		lcp_lowrank_times2(w, rows, t->cols, tj->pass ? tj->z : tj->omega, tj->y + r0, t->rows);
	return LCP_OK;
}

static lcp_err top_pass(struct lr_choice *ch, struct top_job *tj, unsigned pass)
{
	struct lcp_encode_run *run;
	uint64_t cols = ch->t->cols;
	tj->pass = pass;
	if (pass == 1)
		memset(tj->z, 0, cols * 2 * sizeof *tj->z);
	lcp_err err = lcp_encode_run_start(ch->exec, ch->ctx, tj->nblocks, tj->window, top_task, tj,
					   &run);
	for (uint32_t k = 0; !err && k < tj->nblocks; k++) {
		uint32_t i;
		err = lcp_encode_run_next(run, &i);
		const float *part = tj->zparts + (i % tj->window) * cols * 2;
		for (uint64_t j = 0; !err && pass == 1 && j < cols * 2; j++)
			tj->z[j] += part[j];
	}
	lcp_encode_run_end(run);
	return err;
}

/* *top_sq, u (rows) and v (cols): the estimate of the held tensor. */
static lcp_err top_estimate(struct lr_choice *ch, double *top_sq, float *u, float *v)
{
	const struct tensor_in *t = ch->t;
	struct top_job tj = {.t = t, .window = ch->exec ? lcp_encode_exec_window(ch->exec) : 1};
	tj.block_rows = CHUNK_TARGET_ELEMS / t->cols ? CHUNK_TARGET_ELEMS / t->cols : 1;
	tj.nblocks = (uint32_t)((t->rows + tj.block_rows - 1) / tj.block_rows);
	tj.omega = lcp_malloc(t->cols * 2 * sizeof *tj.omega);
	tj.z = lcp_malloc(t->cols * 2 * sizeof *tj.z);
	tj.y = lcp_malloc(t->rows * 2 * sizeof *tj.y);
	tj.zparts = lcp_malloc(tj.window * t->cols * 2 * sizeof *tj.zparts);
	lcp_err err = tj.omega && tj.z && tj.y && tj.zparts ? LCP_OK : LCP_ERR_NOMEM;
	if (!err && t->sketch) {
		memcpy(tj.y, t->sketch, t->rows * 2 * sizeof *tj.y);
	} else if (!err) {
		lcp_lowrank_test2(tj.omega, t->cols, LR_SCREEN_SEED);
		err = top_pass(ch, &tj, 0);
	}
	if (!err) {
		lcp_lowrank_orth2(tj.y, t->rows);
		err = top_pass(ch, &tj, 1);
	}
	if (!err) {
		lcp_lowrank_orth2(tj.z, t->cols);
		err = top_pass(ch, &tj, 2);
	}
	if (!err)
		*top_sq = lcp_lowrank_top2(tj.y, t->rows, tj.z, t->cols, u, v);
	lcp_free(tj.omega);
	lcp_free(tj.z);
	lcp_free(tj.y);
	lcp_free(tj.zparts);
	return err;
}

static lcp_err probe_task(void *arg, uint32_t i, struct lcp_codec_ctx *ctx)
{
	struct lr_choice *ch = arg;
	(void)i;
	(void)ctx;
	return lowrank_choose(ch->t->held, ch->t->rows, ch->t->cols, ch->energy, ch->cfg->rank,
			      &ch->lr);
}

/*
 * With the tensor held, in three steps that each cost far less than the
 * next: a quick estimate of the top component (top_estimate) screened by
 * lowrank_may_pay; its rank-1 fit tried against the plain
 * encoding (lowrank_wins: where the top component does not win, a deeper
 * fit of the same spectrum does not either); then the rank probe and fit
 * (lowrank_choose), kept only if it wins too. The plain candidate is
 * measured once for both comparisons. Each step runs on the executor (the
 * fits as one task, the candidates' chunks in parallel); the winner is
 * then encoded for real (and checked) by the caller.
 *
 * The pre-check is for tensors larger than its sample: on one of at most
 * LR_PRECHECK_CHUNKS chunks it would encode the whole tensor, as the final
 * comparison does, and save only the fit of a small matrix, while the
 * estimate's rank-1 factors are a weaker fit than lowrank_choose's (under
 * dependent quantization stories260K's layers.0.attention.wq lost to the
 * plain encoding with them by 0.07 dB at equal size, and won with the fit).
 */
static lcp_err lowrank_decide(struct lr_choice *ch)
{
	const struct tensor_in *t = ch->t;
	struct lowrank top;
	double top_sq = 0.0;
	float mult;
	bool wins = false;
	memset(&top, 0, sizeof top);
	float *u = lcp_malloc(t->rows * sizeof *u), *v = lcp_malloc(t->cols * sizeof *v);
	lcp_err err = u && v ? LCP_OK : LCP_ERR_NOMEM;
	if (!err)
		err = top_estimate(ch, &top_sq, u, v);
	if (!err && lowrank_may_pay(top_sq, ch->energy, ch->kmax, ch->comp_bpw))
		err = lowrank_store(u, 1, v, 1, t->rows, t->cols, &top);
	lcp_free(u);
	lcp_free(v);
	struct chunk_plan pl;
	plan_chunks(&pl, t->n, t->cols, CHUNK_TARGET_ELEMS, ch->cfg->group_size);
	if (!err && top.rank && pl.nchunks > LR_PRECHECK_CHUNKS)
		err = lowrank_wins(ch, &ch->plain_enc, &top, true, &mult, &wins);
	else
		wins = top.rank > 0;
	lowrank_free(&top);
	if (!err && wins)
		err = run_one(ch->ctx, ch->exec, probe_task, ch);
	if (!err && ch->lr.rank)
		err = lowrank_wins(ch, &ch->plain_enc, &ch->lr, false, &mult, &wins);
	if (!err && ch->lr.rank && wins)
		ch->mult = mult;
	else
		lowrank_free(&ch->lr);
	return err;
}

static lcp_err fill_dims(const struct lcp_tensor_source *t, struct lcp_qlor *m)
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

/* Chooses the low-rank part for encoding enc of held tensor t (ch->lr
 * rank 0: none) and the plan statistics that go with it; plain_enc: its
 * plain encoding (stored bytes, and the quantizer's SQNR), energy its sum
 * of squares. */
static lcp_err choose_lowrank(struct lcp_codec_ctx *ctx, struct lcp_encode_exec *exec,
			      const struct tensor_in *t, const struct lcp_config *cfg,
			      const struct lcp_encoded *plain_enc, double energy,
			      enum lcp_encoding enc, struct lr_choice *ch)
{
	memset(ch, 0, sizeof *ch);
	ch->t = t;
	ch->cfg = cfg;
	ch->enc = enc;
	ch->ctx = ctx;
	ch->exec = exec;
	ch->plain_enc.stored_bytes = plain_enc->stored_bytes;
	ch->plain_enc.sqnr_db = plain_enc->sqnr_db;
	ch->energy = energy;
	ch->mult = 1.0f;
	ch->kmax = lowrank_kmax(t->rows, t->cols, cfg->rank, &ch->comp_bpw);
	if (!t->held || ch->kmax == 0)
		return LCP_OK;
	lcp_err err = lowrank_decide(ch);
	if (err)
		lowrank_free(&ch->lr);
	return err;
}

/* A lossless encoding replaces the lossy one when it stores at most 1 part
 * in EXACT_MARGIN or EXACT_SLACK_BYTES more, whichever is larger: the bits
 * then buy exact values (a 4096-element coordinate grid takes ~200 bytes
 * exact, ~160 at 4 bits). */
#define EXACT_MARGIN 16u
#define EXACT_SLACK_BYTES 64u

/*
 * Stores *out (a lossy encoding, put to the sink) exact instead when that
 * costs at most that much more; *reason then says so. The scan's sample
 * screens out the tensors where it cannot, such as trained weights, without
 * encoding them (lcp_lossless_screen). One that passes is sized first
 * without the sink, so the lossy chunks stay put unless the exact encoding
 * wins; only then is it encoded again for real (lossless encoding is
 * several times cheaper than quantization, and rarely gets this far).
 */
static lcp_err exact_if_cheap(struct lcp_codec_ctx *ctx, struct lcp_encode_exec *exec,
			      const struct tensor_in *t, const struct lcp_config *cfg,
			      const struct lcp_lossless_screen *screen,
			      const struct lcp_encode_sink *sink, struct lcp_encoded *out,
			      const char **reason)
{
	uint64_t slack = out->stored_bytes / EXACT_MARGIN > EXACT_SLACK_BYTES
				 ? out->stored_bytes / EXACT_MARGIN
				 : EXACT_SLACK_BYTES;
	uint64_t limit = out->stored_bytes + slack;
	if (!lcp_lossless_screen_may_pay(screen, t->eb, t->n, limit))
		return LCP_OK;
	struct attempt a;
	struct attempt_result res;
	uint8_t *params = NULL;
	size_t params_len = 0;
	lcp_err err = attempt_init(&a, t, cfg, LCP_ENC_LOSSLESS, NULL, NULL, 1.0f, &params,
				   &params_len);
	lcp_free(params);
	if (!err)
		err = run_attempt(ctx, exec, &a, sink, NULL, &res);
	if (err || params_len + res.data_len > limit)
		return err;
	struct lcp_encoded exact;
	memset(&exact, 0, sizeof exact);
	err = encode_as(ctx, exec, t, cfg, LCP_ENC_LOSSLESS, NULL, NULL, 1.0f, sink, &exact, NULL);
	if (err) {
		lcp_encoded_free(&exact);
		return err;
	}
	*reason = out->encoding == LCP_ENC_Q4 ? "exact: no larger than 4-bit"
					      : "exact: no larger than 8-bit";
	lcp_encoded_free(out);
	*out = exact;
	return LCP_OK;
}

/* A memory sink: the chunks gathered in one buffer (lcp_codec_encode). */
static lcp_err mem_restart(void *arg)
{
	((struct lcp_buf *)arg)->len = 0;
	return LCP_OK;
}

static lcp_err mem_put(void *arg, const struct lcp_chunk_info *c, const uint8_t *data, uint32_t crc)
{
	(void)crc;
	return lcp_buf_append(arg, data, (size_t)c->data_len);
}

lcp_err lcp_codec_encode_stream(struct lcp_codec_ctx *ctx, const struct lcp_tensor_source *src,
				const struct lcp_config *cfg, struct lcp_encode_exec *exec,
				const struct lcp_encode_sink *sink, struct lcp_encoded *out)
{
	if (out)
		memset(out, 0, sizeof *out);
	if (!ctx || !src || !cfg || !sink || !sink->put || !out || !lcp_codec_config_ok(cfg) ||
	    src->ndims > LCP_MAX_DIMS || (!src->mem && !src->read))
		return LCP_ERR_INVAL;
	struct tensor_in t = {.src = src, .dtype = src->dtype, .eb = lcp_codec_elem_bytes(src->dtype),
			      .n = 1, .cols = 1};
	if (!t.eb)
		return LCP_ERR_UNSUPPORTED;
	for (uint32_t i = 0; i < src->ndims; i++) {
		if (src->dims[i] && t.n > (UINT64_MAX / 16) / src->dims[i])
			return LCP_ERR_INVAL;
		t.n *= src->dims[i];
		t.cols = src->dims[i];
	}
	t.rows = t.cols ? t.n / t.cols : 0;
	t.period = lcp_lossless_period(src->ndims, src->dims);
	/* Chunk counts are 32-bit: the smallest chunk (lossless F64) must
	 * cover the tensor in 2^32 - 1 of them. */
	if (t.n / (CHUNK_TARGET_BYTES / 8) >= UINT32_MAX)
		return LCP_ERR_RANGE;

	struct scan s = {.t = &t, .cfg = cfg, .finite = true, .in_range = true,
			 .enc = cfg->bits == 4 ? LCP_ENC_Q4 : LCP_ENC_Q8, .hash_only = cfg->lossless};
	double comp_bpw;
	/* A tensor too large to hold gets no low-rank part: a fit from a
	 * streamed sketch would need a pass over the file per power iteration
	 * and per candidate, for a part that pays on few tensors (see
	 * docs/DESIGN-notes.md). A held tensor is also what its attempts read
	 * (F64 aside: its metrics need the stored values). */
	bool hold = !cfg->lossless && t.n <= LCP_ENCODE_HOLD_MAX_ELEMS &&
		    lowrank_kmax(t.rows, t.cols, cfg->rank, &comp_bpw) > 0;
	lcp_err err = LCP_OK;
	if (!src->mem)
		err = lcp_xxh3_stream_create(&s.hash);
	if (!err && t.n)
		err = run_scan(ctx, exec, &s, hold, sink);
	else if (!err && sink->scanned)
		sink->scanned(sink->arg, "", 0);
	t.held = s.in_range ? s.held : NULL;
	t.sketch = t.held ? s.sketch : NULL;

	enum lcp_encoding tries[2] = {cfg->bits == 4 ? LCP_ENC_Q4 : LCP_ENC_Q8, LCP_ENC_Q8};
	unsigned ntries = cfg->bits == 4 ? 2 : 1;
	const char *reason = NULL;
	bool done = false;
	if (cfg->lossless) {
		ntries = 0;
	} else if (!s.finite) {
		reason = "NaN or Inf in tensor";
		ntries = 0;
	} else if (!s.in_range) {
		reason = "values too large to quantize";
		ntries = 0;
	} else if (t.n == 0) {
		ntries = 0;
	}
	for (unsigned k = 0; k < ntries && !err && !done; k++) {
		struct lr_choice ch;
		struct tensor_in ta = t;
		struct qstats plain = s.q;
		/* The scan took the first encoding's statistics; a fallback's
		 * take one more pass. */
		if (k > 0)
			err = input_stats(ctx, exec, &t, cfg, tries[k], NULL, 0, &plain);
		if (t.dtype == LCP_DTYPE_F64)
			ta.held = NULL;
		/* The plain encoding first, for real: the candidate a low-rank
		 * part must beat, and on most tensors the one kept. */
		double sqerr = 0.0;
		if (!err)
			err = encode_as(ctx, exec, &ta, cfg, tries[k], &plain, NULL, 1.0f, sink, out,
					&sqerr);
		memset(&ch, 0, sizeof ch);
		if (!err) {
			struct lcp_encoded pe = {.stored_bytes = out->stored_bytes};
			pe.sqnr_db = sqerr > 0.0 ? 10.0 * log10(s.q.sumsq / sqerr) : INFINITY;
			err = choose_lowrank(ctx, exec, &t, cfg, &pe, s.q.sumsq, tries[k], &ch);
		}
		if (!err && ch.lr.rank) {
			/* The low-rank part won: the sink forgets the plain chunks. */
			lcp_encoded_free(out);
			err = encode_as(ctx, exec, &ta, cfg, tries[k], &ch.q, &ch.lr, ch.mult, sink, out,
					NULL);
		}
		lowrank_free(&ch.lr);
		if (!err && out->cosine >= (double)cfg->quality_threshold) {
			done = true;
			if (k > 0)
				reason = "quality floor: 4-bit cosine below threshold, stored 8-bit";
		} else {
			lcp_encoded_free(out);
			reason = "quality floor: quantized cosine below threshold, stored lossless";
		}
	}
	lcp_free(s.held);
	lcp_free(s.omega);
	lcp_free(s.sketch);
	t.held = NULL;
	t.sketch = NULL;
	if (!err && !done)
		err = encode_as(ctx, exec, &t, cfg, LCP_ENC_LOSSLESS, NULL, NULL, 1.0f, sink, out, NULL);
	else if (!err)
		err = exact_if_cheap(ctx, exec, &t, cfg, &s.screen, sink, out, &reason);
	if (!err) {
		out->fallback_reason = reason;
		out->qlor.original_size = t.n * t.eb;
		out->qlor.bits = out->bits;
		out->qlor.rank = out->rank;
		out->qlor.dtype = src->dtype;
		out->qlor.original_checksum = src->mem ? lcp_xxh3(src->mem, t.n * t.eb)
						       : lcp_xxh3_stream_digest(s.hash);
		err = fill_dims(src, &out->qlor);
	}
	lcp_xxh3_stream_free(s.hash);
	if (err)
		lcp_encoded_free(out);
	return err;
}

lcp_err lcp_codec_encode(struct lcp_codec_ctx *ctx, const struct lcp_tensor_view *t,
			 const struct lcp_config *cfg, struct lcp_encoded *out)
{
	if (out)
		memset(out, 0, sizeof *out);
	if (!t || !out || t->ndims > LCP_MAX_DIMS)
		return LCP_ERR_INVAL;
	struct lcp_tensor_source src = {.dtype = t->dtype, .ndims = t->ndims, .mem = t->data};
	memcpy(src.dims, t->dims, sizeof src.dims);
	unsigned eb = lcp_codec_elem_bytes(t->dtype);
	uint64_t n = 1;
	for (uint32_t i = 0; eb && i < t->ndims; i++) {
		if (t->dims[i] && n > (UINT64_MAX / 16) / t->dims[i])
			return LCP_ERR_INVAL;
		n *= t->dims[i];
	}
	if (eb && (n * eb != t->len || (!t->data && t->len)))
		return LCP_ERR_INVAL;
	if (!t->data)
		src.mem = "";
	struct lcp_buf data = LCP_BUF_INIT;
	struct lcp_encode_sink sink = {.restart = mem_restart, .put = mem_put, .arg = &data};
	lcp_err err = lcp_codec_encode_stream(ctx, &src, cfg, NULL, &sink, out);
	if (err) {
		lcp_buf_free(&data);
		return err;
	}
	out->data = data.data;
	return LCP_OK;
}
