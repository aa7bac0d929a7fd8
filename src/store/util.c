/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Store helpers (store_priv.h): reserved names, side-effect-free opens,
 * locked temporaries, payload headers, sidecar loading, metadata carrying,
 * the refusal marker and the crash-injection hook.
 */
#include "store/store_priv.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/checksum.h"
#include "common/err_errno.h"
#include "lcpfs/store.h"

#define HEX32_LEN 32

static bool all_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return s[n] == '\0';
}

enum lcp_name_kind lcp_store_name_kind(const char *name)
{
	size_t n = strlen(name), s = strlen(LCP_SIDECAR_SUFFIX);

	if (strncmp(name, LCP_TEMP_PREFIX, strlen(LCP_TEMP_PREFIX)) == 0)
		return LCP_NAME_TEMP;
	if (strncmp(name, LCP_HASHED_PREFIX, strlen(LCP_HASHED_PREFIX)) == 0 &&
	    all_hex(name + strlen(LCP_HASHED_PREFIX), HEX32_LEN))
		return LCP_NAME_HASHED;
	if (strncmp(name, LCP_PARKED_PREFIX, strlen(LCP_PARKED_PREFIX)) == 0 &&
	    all_hex(name + strlen(LCP_PARKED_PREFIX), HEX32_LEN))
		return LCP_NAME_PARKED;
	if (strncmp(name, LCP_RESERVED_PREFIX, strlen(LCP_RESERVED_PREFIX)) == 0)
		return LCP_NAME_RESERVED;
	/* ".X.lcpfs" with a non-empty X */
	if (n > s + 1 && name[0] == '.' && strcmp(name + n - s, LCP_SIDECAR_SUFFIX) == 0)
		return LCP_NAME_SIDECAR;
	return LCP_NAME_USER;
}

bool lcp_store_is_internal_name(const char *name)
{
	return lcp_store_name_kind(name) != LCP_NAME_USER;
}

static void put_hex(char *out, const uint8_t *b, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[b[i] >> 4];
		out[2 * i + 1] = digits[b[i] & 15];
	}
	out[2 * n] = '\0';
}

lcp_err lcp_store_sidecar_name(const char *name, char *out)
{
	size_t n = strlen(name);

	if (n == 0 || strchr(name, '/'))
		return LCP_ERR_INVAL;
	if (n > LCP_STORE_NAME_LEN - 1)
		return LCP_ERR_NAMETOOLONG;
	if (1 + n + strlen(LCP_SIDECAR_SUFFIX) <= LCP_STORE_NAME_LEN - 1) {
		snprintf(out, LCP_STORE_NAME_LEN, ".%s%s", name, LCP_SIDECAR_SUFFIX);
		return LCP_OK;
	}
	/* Too long for ".NAME.lcpfs": a fixed-length name from a hash of NAME.
	 * The ".lcpfs-" prefix is reserved, so no user name's sidecar can be
	 * spelled this way. */
	uint64_t h[2];
	uint8_t b[16];
	lcp_xxh3_128(name, n, h);
	for (int i = 0; i < 8; i++) {
		b[i] = (uint8_t)(h[0] >> (56 - 8 * i));
		b[8 + i] = (uint8_t)(h[1] >> (56 - 8 * i));
	}
	memcpy(out, LCP_HASHED_PREFIX, strlen(LCP_HASHED_PREFIX));
	put_hex(out + strlen(LCP_HASHED_PREFIX), b, sizeof b);
	return LCP_OK;
}

void lcp_store_parked_name(const uint8_t id[LCP_FILE_ID_LEN], char *out)
{
	memcpy(out, LCP_PARKED_PREFIX, strlen(LCP_PARKED_PREFIX));
	put_hex(out + strlen(LCP_PARKED_PREFIX), id, LCP_FILE_ID_LEN);
}

lcp_err lcp_store_open_regular(int dirfd, const char *name, int flags, int *fd, struct stat *st)
{
	struct stat before;

	*fd = -1;
	if (fstatat(dirfd, name, &before, AT_SYMLINK_NOFOLLOW) != 0)
		return lcp_err_from_errno(errno);
	*st = before;
	if (!S_ISREG(before.st_mode))
		return LCP_ERR_UNSUPPORTED;
	/* O_NONBLOCK and O_NOFOLLOW: if the name was swapped for a FIFO or a
	 * symlink after the fstatat, the open neither blocks nor follows it. */
	int f = openat(dirfd, name, flags | O_NONBLOCK | O_NOCTTY | O_NOFOLLOW | O_CLOEXEC);
	if (f < 0)
		return lcp_err_from_errno(errno);
	if (fstat(f, st) != 0) {
		lcp_err err = lcp_err_from_errno(errno);
		close(f);
		return err;
	}
	if (!S_ISREG(st->st_mode) || st->st_dev != before.st_dev || st->st_ino != before.st_ino) {
		close(f);
		return LCP_ERR_AGAIN;
	}
	*fd = f;
	return LCP_OK;
}

bool lcp_store_same_version(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
	       a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

static lcp_err random_bytes(uint8_t *out, size_t n)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = getrandom(out + got, n - got, 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return lcp_err_from_errno(errno);
		}
		got += (size_t)r;
	}
	return LCP_OK;
}

lcp_err lcp_store_random_id(uint8_t id[LCP_FILE_ID_LEN])
{
	return random_bytes(id, LCP_FILE_ID_LEN);
}

/* An open-file-description lock: held while the fd is open, whichever
 * thread or process looks. false when the backing does not support them. */
static bool ofd_lock(int fd, short type, bool *unsupported)
{
	struct flock fl;
	memset(&fl, 0, sizeof fl);
	fl.l_type = type;
	fl.l_whence = SEEK_SET;
	if (fcntl(fd, F_OFD_SETLK, &fl) == 0)
		return true;
	*unsupported = errno == EINVAL || errno == ENOLCK || errno == EOPNOTSUPP;
	return false;
}

lcp_err lcp_store_temp_create(int dirfd, char tag, unsigned mode, struct lcp_store_temp *t)
{
	uint8_t r[8];
	struct stat a, b;
	bool unsupported = false;
	lcp_err err = random_bytes(r, sizeof r);

	t->fd = -1;
	if (err)
		return err;
	memcpy(t->name, LCP_TEMP_PREFIX, strlen(LCP_TEMP_PREFIX));
	put_hex(t->name + strlen(LCP_TEMP_PREFIX), r, sizeof r);
	snprintf(t->name + strlen(t->name), sizeof t->name - strlen(t->name), ".%c", tag);
	t->fd = openat(dirfd, t->name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
		       (mode_t)mode);
	if (t->fd < 0)
		return lcp_err_from_errno(errno);
	/* Locked before anyone may take it for a crash's leftover; a recovery
	 * that removed it in between is seen below. Without lock support
	 * (some network filesystems) the temporary is simply unprotected. */
	if (!ofd_lock(t->fd, F_WRLCK, &unsupported) && !unsupported) {
		err = lcp_err_from_errno(errno);
		goto fail;
	}
	if (fstat(t->fd, &a) != 0 || fstatat(dirfd, t->name, &b, AT_SYMLINK_NOFOLLOW) != 0 ||
	    a.st_dev != b.st_dev || a.st_ino != b.st_ino) {
		err = LCP_ERR_AGAIN;
		goto fail;
	}
	return LCP_OK;
fail:
	close(t->fd);
	t->fd = -1;
	return err;
}

void lcp_store_temp_remove(int dirfd, struct lcp_store_temp *t)
{
	struct stat a, b;
	if (t->fd < 0)
		return;
	/* Only if the name is still ours: once renamed into place it is not. */
	if (fstat(t->fd, &a) == 0 && fstatat(dirfd, t->name, &b, AT_SYMLINK_NOFOLLOW) == 0 &&
	    a.st_dev == b.st_dev && a.st_ino == b.st_ino)
		unlinkat(dirfd, t->name, 0);
	close(t->fd);
	t->fd = -1;
}

bool lcp_store_temp_remove_if_dead(int dirfd, const char *name)
{
	struct stat st;
	bool unsupported = false, removed = false;
	int fd;

	if (lcp_store_open_regular(dirfd, name, O_RDONLY, &fd, &st) != LCP_OK)
		return false;
	if (ofd_lock(fd, F_RDLCK, &unsupported) || unsupported) {
		struct stat now;
		if (fstatat(dirfd, name, &now, AT_SYMLINK_NOFOLLOW) == 0 && now.st_ino == st.st_ino &&
		    now.st_dev == st.st_dev)
			removed = unlinkat(dirfd, name, 0) == 0;
	}
	close(fd);
	return removed;
}

lcp_err lcp_store_read_header(int fd, uint64_t size, uint8_t hdr[LCP_PAYLOAD_HEADER_LEN],
			      bool *valid)
{
	uint8_t id[LCP_FILE_ID_LEN];
	size_t n = size < LCP_PAYLOAD_HEADER_LEN ? (size_t)size : LCP_PAYLOAD_HEADER_LEN;
	lcp_err err;

	memset(hdr, 0, LCP_PAYLOAD_HEADER_LEN);
	*valid = false;
	err = lcp_pread_all(fd, hdr, n, 0);
	if (err == LCP_ERR_TRUNCATED)
		return LCP_ERR_AGAIN; /* shrank since its stat */
	if (err)
		return err;
	*valid = n == LCP_PAYLOAD_HEADER_LEN && lcp_payload_header_check(hdr, id);
	return LCP_OK;
}

lcp_err lcp_store_load_sidecar_fd(int fd, const struct stat *st, struct lcp_sidecar *sc)
{
	uint8_t *buf;
	lcp_err err;

	memset(sc, 0, sizeof *sc);
	if ((uint64_t)st->st_size > LCP_MAX_SIDECAR_BYTES)
		return LCP_ERR_FORMAT;
	buf = lcp_malloc((size_t)st->st_size + 1);
	if (!buf)
		return LCP_ERR_NOMEM;
	err = lcp_pread_all(fd, buf, (size_t)st->st_size, 0);
	if (err == LCP_OK)
		err = lcp_sidecar_parse(buf, (size_t)st->st_size, sc);
	else if (err == LCP_ERR_TRUNCATED)
		err = LCP_ERR_AGAIN;
	lcp_free(buf);
	return err;
}

bool lcp_store_payload_body_matches(int fd, uint64_t size, const struct lcp_sidecar *sc)
{
	const struct lcp_sc_chunk *first = NULL;
	bool match = false;

	if (size != sc->payload_size)
		return false;
	for (uint32_t i = 0; i < sc->nregions; i++)
		for (uint32_t c = 0; c < sc->regions[i].nchunks; c++)
			if (!first || sc->regions[i].chunks[c].payload_off < first->payload_off)
				first = &sc->regions[i].chunks[c];
	if (!first || first->stored_len == 0 || first->stored_len > LCP_MAX_CHUNK_OUT_BYTES)
		return false;
	uint8_t *b = lcp_malloc((size_t)first->stored_len);
	if (b && lcp_pread_all(fd, b, (size_t)first->stored_len, first->payload_off) == LCP_OK)
		match = lcp_xxh3(b, (size_t)first->stored_len) == first->stored_xxh3;
	lcp_free(b);
	return match;
}

/* Extended attributes of from_fd onto to_fd, except the store's own. */
static void copy_xattrs(int from_fd, int to_fd)
{
	char *names = NULL, *value = NULL;
	ssize_t len = flistxattr(from_fd, NULL, 0);

	if (len <= 0 || !(names = lcp_malloc((size_t)len)) ||
	    (len = flistxattr(from_fd, names, (size_t)len)) <= 0)
		goto out;
	for (char *n = names; n < names + len; n += strlen(n) + 1) {
		ssize_t vlen;
		if (strncmp(n, LCP_XATTR_PREFIX, strlen(LCP_XATTR_PREFIX)) == 0)
			continue;
		vlen = fgetxattr(from_fd, n, NULL, 0);
		if (vlen < 0)
			continue;
		lcp_free(value);
		value = lcp_malloc((size_t)vlen + 1);
		if (!value)
			break;
		vlen = fgetxattr(from_fd, n, value, (size_t)vlen);
		if (vlen >= 0)
			(void)fsetxattr(to_fd, n, value, (size_t)vlen, 0);
	}
out:
	lcp_free(names);
	lcp_free(value);
}

lcp_err lcp_store_copy_metadata(int from_fd, const struct stat *from, int to_fd)
{
	struct timespec ts[2] = {from->st_atim, from->st_mtim};

	/* chown clears setuid and setgid, so it comes first. */
	if (fchown(to_fd, from->st_uid, from->st_gid) != 0 && errno != EPERM)
		return lcp_err_from_errno(errno);
	if (fchmod(to_fd, from->st_mode & 07777) != 0)
		return lcp_err_from_errno(errno);
	if (from_fd >= 0)
		copy_xattrs(from_fd, to_fd);
	if (futimens(to_fd, ts) != 0)
		return lcp_err_from_errno(errno);
	return LCP_OK;
}

lcp_err lcp_store_copy_attributes(int from_fd, int to_fd)
{
	struct stat st;
	if (fstat(from_fd, &st) != 0)
		return lcp_err_from_errno(errno);
	return lcp_store_copy_metadata(from_fd, &st, to_fd);
}

lcp_err lcp_store_sidecar_attrs_at(int dirfd, const char *name, unsigned mode, uid_t uid,
				   gid_t gid, int *sync_fd)
{
	char scname[LCP_STORE_NAME_LEN];
	uint8_t magic[8];
	struct stat st;
	bool changed = false;
	int fd;
	lcp_err err = lcp_store_sidecar_name(name, scname);

	if (sync_fd)
		*sync_fd = -1;
	if (err == LCP_OK)
		err = lcp_store_open_regular(dirfd, scname, O_RDONLY, &fd, &st);
	if (err == LCP_ERR_NOENT || err == LCP_ERR_UNSUPPORTED)
		return LCP_OK;
	if (err)
		return err;
	if (lcp_pread_all(fd, magic, sizeof magic, 0) != LCP_OK ||
	    memcmp(magic, LCP_SIDECAR_MAGIC, sizeof magic) != 0)
		goto out; /* a stranger's file named like a sidecar */
	if ((uid != (uid_t)-1 && uid != st.st_uid) || (gid != (gid_t)-1 && gid != st.st_gid)) {
		if (fchown(fd, uid, gid) == 0)
			changed = true;
		else if (errno != EPERM)
			err = lcp_err_from_errno(errno);
	}
	/* After the chown, which may clear mode bits. */
	if (err == LCP_OK && (st.st_mode & 07777) != (mode & 0666)) {
		if (fchmod(fd, mode & 0666) == 0)
			changed = true;
		else
			err = lcp_err_from_errno(errno);
	}
	if (err == LCP_OK && changed && sync_fd) {
		*sync_fd = fd;
		return LCP_OK;
	}
out:
	close(fd);
	return err;
}

void lcp_store_refusal_set(int fd, const char *reason)
{
	(void)fsetxattr(fd, LCP_REFUSED_XATTR, reason, strlen(reason), 0);
}

lcp_err lcp_store_refusal_clear_at(int dirfd, const char *name)
{
	struct stat st;
	int fd;
	lcp_err err = lcp_store_open_regular(dirfd, name, O_RDONLY, &fd, &st);

	if (err)
		return err;
	if (fremovexattr(fd, LCP_REFUSED_XATTR) != 0 && errno != ENODATA && errno != ENOTSUP)
		err = lcp_err_from_errno(errno);
	close(fd);
	return err;
}

void lcp_store_remove_sidecar(int dirfd, const char *scname)
{
	struct stat st;
	uint8_t m[8];
	int fd;

	if (lcp_store_open_regular(dirfd, scname, O_RDONLY, &fd, &st) != LCP_OK)
		return;
	if (lcp_pread_all(fd, m, sizeof m, 0) == LCP_OK && memcmp(m, LCP_SIDECAR_MAGIC, 8) == 0) {
		struct stat now;
		if (fstatat(dirfd, scname, &now, AT_SYMLINK_NOFOLLOW) == 0 && now.st_ino == st.st_ino &&
		    now.st_dev == st.st_dev)
			unlinkat(dirfd, scname, 0);
	}
	close(fd);
}

lcp_err lcp_store_fsync(int fd)
{
	return fsync(fd) == 0 ? LCP_OK : lcp_err_from_errno(errno);
}

void lcp_store_crash_point(const char *step)
{
	const char *want = getenv("LCPFS_TEST_CRASH");
	if (want && strcmp(want, step) == 0)
		raise(SIGKILL);
}
