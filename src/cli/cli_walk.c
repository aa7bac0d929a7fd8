/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The directory walk shared by `lcpfs stats` and `lcpfs verify`: every entry
 * below a directory, recursively, symbolic links not followed, each entry
 * named by its directory's fd and its name (so nothing is opened through a
 * path that may change meanwhile) and shown as a path in messages.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/alloc.h"

static char *join_path(const char *dir, const char *name)
{
	size_t a = strlen(dir), b = strlen(name);
	char *p = lcp_malloc(a + b + 2);
	if (p) {
		memcpy(p, dir, a);
		p[a] = '/';
		memcpy(p + a + 1, name, b + 1);
	}
	return p;
}

static void walk_error(struct lcp_cli_walk *w, const char *path, const char *why)
{
	fprintf(stderr, "lcpfs %s: %s: %s\n", w->verb, path, why);
	w->errors++;
}

void lcp_cli_walk_dir(struct lcp_cli_walk *w, int fd, const char *path)
{
	DIR *d = fdopendir(fd);
	struct dirent *e;

	if (!d) {
		walk_error(w, path, strerror(errno));
		close(fd);
		return;
	}
	w->dirs++;
	while ((errno = 0, e = readdir(d)) != NULL) {
		const char *nm = e->d_name;
		struct stat st;
		if (strcmp(nm, ".") == 0 || strcmp(nm, "..") == 0)
			continue;
		char *child = join_path(path, nm);
		if (!child) {
			walk_error(w, path, "out of memory");
			break;
		}
		if (fstatat(dirfd(d), nm, &st, AT_SYMLINK_NOFOLLOW) != 0) {
			walk_error(w, child, strerror(errno));
		} else if (S_ISDIR(st.st_mode)) {
			int cfd = openat(dirfd(d), nm, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (cfd < 0)
				walk_error(w, child, strerror(errno));
			else
				lcp_cli_walk_dir(w, cfd, child);
		} else {
			w->file(w, dirfd(d), nm, child, &st);
		}
		lcp_free(child);
	}
	if (errno)
		walk_error(w, path, strerror(errno));
	closedir(d);
}
