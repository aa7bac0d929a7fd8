/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Provider registry and the no-op fallback provider.
 *
 * The registry is one atomic pointer. Registration is a single
 * compare-and-exchange from NULL, so concurrent registrations cannot both
 * win and no lock is needed on the lookup path, which runs on every file
 * operation. Release/acquire ordering makes the winner's ops and impl
 * (initialised before registering) visible to every thread that sees it.
 */
#include "lcpfs/provider.h"

#include <stdatomic.h>
#include <string.h>

static _Atomic(const struct lcp_provider *) registered;

static const char *noop_name(const struct lcp_provider *p)
{
	(void)p;
	return "no-op";
}

static bool noop_is_candidate(const struct lcp_provider *p, const void *data, size_t len)
{
	(void)p;
	(void)data;
	(void)len;
	return false;
}

static lcp_err noop_compress(const struct lcp_provider *p, const struct lcp_tensor_view *t,
			     const struct lcp_config *cfg, uint8_t **payload, size_t *payload_len,
			     struct lcp_qlor *meta)
{
	(void)p;
	(void)t;
	(void)cfg;
	*payload = NULL;
	*payload_len = 0;
	lcp_qlor_init(meta, 0, 4, 16);
	return LCP_ERR_NOPROVIDER;
}

static lcp_err noop_decompress(const struct lcp_provider *p, const uint8_t *payload, size_t len,
			       const struct lcp_qlor *meta, void **out, size_t *out_len)
{
	(void)p;
	(void)payload;
	(void)len;
	(void)meta;
	*out = NULL;
	*out_len = 0;
	return LCP_ERR_NOPROVIDER;
}

/* The seed's NoOpQLoraProvider::new() config: rank 16, not a preset. */
static const struct lcp_config noop_cfg = {
	.bits = 4,
	.rank = 16,
	.group_size = 64,
	.symmetric = true,
	.min_size = 4096,
	.max_size = (uint64_t)1024 * 1024 * 1024,
	.quality_threshold = 0.97f,
};

static const struct lcp_config *noop_config(const struct lcp_provider *p)
{
	(void)p;
	return &noop_cfg;
}

static bool noop_supports_gpu(const struct lcp_provider *p)
{
	(void)p;
	return false;
}

static void noop_statistics(const struct lcp_provider *p, struct lcp_stats *out)
{
	(void)p;
	memset(out, 0, sizeof *out);
}

static const struct lcp_provider_ops noop_ops = {
	.name = noop_name,
	.is_candidate = noop_is_candidate,
	.compress = noop_compress,
	.decompress = noop_decompress,
	.config = noop_config,
	.supports_gpu = noop_supports_gpu,
	.statistics = noop_statistics,
};

static const struct lcp_provider noop_provider = {.ops = &noop_ops, .impl = NULL};

const struct lcp_provider *lcp_provider_noop(void)
{
	return &noop_provider;
}

static bool ops_complete(const struct lcp_provider_ops *o)
{
	return o && o->name && o->is_candidate && o->compress && o->decompress && o->config &&
	       o->supports_gpu && o->statistics;
}

bool lcp_provider_register(const struct lcp_provider *p)
{
	const struct lcp_provider *expected = NULL;

	/* Registering the fallback would make lcp_provider_available() lie. */
	if (!p || p == &noop_provider || !ops_complete(p->ops))
		return false;
	return atomic_compare_exchange_strong_explicit(&registered, &expected, p,
						       memory_order_acq_rel, memory_order_acquire);
}

const struct lcp_provider *lcp_provider_get(void)
{
	const struct lcp_provider *p = atomic_load_explicit(&registered, memory_order_acquire);
	return p ? p : &noop_provider;
}

bool lcp_provider_available(void)
{
	return atomic_load_explicit(&registered, memory_order_acquire) != NULL;
}

bool lcp_provider_is_candidate(const void *data, size_t len)
{
	const struct lcp_provider *p = lcp_provider_get();
	return p->ops->is_candidate(p, data, len);
}

lcp_err lcp_provider_compress(const struct lcp_tensor_view *t, uint8_t **payload,
			      size_t *payload_len, struct lcp_qlor *meta)
{
	const struct lcp_provider *p = lcp_provider_get();
	return p->ops->compress(p, t, p->ops->config(p), payload, payload_len, meta);
}

lcp_err lcp_provider_compress_with_config(const struct lcp_tensor_view *t,
					  const struct lcp_config *cfg, uint8_t **payload,
					  size_t *payload_len, struct lcp_qlor *meta)
{
	const struct lcp_provider *p = lcp_provider_get();
	return p->ops->compress(p, t, cfg, payload, payload_len, meta);
}

lcp_err lcp_provider_decompress(const uint8_t *payload, size_t len, const struct lcp_qlor *meta,
				void **out, size_t *out_len)
{
	const struct lcp_provider *p = lcp_provider_get();
	return p->ops->decompress(p, payload, len, meta, out, out_len);
}
