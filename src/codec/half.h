/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Conversions between binary32 and the 16-bit float formats (IEEE binary16
 * "F16" and bfloat16 "BF16"). Narrowing rounds to nearest, ties to even,
 * including into and out of the subnormal range; values too large become
 * infinity of the same sign; NaN stays NaN (quiet, sign and top payload bits
 * kept). Widening is exact. Pure functions of their argument: the same bits
 * on every machine, so reconstructions that go through them are reproducible.
 */
#ifndef LCPFS_CODEC_HALF_H
#define LCPFS_CODEC_HALF_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* Inline so the decoder's per-element conversion loops can be if-converted
 * and unrolled; integer manipulation of the bit patterns, so the result never
 * depends on the host's FPU modes or on compiler support for _Float16. */

static inline uint32_t lcp_half_f32_bits(float f)
{
	uint32_t u;
	memcpy(&u, &f, sizeof u);
	return u;
}

static inline float lcp_half_f32_from_bits(uint32_t u)
{
	float f;
	memcpy(&f, &u, sizeof f);
	return f;
}

static inline uint16_t lcp_f16_from_f32(float f)
{
	uint32_t x = lcp_half_f32_bits(f);
	uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
	x &= 0x7fffffffu;
	if (x > 0x7f800000u) /* NaN: force the quiet bit so the payload never becomes inf */
		return (uint16_t)(sign | 0x7e00u | ((x >> 13) & 0x3ffu));
	/* 65520 is halfway between 65504 (odd mantissa) and 2^16: ties go up to inf. */
	if (x >= 0x477ff000u)
		return (uint16_t)(sign | 0x7c00u);
	if (x >= 0x38800000u) { /* normal half (>= 2^-14) */
		uint32_t h = ((x >> 23) - 112u) << 10 | ((x >> 13) & 0x3ffu);
		uint32_t rest = x & 0x1fffu;
		if (rest > 0x1000u || (rest == 0x1000u && (h & 1u)))
			h++; /* a carry into the exponent is the correct result */
		return (uint16_t)(sign | h);
	}
	/* 2^-25 is halfway between 0 and the smallest subnormal: ties to even (0). */
	if (x <= 0x33000000u)
		return sign;
	/* Subnormal half: units of 2^-24. value = mant * 2^(e - 150). */
	uint32_t mant = (x & 0x7fffffu) | 0x800000u;
	uint32_t shift = 126u - (x >> 23); /* 14..24 */
	uint32_t h = mant >> shift;
	uint32_t rest = mant & ((1u << shift) - 1u);
	uint32_t half = 1u << (shift - 1u);
	if (rest > half || (rest == half && (h & 1u)))
		h++; /* may become 0x400, the smallest normal: correct */
	return (uint16_t)(sign | h);
}

static inline float lcp_f16_to_f32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
	uint32_t e = (h >> 10) & 0x1fu;
	uint32_t m = h & 0x3ffu;
	if (e == 0x1fu)
		return lcp_half_f32_from_bits(sign | 0x7f800000u | m << 13);
	if (e != 0)
		return lcp_half_f32_from_bits(sign | (e + 112u) << 23 | m << 13);
	if (m == 0)
		return lcp_half_f32_from_bits(sign);
	/* Subnormal half: normalize into a binary32 normal. */
	uint32_t exp = 113u;
	while (!(m & 0x400u)) {
		m <<= 1;
		exp--;
	}
	return lcp_half_f32_from_bits(sign | exp << 23 | (m & 0x3ffu) << 13);
}

static inline uint16_t lcp_bf16_from_f32(float f)
{
	uint32_t x = lcp_half_f32_bits(f);
	/* Adding 0x7fff plus the kept LSB rounds to nearest even; overflow
	 * carries into the exponent and yields inf, which is correct. NaN
	 * keeps its top bits with the quiet bit forced (a select, not a
	 * branch: this runs once per decoded element). */
	uint32_t r = (x + 0x7fffu + ((x >> 16) & 1u)) >> 16;
	uint32_t nan = (x >> 16) | 0x0040u;
	return (uint16_t)((x & 0x7fffffffu) > 0x7f800000u ? nan : r);
}

static inline float lcp_bf16_to_f32(uint16_t h)
{
	return lcp_half_f32_from_bits((uint32_t)h << 16);
}

/* Array forms for the decoder: h[i] = lcp_f16_from_f32(y[i]) (resp. bf16),
 * bit for bit, vectorized where the target allows. */
void lcp_f16_from_f32_n(const float *y, uint16_t *h, uint32_t n);
void lcp_bf16_from_f32_n(const float *y, uint16_t *h, uint32_t n);

/* For the encoder's input: the n little-endian F16 values at p widened into
 * x, each as lcp_f16_to_f32 gives it, by F16C where the CPU has it; true
 * when all are finite. On false (a NaN or an infinity, or no F16C) x holds
 * nothing reliable: widen with lcp_f16_to_f32, which keeps NaN payloads
 * bit for bit (F16C quiets signaling NaNs). Thread-safe. */
bool lcp_f16_to_f32_finite_n(const uint8_t *p, uint64_t n, float *x);

#endif
