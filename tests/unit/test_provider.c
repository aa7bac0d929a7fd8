/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Provider interface: the no-op fallback, the registry (first registration
 * wins, even with threads racing), and the convenience calls through the
 * registered provider. Ports the seed's test_noop_provider,
 * test_global_provider_fallback and test_convenience_functions.
 *
 * The registry is process-wide with no way to reset it (on purpose). These
 * tests rely on criterion running every test in its own forked process, so a
 * registration in one test is invisible to the others.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/alloc.h"
#include "leak_check.h"
#include "lcpfs/provider.h"

/* Threads racing to register; the brief asks for about eight. */
#define RACE_THREADS 8
/* Independent races, each in a fresh forked process (the registry cannot
 * be reset): enough to give a broken compare-and-exchange many chances to
 * show, few enough to stay well under a second. */
#define RACE_ROUNDS 24

static const uint8_t four_bytes[4] = {1, 2, 3, 4};

static void expect_meta_default(const struct lcp_qlor *m)
{
	cr_expect_eq(m->original_size, 0);
	cr_expect_eq(m->bits, 4);
	cr_expect_eq(m->rank, 16);
	cr_expect_null(m->dims);
	cr_expect_null(m->scales);
	cr_expect_null(m->zero_points);
	cr_expect_null(m->extra);
}

static struct lcp_tensor_view small_tensor(void)
{
	static const float data[4] = {1.0f, 2.0f, 3.0f, 4.0f};
	struct lcp_tensor_view t = {
		.dtype = LCP_DTYPE_F32,
		.ndims = 1,
		.dims = {4},
		.data = data,
		.len = sizeof data,
	};
	return t;
}

/* Seed: test_noop_provider */
Test(provider, seed_noop_provider)
{
	const struct lcp_provider *p = lcp_provider_noop();
	struct lcp_tensor_view t = small_tensor();
	struct lcp_config cfg = lcp_config_default();
	struct lcp_qlor meta;
	uint8_t *payload = (uint8_t *)"x";
	size_t payload_len = 9;
	void *out = (void *)"x";
	size_t out_len = 9;

	cr_assert_not_null(p);
	cr_expect_not(p->ops->is_candidate(p, four_bytes, sizeof four_bytes));
	cr_expect_eq(p->ops->compress(p, &t, &cfg, &payload, &payload_len, &meta),
		     LCP_ERR_NOPROVIDER);
	cr_expect_null(payload);
	cr_expect_eq(payload_len, 0);
	expect_meta_default(&meta);
	lcp_qlor_init(&meta, 0, 4, 16);
	cr_expect_eq(p->ops->decompress(p, NULL, 0, &meta, &out, &out_len), LCP_ERR_NOPROVIDER);
	cr_expect_null(out);
	cr_expect_eq(out_len, 0);
	cr_expect_str_eq(p->ops->name(p), "no-op");
	cr_expect_not(p->ops->supports_gpu(p));
}

Test(provider, noop_config_is_the_seeds)
{
	const struct lcp_provider *p = lcp_provider_noop();
	const struct lcp_config *c = p->ops->config(p);

	cr_assert_not_null(c);
	cr_expect_eq(c->bits, 4);
	cr_expect_eq(c->rank, 16);
	cr_expect_eq(c->group_size, 64);
	cr_expect(c->symmetric);
	cr_expect_eq(c->min_size, 4096);
	cr_expect_eq(c->max_size, (uint64_t)1 << 30);
	cr_expect_eq(c->quality_threshold, 0.97f);
	cr_expect(lcp_config_is_valid(c));
}

Test(provider, noop_statistics_are_zero)
{
	const struct lcp_provider *p = lcp_provider_noop();
	struct lcp_stats s;
	static const struct lcp_stats zero;

	memset(&s, 0xFF, sizeof s);
	p->ops->statistics(p, &s);
	cr_expect_eq(memcmp(&s, &zero, sizeof s), 0);
}

/* Seed: test_global_provider_fallback */
Test(provider, seed_global_provider_fallback)
{
	const struct lcp_provider *p = lcp_provider_get();

	cr_assert_not_null(p);
	cr_expect_eq(p, lcp_provider_noop());
	cr_expect_str_eq(p->ops->name(p), "no-op");
	cr_expect_not(lcp_provider_available());
	cr_expect_not(lcp_provider_is_candidate(four_bytes, sizeof four_bytes));
}

/* Seed: test_convenience_functions */
Test(provider, seed_convenience_functions)
{
	struct lcp_tensor_view t = small_tensor();
	struct lcp_config aggressive = lcp_config_aggressive();
	struct lcp_qlor meta;
	uint8_t *payload = (uint8_t *)"x";
	size_t payload_len = 3;
	void *out = (void *)"x";
	size_t out_len = 3;

	cr_expect_not(lcp_provider_is_candidate(four_bytes, sizeof four_bytes));
	cr_expect_eq(lcp_provider_compress(&t, &payload, &payload_len, &meta), LCP_ERR_NOPROVIDER);
	cr_expect_null(payload);
	expect_meta_default(&meta);
	payload = (uint8_t *)"x";
	cr_expect_eq(lcp_provider_compress_with_config(&t, &aggressive, &payload, &payload_len,
						       &meta),
		     LCP_ERR_NOPROVIDER);
	cr_expect_null(payload);
	lcp_qlor_init(&meta, 0, 4, 16);
	cr_expect_eq(lcp_provider_decompress(NULL, 0, &meta, &out, &out_len), LCP_ERR_NOPROVIDER);
	cr_expect_null(out);
	expect_no_leaks();
}

/* A recording test provider. */
struct fake {
	const char *name;
	struct lcp_config cfg;
	atomic_int candidate_calls;
	atomic_int compress_calls;
	atomic_int decompress_calls;
	const struct lcp_config *last_cfg;
};

static struct fake *fake_of(const struct lcp_provider *p)
{
	return p->impl;
}

static const char *fake_name(const struct lcp_provider *p)
{
	return fake_of(p)->name;
}

static bool fake_is_candidate(const struct lcp_provider *p, const void *data, size_t len)
{
	atomic_fetch_add(&fake_of(p)->candidate_calls, 1);
	return len >= 4 && memcmp(data, four_bytes, 4) == 0;
}

static lcp_err fake_compress(const struct lcp_provider *p, const struct lcp_tensor_view *t,
			     const struct lcp_config *cfg, uint8_t **payload, size_t *payload_len,
			     struct lcp_qlor *meta)
{
	atomic_fetch_add(&fake_of(p)->compress_calls, 1);
	fake_of(p)->last_cfg = cfg;
	*payload = lcp_malloc(3);
	if (!*payload)
		return LCP_ERR_NOMEM;
	memcpy(*payload, "abc", 3);
	*payload_len = 3;
	lcp_qlor_init(meta, t->len, cfg->bits, cfg->rank);
	return LCP_OK;
}

static lcp_err fake_decompress(const struct lcp_provider *p, const uint8_t *payload, size_t len,
			       const struct lcp_qlor *meta, void **out, size_t *out_len)
{
	(void)payload;
	atomic_fetch_add(&fake_of(p)->decompress_calls, 1);
	*out = lcp_malloc(meta->original_size);
	if (!*out)
		return LCP_ERR_NOMEM;
	memset(*out, (int)len, meta->original_size);
	*out_len = meta->original_size;
	return LCP_OK;
}

static const struct lcp_config *fake_config(const struct lcp_provider *p)
{
	return &fake_of(p)->cfg;
}

static bool fake_supports_gpu(const struct lcp_provider *p)
{
	(void)p;
	return true;
}

static void fake_statistics(const struct lcp_provider *p, struct lcp_stats *out)
{
	memset(out, 0, sizeof *out);
	out->compress_count = (uint64_t)atomic_load(&fake_of(p)->compress_calls);
}

static const struct lcp_provider_ops fake_ops = {
	.name = fake_name,
	.is_candidate = fake_is_candidate,
	.compress = fake_compress,
	.decompress = fake_decompress,
	.config = fake_config,
	.supports_gpu = fake_supports_gpu,
	.statistics = fake_statistics,
};

static struct fake fake_a = {.name = "fake-a"};
static struct fake fake_b = {.name = "fake-b"};
static const struct lcp_provider provider_a = {.ops = &fake_ops, .impl = &fake_a};
static const struct lcp_provider provider_b = {.ops = &fake_ops, .impl = &fake_b};

Test(provider, register_rejects_bad_providers)
{
	struct lcp_provider_ops partial = fake_ops;
	const struct lcp_provider no_ops = {.ops = NULL, .impl = &fake_a};
	const struct lcp_provider holes = {.ops = &partial, .impl = &fake_a};

	partial.statistics = NULL;
	cr_expect_not(lcp_provider_register(NULL));
	cr_expect_not(lcp_provider_register(lcp_provider_noop()));
	cr_expect_not(lcp_provider_register(&no_ops));
	cr_expect_not(lcp_provider_register(&holes));
	cr_expect_not(lcp_provider_available());
	cr_expect_eq(lcp_provider_get(), lcp_provider_noop());
	/* None of the refusals used up the one registration. */
	cr_expect(lcp_provider_register(&provider_a));
}

Test(provider, first_registration_wins)
{
	const struct lcp_provider *p;
	struct lcp_stats s;

	cr_expect_not(lcp_provider_available());
	cr_assert(lcp_provider_register(&provider_a));
	cr_expect(lcp_provider_available());
	cr_expect_eq(lcp_provider_get(), &provider_a);
	cr_expect_not(lcp_provider_register(&provider_b));
	cr_expect_not(lcp_provider_register(&provider_a));
	p = lcp_provider_get();
	cr_expect_eq(p, &provider_a);
	cr_expect_str_eq(p->ops->name(p), "fake-a");
	cr_expect(p->ops->supports_gpu(p));
	p->ops->statistics(p, &s);
	cr_expect_eq(s.compress_count, 0);
}

Test(provider, convenience_functions_use_registered_provider)
{
	struct lcp_tensor_view t = small_tensor();
	struct lcp_config quality = lcp_config_quality();
	struct lcp_qlor meta;
	uint8_t *payload;
	size_t payload_len;
	void *out;
	size_t out_len;

	fake_a.cfg = lcp_config_aggressive();
	cr_assert(lcp_provider_register(&provider_a));
	cr_expect(lcp_provider_is_candidate(four_bytes, sizeof four_bytes));
	cr_expect_not(lcp_provider_is_candidate("abcd", 4));
	cr_expect_eq(atomic_load(&fake_a.candidate_calls), 2);

	cr_assert_eq(lcp_provider_compress(&t, &payload, &payload_len, &meta), LCP_OK);
	cr_expect_eq(fake_a.last_cfg, &fake_a.cfg, "compress uses the provider's config");
	cr_expect_eq(payload_len, 3);
	cr_expect_eq(meta.bits, 4);
	cr_expect_eq(meta.rank, 8);
	cr_expect_eq(meta.original_size, 16);
	lcp_free(payload);

	cr_assert_eq(lcp_provider_compress_with_config(&t, &quality, &payload, &payload_len, &meta),
		     LCP_OK);
	cr_expect_eq(fake_a.last_cfg, &quality);
	cr_expect_eq(meta.bits, 8);
	cr_expect_eq(meta.rank, 64);
	lcp_free(payload);

	cr_assert_eq(lcp_provider_decompress((const uint8_t *)"abc", 3, &meta, &out, &out_len),
		     LCP_OK);
	cr_expect_eq(out_len, 16);
	cr_expect_eq(((uint8_t *)out)[15], 3);
	lcp_free(out);
	cr_expect_eq(atomic_load(&fake_a.compress_calls), 2);
	cr_expect_eq(atomic_load(&fake_a.decompress_calls), 1);
	lcp_qlor_free(&meta);
	expect_no_leaks();
}

struct racer {
	pthread_barrier_t *start;
	const struct lcp_provider *mine;
	bool won;
	const struct lcp_provider *seen;
};

static void *race(void *arg)
{
	struct racer *r = arg;

	pthread_barrier_wait(r->start);
	r->won = lcp_provider_register(r->mine);
	r->seen = lcp_provider_get();
	return NULL;
}

/*
 * One race in the calling process: RACE_THREADS threads released together by
 * a barrier each try to register their own provider. Returns 0 when exactly
 * one won and every thread (and the caller) sees that one, else a code
 * saying what went wrong.
 */
static int run_race(void)
{
	static struct fake impls[RACE_THREADS];
	static struct lcp_provider providers[RACE_THREADS];
	struct racer racers[RACE_THREADS];
	pthread_t threads[RACE_THREADS];
	pthread_barrier_t start;
	const struct lcp_provider *winner = NULL;
	int wins = 0;

	if (pthread_barrier_init(&start, NULL, RACE_THREADS) != 0)
		return 10;
	for (int i = 0; i < RACE_THREADS; i++) {
		impls[i].name = "racer";
		providers[i].ops = &fake_ops;
		providers[i].impl = &impls[i];
		racers[i] = (struct racer){.start = &start, .mine = &providers[i]};
	}
	for (int i = 0; i < RACE_THREADS; i++)
		if (pthread_create(&threads[i], NULL, race, &racers[i]) != 0)
			return 11;
	for (int i = 0; i < RACE_THREADS; i++)
		pthread_join(threads[i], NULL);
	pthread_barrier_destroy(&start);

	for (int i = 0; i < RACE_THREADS; i++) {
		if (racers[i].won) {
			wins++;
			winner = racers[i].mine;
		}
	}
	if (wins != 1)
		return 20 + wins;
	for (int i = 0; i < RACE_THREADS; i++)
		if (racers[i].seen != winner)
			return 3;
	if (lcp_provider_get() != winner || !lcp_provider_available())
		return 4;
	if (lcp_provider_register(&providers[0]))
		return 5;
	return 0;
}

Test(provider, registration_race_has_one_winner)
{
	cr_expect_eq(run_race(), 0, "codes: 2x = x winners, 3 a thread saw another provider");
}

Test(provider, registration_race_repeated_in_fresh_processes)
{
	for (int round = 0; round < RACE_ROUNDS; round++) {
		int status = 0;
		pid_t pid = fork();

		cr_assert_geq(pid, 0, "fork failed");
		if (pid == 0)
			_exit(run_race());
		cr_assert_eq(waitpid(pid, &status, 0), pid);
		cr_assert(WIFEXITED(status), "round %d: child died", round);
		cr_expect_eq(WEXITSTATUS(status), 0, "round %d: code %d", round,
			     WEXITSTATUS(status));
	}
}
