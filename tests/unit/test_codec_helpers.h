/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Helpers shared by the codec tests and tests/tools/make_codec_fixture.c:
 * a deterministic random source, element values in every float dtype, and
 * the range-read comparison. Plain C (no criterion), header-only so the
 * fixture tool builds without the test runner.
 */
#ifndef LCPFS_TEST_CODEC_HELPERS_H
#define LCPFS_TEST_CODEC_HELPERS_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec/half.h"
#include "lcpfs/codec.h"

/* xorshift64; seed it by assigning rng_state (nonzero). */
static uint64_t rng_state = 1;

static inline uint64_t rng_next(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static inline uint32_t rnd(void)
{
	return (uint32_t)(rng_next() >> 32);
}

static inline double uniform01(void)
{
	return ((double)(rng_next() >> 11) + 0.5) / 9007199254740992.0;
}

/* Standard normal (Box-Muller). */
static inline double normal(void)
{
	return sqrt(-2.0 * log(uniform01())) * cos(6.283185307179586 * uniform01());
}

static inline unsigned elem_bytes(enum lcp_dtype dt)
{
	return dt == LCP_DTYPE_F32 ? 4 : dt == LCP_DTYPE_F64 ? 8 : 2;
}

/* x stored in dt (narrowing rounds to nearest even), native byte order. */
static inline void put_value(enum lcp_dtype dt, uint8_t *p, double x)
{
	float f = (float)x;
	uint16_t h;
	switch (dt) {
	case LCP_DTYPE_F32:
		memcpy(p, &f, 4);
		break;
	case LCP_DTYPE_F16:
		h = lcp_f16_from_f32(f);
		memcpy(p, &h, 2);
		break;
	case LCP_DTYPE_BF16:
		h = lcp_bf16_from_f32(f);
		memcpy(p, &h, 2);
		break;
	default:
		memcpy(p, &x, 8);
		break;
	}
}

/* n normal weights (sigma 0.02, from rng seed) stored in dt, malloc'ed. */
static inline uint8_t *normal_weights(enum lcp_dtype dt, uint64_t n, uint64_t seed)
{
	unsigned eb = elem_bytes(dt);
	uint8_t *x = malloc(n * eb);
	rng_state = seed;
	for (uint64_t i = 0; i < n; i++)
		put_value(dt, x + i * eb, 0.02 * normal());
	return x;
}

static inline double get_value(enum lcp_dtype dt, const uint8_t *p)
{
	float f;
	uint16_t h;
	double d;
	switch (dt) {
	case LCP_DTYPE_F32:
		memcpy(&f, p, 4);
		return f;
	case LCP_DTYPE_F16:
		memcpy(&h, p, 2);
		return lcp_f16_to_f32(h);
	case LCP_DTYPE_BF16:
		memcpy(&h, p, 2);
		return lcp_bf16_to_f32(h);
	default:
		memcpy(&d, p, 8);
		return d;
	}
}

/*
 * Range reads of one chunk (data: its stored bytes) at block edges, group
 * edges, single elements, odd starts and lengths, and the whole chunk, each
 * into an exact-size buffer (SAN=1 catches writes past it), compared with
 * whole, the reconstruction of the tensor. false at the first failure, with
 * its range in *bad_start, *bad_count (chunk-relative).
 */
static inline bool range_reads_match(const struct lcp_codec_tensor *ct,
				     const struct lcp_chunk_info *ci, const uint8_t *data,
				     const uint8_t *whole, unsigned eb, uint64_t *bad_start,
				     uint64_t *bad_count)
{
	uint64_t be = lcp_codec_tensor_block_elems(ct), m = ci->elem_end - ci->elem_begin;
	const uint64_t starts[] = {0, 1, 63, 64, be - 1, be, be + 7, m / 3, m / 2, m - 1};
	const uint64_t counts[] = {1, 2, 7, 17, 64, 100, be, be + 1, 3 * be + 5, m};
	for (size_t si = 0; si < sizeof starts / sizeof starts[0]; si++)
		for (size_t ni = 0; ni < sizeof counts / sizeof counts[0]; ni++) {
			uint64_t s = starts[si], cnt = counts[ni];
			if (s >= m || cnt > m - s)
				continue;
			uint8_t *out = malloc(cnt * eb);
			bool ok = out &&
				  lcp_codec_decode_range(ct, ci, data, ci->data_len, ci->elem_begin + s,
							 cnt, out, cnt * eb) == LCP_OK &&
				  memcmp(out, whole + (ci->elem_begin + s) * eb, cnt * eb) == 0;
			free(out);
			if (!ok) {
				*bad_start = s;
				*bad_count = cnt;
				return false;
			}
		}
	return true;
}

#endif
