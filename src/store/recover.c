/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Recovery: what a mount (and `lcpfs recover`) does first. One walk of the
 * backing tree records every sidecar (by name, with its file id and whether
 * the name it guards holds its payload) and every payload (a regular file
 * whose header carries a file id); temporaries nobody holds are removed on
 * the way. Then sidecars are paired with payloads by file id across the
 * whole tree. Every change is a single rename, link or unlink, and a
 * sidecar is removed only with proof (store.h, lcp_store_recover_dir).
 */
#include "lcpfs/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/err_errno.h"
#include "common/log.h"
#include "store/store_priv.h"

/* A backing tree deeper than this is left for the next run rather than
 * risking the stack or the fd table. */
#define RECOVER_MAX_DEPTH 64

struct rsc {                  /* a sidecar-named entry */
	uint32_t dir;
	char *name;
	bool valid;               /* a regular file that parses as a sidecar */
	bool keep;                /* the name it guards holds its payload */
	bool done;                /* decided (or removed) */
	uint8_t id[LCP_FILE_ID_LEN];
};

struct rpay {                 /* a payload: a regular file whose header has an id */
	uint32_t dir;
	char *name;
	uint8_t id[LCP_FILE_ID_LEN];
	uint64_t dev, ino;
	bool paired;              /* a valid sidecar with its id is at its sidecar name */
	bool blocked;             /* its sidecar name holds something we leave alone */
	bool in_flight;           /* a live process's temporary: its sidecar is in use */
};

struct rec {
	int root;
	char **dirs;              /* paths below root ("" is root) */
	size_t ndirs, capdirs;
	struct rsc *scs;
	size_t nsc, capsc;
	struct rpay *pays;
	size_t npay, cappay;
};

static bool grow(void **p, size_t *cap, size_t n, size_t elem)
{
	if (n < *cap)
		return true;
	size_t nc = *cap ? *cap * 2 : 64;
	void *q = lcp_realloc(*p, nc * elem);
	if (!q)
		return false;
	*p = q;
	*cap = nc;
	return true;
}

/* Opens directory path below root, one component at a time, following no
 * symlink. */
static int open_dir(int root, const char *path)
{
	int fd = openat(root, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	const char *p = path;

	while (fd >= 0 && *p) {
		char comp[NAME_MAX + 1];
		size_t n = strcspn(p, "/");
		if (n > NAME_MAX) {
			close(fd);
			return -1;
		}
		memcpy(comp, p, n);
		comp[n] = '\0';
		int sub = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		close(fd);
		fd = sub;
		p += n + (p[n] == '/');
	}
	return fd;
}

static const char *dir_path(const struct rec *r, uint32_t dir)
{
	return r->dirs[dir][0] ? r->dirs[dir] : ".";
}

/* Whether name in dfd holds the payload sc describes, intact or with a
 * damaged header: its id at bytes 16..31, or its size and first chunk. */
static bool holds_payload_of(int dfd, const char *name, const struct lcp_sidecar *sc)
{
	uint8_t hdr[LCP_PAYLOAD_HEADER_LEN];
	struct stat st;
	bool valid, yes = false;
	int fd;

	if (lcp_store_open_regular(dfd, name, O_RDONLY, &fd, &st) != LCP_OK)
		return false;
	if (lcp_store_read_header(fd, (uint64_t)st.st_size, hdr, &valid) == LCP_OK)
		yes = (st.st_size >= LCP_PAYLOAD_HEADER_LEN &&
		       memcmp(hdr + 16, sc->file_id, LCP_FILE_ID_LEN) == 0) ||
		      lcp_store_payload_body_matches(fd, (uint64_t)st.st_size, sc);
	close(fd);
	return yes;
}

/* The name a sidecar-named entry guards (into out), or false (parked, or a
 * hashed name whose long name is not in this directory). */
static bool guarded_name(const char *scname, char *const *names, size_t n, char *out)
{
	enum lcp_name_kind k = lcp_store_name_kind(scname);
	if (k == LCP_NAME_SIDECAR) {
		size_t len = strlen(scname) - 1 - strlen(LCP_SIDECAR_SUFFIX);
		memcpy(out, scname + 1, len);
		out[len] = '\0';
		return true;
	}
	if (k != LCP_NAME_HASHED)
		return false;
	for (size_t i = 0; i < n; i++) {
		char sc[LCP_STORE_NAME_LEN];
		if (strlen(names[i]) + 1 + strlen(LCP_SIDECAR_SUFFIX) > LCP_STORE_NAME_LEN - 1 &&
		    lcp_store_sidecar_name(names[i], sc) == LCP_OK && strcmp(sc, scname) == 0) {
			strcpy(out, names[i]);
			return true;
		}
	}
	return false;
}

static int cmp_sc_name(const void *a, const void *b)
{
	return strcmp(((const struct rsc *)a)->name, ((const struct rsc *)b)->name);
}

static lcp_err add_sidecar(struct rec *r, int dfd, uint32_t dir, const char *name,
			   char *const *names, size_t n)
{
	struct lcp_sidecar sc;
	struct stat st;
	int fd;
	char guards[LCP_STORE_NAME_LEN];

	if (!grow((void **)&r->scs, &r->capsc, r->nsc, sizeof *r->scs))
		return LCP_ERR_NOMEM;
	struct rsc *s = &r->scs[r->nsc];
	memset(s, 0, sizeof *s);
	s->dir = dir;
	if (!(s->name = lcp_strdup(name)))
		return LCP_ERR_NOMEM;
	r->nsc++;
	lcp_err err = lcp_store_open_regular(dfd, name, O_RDONLY, &fd, &st);
	if (err) {
		/* Not a file of ours, or unreadable now: left alone, and it
		 * keeps any payload beside it from being paired. */
		lcp_log(LCP_LOG_WARN, "recovery: %s/%s: %s; left alone", dir_path(r, dir), name,
			err == LCP_ERR_UNSUPPORTED ? "not a regular file" : lcp_strerror(err));
		s->done = true;
		return err == LCP_ERR_NOMEM ? err : LCP_OK;
	}
	err = lcp_store_load_sidecar_fd(fd, &st, &sc);
	close(fd);
	if (err) {
		if (err != LCP_ERR_NOMEM)
			lcp_log(LCP_LOG_WARN, "recovery: %s/%s: %s; left alone", dir_path(r, dir),
				name, lcp_strerror(err));
		s->done = true;
		return err == LCP_ERR_NOMEM ? err : LCP_OK;
	}
	s->valid = true;
	memcpy(s->id, sc.file_id, LCP_FILE_ID_LEN);
	s->keep = guarded_name(name, names, n, guards) && holds_payload_of(dfd, guards, &sc);
	s->done = s->keep;
	lcp_sidecar_free(&sc);
	return LCP_OK;
}

static lcp_err add_payload(struct rec *r, int dfd, uint32_t dir, const char *name,
			   size_t sc_begin, bool in_flight)
{
	uint8_t hdr[LCP_PAYLOAD_HEADER_LEN];
	char scname[LCP_STORE_NAME_LEN];
	struct stat st;
	bool valid = false;
	int fd;

	if (lcp_store_open_regular(dfd, name, O_RDONLY, &fd, &st) != LCP_OK)
		return LCP_OK;
	lcp_err err = lcp_store_read_header(fd, (uint64_t)st.st_size, hdr, &valid);
	close(fd);
	if (err || !valid || lcp_store_sidecar_name(name, scname) != LCP_OK)
		return err == LCP_ERR_NOMEM ? err : LCP_OK;
	if (!grow((void **)&r->pays, &r->cappay, r->npay, sizeof *r->pays))
		return LCP_ERR_NOMEM;
	struct rpay *p = &r->pays[r->npay];
	memset(p, 0, sizeof *p);
	if (!(p->name = lcp_strdup(name)))
		return LCP_ERR_NOMEM;
	r->npay++;
	p->dir = dir;
	memcpy(p->id, hdr + 16, LCP_FILE_ID_LEN);
	p->dev = (uint64_t)st.st_dev;
	p->ino = (uint64_t)st.st_ino;
	p->in_flight = in_flight;
	if (in_flight) {
		p->paired = true; /* never a place to move a sidecar to */
		return LCP_OK;
	}
	/* This directory's sidecars are sorted by name from sc_begin on. */
	struct rsc key = {.name = scname};
	struct rsc *s = r->nsc > sc_begin ? bsearch(&key, r->scs + sc_begin, r->nsc - sc_begin,
						    sizeof key, cmp_sc_name)
					  : NULL;
	if (s) {
		p->paired = s->valid && memcmp(s->id, p->id, LCP_FILE_ID_LEN) == 0;
		p->blocked = !s->valid;
	} else if (fstatat(dfd, scname, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		p->blocked = true; /* something we did not record (a directory) */
	}
	return LCP_OK;
}

static lcp_err walk(struct rec *r, int dfd, const char *path, int depth);

static lcp_err walk_entries(struct rec *r, int dfd, uint32_t dir, char **names,
			    unsigned char *types, size_t n, int depth)
{
	size_t sc_begin = r->nsc;
	lcp_err err = LCP_OK;

	/* Temporaries first. A dead one goes; a live one (another process is
	 * packing) is no payload to pair with, but the sidecar carrying its id
	 * is in use: it must not be taken for stale. */
	for (size_t i = 0; i < n && err == LCP_OK; i++) {
		if (lcp_store_name_kind(names[i]) != LCP_NAME_TEMP)
			continue;
		if (lcp_store_temp_remove_if_dead(dfd, names[i]))
			lcp_log(LCP_LOG_INFO, "recovery: removed temporary %s/%s", dir_path(r, dir),
				names[i]);
		else
			err = add_payload(r, dfd, dir, names[i], r->nsc, true);
	}
	for (size_t i = 0; i < n && err == LCP_OK; i++) {
		enum lcp_name_kind k = lcp_store_name_kind(names[i]);
		if (k == LCP_NAME_SIDECAR || k == LCP_NAME_HASHED || k == LCP_NAME_PARKED)
			err = add_sidecar(r, dfd, dir, names[i], names, n);
	}
	if (err)
		return err;
	if (r->nsc > sc_begin)
		qsort(r->scs + sc_begin, r->nsc - sc_begin, sizeof *r->scs, cmp_sc_name);
	for (size_t i = 0; i < n && err == LCP_OK; i++)
		if (lcp_store_name_kind(names[i]) == LCP_NAME_USER &&
		    (types[i] == DT_REG || types[i] == DT_UNKNOWN))
			err = add_payload(r, dfd, dir, names[i], sc_begin, false);
	for (size_t i = 0; i < n && err == LCP_OK; i++) {
		struct stat st;
		if (lcp_store_is_internal_name(names[i]) || (types[i] != DT_DIR && types[i] != DT_UNKNOWN))
			continue;
		if (types[i] == DT_UNKNOWN &&
		    (fstatat(dfd, names[i], &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(st.st_mode)))
			continue;
		int sub = openat(dfd, names[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub < 0)
			continue;
		char *p = lcp_malloc(strlen(r->dirs[dir]) + strlen(names[i]) + 2);
		if (!p) {
			close(sub);
			return LCP_ERR_NOMEM;
		}
		sprintf(p, "%s%s%s", r->dirs[dir], r->dirs[dir][0] ? "/" : "", names[i]);
		err = walk(r, sub, p, depth + 1);
		lcp_free(p);
		close(sub);
	}
	return err;
}

static lcp_err walk(struct rec *r, int dfd, const char *path, int depth)
{
	char **names = NULL;
	unsigned char *types = NULL;
	size_t n = 0, cap = 0, tcap = 0;
	struct dirent *e;
	lcp_err err = LCP_OK;
	DIR *d;
	int fd;

	if (depth > RECOVER_MAX_DEPTH)
		return LCP_OK;
	/* A mount of a directory below ours renames there now. */
	if (depth > 0 && lcp_store_subtree_in_use(dfd))
		return LCP_ERR_BUSY;
	if (!grow((void **)&r->dirs, &r->capdirs, r->ndirs, sizeof *r->dirs) ||
	    !(r->dirs[r->ndirs] = lcp_strdup(path)))
		return LCP_ERR_NOMEM;
	uint32_t dir = (uint32_t)r->ndirs++;
	fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || !(d = fdopendir(fd))) {
		err = lcp_err_from_errno(errno);
		if (fd >= 0)
			close(fd);
		return err;
	}
	while ((e = readdir(d)) != NULL) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (!grow((void **)&names, &cap, n, sizeof *names) ||
		    !grow((void **)&types, &tcap, n, sizeof *types) ||
		    !(names[n] = lcp_strdup(e->d_name))) {
			err = LCP_ERR_NOMEM;
			break;
		}
		types[n++] = e->d_type;
	}
	closedir(d);
	if (err == LCP_OK)
		err = walk_entries(r, dfd, dir, names, types, n, depth);
	for (size_t i = 0; i < n; i++)
		lcp_free(names[i]);
	lcp_free(names);
	lcp_free(types);
	return err;
}

/* Moves sidecar s to name target in directory dir; true when done. */
static bool move_sidecar(struct rec *r, struct rsc *s, uint32_t dir, const char *target)
{
	int from = open_dir(r->root, r->dirs[s->dir]), to = open_dir(r->root, r->dirs[dir]);
	bool ok = from >= 0 && to >= 0 && renameat(from, s->name, to, target) == 0;
	char *copy = ok ? lcp_strdup(target) : NULL;

	if (!ok)
		lcp_log(LCP_LOG_WARN, "recovery: cannot move %s/%s to %s/%s: %s", dir_path(r, s->dir),
			s->name, dir_path(r, dir), target, strerror(errno));
	else
		lcp_log(LCP_LOG_INFO, "recovery: moved %s/%s to %s/%s", dir_path(r, s->dir), s->name,
			dir_path(r, dir), target);
	if (to >= 0 && ok)
		fsync(to);
	if (from >= 0 && ok)
		fsync(from);
	if (from >= 0)
		close(from);
	if (to >= 0)
		close(to);
	if (copy) {
		lcp_free(s->name);
		s->name = copy;
		s->dir = dir;
	}
	return ok;
}

static struct rsc *sidecar_at(struct rec *r, uint32_t dir, const char *name)
{
	for (size_t i = 0; i < r->nsc; i++)
		if (r->scs[i].dir == dir && r->scs[i].name && strcmp(r->scs[i].name, name) == 0)
			return &r->scs[i];
	return NULL;
}

/* Links sidecar name sc_name in sc_dir to the sidecar name of payload q. */
static void link_sidecar(struct rec *r, uint32_t sc_dir, const char *sc_name, struct rpay *q)
{
	char target[LCP_STORE_NAME_LEN];
	int from = open_dir(r->root, r->dirs[sc_dir]), to = open_dir(r->root, r->dirs[q->dir]);

	if (from >= 0 && to >= 0 && lcp_store_sidecar_name(q->name, target) == LCP_OK &&
	    linkat(from, sc_name, to, target, 0) == 0) {
		q->paired = true;
		fsync(to);
		lcp_log(LCP_LOG_INFO, "recovery: linked %s/%s as %s/%s", dir_path(r, sc_dir), sc_name,
			dir_path(r, q->dir), target);
	}
	if (from >= 0)
		close(from);
	if (to >= 0)
		close(to);
}

/* A payload with no sidecar of its own at the name sidecar s guards, or
 * NULL. */
static struct rpay *unpaired_payload_at(struct rec *r, const struct rsc *s)
{
	char scname[LCP_STORE_NAME_LEN];

	for (size_t i = 0; i < r->npay; i++) {
		struct rpay *p = &r->pays[i];
		if (p->dir == s->dir && !p->paired && !p->in_flight &&
		    lcp_store_sidecar_name(p->name, scname) == LCP_OK && strcmp(scname, s->name) == 0)
			return p;
	}
	return NULL;
}

/* Whether a sidecar carrying id is still to be placed. */
static bool sidecar_pending(const struct rec *r, const uint8_t id[LCP_FILE_ID_LEN])
{
	for (size_t i = 0; i < r->nsc; i++)
		if (r->scs[i].valid && !r->scs[i].done &&
		    memcmp(r->scs[i].id, id, LCP_FILE_ID_LEN) == 0)
			return true;
	return false;
}

/* Decides one unpaired sidecar; true when something changed. */
static bool place_sidecar(struct rec *r, struct rsc *s)
{
	struct rpay *orphan = NULL;
	size_t inodes = 0;
	bool blocked = false;
	char target[LCP_STORE_NAME_LEN];

	for (size_t i = 0; i < r->npay; i++) {
		struct rpay *p = &r->pays[i];
		if (memcmp(p->id, s->id, LCP_FILE_ID_LEN) != 0)
			continue;
		if (p->in_flight) {
			s->done = true; /* a running pack's sidecar */
			return false;
		}
		if (p->paired)
			continue;
		blocked |= p->blocked;
		if (!orphan || p->dev != orphan->dev || p->ino != orphan->ino)
			inodes++;
		if (!orphan)
			orphan = p;
	}
	if (blocked || inodes > 1) {
		lcp_log(LCP_LOG_WARN, "recovery: %s/%s: %s; left alone", dir_path(r, s->dir), s->name,
			blocked ? "its payload's sidecar name is taken by a file that is not ours"
				: "several payloads carry its id");
		s->done = true;
		return false;
	}
	if (!orphan) {
		/* Proof: the name it guards holds no payload of it (else keep),
		 * and every payload carrying its id has a sidecar of its own. But
		 * a payload of another file with no sidecar at that name keeps
		 * it: wrong as it is, it makes the name read "cannot tell" (EIO)
		 * rather than as the payload's bytes. */
		struct rpay *held = unpaired_payload_at(r, s);
		if (held) {
			if (sidecar_pending(r, held->id))
				return false; /* that payload's own is placed first */
			lcp_log(LCP_LOG_WARN, "recovery: %s/%s: the payload of another file, whose "
				"sidecar is lost, is at the name it guards; left alone (that name "
				"reads as an I/O error until it is replaced or removed)",
				dir_path(r, s->dir), s->name);
			s->done = true;
			return false;
		}
		int fd = open_dir(r->root, r->dirs[s->dir]);
		if (fd >= 0 && unlinkat(fd, s->name, 0) == 0) {
			lcp_log(LCP_LOG_INFO, "recovery: removed stale sidecar %s/%s", dir_path(r, s->dir),
				s->name);
			fsync(fd);
			lcp_free(s->name);
			s->name = NULL; /* no longer in anyone's way */
		}
		if (fd >= 0)
			close(fd);
		s->done = true;
		return true;
	}
	if (lcp_store_sidecar_name(orphan->name, target) != LCP_OK) {
		s->done = true;
		return false;
	}
	struct rsc *occ = sidecar_at(r, orphan->dir, target);
	if (occ && occ != s) {
		char parked[LCP_STORE_NAME_LEN];
		if (!occ->valid || occ->keep) {
			s->done = true;
			return false;
		}
		/* Another unpaired sidecar is in the way (an exchange was cut
		 * short): park it, it is decided in its turn. */
		lcp_store_parked_name(occ->id, parked);
		if (!move_sidecar(r, occ, orphan->dir, parked)) {
			s->done = true;
			return false;
		}
	}
	if (!move_sidecar(r, s, orphan->dir, target)) {
		s->done = true;
		return false;
	}
	s->keep = s->done = true;
	orphan->paired = true;
	/* Other names of the same payload inode get links of it. */
	for (size_t i = 0; i < r->npay; i++) {
		struct rpay *q = &r->pays[i];
		if (!q->paired && !q->blocked && q->dev == orphan->dev && q->ino == orphan->ino)
			link_sidecar(r, s->dir, s->name, q);
	}
	return true;
}

/* A payload name with no sidecar whose inode is paired elsewhere (a hard
 * link made on the backing, or cut short) gets a link of that sidecar. */
static void pair_links(struct rec *r)
{
	for (size_t i = 0; i < r->npay; i++) {
		struct rpay *p = &r->pays[i];
		if (p->paired || p->blocked)
			continue;
		for (size_t j = 0; j < r->npay && !p->paired; j++) {
			struct rpay *q = &r->pays[j];
			char qsc[LCP_STORE_NAME_LEN];
			if (!q->paired || q->in_flight || q->dev != p->dev || q->ino != p->ino ||
			    lcp_store_sidecar_name(q->name, qsc) != LCP_OK)
				continue;
			link_sidecar(r, q->dir, qsc, p);
		}
		if (!p->paired)
			lcp_log(LCP_LOG_INFO, "recovery: %s/%s: its bytes are an lcpfs payload with "
				"no sidecar; it reads as those bytes", dir_path(r, p->dir), p->name);
	}
}

lcp_err lcp_store_recover_dir(int dirfd)
{
	struct rec r;
	lcp_err err;
	int lockfd;

	/* Never while another process uses the tree: its renames in flight
	 * would look like a crash's leftovers. */
	if ((err = lcp_store_lock_tree_exclusive(dirfd, &lockfd)) != LCP_OK)
		return err;
	memset(&r, 0, sizeof r);
	r.root = dirfd;
	err = walk(&r, dirfd, "", 0);
	for (bool progress = err == LCP_OK; progress;) {
		progress = false;
		for (size_t i = 0; i < r.nsc; i++)
			if (r.scs[i].valid && !r.scs[i].done)
				progress |= place_sidecar(&r, &r.scs[i]);
	}
	if (err == LCP_OK)
		pair_links(&r);
	for (size_t i = 0; i < r.nsc; i++)
		lcp_free(r.scs[i].name);
	for (size_t i = 0; i < r.npay; i++)
		lcp_free(r.pays[i].name);
	for (size_t i = 0; i < r.ndirs; i++)
		lcp_free(r.dirs[i]);
	lcp_free(r.scs);
	lcp_free(r.pays);
	lcp_free(r.dirs);
	if (lockfd >= 0)
		close(lockfd);
	return err;
}
