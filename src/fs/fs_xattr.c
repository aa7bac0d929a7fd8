/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Extended attributes: the read-only user.lcpfs.* attributes are computed by
 * the tensor layer (state, format, ratio, reason, quality figures, stored
 * size, preset, the inspect report whole and in pieces); every other
 * attribute passes through to the backing object.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "common/alloc.h"
#include "fs/fs_priv.h"

#define COMPUTED_PREFIX "user.lcpfs."
#define ACL_PREFIX "system.posix_acl_"

/* Listed by listxattr when they have a value for the inode (and after
 * them inspect.0, inspect.1, ... as inspect.parts counts them). */
static const char *const computed_keys[] = {
	"state", "format", "ratio", "reason", "sqnr_db", "min_cosine", "stored_size", "preset",
	"inspect", "inspect.parts",
};
/* Room for the longest name of the list, NUL included. */
#define COMPUTED_NAME_MAX 64

static const char *computed_key(const char *name)
{
	size_t n = strlen(COMPUTED_PREFIX);
	return strncmp(name, COMPUTED_PREFIX, n) == 0 ? name + n : NULL;
}

/* Removes the backing's own user.lcpfs.* names (the daemon's bookkeeping,
 * e.g. a remembered refusal) from a name list; returns the new length. */
static size_t drop_own_names(char *list, size_t len)
{
	size_t out = 0;

	for (size_t i = 0; i < len;) {
		size_t n = strnlen(list + i, len - i) + 1;
		if (!computed_key(list + i)) {
			memmove(list + out, list + i, n);
			out += n;
		}
		i += n;
	}
	return out;
}

/* An O_PATH fd of the inode's object (caller closes) and its /proc path
 * in path[FS_PROCPATH_LEN], or -1 with *err. */
static int object_path(struct fs_mount *m, struct fs_inode *inode, char *path, int *err)
{
	int fd = fs_inode_path_fd(m, inode, err);

	if (fd >= 0)
		fs_procpath(fd, path, FS_PROCPATH_LEN);
	return fd;
}

/* Replies with len bytes of value for a request of size (0: length only). */
static void reply_value(fuse_req_t req, const char *value, ssize_t len, size_t size)
{
	if (len < 0)
		fuse_reply_err(req, (int)-len);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)len);
	else if ((size_t)len > size)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, value, (size_t)len);
}

void fs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct fs_mount *m = fs_mount_of(req);
	struct fs_inode *inode = fs_inode_of(m, ino);
	const char *key = computed_key(name);
	char path[FS_PROCPATH_LEN];
	char *buf = NULL;
	ssize_t len;
	int err, fd;

	if (size) {
		buf = lcp_malloc(size);
		if (!buf) {
			fuse_reply_err(req, ENOMEM);
			return;
		}
	}
	fs_rwlock_rdlock(&m->ns);
	if (key) {
		len = fs_tensor_xattr(m, inode, key, buf, size);
	} else {
		fd = object_path(m, inode, path, &err);
		len = fd < 0 ? -err : getxattr(path, name, buf, size);
		if (len < 0 && fd >= 0)
			len = -errno;
		if (fd >= 0)
			close(fd);
	}
	fs_rwlock_unlock(&m->ns);
	reply_value(req, buf, len, size);
	lcp_free(buf);
}

void fs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
		 size_t size, int flags)
{
	struct fs_mount *m = fs_mount_of(req);
	char path[FS_PROCPATH_LEN];
	int err = 0, fd;

	/* The computed attributes describe the store's state: not settable. */
	if (computed_key(name)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	/* An ACL the kernel does not enforce here must not land on the backing. */
	if (!m->acl && strncmp(name, ACL_PREFIX, strlen(ACL_PREFIX)) == 0) {
		fuse_reply_err(req, EOPNOTSUPP);
		return;
	}
	fs_rwlock_rdlock(&m->ns);
	fd = object_path(m, fs_inode_of(m, ino), path, &err);
	if (fd >= 0) {
		if (setxattr(path, name, value, size, flags) != 0)
			err = errno;
		close(fd);
	}
	fs_rwlock_unlock(&m->ns);
	fuse_reply_err(req, err);
}

void fs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	struct fs_mount *m = fs_mount_of(req);
	char path[FS_PROCPATH_LEN];
	int err = 0, fd;

	if (computed_key(name)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	fs_rwlock_rdlock(&m->ns);
	fd = object_path(m, fs_inode_of(m, ino), path, &err);
	if (fd >= 0) {
		if (removexattr(path, name) != 0)
			err = errno;
		close(fd);
	}
	fs_rwlock_unlock(&m->ns);
	fuse_reply_err(req, err);
}

/* Appends name and its NUL to list (len bytes used, cap room) if it fits. */
static void append_name(char *list, size_t *len, size_t cap, const char *name)
{
	size_t n = strlen(name) + 1;

	if (*len + n <= cap) {
		memcpy(list + *len, name, n);
		*len += n;
	}
}

/* The names of the computed attributes a regular file has now, NUL-separated,
 * into *list (lcp_malloc'ed, caller frees; NULL when none or out of memory)
 * and their length. ns held. */
static size_t computed_names(struct fs_mount *m, struct fs_inode *inode, char **list)
{
	size_t nkeys = sizeof computed_keys / sizeof computed_keys[0], len = 0, parts = 0;
	char value[64];

	*list = NULL;
	if (inode->type != S_IFREG)
		return 0;
	ssize_t n = fs_tensor_xattr(m, inode, "inspect.parts", value, sizeof value - 1);
	if (n > 0) {
		value[n] = '\0';
		parts = (size_t)strtoull(value, NULL, 10);
	}
	size_t cap = (nkeys + parts) * COMPUTED_NAME_MAX;
	if (!(*list = lcp_malloc(cap)))
		return 0;
	for (size_t i = 0; i < nkeys; i++) {
		char name[COMPUTED_NAME_MAX];
		if (fs_tensor_xattr(m, inode, computed_keys[i], NULL, 0) < 0)
			continue;
		snprintf(name, sizeof name, "%s%s", COMPUTED_PREFIX, computed_keys[i]);
		append_name(*list, &len, cap, name);
	}
	for (size_t k = 0; k < parts; k++) {
		char name[COMPUTED_NAME_MAX];
		snprintf(name, sizeof name, "%sinspect.%zu", COMPUTED_PREFIX, k);
		append_name(*list, &len, cap, name);
	}
	return len;
}

void fs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct fs_mount *m = fs_mount_of(req);
	struct fs_inode *inode = fs_inode_of(m, ino);
	char path[FS_PROCPATH_LEN];
	size_t extra, cap;
	ssize_t len;
	char *buf, *computed;
	int err, fd;

	fs_rwlock_rdlock(&m->ns);
	fd = object_path(m, inode, path, &err);
	if (fd < 0) {
		fs_rwlock_unlock(&m->ns);
		fuse_reply_err(req, err);
		return;
	}
	len = listxattr(path, NULL, 0);
	if (len < 0) {
		/* Symlinks and some filesystems have none: still list ours. */
		len = 0;
	}
	extra = computed_names(m, inode, &computed);
	cap = (size_t)len + extra + 1;
	buf = lcp_malloc(cap);
	if (!buf) {
		lcp_free(computed);
		close(fd);
		fs_rwlock_unlock(&m->ns);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	len = len ? listxattr(path, buf, (size_t)len) : 0;
	if (len < 0)
		len = 0; /* changed meanwhile: list ours only */
	len = (ssize_t)drop_own_names(buf, (size_t)len);
	if (extra) {
		/* The backing's list only shrank: room is left for ours. */
		memcpy(buf + len, computed, extra);
		len += (ssize_t)extra;
	}
	lcp_free(computed);
	close(fd);
	fs_rwlock_unlock(&m->ns);
	reply_value(req, buf, len, size);
	lcp_free(buf);
}
