/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Replays every committed fuzzing corpus file (tests/fuzz/corpus/<target>/:
 * the seeds and every input that once crashed a harness) through its
 * harness, built here with the normal compiler: a regression the fuzzers
 * found stays a failing test, with or without clang. A harness aborts on a
 * broken property, which criterion reports as a crash.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../fuzz/fuzz.h"

/* Runs every file of tests/fuzz/corpus/<name> through fn; returns how many. */
static size_t replay(const char *name, int (*fn)(const uint8_t *, size_t))
{
	char dir[256];
	snprintf(dir, sizeof dir, "tests/fuzz/corpus/%s", name);
	DIR *d = opendir(dir);
	cr_assert_not_null(d, "no corpus directory %s", dir);
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		char path[600];
		snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
		FILE *f = fopen(path, "rb");
		cr_assert_not_null(f, "%s", path);
		cr_assert_eq(fseek(f, 0, SEEK_END), 0);
		long len = ftell(f);
		cr_assert_geq(len, 0);
		rewind(f);
		uint8_t *buf = malloc(len ? (size_t)len : 1);
		cr_assert_not_null(buf);
		cr_assert_eq(fread(buf, 1, (size_t)len, f), (size_t)len, "%s", path);
		fclose(f);
		fn(buf, (size_t)len);
		free(buf);
		n++;
	}
	closedir(d);
	return n;
}

#define REPLAY(target)                                                              \
	Test(fuzz_corpus, target)                                                   \
	{                                                                           \
		cr_expect_gt(replay(#target, fuzz_##target), 0, "empty corpus for " #target); \
	}

REPLAY(safetensors)
REPLAY(gguf)
REPLAY(npy)
REPLAY(torchzip)
REPLAY(pickle)
REPLAY(detect)
REPLAY(sidecar)
REPLAY(codec)
REPLAY(qlor)
