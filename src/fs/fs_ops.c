/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The passthrough operations: every request is answered from the backing
 * directory through the inode's O_PATH fd, with the tensor layer consulted
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
#include <unistd.h>

#include "common/alloc.h"
#include "fs/fs_priv.h"

#define PROCPATH_LEN 64

struct fs_dir {
	DIR *dp;
	off_t offset;          /* position the next readdir continues from */
	struct dirent *entry;  /* read but not yet returned (buffer was full) */
};

static void ns_read(void)
{
	pthread_rwlock_rdlock(&fs_ctx.ns);
}

static void ns_write(void)
{
	pthread_rwlock_wrlock(&fs_ctx.ns);
}

static void ns_unlock(void)
{
	pthread_rwlock_unlock(&fs_ctx.ns);
}

/* Takes ns for an operation that may change inode's bytes: for reading
 * (enough while the file is raw, since a commit needs ns for writing), or for
 * writing when a committed file must first be swapped for its raw bytes. */
static void ns_for_change(struct fs_inode *inode)
{
	ns_read();
	if (inode->type == S_IFREG && fs_tensor_is_committed(inode)) {
		ns_unlock();
		ns_write();
	}
}

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

static int stat_inode(struct fs_inode *inode, struct stat *st)
{
	if (fstatat(inode->fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0)
		return errno;
	fs_tensor_fix_stat(inode, st);
	return 0;
}

/* Looks name up in parent and fills e; counts one kernel lookup. ns held. */
static int do_lookup(struct fs_inode *parent, const char *name, struct fuse_entry_param *e)
{
	struct fs_inode *inode;
	struct stat st;
	int fd;

	memset(e, 0, sizeof *e);
	if (fs_name_hidden(name))
		return ENOENT;
	fd = openat(parent->fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno;
	if (fstatat(fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0) {
		int err = errno;
		close(fd);
		return err;
	}
	inode = fs_inode_add(parent, name, fd, &st);
	if (!inode)
		return ENOMEM;
	if (inode->type == S_IFREG)
		fs_tensor_probe(inode);
	fs_tensor_fix_stat(inode, &st);
	e->ino = fs_ino_of(inode);
	e->attr = st;
	e->attr_timeout = fs_ctx.timeout;
	e->entry_timeout = fs_ctx.timeout;
	return 0;
}

static void fs_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	/* Splice moves file pages without a copy through the daemon. */
	if (conn->capable & FUSE_CAP_SPLICE_WRITE)
		conn->want |= FUSE_CAP_SPLICE_WRITE;
	if (conn->capable & FUSE_CAP_SPLICE_MOVE)
		conn->want |= FUSE_CAP_SPLICE_MOVE;
	/* No writeback cache: each write reaches us, so write tracking and the
	 * size record are exact at release. */
	conn->want &= ~(unsigned)FUSE_CAP_WRITEBACK_CACHE;
}

static void fs_destroy(void *userdata)
{
	(void)userdata;
	fs_tensor_stop();
}

static void fs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e;
	int err;
	fs_apply_readahead();

	ns_read();
	err = do_lookup(fs_inode_of(parent), name, &e);
	ns_unlock();
	if (err)
		fuse_reply_err(req, err);
	else
		fuse_reply_entry(req, &e);
}

static void fs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	fs_inode_forget(fs_inode_of(ino), nlookup);
	fuse_reply_none(req);
}

static void fs_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	for (size_t i = 0; i < count; i++)
		fs_inode_forget(fs_inode_of(forgets[i].ino), forgets[i].nlookup);
	fuse_reply_none(req);
}

static void fs_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct stat st;
	int err;
	fs_apply_readahead();

	/* With or without a handle the answer comes from the inode: one truth. */
	(void)fi;
	ns_read();
	err = stat_inode(fs_inode_of(ino), &st);
	ns_unlock();
	if (err)
		fuse_reply_err(req, err);
	else
		fuse_reply_attr(req, &st, fs_ctx.timeout);
}

static int do_truncate(struct fs_inode *inode, struct fs_handle *h, off_t size)
{
	char path[PROCPATH_LEN];
	int err = 0;

	if (fs_tensor_is_committed(inode)) {
		err = fs_tensor_make_raw(inode, size == 0);
		if (err)
			return err;
	}
	if (h && h->fd >= 0 && h->writable) {
		if (ftruncate(h->fd, size) != 0)
			return errno;
	} else {
		fs_inode_procpath(inode, path, sizeof path);
		if (truncate(path, size) != 0)
			return errno;
	}
	fs_tensor_written(inode);
	/* A truncate(2) with no writer open has no release to follow it. */
	fs_tensor_opened(inode, true, false);
	fs_tensor_released(inode, true);
	return 0;
}

static void fs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int valid,
		       struct fuse_file_info *fi)
{
	struct fs_inode *inode = fs_inode_of(ino);
	struct fs_handle *h = fi ? handle_of(fi) : NULL;
	char path[PROCPATH_LEN];
	struct stat st;
	int err = 0;

	if (valid & FUSE_SET_ATTR_SIZE)
		ns_for_change(inode);
	else
		ns_read();
	fs_inode_procpath(inode, path, sizeof path);
	if (valid & FUSE_SET_ATTR_MODE) {
		int r = (h && h->fd >= 0) ? fchmod(h->fd, attr->st_mode) : chmod(path, attr->st_mode);
		if (r != 0) {
			err = errno;
			goto out;
		}
	}
	if (valid & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
		uid_t uid = (valid & FUSE_SET_ATTR_UID) ? attr->st_uid : (uid_t)-1;
		gid_t gid = (valid & FUSE_SET_ATTR_GID) ? attr->st_gid : (gid_t)-1;
		if (fchownat(inode->fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0) {
			err = errno;
			goto out;
		}
	}
	if (valid & FUSE_SET_ATTR_SIZE) {
		err = do_truncate(inode, h, attr->st_size);
		if (err)
			goto out;
		fs_inode_procpath(inode, path, sizeof path);
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
		int r;
		if (h && h->fd >= 0) {
			r = futimens(h->fd, tv);
		} else if (inode->type == S_IFLNK) {
			/* A /proc path would follow the link: use the name. */
			char name[NAME_MAX + 1];
			int dfd = fs_inode_dirfd_name(inode, name, sizeof name);
			r = dfd < 0 ? -1 : utimensat(dfd, name, tv, AT_SYMLINK_NOFOLLOW);
			if (dfd >= 0) {
				int e = errno;
				close(dfd);
				errno = e;
			}
		} else {
			r = utimensat(AT_FDCWD, path, tv, 0);
		}
		if (r != 0) {
			err = errno;
			goto out;
		}
	}
	err = stat_inode(inode, &st);
out:
	ns_unlock();
	if (err)
		fuse_reply_err(req, err);
	else
		fuse_reply_attr(req, &st, fs_ctx.timeout);
}

static void fs_readlink(fuse_req_t req, fuse_ino_t ino)
{
	char buf[PATH_MAX + 1];
	ssize_t n;

	ns_read();
	n = readlinkat(fs_inode_of(ino)->fd, "", buf, sizeof buf);
	ns_unlock();
	if (n < 0)
		fuse_reply_err(req, errno);
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
	struct fs_inode *p = fs_inode_of(parent);
	struct caller_cred cred;
	struct fuse_entry_param e;
	int r, err;

	/* Names the store keeps for itself cannot be created: the mount could
	 * never show them and the store would take them for its own. */
	if (fs_name_hidden(name)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	ns_read();
	as_caller(req, &cred);
	if (kind == MAKE_DIR)
		r = mkdirat(p->fd, name, mode);
	else if (kind == MAKE_SYMLINK)
		r = symlinkat(target, p->fd, name);
	else
		r = mknodat(p->fd, name, mode, rdev);
	as_daemon(&cred);
	err = r != 0 ? errno : do_lookup(p, name, &e);
	ns_unlock();
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
static struct fs_inode *known_child(struct fs_inode *dir, const char *name)
{
	struct stat st;

	if (fstatat(dir->fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
		return NULL;
	return fs_inode_find(st.st_dev, st.st_ino);
}

static void fs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs_inode *p = fs_inode_of(parent);
	struct fs_inode *victim;
	int err;

	if (fs_name_hidden(name)) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	ns_write();
	victim = known_child(p, name);
	err = fs_tensor_unlink(p->fd, name);
	if (victim) {
		if (!err) {
			fs_tensor_name_gone(victim);
			fs_inode_set_name(victim, NULL, NULL);
		}
		fs_inode_unref(victim);
	}
	ns_unlock();
	fuse_reply_err(req, err);
}

static void fs_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs_inode *p = fs_inode_of(parent);
	int err = 0;

	if (fs_name_hidden(name)) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	ns_read();
	if (unlinkat(p->fd, name, AT_REMOVEDIR) != 0)
		err = errno;
	ns_unlock();
	fuse_reply_err(req, err);
}

static void fs_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags)
{
	struct fs_inode *p = fs_inode_of(parent), *np = fs_inode_of(newparent);
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
	ns_write();
	moved = known_child(p, name);
	victim = known_child(np, newname);
	err = fs_tensor_rename(p->fd, name, np->fd, newname, flags);
	if (!err) {
		if (moved) {
			fs_tensor_name_gone(moved);
			fs_inode_set_name(moved, np, newname);
		}
		if (victim && victim != moved) {
			fs_tensor_name_gone(victim);
			if (flags & RENAME_EXCHANGE)
				fs_inode_set_name(victim, p, name);
			else
				fs_inode_set_name(victim, NULL, NULL);
		}
	}
	if (moved)
		fs_inode_unref(moved);
	if (victim)
		fs_inode_unref(victim);
	ns_unlock();
	fuse_reply_err(req, err);
}

static void fs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	struct fs_inode *inode = fs_inode_of(ino), *np = fs_inode_of(newparent);
	struct fuse_entry_param e;
	char name[NAME_MAX + 1];
	int err, dfd;

	if (fs_name_hidden(newname)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	ns_write();
	dfd = fs_inode_dirfd_name(inode, name, sizeof name);
	if (dfd >= 0) {
		err = fs_tensor_link(dfd, name, np->fd, newname);
		close(dfd);
	} else if (linkat(inode->fd, "", np->fd, newname, AT_EMPTY_PATH) != 0) {
		err = errno; /* an unlinked-but-open object has no name to link from */
	} else {
		err = 0;
	}
	if (!err)
		err = do_lookup(np, newname, &e);
	ns_unlock();
	if (err)
		fuse_reply_err(req, err);
	else
		fuse_reply_entry(req, &e);
}

/* Opens the backing file of inode for h (ns held). */
static int open_backing(struct fs_inode *inode, int flags, struct fs_handle *h)
{
	char path[PROCPATH_LEN];

	/* O_NOFOLLOW would refuse the /proc magic link itself; O_DIRECT alignment
	 * is the kernel's business on our side, not the backing's. */
	flags &= ~(O_NOFOLLOW | O_CREAT | O_EXCL | O_DIRECT);
	fs_inode_procpath(inode, path, sizeof path);
	h->fd = open(path, flags | O_CLOEXEC);
	return h->fd < 0 ? errno : 0;
}

static bool wants_write(int flags)
{
	return (flags & O_ACCMODE) != O_RDONLY;
}

/* keep_cache when the backing file has not changed since it was last opened
 * (changes through the mount keep the page cache right by themselves; a
 * commit invalidates it explicitly). */
static bool unchanged_since_last_open(struct fs_inode *inode)
{
	struct stat st;
	bool same;

	if (fstatat(inode->fd, "", &st, AT_EMPTY_PATH) != 0)
		return false;
	pthread_mutex_lock(&inode->lock);
	same = inode->seen_size == st.st_size && inode->seen_mtime.tv_sec == st.st_mtim.tv_sec &&
	       inode->seen_mtime.tv_nsec == st.st_mtim.tv_nsec;
	inode->seen_size = st.st_size;
	inode->seen_mtime = st.st_mtim;
	pthread_mutex_unlock(&inode->lock);
	return same;
}

static void fs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_inode *inode = fs_inode_of(ino);
	bool writable = wants_write(fi->flags);
	struct fs_handle *h = lcp_calloc(1, sizeof *h);
	int err;

	if (!h) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	h->fd = -1;
	h->writable = writable;
	if (writable || (fi->flags & O_TRUNC))
		ns_for_change(inode);
	else
		ns_read();
	if (fs_tensor_is_committed(inode)) {
		if (writable || (fi->flags & O_TRUNC)) {
			err = fs_tensor_make_raw(inode, (fi->flags & O_TRUNC) != 0);
			if (!err)
				err = open_backing(inode, fi->flags, h);
		} else {
			err = fs_tensor_open_read(inode, h);
			if (err == ENOENT) /* turned raw meanwhile */
				err = open_backing(inode, fi->flags, h);
		}
	} else {
		err = open_backing(inode, fi->flags, h);
	}
	if (!err) {
		fi->keep_cache = unchanged_since_last_open(inode) && !(fi->flags & O_TRUNC);
		fs_tensor_opened(inode, writable, (fi->flags & O_TRUNC) != 0);
		fs_inode_ref(inode);
	}
	ns_unlock();
	if (err) {
		lcp_free(h);
		fuse_reply_err(req, err);
		return;
	}
	fi->fh = (uint64_t)(uintptr_t)h;
	fi->noflush = !writable;
	if (fuse_reply_open(req, fi) == -ENOENT) {
		/* The caller is gone (interrupted): no release will come. */
		fs_tensor_released(inode, writable);
		fs_tensor_handle_close(h);
		lcp_free(h);
		fs_inode_unref(inode);
	}
}

static void fs_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	struct fs_inode *p = fs_inode_of(parent);
	struct fs_inode *inode = NULL;
	struct caller_cred cred;
	struct fuse_entry_param e;
	struct fs_handle *h;
	int err = 0, fd;

	if (fs_name_hidden(name)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	h = lcp_calloc(1, sizeof *h);
	if (!h) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	h->writable = wants_write(fi->flags);
	ns_read();
	as_caller(req, &cred);
	fd = openat(p->fd, name, (fi->flags | O_CREAT | O_CLOEXEC) & ~(O_NOFOLLOW | O_DIRECT),
		    mode);
	as_daemon(&cred);
	h->fd = fd;
	if (fd < 0)
		err = errno;
	else
		err = do_lookup(p, name, &e);
	if (!err) {
		inode = fs_inode_of(e.ino);
		(void)unchanged_since_last_open(inode); /* record what we saw */
		fs_tensor_opened(inode, h->writable, true);
		fs_inode_ref(inode);
	}
	ns_unlock();
	if (err) {
		if (fd >= 0)
			close(fd);
		lcp_free(h);
		fuse_reply_err(req, err);
		return;
	}
	fi->fh = (uint64_t)(uintptr_t)h;
	if (fuse_reply_create(req, &e, fi) == -ENOENT) {
		fs_tensor_released(inode, h->writable);
		fs_tensor_handle_close(h);
		lcp_free(h);
		fs_inode_unref(inode);
	}
}

static void fs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct fs_handle *h = handle_of(fi);

	if (h->sf) {
		char *buf = lcp_malloc(size ? size : 1);
		ssize_t n;
		if (!buf) {
			fuse_reply_err(req, ENOMEM);
			return;
		}
		n = fs_tensor_read(fs_inode_of(ino), h, buf, size, off);
		if (n < 0)
			fuse_reply_err(req, (int)-n);
		else
			fuse_reply_buf(req, buf, (size_t)n);
		lcp_free(buf);
		return;
	}
	struct fuse_bufvec bv = FUSE_BUFVEC_INIT(size);
	bv.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	bv.buf[0].fd = h->fd;
	bv.buf[0].pos = off;
	fuse_reply_data(req, &bv, FUSE_BUF_SPLICE_MOVE);
}

static void fs_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *in, off_t off,
			 struct fuse_file_info *fi)
{
	struct fs_handle *h = handle_of(fi);
	struct fuse_bufvec out = FUSE_BUFVEC_INIT(fuse_buf_size(in));
	ssize_t n;

	if (h->fd < 0) {
		fuse_reply_err(req, EBADF);
		return;
	}
	out.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	out.buf[0].fd = h->fd;
	out.buf[0].pos = off;
	n = fuse_buf_copy(&out, in, 0);
	fs_tensor_written(fs_inode_of(ino));
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_write(req, (size_t)n);
}

static void fs_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_handle *h = handle_of(fi);
	int err = 0;

	(void)ino;
	/* close() of a duplicate gives the backing its close-time semantics
	 * (errors of network filesystems) without closing our fd. */
	if (h->fd >= 0) {
		int d = dup(h->fd);
		if (d < 0 || close(d) != 0)
			err = errno;
	}
	fuse_reply_err(req, err);
}

static void fs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_inode *inode = fs_inode_of(ino);
	struct fs_handle *h = handle_of(fi);

	fs_tensor_handle_close(h);
	fs_tensor_released(inode, h->writable);
	lcp_free(h);
	fs_inode_unref(inode);
	fuse_reply_err(req, 0);
}

static void fs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct fs_handle *h = handle_of(fi);
	int r = 0;

	(void)ino;
	if (h->fd >= 0)
		r = datasync ? fdatasync(h->fd) : fsync(h->fd);
	fuse_reply_err(req, r ? errno : 0);
}

static void fs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_dir *d = lcp_calloc(1, sizeof *d);
	int fd, err = 0;

	if (!d) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	ns_read();
	fd = openat(fs_inode_of(ino)->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ns_unlock();
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
	struct statvfs sv;
	int r;

	ns_read();
	r = fstatvfs(fs_inode_of(ino)->fd, &sv);
	ns_unlock();
	if (r != 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_statfs(req, &sv);
}

static void fs_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
			 struct fuse_file_info *fi)
{
	struct fs_handle *h = handle_of(fi);
	int err = 0;

	if (h->fd < 0 || !h->writable) {
		fuse_reply_err(req, EBADF);
		return;
	}
	if (fallocate(h->fd, mode, off, len) != 0)
		err = errno;
	fs_tensor_written(fs_inode_of(ino));
	fuse_reply_err(req, err);
}

static void fs_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
			       struct fuse_file_info *fi_in, fuse_ino_t ino_out, off_t off_out,
			       struct fuse_file_info *fi_out, size_t len, int flags)
{
	struct fs_handle *in = handle_of(fi_in), *out = handle_of(fi_out);
	ssize_t n;

	(void)ino_in;
	/* A committed source has no backing bytes to copy: EXDEV makes the
	 * kernel fall back to reading and writing through the mount. */
	if (in->fd < 0 || out->fd < 0) {
		fuse_reply_err(req, EXDEV);
		return;
	}
	n = copy_file_range(in->fd, &off_in, out->fd, &off_out, len, (unsigned)flags);
	if (n < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	fs_tensor_written(fs_inode_of(ino_out));
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
