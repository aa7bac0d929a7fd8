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

/* Steps to - 1 down to from of an alias block (below). */
static void alias_encode_steps(const struct lcp_rans_alias_enc *e, const uint8_t *sym, uint32_t n,
			       unsigned lanes, uint32_t from, uint32_t to, uint32_t *x, uint8_t **w_io);

/* The block's encoding by e, or (ae set) as an alias block by ae; with
 * simd, whole 16-lane steps by AVX-512. */
static size_t encode(const struct lcp_rans_enc *e, const struct lcp_rans_alias_enc *ae,
		     const uint8_t *sym, uint32_t n, unsigned lanes, uint8_t *out, bool simd)
{
	assert(lanes >= 1 && lanes <= LCP_RANS_MAX_LANES && (lanes & (lanes - 1)) == 0);
	uint32_t x[LCP_RANS_MAX_LANES];
	for (unsigned l = 0; l < lanes; l++)
		x[l] = LCP_RANS_LOW;
	/* Symbols are encoded last to first and words written backwards from
	 * the end of the bound, so the decoder reads both forwards. */
	uint8_t *end = out + (ae ? lcp_rans_alias_block_bound(n, lanes) : lcp_rans_block_bound(n, lanes));
	uint8_t *w = end;
	uint32_t whole = 0; /* steps [0, whole) of 16 lanes by AVX-512 */
#ifdef LCP_HAVE_RANS_X86
	if (simd && lanes == 16)
		whole = n / 16;
#else
	(void)simd;
#endif
	if (ae)
		alias_encode_steps(ae, sym, n, lanes, whole, (n + lanes - 1) / lanes, x, &w);
	else
		encode_symbols(e, sym, 16 * whole, n, lanes, x, &w);
#ifdef LCP_HAVE_RANS_X86
	if (whole && ae)
		w = lcp_rans_alias_encode_steps_avx512(ae, sym, whole, x, w);
	else if (whole)
		w = lcp_rans_encode_steps_avx512(e, sym, whole, x, w);
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
	return encode(e, NULL, sym, n, lanes, out, false);
}

size_t lcp_rans_encode(const struct lcp_rans_enc *e, const uint8_t *sym, uint32_t n, unsigned lanes,
		       uint8_t *out)
{
	bool simd = false;
#ifdef LCP_HAVE_RANS_X86
	pthread_once(&avx512_once, check_avx512);
	simd = use_avx512;
#endif
	return encode(e, NULL, sym, n, lanes, out, simd);
}

void lcp_rans_dec_init(struct lcp_rans_dec *d, const uint16_t freq[256])
{
	d->alias = false;
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

/* A block decoded to its stop: when that is its end, every word must be
 * used (p at end) and every lane back at 2^16. */
static lcp_err block_end(const struct lcp_rans_block *b, unsigned lanes, const uint32_t *x,
			 const uint8_t *p, const uint8_t *end)
{
	if (b->stop < b->n)
		return LCP_OK;
	if (p != end)
		return LCP_ERR_FORMAT;
	for (unsigned l = 0; l < lanes; l++)
		if (x[l] != LCP_RANS_LOW)
			return LCP_ERR_FORMAT;
	return LCP_OK;
}

/* The symbol of lane state x in an alias table, x moved past it; 0 for
 * an escape. */
static inline uint8_t alias_symbol(const struct lcp_rans_dec *d, uint32_t *x)
{
	uint32_t u = (*x >> 7) & (LCP_ALIAS_BUCKETS - 1), lo = *x & (LCP_ALIAS_SPAN - 1);
	uint32_t e = d->entry[lo >= d->split[u]][u];
	*x = (e >> 7 & 0xfffu) * (*x >> LCP_RANS_PROB_BITS) + lo + (e >> 19) - LCP_ALIAS_SPAN;
	return (uint8_t)((e & 0x7fu) ? (e & 0x7fu) + 64u : 0u);
}

/* lcp_rans_finish of an alias block (rans.h), step by step from i0, a
 * step's first symbol. */
static lcp_err alias_finish(const struct lcp_rans_block *b, unsigned lanes,
			    uint32_t x[LCP_RANS_MAX_LANES], const uint8_t *p, const uint8_t *end,
			    uint32_t i0)
{
	const struct lcp_rans_dec *d = b->table;
	for (uint32_t i = i0; i < b->stop; i += lanes) {
		unsigned nl = b->n - i < lanes ? b->n - i : lanes;
		unsigned out = b->stop - i < nl ? b->stop - i : nl;
		for (unsigned l = 0; l < out; l++) {
			uint8_t s = alias_symbol(d, &x[l]);
			if (s == 0) {
				if (end - p < 2 || lcp_load_le16(p) > 255)
					return LCP_ERR_FORMAT;
				s = (uint8_t)lcp_load_le16(p);
				p += 2;
			}
			b->out[i + l] = s;
		}
		if (out < nl)
			return LCP_OK; /* a range read's last step: its lanes below stop */
		for (unsigned l = 0; l < nl; l++)
			if (x[l] < LCP_RANS_LOW) {
				if (end - p < 2)
					return LCP_ERR_FORMAT;
				x[l] = x[l] << 16 | lcp_load_le16(p);
				p += 2;
			}
	}
	return block_end(b, lanes, x, p, end);
}

lcp_err lcp_rans_finish(const struct lcp_rans_block *b, unsigned lanes,
			uint32_t x[LCP_RANS_MAX_LANES], const uint8_t *p, const uint8_t *end,
			uint32_t i0)
{
	const struct lcp_rans_dec *d = b->table;
	if (p > end)
		return LCP_ERR_FORMAT; /* a SIMD pass already read past the block */
	if (d->alias)
		return alias_finish(b, lanes, x, p, end, i0);
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
	return block_end(b, lanes, x, p, end);
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

bool lcp_rans_alias_model(const uint16_t freq[256])
{
	unsigned n = 0;
	for (unsigned s = 0; s < 256; s++) {
		if (!freq[s])
			continue;
		if (s != 0 && (s < LCP_ALIAS_SYM_MIN || s > LCP_ALIAS_SYM_MAX))
			return false;
		n++;
	}
	return n <= LCP_ALIAS_BUCKETS;
}

/* The alias map of an alias model (rans.h): each bucket's split, own
 * symbol (sym[u], meaningful where split[u] > 0) and alias symbol
 * (meaningful where split[u] < LCP_ALIAS_SPAN). */
struct alias_map {
	uint32_t split[LCP_ALIAS_BUCKETS];
	uint8_t sym[LCP_ALIAS_BUCKETS], alias[LCP_ALIAS_BUCKETS];
};

static void alias_map(const uint16_t freq[256], struct alias_map *a)
{
	uint32_t rem[LCP_ALIAS_BUCKETS] = {0};
	bool open[LCP_ALIAS_BUCKETS];
	unsigned n = 0;
	for (unsigned s = 0; s < 256; s++)
		if (freq[s]) {
			a->sym[n] = (uint8_t)s;
			rem[n++] = freq[s];
		}
	for (unsigned u = 0; u < LCP_ALIAS_BUCKETS; u++) {
		open[u] = true;
		a->alias[u] = u < n ? a->sym[u] : 0;
		if (u >= n)
			a->sym[u] = 0;
	}
	for (;;) {
		unsigned u = 0, o = 0;
		while (u < LCP_ALIAS_BUCKETS && !(open[u] && rem[u] < LCP_ALIAS_SPAN))
			u++;
		if (u == LCP_ALIAS_BUCKETS)
			break;
		/* The open buckets' rem sum to LCP_ALIAS_SPAN each on average, so
		 * one under it means one over it. */
		while (!(open[o] && rem[o] > LCP_ALIAS_SPAN))
			o++;
		a->split[u] = rem[u];
		a->alias[u] = a->sym[o];
		rem[o] -= LCP_ALIAS_SPAN - rem[u];
		open[u] = false;
	}
	for (unsigned u = 0; u < LCP_ALIAS_BUCKETS; u++)
		if (open[u])
			a->split[u] = LCP_ALIAS_SPAN;
}

/* Calls fn(arg, s, slot, len, rank) for each segment of the map: len
 * slots from slot hold symbol s's ranks from rank, in slot order. */
static void alias_segments(const struct alias_map *a,
			   void (*fn)(void *, unsigned, uint32_t, uint32_t, uint32_t, unsigned, unsigned),
			   void *arg)
{
	uint32_t next[256] = {0};
	for (unsigned u = 0; u < LCP_ALIAS_BUCKETS; u++) {
		uint32_t at = u * LCP_ALIAS_SPAN;
		if (a->split[u]) {
			fn(arg, a->sym[u], at, a->split[u], next[a->sym[u]], u, 0);
			next[a->sym[u]] += a->split[u];
		}
		if (a->split[u] < LCP_ALIAS_SPAN) {
			uint32_t len = LCP_ALIAS_SPAN - a->split[u];
			fn(arg, a->alias[u], at + a->split[u], len, next[a->alias[u]], u, 1);
			next[a->alias[u]] += len;
		}
	}
}

struct dec_build {
	struct lcp_rans_dec *d;
	const uint16_t *freq;
};

static void dec_segment(void *arg, unsigned s, uint32_t slot, uint32_t len, uint32_t rank,
			unsigned u, unsigned side)
{
	const struct dec_build *b = arg;
	(void)len;
	uint32_t lo = slot - u * LCP_ALIAS_SPAN, t = s ? s - 64u : 0u;
	b->d->entry[side][u] = (rank - lo + LCP_ALIAS_SPAN) << 19 | (uint32_t)b->freq[s] << 7 | t;
}

void lcp_rans_dec_init_alias(struct lcp_rans_dec *d, const uint16_t freq[256])
{
	struct alias_map a;
	alias_map(freq, &a);
	d->alias = true;
	memset(d->entry, 0, sizeof d->entry);
	memcpy(d->split, a.split, sizeof d->split);
	struct dec_build b = { d, freq };
	alias_segments(&a, dec_segment, &b);
}

static void enc_segment(void *arg, unsigned s, uint32_t slot, uint32_t len, uint32_t rank,
			unsigned u, unsigned side)
{
	struct lcp_rans_alias_enc *e = arg;
	(void)u;
	(void)side;
	for (uint32_t k = 0; k < len; k++)
		e->slot_of[e->base[s] + rank + k] = (uint16_t)(slot + k);
}

void lcp_rans_alias_enc_init(struct lcp_rans_alias_enc *e, const uint16_t freq[256])
{
	struct alias_map a;
	alias_map(freq, &a);
	uint32_t c = 0;
	for (unsigned s = 0; s < 256; s++) {
		e->freq[s] = freq[s];
		e->rcp[s] = freq[s] >= 2 ? UINT64_MAX / freq[s] + 1 : 0;
		e->base[s] = (uint16_t)c;
		e->freq_base[s] = freq[s] | c << 16;
		e->rcp_f64[s] = freq[s] ? 1.0 / freq[s] : 0.0;
		c += freq[s];
	}
	e->slot_of[LCP_RANS_SCALE] = e->slot_of[LCP_RANS_SCALE + 1] = 0;
	alias_segments(&a, enc_segment, e);
}

/* Steps to - 1 down to from of an alias block of n symbols into the lane
 * states x, words below *w: the plain-C encoder's loop. Each step is the
 * decoder's reads backwards: the renormalization words (last lane first),
 * the escapes' words, then the symbols. */
static void alias_encode_steps(const struct lcp_rans_alias_enc *e, const uint8_t *sym, uint32_t n,
			       unsigned lanes, uint32_t from, uint32_t to, uint32_t *x, uint8_t **w_io)
{
	uint8_t *w = *w_io;
	for (uint32_t t = to; t-- > from;) {
		uint32_t i0 = t * lanes;
		unsigned nl = n - i0 < lanes ? n - i0 : lanes;
		uint8_t s[LCP_RANS_MAX_LANES];
		for (unsigned l = 0; l < nl; l++)
			s[l] = sym[i0 + l] && e->freq[sym[i0 + l]] ? sym[i0 + l] : 0;
		for (unsigned l = nl; l-- > 0;) {
			uint32_t f = e->freq[s[l]];
			assert(f > 0);
			if (x[l] >= f << (32 - LCP_RANS_PROB_BITS)) {
				w -= 2;
				lcp_store_le16(w, (uint16_t)x[l]);
				x[l] >>= 16;
			}
		}
		for (unsigned l = nl; l-- > 0;)
			if (s[l] == 0) {
				w -= 2;
				lcp_store_le16(w, sym[i0 + l]);
			}
		for (unsigned l = 0; l < nl; l++) {
			uint32_t f = e->freq[s[l]], q = div_freq(x[l], f, e->rcp[s[l]]);
			x[l] = (q << LCP_RANS_PROB_BITS) + e->slot_of[e->base[s[l]] + x[l] - q * f];
		}
	}
	*w_io = w;
}

size_t lcp_rans_alias_encode_ref(const struct lcp_rans_alias_enc *e, const uint8_t *sym, uint32_t n,
				 unsigned lanes, uint8_t *out)
{
	return encode(NULL, e, sym, n, lanes, out, false);
}

size_t lcp_rans_alias_encode(const struct lcp_rans_alias_enc *e, const uint8_t *sym, uint32_t n,
			     unsigned lanes, uint8_t *out)
{
	bool simd = false;
#ifdef LCP_HAVE_RANS_X86
	pthread_once(&avx512_once, check_avx512);
	simd = use_avx512;
#endif
	return encode(NULL, e, sym, n, lanes, out, simd);
}
