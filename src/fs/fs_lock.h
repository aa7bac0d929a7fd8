/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The daemon's locks, with ownership tracking so that code can assert it
 * holds what it needs (assert() is active unless NDEBUG is defined). A
 * thread is identified by the address of a thread-local byte.
 */
#ifndef LCPFS_FS_LOCK_H
#define LCPFS_FS_LOCK_H

#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

/* This thread's identity for the ownership checks. */
uintptr_t fs_lock_self(void);

struct fs_mutex {
	pthread_mutex_t m;
	atomic_uintptr_t owner; /* 0 when free */
};

static inline void fs_mutex_init(struct fs_mutex *l)
{
	pthread_mutex_init(&l->m, NULL);
	atomic_init(&l->owner, 0);
}

static inline void fs_mutex_destroy(struct fs_mutex *l)
{
	pthread_mutex_destroy(&l->m);
}

static inline void fs_mutex_lock(struct fs_mutex *l)
{
	pthread_mutex_lock(&l->m);
	atomic_store(&l->owner, fs_lock_self());
}

static inline void fs_mutex_unlock(struct fs_mutex *l)
{
	assert(atomic_load(&l->owner) == fs_lock_self());
	atomic_store(&l->owner, 0);
	pthread_mutex_unlock(&l->m);
}

static inline bool fs_mutex_held(struct fs_mutex *l)
{
	return atomic_load(&l->owner) == fs_lock_self();
}

/* pthread_cond_wait on an fs_mutex, keeping the owner right. */
static inline void fs_cond_wait(pthread_cond_t *c, struct fs_mutex *l)
{
	atomic_store(&l->owner, 0);
	pthread_cond_wait(c, &l->m);
	atomic_store(&l->owner, fs_lock_self());
}

/* fs_cond_wait until a deadline on the clock c was created with. */
static inline void fs_cond_timedwait(pthread_cond_t *c, struct fs_mutex *l,
				     const struct timespec *until)
{
	atomic_store(&l->owner, 0);
	pthread_cond_timedwait(c, &l->m, until);
	atomic_store(&l->owner, fs_lock_self());
}

/* A reader-writer lock that knows its writer, and how many read holds this
 * thread has (a thread-local count: one such lock per process). */
struct fs_rwlock {
	pthread_rwlock_t rw;
	atomic_uintptr_t writer;
};

void fs_rwlock_init(struct fs_rwlock *l);
void fs_rwlock_rdlock(struct fs_rwlock *l);
void fs_rwlock_wrlock(struct fs_rwlock *l);
void fs_rwlock_unlock(struct fs_rwlock *l);
bool fs_rwlock_held_write(struct fs_rwlock *l);
/* Held for reading or writing by this thread. */
bool fs_rwlock_held(struct fs_rwlock *l);

#endif
