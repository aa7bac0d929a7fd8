/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Sidecar-aware namespace operations and mount-time recovery.
 *
 * A committed file is two names: the payload NAME and the sidecar
 * ".NAME.lcpfs", tied by the payload's random file id. No rename can move
 * both at once, so every operation moves them in an order whose crash
 * windows recovery can repair: lcp_store_recover_dir pairs each sidecar with
 * the payload in its directory that carries its file id (renaming the
 * sidecar beside it), and removes sidecars whose payload is gone. A crash
 * mid-operation thus ends as if the operation finished or never started,
 * for the file the operation concerned. (Across directories recovery cannot
 * pair them: a crash inside a cross-directory rename of a committed file
 * leaves its payload reading as damaged until it is renamed back.)
 */
#include "lcpfs/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/log.h"
#include "store/sidecar.h"
#include "store/store_priv.h"

static lcp_err errno_err(int e)
{
	switch (e) {
	case ENOENT:
		return LCP_ERR_NOENT;
	case EEXIST:
	case ENOTEMPTY:
		return LCP_ERR_EXIST;
	case EACCES:
	case EPERM:
		return LCP_ERR_ACCES;
	case ENOSPC:
	case EDQUOT:
		return LCP_ERR_NOSPC;
	case EINVAL:
		return LCP_ERR_INVAL;
	case ENAMETOOLONG:
		return LCP_ERR_RANGE;
	default:
		return LCP_ERR_IO;
	}
}

/* True when name in dirfd is committed (has a matching sidecar). */
static bool is_committed(int dirfd, const char *name)
{
	struct lcp_store_file *f;
	if (lcp_store_open_at(dirfd, name, NULL, &f) != LCP_OK)
		return false;
	lcp_store_close(f);
	return true;
}

lcp_err lcp_store_materialize_at(int dirfd, const char *name)
{
	struct lcp_store_file *f;
	char tmp[64], scname[256];
	struct stat st;
	uint8_t *buf = NULL;
	lcp_err err = lcp_store_open_at(dirfd, name, NULL, &f);
	int fd = -1;
	const size_t step = 4u << 20;

	if (err)
		return err;
	if ((err = lcp_store_sidecar_name(name, scname, sizeof scname)) != LCP_OK)
		goto out;
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
		err = errno_err(errno);
		goto out;
	}
	if ((err = lcp_store_temp_name('m', tmp, sizeof tmp)) != LCP_OK)
		goto out;
	fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, st.st_mode & 07777);
	if (fd < 0) {
		err = errno_err(errno);
		goto out;
	}
	buf = lcp_malloc(step);
	if (!buf) {
		err = LCP_ERR_NOMEM;
		goto out;
	}
	for (uint64_t off = 0; off < lcp_store_logical_size(f) && err == LCP_OK;) {
		size_t got;
		err = lcp_store_read(f, buf, step, off, &got, NULL);
		if (err == LCP_OK)
			err = lcp_write_all(fd, buf, got);
		off += got;
	}
	if (err == LCP_OK && fchown(fd, st.st_uid, st.st_gid) != 0 && errno != EPERM)
		err = LCP_ERR_IO;
	if (err == LCP_OK && fsync(fd) != 0)
		err = errno_err(errno);
	if (err == LCP_OK) {
		struct timespec ts[2] = {st.st_atim, st.st_mtim};
		futimens(fd, ts);
	}
	/* The rename makes NAME raw (its sidecar now stale); the reconstructed
	 * bytes are the same, so readers see no change at any instant. */
	if (err == LCP_OK && renameat(dirfd, tmp, dirfd, name) != 0)
		err = errno_err(errno);
	if (err == LCP_OK) {
		unlinkat(dirfd, scname, 0);
		fsync(dirfd);
	}
out:
	if (fd >= 0) {
		close(fd);
		if (err)
			unlinkat(dirfd, tmp, 0);
	}
	lcp_free(buf);
	lcp_store_close(f);
	return err;
}

lcp_err lcp_store_unlink_at(int dirfd, const char *name)
{
	char scname[256];
	/* Payload first: a crash in between leaves a stale sidecar, which is
	 * ignored and later removed by recovery. */
	if (unlinkat(dirfd, name, 0) != 0)
		return errno_err(errno);
	if (lcp_store_sidecar_name(name, scname, sizeof scname) == LCP_OK)
		unlinkat(dirfd, scname, 0);
	return LCP_OK;
}

lcp_err lcp_store_rename_at(int olddirfd, const char *oldname, int newdirfd, const char *newname,
			    unsigned int flags)
{
	char osc[256], nsc[256];
	bool osc_ok = lcp_store_sidecar_name(oldname, osc, sizeof osc) == LCP_OK;
	bool nsc_ok = lcp_store_sidecar_name(newname, nsc, sizeof nsc) == LCP_OK;
	bool ocommitted = osc_ok && is_committed(olddirfd, oldname);

	if (ocommitted && !nsc_ok)
		return LCP_ERR_RANGE; /* its sidecar could not follow it */
	if (flags & RENAME_EXCHANGE) {
		bool ncommitted = nsc_ok && is_committed(newdirfd, newname);
		/* Sidecars first, then payloads: in between, both names hold
		 * payloads whose sidecars are beside the other name, which
		 * recovery re-pairs by file id. */
		if (ocommitted && ncommitted) {
			if (renameat2(olddirfd, osc, newdirfd, nsc, RENAME_EXCHANGE) != 0)
				return errno_err(errno);
		} else if (ocommitted) {
			if (renameat(olddirfd, osc, newdirfd, nsc) != 0)
				return errno_err(errno);
		} else if (ncommitted) {
			if (renameat(newdirfd, nsc, olddirfd, osc) != 0)
				return errno_err(errno);
		}
		if (renameat2(olddirfd, oldname, newdirfd, newname, flags) != 0) {
			int e = errno;
			/* Undo the sidecar move so both files stay as they were. */
			if (ocommitted && ncommitted)
				renameat2(olddirfd, osc, newdirfd, nsc, RENAME_EXCHANGE);
			else if (ocommitted)
				renameat(newdirfd, nsc, olddirfd, osc);
			else if (ncommitted)
				renameat(olddirfd, osc, newdirfd, nsc);
			return errno_err(e);
		}
		return LCP_OK;
	}
	if (flags & RENAME_NOREPLACE) {
		/* The payload rename is the atomic existence check; the sidecar
		 * follows (recovery moves it if a crash comes in between). */
		if (renameat2(olddirfd, oldname, newdirfd, newname, RENAME_NOREPLACE) != 0)
			return errno_err(errno);
		if (ocommitted)
			renameat(olddirfd, osc, newdirfd, nsc);
		else if (nsc_ok)
			unlinkat(newdirfd, nsc, 0); /* stale, no payload was there */
		return LCP_OK;
	}
	if (flags)
		return LCP_ERR_INVAL;
	if (ocommitted) {
		/* Sidecar over the target's sidecar, then the payload over the
		 * target: in between the old name holds a payload whose sidecar
		 * sits beside the new name, which recovery re-pairs. */
		if (renameat(olddirfd, osc, newdirfd, nsc) != 0)
			return errno_err(errno);
		if (renameat(olddirfd, oldname, newdirfd, newname) != 0) {
			int e = errno;
			renameat(newdirfd, nsc, olddirfd, osc);
			return errno_err(e);
		}
		return LCP_OK;
	}
	if (renameat(olddirfd, oldname, newdirfd, newname) != 0)
		return errno_err(errno);
	/* A raw file replaced the target: the target's sidecar is now stale. */
	if (nsc_ok)
		unlinkat(newdirfd, nsc, 0);
	return LCP_OK;
}

lcp_err lcp_store_link_at(int olddirfd, const char *oldname, int newdirfd, const char *newname)
{
	char osc[256], nsc[256];
	bool ocommitted = lcp_store_sidecar_name(oldname, osc, sizeof osc) == LCP_OK &&
			  is_committed(olddirfd, oldname);

	if (!ocommitted) {
		if (linkat(olddirfd, oldname, newdirfd, newname, 0) != 0)
			return errno_err(errno);
		return LCP_OK;
	}
	if (lcp_store_sidecar_name(newname, nsc, sizeof nsc) != LCP_OK)
		return LCP_ERR_RANGE;
	/* The new name must not exist; a stale sidecar under its name may. */
	if (faccessat(newdirfd, newname, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
		return LCP_ERR_EXIST;
	unlinkat(newdirfd, nsc, 0);
	/* Sidecar first: a crash in between leaves a sidecar without payload,
	 * which recovery removes. */
	if (linkat(olddirfd, osc, newdirfd, nsc, 0) != 0)
		return errno_err(errno);
	if (linkat(olddirfd, oldname, newdirfd, newname, 0) != 0) {
		int e = errno;
		unlinkat(newdirfd, nsc, 0);
		return errno_err(e);
	}
	return LCP_OK;
}

struct scent {
	char *scname;     /* ".X.lcpfs" */
	uint8_t id[LCP_FILE_ID_LEN];
	bool paired;      /* X holds the payload with this id */
	bool valid;       /* parsed */
};

struct orphan {
	char *name;
	uint8_t id[LCP_FILE_ID_LEN];
};

/* Strip ".X.lcpfs" to X into out. */
static void payload_name_of(const char *scname, char *out, size_t out_len)
{
	size_t n = strlen(scname) - 1 - strlen(LCP_SIDECAR_SUFFIX);
	snprintf(out, out_len, "%.*s", (int)n, scname + 1);
}

static bool file_has_id(int dirfd, const char *name, uint8_t id[LCP_FILE_ID_LEN])
{
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	struct stat st;
	bool ok = false;
	if (fd < 0)
		return false;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
		ok = lcp_store_payload_id(fd, id);
	close(fd);
	return ok;
}

static lcp_err recover_one(int dirfd, int depth);

static lcp_err recover_entries(int dirfd, DIR *d, int depth)
{
	struct scent *sc = NULL;
	struct orphan *orph = NULL;
	size_t nsc = 0, norph = 0, cap_sc = 0, cap_or = 0;
	lcp_err err = LCP_OK;
	struct dirent *e;

	while ((e = readdir(d)) != NULL && err == LCP_OK) {
		const char *nm = e->d_name;
		if (!strcmp(nm, ".") || !strcmp(nm, ".."))
			continue;
		if (strncmp(nm, LCP_TEMP_PREFIX, strlen(LCP_TEMP_PREFIX)) == 0) {
			unlinkat(dirfd, nm, 0);
			continue;
		}
		if (e->d_type == DT_DIR) {
			int sub = openat(dirfd, nm, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
			if (sub >= 0) {
				err = recover_one(sub, depth + 1);
				close(sub);
			}
			continue;
		}
		if (lcp_store_is_internal_name(nm)) {
			if (nsc == cap_sc) {
				size_t nc = cap_sc ? cap_sc * 2 : 16;
				struct scent *p = lcp_realloc(sc, nc * sizeof *p);
				if (!p) {
					err = LCP_ERR_NOMEM;
					break;
				}
				sc = p;
				cap_sc = nc;
			}
			memset(&sc[nsc], 0, sizeof sc[nsc]);
			sc[nsc].scname = lcp_strdup(nm);
			if (!sc[nsc].scname) {
				err = LCP_ERR_NOMEM;
				break;
			}
			nsc++;
			continue;
		}
		uint8_t id[LCP_FILE_ID_LEN];
		if ((e->d_type == DT_REG || e->d_type == DT_UNKNOWN) && file_has_id(dirfd, nm, id)) {
			if (norph == cap_or) {
				size_t nc = cap_or ? cap_or * 2 : 16;
				struct orphan *p = lcp_realloc(orph, nc * sizeof *p);
				if (!p) {
					err = LCP_ERR_NOMEM;
					break;
				}
				orph = p;
				cap_or = nc;
			}
			orph[norph].name = lcp_strdup(nm);
			memcpy(orph[norph].id, id, LCP_FILE_ID_LEN);
			if (!orph[norph].name) {
				err = LCP_ERR_NOMEM;
				break;
			}
			norph++;
		}
	}
	/* Pair sidecars with the payload beside them. */
	for (size_t i = 0; i < nsc && err == LCP_OK; i++) {
		struct lcp_sidecar s;
		char pname[256];
		if (lcp_store_load_sidecar(dirfd, sc[i].scname, &s, NULL) != LCP_OK)
			continue;
		sc[i].valid = true;
		memcpy(sc[i].id, s.file_id, LCP_FILE_ID_LEN);
		lcp_sidecar_free(&s);
		payload_name_of(sc[i].scname, pname, sizeof pname);
		for (size_t j = 0; j < norph; j++) {
			if (orph[j].name && !strcmp(orph[j].name, pname) &&
			    !memcmp(orph[j].id, sc[i].id, LCP_FILE_ID_LEN)) {
				sc[i].paired = true;
				lcp_free(orph[j].name);
				orph[j].name = NULL; /* not an orphan */
			}
		}
	}
	/* Each orphan payload takes the unpaired sidecar with its id: first
	 * every such sidecar moves to a temporary name, then to its place, so
	 * exchanges (two sidecars swapped) resolve too. */
	char (*tmp)[64] = lcp_calloc(nsc ? nsc : 1, sizeof *tmp);
	if (!tmp && err == LCP_OK)
		err = LCP_ERR_NOMEM;
	for (size_t i = 0; i < nsc && err == LCP_OK; i++) {
		if (!sc[i].valid || sc[i].paired)
			continue;
		for (size_t j = 0; j < norph; j++) {
			if (!orph[j].name || memcmp(orph[j].id, sc[i].id, LCP_FILE_ID_LEN))
				continue;
			if (lcp_store_temp_name('r', tmp[i], sizeof tmp[i]) == LCP_OK &&
			    renameat(dirfd, sc[i].scname, dirfd, tmp[i]) == 0) {
				lcp_free(sc[i].scname);
				sc[i].scname = NULL;
				char dst[256];
				if (lcp_store_sidecar_name(orph[j].name, dst, sizeof dst) == LCP_OK)
					sc[i].scname = lcp_strdup(dst);
				sc[i].paired = true;
				lcp_free(orph[j].name);
				orph[j].name = NULL;
			}
			break;
		}
	}
	for (size_t i = 0; i < nsc && err == LCP_OK; i++) {
		if (tmp[i][0] && sc[i].scname) {
			renameat(dirfd, tmp[i], dirfd, sc[i].scname);
			lcp_log(LCP_LOG_INFO, "recovery: re-paired sidecar %s", sc[i].scname);
		}
	}
	/* Orphans left with no sidecar of their own: a hard link made during a
	 * crash takes a link of a paired sidecar with the same id. */
	for (size_t j = 0; j < norph && err == LCP_OK; j++) {
		if (!orph[j].name)
			continue;
		for (size_t i = 0; i < nsc; i++) {
			char dst[256];
			if (sc[i].scname && sc[i].paired && !tmp[i][0] &&
			    !memcmp(sc[i].id, orph[j].id, LCP_FILE_ID_LEN) &&
			    lcp_store_sidecar_name(orph[j].name, dst, sizeof dst) == LCP_OK) {
				linkat(dirfd, sc[i].scname, dirfd, dst, 0);
				break;
			}
		}
	}
	/* Sidecars with no payload are stale. Only ones that parse as ours: a
	 * damaged sidecar may still guard a payload from being read as raw, and
	 * a user's own ".X.lcpfs" file is not ours to delete. */
	for (size_t i = 0; i < nsc && err == LCP_OK; i++)
		if (sc[i].scname && sc[i].valid && !sc[i].paired)
			unlinkat(dirfd, sc[i].scname, 0);
	if (err == LCP_OK)
		fsync(dirfd);
	lcp_free(tmp);
	for (size_t i = 0; i < nsc; i++)
		lcp_free(sc[i].scname);
	for (size_t j = 0; j < norph; j++)
		lcp_free(orph[j].name);
	lcp_free(sc);
	lcp_free(orph);
	return err;
}

/* Depth limit: a backing tree deeper than this is left for the next mount
 * rather than risking the stack or the fd table. */
#define RECOVER_MAX_DEPTH 64

static lcp_err recover_one(int dirfd, int depth)
{
	DIR *d;
	int fd;
	lcp_err err;
	if (depth > RECOVER_MAX_DEPTH)
		return LCP_OK;
	fd = dup(dirfd);
	if (fd < 0)
		return LCP_ERR_IO;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return LCP_ERR_IO;
	}
	rewinddir(d);
	err = recover_entries(dirfd, d, depth);
	closedir(d);
	return err;
}

lcp_err lcp_store_recover_dir(int dirfd)
{
	return recover_one(dirfd, 0);
}
