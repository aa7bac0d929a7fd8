/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The passthrough operations: every request is answered from the backing
 * directory through the inode's object (fs_inode.c: a directory's fd, an
 * open file's fd, or parent and name checked against the inode), with the
 * tensor layer consulted
 * where a regular file's bytes or size are concerned. Objects are created with
 * the caller's uid and gid (setfsuid/setfsgid are per thread on Linux, so the
 * switch around the creating call affects this request only).
 *
 * Locks are left to the kernel: without getlk/setlk/flock operations FUSE
 * keeps POSIX and flock locks locally, which is exact for every process
 * using this mount. Forwarding them to the backing file through the daemon's
 * fds would make all callers one lock owner (the daemon) and let them stop
 * conflicting with each other.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "common/alloc.h"
#include "fs/fs_priv.h"

struct fs_dir {
	DIR *dp;
	off_t offset;          /* position the next readdir continues from */
	struct dirent *entry;  /* read but not yet returned (buffer was full) */
};

static struct fs_handle *handle_of(struct fuse_file_info *fi)
{
	return (struct fs_handle *)(uintptr_t)fi->fh;
}

struct caller_cred {
	uid_t uid;
	gid_t gid;
};

/* Creating syscalls run as the caller so new objects get its uid and gid. */
static void as_caller(fuse_req_t req, struct caller_cred *saved)
{
	const struct fuse_ctx *c = fuse_req_ctx(req);
	saved->gid = (gid_t)setfsgid(c->gid);
	saved->uid = (uid_t)setfsuid(c->uid);
}

static void as_daemon(const struct caller_cred *saved)
{
	int e = errno;
	setfsuid(saved->uid);
	setfsgid(saved->gid);
	errno = e;
}

/* The attributes the mount shows (ns held), and how long the kernel may
 * keep them: a regular file the store cannot answer for now shows its
 * backing attributes, kept for no time, so that it can still be listed,
 * renamed or removed while every open of it fails (EIO) until it can be
 * told. */
static int stat_inode(struct fs_mount *m, struct fs_inode *inode, struct stat *st,
		      double *timeout)
{
	int err = fs_inode_stat(m, inode, st);

	if (err)
		return err;
	*timeout = m->attr_timeout;
	if (S_ISREG(st->st_mode) && fs_tensor_known(m, inode) != 0)
		*timeout = 0;
	fs_tensor_fix_stat(inode, st);
	return 0;
}

/* Looks name up in parent and fills e; counts one kernel lookup. ns held. */
static int do_lookup(struct fs_mount *m, struct fs_inode *parent, const char *name,
		     struct fuse_entry_param *e)
{
	struct fs_inode *inode;
	struct stat st;
	double timeout;
	int fd = -1, err;

	memset(e, 0, sizeof *e);
	if (fs_name_hidden(name))
		return ENOENT;
	fd = openat(parent->fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && errno != EMFILE && errno != ENFILE)
		return errno;
	if (fd >= 0) {
		if (fstat(fd, &st) != 0) {
			err = errno;
			close(fd);
			return err;
		}
	} else if (fstatat(parent->fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
		/* Out of fds: a file needs none to be known (a directory does). */
		return errno;
	} else if (S_ISDIR(st.st_mode)) {
		return EMFILE;
	}
	inode = fs_inode_add(m, parent, name, fd, &st);
	if (!inode)
		return ENOMEM;
	if ((err = stat_inode(m, inode, &st, &timeout)) != 0) {
		fs_inode_forget(m, inode, 1);
		return err;
	}
	e->ino = fs_ino_of(m, inode);
	e->attr = st;
	e->attr_timeout = timeout;
	e->entry_timeout = timeout > 0 ? m->entry_timeout : 0;
	return 0;
}

/*
 * Request sizes and features, each as measured on the 256 MiB F16 file of
 * bench_mount (cold sequential dd through the mount, medians of 5,
 * alternating, on the shared 2-core machine):
 *  - max_write 1 MiB, which libfuse 3.14 also turns into max_pages 256: read
 *    requests of up to 1 MiB. With 128 KiB requests the compressed file read
 *    at 886 MiB/s against 1131, the raw one at 590 against 953: fewer
 *    requests, fewer round trips, and whole chunks to decode. 1 MiB is
 *    libfuse 3.14's ceiling (its receive buffer). max_read stays 0: no
 *    limit below that.
 *  - The kernel's readahead (fs.c sets it through sysfs, default 4M) keeps
 *    several such requests in flight; max_background stays the kernel's 12:
 *    32 read at 1139 MiB/s against 1131, no difference.
 *  - Splice for raw files' replies (fuse_reply_data from the backing fd):
 *    953 MiB/s and 190 ms of daemon CPU against 908 and 220 ms without.
 *    Decoded bytes go out with writev from memory (fuse_reply_iov):
 *    splicing them through a pipe (fuse_reply_data of a memory buffer) read
 *    at the same speed for the same CPU time, and would need one copy more.
 *  - No writeback cache: each write reaches us, so write tracking and the
 *    size record are exact at release.
 * keep_cache is decided per open (fs_open): the page cache is the hot path.
 *
 * POSIX ACLs are enforced by the kernel when we ask for FUSE_CAP_POSIX_ACL
 * (which turns on default_permissions): it reads them through getxattr and
 * caches them; setting one passes through to the backing object, which
 * keeps the mode in step, and a commit or materialize carries it over with
 * every other xattr. Asked for only when the backing stores ACLs (its root
 * answers system.posix_acl_access); otherwise fs_setxattr refuses them, as a
 * passed-through ACL would deny on the backing but not through the mount.
 * Without FUSE_CAP_DONT_MASK the kernel applies the caller's umask before
 * creating, also below a directory with a default ACL (where a local
 * filesystem would not).
 */
static void fs_init(void *userdata, struct fuse_conn_info *conn)
{
	struct fs_mount *m = userdata;
	char root[FS_PROCPATH_LEN];

	fs_procpath(m->root.fd, root, sizeof root);
	m->acl = (conn->capable & FUSE_CAP_POSIX_ACL) &&
		 (getxattr(root, "system.posix_acl_access", NULL, 0) >= 0 || errno == ENODATA);
	if (m->acl)
		conn->want |= FUSE_CAP_POSIX_ACL;
	conn->max_write = 1u << 20;
	if (conn->capable & FUSE_CAP_SPLICE_WRITE)
		conn->want |= FUSE_CAP_SPLICE_WRITE;
	if (conn->capable & FUSE_CAP_SPLICE_MOVE)
		conn->want |= FUSE_CAP_SPLICE_MOVE;
	conn->want &= ~(unsigned)FUSE_CAP_WRITEBACK_CACHE;
}

static void fs_destroy(void *userdata)
{
	fs_tensor_stop(userdata);
}

static void fs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs_mount *m = fs_mount_of(req);
	struct fuse_entry_param e;
	int err;

	fs_apply_readahead(m);
	fs_rwlock_rdlock(&m->ns);
	err = do_lookup(m, fs_inode_of(m, parent), name, &e);
	fs_rwlock_unlock(&m->ns);
	if (err)
		fuse_reply_err(req, err);
	else
		fuse_reply_entry(req, &e);
}

static void fs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	struct fs_mount *m = fs_mount_of(req);
	fs_inode_forget(m, fs_inode_of(m, ino), nlookup);
	fuse_reply_none(req);
}

static void fs_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	struct fs_mount *m = fs_mount_of(req);
	for (size_t i = 0; i < count; i++)
		fs_inode_forget(m, fs_inode_of(m, forgets[i].ino), forgets[i].nlookup);
	fuse_reply_none(req);
}

static void fs_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_mount *m = fs_mount_of(req);
	struct stat st;
	double timeout;
	int err;

	fs_apply_readahead(m);
	/* With or without a handle the answer comes from the inode: one truth. */
	(void)fi;
	fs_rwlock_rdlock(&m->ns);
	err = stat_inode(m, fs_inode_of(m, ino), &st, &timeout);
	fs_rwlock_unlock(&m->ns);
	if (err)
		fuse_reply_err(req, err);
	else
		fuse_reply_attr(req, &st, timeout);
}

/* Truncates a regular file to size (ns held for reading). A compressed one
 * was made raw by the caller; should it have been committed again since,
 * EAGAIN asks the caller to make it raw again. */
static int do_truncate(struct fs_mount *m, struct fs_inode *inode, struct fs_handle *h, off_t size)
{
	int fd, err;

	fs_mutex_lock(&inode->lock);
	bool raw = inode->t.state != FS_COMPRESSED;
	fs_mutex_unlock(&inode->lock);
	if (!raw)
		return EAGAIN;
	/* The generation moves first: a job prepared before cannot commit. */
	fs_tensor_written(m, inode);
	if (h && h->writable) {
		fd = fs_tensor_write_fd(m, inode, h);
		if (fd < 0)
			return -fd;
		if (ftruncate(fd, size) != 0)
			return errno;
		return 0;
	}
	fd = fs_inode_open(m, inode, O_WRONLY, &err);
	if (fd < 0)
		return err;
	err = ftruncate(fd, size) != 0 ? errno : 0;
	close(fd);
	if (err)
		return err;
	/* A truncate(2) with no writer open has no release to follow it. */
	fs_tensor_opened(m, inode, true, false);
	fs_tensor_released(m, inode, true);
	return 0;
}

/* A compressed file's sidecar follows chmod and chown: it has the file's
 * owner and read and write bits (lcpfs(5)). Access leaves the sidecar first
 * and reaches it last. Before the payload changes (restrict_sidecar), the
 * sidecar keeps only the bits the old and the new mode share, and none for
 * an owner or group about to change, made durable with no lock held; once
 * the payload changed (or failed to), the sidecar gets the payload's owner
 * and bits as they are (follow_payload; not synced: lost in a crash, it is
 * left restricted). So a crash at any point leaves the sidecar no more
 * readable than the payload before and after. (A pack committing between
 * the two steps skips the first: it was raw then.) */
static int restrict_sidecar(struct fs_mount *m, struct fs_inode *inode, const struct stat *attr,
			    int valid)
{
	int err, sync_fd = -1, pfd;
	struct stat st;

	fs_rwlock_rdlock(&m->ns);
	if (!fs_tensor_has_sidecar(inode)) {
		fs_rwlock_unlock(&m->ns);
		return 0;
	}
	pfd = fs_inode_path_fd(m, inode, &err);
	if (pfd >= 0) {
		err = fstatat(pfd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0 ? errno : 0;
		close(pfd);
	}
	if (!err) {
		mode_t keep = st.st_mode & 0666;
		if (valid & FUSE_SET_ATTR_MODE)
			keep &= attr->st_mode;
		if ((valid & FUSE_SET_ATTR_UID) && attr->st_uid != st.st_uid)
			keep &= (mode_t)~0600;
		if ((valid & FUSE_SET_ATTR_GID) && attr->st_gid != st.st_gid)
			keep &= (mode_t)~0060;
		err = fs_tensor_sidecar_attrs(m, inode, keep, (uid_t)-1, (gid_t)-1, &sync_fd);
	}
	fs_rwlock_unlock(&m->ns);
	if (sync_fd >= 0) {
		if (!err && fsync(sync_fd) != 0)
			err = errno;
		close(sync_fd);
	}
	return err;
}

static int follow_payload(struct fs_mount *m, struct fs_inode *inode, int pfd)
{
	struct stat st;

	if (!fs_tensor_has_sidecar(inode))
		return 0;
	if (fstatat(pfd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0)
		return errno;
	return fs_tensor_sidecar_attrs(m, inode, st.st_mode, st.st_uid, st.st_gid, NULL);
}

/* chmod and chown of the inode's object pfd (/proc path path; ns held). */
static int set_owner_mode(struct fs_mount *m, struct fs_inode *inode, int pfd, const char *path,
			  const struct stat *attr, int valid)
{
	uid_t uid = (valid & FUSE_SET_ATTR_UID) ? attr->st_uid : (uid_t)-1;
	gid_t gid = (valid & FUSE_SET_ATTR_GID) ? attr->st_gid : (gid_t)-1;
	int err = 0;

	/* On the inode, not through a handle: a handle of a compressed file
	 * has no backing fd, and both name the same object. */
	if ((valid & FUSE_SET_ATTR_MODE) && chmod(path, attr->st_mode) != 0)
		err = errno;
	if (!err && (valid & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) &&
	    fchownat(pfd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0)
		err = errno;
	int e = follow_payload(m, inode, pfd);
	return err ? err : e;
}

static void fs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int valid,
		       struct fuse_file_info *fi)
{
	struct fs_mount *m = fs_mount_of(req);
	struct fs_inode *inode = fs_inode_of(m, ino);
	struct fs_handle *h = fi ? handle_of(fi) : NULL;
	char path[FS_PROCPATH_LEN];
	struct stat st;
	double timeout = 0;
	int err = 0, pfd = -1;

	if ((valid & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) &&
	    (err = restrict_sidecar(m, inode, attr, valid)) != 0) {
		fuse_reply_err(req, err);
		return;
	}
	fs_rwlock_rdlock(&m->ns);
	pfd = fs_inode_path_fd(m, inode, &err);
	if (pfd < 0)
		goto out;
	fs_procpath(pfd, path, sizeof path);
	if (valid & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
		if ((err = set_owner_mode(m, inode, pfd, path, attr, valid)) != 0)
			goto out;
	}
	if (valid & FUSE_SET_ATTR_SIZE) {
		/* A compressed file is made raw first, with no lock held (emptied
		 * for size 0, materialized otherwise): a new object. */
		for (int tries = 0;; tries++) {
			/* truncate(2)'s answer for anything but a regular file. */
			err = inode->type == S_IFREG ? do_truncate(m, inode, h, attr->st_size)
			      : inode->type == S_IFDIR ? EISDIR
						       : EINVAL;
			if (err != EAGAIN || tries == 3)
				break;
			fs_rwlock_unlock(&m->ns);
			err = fs_tensor_make_raw(m, inode, attr->st_size == 0);
			fs_rwlock_rdlock(&m->ns);
			if (err)
				break;
		}
		if (err)
			goto out;
		close(pfd);
		pfd = fs_inode_path_fd(m, inode, &err);
		if (pfd < 0)
			goto out;
		fs_procpath(pfd, path, sizeof path);
	}
	if (valid & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME)) {
		struct timespec tv[2];
		tv[0].tv_sec = 0;
		tv[1].tv_sec = 0;
		tv[0].tv_nsec = UTIME_OMIT;
		tv[1].tv_nsec = UTIME_OMIT;
		if (valid & FUSE_SET_ATTR_ATIME_NOW)
			tv[0].tv_nsec = UTIME_NOW;
		else if (valid & FUSE_SET_ATTR_ATIME)
			tv[0] = attr->st_atim;
		if (valid & FUSE_SET_ATTR_MTIME_NOW)
			tv[1].tv_nsec = UTIME_NOW;
		else if (valid & FUSE_SET_ATTR_MTIME)
			tv[1] = attr->st_mtim;
		if (inode->type == S_IFLNK) {
			/* A /proc path would follow the link: use the name. */
			char name[NAME_MAX + 1];
			int dfd = fs_inode_dirfd_name(m, inode, name, sizeof name, &err);
			if (dfd >= 0) {
				err = utimensat(dfd, name, tv, AT_SYMLINK_NOFOLLOW) != 0 ? errno : 0;
				close(dfd);
			}
		} else {
			err = utimensat(AT_FDCWD, path, tv, 0) != 0 ? errno : 0;
		}
		if (err)
			goto out;
	}
	err = stat_inode(m, inode, &st, &timeout);
out:
	if (pfd >= 0)
		close(pfd);
	fs_rwlock_unlock(&m->ns);
	if (err)
		fuse_reply_err(req, err);
	else
		fuse_reply_attr(req, &st, timeout);
}

static void fs_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct fs_mount *m = fs_mount_of(req);
	char buf[PATH_MAX + 1];
	ssize_t n;
	int err;

	fs_rwlock_rdlock(&m->ns);
	int fd = fs_inode_path_fd(m, fs_inode_of(m, ino), &err);
	n = fd < 0 ? -1 : readlinkat(fd, "", buf, sizeof buf);
	if (fd >= 0) {
		err = errno;
		close(fd);
	}
	fs_rwlock_unlock(&m->ns);
	if (n < 0)
		fuse_reply_err(req, err);
	else if ((size_t)n >= sizeof buf)
		fuse_reply_err(req, ENAMETOOLONG);
	else {
		buf[n] = '\0';
		fuse_reply_readlink(req, buf);
	}
}

enum make_kind { MAKE_NOD, MAKE_DIR, MAKE_SYMLINK };

static void make_node(fuse_req_t req, fuse_ino_t parent, const char *name, enum make_kind kind,
		      mode_t mode, dev_t rdev, const char *target)
{
	struct fs_mount *m = fs_mount_of(req);
	struct fs_inode *p = fs_inode_of(m, parent);
	struct caller_cred cred;
	struct fuse_entry_param e;
	int r, err;

	/* Names the store keeps for itself cannot be created: the mount could
	 * never show them and the store would take them for its own. */
	if (fs_name_hidden(name)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	fs_rwlock_rdlock(&m->ns);
	as_caller(req, &cred);
	if (kind == MAKE_DIR)
		r = mkdirat(p->fd, name, mode);
	else if (kind == MAKE_SYMLINK)
		r = symlinkat(target, p->fd, name);
	else
		r = mknodat(p->fd, name, mode, rdev);
	as_daemon(&cred);
	err = r != 0 ? errno : do_lookup(m, p, name, &e);
	fs_rwlock_unlock(&m->ns);
	if (err)
		fuse_reply_err(req, err);
	else
		fuse_reply_entry(req, &e);
}

static void fs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	make_node(req, parent, name, MAKE_NOD, mode, rdev, NULL);
}

static void fs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	make_node(req, parent, name, MAKE_DIR, mode, 0, NULL);
}

static void fs_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	make_node(req, parent, name, MAKE_SYMLINK, 0, 0, link);
}

/* The inode (if known) of name in dir, with a reference; NULL otherwise. */
static struct fs_inode *known_child(struct fs_mount *m, struct fs_inode *dir, const char *name)
{
	struct stat st;

	if (fstatat(dir->fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
		return NULL;
	return fs_inode_find(m, st.st_dev, st.st_ino);
}

/* A name of regular file inode in dir went away (ns held for writing). If
 * it was the name the inode went by and another link is left, another name
 * of it in the same directory (the usual `ln a b; rm b`) is taken, found by
 * reading dir: the store is asked about the file under a name. Then the
 * tensor layer learns a link is gone; with no name found it is not told
 * (asking the store would fail with EIO until a lookup gave a name). */
static void link_dropped(struct fs_mount *m, struct fs_inode *inode, struct fs_inode *dir)
{
	char name[NAME_MAX + 1];
	struct stat st;
	bool named = false;
	int e, dfd, pfd;

	if (inode->type != S_IFREG)
		return;
	dfd = fs_inode_dirfd_name(m, inode, name, sizeof name, &e);
	if (dfd >= 0) {
		close(dfd);
		named = true;
	} else if ((pfd = fs_inode_path_fd(m, inode, &e)) >= 0) {
		bool linked = fstat(pfd, &st) == 0 && st.st_nlink > 0;
		close(pfd);
		int rfd = linked ? openat(dir->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
		DIR *d = rfd >= 0 ? fdopendir(rfd) : NULL;
		struct dirent *de;
		while (d && (de = readdir(d)) != NULL) {
			if (de->d_ino == (ino_t)inode->ino && !fs_name_hidden(de->d_name) &&
			    fstatat(dir->fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
			    st.st_dev == inode->dev && st.st_ino == inode->ino) {
				fs_inode_set_name(m, inode, dir, de->d_name);
				named = true;
				break;
			}
		}
		if (d)
			closedir(d);
		else if (rfd >= 0)
			close(rfd);
	}
	if (named)
		fs_tensor_link_dropped(m, inode);
}

static void fs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs_mount *m = fs_mount_of(req);
	struct fs_inode *p = fs_inode_of(m, parent);
	struct fs_inode *victim;
	int err;

	if (fs_name_hidden(name)) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	fs_rwlock_wrlock(&m->ns);
	victim = known_child(m, p, name);
	err = fs_tensor_unlink(m, p->fd, name);
	if (victim) {
		if (!err) {
			fs_tensor_name_gone(victim);
			fs_inode_drop_name(m, victim, p, name);
			link_dropped(m, victim, p);
		}
		fs_inode_unref(m, victim);
	}
	fs_rwlock_unlock(&m->ns);
	fuse_reply_err(req, err);
}

static void fs_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs_mount *m = fs_mount_of(req);
	struct fs_inode *p = fs_inode_of(m, parent);
	int err = 0;

	if (fs_name_hidden(name)) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	fs_rwlock_rdlock(&m->ns);
	err = fs_tensor_rmdir(m, p->fd, name);
	fs_rwlock_unlock(&m->ns);
	fuse_reply_err(req, err);
}

static void fs_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags)
{
	struct fs_mount *m = fs_mount_of(req);
	struct fs_inode *p = fs_inode_of(m, parent), *np = fs_inode_of(m, newparent);
	struct fs_inode *moved, *victim;
	int err;

	if (fs_name_hidden(name)) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (fs_name_hidden(newname)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	fs_rwlock_wrlock(&m->ns);
	moved = known_child(m, p, name);
	victim = known_child(m, np, newname);
	err = fs_tensor_rename(m, p->fd, name, np->fd, newname, flags);
	if (!err) {
		if (moved) {
			fs_tensor_name_gone(moved);
			fs_inode_set_name(m, moved, np, newname);
		}
		if (victim && victim != moved) {
			fs_tensor_name_gone(victim);
			if (flags & RENAME_EXCHANGE) {
				fs_inode_set_name(m, victim, p, name);
			} else {
				fs_inode_drop_name(m, victim, np, newname);
				link_dropped(m, victim, np);
			}
		}
	}
	if (moved)
		fs_inode_unref(m, moved);
	if (victim)
		fs_inode_unref(m, victim);
	fs_rwlock_unlock(&m->ns);
	fuse_reply_err(req, err);
}

static void fs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	struct fs_mount *m = fs_mount_of(req);
	struct fs_inode *inode = fs_inode_of(m, ino), *np = fs_inode_of(m, newparent);
	struct fuse_entry_param e;
	int err;

	if (fs_name_hidden(newname)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	err = fs_tensor_link(m, inode, np, newname);
	if (!err) {
		fs_rwlock_rdlock(&m->ns);
		err = do_lookup(m, np, newname, &e);
		fs_rwlock_unlock(&m->ns);
	}
	if (err)
		fuse_reply_err(req, err);
	else
		fuse_reply_entry(req, &e);
}

static bool wants_write(int flags)
{
	return (flags & O_ACCMODE) != O_RDONLY;
}

/* keep_cache when the backing file has not changed since it was last opened
 * (changes through the mount keep the page cache right by themselves; a
 * commit invalidates it explicitly). */
static bool unchanged_since_last_open(struct fs_mount *m, struct fs_inode *inode)
{
	struct stat st;
	bool same;

	if (fs_inode_stat(m, inode, &st) != 0)
		return false;
	fs_mutex_lock(&inode->lock);
	same = inode->seen_size == st.st_size && inode->seen_mtime.tv_sec == st.st_mtim.tv_sec &&
	       inode->seen_mtime.tv_nsec == st.st_mtim.tv_nsec;
	inode->seen_size = st.st_size;
	inode->seen_mtime = st.st_mtim;
	fs_mutex_unlock(&inode->lock);
	return same;
}

static struct fs_handle *handle_new(int flags)
{
	struct fs_handle *h = lcp_calloc(1, sizeof *h);
	if (!h)
		return NULL;
	pthread_mutex_init(&h->lock, NULL);
	h->fd = -1;
	h->flags = flags;
	h->writable = wants_write(flags);
	return h;
}

static void handle_free(struct fs_handle *h)
{
	fs_tensor_handle_close(h);
	pthread_mutex_destroy(&h->lock);
	lcp_free(h);
}

static void fs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_mount *m = fs_mount_of(req);
	struct fs_inode *inode = fs_inode_of(m, ino);
	struct fs_handle *h = handle_new(fi->flags);
	bool trunc = (fi->flags & O_TRUNC) != 0;
	int err;

	if (!h) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	fs_rwlock_rdlock(&m->ns);
	err = fs_tensor_open(m, inode, h);
	if (!err) {
		fi->keep_cache = unchanged_since_last_open(m, inode) && !trunc;
		fs_tensor_opened(m, inode, h->writable, trunc);
		fs_inode_pin(m, inode);
	}
	fs_rwlock_unlock(&m->ns);
	if (err) {
		handle_free(h);
		fuse_reply_err(req, err);
		return;
	}
	fi->fh = (uint64_t)(uintptr_t)h;
	fi->noflush = !h->writable;
	if (fuse_reply_open(req, fi) == -ENOENT) {
		/* The caller is gone (interrupted): no release will come. */
		fs_tensor_released(m, inode, h->writable);
		handle_free(h);
		fs_inode_unpin(m, inode);
	}
}

static void fs_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	struct fs_mount *m = fs_mount_of(req);
	struct fs_inode *p = fs_inode_of(m, parent);
	struct fs_inode *inode = NULL;
	struct caller_cred cred;
	struct fuse_entry_param e;
	struct fs_handle *h;
	struct stat st;
	int err = 0, fd;

	if (fs_name_hidden(name)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	h = handle_new(fi->flags);
	if (!h) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	fs_rwlock_rdlock(&m->ns);
	as_caller(req, &cred);
	/* Should the name exist on the backing by now as something else (a
	 * FIFO, a device, a symlink), it is neither waited on nor followed. */
	fd = openat(p->fd, name,
		    (fi->flags | O_CREAT | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | O_NOFOLLOW) &
			    ~O_DIRECT,
		    mode);
	if (fd < 0)
		err = errno;
	as_daemon(&cred);
	if (fd >= 0 && (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)))
		err = EEXIST;
	else if (fd >= 0 && !(fi->flags & O_NONBLOCK))
		(void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	h->fd = fd;
	if (!err)
		err = do_lookup(m, p, name, &e);
	if (!err) {
		inode = fs_inode_of(m, e.ino);
		(void)unchanged_since_last_open(m, inode); /* record what we saw */
		fs_tensor_opened(m, inode, h->writable, true);
		fs_inode_pin(m, inode);
	}
	fs_rwlock_unlock(&m->ns);
	if (err) {
		handle_free(h);
		fuse_reply_err(req, err);
		return;
	}
	fi->fh = (uint64_t)(uintptr_t)h;
	if (fuse_reply_create(req, &e, fi) == -ENOENT) {
		fs_tensor_released(m, inode, h->writable);
		handle_free(h);
		fs_inode_unpin(m, inode);
	}
}

static void fs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct fs_mount *m = fs_mount_of(req);
	struct fs_read_reply rep;
	ssize_t n = fs_tensor_read(m, fs_inode_of(m, ino), handle_of(fi), size, off, &rep);

	if (n < 0) {
		fuse_reply_err(req, (int)-n);
	} else if (rep.fd < 0) {
		/* Decoded bytes go out as they lie, in the read buffer and in the
		 * chunks decoded ahead (no copy to gather them). */
		fuse_reply_iov(req, rep.view.seg, (int)rep.view.nseg);
	} else {
		/* A raw file's pages are spliced from the backing file. */
		struct fuse_bufvec bv = FUSE_BUFVEC_INIT(size);
		bv.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
		bv.buf[0].fd = rep.fd;
		bv.buf[0].pos = off;
		fuse_reply_data(req, &bv, FUSE_BUF_SPLICE_MOVE);
	}
	fs_tensor_read_done(&rep);
}

static void fs_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *in, off_t off,
			 struct fuse_file_info *fi)
{
	struct fs_mount *m = fs_mount_of(req);
	struct fs_inode *inode = fs_inode_of(m, ino);
	struct fuse_bufvec out = FUSE_BUFVEC_INIT(fuse_buf_size(in));
	int fd = fs_tensor_write_fd(m, inode, handle_of(fi));
	ssize_t n;

	if (fd < 0) {
		fuse_reply_err(req, -fd);
		return;
	}
	out.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	out.buf[0].fd = fd;
	out.buf[0].pos = off;
	n = fuse_buf_copy(&out, in, 0);
	fs_tensor_written(m, inode);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_write(req, (size_t)n);
}

/* A duplicate of h's backing fd (caller closes), or -1 when it reads
 * through the store (*err 0) or dup fails (*err set). Taken under h->lock,
 * used with none held: a flush or fsync of a slow backing must not hold the
 * handle, which a read of the same file waits for while holding the inode
 * (and a getattr of it waits for that while holding the namespace). */
static int dup_handle_fd(struct fs_handle *h, int *err)
{
	int d = -1;

	*err = 0;
	pthread_mutex_lock(&h->lock);
	if (h->fd >= 0 && (d = fcntl(h->fd, F_DUPFD_CLOEXEC, 0)) < 0)
		*err = errno;
	pthread_mutex_unlock(&h->lock);
	return d;
}

static void fs_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_handle *h = handle_of(fi);
	int err;

	(void)ino;
	/* close() of a duplicate gives the backing its close-time semantics
	 * (errors of network filesystems) without closing our fd. */
	int d = dup_handle_fd(h, &err);
	if (d >= 0 && close(d) != 0)
		err = errno;
	fuse_reply_err(req, err);
}

static void fs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_mount *m = fs_mount_of(req);
	struct fs_inode *inode = fs_inode_of(m, ino);
	struct fs_handle *h = handle_of(fi);
	bool writable = h->writable;

	handle_free(h);
	fs_tensor_released(m, inode, writable);
	fs_inode_unpin(m, inode);
	fuse_reply_err(req, 0);
}

static void fs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct fs_handle *h = handle_of(fi);
	int err, d;

	(void)ino;
	if ((d = dup_handle_fd(h, &err)) >= 0) {
		fs_tensor_hold(fs_mount_of(req), "fsync"); /* as a slow backing's fsync */
		if ((datasync ? fdatasync(d) : fsync(d)) != 0)
			err = errno;
		close(d);
	}
	fuse_reply_err(req, err);
}

static void fs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_mount *m = fs_mount_of(req);
	struct fs_dir *d = lcp_calloc(1, sizeof *d);
	int fd, err = 0;

	if (!d) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	fs_rwlock_rdlock(&m->ns);
	fd = openat(fs_inode_of(m, ino)->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	fs_rwlock_unlock(&m->ns);
	if (fd < 0 || !(d->dp = fdopendir(fd))) {
		err = errno;
		if (fd >= 0)
			close(fd);
		lcp_free(d);
		fuse_reply_err(req, err);
		return;
	}
	fi->fh = (uint64_t)(uintptr_t)d;
	fi->cache_readdir = 0;
	if (fuse_reply_open(req, fi) == -ENOENT) {
		closedir(d->dp);
		lcp_free(d);
	}
}

static void fs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	struct fs_dir *d = (struct fs_dir *)(uintptr_t)fi->fh;
	char *buf = lcp_malloc(size ? size : 1);
	size_t used = 0;
	int err = 0;

	(void)ino;
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (off != d->offset) {
		seekdir(d->dp, off);
		d->entry = NULL;
		d->offset = off;
	}
	for (;;) {
		if (!d->entry) {
			errno = 0;
			d->entry = readdir(d->dp);
			if (!d->entry) {
				err = errno;
				break;
			}
		}
		if (!fs_name_hidden(d->entry->d_name)) {
			struct stat st;
			memset(&st, 0, sizeof st);
			st.st_ino = d->entry->d_ino;
			st.st_mode = (mode_t)d->entry->d_type << 12;
			size_t n = fuse_add_direntry(req, buf + used, size - used, d->entry->d_name,
						     &st, d->entry->d_off);
			if (n > size - used)
				break; /* keep the entry for the next call */
			used += n;
		}
		d->offset = d->entry->d_off;
		d->entry = NULL;
	}
	if (err && used == 0)
		fuse_reply_err(req, err);
	else
		fuse_reply_buf(req, buf, used);
	lcp_free(buf);
}

static void fs_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_dir *d = (struct fs_dir *)(uintptr_t)fi->fh;

	(void)ino;
	closedir(d->dp);
	lcp_free(d);
	fuse_reply_err(req, 0);
}

static void fs_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct fs_dir *d = (struct fs_dir *)(uintptr_t)fi->fh;
	int fd = dirfd(d->dp), r;

	(void)ino;
	r = datasync ? fdatasync(fd) : fsync(fd);
	fuse_reply_err(req, r ? errno : 0);
}

static void fs_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct fs_mount *m = fs_mount_of(req);
	struct statvfs sv;
	int err = 0;

	fs_rwlock_rdlock(&m->ns);
	int fd = fs_inode_path_fd(m, fs_inode_of(m, ino), &err);
	if (fd >= 0) {
		if (fstatvfs(fd, &sv) != 0)
			err = errno;
		close(fd);
	}
	fs_rwlock_unlock(&m->ns);
	if (err)
		fuse_reply_err(req, err);
	else
		fuse_reply_statfs(req, &sv);
}

static void fs_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
			 struct fuse_file_info *fi)
{
	struct fs_mount *m = fs_mount_of(req);
	struct fs_inode *inode = fs_inode_of(m, ino);
	struct fs_handle *h = handle_of(fi);
	int fd, err = 0;

	if (!h->writable) {
		fuse_reply_err(req, EBADF);
		return;
	}
	fd = fs_tensor_write_fd(m, inode, h);
	if (fd < 0) {
		fuse_reply_err(req, -fd);
		return;
	}
	if (fallocate(fd, mode, off, len) != 0)
		err = errno;
	fs_tensor_written(m, inode);
	fuse_reply_err(req, err);
}

static void fs_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
			       struct fuse_file_info *fi_in, fuse_ino_t ino_out, off_t off_out,
			       struct fuse_file_info *fi_out, size_t len, int flags)
{
	struct fs_mount *m = fs_mount_of(req);
	struct fs_handle *in = handle_of(fi_in), *out = handle_of(fi_out);
	struct fs_inode *inode_out = fs_inode_of(m, ino_out);
	int in_fd, out_fd;
	ssize_t n;

	(void)ino_in;
	pthread_mutex_lock(&in->lock);
	in_fd = in->fd;
	pthread_mutex_unlock(&in->lock);
	/* A committed source has no backing bytes to copy: EXDEV makes the
	 * kernel fall back to reading and writing through the mount. */
	if (in_fd < 0) {
		fuse_reply_err(req, EXDEV);
		return;
	}
	out_fd = fs_tensor_write_fd(m, inode_out, out);
	if (out_fd < 0) {
		fuse_reply_err(req, -out_fd);
		return;
	}
	n = copy_file_range(in_fd, &off_in, out_fd, &off_out, len, (unsigned)flags);
	if (n < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	fs_tensor_written(m, inode_out);
	fuse_reply_write(req, (size_t)n);
}

const struct fuse_lowlevel_ops fs_ops = {
	.init = fs_init,
	.destroy = fs_destroy,
	.lookup = fs_lookup,
	.forget = fs_forget,
	.forget_multi = fs_forget_multi,
	.getattr = fs_getattr,
	.setattr = fs_setattr,
	.readlink = fs_readlink,
	.mknod = fs_mknod,
	.mkdir = fs_mkdir,
	.symlink = fs_symlink,
	.unlink = fs_unlink,
	.rmdir = fs_rmdir,
	.rename = fs_rename,
	.link = fs_link,
	.open = fs_open,
	.create = fs_create,
	.read = fs_read,
	.write_buf = fs_write_buf,
	.flush = fs_flush,
	.release = fs_release,
	.fsync = fs_fsync,
	.opendir = fs_opendir,
	.readdir = fs_readdir,
	.releasedir = fs_releasedir,
	.fsyncdir = fs_fsyncdir,
	.statfs = fs_statfs,
	.fallocate = fs_fallocate,
	.copy_file_range = fs_copy_file_range,
	.getxattr = fs_getxattr,
	.setxattr = fs_setxattr,
	.listxattr = fs_listxattr,
	.removexattr = fs_removexattr,
};
