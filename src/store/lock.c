/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Locks shared by every process using a backing tree, on this machine and,
 * where the backing shares locks between its clients (GlusterFS, NFSv4),
 * on every machine:
 *   - the use lock: a flock(2) of the tree's top directory, shared by each
 *     read-write mount, exclusive for recovery (which must never take a
 *     live process's renames in flight for a crash's leftovers); recovery
 *     also needs the use locks of every directory above its tree and of
 *     every directory it walks to be free (a mount of /a covers /a/b);
 *   - the writer lock: an OFD write lock on byte 0 of the top directory's
 *     lock file ".lcpfs-lock", held by the one read-write mount (which also
 *     needs no directory above to hold one: that mount covers this tree);
 *   - name locks: an OFD write lock on one byte of a directory's lock file,
 *     chosen by a hash of the name, held by every step sequence that moves
 *     a name's payload or sidecar (commit, materialize, discard, unlink,
 *     rename, link), so that two such sequences on one name never
 *     interleave (two `lcpfs pack` of one destination on two machines).
 * Lock files are created on first use, with the directory's owner and its
 * write permissions, and never removed except by lcp_store_rmdir_at. A
 * holder checks, once its lock is granted, that the name still holds the
 * file it locked (else someone removed it meanwhile: it starts over).
 */
#include "lcpfs/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/checksum.h"
#include "common/err_errno.h"
#include "common/log.h"
#include "store/store_priv.h"

/* How long a name lock is waited for before the operation gives up with
 * LCP_ERR_BUSY: a commit's renames take milliseconds, a stuck holder must
 * not freeze a mount for good. */
#define LOCK_WAIT_SEC 60
#define LOCK_POLL_MIN_NS 1000000L  /* first retry after 1 ms, */
#define LOCK_POLL_MAX_NS 50000000L /* then doubling up to 50 ms */
/* Starts over when the lock file was replaced under us; more than this in a
 * row is someone fighting us. */
#define LOCK_REOPEN_TRIES 100
/* Name locks take one byte in [1, 1 + 2^40): byte 0 is the writer lock. */
#define NAME_LOCK_SPAN (1ull << 40)

/* Opens (creating) the lock file of directory dirfd for writing. */
static lcp_err open_lock_file(int dirfd, int *fd)
{
	struct stat dst, st;

	for (int tries = 0; tries < LOCK_REOPEN_TRIES; tries++) {
		*fd = openat(dirfd, LCP_LOCK_NAME,
			     O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600);
		if (*fd >= 0) {
			/* Whoever may change the directory may lock it. */
			if (fstat(dirfd, &dst) == 0) {
				if (fchown(*fd, dst.st_uid, dst.st_gid) != 0 && errno != EPERM)
					lcp_log(LCP_LOG_INFO, "cannot give %s its directory's owner: %s",
						LCP_LOCK_NAME, strerror(errno));
				(void)fchmod(*fd, dst.st_mode & 0666);
			}
		} else if (errno == EEXIST) {
			*fd = openat(dirfd, LCP_LOCK_NAME, O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
			if (*fd < 0 && errno == ENOENT)
				continue; /* removed in between: create it */
		}
		if (*fd < 0)
			return lcp_err_from_errno(errno);
		if (fstat(*fd, &st) != 0 || !S_ISREG(st.st_mode)) {
			close(*fd);
			*fd = -1;
			return LCP_ERR_AGAIN; /* something not ours holds the name */
		}
		return LCP_OK;
	}
	return LCP_ERR_AGAIN;
}

/* True when dirfd's lock file name still holds open file fd. */
static bool still_named(int dirfd, int fd)
{
	struct stat a, b;
	return fstat(fd, &a) == 0 && fstatat(dirfd, LCP_LOCK_NAME, &b, AT_SYMLINK_NOFOLLOW) == 0 &&
	       a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

/* One attempt at an OFD write lock of [off, off + len) (len 0: to the end).
 * LCP_OK when granted or when the backing has no locks, LCP_ERR_BUSY when
 * someone else holds it. */
static lcp_err try_lock(int fd, off_t off, off_t len, bool *locked)
{
	struct flock fl;

	memset(&fl, 0, sizeof fl);
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	fl.l_start = off;
	fl.l_len = len;
	*locked = false;
	if (fcntl(fd, F_OFD_SETLK, &fl) == 0) {
		*locked = true;
		return LCP_OK;
	}
	if (errno == EAGAIN || errno == EACCES)
		return LCP_ERR_BUSY;
	if (errno == ENOLCK || errno == EOPNOTSUPP || errno == EINVAL || errno == ENOSYS)
		return LCP_OK; /* no locks on this backing: the documented limit */
	return lcp_err_from_errno(errno);
}

/* Test hook: with LCPFS_TEST_LOCK_WAIT=<path>, the first time a name lock
 * is found busy the process creates <path> and then waits as usual, so a
 * test knows a second process really waits for the first. */
static void note_waiting(void)
{
	const char *path = getenv("LCPFS_TEST_LOCK_WAIT");
	if (path) {
		int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0644);
		if (fd >= 0)
			close(fd);
	}
}

/* Locks [off, off + len) of the lock file already open as fd in dirfd,
 * waiting (wait) up to LOCK_WAIT_SEC or not at all. */
static lcp_err lock_range(int fd, off_t off, off_t len, bool wait)
{
	struct timespec step = {0, LOCK_POLL_MIN_NS};
	time_t deadline = time(NULL) + LOCK_WAIT_SEC;
	bool locked, noted = false;

	for (;;) {
		lcp_err err = try_lock(fd, off, len, &locked);
		if (err != LCP_ERR_BUSY || !wait)
			return err;
		if (time(NULL) > deadline)
			return LCP_ERR_BUSY;
		if (!noted) {
			note_waiting();
			noted = true;
		}
		nanosleep(&step, NULL);
		if (step.tv_nsec < LOCK_POLL_MAX_NS)
			step.tv_nsec *= 2;
	}
}

/* Opens dirfd's lock file and locks [off, off + len) in it, making sure the
 * lock is on the file the name holds. Unless must, a directory where no
 * lock file can be made (a full disk, a read-only filesystem, no
 * permission) is used unlocked (*fd -1): the operation's own system calls
 * decide there, and an unlink must still work on a full disk. */
static lcp_err lock_in_dir(int dirfd, off_t off, off_t len, bool wait, bool must, int *fd)
{
	for (int tries = 0; tries < LOCK_REOPEN_TRIES; tries++) {
		lcp_err err = open_lock_file(dirfd, fd);
		if (!must && (err == LCP_ERR_NOSPC || err == LCP_ERR_ROFS || err == LCP_ERR_ACCES ||
			      err == LCP_ERR_PERM)) {
			*fd = -1;
			return LCP_OK;
		}
		if (err)
			return err;
		err = lock_range(*fd, off, len, wait);
		if (err == LCP_OK && still_named(dirfd, *fd))
			return LCP_OK;
		close(*fd);
		*fd = -1;
		if (err)
			return err;
	}
	return LCP_ERR_AGAIN;
}

static void dir_name(int fd, char *buf, size_t len);
static lcp_err each_ancestor(int dirfd, bool (*visit)(int fd, void *arg), void *arg);

static off_t name_offset(const char *name)
{
	return (off_t)(1 + lcp_xxh3(name, strlen(name)) % NAME_LOCK_SPAN);
}

/* Whether a read-write mount of directory fd holds its writer lock (byte 0
 * of its lock file, which is never created here). */
static bool writer_lock_held(int fd, void *below)
{
	struct flock fl;
	struct stat st;
	bool held = false;
	int lf = openat(fd, LCP_LOCK_NAME, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);

	if (lf < 0)
		return false;
	memset(&fl, 0, sizeof fl);
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	fl.l_len = 1;
	if (fstat(lf, &st) == 0 && S_ISREG(st.st_mode) && fcntl(lf, F_OFD_GETLK, &fl) == 0)
		held = fl.l_type != F_UNLCK;
	close(lf);
	if (held) {
		char name[PATH_MAX];
		dir_name(fd, name, sizeof name);
		lcp_log(LCP_LOG_WARN, "%s: a read-write lcpfs mount of %s, which holds this "
			"directory, is running", (const char *)below, name);
	}
	return held;
}

lcp_err lcp_store_lock_writer(int dirfd, int *fd)
{
	char name[PATH_MAX];
	lcp_err err = lock_in_dir(dirfd, 0, 1, false, true, fd);

	/* A mount of a directory above writes in this tree too. */
	if (err == LCP_OK && *fd >= 0) {
		dir_name(dirfd, name, sizeof name);
		if ((err = each_ancestor(dirfd, writer_lock_held, name)) != LCP_OK)
			close(*fd);
	}
	if (err == LCP_ERR_BUSY)
		*fd = -1;
	return err;
}

/* Lock files are told apart by (inode, device) of the open file; across
 * machines the inode number is what orders them (a device number is local). */
static int cmp_lock(ino_t ia, off_t oa, ino_t ib, off_t ob)
{
	if (ia != ib)
		return ia < ib ? -1 : 1;
	return oa < ob ? -1 : oa > ob;
}

lcp_err lcp_store_lock_names(int dir1, const char *name1, int dir2, const char *name2,
			     struct lcp_name_lock *l)
{
	struct stat s1, s2;
	lcp_err err;

	l->fd[0] = l->fd[1] = -1;
	l->off[0] = name_offset(name1);
	if (!name2)
		return lock_in_dir(dir1, l->off[0], 1, true, false, &l->fd[0]);
	/* Two names: both lock files (or one, twice), always in the same order
	 * (inode, offset), so that two renames of the same pair in opposite
	 * directions cannot wait for each other. */
	l->off[1] = name_offset(name2);
	if (fstat(dir1, &s1) != 0 || fstat(dir2, &s2) != 0)
		return lcp_err_from_errno(errno);
	bool same_dir = s1.st_dev == s2.st_dev && s1.st_ino == s2.st_ino;
	if (same_dir) {
		/* One lock file, one open file: two bytes of it (OFD locks of one
		 * open file never conflict with each other). */
		if ((err = lock_in_dir(dir1, l->off[0], 1, true, false, &l->fd[0])) != LCP_OK)
			return err;
		if (l->fd[0] >= 0 && l->off[1] != l->off[0] &&
		    (err = lock_range(l->fd[0], l->off[1], 1, true)) != LCP_OK) {
			lcp_store_unlock_names(l);
			return err;
		}
		return LCP_OK;
	}
	int first = cmp_lock(s1.st_ino, l->off[0], s2.st_ino, l->off[1]) <= 0 ? 0 : 1;
	int dirs[2] = {dir1, dir2};
	if ((err = lock_in_dir(dirs[first], l->off[first], 1, true, false, &l->fd[first])) != LCP_OK)
		return err;
	if ((err = lock_in_dir(dirs[!first], l->off[!first], 1, true, false, &l->fd[!first])) !=
	    LCP_OK) {
		lcp_store_unlock_names(l);
		return err;
	}
	return LCP_OK;
}

void lcp_store_unlock_names(struct lcp_name_lock *l)
{
	/* Closing the open file releases its OFD locks. */
	for (int i = 0; i < 2; i++) {
		if (l->fd[i] >= 0)
			close(l->fd[i]);
		l->fd[i] = -1;
	}
}

/* True when directory fd holds nothing but the store's lock file. */
static bool only_lock_file(int dfd)
{
	int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *e;
	bool only = d != NULL;

	if (!d) {
		if (fd >= 0)
			close(fd);
		return false;
	}
	while (only && (e = readdir(d)) != NULL)
		only = !strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") ||
		       !strcmp(e->d_name, LCP_LOCK_NAME);
	closedir(d);
	return only;
}

/* Whether this process has an fd open on the object st describes. */
static bool held_by_us(const struct stat *st)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	struct stat fst;
	bool held = false;

	if (!d)
		return false;
	while (!held && (e = readdir(d)) != NULL) {
		char *end;
		long fd = strtol(e->d_name, &end, 10);
		held = *end == '\0' && end != e->d_name && fd != dirfd(d) &&
		       fstat((int)fd, &fst) == 0 && fst.st_dev == st->st_dev &&
		       fst.st_ino == st->st_ino;
	}
	closedir(d);
	return held;
}

/* When directory dfd holds nothing but the lock file and temporaries this
 * process has open (jobs of files whose names are gone: nothing they
 * write can be committed there), removes those temporaries and returns
 * true. Another process's temporary (its lock says nothing about who holds
 * it, so /proc/self/fd tells ours) or any other name: false, nothing
 * removed. */
static bool remove_own_temps(int dfd)
{
	int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *e;
	bool ours = d != NULL, any = false;

	if (!d) {
		if (fd >= 0)
			close(fd);
		return false;
	}
	/* Two passes: judge every name first, remove only if all are ours. */
	for (int pass = 0; pass < 2 && ours; pass++) {
		rewinddir(d);
		while (ours && (e = readdir(d)) != NULL) {
			struct stat st;
			if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") ||
			    !strcmp(e->d_name, LCP_LOCK_NAME))
				continue;
			ours = lcp_store_name_kind(e->d_name) == LCP_NAME_TEMP &&
			       fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
			       S_ISREG(st.st_mode) && held_by_us(&st);
			if (ours && pass == 1)
				any |= unlinkat(dfd, e->d_name, 0) == 0;
		}
	}
	closedir(d);
	return ours && any;
}

lcp_err lcp_store_rmdir_at(int dirfd, const char *name)
{
	int sub, lockfd;
	lcp_err err;

	if (unlinkat(dirfd, name, AT_REMOVEDIR) == 0)
		return LCP_OK;
	if (errno != ENOTEMPTY && errno != EEXIST)
		return lcp_err_from_errno(errno);
	sub = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (sub < 0)
		return lcp_err_from_errno(errno);
	/* Temporaries of our own jobs for files that were removed meanwhile
	 * must not keep a directory that lists as empty. */
	if (remove_own_temps(sub) && unlinkat(dirfd, name, AT_REMOVEDIR) == 0) {
		close(sub);
		return LCP_OK;
	}
	/* Not empty: maybe only our lock file is left. It goes while the whole
	 * of it is locked; anyone who opened it meanwhile finds, once granted,
	 * that the name no longer holds it, and starts over (in a directory
	 * that is then gone, or not empty after all). */
	err = LCP_ERR_NOTEMPTY;
	if (only_lock_file(sub) && lock_in_dir(sub, 0, 0, true, true, &lockfd) == LCP_OK) {
		if (only_lock_file(sub) && unlinkat(sub, LCP_LOCK_NAME, 0) == 0)
			err = unlinkat(dirfd, name, AT_REMOVEDIR) == 0 ? LCP_OK
								       : lcp_err_from_errno(errno);
		close(lockfd);
	}
	close(sub);
	return err;
}

/* A use lock is held for a mount's lifetime or a recovery's run; a probe of
 * another process (below) holds one for microseconds. A lock still held
 * after this many tries, USE_PROBE_NS apart, is a real holder's. */
#define USE_PROBE_TRIES 5
#define USE_PROBE_NS 10000000L

/* flock(fd, how | LOCK_NB), tried USE_PROBE_TRIES times so that another
 * process's probe does not count as a holder. 0, or -1 with errno. */
static int flock_past_probes(int fd, int how)
{
	struct timespec step = {0, USE_PROBE_NS};

	for (int tries = 1;; tries++) {
		if (flock(fd, how | LOCK_NB) == 0)
			return 0;
		if (errno != EWOULDBLOCK || tries == USE_PROBE_TRIES)
			return -1;
		nanosleep(&step, NULL);
	}
}

/* Whether another process holds the use lock of directory fd in a way that
 * conflicts with how (LOCK_EX: held at all; LOCK_SH: held exclusively).
 * The probe takes that lock on a new open file and lets it go at once. A
 * directory without such locks is free. */
static bool use_lock_conflicts(int fd, int how)
{
	int probe = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	bool held;

	if (probe < 0)
		return false;
	held = flock_past_probes(probe, how) != 0 && errno == EWOULDBLOCK;
	close(probe);
	return held;
}

/* The absolute name of directory fd, for messages. */
static void dir_name(int fd, char *buf, size_t len)
{
	char link[64];
	ssize_t n;

	snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
	n = readlink(link, buf, len - 1);
	if (n < 0)
		n = (ssize_t)snprintf(buf, len, "(a directory above)");
	buf[n] = 0;
}

/* Visits each directory above dirfd up to /, as an open fd, until visit
 * returns true (then LCP_ERR_BUSY) or the top is reached (LCP_OK). A
 * directory that cannot be opened (no read permission) ends the walk. */
static lcp_err each_ancestor(int dirfd, bool (*visit)(int fd, void *arg), void *arg)
{
	int cur = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	lcp_err err = LCP_OK;

	while (cur >= 0 && err == LCP_OK) {
		struct stat here, up;
		int parent = openat(cur, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (parent < 0 || fstat(cur, &here) != 0 || fstat(parent, &up) != 0 ||
		    (here.st_dev == up.st_dev && here.st_ino == up.st_ino)) {
			if (parent >= 0)
				close(parent);
			break;
		}
		if (visit(parent, arg))
			err = LCP_ERR_BUSY;
		close(cur);
		cur = parent;
	}
	if (cur >= 0)
		close(cur);
	return err;
}

static bool ancestor_in_use(int fd, void *below)
{
	char name[PATH_MAX];

	if (!use_lock_conflicts(fd, LOCK_EX))
		return false;
	dir_name(fd, name, sizeof name);
	lcp_log(LCP_LOG_WARN, "%s: a running lcpfs mount or recovery uses %s, which holds this "
		"directory: recovery refused", (const char *)below, name);
	return true;
}

/* Takes a shared flock of fd, waiting up to LOCK_WAIT_SEC while a recovery
 * holds it exclusively. 0, or -1 with errno (EWOULDBLOCK: still held). */
static int wait_shared(int fd)
{
	struct timespec step = {0, LOCK_POLL_MAX_NS};
	time_t deadline = time(NULL) + LOCK_WAIT_SEC;

	while (flock(fd, LOCK_SH | LOCK_NB) != 0) {
		if (errno != EWOULDBLOCK || time(NULL) > deadline)
			return -1;
		nanosleep(&step, NULL);
	}
	return 0;
}

/* Waits while a recovery holds the use lock of directory fd (above a
 * backing being held). */
static bool ancestor_recovering(int fd, void *unused)
{
	int probe = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	(void)unused;
	if (probe < 0)
		return false;
	if (wait_shared(probe) != 0 && errno == EWOULDBLOCK) {
		char name[PATH_MAX];
		dir_name(fd, name, sizeof name);
		lcp_log(LCP_LOG_WARN, "%s: a recovery has run there for more than %d s; "
			"starting beside it", name, LOCK_WAIT_SEC);
	}
	close(probe);
	return false;
}

/* The use lock: a flock of the tree's top directory (no file is created).
 * Recovery takes it exclusively, without waiting, and also needs every
 * directory above to be free: a mount or recovery of one of them covers
 * this tree too. A backing without such locks counts as free. */
lcp_err lcp_store_lock_tree_exclusive(int dirfd, int *fd)
{
	char name[PATH_MAX];
	lcp_err err;

	*fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (*fd < 0)
		return lcp_err_from_errno(errno);
	dir_name(*fd, name, sizeof name);
	if (flock_past_probes(*fd, LOCK_EX) != 0 && errno == EWOULDBLOCK) {
		err = LCP_ERR_BUSY;
		lcp_log(LCP_LOG_WARN, "%s: a running lcpfs mount or recovery uses this directory: "
			"recovery refused", name);
	} else {
		err = each_ancestor(*fd, ancestor_in_use, name);
	}
	if (err) {
		close(*fd);
		*fd = -1;
	}
	return err;
}

bool lcp_store_subtree_in_use(int dirfd)
{
	char name[PATH_MAX];

	if (!use_lock_conflicts(dirfd, LOCK_EX))
		return false;
	dir_name(dirfd, name, sizeof name);
	lcp_log(LCP_LOG_WARN, "%s: a running lcpfs mount or recovery uses this directory, "
		"inside the tree being recovered: recovery refused", name);
	return true;
}

lcp_err lcp_store_hold_backing(int dirfd, int *fd)
{
	*fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (*fd < 0)
		return lcp_err_from_errno(errno);
	/* A recovery here (another mount starting, `lcpfs recover`) or of a
	 * directory above, still working in this tree: our renames wait for
	 * it to end. */
	if (wait_shared(*fd) != 0 && errno == EWOULDBLOCK) {
		close(*fd);
		*fd = -1;
		return LCP_ERR_BUSY;
	}
	(void)each_ancestor(*fd, ancestor_recovering, NULL);
	return LCP_OK;
}
