/* SPDX-License-Identifier: Apache-2.0 */
/* Lock ownership tracking for the daemon's assertions; see fs_lock.h. */
#include "fs/fs_lock.h"

/* Per-thread, not shared: its address names the thread, and the count is
 * how many read holds of the namespace lock this thread has. */
static _Thread_local char self_token;
static _Thread_local unsigned read_holds;

uintptr_t fs_lock_self(void)
{
	return (uintptr_t)&self_token;
}

void fs_rwlock_init(struct fs_rwlock *l)
{
	pthread_rwlockattr_t ra;
	pthread_rwlockattr_init(&ra);
	/* Commits take it for writing; a stream of lookups must not starve them. */
	pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&l->rw, &ra);
	pthread_rwlockattr_destroy(&ra);
	atomic_init(&l->writer, 0);
}

void fs_rwlock_rdlock(struct fs_rwlock *l)
{
	/* Not recursive: a second read hold could deadlock behind a writer. */
	assert(read_holds == 0 && atomic_load(&l->writer) != fs_lock_self());
	pthread_rwlock_rdlock(&l->rw);
	read_holds++;
}

void fs_rwlock_wrlock(struct fs_rwlock *l)
{
	assert(read_holds == 0 && atomic_load(&l->writer) != fs_lock_self());
	pthread_rwlock_wrlock(&l->rw);
	atomic_store(&l->writer, fs_lock_self());
}

void fs_rwlock_unlock(struct fs_rwlock *l)
{
	if (atomic_load(&l->writer) == fs_lock_self()) {
		atomic_store(&l->writer, 0);
	} else {
		assert(read_holds > 0);
		read_holds--;
	}
	pthread_rwlock_unlock(&l->rw);
}

bool fs_rwlock_held_write(struct fs_rwlock *l)
{
	return atomic_load(&l->writer) == fs_lock_self();
}

bool fs_rwlock_held(struct fs_rwlock *l)
{
	return read_holds > 0 || fs_rwlock_held_write(l);
}
