/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The encoder pool and its ordered task runs (src/codec/pool.c): results
 * come back in order with every task run once, no task starts more than a
 * window ahead of the caller, a failed task stops the run, and executors
 * sharing a pool are served in turn (a long run does not hold a short one
 * back behind all its tasks).
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "lcpfs/codec.h"

/* Alarm for a hang: pool waits have no timeout of their own. */
#define HANG_SEC 60
#define LONG_RUN 400
#define SHORT_RUN 3

struct counting {
	atomic_uint started;
	atomic_uint runs[LONG_RUN];
	atomic_uint consumed;   /* tasks the caller has taken */
	atomic_uint max_ahead;  /* most tasks started beyond the one consumed */
	atomic_uint no_ctx;     /* tasks called without a context */
	uint32_t fail_at;       /* task that fails, or UINT32_MAX */
};

static lcp_err count_task(void *arg, uint32_t i, struct lcp_codec_ctx *ctx)
{
	struct counting *c = arg;
	if (!ctx)
		atomic_fetch_add(&c->no_ctx, 1);
	unsigned ahead = i + 1 - atomic_load(&c->consumed);
	unsigned m = atomic_load(&c->max_ahead);
	while (ahead > m && !atomic_compare_exchange_weak(&c->max_ahead, &m, ahead))
		;
	atomic_fetch_add(&c->runs[i], 1);
	atomic_fetch_add(&c->started, 1);
	return i == c->fail_at ? LCP_ERR_IO : LCP_OK;
}

static void consume_all(struct lcp_encode_exec *exec, uint32_t n, uint32_t window,
			struct counting *c)
{
	struct lcp_encode_run *run;
	cr_assert_eq(lcp_encode_run_start(exec, NULL, n, window, count_task, c, &run), LCP_OK);
	for (uint32_t k = 0; k < n; k++) {
		uint32_t i;
		cr_assert_eq(lcp_encode_run_next(run, &i), LCP_OK);
		cr_assert_eq(i, k, "out of order");
		cr_assert_eq(atomic_load(&c->runs[i]), 1, "task %u ran %u times", i,
			     atomic_load(&c->runs[i]));
		atomic_store(&c->consumed, k + 1);
	}
	lcp_encode_run_end(run);
}

Test(codec_pool, results_in_order_within_the_window)
{
	alarm(HANG_SEC);
	struct lcp_encode_pool *pool;
	struct lcp_encode_exec *exec;
	cr_assert_eq(lcp_encode_pool_create(3, false, &pool), LCP_OK);
	cr_assert_eq(lcp_encode_exec_create(pool, &exec), LCP_OK);
	uint32_t window = lcp_encode_exec_window(exec);
	cr_assert_eq(window, 3 * LCP_ENCODE_WINDOW_PER_THREAD);
	static struct counting c;
	c.fail_at = UINT32_MAX;
	consume_all(exec, LONG_RUN, window, &c);
	cr_assert_eq(atomic_load(&c.started), LONG_RUN);
	cr_assert_eq(atomic_load(&c.no_ctx), 0);
	/* Task i starts only once task i - window has been handed over. */
	cr_assert_leq(atomic_load(&c.max_ahead), window, "%u ahead", atomic_load(&c.max_ahead));
	lcp_encode_exec_free(exec);
	lcp_encode_pool_free(pool);
	alarm(0);
}

Test(codec_pool, a_failed_task_stops_the_run)
{
	alarm(HANG_SEC);
	struct lcp_encode_pool *pool;
	struct lcp_encode_exec *exec;
	struct lcp_encode_run *run;
	cr_assert_eq(lcp_encode_pool_create(2, false, &pool), LCP_OK);
	cr_assert_eq(lcp_encode_exec_create(pool, &exec), LCP_OK);
	static struct counting c;
	c.fail_at = 5;
	cr_assert_eq(lcp_encode_run_start(exec, NULL, LONG_RUN, 4, count_task, &c, &run), LCP_OK);
	lcp_err err = LCP_OK;
	uint32_t k = 0, i = 0;
	for (; k < LONG_RUN && !err; k++) {
		err = lcp_encode_run_next(run, &i);
		atomic_store(&c.consumed, k + 1);
	}
	cr_assert_eq(err, LCP_ERR_IO);
	cr_assert_eq(i, 5, "the failure is reported at its own task");
	lcp_encode_run_end(run);
	cr_assert_lt(atomic_load(&c.started), LONG_RUN, "the run went on after the failure");
	lcp_encode_exec_free(exec);
	lcp_encode_pool_free(pool);
	alarm(0);
}

/* Two executors on a one-thread pool. The long run's first task holds the
 * thread (once it runs, the short run is started) until the short run has
 * been started; from then on the thread
 * takes the two runs' tasks in turn, so the short run ends after at most
 * about as many of the long run's tasks as it has itself (first come, first
 * served would run all LONG_RUN first). */
struct gate {
	pthread_mutex_t m;
	pthread_cond_t cv;
	bool long_first_running;
	bool short_started;
	atomic_uint long_done;
	atomic_uint long_errors; /* failed calls in the consumer thread */
	atomic_uint long_at_short_end; /* long tasks done when the last short one ran */
};
static struct gate g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, false, 0, 0, 0};

static lcp_err long_task(void *arg, uint32_t i, struct lcp_codec_ctx *ctx)
{
	(void)arg;
	(void)ctx;
	if (i == 0) {
		pthread_mutex_lock(&g.m);
		g.long_first_running = true;
		pthread_cond_broadcast(&g.cv);
		while (!g.short_started)
			pthread_cond_wait(&g.cv, &g.m);
		pthread_mutex_unlock(&g.m);
	}
	atomic_fetch_add(&g.long_done, 1);
	return LCP_OK;
}

static lcp_err short_task(void *arg, uint32_t i, struct lcp_codec_ctx *ctx)
{
	(void)arg;
	(void)ctx;
	if (i == SHORT_RUN - 1)
		atomic_store(&g.long_at_short_end, atomic_load(&g.long_done));
	return LCP_OK;
}

static void *long_consumer(void *arg)
{
	struct lcp_encode_exec *exec = arg;
	struct lcp_encode_run *run;
	if (lcp_encode_run_start(exec, NULL, LONG_RUN, LONG_RUN, long_task, NULL, &run) != LCP_OK) {
		atomic_fetch_add(&g.long_errors, 1);
		return NULL;
	}
	for (uint32_t k = 0; k < LONG_RUN; k++) {
		uint32_t i;
		if (lcp_encode_run_next(run, &i) != LCP_OK || i != k)
			atomic_fetch_add(&g.long_errors, 1);
	}
	lcp_encode_run_end(run);
	return NULL;
}

Test(codec_pool, executors_are_served_in_turn)
{
	alarm(HANG_SEC);
	struct lcp_encode_pool *pool;
	struct lcp_encode_exec *a, *b;
	struct lcp_encode_run *run;
	pthread_t th;
	cr_assert_eq(lcp_encode_pool_create(1, false, &pool), LCP_OK);
	cr_assert_eq(lcp_encode_exec_create(pool, &a), LCP_OK);
	cr_assert_eq(lcp_encode_exec_create(pool, &b), LCP_OK);
	cr_assert_eq(pthread_create(&th, NULL, long_consumer, a), 0);
	pthread_mutex_lock(&g.m);
	while (!g.long_first_running)
		pthread_cond_wait(&g.cv, &g.m);
	pthread_mutex_unlock(&g.m);
	cr_assert_eq(lcp_encode_run_start(b, NULL, SHORT_RUN, SHORT_RUN, short_task, NULL, &run),
		     LCP_OK);
	pthread_mutex_lock(&g.m);
	g.short_started = true;
	pthread_cond_broadcast(&g.cv);
	pthread_mutex_unlock(&g.m);
	for (uint32_t k = 0; k < SHORT_RUN; k++) {
		uint32_t i;
		cr_assert_eq(lcp_encode_run_next(run, &i), LCP_OK);
	}
	unsigned long_at_end = atomic_load(&g.long_at_short_end);
	lcp_encode_run_end(run);
	cr_assert_leq(long_at_end, SHORT_RUN + 1,
		      "the short run waited for %u tasks of the long one", long_at_end);
	pthread_join(th, NULL);
	cr_assert_eq(atomic_load(&g.long_errors), 0);
	cr_assert_eq(atomic_load(&g.long_done), LONG_RUN);
	lcp_encode_exec_free(a);
	lcp_encode_exec_free(b);
	lcp_encode_pool_free(pool);
	alarm(0);
}
