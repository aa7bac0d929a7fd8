/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The tensor layer of the daemon: what makes lcpfs more than a passthrough.
 *
 * What a regular file is comes from the store (lcp_store_probe_at), asked
 * once per inode and again whenever it could not tell: then the request
 * fails with EIO and a log line, never with payload bytes. The inode's
 * state follows fs_state.c.
 *
 * Writes land in the raw backing file. At the last writer's release of a
 * changed file a job is queued; a worker prepares the pack with no lock
 * held (parse, then encode through the mount's encoder pool, whose threads
 * serve every file being packed in turn, chunk by chunk; temporaries
 * written and fsynced), then takes the
 * namespace lock for writing and commits only if the gate agrees (no writer,
 * write generation unchanged, same inode) and the store's durable checks
 * pass (same inode, size, mtime, ctime, one link). A commit points the
 * inode at the payload, opens the committed file (shared by its readers,
 * decoded chunks cached in one bounded cache) and invalidates the kernel's
 * cache for it.
 *
 * A compressed file opened for writing is read through the store until its
 * first write or truncate, which materializes it: decoded to a temporary
 * with no lock held, then swapped in under the namespace lock after
 * checking it is still the same payload. Unlink, rename and link go through
 * the store so sidecars follow their payloads; the store's names are hidden.
 *
 * A pack deferred for a transient cause (full disk, no memory, no fd, I/O
 * error) is queued again after a backoff, and a file whose marker says so
 * (deferred by an earlier mount) is queued when it is first looked up.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/checksum.h"
#include "common/log.h"
#include "common/thread_buf.h"
#include "fs/fs_priv.h"
#include "lcpfs/format.h"
#include "lcpfs/store.h"

/* Test hook (LCPFS_TEST_HOLD): how long a held point waits for its go file. */
#define HOLD_MAX_SEC 120
#define HOLD_POLL_NS 10000000L
/* Materialize retries when the payload changed under it (a rename). */
#define MATERIALIZE_TRIES 3
/* Backoff of a deferred pack: the first retry after RETRY_FIRST_MS, each
 * next one after twice as long, at most RETRY_MAX_MS. */
#define RETRY_FIRST_MS 1000u
#define RETRY_MAX_MS (10u * 60u * 1000u)
/* Why a job the unmount cancelled left its file raw (and its retry mark). */
#define UNMOUNTED_REASON "unmounted before compression"

/* A committed file shared by the inode and its read handles. */
struct fs_sfile {
	struct lcp_store_file *f;
	atomic_uint refs;
};

struct fs_job {
	struct fs_inode *inode; /* holds a reference */
	uint64_t wgen;          /* generation when queued */
	unsigned attempt;       /* deferrals so far */
	struct timespec due;    /* CLOCK_MONOTONIC time it may run from */
	struct fs_job *next;
};

/* Closes *fd if open and marks it closed. */
static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
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

static void log_inode(struct fs_mount *m, struct fs_inode *inode, enum lcp_log_level level,
		      const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void queue_job(struct fs_mount *m, struct fs_inode *inode, unsigned attempt);
static enum lcp_format header_format(struct fs_mount *m, struct fs_inode *inode, char *why,
				     size_t why_len);

static void vlog_path(enum lcp_log_level level, const char *path, const char *fmt, va_list ap)
{
	char msg[768];

	vsnprintf(msg, sizeof msg, fmt, ap);
	lcp_log(level, "%s: %s", path, msg);
}

static void log_inode(struct fs_mount *m, struct fs_inode *inode, enum lcp_log_level level,
		      const char *fmt, ...)
{
	char path[PATH_MAX];
	va_list ap;

	fs_inode_path(m, inode, path, sizeof path);
	va_start(ap, fmt);
	vlog_path(level, path, fmt, ap);
	va_end(ap);
}

/* log_inode for the file named name in directory parent. */
static void log_entry(struct fs_mount *m, struct fs_inode *parent, const char *name,
		      enum lcp_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
static void log_entry(struct fs_mount *m, struct fs_inode *parent, const char *name,
		      enum lcp_log_level level, const char *fmt, ...)
{
	char path[PATH_MAX];
	size_t used;
	va_list ap;

	fs_inode_path(m, parent, path, sizeof path);
	used = strlen(path);
	snprintf(path + used, sizeof path - used, "/%s", name);
	va_start(ap, fmt);
	vlog_path(level, path, fmt, ap);
	va_end(ap);
}

/* Crash-injection for tests/integration/test_mount_crash.sh: with
 * LCPFS_CRASH_AT=<point> in the environment the daemon dies (as by kill -9,
 * no cleanup) when it reaches that point of a commit: "pack-start" (before
 * the store is called), "gate" (the swap was allowed, the store has renamed
 * nothing yet), "committed" (the store returned a commit, the daemon has not
 * reopened the file). */
static void crash_point(struct fs_mount *m, const char *point)
{
	if (m->crash_at && strcmp(m->crash_at, point) == 0) {
		lcp_log(LCP_LOG_ERROR, "LCPFS_CRASH_AT=%s: exiting now", point);
		_exit(86);
	}
}

/* Test hook: with LCPFS_TEST_HOLD=<point> and LCPFS_TEST_HOLD_DIR=<dir>, a
 * job reaching the point creates <dir>/<point>.reached and waits until
 * <dir>/<point>.go exists (at most HOLD_MAX_SEC). Points: "start" (a job
 * is about to prepare), "prepared" (the temporaries are written, the gate
 * not yet taken), "materialize" (before a materialize decodes), "discard"
 * (before the empty file of an O_TRUNC is written and fsynced), "fsync"
 * (fs_fsync, before the backing's fsync), "announce" (a commit is done,
 * the kernel not yet told to drop its name or pages). Lets tests
 * act at a known moment of a compression without sleeping. */
static void hold_point(struct fs_mount *m, const char *point)
{
	char path[PATH_MAX];
	struct timespec step = {0, HOLD_POLL_NS};

	if (!m->hold_at || !m->hold_dir || strcmp(m->hold_at, point) != 0)
		return;
	snprintf(path, sizeof path, "%s/%s.reached", m->hold_dir, point);
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0644);
	if (fd >= 0)
		close(fd);
	snprintf(path, sizeof path, "%s/%s.go", m->hold_dir, point);
	for (long waited = 0; waited < HOLD_MAX_SEC * 1000000000L; waited += HOLD_POLL_NS) {
		if (access(path, F_OK) == 0)
			return;
		nanosleep(&step, NULL);
	}
}

void fs_tensor_hold(struct fs_mount *m, const char *point)
{
	hold_point(m, point);
}

lcp_err fs_tensor_configure(struct fs_mount *m, const char *options, char *errbuf,
			    size_t errbuf_len)
{
	struct lcp_config cfg = lcp_config_default();
	lcp_err err = LCP_OK;

	if (options)
		err = lcp_config_parse_options(&cfg, options, NULL, errbuf, errbuf_len);
	if (err == LCP_OK)
		m->cfg = cfg;
	return err;
}

void fs_tensor_inode_gone(struct fs_inode *inode)
{
	sfile_put(inode->sf);
	inode->sf = NULL;
}

/* Asks the store about the inode's name; with sf non-NULL a compressed
 * file is also opened into *sf (with sf NULL only the sidecar is read and
 * let go: what a stat needs). Inode lock held. */
static lcp_err probe_inode(struct fs_mount *m, struct fs_inode *inode, struct lcp_probe *pr,
			   struct fs_sfile **sf)
{
	char name[NAME_MAX + 1];
	struct lcp_store_file *f = NULL;
	int e, dfd = fs_inode_dirfd_name(m, inode, name, sizeof name, &e);
	lcp_err err;

	assert(fs_mutex_held(&inode->lock));
	if (sf)
		*sf = NULL;
	memset(pr, 0, sizeof *pr);
	if (dfd < 0) {
		snprintf(pr->note, sizeof pr->note, "it has no name to ask the store about");
		return lcp_err_from_errno(e);
	}
	err = lcp_store_probe_at(dfd, name, m->cache, pr, sf ? &f : NULL);
	close(dfd);
	if (err == LCP_OK && (pr->dev != (uint64_t)inode->dev || pr->ino != (uint64_t)inode->ino)) {
		/* The name now stands for another object (changed on the backing). */
		snprintf(pr->note, sizeof pr->note, "its name now holds another file");
		err = LCP_ERR_AGAIN;
	}
	if (err == LCP_OK && f) {
		*sf = lcp_calloc(1, sizeof **sf);
		if (!*sf) {
			err = LCP_ERR_NOMEM;
		} else {
			(*sf)->f = f;
			atomic_init(&(*sf)->refs, 1);
			f = NULL;
		}
	}
	lcp_store_close(f);
	return err;
}

static enum fs_probe_answer answer_of(const struct lcp_probe *pr)
{
	return pr->repr == LCP_REPR_COMPRESSED ? FS_PROBE_COMPRESSED
	       : pr->repr == LCP_REPR_DAMAGED  ? FS_PROBE_DAMAGED
					       : FS_PROBE_RAW;
}

/* Sets the inode's committed file (inode lock held; NULL: none). */
static void set_sf(struct fs_inode *inode, struct fs_sfile *sf)
{
	sfile_put(inode->sf);
	inode->sf = sf;
}

/* Keeps what a stat of a compressed file needs (inode lock held). */
static void note_sizes(struct fs_inode *inode, const struct lcp_probe *pr)
{
	inode->logical_size = pr->logical_size;
	inode->stored_size = pr->stored_size;
	inode->sidecar_blocks = pr->sidecar_blocks;
}

/* A committed file nobody has open is closed (inode lock held): its sizes
 * stay, and the next open (or report) opens it again. An open committed
 * file holds its parsed sidecar and every tensor's decoder state (about
 * three times the sidecar's size) and an fd, so only files in use keep
 * one: a listing of many compressed files, whose inodes the kernel keeps
 * for as long as it likes, costs the daemon no more than their sizes. */
static void close_sf_if_idle(struct fs_inode *inode)
{
	if (inode->t.nopen == 0 && !inode->announcing && inode->sf)
		set_sf(inode, NULL);
}

/* Records a probe answer (inode lock held). */
static void adopt(struct fs_inode *inode, const struct lcp_probe *pr)
{
	set_sf(inode, NULL);
	inode->nlink = pr->nlink;
	fs_track_probed(&inode->t, answer_of(pr), pr->refused);
	note_sizes(inode, pr);
}

/* Whether a probe found the inode's name holding another object. */
static bool names_other(const struct fs_inode *inode, const struct lcp_probe *pr)
{
	return pr->regular && (pr->dev != (uint64_t)inode->dev || pr->ino != (uint64_t)inode->ino);
}

/* Whether a probe found a raw file refused for several hard links that has
 * one link left. */
static bool links_gone(const struct lcp_probe *pr)
{
	return pr->repr == LCP_REPR_RAW && pr->nlink == 1 &&
	       strcmp(pr->refused, LCP_STORE_REFUSED_LINKS) == 0;
}

int fs_tensor_known(struct fs_mount *m, struct fs_inode *inode)
{
	struct lcp_probe pr;
	int err = 0;

	if (inode->type != S_IFREG)
		return 0;
	assert(fs_rwlock_held(&m->ns));
	fs_mutex_lock(&inode->lock);
	if (!inode->t.known) {
		lcp_err le = probe_inode(m, inode, &pr, NULL);
		if (le == LCP_ERR_AGAIN && !names_other(inode, &pr)) {
			/* A network backing's client may still name a payload and
			 * its sidecar as of different moments (another machine just
			 * replaced both): reading the directory makes it learn the
			 * names anew; ask once more. */
			fs_inode_reread_dir(m, inode);
			le = probe_inode(m, inode, &pr, NULL);
		}
		if (le == LCP_OK) {
			adopt(inode, &pr);
			/* Deferred by an earlier mount (or run of `lcpfs pack`) for a
			 * transient cause: try again now. Likewise a refusal for hard
			 * links once one link is left. */
			if (pr.repr == LCP_REPR_RAW && lcp_store_refusal_is_retry(pr.refused) &&
			    !m->readonly && fs_track_retry(&inode->t) == FS_DO_QUEUE)
				queue_job(m, inode, 0);
			else if (links_gone(&pr) && !m->readonly &&
				 fs_track_recheck(&inode->t) == FS_DO_QUEUE)
				queue_job(m, inode, 0);
			inode->untold_logged = false;
			if (pr.repr == LCP_REPR_DAMAGED)
				log_inode(m, inode, LCP_LOG_ERROR, "damaged: %s; reads fail", pr.note);
			else if (pr.note[0])
				log_inode(m, inode, LCP_LOG_INFO, "%s", pr.note);
		} else if (le == LCP_ERR_NOENT || names_other(inode, &pr)) {
			/* The name holds another file, or none, now (changed on
			 * another machine): the kernel looks it up again. */
			fs_inode_reread_dir(m, inode);
			err = ESTALE;
		} else {
			/* Nothing is cached: the next request asks again (logged
			 * once until the store answers). */
			if (!inode->untold_logged)
				log_inode(m, inode, LCP_LOG_ERROR,
					  "cannot tell whether it is compressed (%s%s%s); opens "
					  "fail with EIO", lcp_strerror(le), pr.note[0] ? ": " : "",
					  pr.note);
			inode->untold_logged = true;
			err = EIO;
		}
	}
	fs_mutex_unlock(&inode->lock);
	return err;
}

/* Opens the committed file of a compressed inode again if it was closed
 * while idle (inode lock held, ns held). 0, ESTALE when the name holds
 * another file now, or EIO (the store is asked afresh next time). */
static int reopen_sf(struct fs_mount *m, struct fs_inode *inode)
{
	struct lcp_probe pr;
	struct fs_sfile *sf = NULL;
	lcp_err le;

	if (inode->sf || inode->t.state != FS_COMPRESSED || inode->t.damaged || !inode->t.known)
		return 0;
	le = probe_inode(m, inode, &pr, &sf);
	if (le == LCP_OK && pr.repr == LCP_REPR_COMPRESSED && sf) {
		set_sf(inode, sf);
		note_sizes(inode, &pr);
		return 0;
	}
	sfile_put(sf);
	if (le == LCP_ERR_NOENT || names_other(inode, &pr)) {
		fs_inode_reread_dir(m, inode); /* the kernel's new lookup finds it */
		return ESTALE;
	}
	if (le == LCP_OK && pr.repr == LCP_REPR_DAMAGED) {
		/* Found only now that the file is opened (codec parameters that
		 * do not parse): from now on it reads as damaged. */
		adopt(inode, &pr);
		log_inode(m, inode, LCP_LOG_ERROR, "damaged: %s; reads fail", pr.note);
		return EIO;
	}
	fs_track_unknown(&inode->t);
	return EIO;
}

void fs_tensor_fix_stat(struct fs_inode *inode, struct stat *st)
{
	if (!S_ISREG(st->st_mode))
		return;
	fs_mutex_lock(&inode->lock);
	if (inode->t.state == FS_COMPRESSED && inode->t.known && !inode->t.damaged) {
		st->st_size = (off_t)inode->logical_size;
		/* What the backing really allocates, as du counts it: st has the
		 * payload's blocks; its sidecar's come with them. */
		st->st_blocks += (blkcnt_t)inode->sidecar_blocks;
	}
	fs_mutex_unlock(&inode->lock);
}

/* Opens the backing file of a regular inode with flags (its access mode,
 * O_APPEND, ...): what its name holds now, checked to be the inode's object
 * (ESTALE otherwise: the kernel looks the name up again). Never a FIFO or
 * device. */
static int open_backing(struct fs_mount *m, struct fs_inode *inode, int flags, int *fd)
{
	struct stat st;
	char byte;
	int err;

	/* O_DIRECT alignment is the kernel's business on our side, not the
	 * backing's. */
	*fd = fs_inode_open(m, inode, flags & ~(O_CREAT | O_EXCL | O_DIRECT), &err);
	if (*fd < 0)
		return err;
	if (fstat(*fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(*fd);
		*fd = -1;
		return EIO;
	}
	/* A network backing's client may still name a file another machine
	 * replaced (GlusterFS keeps names for a second or so): the open works,
	 * the first read finds the file gone. Found now, the client is made to
	 * learn the directory anew and ESTALE makes the kernel look the name up
	 * again, rather than fail the reader's read. */
	if ((flags & O_ACCMODE) != O_WRONLY && st.st_size > 0 && pread(*fd, &byte, 1, 0) < 0 &&
	    (errno == ENOENT || errno == ESTALE)) {
		close(*fd);
		*fd = -1;
		fs_inode_reread_dir(m, inode);
		return ESTALE;
	}
	return 0;
}

/* Current link count of the inode's backing object. */
static uint64_t links_now(struct fs_mount *m, struct fs_inode *inode)
{
	struct stat st;
	if (fs_inode_stat(m, inode, &st) != 0)
		return inode->nlink;
	return (uint64_t)st.st_nlink;
}

/* Points inode at whatever the backing now has under dfd/name (ns held for
 * writing): the commit or materialize just put a new file there. */
static int repoint(struct fs_mount *m, struct fs_inode *inode, int dfd, const char *name,
		   uint64_t want_ino)
{
	struct stat st;
	int fd = openat(dfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0)
		return errno;
	if (fstatat(fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0 ||
	    (uint64_t)st.st_ino != want_ino) {
		close(fd);
		return EIO;
	}
	fs_inode_rekey(m, inode, fd, &st);
	return 0;
}

/* Empties a compressed file for O_TRUNC (no lock held): a new empty file
 * takes its name, and the inode points at it. The empty file is written and
 * fsynced with no lock held; only the swap takes ns for writing (an fsync
 * under ns would stop every lookup while the backing is slow). Returns 0
 * (also when the inode is no longer compressed) or an errno. */
static int discard(struct fs_mount *m, struct fs_inode *inode)
{
	for (int tries = 0;; tries++) {
		struct lcp_discard *d = NULL;
		char name[NAME_MAX + 1];
		uint64_t dev, ino;
		bool moved_on = false;
		int e, dfd;
		lcp_err err;

		fs_mutex_lock(&inode->lock);
		dev_t dev0 = inode->dev;
		ino_t ino0 = inode->ino;
		moved_on = inode->t.state != FS_COMPRESSED;
		fs_mutex_unlock(&inode->lock);
		if (moved_on)
			return 0;
		if ((dfd = fs_inode_dirfd_name(m, inode, name, sizeof name, &e)) < 0)
			return e;
		hold_point(m, "discard");
		err = lcp_store_discard_prepare_at(dfd, name, &d);
		if (err == LCP_OK || err == LCP_ERR_NOENT) {
			fs_rwlock_wrlock(&m->ns);
			fs_mutex_lock(&inode->lock);
			if (inode->dev != dev0 || inode->ino != ino0)
				err = LCP_ERR_AGAIN;
			else if (inode->t.state != FS_COMPRESSED)
				moved_on = true;
			else if (err == LCP_OK)
				err = lcp_store_discard_commit(d, &dev, &ino);
			if (!moved_on && err == LCP_OK && repoint(m, inode, dfd, name, ino) != 0)
				fs_track_unknown(&inode->t);
			if (!moved_on && (err == LCP_OK || err == LCP_ERR_NOENT)) {
				set_sf(inode, NULL);
				fs_track_discarded(&inode->t);
			}
			fs_mutex_unlock(&inode->lock);
			fs_rwlock_unlock(&m->ns);
		}
		lcp_store_discard_free(d);
		close(dfd);
		if (moved_on)
			return 0;
		if (err == LCP_ERR_AGAIN && tries + 1 < MATERIALIZE_TRIES)
			continue;
		if (err == LCP_ERR_MLINK)
			log_inode(m, inode, LCP_LOG_ERROR, "a compressed file with several hard links "
				  "cannot be truncated in place; unpack it first");
		else if (err && err != LCP_ERR_NOENT)
			log_inode(m, inode, LCP_LOG_ERROR, "cannot truncate: %s", lcp_strerror(err));
		return err == LCP_ERR_NOENT ? 0 : lcp_err_to_errno(err);
	}
}

/* The store found no compressed file under the inode's name while the
 * inode is compressed (no lock held; the caller's materialize is under
 * way): the name changed on the backing. True when the name holds the
 * inode's own object, raw now (turned raw in place by someone else): the
 * inode becomes raw and the write goes on. False otherwise: the object
 * has no name to be written under any more (renamed or replaced), and
 * treating it as raw would only make the writer ask again forever. */
static bool raw_in_place(struct fs_mount *m, struct fs_inode *inode)
{
	struct lcp_probe pr;
	bool raw = false;

	fs_rwlock_rdlock(&m->ns);
	fs_mutex_lock(&inode->lock);
	if (probe_inode(m, inode, &pr, NULL) == LCP_OK && pr.repr == LCP_REPR_RAW) {
		set_sf(inode, NULL);
		fs_track_materialized(&inode->t);
		raw = true;
	}
	fs_mutex_unlock(&inode->lock);
	fs_rwlock_unlock(&m->ns);
	if (!raw)
		fs_inode_reread_dir(m, inode); /* the kernel's next lookup finds what is there */
	return raw;
}

/* Materializes a compressed inode (no lock held): decode with no lock, swap
 * under ns. Returns 0 when the inode is raw, or an errno. */
static int materialize(struct fs_mount *m, struct fs_inode *inode)
{
	for (int tries = 0;; tries++) {
		struct lcp_materialize *mat = NULL;
		char name[NAME_MAX + 1];
		dev_t dev;
		ino_t ino;
		int e, dfd;
		lcp_err err;

		fs_mutex_lock(&inode->lock);
		while (inode->t.materializing)
			fs_cond_wait(&inode->changed, &inode->lock);
		if (inode->t.state != FS_COMPRESSED) {
			fs_mutex_unlock(&inode->lock);
			return 0;
		}
		if (inode->t.damaged || !inode->t.known) {
			fs_mutex_unlock(&inode->lock);
			return EIO;
		}
		inode->t.materializing = true;
		dev = inode->dev;
		ino = inode->ino;
		fs_mutex_unlock(&inode->lock);

		dfd = fs_inode_dirfd_name(m, inode, name, sizeof name, &e);
		if (dfd < 0) {
			err = LCP_ERR_ROFS; /* unlinked while open: no name to write under */
		} else {
			hold_point(m, "materialize");
			err = lcp_store_materialize_prepare_at(dfd, name, &mat);
		}
		/* stale: the handle's object has no name to be written under */
		bool stale = err == LCP_ERR_NOENT && !raw_in_place(m, inode);
		if (err == LCP_OK) {
			fs_rwlock_wrlock(&m->ns);
			fs_mutex_lock(&inode->lock);
			if (inode->dev != dev || inode->ino != ino)
				err = LCP_ERR_AGAIN;
			else
				err = lcp_store_materialize_commit(mat);
			if (err == LCP_OK) {
				uint64_t rdev, rino;
				lcp_store_materialize_result(mat, &rdev, &rino);
				if (repoint(m, inode, dfd, name, rino) != 0)
					fs_track_unknown(&inode->t);
				set_sf(inode, NULL);
				fs_track_materialized(&inode->t);
			}
			fs_mutex_unlock(&inode->lock);
			fs_rwlock_unlock(&m->ns);
		}
		if (err == LCP_ERR_NOENT && !stale)
			err = LCP_OK; /* raw now */
		fs_mutex_lock(&inode->lock);
		inode->t.materializing = false;
		pthread_cond_broadcast(&inode->changed);
		fs_mutex_unlock(&inode->lock);
		lcp_store_materialize_free(mat);
		if (dfd >= 0)
			close(dfd);
		if (err == LCP_ERR_AGAIN && tries + 1 < MATERIALIZE_TRIES)
			continue;
		/* A writer retrying in a loop must not flood the log: said once
		 * until a materialize of this inode succeeds. */
		fs_mutex_lock(&inode->lock);
		bool say = err && !inode->materialize_logged;
		inode->materialize_logged = err != LCP_OK;
		fs_mutex_unlock(&inode->lock);
		if (say && err == LCP_ERR_MLINK)
			log_inode(m, inode, LCP_LOG_ERROR,
				  "a compressed file with several hard links cannot be changed in "
				  "place (a rename would split the links); unpack it first");
		else if (say && stale)
			log_inode(m, inode, LCP_LOG_ERROR,
				  "cannot materialize for writing: its name on the backing no "
				  "longer holds this compressed file (changed outside the mount); "
				  "writes through handles open before fail with ESTALE");
		else if (say)
			log_inode(m, inode, LCP_LOG_ERROR, "cannot materialize for writing: %s",
				  lcp_strerror(err));
		return stale ? ESTALE : lcp_err_to_errno(err);
	}
}

int fs_tensor_make_raw(struct fs_mount *m, struct fs_inode *inode, bool to_empty)
{
	return to_empty ? discard(m, inode) : materialize(m, inode);
}

/* Brings h up to the inode's current content (inode and h locks held): a
 * handle reading a committed file that was materialized since reads the
 * raw file now (or the newer committed file). A handle on a raw fd keeps
 * it: it reads the version it opened, as across a rename. (A commit never
 * swaps the file behind a raw fd: with handles open it retires the inode,
 * see commit().) */
static int resolve_handle(struct fs_mount *m, struct fs_inode *inode, struct fs_handle *h)
{
	assert(fs_mutex_held(&inode->lock));
	if (h->content_gen == inode->t.content_gen || h->fd >= 0)
		return 0;
	if (inode->t.state == FS_COMPRESSED) {
		if (inode->t.damaged || !inode->sf)
			return EIO;
		sfile_put(h->sf);
		h->sf = sfile_get(inode->sf);
	} else {
		int fd, err = open_backing(m, inode, h->flags & ~O_TRUNC, &fd);
		if (err)
			return err;
		h->fd = fd;
		sfile_put(h->sf);
		h->sf = NULL;
	}
	h->content_gen = inode->t.content_gen;
	return 0;
}

int fs_tensor_open(struct fs_mount *m, struct fs_inode *inode, struct fs_handle *h)
{
	bool trunc = (h->flags & O_TRUNC) != 0;
	int err;

	/* Reached through a name the kernel still had from before a commit:
	 * it looks the name up again (a path open is retried once on ESTALE)
	 * and opens the committed file, a new inode with its own page cache. */
	if (inode->retired)
		return ESTALE;
	for (;;) {
		if ((err = fs_tensor_known(m, inode)) != 0)
			return err;
		fs_mutex_lock(&inode->lock);
		if (inode->t.state != FS_COMPRESSED)
			break;
		/* The payload is what its name holds now? (A raw file is checked
		 * as it is opened.) */
		if ((err = fs_inode_check_name(m, inode)) != 0) {
			fs_mutex_unlock(&inode->lock);
			return err;
		}
		if (trunc) {
			/* Emptied (a new empty file takes the name): needs ns for
			 * writing, briefly. */
			fs_mutex_unlock(&inode->lock);
			fs_rwlock_unlock(&m->ns);
			err = discard(m, inode);
			fs_rwlock_rdlock(&m->ns);
			if (err)
				return err;
			continue;
		}
		if ((err = reopen_sf(m, inode)) != 0) {
			fs_mutex_unlock(&inode->lock);
			return err;
		}
		if (inode->t.damaged || !inode->sf) {
			fs_mutex_unlock(&inode->lock);
			log_inode(m, inode, LCP_LOG_ERROR, "open of a damaged compressed file: EIO");
			return EIO;
		}
		if (h->writable && links_now(m, inode) > 1) {
			fs_mutex_unlock(&inode->lock);
			log_inode(m, inode, LCP_LOG_ERROR,
				  "a compressed file with several hard links opens read-only "
				  "(EMLINK); unpack it first to change it");
			return EMLINK;
		}
		/* Read through the store; the first write materializes it. */
		h->sf = sfile_get(inode->sf);
		h->fd = -1;
		h->content_gen = inode->t.content_gen;
		fs_mutex_unlock(&inode->lock);
		return 0;
	}
	/* Raw. Under ns (held) the backing file cannot be swapped. */
	h->content_gen = inode->t.content_gen;
	fs_mutex_unlock(&inode->lock);
	return open_backing(m, inode, h->flags, &h->fd);
}

/* A handle's read stream over one committed file, shared by the handle
 * and the reads in flight on it: the stream detects a sequential reader
 * and decodes ahead of it (lcp_read_stream_*). The last reference closes
 * the stream, dropping what it decoded ahead, then lets go of the file. */
struct fs_reader {
	struct fs_sfile *sf;      /* holds a reference */
	struct lcp_read_stream *rs;
	atomic_uint refs;
};

static struct fs_reader *reader_new(struct fs_mount *m, struct fs_sfile *sf)
{
	struct fs_reader *r = lcp_calloc(1, sizeof *r);

	if (!r)
		return NULL;
	if (lcp_read_stream_open(sf->f, m->ahead, &r->rs) != LCP_OK) {
		lcp_free(r);
		return NULL;
	}
	r->sf = sfile_get(sf);
	atomic_init(&r->refs, 1);
	return r;
}

static struct fs_reader *reader_get(struct fs_reader *r)
{
	if (r)
		atomic_fetch_add(&r->refs, 1);
	return r;
}

/* May wait for a chunk being decoded ahead: call it with no lock held. */
static void reader_put(struct fs_reader *r)
{
	if (r && atomic_fetch_sub(&r->refs, 1) == 1) {
		lcp_read_stream_close(r->rs);
		sfile_put(r->sf);
		lcp_free(r);
	}
}

ssize_t fs_tensor_read(struct fs_mount *m, struct fs_inode *inode, struct fs_handle *h,
		       size_t len, off_t off, struct fs_read_reply *rep)
{
	struct fs_reader *old = NULL;
	uint64_t bad = 0;
	size_t n = 0;
	int err;

	memset(rep, 0, sizeof *rep);
	rep->fd = -1;
	fs_mutex_lock(&inode->lock);
	pthread_mutex_lock(&h->lock);
	err = resolve_handle(m, inode, h);
	if (!err && h->reader && h->reader->sf != h->sf) {
		/* The handle moved on to another version of the file. */
		old = h->reader;
		h->reader = NULL;
	}
	if (!err && h->sf && !h->reader && !(h->reader = reader_new(m, h->sf)))
		err = ENOMEM;
	if (!err && h->sf)
		rep->reader = reader_get(h->reader);
	else if (!err)
		rep->fd = h->fd;
	pthread_mutex_unlock(&h->lock);
	fs_mutex_unlock(&inode->lock);
	reader_put(old);
	if (err || !rep->reader)
		return err ? -err : 0;
	/* The request thread's own buffer, kept between requests (a fresh one
	 * per request cost page faults on every read). */
	rep->buf = lcp_thread_buf(LCP_TBUF_REPLY, len);
	lcp_err le = rep->buf ? lcp_read_stream_view(rep->reader->rs, rep->buf, len, (uint64_t)off,
						     &rep->view, &n, &bad)
			      : LCP_ERR_NOMEM;
	if (le == LCP_OK)
		return (ssize_t)n;
	if (le == LCP_ERR_CHECKSUM)
		log_inode(m, inode, LCP_LOG_ERROR,
			  "damaged payload at offset %llu (read of %zu bytes at %lld)",
			  (unsigned long long)bad, len, (long long)off);
	else
		log_inode(m, inode, LCP_LOG_ERROR, "read of %zu bytes at %lld failed: %s", len,
			  (long long)off, lcp_strerror(le));
	return -lcp_err_to_errno(le);
}

void fs_tensor_read_done(struct fs_read_reply *rep)
{
	if (rep->reader) {
		lcp_read_stream_release(rep->reader->rs, &rep->view);
		reader_put(rep->reader);
	}
	memset(rep, 0, sizeof *rep);
	rep->fd = -1;
}

int fs_tensor_write_fd(struct fs_mount *m, struct fs_inode *inode, struct fs_handle *h)
{
	for (;;) {
		int fd, err;
		fs_mutex_lock(&inode->lock);
		pthread_mutex_lock(&h->lock);
		/* A writer's raw fd stays current: no commit swaps a file while a
		 * writer has it open. */
		if (h->fd >= 0) {
			fd = h->fd;
			pthread_mutex_unlock(&h->lock);
			fs_mutex_unlock(&inode->lock);
			return fd;
		}
		if (inode->t.state != FS_COMPRESSED) {
			err = open_backing(m, inode, h->flags & ~O_TRUNC, &fd);
			if (!err) {
				h->fd = fd;
				sfile_put(h->sf);
				h->sf = NULL;
				h->content_gen = inode->t.content_gen;
			}
			pthread_mutex_unlock(&h->lock);
			fs_mutex_unlock(&inode->lock);
			return err ? -err : fd;
		}
		pthread_mutex_unlock(&h->lock);
		fs_mutex_unlock(&inode->lock);
		if ((err = materialize(m, inode)) != 0)
			return -err;
	}
}

void fs_tensor_handle_close(struct fs_handle *h)
{
	reader_put(h->reader);
	h->reader = NULL;
	close_fd(&h->fd);
	sfile_put(h->sf);
	h->sf = NULL;
}

static uint32_t retry_delay_ms(unsigned attempt)
{
	uint64_t ms = RETRY_FIRST_MS;
	for (unsigned k = 1; k < attempt && ms < RETRY_MAX_MS; k++)
		ms *= 2;
	return (uint32_t)(ms < RETRY_MAX_MS ? ms : RETRY_MAX_MS);
}

/* Queues a compression job for inode at its current generation (inode lock
 * held; the state machine already marked it queued), to run at once
 * (attempt 0) or after the backoff of its attempt-th deferral. */
static void queue_job(struct fs_mount *m, struct fs_inode *inode, unsigned attempt)
{
	struct fs_job *j = NULL;

	assert(fs_mutex_held(&inode->lock));
	if (!m->readonly && !atomic_load(&m->stopping))
		j = lcp_calloc(1, sizeof *j);
	if (!j) {
		fs_track_job_done(&inode->t, FS_JOB_FAILED,
				  atomic_load(&m->stopping) ? UNMOUNTED_REASON
							    : "cannot queue compression",
				  true);
		return;
	}
	fs_inode_ref(m, inode);
	j->inode = inode;
	j->wgen = inode->t.wgen;
	j->attempt = attempt;
	clock_gettime(CLOCK_MONOTONIC, &j->due);
	if (attempt) {
		uint32_t ms = retry_delay_ms(attempt);
		j->due.tv_sec += ms / 1000u;
		j->due.tv_nsec += (long)(ms % 1000u) * 1000000L;
		if (j->due.tv_nsec >= 1000000000L) {
			j->due.tv_sec++;
			j->due.tv_nsec -= 1000000000L;
		}
	}
	fs_mutex_lock(&m->queue_lock);
	if (m->queue_tail)
		m->queue_tail->next = j;
	else
		m->queue_head = j;
	m->queue_tail = j;
	pthread_cond_broadcast(&m->queue_cond);
	fs_mutex_unlock(&m->queue_lock);
}

/* Carries out what a transition asked for (inode lock held). */
static void act(struct fs_mount *m, struct fs_inode *inode, enum fs_action a, bool *forget)
{
	if (a == FS_DO_QUEUE)
		queue_job(m, inode, 0);
	else if (a == FS_DO_FORGET_REFUSAL)
		*forget = true;
}

static void forget_refusal(struct fs_mount *m, struct fs_inode *inode)
{
	char name[NAME_MAX + 1];
	int e, dfd = fs_inode_dirfd_name(m, inode, name, sizeof name, &e);
	if (dfd >= 0) {
		(void)lcp_store_refusal_clear_at(dfd, name);
		close(dfd);
	}
}

void fs_tensor_opened(struct fs_mount *m, struct fs_inode *inode, bool writable, bool truncated)
{
	bool forget = false;

	fs_mutex_lock(&inode->lock);
	fs_track_opened(&inode->t, writable, truncated);
	if (truncated)
		act(m, inode, fs_track_written(&inode->t), &forget);
	fs_mutex_unlock(&inode->lock);
	if (forget)
		forget_refusal(m, inode);
}

void fs_tensor_written(struct fs_mount *m, struct fs_inode *inode)
{
	bool forget = false;

	fs_mutex_lock(&inode->lock);
	act(m, inode, fs_track_written(&inode->t), &forget);
	fs_mutex_unlock(&inode->lock);
	if (forget)
		forget_refusal(m, inode);
}

/* A changed file under min_size after its last writer left (no lock
 * held): a tensor file by its header is refused as too small, with the
 * same reason and mark a pack would record, without a job reading it. */
static void refuse_if_small_tensor(struct fs_mount *m, struct fs_inode *inode)
{
	struct lcp_pack_report rep = {.outcome = LCP_PACK_REFUSED};
	enum lcp_format f = header_format(m, inode, rep.reason, sizeof rep.reason);
	int err, fd;

	if (f == LCP_FORMAT_UNKNOWN || f == LCP_FORMAT_RAW)
		return;
	if (!rep.reason[0])
		snprintf(rep.reason, sizeof rep.reason, "smaller than min_size (%llu bytes)",
			 (unsigned long long)m->cfg.min_size);
	fd = fs_inode_open(m, inode, O_RDONLY | O_NONBLOCK, &err);
	fs_mutex_lock(&inode->lock);
	/* The mark goes on under the lock: a writer's first write, which
	 * forgets it, cannot come in between. */
	if (fs_track_too_small(&inode->t, rep.reason)) {
		inode->format = (int)f;
		if (fd >= 0)
			lcp_store_refusal_record(fd, &rep);
	}
	fs_mutex_unlock(&inode->lock);
	if (fd >= 0)
		close(fd);
}

void fs_tensor_released(struct fs_mount *m, struct fs_inode *inode, bool writable)
{
	struct stat st;
	bool unused = false, check_small = false;
	/* Files under min_size are never packed: no job, no worker time. A
	 * racing swap of the fd only makes this a conservative guess. */
	bool small = writable && fs_inode_stat(m, inode, &st) == 0 &&
		     (uint64_t)st.st_size < m->cfg.min_size;

	fs_mutex_lock(&inode->lock);
	if (inode->type == S_IFREG) {
		enum fs_action a = fs_track_released(&inode->t, writable, small);
		check_small = a == FS_DO_CHECK_SMALL && !m->readonly;
		act(m, inode, a, &unused);
		close_sf_if_idle(inode);
	}
	fs_mutex_unlock(&inode->lock);
	if (check_small)
		refuse_if_small_tensor(m, inode);
}

void fs_tensor_name_gone(struct fs_inode *inode)
{
	fs_mutex_lock(&inode->lock);
	fs_track_name_changed(&inode->t);
	fs_mutex_unlock(&inode->lock);
}

void fs_tensor_link_dropped(struct fs_mount *m, struct fs_inode *inode)
{
	struct lcp_probe pr;

	assert(fs_rwlock_held_write(&m->ns));
	fs_mutex_lock(&inode->lock);
	if (inode->type == S_IFREG && !m->readonly && inode->t.known &&
	    inode->t.state == FS_REFUSED && strcmp(inode->t.reason, LCP_STORE_REFUSED_LINKS) == 0 &&
	    probe_inode(m, inode, &pr, NULL) == LCP_OK && links_gone(&pr)) {
		adopt(inode, &pr);
		/* After the first backoff, not at once: `rm a b` of two links
		 * would otherwise pack b (a whole encode) just before it goes;
		 * a job whose name went meanwhile never starts. */
		if (fs_track_recheck(&inode->t) == FS_DO_QUEUE)
			queue_job(m, inode, 1);
	}
	fs_mutex_unlock(&inode->lock);
}

static enum fs_job_end end_of(const struct lcp_pack_report *rep)
{
	switch (rep->outcome) {
	case LCP_PACK_COMMITTED:
		return FS_JOB_COMMITTED;
	case LCP_PACK_NOT_TENSOR:
		return FS_JOB_NOT_TENSOR;
	case LCP_PACK_REFUSED:
		return FS_JOB_REFUSED;
	case LCP_PACK_DEFERRED:
		return FS_JOB_DEFERRED;
	case LCP_PACK_RETRY:
		break;
	}
	return FS_JOB_OVERTAKEN;
}

/* The commit under the gate (ns held for writing, inode lock held). When
 * handles are open the inode is retired (fs_inode_retire): *gone_parent
 * and *gone_name are then the name the kernel must forget (the caller's
 * reference and string), else they stay NULL. */
static enum fs_job_end commit(struct fs_mount *m, struct fs_inode *inode, struct fs_job *j,
			      struct lcp_pack_job *pj, int dfd, const char *name,
			      struct lcp_pack_report *rep, lcp_err *err,
			      struct fs_inode **gone_parent, char **gone_name)
{
	uint64_t dev, ino;
	struct lcp_probe pr;
	struct fs_sfile *sf;

	lcp_store_pack_source(pj, &dev, &ino);
	/* Unmounted: the writer lock may be gone and a new mount may have the
	 * raw file open (fs_tensor_stop marked it for a retry). */
	if (atomic_load(&m->stopping))
		return FS_JOB_OVERTAKEN;
	if (!fs_track_gate(&inode->t, j->wgen) || (uint64_t)inode->dev != dev ||
	    (uint64_t)inode->ino != ino)
		return FS_JOB_OVERTAKEN;
	crash_point(m, "gate");
	if ((*err = lcp_store_pack_commit(pj, rep)) != LCP_OK)
		return FS_JOB_FAILED;
	if (!rep->committed)
		return end_of(rep);
	crash_point(m, "committed");
	if (inode->t.nopen > 0) {
		/* Handles opened before the commit (readers: no writer is open)
		 * read the raw file through their fds, and the kernel's page
		 * cache of this inode holds raw pages they keep filling. As
		 * after a rename over an open file, they keep that version
		 * (mmaps too) until they close; the committed file becomes a
		 * new inode, with a page cache of its own, at its next lookup.
		 * One name suffices: a file with several links is never
		 * compressed. */
		*gone_parent = fs_inode_retire(m, inode, gone_name);
		fs_track_superseded(&inode->t);
		return FS_JOB_COMMITTED;
	}
	/* The payload is in place: before anyone may look, the inode points
	 * at it and knows it is compressed (or knows it must ask again). No
	 * handle is open, so no raw page can be fetched from now on: the
	 * invalidation after the commit drops those cached before, and the
	 * first open after it keeps no cache (seen_size below). */
	struct stat st;
	int fd = openat(dfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd >= 0 && fstatat(fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) == 0) {
		fs_inode_rekey(m, inode, fd, &st);
	} else {
		if (fd >= 0)
			close(fd);
		log_inode(m, inode, LCP_LOG_ERROR, "committed but cannot reopen: %s", strerror(errno));
	}
	fs_track_job_done(&inode->t, FS_JOB_COMMITTED, "", true);
	inode->seen_size = -1;
	if (probe_inode(m, inode, &pr, &sf) == LCP_OK && pr.repr == LCP_REPR_COMPRESSED && sf) {
		set_sf(inode, sf);
		note_sizes(inode, &pr);
		inode->nlink = pr.nlink;
		inode->announcing = true;
	} else {
		sfile_put(sf);
		set_sf(inode, NULL);
		fs_track_unknown(&inode->t);
	}
	return FS_JOB_COMMITTED;
}

static void run_job(struct fs_mount *m, struct fs_job *j)
{
	struct fs_inode *inode = j->inode;
	struct lcp_pack_report rep;
	struct lcp_pack_job *pj = NULL;
	enum fs_job_end end = FS_JOB_OVERTAKEN;
	char name[NAME_MAX + 1];
	lcp_err err = LCP_OK;
	bool go, forget = false;
	int e, dfd = -1;
	struct fs_inode *gone_parent = NULL; /* a retired inode's last name */
	char *gone_name = NULL;

	memset(&rep, 0, sizeof rep);
	fs_mutex_lock(&inode->lock);
	go = fs_track_job_may_start(&inode->t, j->wgen) && !atomic_load(&m->stopping);
	fs_mutex_unlock(&inode->lock);
	dfd = fs_inode_dirfd_name(m, inode, name, sizeof name, &e);
	if (dfd >= 0 && go) {
		crash_point(m, "pack-start");
		hold_point(m, "start");
		struct lcp_pack_opts opts = {.cfg = &m->cfg, .pool = m->pool};
		err = lcp_store_pack_prepare_opts(dfd, name, -1, &opts, &rep, &pj);
		hold_point(m, "prepared");
		end = err ? FS_JOB_FAILED : end_of(&rep);
	}
	if (pj) {
		fs_rwlock_wrlock(&m->ns);
		fs_mutex_lock(&inode->lock);
		end = commit(m, inode, j, pj, dfd, name, &rep, &err, &gone_parent, &gone_name);
		if (end == FS_JOB_COMMITTED)
			inode->format = (int)rep.format;
		fs_mutex_unlock(&inode->lock);
		fs_rwlock_unlock(&m->ns);
		lcp_store_pack_free(pj);
	}
	fs_mutex_lock(&inode->lock);
	bool deferred = false;
	if (end != FS_JOB_COMMITTED) {
		if (dfd >= 0 && go)
			inode->format = (int)rep.format;
		enum fs_action a = fs_track_job_done(&inode->t, end, err ? lcp_strerror(err) : rep.reason,
						     dfd >= 0);
		deferred = a == FS_DO_QUEUE_LATER;
		if (deferred)
			queue_job(m, inode, j->attempt + 1);
		else
			act(m, inode, a, &forget);
	}
	fs_mutex_unlock(&inode->lock);
	if (dfd >= 0)
		close(dfd);
	if (end == FS_JOB_COMMITTED)
		hold_point(m, "announce");
	if (end == FS_JOB_COMMITTED && gone_parent) {
		log_entry(m, gone_parent, gone_name, LCP_LOG_INFO,
			  "compressed %llu -> %llu bytes (descriptors open before read the raw "
			  "bytes until they close)",
			  (unsigned long long)rep.logical_size, (unsigned long long)rep.stored_size);
		/* The kernel forgets the name's dentry, so that its next lookup
		 * finds the committed file as a new inode. Outside every lock,
		 * from a worker (not a request of this file): the kernel may
		 * need requests of ours answered to finish it. */
		if (!atomic_load(&m->stopping))
			fuse_lowlevel_notify_inval_entry(m->se, fs_ino_of(m, gone_parent), gone_name,
							 strlen(gone_name));
		fs_inode_unref(m, gone_parent);
		lcp_free(gone_name);
	} else if (end == FS_JOB_COMMITTED && !inode->retired) {
		log_inode(m, inode, LCP_LOG_INFO, "compressed %llu -> %llu bytes",
			  (unsigned long long)rep.logical_size, (unsigned long long)rep.stored_size);
		/* The bytes changed (lossy reconstruction): drop cached pages and
		 * attributes. Outside every lock: the kernel may need a request
		 * of ours answered to finish the invalidation. */
		if (!atomic_load(&m->stopping))
			fuse_lowlevel_notify_inval_inode(m->se, fs_ino_of(m, inode), 0, 0);
		fs_mutex_lock(&inode->lock);
		inode->announcing = false;
		close_sf_if_idle(inode);
		fs_mutex_unlock(&inode->lock);
	} else if (deferred) {
		log_inode(m, inode, LCP_LOG_WARN, "left raw for now: %s; trying again in %u s",
			  rep.reason, retry_delay_ms(j->attempt + 1) / 1000u);
	} else if (end != FS_JOB_OVERTAKEN) {
		log_inode(m, inode, LCP_LOG_INFO, "left raw: %s",
			  err ? lcp_strerror(err) : rep.reason);
	}
}

static bool due(const struct timespec *t, const struct timespec *now)
{
	return t->tv_sec < now->tv_sec || (t->tv_sec == now->tv_sec && t->tv_nsec <= now->tv_nsec);
}

/* Takes the first job that is due (queue lock held) onto the running
 * list; NULL when none is. */
static struct fs_job *take_due(struct fs_mount *m, struct timespec *next)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	next->tv_sec = 0;
	for (struct fs_job **pp = &m->queue_head, *prev = NULL; *pp; prev = *pp, pp = &(*pp)->next) {
		struct fs_job *j = *pp;
		if (!due(&j->due, &now)) {
			if (!next->tv_sec || !due(next, &j->due))
				*next = j->due;
			continue;
		}
		*pp = j->next;
		if (m->queue_tail == j)
			m->queue_tail = prev;
		j->next = m->running;
		m->running = j;
		return j;
	}
	return NULL;
}

static void job_free(struct fs_mount *m, struct fs_job *j)
{
	fs_inode_unref(m, j->inode);
	lcp_free(j);
}

/* A job ran: off the running list, and freed; once the unmount began, kept
 * on m->finished instead, so that cancel_jobs may still use its inode. */
static void job_ran(struct fs_mount *m, struct fs_job *j)
{
	fs_mutex_lock(&m->queue_lock);
	for (struct fs_job **pp = &m->running; *pp; pp = &(*pp)->next) {
		if (*pp == j) {
			*pp = j->next;
			break;
		}
	}
	bool keep = atomic_load(&m->stopping);
	if (keep) {
		j->next = m->finished;
		m->finished = j;
	}
	fs_mutex_unlock(&m->queue_lock);
	if (!keep)
		job_free(m, j);
}

static void *worker_main(void *arg)
{
	struct fs_mount *m = arg;
	for (;;) {
		struct fs_job *j;
		struct timespec next;
		fs_mutex_lock(&m->queue_lock);
		while (!(j = take_due(m, &next)) && !atomic_load(&m->stopping)) {
			if (next.tv_sec) {
				fs_cond_timedwait(&m->queue_cond, &m->queue_lock, &next);
			} else {
				fs_cond_wait(&m->queue_cond, &m->queue_lock);
			}
		}
		fs_mutex_unlock(&m->queue_lock);
		if (!j)
			return NULL;
		run_job(m, j);
		job_ran(m, j);
	}
}

lcp_err fs_tensor_recover(struct fs_mount *m, int root_fd)
{
	int dfd = openat(root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	lcp_err err;

	/* A read-only mount changes nothing on the backing. */
	if (m->readonly)
		err = LCP_OK;
	else if (dfd < 0)
		err = lcp_err_from_errno(errno);
	else
		err = lcp_store_recover_dir(dfd);
	if (err == LCP_ERR_BUSY) {
		/* This mount holds the writer lock of its own directory and
		 * none above it has one (lcp_store_lock_writer), so the user
		 * is a read-write mount of a directory below, or a recovery:
		 * two writers of one tree. The store's warning named it. */
		if (dfd >= 0)
			close(dfd);
		return err;
	}
	if (err != LCP_OK)
		lcp_log(LCP_LOG_WARN, "%s: recovery incomplete: %s", m->backing, lcp_strerror(err));
	/* From now on a recovery elsewhere waits for this mount to end. */
	m->backing_lock = -1;
	if (!m->readonly && dfd >= 0 && lcp_store_hold_backing(dfd, &m->backing_lock) != LCP_OK)
		lcp_log(LCP_LOG_WARN, "%s: cannot take the backing's use lock", m->backing);
	if (dfd >= 0)
		close(dfd);
	return LCP_OK;
}

lcp_err fs_tensor_start(struct fs_mount *m)
{
	lcp_err err;

	m->crash_at = getenv("LCPFS_CRASH_AT");
	m->hold_at = getenv("LCPFS_TEST_HOLD");
	m->hold_dir = getenv("LCPFS_TEST_HOLD_DIR");
	fs_mutex_init(&m->queue_lock);
	/* Deferred jobs wait for a monotonic deadline. */
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&m->queue_cond, &ca);
	pthread_condattr_destroy(&ca);
	err = lcp_chunk_cache_create((size_t)m->cache_bytes, &m->cache);
	if (err != LCP_OK)
		return err;
	if ((err = lcp_encode_pool_create(m->threads, true, &m->pool)) != LCP_OK)
		return err;
	/* One more file in flight than encoder threads: a file that keeps its
	 * thread busy for long never holds back the next one, which gets its
	 * turn in the pool at once (the pool, not the jobs, bounds the work). */
	unsigned drivers = m->threads + 1;
	m->workers = lcp_calloc(drivers, sizeof *m->workers);
	if (!m->workers)
		return LCP_ERR_NOMEM;
	for (m->nworkers = 0; m->nworkers < drivers; m->nworkers++)
		if (pthread_create(&m->workers[m->nworkers], NULL, worker_main, m) != 0)
			return m->nworkers ? LCP_OK : LCP_ERR_NOMEM;
	return LCP_OK;
}

/* Marks a file whose job the unmount cancels for a retry by the next mount
 * (ns held for writing, so no commit is under way). Only a tensor file
 * (by its header): a retry marker on another file would be kept forever,
 * as a pack that finds no tensor file records nothing. */
static void mark_for_retry(struct fs_mount *m, struct fs_inode *inode)
{
	struct lcp_pack_report rep = {.outcome = LCP_PACK_DEFERRED};
	int err, fd;

	fs_mutex_lock(&inode->lock);
	/* Pending, or a job that saw the unmount and could not queue again. */
	bool pending = inode->t.state == FS_PENDING ||
		       (inode->t.state == FS_REFUSED && strcmp(inode->t.reason, UNMOUNTED_REASON) == 0);
	fs_mutex_unlock(&inode->lock);
	enum lcp_format f = pending ? header_format(m, inode, NULL, 0) : LCP_FORMAT_UNKNOWN;
	if (f == LCP_FORMAT_UNKNOWN || f == LCP_FORMAT_RAW)
		return;
	fd = fs_inode_open(m, inode, O_RDONLY | O_NONBLOCK, &err);
	if (fd < 0)
		return;
	snprintf(rep.reason, sizeof rep.reason, "%s", UNMOUNTED_REASON);
	lcp_store_refusal_record(fd, &rep);
	close(fd);
	log_inode(m, inode, LCP_LOG_INFO, "left raw: unmounted before compression (the next "
		  "mount compresses it)");
}

/* The unmount cancels every job: queued ones are dropped, running ones
 * cannot commit any more (commit() checks m->stopping under ns); each
 * one's file is marked for a retry. Draining the queue instead would let
 * this daemon rename a payload over a raw file that a new mount of the
 * backing has open for writing: its writes would land in an unlinked file
 * and be lost. */
static void cancel_jobs(struct fs_mount *m)
{
	struct fs_job *queued;
	struct fs_inode **running = NULL;
	size_t nrunning = 0;

	fs_rwlock_wrlock(&m->ns); /* a commit under way ends first */
	fs_mutex_lock(&m->queue_lock);
	queued = m->queue_head;
	m->queue_head = m->queue_tail = NULL;
	/* The inodes of jobs running, or ended since m->stopping was set,
	 * stay referenced until the workers are gone (job_ran keeps what
	 * ends). Without memory for the list they stay raw, unmarked. */
	size_t n = 0;
	for (int pass = 0; pass < 2; pass++)
		for (struct fs_job *j = pass ? m->finished : m->running; j; j = j->next)
			n++;
	running = n ? lcp_calloc(n, sizeof *running) : NULL;
	for (int pass = 0; pass < 2 && running; pass++)
		for (struct fs_job *j = pass ? m->finished : m->running; j; j = j->next)
			running[nrunning++] = j->inode;
	pthread_cond_broadcast(&m->queue_cond);
	fs_mutex_unlock(&m->queue_lock);
	for (size_t i = 0; i < nrunning; i++)
		mark_for_retry(m, running[i]);
	lcp_free(running);
	while (queued) {
		struct fs_job *j = queued;
		queued = j->next;
		mark_for_retry(m, j->inode);
		fs_mutex_lock(&j->inode->lock);
		fs_track_job_done(&j->inode->t, FS_JOB_FAILED, UNMOUNTED_REASON, true);
		fs_mutex_unlock(&j->inode->lock);
		job_free(m, j);
	}
	fs_rwlock_unlock(&m->ns);
}

void fs_tensor_stop(struct fs_mount *m)
{
	atomic_store(&m->stopping, true);
	if (m->workers)
		cancel_jobs(m);
	/* Nothing of ours renames anything on the backing any more: a new
	 * mount may start (and recover) while running jobs wind down; their
	 * temporaries stay locked until they remove them. */
	close_fd(&m->backing_lock); /* first: a new mount's recovery runs */
	close_fd(&m->writer_lock);
	for (unsigned i = 0; i < m->nworkers; i++)
		pthread_join(m->workers[i], NULL);
	m->nworkers = 0;
	while (m->finished) {
		struct fs_job *j = m->finished;
		m->finished = j->next;
		job_free(m, j);
	}
	lcp_free(m->workers);
	m->workers = NULL;
	lcp_encode_pool_free(m->pool);
	m->pool = NULL;
}

bool fs_name_hidden(const char *name)
{
	return lcp_store_is_internal_name(name);
}

/* The store's namespace calls want real directory fds (they fsync them). */
static int open_dir(int pathfd, int *fd)
{
	*fd = openat(pathfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return *fd < 0 ? errno : 0;
}

int fs_tensor_unlink(struct fs_mount *m, int dirfd, const char *name)
{
	int d, err = open_dir(dirfd, &d);

	assert(fs_rwlock_held_write(&m->ns));
	if (err)
		return err;
	err = lcp_err_to_errno(lcp_store_unlink_at(d, name));
	close(d);
	return err;
}

int fs_tensor_rmdir(struct fs_mount *m, int dirfd, const char *name)
{
	int d, err = open_dir(dirfd, &d);

	(void)m;
	if (err)
		return err;
	err = lcp_err_to_errno(lcp_store_rmdir_at(d, name));
	close(d);
	return err;
}

int fs_tensor_rename(struct fs_mount *m, int olddirfd, const char *oldname, int newdirfd,
		     const char *newname, unsigned int flags)
{
	int a, b, err;

	assert(fs_rwlock_held_write(&m->ns));
	if ((err = open_dir(olddirfd, &a)) != 0)
		return err;
	if ((err = open_dir(newdirfd, &b)) == 0) {
		err = lcp_err_to_errno(lcp_store_rename_at(a, oldname, b, newname, flags));
		close(b);
	}
	close(a);
	return err;
}

int fs_tensor_link(struct fs_mount *m, struct fs_inode *inode, struct fs_inode *newparent,
		   const char *newname)
{
	char name[NAME_MAX + 1];
	int e, err, d, nd;

	/* A compressed file becomes raw first: a rename of its payload could
	 * never keep two links together, so as one of several names it stays
	 * raw (and writable), refused compression with its reason. */
	if (inode->type == S_IFREG) {
		fs_rwlock_rdlock(&m->ns);
		err = fs_tensor_known(m, inode);
		fs_rwlock_unlock(&m->ns);
		if (err || (err = materialize(m, inode)) != 0)
			return err;
	}
	fs_rwlock_wrlock(&m->ns);
	d = fs_inode_dirfd_name(m, inode, name, sizeof name, &e);
	if (d < 0) {
		/* An unlinked-but-open object has no name to link from. */
		int pfd = fs_inode_path_fd(m, inode, &err);
		if (pfd >= 0) {
			err = linkat(pfd, "", newparent->fd, newname, AT_EMPTY_PATH) != 0 ? errno : 0;
			close(pfd);
		}
	} else {
		err = open_dir(newparent->fd, &nd);
		if (!err) {
			err = lcp_err_to_errno(lcp_store_link_at(d, name, nd, newname));
			close(nd);
		}
		close(d);
	}
	fs_rwlock_unlock(&m->ns);
	if (!err && inode->type == S_IFREG) {
		/* As one of several names it is refused compression: a job
		 * records why (unless it is no tensor file, or too small). */
		struct stat st;
		bool forget = false;
		if (fs_inode_stat(m, inode, &st) == 0 && (uint64_t)st.st_size >= m->cfg.min_size) {
			fs_mutex_lock(&inode->lock);
			act(m, inode, fs_track_want_job(&inode->t), &forget);
			fs_mutex_unlock(&inode->lock);
		}
	}
	return err;
}

bool fs_tensor_has_sidecar(struct fs_inode *inode)
{
	if (inode->type != S_IFREG)
		return false;
	fs_mutex_lock(&inode->lock);
	bool has = inode->t.known && inode->t.state == FS_COMPRESSED;
	fs_mutex_unlock(&inode->lock);
	return has;
}

int fs_tensor_sidecar_attrs(struct fs_mount *m, struct fs_inode *inode, mode_t mode, uid_t uid,
			    gid_t gid, int *sync_fd)
{
	char name[NAME_MAX + 1];
	int e, dfd = fs_inode_dirfd_name(m, inode, name, sizeof name, &e);
	lcp_err err;

	assert(fs_rwlock_held(&m->ns));
	if (sync_fd)
		*sync_fd = -1;
	if (dfd < 0)
		return e == ENOENT ? 0 : e; /* unlinked: its sidecar went with its name */
	err = lcp_store_sidecar_attrs_at(dfd, name, (unsigned)mode, uid, gid, sync_fd);
	close(dfd);
	if (err)
		log_inode(m, inode, LCP_LOG_ERROR, "cannot give the sidecar the file's owner and "
			  "mode: %s", lcp_strerror(err));
	return lcp_err_to_errno(err);
}

/* Copies n bytes into buf (size 0: length only); returns n or -ERANGE. */
static ssize_t put_bytes(const char *bytes, size_t n, char *buf, size_t size)
{
	if (size == 0)
		return (ssize_t)n;
	if (n > size)
		return -ERANGE;
	memcpy(buf, bytes, n);
	return (ssize_t)n;
}

static ssize_t put_text(const char *text, char *buf, size_t size)
{
	return put_bytes(text, strlen(text), buf, size);
}

/* The inspect report as xattrs (key "inspect" plus suffix): "" the whole
 * JSON, when it fits in one xattr value (else E2BIG, as the kernel would
 * say); ".parts" "COUNT LENGTH XXH3" (decimal, decimal, 16 hex digits: the
 * xxh3-64 of the whole JSON); ".K" (K decimal, no leading zeros) its K-th
 * piece of FS_INSPECT_PART_BYTES. A reader checks the pieces it joined
 * against LENGTH and XXH3: the report may change between its reads. */
static ssize_t inspect_xattr(const struct lcp_file_report *rep, const char *suffix, char *buf,
			     size_t size)
{
	char *json = NULL, text[64], *end;
	lcp_err e = lcp_store_report_json(rep, &json);
	ssize_t r = -ENODATA;

	if (e)
		return -lcp_err_to_errno(e);
	size_t len = strlen(json);
	size_t parts = len ? (len + FS_INSPECT_PART_BYTES - 1) / FS_INSPECT_PART_BYTES : 1;
	if (suffix[0] == '\0') {
		r = len > FS_XATTR_VALUE_MAX ? -E2BIG : put_bytes(json, len, buf, size);
	} else if (strcmp(suffix, ".parts") == 0) {
		snprintf(text, sizeof text, "%zu %zu %016llx", parts, len,
			 (unsigned long long)lcp_xxh3(json, len));
		r = put_text(text, buf, size);
	} else if (suffix[0] == '.' && suffix[1] >= '0' && suffix[1] <= '9' &&
		   (suffix[1] != '0' || suffix[2] == '\0')) {
		errno = 0;
		unsigned long long k = strtoull(suffix + 1, &end, 10);
		if (*end == '\0' && errno == 0 && k < parts) {
			size_t off = (size_t)k * FS_INSPECT_PART_BYTES;
			size_t n = len - off < FS_INSPECT_PART_BYTES ? len - off : FS_INSPECT_PART_BYTES;
			r = put_bytes(json + off, n, buf, size);
		}
	}
	lcp_free(json);
	return r;
}

/* The format of a file by its header (a refused file whose refusal came
 * back from its mark, after a remount or once the kernel forgot the inode,
 * when no pack of this daemon recorded it; a small file; a file whose job
 * the unmount cancels). LCP_FORMAT_UNKNOWN when the file cannot be read
 * now. why (may be NULL) receives the format's reason when the file is not
 * a valid one, else "". No lock held: a header parse reads the file. */
static enum lcp_format header_format(struct fs_mount *m, struct fs_inode *inode, char *why,
				     size_t why_len)
{
	enum lcp_format f = LCP_FORMAT_UNKNOWN;
	struct lcp_region_map map;
	struct lcp_reader rd;
	int err, fd = fs_inode_open(m, inode, O_RDONLY | O_NONBLOCK, &err);

	if (why)
		why[0] = '\0';
	if (fd < 0)
		return f;
	if (lcp_reader_from_fd(&rd, &fd) == LCP_OK && lcp_format_parse(&rd, 0, &map) == LCP_OK) {
		f = map.format;
		if (why && !map.ok)
			snprintf(why, why_len, "%s", map.reason[0] ? map.reason : "not a tensor file");
		lcp_region_map_free(&map);
	}
	close(fd);
	return f;
}

ssize_t fs_tensor_xattr(struct fs_mount *m, struct fs_inode *inode, const char *key, char *buf,
			size_t size)
{
	char text[256];
	ssize_t r = -ENODATA;
	struct fs_sfile *sf = NULL;
	enum fs_state state;

	if (inode->type != S_IFREG)
		return -ENODATA;
	/* Replaced by a commit: a getxattr by path through the name the kernel
	 * still had looks it up again (retried on ESTALE) and asks the file
	 * that has the name now. */
	if (inode->retired)
		return -ESTALE;
	if (fs_tensor_known(m, inode) != 0)
		return -EIO;
	fs_mutex_lock(&inode->lock);
	bool format_unknown = inode->t.state == FS_REFUSED && inode->format < 0;
	fs_mutex_unlock(&inode->lock);
	if (strcmp(key, "format") == 0 && format_unknown) {
		enum lcp_format f = header_format(m, inode, NULL, 0);
		fs_mutex_lock(&inode->lock);
		if (inode->format < 0)
			inode->format = (int)f;
		fs_mutex_unlock(&inode->lock);
	}
	fs_mutex_lock(&inode->lock);
	state = inode->announcing ? FS_PENDING : inode->t.state;
	if (strcmp(key, "state") == 0) {
		r = put_text(fs_state_name(state), buf, size);
	} else if (strcmp(key, "reason") == 0 && state != FS_COMPRESSED && inode->t.reason[0]) {
		r = put_text(inode->t.reason, buf, size);
	} else if (strcmp(key, "format") == 0 && state == FS_REFUSED && inode->format >= 0 &&
		   inode->format != LCP_FORMAT_UNKNOWN) {
		r = put_text(lcp_format_name((enum lcp_format)inode->format), buf, size);
	} else if (strcmp(key, "stored_size") == 0 && state == FS_COMPRESSED && !inode->t.damaged) {
		/* Known without opening the file: what stats asks of each file. */
		snprintf(text, sizeof text, "%llu", (unsigned long long)inode->stored_size);
		r = put_text(text, buf, size);
	} else if (state == FS_COMPRESSED) {
		int e = reopen_sf(m, inode);
		sf = sfile_get(inode->sf);
		close_sf_if_idle(inode);
		if (e) {
			fs_mutex_unlock(&inode->lock);
			return -e;
		}
	}
	fs_mutex_unlock(&inode->lock);
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
	else if (strcmp(key, "preset") == 0)
		lcp_config_describe(&rep.config, text, sizeof text);
	if (text[0])
		r = put_text(text, buf, size);
	else if (strncmp(key, "inspect", strlen("inspect")) == 0)
		/* The same JSON `lcpfs inspect --json` prints for a backing file. */
		r = inspect_xattr(&rep, key + strlen("inspect"), buf, size);
	lcp_file_report_free(&rep);
	sfile_put(sf);
	return r;
}
