/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Decode-ahead (lcpfs/store.h): worker threads decode the chunks a
 * sequential reader is about to ask for, into buffers counted against one
 * byte budget, the window. A stream keeps its scheduled chunks ("slots") in
 * a list in file order; a slot is queued, being decoded, ready, or failed.
 * A reader copies out of a ready slot, takes over a queued one (decoding it
 * itself, straight into its own buffer when it wants the whole chunk), waits
 * for one a worker is decoding, and reads anything else through
 * lcp_store_read. A slot goes once all its bytes were served, when it is
 * stale (see evict_stale), or when its stream is closed.
 *
 * One mutex guards the pool, its queue and every stream's slots: each
 * operation under it is a few pointer moves per chunk of 256 KiB or more,
 * and nothing slow (I/O, decoding, copying) ever runs while it is held.
 */
#include <pthread.h>
#include <string.h>

#include "common/alloc.h"
#include "lcpfs/store.h"
#include "store/store_priv.h"

/* A read extends a sequential run when it starts no further than this past
 * the run's end (a reader that skips a little, such as one stepping over
 * the page-cached parts of a file, stays sequential) and ends beyond it. */
#define NEAR_AHEAD_BYTES (256u << 10)
/* The kernel keeps several read-ahead requests of one file in flight (up to
 * 1 MiB each) and they arrive in any order: a read ending at most this far
 * before the run's end belongs to the run. A ready slot this far behind its
 * reader will not be read: the reader skipped it (pages the kernel had
 * cached) or is past it. */
#define BEHIND_BYTES (4u << 20)
/* Reads extending a run before anything is decoded ahead: one read at the
 * start of a file or at a random spot says little; a second one adjoining
 * it makes a run. */
#define SEQ_MIN_READS 2
/* A ready slot is stale when the pool has scheduled this many windows'
 * worth of chunks since it was decoded or last read from. */
#define STALE_WINDOWS 2

enum slot_state {
	SLOT_QUEUED,  /* in the pool's queue */
	SLOT_BUSY,    /* being decoded (by a worker or a reader) */
	SLOT_READY,
	SLOT_FAILED,  /* its decode failed: readers decode it themselves and
	                 report the error */
};

struct slot {
	struct lcp_read_stream *s;
	struct lcp_store_piece p;
	enum slot_state state;
	uint8_t *buf;
	size_t cap;               /* bytes of buf, counted in the budget */
	uint64_t served;          /* bytes copied out so far */
	unsigned pins;            /* readers copying out of buf now */
	uint64_t tick;            /* pool tick when decoded or last read */
	struct slot *prev, *next; /* the stream's slots, in file order */
	struct slot *qnext;       /* the pool's queue */
};

/* A spare buffer keeps its link in its own first bytes. */
struct spare {
	struct spare *next;
	size_t cap;
};

struct lcp_decode_ahead {
	pthread_mutex_t lock;
	pthread_cond_t work;      /* workers: the queue has a slot, or stop */
	pthread_cond_t done;      /* a slot finished decoding */
	struct slot *qhead, *qtail;
	size_t window;
	size_t held;              /* bytes of slot and spare buffers */
	size_t peak;
	uint64_t tick;            /* bytes scheduled so far: the clock of staleness */
	struct spare *spares;
	struct lcp_read_stream *streams;
	unsigned nstreams;
	bool stopping;            /* workers stop; nothing new is scheduled */
	bool freed;               /* the owner let go: the last stream frees */
	unsigned nthreads;
	pthread_t *threads;
};

struct lcp_read_stream {
	struct lcp_decode_ahead *da;
	struct lcp_store_file *f;
	uint64_t size;
	uint64_t run_end;         /* end of the sequential run so far */
	uint64_t run_bytes;       /* bytes read in it */
	unsigned run_reads;
	uint64_t ahead_end;       /* end of the last chunk scheduled in the run */
	unsigned busy;            /* slots being decoded */
	struct slot *head, *tail;
	struct lcp_read_stream *sprev, *snext; /* the pool's streams */
};

static void destroy_pool(struct lcp_decode_ahead *da)
{
	pthread_mutex_destroy(&da->lock);
	pthread_cond_destroy(&da->work);
	pthread_cond_destroy(&da->done);
	lcp_free(da->threads);
	lcp_free(da);
}

/* Returns a buffer to the spares (or frees it once the pool is let go). */
static void put_buffer(struct lcp_decode_ahead *da, uint8_t *buf, size_t cap)
{
	if (da->freed) {
		lcp_free(buf);
		da->held -= cap;
		return;
	}
	struct spare *sp = (struct spare *)(void *)buf;
	sp->cap = cap;
	sp->next = da->spares;
	da->spares = sp;
}

static void unlink_slot(struct slot *sl)
{
	struct lcp_read_stream *s = sl->s;
	if (sl->prev)
		sl->prev->next = sl->next;
	else
		s->head = sl->next;
	if (sl->next)
		sl->next->prev = sl->prev;
	else
		s->tail = sl->prev;
}

/* Removes a slot that no worker or reader is using. */
static void drop_slot(struct lcp_decode_ahead *da, struct slot *sl)
{
	unlink_slot(sl);
	put_buffer(da, sl->buf, sl->cap);
	lcp_free(sl);
}

static void dequeue(struct lcp_decode_ahead *da, struct slot *sl)
{
	struct slot **pp = &da->qhead, *prev = NULL;
	while (*pp != sl) {
		prev = *pp;
		pp = &(*pp)->qnext;
	}
	*pp = sl->qnext;
	if (da->qtail == sl)
		da->qtail = prev;
	sl->qnext = NULL;
}

/* Frees ready slots nobody is reading that will not be read: those of any
 * stream not read from while STALE_WINDOWS windows were scheduled, and
 * those behind their own reader (keep_behind_of, when not NULL). */
static void evict_stale(struct lcp_decode_ahead *da, struct lcp_read_stream *keep_behind_of,
			uint64_t reader_off)
{
	uint64_t stale_ticks = (uint64_t)da->window * STALE_WINDOWS;
	for (struct lcp_read_stream *s = da->streams; s; s = s->snext) {
		for (struct slot *sl = s->head, *n; sl; sl = n) {
			n = sl->next;
			if (sl->state != SLOT_READY || sl->pins)
				continue;
			bool behind = s == keep_behind_of && sl->p.hi + BEHIND_BYTES <= reader_off;
			if (behind || da->tick - sl->tick > stale_ticks)
				drop_slot(da, sl);
		}
	}
}

/* A buffer of at least need bytes within the budget, or NULL. A spare that
 * fits (and wastes at most half) is reused; else spares, then stale
 * slots, make room for a new one. */
static uint8_t *take_buffer(struct lcp_decode_ahead *da, struct lcp_read_stream *s,
			    uint64_t reader_off, size_t need, size_t *cap)
{
	if (need < sizeof(struct spare))
		need = sizeof(struct spare);
	for (struct spare **pp = &da->spares; *pp; pp = &(*pp)->next) {
		struct spare *sp = *pp;
		if (sp->cap >= need && sp->cap / 2 <= need) {
			*pp = sp->next;
			*cap = sp->cap;
			return (uint8_t *)(void *)sp;
		}
	}
	if (da->held + need > da->window)
		evict_stale(da, s, reader_off);
	while (da->held + need > da->window && da->spares) {
		struct spare *sp = da->spares;
		da->spares = sp->next;
		da->held -= sp->cap;
		lcp_free(sp);
	}
	if (da->held + need > da->window)
		return NULL;
	uint8_t *b = lcp_malloc(need);
	if (!b)
		return NULL;
	da->held += need;
	if (da->held > da->peak)
		da->peak = da->held;
	*cap = need;
	return b;
}

static struct slot *find_slot(struct lcp_read_stream *s, const struct lcp_store_piece *p)
{
	for (struct slot *sl = s->head; sl; sl = sl->next)
		if (sl->p.region == p->region && sl->p.chunk == p->chunk)
			return sl;
	return NULL;
}

/* Inserts sl into the stream's list in file order (usually at the tail). */
static void link_slot(struct lcp_read_stream *s, struct slot *sl)
{
	struct slot *at = s->tail;
	while (at && at->p.lo > sl->p.lo)
		at = at->prev;
	sl->prev = at;
	sl->next = at ? at->next : s->head;
	if (sl->next)
		sl->next->prev = sl;
	else
		s->tail = sl;
	if (at)
		at->next = sl;
	else
		s->head = sl;
}

/* Queues the decoding of the chunks past the run's end (lock held). */
static void schedule(struct lcp_decode_ahead *da, struct lcp_read_stream *s, uint64_t reader_off)
{
	uint64_t dist = s->run_bytes * 2 < da->window ? s->run_bytes * 2 : da->window;
	uint64_t target = s->run_end + dist < s->size ? s->run_end + dist : s->size;
	uint64_t at = s->ahead_end > s->run_end ? s->ahead_end : s->run_end;
	struct lcp_store_piece p;
	bool queued = false;

	while (at < target && lcp_store_locate(s->f, at, &p)) {
		if (p.chunk == LCP_STORE_NO_CHUNK || p.lo < at || find_slot(s, &p)) {
			/* A CRC field, a chunk the reader is in, or one scheduled
			 * before: the next one. */
			at = p.hi;
			continue;
		}
		size_t cap;
		struct slot *sl = lcp_calloc(1, sizeof *sl);
		uint8_t *buf = sl ? take_buffer(da, s, reader_off, (size_t)(p.hi - p.lo), &cap) : NULL;
		if (!buf) {
			lcp_free(sl);
			break; /* the window is full: more when the reader catches up */
		}
		sl->s = s;
		sl->p = p;
		sl->buf = buf;
		sl->cap = cap;
		sl->state = SLOT_QUEUED;
		da->tick += p.hi - p.lo;
		sl->tick = da->tick;
		link_slot(s, sl);
		if (da->qtail)
			da->qtail->qnext = sl;
		else
			da->qhead = sl;
		da->qtail = sl;
		queued = true;
		at = s->ahead_end = p.hi;
	}
	if (queued)
		pthread_cond_broadcast(&da->work);
}

/* Cancels the stream's slots not yet started (lock held). */
static void cancel_queued(struct lcp_decode_ahead *da, struct lcp_read_stream *s)
{
	for (struct slot *sl = s->head, *n; sl; sl = n) {
		n = sl->next;
		if (sl->state == SLOT_QUEUED) {
			dequeue(da, sl);
			drop_slot(da, sl);
		}
	}
}

/* Follows the reader's position (lock held): a read at or near the end of
 * the run extends it, any other starts a new one. */
static void observe(struct lcp_decode_ahead *da, struct lcp_read_stream *s, uint64_t off,
		    uint64_t end)
{
	if (off <= s->run_end + NEAR_AHEAD_BYTES && end > s->run_end) {
		s->run_reads++;
		s->run_bytes += end - off;
		s->run_end = end;
	} else if (end <= s->run_end && end + BEHIND_BYTES >= s->run_end) {
		/* A request of the run that arrived after a later one. */
		s->run_bytes += end - off;
	} else {
		cancel_queued(da, s);
		s->run_reads = 1;
		s->run_bytes = end - off;
		s->run_end = end;
		s->ahead_end = 0;
	}
}

static void *worker_main(void *arg)
{
	struct lcp_decode_ahead *da = arg;
	pthread_mutex_lock(&da->lock);
	for (;;) {
		while (!da->qhead && !da->stopping)
			pthread_cond_wait(&da->work, &da->lock);
		if (da->stopping)
			break; /* queued slots are decoded by their readers */
		struct slot *sl = da->qhead;
		dequeue(da, sl);
		sl->state = SLOT_BUSY;
		sl->s->busy++;
		pthread_mutex_unlock(&da->lock);
		lcp_err err = lcp_store_decode_chunk(sl->s->f, sl->p.region, sl->p.chunk, sl->buf,
						     (size_t)(sl->p.hi - sl->p.lo));
		pthread_mutex_lock(&da->lock);
		sl->state = err ? SLOT_FAILED : SLOT_READY;
		sl->s->busy--;
		pthread_cond_broadcast(&da->done);
	}
	pthread_mutex_unlock(&da->lock);
	return NULL;
}

lcp_err lcp_decode_ahead_create(unsigned threads, size_t window_bytes,
				struct lcp_decode_ahead **out)
{
	struct lcp_decode_ahead *da = lcp_calloc(1, sizeof *da);

	*out = NULL;
	if (!da || threads < 1)
		goto fail_alloc;
	da->threads = lcp_calloc(threads, sizeof *da->threads);
	if (!da->threads)
		goto fail_alloc;
	if (pthread_mutex_init(&da->lock, NULL) != 0)
		goto fail_alloc;
	pthread_cond_init(&da->work, NULL);
	pthread_cond_init(&da->done, NULL);
	da->window = window_bytes;
	for (; da->nthreads < threads; da->nthreads++)
		if (pthread_create(&da->threads[da->nthreads], NULL, worker_main, da) != 0)
			break;
	if (da->nthreads == 0) {
		destroy_pool(da);
		return LCP_ERR_NOMEM;
	}
	*out = da;
	return LCP_OK;
fail_alloc:
	if (da)
		lcp_free(da->threads);
	lcp_free(da);
	return threads < 1 ? LCP_ERR_INVAL : LCP_ERR_NOMEM;
}

void lcp_decode_ahead_free(struct lcp_decode_ahead *da)
{
	if (!da)
		return;
	pthread_mutex_lock(&da->lock);
	da->stopping = true;
	pthread_cond_broadcast(&da->work);
	pthread_mutex_unlock(&da->lock);
	for (unsigned i = 0; i < da->nthreads; i++)
		pthread_join(da->threads[i], NULL);
	pthread_mutex_lock(&da->lock);
	da->freed = true;
	while (da->spares) {
		struct spare *sp = da->spares;
		da->spares = sp->next;
		da->held -= sp->cap;
		lcp_free(sp);
	}
	bool last = da->nstreams == 0;
	pthread_mutex_unlock(&da->lock);
	if (last)
		destroy_pool(da);
}

void lcp_decode_ahead_usage(struct lcp_decode_ahead *da, size_t *held, size_t *peak)
{
	pthread_mutex_lock(&da->lock);
	*held = da->held;
	*peak = da->peak;
	pthread_mutex_unlock(&da->lock);
}

lcp_err lcp_read_stream_open(struct lcp_store_file *f, struct lcp_decode_ahead *da,
			     struct lcp_read_stream **out)
{
	struct lcp_read_stream *s = lcp_calloc(1, sizeof *s);

	*out = NULL;
	if (!s)
		return LCP_ERR_NOMEM;
	s->f = f;
	s->size = lcp_store_logical_size(f);
	if (da && da->window) {
		s->da = da;
		pthread_mutex_lock(&da->lock);
		s->snext = da->streams;
		if (da->streams)
			da->streams->sprev = s;
		da->streams = s;
		da->nstreams++;
		pthread_mutex_unlock(&da->lock);
	}
	*out = s;
	return LCP_OK;
}

void lcp_read_stream_close(struct lcp_read_stream *s)
{
	struct lcp_decode_ahead *da;
	bool last = false;

	if (!s)
		return;
	da = s->da;
	if (da) {
		pthread_mutex_lock(&da->lock);
		cancel_queued(da, s);
		while (s->busy)
			pthread_cond_wait(&da->done, &da->lock);
		while (s->head)
			drop_slot(da, s->head);
		if (s->sprev)
			s->sprev->snext = s->snext;
		else
			da->streams = s->snext;
		if (s->snext)
			s->snext->sprev = s->sprev;
		da->nstreams--;
		last = da->freed && da->nstreams == 0;
		pthread_mutex_unlock(&da->lock);
		if (last)
			destroy_pool(da);
	}
	lcp_free(s);
}

/* Appends len bytes at p to v, merged with its last segment when they
 * follow it. */
static void view_add(struct lcp_read_view *v, uint8_t *p, size_t len)
{
	struct iovec *last = v->nseg ? &v->seg[v->nseg - 1] : NULL;
	if (last && (uint8_t *)last->iov_base + last->iov_len == p) {
		last->iov_len += len;
		return;
	}
	v->seg[v->nseg].iov_base = p;
	v->seg[v->nseg].iov_len = len;
	v->nseg++;
}

/* Counts len bytes of slot sl as served (lock held; sl not pinned by the
 * caller any more): a slot served whole goes. */
static void served(struct lcp_decode_ahead *da, struct slot *sl, size_t len)
{
	sl->served += len;
	sl->tick = da->tick;
	if (sl->served >= sl->p.hi - sl->p.lo && !sl->pins)
		drop_slot(da, sl);
}

/*
 * Serves [pos, pos + len) of piece p from its slot (lock held on entry and
 * exit; dropped while decoding or copying): with v, and room in it, as a
 * segment pointing into the slot, which stays pinned until the view is
 * released; otherwise copied to dst. LCP_OK when served; LCP_ERR_NOENT when
 * p has no slot (any more), or the error of a failed decode: then the
 * caller reads the piece itself. The slot is looked up again after every
 * wait, since another reader may have dropped it.
 */
static lcp_err serve_slot(struct lcp_decode_ahead *da, struct lcp_read_stream *s,
			  const struct lcp_store_piece *p, uint64_t pos, uint8_t *dst, size_t len,
			  struct lcp_read_view *v)
{
	size_t size = (size_t)(p->hi - p->lo);
	struct slot *sl;
	lcp_err err;

	while ((sl = find_slot(s, p)) != NULL) {
		switch (sl->state) {
		case SLOT_QUEUED:
			dequeue(da, sl);
			if (pos == p->lo && len == size) {
				/* Wanted whole: decode straight into the reader's buffer. */
				drop_slot(da, sl);
				pthread_mutex_unlock(&da->lock);
				err = lcp_store_decode_chunk(s->f, p->region, p->chunk, dst, len);
				pthread_mutex_lock(&da->lock);
				if (err == LCP_OK && v)
					view_add(v, dst, len);
				return err;
			}
			sl->state = SLOT_BUSY;
			s->busy++;
			pthread_mutex_unlock(&da->lock);
			err = lcp_store_decode_chunk(s->f, p->region, p->chunk, sl->buf, size);
			pthread_mutex_lock(&da->lock);
			sl->state = err ? SLOT_FAILED : SLOT_READY;
			s->busy--;
			pthread_cond_broadcast(&da->done);
			continue;
		case SLOT_BUSY:
			pthread_cond_wait(&da->done, &da->lock);
			continue;
		case SLOT_FAILED:
			drop_slot(da, sl);
			return LCP_ERR_CHECKSUM;
		case SLOT_READY:
			break;
		}
		sl->pins++;
		/* One segment for it, one left for what follows in buf. */
		if (v && v->nseg + 2 <= LCP_READ_VIEW_SEGS) {
			view_add(v, sl->buf + (pos - p->lo), len);
			v->held[v->nheld] = sl;
			v->held_len[v->nheld++] = len;
			return LCP_OK;
		}
		pthread_mutex_unlock(&da->lock);
		memcpy(dst, sl->buf + (pos - p->lo), len);
		pthread_mutex_lock(&da->lock);
		sl->pins--;
		if (v)
			view_add(v, dst, len);
		served(da, sl, len);
		return LCP_OK;
	}
	return LCP_ERR_NOENT;
}

/* Lets go of the slots v pins, counting their bytes as served when the
 * read succeeded (lock held). */
static void unpin_view(struct lcp_decode_ahead *da, struct lcp_read_view *v, bool ok)
{
	for (unsigned i = 0; i < v->nheld; i++) {
		struct slot *sl = v->held[i];
		sl->pins--;
		served(da, sl, ok ? v->held_len[i] : 0);
	}
	v->nheld = 0;
}

/* A read through the stream: copied into buf, or (v not NULL) as v's
 * segments. */
static lcp_err stream_read(struct lcp_read_stream *s, void *buf, size_t len, uint64_t off,
			   struct lcp_read_view *v, size_t *nread, uint64_t *bad_off)
{
	struct lcp_decode_ahead *da = s->da;
	uint8_t *dst = buf;
	lcp_err err = LCP_OK;

	if (v)
		v->nseg = v->nheld = 0;
	if (!da || off >= s->size || len == 0) {
		err = lcp_store_read(s->f, buf, len, off, nread, bad_off);
		if (err == LCP_OK && v && *nread)
			view_add(v, dst, *nread);
		return err;
	}
	*nread = 0;
	uint64_t end = s->size - off < len ? s->size : off + len;
	pthread_mutex_lock(&da->lock);
	observe(da, s, off, end);
	if (s->run_reads >= SEQ_MIN_READS && !da->stopping)
		schedule(da, s, off);
	for (uint64_t pos = off; pos < end && err == LCP_OK;) {
		struct lcp_store_piece p;
		if (!lcp_store_locate(s->f, pos, &p))
			break;
		uint64_t stop = p.hi < end ? p.hi : end;
		lcp_err serr = p.chunk == LCP_STORE_NO_CHUNK
				       ? LCP_ERR_NOENT
				       : serve_slot(da, s, &p, pos, dst + (pos - off), (size_t)(stop - pos), v);
		if (serr == LCP_OK) {
			pos = stop;
			continue;
		}
		/* No slot (or its decode failed): read it, with the pieces after
		 * it that have no slot either, in one call. */
		while (serr == LCP_ERR_NOENT && stop < end && lcp_store_locate(s->f, stop, &p)) {
			if (p.chunk != LCP_STORE_NO_CHUNK && find_slot(s, &p))
				break;
			stop = p.hi < end ? p.hi : end;
		}
		size_t got;
		pthread_mutex_unlock(&da->lock);
		err = lcp_store_read(s->f, dst + (pos - off), (size_t)(stop - pos), pos, &got, bad_off);
		pthread_mutex_lock(&da->lock);
		if (err == LCP_OK && v)
			view_add(v, dst + (pos - off), (size_t)(stop - pos));
		pos = stop;
	}
	if (err && v) {
		unpin_view(da, v, false);
		v->nseg = 0;
	}
	pthread_mutex_unlock(&da->lock);
	if (err == LCP_OK)
		*nread = (size_t)(end - off);
	return err;
}

lcp_err lcp_read_stream_read(struct lcp_read_stream *s, void *buf, size_t len, uint64_t off,
			     size_t *nread, uint64_t *bad_off)
{
	return stream_read(s, buf, len, off, NULL, nread, bad_off);
}

lcp_err lcp_read_stream_view(struct lcp_read_stream *s, void *buf, size_t len, uint64_t off,
			     struct lcp_read_view *v, size_t *nread, uint64_t *bad_off)
{
	return stream_read(s, buf, len, off, v, nread, bad_off);
}

void lcp_read_stream_release(struct lcp_read_stream *s, struct lcp_read_view *v)
{
	if (s->da && v->nheld) {
		pthread_mutex_lock(&s->da->lock);
		unpin_view(s->da, v, true);
		pthread_mutex_unlock(&s->da->lock);
	}
	v->nseg = v->nheld = 0;
}
