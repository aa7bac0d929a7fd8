/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `lcpfs pack` and `lcpfs unpack`: the same store code the daemon uses.
 * pack copies SRC (bytes, owner, mode, xattrs, times) into DST's directory
 * under a locked temporary name and packs that copy to DST; a refused file
 * ends as a plain copy at DST with the reason printed (and recorded on it).
 * When SRC and DST are the same file it is packed in place.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/alloc.h"
#include "common/io.h"
#include "lcpfs/config.h"
#include "lcpfs/store.h"

#define COPY_STEP (1u << 20)

static void progress(void *arg, uint64_t done, uint64_t total)
{
	const char *name = arg;
	fprintf(stderr, "\rpacking %s: %3u%%", name,
		total ? (unsigned)(done * 100 / total) : 100u);
	fflush(stderr);
}

/* Copies all of in to out; 0 or an errno. */
static int copy_fd(int in, int out)
{
	char *buf = lcp_malloc(COPY_STEP);
	int rc = 0;
	if (!buf)
		return ENOMEM;
	for (;;) {
		ssize_t n = read(in, buf, COPY_STEP);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = errno;
			break;
		}
		if (n == 0)
			break;
		lcp_err err = lcp_write_all(out, buf, (size_t)n);
		if (err) {
			rc = err == LCP_ERR_NOSPC ? ENOSPC : EIO;
			break;
		}
	}
	lcp_free(buf);
	if (rc == 0 && fsync(out) != 0)
		rc = errno;
	return rc;
}

/*
 * Writes the logical bytes of path (its reconstruction when packed, else its
 * bytes) to out and fsyncs out. 0 on success; prints the error and returns 1.
 */
static int copy_logical(const char *verb, const char *path, int out)
{
	const char *base;
	char dirbuf[4096];
	struct lcp_store_file *f = NULL;
	int dirfd, rc = 0;
	lcp_err err;

	dirfd = lcp_cli_open_parent(path, dirbuf, sizeof dirbuf, &base);
	if (dirfd < 0) {
		fprintf(stderr, "lcpfs %s: %s: %s\n", verb, path, strerror(errno));
		return 1;
	}
	struct lcp_probe pr;
	err = lcp_store_probe_at(dirfd, base, NULL, &pr, &f);
	if (err == LCP_OK && pr.repr == LCP_REPR_DAMAGED)
		err = LCP_ERR_CHECKSUM;
	if (err == LCP_OK && !pr.regular)
		err = LCP_ERR_UNSUPPORTED;
	if (err) {
		fprintf(stderr, "lcpfs %s: %s: %s%s%s\n", verb, path,
			err == LCP_ERR_UNSUPPORTED ? "not a regular file" : lcp_strerror(err),
			pr.note[0] ? ": " : "", pr.note);
		close(dirfd);
		return 1;
	}
	if (!f) {
		/* Raw (never packed, or refused): its bytes are the file. */
		int in = openat(dirfd, base, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW | O_NONBLOCK);
		rc = in < 0 ? errno : copy_fd(in, out);
		if (in >= 0)
			close(in);
		if (rc)
			fprintf(stderr, "lcpfs %s: %s: %s\n", verb, path, strerror(rc));
	} else {
		char *buf = lcp_malloc(COPY_STEP);
		uint64_t off = 0, bad = 0;
		err = buf ? LCP_OK : LCP_ERR_NOMEM;
		while (err == LCP_OK && off < lcp_store_logical_size(f)) {
			size_t got;
			err = lcp_store_read(f, buf, COPY_STEP, off, &got, &bad);
			if (err == LCP_OK)
				err = lcp_write_all(out, buf, got);
			off += got;
		}
		lcp_free(buf);
		if (err == LCP_ERR_CHECKSUM)
			fprintf(stderr, "lcpfs %s: %s: damaged chunk at offset %llu\n", verb, path,
				(unsigned long long)bad);
		else if (err)
			fprintf(stderr, "lcpfs %s: %s: %s\n", verb, path, lcp_strerror(err));
		rc = err != LCP_OK;
		if (!rc && fsync(out) != 0)
			rc = errno;
	}
	lcp_store_close(f);
	close(dirfd);
	return rc ? 1 : 0;
}

static void print_outcome(const char *dst, const struct lcp_pack_report *rep, bool in_place)
{
	if (rep->committed)
		printf("%s: %s, %llu -> %llu bytes (%.2fx)\n", dst, lcp_format_name(rep->format),
		       (unsigned long long)rep->logical_size, (unsigned long long)rep->stored_size,
		       rep->stored_size ? (double)rep->logical_size / (double)rep->stored_size : 0.0);
	else
		printf("%s: %s: %s\n", dst, in_place ? "left raw" : "stored as a plain copy",
		       rep->reason);
}

/* SRC and DST are the same file: pack it where it is (no copy needed). */
static int pack_in_place(int dirfd, const char *base, const char *dst, const struct lcp_config *cfg)
{
	struct lcp_pack_report rep;
	lcp_err err = lcp_store_pack_at(dirfd, base, -1, cfg, isatty(2) ? progress : NULL,
					(void *)dst, &rep);
	if (isatty(2))
		fputc('\n', stderr);
	close(dirfd);
	if (err) {
		fprintf(stderr, "lcpfs pack: %s: %s\n", dst, lcp_strerror(err));
		return 1;
	}
	print_outcome(dst, &rep, true);
	return 0;
}

int lcp_cli_pack(int argc, char **argv)
{
	struct lcp_config cfg = lcp_config_default();
	const char *opts = NULL, *src, *dst, *base;
	char errbuf[160], dirbuf[4096];
	struct lcp_store_temp tmp;
	struct lcp_pack_report rep;
	struct stat st;
	int i = 1, dirfd, in, rc;
	lcp_err err;

	if (i < argc && strcmp(argv[i], "-o") == 0 && i + 1 < argc) {
		opts = argv[i + 1];
		i += 2;
	}
	if (argc - i != 2) {
		fprintf(stderr, "usage: lcpfs pack [-o OPTIONS] SRC DST\n");
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
	{
		struct stat dst_st;
		if (fstatat(dirfd, base, &dst_st, 0) == 0 && dst_st.st_dev == st.st_dev &&
		    dst_st.st_ino == st.st_ino) {
			close(in);
			return pack_in_place(dirfd, base, dst, &cfg);
		}
	}
	/* A private copy of SRC under a locked temporary name: packed from its
	 * fd straight to DST, or renamed to DST as a plain copy when refused. */
	if ((err = lcp_store_temp_create(dirfd, 'c', st.st_mode & 0777, &tmp)) != LCP_OK) {
		fprintf(stderr, "lcpfs pack: %s: %s\n", dst, lcp_strerror(err));
		close(in);
		close(dirfd);
		return 1;
	}
	/* A packed SRC is read through the store: its bytes are a payload. The
	 * copy then takes SRC's owner, mode, xattrs and times, which the pack
	 * carries to DST. */
	rc = copy_logical("pack", src, tmp.fd);
	if (rc == 0 && (err = lcp_store_copy_attributes(in, tmp.fd)) != LCP_OK) {
		fprintf(stderr, "lcpfs pack: %s: %s\n", dst, lcp_strerror(err));
		rc = 1;
	}
	close(in);
	if (rc) {
		lcp_store_temp_remove(dirfd, &tmp);
		close(dirfd);
		return 1;
	}
	err = lcp_store_pack_at(dirfd, base, tmp.fd, &cfg, isatty(2) ? progress : NULL,
				(void *)dst, &rep);
	if (isatty(2))
		fputc('\n', stderr);
	if (err == LCP_OK && !rep.committed)
		err = lcp_store_rename_at(dirfd, tmp.name, dirfd, base, 0);
	lcp_store_temp_remove(dirfd, &tmp);
	if (err) {
		fprintf(stderr, "lcpfs pack: %s: %s\n", dst, lcp_strerror(err));
		close(dirfd);
		return 1;
	}
	fsync(dirfd);
	close(dirfd);
	print_outcome(dst, &rep, false);
	return 0;
}

/* Reconstructs SRC into a temporary beside DST and renames it into place, so
 * DST is never partial and `unpack F F` cannot truncate F before reading it;
 * renaming through the store drops a sidecar DST may have had. */
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
