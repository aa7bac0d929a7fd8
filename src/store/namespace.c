/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Namespace operations that keep a compressed file's sidecar with its
 * payload, materializing and discarding. A committed file is two names (the
 * payload NAME and its sidecar), tied by the payload's random file id. No
 * rename moves both at once, so every operation is a sequence of steps
 * ordered so that (1) at each instant no name reads wrong bytes (a name
 * whose sidecar is in flight reads "cannot tell", never its payload bytes),
 * and (2) a crash after any step leaves a state lcp_store_recover_dir
 * completes or undoes. store.h lists the orders; lcpfs.5 documents them.
 */
#include "lcpfs/store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/err_errno.h"
#include "common/io.h"
#include "common/log.h"
#include "store/store_priv.h"

#define COPY_STEP_BYTES (4u << 20)

struct lcp_materialize {
	int dirfd;                   /* dup of the caller's */
	char *name;
	struct stat payload_st;      /* the payload decoded */
	struct lcp_store_temp tmp;
	bool committed;
	uint64_t result_dev, result_ino;
};

void lcp_store_materialize_free(struct lcp_materialize *m)
{
	if (!m)
		return;
	lcp_store_temp_remove(m->dirfd, &m->tmp);
	if (m->dirfd >= 0)
		close(m->dirfd);
	lcp_free(m->name);
	lcp_free(m);
}

lcp_err lcp_store_materialize_prepare_at(int dirfd, const char *name,
					 struct lcp_materialize **out)
{
	struct lcp_materialize *m;
	struct lcp_store_file *f = NULL;
	struct lcp_probe pr;
	uint8_t *buf = NULL;
	lcp_err err;

	*out = NULL;
	m = lcp_calloc(1, sizeof *m);
	if (!m)
		return LCP_ERR_NOMEM;
	m->tmp.fd = -1;
	m->dirfd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
	m->name = lcp_strdup(name);
	if (m->dirfd < 0 || !m->name) {
		err = m->dirfd < 0 ? lcp_err_from_errno(errno) : LCP_ERR_NOMEM;
		goto out;
	}
	err = lcp_store_probe_at(dirfd, name, NULL, &pr, &f);
	if (err == LCP_OK)
		err = pr.repr == LCP_REPR_RAW        ? LCP_ERR_NOENT
		      : pr.repr == LCP_REPR_DAMAGED || !f ? LCP_ERR_CHECKSUM
		      : pr.nlink > 1                 ? LCP_ERR_MLINK
							: LCP_OK;
	if (err)
		goto out;
	if (fstat(lcp_store_file_fd(f), &m->payload_st) != 0) {
		err = lcp_err_from_errno(errno);
		goto out;
	}
	if ((err = lcp_store_temp_create(dirfd, 'm', 0600, &m->tmp)) != LCP_OK)
		goto out;
	buf = lcp_malloc(COPY_STEP_BYTES);
	if (!buf) {
		err = LCP_ERR_NOMEM;
		goto out;
	}
	/* Blocks of zeros stay holes: a sparse file materializes sparse. */
	for (uint64_t off = 0; off < lcp_store_logical_size(f) && err == LCP_OK;) {
		size_t got;
		err = lcp_store_read(f, buf, COPY_STEP_BYTES, off, &got, NULL);
		if (err == LCP_OK)
			err = lcp_pwrite_sparse(m->tmp.fd, buf, got, off);
		off += got;
	}
	if (err == LCP_OK && ftruncate(m->tmp.fd, (off_t)lcp_store_logical_size(f)) != 0)
		err = lcp_err_from_errno(errno);
	/* The payload's owner, mode, xattrs and times, as of now; the commit
	 * carries them again only if they changed meanwhile. */
	if (err == LCP_OK)
		err = lcp_store_copy_metadata(lcp_store_file_fd(f), &m->payload_st, m->tmp.fd);
	if (err == LCP_OK)
		err = lcp_store_fsync(m->tmp.fd);
out:
	lcp_free(buf);
	lcp_store_close(f);
	if (err) {
		lcp_store_materialize_free(m);
		return err;
	}
	*out = m;
	return LCP_OK;
}

/* The commit of a materialize, under the name lock. */
static lcp_err materialize_commit_locked(struct lcp_materialize *m, const char *scname)
{
	struct stat now, res;
	int pfd;
	lcp_err err;

	/* Still the payload that was decoded? Its metadata may have changed
	 * (it is copied now), its bytes and identity not. */
	err = lcp_store_open_regular(m->dirfd, m->name, O_RDONLY, &pfd, &now);
	if (err == LCP_ERR_NOENT || err == LCP_ERR_UNSUPPORTED)
		return LCP_ERR_AGAIN;
	if (err)
		return err;
	if (now.st_dev != m->payload_st.st_dev || now.st_ino != m->payload_st.st_ino ||
	    now.st_size != m->payload_st.st_size ||
	    now.st_mtim.tv_sec != m->payload_st.st_mtim.tv_sec ||
	    now.st_mtim.tv_nsec != m->payload_st.st_mtim.tv_nsec)
		err = LCP_ERR_AGAIN;
	else if (now.st_nlink > 1)
		err = LCP_ERR_MLINK;
	if (err == LCP_OK && !lcp_store_same_version(&now, &m->payload_st)) {
		/* A chmod, chown or xattr change since the decode: carry it. */
		err = lcp_store_copy_metadata(pfd, &now, m->tmp.fd);
		if (err == LCP_OK)
			err = lcp_store_fsync(m->tmp.fd);
	}
	close(pfd);
	if (err)
		return err;
	/* The rename makes NAME raw (its sidecar is now provably stale: NAME
	 * does not hold its payload); the bytes are the reconstruction NAME
	 * read as, so no reader sees a change at any instant. */
	if (renameat(m->dirfd, m->tmp.name, m->dirfd, m->name) != 0)
		return lcp_err_from_errno(errno);
	lcp_store_crash_point("materialize");
	lcp_store_remove_sidecar(m->dirfd, scname);
	fsync(m->dirfd);
	if (fstat(m->tmp.fd, &res) == 0) {
		m->result_dev = (uint64_t)res.st_dev;
		m->result_ino = (uint64_t)res.st_ino;
	}
	close(m->tmp.fd);
	m->tmp.fd = -1;
	m->committed = true;
	return LCP_OK;
}

lcp_err lcp_store_materialize_commit(struct lcp_materialize *m)
{
	char scname[LCP_STORE_NAME_LEN];
	struct lcp_name_lock lock;
	lcp_err err;

	if (m->committed || m->tmp.fd < 0)
		return LCP_ERR_INVAL;
	if ((err = lcp_store_sidecar_name(m->name, scname)) != LCP_OK)
		return err;
	if ((err = lcp_store_lock_names(m->dirfd, m->name, -1, NULL, &lock)) != LCP_OK)
		return err;
	err = materialize_commit_locked(m, scname);
	lcp_store_unlock_names(&lock);
	return err;
}

void lcp_store_materialize_result(const struct lcp_materialize *m, uint64_t *dev, uint64_t *ino)
{
	*dev = m->result_dev;
	*ino = m->result_ino;
}

lcp_err lcp_store_materialize_at(int dirfd, const char *name)
{
	struct lcp_materialize *m;
	lcp_err err = lcp_store_materialize_prepare_at(dirfd, name, &m);
	if (err)
		return err;
	err = lcp_store_materialize_commit(m);
	lcp_store_materialize_free(m);
	return err;
}

struct lcp_discard {
	int dirfd;                 /* not owned */
	char name[LCP_STORE_NAME_LEN];
	char scname[LCP_STORE_NAME_LEN];
	struct stat payload_st;    /* the payload as its metadata was copied */
	struct lcp_store_temp tmp; /* the empty file; fd -1 once renamed */
};

/* The swap of a discard, under the name lock: NAME must still be the
 * payload d->payload_st was, with the metadata the temporary has. */
static lcp_err discard_locked(struct lcp_discard *d)
{
	struct stat now;

	if (fstatat(d->dirfd, d->name, &now, AT_SYMLINK_NOFOLLOW) != 0)
		return errno == ENOENT ? LCP_ERR_AGAIN : lcp_err_from_errno(errno);
	if (now.st_dev != d->payload_st.st_dev || now.st_ino != d->payload_st.st_ino)
		return LCP_ERR_AGAIN;
	if (now.st_nlink > 1)
		return LCP_ERR_MLINK;
	/* A chmod, chown or xattr change since the copy: prepare again (a
	 * copy now would need an fsync here, where the caller may hold its
	 * locks). */
	if (!lcp_store_same_version(&now, &d->payload_st))
		return LCP_ERR_AGAIN;
	/* An empty file is not the sidecar's payload: from the rename on, NAME
	 * reads empty, and the sidecar is provably stale. */
	if (renameat(d->dirfd, d->tmp.name, d->dirfd, d->name) != 0)
		return lcp_err_from_errno(errno);
	lcp_store_crash_point("discard");
	lcp_store_remove_sidecar(d->dirfd, d->scname);
	fsync(d->dirfd);
	return LCP_OK;
}

lcp_err lcp_store_discard_prepare_at(int dirfd, const char *name, struct lcp_discard **out)
{
	struct lcp_discard *d;
	struct lcp_probe pr;
	int fd;
	lcp_err err;

	*out = NULL;
	if (strlen(name) >= LCP_STORE_NAME_LEN)
		return LCP_ERR_NAMETOOLONG;
	if (!(d = lcp_calloc(1, sizeof *d)))
		return LCP_ERR_NOMEM;
	d->dirfd = dirfd;
	d->tmp.fd = -1;
	memcpy(d->name, name, strlen(name) + 1);
	if ((err = lcp_store_sidecar_name(name, d->scname)) != LCP_OK ||
	    (err = lcp_store_probe_at(dirfd, name, NULL, &pr, NULL)) != LCP_OK)
		goto fail;
	if (pr.repr == LCP_REPR_RAW)
		err = LCP_ERR_NOENT;
	else if (pr.nlink > 1)
		err = LCP_ERR_MLINK;
	else
		err = lcp_store_open_regular(dirfd, name, O_RDONLY, &fd, &d->payload_st);
	if (err)
		goto fail;
	/* The payload itself is never changed: other processes (other machines'
	 * mounts) may be reading it. A new empty file with its metadata takes
	 * its name, as a truncation's time. */
	struct timespec now_mtime[2] = {{0, UTIME_OMIT}, {0, UTIME_NOW}};
	if ((uint64_t)d->payload_st.st_ino != pr.ino)
		err = LCP_ERR_AGAIN;
	else if ((err = lcp_store_temp_create(dirfd, 'd', 0600, &d->tmp)) == LCP_OK &&
		 (err = lcp_store_copy_metadata(fd, &d->payload_st, d->tmp.fd)) == LCP_OK)
		err = futimens(d->tmp.fd, now_mtime) == 0 ? lcp_store_fsync(d->tmp.fd)
							  : lcp_err_from_errno(errno);
	close(fd);
	if (err)
		goto fail;
	*out = d;
	return LCP_OK;
fail:
	lcp_store_discard_free(d);
	return err;
}

lcp_err lcp_store_discard_commit(struct lcp_discard *d, uint64_t *dev, uint64_t *ino)
{
	struct lcp_name_lock lock;
	struct stat res;
	lcp_err err;

	if (d->tmp.fd < 0)
		return LCP_ERR_INVAL;
	if ((err = lcp_store_lock_names(d->dirfd, d->name, -1, NULL, &lock)) != LCP_OK)
		return err;
	err = discard_locked(d);
	lcp_store_unlock_names(&lock);
	if (err)
		return err;
	if (fstat(d->tmp.fd, &res) == 0) {
		*dev = (uint64_t)res.st_dev;
		*ino = (uint64_t)res.st_ino;
	}
	close(d->tmp.fd); /* renamed into place: nothing to remove */
	d->tmp.fd = -1;
	return LCP_OK;
}

void lcp_store_discard_free(struct lcp_discard *d)
{
	if (!d)
		return;
	if (d->tmp.fd >= 0)
		lcp_store_temp_remove(d->dirfd, &d->tmp);
	lcp_free(d);
}

lcp_err lcp_store_discard_at(int dirfd, const char *name, uint64_t *dev, uint64_t *ino)
{
	struct lcp_discard *d;
	lcp_err err = lcp_store_discard_prepare_at(dirfd, name, &d);

	if (err == LCP_OK)
		err = lcp_store_discard_commit(d, dev, ino);
	lcp_store_discard_free(d);
	return err;
}

/* Whether NAME has a sidecar of its own that must travel with it:
 * *has set for compressed or damaged files. LCP_ERR_NOENT when absent;
 * another error when it cannot tell (the operation is then refused). */
static lcp_err own_sidecar(int dirfd, const char *name, struct lcp_probe *pr, bool *has)
{
	lcp_err err = lcp_store_probe_at(dirfd, name, NULL, pr, NULL);
	*has = err == LCP_OK && pr->regular && pr->repr != LCP_REPR_RAW;
	return err;
}

static bool name_taken(int dirfd, const char *name)
{
	struct stat st;
	return fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

static lcp_err unlink_locked(int dirfd, const char *name, const char *scname)
{
	struct lcp_probe pr;
	bool has;
	lcp_err err = own_sidecar(dirfd, name, &pr, &has);

	if (err == LCP_ERR_NOENT)
		return err;
	/* Payload first: once NAME is gone its sidecar guards nothing, whatever
	 * we could tell about it. */
	if (unlinkat(dirfd, name, 0) != 0)
		return lcp_err_from_errno(errno);
	if (has)
		lcp_store_crash_point("unlink");
	lcp_store_remove_sidecar(dirfd, scname);
	return LCP_OK;
}

lcp_err lcp_store_unlink_at(int dirfd, const char *name)
{
	char scname[LCP_STORE_NAME_LEN];
	struct lcp_name_lock lock;
	lcp_err err = lcp_store_sidecar_name(name, scname);

	if (err)
		return err;
	/* No sidecar at its name: a plain file, no step of ours to keep in
	 * order (and no lock file made in a directory of plain files). */
	if (!name_taken(dirfd, scname))
		return unlinkat(dirfd, name, 0) == 0 ? LCP_OK : lcp_err_from_errno(errno);
	if ((err = lcp_store_lock_names(dirfd, name, -1, NULL, &lock)) != LCP_OK)
		return err;
	err = unlink_locked(dirfd, name, scname);
	lcp_store_unlock_names(&lock);
	return err;
}

/* Moves the payload X (with sidecar xsc) and raw Y (whose sidecar name ysc
 * holds no sidecar of its own) through an exchange. */
static lcp_err exchange_one_side(int xd, const char *xn, const char *xsc, int yd, const char *yn,
				 const char *ysc)
{
	/* Link first when Y's sidecar name is free: Y (raw) beside X's sidecar
	 * is provably stale, and after the exchange Y's name holds X's payload
	 * with its sidecar already there. */
	bool linked = !name_taken(yd, ysc) && linkat(xd, xsc, yd, ysc, 0) == 0;
	if (renameat2(xd, xn, yd, yn, RENAME_EXCHANGE) != 0) {
		lcp_err err = lcp_err_from_errno(errno);
		if (linked)
			unlinkat(yd, ysc, 0);
		return err;
	}
	lcp_store_crash_point("exchange");
	if (linked)
		unlinkat(xd, xsc, 0);
	else if (renameat(xd, xsc, yd, ysc) != 0)
		lcp_log(LCP_LOG_ERROR, "exchange of %s and %s: sidecar not moved (%s); "
			"recovery will place it", xn, yn, strerror(errno));
	return LCP_OK;
}

static lcp_err rename_locked(int olddirfd, const char *oldname, const char *osc, int newdirfd,
			     const char *newname, const char *nsc, unsigned int flags)
{
	struct lcp_probe po, pn;
	bool a_has, t_has, t_exists;
	lcp_err err;

	if ((err = own_sidecar(olddirfd, oldname, &po, &a_has)) != LCP_OK)
		return err;
	err = own_sidecar(newdirfd, newname, &pn, &t_has);
	if (err && err != LCP_ERR_NOENT)
		return err;
	t_exists = err == LCP_OK;
	/* Two names of one inode (or one name): rename(2)'s own semantics,
	 * and each name keeps its sidecar. */
	if (!a_has && !t_has) {
		if (renameat2(olddirfd, oldname, newdirfd, newname, flags) != 0)
			return lcp_err_from_errno(errno);
		return LCP_OK;
	}
	if (t_exists && po.dev == pn.dev && po.ino == pn.ino) {
		if (renameat2(olddirfd, oldname, newdirfd, newname, flags) != 0)
			return lcp_err_from_errno(errno);
		return LCP_OK;
	}
	if (flags & RENAME_EXCHANGE) {
		if (!t_exists)
			return LCP_ERR_NOENT;
		if (a_has && t_has) {
			/* Payloads, then sidecars: in between both names read
			 * "cannot tell" (each payload beside the other's sidecar). */
			if (renameat2(olddirfd, oldname, newdirfd, newname, RENAME_EXCHANGE) != 0)
				return lcp_err_from_errno(errno);
			lcp_store_crash_point("exchange");
			if (renameat2(olddirfd, osc, newdirfd, nsc, RENAME_EXCHANGE) != 0)
				lcp_log(LCP_LOG_ERROR, "exchange of %s and %s: sidecars not exchanged "
					"(%s); recovery will pair them", oldname, newname,
					strerror(errno));
			return LCP_OK;
		}
		if (a_has)
			return exchange_one_side(olddirfd, oldname, osc, newdirfd, newname, nsc);
		return exchange_one_side(newdirfd, newname, nsc, olddirfd, oldname, osc);
	}
	if (!a_has) {
		/* A raw file over a compressed one: T's sidecar is provably stale
		 * once A is there, and then goes. */
		if (renameat2(olddirfd, oldname, newdirfd, newname, flags) != 0)
			return lcp_err_from_errno(errno);
		lcp_store_crash_point("rename-payload");
		lcp_store_remove_sidecar(newdirfd, nsc);
		return LCP_OK;
	}
	/* A is compressed. With T's sidecar name free, link A's sidecar there
	 * first: every name reads right at every instant. Otherwise the payload
	 * goes first (an atomic replace) and T reads "cannot tell" until A's
	 * sidecar replaces T's. */
	if (!name_taken(newdirfd, nsc) && linkat(olddirfd, osc, newdirfd, nsc, 0) == 0) {
		lcp_store_crash_point("rename-link");
		if (renameat2(olddirfd, oldname, newdirfd, newname, flags) != 0) {
			err = lcp_err_from_errno(errno);
			unlinkat(newdirfd, nsc, 0);
			return err;
		}
		lcp_store_crash_point("rename-payload");
		unlinkat(olddirfd, osc, 0);
		return LCP_OK;
	}
	if (renameat2(olddirfd, oldname, newdirfd, newname, flags) != 0)
		return lcp_err_from_errno(errno);
	lcp_store_crash_point("rename-payload");
	if (renameat(olddirfd, osc, newdirfd, nsc) != 0)
		lcp_log(LCP_LOG_ERROR, "rename of %s to %s: sidecar not moved (%s); recovery "
			"will place it", oldname, newname, strerror(errno));
	return LCP_OK;
}

lcp_err lcp_store_rename_at(int olddirfd, const char *oldname, int newdirfd, const char *newname,
			    unsigned int flags)
{
	char osc[LCP_STORE_NAME_LEN], nsc[LCP_STORE_NAME_LEN];
	struct lcp_name_lock lock;
	lcp_err err;

	if ((flags & ~(unsigned)(RENAME_NOREPLACE | RENAME_EXCHANGE)) ||
	    (flags & RENAME_NOREPLACE && flags & RENAME_EXCHANGE))
		return LCP_ERR_INVAL;
	if ((err = lcp_store_sidecar_name(oldname, osc)) != LCP_OK ||
	    (err = lcp_store_sidecar_name(newname, nsc)) != LCP_OK)
		return err;
	/* Plain files on both sides: rename(2) alone. */
	if (!name_taken(olddirfd, osc) && !name_taken(newdirfd, nsc))
		return renameat2(olddirfd, oldname, newdirfd, newname, flags) == 0
			       ? LCP_OK
			       : lcp_err_from_errno(errno);
	if ((err = lcp_store_lock_names(olddirfd, oldname, newdirfd, newname, &lock)) != LCP_OK)
		return err;
	err = rename_locked(olddirfd, oldname, osc, newdirfd, newname, nsc, flags);
	lcp_store_unlock_names(&lock);
	return err;
}

static lcp_err link_locked(int olddirfd, const char *oldname, const char *osc, int newdirfd,
			   const char *newname, const char *nsc)
{
	struct lcp_probe pr;
	bool has;
	lcp_err err;

	if ((err = own_sidecar(olddirfd, oldname, &pr, &has)) != LCP_OK)
		return err;
	if (!has) {
		if (linkat(olddirfd, oldname, newdirfd, newname, 0) != 0)
			return lcp_err_from_errno(errno);
		return LCP_OK;
	}
	if (name_taken(newdirfd, newname))
		return LCP_ERR_EXIST;
	/* The new name does not exist: a sidecar under its name guards nothing. */
	lcp_store_remove_sidecar(newdirfd, nsc);
	/* Sidecar first: a crash in between leaves a sidecar whose name holds
	 * no payload and whose payload has its own, which recovery removes. */
	if (linkat(olddirfd, osc, newdirfd, nsc, 0) != 0)
		return lcp_err_from_errno(errno);
	lcp_store_crash_point("link-sidecar");
	if (linkat(olddirfd, oldname, newdirfd, newname, 0) != 0) {
		err = lcp_err_from_errno(errno);
		unlinkat(newdirfd, nsc, 0);
		return err;
	}
	return LCP_OK;
}

lcp_err lcp_store_link_at(int olddirfd, const char *oldname, int newdirfd, const char *newname)
{
	char osc[LCP_STORE_NAME_LEN], nsc[LCP_STORE_NAME_LEN];
	struct lcp_name_lock lock;
	lcp_err err;

	if ((err = lcp_store_sidecar_name(oldname, osc)) != LCP_OK ||
	    (err = lcp_store_sidecar_name(newname, nsc)) != LCP_OK)
		return err;
	if (!name_taken(olddirfd, osc) && !name_taken(newdirfd, nsc))
		return linkat(olddirfd, oldname, newdirfd, newname, 0) == 0
			       ? LCP_OK
			       : lcp_err_from_errno(errno);
	if ((err = lcp_store_lock_names(olddirfd, oldname, newdirfd, newname, &lock)) != LCP_OK)
		return err;
	err = link_locked(olddirfd, oldname, osc, newdirfd, newname, nsc);
	lcp_store_unlock_names(&lock);
	return err;
}
