/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `lcpfs inspect`, `lcpfs verify` and `lcpfs recover`. inspect reads the sidecar beside PATH;
 * on a path inside a mount (where sidecars are hidden) it takes the state
 * from xattr "user.lcpfs.state" and, for a compressed file, the JSON report
 * (the same lcp_store_report_json text) the daemon exposes in pieces as
 * "user.lcpfs.inspect.0", ".1", ... ("user.lcpfs.inspect.parts" counts and
 * checksums them: a report of many tensors is larger than one xattr value
 * can be). It prints a table, the JSON (--json) and/or writes a picture
 * (--svg FILE).
 */
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/alloc.h"
#include "common/checksum.h"
#include "lcpfs/store.h"

#define XATTR_INSPECT "user.lcpfs.inspect"
#define XATTR_STATE "user.lcpfs.state"
/* A report that changes while it is read (recompressed) is read again. */
#define MOUNT_REPORT_TRIES 3

/* Reads an xattr of path into an lcp_malloc'ed NUL-terminated string. */
static char *get_xattr(const char *path, const char *key)
{
	ssize_t n = getxattr(path, key, NULL, 0);
	char *s;
	if (n < 0)
		return NULL;
	s = lcp_malloc((size_t)n + 1);
	if (!s)
		return NULL;
	n = getxattr(path, key, s, (size_t)n);
	if (n < 0) {
		lcp_free(s);
		return NULL;
	}
	s[n] = 0;
	return s;
}

/* Reads the parts pieces of the daemon's inspect report of path into buf
 * (len bytes). 0, or -1 with errno: EAGAIN or ENODATA when they do not add
 * up to len (the report changed meanwhile). */
static int read_report_parts(const char *path, size_t parts, char *buf, size_t len)
{
	size_t off = 0;

	for (size_t k = 0; k < parts; k++) {
		char key[64];
		snprintf(key, sizeof key, XATTR_INSPECT ".%zu", k);
		ssize_t n = getxattr(path, key, buf + off, len - off);
		if (n < 0) {
			if (errno == ERANGE) /* longer than announced */
				errno = EAGAIN;
			return -1;
		}
		off += (size_t)n;
	}
	if (off != len) {
		errno = EAGAIN;
		return -1;
	}
	return 0;
}

/* The daemon's inspect report of path inside a mount, as an lcp_malloc'ed
 * NUL-terminated string, checked against the length and xxh3 that
 * user.lcpfs.inspect.parts names; NULL with errno set (EAGAIN: it kept
 * changing while being read). */
static char *mount_report(const char *path)
{
	for (int tries = 0; tries < MOUNT_REPORT_TRIES; tries++) {
		char *parts = get_xattr(path, XATTR_INSPECT ".parts");
		unsigned long long hash = 0;
		size_t count = 0, len = 0;
		int ok = parts && sscanf(parts, "%zu %zu %llx", &count, &len, &hash) == 3;
		lcp_free(parts);
		if (!parts)
			return NULL;
		if (!ok) {
			errno = EPROTO;
			return NULL;
		}
		char *text = lcp_malloc(len + 1);
		if (!text)
			return NULL;
		if (read_report_parts(path, count, text, len) == 0 && lcp_xxh3(text, len) == hash) {
			text[len] = '\0';
			return text;
		}
		int e = errno;
		lcp_free(text);
		if (e != EAGAIN && e != ENODATA)
			return NULL;
		errno = EAGAIN;
	}
	return NULL;
}

static enum lcp_format format_by_name(const char *name)
{
	for (int f = LCP_FORMAT_SAFETENSORS; f <= LCP_FORMAT_UNKNOWN; f++)
		if (name && strcmp(lcp_format_name((enum lcp_format)f), name) == 0)
			return (enum lcp_format)f;
	return LCP_FORMAT_UNKNOWN;
}

/* The inverse of lcp_store_report_json, for the human-readable listing of a
 * file inside a mount. encoding strings point at static names. */
static lcp_err report_from_json(const char *text, struct lcp_file_report *r)
{
	static const char *const encs[] = {"q4", "q8", "lossless", "exact"};
	json_t *o = json_loads(text, 0, NULL), *ts;
	size_t i, n;
	memset(r, 0, sizeof *r);
	if (!o)
		return LCP_ERR_FORMAT;
	r->format = format_by_name(json_string_value(json_object_get(o, "format")));
	r->logical_size = (uint64_t)json_integer_value(json_object_get(o, "logical_size"));
	r->stored_size = (uint64_t)json_integer_value(json_object_get(o, "stored_size"));
	ts = json_object_get(o, "tensors"); /* borrowed: lives as long as o */
	n = json_array_size(ts);
	r->tensors = lcp_calloc(n + 1, sizeof *r->tensors);
	if (!r->tensors) {
		json_decref(o);
		return LCP_ERR_NOMEM;
	}
	for (i = 0; i < n; i++) {
		json_t *t = json_array_get(ts, i), *shape = json_object_get(t, "shape");
		struct lcp_tensor_report *tr = &r->tensors[i];
		const char *nm = json_string_value(json_object_get(t, "name"));
		const char *enc = json_string_value(json_object_get(t, "encoding"));
		json_t *sq = json_object_get(t, "sqnr_db");
		tr->name = lcp_strdup(nm ? nm : "?");
		if (!tr->name)
			break;
		r->ntensors = i + 1;
		const char *dt = json_string_value(json_object_get(t, "dtype"));
		snprintf(tr->dtype, sizeof tr->dtype, "%s", dt ? dt : "");
		tr->ndims = (uint32_t)(json_array_size(shape) < LCP_MAX_DIMS ? json_array_size(shape)
									     : LCP_MAX_DIMS);
		for (uint32_t d = 0; d < tr->ndims; d++)
			tr->dims[d] = (uint64_t)json_integer_value(json_array_get(shape, d));
		tr->encoding = "exact";
		for (size_t e = 0; e < 4; e++)
			if (enc && !strcmp(enc, encs[e]))
				tr->encoding = encs[e];
		tr->bits = (uint8_t)json_integer_value(json_object_get(t, "bits"));
		tr->group_size = (uint32_t)json_integer_value(json_object_get(t, "group"));
		tr->rank = (uint16_t)json_integer_value(json_object_get(t, "rank"));
		tr->bits_per_weight = json_number_value(json_object_get(t, "bpw"));
		tr->sqnr_db = json_is_number(sq) ? json_number_value(sq) : INFINITY;
		tr->cosine = json_number_value(json_object_get(t, "cosine"));
		const char *note = json_string_value(json_object_get(t, "note"));
		if (note && !(tr->note = lcp_strdup(note)))
			break;
	}
	json_decref(o);
	return i == n ? LCP_OK : LCP_ERR_NOMEM;
}

static void print_report(const char *path, const char *state, const struct lcp_file_report *r,
			 bool have_config)
{
	printf("%s\n", path);
	printf("  format:        %s\n", lcp_format_name(r->format));
	printf("  state:         %s\n", state);
	printf("  logical size:  %llu bytes\n", (unsigned long long)r->logical_size);
	printf("  stored size:   %llu bytes\n", (unsigned long long)r->stored_size);
	printf("  ratio:         %.3fx\n",
	       r->stored_size ? (double)r->logical_size / (double)r->stored_size : 0.0);
	if (have_config) {
		printf("  original xxh3: %016llx (provenance)\n",
		       (unsigned long long)r->original_xxh3);
		printf("  config:        %sbits=%u rank=%u group=%u %s quality=%g min_size=%llu\n",
		       r->config.lossless ? "lossless (every value exact) " : "", r->config.bits,
		       r->config.rank, r->config.group_size, r->config.symmetric ? "sym" : "asym",
		       (double)r->config.quality_threshold, (unsigned long long)r->config.min_size);
	}
	printf("  %-40s %-16s %-20s %-8s %4s %5s %4s %7s %8s %9s  %s\n", "tensor", "dtype", "shape",
	       "encoding", "bits", "group", "rank", "bpw", "SQNR dB", "cosine", "note");
	for (size_t i = 0; i < r->ntensors; i++) {
		const struct lcp_tensor_report *t = &r->tensors[i];
		char shape[128];
		int n = snprintf(shape, sizeof shape, "[");
		for (uint32_t d = 0; d < t->ndims && n < (int)sizeof shape; d++)
			n += snprintf(shape + n, sizeof shape - (size_t)n, "%s%llu", d ? "," : "",
				      (unsigned long long)t->dims[d]);
		if (n < (int)sizeof shape)
			snprintf(shape + n, sizeof shape - (size_t)n, "]");
		char sq[32];
		if (isfinite(t->sqnr_db))
			snprintf(sq, sizeof sq, "%.2f", t->sqnr_db);
		else
			snprintf(sq, sizeof sq, "inf");
		printf("  %-40s %-16s %-20s %-8s %4u %5u %4u %7.3f %8s %9.6f  %s\n", t->name, t->dtype,
		       shape, t->encoding, t->bits, t->group_size, t->rank, t->bits_per_weight, sq,
		       t->cosine, t->note ? t->note : "");
	}
}

/* Writes the picture to out ("-": standard output). 0, or 1 after printing why. */
static int write_svg(const char *out, const char *path, const char *state,
		     const struct lcp_file_report *r)
{
	FILE *f = strcmp(out, "-") == 0 ? stdout : fopen(out, "w");
	int rc;

	if (!f) {
		fprintf(stderr, "lcpfs inspect: %s: %s\n", out, strerror(errno));
		return 1;
	}
	rc = lcp_cli_write_svg(f, path, state, r);
	if (f != stdout && fclose(f) != 0)
		rc = -1;
	else if (f == stdout && fflush(f) != 0)
		rc = -1;
	if (rc)
		fprintf(stderr, "lcpfs inspect: %s: cannot write the picture\n", out);
	return rc ? 1 : 0;
}

int lcp_cli_inspect(int argc, char **argv)
{
	bool json = false;
	const char *path, *base, *svg = NULL;
	char dirbuf[4096];
	struct lcp_file_report r;
	struct lcp_store_file *f = NULL;
	const char *state = "compressed";
	bool have_config = false;
	int dirfd, i = 1;
	lcp_err err;
	char *xstate = NULL, *text = NULL;

	memset(&r, 0, sizeof r);
	for (; i < argc && argv[i][0] == '-' && argv[i][1]; i++) {
		if (strcmp(argv[i], "--json") == 0) {
			json = true;
		} else if (strcmp(argv[i], "--svg") == 0 && i + 1 < argc) {
			svg = argv[++i];
		} else {
			i = argc; /* usage */
			break;
		}
	}
	/* Both on standard output would mix two documents. */
	if (argc - i != 1 || (json && svg && strcmp(svg, "-") == 0)) {
		fprintf(stderr, "usage: lcpfs inspect [--json] [--svg OUT.svg] PATH\n");
		return 2;
	}
	path = argv[i];
	dirfd = lcp_cli_open_parent(path, dirbuf, sizeof dirbuf, &base);
	if (dirfd < 0) {
		fprintf(stderr, "lcpfs inspect: %s: %s\n", path, strerror(errno));
		return 1;
	}
	/* Inside a mount the daemon answers user.lcpfs.state (sidecars are
	 * hidden there, and the bytes read are the reconstruction): a
	 * compressed file's report comes only from the daemon. */
	xstate = get_xattr(path, XATTR_STATE);
	if (xstate && strcmp(xstate, "compressed") == 0) {
		state = xstate;
		if (!(text = mount_report(path))) {
			fprintf(stderr, "lcpfs inspect: %s: compressed, but the mount gives no report: "
				"%s\n", path,
				errno == EAGAIN ? "it kept changing while being read" : strerror(errno));
			close(dirfd);
			lcp_free(xstate);
			return 1;
		}
		err = json && !svg ? LCP_OK : report_from_json(text, &r);
	} else if (xstate) {
		state = xstate;
		err = lcp_store_report_raw_at(dirfd, base, &r);
	} else if ((err = lcp_store_open_at(dirfd, base, NULL, &f)) == LCP_OK) {
		err = lcp_store_report(f, &r);
		have_config = true;
		lcp_store_close(f);
	} else if (err == LCP_ERR_NOENT) {
		state = "raw";
		err = lcp_store_report_raw_at(dirfd, base, &r);
	}
	close(dirfd);
	if (err) {
		fprintf(stderr, "lcpfs inspect: %s: %s\n", path,
			err == LCP_ERR_UNSUPPORTED ? "not a regular file" : lcp_strerror(err));
		lcp_free(text);
		lcp_free(xstate);
		return 1;
	}
	int rc = 0;
	if (svg && write_svg(svg, path, state, &r) != 0)
		rc = 1;
	if (json) {
		if (!text && lcp_store_report_json(&r, &text) != LCP_OK)
			rc = 1;
		else
			printf("%s\n", text);
	} else if (!svg) {
		print_report(path, state, &r, have_config);
	}
	lcp_file_report_free(&r);
	lcp_free(text);
	lcp_free(xstate);
	return rc;
}

/* Inside a mount the daemon checks every chunk as it decodes it: reading
 * the whole file there checks it. Returns 0, or -1 with the offset of the
 * failing read (0 when the open failed). */
static int read_through_mount(int dirfd, const char *name, uint64_t *bad_off)
{
	enum { STEP = 1 << 20 };
	char *buf = lcp_malloc(STEP);
	uint64_t off = 0;
	struct stat st;
	int fd, rc = 0;

	*bad_off = 0;
	if (!buf || lcp_store_open_regular(dirfd, name, O_RDONLY, &fd, &st) != LCP_OK) {
		lcp_free(buf);
		return -1;
	}
	for (;;) {
		ssize_t n = pread(fd, buf, STEP, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			*bad_off = off;
			rc = -1;
			break;
		}
		if (n == 0)
			break;
		off += (uint64_t)n;
	}
	close(fd);
	lcp_free(buf);
	return rc;
}

/* A name caught in another process's rename or commit cannot be told for a
 * moment: it is probed this many times, VERIFY_RETRY_MS doubling between
 * tries (about 0.3 s in all), before verify says so. */
#define VERIFY_TRIES 5
#define VERIFY_RETRY_MS 20

enum verdict { VERIFY_OK, VERIFY_FAILED, VERIFY_UNSURE };

/* A compressed file inside a mount (sidecars hidden there). */
static enum verdict verify_in_mount(int dirfd, const char *name, const char *shown)
{
	uint64_t bad_off;

	if (read_through_mount(dirfd, name, &bad_off) != 0) {
		printf("%s: DAMAGED: read error at offset %llu\n", shown,
		       (unsigned long long)bad_off);
		return VERIFY_FAILED;
	}
	printf("%s: ok (read through the mount)\n", shown);
	return VERIFY_OK;
}

/* Verifies name in dirfd, shown as shown; walked: met in a directory walk
 * (where anything not a regular file is passed over in silence). */
static enum verdict verify_file(int dirfd, const char *name, const char *shown, bool walked)
{
	struct timespec step = {0, VERIFY_RETRY_MS * 1000000L};
	struct lcp_store_file *f = NULL;
	struct lcp_probe pr;
	char where[256];
	lcp_err err;

	/* One probe decides: a second look (access(2), another open) could see
	 * the name at another instant of a rename. */
	for (int tries = 1;; tries++) {
		err = lcp_store_probe_at(dirfd, name, NULL, &pr, &f);
		if (err != LCP_ERR_AGAIN || tries == VERIFY_TRIES)
			break;
		nanosleep(&step, NULL);
		step.tv_nsec *= 2;
	}
	if (err == LCP_ERR_AGAIN) {
		printf("%s: cannot tell now, try again%s%s%s\n", shown, pr.note[0] ? " (" : "",
		       pr.note, pr.note[0] ? ")" : "");
		return VERIFY_UNSURE;
	}
	if (err == LCP_ERR_NOENT) {
		/* Missing is an error, but not damage. */
		fprintf(stderr, "%s: %s\n", shown, strerror(ENOENT));
		return VERIFY_FAILED;
	}
	if (err) {
		printf("%s: cannot check: %s%s%s%s\n", shown, lcp_strerror(err),
		       pr.note[0] ? " (" : "", pr.note, pr.note[0] ? ")" : "");
		return VERIFY_FAILED;
	}
	if (pr.repr == LCP_REPR_DAMAGED) {
		printf("%s: DAMAGED: %s\n", shown, pr.note);
		return VERIFY_FAILED;
	}
	if (pr.repr == LCP_REPR_COMPRESSED) {
		err = lcp_store_verify(f, where, sizeof where);
		lcp_store_close(f);
		if (err) {
			printf("%s: DAMAGED: %s: %s\n", shown, where, lcp_strerror(err));
			return VERIFY_FAILED;
		}
		printf("%s: ok\n", shown);
		return VERIFY_OK;
	}
	if (!pr.regular) {
		if (!walked)
			printf("%s: not a regular file, nothing to verify\n", shown);
		return VERIFY_OK;
	}
	/* getxattr has no *at form: name the file through its directory's fd. */
	char xpath[64 + NAME_MAX];
	snprintf(xpath, sizeof xpath, "/proc/self/fd/%d/%s", dirfd, name);
	char *state = get_xattr(xpath, XATTR_STATE);
	bool mounted = state && strcmp(state, "compressed") == 0;
	lcp_free(state);
	if (mounted)
		return verify_in_mount(dirfd, name, shown);
	printf("%s: raw (not packed), nothing to verify\n", shown);
	return VERIFY_OK;
}

/* The verdicts of a whole run: any failure wins over any doubt. */
struct verify_run {
	bool failed, unsure;
};

static void note_verdict(struct verify_run *run, enum verdict v)
{
	run->failed |= v == VERIFY_FAILED;
	run->unsure |= v == VERIFY_UNSURE;
}

static void verify_walked(struct lcp_cli_walk *w, int dirfd, const char *name, const char *path,
			  const struct stat *st)
{
	/* Sidecars and temporaries are checked with the file they belong to. */
	if (S_ISREG(st->st_mode) && !lcp_store_is_internal_name(name))
		note_verdict(w->arg, verify_file(dirfd, name, path, true));
}

static void verify_path(struct verify_run *run, const char *shown)
{
	char dirbuf[4096];
	const char *base, *path = shown;
	struct stat st;
	char *target = NULL;
	int dirfd;

	/* A symbolic link named on the command line is followed (below a
	 * directory they are not). */
	if (lstat(shown, &st) == 0 && S_ISLNK(st.st_mode) && (target = realpath(shown, NULL)))
		path = target;
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
		struct lcp_cli_walk w = {.verb = "verify", .file = verify_walked, .arg = run};
		int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0) {
			fprintf(stderr, "lcpfs verify: %s: %s\n", shown, strerror(errno));
			run->failed = true;
		} else {
			lcp_cli_walk_dir(&w, fd, shown);
			run->failed |= w.errors > 0;
		}
	} else if ((dirfd = lcp_cli_open_parent(path, dirbuf, sizeof dirbuf, &base)) < 0) {
		fprintf(stderr, "%s: %s\n", shown, strerror(errno));
		run->failed = true;
	} else {
		note_verdict(run, verify_file(dirfd, base, shown, false));
		close(dirfd);
	}
	free(target); /* realpath's, from malloc */
}

int lcp_cli_verify(int argc, char **argv)
{
	struct verify_run run = {false, false};

	if (argc < 2) {
		fprintf(stderr, "usage: lcpfs verify PATH...\n");
		return 2;
	}
	for (int i = 1; i < argc; i++)
		verify_path(&run, argv[i]);
	return run.failed ? 1 : run.unsure ? LCP_CLI_EXIT_UNSURE : 0;
}

int lcp_cli_recover(int argc, char **argv)
{
	int status = 0;
	if (argc < 2) {
		fprintf(stderr, "usage: lcpfs recover DIR...\n");
		return 2;
	}
	for (int i = 1; i < argc; i++) {
		int fd = open(argv[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		lcp_err err = fd < 0 ? LCP_ERR_IO : lcp_store_recover_dir(fd);
		if (fd >= 0)
			close(fd);
		if (err) {
			fprintf(stderr, "lcpfs recover: %s: %s\n", argv[i],
				fd < 0 ? strerror(errno) : lcp_strerror(err));
			status = 1;
		}
	}
	return status;
}
