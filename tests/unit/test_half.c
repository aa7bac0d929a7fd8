/* SPDX-License-Identifier: Apache-2.0 */
/*
 * F16/BF16 conversions against hand-computed bit patterns: ties to even,
 * subnormals, overflow to infinity, NaN kept NaN, and exact widening; the
 * vectorized array forms against the scalar ones.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "codec/half.h"

static float f32(uint32_t u)
{
	float f;
	memcpy(&f, &u, sizeof f);
	return f;
}

static uint32_t bits32(float f)
{
	uint32_t u;
	memcpy(&u, &f, sizeof u);
	return u;
}

Test(half, f16_normal_values_and_ties_to_even)
{
	cr_expect_eq(lcp_f16_from_f32(1.0f), 0x3c00);
	cr_expect_eq(lcp_f16_from_f32(-2.0f), 0xc000);
	cr_expect_eq(lcp_f16_from_f32(0.0f), 0x0000);
	cr_expect_eq(lcp_f16_from_f32(-0.0f), 0x8000);
	/* 1 + 2^-11 is halfway between 0x3c00 and 0x3c01: even is 0x3c00. */
	cr_expect_eq(lcp_f16_from_f32(f32(0x3f801000)), 0x3c00);
	/* 1 + 3*2^-11 is halfway between 0x3c01 and 0x3c02: even is 0x3c02. */
	cr_expect_eq(lcp_f16_from_f32(f32(0x3f803000)), 0x3c02);
	/* Just above the first halfway point rounds up. */
	cr_expect_eq(lcp_f16_from_f32(f32(0x3f801001)), 0x3c01);
	/* 0.1f = 0x3dcccccd -> 0x2e66 (0.0999755859375). */
	cr_expect_eq(lcp_f16_from_f32(0.1f), 0x2e66);
	/* A mantissa carry into the exponent: 2 - 2^-12 rounds to 2.0. */
	cr_expect_eq(lcp_f16_from_f32(f32(0x3ffff000)), 0x4000);
}

Test(half, f16_overflow_goes_to_inf)
{
	cr_expect_eq(lcp_f16_from_f32(65504.0f), 0x7bff);
	/* 65520 is halfway between 65504 (odd) and 65536: ties up to inf. */
	cr_expect_eq(lcp_f16_from_f32(65520.0f), 0x7c00);
	cr_expect_eq(lcp_f16_from_f32(f32(0x477fefff)), 0x7bff);
	cr_expect_eq(lcp_f16_from_f32(1e10f), 0x7c00);
	cr_expect_eq(lcp_f16_from_f32(-1e10f), 0xfc00);
	cr_expect_eq(lcp_f16_from_f32(INFINITY), 0x7c00);
	cr_expect_eq(lcp_f16_from_f32(-INFINITY), 0xfc00);
}

Test(half, f16_subnormals)
{
	cr_expect_eq(lcp_f16_from_f32(ldexpf(1.0f, -24)), 0x0001);
	cr_expect_eq(lcp_f16_from_f32(ldexpf(1023.0f, -24)), 0x03ff);
	cr_expect_eq(lcp_f16_from_f32(ldexpf(1.0f, -14)), 0x0400);
	/* 2^-25 is halfway between 0 and 2^-24: ties to even gives 0. */
	cr_expect_eq(lcp_f16_from_f32(ldexpf(1.0f, -25)), 0x0000);
	cr_expect_eq(lcp_f16_from_f32(f32(0x33000001)), 0x0001);
	/* 1.5 * 2^-24 is halfway between 1 and 2 units: even is 2. */
	cr_expect_eq(lcp_f16_from_f32(ldexpf(3.0f, -25)), 0x0002);
	/* 2.5 * 2^-24: halfway between 2 and 3 units: even is 2. */
	cr_expect_eq(lcp_f16_from_f32(ldexpf(5.0f, -25)), 0x0002);
	/* Largest subnormal plus half a unit rounds up to the smallest normal. */
	cr_expect_eq(lcp_f16_from_f32(ldexpf(2047.0f, -25)), 0x0400);
	cr_expect_eq(lcp_f16_from_f32(-ldexpf(1.0f, -24)), 0x8001);
	/* binary32 subnormals are far below half's range. */
	cr_expect_eq(lcp_f16_from_f32(f32(0x00000001)), 0x0000);
}

Test(half, f16_nan_stays_nan)
{
	uint16_t q = lcp_f16_from_f32(f32(0x7fc00000));
	cr_expect_eq(q, 0x7e00);
	/* A signalling NaN whose payload lives only in low bits must not turn into inf. */
	uint16_t s = lcp_f16_from_f32(f32(0x7f800001));
	cr_expect_eq(s & 0x7c00, 0x7c00);
	cr_expect_neq(s & 0x03ff, 0);
	cr_expect_eq(lcp_f16_from_f32(f32(0xffc00000)), 0xfe00);
}

Test(half, f16_widening)
{
	cr_expect_eq(bits32(lcp_f16_to_f32(0x3c00)), 0x3f800000u);
	cr_expect_eq(lcp_f16_to_f32(0x0001), ldexpf(1.0f, -24));
	cr_expect_eq(lcp_f16_to_f32(0x03ff), ldexpf(1023.0f, -24));
	cr_expect_eq(lcp_f16_to_f32(0x7bff), 65504.0f);
	cr_expect_eq(bits32(lcp_f16_to_f32(0x8000)), 0x80000000u);
	cr_expect(isinf(lcp_f16_to_f32(0xfc00)) && lcp_f16_to_f32(0xfc00) < 0);
	cr_expect(isnan(lcp_f16_to_f32(0x7e00)));
}

Test(half, f16_every_pattern_round_trips)
{
	for (uint32_t h = 0; h < 0x10000u; h++) {
		float f = lcp_f16_to_f32((uint16_t)h);
		if (isnan(f))
			cr_assert(isnan(lcp_f16_to_f32(lcp_f16_from_f32(f))), "0x%04x", h);
		else
			cr_assert_eq(lcp_f16_from_f32(f), h, "0x%04x", h);
	}
}

Test(half, bf16_rounding)
{
	cr_expect_eq(lcp_bf16_from_f32(1.0f), 0x3f80);
	/* 1 + 2^-8: halfway between 0x3f80 and 0x3f81, even is 0x3f80. */
	cr_expect_eq(lcp_bf16_from_f32(f32(0x3f808000)), 0x3f80);
	/* 1 + 3*2^-8: halfway between 0x3f81 and 0x3f82, even is 0x3f82. */
	cr_expect_eq(lcp_bf16_from_f32(f32(0x3f818000)), 0x3f82);
	cr_expect_eq(lcp_bf16_from_f32(f32(0x3f808001)), 0x3f81);
	/* FLT_MAX is above the midpoint between bf16's max and 2^128: inf. */
	cr_expect_eq(lcp_bf16_from_f32(f32(0x7f7fffff)), 0x7f80);
	cr_expect_eq(lcp_bf16_from_f32(f32(0xff7fffff)), 0xff80);
	cr_expect_eq(lcp_bf16_from_f32(f32(0x7f7f7fff)), 0x7f7f);
	/* Subnormals: ties to even, exactly as for normals. */
	cr_expect_eq(lcp_bf16_from_f32(f32(0x00008000)), 0x0000);
	cr_expect_eq(lcp_bf16_from_f32(f32(0x00018000)), 0x0002);
	cr_expect_eq(lcp_bf16_from_f32(f32(0x00010000)), 0x0001);
	cr_expect_eq(lcp_bf16_from_f32(INFINITY), 0x7f80);
}

Test(half, bf16_nan_and_widening)
{
	uint16_t s = lcp_bf16_from_f32(f32(0x7f800001)); /* payload only in dropped bits */
	cr_expect_eq(s & 0x7f80, 0x7f80);
	cr_expect_neq(s & 0x007f, 0);
	cr_expect_eq(lcp_bf16_from_f32(f32(0xffc00000)), 0xffc0);
	cr_expect_eq(bits32(lcp_bf16_to_f32(0x3f82)), 0x3f820000u);
	cr_expect(isnan(lcp_bf16_to_f32(0x7fc0)));
	for (uint32_t h = 0; h < 0x10000u; h++) {
		float f = lcp_bf16_to_f32((uint16_t)h);
		if (!isnan(f))
			cr_assert_eq(lcp_bf16_from_f32(f), h, "0x%04x", h);
	}
}

/* Bit patterns around every rounding boundary of both formats, for every
 * exponent and both signs, plus NaN payloads and pseudo-random patterns. */
static uint32_t sample_pattern(uint32_t k, uint64_t *rng)
{
	static const uint32_t mant[] = {0x000000, 0x000001, 0x000fff, 0x001000, 0x001001, 0x002000,
					0x003000, 0x007fff, 0x008000, 0x008001, 0x018000, 0x3fffff,
					0x400000, 0x7fefff, 0x7ff000, 0x7fffff};
	uint32_t nm = sizeof mant / sizeof mant[0];
	if (k < 512 * nm) {
		uint32_t e = (k / nm) % 256, s = k / (nm * 256);
		return s << 31 | e << 23 | mant[k % nm];
	}
	*rng ^= *rng << 13;
	*rng ^= *rng >> 7;
	*rng ^= *rng << 17;
	return (uint32_t)*rng;
}

Test(half, array_forms_match_scalar_bit_for_bit)
{
	enum { N = 1 << 20 };
	float *y = malloc(N * sizeof *y);
	uint16_t *h = malloc(N * sizeof *h), *b = malloc(N * sizeof *b);
	cr_assert(y && h && b);
	uint64_t rng = 12345;
	for (uint32_t k = 0; k < N; k++)
		y[k] = f32(sample_pattern(k, &rng));
	/* An odd length so the scalar tail runs too. */
	lcp_f16_from_f32_n(y, h, N - 3);
	lcp_bf16_from_f32_n(y, b, N - 3);
	for (uint32_t k = 0; k < N - 3; k++) {
		cr_assert_eq(h[k], lcp_f16_from_f32(y[k]), "f16 of 0x%08x", bits32(y[k]));
		cr_assert_eq(b[k], lcp_bf16_from_f32(y[k]), "bf16 of 0x%08x", bits32(y[k]));
	}
	free(y);
	free(h);
	free(b);
}

/* The encoder's F16 widening: every finite pattern (8 at a time and in the
 * tail) exactly as lcp_f16_to_f32 gives it, and false for an infinity or a
 * NaN in either part. Without F16C it always answers false (the caller
 * then widens with lcp_f16_to_f32). */
Test(half, f16_widening_of_arrays)
{
	enum { MAXN = 65536 + 3 };
	uint8_t *p = malloc(2 * MAXN);
	float *x = malloc(MAXN * sizeof *x);
	uint32_t n = 0;
	for (uint32_t h = 0; h < 65536; h++)
		if ((h & 0x7c00u) != 0x7c00u) {
			p[2 * n] = (uint8_t)h;
			p[2 * n + 1] = (uint8_t)(h >> 8);
			n++;
		}
	cr_assert_eq(n % 8, 0);
	for (uint32_t k = 0; k < 3; k++) { /* a tail of 3 finite values */
		p[2 * n] = (uint8_t)(0x3c01 + k);
		p[2 * n + 1] = (uint8_t)((0x3c01 + k) >> 8);
		n++;
	}
	bool fast = false;
#if defined(__x86_64__) && defined(__GNUC__)
	__builtin_cpu_init();
	fast = __builtin_cpu_supports("avx") && __builtin_cpu_supports("f16c");
#endif
	cr_assert_eq(lcp_f16_to_f32_finite_n(p, n, x), fast);
	for (uint32_t i = 0; fast && i < n; i++) {
		uint16_t h = (uint16_t)(p[2 * i] | p[2 * i + 1] << 8);
		float want = lcp_f16_to_f32(h);
		cr_assert(memcmp(&x[i], &want, sizeof want) == 0, "pattern 0x%04x", h);
	}
	/* an infinity among the first eight, then a NaN in the tail */
	p[2 * 5 + 1] = 0x7c;
	p[2 * 5] = 0x00;
	cr_assert_not(lcp_f16_to_f32_finite_n(p, n, x));
	p[2 * 5 + 1] = 0x00;
	p[2 * (n - 1) + 1] = 0xfe;
	cr_assert_not(lcp_f16_to_f32_finite_n(p, n, x));
	cr_assert_eq(lcp_f16_to_f32_finite_n(p, n - 1, x), fast);
	free(p);
	free(x);
}
