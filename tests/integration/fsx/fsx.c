/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A random-operation exerciser for ordinary files on a mounted lcpfs: applies
 * a seeded sequence of write, truncate, pread, mmap read, mmap write, rename,
 * reopen and fsync operations to one file and the same operations to an
 * in-memory model, and checks every read and every size against the model.
 * Usage: fsx DIR NOPS SEED. Prints the seed; exits 1 at the first mismatch
 * naming the operation number, offset and lengths.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_SIZE (1u << 20) /* big enough for multi-page, small enough to be fast */
#define MAX_IO (64u << 10)
#define FULL_CHECK_EVERY 50 /* ops between whole-file comparisons */

static uint64_t rng_state;
static uint64_t rnd(void)
{
	/* splitmix64: fixed, portable sequence for a given seed */
	uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}
static size_t below(size_t n)
{
	return n ? (size_t)(rnd() % n) : 0;
}

static unsigned char *model;
static size_t model_size;
static char path[4096], dir[4000];
static int fd = -1, name_no;
static long opno;

static void die(const char *what)
{
	fprintf(stderr, "fsx: op %ld: %s (errno %d: %s)\n", opno, what, errno, strerror(errno));
	exit(1);
}

static void set_path(void)
{
	snprintf(path, sizeof path, "%s/fsx-file-%d", dir, name_no);
}

static void check_size(const char *after)
{
	struct stat st, st2;
	if (fstat(fd, &st) != 0 || stat(path, &st2) != 0)
		die("stat");
	if ((size_t)st.st_size != model_size || (size_t)st2.st_size != model_size) {
		fprintf(stderr, "fsx: op %ld (%s): size fstat %jd stat %jd, model %zu\n", opno, after,
			(intmax_t)st.st_size, (intmax_t)st2.st_size, model_size);
		exit(1);
	}
}

static void compare(const unsigned char *got, size_t off, size_t len, const char *how)
{
	for (size_t i = 0; i < len; i++)
		if (got[i] != model[off + i]) {
			fprintf(stderr,
				"fsx: op %ld: %s mismatch at offset %zu (read %zu+%zu): got 0x%02x want 0x%02x\n",
				opno, how, off + i, off, len, got[i], model[off + i]);
			exit(1);
		}
}

static void op_write(void)
{
	/* Mostly small writes: each one leaves most earlier data in place for
	 * the reads to check. */
	size_t off = below(MAX_SIZE - 1), len = 1 + below(below(4) ? 4096 : MAX_IO);
	unsigned char buf[MAX_IO];
	if (off + len > MAX_SIZE)
		len = MAX_SIZE - off;
	for (size_t i = 0; i < len; i++)
		buf[i] = (unsigned char)rnd();
	if (pwrite(fd, buf, len, (off_t)off) != (ssize_t)len)
		die("pwrite");
	if (off > model_size)
		memset(model + model_size, 0, off - model_size);
	memcpy(model + off, buf, len);
	if (off + len > model_size)
		model_size = off + len;
}

static void op_truncate(void)
{
	/* Mostly near the current size, so data written earlier survives long
	 * enough for later reads to check it; sometimes anywhere. */
	size_t size = below(MAX_SIZE);
	if (below(4) != 0) {
		size_t lo = model_size > MAX_IO ? model_size - MAX_IO : 0;
		size = lo + below(2 * MAX_IO);
		if (size > MAX_SIZE)
			size = MAX_SIZE;
	}
	if (rnd() & 1) {
		if (ftruncate(fd, (off_t)size) != 0)
			die("ftruncate");
	} else if (truncate(path, (off_t)size) != 0) {
		die("truncate");
	}
	if (size > model_size)
		memset(model + model_size, 0, size - model_size);
	model_size = size;
}

static void op_pread(void)
{
	size_t off = below(model_size + 1), len = 1 + below(MAX_IO);
	unsigned char buf[MAX_IO];
	ssize_t n = pread(fd, buf, len, (off_t)off);
	size_t want = off >= model_size ? 0 : (model_size - off < len ? model_size - off : len);
	if (n < 0)
		die("pread");
	if ((size_t)n != want) {
		fprintf(stderr, "fsx: op %ld: pread at %zu len %zu returned %zd, model has %zu\n", opno,
			off, len, n, want);
		exit(1);
	}
	compare(buf, off, want, "pread");
}

static void op_mmap(bool write)
{
	size_t off, len;
	unsigned char *map;
	if (model_size == 0)
		return;
	off = below(model_size);
	len = 1 + below(model_size - off < MAX_IO ? model_size - off : MAX_IO);
	size_t page = (size_t)sysconf(_SC_PAGESIZE), moff = off / page * page;
	map = mmap(NULL, len + (off - moff), write ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED,
		   fd, (off_t)moff);
	if (map == MAP_FAILED)
		die("mmap");
	if (write) {
		for (size_t i = 0; i < len; i++) {
			unsigned char b = (unsigned char)rnd();
			map[off - moff + i] = b;
			model[off + i] = b;
		}
		if (msync(map, len + (off - moff), MS_SYNC) != 0)
			die("msync");
	} else {
		compare(map + (off - moff), off, len, "mmap read");
	}
	munmap(map, len + (off - moff));
}

static void op_rename(void)
{
	char old[4096];
	memcpy(old, path, sizeof old);
	name_no = (name_no + 1) % 3;
	set_path();
	if (rename(old, path) != 0)
		die("rename");
}

static void op_reopen(void)
{
	close(fd);
	fd = open(path, O_RDWR);
	if (fd < 0)
		die("reopen");
}

int main(int argc, char **argv)
{
	long nops;
	unsigned char *buf;
	if (argc != 4) {
		fprintf(stderr, "usage: fsx DIR NOPS SEED\n");
		return 2;
	}
	snprintf(dir, sizeof dir, "%s", argv[1]);
	nops = atol(argv[2]);
	rng_state = strtoull(argv[3], NULL, 0);
	printf("fsx: seed %s, %ld operations\n", argv[3], nops);
	model = calloc(MAX_SIZE, 1);
	buf = malloc(MAX_SIZE);
	if (!model || !buf)
		return 1;
	set_path();
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		die("create");
	long counts[8] = {0};
	for (opno = 0; opno < nops; opno++) {
		unsigned op = (unsigned)below(100);
		const char *name;
		if (op < 30) { op_write(); name = "write"; counts[0]++; }
		else if (op < 40) { op_truncate(); name = "truncate"; counts[1]++; }
		else if (op < 65) { op_pread(); name = "pread"; counts[2]++; }
		else if (op < 77) { op_mmap(false); name = "mmap read"; counts[3]++; }
		else if (op < 87) { op_mmap(true); name = "mmap write"; counts[4]++; }
		else if (op < 92) { op_rename(); name = "rename"; counts[5]++; }
		else if (op < 97) { op_reopen(); name = "reopen"; counts[6]++; }
		else { if (fsync(fd) != 0) die("fsync"); name = "fsync"; counts[7]++; }
		check_size(name);
		if (opno % FULL_CHECK_EVERY == 0) {
			ssize_t got = pread(fd, buf, MAX_SIZE, 0);
			if (got != (ssize_t)model_size)
				die("full read");
			compare(buf, 0, model_size, "full read");
		}
	}
	/* Final: a fresh descriptor reads exactly the model. */
	close(fd);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		die("final open");
	ssize_t n = read(fd, buf, MAX_SIZE);
	if (n != (ssize_t)model_size)
		die("final size");
	compare(buf, 0, model_size, "final read");
	printf("fsx: %ld operations, no mismatch (write %ld, truncate %ld, pread %ld, mmap read %ld, "
	       "mmap write %ld, rename %ld, reopen %ld, fsync %ld), final size %zu\n",
	       nops, counts[0], counts[1], counts[2], counts[3], counts[4], counts[5], counts[6],
	       counts[7], model_size);
	return 0;
}
