/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `lcpfs pack` and `lcpfs unpack`: the same store code the daemon uses.
 * pack encodes a raw SRC straight from its fd (the commit checks SRC did
 * not change meanwhile) into DST's payload and sidecar; a packed SRC is
 * first reconstructed into a locked temporary beside DST and packed from
 * that. A refused file ends as a plain copy at DST with the reason printed
 * (and recorded on it). When SRC and DST are the same file it is packed in
 * place. Copies keep holes: a sparse SRC never becomes a dense DST.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/alloc.h"
#include "common/io.h"
#include "lcpfs/codec.h"
#include "lcpfs/config.h"
#include "lcpfs/store.h"

#define COPY_STEP (1u << 20)
/* A SRC that keeps changing while it is packed is given up after this many
 * tries. */
#define PACK_TRIES 3
#define MAX_JOBS 256

static void progress(void *arg, uint64_t done, uint64_t total)
{
	const char *name = arg;
	fprintf(stderr, "\rpacking %s: %3u%%", name,
		total ? (unsigned)(done * 100 / total) : 100u);
	fflush(stderr);
}

/* Copies in's bytes [0, size) to out, holes kept (never read, never
 * written: data extents found with SEEK_DATA/SEEK_HOLE, zero blocks in them
 * skipped too), and sets out's size. 0 or an errno. */
static int copy_sparse(int in, int out, uint64_t size)
{
	uint8_t *buf = lcp_malloc(COPY_STEP);
	uint64_t off = 0;
	lcp_err err = buf ? LCP_OK : LCP_ERR_NOMEM;
	while (!err && off < size) {
		off_t data = lseek(in, (off_t)off, SEEK_DATA);
		if (data < 0 && errno == ENXIO)
			break; /* a hole up to the end */
		off_t hole = data < 0 ? (off_t)size : lseek(in, data, SEEK_HOLE);
		if (data < 0) /* no hole reporting: every byte is data */
			data = (off_t)off;
		if (hole < 0 || (uint64_t)hole > size)
			hole = (off_t)size;
		for (off = (uint64_t)data; !err && off < (uint64_t)hole;) {
			size_t n = (uint64_t)hole - off < COPY_STEP ? (size_t)((uint64_t)hole - off)
								    : COPY_STEP;
			err = lcp_pread_all(in, buf, n, off);
			if (!err)
				err = lcp_pwrite_sparse(out, buf, n, off);
			off += n;
		}
	}
	lcp_free(buf);
	if (!err && ftruncate(out, (off_t)size) != 0)
		return errno;
	if (err)
		return err == LCP_ERR_NOSPC ? ENOSPC : err == LCP_ERR_NOMEM ? ENOMEM : EIO;
	return fsync(out) == 0 ? 0 : errno;
}

/*
 * Writes the logical bytes of compressed file f (its reconstruction) to out,
 * all-zero blocks left as holes, and fsyncs out. 0 on success; prints the
 * error and returns 1.
 */
static int copy_reconstruction(const char *verb, const char *path, struct lcp_store_file *f,
			       int out)
{
	char *buf = lcp_malloc(COPY_STEP);
	uint64_t off = 0, bad = 0, size = lcp_store_logical_size(f);
	lcp_err err = buf ? LCP_OK : LCP_ERR_NOMEM;
	while (err == LCP_OK && off < size) {
		size_t got;
		err = lcp_store_read(f, buf, COPY_STEP, off, &got, &bad);
		if (err == LCP_OK)
			err = lcp_pwrite_sparse(out, buf, got, off);
		off += got;
	}
	lcp_free(buf);
	if (err == LCP_OK && ftruncate(out, (off_t)size) != 0)
		err = LCP_ERR_IO;
	if (err == LCP_ERR_CHECKSUM)
		fprintf(stderr, "lcpfs %s: %s: damaged chunk at offset %llu\n", verb, path,
			(unsigned long long)bad);
	else if (err)
		fprintf(stderr, "lcpfs %s: %s: %s\n", verb, path, lcp_strerror(err));
	if (!err && fsync(out) != 0) {
		fprintf(stderr, "lcpfs %s: %s: %s\n", verb, path, strerror(errno));
		return 1;
	}
	return err != LCP_OK;
}

/* What SRC is, as the store sees it: *f set when it is compressed (read it
 * through the store), else raw, and then, unless raw_fd is NULL, opened as
 * *raw_fd (the store's safe open: never a FIFO or device swapped in). 0, or
 * prints the error and returns 1. */
static int open_logical(const char *verb, const char *path, struct lcp_store_file **f,
			int *raw_fd)
{
	const char *base;
	char dirbuf[4096];
	struct lcp_probe pr;
	int dirfd = lcp_cli_open_parent(path, dirbuf, sizeof dirbuf, &base);

	*f = NULL;
	if (dirfd < 0) {
		fprintf(stderr, "lcpfs %s: %s: %s\n", verb, path, strerror(errno));
		return 1;
	}
	lcp_err err = lcp_store_probe_at(dirfd, base, NULL, &pr, f);
	if (err == LCP_OK && pr.repr == LCP_REPR_DAMAGED)
		err = LCP_ERR_CHECKSUM;
	if (err == LCP_OK && !pr.regular)
		err = LCP_ERR_UNSUPPORTED;
	if (err == LCP_OK && !*f && raw_fd) {
		struct stat st;
		err = lcp_store_open_regular(dirfd, base, O_RDONLY, raw_fd, &st);
	}
	close(dirfd);
	if (err) {
		lcp_store_close(*f);
		*f = NULL;
		fprintf(stderr, "lcpfs %s: %s: %s%s%s\n", verb, path,
			err == LCP_ERR_UNSUPPORTED ? "not a regular file" : lcp_strerror(err),
			pr.note[0] ? ": " : "", pr.note);
		return 1;
	}
	return 0;
}

/*
 * Writes the logical bytes of path (its reconstruction when packed, else its
 * bytes) to out, holes kept, and fsyncs out. 0 on success; prints the error
 * and returns 1.
 */
static int copy_logical(const char *verb, const char *path, int out)
{
	struct lcp_store_file *f;
	struct stat st;
	int rc, in = -1;

	if (open_logical(verb, path, &f, &in))
		return 1;
	if (f) {
		rc = copy_reconstruction(verb, path, f, out);
		lcp_store_close(f);
		return rc;
	}
	/* Raw (never packed, or refused): its bytes are the file. */
	rc = fstat(in, &st) != 0 ? errno : copy_sparse(in, out, (uint64_t)st.st_size);
	close(in);
	if (rc)
		fprintf(stderr, "lcpfs %s: %s: %s\n", verb, path, strerror(rc));
	return rc ? 1 : 0;
}

static void print_outcome(const char *dst, const struct lcp_pack_report *rep, bool in_place)
{
	if (rep->committed)
		printf("%s: %s, %llu -> %llu bytes (%.2fx)\n", dst, lcp_format_name(rep->format),
		       (unsigned long long)rep->logical_size, (unsigned long long)rep->stored_size,
		       rep->stored_size ? (double)rep->logical_size / (double)rep->stored_size : 0.0);
	else
		printf("%s: %s: %s%s\n", dst, in_place ? "left raw" : "stored as a plain copy",
		       rep->reason,
		       rep->outcome == LCP_PACK_DEFERRED ? " (a passing cause: try again later)" : "");
}

/* Packs with up to PACK_TRIES tries while the source changes under it. */
static lcp_err pack_tries(int dirfd, const char *base, int srcfd, const struct lcp_pack_opts *o,
			  struct lcp_pack_report *rep)
{
	lcp_err err;
	int tries = 0;
	do
		err = lcp_store_pack_opts(dirfd, base, srcfd, o, rep);
	while (!err && rep->outcome == LCP_PACK_RETRY && ++tries < PACK_TRIES);
	if (isatty(2) && o->progress)
		fputc('\n', stderr);
	return err;
}

/* SRC and DST are the same file: pack it where it is (no copy needed). */
static int pack_in_place(int dirfd, const char *base, const char *dst, const struct lcp_pack_opts *o)
{
	struct lcp_pack_report rep;
	lcp_err err = pack_tries(dirfd, base, -1, o, &rep);
	close(dirfd);
	if (err) {
		fprintf(stderr, "lcpfs pack: %s: %s\n", dst, lcp_strerror(err));
		return 1;
	}
	print_outcome(dst, &rep, true);
	return 0;
}

/* `-j N`: 1..MAX_JOBS; default the number of online cores. */
static int parse_jobs(const char *s, unsigned *jobs)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || v < 1 || v > MAX_JOBS)
		return -1;
	*jobs = (unsigned)v;
	return 0;
}

/*
 * SRC to DST through a temporary beside DST: packed from in (a raw SRC) or
 * from the temporary holding SRC's reconstruction (a packed SRC, which must
 * be read through the store); when not committed, the temporary holding
 * SRC's logical bytes becomes DST as a plain copy, the refusal recorded.
 */
static int pack_to(const char *src, int in, int dirfd, const char *base, const char *dst,
		   const struct lcp_pack_opts *o)
{
	struct lcp_store_temp tmp;
	struct lcp_pack_report rep;
	struct lcp_store_file *f;
	struct stat st;
	lcp_err err;
	int rc;

	if (open_logical("pack", src, &f, NULL) || fstat(in, &st) != 0)
		return 1;
	if ((err = lcp_store_temp_create(dirfd, 'c', st.st_mode & 0777, &tmp)) != LCP_OK) {
		fprintf(stderr, "lcpfs pack: %s: %s\n", dst, lcp_strerror(err));
		lcp_store_close(f);
		return 1;
	}
	if (f) {
		/* The copy takes SRC's owner, mode, xattrs and times, which the
		 * pack carries to DST. */
		rc = copy_reconstruction("pack", src, f, tmp.fd);
		lcp_store_close(f);
		if (rc == 0 && (err = lcp_store_copy_attributes(in, tmp.fd)) != LCP_OK) {
			fprintf(stderr, "lcpfs pack: %s: %s\n", dst, lcp_strerror(err));
			rc = 1;
		}
		if (rc) {
			lcp_store_temp_remove(dirfd, &tmp);
			return 1;
		}
		err = pack_tries(dirfd, base, tmp.fd, o, &rep);
	} else {
		err = pack_tries(dirfd, base, in, o, &rep);
		if (!err && !rep.committed) {
			rc = copy_sparse(in, tmp.fd, (uint64_t)st.st_size);
			if (rc == 0 && lcp_store_copy_attributes(in, tmp.fd) != LCP_OK)
				rc = EIO;
			if (rc)
				err = rc == ENOSPC ? LCP_ERR_NOSPC : rc == ENOMEM ? LCP_ERR_NOMEM : LCP_ERR_IO;
		}
	}
	if (!err && !rep.committed && rep.outcome == LCP_PACK_RETRY)
		err = LCP_ERR_AGAIN; /* SRC kept changing */
	if (!err && !rep.committed) {
		lcp_store_refusal_record(tmp.fd, &rep);
		err = lcp_store_rename_at(dirfd, tmp.name, dirfd, base, 0);
	}
	lcp_store_temp_remove(dirfd, &tmp);
	if (err) {
		fprintf(stderr, "lcpfs pack: %s: %s\n", dst,
			err == LCP_ERR_AGAIN ? "SRC kept changing while it was packed"
					     : lcp_strerror(err));
		return 1;
	}
	fsync(dirfd);
	print_outcome(dst, &rep, false);
	return 0;
}

int lcp_cli_pack(int argc, char **argv)
{
	struct lcp_config cfg = lcp_config_default();
	const char *opts = NULL, *src, *dst, *base;
	char errbuf[160], dirbuf[4096];
	struct stat st;
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned jobs = cores < 1 ? 1u : cores > MAX_JOBS ? MAX_JOBS : (unsigned)cores;
	int i = 1, dirfd, in, rc;

	for (; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "-o") == 0) {
			opts = argv[i + 1];
		} else if (strcmp(argv[i], "-j") == 0) {
			if (parse_jobs(argv[i + 1], &jobs)) {
				fprintf(stderr, "lcpfs pack: -j wants a number of threads, 1..%u\n",
					MAX_JOBS);
				return 2;
			}
		} else {
			break;
		}
	}
	if (argc - i != 2) {
		fprintf(stderr, "usage: lcpfs pack [-j N] [-o OPTIONS] SRC DST\n");
		return 2;
	}
	src = argv[i];
	dst = argv[i + 1];
	if (lcp_config_parse_options(&cfg, opts, NULL, errbuf, sizeof errbuf) != LCP_OK) {
		fprintf(stderr, "lcpfs pack: bad option: %s\n", errbuf);
		return 2;
	}
	in = open(src, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (in < 0 || fstat(in, &st) != 0 || !S_ISREG(st.st_mode)) {
		fprintf(stderr, "lcpfs pack: %s: %s\n", src, in < 0 ? strerror(errno)
								     : "not a regular file");
		if (in >= 0)
			close(in);
		return 1;
	}
	dirfd = lcp_cli_open_parent(dst, dirbuf, sizeof dirbuf, &base);
	if (dirfd < 0) {
		fprintf(stderr, "lcpfs pack: %s: %s\n", dst, strerror(errno));
		close(in);
		return 1;
	}
	if (lcp_store_is_internal_name(base)) {
		fprintf(stderr, "lcpfs pack: %s: name reserved for lcpfs's own files\n", dst);
		close(dirfd);
		close(in);
		return 1;
	}
	struct lcp_encode_pool *pool;
	lcp_err err = lcp_encode_pool_create(jobs, false, &pool);
	if (err) {
		fprintf(stderr, "lcpfs pack: cannot start %u threads: %s\n", jobs, lcp_strerror(err));
		close(dirfd);
		close(in);
		return 1;
	}
	struct lcp_pack_opts o = {.cfg = &cfg, .pool = pool, .progress = isatty(2) ? progress : NULL,
				  .progress_arg = (void *)dst};
	struct stat dst_st;
	if (fstatat(dirfd, base, &dst_st, 0) == 0 && dst_st.st_dev == st.st_dev &&
	    dst_st.st_ino == st.st_ino) {
		close(in);
		rc = pack_in_place(dirfd, base, dst, &o);
	} else {
		rc = pack_to(src, in, dirfd, base, dst, &o);
		close(in);
		close(dirfd);
	}
	lcp_encode_pool_free(pool);
	return rc;
}

/* Reconstructs SRC into a temporary beside DST and renames it into place, so
 * DST is never partial and `unpack F F` cannot truncate F before reading it;
 * renaming through the store drops a sidecar DST may have had. Blocks of
 * zeros stay holes. */
int lcp_cli_unpack(int argc, char **argv)
{
	char dirbuf[4096];
	struct lcp_store_temp tmp;
	const char *base;
	int dirfd, rc;
	lcp_err err;

	if (argc != 3) {
		fprintf(stderr, "usage: lcpfs unpack SRC DST\n");
		return 2;
	}
	dirfd = lcp_cli_open_parent(argv[2], dirbuf, sizeof dirbuf, &base);
	if (dirfd < 0) {
		fprintf(stderr, "lcpfs unpack: %s: %s\n", argv[2], strerror(errno));
		return 1;
	}
	if ((err = lcp_store_temp_create(dirfd, 'u', 0644, &tmp)) != LCP_OK) {
		fprintf(stderr, "lcpfs unpack: %s: %s\n", argv[2], lcp_strerror(err));
		close(dirfd);
		return 1;
	}
	rc = copy_logical("unpack", argv[1], tmp.fd);
	if (rc) {
		lcp_store_temp_remove(dirfd, &tmp); /* never leave wrong or partial bytes behind */
		close(dirfd);
		return rc;
	}
	err = lcp_store_rename_at(dirfd, tmp.name, dirfd, base, 0);
	lcp_store_temp_remove(dirfd, &tmp);
	if (err) {
		fprintf(stderr, "lcpfs unpack: %s: %s\n", argv[2], lcp_strerror(err));
		close(dirfd);
		return 1;
	}
	fsync(dirfd);
	close(dirfd);
	return 0;
}
