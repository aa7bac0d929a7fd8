/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The tensor codec end to end: round trips over dtypes, widths, symmetric
 * and asymmetric groups, odd shapes; quality-floor fallbacks; NaN/Inf;
 * zeros and subnormals; determinism including out-of-order and parallel
 * chunk decoding; corruption of chunks and of the params block.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "codec/codec_format.h"
#include "codec/half.h"
#include "codec/quant.h"
#include "codec/stream.h"
#include "common/alloc.h"
#include "common/checksum.h"
#include "common/le.h"
#include "lcpfs/codec.h"
#include "test_codec_helpers.h"

/*
 * Minimum SQNR for Gaussian data, from theory: a uniform grid of L levels
 * whose step is set by the group's absolute maximum has noise step^2/12 with
 * step <= 2*absmax/L (symmetric) or range/(L-1) (asymmetric). The maximum of
 * up to 256 standard normal samples stays below 4 sigma (probability of
 * exceeding it ~1.6%% per group of 256 is the rare case, and the scale search
 * only lowers error), so noise <= (8/L)^2/12 sigma^2:
 * 4 bits: 10 log10(12*256/64) = 16.8 dB; 8 bits: 10 log10(12*65536/64) = 40.9 dB.
 * Rounding to BF16 adds noise ~59 dB below the signal, F16 ~71 dB: negligible.
 */
#define MIN_SQNR_Q4_DB 16.0
#define MIN_SQNR_Q8_DB 40.0
/* Elements large enough for several 256 KiB chunks at F32 (and F16). */
#define MULTI_CHUNK_ELEMS (5u * 65536u + 777u)

struct tensor {
	struct lcp_tensor_view v;
	uint8_t *bytes;
};

static void make_tensor(struct tensor *t, enum lcp_dtype dt, uint32_t ndims, const uint64_t *dims,
			uint64_t seed)
{
	memset(t, 0, sizeof *t);
	uint64_t n = 1;
	for (uint32_t i = 0; i < ndims; i++) {
		t->v.dims[i] = dims[i];
		n *= dims[i];
	}
	t->v.dtype = dt;
	t->v.ndims = ndims;
	t->v.len = n * elem_bytes(dt);
	t->bytes = malloc(t->v.len ? t->v.len : 1);
	cr_assert_not_null(t->bytes);
	rng_state = seed * 0x9e3779b97f4a7c15ull + 1;
	for (uint64_t i = 0; i < n; i++)
		put_value(dt, t->bytes + i * elem_bytes(dt), 0.02 * normal());
	t->v.data = t->bytes;
}

static uint64_t nelems(const struct tensor *t)
{
	return t->v.len / elem_bytes(t->v.dtype);
}

/* Decodes every chunk in order into one buffer (caller frees). */
static uint8_t *decode_all(const struct lcp_encoded *e, enum lcp_dtype dt, uint64_t n)
{
	struct lcp_codec_tensor *ct;
	cr_assert_eq(lcp_codec_tensor_open(e->params, e->params_len, &ct), LCP_OK);
	cr_assert_eq(lcp_codec_tensor_dtype(ct), dt);
	unsigned eb = elem_bytes(dt);
	uint8_t *out = malloc(n * eb + 1);
	cr_assert_not_null(out);
	uint64_t next = 0;
	for (uint32_t c = 0; c < e->nchunks; c++) {
		const struct lcp_chunk_info *ci = &e->chunks[c];
		cr_assert_eq(ci->elem_begin, next, "chunks must tile the tensor");
		next = ci->elem_end;
		cr_assert_leq(ci->data_off + ci->data_len, e->data_len);
		size_t len = (ci->elem_end - ci->elem_begin) * eb;
		cr_assert_eq(lcp_codec_decode_chunk(ct, ci, e->data + ci->data_off, ci->data_len,
						    out + ci->elem_begin * eb, len),
			     LCP_OK);
		cr_assert_eq(lcp_xxh3(out + ci->elem_begin * eb, len), ci->output_xxh3);
	}
	cr_assert_eq(next, n);
	lcp_codec_tensor_free(ct);
	return out;
}

/* SQNR of out against the original, computed here independently of the codec. */
static double sqnr_db(const struct tensor *t, const uint8_t *out)
{
	double xx = 0.0, ee = 0.0;
	unsigned eb = elem_bytes(t->v.dtype);
	for (uint64_t i = 0; i < nelems(t); i++) {
		double x = get_value(t->v.dtype, t->bytes + i * eb);
		double y = get_value(t->v.dtype, out + i * eb);
		cr_assert(isfinite(y), "element %lu not finite", (unsigned long)i);
		xx += x * x;
		ee += (x - y) * (x - y);
	}
	return ee == 0.0 ? INFINITY : 10.0 * log10(xx / ee);
}

/* Tensors this small may be stored exact under a lossy config: their
 * exact bytes (5 F64 values: 40; 91 BF16 values: 182) cost no more than the
 * 4-bit encoding's fixed parts (params, tables, lane states) plus the
 * codec's margin of 64 bytes. */
#define TINY_ELEMS 128

static struct lcp_config cfg_of(uint8_t bits, uint32_t group, bool sym, uint16_t rank)
{
	struct lcp_config c = {bits, rank, group, sym, 4096, 1ull << 30, 0.5f, false};
	return c;
}

static void round_trip(enum lcp_dtype dt, uint32_t ndims, const uint64_t *dims,
		       const struct lcp_config *cfg)
{
	struct tensor t;
	make_tensor(&t, dt, ndims, dims, 42 + dt + cfg->group_size);
	struct lcp_codec_ctx *ctx;
	cr_assert_eq(lcp_codec_ctx_create(&ctx), LCP_OK);
	struct lcp_encoded e;
	cr_assert_eq(lcp_codec_encode(ctx, &t.v, cfg, &e), LCP_OK);
	if (nelems(&t) < TINY_ELEMS && e.encoding == LCP_ENC_LOSSLESS) {
		/* exact is cheaper than the lossy encoding's fixed parts */
		cr_expect_str_eq(e.fallback_reason, cfg->bits == 4 ? "exact: no larger than 4-bit"
								   : "exact: no larger than 8-bit");
		uint8_t *out = decode_all(&e, dt, nelems(&t));
		cr_expect_arr_eq(out, t.bytes, t.v.len, "dtype %d: exact but changed", dt);
		free(out);
		lcp_encoded_free(&e);
		lcp_codec_ctx_free(ctx);
		free(t.bytes);
		return;
	}
	cr_expect_eq(e.encoding, cfg->bits == 4 ? LCP_ENC_Q4 : LCP_ENC_Q8,
		     "dtype %d bits %d group %u", dt, cfg->bits, cfg->group_size);
	cr_expect_eq(e.bits, cfg->bits);
	cr_expect_null(e.fallback_reason);
	cr_expect_leq(e.rank, cfg->rank);
	cr_expect_eq(e.stored_bytes, e.params_len + e.data_len);
	cr_expect_eq(e.qlor.original_size, t.v.len);
	cr_expect_eq(e.qlor.original_checksum, lcp_xxh3(t.bytes, t.v.len));
	cr_expect_eq(e.qlor.dtype, dt);
	cr_expect_eq(e.qlor.ndims, ndims);
	uint8_t *out = decode_all(&e, dt, nelems(&t));
	double s = sqnr_db(&t, out);
	double min = cfg->bits == 4 ? MIN_SQNR_Q4_DB : MIN_SQNR_Q8_DB;
	cr_expect_geq(s, min, "dtype %d bits %d group %u sym %d: %.2f dB", dt, cfg->bits,
		      cfg->group_size, cfg->symmetric, s);
	/* The codec's own metric must agree with the independent one. */
	cr_expect_lt(fabs(e.sqnr_db - s), 1e-6 * fabs(s) + 1e-9);
	free(out);
	lcp_encoded_free(&e);
	lcp_codec_ctx_free(ctx);
	free(t.bytes);
}

Test(codec, round_trip_every_dtype_width_and_mode)
{
	static const enum lcp_dtype dts[] = {LCP_DTYPE_F32, LCP_DTYPE_F16, LCP_DTYPE_BF16,
					     LCP_DTYPE_F64};
	static const uint32_t groups[] = {8, 37, 256};
	const uint64_t dims[2] = {48, 160};
	for (unsigned d = 0; d < 4; d++)
		for (uint8_t bits = 4; bits <= 8; bits += 4)
			for (int sym = 0; sym < 2; sym++)
				for (unsigned g = 0; g < 3; g++) {
					struct lcp_config c = cfg_of(bits, groups[g], sym, 0);
					round_trip(dts[d], 2, dims, &c);
				}
}

Test(codec, odd_shapes)
{
	const uint64_t row[2] = {1, 1000};
	const uint64_t col[2] = {1000, 1};
	const uint64_t odd[2] = {7, 13};      /* 91 elements: not a multiple of any group */
	const uint64_t d3[3] = {3, 5, 67};
	const uint64_t d4[4] = {2, 3, 4, 29};
	const uint64_t one[1] = {5};
	for (int sym = 0; sym < 2; sym++) {
		struct lcp_config c = cfg_of(4, 64, sym, 0);
		round_trip(LCP_DTYPE_F32, 2, row, &c);
		round_trip(LCP_DTYPE_F32, 2, col, &c);
		round_trip(LCP_DTYPE_BF16, 2, odd, &c);
		round_trip(LCP_DTYPE_F16, 3, d3, &c);
		round_trip(LCP_DTYPE_F32, 4, d4, &c);
		round_trip(LCP_DTYPE_F64, 1, one, &c);
	}
}

Test(codec, rank_ceiling_zero_and_max)
{
	const uint64_t dims[2] = {64, 96};
	struct lcp_config c0 = cfg_of(4, 64, true, 0);
	struct lcp_config cmax = cfg_of(4, 64, true, 1024);
	round_trip(LCP_DTYPE_F32, 2, dims, &c0);
	round_trip(LCP_DTYPE_F32, 2, dims, &cmax);
	struct lcp_config c8 = cfg_of(8, 32, false, 1024);
	round_trip(LCP_DTYPE_BF16, 2, dims, &c8);
}

Test(codec, multi_chunk_round_trip)
{
	const uint64_t dims[2] = {MULTI_CHUNK_ELEMS / 1, 1};
	struct lcp_config c = cfg_of(4, 64, true, 0);
	round_trip(LCP_DTYPE_F32, 2, dims, &c);
	const uint64_t mat[2] = {640, 520};
	round_trip(LCP_DTYPE_F16, 2, mat, &c);
}

static void encode_ok(const struct tensor *t, const struct lcp_config *c, struct lcp_encoded *e)
{
	struct lcp_codec_ctx *ctx;
	cr_assert_eq(lcp_codec_ctx_create(&ctx), LCP_OK);
	cr_assert_eq(lcp_codec_encode(ctx, &t->v, c, e), LCP_OK);
	lcp_codec_ctx_free(ctx);
}

Test(codec, quality_floor_falls_back_to_8_bits)
{
	/* Cosine ~ 1 - 1/(2 SNR): about 0.995 at 4 bits (~20 dB) and above
	 * 0.99995 at 8 bits (>= 40 dB), so 0.9999 separates them. */
	const uint64_t dims[2] = {32, 256};
	struct tensor t;
	make_tensor(&t, LCP_DTYPE_F32, 2, dims, 7);
	struct lcp_config c = cfg_of(4, 64, true, 0);
	c.quality_threshold = 0.9999f;
	struct lcp_encoded e;
	encode_ok(&t, &c, &e);
	cr_expect_eq(e.encoding, LCP_ENC_Q8);
	cr_expect_eq(e.bits, 8);
	cr_expect_not_null(e.fallback_reason);
	cr_expect_geq(e.cosine, 0.9999);
	lcp_encoded_free(&e);
	free(t.bytes);
}

static void expect_lossless(const struct tensor *t, const struct lcp_config *c)
{
	struct lcp_encoded e;
	encode_ok(t, c, &e);
	cr_expect_eq(e.encoding, LCP_ENC_LOSSLESS);
	cr_expect_eq(e.bits, 0);
	cr_expect_not_null(e.fallback_reason);
	cr_expect_eq(e.cosine, 1.0, "lossless reports cosine 1, even with NaN/Inf inside");
	cr_expect(isinf(e.sqnr_db) && e.sqnr_db > 0, "lossless reports infinite SQNR");
	uint8_t *out = decode_all(&e, t->v.dtype, nelems(t));
	cr_expect_eq(memcmp(out, t->bytes, t->v.len), 0, "lossless must be byte-exact");
	free(out);
	lcp_encoded_free(&e);
}

Test(codec, impossible_quality_is_stored_lossless)
{
	const uint64_t dims[2] = {32, 256};
	static const enum lcp_dtype dts[] = {LCP_DTYPE_F32, LCP_DTYPE_F16, LCP_DTYPE_BF16,
					     LCP_DTYPE_F64};
	for (unsigned d = 0; d < 4; d++) {
		struct tensor t;
		make_tensor(&t, dts[d], 2, dims, 9);
		struct lcp_config c = cfg_of(4, 64, false, 0);
		c.quality_threshold = 1.0f;
		expect_lossless(&t, &c);
		free(t.bytes);
	}
}

Test(codec, nan_and_inf_are_stored_lossless)
{
	const uint64_t dims[2] = {16, 100};
	struct tensor t;
	make_tensor(&t, LCP_DTYPE_F32, 2, dims, 11);
	float v = NAN;
	memcpy(t.bytes + 4 * 123, &v, 4);
	struct lcp_config c = cfg_of(4, 64, true, 0);
	expect_lossless(&t, &c);
	v = -INFINITY;
	memcpy(t.bytes + 4 * 123, &v, 4);
	expect_lossless(&t, &c);
	free(t.bytes);
	/* A finite F32 value whose square overflows binary32 goes lossless too. */
	make_tensor(&t, LCP_DTYPE_F32, 2, dims, 13);
	v = -7.8e20f;
	memcpy(t.bytes + 4 * 77, &v, 4);
	expect_lossless(&t, &c);
	free(t.bytes);
	/* An F64 value beyond binary32's range cannot be quantized either. */
	make_tensor(&t, LCP_DTYPE_F64, 2, dims, 12);
	double big = 1e300;
	memcpy(t.bytes + 8 * 5, &big, 8);
	expect_lossless(&t, &c);
	free(t.bytes);
}

Test(codec, zeros_and_subnormals_never_give_nan)
{
	const uint64_t dims[2] = {8, 300};
	struct tensor t;
	make_tensor(&t, LCP_DTYPE_F32, 2, dims, 13);
	for (unsigned bits = 4; bits <= 8; bits += 4)
		for (int sym = 0; sym < 2; sym++) {
			struct lcp_config c = cfg_of((uint8_t)bits, 32, sym, 0);
			/* All zero. */
			memset(t.bytes, 0, t.v.len);
			struct lcp_encoded e;
			encode_ok(&t, &c, &e);
			uint8_t *out = decode_all(&e, LCP_DTYPE_F32, nelems(&t));
			for (uint64_t i = 0; i < nelems(&t); i++)
				cr_assert_eq(get_value(LCP_DTYPE_F32, out + 4 * i), 0.0);
			free(out);
			lcp_encoded_free(&e);
			/* Subnormals, a zero group among them, and one normal value
			 * so scales span the whole exponent range. */
			for (uint64_t i = 0; i < nelems(&t); i++) {
				float f = (i / 32 == 3) ? 0.0f : ldexpf((float)(i % 7) - 3.0f, -140);
				memcpy(t.bytes + 4 * i, &f, 4);
			}
			float one = 1.0f;
			memcpy(t.bytes + 4 * 2000, &one, 4);
			encode_ok(&t, &c, &e);
			out = decode_all(&e, LCP_DTYPE_F32, nelems(&t));
			sqnr_db(&t, out); /* asserts every element finite */
			free(out);
			lcp_encoded_free(&e);
		}
	free(t.bytes);
}

static bool same_encoding(const struct lcp_encoded *a, const struct lcp_encoded *b)
{
	if (a->params_len != b->params_len || a->data_len != b->data_len || a->nchunks != b->nchunks)
		return false;
	return memcmp(a->params, b->params, a->params_len) == 0 &&
	       memcmp(a->data, b->data, a->data_len) == 0 &&
	       memcmp(a->chunks, b->chunks, a->nchunks * sizeof *a->chunks) == 0;
}

Test(codec, encoding_is_deterministic)
{
	const uint64_t dims[2] = {300, 300};
	struct tensor t;
	make_tensor(&t, LCP_DTYPE_BF16, 2, dims, 17);
	struct lcp_config c = cfg_of(4, 64, true, 32);
	struct lcp_encoded a, b;
	encode_ok(&t, &c, &a);
	encode_ok(&t, &c, &b);
	cr_expect(same_encoding(&a, &b));
	lcp_encoded_free(&a);
	lcp_encoded_free(&b);
	free(t.bytes);
}

struct worker {
	const struct lcp_codec_tensor *ct;
	const struct lcp_encoded *e;
	uint8_t *out;
	unsigned eb;
	uint32_t *order;
	uint32_t count;
	lcp_err err;
};

static void *decode_worker(void *arg)
{
	struct worker *w = arg;
	for (uint32_t k = 0; k < w->count; k++) {
		const struct lcp_chunk_info *ci = &w->e->chunks[w->order[k]];
		lcp_err err = lcp_codec_decode_chunk(w->ct, ci, w->e->data + ci->data_off, ci->data_len,
						     w->out + ci->elem_begin * w->eb,
						     (ci->elem_end - ci->elem_begin) * w->eb);
		if (err)
			w->err = err;
	}
	return NULL;
}

Test(codec, random_order_parallel_decode_matches_in_order)
{
	const uint64_t dims[2] = {MULTI_CHUNK_ELEMS / 64 + 1, 64};
	static const enum lcp_dtype dts[] = {LCP_DTYPE_F32, LCP_DTYPE_BF16};
	for (unsigned d = 0; d < 2; d++) {
		struct tensor t;
		make_tensor(&t, dts[d], 2, dims, 19);
		struct lcp_config c = cfg_of(4, 64, d == 0, 0);
		struct lcp_encoded e;
		encode_ok(&t, &c, &e);
		cr_assert_geq(e.nchunks, 3);
		uint8_t *ref = decode_all(&e, dts[d], nelems(&t));
		uint8_t *par = calloc(1, t.v.len);
		uint32_t *order = malloc(e.nchunks * sizeof *order);
		for (uint32_t i = 0; i < e.nchunks; i++)
			order[i] = i;
		rng_state = 99 + d;
		for (uint32_t i = e.nchunks - 1; i > 0; i--) {
			uint32_t j = (uint32_t)(uniform01() * (i + 1));
			uint32_t tmp = order[i];
			order[i] = order[j];
			order[j] = tmp;
		}
		struct lcp_codec_tensor *ct;
		cr_assert_eq(lcp_codec_tensor_open(e.params, e.params_len, &ct), LCP_OK);
		struct worker w[2];
		pthread_t th[2];
		uint32_t half = e.nchunks / 2;
		for (int k = 0; k < 2; k++) {
			w[k] = (struct worker){ct, &e, par, elem_bytes(dts[d]), order + (k ? half : 0),
					       k ? e.nchunks - half : half, LCP_OK};
			cr_assert_eq(pthread_create(&th[k], NULL, decode_worker, &w[k]), 0);
		}
		for (int k = 0; k < 2; k++) {
			pthread_join(th[k], NULL);
			cr_expect_eq(w[k].err, LCP_OK);
		}
		cr_expect_eq(memcmp(ref, par, t.v.len), 0);
		lcp_codec_tensor_free(ct);
		free(order);
		free(par);
		free(ref);
		lcp_encoded_free(&e);
		free(t.bytes);
	}
}

Test(codec, flipped_chunk_byte_is_a_checksum_error)
{
	const uint64_t dims[2] = {MULTI_CHUNK_ELEMS / 256 + 1, 256};
	struct tensor t;
	make_tensor(&t, LCP_DTYPE_F32, 2, dims, 23);
	struct lcp_config c = cfg_of(4, 64, true, 0);
	for (int lossless = 0; lossless < 2; lossless++) {
		c.quality_threshold = lossless ? 1.0f : 0.5f;
		struct lcp_encoded e;
		encode_ok(&t, &c, &e);
		struct lcp_codec_tensor *ct;
		cr_assert_eq(lcp_codec_tensor_open(e.params, e.params_len, &ct), LCP_OK);
		uint8_t *out = malloc(t.v.len);
		rng_state = 5;
		for (uint32_t k = 0; k < e.nchunks; k++) {
			const struct lcp_chunk_info *ci = &e.chunks[k];
			/* first, last and a random byte of each chunk */
			uint64_t picks[3] = {0, ci->data_len - 1,
					     (uint64_t)(uniform01() * (double)ci->data_len)};
			for (int p = 0; p < 3; p++) {
				uint8_t *byte = e.data + ci->data_off + picks[p];
				*byte ^= 0x10;
				cr_expect_eq(lcp_codec_decode_chunk(ct, ci, e.data + ci->data_off,
								    ci->data_len, out,
								    (ci->elem_end - ci->elem_begin) * 4),
					     LCP_ERR_CHECKSUM, "chunk %u byte %lu", k,
					     (unsigned long)picks[p]);
				*byte ^= 0x10;
			}
		}
		free(out);
		lcp_codec_tensor_free(ct);
		lcp_encoded_free(&e);
	}
	free(t.bytes);
}

Test(codec, damaged_params_are_rejected)
{
	const uint64_t dims[3] = {4, 8, 64};
	struct tensor t;
	make_tensor(&t, LCP_DTYPE_F16, 3, dims, 29);
	struct lcp_config c = cfg_of(4, 64, false, 0);
	struct lcp_encoded e;
	encode_ok(&t, &c, &e);
	struct lcp_codec_tensor *ct = NULL;
	cr_assert_eq(lcp_codec_tensor_open(e.params, e.params_len, &ct), LCP_OK);
	lcp_codec_tensor_free(ct);
	/* Every truncation, on an exact-size heap copy so ASan sees overreads. */
	for (size_t len = 0; len < e.params_len; len++) {
		uint8_t *p = malloc(len ? len : 1);
		memcpy(p, e.params, len);
		ct = (struct lcp_codec_tensor *)1;
		cr_expect_neq(lcp_codec_tensor_open(p, len, &ct), LCP_OK, "len %zu", len);
		cr_expect_null(ct);
		free(p);
	}
	/* Every single-bit flip. */
	uint8_t *p = malloc(e.params_len);
	for (size_t i = 0; i < e.params_len * 8; i++) {
		memcpy(p, e.params, e.params_len);
		p[i / 8] ^= (uint8_t)(1u << (i % 8));
		cr_expect_neq(lcp_codec_tensor_open(p, e.params_len, &ct), LCP_OK, "bit %zu", i);
	}
	free(p);
	/* Garbage of various lengths, and a valid block with a trailing byte. */
	rng_state = 31;
	for (size_t len = 1; len < 200; len += 7) {
		uint8_t *g = malloc(len);
		for (size_t i = 0; i < len; i++)
			g[i] = (uint8_t)(uniform01() * 256);
		if (len >= 4)
			memcpy(g, e.params, 4); /* get past the magic */
		cr_expect_neq(lcp_codec_tensor_open(g, len, &ct), LCP_OK);
		free(g);
	}
	uint8_t *longer = malloc(e.params_len + 1);
	memcpy(longer, e.params, e.params_len);
	longer[e.params_len] = 0;
	cr_expect_neq(lcp_codec_tensor_open(longer, e.params_len + 1, &ct), LCP_OK);
	free(longer);
	lcp_encoded_free(&e);
	free(t.bytes);
}

Test(codec, chunk_range_and_buffer_checked)
{
	const uint64_t dims[2] = {64, 64};
	struct tensor t;
	make_tensor(&t, LCP_DTYPE_F32, 2, dims, 37);
	struct lcp_config c = cfg_of(8, 64, true, 0);
	struct lcp_encoded e;
	encode_ok(&t, &c, &e);
	struct lcp_codec_tensor *ct;
	cr_assert_eq(lcp_codec_tensor_open(e.params, e.params_len, &ct), LCP_OK);
	struct lcp_chunk_info ci = e.chunks[0];
	uint8_t *out = malloc(t.v.len + 4);
	cr_expect_eq(lcp_codec_decode_chunk(ct, &ci, e.data, ci.data_len, out, t.v.len + 4),
		     LCP_ERR_RANGE);
	ci.elem_end--;
	cr_expect_eq(lcp_codec_decode_chunk(ct, &ci, e.data, ci.data_len, out, t.v.len - 4),
		     LCP_ERR_RANGE);
	free(out);
	lcp_codec_tensor_free(ct);
	lcp_encoded_free(&e);
	free(t.bytes);
}

Test(codec, bad_arguments)
{
	const uint64_t dims[2] = {4, 4};
	struct tensor t;
	make_tensor(&t, LCP_DTYPE_F32, 2, dims, 41);
	struct lcp_codec_ctx *ctx;
	cr_assert_eq(lcp_codec_ctx_create(&ctx), LCP_OK);
	struct lcp_encoded e;
	struct lcp_config c = cfg_of(4, 64, true, 0);
	t.v.len--;
	cr_expect_eq(lcp_codec_encode(ctx, &t.v, &c, &e), LCP_ERR_INVAL);
	t.v.len++;
	t.v.dtype = LCP_DTYPE_F8_E4M3;
	cr_expect_eq(lcp_codec_encode(ctx, &t.v, &c, &e), LCP_ERR_UNSUPPORTED);
	t.v.dtype = LCP_DTYPE_F32;
	c.bits = 5;
	cr_expect_eq(lcp_codec_encode(ctx, &t.v, &c, &e), LCP_ERR_INVAL);
	cr_expect_null(e.params);
	lcp_codec_ctx_free(ctx);
	free(t.bytes);
}

Test(codec, fast_dequant_matches_reference_bit_for_bit)
{
	uint8_t codes[256];
	float a[256], b[256];
	rng_state = 43;
	for (int trial = 0; trial < 2000; trial++) {
		uint32_t n = 1 + (uint32_t)(uniform01() * 256);
		for (uint32_t i = 0; i < n; i++)
			codes[i] = (uint8_t)(uniform01() * 256);
		/* scales from subnormal to huge, both signs */
		float sd = ldexpf((float)(uniform01() - 0.5), (int)(uniform01() * 280) - 150);
		int off = (int)(uniform01() * 256);
		lcp_dequant_ref(codes, n, sd, off, a);
		lcp_dequant(codes, n, sd, off, b);
		cr_assert_eq(memcmp(a, b, n * sizeof *a), 0, "trial %d", trial);
	}
}

Test(codec, scale_grid_is_monotonic_and_exact_in_octaves)
{
	/* Hand-derived: code cmax is super itself, each 16 (resp. 256) codes
	 * down halve it exactly, code 0 is 0. */
	struct lcp_qparams p8 = {8, true, 4, 3.0f};
	struct lcp_qparams p16 = {8, true, 8, 3.0f};
	cr_expect_eq(lcp_qscale(&p8, 255), 3.0f);
	cr_expect_eq(lcp_qscale(&p8, 255 - 16), 1.5f);
	cr_expect_eq(lcp_qscale(&p8, 255 - 160), 3.0f / 1024.0f);
	cr_expect_eq(lcp_qscale(&p8, 0), 0.0f);
	cr_expect_eq(lcp_qscale(&p16, 65535), 3.0f);
	cr_expect_eq(lcp_qscale(&p16, 65535 - 256), 1.5f);
	for (unsigned c = 2; c <= 255; c++)
		cr_assert_gt(lcp_qscale(&p8, (uint16_t)c), lcp_qscale(&p8, (uint16_t)(c - 1)));
	for (unsigned c = 2; c <= 65535; c++)
		cr_assert_geq(lcp_qscale(&p16, (uint16_t)c), lcp_qscale(&p16, (uint16_t)(c - 1)));
	/* Code 1 is 254 steps down: 16 octaves less 2 steps, i.e.
	 * super * 2^(2/16) * 2^-16; from a tiny super that is subnormal. */
	struct lcp_qparams tiny = {8, true, 4, 1e-36f};
	float want = ldexpf(1e-36f * 1.09050773266525766f, -16);
	cr_expect(want > 0.0f && want < 1.17549435e-38f, "the expected value is subnormal");
	cr_expect_eq(lcp_qscale(&tiny, 1), want);
}

/* Upper bound on the allocations of one small encode: the loop below must
 * reach a successful encode before it. */
#define MAX_ALLOCS_PER_ENCODE 200

Test(codec, every_allocation_failure_is_clean)
{
	const uint64_t dims[2] = {32, 96};
	struct tensor t;
	make_tensor(&t, LCP_DTYPE_F16, 2, dims, 59);
	struct lcp_codec_ctx *ctx;
	cr_assert_eq(lcp_codec_ctx_create(&ctx), LCP_OK);
	bool succeeded = false;
	for (long n = 0; n < MAX_ALLOCS_PER_ENCODE && !succeeded; n++) {
		struct lcp_config c = cfg_of(4, 64, true, 8);
		struct lcp_encoded e;
		lcp_alloc_fail_after(n);
		lcp_err err = lcp_codec_encode(ctx, &t.v, &c, &e);
		lcp_alloc_fail_after(-1);
		cr_assert(err == LCP_OK || err == LCP_ERR_NOMEM, "n %ld: %d", n, err);
		if (err == LCP_OK) {
			succeeded = true;
			uint8_t *out = decode_all(&e, LCP_DTYPE_F16, nelems(&t));
			free(out);
			lcp_encoded_free(&e);
		} else {
			cr_assert_null(e.params);
			cr_assert_null(e.data);
		}
	}
	cr_expect(succeeded);
	lcp_codec_ctx_free(ctx);
	free(t.bytes);
}

/* Mutations per chunk for the robustness test below. */
#define MUTATIONS_PER_CHUNK 300

/* A damaged chunk whose checksum was recomputed (a buggy writer, not
 * corruption) must still never make the decoder read or write out of
 * bounds: any error, or some bytes, but no crash (run under SAN=1). */
Test(codec, damaged_chunk_with_valid_checksum_never_crashes)
{
	const uint64_t dims[2] = {24, 300};
	static const struct {
		uint8_t bits;
		bool sym;
		float quality;
	} modes[] = {{4, true, 0.5f}, {4, false, 0.5f}, {8, true, 0.5f}, {8, false, 1.0f}};
	for (unsigned md = 0; md < sizeof modes / sizeof modes[0]; md++) {
		struct tensor t;
		make_tensor(&t, LCP_DTYPE_F32, 2, dims, 61 + md);
		struct lcp_config c = cfg_of(modes[md].bits, 32, modes[md].sym, 0);
		c.quality_threshold = modes[md].quality;
		struct lcp_encoded e;
		encode_ok(&t, &c, &e);
		struct lcp_codec_tensor *ct;
		cr_assert_eq(lcp_codec_tensor_open(e.params, e.params_len, &ct), LCP_OK);
		struct lcp_chunk_info ci = e.chunks[0];
		size_t out_len = (ci.elem_end - ci.elem_begin) * 4;
		uint8_t *out = malloc(out_len);
		rng_state = 67 + md;
		for (int k = 0; k < MUTATIONS_PER_CHUNK; k++) {
			/* Exact-size heap copy, cut or extended by a few bytes,
			 * with a few bytes changed. */
			size_t len = ci.data_len;
			int how = (int)(uniform01() * 3);
			if (how == 1)
				len -= (size_t)(uniform01() * (double)len);
			else if (how == 2)
				len += 1 + (size_t)(uniform01() * 8);
			uint8_t *d = malloc(len ? len : 1);
			for (size_t i = 0; i < len; i++)
				d[i] = i < ci.data_len ? e.data[ci.data_off + i] : (uint8_t)(uniform01() * 256);
			for (int f = 0; len && f < 1 + k % 4; f++)
				d[(size_t)(uniform01() * (double)len)] = (uint8_t)(uniform01() * 256);
			struct lcp_chunk_info m = ci;
			m.data_len = len;
			m.stored_xxh3 = lcp_xxh3(d, len);
			lcp_codec_decode_chunk(ct, &m, d, len, out, out_len);
			free(d);
		}
		free(out);
		lcp_codec_tensor_free(ct);
		lcp_encoded_free(&e);
		free(t.bytes);
	}
}

/* A rank-4 matrix whose singular values dwarf an added noise floor
 * (25 dB below it), rows x cols with cols = 1025 so chunk boundaries fall
 * inside rows (lcm(64, 1025) exceeds the chunk target). */
static void make_low_rank(struct tensor *t, enum lcp_dtype dt, uint64_t rows, uint64_t cols)
{
	const uint64_t dims[2] = {rows, cols};
	make_tensor(t, dt, 2, dims, 47); /* noise, sigma 0.02 */
	rng_state = 53;
	double a[4][128], b[4][1100];
	for (int k = 0; k < 4; k++) {
		for (uint64_t i = 0; i < rows; i++)
			a[k][i] = normal();
		for (uint64_t j = 0; j < cols; j++)
			b[k][j] = normal();
	}
	unsigned eb = elem_bytes(dt);
	for (uint64_t i = 0; i < rows; i++)
		for (uint64_t j = 0; j < cols; j++) {
			double s = 0.0;
			for (int k = 0; k < 4; k++)
				s += 0.32 / (k + 1) * a[k][i] * b[k][j];
			double x = get_value(dt, t->bytes + (i * cols + j) * eb);
			put_value(dt, t->bytes + (i * cols + j) * eb, x + s);
		}
}

/* Removing a rank-4 part that holds ~99.9% of the energy leaves only the
 * noise to quantize: far more than the few dB the factors' bits could buy
 * as quantization steps (4 x 16 x (rows + cols) / (rows x cols) = 0.57
 * bits/weight, ~3.5 dB). */
#define MIN_LOW_RANK_GAIN_DB 10.0

Test(codec, low_rank_part_is_found_and_pays)
{
	struct tensor t;
	make_low_rank(&t, LCP_DTYPE_F32, 120, 1025);
	struct lcp_config c0 = cfg_of(4, 64, true, 0), c32 = cfg_of(4, 64, true, 32);
	struct lcp_encoded e0, e32;
	encode_ok(&t, &c0, &e0);
	encode_ok(&t, &c32, &e32);
	cr_expect_eq(e0.rank, 0);
	cr_expect_geq(e32.rank, 1);
	cr_expect_leq(e32.rank, 32);
	cr_expect_eq(e32.qlor.rank, e32.rank);
	uint8_t *o0 = decode_all(&e0, LCP_DTYPE_F32, nelems(&t));
	uint8_t *o32 = decode_all(&e32, LCP_DTYPE_F32, nelems(&t));
	double s0 = sqnr_db(&t, o0), s32 = sqnr_db(&t, o32);
	cr_expect_geq(s32, s0 + MIN_LOW_RANK_GAIN_DB, "rank %u: %.2f dB vs %.2f dB at rank 0",
		      e32.rank, s32, s0);
	free(o0);
	free(o32);
	lcp_encoded_free(&e0);
	lcp_encoded_free(&e32);
	free(t.bytes);
}

Test(codec, low_rank_is_deterministic_and_chunks_decode_alone)
{
	struct tensor t;
	make_low_rank(&t, LCP_DTYPE_BF16, 100, 1025);
	struct lcp_config c = cfg_of(4, 64, true, 16);
	struct lcp_encoded a, b;
	encode_ok(&t, &c, &a);
	encode_ok(&t, &c, &b);
	cr_expect(same_encoding(&a, &b));
	cr_assert_geq(a.rank, 1);
	cr_assert_geq(a.nchunks, 2);
	/* Last chunk first, alone, into its own buffer. */
	struct lcp_codec_tensor *ct;
	cr_assert_eq(lcp_codec_tensor_open(a.params, a.params_len, &ct), LCP_OK);
	uint8_t *ref = decode_all(&a, LCP_DTYPE_BF16, nelems(&t));
	const struct lcp_chunk_info *ci = &a.chunks[a.nchunks - 1];
	size_t len = (ci->elem_end - ci->elem_begin) * 2;
	uint8_t *one = malloc(len);
	cr_assert_eq(lcp_codec_decode_chunk(ct, ci, a.data + ci->data_off, ci->data_len, one, len),
		     LCP_OK);
	cr_expect_eq(memcmp(one, ref + ci->elem_begin * 2, len), 0);
	free(one);
	free(ref);
	lcp_codec_tensor_free(ct);
	lcp_encoded_free(&a);
	lcp_encoded_free(&b);
	free(t.bytes);
}

/* rows x cols: noise (sigma 0.02) plus a planted rank-k part with slowly
 * decaying singular values, each far above the noise floor. */
static void make_rank_k(struct tensor *t, uint64_t rows, uint64_t cols, int k)
{
	const uint64_t dims[2] = {rows, cols};
	make_tensor(t, LCP_DTYPE_F32, 2, dims, 61);
	rng_state = 67;
	float *a = malloc(rows * (size_t)k * sizeof *a), *b = malloc(cols * (size_t)k * sizeof *b);
	cr_assert(a && b);
	for (uint64_t i = 0; i < rows * (uint64_t)k; i++)
		a[i] = (float)normal();
	for (uint64_t i = 0; i < cols * (uint64_t)k; i++)
		b[i] = (float)normal();
	for (uint64_t i = 0; i < rows; i++)
		for (uint64_t j = 0; j < cols; j++) {
			double s = 0.0;
			for (int c = 0; c < k; c++)
				s += 0.32 / (1.0 + c / 4.0) * a[i * (uint64_t)k + c] * b[j * (uint64_t)k + c];
			double x = get_value(LCP_DTYPE_F32, t->bytes + (i * cols + j) * 4);
			put_value(LCP_DTYPE_F32, t->bytes + (i * cols + j) * 4, x + s);
		}
	free(a);
	free(b);
}

/* The encoder first fits a small rank and refits at the ceiling only when
 * every probed component pays: a planted rank of 12 (above that probe,
 * below the ceiling, each component worth > 10 dB against its ~0.4 dB of
 * factor bits) must be found whole. */
#define PLANTED_RANK 12

Test(codec, planted_rank_above_the_probe_is_found)
{
	struct tensor t;
	make_rank_k(&t, 512, 512, PLANTED_RANK);
	struct lcp_config c = cfg_of(4, 64, true, 32);
	struct lcp_encoded e;
	encode_ok(&t, &c, &e);
	cr_expect_eq(e.rank, PLANTED_RANK);
	lcp_encoded_free(&e);
	free(t.bytes);
}

/* 16-bit outputs into a buffer at an odd address take the decoder's staging
 * path instead of the direct one: same bytes. 1000 x 37 elements: groups,
 * chunks and the conversion's 8-lane loop all end in a remainder. */
Test(codec, misaligned_16bit_output_matches_aligned)
{
	const enum lcp_dtype dts[2] = {LCP_DTYPE_F16, LCP_DTYPE_BF16};
	const uint64_t dims[2] = {1000, 37};
	for (int d = 0; d < 2; d++) {
		struct tensor t;
		make_tensor(&t, dts[d], 2, dims, 71);
		struct lcp_config c = cfg_of(4, 24, true, 0);
		struct lcp_encoded e;
		encode_ok(&t, &c, &e);
		uint8_t *ref = decode_all(&e, dts[d], nelems(&t));
		struct lcp_codec_tensor *ct;
		cr_assert_eq(lcp_codec_tensor_open(e.params, e.params_len, &ct), LCP_OK);
		uint8_t *buf = malloc(t.v.len + 1);
		cr_assert_not_null(buf);
		for (uint32_t k = 0; k < e.nchunks; k++) {
			const struct lcp_chunk_info *ci = &e.chunks[k];
			size_t len = (ci->elem_end - ci->elem_begin) * 2;
			cr_assert_eq(lcp_codec_decode_chunk(ct, ci, e.data + ci->data_off, ci->data_len,
							    buf + 1, len),
				     LCP_OK);
			cr_expect_eq(memcmp(buf + 1, ref + ci->elem_begin * 2, len), 0, "dtype %d chunk %u",
				     dts[d], k);
		}
		free(buf);
		free(ref);
		lcp_codec_tensor_free(ct);
		lcp_encoded_free(&e);
		free(t.bytes);
	}
}

/*
 * The 8-bit class keeps a side plane raw unless rANS saves at least an
 * eighth of it (codec.c, SIDE_RANS_MIN_SAVING), and compares the planes
 * with zstd as if they were all rANS-coded: groups of 8 whose zero points
 * spread evenly over 150 values (7.2 bits of 8: rANS saves ~8% with its
 * table and lane states; zstd's Huffman code takes about as much as
 * rANS), one scale for them all (constant scale-code planes). The zero
 * points stay raw, and the side stream stays planes, although zstd is
 * smaller than them with the raw plane. The planes are read with the
 * stream parser, as the decoder reads them.
 */
Test(codec, eight_bit_side_planes_stay_raw_unless_rans_saves_an_eighth)
{
	const uint64_t rows = 32, cols = 4096, n = rows * cols;
	const uint32_t G = 8;
	struct tensor t;
	make_tensor(&t, LCP_DTYPE_F32, 2, (const uint64_t[]){rows, cols}, 5);
	rng_state = 77;
	for (uint64_t g = 0; g < n / G; g++) {
		int z = 53 + (int)(rnd() % 150); /* the group's zero point */
		for (uint32_t j = 0; j < G; j++) {
			/* the grid's ends pin the range; the rest anywhere on it */
			int c = j == 0 ? 0 : j == 1 ? 255 : (int)(rnd() % 256);
			put_value(LCP_DTYPE_F32, t.bytes + 4 * (g * G + j), (double)(c - z) / 1024.0);
		}
	}
	struct lcp_config c = cfg_of(8, G, false, 0);
	struct lcp_encoded e;
	encode_ok(&t, &c, &e);
	cr_assert_eq(e.nchunks, 1);
	const uint8_t *d = e.data + e.chunks[0].data_off;
	cr_assert_eq(d[0] & 3, SIDE_PLANES, "the side stream must be stored as planes");
	const uint8_t *p = d + QCHUNK_HEADER_LEN, *end = p + lcp_load_le32(d + 1);
	static struct lcp_rans_dec table;
	uint8_t modes[3];
	for (int k = 0; k < 3; k++) {
		struct lcp_plane pl;
		cr_assert_eq(lcp_stream_parse_plane(&p, end, n / G, plane_block_elems(n / G), &table, &pl),
			     LCP_OK);
		modes[k] = pl.mode;
	}
	cr_expect_eq(modes[0], PLANE_CONSTANT, "one scale for every group");
	cr_expect_eq(modes[2], PLANE_RAW, "zero points: rANS saves less than an eighth");
	free(decode_all(&e, LCP_DTYPE_F32, n));
	lcp_encoded_free(&e);
	free(t.bytes);
}

/* A params block with byte 4 (the version) set to v and its checksum
 * redone, into a copy the caller frees. */
static uint8_t *params_as_version(const struct lcp_encoded *e, uint8_t v)
{
	uint8_t *p = malloc(e->params_len);
	cr_assert_not_null(p);
	memcpy(p, e->params, e->params_len);
	p[4] = v;
	lcp_store_le64(p + e->params_len - 8, lcp_xxh3(p, e->params_len - 8));
	return p;
}

/*
 * Pairs (code mode 3) exist in the 8-bit class under params versions 4 and
 * 5 (5 is written now; 4 was): readers older than a version refuse it (as
 * this one refuses version 6), a version-4 block of another class is
 * damage, and a chunk of pairs under a version-2 block (the 8-bit class's
 * older layout, still read) is damage, never bytes. Version 5 is only for
 * dependent quantization and the 8-bit class; the asymmetric 4-bit class
 * keeps version 2.
 */
Test(codec, pairs_live_in_the_8_bit_class_of_versions_4_and_5)
{
	const uint64_t dims[2] = {32, 4096};
	struct tensor t;
	make_tensor(&t, LCP_DTYPE_F32, 2, dims, 8);
	struct lcp_config q8 = lcp_config_quality();
	q8.rank = 0;
	struct lcp_encoded e;
	encode_ok(&t, &q8, &e);
	cr_assert_eq(e.params[4], 5);
	const struct lcp_chunk_info *ci = &e.chunks[0];
	cr_assert_eq(e.data[ci->data_off] >> 2 & 7, CODE_PAIRS, "the chunk's codes must be pairs");
	struct lcp_codec_tensor *ct;
	uint8_t *p = params_as_version(&e, 6);
	cr_expect_eq(lcp_codec_tensor_open(p, e.params_len, &ct), LCP_ERR_VERSION);
	free(p);
	p = params_as_version(&e, 2);
	cr_assert_eq(lcp_codec_tensor_open(p, e.params_len, &ct), LCP_OK);
	uint8_t *out = malloc(t.v.len);
	cr_expect_eq(lcp_codec_decode_chunk(ct, ci, e.data + ci->data_off, ci->data_len, out,
					    (ci->elem_end - ci->elem_begin) * 4),
		     LCP_ERR_FORMAT);
	lcp_codec_tensor_free(ct);
	free(p);
	free(out);
	lcp_encoded_free(&e);

	struct lcp_config q4 = cfg_of(4, 64, false, 0), def = lcp_config_default();
	encode_ok(&t, &q4, &e);
	cr_expect_eq(e.params[4], 2);
	p = params_as_version(&e, 4);
	cr_expect_eq(lcp_codec_tensor_open(p, e.params_len, &ct), LCP_ERR_FORMAT);
	free(p);
	p = params_as_version(&e, 5);
	cr_expect_eq(lcp_codec_tensor_open(p, e.params_len, &ct), LCP_ERR_FORMAT);
	free(p);
	lcp_encoded_free(&e);
	def.rank = 0;
	encode_ok(&t, &def, &e);
	cr_expect_eq(e.params[4], 5);
	lcp_encoded_free(&e);
	free(t.bytes);
}

/* Alias streams (code mode 4) are written for dependent quantization under
 * params version 5; the same chunk under version 3, whose modes byte has
 * two code mode bits, is refused, not misread. */
Test(codec, alias_streams_live_in_params_version_5_only)
{
	const uint64_t dims[2] = {32, 4096};
	struct tensor t;
	make_tensor(&t, LCP_DTYPE_F32, 2, dims, 8);
	struct lcp_config def = lcp_config_default();
	def.rank = 0;
	struct lcp_encoded e;
	encode_ok(&t, &def, &e);
	cr_assert_eq(e.params[4], 5);
	const struct lcp_chunk_info *ci = &e.chunks[0];
	cr_assert_eq(e.data[ci->data_off] >> 2 & 7, CODE_ALIAS, "the chunk's codes must be an alias stream");
	size_t out_len = (ci->elem_end - ci->elem_begin) * 4;
	uint8_t *out = malloc(out_len);
	struct lcp_codec_tensor *ct;
	cr_assert_eq(lcp_codec_tensor_open(e.params, e.params_len, &ct), LCP_OK);
	cr_expect_eq(lcp_codec_decode_chunk(ct, ci, e.data + ci->data_off, ci->data_len, out, out_len),
		     LCP_OK);
	lcp_codec_tensor_free(ct);
	uint8_t *p = params_as_version(&e, 3);
	cr_assert_eq(lcp_codec_tensor_open(p, e.params_len, &ct), LCP_OK);
	cr_expect_eq(lcp_codec_decode_chunk(ct, ci, e.data + ci->data_off, ci->data_len, out, out_len),
		     LCP_ERR_FORMAT);
	lcp_codec_tensor_free(ct);
	free(p);
	free(out);
	lcp_encoded_free(&e);
	free(t.bytes);
}
