/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The built-in "cpu" provider through its ops table: identity, round trips,
 * lossless fallback, damaged payloads, candidate detection, counters.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "codec/half.h"
#include "common/alloc.h"
#include "common/checksum.h"
#include "lcpfs/codec.h"
#include "lcpfs/config.h"
#include "lcpfs/provider.h"

/* Minimum SQNR of the default (4-bit) preset on Gaussian data: see
 * MIN_SQNR_Q4_DB in test_codec.c for the derivation (16 dB bound for a
 * 16-level grid; the entropy-coded step sits well above it). */
#define MIN_SQNR_Q4_DB 16.0

static uint64_t rng = 1;
static double normal(void)
{
	double u[2];
	for (int k = 0; k < 2; k++) {
		rng ^= rng << 13;
		rng ^= rng >> 7;
		rng ^= rng << 17;
		u[k] = ((double)(rng >> 11) + 0.5) / 9007199254740992.0;
	}
	return sqrt(-2.0 * log(u[0])) * cos(6.283185307179586 * u[1]);
}

static float *gaussian_f32(size_t n, uint64_t seed)
{
	rng = seed;
	float *x = malloc(n * sizeof *x);
	cr_assert_not_null(x);
	for (size_t i = 0; i < n; i++)
		x[i] = (float)(0.02 * normal());
	return x;
}

static struct lcp_tensor_view view2d(enum lcp_dtype dt, const void *data, uint64_t rows,
				     uint64_t cols, unsigned eb)
{
	struct lcp_tensor_view t;
	memset(&t, 0, sizeof t);
	t.dtype = dt;
	t.ndims = 2;
	t.dims[0] = rows;
	t.dims[1] = cols;
	t.data = data;
	t.len = rows * cols * eb;
	return t;
}

static void free_meta(struct lcp_qlor *m)
{
	lcp_qlor_free(m);
}

Test(codec_provider, identity_and_config)
{
	const struct lcp_provider *p = lcp_provider_cpu();
	cr_assert_not_null(p);
	cr_expect_str_eq(p->ops->name(p), "cpu");
	cr_expect_not(p->ops->supports_gpu(p));
	const struct lcp_config *c = p->ops->config(p);
	/* The seed's balanced preset. */
	cr_expect_eq(c->bits, 4);
	cr_expect_eq(c->rank, 32);
	cr_expect_eq(c->group_size, 64);
	cr_expect(c->symmetric);
	cr_expect_eq(c->min_size, 4096);
	cr_expect_eq(c->max_size, 1ull << 30);
	cr_expect_float_eq(c->quality_threshold, 0.97f, 1e-7);
	struct lcp_config d = lcp_config_default();
	cr_expect(d.bits == c->bits && d.rank == c->rank && d.group_size == c->group_size &&
		  d.symmetric == c->symmetric && d.min_size == c->min_size &&
		  d.max_size == c->max_size && d.quality_threshold == c->quality_threshold);
}

Test(codec_provider, registers_and_serves_through_the_registry)
{
	cr_assert(lcp_provider_register(lcp_provider_cpu()));
	cr_expect_eq(lcp_provider_get(), lcp_provider_cpu());
	cr_expect(lcp_provider_available());
	float *x = gaussian_f32(32 * 128, 17);
	struct lcp_tensor_view t = view2d(LCP_DTYPE_F32, x, 32, 128, 4);
	uint8_t *payload;
	size_t plen;
	struct lcp_qlor meta;
	cr_assert_eq(lcp_provider_compress(&t, &payload, &plen, &meta), LCP_OK);
	void *out;
	size_t olen;
	cr_assert_eq(lcp_provider_decompress(payload, plen, &meta, &out, &olen), LCP_OK);
	cr_expect_eq(olen, t.len);
	lcp_free(out);
	lcp_free(payload);
	lcp_qlor_free(&meta); /* the seed's release works on what compress returns */
	free(x);
}

Test(codec_provider, round_trip_f32_and_bf16)
{
	const struct lcp_provider *p = lcp_provider_cpu();
	const size_t rows = 96, cols = 200, n = rows * cols;
	float *x = gaussian_f32(n, 3);
	uint16_t *h = malloc(n * 2);
	for (size_t i = 0; i < n; i++)
		h[i] = lcp_bf16_from_f32(x[i]);
	struct lcp_tensor_view views[2] = {view2d(LCP_DTYPE_F32, x, rows, cols, 4),
					   view2d(LCP_DTYPE_BF16, h, rows, cols, 2)};
	for (int k = 0; k < 2; k++) {
		struct lcp_stats before, after;
		p->ops->statistics(p, &before);
		uint8_t *payload;
		size_t plen;
		struct lcp_qlor meta;
		cr_assert_eq(p->ops->compress(p, &views[k], p->ops->config(p), &payload, &plen, &meta),
			     LCP_OK);
		cr_expect_lt(plen, views[k].len / 3, "4-bit payload of %zu bytes", plen);
		cr_expect_eq(meta.bits, 4);
		cr_expect_eq(meta.dtype, views[k].dtype);
		cr_expect_eq(meta.original_size, views[k].len);
		cr_expect_eq(meta.original_checksum, lcp_xxh3(views[k].data, views[k].len));
		cr_expect_eq(meta.ndims, 2);
		void *out;
		size_t olen;
		cr_assert_eq(p->ops->decompress(p, payload, plen, &meta, &out, &olen), LCP_OK);
		cr_assert_eq(olen, views[k].len);
		double xx = 0, ee = 0;
		for (size_t i = 0; i < n; i++) {
			double a = k ? lcp_bf16_to_f32(h[i]) : x[i];
			double b = k ? lcp_bf16_to_f32(((uint16_t *)out)[i]) : ((float *)out)[i];
			xx += a * a;
			ee += (a - b) * (a - b);
		}
		cr_expect_geq(10 * log10(xx / ee), MIN_SQNR_Q4_DB);
		p->ops->statistics(p, &after);
		cr_expect_eq(after.compress_count, before.compress_count + 1);
		cr_expect_eq(after.decompress_count, before.decompress_count + 1);
		cr_expect_eq(after.bytes_in, before.bytes_in + views[k].len);
		cr_expect_eq(after.bytes_out, before.bytes_out + plen);
		lcp_free(out);
		lcp_free(payload);
		free_meta(&meta);
	}
	free(x);
	free(h);
}

Test(codec_provider, nan_tensor_round_trips_exactly)
{
	const struct lcp_provider *p = lcp_provider_cpu();
	float *x = gaussian_f32(64 * 80, 5);
	x[77] = NAN;
	struct lcp_tensor_view t = view2d(LCP_DTYPE_F32, x, 64, 80, 4);
	uint8_t *payload;
	size_t plen;
	struct lcp_qlor meta;
	cr_assert_eq(p->ops->compress(p, &t, p->ops->config(p), &payload, &plen, &meta), LCP_OK);
	cr_expect_eq(meta.bits, 0, "lossless");
	void *out;
	size_t olen;
	cr_assert_eq(p->ops->decompress(p, payload, plen, &meta, &out, &olen), LCP_OK);
	cr_assert_eq(olen, t.len);
	cr_expect_eq(memcmp(out, x, t.len), 0);
	lcp_free(out);
	lcp_free(payload);
	free_meta(&meta);
	free(x);
}

Test(codec_provider, damaged_payload_never_gives_bytes)
{
	const struct lcp_provider *p = lcp_provider_cpu();
	float *x = gaussian_f32(40 * 64, 7);
	struct lcp_tensor_view t = view2d(LCP_DTYPE_F32, x, 40, 64, 4);
	uint8_t *payload;
	size_t plen;
	struct lcp_qlor meta;
	cr_assert_eq(p->ops->compress(p, &t, p->ops->config(p), &payload, &plen, &meta), LCP_OK);
	void *out;
	size_t olen;
	/* Every byte changed, one at a time. */
	for (size_t i = 0; i < plen; i++) {
		payload[i] ^= 0x41;
		cr_expect_neq(p->ops->decompress(p, payload, plen, &meta, &out, &olen), LCP_OK,
			      "byte %zu", i);
		cr_expect_null(out);
		cr_expect_eq(olen, 0);
		payload[i] ^= 0x41;
	}
	/* Every truncation, on an exact-size copy. */
	for (size_t len = 0; len < plen; len++) {
		uint8_t *cut = malloc(len ? len : 1);
		memcpy(cut, payload, len);
		cr_expect_neq(p->ops->decompress(p, cut, len, &meta, &out, &olen), LCP_OK, "len %zu",
			      len);
		free(cut);
	}
	/* Metadata for a different size is refused. */
	meta.original_size += 4;
	cr_expect_eq(p->ops->decompress(p, payload, plen, &meta, &out, &olen), LCP_ERR_FORMAT);
	lcp_free(payload);
	free_meta(&meta);
	free(x);
}

Test(codec_provider, bad_arguments_leave_outputs_cleared)
{
	const struct lcp_provider *p = lcp_provider_cpu();
	uint8_t *payload = (uint8_t *)1;
	size_t plen = 9;
	struct lcp_qlor meta;
	cr_expect_eq(p->ops->compress(p, NULL, p->ops->config(p), &payload, &plen, &meta),
		     LCP_ERR_INVAL);
	cr_expect_null(payload);
	cr_expect_eq(plen, 0);
	/* The lcp_qlor_init(meta, 0, 4, 16) state. */
	cr_expect_eq(meta.bits, 4);
	cr_expect_eq(meta.rank, 16);
	cr_expect_eq(meta.original_size, 0);
	cr_expect_null(meta.dims);
	uint8_t bytes[3] = {1, 2, 3};
	struct lcp_tensor_view t = view2d(LCP_DTYPE_F8_E4M3, bytes, 1, 3, 1);
	cr_expect_eq(p->ops->compress(p, &t, p->ops->config(p), &payload, &plen, &meta),
		     LCP_ERR_UNSUPPORTED);
}

Test(codec_provider, candidates_are_float_weights)
{
	const struct lcp_provider *p = lcp_provider_cpu();
	enum { N = 8192 };
	float *x = gaussian_f32(N, 11);
	cr_expect(p->ops->is_candidate(p, x, N * 4), "F32 weights");
	uint16_t *h = malloc(N * 2);
	for (size_t i = 0; i < N; i++)
		h[i] = lcp_bf16_from_f32(x[i]);
	cr_expect(p->ops->is_candidate(p, h, N * 2), "BF16 weights");
	for (size_t i = 0; i < N; i++)
		h[i] = lcp_f16_from_f32(x[i]);
	cr_expect(p->ops->is_candidate(p, h, N * 2), "F16 weights");
	cr_expect_not(p->ops->is_candidate(p, x, 1024), "below min_size");
	cr_expect_not(p->ops->is_candidate(p, NULL, 0));
	char *text = malloc(N);
	for (size_t i = 0; i < N; i++)
		text[i] = "the quick brown fox jumps over the lazy dog "[i % 44];
	cr_expect_not(p->ops->is_candidate(p, text, N), "ASCII text");
	uint8_t *noise = (uint8_t *)text;
	rng = 13;
	for (size_t i = 0; i < N; i++) {
		rng ^= rng << 13;
		rng ^= rng >> 7;
		rng ^= rng << 17;
		noise[i] = (uint8_t)rng;
	}
	cr_expect_not(p->ops->is_candidate(p, noise, N), "random bytes");
	free(text);
	free(h);
	free(x);
}
