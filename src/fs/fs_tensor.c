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

/* Opens the committed file name in dirfd into inode (inode lock held). */
static void adopt_committed(struct fs_inode *inode, int dirfd, const char *name)
{
	struct lcp_store_file *f = NULL;
	struct lcp_probe pr;
	struct fs_sfile *s;
	lcp_err err = lcp_store_probe_at(dirfd, name, chunk_cache, &pr, &f);

	sfile_put(inode->sf);
	inode->sf = NULL;
	inode->damaged = false;
	if (err == LCP_OK && pr.repr == LCP_REPR_RAW) {
		inode->state = pr.refused[0] ? FS_REFUSED : FS_RAW;
		snprintf(inode->reason, sizeof inode->reason, "%s", pr.refused);
		return;
	}
	if (err == LCP_OK && f && (s = lcp_calloc(1, sizeof *s))) {
		s->f = f;
		atomic_init(&s->refs, 1);
		inode->sf = s;
		inode->state = FS_COMPRESSED;
		return;
	}
	if (f) {
		lcp_store_close(f);
		err = LCP_ERR_NOMEM;
	}
	char path[PATH_MAX];
	fs_inode_path(inode, path, sizeof path);
	lcp_log(LCP_LOG_ERROR, "%s: %s: %s", path,
		err ? "cannot tell whether it is compressed" : "damaged",
		pr.note[0] ? pr.note : lcp_strerror(err));
	/* Damaged, or it cannot be told now: reads fail rather than show
	 * payload bytes; a failure to look is asked again. */
	inode->state = FS_COMPRESSED;
	inode->damaged = true;
	inode->probe_again = err != LCP_OK;
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
	lcp_err le = lcp_store_materialize_at(dfd, name);
	if (le != LCP_OK) {
		char path[PATH_MAX];
		fs_inode_path(inode, path, sizeof path);
		lcp_log(LCP_LOG_ERROR, "%s: cannot materialize for writing: %s", path,
			lcp_strerror(le));
		err = lcp_err_to_errno(le);
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
	return -lcp_err_to_errno(err);
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

static void run_job(struct job *j)
{
	struct fs_inode *inode = j->inode;
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
	struct lcp_pack_job *pj = NULL;
	bool locked = false, gate_refused = false;
	lcp_err err = lcp_store_pack_prepare_at(dfd, name, -1, &fs_ctx.cfg, NULL, NULL, &rep, &pj);
	if (err == LCP_OK && pj) {
		pthread_rwlock_wrlock(&fs_ctx.ns);
		pthread_mutex_lock(&inode->lock);
		bool ok = inode->nwriters == 0 && inode->wgen == j->wgen;
		pthread_mutex_unlock(&inode->lock);
		if (ok) {
			crash_point("gate");
			err = lcp_store_pack_commit(pj, &rep);
			locked = true;
			if (err == LCP_OK && rep.outcome == LCP_PACK_RETRY) {
				pthread_rwlock_unlock(&fs_ctx.ns);
				locked = false;
				gate_refused = true;
			}
		} else {
			pthread_rwlock_unlock(&fs_ctx.ns);
			gate_refused = true;
		}
	}
	lcp_store_pack_free(pj);
	fs_inode_path(inode, path, sizeof path);
	if (locked) {
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
	} else if (gate_refused || (err == LCP_OK && rep.outcome == LCP_PACK_RETRY)) {
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
	err = lcp_err_to_errno(lcp_store_unlink_at(d, name));
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
	err = lcp_err_to_errno(lcp_store_rename_at(a, oldname, b, newname, flags));
	close(a);
	close(b);
	return err;
}

int fs_tensor_link(int olddirfd, const char *oldname, int newdirfd, const char *newname)
{
	int a, b, err = open_dir_pair(olddirfd, newdirfd, &a, &b);

	if (err)
		return err;
	err = lcp_err_to_errno(lcp_store_link_at(a, oldname, b, newname));
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
		r = e ? -lcp_err_to_errno(e) : put_text(json, buf, size);
		lcp_free(json);
	}
	lcp_file_report_free(&rep);
	sfile_put(sf);
	return r;
}
