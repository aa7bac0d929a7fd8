/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The damaged-chunk check shared by the codec tests: mutations of one
 * stored chunk, with its stored checksum recomputed so the decoder's
 * structural checks run, decoded by the reference kernels and by every
 * other set this machine supports. Never a crash (run under SAN=1), and
 * every set gives the reference's verdict and, when it decodes, its bytes.
 */
#ifndef LCPFS_TEST_CODEC_DAMAGE_H
#define LCPFS_TEST_CODEC_DAMAGE_H

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "codec/kernels.h"
#include "common/checksum.h"
#include "lcpfs/codec.h"
#include "test_codec_helpers.h"

/*
 * Runs `mutations` mutations of chunk ci (its bytes at data) of tensor ct,
 * whose reconstruction takes out_bytes: every fifth one also truncates the
 * chunk by up to 64 bytes; each flips 1 to 3 bits, half of them within
 * bytes [head_from, head_from + head_span) (the chunk's tables and first
 * lane states), the rest anywhere.
 */
static inline void check_damaged_chunk(const struct lcp_codec_tensor *ct,
				       const struct lcp_chunk_info *ci, const uint8_t *data,
				       size_t out_bytes, int mutations, size_t head_from,
				       size_t head_span)
{
	static const char *const others[] = {"baseline", "avx2", "avx512"};
	uint8_t *ref_out = malloc(out_bytes), *out = malloc(out_bytes);
	cr_assert(ref_out && out);
	for (int k = 0; k < mutations; k++) {
		size_t len = ci->data_len;
		if (k % 5 == 1)
			len -= 1 + rnd() % 64;
		uint8_t *d = malloc(len);
		cr_assert_not_null(d);
		memcpy(d, data, len);
		for (int f = 0; f < 1 + k % 3; f++) {
			size_t span = len - head_from < head_span ? len - head_from : head_span;
			size_t at = k % 2 ? rnd() % len : head_from + rnd() % span;
			d[at] ^= (uint8_t)(1u << (rnd() % 8));
		}
		struct lcp_chunk_info m = *ci;
		m.data_len = len;
		m.stored_xxh3 = lcp_xxh3(d, len);
		lcp_kernels_force(lcp_kernels_named("ref"));
		lcp_err want = lcp_codec_decode_chunk(ct, &m, d, len, ref_out, out_bytes);
		for (size_t s = 0; s < sizeof others / sizeof others[0]; s++) {
			const struct lcp_kernels *kern = lcp_kernels_named(others[s]);
			if (!kern)
				continue;
			lcp_kernels_force(kern);
			lcp_err got = lcp_codec_decode_chunk(ct, &m, d, len, out, out_bytes);
			cr_assert_eq(got != LCP_OK, want != LCP_OK, "mutation %d: %s", k, others[s]);
			if (want == LCP_OK)
				cr_assert_arr_eq(out, ref_out, out_bytes, "mutation %d: %s", k, others[s]);
		}
		lcp_kernels_force(NULL);
		free(d);
	}
	free(ref_out);
	free(out);
}

#endif
