/* SPDX-License-Identifier: Apache-2.0 */
/*
 * AVX2 and AVX-512 forms of dependent quantization's Viterbi search
 * (quant_dq.h), compiled for any x86-64 through function target attributes
 * and run only where the CPU has them (quant.c). The 16 chains of a block
 * are the lanes: one AVX-512 register, or two AVX2 halves, per quantity, so
 * the states' costs stay in registers from step to step. Lane by lane
 * every operation is dq_step1's (quant.c) in its order: the same
 * multiplies, adds and compares in binary32 (no contraction), min and max
 * with the same operand order (which decides NaN lanes), the same
 * saturating narrowing of the candidate codes; so the decisions, and with
 * them the codes, are the scalar search's, ties included.
 */
#include "codec/quant_dq.h"

#ifdef LCP_HAVE_DQ_X86

#include <immintrin.h>
#include <math.h>

#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl")))
#define AVX2 __attribute__((target("avx2")))

/* quant.c's dq_pred, indexed by state * 2 + decision bit. */
static const int32_t pred_by_bit[16] = {0, 3, 4, 7, 1, 2, 5, 6};

/* Round to nearest even as quant.c's round_even: (t + 1.5 * 2^23) - 1.5 * 2^23. */
#define ROUND_MAGIC 12582912.0f

AVX512 static inline __m512 round_even16(__m512 t)
{
	const __m512 magic = _mm512_set1_ps(ROUND_MAGIC);
	return _mm512_sub_ps(_mm512_add_ps(t, magic), magic);
}

AVX512 void lcp_dq_forward_avx512(const float *x, const float *dl, const float *il, uint32_t steps,
				  lcp_dq_costs c, uint8_t *dec, int8_t *cand)
{
	const __m512 vmax = _mm512_set1_ps(DQ_MAX_V), vmin = _mm512_set1_ps(-DQ_MAX_V);
	const __m512 zero = _mm512_setzero_ps(), quarter = _mm512_set1_ps(0.25f);
	const __m512 half = _mm512_set1_ps(0.5f), four = _mm512_set1_ps(4.0f);
	const __m512 one = _mm512_set1_ps(1.0f), two = _mm512_set1_ps(2.0f);
	const __m512 inf = _mm512_set1_ps(INFINITY), one_half = _mm512_set1_ps(1.5f);
	const __m512i abs_mask = _mm512_set1_epi32(0x7fffffff);
	__m512 c0 = _mm512_loadu_ps(c[0]), c1 = _mm512_loadu_ps(c[1]);
	__m512 c2 = _mm512_loadu_ps(c[2]), c3 = _mm512_loadu_ps(c[3]);
	for (uint32_t t = 0; t < steps; t++) {
		size_t i = (size_t)t * LCP_DQ_CHAINS;
		__m512 vx = _mm512_loadu_ps(x + i), vd = _mm512_loadu_ps(dl + i);
		__m512 v = _mm512_mul_ps(vx, _mm512_loadu_ps(il + i));
		v = _mm512_max_ps(_mm512_min_ps(v, vmax), vmin);
		__mmask16 neg = _mm512_cmp_ps_mask(v, zero, _CMP_LT_OS);
		__m512 a = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(v), abs_mask));
		__m512 sd = _mm512_mask_sub_ps(vd, neg, zero, vd); /* 0 - D where v < 0 */
		__m512 m[4], e[4];
		m[0] = _mm512_mul_ps(four, round_even16(_mm512_mul_ps(a, quarter)));
		m[1] = _mm512_add_ps(_mm512_mul_ps(four, round_even16(_mm512_mul_ps(_mm512_sub_ps(a, two), quarter))), two);
		m[2] = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(a, one_half, _CMP_NLT_US),
					   _mm512_sub_ps(_mm512_mul_ps(four, round_even16(_mm512_mul_ps(_mm512_add_ps(a, one), quarter))), one));
		m[3] = _mm512_add_ps(_mm512_mul_ps(four, round_even16(_mm512_mul_ps(_mm512_sub_ps(a, one), quarter))), one);
		for (unsigned j = 0; j < 4; j++) {
			__m512 r = _mm512_sub_ps(vx, _mm512_mul_ps(sd, m[j]));
			e[j] = _mm512_mul_ps(r, r);
			__m512i code = _mm512_cvttps_epi32(_mm512_mul_ps(j >> 1 ? _mm512_add_ps(m[j], one) : m[j], half));
			code = _mm512_mask_sub_epi32(code, neg, _mm512_setzero_si512(), code);
			_mm_storeu_si128((__m128i *)(void *)(cand + 4 * i + 16 * j), _mm512_cvtsepi32_epi8(code));
		}
		/* a zero step: code 0 (even) only */
		__mmask16 pos_step = _mm512_cmp_ps_mask(vd, zero, _CMP_GT_OS);
		e[1] = _mm512_mask_mov_ps(inf, pos_step, e[1]);
		e[3] = _mm512_mask_mov_ps(inf, pos_step, e[3]);
		__m512 a0 = _mm512_add_ps(c0, e[0]), b0 = _mm512_add_ps(c1, e[1]);
		__m512 a2 = _mm512_add_ps(c0, e[1]), b2 = _mm512_add_ps(c1, e[0]);
		__m512 a1 = _mm512_add_ps(c2, e[2]), b1 = _mm512_add_ps(c3, e[3]);
		__m512 a3 = _mm512_add_ps(c2, e[3]), b3 = _mm512_add_ps(c3, e[2]);
		__m128i bits = _mm_maskz_mov_epi8(_mm512_cmp_ps_mask(b0, a0, _CMP_LT_OS), _mm_set1_epi8(1));
		bits = _mm_mask_add_epi8(bits, _mm512_cmp_ps_mask(b1, a1, _CMP_LT_OS), bits, _mm_set1_epi8(2));
		bits = _mm_mask_add_epi8(bits, _mm512_cmp_ps_mask(b2, a2, _CMP_LT_OS), bits, _mm_set1_epi8(4));
		bits = _mm_mask_add_epi8(bits, _mm512_cmp_ps_mask(b3, a3, _CMP_LT_OS), bits, _mm_set1_epi8(8));
		_mm_storeu_si128((__m128i *)(void *)(dec + i), bits);
		c0 = _mm512_min_ps(b0, a0);
		c1 = _mm512_min_ps(b1, a1);
		c2 = _mm512_min_ps(b2, a2);
		c3 = _mm512_min_ps(b3, a3);
	}
	_mm512_storeu_ps(c[0], c0);
	_mm512_storeu_ps(c[1], c1);
	_mm512_storeu_ps(c[2], c2);
	_mm512_storeu_ps(c[3], c3);
}

AVX512 void lcp_dq_backward_avx512(uint32_t steps, uint32_t st[LCP_DQ_CHAINS], uint8_t *dec,
				   const int8_t *cand, uint8_t *codes)
{
	const __m512i pred = _mm512_loadu_si512(pred_by_bit), one = _mm512_set1_epi32(1);
	__m512i s = _mm512_loadu_si512(st);
	for (uint32_t t = steps; t-- > 0;) {
		size_t i = (size_t)t * LCP_DQ_CHAINS;
		__m512i d = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(const void *)(dec + i)));
		__m512i bit = _mm512_and_si512(_mm512_srlv_epi32(d, s), one);
		__m512i pr = _mm512_permutexvar_epi32(_mm512_add_epi32(_mm512_add_epi32(s, s), bit), pred);
		__mmask16 q = _mm512_test_epi32_mask(pr, _mm512_set1_epi32(4));
		__mmask16 p = _mm512_test_epi32_mask(pr, one);
		const __m128i *k = (const __m128i *)(const void *)(cand + 4 * i);
		__m128i lo = _mm_mask_blend_epi8(p, _mm_loadu_si128(k), _mm_loadu_si128(k + 1));
		__m128i hi = _mm_mask_blend_epi8(p, _mm_loadu_si128(k + 2), _mm_loadu_si128(k + 3));
		__m128i code = _mm_add_epi8(_mm_mask_blend_epi8(q, lo, hi), _mm_set1_epi8((char)128));
		_mm_storeu_si128((__m128i *)(void *)(codes + i), code);
		_mm_storeu_si128((__m128i *)(void *)(dec + i), _mm512_cvtepi32_epi8(_mm512_srli_epi32(pr, 2)));
		s = _mm512_srli_epi32(pr, 1);
	}
	_mm512_storeu_si512(st, s);
}

AVX2 static inline __m256 round_even8(__m256 t)
{
	const __m256 magic = _mm256_set1_ps(ROUND_MAGIC);
	return _mm256_sub_ps(_mm256_add_ps(t, magic), magic);
}

/* 16 int32 (a: lanes 0-7, b: 8-15) as 16 bytes with signed saturation. */
AVX2 static inline __m128i narrow16(__m256i a, __m256i b)
{
	__m256i w = _mm256_permute4x64_epi64(_mm256_packs_epi32(a, b), 0xd8);
	return _mm_packs_epi16(_mm256_castsi256_si128(w), _mm256_extracti128_si256(w, 1));
}

/* One step of 8 chains (the SSE2 form's operations, 8 lanes wide): the
 * candidates k of each pair j to k[j], the decision bits as int32. */
AVX2 static inline __m256i forward8(const float *x, const float *dl, const float *il, __m256 c[4],
				    __m256i k[4])
{
	const __m256 vmax = _mm256_set1_ps(DQ_MAX_V), vmin = _mm256_set1_ps(-DQ_MAX_V);
	const __m256 zero = _mm256_setzero_ps(), quarter = _mm256_set1_ps(0.25f);
	const __m256 half = _mm256_set1_ps(0.5f), four = _mm256_set1_ps(4.0f);
	const __m256 one = _mm256_set1_ps(1.0f), two = _mm256_set1_ps(2.0f);
	const __m256 signbit = _mm256_set1_ps(-0.0f), inf = _mm256_set1_ps(INFINITY);
	__m256 vx = _mm256_loadu_ps(x), vd = _mm256_loadu_ps(dl);
	__m256 v = _mm256_mul_ps(vx, _mm256_loadu_ps(il));
	v = _mm256_max_ps(_mm256_min_ps(v, vmax), vmin);
	__m256 neg = _mm256_cmp_ps(v, zero, _CMP_LT_OS), a = _mm256_andnot_ps(signbit, v);
	__m256 sd = _mm256_or_ps(_mm256_and_ps(neg, _mm256_sub_ps(zero, vd)), _mm256_andnot_ps(neg, vd));
	__m256 m[4], e[4];
	m[0] = _mm256_mul_ps(four, round_even8(_mm256_mul_ps(a, quarter)));
	m[1] = _mm256_add_ps(_mm256_mul_ps(four, round_even8(_mm256_mul_ps(_mm256_sub_ps(a, two), quarter))), two);
	m[2] = _mm256_andnot_ps(_mm256_cmp_ps(a, _mm256_set1_ps(1.5f), _CMP_LT_OS),
				_mm256_sub_ps(_mm256_mul_ps(four, round_even8(_mm256_mul_ps(_mm256_add_ps(a, one), quarter))), one));
	m[3] = _mm256_add_ps(_mm256_mul_ps(four, round_even8(_mm256_mul_ps(_mm256_sub_ps(a, one), quarter))), one);
	__m256i nmask = _mm256_castps_si256(neg);
	for (unsigned j = 0; j < 4; j++) {
		__m256 r = _mm256_sub_ps(vx, _mm256_mul_ps(sd, m[j]));
		e[j] = _mm256_mul_ps(r, r);
		__m256i code = _mm256_cvttps_epi32(_mm256_mul_ps(j >> 1 ? _mm256_add_ps(m[j], one) : m[j], half));
		k[j] = _mm256_sub_epi32(_mm256_xor_si256(code, nmask), nmask); /* negate where v < 0 */
	}
	__m256 pos_step = _mm256_cmp_ps(vd, zero, _CMP_GT_OS);
	e[1] = _mm256_or_ps(_mm256_and_ps(pos_step, e[1]), _mm256_andnot_ps(pos_step, inf));
	e[3] = _mm256_or_ps(_mm256_and_ps(pos_step, e[3]), _mm256_andnot_ps(pos_step, inf));
	__m256 a0 = _mm256_add_ps(c[0], e[0]), b0 = _mm256_add_ps(c[1], e[1]);
	__m256 a2 = _mm256_add_ps(c[0], e[1]), b2 = _mm256_add_ps(c[1], e[0]);
	__m256 a1 = _mm256_add_ps(c[2], e[2]), b1 = _mm256_add_ps(c[3], e[3]);
	__m256 a3 = _mm256_add_ps(c[2], e[3]), b3 = _mm256_add_ps(c[3], e[2]);
	__m256i bits = _mm256_or_si256(
		_mm256_or_si256(_mm256_and_si256(_mm256_castps_si256(_mm256_cmp_ps(b0, a0, _CMP_LT_OS)), _mm256_set1_epi32(1)),
				_mm256_and_si256(_mm256_castps_si256(_mm256_cmp_ps(b1, a1, _CMP_LT_OS)), _mm256_set1_epi32(2))),
		_mm256_or_si256(_mm256_and_si256(_mm256_castps_si256(_mm256_cmp_ps(b2, a2, _CMP_LT_OS)), _mm256_set1_epi32(4)),
				_mm256_and_si256(_mm256_castps_si256(_mm256_cmp_ps(b3, a3, _CMP_LT_OS)), _mm256_set1_epi32(8))));
	c[0] = _mm256_min_ps(b0, a0);
	c[1] = _mm256_min_ps(b1, a1);
	c[2] = _mm256_min_ps(b2, a2);
	c[3] = _mm256_min_ps(b3, a3);
	return bits;
}

AVX2 void lcp_dq_forward_avx2(const float *x, const float *dl, const float *il, uint32_t steps,
			      lcp_dq_costs c, uint8_t *dec, int8_t *cand)
{
	__m256 lo[4], hi[4]; /* chains 0-7 and 8-15 */
	for (unsigned s = 0; s < 4; s++) {
		lo[s] = _mm256_loadu_ps(c[s]);
		hi[s] = _mm256_loadu_ps(c[s] + 8);
	}
	for (uint32_t t = 0; t < steps; t++) {
		size_t i = (size_t)t * LCP_DQ_CHAINS;
		__m256i klo[4], khi[4];
		__m256i blo = forward8(x + i, dl + i, il + i, lo, klo);
		__m256i bhi = forward8(x + i + 8, dl + i + 8, il + i + 8, hi, khi);
		for (unsigned j = 0; j < 4; j++)
			_mm_storeu_si128((__m128i *)(void *)(cand + 4 * i + 16 * j), narrow16(klo[j], khi[j]));
		_mm_storeu_si128((__m128i *)(void *)(dec + i), narrow16(blo, bhi));
	}
	for (unsigned s = 0; s < 4; s++) {
		_mm256_storeu_ps(c[s], lo[s]);
		_mm256_storeu_ps(c[s] + 8, hi[s]);
	}
}

AVX2 void lcp_dq_backward_avx2(uint32_t steps, uint32_t st[LCP_DQ_CHAINS], uint8_t *dec,
			       const int8_t *cand, uint8_t *codes)
{
	const __m256i pred = _mm256_loadu_si256((const __m256i *)(const void *)pred_by_bit);
	const __m256i one = _mm256_set1_epi32(1);
	__m256i s0 = _mm256_loadu_si256((const __m256i *)(const void *)st);
	__m256i s1 = _mm256_loadu_si256((const __m256i *)(const void *)(st + 8));
	for (uint32_t t = steps; t-- > 0;) {
		size_t i = (size_t)t * LCP_DQ_CHAINS;
		__m128i d = _mm_loadu_si128((const __m128i *)(const void *)(dec + i));
		__m256i d0 = _mm256_cvtepu8_epi32(d), d1 = _mm256_cvtepu8_epi32(_mm_srli_si128(d, 8));
		__m256i p0 = _mm256_permutevar8x32_epi32(pred, _mm256_add_epi32(_mm256_add_epi32(s0, s0),
					_mm256_and_si256(_mm256_srlv_epi32(d0, s0), one)));
		__m256i p1 = _mm256_permutevar8x32_epi32(pred, _mm256_add_epi32(_mm256_add_epi32(s1, s1),
					_mm256_and_si256(_mm256_srlv_epi32(d1, s1), one)));
		/* the 16 predecessors (0..7) as bytes, then byte masks of q and p */
		__m128i pr = narrow16(p0, p1);
		__m128i q = _mm_cmpeq_epi8(_mm_and_si128(pr, _mm_set1_epi8(4)), _mm_set1_epi8(4));
		__m128i p = _mm_cmpeq_epi8(_mm_and_si128(pr, _mm_set1_epi8(1)), _mm_set1_epi8(1));
		const __m128i *k = (const __m128i *)(const void *)(cand + 4 * i);
		__m128i lo = _mm_blendv_epi8(_mm_loadu_si128(k), _mm_loadu_si128(k + 1), p);
		__m128i hi = _mm_blendv_epi8(_mm_loadu_si128(k + 2), _mm_loadu_si128(k + 3), p);
		__m128i code = _mm_add_epi8(_mm_blendv_epi8(lo, hi, q), _mm_set1_epi8((char)128));
		_mm_storeu_si128((__m128i *)(void *)(codes + i), code);
		_mm_storeu_si128((__m128i *)(void *)(dec + i), _mm_and_si128(q, _mm_set1_epi8(1)));
		s0 = _mm256_srli_epi32(p0, 1);
		s1 = _mm256_srli_epi32(p1, 1);
	}
	_mm256_storeu_si256((__m256i *)(void *)st, s0);
	_mm256_storeu_si256((__m256i *)(void *)(st + 8), s1);
}

#else
/* ISO C wants at least one declaration in a translation unit. */
typedef int lcp_quant_dq_x86_unavailable;
#endif
