/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The tensor layer of the daemon: what makes lcpfs more than a passthrough.
 *
 * Writes land in the raw backing file. Each inode counts its open handles
 * and writers, and a write generation bumped by every open-for-write, write,
 * truncate or rename. At the last writer's release of a dirty file a job is
 * queued for the compression workers; the worker runs lcp_store_pack_at,
 * whose may_commit callback takes the namespace lock for writing and lets the
 * swap happen only when no writer is open and the generation is still the
 * one queued. A commit then points the inode at the new payload, opens the
 * committed file (shared by all readers of the inode, decoded chunks cached
 * in one bounded cache), and invalidates the kernel's cache for it.
 *
 * A committed file about to change (opened for writing, truncated) is
 * materialized raw first. Unlink, rename and link go through the store so
 * sidecars follow their payloads; the store's own names are hidden.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/log.h"
#include "fs/fs_priv.h"
#include "lcpfs/format.h"
#include "lcpfs/store.h"

/* A committed file shared by the inode and its read handles. */
struct fs_sfile {
	struct lcp_store_file *f;
	atomic_uint refs;
};

struct job {
	struct fs_inode *inode; /* holds a reference */
	uint64_t wgen;          /* generation when queued */
	struct job *next;
};

/* may_commit's state for one pack. */
struct commit_gate {
	struct fs_inode *inode;
	uint64_t wgen;
	bool locked;   /* ns held for writing: the store is renaming */
	bool refused;  /* the gate said no */
};

static struct lcp_chunk_cache *chunk_cache;
static pthread_mutex_t queue_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t queue_cond = PTHREAD_COND_INITIALIZER;
static struct job *queue_head, *queue_tail;
static atomic_bool stopping;
static const char *crash_at; /* LCPFS_CRASH_AT: test hook, see crash_point */
static pthread_t *workers;
static unsigned nworkers;

/* Crash-injection for tests/integration/test_mount_crash.sh: with
 * LCPFS_CRASH_AT=<point> in the environment the daemon dies (as by kill -9,
 * no cleanup) when it reaches that point of a commit: "pack-start" (before
 * the store is called), "gate" (the swap was allowed, the store has renamed
 * nothing yet), "committed" (the store returned a commit, the daemon has not
 * reopened the file). */
static void crash_point(const char *point)
{
	if (crash_at && strcmp(crash_at, point) == 0) {
		lcp_log(LCP_LOG_ERROR, "LCPFS_CRASH_AT=%s: exiting now", point);
		_exit(86);
	}
}

static const char *const state_names[] = {
	[FS_RAW] = "raw", [FS_PENDING] = "pending", [FS_COMPRESSED] = "compressed",
	[FS_REFUSED] = "refused",
};

lcp_err fs_tensor_configure(const char *options, char *errbuf, size_t errbuf_len)
{
	struct lcp_config cfg = lcp_config_default();
	lcp_err err = LCP_OK;

	if (options)
		err = lcp_config_parse_options(&cfg, options, NULL, errbuf, errbuf_len);
	if (err == LCP_OK)
		fs_ctx.cfg = cfg;
	return err;
}

static struct fs_sfile *sfile_get(struct fs_sfile *s)
{
	if (s)
		atomic_fetch_add(&s->refs, 1);
	return s;
}

static void sfile_put(struct fs_sfile *s)
{
	if (s && atomic_fetch_sub(&s->refs, 1) == 1) {
		lcp_store_close(s->f);
		lcp_free(s);
	}
}

/* Maps a store error; LCP_ERR_IO keeps the system call's errno when the
 * store left one, so rename and unlink report ENOTEMPTY, EISDIR, ... */
static int store_errno(lcp_err err, int saved_errno)
{
	if (err == LCP_ERR_IO && saved_errno)
		return saved_errno;
	return fs_errno_from_lcp(err);
}

/* A refusal survives remounts as an xattr on the raw backing file (the
 * mount hides the backing's user.lcpfs.* names and shows computed ones). A
 * backing without user xattrs just forgets refusals at unmount. Inode lock
 * held, which keeps inode->fd from being swapped. */
#define REFUSED_XATTR "user.lcpfs.refused"

static void persist_refusal(struct fs_inode *inode)
{
	char path[64];

	snprintf(path, sizeof path, "/proc/self/fd/%d", inode->fd);
	if (inode->state == FS_REFUSED)
		(void)setxattr(path, REFUSED_XATTR, inode->reason, strlen(inode->reason), 0);
	else
		(void)removexattr(path, REFUSED_XATTR);
}

static void recall_refusal(struct fs_inode *inode)
{
	char path[64];
	ssize_t n;

	snprintf(path, sizeof path, "/proc/self/fd/%d", inode->fd);
	n = getxattr(path, REFUSED_XATTR, inode->reason, sizeof inode->reason - 1);
	if (n >= 0) {
		inode->reason[n] = '\0';
		inode->state = FS_REFUSED;
	} else {
		inode->reason[0] = '\0';
	}
}

/* Opens the committed file name in dirfd into inode (inode lock held). */
static void adopt_committed(struct fs_inode *inode, int dirfd, const char *name)
{
	struct lcp_store_file *f = NULL;
	struct fs_sfile *s;
	lcp_err err = lcp_store_open_at(dirfd, name, chunk_cache, &f);

	sfile_put(inode->sf);
	inode->sf = NULL;
	inode->damaged = false;
	if (err == LCP_ERR_NOENT) {
		inode->state = FS_RAW;
		return;
	}
	if (err == LCP_OK && (s = lcp_calloc(1, sizeof *s))) {
		s->f = f;
		atomic_init(&s->refs, 1);
		inode->sf = s;
		inode->state = FS_COMPRESSED;
		return;
	}
	if (err == LCP_OK) {
		lcp_store_close(f);
		err = LCP_ERR_NOMEM;
	}
	char path[PATH_MAX];
	fs_inode_path(inode, path, sizeof path);
	lcp_log(LCP_LOG_ERROR, "%s: cannot open committed file: %s", path, lcp_strerror(err));
	if (err == LCP_ERR_CHECKSUM || err == LCP_ERR_FORMAT || err == LCP_ERR_VERSION ||
	    err == LCP_ERR_TRUNCATED) {
		/* A sidecar is there but unusable: the payload's bytes are not the
		 * file's, so reads must fail rather than show them. */
		inode->state = FS_COMPRESSED;
		inode->damaged = true;
	} else {
		/* Could not look (I/O, memory): ask again at the next lookup. */
		inode->state = FS_RAW;
		inode->probe_again = true;
	}
}

void fs_tensor_inode_gone(struct fs_inode *inode)
{
	sfile_put(inode->sf);
	inode->sf = NULL;
}

void fs_tensor_probe(struct fs_inode *inode)
{
	char name[NAME_MAX + 1];
	int dfd;

	pthread_mutex_lock(&inode->lock);
	if (!inode->probed) {
		dfd = fs_inode_dirfd_name(inode, name, sizeof name);
		if (dfd >= 0) {
			adopt_committed(inode, dfd, name);
			close(dfd);
		}
		if (inode->state == FS_RAW)
			recall_refusal(inode);
		inode->probed = !inode->probe_again;
		inode->probe_again = false;
	}
	pthread_mutex_unlock(&inode->lock);
}

void fs_tensor_fix_stat(struct fs_inode *inode, struct stat *st)
{
	if (!S_ISREG(st->st_mode))
		return;
	pthread_mutex_lock(&inode->lock);
	if (inode->state == FS_COMPRESSED && inode->sf) {
		uint64_t stored = lcp_store_stored_size(inode->sf->f);
		st->st_size = (off_t)lcp_store_logical_size(inode->sf->f);
		st->st_blocks = (blkcnt_t)((stored + 511) / 512);
	}
	pthread_mutex_unlock(&inode->lock);
}

bool fs_tensor_is_committed(struct fs_inode *inode)
{
	bool c;

	pthread_mutex_lock(&inode->lock);
	c = inode->state == FS_COMPRESSED;
	pthread_mutex_unlock(&inode->lock);
	return c;
}

/* The store swaps files by rename, so extended attributes set through the
 * mount would stay behind on the old inode: carry them over (best effort; the
 * daemon's own user.lcpfs.* bookkeeping stays behind). */
static void copy_xattrs(int from_fd, int to_fd)
{
	char from[64], to[64], *names = NULL, *value = NULL;
	ssize_t len;

	snprintf(from, sizeof from, "/proc/self/fd/%d", from_fd);
	snprintf(to, sizeof to, "/proc/self/fd/%d", to_fd);
	len = listxattr(from, NULL, 0);
	if (len <= 0 || !(names = lcp_malloc((size_t)len)) ||
	    (len = listxattr(from, names, (size_t)len)) <= 0)
		goto out;
	for (char *n = names; n < names + len; n += strlen(n) + 1) {
		ssize_t vlen;
		if (strncmp(n, "user.lcpfs.", 11) == 0)
			continue;
		vlen = getxattr(from, n, NULL, 0);
		if (vlen < 0)
			continue;
		lcp_free(value);
		value = lcp_malloc((size_t)vlen + 1);
		if (!value)
			break;
		vlen = getxattr(from, n, value, (size_t)vlen);
		if (vlen >= 0)
			(void)setxattr(to, n, value, (size_t)vlen, 0);
	}
out:
	lcp_free(names);
	lcp_free(value);
}

/* Points inode at whatever the backing now has under its name (ns held for
 * writing: nobody uses the old fd meanwhile). */
static int repoint(struct fs_inode *inode, int dfd, const char *name)
{
	struct stat st;
	int fd = openat(dfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0)
		return errno;
	if (fstatat(fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0) {
		int e = errno;
		close(fd);
		return e;
	}
	copy_xattrs(fs_inode_fd(inode), fd);
	fs_inode_rekey(inode, fd, &st);
	return 0;
}

int fs_tensor_make_raw(struct fs_inode *inode, bool to_empty)
{
	char name[NAME_MAX + 1];
	int dfd, err = 0;

	pthread_mutex_lock(&inode->lock);
	if (inode->state != FS_COMPRESSED)
		goto out;
	if (to_empty) {
		/* About to be truncated to nothing: no bytes to keep, so no
		 * decode. The caller truncates the payload itself; the sidecar left
		 * beside it no longer matches it and is ignored as stale (and removed
		 * by the next pack of this name or the next mount's recovery). */
		sfile_put(inode->sf);
		inode->sf = NULL;
		inode->state = FS_RAW;
		inode->damaged = false;
		goto out;
	}
	dfd = fs_inode_dirfd_name(inode, name, sizeof name);
	if (dfd < 0) {
		/* Unlinked while open: its bytes cannot change through a name. */
		err = EROFS;
		goto out;
	}
	errno = 0;
	lcp_err le = lcp_store_materialize_at(dfd, name);
	int saved = errno;
	if (le != LCP_OK) {
		char path[PATH_MAX];
		fs_inode_path(inode, path, sizeof path);
		lcp_log(LCP_LOG_ERROR, "%s: cannot materialize for writing: %s", path,
			lcp_strerror(le));
		err = store_errno(le, saved);
	} else {
		err = repoint(inode, dfd, name);
		sfile_put(inode->sf);
		inode->sf = NULL;
		inode->state = FS_RAW;
		inode->damaged = false;
	}
	close(dfd);
out:
	pthread_mutex_unlock(&inode->lock);
	return err;
}

int fs_tensor_open_read(struct fs_inode *inode, struct fs_handle *h)
{
	int err = 0;

	pthread_mutex_lock(&inode->lock);
	if (inode->state != FS_COMPRESSED)
		err = ENOENT;
	else if (inode->damaged || !inode->sf)
		err = EIO;
	else
		h->sf = sfile_get(inode->sf);
	pthread_mutex_unlock(&inode->lock);
	return err;
}

ssize_t fs_tensor_read(struct fs_inode *inode, struct fs_handle *h, char *buf, size_t len,
		       off_t off)
{
	uint64_t bad = 0;
	size_t n = 0;
	lcp_err err = lcp_store_read(h->sf->f, buf, len, (uint64_t)off, &n, &bad);

	if (err == LCP_OK)
		return (ssize_t)n;
	char path[PATH_MAX];
	fs_inode_path(inode, path, sizeof path);
	if (err == LCP_ERR_CHECKSUM)
		lcp_log(LCP_LOG_ERROR, "%s: damaged payload at offset %llu (read of %zu bytes at %lld)",
			path, (unsigned long long)bad, len, (long long)off);
	else
		lcp_log(LCP_LOG_ERROR, "%s: read of %zu bytes at %lld failed: %s", path, len,
			(long long)off, lcp_strerror(err));
	return -fs_errno_from_lcp(err);
}

void fs_tensor_handle_close(struct fs_handle *h)
{
	if (h->fd >= 0)
		close(h->fd);
	h->fd = -1;
	sfile_put(h->sf);
	h->sf = NULL;
}

/* Queues a compression job for inode at generation wgen (inode lock held). */
static void queue_job(struct fs_inode *inode)
{
	struct job *j;

	if (fs_ctx.readonly || atomic_load(&stopping))
		return;
	j = lcp_calloc(1, sizeof *j);
	if (!j) {
		inode->state = FS_REFUSED;
		snprintf(inode->reason, sizeof inode->reason, "out of memory queueing compression");
		return;
	}
	fs_inode_ref(inode);
	j->inode = inode;
	j->wgen = inode->wgen;
	inode->state = FS_PENDING;
	inode->reason[0] = '\0';
	pthread_mutex_lock(&queue_lock);
	if (queue_tail)
		queue_tail->next = j;
	else
		queue_head = j;
	queue_tail = j;
	pthread_cond_signal(&queue_cond);
	pthread_mutex_unlock(&queue_lock);
}

void fs_tensor_opened(struct fs_inode *inode, bool writable, bool truncated)
{
	pthread_mutex_lock(&inode->lock);
	inode->nopen++;
	if (writable) {
		inode->nwriters++;
		inode->wgen++;
		if (inode->state == FS_REFUSED) {
			inode->state = FS_RAW;
			persist_refusal(inode); /* the bytes may change: forget it */
		}
		if (inode->state == FS_PENDING) {
			/* The queued job will be refused: this writer's release
			 * queues the next one, written to or not. */
			inode->state = FS_RAW;
			inode->dirty = true;
		}
	}
	if (truncated)
		inode->dirty = true;
	pthread_mutex_unlock(&inode->lock);
}

void fs_tensor_written(struct fs_inode *inode)
{
	pthread_mutex_lock(&inode->lock);
	inode->dirty = true;
	inode->wgen++;
	pthread_mutex_unlock(&inode->lock);
}

void fs_tensor_released(struct fs_inode *inode, bool writable)
{
	struct stat st;
	/* Files under min_size are never packed: no job, no worker time. A
	 * racing swap of the fd only makes this a conservative guess. */
	bool small = writable && fstat(fs_inode_fd(inode), &st) == 0 &&
		     (uint64_t)st.st_size < fs_ctx.cfg.min_size;

	pthread_mutex_lock(&inode->lock);
	inode->nopen--;
	if (writable)
		inode->nwriters--;
	if (inode->nwriters == 0 && inode->dirty && inode->type == S_IFREG) {
		inode->dirty = false;
		if (small)
			inode->state = FS_RAW;
		else
			queue_job(inode);
	}
	pthread_mutex_unlock(&inode->lock);
}

void fs_tensor_name_gone(struct fs_inode *inode)
{
	pthread_mutex_lock(&inode->lock);
	inode->wgen++;
	pthread_mutex_unlock(&inode->lock);
}

/* A job was overtaken (reopened, written, renamed): decide what follows. */
static void after_refusal(struct fs_inode *inode)
{
	char name[NAME_MAX + 1];
	int dfd;

	pthread_mutex_lock(&inode->lock);
	if (inode->state == FS_PENDING) {
		dfd = fs_inode_dirfd_name(inode, name, sizeof name);
		if (dfd < 0) {
			inode->state = FS_RAW; /* unlinked */
		} else if (inode->nwriters) {
			inode->dirty = true;   /* the last release queues again */
			inode->state = FS_RAW;
		} else {
			queue_job(inode);      /* renamed or reopened only: try again */
		}
		if (dfd >= 0)
			close(dfd);
	}
	pthread_mutex_unlock(&inode->lock);
}

static bool may_commit(void *arg)
{
	struct commit_gate *g = arg;
	bool ok;

	pthread_rwlock_wrlock(&fs_ctx.ns);
	pthread_mutex_lock(&g->inode->lock);
	ok = g->inode->nwriters == 0 && g->inode->wgen == g->wgen;
	pthread_mutex_unlock(&g->inode->lock);
	if (ok) {
		crash_point("gate");
		g->locked = true; /* released by run_job once the store is done */
	} else {
		g->refused = true;
		pthread_rwlock_unlock(&fs_ctx.ns);
	}
	return ok;
}

static void run_job(struct job *j)
{
	struct fs_inode *inode = j->inode;
	struct commit_gate gate = {.inode = inode, .wgen = j->wgen};
	struct lcp_pack_report rep;
	char name[NAME_MAX + 1], path[PATH_MAX];
	bool current;
	int dfd;

	pthread_mutex_lock(&inode->lock);
	current = inode->wgen == j->wgen && inode->nwriters == 0 && inode->state == FS_PENDING;
	pthread_mutex_unlock(&inode->lock);
	if (!current) {
		after_refusal(inode);
		return;
	}
	dfd = fs_inode_dirfd_name(inode, name, sizeof name);
	if (dfd < 0) {
		after_refusal(inode);
		return;
	}
	crash_point("pack-start");
	memset(&rep, 0, sizeof rep);
	rep.format = LCP_FORMAT_UNKNOWN;
	lcp_err err = lcp_store_pack_at(dfd, name, &fs_ctx.cfg, may_commit, &gate, &rep);
	fs_inode_path(inode, path, sizeof path);
	if (gate.locked) {
		pthread_mutex_lock(&inode->lock);
		inode->format = (int)rep.format;
		if (err == LCP_OK && rep.committed) {
			crash_point("committed");
			int e = repoint(inode, dfd, name);
			if (e)
				lcp_log(LCP_LOG_ERROR, "%s: committed but cannot reopen: %s", path,
					strerror(e));
			adopt_committed(inode, dfd, name);
			/* Shown as pending until the kernel has dropped what it
			 * cached: whoever sees "compressed" then sees its sizes. */
			inode->announcing = inode->state == FS_COMPRESSED;
		} else {
			inode->state = FS_REFUSED;
			snprintf(inode->reason, sizeof inode->reason, "%s",
				 err != LCP_OK ? lcp_strerror(err) : rep.reason);
			persist_refusal(inode);
		}
		bool committed = inode->state == FS_COMPRESSED;
		pthread_mutex_unlock(&inode->lock);
		pthread_rwlock_unlock(&fs_ctx.ns);
		if (committed) {
			lcp_log(LCP_LOG_INFO, "%s: compressed %llu -> %llu bytes", path,
				(unsigned long long)rep.logical_size,
				(unsigned long long)rep.stored_size);
			/* The bytes changed (lossy reconstruction): drop cached pages
			 * and attributes. Outside every lock: the kernel may need a
			 * request of ours answered to finish the invalidation. */
			if (!atomic_load(&stopping))
				fuse_lowlevel_notify_inval_inode(fs_ctx.se, fs_ino_of(inode), 0, 0);
			pthread_mutex_lock(&inode->lock);
			inode->announcing = false;
			pthread_mutex_unlock(&inode->lock);
		}
	} else if (gate.refused) {
		after_refusal(inode);
	} else {
		/* Never reached the swap: refused by the store, or failed. */
		pthread_mutex_lock(&inode->lock);
		bool overtaken = inode->wgen != j->wgen;
		inode->format = (int)rep.format;
		if (inode->state == FS_PENDING && !overtaken) {
			/* Not a tensor file at all: plain raw, not a refusal. */
			bool tensor = err != LCP_OK || (rep.format != LCP_FORMAT_UNKNOWN &&
							rep.format != LCP_FORMAT_RAW);
			inode->state = tensor ? FS_REFUSED : FS_RAW;
			snprintf(inode->reason, sizeof inode->reason, "%s",
				 err != LCP_OK ? lcp_strerror(err) : rep.reason);
			if (tensor)
				persist_refusal(inode);
		}
		pthread_mutex_unlock(&inode->lock);
		if (overtaken) /* renamed or rewritten meanwhile: its outcome is stale */
			after_refusal(inode);
		else
			lcp_log(LCP_LOG_INFO, "%s: left raw: %s", path,
				err != LCP_OK ? lcp_strerror(err) : rep.reason);
	}
	close(dfd);
}

static void *worker_main(void *arg)
{
	(void)arg;
	for (;;) {
		struct job *j;
		pthread_mutex_lock(&queue_lock);
		while (!queue_head && !atomic_load(&stopping))
			pthread_cond_wait(&queue_cond, &queue_lock);
		/* At unmount the queue is drained, not dropped: a file copied in
		 * just before `fusermount3 -u` is still compressed. */
		j = queue_head;
		if (j) {
			queue_head = j->next;
			if (!queue_head)
				queue_tail = NULL;
		}
		pthread_mutex_unlock(&queue_lock);
		if (!j)
			return NULL;
		run_job(j);
		fs_inode_unref(j->inode);
		lcp_free(j);
	}
}

lcp_err fs_tensor_start(int root_fd)
{
	int dfd = openat(root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	lcp_err err;

	if (dfd < 0)
		return LCP_ERR_IO;
	crash_at = getenv("LCPFS_CRASH_AT");
	/* Finish or clean what a crash left before anyone looks. */
	err = lcp_store_recover_dir(dfd);
	close(dfd);
	if (err != LCP_OK)
		lcp_log(LCP_LOG_WARN, "%s: recovery incomplete: %s", fs_ctx.backing,
			lcp_strerror(err));
	err = lcp_chunk_cache_create((size_t)fs_ctx.cache_bytes, &chunk_cache);
	if (err != LCP_OK)
		return err;
	workers = lcp_calloc(fs_ctx.threads, sizeof *workers);
	if (!workers)
		return LCP_ERR_NOMEM;
	for (nworkers = 0; nworkers < fs_ctx.threads; nworkers++)
		if (pthread_create(&workers[nworkers], NULL, worker_main, NULL) != 0)
			return nworkers ? LCP_OK : LCP_ERR_NOMEM;
	return LCP_OK;
}

void fs_tensor_stop(void)
{
	atomic_store(&stopping, true);
	pthread_mutex_lock(&queue_lock);
	pthread_cond_broadcast(&queue_cond);
	pthread_mutex_unlock(&queue_lock);
	for (unsigned i = 0; i < nworkers; i++)
		pthread_join(workers[i], NULL);
	nworkers = 0;
	lcp_free(workers);
	workers = NULL;
}

bool fs_name_hidden(const char *name)
{
	return lcp_store_is_internal_name(name);
}

/* The store's namespace calls want real directory fds (they fsync them). */
static int open_dir(int pathfd)
{
	return openat(pathfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

int fs_tensor_unlink(int dirfd, const char *name)
{
	int d = open_dir(dirfd), err;

	if (d < 0)
		return errno;
	errno = 0;
	lcp_err le = lcp_store_unlink_at(d, name);
	err = store_errno(le, errno);
	close(d);
	return err;
}

/* Opens both directories for a two-directory store call; 0 or an errno. */
static int open_dir_pair(int olddirfd, int newdirfd, int *a, int *b)
{
	int err;

	*a = open_dir(olddirfd);
	if (*a < 0)
		return errno;
	*b = open_dir(newdirfd);
	if (*b < 0) {
		err = errno;
		close(*a);
		return err;
	}
	return 0;
}

int fs_tensor_rename(int olddirfd, const char *oldname, int newdirfd, const char *newname,
		     unsigned int flags)
{
	int a, b, err = open_dir_pair(olddirfd, newdirfd, &a, &b);

	if (err)
		return err;
	errno = 0;
	lcp_err le = lcp_store_rename_at(a, oldname, b, newname, flags);
	err = store_errno(le, errno);
	close(a);
	close(b);
	return err;
}

int fs_tensor_link(int olddirfd, const char *oldname, int newdirfd, const char *newname)
{
	int a, b, err = open_dir_pair(olddirfd, newdirfd, &a, &b);

	if (err)
		return err;
	errno = 0;
	lcp_err le = lcp_store_link_at(a, oldname, b, newname);
	err = store_errno(le, errno);
	close(a);
	close(b);
	return err;
}

/* Copies text into buf (size 0: length only); returns its length or -ERANGE. */
static ssize_t put_text(const char *text, char *buf, size_t size)
{
	size_t n = strlen(text);

	if (size == 0)
		return (ssize_t)n;
	if (n > size)
		return -ERANGE;
	memcpy(buf, text, n);
	return (ssize_t)n;
}

ssize_t fs_tensor_xattr(struct fs_inode *inode, const char *key, char *buf, size_t size)
{
	char text[256];
	ssize_t r = -ENODATA;
	struct fs_sfile *sf = NULL;
	enum fs_state state;

	if (inode->type != S_IFREG)
		return -ENODATA;
	fs_tensor_probe(inode);
	pthread_mutex_lock(&inode->lock);
	state = inode->announcing ? FS_PENDING : inode->state;
	if (strcmp(key, "state") == 0) {
		r = put_text(state_names[state], buf, size);
	} else if (strcmp(key, "reason") == 0 && state != FS_COMPRESSED && inode->reason[0]) {
		r = put_text(inode->reason, buf, size);
	} else if (strcmp(key, "format") == 0 && state == FS_REFUSED && inode->format >= 0 &&
		   inode->format != LCP_FORMAT_UNKNOWN) {
		r = put_text(lcp_format_name((enum lcp_format)inode->format), buf, size);
	} else if (state == FS_COMPRESSED) {
		sf = sfile_get(inode->sf);
	}
	pthread_mutex_unlock(&inode->lock);
	if (!sf)
		return r;

	struct lcp_file_report rep;
	if (lcp_store_report(sf->f, &rep) != LCP_OK) {
		sfile_put(sf);
		return -EIO;
	}
	double min_cos = 1.0, min_sqnr = INFINITY;
	for (size_t i = 0; i < rep.ntensors; i++) {
		if (rep.tensors[i].cosine < min_cos)
			min_cos = rep.tensors[i].cosine;
		if (rep.tensors[i].sqnr_db < min_sqnr)
			min_sqnr = rep.tensors[i].sqnr_db;
	}
	text[0] = '\0';
	if (strcmp(key, "format") == 0)
		snprintf(text, sizeof text, "%s", lcp_format_name(rep.format));
	else if (strcmp(key, "ratio") == 0 && rep.stored_size)
		snprintf(text, sizeof text, "%.3f", (double)rep.logical_size / (double)rep.stored_size);
	else if (strcmp(key, "sqnr_db") == 0) /* the worst tensor; "inf" when all exact */
		snprintf(text, sizeof text, "%.2f", min_sqnr);
	else if (strcmp(key, "min_cosine") == 0)
		snprintf(text, sizeof text, "%.6f", min_cos);
	if (text[0]) {
		r = put_text(text, buf, size);
	} else if (strcmp(key, "inspect") == 0) {
		/* The same JSON `lcpfs inspect --json` prints for a backing file. */
		char *json = NULL;
		lcp_err e = lcp_store_report_json(&rep, &json);
		r = e ? -fs_errno_from_lcp(e) : put_text(json, buf, size);
		lcp_free(json);
	}
	lcp_file_report_free(&rep);
	sfile_put(sf);
	return r;
}
