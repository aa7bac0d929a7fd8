/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Static interleaved rANS over byte symbols: the codec's entropy coder for
 * quantization codes (codec_format.h says where it is used and why it was
 * chosen over zstd's Huffman literals). Internal to src/codec.
 *
 * Model: symbol frequencies f[s] of 12-bit precision, summing to 4096, every
 * one <= 4095 (so at least two symbols have f > 0); cum[s] = sum of f[t] for
 * t < s.
 *
 * Block: n symbols coded by L lanes (L = 1, 2, 4, 8 or 16); symbol i belongs
 * to lane i mod L. Its bytes are L u32 lane states (little-endian, lane 0
 * first), then u16 little-endian renormalization words in the order the
 * decoder reads them. Decoding symbol i with lane state x (32 bits):
 *   slot = x mod 4096; s = the symbol with cum[s] <= slot < cum[s] + f[s];
 *   x = f[s] * (x >> 12) + slot - cum[s];
 *   if x < 2^16: x = x << 16 | the next word.
 * A valid block consumes every word and leaves every lane at exactly 2^16
 * (the encoder's starting state). All arithmetic is on unsigned integers, so
 * every decoder (reference or SIMD) gives the same symbols.
 */
#ifndef LCPFS_CODEC_RANS_H
#define LCPFS_CODEC_RANS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lcpfs/err.h"

#define LCP_RANS_PROB_BITS 12
#define LCP_RANS_SCALE (1u << LCP_RANS_PROB_BITS)
#define LCP_RANS_LOW (1u << 16) /* lower bound of a normalized state */
#define LCP_RANS_MAX_LANES 16u
/* Largest serialized frequency table (lcp_rans_table_write): 2 bytes of
 * range, then at most 16 bits for each of 255 explicit frequencies. */
#define LCP_RANS_TABLE_MAX (2u + 2u * 255u)

/* Frequencies from a histogram of n > 0 symbols: every symbol that occurs
 * gets f >= 1; the rounding is corrected where it costs the fewest bits;
 * deterministic (integer arithmetic only). A histogram with one distinct
 * symbol gets a neighbour of frequency 1 so that no frequency is 4096. */
void lcp_rans_normalize(const uint64_t hist[256], uint16_t freq[256]);

/* Serialized table: u8 first symbol, u8 last symbol (> first; both with
 * f > 0), then, LSB-first in a bit string padded with zeros to a byte, the
 * frequencies of first .. last - 1 (the last one is 4096 minus their sum):
 * 4 bits k; k = 0: a run of zero frequencies, its length - 1 in the next 4
 * bits; 1 <= k <= 12: f = 2^(k-1) + the next k - 1 bits. Returns the bytes
 * written (<= LCP_RANS_TABLE_MAX); freq must satisfy the model above. */
size_t lcp_rans_table_write(const uint16_t freq[256], uint8_t *out);

/* Parses a table from in[0, len); *used = its length. LCP_ERR_TRUNCATED when
 * it runs past len, LCP_ERR_FORMAT when it breaks the model (sum, k > 12, a
 * frequency of 4096, run past the last symbol). */
lcp_err lcp_rans_table_read(const uint8_t *in, size_t len, size_t *used, uint16_t freq[256]);

/* Encoder tables. rcp[s] = floor((2^64 - 1) / freq[s]) + 1 for freq[s] >= 2 (0
 * otherwise): the high half of x * rcp[s] is x / freq[s] exactly for every
 * 32-bit x (the error x * (rcp - 2^64 / f) / 2^64 stays below 1 / f), so
 * encoding multiplies where it would divide. */
struct lcp_rans_enc {
	uint32_t freq[256];
	uint32_t cum[256];
	uint64_t rcp[256];
	/* for the AVX-512 steps: freq | cum << 16, and 1 / freq (0 where
	 * freq is 0) in binary64 */
	uint32_t freq_cum[256];
	double rcp_f64[256];
};
void lcp_rans_enc_init(struct lcp_rans_enc *e, const uint16_t freq[256]);

/* Most bytes a block of n symbols with `lanes` lanes can take. */
static inline size_t lcp_rans_block_bound(uint32_t n, unsigned lanes)
{
	return 4u * (size_t)lanes + 2u * (size_t)n;
}

/* Encodes sym[0, n) (every symbol with f > 0) with `lanes` lanes into out
 * (at least lcp_rans_block_bound bytes); returns the block's length.
 * 16-lane blocks go through AVX-512 where the CPU has it; _ref is the plain
 * C encoder, which gives the same bytes (tests compare them). */
size_t lcp_rans_encode(const struct lcp_rans_enc *e, const uint8_t *sym, uint32_t n, unsigned lanes,
		       uint8_t *out);
size_t lcp_rans_encode_ref(const struct lcp_rans_enc *e, const uint8_t *sym, uint32_t n,
			   unsigned lanes, uint8_t *out);

#if defined(__x86_64__) && defined(__GNUC__)
#define LCP_HAVE_RANS_X86 1
/* rans_x86.c: whether this CPU has AVX-512 F, BW and VL; and the whole
 * 16-lane steps steps - 1 .. 0 of sym (symbols 16 t .. 16 t + 15), lane
 * states x updated, words written below w; returns the new w. Internal to
 * lcp_rans_encode. */
bool lcp_rans_avx512_available(void);
uint8_t *lcp_rans_encode_steps_avx512(const struct lcp_rans_enc *e, const uint8_t *sym,
				      uint32_t steps, uint32_t x[LCP_RANS_MAX_LANES], uint8_t *w);
/* The same for an alias block's whole 16-lane steps (escapes' words
 * below the renormalization words of their step); internal to
 * lcp_rans_alias_encode. */
struct lcp_rans_alias_enc;
uint8_t *lcp_rans_alias_encode_steps_avx512(const struct lcp_rans_alias_enc *e, const uint8_t *sym,
					    uint32_t steps, uint32_t x[LCP_RANS_MAX_LANES], uint8_t *w);
/* lcp_rans_dec_init with one 64-byte store per 16 slots; internal to it. */
struct lcp_rans_dec;
void lcp_rans_dec_init_avx512(struct lcp_rans_dec *d, const uint16_t freq[256]);
#endif

/*
 * Alias streams (code mode CODE_ALIAS, codec_format.h): the same states,
 * words and blocks with another map from slots to symbols, one a SIMD
 * decoder reads with register permutes instead of a gather per slot (a
 * 16-lane gather cost as much as the rest of a 4-bit step on the Zen 5
 * development machine), and escapes for the symbols the map leaves out.
 *
 * Model: freq as above with at most LCP_ALIAS_BUCKETS symbols of f > 0,
 * each 0 (the escape) or in LCP_ALIAS_SYM_MIN .. LCP_ALIAS_SYM_MAX (so a
 * SIMD decoder holds a symbol as 7 bits).
 *
 * Map (Walker's alias method): 32 buckets of 128 slots. With s_0 < ... <
 * s_{n-1} the symbols of f > 0, bucket i starts with a share of s_i (i <
 * n; none for i >= n), rem[i] = f[s_i] (0 for i >= n). Until no bucket is
 * open: u = the lowest open bucket with rem[u] < 128, or, if none, every
 * open bucket closes with split 128; else o = the lowest open bucket with
 * rem[o] > 128; bucket u closes with split[u] = rem[u] and alias[u] = s_o,
 * and rem[o] -= 128 - rem[u]. Bucket u's slots 128u .. 128u + split[u] - 1
 * hold s_u, the rest alias[u]. A symbol's slots (its segments in slot
 * order) take its ranks 0 .. f - 1 in that order.
 *
 * Decoding as above with the map: slot -> (s, f, rank r); x = f * (x >>
 * 12) + r. Steps: the symbols of one step (L consecutive symbols, one per
 * lane; the block's last step may have fewer) decode from their lanes'
 * states, then each escaped lane, in lane order, takes one word, which is
 * its symbol (< 256), then the lanes renormalize in lane order as above.
 */
#define LCP_ALIAS_BUCKETS 32u
#define LCP_ALIAS_SPAN (LCP_RANS_SCALE / LCP_ALIAS_BUCKETS)
#define LCP_ALIAS_SYM_MIN 65u
#define LCP_ALIAS_SYM_MAX 191u

/* Whether freq (lcp_rans_table_read's model) is an alias model. */
bool lcp_rans_alias_model(const uint16_t freq[256]);

/*
 * Decoder table: for each slot, symbol | f << 8 | (slot - cum) << 20; then
 * LCP_RANS_DEC_PAD slots of padding that lcp_rans_dec_init may write. An
 * alias table (alias set) has instead, per bucket, split and two entries,
 * the bucket's own symbol's and its alias's: (r - lo + 128) << 19 | f << 7
 * | t, with lo the slot's offset in the bucket (r - lo + 128 in 1 .. 4223)
 * and t = s - 64 (0 for the escape).
 */
#define LCP_RANS_DEC_PAD 16u
struct lcp_rans_dec {
	uint32_t slot[LCP_RANS_SCALE + LCP_RANS_DEC_PAD];
	bool alias;
	uint32_t split[LCP_ALIAS_BUCKETS];
	uint32_t entry[2][LCP_ALIAS_BUCKETS]; /* [0]: slots below split */
};
void lcp_rans_dec_init(struct lcp_rans_dec *d, const uint16_t freq[256]);
/* The alias table of an alias model. */
void lcp_rans_dec_init_alias(struct lcp_rans_dec *d, const uint16_t freq[256]);

/* Alias encoder: the model's frequencies, slot_of[base[s] + r] = the slot
 * of symbol s's rank r, and the divisions' reciprocals as in lcp_rans_enc;
 * for the AVX-512 steps freq | base << 16, and slot_of padded for 32-bit
 * gathers. */
struct lcp_rans_alias_enc {
	uint32_t freq[256];
	uint64_t rcp[256];
	uint16_t base[256];
	uint32_t freq_base[256];
	double rcp_f64[256];
	uint16_t slot_of[LCP_RANS_SCALE + 2];
};
void lcp_rans_alias_enc_init(struct lcp_rans_alias_enc *e, const uint16_t freq[256]);

/* Most bytes an alias block of n symbols with `lanes` lanes can take. */
static inline size_t lcp_rans_alias_block_bound(uint32_t n, unsigned lanes)
{
	return 4u * (size_t)lanes + 4u * (size_t)n;
}

/* Encodes sym[0, n) with `lanes` lanes into out (at least
 * lcp_rans_alias_block_bound bytes): symbols with f = 0, and 0, as
 * escapes. Returns the block's length. 16-lane blocks go through AVX-512
 * where the CPU has it; _ref is the plain C encoder (the same bytes). */
size_t lcp_rans_alias_encode(const struct lcp_rans_alias_enc *e, const uint8_t *sym, uint32_t n,
			     unsigned lanes, uint8_t *out);
size_t lcp_rans_alias_encode_ref(const struct lcp_rans_alias_enc *e, const uint8_t *sym, uint32_t n,
				 unsigned lanes, uint8_t *out);

/* One block of n symbols to decode with table: its bytes in[0, len),
 * symbols [0, stop) into out[0, stop). A range read stops early (stop < n);
 * then the block's end checks, which need its last symbol, do not run. */
struct lcp_rans_block {
	const struct lcp_rans_dec *table;
	const uint8_t *in;
	size_t len;
	uint32_t n;
	uint32_t stop; /* <= n */
	uint8_t *out;
};

/*
 * Continues decoding one block from symbol i0 with lane states x[0, lanes):
 * symbols i0 .. b->stop - 1 into b->out, words read from [p, end), which
 * holds the block's words not yet read (its tail in b->in, or a copy of it).
 * LCP_ERR_FORMAT when the block is malformed (words run out, or, when it
 * decodes to the end, words are left over or a lane does not end at 2^16).
 * The reference decoder is this from i0 = 0; SIMD decoders finish with it.
 */
lcp_err lcp_rans_finish(const struct lcp_rans_block *b, unsigned lanes,
			uint32_t x[LCP_RANS_MAX_LANES], const uint8_t *p, const uint8_t *end,
			uint32_t i0);

/* Reference decoder: decodes nb blocks one after another. */
lcp_err lcp_rans_decode_ref(const struct lcp_rans_block *b, unsigned nb, unsigned lanes,
			    const uint8_t *readable_end);

#endif
