/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Static interleaved rANS (rans.h): frequency normalization, the serialized
 * table, the encoder (whole 16-lane steps through rans_x86.c where the CPU
 * has AVX-512) and the reference decoder.
 */
#include "codec/rans.h"

#include <assert.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "common/le.h"

/* Histograms are scaled below this before the cost comparisons, whose
 * products of a count and a frequency must fit in 64 bits. */
#define HIST_MAX ((uint64_t)1 << 40)

void lcp_rans_normalize(const uint64_t hist_in[256], uint16_t freq[256])
{
	uint64_t hist[256], n = 0, top = 0;
	unsigned distinct = 0, last = 0;
	for (unsigned s = 0; s < 256; s++)
		top = hist_in[s] > top ? hist_in[s] : top;
	unsigned shift = 0;
	while ((top >> shift) >= HIST_MAX)
		shift++;
	for (unsigned s = 0; s < 256; s++) {
		uint64_t h = hist_in[s] >> shift;
		hist[s] = hist_in[s] && !h ? 1 : h;
		n += hist[s];
		if (hist[s]) {
			distinct++;
			last = s;
		}
		freq[s] = 0;
	}
	if (distinct < 2) { /* one symbol (or none): keep every frequency < 4096 */
		freq[last] = LCP_RANS_SCALE - 1;
		freq[last == 255 ? 254 : last + 1] = 1;
		return;
	}
	uint32_t sum = 0;
	for (unsigned s = 0; s < 256; s++) {
		if (!hist[s])
			continue;
		uint64_t f = (hist[s] * LCP_RANS_SCALE + n / 2) / n;
		freq[s] = (uint16_t)(f ? f : 1);
		sum += freq[s];
	}
	/* Correct the rounding one unit at a time where it costs least: taking
	 * a unit from f costs about hist/(f - 1/2) bits, adding one gains
	 * about hist/(f + 1/2) (compared by cross-multiplying, so no libm). */
	while (sum > LCP_RANS_SCALE) {
		int best = -1;
		for (unsigned s = 0; s < 256; s++)
			if (freq[s] > 1 && (best < 0 || hist[s] * (2u * freq[best] - 1) <
							 hist[best] * (2u * freq[s] - 1)))
				best = (int)s;
		freq[best]--;
		sum--;
	}
	while (sum < LCP_RANS_SCALE) {
		int best = -1;
		for (unsigned s = 0; s < 256; s++)
			if (hist[s] && (best < 0 || hist[s] * (2u * freq[best] + 1) >
							hist[best] * (2u * freq[s] + 1)))
				best = (int)s;
		freq[best]++;
		sum++;
	}
}

struct bitw {
	uint8_t *out;
	size_t len;
	uint64_t acc;
	unsigned nbits;
};

static void put_bits(struct bitw *w, uint32_t v, unsigned nbits)
{
	w->acc |= (uint64_t)v << w->nbits;
	w->nbits += nbits;
	while (w->nbits >= 8) {
		w->out[w->len++] = (uint8_t)w->acc;
		w->acc >>= 8;
		w->nbits -= 8;
	}
}

static unsigned bit_length(uint32_t v)
{
	unsigned k = 0;
	while (v >> k)
		k++;
	return k;
}

size_t lcp_rans_table_write(const uint16_t freq[256], uint8_t *out)
{
	unsigned lo = 0, hi = 255;
	while (freq[lo] == 0)
		lo++;
	while (freq[hi] == 0)
		hi--;
	assert(lo < hi);
	struct bitw w = { out, 2, 0, 0 };
	out[0] = (uint8_t)lo;
	out[1] = (uint8_t)hi;
	for (unsigned s = lo; s < hi;) {
		if (freq[s] == 0) {
			unsigned run = 1;
			while (run < 16 && freq[s + run] == 0)
				run++;
			put_bits(&w, 0, 4);
			put_bits(&w, run - 1, 4);
			s += run;
			continue;
		}
		unsigned k = bit_length(freq[s]);
		put_bits(&w, k, 4);
		put_bits(&w, freq[s] - (1u << (k - 1)), k - 1);
		s++;
	}
	if (w.nbits)
		put_bits(&w, 0, 8 - w.nbits);
	return w.len;
}

struct bitr {
	const uint8_t *in;
	size_t len, pos; /* pos in bits */
};

/* The next bits at pos, LSB first (at least 56 of them; bytes past the
 * input read as 0): one little-endian load where 8 bytes are there. */
static inline uint64_t peek_bits(const struct bitr *r)
{
	size_t at = r->pos / 8;
	uint64_t w = 0;
	if (at + 8 <= r->len)
		w = lcp_load_le64(r->in + at);
	else
		for (unsigned i = 0; at + i < r->len; i++)
			w |= (uint64_t)r->in[at + i] << (8 * i);
	return w >> (r->pos % 8);
}

/* Moves past nbits; false when that runs past the input. */
static inline bool skip_bits(struct bitr *r, unsigned nbits)
{
	if (nbits > r->len * 8 - r->pos)
		return false;
	r->pos += nbits;
	return true;
}

/* Parsed per chunk and per side plane, so each field is taken from one
 * 64-bit window (the k nibble and its value together). */
lcp_err lcp_rans_table_read(const uint8_t *in, size_t len, size_t *used, uint16_t freq[256])
{
	if (len < 2)
		return LCP_ERR_TRUNCATED;
	unsigned lo = in[0], hi = in[1];
	if (lo >= hi)
		return LCP_ERR_FORMAT;
	memset(freq, 0, 256 * sizeof *freq);
	struct bitr r = { in + 2, len - 2, 0 };
	uint32_t sum = 0;
	for (unsigned s = lo; s < hi;) {
		uint64_t w = peek_bits(&r);
		uint32_t k = (uint32_t)w & 15u, v;
		if (k == 0) {
			v = (uint32_t)(w >> 4) & 15u;
			if (!skip_bits(&r, 8))
				return LCP_ERR_TRUNCATED;
			if (v + 1 > hi - s)
				return LCP_ERR_FORMAT; /* the last symbol is never in a run */
			s += v + 1;
			continue;
		}
		if (k > LCP_RANS_PROB_BITS)
			return LCP_ERR_FORMAT;
		v = (uint32_t)(w >> 4) & ((1u << (k - 1)) - 1u);
		if (!skip_bits(&r, 4 + k - 1))
			return LCP_ERR_TRUNCATED;
		freq[s] = (uint16_t)((1u << (k - 1)) + v);
		sum += freq[s];
		if (sum >= LCP_RANS_SCALE)
			return LCP_ERR_FORMAT; /* the last symbol needs f >= 1 */
		s++;
	}
	freq[hi] = (uint16_t)(LCP_RANS_SCALE - sum);
	if (freq[hi] == LCP_RANS_SCALE)
		return LCP_ERR_FORMAT; /* a single symbol would have f = 4096 */
	*used = 2 + (r.pos + 7) / 8;
	return LCP_OK;
}

void lcp_rans_enc_init(struct lcp_rans_enc *e, const uint16_t freq[256])
{
	uint32_t c = 0;
	for (unsigned s = 0; s < 256; s++) {
		e->freq[s] = freq[s];
		e->cum[s] = c;
		e->rcp[s] = freq[s] >= 2 ? UINT64_MAX / freq[s] + 1 : 0;
		e->freq_cum[s] = freq[s] | c << 16;
		e->rcp_f64[s] = freq[s] ? 1.0 / freq[s] : 0.0;
		c += freq[s];
	}
}

/* x / f for the encoder (rcp: lcp_rans_enc.rcp of f). */
static inline uint32_t div_freq(uint32_t x, uint32_t f, uint64_t rcp)
{
#ifdef __SIZEOF_INT128__
	__extension__ typedef unsigned __int128 u128;
	return f == 1 ? x : (uint32_t)(((u128)x * rcp) >> 64);
#else
	(void)rcp;
	return x / f;
#endif
}

/* Symbols to - 1 down to from of sym into the lane states x, words below
 * *w: the plain-C encoder's loop. */
static void encode_symbols(const struct lcp_rans_enc *e, const uint8_t *sym, uint32_t from,
			   uint32_t to, unsigned lanes, uint32_t *x, uint8_t **w_io)
{
	uint8_t *w = *w_io;
	for (uint32_t i = to; i-- > from;) {
		uint32_t *xl = &x[i & (lanes - 1)], v = *xl;
		uint32_t f = e->freq[sym[i]];
		assert(f > 0);
		/* Largest state that still encodes below 2^32 after this symbol:
		 * ((LOW >> PROB_BITS) << 16) * f. Branch-free renormalization
		 * (the branch is taken about once per 16 bits of output, too
		 * irregularly to predict): the word is always stored below w,
		 * where it is either kept or overwritten by the next one; w
		 * never drops below the lane states' room, so w - 2 stays in
		 * out. */
		uint32_t out16 = v >= f << (32 - LCP_RANS_PROB_BITS);
		lcp_store_le16(w - 2, (uint16_t)v);
		w -= 2 * out16;
		v >>= 16 * out16;
		uint32_t q = div_freq(v, f, e->rcp[sym[i]]);
		*xl = (q << LCP_RANS_PROB_BITS) + (v - q * f) + e->cum[sym[i]];
	}
	*w_io = w;
}

#ifdef LCP_HAVE_RANS_X86
static bool use_avx512;
static pthread_once_t avx512_once = PTHREAD_ONCE_INIT;

static void check_avx512(void)
{
	use_avx512 = lcp_rans_avx512_available();
}
#endif

/* The block's encoding; with simd, whole 16-lane steps by AVX-512. */
static size_t encode(const struct lcp_rans_enc *e, const uint8_t *sym, uint32_t n, unsigned lanes,
		     uint8_t *out, bool simd)
{
	assert(lanes >= 1 && lanes <= LCP_RANS_MAX_LANES && (lanes & (lanes - 1)) == 0);
	uint32_t x[LCP_RANS_MAX_LANES];
	for (unsigned l = 0; l < lanes; l++)
		x[l] = LCP_RANS_LOW;
	/* Symbols are encoded last to first and words written backwards from
	 * the end of the bound, so the decoder reads both forwards. */
	uint8_t *end = out + lcp_rans_block_bound(n, lanes), *w = end;
	uint32_t whole = 0; /* symbols [0, whole) in whole 16-lane steps */
#ifdef LCP_HAVE_RANS_X86
	if (simd && lanes == 16)
		whole = n / 16 * 16;
#else
	(void)simd;
#endif
	encode_symbols(e, sym, whole, n, lanes, x, &w);
#ifdef LCP_HAVE_RANS_X86
	if (whole)
		w = lcp_rans_encode_steps_avx512(e, sym, whole / 16, x, w);
#endif
	w -= 4u * lanes;
	for (unsigned l = 0; l < lanes; l++)
		lcp_store_le32(w + 4u * l, x[l]);
	size_t len = (size_t)(end - w);
	memmove(out, w, len);
	return len;
}

size_t lcp_rans_encode_ref(const struct lcp_rans_enc *e, const uint8_t *sym, uint32_t n,
			   unsigned lanes, uint8_t *out)
{
	return encode(e, sym, n, lanes, out, false);
}

size_t lcp_rans_encode(const struct lcp_rans_enc *e, const uint8_t *sym, uint32_t n, unsigned lanes,
		       uint8_t *out)
{
	bool simd = false;
#ifdef LCP_HAVE_RANS_X86
	pthread_once(&avx512_once, check_avx512);
	simd = use_avx512;
#endif
	return encode(e, sym, n, lanes, out, simd);
}

void lcp_rans_dec_init(struct lcp_rans_dec *d, const uint16_t freq[256])
{
	/* Built per chunk and per side plane, so 16 slots a pass whatever f
	 * (the slots past a symbol's are overwritten by the next symbol's, or
	 * land in the table's padding): one pass for most symbols, and no
	 * loop exit that depends on f % 4. Slot c + k holds base + k << 20.
	 * AVX-512 stores the 16 at once: the 8-bit preset fills three or four
	 * tables per chunk (side planes), 3% of its decode time (perf) with
	 * 16-byte stores. */
#ifdef LCP_HAVE_RANS_X86
	pthread_once(&avx512_once, check_avx512);
	if (use_avx512) {
		lcp_rans_dec_init_avx512(d, freq);
		return;
	}
#endif
	uint32_t c = 0;
	for (unsigned s = 0; s < 256; s++) {
		uint32_t f = freq[s], base = s | f << 8;
		for (uint32_t k = 0; k < f; k += LCP_RANS_DEC_PAD) {
#ifdef __SSE2__
			__m128i v = _mm_add_epi32(_mm_set1_epi32((int)(base + (k << 20))),
						  _mm_set_epi32(3 << 20, 2 << 20, 1 << 20, 0));
			for (unsigned q = 0; q < LCP_RANS_DEC_PAD; q += 4) {
				_mm_storeu_si128((__m128i *)(void *)(d->slot + c + k + q), v);
				v = _mm_add_epi32(v, _mm_set1_epi32(4 << 20));
			}
#else
			for (uint32_t q = 0; q < LCP_RANS_DEC_PAD; q++)
				d->slot[c + k + q] = base + ((k + q) << 20);
#endif
		}
		c += f;
	}
}

lcp_err lcp_rans_finish(const struct lcp_rans_block *b, unsigned lanes,
			uint32_t x[LCP_RANS_MAX_LANES], const uint8_t *p, const uint8_t *end,
			uint32_t i0)
{
	const struct lcp_rans_dec *d = b->table;
	if (p > end)
		return LCP_ERR_FORMAT; /* a SIMD pass already read past the block */
	for (uint32_t i = i0; i < b->stop; i++) {
		uint32_t *xl = &x[i & (lanes - 1)];
		uint32_t e = d->slot[*xl & (LCP_RANS_SCALE - 1)];
		b->out[i] = (uint8_t)e;
		*xl = (e >> 8 & 0xfffu) * (*xl >> LCP_RANS_PROB_BITS) + (e >> 20);
		if (*xl < LCP_RANS_LOW) {
			if (end - p < 2)
				return LCP_ERR_FORMAT;
			*xl = *xl << 16 | lcp_load_le16(p);
			p += 2;
		}
	}
	if (b->stop < b->n)
		return LCP_OK;
	if (p != end)
		return LCP_ERR_FORMAT;
	for (unsigned l = 0; l < lanes; l++)
		if (x[l] != LCP_RANS_LOW)
			return LCP_ERR_FORMAT;
	return LCP_OK;
}

lcp_err lcp_rans_decode_ref(const struct lcp_rans_block *b, unsigned nb, unsigned lanes,
			    const uint8_t *readable_end)
{
	(void)readable_end; /* reads stay inside each block */
	for (unsigned k = 0; k < nb; k++) {
		uint32_t x[LCP_RANS_MAX_LANES];
		if (b[k].len < 4u * lanes)
			return LCP_ERR_FORMAT;
		for (unsigned l = 0; l < lanes; l++)
			x[l] = lcp_load_le32(b[k].in + 4u * l);
		lcp_err err = lcp_rans_finish(&b[k], lanes, x, b[k].in + 4u * lanes,
					      b[k].in + b[k].len, 0);
		if (err)
			return err;
	}
	return LCP_OK;
}
