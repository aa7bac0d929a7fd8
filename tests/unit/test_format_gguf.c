/* SPDX-License-Identifier: Apache-2.0 */
/*
 * GGUF v2/v3 parsing against files built here from the spec: every
 * key-value type (scalars, strings, arrays, nested arrays), default and
 * explicit alignment, F32/F16/BF16/Q8_0 tensors; then lying counts, bad
 * offsets, unknown types and versions, and every truncation.
 */
#include <criterion/criterion.h>

#include "test_format_helpers.h"

struct gt {
	const char *name;
	uint32_t ndims;
	uint64_t dims[4];   /* GGUF order: fastest-varying first */
	uint32_t type;
	uint64_t off;
};

static void g_str(struct lcp_buf *b, const char *s)
{
	lcp_buf_append_le64(b, strlen(s));
	fmt_append_str(b, s);
}

static void g_key(struct lcp_buf *b, const char *k, uint32_t type)
{
	g_str(b, k);
	lcp_buf_append_le32(b, type);
}

/* A version 3 header: magic, version, tensor and key-value counts. */
static void gguf_head(struct lcp_buf *b, uint64_t ntensors, uint64_t nkvs)
{
	fmt_append(b, "GGUF", 4);
	lcp_buf_append_le32(b, 3);
	lcp_buf_append_le64(b, ntensors);
	lcp_buf_append_le64(b, nkvs);
}

#define N_EXTRA_KVS 14

/* Writes a header with N_EXTRA_KVS key-values of every type (+ alignment when
 * nonzero), the tensor infos, padding, and data_len bytes of data. Returns
 * the data start. */
static size_t build_gguf(struct lcp_buf *b, uint32_t version, uint32_t alignment, const struct gt *ts, size_t n,
			 size_t data_len)
{
	fmt_append(b, "GGUF", 4);
	lcp_buf_append_le32(b, version);
	lcp_buf_append_le64(b, n);
	lcp_buf_append_le64(b, N_EXTRA_KVS + (alignment ? 1 : 0));
	g_key(b, "general.architecture", 8);
	g_str(b, "llama");
	g_key(b, "u8", 0);
	lcp_buf_append_u8(b, 7);
	g_key(b, "i8", 1);
	lcp_buf_append_u8(b, 0xff);
	g_key(b, "u16", 2);
	lcp_buf_append_le16(b, 7);
	g_key(b, "i16", 3);
	lcp_buf_append_le16(b, 7);
	g_key(b, "u32", 4);
	lcp_buf_append_le32(b, 7);
	g_key(b, "i32", 5);
	lcp_buf_append_le32(b, 7);
	g_key(b, "f32", 6);
	lcp_buf_append_lef32(b, 1.5f);
	g_key(b, "bool", 7);
	lcp_buf_append_u8(b, 1);
	g_key(b, "u64", 10);
	lcp_buf_append_le64(b, 7);
	g_key(b, "i64", 11);
	lcp_buf_append_le64(b, 7);
	g_key(b, "f64", 12);
	lcp_buf_append_lef64(b, 2.5);
	g_key(b, "tokenizer.ggml.tokens", 9);
	lcp_buf_append_le32(b, 8);
	lcp_buf_append_le64(b, 2);
	g_str(b, "a");
	g_str(b, "bc");
	g_key(b, "nested", 9); /* [[1, 2], [3]] of i32 */
	lcp_buf_append_le32(b, 9);
	lcp_buf_append_le64(b, 2);
	lcp_buf_append_le32(b, 5);
	lcp_buf_append_le64(b, 2);
	lcp_buf_append_le32(b, 1);
	lcp_buf_append_le32(b, 2);
	lcp_buf_append_le32(b, 5);
	lcp_buf_append_le64(b, 1);
	lcp_buf_append_le32(b, 3);
	if (alignment) {
		g_key(b, "general.alignment", 4);
		lcp_buf_append_le32(b, alignment);
	}
	for (size_t i = 0; i < n; i++) {
		g_str(b, ts[i].name);
		lcp_buf_append_le32(b, ts[i].ndims);
		for (uint32_t d = 0; d < ts[i].ndims; d++)
			lcp_buf_append_le64(b, ts[i].dims[d]);
		lcp_buf_append_le32(b, ts[i].type);
		lcp_buf_append_le64(b, ts[i].off);
	}
	uint32_t a = alignment ? alignment : 32;
	while (b->len % a)
		lcp_buf_append_u8(b, 0);
	size_t start = b->len;
	for (size_t i = 0; i < data_len; i++)
		lcp_buf_append_u8(b, (uint8_t)(i * 13 + 5));
	return start;
}

/* w F32 4x2 (32 bytes at 0), norm F16 [4] (8 at 32), q Q8_0 32x2 (2 blocks
 * of 34 = 68 at 64), bf BF16 2x2x2 (16 at 160: 132 rounded up to 32). */
static const struct gt valid_ts[] = {
	{"w", 2, {4, 2}, 0, 0},
	{"norm", 1, {4}, 1, 32},
	{"q", 2, {32, 2}, 8, 64},
	{"bf", 3, {2, 2, 2}, 30, 160},
};
#define VALID_DATA_LEN 176

static void check_valid(uint32_t version, uint32_t alignment)
{
	struct lcp_buf b = LCP_BUF_INIT;
	size_t ds = build_gguf(&b, version, alignment, valid_ts, 4, VALID_DATA_LEN);
	struct lcp_region_map m;
	fmt_parse_buf(b.data, b.len, 0, &m);
	cr_assert(m.ok, "%s", m.reason);
	cr_expect_eq(m.format, LCP_FORMAT_GGUF);
	cr_assert_eq(m.nregions, 7);
	cr_expect_eq(m.regions[0].len, ds);
	const struct lcp_region *w = &m.regions[1];
	cr_expect_eq(w->kind, LCP_REGION_TENSOR);
	cr_expect_str_eq(w->name, "w");
	cr_expect_str_eq(w->dtype_name, "F32");
	cr_expect_eq(w->off, ds);
	cr_expect_eq(w->len, 32);
	cr_expect_eq(w->ndims, 2);
	cr_expect_eq(w->dims[0], 2, "storage order: GGUF's last dim first");
	cr_expect_eq(w->dims[1], 4);
	cr_expect_str_eq(m.regions[2].name, "norm");
	cr_expect_str_eq(m.regions[2].exact_reason, "1-D");
	cr_expect_eq(m.regions[3].off, ds + 40);
	cr_expect_null(m.regions[3].name, "padding between tensors is plain EXACT");
	const struct lcp_region *q = &m.regions[4];
	cr_expect_eq(q->kind, LCP_REGION_EXACT);
	cr_expect_str_eq(q->name, "q");
	cr_expect_str_eq(q->dtype_name, "Q8_0");
	cr_expect_str_eq(q->exact_reason, "quantized");
	cr_expect_eq(q->off, ds + 64);
	cr_expect_eq(q->len, 68);
	cr_expect_eq(q->dims[0], 2);
	cr_expect_eq(q->dims[1], 32);
	const struct lcp_region *bf = &m.regions[6];
	cr_expect_eq(bf->kind, LCP_REGION_TENSOR);
	cr_expect_eq(bf->dtype, LCP_DTYPE_BF16);
	cr_expect_eq(bf->off, ds + 160);
	cr_expect_eq(bf->len, 16);
	cr_expect_eq(bf->ndims, 3);
	lcp_region_map_free(&m);
	lcp_buf_free(&b);
}

Test(format_gguf, v3_default_alignment)
{
	check_valid(3, 0);
}

Test(format_gguf, v2_explicit_alignment)
{
	check_valid(2, 32);
}

Test(format_gguf, alignment_64)
{
	/* Offsets 0, 64, 128, 256 are 64-aligned; q ends at 196. */
	struct gt ts[4];
	memcpy(ts, valid_ts, sizeof ts);
	ts[1].off = 64;
	ts[2].off = 128;
	ts[3].off = 256;
	struct lcp_buf b = LCP_BUF_INIT;
	size_t ds = build_gguf(&b, 3, 64, ts, 4, 272);
	cr_expect_eq(ds % 64, 0);
	struct lcp_region_map m;
	fmt_parse_buf(b.data, b.len, 0, &m);
	cr_assert(m.ok, "%s", m.reason);
	cr_expect_eq(m.regions[0].len, ds);
	lcp_region_map_free(&m);
	/* The 32-aligned layout is misaligned under 64. */
	lcp_buf_free(&b);
	build_gguf(&b, 3, 64, valid_ts, 4, 272);
	fmt_expect_invalid(b.data, b.len, LCP_FORMAT_GGUF, "offset 32 is not aligned to 64");
	lcp_buf_free(&b);
}

static void expect_bad_ts(const struct gt *ts, size_t n, size_t data_len, const char *needle)
{
	struct lcp_buf b = LCP_BUF_INIT;
	build_gguf(&b, 3, 0, ts, n, data_len);
	fmt_expect_invalid(b.data, b.len, LCP_FORMAT_GGUF, needle);
	cr_expect_eq(lcp_format_detect(b.data, b.len), LCP_FORMAT_UNKNOWN);
	lcp_buf_free(&b);
}

Test(format_gguf, bad_tensors_are_rejected)
{
	struct gt ts[2] = {{"a", 2, {4, 2}, 0, 0}, {"b", 2, {4, 2}, 0, 0}};
	expect_bad_ts(ts, 2, 64, "overlaps");
	ts[1].off = 32;
	expect_bad_ts(ts, 2, 40, "'b' [32, +32) runs past the end of the file");
	ts[1].name = "a";
	expect_bad_ts(ts, 2, 64, "duplicate tensor name 'a'");
	struct gt odd = {"t", 2, {4, 2}, 99, 0};
	expect_bad_ts(&odd, 1, 32, "unknown ggml type 99");
	struct gt removed = {"t", 2, {32, 2}, 4, 0}; /* Q4_2, removed from ggml */
	expect_bad_ts(&removed, 1, 64, "unknown ggml type 4");
	struct gt row = {"t", 2, {16, 2}, 8, 0};
	expect_bad_ts(&row, 1, 64, "not a multiple of the Q8_0 block 32");
	struct gt mis = {"t", 2, {4, 2}, 0, 8};
	expect_bad_ts(&mis, 1, 64, "offset 8 is not aligned to 32");
}

Test(format_gguf, versions)
{
	struct lcp_buf b = LCP_BUF_INIT;
	build_gguf(&b, 1, 0, valid_ts, 4, VALID_DATA_LEN);
	fmt_expect_invalid(b.data, b.len, LCP_FORMAT_GGUF, "version 1 is not supported");
	lcp_buf_free(&b);
	build_gguf(&b, 4, 0, valid_ts, 4, VALID_DATA_LEN);
	fmt_expect_invalid(b.data, b.len, LCP_FORMAT_GGUF, "unknown version 4");
	lcp_buf_free(&b);
	/* A big-endian v3 file has its version byte-swapped. */
	build_gguf(&b, 0x03000000u, 0, valid_ts, 4, VALID_DATA_LEN);
	fmt_expect_invalid(b.data, b.len, LCP_FORMAT_GGUF, "unknown version");
	lcp_buf_free(&b);
}

Test(format_gguf, counts_past_the_end)
{
	struct lcp_buf b = LCP_BUF_INIT;
	build_gguf(&b, 3, 0, valid_ts, 4, VALID_DATA_LEN);
	uint8_t *p = b.data;
	lcp_store_le64(p + 8, 1ull << 19);
	fmt_expect_invalid(b.data, b.len, LCP_FORMAT_GGUF, "cannot fit");
	lcp_store_le64(p + 8, 4);
	lcp_store_le64(p + 16, 1ull << 15);
	fmt_expect_invalid(b.data, b.len, LCP_FORMAT_GGUF, "cannot fit");
	/* Past the limits on what one file may make us hold. */
	lcp_store_le64(p + 16, UINT64_MAX);
	fmt_expect_invalid(b.data, b.len, LCP_FORMAT_GGUF, "over the limits of 1048576 and 65536");
	lcp_store_le64(p + 16, N_EXTRA_KVS);
	lcp_store_le64(p + 8, (1ull << 20) + 1);
	fmt_expect_invalid(b.data, b.len, LCP_FORMAT_GGUF, "1048577 tensors and 14 key-values over the limits");
	/* One more tensor than written: the next info runs into the data. */
	lcp_store_le64(p + 16, N_EXTRA_KVS);
	lcp_store_le64(p + 8, 5);
	struct lcp_region_map m;
	fmt_parse_buf(b.data, b.len, 0, &m);
	cr_expect_not(m.ok);
	lcp_region_map_free(&m);
	lcp_buf_free(&b);
}

Test(format_gguf, lying_lengths_inside_key_values)
{
	/* The first key's string value length is at 24 + 8 + 20 + 4. */
	size_t at = 24 + 8 + strlen("general.architecture") + 4;
	struct lcp_buf b = LCP_BUF_INIT;
	build_gguf(&b, 3, 0, valid_ts, 4, VALID_DATA_LEN);
	lcp_store_le64(b.data + at, 1ull << 50);
	fmt_expect_invalid(b.data, b.len, LCP_FORMAT_GGUF, "runs past the end of the file");
	lcp_buf_free(&b);

	/* An array of 2^60 u32 elements. */
	lcp_buf_free(&b);
	gguf_head(&b, 0, 1);
	g_key(&b, "arr", 9);
	lcp_buf_append_le32(&b, 4);
	lcp_buf_append_le64(&b, 1ull << 60);
	fmt_append_fill(&b, 16, 0);
	fmt_expect_invalid(b.data, b.len, LCP_FORMAT_GGUF, "array of 1152921504606846976 elements");
	lcp_buf_free(&b);

	/* Unknown value type. */
	gguf_head(&b, 0, 1);
	g_key(&b, "x", 13);
	fmt_append_fill(&b, 16, 0);
	fmt_expect_invalid(b.data, b.len, LCP_FORMAT_GGUF, "unknown value type 13");
	lcp_buf_free(&b);
}

Test(format_gguf, deep_nesting_duplicate_keys_bad_alignment)
{
	struct lcp_buf b = LCP_BUF_INIT;
	gguf_head(&b, 0, 1);
	g_key(&b, "deep", 9);
	for (int i = 0; i < 20; i++) {
		lcp_buf_append_le32(&b, 9);
		lcp_buf_append_le64(&b, 1);
	}
	fmt_append_fill(&b, 64, 0);
	fmt_expect_invalid(b.data, b.len, LCP_FORMAT_GGUF, "nested deeper");
	lcp_buf_free(&b);

	gguf_head(&b, 0, 1);
	g_key(&b, "general.alignment", 4);
	lcp_buf_append_le32(&b, 48);
	fmt_append_fill(&b, 16, 0);
	fmt_expect_invalid(b.data, b.len, LCP_FORMAT_GGUF, "alignment 48 is not a power of two");
	lcp_buf_free(&b);

	gguf_head(&b, 0, 2);
	g_key(&b, "k", 4);
	lcp_buf_append_le32(&b, 1);
	g_key(&b, "k", 8);
	g_str(&b, "x");
	fmt_append_fill(&b, 16, 0);
	fmt_expect_invalid(b.data, b.len, LCP_FORMAT_GGUF, "duplicate key 'k'");
	lcp_buf_free(&b);

	gguf_head(&b, 1, 0);
	g_str(&b, "t");
	lcp_buf_append_le32(&b, 9);
	fmt_append_fill(&b, 100, 0);
	fmt_expect_invalid(b.data, b.len, LCP_FORMAT_GGUF, "has 9 dims");
	lcp_buf_free(&b);
}

Test(format_gguf, every_truncation_is_rejected)
{
	struct lcp_buf b = LCP_BUF_INIT;
	build_gguf(&b, 3, 0, valid_ts, 4, VALID_DATA_LEN);
	fmt_expect_truncations_rejected(b.data, b.len);
	lcp_buf_free(&b);
}

Test(format_gguf, quantized_sizes_from_block_tables)
{
	/* One 256-element row of each k-quant: bytes per block from ggml-common.h
	 * (Q2_K 84, Q3_K 110, Q4_K 144, Q5_K 176, Q6_K 210, Q8_K 292, IQ4_XS 136),
	 * each followed by nothing else: the file size proves the size table. */
	static const struct { uint32_t type; uint64_t bytes; } k[] = {
		{10, 84}, {11, 110}, {12, 144}, {13, 176}, {14, 210}, {15, 292}, {23, 136},
		{2, 8 * 18}, {3, 8 * 20}, {6, 8 * 22}, {7, 8 * 24}, {20, 8 * 18},
	};
	for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
		struct gt t = {"t", 2, {256, 1}, k[i].type, 0};
		struct lcp_buf b = LCP_BUF_INIT;
		build_gguf(&b, 3, 0, &t, 1, k[i].bytes);
		struct lcp_region_map m;
		fmt_parse_buf(b.data, b.len, 0, &m);
		cr_expect(m.ok, "type %u: %s", k[i].type, m.reason);
		cr_expect_eq(m.regions[m.nregions - 1].len, k[i].bytes, "type %u", k[i].type);
		lcp_region_map_free(&m);
		lcp_buf_free(&b);
	}
}

/* What the GGUF spec and ggml's reader refuse, we refuse. */
Test(format_gguf, what_ggml_refuses_is_refused)
{
	/* ggml: a tensor name must be shorter than GGML_MAX_NAME (64). */
	const char *n64 = "0123456789012345678901234567890123456789012345678901234567890123";
	struct gt longname = {n64, 2, {4, 2}, 0, 0};
	expect_bad_ts(&longname, 1, 32, "tensor name at offset");
	struct gt ok63 = {n64 + 1, 2, {4, 2}, 0, 0};
	struct lcp_buf b = LCP_BUF_INIT;
	build_gguf(&b, 3, 0, &ok63, 1, 32);
	cr_expect_eq(lcp_format_detect(b.data, b.len), LCP_FORMAT_GGUF, "a 63-byte name is fine");
	lcp_buf_free(&b);
	/* The spec: strings are UTF-8 (and the name becomes a region name). */
	struct gt latin1 = {"caf\xe9", 2, {4, 2}, 0, 0};
	expect_bad_ts(&latin1, 1, 32, "is not UTF-8");
	/* ggml's GGML_MAX_DIMS, the spec's "currently at most 4". */
	gguf_head(&b, 1, 0);
	g_str(&b, "t");
	lcp_buf_append_le32(&b, 5);
	for (int d = 0; d < 5; d++)
		lcp_buf_append_le64(&b, d ? 1 : 4);
	lcp_buf_append_le32(&b, 0);
	lcp_buf_append_le64(&b, 0);
	while (b.len % 32)
		lcp_buf_append_u8(&b, 0);
	fmt_append_fill(&b, 16, 1);
	fmt_expect_invalid(b.data, b.len, LCP_FORMAT_GGUF, "has 5 dims (max 4)");
	lcp_buf_free(&b);

	/* The spec: a bool is 0 or 1, "anything else is invalid". */
	gguf_head(&b, 0, 1);
	g_key(&b, "flag", 7);
	lcp_buf_append_u8(&b, 2);
	fmt_append_fill(&b, 32, 0);
	fmt_expect_invalid(b.data, b.len, LCP_FORMAT_GGUF, "bool value 2");
	lcp_buf_free(&b);
	gguf_head(&b, 0, 1);
	g_key(&b, "flags", 9);
	lcp_buf_append_le32(&b, 7);
	lcp_buf_append_le64(&b, 3);
	fmt_append(&b, "\x01\x00\xff", 3);
	fmt_append_fill(&b, 32, 0);
	fmt_expect_invalid(b.data, b.len, LCP_FORMAT_GGUF, "bool value 255");
	lcp_buf_free(&b);
	/* The spec: keys are ASCII. */
	gguf_head(&b, 0, 1);
	g_key(&b, "caf\xc3\xa9", 4);
	lcp_buf_append_le32(&b, 1);
	fmt_append_fill(&b, 32, 0);
	fmt_expect_invalid(b.data, b.len, LCP_FORMAT_GGUF, "not ASCII");
	lcp_buf_free(&b);
}
