/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer harness: the sidecar parser (lcp_sidecar_parse), the container
 * reader's trust boundary. The input's total length field and trailing
 * xxh3 are fixed up first (else nearly every mutation would stop at the
 * checksum); an input starting with 'R' is parsed raw instead, so the
 * checks before the checksum are fuzzed too. A sidecar that parses must
 * serialize and parse again.
 */
#include <string.h>

#include "common/checksum.h"
#include "common/le.h"
#include "fuzz.h"
#include "store/sidecar.h"

/* Where the sidecar keeps its total length, and its trailer (man lcpfs.5). */
#define SC_TOTAL_OFF 16
#define SC_TRAILER 8

FUZZ_TARGET(sidecar)
{
	if (size > 0 && data[0] == 'R') {
		struct lcp_sidecar sc;
		if (lcp_sidecar_parse(data + 1, size - 1, &sc) == LCP_OK)
			lcp_sidecar_free(&sc);
		return 0;
	}
	uint8_t *buf = malloc(size ? size : 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	if (size >= SC_TOTAL_OFF + 8 + SC_TRAILER) {
		lcp_store_le64(buf + SC_TOTAL_OFF, size);
		lcp_store_le64(buf + size - SC_TRAILER, lcp_xxh3(buf, size - SC_TRAILER));
	}
	struct lcp_sidecar sc;
	lcp_err e = lcp_sidecar_parse(buf, size, &sc);
	FUZZ_CHECK(e == LCP_OK || e == LCP_ERR_FORMAT || e == LCP_ERR_TRUNCATED || e == LCP_ERR_CHECKSUM ||
		   e == LCP_ERR_VERSION || e == LCP_ERR_NOMEM);
	if (e == LCP_OK) {
		struct lcp_buf out = LCP_BUF_INIT;
		FUZZ_CHECK(lcp_sidecar_serialize(&sc, &out) == LCP_OK);
		struct lcp_sidecar again;
		FUZZ_CHECK(lcp_sidecar_parse(out.data, out.len, &again) == LCP_OK);
		FUZZ_CHECK(again.nregions == sc.nregions && again.logical_size == sc.logical_size);
		lcp_sidecar_free(&again);
		lcp_buf_free(&out);
		lcp_sidecar_free(&sc);
	}
	free(buf);
	return 0;
}
