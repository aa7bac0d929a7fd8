/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The rANS entropy coder (src/codec/rans.h): frequency normalization, the
 * serialized table, encode/decode round trips for every lane count and
 * block length, a golden block that pins the byte layout, malformed blocks
 * and tables, every kernel set against the reference decoder (same
 * symbols, same verdict on damaged blocks; exact-size buffers so SAN=1
 * catches any read past a block), the fast encoder against the plain-C
 * one, and the decoding table against its definition.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "codec/kernels.h"
#include "codec/rans.h"
#include "test_codec_helpers.h"

/* Symbols shaped like quantization codes: a discrete bell around center
 * with spread `width`, and rare outliers anywhere in [0, alphabet). */
static void make_symbols(uint8_t *s, uint32_t n, unsigned alphabet, unsigned center, unsigned width)
{
	for (uint32_t i = 0; i < n; i++) {
		int v = (int)center;
		for (unsigned k = 0; k < 4; k++)
			v += (int)(rnd() % (2 * width + 1)) - (int)width;
		if (rnd() % 1000 == 0)
			v = (int)(rnd() % alphabet);
		s[i] = (uint8_t)(v < 0 ? 0 : v >= (int)alphabet ? (int)alphabet - 1 : v);
	}
}

static void model_of(const uint8_t *s, uint32_t n, uint16_t freq[256])
{
	uint64_t hist[256] = {0};
	for (uint32_t i = 0; i < n; i++)
		hist[s[i]]++;
	lcp_rans_normalize(hist, freq);
}

static void check_model(const uint64_t hist[256], const uint16_t freq[256])
{
	uint32_t sum = 0;
	unsigned nonzero = 0;
	for (unsigned s = 0; s < 256; s++) {
		sum += freq[s];
		nonzero += freq[s] > 0;
		cr_assert(!hist[s] || freq[s] >= 1, "symbol %u occurs but has no frequency", s);
		cr_assert_lt(freq[s], LCP_RANS_SCALE, "symbol %u: frequency %u", s, freq[s]);
	}
	cr_assert_eq(sum, LCP_RANS_SCALE);
	cr_assert_geq(nonzero, 2);
}

Test(rans, normalize_keeps_every_symbol_and_sums_to_4096)
{
	uint64_t hist[256];
	uint16_t freq[256];
	rng_state = 1;
	for (int trial = 0; trial < 200; trial++) {
		memset(hist, 0, sizeof hist);
		unsigned used = 1 + rnd() % 256;
		for (unsigned k = 0; k < used; k++)
			hist[rnd() % 256] += trial % 3 == 0 ? 1 : 1 + rnd() % 100000;
		lcp_rans_normalize(hist, freq);
		check_model(hist, freq);
	}
	/* Counts near the 64-bit limit, and one symbol only. */
	memset(hist, 0, sizeof hist);
	hist[3] = UINT64_MAX / 4;
	hist[200] = 1;
	lcp_rans_normalize(hist, freq);
	check_model(hist, freq);
	memset(hist, 0, sizeof hist);
	hist[255] = 77;
	lcp_rans_normalize(hist, freq);
	check_model(hist, freq);
	cr_expect_eq(freq[255], LCP_RANS_SCALE - 1);
	cr_expect_eq(freq[254], 1);
}

Test(rans, normalize_is_close_to_the_histogram)
{
	/* Proportional to within the rounding: for counts of 1000 * k the
	 * exact share is 4096 * k / sum(k). */
	uint64_t hist[256] = {0};
	uint16_t freq[256];
	for (unsigned s = 0; s < 16; s++)
		hist[s] = 1000u * (s + 1);
	lcp_rans_normalize(hist, freq);
	for (unsigned s = 0; s < 16; s++)
		cr_expect_leq(abs((int)freq[s] - (int)(4096.0 * (s + 1) / 136.0 + 0.5)), 1, "s %u: %u", s,
			      freq[s]);
}

Test(rans, table_round_trips_and_stays_within_its_bound)
{
	uint8_t buf[LCP_RANS_TABLE_MAX];
	uint16_t freq[256], back[256];
	rng_state = 2;
	for (int trial = 0; trial < 300; trial++) {
		uint64_t hist[256] = {0};
		unsigned used = trial < 100 ? 2 + rnd() % 20 : 1 + rnd() % 256;
		for (unsigned k = 0; k < used; k++)
			hist[trial % 2 ? rnd() % 256 : (k * 37) % 256] += 1 + rnd() % 5000;
		lcp_rans_normalize(hist, freq);
		size_t len = lcp_rans_table_write(freq, buf), used_len = 0;
		cr_assert_leq(len, LCP_RANS_TABLE_MAX);
		cr_assert_eq(lcp_rans_table_read(buf, len, &used_len, back), LCP_OK);
		cr_assert_eq(used_len, len);
		cr_assert_arr_eq(back, freq, sizeof freq);
		/* Every shorter prefix is truncated or malformed, never read
		 * past. */
		for (size_t cut = 0; cut < len; cut++) {
			uint8_t *p = malloc(cut ? cut : 1);
			memcpy(p, buf, cut);
			lcp_err err = lcp_rans_table_read(p, cut, &used_len, back);
			cr_assert(err == LCP_ERR_TRUNCATED || err == LCP_ERR_FORMAT ||
				  (err == LCP_OK && used_len <= cut),
				  "cut %zu: %d", cut, err);
			free(p);
		}
	}
	/* The largest table: 256 symbols, frequencies needing 12 bits. */
	for (unsigned s = 0; s < 256; s++)
		freq[s] = s < 255 ? 1 : (uint16_t)(LCP_RANS_SCALE - 255);
	freq[0] = 2048;
	freq[255] = (uint16_t)(LCP_RANS_SCALE - 2048 - 254);
	size_t len = lcp_rans_table_write(freq, buf), used_len;
	cr_assert_leq(len, LCP_RANS_TABLE_MAX);
	cr_assert_eq(lcp_rans_table_read(buf, len, &used_len, back), LCP_OK);
	cr_assert_arr_eq(back, freq, sizeof freq);
}

Test(rans, malformed_tables_are_rejected)
{
	uint16_t freq[256];
	size_t used;
	/* first >= last */
	const uint8_t same[] = {5, 5, 0};
	cr_expect_eq(lcp_rans_table_read(same, sizeof same, &used, freq), LCP_ERR_FORMAT);
	/* k = 13 */
	const uint8_t big_k[] = {0, 1, 0x0d, 0xff};
	cr_expect_eq(lcp_rans_table_read(big_k, sizeof big_k, &used, freq), LCP_ERR_FORMAT);
	/* symbol 0 takes all 4096 (k = 12, f = 2048 + 2047 = 4095 is fine, but
	 * then the last symbol gets 1; with f = 4095 + a run the sum is kept):
	 * a first frequency of 4095 and an implied last of 1 is valid. */
	const uint8_t full[] = {0, 1, 0xfc, 0xff, 0x07};
	cr_expect_eq(lcp_rans_table_read(full, sizeof full, &used, freq), LCP_OK);
	cr_expect_eq(freq[0], 4095);
	cr_expect_eq(freq[1], 1);
	/* two explicit 2048s (k = 12, no mantissa bits set) leave nothing for
	 * the last symbol */
	const uint8_t over[] = {0, 2, 0x0c, 0x00, 0x06, 0x00};
	cr_expect_eq(lcp_rans_table_read(over, sizeof over, &used, freq), LCP_ERR_FORMAT);
	/* a zero run past the last symbol */
	const uint8_t run[] = {0, 3, 0xf0};
	cr_expect_eq(lcp_rans_table_read(run, sizeof run, &used, freq), LCP_ERR_FORMAT);
	/* truncated */
	cr_expect_eq(lcp_rans_table_read(full, 1, &used, freq), LCP_ERR_TRUNCATED);
	cr_expect_eq(lcp_rans_table_read(full, 3, &used, freq), LCP_ERR_TRUNCATED);
}

/* Encodes s into an exact-size heap block. */
static uint8_t *encode_block(const uint16_t freq[256], const uint8_t *s, uint32_t n, unsigned lanes,
			     size_t *len)
{
	struct lcp_rans_enc e;
	lcp_rans_enc_init(&e, freq);
	uint8_t *tmp = malloc(lcp_rans_block_bound(n, lanes));
	*len = lcp_rans_encode(&e, s, n, lanes, tmp);
	uint8_t *b = malloc(*len);
	memcpy(b, tmp, *len);
	free(tmp);
	return b;
}

static const char *const kernel_names[] = {"ref", "baseline", "avx2", "avx512", "avx512bf16"};

Test(rans, round_trip_every_lane_count_length_and_kernel)
{
	static const uint32_t lengths[] = {0, 1, 2, 15, 16, 17, 31, 33, 100, 1000, 4096, 16384, 16391};
	static struct lcp_rans_dec d;
	rng_state = 3;
	for (unsigned lg = 0; lg <= 4; lg++) {
		unsigned lanes = 1u << lg;
		for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++) {
			uint32_t n = lengths[li];
			uint8_t *s = malloc(n + 1), *out = malloc(n + 1);
			make_symbols(s, n, li % 2 ? 16 : 256, li % 2 ? 8 : 128, 1 + li % 4);
			uint16_t freq[256];
			model_of(s, n, freq);
			size_t len;
			uint8_t *b = encode_block(freq, s, n, lanes, &len);
			cr_assert_geq(len, 4u * lanes);
			lcp_rans_dec_init(&d, freq);
			for (size_t k = 0; k < sizeof kernel_names / sizeof kernel_names[0]; k++) {
				const struct lcp_kernels *kern = lcp_kernels_named(kernel_names[k]);
				if (!kern)
					continue;
				memset(out, 0xa5, n + 1);
				struct lcp_rans_block blk = {&d, b, len, n, n, out};
				cr_assert_eq(kern->rans_decode(&blk, 1, lanes, b + len), LCP_OK,
					     "%s lanes %u n %u", kernel_names[k], lanes, n);
				cr_assert_arr_eq(out, s, n, "%s lanes %u n %u", kernel_names[k], lanes, n);
				cr_assert_eq(out[n], 0xa5, "%s wrote past the block's symbols", kernel_names[k]);
				/* Stopping early gives the prefix and writes nothing past it. */
				uint32_t stops[] = {n / 2, n > 17 ? 17 : n, n > 0 ? n - 1 : 0};
				for (size_t si = 0; si < 3; si++) {
					memset(out, 0xa5, n + 1);
					blk.stop = stops[si];
					cr_assert_eq(kern->rans_decode(&blk, 1, lanes, b + len), LCP_OK);
					cr_assert_arr_eq(out, s, blk.stop, "%s stop %u", kernel_names[k], blk.stop);
					cr_assert_eq(out[blk.stop], 0xa5, "%s wrote past stop", kernel_names[k]);
				}
			}
			free(b);
			free(s);
			free(out);
		}
	}
}

/* Blocks of a chunk as the codec stores them: back to back in one buffer,
 * of unequal lengths, decoded in one call, by every kernel set; odd blocks
 * use another table (as side planes do). */
Test(rans, many_blocks_in_one_call)
{
	static struct lcp_rans_dec d[2];
	enum { NB = 13, BLOCK = 2000 };
	rng_state = 4;
	uint32_t n = NB * BLOCK - 777;
	uint8_t *s = malloc(n), *out = malloc(n);
	struct lcp_rans_enc e[2];
	for (uint32_t k = 0; k < NB; k++) {
		uint32_t cnt = k + 1 < NB ? BLOCK : n - k * BLOCK;
		make_symbols(s + k * BLOCK, cnt, 256, k % 2 ? 30 : 100, k % 2 ? 2 : 6);
	}
	for (int m = 0; m < 2; m++) {
		uint64_t hist[256] = {0};
		uint16_t freq[256];
		for (uint32_t k = (uint32_t)m; k < NB; k += 2)
			for (uint32_t i = k * BLOCK; i < n && i < (k + 1) * BLOCK; i++)
				hist[s[i]]++;
		lcp_rans_normalize(hist, freq);
		lcp_rans_enc_init(&e[m], freq);
		lcp_rans_dec_init(&d[m], freq);
	}
	size_t cap = 0;
	for (uint32_t k = 0; k < NB; k++)
		cap += lcp_rans_block_bound(BLOCK, 16);
	uint8_t *tmp = malloc(cap);
	size_t at = 0, off[NB], len[NB];
	uint32_t cnt[NB];
	for (uint32_t k = 0; k < NB; k++) {
		cnt[k] = k + 1 < NB ? BLOCK : n - k * BLOCK;
		off[k] = at;
		len[k] = lcp_rans_encode(&e[k % 2], s + k * BLOCK, cnt[k], 16, tmp + at);
		at += len[k];
	}
	uint8_t *buf = malloc(at);
	memcpy(buf, tmp, at);
	for (size_t ki = 0; ki < sizeof kernel_names / sizeof kernel_names[0]; ki++) {
		const struct lcp_kernels *kern = lcp_kernels_named(kernel_names[ki]);
		if (!kern)
			continue;
		struct lcp_rans_block blk[NB];
		for (uint32_t k = 0; k < NB; k++)
			blk[k] = (struct lcp_rans_block){&d[k % 2], buf + off[k], len[k], cnt[k], cnt[k],
							 out + k * BLOCK};
		memset(out, 0, n);
		cr_assert_eq(kern->rans_decode(blk, NB, 16, buf + at), LCP_OK, "%s", kernel_names[ki]);
		cr_assert_arr_eq(out, s, n, "%s", kernel_names[ki]);
	}
	free(tmp);
	free(buf);
	free(s);
	free(out);
}

/*
 * The layout of rans.h, pinned: 40 symbols, 2 lanes, a 3-symbol model
 * (f = 2048, 1024, 1024 for symbols 1, 2, 7). The expected bytes come from
 * an independent implementation of the recurrence in rans.h (a dozen lines
 * of Python, run once), not from this coder.
 */
Test(rans, golden_block)
{
	static const uint8_t sym[40] = {
		1, 2, 7, 1, 1, 2, 1, 7, 7, 1, 2, 2, 1, 1, 1, 7, 2, 1, 7, 1,
		1, 1, 2, 7, 1, 2, 1, 1, 7, 1, 2, 1, 1, 7, 2, 2, 1, 1, 7, 1,
	};
	uint16_t freq[256] = {0};
	freq[1] = 2048;
	freq[2] = 1024;
	freq[7] = 1024;
	size_t len;
	uint8_t *b = encode_block(freq, sym, 40, 2, &len);
	/* Each lane codes 20 symbols of 1 or 2 bits, about 30 bits: the two
	 * final states (8 bytes) and two renormalization words. */
	static const uint8_t golden[] = {
		0x65, 0x35, 0xc5, 0x41, 0x51, 0xc8, 0x59, 0x20, 0x00, 0xa4, 0x00, 0x30,
	};
	cr_assert_eq(len, sizeof golden);
	cr_assert_arr_eq(b, golden, sizeof golden);
	static struct lcp_rans_dec d;
	lcp_rans_dec_init(&d, freq);
	uint8_t out[40];
	struct lcp_rans_block blk = {&d, golden, sizeof golden, 40, 40, out};
	cr_assert_eq(lcp_rans_decode_ref(&blk, 1, 2, golden + sizeof golden), LCP_OK);
	cr_assert_arr_eq(out, sym, 40);
	free(b);
}

/* A damaged block gives the same verdict from every kernel set: an error
 * whenever the reference reports one; where the reference accepts it (a
 * change that still decodes to valid end states), the same symbols. */
Test(rans, damaged_blocks_get_the_same_verdict_everywhere)
{
	static struct lcp_rans_dec d;
	enum { N = 3000 };
	rng_state = 5;
	uint8_t s[N], ref_out[N], out[N];
	make_symbols(s, N, 256, 128, 8);
	uint16_t freq[256];
	model_of(s, N, freq);
	lcp_rans_dec_init(&d, freq);
	for (unsigned lanes = 4; lanes <= 16; lanes *= 4) {
		size_t len;
		uint8_t *good = encode_block(freq, s, N, lanes, &len);
		for (int trial = 0; trial < 400; trial++) {
			size_t blen = len;
			int how = trial % 3;
			if (how == 1)
				blen = rnd() % len;
			else if (how == 2)
				blen = len + 1 + rnd() % 40;
			uint8_t *b = malloc(blen ? blen : 1);
			for (size_t i = 0; i < blen; i++)
				b[i] = i < len ? good[i] : (uint8_t)rnd();
			if (blen && how == 0)
				b[rnd() % blen] ^= (uint8_t)(1u << (rnd() % 8));
			struct lcp_rans_block blk = {&d, b, blen, N, N, ref_out};
			lcp_err want = lcp_rans_decode_ref(&blk, 1, lanes, b + blen);
			cr_assert(how == 0 || want != LCP_OK,
				  "lanes %u trial %d: a cut or padded block was accepted", lanes, trial);
			for (size_t k = 1; k < sizeof kernel_names / sizeof kernel_names[0]; k++) {
				const struct lcp_kernels *kern = lcp_kernels_named(kernel_names[k]);
				if (!kern)
					continue;
				blk.out = out;
				lcp_err got = kern->rans_decode(&blk, 1, lanes, b + blen);
				cr_assert_eq(got != LCP_OK, want != LCP_OK, "lanes %u trial %d %s", lanes,
					     trial, kernel_names[k]);
				if (want == LCP_OK)
					cr_assert_arr_eq(out, ref_out, N, "lanes %u trial %d %s", lanes, trial,
							 kernel_names[k]);
			}
			free(b);
		}
		free(good);
	}
}

/* Block lengths the fast encoders are checked at: around whole 16-lane
 * steps and blocks, up to ENCODE_N. */
#define ENCODE_N 16400
static const uint32_t encode_lengths[] = {1, 15, 16, 17, 255, 1000, 16383, 16384, ENCODE_N};

/* lcp_rans_encode (AVX-512 steps for 16 lanes where the CPU has them)
 * against the plain-C encoder: the same bytes for lengths around whole
 * steps, 8 and 16 lanes, and models with every kind of frequency: a bell
 * over 16 and over 256 symbols (frequencies that are not powers of two, so
 * the binary64 quotient lands one short on exact multiples), one dominant
 * symbol (f = 4095 beside f = 1) and flat. */
Test(rans, fast_encoder_gives_the_plain_c_bytes)
{
	enum { N = ENCODE_N };
	static const unsigned shapes[][3] = {{16, 8, 2}, {256, 128, 30}, {256, 7, 0}, {256, 128, 200}};
	uint8_t *s = malloc(N), *want = malloc(lcp_rans_block_bound(N, 16));
	uint8_t *got = malloc(lcp_rans_block_bound(N, 16));
	rng_state = 77;
	for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
		make_symbols(s, N, shapes[k][0], shapes[k][1], shapes[k][2]);
		uint16_t freq[256];
		model_of(s, N, freq);
		struct lcp_rans_enc e;
		lcp_rans_enc_init(&e, freq);
		for (size_t li = 0; li < sizeof encode_lengths / sizeof encode_lengths[0]; li++)
			for (unsigned lanes = 8; lanes <= 16; lanes *= 2) {
				uint32_t n = encode_lengths[li];
				size_t want_len = lcp_rans_encode_ref(&e, s + N - n, n, lanes, want);
				size_t got_len = lcp_rans_encode(&e, s + N - n, n, lanes, got);
				cr_assert_eq(got_len, want_len, "shape %zu, n %u, lanes %u", k, n, lanes);
				cr_assert_arr_eq(got, want, want_len, "shape %zu, n %u, lanes %u", k, n, lanes);
			}
	}
	free(s);
	free(want);
	free(got);
}

/* Slot by slot, the table rans.h defines: symbol | f << 8 | (slot - cum)
 * << 20, whichever form of lcp_rans_dec_init this CPU runs. */
Test(rans, decoding_table_is_its_definition)
{
	static const unsigned shapes[][3] = {{16, 8, 2}, {256, 128, 30}, {256, 7, 0}, {256, 128, 200}};
	enum { N = 20000 };
	uint8_t *s = malloc(N);
	static struct lcp_rans_dec d;
	rng_state = 5;
	for (size_t k = 0; k < sizeof shapes / sizeof shapes[0] + 1; k++) {
		uint16_t freq[256];
		if (k < sizeof shapes / sizeof shapes[0]) {
			make_symbols(s, N, shapes[k][0], shapes[k][1], shapes[k][2]);
			model_of(s, N, freq);
		} else { /* every symbol, f = 16 each: whole passes, none past the table */
			for (unsigned i = 0; i < 256; i++)
				freq[i] = LCP_RANS_SCALE / 256;
		}
		memset(&d, 0xa5, sizeof d);
		lcp_rans_dec_init(&d, freq);
		uint32_t cum = 0;
		for (unsigned sym = 0; sym < 256; sym++) {
			for (uint32_t j = 0; j < freq[sym]; j++)
				cr_assert_eq(d.slot[cum + j], sym | (uint32_t)freq[sym] << 8 | j << 20,
					     "shape %zu, symbol %u, slot %u", k, sym, cum + j);
			cum += freq[sym];
		}
		cr_assert_eq(cum, LCP_RANS_SCALE);
	}
	free(s);
}

/* rans.h's alias map worked by hand for {0: 96, 128: 2000, 129: 1000,
 * 130: 1000}: bucket 0 keeps 96 slots of symbol 0 and lends 32 to 128;
 * buckets 4..18 go to 128 whole, which leaves it 48 of bucket 1; bucket 1
 * lends 80 to 129, buckets 19..25 go to 129, leaving it 24 of bucket 2,
 * which lends 104 to 130; buckets 26..31 go to 130, which keeps all of
 * bucket 3. Ranks run in slot order. */
Test(rans, alias_map_is_the_worked_example)
{
	uint16_t freq[256] = {0};
	freq[0] = 96;
	freq[128] = 2000;
	freq[129] = 1000;
	freq[130] = 1000;
	cr_assert(lcp_rans_alias_model(freq));
	static struct lcp_rans_dec d;
	lcp_rans_dec_init_alias(&d, freq);
	static const uint32_t split[32] = {96, 48, 24, 128};
	cr_assert_arr_eq(d.split, split, sizeof split);
	/* entry = (rank - lo + 128) << 19 | f << 7 | (symbol - 64, 0 for escapes) */
#define ENTRY(rank, lo, f, t) ((uint32_t)((rank) - (lo) + 128) << 19 | (uint32_t)(f) << 7 | (t))
	cr_expect_eq(d.entry[0][0], ENTRY(0, 0, 96, 0));           /* slots 0..95: escape */
	cr_expect_eq(d.entry[1][0], ENTRY(0, 96, 2000, 64));       /* 96..127: 128, ranks 0.. */
	cr_expect_eq(d.entry[0][1], ENTRY(32, 0, 2000, 64));       /* 128..175: 128, ranks 32.. */
	cr_expect_eq(d.entry[1][1], ENTRY(0, 48, 1000, 65));       /* 176..255: 129, ranks 0.. */
	cr_expect_eq(d.entry[0][2], ENTRY(80, 0, 1000, 65));       /* 256..279: 129, ranks 80.. */
	cr_expect_eq(d.entry[1][2], ENTRY(0, 24, 1000, 66));       /* 280..383: 130, ranks 0.. */
	cr_expect_eq(d.entry[0][3], ENTRY(104, 0, 1000, 66));      /* 384..511: 130 */
	cr_expect_eq(d.entry[1][4], ENTRY(80, 0, 2000, 64));       /* bucket 4: 128, ranks 80.. */
	cr_expect_eq(d.entry[1][18], ENTRY(80 + 14 * 128, 0, 2000, 64));
	cr_expect_eq(d.entry[1][19], ENTRY(104, 0, 1000, 65));     /* bucket 19: 129 */
	cr_expect_eq(d.entry[1][31], ENTRY(232 + 5 * 128, 0, 1000, 66));
#undef ENTRY
	static struct lcp_rans_alias_enc e;
	lcp_rans_alias_enc_init(&e, freq);
	cr_expect_eq(e.slot_of[e.base[128] + 4], 100);
	cr_expect_eq(e.slot_of[e.base[128] + 32], 128);
	cr_expect_eq(e.slot_of[e.base[129] + 999], 25 * 128 + 127);
	cr_expect_eq(e.slot_of[e.base[130] + 999], 4095);
	cr_expect_eq(e.slot_of[e.base[0] + 95], 95);
}

Test(rans, alias_models_are_small_and_in_range)
{
	uint16_t freq[256] = {0};
	freq[65] = freq[191] = 2048;
	cr_expect(lcp_rans_alias_model(freq));
	freq[191] = 2047;
	freq[192] = 1;
	cr_expect_not(lcp_rans_alias_model(freq), "192 is outside the 7-bit symbols");
	memset(freq, 0, sizeof freq);
	freq[0] = 4096 - 31 * 100;
	for (unsigned s = 100; s < 131; s++)
		freq[s] = 100;
	cr_expect(lcp_rans_alias_model(freq), "31 symbols and the escape");
	freq[0] -= 1;
	freq[131] = 1;
	cr_expect_not(lcp_rans_alias_model(freq), "33 symbols");
}

/* Alias blocks (escapes: symbols outside the model, 0, bytes outside
 * 65..191) round-trip through the reference decoder with every lane
 * count and length, whole and stopped anywhere; a block cut short or with
 * an escape word above 255 is malformed. */
Test(rans, alias_blocks_round_trip_with_escapes)
{
	static const unsigned lane_counts[] = {1, 2, 4, 8, 16};
	static const uint32_t lengths[] = {1, 15, 16, 17, 333, 4096, 16384};
	rng_state = 77;
	for (size_t li = 0; li < 5; li++)
		for (size_t ni = 0; ni < 7; ni++) {
			uint32_t n = lengths[ni];
			unsigned lanes = lane_counts[li];
			uint8_t *s = malloc(n), *got = malloc(n);
			make_symbols(s, n, 256, 128, 5);
			for (uint32_t i = 1; i < n; i += 97)
				s[i] = (uint8_t)(i % 3 == 0 ? 0 : i % 3 == 1 ? 30 : 250);
			uint64_t hist[256] = {0}, h[256] = {0};
			for (uint32_t i = 0; i < n; i++)
				hist[s[i]]++;
			/* the model: up to 31 of the symbols in 65..191, the rest escapes */
			unsigned direct = 0;
			for (unsigned v = 65; v <= 191 && direct < 31; v++)
				if (hist[v] > n / 200 || (n < 200 && hist[v])) {
					h[v] = hist[v];
					direct++;
				}
			for (unsigned v = 0; v < 256; v++)
				h[0] += h[v] ? 0 : hist[v];
			uint16_t freq[256];
			lcp_rans_normalize(h, freq);
			cr_assert(lcp_rans_alias_model(freq));
			static struct lcp_rans_alias_enc e;
			static struct lcp_rans_dec d;
			lcp_rans_alias_enc_init(&e, freq);
			lcp_rans_dec_init_alias(&d, freq);
			uint8_t *buf = malloc(lcp_rans_alias_block_bound(n, lanes));
			size_t len = lcp_rans_alias_encode(&e, s, n, lanes, buf);
			uint32_t stops[] = {n, n / 2 + 1, 1};
			for (size_t k = 0; k < 3; k++) {
				memset(got, 0xee, n);
				struct lcp_rans_block b = {&d, buf, len, n, stops[k], got};
				cr_assert_eq(lcp_rans_decode_ref(&b, 1, lanes, buf + len), LCP_OK,
					     "%u lanes, %u symbols, stop %u", lanes, n, stops[k]);
				cr_assert_arr_eq(got, s, stops[k], "%u lanes, %u symbols", lanes, n);
			}
			struct lcp_rans_block cut = {&d, buf, len - 2, n, n, got};
			cr_expect_eq(lcp_rans_decode_ref(&cut, 1, lanes, buf + len), LCP_ERR_FORMAT);
			free(buf);
			free(s);
			free(got);
		}
}

/* The AVX-512 alias steps give the plain-C bytes: models with many
 * escapes (symbols out of range, 0, and in range but left out), few, and
 * none. */
Test(rans, fast_alias_encoder_gives_the_plain_c_bytes)
{
	enum { N = ENCODE_N };
	static const unsigned shapes[][3] = {{256, 128, 2}, {256, 128, 30}, {192, 150, 9}, {256, 100, 0}};
	uint8_t *s = malloc(N), *want = malloc(lcp_rans_alias_block_bound(N, 16));
	uint8_t *got = malloc(lcp_rans_alias_block_bound(N, 16));
	static struct lcp_rans_alias_enc e;
	rng_state = 78;
	for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
		make_symbols(s, N, shapes[k][0], shapes[k][1], shapes[k][2]);
		for (uint32_t i = 5; i < N; i += 301)
			s[i] = 0;
		uint64_t hist[256] = {0};
		for (uint32_t i = 0; i < N; i++)
			hist[s[i]]++;
		/* directly: the first 31 symbols in range that occur */
		uint64_t h[256] = {0};
		unsigned direct = 0;
		for (unsigned v = 65; v <= 191 && direct < 31; v++)
			if (hist[v]) {
				h[v] = hist[v];
				direct++;
			}
		for (unsigned v = 0; v < 256; v++)
			h[0] += h[v] ? 0 : hist[v];
		uint16_t freq[256];
		lcp_rans_normalize(h, freq);
		cr_assert(lcp_rans_alias_model(freq));
		lcp_rans_alias_enc_init(&e, freq);
		for (size_t li = 0; li < sizeof encode_lengths / sizeof encode_lengths[0]; li++) {
			uint32_t n = encode_lengths[li];
			size_t want_len = lcp_rans_alias_encode_ref(&e, s + N - n, n, 16, want);
			size_t got_len = lcp_rans_alias_encode(&e, s + N - n, n, 16, got);
			cr_assert_eq(got_len, want_len, "shape %zu, n %u", k, n);
			cr_assert_arr_eq(got, want, want_len, "shape %zu, n %u", k, n);
		}
	}
	free(s);
	free(want);
	free(got);
}
