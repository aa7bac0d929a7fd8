/* SPDX-License-Identifier: Apache-2.0 */
/*
 * AVX-512 decode kernels, compiled for any x86-64 through function target
 * attributes and used only when the CPU reports them (kernels.c): the set
 * "avx512" needs F, BW and VL; "avx512bf16" is the same set with the BF16
 * extension's narrowing where it is exact. Each computes what the reference
 * computes, bit for bit:
 *  - rANS: the integer recurrence of rans.h on 16 lanes at once (one zmm
 *    register of states per block), up to 8 blocks of a chunk interleaved
 *    so the gather and multiply latencies of one block overlap the others';
 *    the last symbols of each block go through the scalar lcp_rans_finish,
 *    which also checks the block's end state;
 *  - dequantization: code - off and the levels of dependent quantization
 *    are small integers, exact in binary32 however they are formed, then
 *    one binary32 multiply, as in lcp_dequant_ref; fused into rANS, the
 *    code comes out of the table entry as the float 2^23 + code (its bits
 *    or'ed into those of 2^23), which saves a conversion;
 *  - F16: vcvtps2ph with round-to-nearest-even is IEEE narrowing, which is
 *    what lcp_f16_from_f32 computes (including subnormals, overflow to inf
 *    and NaN quieting) in the default floating-point environment;
 *  - BF16: the integer rounding of lcp_bf16_from_f32 on 16 lanes; fused
 *    values are never NaN (finite scales times small integers), so the NaN
 *    case is left out there; vcvtneps2bf16 (set "avx512bf16") flushes
 *    subnormal inputs and results to zero, so it narrows only chunks whose
 *    scales are all 0 or normal, which makes every value 0, normal or
 *    infinite.
 */
#include "codec/kernels.h"

#ifdef LCP_HAVE_AVX512_KERNELS

#include <immintrin.h>

#include "codec/codec_format.h"

#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,popcnt,fma")))
#define INLINE static inline __attribute__((always_inline))

/* Blocks decoded side by side: enough independent gather -> multiply chains
 * to keep the vector ports busy (measured on faceres codes, symbols only: 2
 * blocks 0.46, 4 blocks 0.29, 8 blocks 0.21 ns/symbol; fused decoding does
 * more per step and takes 4, see FUSED). */
#define MAX_GROUP 8

/* Fused steps announce their output this many bytes ahead with a prefetch
 * for writing, so a store that misses the cache finds its line owned
 * rather than waiting for it: the decode benchmark's matrix (14 MiB of F32
 * output) 2-9% faster per row, 256 to 1024 bytes alike (DESIGN-notes). A
 * prefetch never faults, so one past the output is harmless. */
#define OUT_PREFETCH_BYTES 512

/*
 * vpgatherdd merges into its destination register, so it waits for that
 * register's previous value; compilers reuse one register for consecutive
 * gathers and delete a zeroing they consider dead, which serialized the
 * blocks' independent gathers (0.38 instead of 0.21 ns/symbol). Zeroing the
 * destination inside the same asm statement breaks the false dependency.
 */
INLINE AVX512 __m512i gather_slots(__m512i idx, const struct lcp_rans_dec *d)
{
	__m512i r;
	__mmask16 k = 0xffff;
	__asm__("vpxord %0, %0, %0\n\tvpgatherdd (%2,%3,4), %0%{%1%}"
		: "=&v"(r), "+Yk"(k)
		: "r"(d->slot), "v"(idx), "m"(d->slot));
	return r;
}

/* Output kinds: BF16 narrows any value; BF16_FINITE only non-NaN ones;
 * BF16_NORMAL only 0, normal and infinite values (avx512bf16). */
enum out_kind { OUT_F32, OUT_F16, OUT_BF16, OUT_BF16_FINITE, OUT_BF16_NORMAL };

INLINE AVX512 __m512 dequant16(__m128i codes, __m512 sd, __m512 off)
{
	__m512 v = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(codes));
	return _mm512_mul_ps(sd, _mm512_sub_ps(v, off));
}

/* Dependent quantization: the level 2k - sgn(k) (lanes of cls) or 2k, from
 * l2k = 2k as binary32 (exact): sgn(2k) as +-1.0 or +0.0 by vfixupimmps
 * (its table maps the classes zero, one, negative and positive to +0, +1,
 * -1 and +1), subtracted where cls is set; 2k - 0 = 2k, also for k = 0. */
#define DQ_SIGN_TABLE ((int)0xa900a800u)
INLINE AVX512 __m512 dq_level16(__m512 l2k, __mmask16 cls)
{
	__m512 sgn = _mm512_fixupimm_ps(l2k, l2k, _mm512_set1_epi32(DQ_SIGN_TABLE), 0);
	return _mm512_mask_sub_ps(l2k, cls, l2k, sgn);
}

/* The symbols of 16 table entries (their low bytes) as binary32 2^23 +
 * symbol: ternary logic (e & 0xff) | bits of 2^23. */
#define MAGIC_2P23 8388608.0f
INLINE AVX512 __m512 magic_symbols(__m512i e)
{
	return _mm512_castsi512_ps(_mm512_ternarylogic_epi32(e, _mm512_set1_epi32(0xff),
							     _mm512_set1_epi32(0x4b000000), 0xea));
}

/* The same of alias entries' low 7 bits. */
INLINE AVX512 __m512 magic_symbols7(__m512i e)
{
	return _mm512_castsi512_ps(_mm512_ternarylogic_epi32(e, _mm512_set1_epi32(0x7f),
							     _mm512_set1_epi32(0x4b000000), 0xea));
}

/* y + the low-rank term of 16 consecutive columns (lanes of m), summed over
 * k from +0 in the reference's order. */
INLINE AVX512 __m512 add_low_rank(__m512 y, const struct lcp_dequant_run *r, uint64_t col,
				  __mmask16 m)
{
	__m512 l = _mm512_setzero_ps();
	for (uint16_t k = 0; k < r->rank; k++)
		l = _mm512_add_ps(l, _mm512_mul_ps(_mm512_set1_ps(r->u[k]),
						   _mm512_maskz_loadu_ps(m, r->vt + k * r->cols + col)));
	return _mm512_add_ps(y, l);
}

INLINE AVX512 __m256i bf16_16(__m512 v)
{
	__m512i x = _mm512_castps_si512(v);
	__m512i lsb = _mm512_and_si512(_mm512_srli_epi32(x, 16), _mm512_set1_epi32(1));
	__m512i r = _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(x, _mm512_set1_epi32(0x7fff)), lsb), 16);
	__m512i ax = _mm512_and_si512(x, _mm512_set1_epi32(0x7fffffff));
	__mmask16 nan = _mm512_cmpgt_epu32_mask(ax, _mm512_set1_epi32(0x7f800000));
	__m512i q = _mm512_or_si512(_mm512_srli_epi32(x, 16), _mm512_set1_epi32(0x40));
	return _mm512_cvtepi32_epi16(_mm512_mask_blend_epi32(nan, r, q));
}

/* BF16 by vcvtneps2bf16: exact for 0, normal and infinite values only
 * (OUT_BF16_NORMAL), run only where the CPU has the BF16 extension. An asm
 * statement, not the intrinsic, so the kernels around it need no target
 * beyond AVX-512 F/BW/VL. */
INLINE AVX512 __m256i bf16_16_normal(__m512 v)
{
	__m256i r;
	__asm__("vcvtneps2bf16 %g1, %t0" : "=v"(r) : "v"(v));
	return r;
}

/* bf16_16_normal of 32 values, a's then b's, in one vcvtne2ps2bf16 (half
 * the narrowing uops of two vcvtneps2bf16): the same conditions. */
INLINE AVX512 __m512i bf16_32_normal(__m512 a, __m512 b)
{
	__m512i r;
	__asm__("vcvtne2ps2bf16 %1, %2, %0" : "=v"(r) : "v"(a), "v"(b));
	return r;
}

/* bf16_16 of values that are not NaN: the rounding, then the high halves
 * picked by one word permutation. */
INLINE AVX512 __m256i bf16_16_finite(__m512 v)
{
	__m512i x = _mm512_castps_si512(v);
	__m512i lsb = _mm512_and_si512(_mm512_srli_epi32(x, 16), _mm512_set1_epi32(1));
	__m512i r = _mm512_add_epi32(_mm512_add_epi32(x, _mm512_set1_epi32(0x7fff)), lsb);
	const __m512i high_halves = _mm512_set_epi16(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7,
						     5, 3, 1, 31, 29, 27, 25, 23, 21, 19, 17, 15, 13,
						     11, 9, 7, 5, 3, 1);
	return _mm512_castsi512_si256(_mm512_permutexvar_epi16(high_halves, r));
}

INLINE AVX512 __m256i f16_16(__m512 v)
{
	return _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}

/* Stores 16 values (the lanes of m) in kind at out. */
INLINE AVX512 void store16(enum out_kind kind, uint8_t *out, __m512 v, __mmask16 m)
{
	if (kind == OUT_F32)
		_mm512_mask_storeu_ps(out, m, v);
	else if (kind == OUT_F16)
		_mm256_mask_storeu_epi16(out, m, f16_16(v));
	else if (kind == OUT_BF16)
		_mm256_mask_storeu_epi16(out, m, bf16_16(v));
	else if (kind == OUT_BF16_FINITE)
		_mm256_mask_storeu_epi16(out, m, bf16_16_finite(v));
	else
		_mm256_mask_storeu_epi16(out, m, bf16_16_normal(v));
}

INLINE AVX512 void dequant_run(const struct lcp_dequant_run *r, enum out_kind kind, bool low_rank)
{
	unsigned eb = kind == OUT_F32 ? 4 : 2;
	uint32_t i = 0, g = 0, in_group = r->phase;
	while (i < r->n) {
		uint32_t len = r->group_size - in_group;
		if (len > r->n - i)
			len = r->n - i;
		__m512 sd = _mm512_set1_ps(r->sd[g]), off = _mm512_set1_ps(r->off[g]);
		const uint8_t *c = r->codes + i;
		uint8_t *o = r->out + (size_t)i * eb;
		for (uint32_t j = 0; j < len; j += 16) {
			__mmask16 m = len - j >= 16 ? 0xffff : (__mmask16)((1u << (len - j)) - 1u);
			__m128i cv = _mm_maskz_loadu_epi8(m, c + j);
			__m512 y;
			if (r->cls) {
				__m128i q = _mm_maskz_loadu_epi8(m, r->cls + i + j);
				__m512 v = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(cv));
				__m512 l2k = _mm512_sub_ps(_mm512_add_ps(v, v), _mm512_add_ps(off, off));
				y = _mm512_mul_ps(sd, dq_level16(l2k, _mm_test_epi8_mask(q, q)));
			} else {
				y = dequant16(cv, sd, off);
			}
			if (low_rank)
				y = add_low_rank(y, r, r->col + i + j, m);
			store16(kind, o + (size_t)j * eb, y, m);
		}
		i += len;
		in_group = 0;
		g++;
	}
}

static AVX512 void dequant_store(const struct lcp_dequant_run *r, enum lcp_dtype dt)
{
	switch (dt) {
	case LCP_DTYPE_F32:
		if (r->rank)
			dequant_run(r, OUT_F32, true);
		else
			dequant_run(r, OUT_F32, false);
		break;
	case LCP_DTYPE_F16:
		if (r->rank)
			dequant_run(r, OUT_F16, true);
		else
			dequant_run(r, OUT_F16, false);
		break;
	case LCP_DTYPE_BF16:
		if (r->rank)
			dequant_run(r, OUT_BF16, true);
		else
			dequant_run(r, OUT_BF16, false);
		break;
	default:
		lcp_dequant_store_baseline(r, dt);
		break;
	}
}

/* Where a step's 16 codes go: as bytes to sym, or (fused) dequantized with
 * scale sd and offset off and stored in kind at out; with dependent
 * quantization, *st holds the block's 16 chain states: class bits in the
 * low half, low bits in the high half (kernels.h). OUT_BF16_NORMAL narrows
 * two steps' values at once (bf16_32_normal): a first step (second false)
 * leaves its values in *held, the second stores both. */
struct step_out {
	uint8_t *sym;
	const float *sd, *off;
	uint8_t *out;
	uint32_t *st;
	__m512 *held;
	bool second;
};

/* The lanes of y below 2^16 renormalized with the next words from *p, in
 * lane order. */
INLINE AVX512 __m512i renormalize(__m512i y, const uint8_t **p)
{
	__mmask16 k = _mm512_cmplt_epu32_mask(y, _mm512_set1_epi32((int)LCP_RANS_LOW));
	__m512i w = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(const void *)*p));
	w = _mm512_maskz_expand_epi32(k, w);
	*p += 2u * (unsigned)__builtin_popcount(k);
	return _mm512_mask_or_epi32(y, k, _mm512_slli_epi32(y, 16), w);
}

/* The new lane states after the slots' table entries e, renormalization
 * words read in lane order from *p. */
INLINE AVX512 __m512i rans_advance(__m512i x, __m512i e, const uint8_t **p)
{
	__m512i f = _mm512_and_si512(_mm512_srli_epi32(e, 8), _mm512_set1_epi32(0xfff));
	__m512i y = _mm512_add_epi32(_mm512_mullo_epi32(f, _mm512_srli_epi32(x, LCP_RANS_PROB_BITS)),
				     _mm512_srli_epi32(e, 20));
	return renormalize(y, p);
}

/* An alias table (rans.h) in registers: each 32-entry array as two
 * vectors for vpermt2d; the splits as split - 129 (mod 2^32). */
struct alias_regs {
	__m512i split[2], own[2], alias[2];
};

INLINE AVX512 void alias_load(const struct lcp_rans_dec *d, struct alias_regs *r)
{
	const __m512i minus = _mm512_set1_epi32(-(int)LCP_ALIAS_SPAN - 1);
	for (unsigned h = 0; h < 2; h++) {
		r->split[h] = _mm512_add_epi32(_mm512_loadu_si512(d->split + 16 * h), minus);
		r->own[h] = _mm512_loadu_si512(d->entry[0] + 16 * h);
		r->alias[h] = _mm512_loadu_si512(d->entry[1] + 16 * h);
	}
}

/* One step of 16 lanes: the codes of lanes 0..15 to o, new states returned,
 * renormalization words read in lane order from *p. */
INLINE AVX512 __m512i rans_step(__m512i x, const uint8_t **p, struct step_out o, bool fused,
				bool dq, enum out_kind kind, const struct lcp_rans_dec *d)
{
	const __m512i slot_mask = _mm512_set1_epi32(LCP_RANS_SCALE - 1);
	__m512i e = gather_slots(_mm512_and_si512(x, slot_mask), d);
	if (fused) {
		__m512 v = magic_symbols(e), sd = _mm512_set1_ps(*o.sd), y;
		if (dq) {
			uint32_t st = *o.st, par = _mm512_test_epi32_mask(e, _mm512_set1_epi32(1));
			*o.st = ((st >> 16) ^ par) | st << 16; /* q' = s0 ^ par, s0' = q */
			/* off is 128 in this class (quant.h): 2k = 2 (2^23 + code) -
			 * (2^24 + 256), exact, so one fused multiply-subtract */
			__m512 l2k = _mm512_fmsub_ps(v, _mm512_set1_ps(2.0f),
						     _mm512_set1_ps(2.0f * MAGIC_2P23 + 256.0f));
			y = _mm512_mul_ps(sd, dq_level16(l2k, (__mmask16)st));
		} else {
			/* (2^23 + code) - off is exact (|code - off| < 256), then 2^23 off */
			__m512 k = _mm512_sub_ps(_mm512_sub_ps(v, _mm512_set1_ps(*o.off)),
						 _mm512_set1_ps(MAGIC_2P23));
			y = _mm512_mul_ps(sd, k);
		}
		if (kind != OUT_BF16_NORMAL)
			store16(kind, o.out, y, 0xffff);
		else if (o.second)
			_mm512_storeu_si512(o.out - 32, bf16_32_normal(*o.held, y));
		else
			*o.held = y;
	} else {
		_mm_storeu_si128((__m128i *)(void *)o.sym, _mm512_cvtepi32_epi8(e));
	}
	return rans_advance(x, e, p);
}

/*
 * One alias step of 16 lanes (rans.h), as rans_step (dependent
 * quantization only, when fused):
 *  - bucket u = bits 7-11 of x, which vpermt2d reads from x >> 7 as it is;
 *    lo - 128 = x | ~127 (mod 2^32) is added as is to the entry's r - lo +
 *    128, and lo >= split tested as lo - 128 > split - 129 (unsigned, both
 *    in 2^32 - 129 .. 2^32 - 1), so neither needs a mask;
 *  - codes as binary32 2^23 + code - 64: the entries' low 7 bits (code -
 *    64 for a direct symbol) or'ed into 2^23, an escape's word converted
 *    (exact: |2^23 + code - 64| < 2^24);
 *  - escapes take one rarely taken branch (the model's 31 symbols cover
 *    all but ~0.4% of the benchmark matrix's codes); *bad gets the lanes
 *    whose escape word is above 255.
 */
INLINE AVX512 __m512i alias_step(__m512i x, const uint8_t **p, struct step_out o, bool fused,
				 enum out_kind kind, const struct alias_regs *t, __mmask16 *bad)
{
	__m512i u = _mm512_srli_epi32(x, 7);
	__m512i lo_m = _mm512_or_si512(x, _mm512_set1_epi32(-(int)LCP_ALIAS_SPAN));
	__mmask16 side = _mm512_cmpgt_epu32_mask(lo_m, _mm512_permutex2var_epi32(t->split[0], u, t->split[1]));
	__m512i e = _mm512_mask_blend_epi32(side, _mm512_permutex2var_epi32(t->own[0], u, t->own[1]),
					    _mm512_permutex2var_epi32(t->alias[0], u, t->alias[1]));
	__m512i f = _mm512_and_si512(_mm512_srli_epi32(e, 7), _mm512_set1_epi32(0xfff));
	__m512i y = _mm512_add_epi32(_mm512_mullo_epi32(f, _mm512_srli_epi32(x, LCP_RANS_PROB_BITS)),
				     _mm512_add_epi32(lo_m, _mm512_srli_epi32(e, 19)));
	__mmask16 esc = _mm512_testn_epi32_mask(e, _mm512_set1_epi32(0x7f));
	__m512i code = _mm512_setzero_si512();
	__m512 v = _mm512_setzero_ps();
	uint32_t par = 0;
	if (fused) {
		v = magic_symbols7(e);
		par = _mm512_test_epi32_mask(e, _mm512_set1_epi32(1));
	} else {
		code = _mm512_add_epi32(_mm512_and_si512(e, _mm512_set1_epi32(0x7f)), _mm512_set1_epi32(64));
	}
	if (__builtin_expect(esc != 0, 0)) {
		__m512i w = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(const void *)*p));
		w = _mm512_maskz_expand_epi32(esc, w);
		*p += 2u * (unsigned)__builtin_popcount(esc);
		*bad |= _mm512_mask_cmpgt_epu32_mask(esc, w, _mm512_set1_epi32(255));
		if (fused) {
			v = _mm512_mask_mov_ps(v, esc, _mm512_cvtepi32_ps(_mm512_add_epi32(
							       w, _mm512_set1_epi32((1 << 23) - 64))));
			par = (par & ~(uint32_t)esc) | _mm512_mask_test_epi32_mask(esc, w, _mm512_set1_epi32(1));
		} else {
			code = _mm512_mask_mov_epi32(code, esc, w);
		}
	}
	x = renormalize(y, p);
	if (!fused) {
		_mm_storeu_si128((__m128i *)(void *)o.sym, _mm512_cvtepi32_epi8(code));
		return x;
	}
	uint32_t st = *o.st;
	*o.st = ((st >> 16) ^ par) | st << 16; /* q' = s0 ^ par, s0' = q */
	/* 2k = 2 (2^23 + code - 64) - (2^24 + 128), exact */
	__m512 l2k = _mm512_fmsub_ps(v, _mm512_set1_ps(2.0f), _mm512_set1_ps(2.0f * MAGIC_2P23 + 128.0f));
	__m512 out = _mm512_mul_ps(_mm512_set1_ps(*o.sd), dq_level16(l2k, (__mmask16)st));
	if (kind != OUT_BF16_NORMAL)
		store16(kind, o.out, out, 0xffff);
	else if (o.second)
		_mm512_storeu_si512(o.out - 32, bf16_32_normal(*o.held, out));
	else
		*o.held = out;
	return x;
}

/* Each block's 16 lane states into x[k] and its word cursor into cur[k];
 * LCP_ERR_FORMAT when a block is too short to hold its states. */
INLINE AVX512 lcp_err start_blocks(const struct lcp_rans_block *b, unsigned K,
				   const uint8_t *readable_end, __m512i *x,
				   struct lcp_rans_cursor *cur)
{
#pragma GCC unroll 8
	for (unsigned k = 0; k < K; k++) {
		if (b[k].len < 64)
			return LCP_ERR_FORMAT;
		x[k] = _mm512_loadu_si512(b[k].in);
		lcp_rans_cursor_init(&cur[k], &b[k], 64, readable_end);
	}
	return LCP_OK;
}

/* The steps all K cursors allow next (at most left), their word pointers
 * copied to wp for the run (end_run puts them back); 0 only when a damaged
 * block has read past its copy. */
INLINE uint32_t start_run(struct lcp_rans_cursor *cur, unsigned K, const uint8_t *readable_end,
			  uint32_t left, const uint8_t **wp, size_t step_bytes)
{
	uint32_t run = lcp_rans_run(cur, K, readable_end, left, step_bytes);
#pragma GCC unroll 8
	for (unsigned k = 0; k < K; k++)
		wp[k] = cur[k].p;
	return run;
}

INLINE void end_run(struct lcp_rans_cursor *cur, unsigned K, const uint8_t *const *wp)
{
#pragma GCC unroll 8
	for (unsigned k = 0; k < K; k++)
		cur[k].p = wp[k];
}

/*
 * Decodes K blocks of 16 lanes side by side while every block has a whole
 * step left, then finishes each block (its last n mod 16 symbols and the end
 * checks) in scalar code. Runs of steps are sized by the blocks' cursors
 * (kernels.h) to stay before their load limits.
 */
INLINE AVX512 lcp_err decode_group(const struct lcp_rans_block *b, unsigned K,
				   const uint8_t *readable_end, bool fused,
				   const struct lcp_rans_fuse *f, bool dq, enum out_kind kind, bool alias)
{
	if (!fused)
		f = NULL;
	/* alias blocks share their stream's table (alias_decode checks) */
	struct alias_regs regs;
	__mmask16 bad = 0;
	if (alias)
		alias_load(b[0].table, &regs);
	uint32_t st[MAX_GROUP] = {0};
	__m512 held[MAX_GROUP];
#pragma GCC unroll 8
	for (unsigned k = 0; k < K; k++)
		held[k] = _mm512_setzero_ps(); /* always written by a first step before use */
	/* Fused: block k's first element, and the log2 of the steps per group. */
	uint64_t first[MAX_GROUP];
	unsigned eb = kind == OUT_F32 ? 4 : 2, gshift = 0;
	while (f && (16u << gshift) < f->group_size)
		gshift++;
	__m512i x[MAX_GROUP];
	struct lcp_rans_cursor cur[MAX_GROUP];
	if (start_blocks(b, K, readable_end, x, cur))
		return LCP_ERR_FORMAT;
	uint32_t steps = UINT32_MAX;
#pragma GCC unroll 8
	for (unsigned k = 0; k < K; k++) {
		steps = b[k].stop / 16 < steps ? b[k].stop / 16 : steps;
		first[k] = f ? f->first + (uint64_t)k * f->block_elems : 0;
	}
	/*
	 * The steps work on locals: every output store goes through a
	 * may-alias vector type, after which anything in memory (the
	 * cursors, the blocks' fields, the fusion's pointers) was loaded
	 * again, beside the gathers' 16 loads; fused blocks share one table
	 * and one test of `fused` per instance. 4-bit DQ into F32, F16 and
	 * BF16: 6-10% faster (scratch loop, alternating runs); 8-bit: the
	 * same. Fused blocks are consecutive: block k's output starts k blocks
	 * after out, its groups k blocks' groups after sd and off.
	 */
	const struct lcp_rans_dec *tab[MAX_GROUP];
	const uint8_t *wp[MAX_GROUP];
	uint8_t *sym[MAX_GROUP];
#pragma GCC unroll 8
	for (unsigned k = 0; k < K; k++) {
		/* fused blocks share their chunk's table (fused() checks) */
		tab[k] = fused ? b[0].table : b[k].table;
		sym[k] = b[k].out;
	}
	uint8_t *out0 = f ? f->out + first[0] * eb : NULL;
	const float *sd0 = f ? f->sd + (first[0] >> 4 >> gshift) : NULL;
	const float *off0 = f ? f->off + (first[0] >> 4 >> gshift) : NULL;
	size_t block_bytes = f ? (size_t)f->block_elems * eb : 0;
	size_t block_groups = f ? f->block_elems >> 4 >> gshift : 0;
	uint32_t t = 0;
	while (t < steps) {
		uint32_t run = start_run(cur, K, readable_end, steps - t, wp,
					 alias ? LCP_ALIAS_STEP_BYTES : LCP_RANS_STEP_BYTES);
		if (run == 0)
			break; /* only a damaged block reads past its copy */
		for (uint32_t j = 0; j < run; j++, t++) {
#pragma GCC unroll 8
			for (unsigned k = 0; k < K; k++) {
				struct step_out o = { sym[k] + 16u * t, NULL, NULL, NULL, &st[k],
						      &held[k], (t & 1) != 0 };
				if (fused) {
					/* groups hold whole steps: a power of two >= 16 */
					size_t g = k * block_groups + (t >> gshift);
					o.sd = sd0 + g;
					o.off = off0 + g;
					o.out = out0 + k * block_bytes + (size_t)16u * t * eb;
					__builtin_prefetch((const void *)((uintptr_t)o.out + OUT_PREFETCH_BYTES), 1, 3);
				}
				if (alias)
					x[k] = alias_step(x[k], &wp[k], o, fused, kind, &regs, &bad);
				else
					x[k] = rans_step(x[k], &wp[k], o, fused, dq, kind, tab[k]);
			}
		}
		end_run(cur, K, wp);
	}
	if (bad)
		return LCP_ERR_FORMAT;
	if (fused && kind == OUT_BF16_NORMAL && (t & 1)) /* the last step's pair is alone */
#pragma GCC unroll 8
		for (unsigned k = 0; k < K; k++)
			store16(kind, out0 + k * block_bytes + (size_t)16u * (t - 1) * eb, held[k], 0xffff);
	for (unsigned k = 0; k < K; k++) {
		uint32_t xs[LCP_RANS_MAX_LANES];
		_mm512_storeu_si512(xs, x[k]);
		lcp_err err = lcp_rans_finish(&b[k], 16, xs, cur[k].p, cur[k].end, 16u * t);
		if (err)
			return err;
		if (f && 16u * t < b[k].stop) { /* the codes the scalar finish decoded */
			uint64_t e0 = first[k] + 16u * t;
			struct lcp_dequant_run r = {
				.codes = b[k].out + 16u * t, .n = b[k].stop - 16u * t,
				.group_size = f->group_size, .phase = (uint32_t)(e0 % f->group_size),
				.sd = f->sd + e0 / f->group_size, .off = f->off + e0 / f->group_size,
				.out = f->out + e0 * eb,
			};
			if (dq) {
				uint32_t qk = st[k] & 0xffffu, sk = st[k] >> 16;
				lcp_dequant_store_dq(dequant_store, &r, f->dt, &qk, &sk);
			} else {
				dequant_run(&r, kind, false);
			}
		}
	}
	return LCP_OK;
}

/*
 * One step of a pair stream (codec_format.h, code mode 3), fused: the 16
 * pair symbols come out of the table entries' low bytes, the 16 nibble
 * bytes from nib; lane l's codes are elements 32t + l (vector a: its high
 * nibble is the symbol's low one) and 32t + 16 + l (vector b), each formed
 * by one bit select (0xe4: c ? a : b, c = the high-nibble mask), and
 * dequantized as the reference does: (float)code - off is exact, then one
 * binary32 multiply. a and b are the groups of the two vectors. e holds
 * the lanes' table entries (gathered by the caller, see decode_pairs_group).
 */
struct pair_out {
	uint8_t *out;
	const float *sd_a, *off_a, *sd_b, *off_b;
};

INLINE AVX512 __m512i pair_step(__m512i x, __m512i e, const uint8_t **p, const uint8_t *nib,
				struct pair_out o, enum out_kind kind)
{
	const __m512i high = _mm512_set1_epi32(0xf0);
	__m512i lo = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(const void *)nib));
	__m512i ca = _mm512_ternarylogic_epi32(_mm512_slli_epi32(e, 4), lo, high, 0xe4);
	__m512i cb = _mm512_ternarylogic_epi32(e, _mm512_srli_epi32(lo, 4), high, 0xe4);
	__m512 ya = _mm512_mul_ps(_mm512_set1_ps(*o.sd_a),
				  _mm512_sub_ps(_mm512_cvtepi32_ps(ca), _mm512_set1_ps(*o.off_a)));
	__m512 yb = _mm512_mul_ps(_mm512_set1_ps(*o.sd_b),
				  _mm512_sub_ps(_mm512_cvtepi32_ps(cb), _mm512_set1_ps(*o.off_b)));
	unsigned eb = kind == OUT_F32 ? 4 : 2;
	if (kind == OUT_BF16_NORMAL) {
		_mm512_storeu_si512(o.out, bf16_32_normal(ya, yb));
	} else if (kind == OUT_F16) {
		/* vcvtps2ph into a register, then the store: compilers fold the
		 * two into vcvtps2ph to memory, which this CPU (Zen 5) runs at
		 * 0.35 ns against 0.21 ns for the pair (microbenchmark of 16-value
		 * conversions); the empty asm keeps the register form. */
		__m256i ha = f16_16(ya), hb = f16_16(yb);
		__asm__("" : "+v"(ha), "+v"(hb));
		_mm256_storeu_si256((__m256i *)(void *)o.out, ha);
		_mm256_storeu_si256((__m256i *)(void *)(o.out + 32), hb);
	} else {
		store16(kind, o.out, ya, 0xffff);
		store16(kind, o.out + 16u * eb, yb, 0xffff);
	}
	return rans_advance(x, e, p);
}

/*
 * The pair-stream twin of decode_group (fused only): K blocks of 16 lanes
 * side by side while every block has a whole 32-element step of codes left,
 * then each block's last pairs by lcp_rans_finish, their codes unpaired
 * into f->codes and stored by dequant_run.
 */
INLINE AVX512 lcp_err decode_pairs_group(const struct lcp_rans_block *b, unsigned K,
					 const uint8_t *readable_end, const struct lcp_rans_fuse *f,
					 enum out_kind kind)
{
	unsigned eb = kind == OUT_F32 ? 4 : 2, glog = 0;
	while ((1u << glog) < f->group_size)
		glog++;
	uint64_t B = f->block_elems, pb = lcp_pairs_in(B);
	uint64_t first[MAX_GROUP], n[MAX_GROUP];
	__m512i x[MAX_GROUP];
	struct lcp_rans_cursor cur[MAX_GROUP];
	const uint8_t *wp[MAX_GROUP];
	if (start_blocks(b, K, readable_end, x, cur))
		return LCP_ERR_FORMAT;
	uint32_t steps = UINT32_MAX;
#pragma GCC unroll 8
	for (unsigned k = 0; k < K; k++) {
		first[k] = f->first + k * B;
		n[k] = f->m - first[k] < B ? f->m - first[k] : B;
		/* whole steps only: a block's last pairs may hold padding */
		steps = n[k] / 32u < steps ? (uint32_t)(n[k] / 32u) : steps;
	}
	/* As in decode_group: locals, one table, consecutive blocks. */
	const struct lcp_rans_dec *tab = b[0].table;
	const uint8_t *nib0 = f->nibbles + first[0] / B * pb;
	uint8_t *out0 = f->out + first[0] * eb;
	const float *sd0 = f->sd + (first[0] >> glog), *off0 = f->off + (first[0] >> glog);
	size_t block_bytes = (size_t)B * eb, block_groups = (size_t)(B >> glog);
	uint32_t t = 0;
	while (t < steps) {
		uint32_t run = start_run(cur, K, readable_end, steps - t, wp, LCP_RANS_STEP_BYTES);
		if (run == 0)
			break; /* only a damaged block reads past its copy */
		for (uint32_t j = 0; j < run; j++, t++) {
			/* The K blocks' gathers first, back to back, then their
			 * steps: against each step gathering for itself (the
			 * compiler interleaved one gather with the other steps'
			 * work), the 8-bit decode gained 2.1-2.2% (F32), 3.3-6.0%
			 * (F16) and 3.1-4.5% (BF16) (same-process A/B, three runs
			 * per row, a Q4_0 pass before each decode as in the
			 * decode benchmark). */
			__m512i e[MAX_GROUP];
#pragma GCC unroll 8
			for (unsigned k = 0; k < K; k++)
				e[k] = gather_slots(_mm512_and_si512(x[k], _mm512_set1_epi32(LCP_RANS_SCALE - 1)), tab);
#pragma GCC unroll 8
			for (unsigned k = 0; k < K; k++) {
				size_t ga = k * block_groups + ((32u * t) >> glog);
				size_t gb = k * block_groups + ((32u * t + 16u) >> glog);
				struct pair_out o = { out0 + k * block_bytes + (size_t)32u * t * eb,
						      sd0 + ga, off0 + ga, sd0 + gb, off0 + gb };
				for (unsigned c = 0; c < 32u * eb; c += 64)
					__builtin_prefetch((const void *)((uintptr_t)o.out + c + OUT_PREFETCH_BYTES), 1, 3);
				x[k] = pair_step(x[k], e[k], &wp[k], nib0 + k * pb + 16u * t, o, kind);
			}
		}
		end_run(cur, K, wp);
	}
	/* The states leave their registers once, here: with x indexed by the
	 * loop below (not unrolled), the compiler stored x[k] to the stack at
	 * every step (1.1% of the 8-bit decode, median of 9 same-process A/B
	 * runs over F32, F16 and BF16). */
	uint32_t xs[MAX_GROUP][LCP_RANS_MAX_LANES];
#pragma GCC unroll 8
	for (unsigned k = 0; k < K; k++)
		_mm512_storeu_si512(xs[k], x[k]);
	for (unsigned k = 0; k < K; k++) {
		lcp_err err = lcp_rans_finish(&b[k], 16, xs[k], cur[k].p, cur[k].end, 16u * t);
		if (err)
			return err;
		uint64_t e0 = 32u * t;
		if (e0 < n[k]) { /* the codes of the pairs the scalar finish decoded */
			uint8_t *codes = f->codes + first[k];
			lcp_pairs_unpair(b[k].out, nib0 + k * pb, e0, n[k], codes);
			struct lcp_dequant_run r = {
				.codes = codes + e0, .n = (uint32_t)(n[k] - e0), .group_size = f->group_size,
				.phase = (uint32_t)((first[k] + e0) % f->group_size),
				.sd = f->sd + (first[k] + e0) / f->group_size,
				.off = f->off + (first[k] + e0) / f->group_size,
				.out = f->out + (first[k] + e0) * eb,
			};
			dequant_run(&r, kind, false);
		}
	}
	return LCP_OK;
}

/* Instances of decode_group for K blocks, symbols only or fused per output,
 * with or without dependent quantization. */
#define GROUP_AS(name, K, fused, dq, kind, alias)                                              \
	static AVX512 lcp_err name(const struct lcp_rans_block *b, const uint8_t *end,         \
				   const struct lcp_rans_fuse *f)                                \
	{                                                                                        \
		return decode_group(b, K, end, fused, f, dq, kind, alias);                       \
	}
#define GROUP(name, K, fused, dq, kind) GROUP_AS(name, K, fused, dq, kind, false)
/* Fused decoding runs 4 blocks side by side: 8 blocks' output streams and
 * registers decoded the decode benchmark's matrix 8% slower (4-bit into
 * F32, three alternating runs: 0.49-0.51 against 0.45 ns per weight), with
 * no gain on a chunk in cache. */
#define FUSED(suffix, dq, kind)                                                                \
	GROUP(group4##suffix, 4, true, dq, kind)                                               \
	GROUP(group2##suffix, 2, true, dq, kind)                                               \
	GROUP(group1##suffix, 1, true, dq, kind)
GROUP(group8, 8, false, false, OUT_F32)
GROUP(group4, 4, false, false, OUT_F32)
GROUP(group3, 3, false, false, OUT_F32) /* the three planes of a side stream */
GROUP(group2, 2, false, false, OUT_F32)
GROUP(group1, 1, false, false, OUT_F32)
FUSED(_f32, false, OUT_F32)
FUSED(_f16, false, OUT_F16)
FUSED(_bf16, false, OUT_BF16_FINITE)
FUSED(_bf16n, false, OUT_BF16_NORMAL)
FUSED(_f32_dq, true, OUT_F32)
FUSED(_f16_dq, true, OUT_F16)
FUSED(_bf16_dq, true, OUT_BF16_FINITE)
FUSED(_bf16n_dq, true, OUT_BF16_NORMAL)
/* Alias streams: symbols, and fused (dependent quantization only). */
GROUP_AS(alias8, 8, false, false, OUT_F32, true)
GROUP_AS(alias4, 4, false, false, OUT_F32, true)
GROUP_AS(alias2, 2, false, false, OUT_F32, true)
GROUP_AS(alias1, 1, false, false, OUT_F32, true)
#define ALIAS_FUSED(suffix, kind)                                                              \
	GROUP_AS(alias4##suffix, 4, true, true, kind, true)                                    \
	GROUP_AS(alias2##suffix, 2, true, true, kind, true)                                    \
	GROUP_AS(alias1##suffix, 1, true, true, kind, true)
ALIAS_FUSED(_f32, OUT_F32)
ALIAS_FUSED(_f16, OUT_F16)
ALIAS_FUSED(_bf16, OUT_BF16_FINITE)
ALIAS_FUSED(_bf16n, OUT_BF16_NORMAL)

/* Instances of decode_pairs_group, 4 blocks side by side as FUSED. */
#define PAIRS(name, K, kind)                                                                   \
	static AVX512 lcp_err name(const struct lcp_rans_block *b, const uint8_t *end,         \
				   const struct lcp_rans_fuse *f)                                \
	{                                                                                        \
		return decode_pairs_group(b, K, end, f, kind);                                   \
	}
#define PAIRS_FUSED(suffix, kind)                                                              \
	PAIRS(pairs4##suffix, 4, kind)                                                         \
	PAIRS(pairs2##suffix, 2, kind)                                                         \
	PAIRS(pairs1##suffix, 1, kind)
PAIRS_FUSED(_f32, OUT_F32)
PAIRS_FUSED(_f16, OUT_F16)
PAIRS_FUSED(_bf16, OUT_BF16_FINITE)
PAIRS_FUSED(_bf16n, OUT_BF16_NORMAL)

typedef lcp_err (*group_fn)(const struct lcp_rans_block *, const uint8_t *,
			    const struct lcp_rans_fuse *);

/* Decodes nb blocks of 16 lanes, as many side by side as an instance takes
 * (fn[K - 1] decodes K blocks; NULL where there is none; fn[0] is never
 * NULL): the most it can at each call. */
static lcp_err decode_groups(const struct lcp_rans_block *b, unsigned nb,
			     const uint8_t *readable_end, const struct lcp_rans_fuse *f,
			     const group_fn fn[MAX_GROUP])
{
	struct lcp_rans_fuse at;
	if (f)
		at = *f;
	lcp_err err = LCP_OK;
	for (unsigned k = 0; !err && k < nb;) {
		unsigned K = nb - k < MAX_GROUP ? nb - k : MAX_GROUP;
		while (!fn[K - 1])
			K--;
		err = fn[K - 1](b + k, readable_end, f ? &at : NULL);
		k += K;
		if (f)
			at.first += (uint64_t)K * f->block_elems;
	}
	return err;
}

static lcp_err rans_decode(const struct lcp_rans_block *b, unsigned nb, unsigned lanes,
			   const uint8_t *readable_end)
{
	static const group_fn symbols[MAX_GROUP] = { group1, group2, group3, group4,
						     NULL,   NULL,   NULL,   group8 };
	if (lanes != 16)
		return lcp_rans_decode_scalar(b, nb, lanes, readable_end);
	return decode_groups(b, nb, readable_end, NULL, symbols);
}

/* Whether the scales of the groups of the chunk's elements [f->first, end)
 * are all 0 or normal (so vcvtneps2bf16 narrows their values exactly). */
static AVX512 bool scales_zero_or_normal(const struct lcp_rans_fuse *f, uint64_t end)
{
	uint64_t g0 = f->first / f->group_size;
	uint64_t g1 = (end + f->group_size - 1) / f->group_size;
	const __m512i abs_mask = _mm512_set1_epi32(0x7fffffff);
	__mmask16 bad = 0;
	for (uint64_t g = g0; g < g1; g += 16) {
		__mmask16 m = g1 - g >= 16 ? 0xffff : (__mmask16)((1u << (g1 - g)) - 1u);
		__m512i a = _mm512_and_si512(_mm512_maskz_loadu_epi32(m, f->sd + g), abs_mask);
		/* subnormal: 0 < |sd| < 2^-126, i.e. |sd| - 1 < 2^-126 - 1 unsigned */
		bad |= _mm512_mask_cmplt_epu32_mask(m, _mm512_sub_epi32(a, _mm512_set1_epi32(1)),
						     _mm512_set1_epi32(0x007fffff));
	}
	return bad == 0;
}

/* Pair streams (f->nibbles set): fused where the blocks are whole steps
 * and groups hold whole 16-code vectors, else symbols, codes, then
 * dequant_store. */
static lcp_err fused_pairs(const struct lcp_rans_block *b, unsigned nb, unsigned lanes,
			   const uint8_t *readable_end, const struct lcp_rans_fuse *f, bool bf16_ext,
			   bool one_table)
{
#define PAIRS_FNS(suffix) { pairs1##suffix, pairs2##suffix, NULL, pairs4##suffix, NULL, NULL, NULL, NULL }
	static const group_fn f32[MAX_GROUP] = PAIRS_FNS(_f32), f16[MAX_GROUP] = PAIRS_FNS(_f16);
	static const group_fn bf16[MAX_GROUP] = PAIRS_FNS(_bf16), bf16n[MAX_GROUP] = PAIRS_FNS(_bf16n);
#undef PAIRS_FNS
	if (lanes == 16 && nb > 0 && one_table && f->group_size >= 16 &&
	    !(f->group_size & (f->group_size - 1)) && f->block_elems % 32 == 0 &&
	    f->block_elems % f->group_size == 0 && f->first % f->block_elems == 0) {
		if (f->dt == LCP_DTYPE_F32)
			return decode_groups(b, nb, readable_end, f, f32);
		if (f->dt == LCP_DTYPE_F16)
			return decode_groups(b, nb, readable_end, f, f16);
		if (f->dt == LCP_DTYPE_BF16 && bf16_ext &&
		    scales_zero_or_normal(f, f->first + nb * f->block_elems < f->m
						     ? f->first + nb * f->block_elems : f->m))
			return decode_groups(b, nb, readable_end, f, bf16n);
		if (f->dt == LCP_DTYPE_BF16)
			return decode_groups(b, nb, readable_end, f, bf16);
	}
	lcp_err err = rans_decode(b, nb, lanes, readable_end);
	uint64_t B = f->block_elems, pb = lcp_pairs_in(B);
	for (unsigned k = 0; !err && k < nb; k++) {
		uint64_t e0 = f->first + (uint64_t)k * B, n = f->m - e0 < B ? f->m - e0 : B;
		lcp_pairs_unpair(b[k].out, f->nibbles + e0 / B * pb, 0, n, f->codes + e0);
		struct lcp_dequant_run r = {
			.codes = f->codes + e0, .n = (uint32_t)n, .group_size = f->group_size,
			.phase = (uint32_t)(e0 % f->group_size), .sd = f->sd + e0 / f->group_size,
			.off = f->off + e0 / f->group_size, .out = f->out + e0 * lcp_codec_elem_bytes(f->dt),
		};
		dequant_store(&r, f->dt);
	}
	return err;
}

static bool one_table(const struct lcp_rans_block *b, unsigned nb)
{
	for (unsigned k = 1; k < nb; k++)
		if (b[k].table != b[0].table)
			return false;
	return true;
}

/* rans_decode of alias blocks (one stream's, so one table). */
static lcp_err alias_decode(const struct lcp_rans_block *b, unsigned nb, unsigned lanes,
			    const uint8_t *readable_end)
{
	static const group_fn symbols[MAX_GROUP] = { alias1, alias2, NULL, alias4,
						     NULL,   NULL,   NULL, alias8 };
	if (lanes != 16 || !one_table(b, nb))
		return lcp_alias_decode_scalar(b, nb, lanes, readable_end);
	return decode_groups(b, nb, readable_end, NULL, symbols);
}

/* Rows [dq][alias] of fused instances: alias streams hold dependent
 * quantization's codes only. */
#define FUSED_FNS(suffix) { group1##suffix, group2##suffix, NULL, group4##suffix, NULL, NULL, NULL, NULL }
#define ALIAS_FNS(suffix) { alias1##suffix, alias2##suffix, NULL, alias4##suffix, NULL, NULL, NULL, NULL }
#define NO_FNS { NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL }
#define FUSED_ROWS(suffix) { { FUSED_FNS(suffix), NO_FNS }, { FUSED_FNS(suffix##_dq), ALIAS_FNS(suffix) } }

static lcp_err fused(const struct lcp_rans_block *b, unsigned nb, unsigned lanes,
		     const uint8_t *readable_end, const struct lcp_rans_fuse *f, bool bf16_ext,
		     bool alias)
{
	static const group_fn f32[2][2][MAX_GROUP] = FUSED_ROWS(_f32);
	static const group_fn f16[2][2][MAX_GROUP] = FUSED_ROWS(_f16);
	static const group_fn bf16[2][2][MAX_GROUP] = FUSED_ROWS(_bf16);
	static const group_fn bf16n[2][2][MAX_GROUP] = FUSED_ROWS(_bf16n);
	bool same_table = one_table(b, nb);
	if (f->nibbles)
		return fused_pairs(b, nb, lanes, readable_end, f, bf16_ext, same_table);
	if (lanes == 16 && nb > 0 && same_table && (f->dq || !alias) && f->group_size >= 16 &&
	    !(f->group_size & (f->group_size - 1)) && f->block_elems % f->group_size == 0 &&
	    f->first % f->block_elems == 0) {
		if (f->dt == LCP_DTYPE_F32)
			return decode_groups(b, nb, readable_end, f, f32[f->dq][alias]);
		if (f->dt == LCP_DTYPE_F16)
			return decode_groups(b, nb, readable_end, f, f16[f->dq][alias]);
		if (f->dt == LCP_DTYPE_BF16 && bf16_ext &&
		    scales_zero_or_normal(f, f->first + (uint64_t)(nb - 1) * f->block_elems + b[nb - 1].stop))
			return decode_groups(b, nb, readable_end, f, bf16n[f->dq][alias]);
		if (f->dt == LCP_DTYPE_BF16)
			return decode_groups(b, nb, readable_end, f, bf16[f->dq][alias]);
	}
	/* Not fusable: decode, then dequantize the blocks' codes. */
	lcp_err err = alias ? alias_decode(b, nb, lanes, readable_end)
			    : rans_decode(b, nb, lanes, readable_end);
	for (unsigned k = 0; !err && k < nb; k++) {
		uint64_t e0 = f->first + (uint64_t)k * f->block_elems;
		struct lcp_dequant_run r = {
			.codes = b[k].out, .n = b[k].stop, .group_size = f->group_size,
			.phase = (uint32_t)(e0 % f->group_size), .sd = f->sd + e0 / f->group_size,
			.off = f->off + e0 / f->group_size, .out = f->out + e0 * lcp_codec_elem_bytes(f->dt),
		};
		uint32_t q = 0, s0 = 0;
		if (f->dq)
			lcp_dequant_store_dq(dequant_store, &r, f->dt, &q, &s0);
		else
			dequant_store(&r, f->dt);
	}
	return err;
}

#undef FUSED_ROWS
#undef NO_FNS
#undef ALIAS_FNS
#undef FUSED_FNS

static lcp_err rans_decode_fused(const struct lcp_rans_block *b, unsigned nb, unsigned lanes,
				 const uint8_t *readable_end, const struct lcp_rans_fuse *f)
{
	return fused(b, nb, lanes, readable_end, f, false, false);
}

static lcp_err rans_decode_fused_bf16(const struct lcp_rans_block *b, unsigned nb, unsigned lanes,
				      const uint8_t *readable_end, const struct lcp_rans_fuse *f)
{
	return fused(b, nb, lanes, readable_end, f, true, false);
}

static lcp_err alias_decode_fused(const struct lcp_rans_block *b, unsigned nb, unsigned lanes,
				  const uint8_t *readable_end, const struct lcp_rans_fuse *f)
{
	return fused(b, nb, lanes, readable_end, f, false, true);
}

static lcp_err alias_decode_fused_bf16(const struct lcp_rans_block *b, unsigned nb, unsigned lanes,
				       const uint8_t *readable_end, const struct lcp_rans_fuse *f)
{
	return fused(b, nb, lanes, readable_end, f, true, true);
}

/* lcp_side_params_ref on 16 groups at a time: the scale tables through
 * gathers, the exact power-of-two scaling of lcp_qscale_pow2 as an exponent
 * subtraction; 16 groups of which one needs its other branch (a subnormal
 * result) go through the reference. */
static AVX512 void side_params(const struct lcp_side_params *p)
{
	const uint8_t *side = p->side;
	uint64_t ng = p->ng, i = 0;
	for (; i + 16 <= p->count; i += 16) {
		uint64_t g = p->g0 + i;
		__m512i aux = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(const void *)(side + p->sbytes * ng + g)));
		__m512i c0 = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(const void *)(side + g)));
		__m512i sc, oct, v;
		if (p->sbytes == 1) {
			/* 16 steps an octave: k < 16, the fractions in one register
			 * (a gather of scale8 here was 3% of the 4-bit decode) */
			sc = c0;
			__m512i e = _mm512_sub_epi32(_mm512_set1_epi32(255), sc);
			oct = _mm512_srli_epi32(_mm512_add_epi32(e, _mm512_set1_epi32(15)), 4);
			__m512i k = _mm512_sub_epi32(_mm512_slli_epi32(oct, 4), e);
			v = _mm512_castps_si512(_mm512_permutexvar_ps(k, _mm512_loadu_ps(p->frac16)));
		} else {
			__m512i c1 = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(const void *)(side + ng + g)));
			sc = _mm512_or_si512(_mm512_slli_epi32(c0, 8), c1);
			__m512i e = _mm512_sub_epi32(_mm512_set1_epi32(65535), sc);
			oct = _mm512_srli_epi32(_mm512_add_epi32(e, _mm512_set1_epi32(255)), 8);
			__m512i k = _mm512_sub_epi32(_mm512_slli_epi32(oct, 8), e);
			v = _mm512_castps_si512(_mm512_i32gather_ps(k, p->frac16, 4));
		}
		__m512i ex = _mm512_and_si512(_mm512_srli_epi32(v, 23), _mm512_set1_epi32(0xff));
		__mmask16 normal = _mm512_cmpneq_epi32_mask(ex, _mm512_set1_epi32(0xff)) &
				   _mm512_cmpgt_epu32_mask(ex, oct);
		__mmask16 zero = _mm512_cmpeq_epi32_mask(sc, _mm512_setzero_si512());
		if ((__mmask16)(normal | zero) != 0xffff) {
			struct lcp_side_params q = *p;
			q.g0 = g;
			q.count = 16;
			q.sd = p->sd + i;
			q.off = p->off + i;
			lcp_side_params_ref(&q);
			continue;
		}
		__m512 s = _mm512_castsi512_ps(_mm512_maskz_sub_epi32((__mmask16)~zero, v, _mm512_slli_epi32(oct, 23)));
		__m512 off;
		if (p->symmetric) {
			__mmask16 neg = _mm512_cmpneq_epi32_mask(aux, _mm512_setzero_si512());
			s = _mm512_castsi512_ps(_mm512_mask_xor_epi32(_mm512_castps_si512(s), neg, _mm512_castps_si512(s),
								      _mm512_set1_epi32((int)0x80000000u)));
			off = _mm512_set1_ps(p->sym_off);
		} else {
			off = _mm512_cvtepi32_ps(aux);
		}
		_mm512_storeu_ps(p->sd + i, s);
		_mm512_storeu_ps(p->off + i, off);
	}
	if (i < p->count) {
		struct lcp_side_params q = *p;
		q.g0 = p->g0 + i;
		q.count = p->count - i;
		q.sd = p->sd + i;
		q.off = p->off + i;
		lcp_side_params_ref(&q);
	}
}

const struct lcp_kernels lcp_kernels_avx512 = { "avx512", rans_decode, rans_decode_fused,
						 dequant_store, side_params, lcp_dq_classes_fast,
						 alias_decode, alias_decode_fused };
const struct lcp_kernels lcp_kernels_avx512bf16 = { "avx512bf16", rans_decode,
						     rans_decode_fused_bf16, dequant_store,
						     side_params, lcp_dq_classes_fast,
						     alias_decode, alias_decode_fused_bf16 };

#else
/* ISO C wants at least one declaration in a translation unit. */
typedef int lcp_kernels_avx512_unavailable;
#endif
