/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Byte-range reads of a packed file through the store API, checked against
 * the whole unpacked file. Built by tests/integration/test_roundtrip.sh
 * against build/liblcpfs.a (the tool has no range-read verb; ranges are the
 * store's API, and the mount serves reads through exactly this call).
 *
 *   range_check PACKED UNPACKED [NREADS [SEED]]
 *       NREADS (default 500) reads at offsets chosen around region and
 *       chunk boundaries and at random, with lengths 0, 1, 4095, 4096,
 *       65537, about 1 MiB, to the end of the file and past it, through
 *       three handles (no cache, a 1 MiB cache that evicts, a 64 MiB cache).
 *       Every read must succeed, be short only at the end of the file and
 *       equal the same bytes of UNPACKED.
 *   range_check --damaged PACKED GOOD
 *       PACKED is damaged: the open may refuse it with LCP_ERR_CHECKSUM;
 *       otherwise every 64 KiB block and one whole-file read must either
 *       fail with LCP_ERR_CHECKSUM or equal GOOD, and at least one must fail.
 *
 * Exit 0 when every check holds, 1 when one fails, 2 on a usage or setup
 * error. Region boundaries come from lcp_format_parse of UNPACKED (the
 * format layer is tested on its own; here it only picks interesting offsets).
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/alloc.h"
#include "lcpfs/err.h"
#include "lcpfs/format.h"
#include "lcpfs/store.h"

#define DEFAULT_NREADS 500
#define DEFAULT_SEED 20261127u
/* Chunk sizes the store may use (exact chunks are 256 KiB; codec chunks are
 * about that many output bytes): offsets around their multiples cross them. */
static const uint64_t chunk_steps[] = { 4096, 65536, 262144 };
#define MAX_BOUNDS 4096
#define DAMAGE_BLOCK (64u * 1024u)
#define SMALL_CACHE_BYTES (1u << 20)
#define LARGE_CACHE_BYTES (64u << 20)
/* Reads through the cacheless handle decode everything they touch: keep
 * them short so the whole check stays within a few seconds. */
#define NOCACHE_MAX_LEN (1100u * 1024u)

static uint64_t rng_state;

/* splitmix64: a fixed, seedable sequence so a failure can be replayed. */
static uint64_t rng_next(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t rng_below(uint64_t n)
{
	return n ? rng_next() % n : 0;
}

static int load_file(const char *path, uint8_t **data, uint64_t *size)
{
	int fd = open(path, O_RDONLY);
	struct stat st;

	if (fd < 0 || fstat(fd, &st) != 0) {
		perror(path);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	*size = (uint64_t)st.st_size;
	*data = lcp_malloc(*size ? *size : 1);
	if (!*data) {
		close(fd);
		return -1;
	}
	uint64_t got = 0;
	while (got < *size) {
		ssize_t n = pread(fd, *data + got, *size - got, (off_t)got);
		if (n <= 0) {
			perror(path);
			close(fd);
			return -1;
		}
		got += (uint64_t)n;
	}
	close(fd);
	return 0;
}

/* Opens the directory of path and returns the fd; *name points into path. */
static int open_parent(char *path, const char **name)
{
	char *slash = strrchr(path, '/');
	int dfd;

	if (!slash) {
		*name = path;
		return open(".", O_RDONLY | O_DIRECTORY);
	}
	*slash = '\0';
	dfd = open(*path ? path : "/", O_RDONLY | O_DIRECTORY);
	*slash = '/';
	*name = slash + 1;
	return dfd;
}

static size_t collect_bounds(const char *unpacked, uint64_t size, uint64_t *bounds)
{
	size_t n = 0;
	int fd = open(unpacked, O_RDONLY);
	struct lcp_reader r;
	struct lcp_region_map m;

	bounds[n++] = 0;
	bounds[n++] = size;
	if (fd < 0)
		return n;
	if (lcp_reader_from_fd(&r, &fd) == LCP_OK && lcp_format_parse(&r, 1, &m) == LCP_OK) {
		for (size_t i = 0; i < m.nregions && n < MAX_BOUNDS; i++) {
			uint64_t s = m.regions[i].off;
			bounds[n++] = s;
			for (size_t k = 0; k < sizeof(chunk_steps) / sizeof(chunk_steps[0]); k++)
				for (uint64_t p = s + chunk_steps[k]; p < s + m.regions[i].len &&
				     n < MAX_BOUNDS; p += chunk_steps[k])
					bounds[n++] = p;
		}
		lcp_region_map_free(&m);
	}
	close(fd);
	return n;
}

static uint64_t pick_len(unsigned int i, uint64_t off, uint64_t size)
{
	uint64_t rest = size > off ? size - off : 0;

	switch (i % 10) {
	case 0: return 0;
	case 1: return 1;
	case 2: return 4095;
	case 3: return 4096;
	case 4: return 65537;
	case 5: return (1u << 20) - 512 + rng_below(1024);
	case 6: return rest;              /* to the end */
	case 7: return rest + 100;        /* past the end: short read */
	case 8: return 1 + rng_below(300000);
	default: return 1 + rng_below(size + 1);
	}
}

static int run_ranges(char *packed, const char *unpacked, unsigned int nreads, uint64_t seed)
{
	uint8_t *want = NULL, *buf = NULL;
	uint64_t size, *bounds = NULL;
	struct lcp_chunk_cache *small = NULL, *large = NULL;
	struct lcp_store_file *h[3] = { NULL, NULL, NULL };
	const char *name;
	int dfd, failures = 0, rc = 2;
	lcp_err e;

	rng_state = seed;
	if (load_file(unpacked, &want, &size) != 0)
		return 2;
	bounds = lcp_calloc(MAX_BOUNDS, sizeof(*bounds));
	buf = lcp_malloc(size + 4096);
	dfd = open_parent(packed, &name);
	if (!bounds || !buf || dfd < 0)
		goto out;
	if (lcp_chunk_cache_create(SMALL_CACHE_BYTES, &small) != LCP_OK ||
	    lcp_chunk_cache_create(LARGE_CACHE_BYTES, &large) != LCP_OK)
		goto out;
	struct lcp_chunk_cache *caches[3] = { NULL, small, large };
	for (int k = 0; k < 3; k++) {
		e = lcp_store_open_at(dfd, name, caches[k], &h[k]);
		if (e != LCP_OK) {
			printf("FAIL open %s: %s\n", packed, lcp_err_name(e));
			rc = 1;
			goto out;
		}
	}
	if (lcp_store_logical_size(h[0]) != size) {
		printf("FAIL %s: logical size %" PRIu64 " != unpacked size %" PRIu64 "\n", packed,
		       lcp_store_logical_size(h[0]), size);
		failures++;
	}
	size_t nb = collect_bounds(unpacked, size, bounds);

	for (unsigned int i = 0; i < nreads; i++) {
		uint64_t off;
		unsigned int which = i % 3;

		if (i == 0) {
			off = 0; /* one read of the whole file */
		} else if (i % 3 == 1) {
			off = rng_below(size + 1);
		} else {
			uint64_t b = bounds[rng_below(nb)];
			int64_t delta = (int64_t)rng_below(9) - 4;
			if (rng_below(2))
				delta = (int64_t)rng_below(10001) - 5000;
			off = (delta < 0 && (uint64_t)-delta > b) ? 0 : b + (uint64_t)delta;
			if (off > size + 10)
				off = size;
		}
		uint64_t len = i == 0 ? size : pick_len(i, off, size);
		if (len > size + 4096)
			len = size + 4096;
		if (which == 0 && len > NOCACHE_MAX_LEN)
			len = NOCACHE_MAX_LEN;
		uint64_t expect = off >= size ? 0 : (len < size - off ? len : size - off);
		size_t nread = 0;
		uint64_t bad = 0;

		memset(buf, 0xa5, len ? len : 1);
		e = lcp_store_read(h[which], buf, len, off, &nread, &bad);
		if (e != LCP_OK) {
			printf("FAIL read #%u handle %u off %" PRIu64 " len %" PRIu64 ": %s (bad_off %" PRIu64 ")\n",
			       i, which, off, len, lcp_err_name(e), bad);
			failures++;
		} else if (nread != expect) {
			printf("FAIL read #%u handle %u off %" PRIu64 " len %" PRIu64 ": %zu bytes, want %" PRIu64 "\n",
			       i, which, off, len, nread, expect);
			failures++;
		} else if (expect && memcmp(buf, want + off, expect) != 0) {
			uint64_t j = 0;
			while (buf[j] == want[off + j])
				j++;
			printf("FAIL read #%u handle %u off %" PRIu64 " len %" PRIu64 ": first differing byte at file offset %" PRIu64 "\n",
			       i, which, off, len, off + j);
			failures++;
		}
		if (failures > 10)
			break;
	}
	printf("%s %s: %u reads, %zu boundaries, seed %" PRIu64 ", %d failures\n",
	       failures ? "FAIL" : "ok", packed, nreads, nb, seed, failures);
	rc = failures ? 1 : 0;
out:
	for (int k = 0; k < 3; k++)
		if (h[k])
			lcp_store_close(h[k]);
	lcp_chunk_cache_free(small);
	lcp_chunk_cache_free(large);
	if (dfd >= 0)
		close(dfd);
	lcp_free(bounds);
	lcp_free(buf);
	lcp_free(want);
	return rc;
}

static int run_damaged(char *packed, const char *good_path)
{
	uint8_t *good = NULL, *buf = NULL;
	uint64_t size;
	struct lcp_store_file *f = NULL;
	const char *name;
	int dfd, rc = 2, wrong = 0, refused = 0;
	lcp_err e;

	if (load_file(good_path, &good, &size) != 0)
		return 2;
	dfd = open_parent(packed, &name);
	buf = lcp_malloc(size + 1);
	if (dfd < 0 || !buf)
		goto out;
	e = lcp_store_open_at(dfd, name, NULL, &f);
	if (e == LCP_ERR_CHECKSUM) {
		printf("ok %s: open refused (LCP_ERR_CHECKSUM)\n", packed);
		rc = 0;
		goto out;
	}
	if (e != LCP_OK) {
		/* Anything but a checksum refusal (NOENT would mean "raw": the
		 * damaged payload would be served as the file's bytes). */
		printf("FAIL %s: open gave %s, want LCP_OK or LCP_ERR_CHECKSUM\n", packed,
		       lcp_err_name(e));
		rc = 1;
		goto out;
	}
	/* Every block, then one whole-file read (off 0, len size). */
	for (uint64_t off = 0;; off += DAMAGE_BLOCK) {
		int whole = off >= size;
		uint64_t roff = whole ? 0 : off;
		uint64_t len = whole ? size : DAMAGE_BLOCK;
		uint64_t expect = len < size - roff ? len : size - roff;
		size_t nread = 0;

		e = lcp_store_read(f, buf, len, roff, &nread, NULL);
		if (e == LCP_ERR_CHECKSUM)
			refused++;
		else if (e != LCP_OK || nread != expect || memcmp(buf, good + roff, expect) != 0) {
			printf("FAIL %s: read off %" PRIu64 " len %" PRIu64 " gave %s with %s bytes\n",
			       packed, roff, len, lcp_err_name(e), e == LCP_OK ? "wrong" : "no");
			wrong++;
		}
		if (whole)
			break;
	}
	if (!refused)
		printf("FAIL %s: no read reported the damage\n", packed);
	else if (!wrong)
		printf("ok %s: %d reads refused with LCP_ERR_CHECKSUM, no wrong bytes\n", packed,
		       refused);
	rc = (wrong || !refused) ? 1 : 0;
out:
	if (f)
		lcp_store_close(f);
	if (dfd >= 0)
		close(dfd);
	lcp_free(buf);
	lcp_free(good);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "--damaged") == 0)
		return run_damaged(argv[2], argv[3]);
	if (argc >= 3 && argc <= 5 && argv[1][0] != '-') {
		unsigned int n = argc >= 4 ? (unsigned int)strtoul(argv[3], NULL, 10) : DEFAULT_NREADS;
		uint64_t seed = argc >= 5 ? strtoull(argv[4], NULL, 10) : DEFAULT_SEED;
		return run_ranges(argv[1], argv[2], n, seed);
	}
	fprintf(stderr, "usage: range_check PACKED UNPACKED [NREADS [SEED]]\n"
			"       range_check --damaged PACKED GOOD\n");
	return 2;
}
