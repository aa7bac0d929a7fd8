/* SPDX-License-Identifier: Apache-2.0 */
/*
 * AVX2 rANS decode kernel, for x86-64 CPUs without AVX-512 (kernels.c picks
 * it at run time). It computes the integer recurrence of rans.h exactly, on
 * 16-lane blocks held as two 8-lane registers, 4 blocks side by side (8
 * independent gather -> multiply chains, as many as 16 vector registers
 * allow); the last symbols of each block and the end checks go through the
 * scalar lcp_rans_finish. AVX2 has no expand: the lanes that renormalize
 * take their words through a permutation looked up by the lane mask. Alias
 * blocks the same way, through a slot table built from their map. The other
 * kernels are the baseline set's (SSE2).
 */
#include "codec/kernels.h"

#ifdef LCP_HAVE_AVX512_KERNELS /* the same compilers and targets */

#include <immintrin.h>
#include <pthread.h>

#define AVX2 __attribute__((target("avx2,popcnt")))
#define INLINE static inline __attribute__((always_inline))
#define MAX_GROUP 4

/* perm[m]: for the 8-lane mask m of lanes that renormalize, the dword index
 * of each lane's word among the words loaded (lane i takes word number
 * popcount(m & ((1 << i) - 1))); lanes outside m are masked off later. */
static uint32_t perm[256][8];
static pthread_once_t perm_once = PTHREAD_ONCE_INIT;

static void perm_init(void)
{
	for (unsigned m = 0; m < 256; m++) {
		unsigned r = 0;
		for (unsigned i = 0; i < 8; i++) {
			perm[m][i] = m >> i & 1 ? r : 0;
			r += m >> i & 1;
		}
	}
}

/* vpgatherdd merges into its destination (see kernels_avx512.c): zeroing it
 * in the same asm statement keeps independent chains independent. The mask
 * register is all ones and cleared by the instruction. */
INLINE AVX2 __m256i gather8(__m256i idx, const struct lcp_rans_dec *d)
{
	__m256i r, mask = _mm256_set1_epi32(-1);
	__asm__("vpxor %0, %0, %0\n\tvpgatherdd %1, (%2,%3,4), %0"
		: "=&x"(r), "+x"(mask)
		: "r"(d->slot), "x"(idx), "m"(d->slot));
	return r;
}

/* The 8 words from *p that the lanes of mask m take in lane order (as
 * dwords, the others' garbage); *p moves past them. */
INLINE AVX2 __m256i take_words(unsigned m, const uint8_t **p)
{
	__m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(const void *)*p));
	*p += 2u * (unsigned)__builtin_popcount(m);
	return _mm256_permutevar8x32_epi32(w, _mm256_loadu_si256((const __m256i *)(const void *)perm[m]));
}

/* The lanes of y below 2^16 renormalized with the next words from *p. */
INLINE AVX2 __m256i renorm8(__m256i y, const uint8_t **p)
{
	/* y < 2^16 <=> no bit above the low 16 */
	__m256i renorm = _mm256_cmpeq_epi32(_mm256_srli_epi32(y, 16), _mm256_setzero_si256());
	__m256i w = take_words((unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(renorm)), p);
	return _mm256_blendv_epi8(y, _mm256_or_si256(_mm256_slli_epi32(y, 16), w), renorm);
}

/* The states of 8 lanes after the table entries e, before renormalizing. */
INLINE AVX2 __m256i advance8(__m256i x, __m256i e)
{
	__m256i f = _mm256_and_si256(_mm256_srli_epi32(e, 8), _mm256_set1_epi32(0xfff));
	return _mm256_add_epi32(_mm256_mullo_epi32(f, _mm256_srli_epi32(x, LCP_RANS_PROB_BITS)),
				_mm256_srli_epi32(e, 20));
}

/* One step of 8 lanes; e gets the table entries (symbols in the low byte). */
INLINE AVX2 __m256i step8(__m256i x, const uint8_t **p, const struct lcp_rans_dec *d, __m256i *e)
{
	*e = gather8(_mm256_and_si256(x, _mm256_set1_epi32(LCP_RANS_SCALE - 1)), d);
	return renorm8(advance8(x, *e), p);
}

/* Each block's 16 lane states into x[k] (two registers) and its word
 * cursor into cur[k], *steps the whole steps all K have before their
 * stops; LCP_ERR_FORMAT when a block is too short to hold its states. */
INLINE AVX2 lcp_err start_blocks(const struct lcp_rans_block *b, unsigned K,
				 const uint8_t *readable_end, __m256i x[][2],
				 struct lcp_rans_cursor *cur, uint32_t *steps)
{
	*steps = UINT32_MAX;
#pragma GCC unroll 4
	for (unsigned k = 0; k < K; k++) {
		if (b[k].len < 64)
			return LCP_ERR_FORMAT;
		x[k][0] = _mm256_loadu_si256((const __m256i *)(const void *)b[k].in);
		x[k][1] = _mm256_loadu_si256((const __m256i *)(const void *)(b[k].in + 32));
		lcp_rans_cursor_init(&cur[k], &b[k], 64, readable_end);
		*steps = b[k].stop / 16 < *steps ? b[k].stop / 16 : *steps;
	}
	return LCP_OK;
}

/* Each block's symbols from 16 t on, and its end checks, by the reference. */
INLINE AVX2 lcp_err finish_blocks(const struct lcp_rans_block *b, unsigned K, __m256i x[][2],
				  struct lcp_rans_cursor *cur, uint32_t t)
{
	for (unsigned k = 0; k < K; k++) {
		uint32_t xs[LCP_RANS_MAX_LANES];
		_mm256_storeu_si256((__m256i *)(void *)xs, x[k][0]);
		_mm256_storeu_si256((__m256i *)(void *)(xs + 8), x[k][1]);
		lcp_err err = lcp_rans_finish(&b[k], 16, xs, cur[k].p, cur[k].end, 16u * t);
		if (err)
			return err;
	}
	return LCP_OK;
}

/* The low bytes of 16 dwords (a: lanes 0-7, b: 8-15) as 16 bytes. */
INLINE AVX2 __m128i low_bytes16(__m256i a, __m256i b)
{
	const __m256i lo = _mm256_set1_epi32(0xff);
	__m256i w = _mm256_packus_epi32(_mm256_and_si256(a, lo), _mm256_and_si256(b, lo));
	w = _mm256_permute4x64_epi64(w, 0xd8); /* undo the per-128-bit packing */
	return _mm_packus_epi16(_mm256_castsi256_si128(w), _mm256_extracti128_si256(w, 1));
}

/* K blocks of 16 lanes side by side, as decode_group of kernels_avx512.c
 * (a step's two 16-byte word loads reach at most LCP_RANS_STEP_BYTES past
 * its first word). */
INLINE AVX2 lcp_err decode_group(const struct lcp_rans_block *b, unsigned K,
				 const uint8_t *readable_end)
{
	__m256i x[MAX_GROUP][2];
	struct lcp_rans_cursor cur[MAX_GROUP];
	uint32_t steps;
	if (start_blocks(b, K, readable_end, x, cur, &steps))
		return LCP_ERR_FORMAT;
	uint32_t t = 0;
	while (t < steps) {
		uint32_t run = lcp_rans_run(cur, K, readable_end, steps - t, LCP_RANS_STEP_BYTES);
		if (run == 0)
			break; /* only a damaged block reads past its copy */
		for (uint32_t j = 0; j < run; j++, t++) {
#pragma GCC unroll 4
			for (unsigned k = 0; k < K; k++) {
				__m256i e0, e1;
				x[k][0] = step8(x[k][0], &cur[k].p, b[k].table, &e0);
				x[k][1] = step8(x[k][1], &cur[k].p, b[k].table, &e1);
				_mm_storeu_si128((__m128i *)(void *)(b[k].out + 16u * t), low_bytes16(e0, e1));
			}
		}
	}
	return finish_blocks(b, K, x, cur, t);
}

/* Alias blocks (rans.h) through their map as a slot table
 * (lcp_alias_slot_table), so the steps gather as above; a step's escapes
 * take their words before its renormalizations. */
INLINE AVX2 lcp_err alias_group(const struct lcp_rans_block *b, unsigned K,
				const uint8_t *readable_end, const struct lcp_rans_dec *slots)
{
	__m256i x[MAX_GROUP][2];
	struct lcp_rans_cursor cur[MAX_GROUP];
	uint32_t steps;
	if (start_blocks(b, K, readable_end, x, cur, &steps))
		return LCP_ERR_FORMAT;
	const __m256i slot_mask = _mm256_set1_epi32(LCP_RANS_SCALE - 1), low = _mm256_set1_epi32(0xff);
	unsigned bad = 0;
	uint32_t t = 0;
	while (t < steps) {
		uint32_t run = lcp_rans_run(cur, K, readable_end, steps - t, LCP_ALIAS_STEP_BYTES);
		if (run == 0)
			break; /* only a damaged block reads past its copy */
		for (uint32_t j = 0; j < run; j++, t++) {
#pragma GCC unroll 4
			for (unsigned k = 0; k < K; k++) {
				__m256i e0 = gather8(_mm256_and_si256(x[k][0], slot_mask), slots);
				__m256i e1 = gather8(_mm256_and_si256(x[k][1], slot_mask), slots);
				__m256i y0 = advance8(x[k][0], e0), y1 = advance8(x[k][1], e1);
				__m256i c0 = _mm256_and_si256(e0, low), c1 = _mm256_and_si256(e1, low);
				__m256i z0 = _mm256_cmpeq_epi32(c0, _mm256_setzero_si256());
				__m256i z1 = _mm256_cmpeq_epi32(c1, _mm256_setzero_si256());
				unsigned m0 = (unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(z0));
				unsigned m1 = (unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(z1));
				if (__builtin_expect((m0 | m1) != 0, 0)) { /* escapes, in lane order */
					__m256i w0 = take_words(m0, &cur[k].p), w1 = take_words(m1, &cur[k].p);
					c0 = _mm256_blendv_epi8(c0, w0, z0);
					c1 = _mm256_blendv_epi8(c1, w1, z1);
					bad |= (unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(
						_mm256_cmpgt_epi32(_mm256_or_si256(_mm256_and_si256(w0, z0),
										   _mm256_and_si256(w1, z1)), low)));
				}
				x[k][0] = renorm8(y0, &cur[k].p);
				x[k][1] = renorm8(y1, &cur[k].p);
				_mm_storeu_si128((__m128i *)(void *)(b[k].out + 16u * t), low_bytes16(c0, c1));
			}
		}
	}
	if (bad)
		return LCP_ERR_FORMAT;
	return finish_blocks(b, K, x, cur, t);
}

static AVX2 lcp_err alias4(const struct lcp_rans_block *b, const uint8_t *end,
			   const struct lcp_rans_dec *slots)
{
	return alias_group(b, 4, end, slots);
}

static AVX2 lcp_err alias1(const struct lcp_rans_block *b, const uint8_t *end,
			   const struct lcp_rans_dec *slots)
{
	return alias_group(b, 1, end, slots);
}

static lcp_err alias_decode(const struct lcp_rans_block *b, unsigned nb, unsigned lanes,
			    const uint8_t *readable_end)
{
	bool one_table = true;
	for (unsigned k = 1; k < nb; k++)
		one_table = one_table && b[k].table == b[0].table;
	if (lanes != 16 || nb == 0 || !one_table)
		return lcp_alias_decode_scalar(b, nb, lanes, readable_end);
	pthread_once(&perm_once, perm_init);
	struct lcp_rans_dec slots; /* 16 KiB on the stack: no allocation per call */
	lcp_alias_slot_table(b[0].table, &slots);
	lcp_err err = LCP_OK;
	for (unsigned k = 0; !err && k < nb;) {
		if (nb - k >= 4)
			err = alias4(b + k, readable_end, &slots), k += 4;
		else
			err = alias1(b + k, readable_end, &slots), k += 1;
	}
	return err;
}

static AVX2 lcp_err group4(const struct lcp_rans_block *b, const uint8_t *end)
{
	return decode_group(b, 4, end);
}

static AVX2 lcp_err group2(const struct lcp_rans_block *b, const uint8_t *end)
{
	return decode_group(b, 2, end);
}

static AVX2 lcp_err group1(const struct lcp_rans_block *b, const uint8_t *end)
{
	return decode_group(b, 1, end);
}

static lcp_err rans_decode(const struct lcp_rans_block *b, unsigned nb, unsigned lanes,
			   const uint8_t *readable_end)
{
	if (lanes != 16)
		return lcp_rans_decode_scalar(b, nb, lanes, readable_end);
	pthread_once(&perm_once, perm_init);
	lcp_err err = LCP_OK;
	for (unsigned k = 0; !err && k < nb;) {
		unsigned left = nb - k;
		if (left >= 4)
			err = group4(b + k, readable_end), k += 4;
		else if (left >= 2)
			err = group2(b + k, readable_end), k += 2;
		else
			err = group1(b + k, readable_end), k += 1;
	}
	return err;
}

const struct lcp_kernels lcp_kernels_avx2 = { "avx2", rans_decode, NULL,
					      lcp_dequant_store_baseline, lcp_side_params_ref,
					      lcp_dq_classes_fast, alias_decode, NULL };

#else
/* ISO C wants at least one declaration in a translation unit. */
typedef int lcp_kernels_avx2_unavailable;
#endif
