/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The rANS encoder's 16-lane steps under AVX-512 (rans.h; run by
 * lcp_rans_encode where the CPU has F, BW and VL): the 16 lane states of a
 * block are one register, and each step encodes symbols 16t + 15 .. 16t
 * exactly as the plain-C loop does, so the bytes are the same. The
 * division x / f is done in binary64: x * (1 / f) is within 2^-19 of the
 * quotient (x < 2^32), whose fraction is 0 or at least 1 / 4096, so the
 * truncation is the integer quotient or, on an exact multiple, one less;
 * the remainder then equals f and one correction makes both exact.
 * The same for alias blocks, and the decoder's table fill, 16 slots a
 * store.
 */
#include "codec/rans.h"

#if defined(__x86_64__) && defined(__GNUC__)

#include <immintrin.h>

#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,popcnt")))

bool lcp_rans_avx512_available(void)
{
	__builtin_cpu_init();
	return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
	       __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("popcnt");
}

/* q = v / f and r = v mod f on 16 lanes, r_lo and r_hi 1 / f of lanes 0-7
 * and 8-15 in binary64 (see above). */
static inline __attribute__((always_inline)) AVX512 void divide16(__m512i v, __m512i f, __m512d r_lo,
								 __m512d r_hi, __m512i *q, __m512i *r)
{
	__m256i q_lo = _mm512_cvttpd_epu32(_mm512_mul_pd(_mm512_cvtepu32_pd(_mm512_castsi512_si256(v)), r_lo));
	__m256i q_hi = _mm512_cvttpd_epu32(_mm512_mul_pd(_mm512_cvtepu32_pd(_mm512_extracti64x4_epi64(v, 1)), r_hi));
	*q = _mm512_inserti64x4(_mm512_castsi256_si512(q_lo), q_hi, 1);
	*r = _mm512_sub_epi32(v, _mm512_mullo_epi32(*q, f));
	__mmask16 fix = _mm512_cmpge_epu32_mask(*r, f);
	*q = _mm512_mask_add_epi32(*q, fix, *q, _mm512_set1_epi32(1));
	*r = _mm512_mask_sub_epi32(*r, fix, *r, f);
}

AVX512 uint8_t *lcp_rans_encode_steps_avx512(const struct lcp_rans_enc *e, const uint8_t *sym,
					     uint32_t steps, uint32_t x[LCP_RANS_MAX_LANES],
					     uint8_t *w)
{
	const __m512i low16 = _mm512_set1_epi32(0xffff);
	__m512i vx = _mm512_loadu_si512(x);
	for (uint32_t t = steps; t-- > 0;) {
		__m128i s8 = _mm_loadu_si128((const __m128i *)(const void *)(sym + 16u * t));
		__m512i s = _mm512_cvtepu8_epi32(s8);
		__m512i fc = _mm512_i32gather_epi32(s, e->freq_cum, 4);
		__m512i f = _mm512_and_si512(fc, low16), cum = _mm512_srli_epi32(fc, 16);
		__m512d r_lo = _mm512_i32gather_pd(_mm512_castsi512_si256(s), e->rcp_f64, 8);
		__m512d r_hi = _mm512_i32gather_pd(_mm512_extracti64x4_epi64(s, 1), e->rcp_f64, 8);
		/* lanes whose state would pass 2^32: their low words out, in
		 * lane order below w (the order the decoder reads them) */
		__mmask16 out = _mm512_cmpge_epu32_mask(vx, _mm512_slli_epi32(f, 32 - LCP_RANS_PROB_BITS));
		unsigned cnt = (unsigned)__builtin_popcount(out);
		w -= 2u * cnt;
		_mm256_mask_storeu_epi16(w, (__mmask16)((1u << cnt) - 1u),
					 _mm512_cvtepi32_epi16(_mm512_maskz_compress_epi32(out, vx)));
		__m512i v = _mm512_mask_srli_epi32(vx, out, vx, 16), q, r;
		divide16(v, f, r_lo, r_hi, &q, &r);
		vx = _mm512_add_epi32(_mm512_add_epi32(_mm512_slli_epi32(q, LCP_RANS_PROB_BITS), r), cum);
	}
	_mm512_storeu_si512(x, vx);
	return w;
}

/* As above with the alias map (rans.h): the new state's low 12 bits are
 * the slot of the symbol's rank r, slot_of[base + r] (16-bit entries,
 * gathered as 32 bits and masked), and lanes whose symbol has f = 0 (or is
 * 0) code the escape, symbol 0, and put their symbol's word below their
 * step's renormalization words. */
AVX512 uint8_t *lcp_rans_alias_encode_steps_avx512(const struct lcp_rans_alias_enc *e, const uint8_t *sym,
						   uint32_t steps, uint32_t x[LCP_RANS_MAX_LANES],
						   uint8_t *w)
{
	const __m512i low16 = _mm512_set1_epi32(0xffff);
	const __m512i esc_fb = _mm512_set1_epi32((int)e->freq_base[0]);
	__m512i vx = _mm512_loadu_si512(x);
	for (uint32_t t = steps; t-- > 0;) {
		__m128i s8 = _mm_loadu_si128((const __m128i *)(const void *)(sym + 16u * t));
		__m512i s = _mm512_cvtepu8_epi32(s8);
		__m512i fb = _mm512_i32gather_epi32(s, e->freq_base, 4);
		__mmask16 esc = _mm512_testn_epi32_mask(fb, low16) | _mm512_testn_epi32_mask(s, s);
		fb = _mm512_mask_mov_epi32(fb, esc, esc_fb);
		__m512i code = _mm512_maskz_mov_epi32((__mmask16)~esc, s); /* escapes code symbol 0 */
		__m512i f = _mm512_and_si512(fb, low16), base = _mm512_srli_epi32(fb, 16);
		__m512d r_lo = _mm512_i32gather_pd(_mm512_castsi512_si256(code), e->rcp_f64, 8);
		__m512d r_hi = _mm512_i32gather_pd(_mm512_extracti64x4_epi64(code, 1), e->rcp_f64, 8);
		__mmask16 out = _mm512_cmpge_epu32_mask(vx, _mm512_slli_epi32(f, 32 - LCP_RANS_PROB_BITS));
		unsigned cnt = (unsigned)__builtin_popcount(out);
		w -= 2u * cnt;
		_mm256_mask_storeu_epi16(w, (__mmask16)((1u << cnt) - 1u),
					 _mm512_cvtepi32_epi16(_mm512_maskz_compress_epi32(out, vx)));
		if (esc) {
			unsigned ne = (unsigned)__builtin_popcount(esc);
			w -= 2u * ne;
			_mm256_mask_storeu_epi16(w, (__mmask16)((1u << ne) - 1u),
						 _mm512_cvtepi32_epi16(_mm512_maskz_compress_epi32(esc, s)));
		}
		__m512i v = _mm512_mask_srli_epi32(vx, out, vx, 16), q, r;
		divide16(v, f, r_lo, r_hi, &q, &r);
		__m512i slot = _mm512_and_si512(
			_mm512_i32gather_epi32(_mm512_add_epi32(base, r), e->slot_of, 2), low16);
		vx = _mm512_add_epi32(_mm512_slli_epi32(q, LCP_RANS_PROB_BITS), slot);
	}
	_mm512_storeu_si512(x, vx);
	return w;
}

AVX512 void lcp_rans_dec_init_avx512(struct lcp_rans_dec *d, const uint16_t freq[256])
{
	const __m512i ramp = _mm512_slli_epi32(
		_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0), 20);
	uint32_t c = 0;
	for (unsigned s = 0; s < 256; s++) {
		uint32_t f = freq[s], base = s | f << 8;
		for (uint32_t k = 0; k < f; k += LCP_RANS_DEC_PAD)
			_mm512_storeu_si512(d->slot + c + k,
					    _mm512_add_epi32(_mm512_set1_epi32((int)(base + (k << 20))), ramp));
		c += f;
	}
}

#else
/* ISO C wants at least one declaration in a translation unit. */
typedef int lcp_rans_x86_unavailable;
#endif
