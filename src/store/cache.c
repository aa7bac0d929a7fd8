/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Bounded LRU cache of decoded chunks: a chained hash table for lookup and a
 * doubly linked list for recency, under one mutex. Copying out under the
 * mutex keeps ownership trivial (no reference counts); a chunk is at most a
 * few hundred KiB, so the copy is short next to the decode it saves.
 */
#include "store/cache.h"

#include <pthread.h>
#include <string.h>

#include "common/alloc.h"
#include "common/checksum.h"

#define NBUCKETS 4096 /* power of two */

struct entry {
	struct lcp_cache_key key;
	struct entry *hnext;          /* hash chain */
	struct entry *prev, *next;    /* LRU list, head = most recent */
	size_t len;                   /* bytes of data in use */
	size_t cap;                   /* bytes of data allocated (counted in used) */
	uint8_t data[];
};

struct lcp_chunk_cache {
	pthread_mutex_t lock;
	size_t capacity;
	size_t used;
	struct entry *head, *tail;
	struct entry *buckets[NBUCKETS];
};

lcp_err lcp_chunk_cache_create(size_t capacity_bytes, struct lcp_chunk_cache **out)
{
	struct lcp_chunk_cache *c = lcp_calloc(1, sizeof *c);
	*out = NULL;
	if (!c)
		return LCP_ERR_NOMEM;
	if (pthread_mutex_init(&c->lock, NULL) != 0) {
		lcp_free(c);
		return LCP_ERR_NOMEM;
	}
	c->capacity = capacity_bytes;
	*out = c;
	return LCP_OK;
}

void lcp_chunk_cache_free(struct lcp_chunk_cache *c)
{
	if (!c)
		return;
	for (struct entry *e = c->head, *n; e; e = n) {
		n = e->next;
		lcp_free(e);
	}
	pthread_mutex_destroy(&c->lock);
	lcp_free(c);
}

static size_t bucket_of(const struct lcp_cache_key *k)
{
	return (size_t)lcp_xxh3(k, sizeof *k) & (NBUCKETS - 1);
}

static bool key_eq(const struct lcp_cache_key *a, const struct lcp_cache_key *b)
{
	return a->region == b->region && a->chunk == b->chunk && a->block == b->block &&
	       memcmp(a->file_id, b->file_id, LCP_FILE_ID_LEN) == 0;
}

static struct entry *find(struct lcp_chunk_cache *c, const struct lcp_cache_key *k)
{
	for (struct entry *e = c->buckets[bucket_of(k)]; e; e = e->hnext)
		if (key_eq(&e->key, k))
			return e;
	return NULL;
}

static void lru_unlink(struct lcp_chunk_cache *c, struct entry *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		c->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		c->tail = e->prev;
	e->prev = e->next = NULL;
}

static void lru_push_front(struct lcp_chunk_cache *c, struct entry *e)
{
	e->prev = NULL;
	e->next = c->head;
	if (c->head)
		c->head->prev = e;
	c->head = e;
	if (!c->tail)
		c->tail = e;
}

/* Takes e out of the table and the LRU list. */
static void unlink_entry(struct lcp_chunk_cache *c, struct entry *e)
{
	struct entry **pp = &c->buckets[bucket_of(&e->key)];
	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	lru_unlink(c, e);
	c->used -= e->cap;
}

static void evict(struct lcp_chunk_cache *c, struct entry *e)
{
	unlink_entry(c, e);
	lcp_free(e);
}

bool lcp_chunk_cache_copy(struct lcp_chunk_cache *c, const struct lcp_cache_key *key,
			  size_t off, void *dst, size_t len)
{
	bool hit = false;
	pthread_mutex_lock(&c->lock);
	struct entry *e = find(c, key);
	if (e && off <= e->len && len <= e->len - off) {
		memcpy(dst, e->data + off, len);
		lru_unlink(c, e);
		lru_push_front(c, e);
		hit = true;
	}
	pthread_mutex_unlock(&c->lock);
	return hit;
}

/* Evicts least recently used entries until len more bytes fit (lock
 * held). The first evicted entry whose buffer fits len (and wastes at most
 * a quarter) is handed back in *reuse instead of being freed. */
static void make_room(struct lcp_chunk_cache *c, size_t len, struct entry **reuse)
{
	while (c->used + len > c->capacity && c->tail) {
		struct entry *e = c->tail;
		if (reuse && !*reuse && e->cap >= len && e->cap - len <= len / 4) {
			unlink_entry(c, e);
			*reuse = e;
		} else {
			evict(c, e);
		}
	}
}

void lcp_chunk_cache_put(struct lcp_chunk_cache *c, const struct lcp_cache_key *key,
			 const void *data, size_t len)
{
	struct entry *e = NULL;
	if (len > c->capacity)
		return;
	/* Once the cache is full every entry reuses the buffer of one it
	 * evicts: the memory stays the capacity, instead of freed buffers
	 * piling up in the malloc arenas of whichever threads allocated them
	 * (with fresh buffers, a 32 MiB cache filled by 9 threads took 52 MiB). */
	pthread_mutex_lock(&c->lock);
	if (find(c, key)) {
		pthread_mutex_unlock(&c->lock);
		return;
	}
	make_room(c, len, &e);
	pthread_mutex_unlock(&c->lock);
	if (!e) {
		e = lcp_malloc(sizeof *e + len);
		if (!e)
			return; /* a cache that cannot grow just misses */
		e->cap = len;
	}
	/* Copy outside the lock: only list surgery happens under it. */
	e->key = *key;
	e->len = len;
	e->hnext = e->prev = e->next = NULL;
	memcpy(e->data, data, len);
	pthread_mutex_lock(&c->lock);
	if (find(c, key)) {
		pthread_mutex_unlock(&c->lock);
		lcp_free(e);
		return;
	}
	make_room(c, e->cap, NULL); /* others may have filled it meanwhile */
	size_t b = bucket_of(key);
	e->hnext = c->buckets[b];
	c->buckets[b] = e;
	lru_push_front(c, e);
	c->used += e->cap;
	pthread_mutex_unlock(&c->lock);
}

size_t lcp_chunk_cache_used(struct lcp_chunk_cache *c)
{
	pthread_mutex_lock(&c->lock);
	size_t u = c->used;
	pthread_mutex_unlock(&c->lock);
	return u;
}
