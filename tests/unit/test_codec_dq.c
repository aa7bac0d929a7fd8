/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Dependent quantization (quant.h): the state machine against a table
 * written out here, the trellis search against brute force on short
 * chains, the error it reports against a decode done here, its gain over
 * plain rounding at equal rate on Gaussian weights, zero steps and
 * saturation, determinism, and every form of the search (plain C, SSE2,
 * AVX2, AVX-512) against the plain C one on random values, exact ties,
 * special steps and real weights.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/kernels.h"
#include "codec/quant.h"
#include "test_codec_helpers.h"

/* The transition table of the format (man/lcpfs.5), independent of
 * quant.h's. */
static const unsigned next_state[4][2] = {{0, 2}, {2, 0}, {1, 3}, {3, 1}};

/* The reconstruction of codes[0, n) of a block (group half-steps per
 * element in d), walking the 16 chains here. */
static void decode_here(const uint8_t *codes, uint32_t n, const float *d, float *y)
{
	unsigned st[16] = {0};
	for (uint32_t i = 0; i < n; i++) {
		unsigned *s = &st[i % 16];
		int k = (int)codes[i] - 128, cls = *s >= 2;
		int level = 2 * k - (cls ? (k > 0) - (k < 0) : 0);
		y[i] = d[i] * (float)level;
		*s = next_state[*s][(unsigned)k & 1u];
	}
}

static void *work_for(uint32_t n)
{
	void *w = aligned_alloc(16, (lcp_quant_dq_work_bytes(n) + 15) / 16 * 16);
	cr_assert_not_null(w);
	return w;
}

Test(codec_dq, state_machine_matches_the_format_table)
{
	for (unsigned s = 0; s < 4; s++)
		for (unsigned p = 0; p < 2; p++)
			cr_expect_eq(lcp_dq_next(s, p), next_state[s][p], "state %u parity %u", s, p);
	/* Levels: class 0 even multiples, class 1 zero and odd ones. */
	cr_expect_eq(lcp_dq_level(128, 0), 0);
	cr_expect_eq(lcp_dq_level(128, 1), 0);
	cr_expect_eq(lcp_dq_level(131, 0), 6);
	cr_expect_eq(lcp_dq_level(131, 1), 5);
	cr_expect_eq(lcp_dq_level(126, 1), -3);
	cr_expect_eq(lcp_dq_level(255, 1), 253);
	cr_expect_eq(lcp_dq_level(0, 0), -256);
}

/* Smallest squared error of any code sequence for one chain of len values
 * (all with half-step 1), codes k in [-kmax, kmax], by enumeration. */
static double brute_force_chain(const float *x, unsigned len, int kmax)
{
	int k[8];
	unsigned span = 2u * (unsigned)kmax + 1, total = 1;
	for (unsigned i = 0; i < len; i++)
		total *= span;
	double best = INFINITY;
	for (unsigned code = 0; code < total; code++) {
		unsigned c = code, s = 0;
		double e = 0.0;
		for (unsigned i = 0; i < len; i++) {
			k[i] = (int)(c % span) - kmax;
			c /= span;
			int level = 2 * k[i] - (s >= 2 ? (k[i] > 0) - (k[i] < 0) : 0);
			double d = (double)x[i] - level;
			e += d * d;
			s = next_state[s][(unsigned)k[i] & 1u];
		}
		best = e < best ? e : best;
	}
	return best;
}

/* The trellis finds the least error over all code sequences: chains of 4
 * or 5 values within +-6 half-steps (codes beyond +-4 never help there);
 * the last step is partial, so both the 4-chain SIMD steps and the scalar
 * steps of the tail are checked. */
Test(codec_dq, trellis_finds_the_least_error_of_every_chain)
{
	enum { LEN = 5, N = 16 * LEN - 7 };
	float x[N], one = 1.0f, y[N], d[N];
	uint8_t codes[N];
	void *work = work_for(N);
	rng_state = 41;
	for (int trial = 0; trial < 6; trial++) {
		for (unsigned i = 0; i < N; i++) {
			x[i] = (float)(12.0 * uniform01() - 6.0);
			d[i] = 1.0f;
		}
		float err = lcp_quant_dq_block(x, N, &one, N, 0, codes, work);
		decode_here(codes, N, d, y);
		double total = 0.0, want = 0.0;
		for (unsigned l = 0; l < 16; l++) {
			float chain[LEN];
			unsigned len = 0;
			for (unsigned i = l; i < N; i += 16) {
				chain[len++] = x[i];
				double e = (double)x[i] - y[i];
				total += e * e;
			}
			want += brute_force_chain(chain, len, 4);
		}
		/* float accumulation in the search; the optimum is unique */
		cr_expect(fabs(total - want) <= 1e-4 * want, "trial %d: %g, best %g", trial, total, want);
		cr_expect(fabsf(err - (float)total) <= 1e-4f * (float)total, "reported %g, real %g",
			  (double)err, total);
	}
	free(work);
}

/* Order-0 entropy of n bytes, in bits. */
static double entropy_bits(const uint8_t *c, uint32_t n)
{
	double h[256] = {0}, bits = 0.0;
	for (uint32_t i = 0; i < n; i++)
		h[c[i]]++;
	for (int s = 0; s < 256; s++)
		if (h[s] > 0)
			bits -= h[s] * log2(h[s] / n);
	return bits;
}

/* Squared error of plain rounding of x[0, n) to a grid of step f * 2 d[i],
 * and the order-0 entropy of its codes in *bits (bits per value). */
static double plain_rounding(const float *x, const float *d, uint32_t n, double f, uint8_t *codes,
			     double *bits)
{
	double e2 = 0.0;
	for (uint32_t i = 0; i < n; i++) {
		double step = f * 2.0 * d[i];
		long q = lrint(x[i] / step);
		codes[i] = (uint8_t)(128 + q);
		double e = x[i] - step * (double)q;
		e2 += e * e;
	}
	*bits = entropy_bits(codes, n) / n;
	return e2;
}

/* On Gaussian values the trellis beats plain rounding at equal rate (the
 * rounding's step is shrunk until its codes' entropy reaches the
 * trellis's) by more than the 0.6 dB asserted (4-state trellis-coded
 * quantization gains ~1 dB at these rates); several groups with different
 * steps and a partial last group. */
Test(codec_dq, beats_plain_rounding_at_equal_rate)
{
	enum { N = 16384, G = 64 };
	static float x[N], d[N], y[N], deltas[N / G + 1];
	static uint8_t codes[N], plain[N];
	void *work = work_for(N);
	rng_state = 42;
	for (uint32_t g = 0; g <= N / G; g++)
		deltas[g] = (float)(0.004 * (1.0 + uniform01()));
	double e_dq = 0.0;
	uint32_t n = N - 37, phase = 5;
	for (uint32_t i = 0; i < n; i++) {
		x[i] = (float)(0.02 * normal());
		d[i] = deltas[(phase + i) / G];
	}
	float err = lcp_quant_dq_block(x, n, deltas, G, phase, codes, work);
	decode_here(codes, n, d, y);
	for (uint32_t i = 0; i < n; i++)
		e_dq += ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
	cr_expect(fabs(err - e_dq) <= 1e-3 * e_dq, "reported %g, real %g", (double)err, e_dq);
	double h_dq = entropy_bits(codes, n) / n, h = 0.0, f = 1.0, e_plain = 0.0;
	for (; f > 0.5; f -= 0.002) {
		e_plain = plain_rounding(x, d, n, f, plain, &h);
		if (h >= h_dq)
			break;
	}
	double gain_db = 10.0 * log10(e_plain / e_dq);
	cr_expect_gt(gain_db, 0.6, "gain %.2f dB at %.3f bits (step factor %.3f)", gain_db, h_dq, f);
	/* Deterministic. */
	static uint8_t again[N];
	lcp_quant_dq_block(x, n, deltas, G, phase, again, work);
	cr_expect_arr_eq(again, codes, n);
	free(work);
}

/* A zero half-step gives code 128 whatever the values; values far past the
 * grid saturate at +-127 instead of wrapping. */
Test(codec_dq, zero_steps_and_saturation)
{
	enum { N = 100 };
	float x[N], deltas[2] = {0.0f, 1e-3f};
	uint8_t codes[N];
	void *work = work_for(N);
	for (unsigned i = 0; i < N; i++)
		x[i] = i < 50 ? 0.5f * (float)((int)i - 25) : (i % 2 ? 1e3f : -1e3f);
	lcp_quant_dq_block(x, N, deltas, 50, 0, codes, work);
	for (unsigned i = 0; i < 50; i++)
		cr_expect_eq(codes[i], 128, "element %u", i);
	for (unsigned i = 50; i < N; i++) {
		cr_expect(codes[i] >= 1 && codes[i] <= 255, "element %u: %u", i, codes[i]);
		cr_expect(i % 2 ? codes[i] >= 128 + 124 : codes[i] <= 128 - 124, "element %u: %u", i,
			  codes[i]);
	}
	free(work);
}

/* Every set's class walk against one done here, from block starts, on
 * codes of every parity pattern and lengths that end mid-step. */
Test(codec_dq, class_walks_match_the_state_machine)
{
	static const char *const sets[] = {"ref", "baseline", "avx2", "avx512", "avx512bf16"};
	enum { N = 1000 };
	uint8_t codes[N], want[N], got[N];
	rng_state = 43;
	for (unsigned i = 0; i < N; i++)
		codes[i] = (uint8_t)rnd();
	unsigned st[16] = {0};
	for (unsigned i = 0; i < N; i++) {
		want[i] = (uint8_t)(st[i % 16] >> 1);
		st[i % 16] = next_state[st[i % 16]][codes[i] & 1u];
	}
	static const uint32_t lengths[] = {1, 15, 16, 17, 31, 256, 999, 1000};
	for (size_t s = 0; s < sizeof sets / sizeof sets[0]; s++) {
		const struct lcp_kernels *k = lcp_kernels_named(sets[s]);
		if (!k)
			continue;
		for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++) {
			memset(got, 0x77, sizeof got);
			k->dq_classes(codes, lengths[li], got);
			cr_assert_arr_eq(got, want, lengths[li], "%s, n %u", sets[s], lengths[li]);
			if (lengths[li] < N)
				cr_assert_eq(got[lengths[li]], 0x77, "%s wrote past n", sets[s]);
		}
	}
	/* Continuing from states mid-block gives the same classes. */
	uint32_t q = 0, s0 = 0;
	lcp_dq_classes_continue(codes, 48, &q, &s0, got);
	lcp_dq_classes_continue(codes + 48, N - 48, &q, &s0, got + 48);
	cr_assert_arr_eq(got, want, N);
}

/* One block through every search form this machine has, against the plain
 * C form: the same codes and the same error, bit for bit. */
static void check_forms(const float *x, uint32_t n, const float *delta, uint32_t group,
			uint32_t phase, const char *what)
{
	uint8_t *want = malloc(n + 1), *got = malloc(n + 1);
	void *work = work_for(n);
	float want_err = lcp_quant_dq_block_with(LCP_DQ_SEARCH_SCALAR, x, n, delta, group, phase,
						 want, work);
	for (int f = LCP_DQ_SEARCH_SSE2; f <= LCP_DQ_SEARCH_AVX512; f++) {
		enum lcp_dq_search form = (enum lcp_dq_search)f;
		const char *name = lcp_quant_dq_search_name(form);
		if (!lcp_quant_dq_search_available(form))
			continue;
		memset(got, 0x77, n + 1);
		float err = lcp_quant_dq_block_with(form, x, n, delta, group, phase, got, work);
		cr_assert_arr_eq(got, want, n, "%s: %s, n %u", what, name, n);
		cr_assert_eq(got[n], 0x77, "%s: %s wrote past n", what, name);
		cr_assert(memcmp(&err, &want_err, sizeof err) == 0, "%s: %s error %a, plain C %a", what,
			  name, (double)err, (double)want_err);
	}
	free(want);
	free(got);
	free(work);
}

/* Half-steps as the codec takes them: coef times each group's RMS. */
static void steps_of(const float *x, uint32_t n, uint32_t group, uint32_t phase, float coef,
		     float *delta)
{
	for (uint32_t i = 0, g = 0, len = group - phase; i < n; i += len, g++, len = group) {
		len = n - i < len ? n - i : len;
		double s = 0.0;
		for (uint32_t j = 0; j < len; j++)
			s += (double)x[i + j] * x[i + j];
		delta[g] = coef * (float)sqrt(s / len);
	}
}

Test(codec_dq, every_search_form_gives_the_same_codes)
{
	enum { N = 16384 };
	static float x[N], delta[N];
	static const uint32_t lengths[] = {N, N - 5, 1000, 17, 16, 15, 1};
	static const uint32_t groups[][2] = {{64, 0}, {100, 37}, {16, 5}};
	char what[96];
	rng_state = 44;
	for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++)
		for (size_t gi = 0; gi < sizeof groups / sizeof groups[0]; gi++) {
			uint32_t n = lengths[li], G = groups[gi][0], ph = groups[gi][1];
			/* Gaussian values, the codec's step rule */
			for (uint32_t i = 0; i < n; i++)
				x[i] = (float)(normal() * 0.02);
			steps_of(x, n, G, ph, 0.14f, delta);
			snprintf(what, sizeof what, "gaussian, group %u", G);
			check_forms(x, n, delta, G, ph, what);
			/* exact ties: multiples of D / 2 with D a power of two, so
			 * candidates and whole paths cost the same */
			for (uint32_t i = 0; i < n; i++)
				x[i] = 0.125f * (float)((int)(rnd() % 81) - 40);
			for (uint32_t g = 0; g <= n / G + 1; g++)
				delta[g] = 0.25f;
			snprintf(what, sizeof what, "ties, group %u", G);
			check_forms(x, n, delta, G, ph, what);
			/* special steps: zero, subnormal (1 / D is infinite: NaN
			 * and infinite lanes), tiny, huge values past the grid */
			for (uint32_t i = 0; i < n; i++)
				x[i] = i % 7 == 0 ? 0.0f : i % 5 == 0 ? (float)(normal() * 1e4) : (float)normal();
			for (uint32_t g = 0; g <= n / G + 1; g++)
				delta[g] = g % 4 == 0 ? 0.0f : g % 4 == 1 ? 1e-45f : g % 4 == 2 ? 1e-30f : 0.1f;
			snprintf(what, sizeof what, "special steps, group %u", G);
			check_forms(x, n, delta, G, ph, what);
		}
	/* real weights: stories260K's tensors back to back, block by block */
	FILE *f = fopen("tests/data/llama2c-stories260K.safetensors", "rb");
	cr_assert_not_null(f);
	uint8_t hdr[8];
	cr_assert_eq(fread(hdr, 1, 8, f), 8u);
	uint64_t hlen = 0;
	for (int i = 7; i >= 0; i--)
		hlen = hlen << 8 | hdr[i];
	cr_assert_eq(fseek(f, (long)(8 + hlen), SEEK_SET), 0);
	unsigned blocks = 0;
	while (fread(x, sizeof *x, N, f) == N) {
		for (uint32_t i = 0; i < N; i++)
			if (!isfinite(x[i]))
				x[i] = 0.0f;
		steps_of(x, N, 64, 0, 0.14f, delta);
		snprintf(what, sizeof what, "stories260K block %u", blocks);
		check_forms(x, N, delta, 64, 0, what);
		blocks++;
	}
	fclose(f);
	cr_assert_geq(blocks, 10u);
}

/* LCPFS_DQ_SEARCH's names: each form by its name where the CPU has it, an
 * unknown name none, the automatic choice an available form. */
Test(codec_dq, search_forms_by_name)
{
	cr_assert_eq(lcp_quant_dq_search_named("scalar"), LCP_DQ_SEARCH_SCALAR);
	cr_assert_eq(lcp_quant_dq_search_named("no-such-form"), LCP_DQ_SEARCH_NONE);
	cr_assert_eq(lcp_quant_dq_search_named(NULL), LCP_DQ_SEARCH_NONE);
	for (int f = LCP_DQ_SEARCH_SCALAR; f <= LCP_DQ_SEARCH_AVX512; f++) {
		enum lcp_dq_search form = (enum lcp_dq_search)f;
		cr_assert_eq(lcp_quant_dq_search_named(lcp_quant_dq_search_name(form)),
			     lcp_quant_dq_search_available(form) ? form : LCP_DQ_SEARCH_NONE);
	}
	cr_assert(lcp_quant_dq_search_available(lcp_quant_dq_search()));
}
