/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Array versions of the narrowing conversions, for the decoder's output
 * stage. With SSE2 (every x86-64) four values convert at once; each lane
 * computes exactly what the scalar functions in half.h compute (unit tests
 * compare them bit for bit), so output bytes never depend on the path.
 * F16 subnormals use a binary32 addition of 0.5, whose round-to-nearest-even
 * lands on exactly the correctly rounded count of 2^-24 units; this needs
 * the default floating-point environment (no flush-to-zero), as all of the
 * decoder does. The encoder's widening of F16 input uses F16C where the CPU
 * has it (exact for every finite value, as lcp_f16_to_f32 is).
 */
#include "codec/half.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#include <immintrin.h>
#include <pthread.h>
#endif

#ifdef __SSE2__
#include <emmintrin.h>

/* Packs the low 16 bits of four 32-bit lanes (values < 2^16) to 16-bit
 * lanes: sign-extend first so the signed saturating pack keeps the bits. */
static __m128i pack_low16(__m128i a, __m128i b)
{
	a = _mm_srai_epi32(_mm_slli_epi32(a, 16), 16);
	b = _mm_srai_epi32(_mm_slli_epi32(b, 16), 16);
	return _mm_packs_epi32(a, b);
}

static __m128i blend(__m128i mask, __m128i a, __m128i b)
{
	return _mm_or_si128(_mm_and_si128(mask, a), _mm_andnot_si128(mask, b));
}

static __m128i bf16_lanes(__m128 v)
{
	__m128i x = _mm_castps_si128(v);
	__m128i lsb = _mm_and_si128(_mm_srli_epi32(x, 16), _mm_set1_epi32(1));
	__m128i r = _mm_srli_epi32(_mm_add_epi32(_mm_add_epi32(x, _mm_set1_epi32(0x7fff)), lsb), 16);
	__m128i ax = _mm_and_si128(x, _mm_set1_epi32(0x7fffffff));
	__m128i nan = _mm_cmpgt_epi32(ax, _mm_set1_epi32(0x7f800000));
	__m128i q = _mm_or_si128(_mm_srli_epi32(x, 16), _mm_set1_epi32(0x40));
	return blend(nan, q, r);
}

static __m128i f16_lanes(__m128 v)
{
	__m128i x = _mm_castps_si128(v);
	__m128i ax = _mm_and_si128(x, _mm_set1_epi32(0x7fffffff));
	__m128i sign = _mm_and_si128(_mm_srli_epi32(x, 16), _mm_set1_epi32(0x8000));
	/* normal: (ax - (112 << 23) + 0xfff + odd) >> 13 */
	__m128i odd = _mm_and_si128(_mm_srli_epi32(ax, 13), _mm_set1_epi32(1));
	__m128i nrm = _mm_add_epi32(_mm_sub_epi32(ax, _mm_set1_epi32(112 << 23)),
				    _mm_add_epi32(_mm_set1_epi32(0xfff), odd));
	nrm = _mm_srli_epi32(nrm, 13);
	/* subnormal or zero: bits(|x| + 0.5f) - bits(0.5f) */
	__m128i sub = _mm_sub_epi32(
		_mm_castps_si128(_mm_add_ps(_mm_castsi128_ps(ax), _mm_set1_ps(0.5f))),
		_mm_set1_epi32(0x3f000000));
	__m128i is_nrm = _mm_cmpgt_epi32(ax, _mm_set1_epi32(0x38800000 - 1));
	__m128i h = blend(is_nrm, nrm, sub);
	__m128i is_inf = _mm_cmpgt_epi32(ax, _mm_set1_epi32(0x477ff000 - 1));
	h = blend(is_inf, _mm_set1_epi32(0x7c00), h);
	__m128i is_nan = _mm_cmpgt_epi32(ax, _mm_set1_epi32(0x7f800000));
	__m128i q = _mm_or_si128(_mm_set1_epi32(0x7e00),
				 _mm_and_si128(_mm_srli_epi32(ax, 13), _mm_set1_epi32(0x3ff)));
	h = blend(is_nan, q, h);
	return _mm_or_si128(h, sign);
}
#endif

void lcp_f16_from_f32_n(const float *y, uint16_t *h, uint32_t n)
{
	uint32_t i = 0;
#ifdef __SSE2__
	for (; i + 8 <= n; i += 8) {
		__m128i a = f16_lanes(_mm_loadu_ps(y + i));
		__m128i b = f16_lanes(_mm_loadu_ps(y + i + 4));
		_mm_storeu_si128((__m128i *)(void *)(h + i), pack_low16(a, b));
	}
#endif
	for (; i < n; i++)
		h[i] = lcp_f16_from_f32(y[i]);
}

void lcp_bf16_from_f32_n(const float *y, uint16_t *h, uint32_t n)
{
	uint32_t i = 0;
#ifdef __SSE2__
	for (; i + 8 <= n; i += 8) {
		__m128i a = bf16_lanes(_mm_loadu_ps(y + i));
		__m128i b = bf16_lanes(_mm_loadu_ps(y + i + 4));
		_mm_storeu_si128((__m128i *)(void *)(h + i), pack_low16(a, b));
	}
#endif
	for (; i < n; i++)
		h[i] = lcp_bf16_from_f32(y[i]);
}

#if defined(__x86_64__) && defined(__GNUC__)
/* Eight at a time by vcvtph2ps; the exponent bits tell the non-finite ones.
 * The tail (n mod 8) goes through lcp_f16_to_f32. */
__attribute__((target("avx,f16c"))) static bool f16_widen_f16c(const uint8_t *p, uint64_t n,
								 float *x)
{
	const __m128i expo = _mm_set1_epi16(0x7c00);
	__m128i bad = _mm_setzero_si128();
	uint64_t i = 0;
	for (; i + 8 <= n; i += 8) {
		__m128i h = _mm_loadu_si128((const __m128i *)(const void *)(p + 2 * i));
		bad = _mm_or_si128(bad, _mm_cmpeq_epi16(_mm_and_si128(h, expo), expo));
		_mm256_storeu_ps(x + i, _mm256_cvtph_ps(h));
	}
	bool finite = _mm_movemask_epi8(bad) == 0;
	for (; i < n; i++) {
		uint16_t h = (uint16_t)(p[2 * i] | p[2 * i + 1] << 8);
		finite = finite && (h & 0x7c00u) != 0x7c00u;
		x[i] = lcp_f16_to_f32(h);
	}
	return finite;
}

static bool have_f16c;
static pthread_once_t f16c_once = PTHREAD_ONCE_INIT;

static void check_f16c(void)
{
	unsigned a, b, c, d;

	__builtin_cpu_init();
	/* clang's __builtin_cpu_supports knows no "f16c": CPUID leaf 1 says
	 * (ECX bit 29); "avx" also covers the OS saving the YMM state. */
	have_f16c = __builtin_cpu_supports("avx") && __get_cpuid(1, &a, &b, &c, &d) &&
		    (c & bit_F16C) != 0;
}
#endif

bool lcp_f16_to_f32_finite_n(const uint8_t *p, uint64_t n, float *x)
{
#if defined(__x86_64__) && defined(__GNUC__)
	pthread_once(&f16c_once, check_f16c);
	if (have_f16c)
		return f16_widen_f16c(p, n, x);
#endif
	(void)p;
	(void)n;
	(void)x;
	return false;
}

