/* SPDX-License-Identifier: Apache-2.0 */
/*
 * QLOR metadata: the seed's golden v1 vectors (tests/data/qlor_v1_*.hex,
 * copied from the seed's qlor_v1_vectors.md) encoded byte for byte and read
 * back field by field; every truncation, random garbage, counts past the
 * end; the lcpfs extension (extra round trip, damage detection); allocation
 * failures. Ports the seed's test_qlora_metadata_new,
 * test_qlora_metadata_expected_ratio, test_qlora_metadata_serialization and
 * test_metadata_validity.
 *
 * Every input is copied into an allocation of exactly its length so that
 * ASan (make SAN=1 check) reports any read past the end.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "leak_check.h"
#include "lcpfs/qlor.h"

/* 32/4 * 0.85 in double: 0.85 is not exact in binary, so allow a few ulps. */
#define RATIO_TOL 1e-12
/* Random garbage buffers fed to the parser (the brief asks for 1,000+). */
#define GARBAGE_BUFFERS 4000
/* Longest random buffer: longer than every golden vector. */
#define GARBAGE_MAX_LEN 160
/* Length of the long `extra` string: far beyond any small fixed buffer. */
#define LONG_EXTRA_LEN 100000
/* Bytes of the extension without extra (magic through checksum). */
#define EXT_FIXED_BYTES 21

struct vec {
	uint8_t *b;
	size_t n;
};

static struct vec load_hex(const char *name)
{
	char path[256];
	char text[1024];
	struct vec v = {0};
	FILE *f;
	size_t len;

	snprintf(path, sizeof path, "tests/data/%s", name);
	f = fopen(path, "r");
	cr_assert_not_null(f, "cannot open %s (run from the repository root)", path);
	len = fread(text, 1, sizeof text - 1, f);
	fclose(f);
	text[len] = '\0';
	while (len && (text[len - 1] == '\n' || text[len - 1] == '\r'))
		text[--len] = '\0';
	cr_assert_eq(len % 2, 0, "%s: odd number of hex digits", path);
	v.n = len / 2;
	v.b = malloc(v.n);
	cr_assert_not_null(v.b);
	for (size_t i = 0; i < v.n; i++) {
		unsigned byte;
		cr_assert_eq(sscanf(text + 2 * i, "%2x", &byte), 1, "%s: bad hex at %zu", path, i);
		v.b[i] = (uint8_t)byte;
	}
	return v;
}

/* Copies n bytes into an exactly sized heap block (ASan guards its end). */
static uint8_t *exact_copy(const uint8_t *src, size_t n)
{
	uint8_t *p = malloc(n ? n : 1);
	cr_assert_not_null(p);
	if (n)
		memcpy(p, src, n);
	return p;
}

static lcp_err parse_exact(const uint8_t *src, size_t n, struct lcp_qlor *m, size_t *consumed)
{
	uint8_t *p = exact_copy(src, n);
	lcp_err err = lcp_qlor_parse(p, n, m, consumed);
	free(p);
	return err;
}

/* The state lcp_qlor_parse must leave behind on error. */
static void expect_default_state(const struct lcp_qlor *m)
{
	cr_expect_eq(m->original_size, 0);
	cr_expect_eq(m->bits, 4);
	cr_expect_eq(m->rank, 16);
	cr_expect_eq(m->dtype, LCP_DTYPE_F32);
	cr_expect_eq(m->ndims, 0);
	cr_expect_null(m->dims);
	cr_expect_eq(m->nscales, 0);
	cr_expect_null(m->scales);
	cr_expect_eq(m->has_zero_points, false);
	cr_expect_eq(m->nzero_points, 0);
	cr_expect_null(m->zero_points);
	cr_expect_eq(m->original_checksum, 0);
	cr_expect_eq(m->timestamp, 0);
	cr_expect_null(m->extra);
}

static uint32_t sym_dims[] = {32, 32};
static float sym_scales[] = {1.0f, 0.5f, 0.25f};
static uint32_t asym_dims[] = {64, 64};
static float asym_scales[] = {0.125f, -2.0f};
static int8_t asym_zp[] = {-3, 0, 127, -128};

/* The values listed in qlor_v1_vectors.md, built by hand (not parsed). */
static struct lcp_qlor make_sym(void)
{
	struct lcp_qlor m;

	lcp_qlor_init(&m, 1024, 4, 16);
	m.ndims = 2;
	m.dims = sym_dims;
	m.nscales = 3;
	m.scales = sym_scales;
	m.original_checksum = 0xDEADBEEFu;
	m.timestamp = 1234567890u;
	return m;
}

static struct lcp_qlor make_asym(void)
{
	struct lcp_qlor m;

	lcp_qlor_init(&m, 8192, 8, 64);
	m.dtype = LCP_DTYPE_F16;
	m.ndims = 2;
	m.dims = asym_dims;
	m.nscales = 2;
	m.scales = asym_scales;
	m.has_zero_points = true;
	m.nzero_points = 4;
	m.zero_points = asym_zp;
	m.original_checksum = 0x0123456789abcdefu;
	m.timestamp = 1764115200u;
	m.extra = (char *)"layer.0";
	return m;
}

static void expect_bytes(const uint8_t *got, size_t got_n, const struct vec *want)
{
	cr_assert_eq(got_n, want->n, "length %zu, golden %zu", got_n, want->n);
	for (size_t i = 0; i < want->n; i++)
		cr_expect_eq(got[i], want->b[i], "byte %zu: %02x, golden %02x", i, got[i],
			     want->b[i]);
}

/* Seed: test_qlora_metadata_new */
Test(qlor, seed_metadata_new)
{
	struct lcp_qlor m;

	memset(&m, 0xAB, sizeof m);
	lcp_qlor_init(&m, 1024, 4, 16);
	cr_expect_eq(m.original_size, 1024);
	cr_expect_eq(m.bits, 4);
	cr_expect_eq(m.rank, 16);
	cr_expect_eq(m.dtype, LCP_DTYPE_F32);
	cr_expect_eq(m.ndims, 0);
	cr_expect_null(m.dims);
	cr_expect_null(m.scales);
	cr_expect_null(m.zero_points);
	cr_expect_not(m.has_zero_points);
	cr_expect_null(m.extra);
	cr_expect_eq(m.timestamp, 0);
	cr_expect_eq(m.original_checksum, 0);
}

/* Seed: test_qlora_metadata_expected_ratio, plus the vectors file's 6.8. */
Test(qlor, seed_expected_ratio)
{
	struct lcp_qlor m;
	double r;

	lcp_qlor_init(&m, 1024, 4, 16);
	m.dtype = LCP_DTYPE_F32;
	r = lcp_qlor_expected_ratio(&m);
	cr_expect(r > 6.0 && r < 8.0);
	cr_expect(fabs(r - 6.8) < RATIO_TOL, "ratio %.17g", r);
	m.bits = 8;
	cr_expect(fabs(lcp_qlor_expected_ratio(&m) - 3.4) < RATIO_TOL);
	m.dtype = LCP_DTYPE_F16;
	m.bits = 4;
	cr_expect(fabs(lcp_qlor_expected_ratio(&m) - 3.4) < RATIO_TOL);
	m.bits = 0;
	cr_expect_eq(lcp_qlor_expected_ratio(&m), 0.0);
}

Test(qlor, compression_ratio)
{
	struct lcp_qlor m;

	lcp_qlor_init(&m, 1000, 4, 16);
	cr_expect_eq(lcp_qlor_compression_ratio(&m, 0), 0.0);
	cr_expect_eq(lcp_qlor_compression_ratio(&m, 250), 4.0);
	cr_expect_eq(lcp_qlor_compression_ratio(&m, 1000), 1.0);
}

/* Seed: test_qlora_metadata_serialization (through the seed's v1 bytes and
 * through the extended block). */
Test(qlor, seed_serialization_round_trip)
{
	struct lcp_qlor m = make_sym();
	struct lcp_qlor r;
	uint8_t *b;
	size_t n, used;

	for (int ext = 0; ext < 2; ext++) {
		cr_assert_eq(ext ? lcp_qlor_serialize(&m, &b, &n) : lcp_qlor_serialize_v1(&m, &b, &n),
			     LCP_OK);
		cr_assert_eq(lcp_qlor_parse(b, n, &r, &used), LCP_OK);
		cr_expect_eq(used, n);
		cr_expect_eq(r.original_size, 1024);
		cr_expect_eq(r.bits, 4);
		cr_expect_eq(r.rank, 16);
		cr_assert_eq(r.ndims, 2);
		cr_expect_eq(r.dims[0], 32);
		cr_expect_eq(r.dims[1], 32);
		cr_expect_eq(r.nscales, 3);
		cr_expect_eq(r.original_checksum, 0xDEADBEEFu);
		cr_expect_eq(r.timestamp, 1234567890u);
		lcp_qlor_free(&r);
		lcp_free(b);
	}
}

/* Seed: test_metadata_validity */
Test(qlor, seed_metadata_validity)
{
	struct lcp_qlor m;
	float one = 1.0f;

	lcp_qlor_init(&m, 1024, 4, 16);
	m.nscales = 1;
	m.scales = &one;
	cr_expect(lcp_qlor_is_valid(&m));
	m.bits = 3;
	cr_expect_not(lcp_qlor_is_valid(&m));
	m.bits = 4;
	m.rank = 0;
	cr_expect_not(lcp_qlor_is_valid(&m));
	m.rank = 16;
	m.nscales = 0;
	m.scales = NULL;
	cr_expect_not(lcp_qlor_is_valid(&m));
}

Test(qlor, validity_rules)
{
	struct lcp_qlor m;
	float one = 1.0f;
	uint32_t dims[3] = {16, 16, 1};
	uint32_t huge[3] = {0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu};

	lcp_qlor_init(&m, 1024, 8, 1024);
	m.nscales = 1;
	m.scales = &one;
	cr_expect(lcp_qlor_is_valid(&m));
	m.rank = 1025;
	cr_expect_not(lcp_qlor_is_valid(&m));
	m.rank = 1;
	m.original_size = 0;
	cr_expect_not(lcp_qlor_is_valid(&m));
	m.original_size = 1024;
	m.ndims = 3;
	m.dims = dims; /* 256 F32 elements = 1024 bytes */
	cr_expect(lcp_qlor_is_valid(&m));
	m.dtype = LCP_DTYPE_F16;
	cr_expect_not(lcp_qlor_is_valid(&m));
	m.original_size = 512;
	cr_expect(lcp_qlor_is_valid(&m));
	m.dtype = LCP_DTYPE_F8_E5M2;
	m.original_size = 256;
	cr_expect(lcp_qlor_is_valid(&m));
	/* A product that overflows 64 bits never matches. */
	m.dims = huge;
	m.original_size = 0xFFFFFFFFFFFFFFFFu;
	cr_expect_not(lcp_qlor_is_valid(&m));
}

Test(qlor, golden_encode_sym)
{
	struct vec g = load_hex("qlor_v1_sym.hex");
	struct lcp_qlor m = make_sym();
	uint8_t *b;
	size_t n;

	cr_assert_eq(lcp_qlor_serialize_v1(&m, &b, &n), LCP_OK);
	expect_bytes(b, n, &g);
	lcp_free(b);
	free(g.b);
}

Test(qlor, golden_encode_asym)
{
	struct vec g = load_hex("qlor_v1_asym.hex");
	struct lcp_qlor m = make_asym(); /* extra = "layer.0": the seed drops it */
	uint8_t *b;
	size_t n;

	cr_assert_eq(lcp_qlor_serialize_v1(&m, &b, &n), LCP_OK);
	expect_bytes(b, n, &g);
	lcp_free(b);
	free(g.b);
}

Test(qlor, golden_encode_default)
{
	struct vec g = load_hex("qlor_v1_default.hex");
	struct lcp_qlor m;
	uint8_t *b;
	size_t n;

	lcp_qlor_init(&m, 0, 4, 16); /* QLoraMetadata::default() */
	cr_assert_eq(lcp_qlor_serialize_v1(&m, &b, &n), LCP_OK);
	expect_bytes(b, n, &g);
	lcp_free(b);
	free(g.b);
}

Test(qlor, golden_parse_sym)
{
	struct vec g = load_hex("qlor_v1_sym.hex");
	struct lcp_qlor m;
	size_t used = 0;

	cr_assert_eq(parse_exact(g.b, g.n, &m, &used), LCP_OK);
	cr_expect_eq(used, g.n);
	cr_expect_eq(m.original_size, 1024);
	cr_expect_eq(m.bits, 4);
	cr_expect_eq(m.rank, 16);
	cr_expect_eq(m.dtype, LCP_DTYPE_F32);
	cr_assert_eq(m.ndims, 2);
	cr_expect_eq(m.dims[0], 32);
	cr_expect_eq(m.dims[1], 32);
	cr_assert_eq(m.nscales, 3);
	/* Exact: the golden bytes hold these floats' exact encodings. */
	cr_expect_eq(m.scales[0], 1.0f);
	cr_expect_eq(m.scales[1], 0.5f);
	cr_expect_eq(m.scales[2], 0.25f);
	cr_expect_not(m.has_zero_points);
	cr_expect_null(m.zero_points);
	cr_expect_eq(m.original_checksum, 0xDEADBEEFu);
	cr_expect_eq(m.timestamp, 1234567890u);
	cr_expect_null(m.extra);
	cr_expect_not(lcp_qlor_is_valid(&m), "vectors file: is_valid false (4096 != 1024)");
	lcp_qlor_free(&m);
	free(g.b);
}

Test(qlor, golden_parse_asym)
{
	struct vec g = load_hex("qlor_v1_asym.hex");
	struct lcp_qlor m;
	size_t used = 0;

	cr_assert_eq(parse_exact(g.b, g.n, &m, &used), LCP_OK);
	cr_expect_eq(used, g.n);
	cr_expect_eq(m.original_size, 8192);
	cr_expect_eq(m.bits, 8);
	cr_expect_eq(m.rank, 64);
	cr_expect_eq(m.dtype, LCP_DTYPE_F16);
	cr_assert_eq(m.ndims, 2);
	cr_expect_eq(m.dims[0], 64);
	cr_expect_eq(m.dims[1], 64);
	cr_assert_eq(m.nscales, 2);
	cr_expect_eq(m.scales[0], 0.125f);
	cr_expect_eq(m.scales[1], -2.0f);
	cr_expect(m.has_zero_points);
	cr_assert_eq(m.nzero_points, 4);
	cr_expect_eq(m.zero_points[0], -3);
	cr_expect_eq(m.zero_points[1], 0);
	cr_expect_eq(m.zero_points[2], 127);
	cr_expect_eq(m.zero_points[3], -128);
	cr_expect_eq(m.original_checksum, 0x0123456789abcdefu);
	cr_expect_eq(m.timestamp, 1764115200u);
	cr_expect_null(m.extra, "the seed's bytes carry no extra");
	cr_expect(lcp_qlor_is_valid(&m), "vectors file: is_valid true");
	lcp_qlor_free(&m);
	free(g.b);
}

Test(qlor, golden_parse_default)
{
	struct vec g = load_hex("qlor_v1_default.hex");
	struct lcp_qlor m;
	size_t used = 0;

	cr_assert_eq(g.n, 40);
	cr_assert_eq(parse_exact(g.b, g.n, &m, &used), LCP_OK);
	cr_expect_eq(used, 40);
	expect_default_state(&m);
	cr_expect_not(lcp_qlor_is_valid(&m));
	lcp_qlor_free(&m);
	free(g.b);
}

static const char *const golden_files[] = {
	"qlor_v1_sym.hex",
	"qlor_v1_asym.hex",
	"qlor_v1_default.hex",
};

Test(qlor, every_truncation_of_golden_rejected)
{
	for (size_t f = 0; f < 3; f++) {
		struct vec g = load_hex(golden_files[f]);

		for (size_t k = 0; k < g.n; k++) {
			struct lcp_qlor m;
			size_t used = 99;
			lcp_err err = parse_exact(g.b, k, &m, &used);

			cr_expect_eq(err, LCP_ERR_TRUNCATED, "%s prefix %zu: %s", golden_files[f], k,
				     lcp_err_name(err));
			cr_expect_eq(used, 0);
			expect_default_state(&m);
		}
		free(g.b);
	}
	expect_no_leaks();
}

Test(qlor, golden_followed_by_unrelated_bytes)
{
	struct vec g = load_hex("qlor_v1_asym.hex");
	uint8_t buf[256];
	struct lcp_qlor m;
	size_t used;

	/* Another v1 block ("QLOR" is not the extension magic "QLX"). */
	memcpy(buf, g.b, g.n);
	memcpy(buf + g.n, g.b, g.n);
	cr_assert_eq(parse_exact(buf, 2 * g.n, &m, &used), LCP_OK);
	cr_expect_eq(used, g.n);
	cr_expect_null(m.extra);
	lcp_qlor_free(&m);
	cr_assert_eq(parse_exact(buf + used, g.n, &m, &used), LCP_OK);
	cr_expect_eq(used, g.n);
	lcp_qlor_free(&m);

	/* Short unrelated tails, including a prefix of the magic. */
	memcpy(buf + g.n, "QLZZZZ", 6);
	for (size_t tail = 1; tail <= 6; tail++) {
		cr_assert_eq(parse_exact(buf, g.n + tail, &m, &used), LCP_OK, "tail %zu", tail);
		cr_expect_eq(used, g.n);
		lcp_qlor_free(&m);
	}
	memcpy(buf + g.n, "QL", 2);
	cr_assert_eq(parse_exact(buf, g.n + 2, &m, &used), LCP_OK);
	cr_expect_eq(used, g.n);
	lcp_qlor_free(&m);
	free(g.b);
	expect_no_leaks();
}

Test(qlor, bad_magic_version_dtype_flag)
{
	struct vec g = load_hex("qlor_v1_sym.hex");
	struct lcp_qlor m;
	uint8_t *b = exact_copy(g.b, g.n);

	b[0] = 'X';
	cr_expect_eq(lcp_qlor_parse(b, g.n, &m, NULL), LCP_ERR_FORMAT);
	expect_default_state(&m);
	b[0] = 'Q';
	b[4] = 2; /* version */
	cr_expect_eq(lcp_qlor_parse(b, g.n, &m, NULL), LCP_ERR_VERSION);
	expect_default_state(&m);
	b[4] = 1;
	b[16] = 6; /* dtype after magic 4, version 1, size 8, bits 1, rank 2 */
	cr_expect_eq(lcp_qlor_parse(b, g.n, &m, NULL), LCP_ERR_FORMAT);
	expect_default_state(&m);
	b[16] = 0;
	b[g.n - 17] = 2; /* has_zero_points: before checksum 8 and timestamp 8 */
	cr_expect_eq(lcp_qlor_parse(b, g.n, &m, NULL), LCP_ERR_FORMAT);
	expect_default_state(&m);
	b[g.n - 17] = 0;
	cr_expect_eq(lcp_qlor_parse(b, g.n, &m, NULL), LCP_OK);
	lcp_qlor_free(&m);
	cr_expect_eq(lcp_qlor_parse(NULL, 0, &m, NULL), LCP_ERR_TRUNCATED);
	free(b);
	free(g.b);
	expect_no_leaks();
}

/* Offsets in the golden vectors (from the layout in qlor.h). */
#define OFF_NDIMS 17
#define SYM_OFF_NSCALES (OFF_NDIMS + 2 + 2 * 4)
#define ASYM_OFF_NZP (OFF_NDIMS + 2 + 2 * 4 + 4 + 2 * 4 + 1)

/* allocs_before: allocations the parser legitimately makes for the arrays
 * that precede the damaged count (dims, then scales). */
static void expect_count_rejected(const char *file, size_t off, size_t width, uint32_t value,
				  long allocs_before)
{
	struct vec g = load_hex(file);
	uint8_t *b = exact_copy(g.b, g.n);
	struct lcp_qlor m;
	lcp_err err;

	for (size_t i = 0; i < width; i++)
		b[off + i] = (uint8_t)(value >> (8 * i));
	/* No allocation may happen for the damaged count before it is checked:
	 * with that allocation failing, the answer must still be TRUNCATED, not
	 * NOMEM. */
	lcp_alloc_fail_after(allocs_before);
	err = lcp_qlor_parse(b, g.n, &m, NULL);
	lcp_alloc_fail_after(-1);
	cr_expect_eq(err, LCP_ERR_TRUNCATED, "%s count at %zu = %u: %s", file, off, value,
		     lcp_err_name(err));
	expect_default_state(&m);
	err = lcp_qlor_parse(b, g.n, &m, NULL);
	cr_expect_eq(err, LCP_ERR_TRUNCATED);
	expect_default_state(&m);
	free(b);
	free(g.b);
}

Test(qlor, counts_past_the_end_rejected)
{
	static const uint32_t counts[] = {0xFFFFFFFFu, 0x80000000u, 0x40000000u, 0x10000u, 1000};

	cr_assert_eq(SYM_OFF_NSCALES, 27);
	expect_count_rejected("qlor_v1_sym.hex", OFF_NDIMS, 2, 0xFFFF, 0);
	expect_count_rejected("qlor_v1_sym.hex", OFF_NDIMS, 2, 100, 0);
	for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
		expect_count_rejected("qlor_v1_sym.hex", SYM_OFF_NSCALES, 4, counts[i], 1);
		expect_count_rejected("qlor_v1_asym.hex", ASYM_OFF_NZP, 4, counts[i], 2);
	}
	/* One element more than the bytes left (golden lengths 60 and 64):
	 * catches an off-by-a-factor bound check. */
	expect_count_rejected("qlor_v1_sym.hex", OFF_NDIMS, 2, (60 - OFF_NDIMS - 2) / 4 + 1, 0);
	expect_count_rejected("qlor_v1_sym.hex", SYM_OFF_NSCALES, 4, (60 - SYM_OFF_NSCALES - 4) / 4 + 1,
			      1);
	expect_count_rejected("qlor_v1_asym.hex", ASYM_OFF_NZP, 4, 64 - ASYM_OFF_NZP - 4 + 1, 2);
	expect_no_leaks();
}

/* xorshift64*: a fixed-seed PRNG so failures reproduce. */
static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545F4914F6CDD1Du;
}

Test(qlor, random_garbage_never_crashes)
{
	struct vec g = load_hex("qlor_v1_asym.hex");
	uint64_t seed = 0x9E3779B97F4A7C15u;
	uint8_t buf[GARBAGE_MAX_LEN];
	unsigned ok = 0, rejected = 0;

	for (int i = 0; i < GARBAGE_BUFFERS; i++) {
		size_t n = (size_t)(rng_next(&seed) % (GARBAGE_MAX_LEN + 1));
		struct lcp_qlor m;
		size_t used = 0;
		lcp_err err;

		for (size_t k = 0; k < n; k++)
			buf[k] = (uint8_t)rng_next(&seed);
		/* A quarter pure noise; the rest damaged golden bytes, which reach
		 * deeper into the parser. */
		if (i % 4 != 0) {
			size_t keep = g.n < n ? g.n : n;
			memcpy(buf, g.b, keep);
			for (int flips = 1 + (int)(rng_next(&seed) % 3); flips > 0 && n; flips--)
				buf[rng_next(&seed) % n] = (uint8_t)rng_next(&seed);
		}
		err = parse_exact(buf, n, &m, &used);
		if (err == LCP_OK) {
			cr_expect_leq(used, n);
			cr_expect_geq(used, 40);
			ok++;
			lcp_qlor_free(&m);
		} else {
			cr_expect(err == LCP_ERR_TRUNCATED || err == LCP_ERR_FORMAT ||
					  err == LCP_ERR_VERSION || err == LCP_ERR_CHECKSUM,
				  "unexpected %s", lcp_err_name(err));
			cr_expect_eq(used, 0);
			expect_default_state(&m);
			rejected++;
		}
	}
	cr_expect_eq(ok + rejected, GARBAGE_BUFFERS);
	cr_expect_gt(rejected, 0);
	free(g.b);
	expect_no_leaks();
}

static void round_trip_extra(const char *extra)
{
	struct vec g = load_hex("qlor_v1_asym.hex");
	struct lcp_qlor m = make_asym();
	struct lcp_qlor r;
	uint8_t *b;
	size_t n, used = 0;
	size_t extra_len = extra ? strlen(extra) : 0;

	m.extra = (char *)extra;
	/* The v1 bytes stay exactly the seed's whatever extra holds. */
	cr_assert_eq(lcp_qlor_serialize_v1(&m, &b, &n), LCP_OK);
	expect_bytes(b, n, &g);
	lcp_free(b);

	cr_assert_eq(lcp_qlor_serialize(&m, &b, &n), LCP_OK);
	cr_assert_eq(n, g.n + EXT_FIXED_BYTES + extra_len);
	cr_expect_eq(memcmp(b, g.b, g.n), 0, "extended block must start with the v1 bytes");
	cr_expect_eq(memcmp(b + g.n, "QLX\x01", 4), 0);
	cr_assert_eq(parse_exact(b, n, &r, &used), LCP_OK);
	cr_expect_eq(used, n);
	if (extra) {
		cr_assert_not_null(r.extra);
		cr_expect_eq(strlen(r.extra), extra_len);
		cr_expect_eq(strcmp(r.extra, extra), 0);
	} else {
		cr_expect_null(r.extra);
	}
	cr_expect_eq(r.timestamp, 1764115200u);
	cr_expect_eq(r.nzero_points, 4);
	lcp_qlor_free(&r);
	lcp_free(b);
	free(g.b);
}

Test(qlor, extra_round_trip)
{
	char *long_extra = malloc(LONG_EXTRA_LEN + 1);

	cr_assert_not_null(long_extra);
	for (size_t i = 0; i < LONG_EXTRA_LEN; i++)
		long_extra[i] = (char)('a' + i % 26);
	long_extra[LONG_EXTRA_LEN] = '\0';
	round_trip_extra(NULL);
	round_trip_extra("");
	round_trip_extra("layer.0");
	round_trip_extra("model.layers.0.self_attn.q_proj.weight {\"x\": \"\xc3\xa9\"}");
	round_trip_extra(long_extra);
	free(long_extra);
	expect_no_leaks();
}

/* Two extended blocks back to back parse one after the other. */
Test(qlor, extended_blocks_concatenate)
{
	struct lcp_qlor a = make_asym();
	struct lcp_qlor s = make_sym();
	struct lcp_qlor r;
	uint8_t *ba, *bs, *both;
	size_t na, ns, used;

	s.extra = (char *)"second";
	cr_assert_eq(lcp_qlor_serialize(&a, &ba, &na), LCP_OK);
	cr_assert_eq(lcp_qlor_serialize(&s, &bs, &ns), LCP_OK);
	both = malloc(na + ns);
	cr_assert_not_null(both);
	memcpy(both, ba, na);
	memcpy(both + na, bs, ns);
	cr_assert_eq(lcp_qlor_parse(both, na + ns, &r, &used), LCP_OK);
	cr_expect_eq(used, na);
	cr_expect_str_eq(r.extra, "layer.0");
	lcp_qlor_free(&r);
	cr_assert_eq(lcp_qlor_parse(both + na, ns, &r, &used), LCP_OK);
	cr_expect_eq(used, ns);
	cr_expect_str_eq(r.extra, "second");
	cr_expect_eq(r.nscales, 3);
	lcp_qlor_free(&r);
	free(both);
	lcp_free(ba);
	lcp_free(bs);
	expect_no_leaks();
}

Test(qlor, every_truncation_of_extended_rejected)
{
	struct lcp_qlor m = make_asym();
	uint8_t *b;
	size_t n, v1;
	struct vec g = load_hex("qlor_v1_asym.hex");

	v1 = g.n;
	cr_assert_eq(lcp_qlor_serialize(&m, &b, &n), LCP_OK);
	for (size_t k = 0; k < n; k++) {
		struct lcp_qlor r;
		size_t used = 0;
		lcp_err err = parse_exact(b, k, &r, &used);

		if (k >= v1 && k < v1 + 3) {
			/* Not even the extension magic: a plain v1 block. */
			cr_expect_eq(err, LCP_OK, "prefix %zu", k);
			cr_expect_eq(used, v1);
			cr_expect_null(r.extra);
			lcp_qlor_free(&r);
		} else {
			cr_expect_eq(err, LCP_ERR_TRUNCATED, "prefix %zu: %s", k, lcp_err_name(err));
			expect_default_state(&r);
		}
	}
	lcp_free(b);
	free(g.b);
	expect_no_leaks();
}

/*
 * Flipping any byte of an extended block must never give back the block as
 * if intact. Inside the extension (after its magic) it is always an error,
 * nearly always LCP_ERR_CHECKSUM; a damaged v1 byte is caught by the
 * checksum unless it changes the layout, in which case the parse stops at a
 * different length (consumed != len); a damaged extension magic leaves a
 * plain v1 block of the v1 length (see qlor.h: callers check consumed).
 */
Test(qlor, flipped_byte_detected)
{
	static const uint8_t masks[] = {0x01, 0x10, 0x80, 0xFF};
	struct lcp_qlor m = make_asym();
	uint8_t *b;
	size_t n, v1;
	unsigned checksum_errors = 0;

	{
		struct vec g = load_hex("qlor_v1_asym.hex");
		v1 = g.n;
		free(g.b);
	}
	cr_assert_eq(lcp_qlor_serialize(&m, &b, &n), LCP_OK);
	for (size_t i = 0; i < n; i++) {
		for (size_t k = 0; k < sizeof masks; k++) {
			struct lcp_qlor r;
			size_t used = 0;
			lcp_err err;

			b[i] ^= masks[k];
			err = parse_exact(b, n, &r, &used);
			b[i] ^= masks[k];
			if (err == LCP_ERR_CHECKSUM)
				checksum_errors++;
			if (i >= v1 && i < v1 + 3) {
				cr_expect_eq(err, LCP_OK, "magic byte %zu", i);
				cr_expect_eq(used, v1);
				cr_expect_null(r.extra);
			} else if (i >= v1) {
				cr_expect_neq(err, LCP_OK, "extension byte %zu ^ %02x accepted", i,
					      masks[k]);
			} else if (err == LCP_OK) {
				cr_expect_neq(used, n, "v1 byte %zu ^ %02x accepted as intact", i,
					      masks[k]);
			}
			if (err == LCP_OK)
				lcp_qlor_free(&r);
			else
				expect_default_state(&r);
		}
	}
	/* Most damage is reported as a checksum error: at least every byte after
	 * the extension's version and length fields, for every mask. */
	cr_expect_geq(checksum_errors, (n - v1 - 8) * sizeof masks);
	lcp_free(b);
	expect_no_leaks();
}

Test(qlor, extension_field_errors)
{
	struct lcp_qlor m = make_sym();
	struct lcp_qlor r;
	uint8_t *b;
	size_t n, v1;

	m.extra = NULL;
	cr_assert_eq(lcp_qlor_serialize_v1(&m, &b, &v1), LCP_OK);
	lcp_free(b);
	cr_assert_eq(lcp_qlor_serialize(&m, &b, &n), LCP_OK);
	cr_assert_eq(n, v1 + EXT_FIXED_BYTES);
	b[v1 + 3] = 2; /* ext_version */
	cr_expect_eq(parse_exact(b, n, &r, NULL), LCP_ERR_VERSION);
	expect_default_state(&r);
	b[v1 + 3] = 1;
	b[v1 + 4] = EXT_FIXED_BYTES - 1; /* ext_len below the minimum */
	cr_expect_eq(parse_exact(b, n, &r, NULL), LCP_ERR_FORMAT);
	b[v1 + 4] = 0xFF; /* ext_len past the end */
	b[v1 + 7] = 0xFF;
	cr_expect_eq(parse_exact(b, n, &r, NULL), LCP_ERR_TRUNCATED);
	expect_default_state(&r);
	lcp_free(b);
	expect_no_leaks();
}

Test(qlor, serialize_rejects_inconsistent_struct)
{
	struct lcp_qlor m;
	uint8_t *b = (uint8_t *)"x";
	size_t n = 7;

	lcp_qlor_init(&m, 16, 4, 16);
	m.nscales = 2; /* scales NULL */
	cr_expect_eq(lcp_qlor_serialize_v1(&m, &b, &n), LCP_ERR_INVAL);
	cr_expect_null(b);
	cr_expect_eq(n, 0);
	m.nscales = 0;
	m.ndims = 1; /* dims NULL */
	cr_expect_eq(lcp_qlor_serialize(&m, &b, &n), LCP_ERR_INVAL);
	m.ndims = 0;
	m.has_zero_points = true;
	m.nzero_points = 3; /* zero_points NULL */
	cr_expect_eq(lcp_qlor_serialize(&m, &b, &n), LCP_ERR_INVAL);
	m.nzero_points = 0;
	m.dtype = (enum lcp_dtype)9;
	cr_expect_eq(lcp_qlor_serialize_v1(&m, &b, &n), LCP_ERR_INVAL);
	m.dtype = LCP_DTYPE_F32;
	cr_expect_eq(lcp_qlor_serialize_v1(&m, &b, &n), LCP_OK);
	lcp_free(b);
}

Test(qlor, free_resets_to_default)
{
	struct vec g = load_hex("qlor_v1_asym.hex");
	struct lcp_qlor m = make_asym();
	uint8_t *b;
	size_t n;

	cr_assert_eq(lcp_qlor_serialize(&m, &b, &n), LCP_OK);
	cr_assert_eq(lcp_qlor_parse(b, n, &m, NULL), LCP_OK);
	cr_expect_not_null(m.extra);
	lcp_qlor_free(&m);
	expect_default_state(&m);
	lcp_qlor_free(&m); /* twice is harmless */
	lcp_free(b);
	free(g.b);
}

Test(qlor, parse_allocation_failures)
{
	struct lcp_qlor src = make_asym();
	uint8_t *b;
	size_t n;
	long fail_at;
	unsigned nomem = 0;

	cr_assert_eq(lcp_qlor_serialize(&src, &b, &n), LCP_OK);
	/* dims, scales, zero points, extra: four allocations; the loop finds
	 * the count itself and ends at the first success. */
	for (fail_at = 0; fail_at < 16; fail_at++) {
		struct lcp_qlor r;
		lcp_err err;

		lcp_alloc_fail_after(fail_at);
		err = lcp_qlor_parse(b, n, &r, NULL);
		lcp_alloc_fail_after(-1);
		if (err == LCP_OK) {
			cr_expect_str_eq(r.extra, "layer.0");
			lcp_qlor_free(&r);
			break;
		}
		cr_expect_eq(err, LCP_ERR_NOMEM, "fail_at %ld: %s", fail_at, lcp_err_name(err));
		expect_default_state(&r);
		nomem++;
	}
	cr_expect_eq(nomem, 4, "one NOMEM per allocation the parse makes");
	cr_expect_eq(fail_at, 4);
	lcp_free(b);
	expect_no_leaks();
}

Test(qlor, serialize_allocation_failures)
{
	struct lcp_qlor m = make_asym();
	uint8_t *b = (uint8_t *)"x";
	size_t n = 5;
	lcp_err err;

	lcp_alloc_fail_after(0);
	err = lcp_qlor_serialize_v1(&m, &b, &n);
	lcp_alloc_fail_after(-1);
	cr_expect_eq(err, LCP_ERR_NOMEM);
	cr_expect_null(b);
	cr_expect_eq(n, 0);
	b = (uint8_t *)"x";
	lcp_alloc_fail_after(0);
	err = lcp_qlor_serialize(&m, &b, &n);
	lcp_alloc_fail_after(-1);
	cr_expect_eq(err, LCP_ERR_NOMEM);
	cr_expect_null(b);
	expect_no_leaks();
}

Test(qlor, special_floats_round_trip_bitwise)
{
	float scales[4] = {NAN, INFINITY, -0.0f, 1e-45f};
	struct lcp_qlor m;
	struct lcp_qlor r;
	uint8_t *b;
	size_t n;

	lcp_qlor_init(&m, 16, 4, 1);
	m.nscales = 4;
	m.scales = scales;
	cr_assert_eq(lcp_qlor_serialize(&m, &b, &n), LCP_OK);
	cr_assert_eq(lcp_qlor_parse(b, n, &r, NULL), LCP_OK);
	cr_expect_eq(memcmp(r.scales, scales, sizeof scales), 0);
	lcp_qlor_free(&r);
	lcp_free(b);
}
