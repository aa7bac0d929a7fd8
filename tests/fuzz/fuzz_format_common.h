/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What every format harness checks on lcp_format_parse's answer: it returns
 * LCP_OK (a file is never an error, only ok or refused; allocation cannot
 * fail under the fuzzer's memory limit), and the map meets format.h's
 * contract: regions ordered, contiguous, non-empty, covering the file; a
 * refused map is one EXACT region with a reason; TENSOR regions float,
 * 2..LCP_MAX_DIMS dims, shape times width equal to their length; CRC32
 * regions 4 bytes pointing at a TENSOR.
 */
#ifndef LCPFS_FUZZ_FORMAT_COMMON_H
#define LCPFS_FUZZ_FORMAT_COMMON_H

#include "fuzz.h"
#include "lcpfs/dtype.h"
#include "lcpfs/format.h"

static inline void fuzz_check_map(const struct lcp_region_map *m, uint64_t size)
{
	FUZZ_CHECK(m->file_size == size);
	uint64_t at = 0;
	for (size_t i = 0; i < m->nregions; i++) {
		const struct lcp_region *r = &m->regions[i];
		FUZZ_CHECK(r->off == at && r->len > 0 && r->len <= size - r->off);
		if (r->kind == LCP_REGION_CRC32) {
			FUZZ_CHECK(r->len == 4 && r->crc_of < m->nregions);
			FUZZ_CHECK(m->regions[r->crc_of].kind == LCP_REGION_TENSOR);
		} else if (r->kind == LCP_REGION_TENSOR) {
			FUZZ_CHECK(r->ndims >= 2 && r->ndims <= LCP_MAX_DIMS);
			FUZZ_CHECK(r->dtype == LCP_DTYPE_F32 || r->dtype == LCP_DTYPE_F16 ||
				   r->dtype == LCP_DTYPE_BF16 || r->dtype == LCP_DTYPE_F64);
			uint64_t n = lcp_dtype_bytes(r->dtype);
			for (uint32_t d = 0; d < r->ndims; d++)
				n *= r->dims[d];
			FUZZ_CHECK(n == r->len);
		} else {
			FUZZ_CHECK(r->kind == LCP_REGION_EXACT);
		}
		at += r->len;
	}
	FUZZ_CHECK(at == size);
	if (!m->ok)
		FUZZ_CHECK(m->reason[0] != '\0' && m->nregions == (size ? 1u : 0u));
}

/* Parses data with min_size and checks the map; returns whether it was ok. */
static inline int fuzz_parse(const uint8_t *data, size_t size, uint64_t min_size)
{
	struct lcp_mem_source src = {data, size};
	struct lcp_reader r;
	struct lcp_region_map m;
	lcp_reader_from_memory(&r, &src);
	FUZZ_CHECK(lcp_format_parse(&r, min_size, &m) == LCP_OK);
	fuzz_check_map(&m, size);
	int ok = m.ok;
	lcp_region_map_free(&m);
	return ok;
}

/* Runs data with its first bytes replaced by magic (so the fuzzer spends its
 * time inside one parser, not on finding its magic). */
static inline int fuzz_parse_as(const uint8_t *data, size_t size, const void *magic, size_t magic_off,
				size_t magic_len)
{
	if (size < magic_off + magic_len)
		return fuzz_parse(data, size, 0);
	uint8_t *copy = malloc(size);
	if (!copy)
		return 0;
	for (size_t i = 0; i < size; i++)
		copy[i] = data[i];
	for (size_t i = 0; i < magic_len; i++)
		copy[magic_off + i] = ((const uint8_t *)magic)[i];
	/* min_size from the input too, so both sides of the rule are reached. */
	int ok = fuzz_parse(copy, size, size > magic_off + magic_len ? copy[size - 1] : 0);
	free(copy);
	return ok;
}

#endif
