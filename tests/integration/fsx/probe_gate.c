/* SPDX-License-Identifier: Apache-2.0 */
/*
 * LD_PRELOAD test shim for the integration tests: holds a process (an offline `lcpfs`
 * verb) at its first fstatat(2) of a chosen name, so that a test can change
 * the backing through a mount at that exact moment instead of hoping a race
 * happens.
 *
 * Environment (the shim does nothing unless both are set):
 *   LCPFS_QA_GATE_DIR   directory for the handshake files
 *   LCPFS_QA_GATE_NAME  base name to hold at (exact match)
 * On the first fstatat of that name the process creates DIR/arrived and
 * waits until DIR/go exists (polling every 10 ms, at most 120 s), then makes
 * the call.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define GATE_DEADLINE_SEC 120
#define GATE_POLL_NS 10000000L

typedef int (*fstatat_fn)(int, const char *, struct stat *, int);

static atomic_flag held;

static void hold_if_named(const char *path)
{
	const char *dir = getenv("LCPFS_QA_GATE_DIR"), *name = getenv("LCPFS_QA_GATE_NAME");
	const char *slash = strrchr(path, '/');
	char file[4096];
	struct timespec step = {0, GATE_POLL_NS};

	if (!dir || !name || strcmp(slash ? slash + 1 : path, name) != 0 ||
	    atomic_flag_test_and_set(&held))
		return;
	snprintf(file, sizeof file, "%s/arrived", dir);
	int fd = open(file, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (fd >= 0)
		close(fd);
	snprintf(file, sizeof file, "%s/go", dir);
	for (time_t end = time(NULL) + GATE_DEADLINE_SEC; access(file, F_OK) != 0 && time(NULL) < end;)
		nanosleep(&step, NULL);
}

int fstatat(int dirfd, const char *path, struct stat *st, int flags)
{
	static fstatat_fn real;

	if (!real)
		*(void **)&real = dlsym(RTLD_NEXT, "fstatat");
	hold_if_named(path);
	return real(dirfd, path, st, flags);
}
