/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Robustness of the format parsers: random garbage and random mutations of
 * valid files (fixed seed, so failures reproduce) never crash and always give
 * a map meeting the invariants; every allocation failure is reported as
 * LCP_ERR_NOMEM without leaking (the SAN=1 build checks leaks); the
 * file-descriptor reader sees what the memory reader sees.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/alloc.h"
#include "test_format_helpers.h"

/* Enough iterations to hit every parser branch many times, small enough to
 * run in well under a second (the whole unit suite must stay fast). */
#define FUZZ_ITERATIONS 4000
#define FUZZ_SEED 0x5eed1234abcdull
/* More allocations than any of the small files below needs. */
#define MAX_ALLOCS 400

static uint64_t rng_state;

static uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static void st_file(struct lcp_buf *b)
{
	fmt_build_st(b,
		     "{\"__metadata__\":{\"a\":\"b\"},"
		     "\"w\":{\"dtype\":\"BF16\",\"shape\":[2,4],\"data_offsets\":[0,16]},"
		     "\"n\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[16,24]}}",
		     24);
}

static void g_str(struct lcp_buf *b, const char *s)
{
	lcp_buf_append_le64(b, strlen(s));
	fmt_append_str(b, s);
}

static void gguf_file(struct lcp_buf *b)
{
	fmt_append(b, "GGUF", 4);
	lcp_buf_append_le32(b, 3);
	lcp_buf_append_le64(b, 2);
	lcp_buf_append_le64(b, 2);
	g_str(b, "general.alignment");
	lcp_buf_append_le32(b, 4);
	lcp_buf_append_le32(b, 16);
	g_str(b, "toks");
	lcp_buf_append_le32(b, 9);
	lcp_buf_append_le32(b, 8);
	lcp_buf_append_le64(b, 2);
	g_str(b, "a");
	g_str(b, "b");
	g_str(b, "w");
	lcp_buf_append_le32(b, 2);
	lcp_buf_append_le64(b, 4);
	lcp_buf_append_le64(b, 2);
	lcp_buf_append_le32(b, 1);
	lcp_buf_append_le64(b, 0);
	g_str(b, "q");
	lcp_buf_append_le32(b, 1);
	lcp_buf_append_le64(b, 32);
	lcp_buf_append_le32(b, 8);
	lcp_buf_append_le64(b, 16);
	while (b->len % 16)
		lcp_buf_append_u8(b, 0);
	fmt_append_fill(b, 16 + 34, 0x3c);
}

static void npy_file(struct lcp_buf *b)
{
	const char *d = "{'descr': '<f2', 'fortran_order': True, 'shape': (2, 3), }          \n";
	fmt_append(b, "\x93NUMPY\x02\x00", 8);
	lcp_buf_append_le32(b, (uint32_t)strlen(d));
	fmt_append_str(b, d);
	fmt_append_fill(b, 12, 0x11);
}

/* torch.save({'w': tensor 2x2 float}) shaped archive. */
static void pt_file(struct lcp_buf *b)
{
	static const char pkl[] =
		"\x80\x02}q\x00(X\x01\x00\x00\x00w"
		"ctorch._utils\n_rebuild_tensor_v2\nq\x01"
		"((X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x00" "0X\x03\x00\x00\x00" "cpuK\x04tQ"
		"K\x00K\x02K\x02\x86K\x02K\x01\x86\x89" "ccollections\nOrderedDict\n)RtRu.";
	static const uint8_t data[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
	struct fmt_zip_entry e[] = {
		{"m/data.pkl", pkl, sizeof pkl - 1, 0},
		{"m/data/0", data, sizeof data, 0},
		{"m/version", "3\n", 2, 0},
	};
	fmt_build_zip(b, e, 3, true, true, NULL);
}

typedef void (*builder)(struct lcp_buf *);
static const builder builders[] = {st_file, gguf_file, npy_file, pt_file};
static const enum lcp_format formats[] = {LCP_FORMAT_SAFETENSORS, LCP_FORMAT_GGUF, LCP_FORMAT_NUMPY,
					  LCP_FORMAT_PYTORCH};
#define NBUILDERS (sizeof builders / sizeof builders[0])

Test(format_robust, base_files_are_valid)
{
	for (size_t i = 0; i < NBUILDERS; i++) {
		struct lcp_buf b = LCP_BUF_INIT;
		builders[i](&b);
		struct lcp_region_map m;
		fmt_parse_buf(b.data, b.len, 0, &m);
		cr_expect(m.ok, "file %zu: %s", i, m.reason);
		cr_expect_eq(m.format, formats[i]);
		size_t ntensor = 0;
		for (size_t r = 0; r < m.nregions; r++)
			ntensor += m.regions[r].kind == LCP_REGION_TENSOR;
		cr_expect_eq(ntensor, 1, "file %zu has one compressible tensor", i);
		lcp_region_map_free(&m);
		lcp_buf_free(&b);
	}
}

Test(format_robust, random_mutations_never_crash)
{
	rng_state = FUZZ_SEED;
	struct lcp_buf base[NBUILDERS];
	for (size_t i = 0; i < NBUILDERS; i++) {
		base[i] = (struct lcp_buf)LCP_BUF_INIT;
		builders[i](&base[i]);
	}
	size_t accepted = 0;
	for (int it = 0; it < FUZZ_ITERATIONS; it++) {
		const struct lcp_buf *src = &base[rng() % NBUILDERS];
		uint8_t *p = malloc(src->len);
		cr_assert_not_null(p);
		memcpy(p, src->data, src->len);
		size_t len = src->len;
		int flips = 1 + (int)(rng() % 4);
		for (int f = 0; f < flips; f++) {
			size_t at = rng() % len;
			switch (rng() % 3) {
			case 0: p[at] = (uint8_t)rng(); break;
			case 1: p[at] ^= (uint8_t)(1u << (rng() % 8)); break;
			default: p[at] = (uint8_t)(rng() % 2 ? 0xff : 0); break;
			}
		}
		if (rng() % 4 == 0)
			len = rng() % (len + 1);
		struct lcp_region_map m;
		fmt_parse_buf(p, len, rng() % 64, &m);
		accepted += m.ok;
		lcp_region_map_free(&m);
		free(p);
	}
	/* Some mutations only touch tensor data and stay valid: the parser must
	 * not reject everything either. */
	cr_expect_gt(accepted, 0);
	for (size_t i = 0; i < NBUILDERS; i++)
		lcp_buf_free(&base[i]);
}

Test(format_robust, random_garbage_behind_magics)
{
	static const struct { const char *magic; size_t len; } magics[] = {
		{"", 0}, {"GGUF\x03\x00\x00\x00", 8}, {"GGUF\x02\x00\x00\x00", 8}, {"\x93NUMPY\x01\x00", 8},
		{"\x93NUMPY\x03\x00", 8}, {"PK\x03\x04", 4}, {"tjgg\x03\x00\x00\x00", 8},
		{"\x20\x00\x00\x00\x00\x00\x00\x00{", 9},
	};
	rng_state = FUZZ_SEED + 1;
	uint8_t buf[512];
	for (int it = 0; it < FUZZ_ITERATIONS; it++) {
		size_t mi = rng() % (sizeof magics / sizeof magics[0]);
		size_t len = magics[mi].len + rng() % (sizeof buf - magics[mi].len);
		memcpy(buf, magics[mi].magic, magics[mi].len);
		for (size_t i = magics[mi].len; i < len; i++)
			buf[i] = (uint8_t)(rng() % 3 ? rng() % 8 : rng());
		struct lcp_region_map m;
		fmt_parse_buf(buf, len, 0, &m);
		lcp_region_map_free(&m);
	}
}

Test(format_robust, allocation_failures_are_reported)
{
	for (size_t i = 0; i < NBUILDERS; i++) {
		struct lcp_buf b = LCP_BUF_INIT;
		builders[i](&b);
		bool succeeded = false;
		for (long n = 0; n < MAX_ALLOCS && !succeeded; n++) {
			struct lcp_mem_source src = {b.data, b.len};
			struct lcp_reader r;
			struct lcp_region_map m;
			lcp_reader_from_memory(&r, &src);
			lcp_alloc_fail_after(n);
			lcp_err e = lcp_format_parse(&r, 0, &m);
			lcp_alloc_fail_after(-1);
			cr_assert(e == LCP_OK || e == LCP_ERR_NOMEM, "file %zu, n %ld: %d", i, n, e);
			if (e == LCP_OK) {
				succeeded = true;
				fmt_check_invariants(&m, b.len);
				cr_expect(m.ok, "file %zu after %ld allocations: %s", i, n, m.reason);
				lcp_region_map_free(&m);
			} else {
				cr_expect_eq(m.nregions, 0);
			}
		}
		cr_expect(succeeded, "file %zu never parsed within %d allocations", i, MAX_ALLOCS);
		lcp_buf_free(&b);
	}
}

Test(format_robust, fd_reader_matches_memory_reader)
{
	struct lcp_buf b = LCP_BUF_INIT;
	pt_file(&b);
	char path[] = "/tmp/lcpfs-test-format-XXXXXX";
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	unlink(path);
	cr_assert_eq(write(fd, b.data, b.len), (ssize_t)b.len);
	struct lcp_reader r;
	cr_assert_eq(lcp_reader_from_fd(&r, &fd), LCP_OK);
	cr_expect_eq(r.size, b.len);
	struct lcp_region_map mf, mm;
	cr_assert_eq(lcp_format_parse(&r, 0, &mf), LCP_OK);
	fmt_check_invariants(&mf, b.len);
	fmt_parse_buf(b.data, b.len, 0, &mm);
	cr_assert_eq(mf.nregions, mm.nregions);
	for (size_t i = 0; i < mm.nregions; i++) {
		cr_expect_eq(mf.regions[i].kind, mm.regions[i].kind);
		cr_expect_eq(mf.regions[i].off, mm.regions[i].off);
	}
	lcp_region_map_free(&mf);
	lcp_region_map_free(&mm);
	close(fd);

	int dir = open("/tmp", O_RDONLY | O_DIRECTORY);
	cr_assert_geq(dir, 0);
	cr_expect_eq(lcp_reader_from_fd(&r, &dir), LCP_ERR_INVAL);
	close(dir);
	int bad = -1;
	cr_expect_eq(lcp_reader_from_fd(&r, &bad), LCP_ERR_IO);
	lcp_buf_free(&b);
}
