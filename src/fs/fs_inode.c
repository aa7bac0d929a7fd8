/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The inode table: one struct fs_inode per backing object, keyed by the
 * backing (dev, ino) so that hard links share one inode (and one tensor
 * state). Each inode keeps an O_PATH fd of its backing object; the FUSE node
 * id is the inode's address (the root is FUSE_ROOT_ID). An inode lives while
 * the kernel holds lookups on it or we hold references (a child's parent
 * link, an open handle, a queued job).
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/alloc.h"
#include "fs/fs_priv.h"

#define TABLE_BUCKETS 16384u /* fixed: chains stay short for a model store's file count */

static size_t bucket_of(dev_t dev, ino_t ino)
{
	uint64_t h = (uint64_t)ino * 0x9E3779B97F4A7C15ull ^ (uint64_t)dev;
	return (size_t)(h >> 40) % TABLE_BUCKETS;
}

static void hash_insert(struct fs_mount *m, struct fs_inode *inode)
{
	size_t b = bucket_of(inode->dev, inode->ino);
	assert(fs_mutex_held(&m->table_lock));
	inode->hnext = m->buckets[b];
	m->buckets[b] = inode;
}

static void hash_remove(struct fs_mount *m, struct fs_inode *inode)
{
	struct fs_inode **pp = &m->buckets[bucket_of(inode->dev, inode->ino)];
	while (*pp && *pp != inode)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = inode->hnext;
}

static struct fs_inode *hash_find(struct fs_mount *m, dev_t dev, ino_t ino)
{
	struct fs_inode *i = m->buckets[bucket_of(dev, ino)];
	while (i && !(i->dev == dev && i->ino == ino))
		i = i->hnext;
	return i;
}

/* Initializes an inode's tensor side. */
static void inode_init(struct fs_inode *inode)
{
	fs_mutex_init(&inode->lock);
	pthread_cond_init(&inode->changed, NULL);
	fs_track_init(&inode->t);
	inode->format = -1; /* no pack attempted */
}

lcp_err fs_table_init(struct fs_mount *m, int root_fd)
{
	struct fs_inode *r = &m->root;
	struct stat st;

	fs_mutex_init(&m->table_lock);
	m->buckets = lcp_calloc(TABLE_BUCKETS, sizeof *m->buckets);
	if (!m->buckets)
		return LCP_ERR_NOMEM;
	memset(r, 0, sizeof *r);
	inode_init(r);
	r->fd = root_fd;
	r->nlookup = 2; /* never freed */
	if (fstat(root_fd, &st) == 0) {
		r->dev = st.st_dev;
		r->ino = st.st_ino;
		r->type = st.st_mode & S_IFMT;
	}
	fs_mutex_lock(&m->table_lock);
	hash_insert(m, r);
	fs_mutex_unlock(&m->table_lock);
	return LCP_OK;
}

struct fs_inode *fs_inode_of(struct fs_mount *m, fuse_ino_t ino)
{
	if (ino == FUSE_ROOT_ID)
		return &m->root;
	return (struct fs_inode *)(uintptr_t)ino;
}

fuse_ino_t fs_ino_of(struct fs_mount *m, struct fs_inode *inode)
{
	if (inode == &m->root)
		return FUSE_ROOT_ID;
	return (fuse_ino_t)(uintptr_t)inode;
}

/* Called with table_lock held; drops it. */
static void maybe_free_locked(struct fs_mount *m, struct fs_inode *inode)
{
	struct fs_inode *parent = NULL;

	if (inode == &m->root || inode->nlookup || inode->refs) {
		fs_mutex_unlock(&m->table_lock);
		return;
	}
	hash_remove(m, inode);
	parent = inode->parent;
	fs_mutex_unlock(&m->table_lock);
	fs_tensor_inode_gone(inode);
	close(inode->fd);
	lcp_free(inode->name);
	fs_mutex_destroy(&inode->lock);
	pthread_cond_destroy(&inode->changed);
	lcp_free(inode);
	if (parent)
		fs_inode_unref(m, parent);
}

/* table_lock held. Returns the old parent, whose reference the caller drops
 * with fs_inode_unref after releasing the lock (dropping it may free it). */
static struct fs_inode *set_name_locked(struct fs_inode *inode, struct fs_inode *parent,
					const char *name)
{
	struct fs_inode *old = inode->parent;
	char *copy = NULL;

	if (parent && old == parent && inode->name && strcmp(inode->name, name) == 0)
		return NULL; /* unchanged */
	if (parent) {
		copy = lcp_strdup(name);
		if (!copy)
			return NULL; /* keep the old name: a stale one only costs a refused commit */
		parent->refs++;
	}
	lcp_free(inode->name);
	inode->name = copy;
	inode->parent = parent;
	return old;
}

struct fs_inode *fs_inode_add(struct fs_mount *m, struct fs_inode *parent, const char *name,
			      int fd, const struct stat *st)
{
	struct fs_inode *inode;

	fs_mutex_lock(&m->table_lock);
	inode = hash_find(m, st->st_dev, st->st_ino);
	if (inode) {
		struct fs_inode *old = NULL;
		inode->nlookup++;
		if (inode != &m->root)
			old = set_name_locked(inode, parent, name);
		fs_mutex_unlock(&m->table_lock);
		close(fd);
		if (old)
			fs_inode_unref(m, old);
		return inode;
	}
	inode = lcp_calloc(1, sizeof *inode);
	if (!inode) {
		fs_mutex_unlock(&m->table_lock);
		close(fd);
		return NULL;
	}
	inode_init(inode);
	inode->dev = st->st_dev;
	inode->ino = st->st_ino;
	inode->fd = fd;
	inode->type = st->st_mode & S_IFMT;
	inode->nlookup = 1;
	inode->nlink = (uint64_t)st->st_nlink;
	(void)set_name_locked(inode, parent, name); /* new inode: no old parent */
	hash_insert(m, inode);
	fs_mutex_unlock(&m->table_lock);
	return inode;
}

void fs_inode_forget(struct fs_mount *m, struct fs_inode *inode, uint64_t n)
{
	fs_mutex_lock(&m->table_lock);
	inode->nlookup = n > inode->nlookup ? 0 : inode->nlookup - n;
	maybe_free_locked(m, inode);
}

struct fs_inode *fs_inode_find(struct fs_mount *m, dev_t dev, ino_t ino)
{
	struct fs_inode *inode;

	fs_mutex_lock(&m->table_lock);
	inode = hash_find(m, dev, ino);
	if (inode)
		inode->refs++;
	fs_mutex_unlock(&m->table_lock);
	return inode;
}

void fs_inode_ref(struct fs_mount *m, struct fs_inode *inode)
{
	fs_mutex_lock(&m->table_lock);
	inode->refs++;
	fs_mutex_unlock(&m->table_lock);
}

void fs_inode_unref(struct fs_mount *m, struct fs_inode *inode)
{
	fs_mutex_lock(&m->table_lock);
	inode->refs--;
	maybe_free_locked(m, inode);
}

void fs_inode_set_name(struct fs_mount *m, struct fs_inode *inode, struct fs_inode *parent,
		       const char *name)
{
	struct fs_inode *old = NULL;

	fs_mutex_lock(&m->table_lock);
	if (inode != &m->root)
		old = set_name_locked(inode, parent, name);
	fs_mutex_unlock(&m->table_lock);
	if (old)
		fs_inode_unref(m, old);
}

int fs_inode_dirfd_name(struct fs_mount *m, struct fs_inode *inode, char *name, size_t len,
			int *err)
{
	int fd = -1;

	*err = 0;
	fs_mutex_lock(&m->table_lock);
	if (!inode->parent || !inode->name || strlen(inode->name) >= len) {
		*err = ENOENT;
	} else {
		strcpy(name, inode->name);
		fd = openat(inode->parent->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			*err = errno;
	}
	fs_mutex_unlock(&m->table_lock);
	return fd;
}

void fs_inode_rekey(struct fs_mount *m, struct fs_inode *inode, int fd, const struct stat *st)
{
	int old;

	assert(fs_rwlock_held_write(&m->ns));
	fs_mutex_lock(&m->table_lock);
	hash_remove(m, inode);
	inode->dev = st->st_dev;
	inode->ino = st->st_ino;
	old = inode->fd;
	inode->fd = fd;
	/* Another inode may already sit on the new key (a lookup that raced the
	 * swap before we took ns): ours goes first, so lookups now find it. */
	hash_insert(m, inode);
	fs_mutex_unlock(&m->table_lock);
	close(old);
}

void fs_inode_path(struct fs_mount *m, struct fs_inode *inode, char *buf, size_t len)
{
	const char *parts[64];
	size_t n = 0, used = 0;

	fs_mutex_lock(&m->table_lock);
	for (struct fs_inode *i = inode; i && i->name && n < 64; i = i->parent)
		parts[n++] = i->name;
	used = (size_t)snprintf(buf, len, "%s", m->backing);
	while (n-- > 0 && used < len)
		used += (size_t)snprintf(buf + used, len - used, "/%s", parts[n]);
	fs_mutex_unlock(&m->table_lock);
}

int fs_inode_fd(struct fs_mount *m, struct fs_inode *inode)
{
	int fd;

	fs_mutex_lock(&m->table_lock);
	fd = inode->fd;
	fs_mutex_unlock(&m->table_lock);
	return fd;
}

void fs_inode_procpath(struct fs_mount *m, struct fs_inode *inode, char *buf, size_t len)
{
	snprintf(buf, len, "/proc/self/fd/%d", fs_inode_fd(m, inode));
}
