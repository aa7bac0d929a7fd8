/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The inode table: one struct fs_inode per backing object, keyed by the
 * backing (dev, ino) so that hard links share one inode (and one tensor
 * state). Each inode keeps an O_PATH fd of its backing object; the FUSE node
 * id is the inode's address (the root is FUSE_ROOT_ID). An inode lives while
 * the kernel holds lookups on it or we hold references (a child's parent
 * link, an open handle, a queued job).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/alloc.h"
#include "fs/fs_priv.h"

#define TABLE_BUCKETS 16384u /* fixed: chains stay short for a model store's file count */

static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static struct fs_inode *buckets[TABLE_BUCKETS];

static size_t bucket_of(dev_t dev, ino_t ino)
{
	uint64_t h = (uint64_t)ino * 0x9E3779B97F4A7C15ull ^ (uint64_t)dev;
	return (size_t)(h >> 40) % TABLE_BUCKETS;
}

static void hash_insert(struct fs_inode *inode)
{
	size_t b = bucket_of(inode->dev, inode->ino);
	inode->hnext = buckets[b];
	buckets[b] = inode;
}

static void hash_remove(struct fs_inode *inode)
{
	struct fs_inode **pp = &buckets[bucket_of(inode->dev, inode->ino)];
	while (*pp && *pp != inode)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = inode->hnext;
}

static struct fs_inode *hash_find(dev_t dev, ino_t ino)
{
	struct fs_inode *i = buckets[bucket_of(dev, ino)];
	while (i && !(i->dev == dev && i->ino == ino))
		i = i->hnext;
	return i;
}

void fs_table_init(int root_fd)
{
	struct fs_inode *r = &fs_ctx.root;
	struct stat st;

	memset(r, 0, sizeof *r);
	pthread_mutex_init(&r->lock, NULL);
	r->fd = root_fd;
	r->nlookup = 2; /* never freed */
	if (fstat(root_fd, &st) == 0) {
		r->dev = st.st_dev;
		r->ino = st.st_ino;
		r->type = st.st_mode & S_IFMT;
	}
	r->probed = true;
	hash_insert(r);
}

struct fs_inode *fs_inode_of(fuse_ino_t ino)
{
	if (ino == FUSE_ROOT_ID)
		return &fs_ctx.root;
	return (struct fs_inode *)(uintptr_t)ino;
}

fuse_ino_t fs_ino_of(struct fs_inode *inode)
{
	if (inode == &fs_ctx.root)
		return FUSE_ROOT_ID;
	return (fuse_ino_t)(uintptr_t)inode;
}

/* Called with table_lock held; drops it. */
static void maybe_free_locked(struct fs_inode *inode)
{
	struct fs_inode *parent = NULL;

	if (inode == &fs_ctx.root || inode->nlookup || inode->refs) {
		pthread_mutex_unlock(&table_lock);
		return;
	}
	hash_remove(inode);
	parent = inode->parent;
	pthread_mutex_unlock(&table_lock);
	fs_tensor_inode_gone(inode);
	close(inode->fd);
	lcp_free(inode->name);
	pthread_mutex_destroy(&inode->lock);
	lcp_free(inode);
	if (parent)
		fs_inode_unref(parent);
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

struct fs_inode *fs_inode_add(struct fs_inode *parent, const char *name, int fd,
			      const struct stat *st)
{
	struct fs_inode *inode;

	pthread_mutex_lock(&table_lock);
	inode = hash_find(st->st_dev, st->st_ino);
	if (inode) {
		struct fs_inode *old = NULL;
		inode->nlookup++;
		if (inode != &fs_ctx.root)
			old = set_name_locked(inode, parent, name);
		pthread_mutex_unlock(&table_lock);
		close(fd);
		if (old)
			fs_inode_unref(old);
		return inode;
	}
	inode = lcp_calloc(1, sizeof *inode);
	if (!inode) {
		pthread_mutex_unlock(&table_lock);
		close(fd);
		return NULL;
	}
	pthread_mutex_init(&inode->lock, NULL);
	inode->dev = st->st_dev;
	inode->ino = st->st_ino;
	inode->fd = fd;
	inode->type = st->st_mode & S_IFMT;
	inode->nlookup = 1;
	inode->probed = inode->type != S_IFREG;
	inode->format = -1; /* no pack attempted */
	(void)set_name_locked(inode, parent, name); /* new inode: no old parent */
	hash_insert(inode);
	pthread_mutex_unlock(&table_lock);
	return inode;
}

void fs_inode_forget(struct fs_inode *inode, uint64_t n)
{
	pthread_mutex_lock(&table_lock);
	inode->nlookup = n > inode->nlookup ? 0 : inode->nlookup - n;
	maybe_free_locked(inode);
}

struct fs_inode *fs_inode_find(dev_t dev, ino_t ino)
{
	struct fs_inode *inode;

	pthread_mutex_lock(&table_lock);
	inode = hash_find(dev, ino);
	if (inode)
		inode->refs++;
	pthread_mutex_unlock(&table_lock);
	return inode;
}

void fs_inode_ref(struct fs_inode *inode)
{
	pthread_mutex_lock(&table_lock);
	inode->refs++;
	pthread_mutex_unlock(&table_lock);
}

void fs_inode_unref(struct fs_inode *inode)
{
	pthread_mutex_lock(&table_lock);
	inode->refs--;
	maybe_free_locked(inode);
}

void fs_inode_set_name(struct fs_inode *inode, struct fs_inode *parent, const char *name)
{
	struct fs_inode *old = NULL;

	pthread_mutex_lock(&table_lock);
	if (inode != &fs_ctx.root)
		old = set_name_locked(inode, parent, name);
	pthread_mutex_unlock(&table_lock);
	if (old)
		fs_inode_unref(old);
}

int fs_inode_dirfd_name(struct fs_inode *inode, char *name, size_t len)
{
	int fd = -1;

	pthread_mutex_lock(&table_lock);
	if (!inode->parent || !inode->name || strlen(inode->name) >= len) {
		errno = ENOENT;
	} else {
		strcpy(name, inode->name);
		fd = openat(inode->parent->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	pthread_mutex_unlock(&table_lock);
	return fd;
}

void fs_inode_rekey(struct fs_inode *inode, int fd, const struct stat *st)
{
	int old;

	pthread_mutex_lock(&table_lock);
	hash_remove(inode);
	inode->dev = st->st_dev;
	inode->ino = st->st_ino;
	old = inode->fd;
	inode->fd = fd;
	/* Another inode may already sit on the new key (a lookup that raced the
	 * swap before we took ns): ours goes first, so lookups now find it. */
	hash_insert(inode);
	pthread_mutex_unlock(&table_lock);
	close(old);
}

void fs_inode_path(struct fs_inode *inode, char *buf, size_t len)
{
	const char *parts[64];
	size_t n = 0, used = 0;

	pthread_mutex_lock(&table_lock);
	for (struct fs_inode *i = inode; i && i->name && n < 64; i = i->parent)
		parts[n++] = i->name;
	used = (size_t)snprintf(buf, len, "%s", fs_ctx.backing);
	while (n-- > 0 && used < len)
		used += (size_t)snprintf(buf + used, len - used, "/%s", parts[n]);
	pthread_mutex_unlock(&table_lock);
}

int fs_inode_fd(struct fs_inode *inode)
{
	int fd;

	pthread_mutex_lock(&table_lock);
	fd = inode->fd;
	pthread_mutex_unlock(&table_lock);
	return fd;
}

void fs_inode_procpath(struct fs_inode *inode, char *buf, size_t len)
{
	snprintf(buf, len, "/proc/self/fd/%d", fs_inode_fd(inode));
}
