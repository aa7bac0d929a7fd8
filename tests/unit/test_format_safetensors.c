/* SPDX-License-Identifier: Apache-2.0 */
/*
 * safetensors parsing: valid files give the regions the spec implies
 * (offsets = 8 + header length + data_offsets), damaged ones (overlap, gap,
 * out of range, wrong size, absurd header length, duplicate keys, bad JSON)
 * give one EXACT region and a precise reason, and no prefix of a valid file
 * is accepted.
 */
#include <criterion/criterion.h>

#include "test_format_helpers.h"

/* Header of 295 bytes + data of 2*3*4 + 4*2 + 2*2*2 + 2*2*4 + 1*4 = 60 bytes. */
static const char valid_json[] =
	"{\"__metadata__\":{\"format\":\"pt\"},"
	"\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
	"\"bias\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[24,32]},"
	"\"b16\":{\"dtype\":\"BF16\",\"shape\":[2,2],\"data_offsets\":[32,40]},"
	"\"ids\":{\"dtype\":\"I32\",\"shape\":[2,2],\"data_offsets\":[40,56]},"
	"\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[56,60]}}";
#define VALID_DATA_LEN 60

static void build_valid(struct lcp_buf *b)
{
	fmt_build_st(b, valid_json, VALID_DATA_LEN);
}

Test(format_safetensors, valid_file_regions)
{
	struct lcp_buf b = LCP_BUF_INIT;
	build_valid(&b);
	uint64_t base = 8 + strlen(valid_json);
	struct lcp_region_map m;
	fmt_parse_buf(b.data, b.len, 0, &m);
	cr_assert(m.ok, "%s", m.reason);
	cr_expect_eq(m.format, LCP_FORMAT_SAFETENSORS);
	cr_assert_eq(m.nregions, 6);
	cr_expect_eq(m.regions[0].kind, LCP_REGION_EXACT);
	cr_expect_eq(m.regions[0].len, base);
	cr_expect_null(m.regions[0].name);

	const struct lcp_region *w = &m.regions[1];
	cr_expect_eq(w->kind, LCP_REGION_TENSOR);
	cr_expect_str_eq(w->name, "w");
	cr_expect_str_eq(w->dtype_name, "F32");
	cr_expect_eq(w->dtype, LCP_DTYPE_F32);
	cr_expect_eq(w->off, base);
	cr_expect_eq(w->len, 24);
	cr_expect_eq(w->ndims, 2);
	cr_expect_eq(w->dims[0], 2);
	cr_expect_eq(w->dims[1], 3);

	cr_expect_eq(m.regions[2].kind, LCP_REGION_EXACT);
	cr_expect_str_eq(m.regions[2].name, "bias");
	cr_expect_str_eq(m.regions[2].exact_reason, "1-D");
	cr_expect_eq(m.regions[2].off, base + 24);

	cr_expect_eq(m.regions[3].kind, LCP_REGION_TENSOR);
	cr_expect_eq(m.regions[3].dtype, LCP_DTYPE_BF16);
	cr_expect_eq(m.regions[3].off, base + 32);

	cr_expect_eq(m.regions[4].kind, LCP_REGION_EXACT);
	cr_expect_str_eq(m.regions[4].name, "ids");
	cr_expect_str_eq(m.regions[4].dtype_name, "I32");
	cr_expect_str_eq(m.regions[4].exact_reason, "dtype not compressed");
	cr_expect_eq(m.regions[4].ndims, 2, "EXACT tensors keep their shape");

	cr_expect_str_eq(m.regions[5].exact_reason, "1-D", "a scalar counts as 1-D");
	cr_expect_eq(m.regions[5].len, 4);
	lcp_region_map_free(&m);

	/* min_size 24 keeps w (24 bytes) a tensor and makes b16 (8 bytes) exact. */
	fmt_parse_buf(b.data, b.len, 24, &m);
	cr_expect_eq(m.regions[1].kind, LCP_REGION_TENSOR);
	cr_expect_eq(m.regions[3].kind, LCP_REGION_EXACT);
	cr_expect_str_eq(m.regions[3].exact_reason, "under min_size");
	lcp_region_map_free(&m);
	lcp_buf_free(&b);
}

Test(format_safetensors, offsets_out_of_file_order_and_zero_sized)
{
	/* Entries listed in any order; a zero-element tensor adds no region. */
	const char *json = "{\"b\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[16,32]},"
			   "\"e\":{\"dtype\":\"F32\",\"shape\":[0,4],\"data_offsets\":[16,16]},"
			   "\"a\":{\"dtype\":\"F64\",\"shape\":[1,2],\"data_offsets\":[0,16]}}";
	struct lcp_buf b = LCP_BUF_INIT;
	fmt_build_st(&b, json, 32);
	struct lcp_region_map m;
	fmt_parse_buf(b.data, b.len, 0, &m);
	cr_assert(m.ok, "%s", m.reason);
	cr_assert_eq(m.nregions, 3);
	cr_expect_str_eq(m.regions[1].name, "a");
	cr_expect_eq(m.regions[1].dtype, LCP_DTYPE_F64);
	cr_expect_str_eq(m.regions[2].name, "b");
	lcp_region_map_free(&m);
	lcp_buf_free(&b);
}

Test(format_safetensors, header_padding_spaces_are_accepted)
{
	/* The reference writer pads the JSON with spaces to a multiple of 8. */
	const char *json = "{\"x\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[0,3]}}     ";
	struct lcp_buf b = LCP_BUF_INIT;
	fmt_build_st(&b, json, 3);
	struct lcp_region_map m;
	fmt_parse_buf(b.data, b.len, 0, &m);
	cr_expect(m.ok, "%s", m.reason);
	lcp_region_map_free(&m);
	lcp_buf_free(&b);
}

static void expect_bad(const char *json, size_t data_len, const char *needle)
{
	struct lcp_buf b = LCP_BUF_INIT;
	fmt_build_st(&b, json, data_len);
	fmt_expect_invalid(b.data, b.len, LCP_FORMAT_SAFETENSORS, needle);
	cr_expect_eq(lcp_format_detect(b.data, b.len), LCP_FORMAT_UNKNOWN);
	lcp_buf_free(&b);
}

Test(format_safetensors, overlap_gap_and_range_are_rejected)
{
	expect_bad("{\"x\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
		   "\"y\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[8,24]}}",
		   24, "safetensors: tensor 'y' data_offsets [8, 24) overlap 'x'");
	expect_bad("{\"x\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
		   "\"y\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[20,36]}}",
		   36, "gap [16, 20) before tensor 'y'");
	expect_bad("{\"x\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}", 8,
		   "past the data end 8");
	expect_bad("{\"x\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}", 20,
		   "4 bytes after the last tensor");
	expect_bad("{\"x\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,12]}}", 12,
		   "do not hold its shape");
	expect_bad("{\"x\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,4]}}", 8,
		   "end before begin");
	/* Identical ranges are an overlap too. */
	expect_bad("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
		   "\"y\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
		   8, "overlap");
}

Test(format_safetensors, bad_entries_are_rejected)
{
	expect_bad("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
		   "\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
		   16, "duplicate");
	{
		/* Not claimed as safetensors at all: the JSON must open with '{'. */
		struct lcp_buf b = LCP_BUF_INIT;
		fmt_build_st(&b, "[1,2]", 0);
		fmt_expect_invalid(b.data, b.len, LCP_FORMAT_UNKNOWN, "no known tensor format");
		lcp_buf_free(&b);
	}
	expect_bad("{\"x\":3}", 0, "entry 'x' is not an object");
	expect_bad("{\"x\":{\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[0,1]}}", 1, "unknown dtype 'Q4'");
	expect_bad("{\"x\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8,
		   "shape[0] is not a non-negative integer");
	expect_bad("{\"x\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]}}", 8, "shape[0]");
	expect_bad("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", 8, "[begin, end]");
	expect_bad("{\"x\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, "lacks dtype, shape or data_offsets");
	expect_bad("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"z\":1}}", 8,
		   "unexpected keys");
	expect_bad("{\"__metadata__\":{\"a\":1}}", 0, "__metadata__ 'a' is not a string");
	expect_bad("{\"__metadata__\":[]}", 0, "__metadata__ is not an object");
	expect_bad("{\"x\":{\"dtype\":\"U8\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,1]}}", 1,
		   "shape overflows");
	expect_bad("{\"x\": tru", 0, "header JSON");
	expect_bad("{} trailing", 0, "header JSON");
}

Test(format_safetensors, absurd_header_length)
{
	/* Longer than the file. */
	uint8_t b[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, '{', '}'};
	fmt_expect_invalid(b, sizeof b, LCP_FORMAT_SAFETENSORS, "exceeds the file");
	lcp_store_le64(b, 9);
	fmt_expect_invalid(b, sizeof b, LCP_FORMAT_SAFETENSORS, "header length 9 exceeds the file");
}

/* A 200 MiB "file" served without memory: a header length just over the
 * 100 MiB limit, '{', then spaces. */
#define HUGE_FILE_BYTES (200ull << 20)
#define OVER_LIMIT_HEADER ((100ull << 20) + 1)

static lcp_err huge_read(void *ctx, void *buf, size_t len, uint64_t off)
{
	(void)ctx;
	uint8_t *p = buf;
	for (size_t i = 0; i < len; i++) {
		uint64_t at = off + i;
		p[i] = at < 8 ? (uint8_t)(OVER_LIMIT_HEADER >> (8 * at)) : at == 8 ? '{' : ' ';
	}
	return LCP_OK;
}

Test(format_safetensors, header_over_the_limit_is_not_read)
{
	struct lcp_reader r = {HUGE_FILE_BYTES, huge_read, NULL};
	struct lcp_region_map m;
	cr_assert_eq(lcp_format_parse(&r, 0, &m), LCP_OK);
	fmt_check_invariants(&m, HUGE_FILE_BYTES);
	cr_expect_not(m.ok);
	cr_expect(strstr(m.reason, "over the") != NULL, "%s", m.reason);
	lcp_region_map_free(&m);
}

Test(format_safetensors, every_truncation_is_rejected)
{
	struct lcp_buf b = LCP_BUF_INIT;
	build_valid(&b);
	fmt_expect_truncations_rejected(b.data, b.len);
	lcp_buf_free(&b);
}

Test(format_safetensors, reader_errors_are_returned)
{
	/* An I/O error is not a validation failure: it reaches the caller. */
	struct lcp_reader r;
	struct lcp_region_map m;
	struct lcp_mem_source src = {(const uint8_t *)"x", 1};
	lcp_reader_from_memory(&r, &src);
	r.size = 64; /* lies about its size: reads fail with LCP_ERR_RANGE */
	cr_expect_eq(lcp_format_parse(&r, 0, &m), LCP_ERR_RANGE);
	cr_expect_eq(m.nregions, 0);
}

Test(format_safetensors, rotary_tables_stay_exact)
{
	/* Large enough and 2-D, but rotary tables are constants kept exact. */
	const char *json = "{\"freqs_cos\":{\"dtype\":\"F32\",\"shape\":[4,4],\"data_offsets\":[0,64]},"
			   "\"layers.0.rotary_emb.inv_freq_t\":{\"dtype\":\"F32\",\"shape\":[4,4],\"data_offsets\":[64,128]},"
			   "\"w\":{\"dtype\":\"F32\",\"shape\":[4,4],\"data_offsets\":[128,192]}}";
	struct lcp_buf b = LCP_BUF_INIT;
	fmt_build_st(&b, json, 192);
	struct lcp_region_map m;
	fmt_parse_buf(b.data, b.len, 16, &m);
	cr_assert(m.ok, "%s", m.reason);
	cr_assert_eq(m.nregions, 4);
	cr_expect_eq(m.regions[1].kind, LCP_REGION_EXACT);
	cr_expect_str_eq(m.regions[1].exact_reason, "positional table");
	cr_expect_eq(m.regions[2].kind, LCP_REGION_EXACT);
	cr_expect_str_eq(m.regions[2].exact_reason, "positional table");
	cr_expect_eq(m.regions[3].kind, LCP_REGION_TENSOR);
	cr_expect_str_eq(m.regions[3].name, "w");
	lcp_region_map_free(&m);
	lcp_buf_free(&b);
}

Test(format_safetensors, more_dims_than_we_record_stay_exact)
{
	/* Nine dims is valid safetensors: the file is ok, that tensor exact. */
	const char *json = "{\"x\":{\"dtype\":\"F32\",\"shape\":[2,1,1,1,1,1,1,1,2],\"data_offsets\":[0,16]},"
			   "\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[16,32]}}";
	struct lcp_buf b = LCP_BUF_INIT;
	fmt_build_st(&b, json, 32);
	struct lcp_region_map m;
	fmt_parse_buf(b.data, b.len, 0, &m);
	cr_assert(m.ok, "%s", m.reason);
	cr_assert_eq(m.nregions, 3);
	cr_expect_eq(m.regions[1].kind, LCP_REGION_EXACT);
	cr_expect_str_eq(m.regions[1].exact_reason, "too many dims");
	cr_expect_eq(m.regions[2].kind, LCP_REGION_TENSOR);
	lcp_region_map_free(&m);
	lcp_buf_free(&b);
}

/* The safetensors crate refuses a header over 10^8 bytes (MAX_HEADER_SIZE);
 * 100 MiB is more than that. Only the length field is read before. */
Test(format_safetensors, header_over_the_reference_limit_is_refused)
{
	const size_t n = 100000001;
	uint8_t *p = calloc(1, 8 + n);
	cr_assert_not_null(p);
	lcp_store_le64(p, n);
	p[8] = '{';
	memset(p + 9, ' ', n - 2);
	p[8 + n - 1] = '}';
	fmt_expect_invalid(p, 8 + n, LCP_FORMAT_SAFETENSORS, "header length 100000001 over the 100000000-byte limit");
	free(p);
}

/* Builds {"junk":[0,0,...]} with zeros elements: zeros + 3 JSON tokens
 * (the key, the object, the array). */
static void build_zeros(struct lcp_buf *b, size_t zeros)
{
	struct lcp_buf j = LCP_BUF_INIT;
	fmt_append_str(&j, "{\"junk\":[");
	for (size_t i = 0; i < zeros; i++)
		fmt_append_str(&j, i ? ",0" : "0");
	fmt_append_str(&j, "]}");
	fmt_append(&j, "", 1);
	fmt_build_st(b, (const char *)j.data, 0);
	lcp_buf_free(&j);
}

/* jansson would spend ~40 bytes per element of a huge array: the pre-scan
 * refuses a header of more than 2^20 tokens before it runs, and lets one
 * of exactly 2^20 through (jansson then rejects the entry for what it is). */
Test(format_safetensors, header_token_limit)
{
	const size_t limit = 1u << 20;
	struct lcp_buf b = LCP_BUF_INIT;
	build_zeros(&b, limit - 2);
	fmt_expect_invalid(b.data, b.len, LCP_FORMAT_SAFETENSORS,
			   "header JSON holds more than 1048576 keys and values");
	lcp_buf_free(&b);
	build_zeros(&b, limit - 3);
	fmt_expect_invalid(b.data, b.len, LCP_FORMAT_SAFETENSORS, "entry 'junk' is not an object");
	lcp_buf_free(&b);
}

Test(format_safetensors, header_nested_deeper_than_3_is_refused)
{
	struct lcp_buf b = LCP_BUF_INIT;
	fmt_build_st(&b, "{\"w\":{\"dtype\":\"F32\",\"shape\":[[2]],\"data_offsets\":[0,8]}}", 8);
	fmt_expect_invalid(b.data, b.len, LCP_FORMAT_SAFETENSORS, "nested deeper than 3");
	lcp_buf_free(&b);
}

/* Brackets and escaped quotes inside strings are no structure. */
Test(format_safetensors, prescan_skips_strings)
{
	const char *json = "{\"__metadata__\":{\"x\":\"[[[[{{\\\"]]\"},"
			   "\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}";
	struct lcp_buf b = LCP_BUF_INIT;
	fmt_build_st(&b, json, 16);
	struct lcp_region_map m;
	fmt_parse_buf(b.data, b.len, 0, &m);
	cr_assert(m.ok, "%s", m.reason);
	cr_expect_eq(m.nregions, 2);
	lcp_region_map_free(&m);
	lcp_buf_free(&b);
}
