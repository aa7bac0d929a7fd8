/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Per-thread scratch buffers (thread_buf.h): one pthread key whose value is
 * the thread's set of buffers, released by the key's destructor.
 */
#include "common/thread_buf.h"

#include <pthread.h>
#include <stdbool.h>

#include "common/alloc.h"

struct thread_bufs {
	void *p[LCP_THREAD_BUF_COUNT];
	size_t cap[LCP_THREAD_BUF_COUNT];
};

static pthread_key_t key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static bool key_ok;

static void destroy(void *arg)
{
	struct thread_bufs *t = arg;
	for (int i = 0; i < LCP_THREAD_BUF_COUNT; i++)
		lcp_free(t->p[i]);
	lcp_free(t);
}

static void key_init(void)
{
	key_ok = pthread_key_create(&key, destroy) == 0;
}

void *lcp_thread_buf(enum lcp_thread_buf_use use, size_t need)
{
	pthread_once(&key_once, key_init);
	if (!key_ok)
		return NULL;
	struct thread_bufs *t = pthread_getspecific(key);
	if (!t) {
		t = lcp_calloc(1, sizeof *t);
		if (!t || pthread_setspecific(key, t) != 0) {
			lcp_free(t);
			return NULL;
		}
	}
	if (need > t->cap[use] || !t->p[use]) {
		void *b = lcp_malloc(need ? need : 1);
		if (!b)
			return NULL;
		lcp_free(t->p[use]);
		t->p[use] = b;
		t->cap[use] = need;
	}
	return t->p[use];
}
