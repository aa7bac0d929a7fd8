/* SPDX-License-Identifier: Apache-2.0 */
/*
 * LD_PRELOAD test shim: holds a process at chosen points of a commit, so a
 * test can put two lcpfs processes (daemons or `lcpfs pack`) into an exact
 * interleaving instead of hoping a race happens.
 *
 * Environment (the shim does nothing unless both are set):
 *   LCPFS_GATE_DIR     directory for the handshake files
 *   LCPFS_GATE_POINTS  space-separated points, each EVENT:NAME, with EVENT
 *                        create         an open with O_CREAT of a file whose
 *                                       base name matches NAME (waits
 *                                       before creating it)
 *                        rename-before  a rename onto a base name matching
 *                                       NAME (waits, then renames)
 *                        rename-after   the same, renames first, then waits
 *                      NAME is an fnmatch(3) pattern (".lcpfs-tmp.*.p").
 * At point number i (from 1) the process creates DIR/arrived.i (holding its
 * pid) and waits until DIR/go.i exists, polling every 10 ms; after
 * GATE_DEADLINE_SEC it goes on anyway and creates DIR/timeout.i, so a broken
 * test never hangs a daemon. Each point holds only its first match in a
 * process. rename, renameat, renameat2, open, open64, openat and openat64 are
 * covered (glibc does not route one through another).
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define GATE_DEADLINE_SEC 120
#define GATE_POLL_NS 10000000L
#define MAX_POINTS 8

enum event { EV_NONE, EV_CREATE, EV_RENAME_BEFORE, EV_RENAME_AFTER };

int rename(const char *oldpath, const char *newpath);
int renameat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath);
int renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath,
	      unsigned int flags);
int open(const char *path, int flags, ...);
int open64(const char *path, int flags, ...);
int openat(int dirfd, const char *path, int flags, ...);
int openat64(int dirfd, const char *path, int flags, ...);

typedef int (*renameat2_fn)(int, const char *, int, const char *, unsigned int);
typedef int (*openat_fn)(int, const char *, int, ...);

static atomic_flag point_used[MAX_POINTS];

static openat_fn real_openat(void)
{
	static openat_fn real;

	if (!real)
		*(void **)&real = dlsym(RTLD_NEXT, "openat");
	return real;
}

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');
	return s ? s + 1 : path;
}

static void touch(const char *dir, const char *what, int point, const char *text)
{
	char path[4096];
	int fd;

	snprintf(path, sizeof path, "%s/%s.%d", dir, what, point);
	fd = real_openat()(AT_FDCWD, path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	if (write(fd, text, strlen(text)) < 0)
		fprintf(stderr, "rename_gate: cannot write %s\n", path);
	close(fd);
}

static void wait_at(int point)
{
	const char *dir = getenv("LCPFS_GATE_DIR");
	char go[4096], pid[32];
	struct timespec step = {0, GATE_POLL_NS};
	time_t deadline = time(NULL) + GATE_DEADLINE_SEC;
	int saved = errno;

	snprintf(go, sizeof go, "%s/go.%d", dir, point);
	snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
	touch(dir, "arrived", point, pid);
	while (access(go, F_OK) != 0) {
		if (time(NULL) > deadline) {
			touch(dir, "timeout", point, pid);
			break;
		}
		nanosleep(&step, NULL);
	}
	errno = saved;
}

/* The number (from 1) of the first unused point that ev on path matches, and
 * its event; 0 when none does. */
static int match_point(enum event ev, const char *path, enum event *which)
{
	const char *points = getenv("LCPFS_GATE_POINTS"), *b = base_name(path);
	char spec[512];
	int n = 0;

	if (!points || !getenv("LCPFS_GATE_DIR"))
		return 0;
	for (const char *p = points; *p && n < MAX_POINTS;) {
		size_t len = strcspn(p, " ");
		if (len && len < sizeof spec) {
			memcpy(spec, p, len);
			spec[len] = '\0';
			char *name = strchr(spec, ':');
			enum event e = EV_NONE;
			if (name) {
				*name++ = '\0';
				if (!strcmp(spec, "create"))
					e = EV_CREATE;
				else if (!strcmp(spec, "rename-before"))
					e = EV_RENAME_BEFORE;
				else if (!strcmp(spec, "rename-after"))
					e = EV_RENAME_AFTER;
			}
			bool hit = e != EV_NONE && (e == EV_CREATE) == (ev == EV_CREATE) &&
				   fnmatch(name, b, 0) == 0;
			if (hit && !atomic_flag_test_and_set(&point_used[n])) {
				*which = e;
				return n + 1;
			}
			n++;
		}
		p += len;
		p += strspn(p, " ");
	}
	return 0;
}

int renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath,
	      unsigned int flags)
{
	static renameat2_fn real;
	enum event e = EV_NONE;
	int point = match_point(EV_RENAME_BEFORE, newpath, &e), rc;

	if (!real)
		*(void **)&real = dlsym(RTLD_NEXT, "renameat2");
	if (point && e == EV_RENAME_BEFORE)
		wait_at(point);
	rc = real(olddirfd, oldpath, newdirfd, newpath, flags);
	if (point && e == EV_RENAME_AFTER)
		wait_at(point);
	return rc;
}

int renameat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath)
{
	return renameat2(olddirfd, oldpath, newdirfd, newpath, 0);
}

int rename(const char *oldpath, const char *newpath)
{
	return renameat2(AT_FDCWD, oldpath, AT_FDCWD, newpath, 0);
}

static int gated_openat(int dirfd, const char *path, int flags, mode_t mode)
{
	enum event e = EV_NONE;
	int point = (flags & O_CREAT) ? match_point(EV_CREATE, path, &e) : 0;

	if (point)
		wait_at(point);
	return real_openat()(dirfd, path, flags, mode);
}

/* The mode argument exists only with O_CREAT or O_TMPFILE. */
#define MODE_ARG(flags, last)                                        \
	mode_t mode = 0;                                             \
	if ((flags) & (O_CREAT | __O_TMPFILE)) {                     \
		va_list ap;                                          \
		va_start(ap, last);                                  \
		mode = (mode_t)va_arg(ap, unsigned int);             \
		va_end(ap);                                          \
	}

int openat(int dirfd, const char *path, int flags, ...)
{
	MODE_ARG(flags, flags)
	return gated_openat(dirfd, path, flags, mode);
}

int openat64(int dirfd, const char *path, int flags, ...)
{
	MODE_ARG(flags, flags)
	return gated_openat(dirfd, path, flags, mode);
}

int open(const char *path, int flags, ...)
{
	MODE_ARG(flags, flags)
	return gated_openat(AT_FDCWD, path, flags, mode);
}

int open64(const char *path, int flags, ...)
{
	MODE_ARG(flags, flags)
	return gated_openat(AT_FDCWD, path, flags, mode);
}
