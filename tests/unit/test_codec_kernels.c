/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Every decode kernel set this machine supports ("baseline", "avx2", "avx512",
 * "avx512bf16") against the reference kernels ("ref"), bit for bit:
 *  - dequantize-and-store runs over every output dtype, odd lengths, group
 *    phases, misaligned outputs, with and without a low-rank term and
 *    dependent quantization's classes, and
 *    values that test the narrowing: F16/BF16 rounding ties, subnormals,
 *    overflow to infinity, NaN;
 *  - the reference itself against the formula of kernels.h computed here;
 *  - whole tensors of every preset and dtype decoded through the codec with
 *    each set, and every range read (lcp_codec_decode_range) against the
 *    same bytes of the whole-chunk decode;
 *  - the fused rANS-and-dequantize kernels on coded blocks, with scales
 *    that are subnormal (which the BF16 extension's narrowing would flush),
 *    zero, huge, on rounding ties; BF16 tensors with subnormal scales
 *    through the encoder;
 *  - chunks of pairs (8-bit codes, code mode 3) built here from the
 *    format's text, every lane count, against the same codes stored raw;
 *  - damaged 16-lane chunks and chunks of pairs (valid checksum) through
 *    every set: never a crash (SAN=1), the same verdict as the reference.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/half.h"
#include "codec/kernels.h"
#include "codec/quant.h"
#include "codec/rans.h"
#include "codec/stream.h"
#include "common/buf.h"
#include "common/checksum.h"
#include "common/le.h"
#include "lcpfs/codec.h"
#include "test_codec_damage.h"
#include "test_codec_helpers.h"

static const char *const fast_sets[] = {"baseline", "avx2", "avx512", "avx512bf16"};
#define NFAST (sizeof fast_sets / sizeof fast_sets[0])

static const enum lcp_dtype dtypes[] = {LCP_DTYPE_F32, LCP_DTYPE_F16, LCP_DTYPE_BF16, LCP_DTYPE_F64};

static float from_bits(uint32_t u)
{
	float f;
	memcpy(&f, &u, sizeof f);
	return f;
}

/* The value kernels.h defines for element i of a run, computed here. */
static float expected_value(const struct lcp_dequant_run *r, uint32_t i)
{
	uint32_t g = (r->phase + i) / r->group_size;
	int c = (int)r->codes[i] - (int)r->off[g];
	/* dependent quantization: the odd neighbour toward zero in class 1 */
	int level = r->cls && r->cls[i] ? 2 * c - (c > 0) + (c < 0) : r->cls ? 2 * c : c;
	float y = r->sd[g] * (float)level;
	if (r->rank) {
		float l = 0.0f;
		for (uint16_t k = 0; k < r->rank; k++)
			l = l + r->u[k] * r->vt[k * r->cols + r->col + i];
		y = y + l;
	}
	return y;
}

static void expected_bytes(const struct lcp_dequant_run *r, enum lcp_dtype dt, uint8_t *out)
{
	for (uint32_t i = 0; i < r->n; i++) {
		float y = expected_value(r, i);
		uint16_t h;
		double d = y;
		switch (dt) {
		case LCP_DTYPE_F32:
			memcpy(out + 4 * i, &y, 4);
			break;
		case LCP_DTYPE_F16:
			h = lcp_f16_from_f32(y);
			memcpy(out + 2 * i, &h, 2);
			break;
		case LCP_DTYPE_BF16:
			h = lcp_bf16_from_f32(y);
			memcpy(out + 2 * i, &h, 2);
			break;
		default:
			memcpy(out + 8 * i, &d, 8);
			break;
		}
	}
}

/* Largest run and group count the tests below build. */
#define MAX_N 700
#define MAX_GROUPS (MAX_N / 8 + 2)
#define MAX_RANK 3

struct run_case {
	struct lcp_dequant_run r;
	uint8_t codes[MAX_N], cls[MAX_N];
	float sd[MAX_GROUPS], off[MAX_GROUPS];
	float u[MAX_RANK], vt[MAX_RANK * (MAX_N + 16)];
};

/* Runs c through every set and compares with the formula; misalign shifts
 * the output buffer by that many bytes. */
static void check_run(struct run_case *c, const char *what)
{
	const struct lcp_kernels *ref = lcp_kernels_named("ref");
	cr_assert_not_null(ref);
	for (size_t d = 0; d < sizeof dtypes / sizeof dtypes[0]; d++) {
		enum lcp_dtype dt = dtypes[d];
		size_t bytes = (size_t)c->r.n * elem_bytes(dt);
		uint8_t *want = malloc(bytes + 1), *got = malloc(bytes + 8);
		expected_bytes(&c->r, dt, want);
		for (unsigned mis = 0; mis < 4; mis++) {
			c->r.out = got + mis;
			memset(got, 0x5a, bytes + 8);
			ref->dequant_store(&c->r, dt);
			cr_assert_arr_eq(got + mis, want, bytes, "%s: ref, dtype %d", what, dt);
			for (size_t k = 0; k < NFAST; k++) {
				const struct lcp_kernels *kern = lcp_kernels_named(fast_sets[k]);
				if (!kern)
					continue;
				memset(got, 0x5a, bytes + 8);
				kern->dequant_store(&c->r, dt);
				cr_assert_arr_eq(got + mis, want, bytes, "%s: %s, dtype %d, misaligned %u",
						 what, fast_sets[k], dt, mis);
				for (unsigned i = 0; i < mis; i++)
					cr_assert_eq(got[i], 0x5a, "%s: %s wrote before the output", what,
						     fast_sets[k]);
				cr_assert_eq(got[mis + bytes], 0x5a, "%s: %s wrote past the output", what,
					     fast_sets[k]);
			}
		}
		free(want);
		free(got);
	}
}

static void random_case(struct run_case *c, uint32_t n, uint32_t group, uint16_t rank, bool dq)
{
	memset(c, 0, sizeof *c);
	c->r = (struct lcp_dequant_run){
		.codes = c->codes, .n = n, .group_size = group, .phase = rnd() % group,
		.sd = c->sd, .off = c->off, .rank = rank, .u = c->u, .vt = c->vt,
		.cols = n + 16, .col = rnd() % 16,
	};
	for (uint32_t i = 0; i < n; i++) {
		c->codes[i] = (uint8_t)rnd();
		c->cls[i] = (uint8_t)(rnd() & 1);
	}
	c->r.cls = dq ? c->cls : NULL;
	for (uint32_t g = 0; g < MAX_GROUPS; g++) {
		c->sd[g] = (float)(normal() * 0.01);
		c->off[g] = dq ? 128.0f : (float)(rnd() % 256);
	}
	for (uint16_t k = 0; k < rank; k++) {
		c->u[k] = (float)normal();
		for (uint64_t j = 0; j < c->r.cols; j++)
			c->vt[k * c->r.cols + j] = (float)(normal() * 0.003);
	}
}

Test(codec_kernels, runs_match_the_reference_bit_for_bit)
{
	static const uint32_t groups[] = {8, 16, 17, 32, 64, 100, 128, 256};
	static const uint32_t lengths[] = {1, 2, 15, 16, 17, 63, 64, 65, 255, 256, 257, 700};
	static struct run_case c;
	rng_state = 11;
	for (size_t gi = 0; gi < sizeof groups / sizeof groups[0]; gi++)
		for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++)
			for (uint16_t rank = 0; rank <= MAX_RANK; rank += 3)
				for (int dq = 0; dq < 2; dq++) {
					char what[80];
					snprintf(what, sizeof what, "group %u n %u rank %u%s", groups[gi],
						 lengths[li], rank, dq ? " dependent" : "");
					random_case(&c, lengths[li], groups[gi], rank, dq != 0);
					check_run(&c, what);
				}
}

/*
 * Values aimed at the narrowing: with code - off = 1 a run reproduces sd
 * exactly, so sd walks through F16 and BF16 rounding ties (odd and even
 * neighbours), the F16 subnormal range and its underflow to zero, the edge
 * of overflow to infinity, and binary32 subnormals; a low-rank term of
 * infinity times zero gives NaN, one with NaN factors NaNs with payloads.
 */
Test(codec_kernels, narrowing_ties_subnormals_overflow_and_nan)
{
	static struct run_case c;
	static const uint32_t specials[] = {
		0x3f801000, 0x3f803000, 0x3f800fff, 0x3f801001, /* F16 ties and neighbours at 1 */
		0x3f808000, 0x3f818000, 0x3f807fff, 0x3f808001, /* BF16 ties at 1 */
		0x33000000, 0x33000001, 0x337fffff, 0x33800000, 0x34000000, /* F16 subnormal edge */
		0x387fe000, 0x387ff000, 0x38800000, 0x38801000, 0x38003000, /* F16 subnormal ties */
		0x477fefff, 0x477ff000, 0x477fe000, 0x47800000, /* F16 overflow edge */
		0x7f7fffff, 0x7f7f8000, 0x7f7f7fff,             /* BF16 overflow edge */
		0x00000001, 0x007fffff, 0x00400000, 0x00008000, /* binary32 subnormals */
		0x80000000, 0xbf801000, 0xb3000001, 0xc77ff000, /* negatives */
	};
	enum { NS = sizeof specials / sizeof specials[0] };
	for (int with_nan = 0; with_nan < 2; with_nan++) {
		memset(&c, 0, sizeof c);
		c.r = (struct lcp_dequant_run){
			.codes = c.codes, .n = NS * 3, .group_size = 3, .phase = 0, .sd = c.sd,
			.off = c.off, .rank = (uint16_t)with_nan, .u = c.u, .vt = c.vt,
			.cols = NS * 3 + 16, .col = 5,
		};
		for (uint32_t g = 0; g < NS; g++) {
			c.sd[g] = from_bits(specials[g]);
			c.off[g] = 100.0f;
			c.codes[3 * g] = 101;     /* sd */
			c.codes[3 * g + 1] = 99;  /* -sd */
			c.codes[3 * g + 2] = 102; /* 2 sd: overflow past the edge */
		}
		c.u[0] = INFINITY;
		/* inf * 0 is NaN; NaN factors carry payloads the narrowing must
		 * keep (their top bits). */
		for (uint64_t j = 0; j < c.r.cols; j++)
			c.vt[j] = j % 7 == 0 ? 0.0f : j % 5 == 0 ? from_bits(0x7fa5a5a5u + ((uint32_t)j << 13))
						   : 1e-30f;
		check_run(&c, with_nan ? "special values with NaN" : "special values");
	}
}

/* Encodes a rows x cols tensor of dtype dt (bytes x) with cfg and opens
 * its params; ctx, e, ct are the caller's to free. */
static void encode_open(enum lcp_dtype dt, uint64_t rows, uint64_t cols, const uint8_t *x,
			const struct lcp_config *cfg, struct lcp_codec_ctx **ctx,
			struct lcp_encoded *e, struct lcp_codec_tensor **ct)
{
	struct lcp_tensor_view v = {.dtype = dt, .ndims = 2, .dims = {rows, cols}, .data = x,
				    .len = rows * cols * elem_bytes(dt)};
	cr_assert_eq(lcp_codec_ctx_create(ctx), LCP_OK);
	cr_assert_eq(lcp_codec_encode(*ctx, &v, cfg, e), LCP_OK);
	cr_assert_eq(lcp_codec_tensor_open(e->params, e->params_len, ct), LCP_OK);
}

static void free_encoded(struct lcp_codec_ctx *ctx, struct lcp_encoded *e,
			 struct lcp_codec_tensor *ct)
{
	lcp_codec_tensor_free(ct);
	lcp_encoded_free(e);
	lcp_codec_ctx_free(ctx);
}

/* Whole-chunk decode of every chunk with the kernel set k (NULL: ref). */
static uint8_t *decode_all(const struct lcp_encoded *e, const struct lcp_codec_tensor *ct,
			   uint64_t n, unsigned eb, const struct lcp_kernels *k)
{
	uint8_t *out = malloc(n * eb);
	lcp_kernels_force(k);
	for (uint32_t c = 0; c < e->nchunks; c++) {
		const struct lcp_chunk_info *ci = &e->chunks[c];
		size_t len = (ci->elem_end - ci->elem_begin) * eb;
		cr_assert_eq(lcp_codec_decode_chunk(ct, ci, e->data + ci->data_off, ci->data_len,
						    out + ci->elem_begin * eb, len),
			     LCP_OK);
		cr_assert_eq(lcp_xxh3(out + ci->elem_begin * eb, len), ci->output_xxh3);
	}
	lcp_kernels_force(NULL);
	return out;
}

/* Range reads of every chunk with kernel set k against the whole decode. */
static void check_ranges(const struct lcp_encoded *e, const struct lcp_codec_tensor *ct,
			 const uint8_t *whole, unsigned eb, const struct lcp_kernels *k)
{
	lcp_kernels_force(k);
	for (uint32_t c = 0; c < e->nchunks; c++) {
		const struct lcp_chunk_info *ci = &e->chunks[c];
		uint64_t s = 0, cnt = 0;
		cr_assert(range_reads_match(ct, ci, e->data + ci->data_off, whole, eb, &s, &cnt),
			  "%s: chunk %u, range %lu+%lu", k->name, c, (unsigned long)s,
			  (unsigned long)cnt);
	}
	lcp_kernels_force(NULL);
}

Test(codec_kernels, tensors_decode_the_same_with_every_set_and_every_range)
{
	static const struct {
		uint8_t bits;
		bool sym;
		uint32_t group;
		uint16_t rank;
		uint64_t rows, cols;
	} cases[] = {
		{4, true, 64, 0, 300, 1024},  /* default class, 16 lanes, 3 chunks at F32 */
		{8, false, 32, 0, 160, 1024}, /* quality class, 16-bit scale codes */
		{4, false, 64, 0, 37, 1000},  /* 4-bit codes as rANS symbols 0..15, 8 lanes */
		{8, true, 100, 0, 9, 555},    /* group size not a power of two, 4 lanes */
		{4, true, 64, 8, 96, 2050},   /* low-rank term, chunks end inside rows */
		{4, true, 32, 0, 17, 1000},   /* 16 lanes, last block of 616 codes (38 steps + 8) */
		{4, true, 100, 0, 140, 1000}, /* dependent quantization not fused (group 100) */
		{4, true, 64, 0, 9, 555},     /* dependent quantization, 4 lanes, chains end mid-step */
		/* 8-bit codes as pairs (code mode 3): */
		{8, false, 32, 0, 41, 1000},  /* one chunk, last block of 8232 codes (257 steps + 8) */
		{8, false, 16, 0, 50, 1024},  /* groups of 16: a step's two vectors in two groups */
		{8, false, 32, 8, 96, 2050},  /* low-rank term: pairs, then the unfused path */
	};
	for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++)
		for (size_t d = 0; d < sizeof dtypes / sizeof dtypes[0]; d++) {
			enum lcp_dtype dt = dtypes[d];
			unsigned eb = elem_bytes(dt);
			uint64_t n = cases[ci].rows * cases[ci].cols;
			uint8_t *x = normal_weights(dt, n, 100 + ci);
			if (cases[ci].rank) /* a planted rank-1 part worth keeping */
				for (uint64_t i = 0; i < n && dt == LCP_DTYPE_F32; i++) {
					float f;
					memcpy(&f, x + 4 * i, 4);
					f += 0.3f * (float)sin(0.1 * (double)(i / cases[ci].cols)) *
					     (float)cos(0.07 * (double)(i % cases[ci].cols));
					memcpy(x + 4 * i, &f, 4);
				}
			struct lcp_config cfg = {cases[ci].bits, cases[ci].rank, cases[ci].group,
						 cases[ci].sym, 4096, 1ull << 30, 0.5f, false};
			struct lcp_codec_ctx *ctx;
			struct lcp_encoded e;
			struct lcp_codec_tensor *ct;
			encode_open(dt, cases[ci].rows, cases[ci].cols, x, &cfg, &ctx, &e, &ct);
			unsigned pair_chunks = 0;
			for (uint32_t c = 0; c < e.nchunks; c++)
				pair_chunks += (e.data[e.chunks[c].data_off] >> 2 & 3) == 3;
			if (cases[ci].bits == 8 && ci >= 8)
				cr_assert_eq(pair_chunks, e.nchunks, "case %zu dtype %d: %u of %u chunks hold pairs, mode %d", ci, dt, pair_chunks, e.nchunks, e.data[e.chunks[0].data_off]);
			uint8_t *want = decode_all(&e, ct, n, eb, lcp_kernels_named("ref"));
			for (size_t k = 0; k < NFAST; k++) {
				const struct lcp_kernels *kern = lcp_kernels_named(fast_sets[k]);
				if (!kern)
					continue;
				uint8_t *got = decode_all(&e, ct, n, eb, kern);
				cr_assert_arr_eq(got, want, n * eb, "case %zu dtype %d: %s", ci, dt,
						 fast_sets[k]);
				free(got);
				check_ranges(&e, ct, want, eb, kern);
			}
			check_ranges(&e, ct, want, eb, lcp_kernels_named("ref"));
			free_encoded(ctx, &e, ct);
			free(want);
			free(x);
		}
}

/*
 * Pairs (code mode 3, codec_format.h) built here from the format's text,
 * with every lane count, against the same codes stored raw (mode 0) in a
 * chunk of the same params block: one short chunk (a block shorter than
 * 16384), and chunks whose last block ends inside a 32-code step or on one;
 * every set, F32, F16 and BF16, whole chunks and every range read. Codes
 * are random bytes (both nibbles vary), side bytes random (scale codes
 * near the top, zero points anywhere).
 */
#define CODE_MODE_PAIRS 3

/* The chunk ci (bytes d) decodes to want with every set, whole and by every
 * range read, and its first cut_len bytes alone are damage, not bytes;
 * what names the case in messages. */
static void decodes_as_want_everywhere(const struct lcp_codec_tensor *ct,
				       const struct lcp_chunk_info *ci, const uint8_t *d,
				       const uint8_t *want, uint64_t m, unsigned eb, const char *what,
				       size_t cut_len)
{
	uint8_t *got = malloc(m * eb);
	for (size_t k = 0; k <= NFAST; k++) {
		const struct lcp_kernels *kern = lcp_kernels_named(k < NFAST ? fast_sets[k] : "ref");
		if (!kern)
			continue;
		lcp_kernels_force(kern);
		memset(got, 0x5a, m * eb);
		cr_assert_eq(lcp_codec_decode_chunk(ct, ci, d, ci->data_len, got, m * eb), LCP_OK, "%s: %s",
			     kern->name, what);
		cr_assert_arr_eq(got, want, m * eb, "%s: %s", kern->name, what);
		uint64_t bs = 0, bc = 0;
		cr_assert(range_reads_match(ct, ci, d, want, eb, &bs, &bc), "%s: %s: range %lu+%lu",
			  kern->name, what, (unsigned long)bs, (unsigned long)bc);
	}
	lcp_kernels_force(NULL);
	struct lcp_chunk_info cut = *ci;
	cut.data_len = cut_len;
	cut.stored_xxh3 = lcp_xxh3(d, cut_len);
	cr_assert_eq(lcp_codec_decode_chunk(ct, &cut, d, cut_len, got, m * eb), LCP_ERR_FORMAT, "%s: cut",
		     what);
	free(got);
}

/* Pairs of a block of n codes. */
static uint64_t pairs_of(uint64_t n)
{
	return 16 * (n / 32) + (n % 32 < 16 ? n % 32 : 16);
}

/* A quantized chunk (side stream raw) with codes[0, m) as pairs in blocks
 * of B with `lanes` lanes into out; returns its length; *nibbles gets the
 * nibble plane's. */
static size_t pair_chunk(uint8_t *out, const uint8_t *side, size_t side_len, const uint8_t *codes,
			 uint64_t m, uint64_t B, unsigned lanes, uint64_t *nibbles)
{
	uint64_t pb = pairs_of(B), np = 0;
	uint8_t *nib = malloc(m + 32), *sym = malloc(m + 32);
	for (uint64_t beg = 0; beg < m; beg += B) {
		uint64_t n = m - beg < B ? m - beg : B;
		for (uint64_t i = 0; i < n; i++) {
			/* element i of the block: pair 16 (i / 32) + i mod 16, its
			 * first or second element */
			uint64_t p = np + 16 * (i / 32) + i % 16;
			bool second = i % 32 >= 16;
			if (!second)
				nib[p] = sym[p] = 0;
			nib[p] |= (uint8_t)((codes[beg + i] & 15) << (second ? 4 : 0));
			sym[p] |= (uint8_t)((codes[beg + i] >> 4) << (second ? 4 : 0));
		}
		np += pairs_of(n);
		cr_assert(beg + B >= m || np % pb == 0);
	}
	struct lcp_buf b = LCP_BUF_INIT;
	cr_assert_eq(lcp_stream_put_rans(&b, sym, np, (uint32_t)pb, lanes, NULL), LCP_OK);
	out[0] = CODE_MODE_PAIRS << 2; /* side raw */
	lcp_store_le32(out + 1, (uint32_t)side_len);
	memcpy(out + 5, side, side_len);
	memcpy(out + 5 + side_len, nib, np);
	memcpy(out + 5 + side_len + np, b.data, b.len);
	size_t len = 5 + side_len + np + b.len;
	*nibbles = np;
	lcp_buf_free(&b);
	free(nib);
	free(sym);
	return len;
}

/* The shapes, lane counts and dtypes the chunk tests below build chunks
 * for: one short chunk (a block shorter than 16384), and chunks whose last
 * block ends inside a 32-code step or on one. */
static const struct {
	uint64_t rows, cols;
} chunk_shapes[] = {{5, 999}, {41, 1000}, {40, 1024}};
static const unsigned chunk_lanes[] = {1, 4, 16};
static const enum lcp_dtype chunk_dtypes[] = {LCP_DTYPE_F32, LCP_DTYPE_F16, LCP_DTYPE_BF16};
#define NSHAPES (sizeof chunk_shapes / sizeof chunk_shapes[0])

/* The reference's decode into want (m values of eb bytes) of the chunk like
 * base (its elements) holding the side stream side[0, side_len) and the
 * codes[0, m) raw (code mode 0); its info in *rci. */
static void raw_chunk_want(const struct lcp_codec_tensor *ct, const struct lcp_chunk_info *base,
			   const uint8_t *side, size_t side_len, const uint8_t *codes, uint64_t m,
			   unsigned eb, struct lcp_chunk_info *rci, uint8_t *want)
{
	uint8_t *raw = malloc(5 + side_len + m);
	raw[0] = 0;
	lcp_store_le32(raw + 1, (uint32_t)side_len);
	memcpy(raw + 5, side, side_len);
	memcpy(raw + 5 + side_len, codes, m);
	*rci = *base;
	rci->data_len = 5 + side_len + m;
	rci->stored_xxh3 = lcp_xxh3(raw, rci->data_len);
	lcp_kernels_force(lcp_kernels_named("ref"));
	cr_assert_eq(lcp_codec_decode_chunk(ct, rci, raw, rci->data_len, want, m * eb), LCP_OK);
	lcp_kernels_force(NULL);
	free(raw);
}

Test(codec_kernels, pair_chunks_decode_as_their_codes_stored_raw)
{
	for (size_t si = 0; si < NSHAPES; si++)
		for (size_t d = 0; d < sizeof chunk_dtypes / sizeof chunk_dtypes[0]; d++) {
			enum lcp_dtype dt = chunk_dtypes[d];
			unsigned eb = elem_bytes(dt);
			uint64_t n = chunk_shapes[si].rows * chunk_shapes[si].cols;
			uint8_t *x = normal_weights(dt, n, 300 + si);
			struct lcp_config cfg = lcp_config_quality();
			cfg.rank = 0;
			struct lcp_codec_ctx *ctx;
			struct lcp_encoded e;
			struct lcp_codec_tensor *ct;
			encode_open(dt, chunk_shapes[si].rows, chunk_shapes[si].cols, x, &cfg, &ctx, &e, &ct);
			cr_assert_eq(e.nchunks, 1);
			uint64_t m = n, B = lcp_codec_tensor_block_elems(ct), ng = (m + 31) / 32;
			uint8_t *codes = malloc(m), *side = malloc(3 * ng);
			uint8_t *pairs = malloc(5 + 3 * ng + 3 * m + 4096);
			rng_state = 900 + si;
			for (uint64_t i = 0; i < m; i++)
				codes[i] = (uint8_t)rnd();
			for (uint64_t g = 0; g < ng; g++) {
				side[g] = (uint8_t)(0xf0 + rnd() % 16);
				side[ng + g] = (uint8_t)rnd();
				side[2 * ng + g] = (uint8_t)rnd();
			}
			struct lcp_chunk_info rci;
			uint8_t *want = malloc(m * eb);
			raw_chunk_want(ct, &e.chunks[0], side, 3 * ng, codes, m, eb, &rci, want);
			for (size_t li = 0; li < sizeof chunk_lanes / sizeof chunk_lanes[0]; li++) {
				struct lcp_chunk_info pci = rci;
				uint64_t np;
				pci.data_len = pair_chunk(pairs, side, 3 * ng, codes, m, B, chunk_lanes[li], &np);
				pci.stored_xxh3 = lcp_xxh3(pairs, pci.data_len);
				char what[64];
				snprintf(what, sizeof what, "shape %zu dtype %d, %u lanes", si, dt, chunk_lanes[li]);
				/* cut: a nibble plane cut short */
				decodes_as_want_everywhere(ct, &pci, pairs, want, m, eb, what, 5 + 3 * ng + np - 1);
			}
			lcp_kernels_force(NULL);
			free_encoded(ctx, &e, ct);
			free(want);
			free(codes);
			free(side);
			free(pairs);
			free(x);
		}
}

/*
 * Alias streams (code mode 4, rans.h) of dependent quantization's codes
 * against the same codes stored raw (mode 0), as the pair test above: every
 * lane count, set, dtype and range read. The codes are mostly near 128
 * with a tail of any byte (0 and values outside 65..191 included), so
 * every step kind meets escapes: none, one, several, and a lane's escape
 * right before its renormalization.
 */
#define CODE_MODE_ALIAS 4

Test(codec_kernels, alias_chunks_decode_as_their_codes_stored_raw)
{
	for (size_t si = 0; si < NSHAPES; si++)
		for (size_t d = 0; d < sizeof chunk_dtypes / sizeof chunk_dtypes[0]; d++) {
			enum lcp_dtype dt = chunk_dtypes[d];
			unsigned eb = elem_bytes(dt);
			uint64_t n = chunk_shapes[si].rows * chunk_shapes[si].cols;
			uint8_t *x = normal_weights(dt, n, 400 + si);
			struct lcp_config cfg = {4, 0, 64, true, 4096, 1ull << 30, 0.5f, false};
			struct lcp_codec_ctx *ctx;
			struct lcp_encoded e;
			struct lcp_codec_tensor *ct;
			encode_open(dt, chunk_shapes[si].rows, chunk_shapes[si].cols, x, &cfg, &ctx, &e, &ct);
			cr_assert_eq(e.nchunks, 1);
			cr_assert_eq(e.params[4], 5);
			uint64_t m = n, B = lcp_codec_tensor_block_elems(ct), ng = (m + 63) / 64;
			uint8_t *codes = malloc(m), *side = malloc(2 * ng);
			uint8_t *chunk = malloc(5 + 2 * ng + 4 * m + 4096);
			rng_state = 950 + si;
			unsigned escapes = 0;
			for (uint64_t i = 0; i < m; i++) {
				uint32_t r = rnd();
				codes[i] = r % 50 == 0 ? (uint8_t)(r >> 8) : (uint8_t)(128 + (int)(r >> 8) % 9 - 4);
				escapes += codes[i] < 124 || codes[i] > 132;
			}
			cr_assert_gt(escapes, m / 100);
			for (uint64_t g = 0; g < ng; g++) {
				side[g] = (uint8_t)(0x40 + rnd() % 64);
				side[ng + g] = (uint8_t)(rnd() & 1);
			}
			struct lcp_chunk_info rci;
			uint8_t *want = malloc(m * eb);
			raw_chunk_want(ct, &e.chunks[0], side, 2 * ng, codes, m, eb, &rci, want);
			for (size_t li = 0; li < sizeof chunk_lanes / sizeof chunk_lanes[0]; li++) {
				struct lcp_buf b = LCP_BUF_INIT;
				uint64_t hist[256];
				lcp_stream_count(codes, m, hist);
				cr_assert_eq(lcp_stream_put_alias(&b, codes, m, (uint32_t)B, chunk_lanes[li], hist),
					     LCP_OK);
				chunk[0] = CODE_MODE_ALIAS << 2; /* side raw */
				lcp_store_le32(chunk + 1, (uint32_t)(2 * ng));
				memcpy(chunk + 5, side, 2 * ng);
				memcpy(chunk + 5 + 2 * ng, b.data, b.len);
				struct lcp_chunk_info aci = rci;
				aci.data_len = 5 + 2 * ng + b.len;
				aci.stored_xxh3 = lcp_xxh3(chunk, aci.data_len);
				lcp_buf_free(&b);
				char what[64];
				snprintf(what, sizeof what, "shape %zu dtype %d, %u lanes", si, dt, chunk_lanes[li]);
				/* cut: the stream one byte short */
				decodes_as_want_everywhere(ct, &aci, chunk, want, m, eb, what, aci.data_len - 1);
			}
			lcp_kernels_force(NULL);
			free_encoded(ctx, &e, ct);
			free(want);
			free(codes);
			free(side);
			free(chunk);
			free(x);
		}
}

/*
 * Blocks of symbols rANS-coded with 16 lanes, as one call of the fused
 * kernels would get them (struct lcp_rans_fuse), against the reference
 * (symbols by ref, then its dequantize-and-store per block), for every
 * output dtype, with and without dependent quantization, over group sizes,
 * 1 to 8 blocks and a short last block. The scales are normal, or also
 * special: 0, subnormal (which BF16 extension's narrowing would flush to
 * zero: "avx512bf16" must fall back for them), huge (products overflow to
 * infinity), negative, and on F16/BF16 rounding ties.
 */
#define FUSE_BLOCK 2048u
#define FUSE_MAX_BLOCKS 8u

/* Expected bytes of a fused call: the symbols decoded by ref, then every
 * block dequantized from its first code by the reference kernels. */
static void fused_reference(const struct lcp_rans_block *b, unsigned nb, const struct lcp_rans_fuse *f,
			    const uint8_t *end)
{
	const struct lcp_kernels *ref = lcp_kernels_named("ref");
	static uint8_t cls[FUSE_BLOCK];
	cr_assert_eq(ref->rans_decode(b, nb, 16, end), LCP_OK);
	for (unsigned k = 0; k < nb; k++) {
		uint64_t e0 = f->first + (uint64_t)k * f->block_elems;
		struct lcp_dequant_run r = {
			.codes = b[k].out, .n = b[k].stop, .group_size = f->group_size,
			.phase = (uint32_t)(e0 % f->group_size), .sd = f->sd + e0 / f->group_size,
			.off = f->off + e0 / f->group_size, .out = f->out + e0 * elem_bytes(f->dt),
		};
		if (f->dq) {
			lcp_dq_classes_ref(r.codes, r.n, cls);
			r.cls = cls;
		}
		ref->dequant_store(&r, f->dt);
	}
}

Test(codec_kernels, fused_decoding_matches_the_reference)
{
	static const uint32_t specials[] = {
		0x00000000, 0x00000001, 0x007fffff, 0x00400000, 0x80000003, /* zero, subnormals */
		0x7f000000, 0xff7fffff,                                     /* products overflow */
		0x3f808000, 0x3f801000, 0xbf818000, 0x33000001, 0x38801000, /* BF16/F16 ties, F16 subnormal */
	};
	enum { NSPECIAL = sizeof specials / sizeof specials[0] };
	static const uint32_t groups[] = {16, 64, 256};
	static const unsigned nbs[] = {1, 3, 8};
	static const enum lcp_dtype fdts[] = {LCP_DTYPE_F32, LCP_DTYPE_F16, LCP_DTYPE_BF16};
	static uint8_t sym[FUSE_MAX_BLOCKS * FUSE_BLOCK], codes[FUSE_MAX_BLOCKS * FUSE_BLOCK];
	static uint8_t stream[FUSE_MAX_BLOCKS * (64 + 2 * FUSE_BLOCK)];
	static uint8_t want[FUSE_MAX_BLOCKS * FUSE_BLOCK * 4], got[FUSE_MAX_BLOCKS * FUSE_BLOCK * 4 + 1];
	static float sd[FUSE_MAX_BLOCKS * FUSE_BLOCK / 16], off[FUSE_MAX_BLOCKS * FUSE_BLOCK / 16];
	static struct lcp_rans_dec table;
	rng_state = 41;
	for (int dq = 0; dq < 2; dq++)
		for (size_t gi = 0; gi < sizeof groups / sizeof groups[0]; gi++)
			for (size_t ni = 0; ni < sizeof nbs / sizeof nbs[0]; ni++)
				for (int special = 0; special < 2; special++) {
					unsigned nb = nbs[ni];
					uint32_t n = nb * FUSE_BLOCK - (nb > 1 ? 37 : 0), ng = (n + groups[gi] - 1) / groups[gi];
					/* dependent quantization: codes near 128 (k = 0 included) */
					uint64_t hist[256] = {0};
					for (uint32_t i = 0; i < n; i++) {
						int v = dq ? 128 + (int)lround(normal() * 3.0) : (int)(rnd() % 256);
						sym[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
						hist[sym[i]]++;
					}
					uint16_t freq[256];
					struct lcp_rans_enc enc;
					lcp_rans_normalize(hist, freq);
					lcp_rans_enc_init(&enc, freq);
					lcp_rans_dec_init(&table, freq);
					struct lcp_rans_block b[FUSE_MAX_BLOCKS];
					size_t at = 0;
					for (unsigned k = 0; k < nb; k++) {
						uint32_t cnt = k + 1 < nb ? FUSE_BLOCK : n - k * FUSE_BLOCK;
						size_t len = lcp_rans_encode(&enc, sym + k * FUSE_BLOCK, cnt, 16, stream + at);
						b[k] = (struct lcp_rans_block){&table, stream + at, len, cnt, cnt,
									       codes + k * FUSE_BLOCK};
						at += len;
					}
					for (uint32_t g = 0; g < ng; g++) {
						uint32_t u = specials[(g * 7) % NSPECIAL];
						memcpy(&sd[g], &u, 4);
						if (!special || g % 3)
							sd[g] = (float)(normal() * 0.01);
						off[g] = dq ? 128.0f : (float)(rnd() % 256);
					}
					for (size_t d = 0; d < sizeof fdts / sizeof fdts[0]; d++) {
						struct lcp_rans_fuse f = {sd, off, groups[gi], FUSE_BLOCK, 0, fdts[d], dq != 0, want,
								 NULL, NULL, 0};
						size_t bytes = (size_t)n * elem_bytes(fdts[d]);
						fused_reference(b, nb, &f, stream + at);
						for (size_t k = 0; k < NFAST; k++) {
							const struct lcp_kernels *kern = lcp_kernels_named(fast_sets[k]);
							if (!kern || !kern->rans_decode_fused)
								continue;
							memset(got, 0x5a, sizeof got);
							f.out = got;
							cr_assert_eq(kern->rans_decode_fused(b, nb, 16, stream + at, &f), LCP_OK);
							cr_assert_arr_eq(got, want, bytes, "%s: dtype %d%s, group %u, %u blocks%s",
									 fast_sets[k], fdts[d], dq ? " dq" : "", groups[gi], nb,
									 special ? ", special scales" : "");
							cr_assert_eq(got[bytes], 0x5a, "%s wrote past the output", fast_sets[k]);
						}
					}
				}
}

/*
 * The same through the encoder: BF16 weights so small that the quality
 * preset's group scales are binary32 subnormals (the smallest steps it
 * quantizes well: 1 / step must stay finite), one chunk of 8 rANS blocks;
 * the reconstruction holds BF16 subnormals.
 */
Test(codec_kernels, bf16_with_subnormal_scales_decodes_the_same)
{
	const uint64_t rows = 64, cols = 2048, n = rows * cols;
	uint8_t *x = malloc(n * 2);
	rng_state = 31;
	for (uint64_t i = 0; i < n; i++)
		put_value(LCP_DTYPE_BF16, x + 2 * i, normal() * 3e-37);
	struct lcp_config cfg = lcp_config_quality();
	struct lcp_codec_ctx *ctx;
	struct lcp_encoded e;
	struct lcp_codec_tensor *ct;
	encode_open(LCP_DTYPE_BF16, rows, cols, x, &cfg, &ctx, &e, &ct);
	cr_assert_eq(e.nchunks, 1);
	cr_assert_eq(e.data[e.chunks[0].data_off] >> 2 & 3, 3, "codes must be stored as pairs");
	uint8_t *want = decode_all(&e, ct, n, 2, lcp_kernels_named("ref"));
	uint64_t subnormal = 0;
	for (uint64_t i = 0; i < n; i++) {
		uint16_t h;
		memcpy(&h, want + 2 * i, 2);
		subnormal += (h & 0x7f80) == 0 && (h & 0x7f) != 0;
	}
	cr_assert_gt(subnormal, n / 100, "too few subnormal values (%lu) to test", (unsigned long)subnormal);
	for (size_t k = 0; k < NFAST; k++) {
		const struct lcp_kernels *kern = lcp_kernels_named(fast_sets[k]);
		if (!kern)
			continue;
		uint8_t *got = decode_all(&e, ct, n, 2, kern);
		cr_assert_arr_eq(got, want, n * 2, "%s", fast_sets[k]);
		free(got);
	}
	free_encoded(ctx, &e, ct);
	free(want);
	free(x);
}

Test(codec_kernels, range_arguments_are_checked)
{
	const uint64_t n = 4096;
	uint8_t *x = normal_weights(LCP_DTYPE_F32, n, 7);
	struct lcp_config cfg = {4, 0, 64, true, 4096, 1ull << 30, 0.5f, false};
	struct lcp_codec_ctx *ctx;
	struct lcp_encoded e;
	struct lcp_codec_tensor *ct;
	encode_open(LCP_DTYPE_F32, 64, 64, x, &cfg, &ctx, &e, &ct);
	const struct lcp_chunk_info *ci = &e.chunks[0];
	const uint8_t *d = e.data + ci->data_off;
	uint8_t out[64];
	cr_expect_eq(lcp_codec_decode_range(ct, ci, d, ci->data_len, 0, 0, out, 0), LCP_ERR_RANGE);
	cr_expect_eq(lcp_codec_decode_range(ct, ci, d, ci->data_len, n, 1, out, 4), LCP_ERR_RANGE);
	cr_expect_eq(lcp_codec_decode_range(ct, ci, d, ci->data_len, n - 1, 2, out, 8), LCP_ERR_RANGE);
	cr_expect_eq(lcp_codec_decode_range(ct, ci, d, ci->data_len, 5, 3, out, 11), LCP_ERR_RANGE);
	cr_expect_eq(lcp_codec_decode_range(NULL, ci, d, ci->data_len, 5, 3, out, 12), LCP_ERR_INVAL);
	cr_expect_eq(lcp_codec_decode_range(ct, ci, d, ci->data_len, 5, 3, NULL, 12), LCP_ERR_INVAL);
	struct lcp_chunk_info bad = *ci;
	bad.stored_xxh3 ^= 1;
	cr_expect_eq(lcp_codec_decode_range(ct, &bad, d, ci->data_len, 5, 3, out, 12),
		     LCP_ERR_CHECKSUM);
	cr_expect_eq(lcp_codec_decode_range(ct, ci, d, ci->data_len, 5, 3, out, 12), LCP_OK);
	cr_expect_eq(lcp_codec_tensor_block_elems(ct), 16384u);
	free_encoded(ctx, &e, ct);
	free(x);
}

/* Mutations of one 16-lane chunk (the SIMD rANS path) per kernel set. */
#define MUTATIONS 150

Test(codec_kernels, damaged_simd_chunks_never_crash_and_agree)
{
	const uint64_t rows = 40, cols = 1024, n = rows * cols;
	uint8_t *x = normal_weights(LCP_DTYPE_F16, n, 9);
	/* asymmetric 4-bit codes: no dependent quantization, a rANS stream */
	struct lcp_config cfg = {4, 0, 64, false, 4096, 1ull << 30, 0.5f, false};
	struct lcp_codec_ctx *ctx;
	struct lcp_encoded e;
	struct lcp_codec_tensor *ct;
	encode_open(LCP_DTYPE_F16, rows, cols, x, &cfg, &ctx, &e, &ct);
	const struct lcp_chunk_info *ci = &e.chunks[0];
	cr_assert_eq(e.data[ci->data_off] >> 2 & 3, 2, "the chunk's codes must be rANS-coded");
	rng_state = 13;
	/* mostly in the block table and the first blocks' states */
	check_damaged_chunk(ct, ci, e.data + ci->data_off, n * 2, MUTATIONS, 5, 2000);
	free_encoded(ctx, &e, ct);
	free(x);
}

/* The same for an alias stream (dependent quantization, code mode 4). */
Test(codec_kernels, damaged_alias_chunks_never_crash_and_agree)
{
	const uint64_t rows = 40, cols = 1024, n = rows * cols;
	uint8_t *x = normal_weights(LCP_DTYPE_F16, n, 11);
	struct lcp_config cfg = {4, 0, 64, true, 4096, 1ull << 30, 0.5f, false};
	struct lcp_codec_ctx *ctx;
	struct lcp_encoded e;
	struct lcp_codec_tensor *ct;
	encode_open(LCP_DTYPE_F16, rows, cols, x, &cfg, &ctx, &e, &ct);
	const struct lcp_chunk_info *ci = &e.chunks[0];
	cr_assert_eq(e.data[ci->data_off] >> 2 & 7, CODE_MODE_ALIAS, "the chunk's codes must be an alias stream");
	rng_state = 15;
	check_damaged_chunk(ct, ci, e.data + ci->data_off, n * 2, MUTATIONS, 5, 2000);
	free_encoded(ctx, &e, ct);
	free(x);
}

/* The same for a chunk of pairs (8-bit codes, code mode 3): damage in its
 * nibble plane and pair stream; and a flipped bit without a new checksum
 * is a checksum error, never bytes. */
Test(codec_kernels, damaged_pair_chunks_never_crash_and_agree)
{
	const uint64_t rows = 40, cols = 1024, n = rows * cols;
	uint8_t *x = normal_weights(LCP_DTYPE_F16, n, 10);
	struct lcp_config cfg = lcp_config_quality();
	cfg.rank = 0;
	struct lcp_codec_ctx *ctx;
	struct lcp_encoded e;
	struct lcp_codec_tensor *ct;
	encode_open(LCP_DTYPE_F16, rows, cols, x, &cfg, &ctx, &e, &ct);
	const struct lcp_chunk_info *ci = &e.chunks[0];
	const uint8_t *d = e.data + ci->data_off;
	cr_assert_eq(d[0] >> 2 & 3, CODE_MODE_PAIRS, "the chunk's codes must be pairs");
	uint8_t *copy = malloc(ci->data_len), *out = malloc(n * 2);
	memcpy(copy, d, ci->data_len);
	copy[ci->data_len / 2] ^= 4;
	cr_assert_eq(lcp_codec_decode_chunk(ct, ci, copy, ci->data_len, out, n * 2), LCP_ERR_CHECKSUM);
	rng_state = 14;
	/* the side stream (5 + ~3 * 1280 bytes), then the nibble plane
	 * (20480 bytes), then the pair stream's table and blocks */
	check_damaged_chunk(ct, ci, d, n * 2, MUTATIONS, 3800, 26000);
	free(copy);
	free(out);
	free_encoded(ctx, &e, ct);
	free(x);
}

/* LCPFS_DECODE picks the set once per process (criterion runs each test in
 * its own process, before any decode). */
Test(codec_kernels, environment_names_the_set)
{
	cr_assert_eq(setenv("LCPFS_DECODE", "ref", 1), 0);
	cr_expect_str_eq(lcp_kernels()->name, "ref");
}

Test(codec_kernels, unknown_set_name_falls_back_to_the_fastest)
{
	cr_assert_eq(setenv("LCPFS_DECODE", "no-such-set", 1), 0);
	static const char *const by_speed[] = {"avx512bf16", "avx512", "avx2", "baseline"};
	const char *best = NULL;
	for (size_t i = 0; !best; i++)
		best = lcp_kernels_named(by_speed[i]) ? by_speed[i] : NULL;
	cr_expect_str_eq(lcp_kernels()->name, best);
	cr_expect_null(lcp_kernels_named("no-such-set"));
	cr_expect_null(lcp_kernels_named(NULL));
}

/*
 * Group scales and offsets from side streams, every set against the
 * reference: 8-bit and 16-bit scale codes, symmetric and asymmetric, code 0,
 * and super-scales so small that many scales are subnormal (the branch of
 * lcp_qscale_pow2 that is not an exponent subtraction) or so large that
 * none are. The reference itself is checked against lcp_qscale.
 */
Test(codec_kernels, side_params_match_the_reference)
{
	enum { NG = 203 };
	static const float supers[] = {1.0f, 3.0e-36f, 1e-30f, 2.0e38f, 0.02f};
	static uint8_t side[3 * NG];
	static float want_sd[NG], want_off[NG], sd[NG], off[NG];
	rng_state = 21;
	for (size_t si = 0; si < sizeof supers / sizeof supers[0]; si++)
		for (unsigned sbytes = 1; sbytes <= 2; sbytes++)
			for (int sym = 0; sym < 2; sym++) {
				struct lcp_qparams q = {(uint8_t)(sbytes == 2 ? 8 : 4), sym != 0,
							(uint8_t)(sbytes == 2 ? 8 : 4), supers[si]};
				float scale8[256], frac16[256];
				for (unsigned k = 0; k < 256; k++) {
					scale8[k] = lcp_qscale(&q, (uint16_t)k);
					frac16[k] = sbytes == 2 || k < 16 ? lcp_qscale_frac(&q, k) : 0.0f;
				}
				for (unsigned i = 0; i < 3 * NG; i++)
					side[i] = (uint8_t)(i % 17 == 0 ? 0 : rnd());
				for (uint64_t g0 = 0; g0 < 40; g0 += 13) {
					struct lcp_side_params p = {side, NG, sbytes, g0, NG - g0, scale8, frac16,
								    sym != 0, 128.0f, want_sd, want_off};
					lcp_side_params_ref(&p);
					for (uint64_t i = 0; i < NG - g0; i++) {
						uint64_t g = g0 + i;
						uint16_t c = sbytes == 2 ? (uint16_t)(side[g] << 8 | side[NG + g])
									 : side[g];
						uint8_t aux = side[sbytes * NG + g];
						float s = lcp_qscale(&q, c);
						cr_assert_eq(want_sd[i], sym && aux ? -s : s, "group %lu", (unsigned long)g);
						cr_assert_eq(want_off[i], sym ? 128.0f : (float)aux);
					}
					for (size_t k = 0; k < NFAST; k++) {
						const struct lcp_kernels *kern = lcp_kernels_named(fast_sets[k]);
						if (!kern)
							continue;
						p.sd = sd;
						p.off = off;
						memset(sd, 0x5a, sizeof sd);
						kern->side_params(&p);
						cr_assert_arr_eq(sd, want_sd, (NG - g0) * sizeof *sd,
								 "%s super %g sbytes %u sym %d", fast_sets[k],
								 (double)supers[si], sbytes, sym);
						cr_assert_arr_eq(off, want_off, (NG - g0) * sizeof *off);
					}
				}
			}
}
