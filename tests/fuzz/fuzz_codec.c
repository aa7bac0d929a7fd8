/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer harness: the codec's params block (lcp_codec_tensor_open) and
 * chunk decoding (lcp_codec_decode_chunk) on fuzzed chunk bytes. Input:
 * u32 params_len, the params block (its trailing xxh3 fixed up so mutations
 * reach the fields), one byte choosing the chunk, then the chunk's stored
 * bytes (their xxh3 passed as the expected one). Decoding the same chunk
 * twice must give the same bytes (reconstruction is deterministic).
 */
#include <string.h>

#include "common/checksum.h"
#include "common/le.h"
#include "fuzz.h"
#include "lcpfs/codec.h"

/* Offset of chunk_elems in the params block (man lcpfs.5). */
#define PARAMS_CHUNK_ELEMS_OFF 16
/* Largest chunk the harness decodes: the codec allows 64 x 256 KiB. */
#define MAX_OUT_BYTES (16u << 20)

FUZZ_TARGET(codec)
{
	if (size < 5)
		return 0;
	size_t plen = lcp_load_le32(data);
	if (plen > size - 5)
		return 0;
	uint8_t *params = malloc(plen ? plen : 1);
	if (!params)
		return 0;
	memcpy(params, data + 4, plen);
	if (plen >= 32)
		lcp_store_le64(params + plen - 8, lcp_xxh3(params, plen - 8));
	uint8_t pick = data[4 + plen];
	const uint8_t *chunk = data + 5 + plen;
	size_t chunk_len = size - 5 - plen;

	struct lcp_codec_tensor *t;
	lcp_err e = lcp_codec_tensor_open(params, plen, &t);
	FUZZ_CHECK(e == LCP_OK || e == LCP_ERR_FORMAT || e == LCP_ERR_TRUNCATED || e == LCP_ERR_CHECKSUM ||
		   e == LCP_ERR_VERSION || e == LCP_ERR_UNSUPPORTED || e == LCP_ERR_NOMEM);
	if (e) {
		free(params);
		return 0;
	}
	uint64_t n = lcp_codec_tensor_elems(t);
	uint64_t per = lcp_load_le32(params + PARAMS_CHUNK_ELEMS_OFF);
	unsigned width = lcp_dtype_bytes(lcp_codec_tensor_dtype(t));
	if (n > 0 && per > 0) {
		uint64_t nchunks = (n + per - 1) / per;
		uint64_t b = (pick % nchunks) * per;
		uint64_t end = n - b < per ? n : b + per;
		uint64_t out_len = (end - b) * width;
		if (out_len <= MAX_OUT_BYTES) {
			struct lcp_chunk_info ci = {b, end, 0, chunk_len, lcp_xxh3(chunk, chunk_len), 0};
			uint8_t *o1 = malloc(out_len ? out_len : 1), *o2 = malloc(out_len ? out_len : 1);
			if (o1 && o2) {
				lcp_err d1 = lcp_codec_decode_chunk(t, &ci, chunk, chunk_len, o1, out_len);
				lcp_err d2 = lcp_codec_decode_chunk(t, &ci, chunk, chunk_len, o2, out_len);
				FUZZ_CHECK(d1 == d2);
				if (d1 == LCP_OK)
					FUZZ_CHECK(memcmp(o1, o2, out_len) == 0);
			}
			free(o1);
			free(o2);
		}
	}
	lcp_codec_tensor_free(t);
	free(params);
	return 0;
}
