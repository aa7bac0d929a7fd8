/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The inode table: one struct fs_inode per backing object, keyed by the
 * backing (dev, ino) so that hard links share one inode (and one tensor
 * state). The FUSE node id is the inode's address (the root is
 * FUSE_ROOT_ID). An inode lives while the kernel holds lookups on it or we
 * hold references (a child's parent link, an open handle, a queued job).
 *
 * Open files of the daemon stay bounded by what is in use, not by what the
 * kernel knows: a directory keeps an O_PATH fd (its children are reached
 * through it); any other object is reached by its parent's fd and its name,
 * checked against (dev, ino) each time. It keeps an O_PATH fd while handles
 * of it are open (so an open file renamed away or unlinked is still
 * reached), and otherwise while it is among the most recently used (a
 * bounded LRU: some backings, sshfs, number a file anew once nobody holds
 * it, which would make a known file look replaced). The name check is what
 * a shared backing needs: when another machine replaced a file, its name no
 * longer holds the inode's object, ESTALE tells the kernel, and the kernel
 * looks the name up again. File handles (name_to_handle_at) were not taken:
 * open_by_handle_at needs CAP_DAC_READ_SEARCH (a daemon run by a user has
 * none), a handle reaches the object a name held, not what it holds now,
 * and on FUSE backings (GlusterFS and sshfs do give handles) it lasts only
 * as long as that client remembers the inode.
 */
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "common/alloc.h"
#include "fs/fs_priv.h"

#define TABLE_BUCKETS 16384u /* fixed: chains stay short for a model store's file count */
/* O_PATH fds kept for files nobody has open: a quarter of the open-file
 * limit at start, within these bounds, and less while many files are open
 * (together they stay near half the limit; the rest is for directories,
 * payloads, temporaries and the backing fds of open files). */
#define FD_CACHE_MIN 16u
#define FD_CACHE_MAX 16384u

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

/* The LRU of fds kept for unpinned non-directories (table_lock held). */
static void lru_unlink(struct fs_mount *m, struct fs_inode *inode)
{
	if (!inode->in_lru)
		return;
	if (inode->lru_prev)
		inode->lru_prev->lru_next = inode->lru_next;
	else
		m->lru_head = inode->lru_next;
	if (inode->lru_next)
		inode->lru_next->lru_prev = inode->lru_prev;
	else
		m->lru_tail = inode->lru_prev;
	inode->lru_prev = inode->lru_next = NULL;
	inode->in_lru = false;
	m->lru_count--;
}

/* How many fds the LRU may hold now. */
static size_t lru_cap(const struct fs_mount *m)
{
	if (m->npinned <= m->lru_max)
		return m->lru_max;
	return m->npinned - m->lru_max >= m->lru_max - FD_CACHE_MIN ? FD_CACHE_MIN
								   : 2 * m->lru_max - m->npinned;
}

/* Takes the least recently used fd off the LRU when it holds more than it
 * may; returns it (the caller closes it after unlocking) or -1. */
static int lru_trim(struct fs_mount *m)
{
	struct fs_inode *last = m->lru_tail;
	int fd;

	if (m->lru_count <= lru_cap(m) || !last)
		return -1;
	lru_unlink(m, last);
	fd = last->fd;
	last->fd = -1;
	return fd;
}

/* Puts the inode (its fd set, not pinned) first in the LRU. */
static void lru_touch(struct fs_mount *m, struct fs_inode *inode)
{
	lru_unlink(m, inode);
	inode->lru_next = m->lru_head;
	if (m->lru_head)
		m->lru_head->lru_prev = inode;
	else
		m->lru_tail = inode;
	m->lru_head = inode;
	inode->in_lru = true;
	m->lru_count++;
}

/* lru_touch, then returns the fd of the inode that fell off the end, which
 * the caller closes after unlocking, or -1. */
static int lru_push(struct fs_mount *m, struct fs_inode *inode)
{
	lru_touch(m, inode);
	return lru_trim(m);
}

/* Sets the inode's O_PATH fd to fd (table_lock held): held as long as the
 * inode is pinned (or a directory), else first in the LRU. Returns the fd
 * the caller closes after unlocking (the old one, or the one pushed off the
 * LRU's end), or -1. An unpinned non-directory has an fd exactly when it is
 * in the LRU. */
static int keep_fd(struct fs_mount *m, struct fs_inode *inode, int fd)
{
	int old = inode->fd;

	inode->fd = fd;
	if (inode->pins > 0 || inode->type == S_IFDIR)
		return old;
	int evicted = lru_push(m, inode); /* none when it was in already */
	return old >= 0 ? old : evicted;
}

lcp_err fs_table_init(struct fs_mount *m, int root_fd)
{
	struct fs_inode *r = &m->root;
	struct rlimit rl;
	struct stat st;

	fs_mutex_init(&m->table_lock);
	m->lru_max = FD_CACHE_MIN;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur / 4 > FD_CACHE_MIN)
		m->lru_max = rl.rlim_cur / 4 > FD_CACHE_MAX ? FD_CACHE_MAX : (size_t)(rl.rlim_cur / 4);
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
	lru_unlink(m, inode);
	parent = inode->parent;
	fs_mutex_unlock(&m->table_lock);
	fs_tensor_inode_gone(inode);
	if (inode->fd >= 0)
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
		if (fd >= 0 && inode->fd < 0 && inode->type != S_IFDIR)
			fd = keep_fd(m, inode, fd);
		else if (inode->in_lru)
			lru_touch(m, inode);
		fs_mutex_unlock(&m->table_lock);
		if (fd >= 0)
			close(fd);
		if (old)
			fs_inode_unref(m, old);
		return inode;
	}
	inode = lcp_calloc(1, sizeof *inode);
	if (!inode) {
		fs_mutex_unlock(&m->table_lock);
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	inode_init(inode);
	inode->dev = st->st_dev;
	inode->ino = st->st_ino;
	inode->fd = -1;
	inode->type = st->st_mode & S_IFMT;
	inode->nlookup = 1;
	inode->nlink = (uint64_t)st->st_nlink;
	(void)set_name_locked(inode, parent, name); /* new inode: no old parent */
	hash_insert(m, inode);
	if (inode->type == S_IFDIR) {
		inode->fd = fd;
		fd = -1;
	} else if (fd >= 0) {
		fd = keep_fd(m, inode, fd);
	}
	fs_mutex_unlock(&m->table_lock);
	if (fd >= 0)
		close(fd);
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

void fs_inode_drop_name(struct fs_mount *m, struct fs_inode *inode, struct fs_inode *parent,
			const char *name)
{
	struct fs_inode *old = NULL;

	fs_mutex_lock(&m->table_lock);
	if (inode != &m->root && inode->parent == parent && inode->name &&
	    strcmp(inode->name, name) == 0)
		old = set_name_locked(inode, NULL, NULL);
	fs_mutex_unlock(&m->table_lock);
	if (old)
		fs_inode_unref(m, old);
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

/* The inode's parent (with a reference, dropped with fs_inode_unref) and a
 * copy of its name into name[len], or NULL when it has none (unlinked, the
 * root, or a name too long for len). */
static struct fs_inode *parent_and_name(struct fs_mount *m, struct fs_inode *inode, char *name,
					size_t len)
{
	struct fs_inode *parent = NULL;

	fs_mutex_lock(&m->table_lock);
	if (inode->parent && inode->name && strlen(inode->name) < len) {
		strcpy(name, inode->name);
		parent = inode->parent;
		parent->refs++;
	}
	fs_mutex_unlock(&m->table_lock);
	return parent;
}

int fs_inode_dirfd_name(struct fs_mount *m, struct fs_inode *inode, char *name, size_t len,
			int *err)
{
	struct fs_inode *parent = parent_and_name(m, inode, name, len);
	int fd;

	*err = 0;
	if (!parent) {
		*err = ENOENT;
		return -1;
	}
	/* A directory's fd never changes while the inode lives. */
	fd = openat(parent->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		*err = errno;
	fs_inode_unref(m, parent);
	return fd;
}

/* Reads directory dirfd through (see fs_inode_reread_dir). */
static void reread(int dirfd)
{
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;

	if (!d) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while (readdir(d))
		;
	closedir(d);
}

void fs_inode_reread_dir(struct fs_mount *m, struct fs_inode *inode)
{
	char name[NAME_MAX + 1];
	struct fs_inode *parent = parent_and_name(m, inode, name, sizeof name);

	if (parent) {
		reread(parent->fd);
		fs_inode_unref(m, parent);
	}
}

static bool is_object(const struct fs_inode *inode, const struct stat *st)
{
	return st->st_dev == inode->dev && st->st_ino == inode->ino;
}

/* A dup of the inode's own fd (a directory's, or one held while open), or
 * -1 when it has none. */
static int own_fd(struct fs_mount *m, struct fs_inode *inode)
{
	int fd = -1;

	fs_mutex_lock(&m->table_lock);
	if (inode->fd >= 0) {
		fd = fcntl(inode->fd, F_DUPFD_CLOEXEC, 0);
		if (inode->in_lru)
			lru_touch(m, inode);
	}
	fs_mutex_unlock(&m->table_lock);
	return fd;
}

/* Opens the inode's name with flags and checks it still holds the inode's
 * object: ESTALE when it holds another, ENOENT when it has no name. */
static int open_by_name(struct fs_mount *m, struct fs_inode *inode, int flags, int *err)
{
	char name[NAME_MAX + 1];
	struct fs_inode *parent = parent_and_name(m, inode, name, sizeof name);
	struct stat st;
	int fd;

	if (!parent) {
		*err = ENOENT;
		return -1;
	}
	/* O_NONBLOCK: should the name now hold a FIFO, the open must not wait;
	 * O_TRUNC waits until the object is known to be the inode's. */
	int oflags = (flags & ~(O_TRUNC | O_CREAT | O_EXCL)) | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY |
		     O_CLOEXEC;
	fd = openat(parent->fd, name, oflags);
	if (fd < 0 && errno == ESTALE) {
		/* The backing's client names a file another machine replaced,
		 * and its own retry did not help (GlusterFS answers lookups from
		 * a cache of its own): reading the directory makes it learn. */
		reread(parent->fd);
		fd = openat(parent->fd, name, oflags);
	}
	*err = fd < 0 ? errno : 0;
	if (fd < 0 && (*err == ENOENT || (*err == ELOOP && inode->type != S_IFLNK)))
		*err = ESTALE;
	if (fd >= 0 && (fstat(fd, &st) != 0 || !is_object(inode, &st))) {
		*err = ESTALE;
		close(fd);
		fd = -1;
	}
	if (*err == ESTALE)
		reread(parent->fd); /* so the kernel's new lookup finds what is there */
	fs_inode_unref(m, parent);
	if (fd < 0)
		return -1;
	if (!(flags & (O_NONBLOCK | O_PATH)))
		(void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	if ((flags & O_TRUNC) && (flags & O_ACCMODE) != O_RDONLY && ftruncate(fd, 0) != 0) {
		*err = errno;
		close(fd);
		return -1;
	}
	return fd;
}

int fs_inode_open(struct fs_mount *m, struct fs_inode *inode, int flags, int *err)
{
	char path[FS_PROCPATH_LEN];
	int fd, pfd;

	if (inode->type == S_IFDIR) {
		/* A directory's own fd is its identity. */
		pfd = own_fd(m, inode);
	} else {
		fd = open_by_name(m, inode, flags, err);
		if (fd >= 0 || *err != ENOENT)
			return fd;
		/* No name (unlinked through this mount): the fd held while
		 * it is open, if any. */
		pfd = own_fd(m, inode);
	}
	if (pfd < 0) {
		*err = ESTALE;
		return -1;
	}
	if (flags & O_PATH)
		return pfd;
	fs_procpath(pfd, path, sizeof path);
	fd = open(path, (flags & ~(O_NOFOLLOW | O_CREAT | O_EXCL)) | O_NOCTTY | O_CLOEXEC);
	*err = fd < 0 ? errno : 0;
	close(pfd);
	return fd;
}

int fs_inode_path_fd(struct fs_mount *m, struct fs_inode *inode, int *err)
{
	int fd = own_fd(m, inode);

	*err = 0;
	if (fd >= 0)
		return fd;
	fd = open_by_name(m, inode, O_PATH, err);
	/* No name known (its last one was unlinked, another may remain): the
	 * kernel looks up the name it has again, which records it. */
	if (fd < 0 && *err == ENOENT)
		*err = ESTALE;
	return fd;
}

/* lstat of what the inode's name holds, checked to be its object: 0,
 * ESTALE (another object, or none), or the stat's error; ENOENT when the
 * inode has no name. */
static int stat_by_name(struct fs_mount *m, struct fs_inode *inode, struct stat *st)
{
	char name[NAME_MAX + 1];
	struct fs_inode *parent = parent_and_name(m, inode, name, sizeof name);
	int err = 0;

	if (!parent)
		return ENOENT;
	if (fstatat(parent->fd, name, st, AT_SYMLINK_NOFOLLOW) != 0)
		err = errno == ENOENT ? ESTALE : errno;
	else if (!is_object(inode, st))
		err = ESTALE;
	if (err == ESTALE)
		reread(parent->fd); /* a network client learns what is there now */
	fs_inode_unref(m, parent);
	return err;
}

int fs_inode_stat(struct fs_mount *m, struct fs_inode *inode, struct stat *st)
{
	int fd, err = 0;

	/* By name first: what the name holds is the truth on a shared backing
	 * (and the held fd of a file another machine replaced may answer
	 * ESTALE); the held fd for an open file renamed away or unlinked. */
	if (inode->type != S_IFDIR && (err = stat_by_name(m, inode, st)) == 0)
		return 0;
	fd = own_fd(m, inode);
	if (fd < 0)
		return err == ENOENT ? ESTALE : err;
	if (fstatat(fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) == 0)
		err = 0;
	else if (!err)
		err = errno;
	close(fd);
	return err == ENOENT ? ESTALE : err;
}

int fs_inode_check_name(struct fs_mount *m, struct fs_inode *inode)
{
	struct stat st;
	int err = stat_by_name(m, inode, &st);

	return err == ENOENT ? 0 : err;
}

void fs_inode_pin(struct fs_mount *m, struct fs_inode *inode)
{
	int fd, err, trimmed[2];

	fs_mutex_lock(&m->table_lock);
	inode->refs++;
	if (inode->pins++ == 0) {
		lru_unlink(m, inode); /* its fd, if any, is held while open */
		m->npinned++;
	}
	bool need = inode->fd < 0 && inode->type != S_IFDIR;
	/* More files open: room for fewer kept ones (two a time converges). */
	trimmed[0] = lru_trim(m);
	trimmed[1] = lru_trim(m);
	fs_mutex_unlock(&m->table_lock);
	for (int i = 0; i < 2; i++)
		if (trimmed[i] >= 0)
			close(trimmed[i]);
	if (!need)
		return;
	/* Best effort: without the fd the inode is still reached by its name. */
	fd = open_by_name(m, inode, O_PATH, &err);
	if (fd < 0)
		return;
	fs_mutex_lock(&m->table_lock);
	if (inode->fd < 0)
		fd = keep_fd(m, inode, fd);
	fs_mutex_unlock(&m->table_lock);
	if (fd >= 0)
		close(fd);
}

void fs_inode_unpin(struct fs_mount *m, struct fs_inode *inode)
{
	int fd = -1;

	fs_mutex_lock(&m->table_lock);
	/* Its fd joins the most recently used; a retired inode's goes, so
	 * that the backing frees the raw file it kept alive. */
	if (--inode->pins == 0) {
		m->npinned--;
		if (inode->retired) {
			fd = inode->fd;
			inode->fd = -1;
		} else if (inode->type != S_IFDIR && inode->fd >= 0) {
			fd = lru_push(m, inode);
		}
	}
	fs_mutex_unlock(&m->table_lock);
	if (fd >= 0)
		close(fd);
	fs_inode_unref(m, inode);
}

void fs_inode_rekey(struct fs_mount *m, struct fs_inode *inode, int fd, const struct stat *st)
{
	int old;

	assert(fs_rwlock_held_write(&m->ns));
	fs_mutex_lock(&m->table_lock);
	hash_remove(m, inode);
	inode->dev = st->st_dev;
	inode->ino = st->st_ino;
	old = keep_fd(m, inode, fd);
	/* Another inode may already sit on the new key (a lookup that raced the
	 * swap before we took ns): ours goes first, so lookups now find it. */
	hash_insert(m, inode);
	fs_mutex_unlock(&m->table_lock);
	if (old >= 0)
		close(old);
}

struct fs_inode *fs_inode_retire(struct fs_mount *m, struct fs_inode *inode, char **name)
{
	struct fs_inode *parent;

	assert(fs_rwlock_held_write(&m->ns));
	fs_mutex_lock(&m->table_lock);
	hash_remove(m, inode);
	inode->retired = true;
	/* The parent's reference the name held passes to the caller. */
	parent = inode->parent;
	*name = inode->name;
	inode->parent = NULL;
	inode->name = NULL;
	fs_mutex_unlock(&m->table_lock);
	return parent;
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

void fs_procpath(int fd, char *buf, size_t len)
{
	snprintf(buf, len, "/proc/self/fd/%d", fd);
}
