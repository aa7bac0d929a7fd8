/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internal interface of the decoded-chunk cache (struct lcp_chunk_cache,
 * created through lcpfs/store.h). Entries are keyed by (file id, region,
 * chunk, block): a chunk that decodes by blocks is cached block by block,
 * any other chunk whole (block LCP_CACHE_WHOLE_CHUNK). A hit copies out
 * under the cache's mutex, so an entry is never freed while someone reads
 * it.
 */
#ifndef LCPFS_STORE_CACHE_H
#define LCPFS_STORE_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lcpfs/store.h"
#include "store/sidecar.h"

struct lcp_cache_key {
	uint8_t file_id[LCP_FILE_ID_LEN];
	uint32_t region;
	uint32_t chunk;
	uint32_t block;
};
#define LCP_CACHE_WHOLE_CHUNK UINT32_MAX

/* On a hit copies len bytes at off of the cached chunk into dst and returns
 * true (the entry becomes most recently used). */
bool lcp_chunk_cache_copy(struct lcp_chunk_cache *c, const struct lcp_cache_key *key,
			  size_t off, void *dst, size_t len);
/* Inserts a copy of data[0..len); evicts least recently used entries to stay
 * within capacity. A chunk larger than the capacity is not kept. An existing
 * entry for key is left as it is (decode is deterministic: same bytes). */
void lcp_chunk_cache_put(struct lcp_chunk_cache *c, const struct lcp_cache_key *key,
			 const void *data, size_t len);
/* Bytes held now (tests). */
size_t lcp_chunk_cache_used(struct lcp_chunk_cache *c);

#endif
