/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The encoder's thread pool and its ordered task runs (codec.h).
 *
 * Every executor attached to a pool sits in a ring; a pool thread looking
 * for work walks the ring from where the last pick stopped and takes one
 * task from the first executor whose run has a task it may start (one not
 * beyond the run's window), then moves the cursor past it. So executors
 * with work are served in turn, one task each: a file with thousands of
 * chunks queued cannot hold back another file's first chunk by more than
 * the tasks already running.
 *
 * A run's results are consumed in order and its window bounds how far
 * ahead tasks may start, so the memory of results waiting for the caller
 * is bounded by the window, never by the run's length. Which thread runs a
 * task never matters for its result: each task writes only its own slot and
 * uses the context it is given, so output bytes do not depend on the
 * number of threads or the interleaving.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/alloc.h"
#include "lcpfs/codec.h"

struct lcp_encode_pool {
	pthread_mutex_t lock;
	pthread_cond_t work;      /* a task may have become startable, or stop */
	unsigned nthreads;        /* threads started */
	unsigned nctx;            /* contexts (one per thread asked for) */
	pthread_t *threads;
	struct lcp_codec_ctx **ctx;
	struct lcp_encode_exec *cursor; /* ring of attached executors; next to serve */
	bool stop;
	bool background;
};

struct lcp_encode_exec {
	struct lcp_encode_pool *pool;
	struct lcp_encode_exec *prev, *next; /* the pool's ring */
	struct lcp_encode_run *run;          /* the run in progress, or NULL */
};

struct lcp_encode_run {
	struct lcp_encode_exec *exec;
	struct lcp_codec_ctx *ctx;
	lcp_task_fn fn;
	void *arg;
	uint32_t n, window;
	uint32_t next_start; /* pooled: first task not started */
	uint32_t held;       /* tasks the caller has been handed (the last is in use) */
	uint32_t running;
	bool failed;         /* a task failed: start no more */
	pthread_cond_t changed; /* a task ended */
	uint8_t *done;       /* per slot: the task in it has ended */
	lcp_err *errs;       /* per slot: its error */
};

/* Index of the first task the window does not let start yet. */
static uint32_t run_limit(const struct lcp_encode_run *r)
{
	/* Task held-1 is in the caller's hands: slots held-1 .. held-2+window. */
	uint64_t lim = (uint64_t)(r->held ? r->held - 1 : 0) + r->window;
	return lim < r->n ? (uint32_t)lim : r->n;
}

static bool startable(const struct lcp_encode_run *r)
{
	return r && !r->failed && r->next_start < run_limit(r);
}

/* Picks an executor with a startable task (lock held), advancing the
 * cursor past it; NULL when none has one. */
static struct lcp_encode_exec *pick(struct lcp_encode_pool *p)
{
	struct lcp_encode_exec *e = p->cursor;
	if (!e)
		return NULL;
	do {
		if (startable(e->run)) {
			p->cursor = e->next;
			return e;
		}
		e = e->next;
	} while (e != p->cursor);
	return NULL;
}

struct worker_arg {
	struct lcp_encode_pool *pool;
	unsigned index;
};

static void *worker_main(void *argp)
{
	struct lcp_encode_pool *p = ((struct worker_arg *)argp)->pool;
	struct lcp_codec_ctx *ctx = p->ctx[((struct worker_arg *)argp)->index];
	lcp_free(argp);
	if (p->background) {
		/* Linux gives each thread its own nice value (by thread id). */
		id_t tid = (id_t)syscall(SYS_gettid);
		errno = 0;
		int now = getpriority(PRIO_PROCESS, tid);
		if (errno == 0)
			(void)setpriority(PRIO_PROCESS, tid, now + LCP_ENCODE_BACKGROUND_NICE);
	}
	pthread_mutex_lock(&p->lock);
	for (;;) {
		struct lcp_encode_exec *e = NULL;
		while (!p->stop && !(e = pick(p)))
			pthread_cond_wait(&p->work, &p->lock);
		if (p->stop)
			break;
		struct lcp_encode_run *r = e->run;
		uint32_t i = r->next_start++;
		r->running++;
		pthread_mutex_unlock(&p->lock);
		lcp_err err = r->fn(r->arg, i, ctx);
		pthread_mutex_lock(&p->lock);
		r->running--;
		r->done[i % r->window] = 1;
		r->errs[i % r->window] = err;
		if (err)
			r->failed = true;
		pthread_cond_broadcast(&r->changed);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

lcp_err lcp_encode_pool_create(unsigned threads, bool background, struct lcp_encode_pool **out)
{
	*out = NULL;
	if (threads == 0)
		return LCP_ERR_INVAL;
	struct lcp_encode_pool *p = lcp_calloc(1, sizeof *p);
	if (!p)
		return LCP_ERR_NOMEM;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->work, NULL);
	p->background = background;
	p->nctx = threads;
	p->threads = lcp_calloc(threads, sizeof *p->threads);
	p->ctx = lcp_calloc(threads, sizeof *p->ctx);
	lcp_err err = p->threads && p->ctx ? LCP_OK : LCP_ERR_NOMEM;
	for (unsigned i = 0; !err && i < threads; i++)
		err = lcp_codec_ctx_create(&p->ctx[i]);
	for (unsigned i = 0; !err && i < threads; i++) {
		struct worker_arg *a = lcp_malloc(sizeof *a);
		if (!a) {
			err = LCP_ERR_NOMEM;
			break;
		}
		a->pool = p;
		a->index = i;
		if (pthread_create(&p->threads[i], NULL, worker_main, a) != 0) {
			lcp_free(a);
			err = LCP_ERR_NOMEM;
			break;
		}
		p->nthreads++;
	}
	if (err) {
		lcp_encode_pool_free(p);
		return err;
	}
	*out = p;
	return LCP_OK;
}

void lcp_encode_pool_free(struct lcp_encode_pool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->lock);
	for (unsigned i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	for (unsigned i = 0; p->ctx && i < p->nctx; i++)
		lcp_codec_ctx_free(p->ctx[i]);
	pthread_cond_destroy(&p->work);
	pthread_mutex_destroy(&p->lock);
	lcp_free(p->threads);
	lcp_free(p->ctx);
	lcp_free(p);
}

unsigned lcp_encode_pool_threads(const struct lcp_encode_pool *p)
{
	return p->nthreads;
}

lcp_err lcp_encode_exec_create(struct lcp_encode_pool *pool, struct lcp_encode_exec **out)
{
	struct lcp_encode_exec *e = lcp_calloc(1, sizeof *e);
	*out = NULL;
	if (!e)
		return LCP_ERR_NOMEM;
	e->pool = pool;
	pthread_mutex_lock(&pool->lock);
	if (pool->cursor) {
		e->next = pool->cursor;
		e->prev = pool->cursor->prev;
		e->prev->next = e;
		e->next->prev = e;
	} else {
		e->next = e->prev = e;
		pool->cursor = e;
	}
	pthread_mutex_unlock(&pool->lock);
	*out = e;
	return LCP_OK;
}

void lcp_encode_exec_free(struct lcp_encode_exec *e)
{
	if (!e)
		return;
	struct lcp_encode_pool *p = e->pool;
	pthread_mutex_lock(&p->lock);
	if (e->next == e) {
		p->cursor = NULL;
	} else {
		e->prev->next = e->next;
		e->next->prev = e->prev;
		if (p->cursor == e)
			p->cursor = e->next;
	}
	pthread_mutex_unlock(&p->lock);
	lcp_free(e);
}

uint32_t lcp_encode_exec_window(const struct lcp_encode_exec *e)
{
	return e ? LCP_ENCODE_WINDOW_PER_THREAD * e->pool->nthreads : 1;
}

lcp_err lcp_encode_run_start(struct lcp_encode_exec *exec, struct lcp_codec_ctx *ctx, uint32_t n,
			     uint32_t window, lcp_task_fn fn, void *arg,
			     struct lcp_encode_run **out)
{
	*out = NULL;
	if (window == 0 || (!exec && !ctx))
		return LCP_ERR_INVAL;
	struct lcp_encode_run *r = lcp_calloc(1, sizeof *r);
	if (!r)
		return LCP_ERR_NOMEM;
	r->done = lcp_calloc(window, sizeof *r->done);
	r->errs = lcp_calloc(window, sizeof *r->errs);
	if (!r->done || !r->errs) {
		lcp_free(r->done);
		lcp_free(r->errs);
		lcp_free(r);
		return LCP_ERR_NOMEM;
	}
	r->exec = exec;
	r->ctx = ctx;
	r->fn = fn;
	r->arg = arg;
	r->n = n;
	r->window = window;
	pthread_cond_init(&r->changed, NULL);
	if (exec) {
		struct lcp_encode_pool *p = exec->pool;
		pthread_mutex_lock(&p->lock);
		exec->run = r;
		pthread_cond_broadcast(&p->work);
		pthread_mutex_unlock(&p->lock);
	}
	*out = r;
	return LCP_OK;
}

lcp_err lcp_encode_run_next(struct lcp_encode_run *r, uint32_t *i)
{
	if (r->held >= r->n)
		return LCP_ERR_INVAL;
	*i = r->held;
	if (!r->exec) {
		r->held++;
		return r->fn(r->arg, *i, r->ctx);
	}
	struct lcp_encode_pool *p = r->exec->pool;
	uint32_t slot = *i % r->window;
	pthread_mutex_lock(&p->lock);
	/* The previous task's slot is free from now on: the window moves. */
	if (r->held)
		r->done[(r->held - 1) % r->window] = 0;
	r->held++;
	pthread_cond_broadcast(&p->work);
	while (!r->done[slot] && !(r->failed && *i >= r->next_start))
		pthread_cond_wait(&r->changed, &p->lock);
	/* A task after a failure that never started reports the failure's
	 * cancellation; the caller stops at the failed task before it. */
	lcp_err err = r->done[slot] ? r->errs[slot] : LCP_ERR_INVAL;
	pthread_mutex_unlock(&p->lock);
	return err;
}

void lcp_encode_run_end(struct lcp_encode_run *r)
{
	if (!r)
		return;
	if (r->exec) {
		struct lcp_encode_pool *p = r->exec->pool;
		pthread_mutex_lock(&p->lock);
		r->failed = true; /* nothing more starts */
		while (r->running)
			pthread_cond_wait(&r->changed, &p->lock);
		r->exec->run = NULL;
		pthread_mutex_unlock(&p->lock);
	}
	pthread_cond_destroy(&r->changed);
	lcp_free(r->done);
	lcp_free(r->errs);
	lcp_free(r);
}
