/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Compatibility and golden vectors: tensors encoded by each version of the
 * codec (tests/data/codec_v*_tensors.txt, written by
 * tests/tools/make_codec_fixture.c with the code of that version) must
 * decode to exactly the reconstruction they had then: every chunk's recorded
 * output checksum and the whole tensor's checksum are compared, and range
 * reads against the whole decode.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/checksum.h"
#include "lcpfs/codec.h"
#include "test_codec_helpers.h"

#define MAX_CHUNKS 16

struct fixture_chunk {
	struct lcp_chunk_info info;
	uint8_t *data;
};

struct fixture_tensor {
	char name[64];
	char dtype[8];
	uint64_t elems;
	uint8_t *params;
	size_t params_len;
	struct fixture_chunk chunks[MAX_CHUNKS];
	uint32_t nchunks;
	uint64_t recon_xxh3;
};

static uint8_t *unhex(const char *s, size_t *len)
{
	size_t n = strlen(s);
	while (n && (s[n - 1] == '\n' || s[n - 1] == ' '))
		n--;
	cr_assert_eq(n % 2, 0, "odd number of hex digits");
	uint8_t *b = malloc(n / 2 + 1);
	cr_assert_not_null(b);
	for (size_t i = 0; i < n / 2; i++) {
		unsigned v;
		cr_assert_eq(sscanf(s + 2 * i, "%2x", &v), 1, "bad hex at %zu", 2 * i);
		b[i] = (uint8_t)v;
	}
	*len = n / 2;
	return b;
}

/* Reads the next tensor of f into t; false at end of file. */
static bool read_tensor(FILE *f, struct fixture_tensor *t)
{
	char *line = NULL;
	size_t cap = 0;
	bool in_tensor = false, done = false;
	memset(t, 0, sizeof *t);
	while (!done && getline(&line, &cap, f) > 0) {
		if (line[0] == '#' || line[0] == '\n')
			continue;
		if (strncmp(line, "tensor ", 7) == 0) {
			unsigned ndims;
			unsigned long long d[8];
			int got = sscanf(line + 7, "%63s %7s %u %llu %llu %llu %llu", t->name, t->dtype,
					 &ndims, &d[0], &d[1], &d[2], &d[3]);
			cr_assert(got >= 4 && ndims >= 1 && ndims <= 4 && got == 3 + (int)ndims,
				  "bad tensor line: %s", line);
			t->elems = 1;
			for (unsigned i = 0; i < ndims; i++)
				t->elems *= d[i];
			in_tensor = true;
		} else if (strncmp(line, "params ", 7) == 0 && in_tensor) {
			t->params = unhex(line + 7, &t->params_len);
		} else if (strncmp(line, "chunk ", 6) == 0 && in_tensor) {
			cr_assert_lt(t->nchunks, MAX_CHUNKS);
			struct fixture_chunk *c = &t->chunks[t->nchunks++];
			unsigned long long b, e, sx, ox;
			int pos = 0;
			cr_assert_eq(sscanf(line + 6, "%llu %llu %llx %llx %n", &b, &e, &sx, &ox, &pos), 4,
				     "bad chunk line");
			size_t len;
			c->data = unhex(line + 6 + pos, &len);
			c->info = (struct lcp_chunk_info){ .elem_begin = b, .elem_end = e,
							   .data_len = len, .stored_xxh3 = sx,
							   .output_xxh3 = ox };
		} else if (strncmp(line, "recon ", 6) == 0 && in_tensor) {
			unsigned long long r;
			cr_assert_eq(sscanf(line + 6, "%llx", &r), 1);
			t->recon_xxh3 = r;
		} else if (strncmp(line, "end", 3) == 0 && in_tensor) {
			done = true;
		} else {
			cr_assert_fail("unexpected fixture line: %.40s", line);
		}
	}
	free(line);
	cr_assert(!in_tensor || done, "fixture ends inside tensor %s", t->name);
	return done;
}

static void free_tensor(struct fixture_tensor *t)
{
	free(t->params);
	for (uint32_t c = 0; c < t->nchunks; c++)
		free(t->chunks[c].data);
}

static unsigned dtype_bytes(const char *name)
{
	if (strcmp(name, "F32") == 0)
		return 4;
	if (strcmp(name, "F64") == 0)
		return 8;
	return 2;
}

/* Decodes every tensor of a fixture file and compares each reconstruction
 * with the one recorded when the fixture was written, and range reads with
 * the whole decode. Returns the number of tensors checked. */
static unsigned check_fixture(const char *path)
{
	FILE *f = fopen(path, "r");
	cr_assert_not_null(f, "cannot open %s (run from the repository root)", path);
	struct fixture_tensor t;
	unsigned ntensors = 0;
	while (read_tensor(f, &t)) {
		struct lcp_codec_tensor *ct;
		cr_assert_eq(lcp_codec_tensor_open(t.params, t.params_len, &ct), LCP_OK, "%s", t.name);
		cr_assert_eq(lcp_codec_tensor_elems(ct), t.elems, "%s", t.name);
		unsigned eb = dtype_bytes(t.dtype);
		uint8_t *y = malloc(t.elems * eb);
		cr_assert_not_null(y);
		uint64_t next = 0;
		for (uint32_t c = 0; c < t.nchunks; c++) {
			const struct fixture_chunk *fc = &t.chunks[c];
			uint64_t b = fc->info.elem_begin, e = fc->info.elem_end;
			cr_assert_eq(b, next, "%s: chunks must tile the tensor", t.name);
			next = e;
			cr_assert_eq(lcp_xxh3(fc->data, fc->info.data_len), fc->info.stored_xxh3,
				     "%s chunk %u: fixture damaged", t.name, c);
			cr_assert_eq(lcp_codec_decode_chunk(ct, &fc->info, fc->data, fc->info.data_len,
							    y + b * eb, (e - b) * eb),
				     LCP_OK, "%s chunk %u", t.name, c);
			cr_expect_eq(lcp_xxh3(y + b * eb, (e - b) * eb), fc->info.output_xxh3,
				     "%s chunk %u: reconstruction changed", t.name, c);
			uint64_t s = 0, cnt = 0;
			cr_expect(range_reads_match(ct, &fc->info, fc->data, y, eb, &s, &cnt),
				  "%s chunk %u: range %lu+%lu differs from the whole decode", t.name, c,
				  (unsigned long)s, (unsigned long)cnt);
		}
		cr_assert_eq(next, t.elems, "%s: chunks must tile the tensor", t.name);
		cr_expect_eq(lcp_xxh3(y, t.elems * eb), t.recon_xxh3, "%s: reconstruction changed",
			     t.name);
		free(y);
		lcp_codec_tensor_free(ct);
		free_tensor(&t);
		ntensors++;
	}
	fclose(f);
	return ntensors;
}

Test(codec_compat, v1_tensors_read_back_as_written)
{
	/* Six tensors: every encoding class, every dtype, a kept low-rank term,
	 * two chunks (see make_codec_fixture.c). */
	cr_assert_eq(check_fixture("tests/data/codec_v1_tensors.txt"), 6);
}

/* The golden vectors of format 2: rANS code streams (16 lanes, several
 * blocks, 4-bit and 8-bit symbols), zstd and raw code streams, a lossless
 * tensor still in format 1. */
Test(codec_compat, v2_tensors_read_back_as_written)
{
	cr_assert_eq(check_fixture("tests/data/codec_v2_tensors.txt"), 8);
}

/* The golden vectors of format 3: dependent quantization (fused and
 * unfused, with a low-rank term), the lossless tier's split planes for
 * every dtype, a grid the default preset keeps exact (zstd planes) and
 * random bits (raw), beside the unchanged classes. */
Test(codec_compat, v3_tensors_read_back_as_written)
{
	cr_assert_eq(check_fixture("tests/data/codec_v3_tensors.txt"), 15);
}

/* The golden vectors of format 4: the 8-bit class's codes as pairs (fused
 * into F16 and BF16, a last block ending inside a step, unfused with a
 * low-rank term), the 8-bit tensors that keep raw or zstd codes now under
 * version 4, beside the unchanged classes. */
Test(codec_compat, v4_tensors_read_back_as_written)
{
	cr_assert_eq(check_fixture("tests/data/codec_v4_tensors.txt"), 18);
}

/* The golden vectors of format 5: dependent quantization's codes as alias
 * streams with escapes (the default preset's tensors, fused into F16 and
 * BF16, a last block ending inside a step, unfused with group 100 and with
 * a low-rank term) and codes too spread for one (rANS); the 8-bit class
 * (pairs) now under version 5; side planes in blocks; beside the unchanged
 * classes. */
Test(codec_compat, v5_tensors_read_back_as_written)
{
	cr_assert_eq(check_fixture("tests/data/codec_v5_tensors.txt"), 21);
}
