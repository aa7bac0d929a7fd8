/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The daemon's entry point: `lcpfs BACKING MOUNTPOINT [-o OPTIONS] [-f] [-d]`,
 * as typed or as mount.fuse3 runs it for an fstab line of type fuse.lcpfs.
 * Splits -o options into ours (compression settings, cache=, threads=), the
 * mount(8) noise fuse3's own tools ignore, and the rest, which goes to
 * libfuse (allow_other, default_permissions, ro, ...). Then recovers the
 * backing directory, mounts, daemonizes unless -f, and serves with the
 * multithreaded loop until unmounted.
 */
#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/log.h"
#include "fs/fs.h"
#include "lcpfs/version.h"
#include "fs/fs_priv.h"
#include "lcpfs/codec.h"
#include "lcpfs/provider.h"
#include "lcpfs/store.h"

#define DEFAULT_CACHE_BYTES (256ull << 20) /* a few layers' decoded chunks */
#define MAX_THREADS 64u
#define ATTR_TIMEOUT_SEC 60.0 /* long: the page cache is the hot path; we invalidate on change */
#define MAX_TIMEOUT_SEC 86400.0 /* a day: longer only hides changes from other machines */
#define MAX_IDLE_THREADS 16u
/* How long a read-write mount waits for the backing's writer lock: a mount
 * of the same backing that was just unmounted lets it go within
 * milliseconds, once it has cancelled its jobs; a running one never. */
#define WRITER_LOCK_WAIT_MS 5000
#define WRITER_LOCK_POLL_MS 20
/* Model files are read front to back: a deep readahead keeps several read
 * requests in flight. Cold sequential dd of bench_mount's 256 MiB file
 * (medians of 5, MiB/s) with the kernel's own 128 KiB, 1M, 4M and 16M:
 * raw files through the mount 809, 1085, 1106, 1022; the compressed file
 * (decode-ahead on) 943, 924, 909, 707. Raw files want 1M or more, and 16M
 * only churns memory. */
#define DEFAULT_READAHEAD_BYTES (4ull << 20)
/* Decoded chunks waiting for sequential readers, all files together. The
 * same runs, windows 0, 4M, 16M and 64M: 931, 1002, 1368, 868 MiB/s with
 * the 4M readahead; with the kernel's 128 KiB (a daemon that is not root
 * cannot raise it) decode-ahead takes 750 MiB/s and 360 ms of CPU to
 * 1126-1209 and 220 ms (fewer partial-chunk decodes). A larger window only
 * holds more memory longer. */
#define DEFAULT_DECODE_AHEAD_BYTES (16ull << 20)
#define MAX_DECODE_AHEAD_THREADS 16

/* mount(8) and fstab words that mean nothing to a FUSE filesystem (or are
 * already the kernel's defaults); fuse3's own helpers drop them the same way. */
static const char *const ignored_options[] = {
	"rw", "dev", "nodev", "suid", "nosuid", "exec", "noexec", "auto", "noauto",
	"user", "nouser", "users", "defaults", "_netdev", "nofail", "async", "sync",
	"atime", "noatime", "relatime", "norelatime", "strictatime", "lazytime", "nolazytime",
	"diratime", "nodiratime", "loop", "owner", "group", "nosymfollow", NULL,
};

/* Compression settings understood by lcp_config_parse_options. */
static const char *const config_options[] = {
	"preset", "bits", "rank", "group", "asym", "sym", "quality", "min_size", NULL,
};

static bool in_list(const char *const *list, const char *opt)
{
	size_t n = strcspn(opt, "=");
	for (size_t i = 0; list[i]; i++)
		if (strlen(list[i]) == n && strncmp(list[i], opt, n) == 0)
			return true;
	return false;
}

static void usage(FILE *to, const char *prog)
{
	fprintf(to,
		"usage: %s BACKING MOUNTPOINT [-o OPTION[,OPTION...]] [-f] [-d] [-s]\n"
		"\n"
		"Mounts BACKING at MOUNTPOINT. Tensor files written through the mount are\n"
		"compressed in the background after their last close.\n"
		"\n"
		"lcpfs options:\n"
		"    -o preset=aggressive|balanced|quality|lossless   compression preset (balanced)\n"
		"    -o bits=4|8  rank=N  group=N  asym|sym  quality=F  min_size=N[kMG]\n"
		"    -o cache=SIZE[kMG]    decoded chunk cache (default 256M)\n"
		"    -o threads=N          encoder threads (default: the number of cores)\n"
		"    -o readahead=SIZE     kernel readahead for the mount (default 4M; 0: kernel's)\n"
		"    -o decode_ahead=SIZE  chunks decoded ahead of sequential readers (default 16M; 0: off)\n"
		"    -o attr_timeout=SEC   how long the kernel keeps attributes (default 60)\n"
		"    -o entry_timeout=SEC  how long the kernel keeps names (default 60)\n"
		"    -o ro                 read-only: every change fails with EROFS, nothing is\n"
		"                          compressed or recovered (fleet nodes)\n"
		"    -f                    stay in the foreground\n"
		"    -d                    debug: foreground, log every request\n"
		"    -s                    single-threaded request loop\n"
		"\n"
		"Other -o options go to FUSE: allow_other, default_permissions, ...\n"
		"Unmount with: fusermount3 -u MOUNTPOINT\n",
		prog);
}

/* "N", "Nk", "NM" or "NG" (powers of 1024); false on anything else or on
 * overflow. */
static bool parse_size(const char *s, uint64_t *out)
{
	uint64_t v = 0;
	unsigned shift = 0;
	const char *p = s;

	for (; *p >= '0' && *p <= '9'; p++) {
		if (v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
			return false;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	if (p == s)
		return false;
	switch (*p) {
	case 'k': case 'K': shift = 10; p++; break;
	case 'm': case 'M': shift = 20; p++; break;
	case 'g': case 'G': shift = 30; p++; break;
	default: break;
	}
	if (*p || (shift && v > (UINT64_MAX >> shift)))
		return false;
	*out = v << shift;
	return true;
}

/* Seconds, decimals allowed, 0..MAX_TIMEOUT_SEC; false on anything else. */
static bool parse_seconds(const char *s, double *out)
{
	char *end;
	double v;

	if (!*s || strspn(s, "0123456789.") != strlen(s))
		return false;
	v = strtod(s, &end);
	if (*end || !(v >= 0 && v <= MAX_TIMEOUT_SEC))
		return false;
	*out = v;
	return true;
}

static int append_opt(char **list, const char *opt)
{
	size_t old = *list ? strlen(*list) : 0;
	char *n = lcp_realloc(*list, old + strlen(opt) + 2);

	if (!n)
		return -1;
	if (old)
		n[old++] = ',';
	strcpy(n + old, opt);
	*list = n;
	return 0;
}

static bool has_option(const char *list, const char *opt)
{
	size_t n = strlen(opt);

	for (const char *p = list; p && *p; p += strcspn(p, ",") + (p[strcspn(p, ",")] == ',')) {
		if (strncmp(p, opt, n) == 0 && (p[n] == ',' || p[n] == '\0'))
			return true;
	}
	return false;
}

struct cmdline {
	const char *backing, *mountpoint;
	bool foreground, debug, single;
	char *fuse_opts;   /* for libfuse */
	char *cfg_opts;    /* for lcp_config_parse_options */
	uint64_t readahead_bytes;
};

/* Sorts one comma-separated -o argument; returns 0 or prints and returns 2. */
static int sort_options(struct fs_mount *m, const char *prog, const char *arg, struct cmdline *cl)
{
	char *copy = lcp_strdup(arg), *save = NULL;
	int rc = 0;

	if (!copy)
		return 2;
	for (char *o = strtok_r(copy, ",", &save); o && !rc; o = strtok_r(NULL, ",", &save)) {
		if (in_list(ignored_options, o) || strncmp(o, "x-", 2) == 0 ||
		    strncmp(o, "comment=", 8) == 0) {
			continue;
		} else if (strncmp(o, "cache=", 6) == 0) {
			if (!parse_size(o + 6, &m->cache_bytes)) {
				fprintf(stderr, "%s: bad size in option '%s'\n", prog, o);
				rc = 2;
			}
		} else if (strncmp(o, "decode_ahead=", 13) == 0) {
			if (!parse_size(o + 13, &m->ahead_bytes) || m->ahead_bytes > SIZE_MAX / 2) {
				fprintf(stderr, "%s: bad size in option '%s'\n", prog, o);
				rc = 2;
			}
		} else if (strncmp(o, "readahead=", 10) == 0) {
			if (!parse_size(o + 10, &cl->readahead_bytes)) {
				fprintf(stderr, "%s: bad size in option '%s'\n", prog, o);
				rc = 2;
			}
		} else if (strncmp(o, "attr_timeout=", 13) == 0 ||
			   strncmp(o, "entry_timeout=", 14) == 0) {
			bool attr = o[0] == 'a';
			if (!parse_seconds(strchr(o, '=') + 1,
					   attr ? &m->attr_timeout : &m->entry_timeout)) {
				fprintf(stderr, "%s: option '%s': seconds from 0 to %.0f\n", prog, o,
					MAX_TIMEOUT_SEC);
				rc = 2;
			}
		} else if (strncmp(o, "threads=", 8) == 0) {
			uint64_t n;
			if (!parse_size(o + 8, &n) || n < 1 || n > MAX_THREADS) {
				fprintf(stderr, "%s: option '%s': threads must be 1..%u\n", prog, o,
					MAX_THREADS);
				rc = 2;
			}
			m->threads = (unsigned)n;
		} else if (in_list(config_options, o)) {
			if (append_opt(&cl->cfg_opts, o))
				rc = 2;
		} else {
			if (strcmp(o, "ro") == 0)
				m->readonly = true;
			if (append_opt(&cl->fuse_opts, o))
				rc = 2;
		}
	}
	lcp_free(copy);
	return rc;
}

/* Returns -1 to go on, or an exit status. */
static int parse_cmdline(struct fs_mount *m, int argc, char **argv, struct cmdline *cl)
{
	const char *prog = argv[0];

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage(stdout, prog);
			return 0;
		} else if (strcmp(a, "-V") == 0 || strcmp(a, "--version") == 0) {
			printf("lcpfs %s\n", LCPFS_VERSION_STRING);
			fuse_lowlevel_version();
			return 0;
		} else if (strcmp(a, "-f") == 0) {
			cl->foreground = true;
		} else if (strcmp(a, "-d") == 0 || strcmp(a, "-odebug") == 0) {
			cl->debug = cl->foreground = true;
		} else if (strcmp(a, "-s") == 0) {
			cl->single = true;
		} else if (strncmp(a, "-o", 2) == 0) {
			const char *o = a[2] ? a + 2 : (i + 1 < argc ? argv[++i] : NULL);
			if (!o) {
				fprintf(stderr, "%s: -o needs an argument\n", prog);
				return 2;
			}
			if (sort_options(m, prog, o, cl))
				return 2;
		} else if (a[0] == '-') {
			fprintf(stderr, "%s: unknown option '%s' (try --help)\n", prog, a);
			return 2;
		} else if (!cl->backing) {
			cl->backing = a;
		} else if (!cl->mountpoint) {
			cl->mountpoint = a;
		} else {
			fprintf(stderr, "%s: unexpected argument '%s'\n", prog, a);
			return 2;
		}
	}
	if (!cl->backing || !cl->mountpoint) {
		usage(stderr, prog);
		return 2;
	}
	/* The daemon opens existing files with its own (root) rights: with
	 * allow_other, only the kernel's permission checks keep other users to
	 * what the modes allow. */
	if (has_option(cl->fuse_opts, "allow_other") &&
	    !has_option(cl->fuse_opts, "default_permissions") &&
	    append_opt(&cl->fuse_opts, "default_permissions"))
		return 2;
	return -1;
}

/* Writes text into the mountinfo escaping of a path (octal for space, tab,
 * newline and backslash). */
static void mountinfo_escape(const char *path, char *out, size_t len)
{
	size_t o = 0;

	for (const char *p = path; *p && o + 5 < len; p++) {
		if (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\\')
			o += (size_t)snprintf(out + o, len - o, "\\%03o", (unsigned char)*p);
		else
			out[o++] = *p;
	}
	out[o] = '\0';
}

/* Finds the sysfs readahead file of our new mount (through its device
 * number in /proc/self/mountinfo: a stat of the mountpoint would wait for the
 * request loop, which is not running yet) and keeps it for
 * fs_apply_readahead. */
static void find_readahead_file(struct fs_mount *m, const char *mountpoint, uint64_t bytes)
{
	char real[PATH_MAX], want[PATH_MAX * 4], line[PATH_MAX * 4 + 512], dev[32] = "";
	FILE *f;

	if (!bytes || !realpath(mountpoint, real))
		return;
	mountinfo_escape(real, want, sizeof want);
	f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return;
	while (fgets(line, sizeof line, f)) {
		char devfield[32], point[PATH_MAX * 4], fstype[64];
		/* id parent dev root point options [optional...] - fstype ... */
		if (sscanf(line, "%*s %*s %31s %*s %16383s", devfield, point) != 2)
			continue;
		const char *sep = strstr(line, " - ");
		if (!sep || sscanf(sep + 3, "%63s", fstype) != 1)
			continue;
		if (strcmp(point, want) == 0 && strncmp(fstype, "fuse", 4) == 0)
			snprintf(dev, sizeof dev, "%s", devfield); /* the last one is ours */
	}
	fclose(f);
	if (dev[0]) {
		snprintf(m->readahead_file, sizeof m->readahead_file,
			 "/sys/class/bdi/%s/read_ahead_kb", dev);
		m->readahead_kb = bytes >> 10;
	}
}

void fs_apply_readahead(struct fs_mount *m)
{
	FILE *f;

	if (atomic_flag_test_and_set(&m->readahead_done) || !m->readahead_file[0])
		return;
	/* Best effort: a non-root daemon may not write sysfs. */
	f = fopen(m->readahead_file, "we");
	if (!f)
		return;
	fprintf(f, "%llu\n", (unsigned long long)m->readahead_kb);
	if (fclose(f) != 0)
		lcp_log(LCP_LOG_INFO, "cannot set readahead in %s", m->readahead_file);
}

/* One decode-ahead worker per CPU: they only run while a reader waits for
 * what they decode, next to the request threads decoding for themselves. */
static lcp_err start_decode_ahead(struct fs_mount *m)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned threads = cpus < 1 ? 1u : cpus > MAX_DECODE_AHEAD_THREADS
						? MAX_DECODE_AHEAD_THREADS : (unsigned)cpus;

	if (!m->ahead_bytes)
		return LCP_OK;
	return lcp_decode_ahead_create(threads, (size_t)m->ahead_bytes, &m->ahead);
}

/* The writer lock of the backing (lcp_store_lock_writer), kept until the
 * unmount. False, with the reason printed, when another read-write mount
 * still has it after WRITER_LOCK_WAIT_MS. */
static bool take_writer_lock(struct fs_mount *m, const char *prog, int root_fd)
{
	const struct timespec step = {0, WRITER_LOCK_POLL_MS * 1000000L};
	lcp_err err = lcp_store_lock_writer(root_fd, &m->writer_lock);

	if (err == LCP_ERR_BUSY)
		fprintf(stderr, "%s: %s: waiting up to %d s for the writer lock (held by another "
			"read-write mount, maybe one being unmounted)\n",
			prog, m->backing, WRITER_LOCK_WAIT_MS / 1000);
	for (int waited = 0; err == LCP_ERR_BUSY && waited < WRITER_LOCK_WAIT_MS;
	     waited += WRITER_LOCK_POLL_MS) {
		nanosleep(&step, NULL);
		err = lcp_store_lock_writer(root_fd, &m->writer_lock);
	}
	if (err == LCP_ERR_BUSY) {
		fprintf(stderr,
			"%s: %s: another read-write lcpfs mount of this backing directory is "
			"running (on this machine, or on another one sharing it); mount this one "
			"read-only (-o ro), or unmount that one first\n",
			prog, m->backing);
		return false;
	}
	if (err != LCP_OK) {
		m->writer_lock = -1;
		lcp_log(LCP_LOG_WARN, "%s: cannot take the writer lock (%s): a second read-write "
			"mount of this backing would not be refused", m->backing, lcp_strerror(err));
	}
	return true;
}

/* Mounts and serves until unmounted; *mounted tells whether the mount ever
 * appeared (else nothing but this thread ever saw m). */
static int serve(struct fs_mount *m, struct cmdline *cl, const char *prog, int root_fd,
		 bool *mounted)
{
	char *fsname = NULL;
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct fuse_session *se = NULL;
	int rc = 1;

	if (fuse_opt_add_arg(&args, prog) || (cl->debug && fuse_opt_add_arg(&args, "-odebug")))
		goto out;
	/* fsname shows the backing directory in mount(8); subtype makes the type
	 * fuse.lcpfs, which is what fstab entries name. */
	fsname = lcp_malloc(strlen(cl->backing) + 32);
	if (!fsname)
		goto out;
	sprintf(fsname, "fsname=%s,subtype=lcpfs", cl->backing);
	if (fuse_opt_add_arg(&args, "-o") || fuse_opt_add_arg(&args, fsname))
		goto out;
	if (cl->fuse_opts && (fuse_opt_add_arg(&args, "-o") || fuse_opt_add_arg(&args, cl->fuse_opts)))
		goto out;

	se = fuse_session_new(&args, &fs_ops, sizeof fs_ops, m);
	if (!se)
		goto out;
	m->se = se;
	if (fuse_set_signal_handlers(se) != 0)
		goto out_session;
	/* One read-write mount per backing: two would write one file in place
	 * at once. Taken before recovery, which must not run under a live
	 * writer. */
	if (!m->readonly && !take_writer_lock(m, prog, root_fd))
		goto out_signals;
	/* Finish or clean what a crash left before the mount appears: nobody
	 * sees the backing half-recovered, and a hung recovery could not
	 * freeze a mount that is not there yet. */
	if (fs_tensor_recover(m, root_fd) == LCP_ERR_BUSY) {
		fprintf(stderr,
			"%s: %s: a running lcpfs mount of a directory inside this backing, or a "
			"recovery, uses part of this tree (the warning above names it); unmount "
			"it first, or mount this one read-only (-o ro)\n",
			prog, m->backing);
		goto out_signals;
	}
	if (fuse_session_mount(se, cl->mountpoint) != 0)
		goto out_signals;
	*mounted = true;
	find_readahead_file(m, cl->mountpoint, cl->readahead_bytes);
	if (!cl->foreground)
		lcp_log_use_syslog(1);
	if (fuse_daemonize(cl->foreground) != 0)
		goto out_unmount;
	if (fs_tensor_start(m) != LCP_OK) {
		lcp_log(LCP_LOG_ERROR, "cannot start compression workers");
		goto out_unmount;
	}
	if (start_decode_ahead(m) != LCP_OK) {
		lcp_log(LCP_LOG_ERROR, "cannot start decode-ahead workers");
		goto out_unmount;
	}
	if (cl->single) {
		rc = fuse_session_loop(se);
	} else {
		struct fuse_loop_config *lc = fuse_loop_cfg_create();
		if (!lc)
			goto out_unmount;
		fuse_loop_cfg_set_clone_fd(lc, 0);
		fuse_loop_cfg_set_idle_threads(lc, MAX_IDLE_THREADS);
		rc = fuse_session_loop_mt(se, lc);
		fuse_loop_cfg_destroy(lc);
	}
	rc = rc ? 1 : 0;
	/* Handles the kernel never released keep their streams (without
	 * decode-ahead) until exit. */
	lcp_decode_ahead_free(m->ahead);
	m->ahead = NULL;
out_unmount:
	fuse_session_unmount(se);
out_signals:
	fuse_remove_signal_handlers(se);
out_session:
	fuse_session_destroy(se);
out:
	fuse_opt_free_args(&args);
	lcp_free(fsname);
	return rc;
}

/* Open files of the daemon: a directory fd per directory the kernel knows,
 * a backing fd per open file, a payload fd per committed file in use. The
 * soft limit (often 1024) is raised to the hard one so that a busy mount
 * does not run into it first. */
static void raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= rl.rlim_max)
		return;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
		lcp_log(LCP_LOG_INFO, "cannot raise the open file limit: %s", strerror(errno));
}

int lcp_fs_main(int argc, char **argv)
{
	struct cmdline cl;
	char errbuf[200];
	int rc, root_fd = -1;
	bool mounted = false;
	struct stat st;
	struct fs_mount *m = lcp_calloc(1, sizeof *m);

	memset(&cl, 0, sizeof cl);
	if (!m) {
		fprintf(stderr, "%s: out of memory\n", argv[0]);
		return 1;
	}
	atomic_flag_clear(&m->readahead_done);
	atomic_init(&m->stopping, false);
	cl.readahead_bytes = DEFAULT_READAHEAD_BYTES;
	m->ahead_bytes = DEFAULT_DECODE_AHEAD_BYTES;
	m->cache_bytes = DEFAULT_CACHE_BYTES;
	/* Encoder threads run niced below the request threads (the pool's
	 * background mode), so reads stay quick while they take every core. */
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	m->threads = cores < 1 ? 1u : cores > (long)MAX_THREADS ? MAX_THREADS : (unsigned)cores;
	m->writer_lock = -1;
	m->backing_lock = -1;
	m->attr_timeout = ATTR_TIMEOUT_SEC;
	m->entry_timeout = ATTR_TIMEOUT_SEC;
	rc = parse_cmdline(m, argc, argv, &cl);
	if (rc >= 0)
		goto out;
	rc = 2;
	if (fs_tensor_configure(m, cl.cfg_opts, errbuf, sizeof errbuf) != LCP_OK) {
		fprintf(stderr, "%s: %s\n", argv[0], errbuf);
		goto out;
	}
	m->backing = cl.backing;
	root_fd = open(cl.backing, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (root_fd < 0 || fstat(root_fd, &st) != 0) {
		fprintf(stderr, "%s: cannot open backing directory %s: %s\n", argv[0], cl.backing,
			strerror(errno));
		goto out;
	}
	if (cl.debug)
		lcp_log_set_level(LCP_LOG_DEBUG);
	else
		lcp_log_set_level(LCP_LOG_INFO);
	raise_fd_limit();
	/* Modes arrive already masked by the caller's umask. */
	umask(0);
	fs_rwlock_init(&m->ns);
	if (fs_table_init(m, root_fd) != LCP_OK) {
		fprintf(stderr, "%s: out of memory\n", argv[0]);
		goto out;
	}
	/* The real codec; false only means one is registered already. */
	(void)lcp_provider_register(lcp_provider_cpu());
	rc = serve(m, &cl, argv[0], root_fd, &mounted);
out:
	lcp_free(cl.fuse_opts);
	lcp_free(cl.cfg_opts);
	/* A mount object that served lives until exit (inodes still point into
	 * it); one that never mounted is only ours. */
	if (!mounted) {
		if (root_fd >= 0)
			close(root_fd);
		lcp_free(m->buckets);
		lcp_free(m);
	}
	return rc;
}
