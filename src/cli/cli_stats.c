/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `lcpfs stats [--json] PATH...`: how much a mount, a backing directory or a
 * set of files saves, in the spirit of compsize and du. Directories are
 * walked (symlinks not followed, each inode counted once). A file inside a
 * mount answers through the daemon's user.lcpfs.* xattrs (state, format,
 * reason, and for a compressed file its stored size and preset);
 * any other file is asked through the store's public API (compressed or
 * raw, its configuration) plus the refusal marker a mount leaves on a raw
 * file. The store's own files (sidecars, temporaries) are never listed as
 * files: their bytes count in the compressed file they belong to (stored)
 * and in the disk usage.
 *
 * Per file: logical bytes (what a reader sees: st_size through the mount),
 * stored bytes (what lcpfs keeps on the backing: payload + sidecar, or the
 * raw file), and allocated bytes (st_blocks * 512 of everything examined,
 * as du counts).
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/alloc.h"
#include "lcpfs/config.h"
#include "lcpfs/store.h"

#define REASONS_MAX 1000 /* distinct reasons kept; the rest are lumped together */
#define REASONS_SHOWN 20 /* in the human table */
#define OTHER_REASONS "(other reasons)"
#define NO_FORMAT "other" /* raw files: not a tensor file, or not examined */
#define XATTR_BUF_START 1024u /* every value asked for fits: one getxattr call */

/* Totals for one key (a state, a format, a preset or a reason). */
struct tally {
	char *key;
	const char *state; /* reasons only: the state of the files */
	uint64_t files, logical, stored;
};

struct tallies {
	struct tally *v;
	size_t n, cap;
};

struct inode_set {
	struct { dev_t dev; ino_t ino; bool used; } *slot;
	size_t n, cap; /* cap is a power of two */
};

struct stats {
	struct tallies states, formats, presets, reasons;
	struct inode_set seen;
	uint64_t files, dirs, logical, stored, disk, internal_files, hardlinks;
	unsigned errors;
	char *xbuf; /* getxattr buffer, reused */
	size_t xcap;
};

/* What one file is. */
struct facts {
	const char *state;
	char format[32];   /* "" when unknown */
	char preset[160];  /* compressed files only; "" otherwise */
	char reason[512];  /* "" when none */
	uint64_t logical, stored;
};

/* Adds f to key's totals (per key and state when state is given). A new key
 * beyond max entries goes to `lump` instead. false on no memory. */
static bool tally_add(struct tallies *t, const char *key, const char *state, size_t max,
		      const char *lump, const struct facts *f)
{
	size_t i;

	for (i = 0; i < t->n; i++)
		if (strcmp(t->v[i].key, key) == 0 && (!state || strcmp(t->v[i].state, state) == 0))
			break;
	if (i == t->n && t->n >= max && strcmp(key, lump) != 0)
		return tally_add(t, lump, state, SIZE_MAX, lump, f);
	if (i == t->n) {
		if (t->n == t->cap) {
			size_t cap = t->cap ? t->cap * 2 : 8;
			struct tally *v = lcp_realloc(t->v, cap * sizeof *v);
			if (!v)
				return false;
			t->v = v;
			t->cap = cap;
		}
		memset(&t->v[i], 0, sizeof t->v[i]);
		t->v[i].key = lcp_strdup(key);
		if (!t->v[i].key)
			return false;
		t->v[i].state = state;
		t->n++;
	}
	t->v[i].files++;
	t->v[i].logical += f->logical;
	t->v[i].stored += f->stored;
	return true;
}

static void tallies_free(struct tallies *t)
{
	for (size_t i = 0; i < t->n; i++)
		lcp_free(t->v[i].key);
	lcp_free(t->v);
}

static size_t inode_hash(dev_t dev, ino_t ino, size_t cap)
{
	uint64_t h = ((uint64_t)dev * 0x9e3779b97f4a7c15ull) ^ ((uint64_t)ino * 0xff51afd7ed558ccdull);
	return (size_t)(h ^ (h >> 29)) & (cap - 1);
}

/* Adds (dev, ino); *fresh says whether it was new. false on no memory. */
static bool inode_insert(struct inode_set *s, dev_t dev, ino_t ino, bool *fresh)
{
	if (2 * (s->n + 1) > s->cap) {
		struct inode_set bigger = {NULL, 0, s->cap ? s->cap * 2 : 1024};
		bigger.slot = lcp_calloc(bigger.cap, sizeof *bigger.slot);
		if (!bigger.slot)
			return false;
		for (size_t i = 0; i < s->cap; i++) {
			if (!s->slot[i].used)
				continue;
			size_t j = inode_hash(s->slot[i].dev, s->slot[i].ino, bigger.cap);
			while (bigger.slot[j].used)
				j = (j + 1) & (bigger.cap - 1);
			bigger.slot[j] = s->slot[i];
		}
		bigger.n = s->n;
		lcp_free(s->slot);
		*s = bigger;
	}
	size_t j = inode_hash(dev, ino, s->cap);
	while (s->slot[j].used) {
		if (s->slot[j].dev == dev && s->slot[j].ino == ino) {
			*fresh = false;
			return true;
		}
		j = (j + 1) & (s->cap - 1);
	}
	s->slot[j].used = true;
	s->slot[j].dev = dev;
	s->slot[j].ino = ino;
	s->n++;
	*fresh = true;
	return true;
}

/* Reads xattr key of path into s->xbuf (NUL-terminated, grown as needed).
 * Returns the value's length, or -1 with errno set. */
static ssize_t read_xattr(struct stats *s, const char *path, const char *key)
{
	for (;;) {
		ssize_t n = getxattr(path, key, s->xbuf, s->xcap - 1);
		if (n >= 0) {
			s->xbuf[n] = '\0';
			return n;
		}
		if (errno != ERANGE)
			return -1;
		n = getxattr(path, key, NULL, 0);
		if (n < 0)
			return -1;
		char *bigger = lcp_realloc(s->xbuf, (size_t)n + 1);
		if (!bigger) {
			errno = ENOMEM;
			return -1;
		}
		s->xbuf = bigger;
		s->xcap = (size_t)n + 1;
	}
}

/* A file inside a mount: the daemon's xattrs (state already in s->xbuf).
 * Returns 0, or -1 after printing why. */
static int facts_from_mount(struct stats *s, const char *xpath, const char *shown,
			    const struct stat *st, struct facts *f)
{
	static const char *const known[] = {"compressed", "pending", "refused", "raw"};
	f->state = NULL;
	for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
		if (strcmp(s->xbuf, known[i]) == 0)
			f->state = known[i];
	if (!f->state) {
		fprintf(stderr, "lcpfs stats: %s: unknown state '%s'\n", shown, s->xbuf);
		return -1;
	}
	/* Through the mount st_size is the logical size. */
	f->logical = f->stored = (uint64_t)st->st_size;
	if (strcmp(f->state, "compressed") == 0) {
		char *end = NULL;
		if (read_xattr(s, xpath, "user.lcpfs.stored_size") > 0) {
			errno = 0;
			f->stored = strtoull(s->xbuf, &end, 10);
		}
		if (!end || *end || errno) {
			fprintf(stderr, "lcpfs stats: %s: compressed, but the mount gives no stored "
				"size\n", shown);
			return -1;
		}
		if (read_xattr(s, xpath, "user.lcpfs.format") < 0) {
			fprintf(stderr, "lcpfs stats: %s: compressed, but the mount gives no format\n",
				shown);
			return -1;
		}
		snprintf(f->format, sizeof f->format, "%s", s->xbuf);
		snprintf(f->preset, sizeof f->preset, "%s",
			 read_xattr(s, xpath, "user.lcpfs.preset") > 0 ? s->xbuf : "(unknown)");
		return 0;
	}
	if (read_xattr(s, xpath, "user.lcpfs.format") >= 0)
		snprintf(f->format, sizeof f->format, "%s", s->xbuf);
	if (read_xattr(s, xpath, "user.lcpfs.reason") >= 0)
		snprintf(f->reason, sizeof f->reason, "%s", s->xbuf);
	return 0;
}

/* Any other file: the store decides; a mount's refusal marker gives the
 * reason of a refused raw file. Returns 0, or -1 after printing why. */
static int facts_from_store(struct stats *s, int dirfd, const char *name, const char *xpath,
			    const char *shown, const struct stat *st, struct facts *f)
{
	struct lcp_store_file *sf = NULL;
	struct lcp_file_report r;
	lcp_err err = lcp_store_open_at(dirfd, name, NULL, &sf);

	f->logical = f->stored = (uint64_t)st->st_size;
	if (err == LCP_ERR_NOENT) {
		if (read_xattr(s, xpath, LCP_CLI_REFUSED_XATTR) >= 0) {
			f->state = "refused";
			snprintf(f->reason, sizeof f->reason, "%s", s->xbuf);
			if (lcp_store_report_raw_at(dirfd, name, &r) == LCP_OK) {
				if (r.format != LCP_FORMAT_UNKNOWN)
					snprintf(f->format, sizeof f->format, "%s",
						 lcp_format_name(r.format));
				lcp_file_report_free(&r);
			}
		} else {
			f->state = "raw";
		}
		return 0;
	}
	if (err == LCP_ERR_CHECKSUM || err == LCP_ERR_FORMAT || err == LCP_ERR_VERSION ||
	    err == LCP_ERR_TRUNCATED) {
		/* A payload whose sidecar or header is bad: it reads as EIO. */
		f->state = "damaged";
		snprintf(f->reason, sizeof f->reason, "%s", lcp_strerror(err));
		return 0;
	}
	if (err) {
		fprintf(stderr, "lcpfs stats: %s: %s\n", shown, lcp_strerror(err));
		return -1;
	}
	err = lcp_store_report(sf, &r);
	lcp_store_close(sf);
	if (err) {
		fprintf(stderr, "lcpfs stats: %s: %s\n", shown, lcp_strerror(err));
		return -1;
	}
	f->state = "compressed";
	f->logical = r.logical_size;
	f->stored = r.stored_size;
	snprintf(f->format, sizeof f->format, "%s", lcp_format_name(r.format));
	lcp_config_describe(&r.config, f->preset, sizeof f->preset);
	lcp_file_report_free(&r);
	return 0;
}

/* Counts regular file name in dirfd; shown names it in messages. */
static void count_file(struct stats *s, int dirfd, const char *name, const char *shown,
		       const struct stat *st)
{
	char xpath[64 + NAME_MAX];
	struct facts f;
	bool fresh;
	int rc;

	if (!inode_insert(&s->seen, st->st_dev, st->st_ino, &fresh)) {
		fprintf(stderr, "lcpfs stats: out of memory\n");
		s->errors++;
		return;
	}
	if (!fresh) {
		s->hardlinks++;
		return;
	}
	memset(&f, 0, sizeof f);
	/* getxattr has no *at form: name the file through its directory's fd. */
	snprintf(xpath, sizeof xpath, "/proc/self/fd/%d/%s", dirfd, name);
	if (read_xattr(s, xpath, "user.lcpfs.state") >= 0)
		rc = facts_from_mount(s, xpath, shown, st, &f);
	else
		rc = facts_from_store(s, dirfd, name, xpath, shown, st, &f);
	if (rc) {
		s->errors++;
		return;
	}
	s->files++;
	s->logical += f.logical;
	s->stored += f.stored;
	s->disk += (uint64_t)st->st_blocks * 512u;
	bool ok = tally_add(&s->states, f.state, NULL, SIZE_MAX, "", &f) &&
		  tally_add(&s->formats, f.format[0] ? f.format : NO_FORMAT, NULL, SIZE_MAX, "", &f) &&
		  (!f.preset[0] || tally_add(&s->presets, f.preset, NULL, SIZE_MAX, "", &f)) &&
		  (!f.reason[0] ||
		   tally_add(&s->reasons, f.reason, f.state, REASONS_MAX, OTHER_REASONS, &f));
	if (!ok) {
		fprintf(stderr, "lcpfs stats: out of memory\n");
		s->errors++;
	}
}

/* One entry met by the walk of a directory. */
static void walked_entry(struct lcp_cli_walk *w, int dirfd, const char *name, const char *path,
			 const struct stat *st)
{
	struct stats *s = w->arg;

	if (S_ISREG(st->st_mode) && lcp_store_is_internal_name(name)) {
		/* A sidecar or temporary on a backing directory. */
		s->internal_files++;
		s->disk += (uint64_t)st->st_blocks * 512u;
	} else if (S_ISREG(st->st_mode)) {
		count_file(s, dirfd, name, path, st);
	}
}

static void walk(struct stats *s, int fd, const char *path)
{
	struct lcp_cli_walk w = {.verb = "stats", .file = walked_entry, .arg = s};

	lcp_cli_walk_dir(&w, fd, path);
	s->dirs += w.dirs;
	s->errors += w.errors;
}

static void stat_path(struct stats *s, const char *path)
{
	struct stat st;

	if (lstat(path, &st) != 0) {
		fprintf(stderr, "lcpfs stats: %s: %s\n", path, strerror(errno));
		s->errors++;
	} else if (S_ISDIR(st.st_mode)) {
		int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0) {
			fprintf(stderr, "lcpfs stats: %s: %s\n", path, strerror(errno));
			s->errors++;
		} else {
			walk(s, fd, path);
		}
	} else if (S_ISREG(st.st_mode)) {
		char dirbuf[4096];
		const char *base;
		int dfd = lcp_cli_open_parent(path, dirbuf, sizeof dirbuf, &base);
		if (dfd < 0) {
			fprintf(stderr, "lcpfs stats: %s: %s\n", path, strerror(errno));
			s->errors++;
			return;
		}
		if (lcp_store_is_internal_name(base))
			fprintf(stderr, "lcpfs stats: %s: lcpfs's own file, counted in its file\n", path);
		else
			count_file(s, dfd, base, path, &st);
		close(dfd);
	} else {
		fprintf(stderr, "lcpfs stats: %s: not a regular file or directory\n", path);
		s->errors++;
	}
}

/* Binary units, as du -h and compsize print them. */
static const char *human(uint64_t bytes, char *buf, size_t len)
{
	static const char *const units[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
	double v = (double)bytes;
	size_t u = 0;

	if (bytes < 1024) {
		snprintf(buf, len, "%llu B", (unsigned long long)bytes);
		return buf;
	}
	v /= 1024.0;
	while (v >= 1024.0 && u + 1 < sizeof units / sizeof units[0]) {
		v /= 1024.0;
		u++;
	}
	snprintf(buf, len, "%.1f %s", v, units[u]);
	return buf;
}

static void print_row(const char *key, int keyw, uint64_t files, uint64_t logical, uint64_t stored)
{
	char lg[24], sd[24], sv[24], ratio[16];
	if (stored)
		snprintf(ratio, sizeof ratio, "%.2fx", (double)logical / (double)stored);
	else
		snprintf(ratio, sizeof ratio, "-");
	/* Saved is negative when a file's container outweighs it. */
	sv[0] = '-';
	human(logical >= stored ? logical - stored : stored - logical, sv + 1, sizeof sv - 1);
	printf("%-*.*s %8llu %11s %11s %8s %11s\n", keyw, keyw, key, (unsigned long long)files,
	       human(logical, lg, sizeof lg), human(stored, sd, sizeof sd), ratio,
	       logical >= stored ? sv + 1 : sv);
}

/* qsort of a table; an empty one may have v NULL, which qsort must not get. */
static void sort_tallies(struct tallies *t, int (*order)(const void *, const void *))
{
	if (t->n)
		qsort(t->v, t->n, sizeof *t->v, order);
}

static int by_logical_desc(const void *a, const void *b)
{
	const struct tally *x = a, *y = b;
	if (x->logical != y->logical)
		return x->logical < y->logical ? 1 : -1;
	return strcmp(x->key, y->key);
}

static int by_files_desc(const void *a, const void *b)
{
	const struct tally *x = a, *y = b;
	if (x->files != y->files)
		return x->files < y->files ? 1 : -1;
	return strcmp(x->key, y->key);
}

/* States in their life order, then any other. */
static int state_rank(const char *k)
{
	static const char *const order[] = {"compressed", "pending", "refused", "raw", "damaged"};
	for (int i = 0; i < 5; i++)
		if (strcmp(k, order[i]) == 0)
			return i;
	return 5;
}

static int by_state(const void *a, const void *b)
{
	const struct tally *x = a, *y = b;
	int d = state_rank(x->key) - state_rank(y->key);
	return d ? d : strcmp(x->key, y->key);
}

static void print_section(const char *title, struct tallies *t, int (*order)(const void *, const void *))
{
	int keyw = (int)strlen(title);
	if (!t->n)
		return;
	sort_tallies(t, order);
	for (size_t i = 0; i < t->n; i++)
		if ((int)strlen(t->v[i].key) > keyw)
			keyw = (int)strlen(t->v[i].key);
	if (keyw > 48)
		keyw = 48;
	printf("\n%-*s %8s %11s %11s %8s %11s\n", keyw, title, "files", "logical", "stored", "ratio",
	       "saved");
	for (size_t i = 0; i < t->n; i++)
		print_row(t->v[i].key, keyw, t->v[i].files, t->v[i].logical, t->v[i].stored);
}

static void print_human(struct stats *s)
{
	char a[24];
	int keyw = 10;

	printf("%-*s %8s %11s %11s %8s %11s\n", keyw, "state", "files", "logical", "stored", "ratio",
	       "saved");
	sort_tallies(&s->states, by_state);
	for (size_t i = 0; i < s->states.n; i++)
		print_row(s->states.v[i].key, keyw, s->states.v[i].files, s->states.v[i].logical,
			  s->states.v[i].stored);
	print_row("total", keyw, s->files, s->logical, s->stored);
	print_section("format", &s->formats, by_logical_desc);
	print_section("preset (compressed files)", &s->presets, by_logical_desc);
	if (s->reasons.n) {
		sort_tallies(&s->reasons, by_files_desc);
		printf("\n%-10s %8s %11s  %s\n", "state", "files", "logical", "reason");
		for (size_t i = 0; i < s->reasons.n && i < REASONS_SHOWN; i++)
			printf("%-10s %8llu %11s  %s\n", s->reasons.v[i].state,
			       (unsigned long long)s->reasons.v[i].files,
			       human(s->reasons.v[i].logical, a, sizeof a), s->reasons.v[i].key);
		if (s->reasons.n > REASONS_SHOWN)
			printf("... and %zu more reasons (--json lists them all)\n",
			       s->reasons.n - REASONS_SHOWN);
	}
	printf("\nfiles: %llu in %llu director%s", (unsigned long long)s->files,
	       (unsigned long long)s->dirs, s->dirs == 1 ? "y" : "ies");
	if (s->hardlinks)
		printf(" (and %llu more hard links, counted once)", (unsigned long long)s->hardlinks);
	printf("\ndisk usage: %s allocated, as du counts", human(s->disk, a, sizeof a));
	if (s->internal_files)
		printf(" (with %llu lcpfs sidecars and temporaries)",
		       (unsigned long long)s->internal_files);
	printf("\n");
}

static json_t *sizes_json(uint64_t files, uint64_t logical, uint64_t stored)
{
	return json_pack("{s:I,s:I,s:I,s:I}", "files", (json_int_t)files, "logical_bytes",
			 (json_int_t)logical, "stored_bytes", (json_int_t)stored, "saved_bytes",
			 (json_int_t)logical - (json_int_t)stored);
}

static json_t *tallies_json(const struct tallies *t)
{
	json_t *o = json_object();
	for (size_t i = 0; o && i < t->n; i++)
		if (json_object_set_new(o, t->v[i].key,
					sizes_json(t->v[i].files, t->v[i].logical, t->v[i].stored))) {
			json_decref(o);
			return NULL;
		}
	return o;
}

static int print_json(struct stats *s)
{
	json_t *reasons = json_array(), *o;
	char *text;

	sort_tallies(&s->reasons, by_files_desc);
	for (size_t i = 0; reasons && i < s->reasons.n; i++) {
		json_t *r = json_pack("{s:s,s:s,s:I,s:I}", "reason", s->reasons.v[i].key, "state",
				      s->reasons.v[i].state, "files", (json_int_t)s->reasons.v[i].files,
				      "logical_bytes", (json_int_t)s->reasons.v[i].logical);
		if (json_array_append_new(reasons, r)) {
			json_decref(reasons);
			reasons = NULL;
		}
	}
	o = json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:o*,s:o*,s:o*,s:o*}",
		      "files", (json_int_t)s->files, "directories", (json_int_t)s->dirs,
		      "logical_bytes", (json_int_t)s->logical, "stored_bytes", (json_int_t)s->stored,
		      "saved_bytes", (json_int_t)s->logical - (json_int_t)s->stored,
		      "disk_bytes", (json_int_t)s->disk, "internal_files",
		      (json_int_t)s->internal_files, "hardlinks_skipped", (json_int_t)s->hardlinks,
		      "errors", (json_int_t)s->errors, "by_state", tallies_json(&s->states),
		      "by_format", tallies_json(&s->formats), "by_preset", tallies_json(&s->presets),
		      "reasons", reasons);
	text = o ? json_dumps(o, JSON_PRESERVE_ORDER | JSON_INDENT(2)) : NULL;
	json_decref(o);
	if (!text) {
		fprintf(stderr, "lcpfs stats: out of memory\n");
		return -1;
	}
	printf("%s\n", text);
	free(text); /* jansson's allocation */
	return 0;
}

int lcp_cli_stats(int argc, char **argv)
{
	struct stats s;
	bool json = false;
	int i = 1, rc;

	if (i < argc && strcmp(argv[i], "--json") == 0) {
		json = true;
		i++;
	}
	if (i >= argc) {
		fprintf(stderr, "usage: lcpfs stats [--json] PATH...\n");
		return 2;
	}
	memset(&s, 0, sizeof s);
	s.xcap = XATTR_BUF_START;
	s.xbuf = lcp_malloc(s.xcap);
	if (!s.xbuf) {
		fprintf(stderr, "lcpfs stats: out of memory\n");
		return 1;
	}
	for (; i < argc; i++)
		stat_path(&s, argv[i]);
	rc = json ? print_json(&s) : (print_human(&s), 0);
	tallies_free(&s.states);
	tallies_free(&s.formats);
	tallies_free(&s.presets);
	tallies_free(&s.reasons);
	lcp_free(s.seen.slot);
	lcp_free(s.xbuf);
	return rc || s.errors ? 1 : 0;
}
