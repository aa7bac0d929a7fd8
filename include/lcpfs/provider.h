/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Compression provider interface: the seed's QLoraProvider trait as a C
 * vtable, the process-wide registry in which the first registration wins,
 * the no-op fallback provider, and convenience calls through the registered
 * provider.
 *
 * A provider is a const struct lcp_provider: an ops table plus an opaque
 * impl pointer. The library registers nothing by itself; a program that wants
 * the real CPU codec registers it once at start-up (src/codec/provider_cpu.c).
 * Until then, and when nothing is ever registered, every lookup answers with
 * the no-op provider, which never compresses (LCP_ERR_NOPROVIDER).
 */
#ifndef LCPFS_PROVIDER_H
#define LCPFS_PROVIDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lcpfs/codec.h"
#include "lcpfs/config.h"
#include "lcpfs/err.h"
#include "lcpfs/qlor.h"
#include "lcpfs/stats.h"

struct lcp_provider;

/*
 * Operations of a provider. Every pointer is required (lcp_provider_register
 * refuses a table with a NULL entry). Every operation must be safe to call
 * concurrently from several threads on the same provider, because the
 * registered provider is shared process-wide.
 */
struct lcp_provider_ops {
	/* Name for logs ("no-op", "cpu"); static storage, never NULL. */
	const char *(*name)(const struct lcp_provider *p);

	/* True when data[0..len) looks worth compressing (tensor data). Must not
	 * read outside data[0..len); data may be NULL when len is 0. */
	bool (*is_candidate)(const struct lcp_provider *p, const void *data, size_t len);

	/*
	 * Compresses tensor t with cfg. On success *payload is an lcp_malloc'ed
	 * buffer of *payload_len bytes owned by the caller (release with
	 * lcp_free), and *meta is filled and owned by the caller (release with
	 * lcp_qlor_free); meta must not own anything on entry. On error
	 * *payload is NULL, *payload_len 0 and *meta is in the
	 * lcp_qlor_init(meta, 0, 4, 16) state, owning nothing. Errors include
	 * LCP_ERR_NOPROVIDER (no-op), LCP_ERR_INVAL, LCP_ERR_UNSUPPORTED,
	 * LCP_ERR_QUALITY, LCP_ERR_NOMEM.
	 */
	lcp_err (*compress)(const struct lcp_provider *p, const struct lcp_tensor_view *t,
			    const struct lcp_config *cfg, uint8_t **payload, size_t *payload_len,
			    struct lcp_qlor *meta);

	/*
	 * Reconstructs the tensor from a payload produced by compress and its
	 * metadata. On success *out is an lcp_malloc'ed buffer of *out_len bytes
	 * owned by the caller (release with lcp_free). On error *out is NULL and
	 * *out_len 0. Unlike the seed, a provider must not compare the result
	 * with meta->original_checksum: a lossy reconstruction never matches it.
	 */
	lcp_err (*decompress)(const struct lcp_provider *p, const uint8_t *payload, size_t len,
			      const struct lcp_qlor *meta, void **out, size_t *out_len);

	/* The provider's default configuration; lives as long as the provider. */
	const struct lcp_config *(*config)(const struct lcp_provider *p);

	/* True when the provider uses a GPU. */
	bool (*supports_gpu)(const struct lcp_provider *p);

	/* Writes a snapshot of the provider's counters to *out (all zero for a
	 * provider that keeps none). */
	void (*statistics)(const struct lcp_provider *p, struct lcp_stats *out);
};

/* A provider instance: ops plus the implementation's private state. */
struct lcp_provider {
	const struct lcp_provider_ops *ops;
	void *impl; /* owned by the implementation; the registry never touches it */
};

/*
 * Registers p as the process-wide provider. The first successful
 * registration wins for the life of the process; there is no unregister.
 * Returns true when p became the registered provider, false when another
 * provider was registered first (also when p is the same one again), when p
 * is NULL, when p is the no-op provider, or when p->ops or any of its
 * entries is NULL. p (and p->ops) must outlive every later lookup, i.e. in
 * practice have static storage duration. Thread-safe and lock-free
 * (one atomic compare-and-exchange): of several concurrent calls exactly one
 * can succeed, and every thread afterwards sees that winner.
 */
bool lcp_provider_register(const struct lcp_provider *p);

/* The registered provider, or lcp_provider_noop() when none is. Never NULL.
 * Thread-safe. */
const struct lcp_provider *lcp_provider_get(void);

/* True only when a real provider (not the no-op fallback) is registered.
 * Thread-safe. */
bool lcp_provider_available(void);

/*
 * The no-op fallback (the seed's NoOpQLoraProvider): name "no-op", never a
 * candidate, compress and decompress fail with LCP_ERR_NOPROVIDER (clearing
 * their out-parameters as the ops contract says), no GPU, statistics all
 * zero, and config {bits 4, rank 16, group 64, symmetric, min_size 4096,
 * max_size 1 GiB, quality 0.97} (the seed's no-op config, which is not one
 * of the presets). Static storage. Thread-safe.
 */
const struct lcp_provider *lcp_provider_noop(void);

/* Convenience calls through lcp_provider_get(), as the seed's free
 * functions. Same contracts as the corresponding ops. */

/* The seed's is_qlora_candidate(data). */
bool lcp_provider_is_candidate(const void *data, size_t len);

/* The seed's compress_qlora(data): compresses with the provider's own
 * config(). */
lcp_err lcp_provider_compress(const struct lcp_tensor_view *t, uint8_t **payload,
			      size_t *payload_len, struct lcp_qlor *meta);

/* The seed's compress_qlora_with_config(data, config). */
lcp_err lcp_provider_compress_with_config(const struct lcp_tensor_view *t,
					  const struct lcp_config *cfg, uint8_t **payload,
					  size_t *payload_len, struct lcp_qlor *meta);

/* The seed's decompress_qlora(compressed, metadata). */
lcp_err lcp_provider_decompress(const uint8_t *payload, size_t len, const struct lcp_qlor *meta,
				void **out, size_t *out_len);

#endif
