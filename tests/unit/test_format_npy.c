/* SPDX-License-Identifier: Apache-2.0 */
/*
 * NumPy .npy parsing: header versions 1.0/2.0/3.0, C and Fortran order, the
 * dtypes that become tensors and those kept exact, strict header-dict
 * syntax, exact data length, and every truncation.
 */
#include <criterion/criterion.h>

#include "test_format_helpers.h"

/* Writes preamble + dict (dict_len bytes, NULs allowed) padded with spaces
 * and '\n' to a multiple of 64 (as numpy does), then data_len bytes. Returns
 * the data offset. */
static size_t build_npy_n(struct lcp_buf *b, int major, const char *dict, size_t dict_len, size_t data_len)
{
	size_t pre = major == 1 ? 10 : 12;
	size_t hl = dict_len + 1;
	while ((pre + hl) % 64)
		hl++;
	fmt_append(b, "\x93NUMPY", 6);
	lcp_buf_append_u8(b, (uint8_t)major);
	lcp_buf_append_u8(b, 0);
	if (major == 1)
		lcp_buf_append_le16(b, (uint16_t)hl);
	else
		lcp_buf_append_le32(b, (uint32_t)hl);
	fmt_append(b, dict, dict_len);
	fmt_append_fill(b, hl - dict_len - 1, ' ');
	fmt_append_str(b, "\n");
	for (size_t i = 0; i < data_len; i++)
		lcp_buf_append_u8(b, (uint8_t)i);
	return pre + hl;
}

static size_t build_npy(struct lcp_buf *b, int major, const char *dict, size_t data_len)
{
	return build_npy_n(b, major, dict, strlen(dict), data_len);
}

static void expect_region(int major, const char *dict, size_t data_len, enum lcp_region_kind kind,
			  const char *reason, uint32_t ndims, const uint64_t *dims)
{
	struct lcp_buf b = LCP_BUF_INIT;
	size_t off = build_npy(&b, major, dict, data_len);
	struct lcp_region_map m;
	fmt_parse_buf(b.data, b.len, 0, &m);
	cr_assert(m.ok, "%s: %s", dict, m.reason);
	cr_expect_eq(m.format, LCP_FORMAT_NUMPY);
	cr_assert_eq(m.nregions, 2);
	cr_expect_eq(m.regions[0].len, off);
	const struct lcp_region *r = &m.regions[1];
	cr_expect_eq(r->kind, kind, "%s", dict);
	cr_expect_eq(r->off, off);
	cr_expect_eq(r->len, data_len);
	cr_expect_str_eq(r->name, "array");
	if (reason)
		cr_expect_str_eq(r->exact_reason, reason, "%s", dict);
	cr_expect_eq(r->ndims, ndims, "%s", dict);
	for (uint32_t d = 0; d < ndims; d++)
		cr_expect_eq(r->dims[d], dims[d], "%s dim %u", dict, d);
	lcp_region_map_free(&m);
	lcp_buf_free(&b);
}

Test(format_npy, versions_orders_and_dtypes)
{
	const uint64_t d34[] = {3, 4}, d43[] = {4, 3}, d234[] = {2, 3, 4}, d432[] = {4, 3, 2};
	expect_region(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }", 48,
		      LCP_REGION_TENSOR, NULL, 2, d34);
	expect_region(2, "{'descr': '<f8', 'fortran_order': True, 'shape': (3, 4), }", 96,
		      LCP_REGION_TENSOR, NULL, 2, d43);
	expect_region(3, "{'descr': '<f2', 'fortran_order': True, 'shape': (2, 3, 4), }", 48,
		      LCP_REGION_TENSOR, NULL, 3, d432);
	expect_region(1, "{'shape': (2, 3, 4), 'fortran_order': False, 'descr': '<f2'}", 48,
		      LCP_REGION_TENSOR, NULL, 3, d234);
	expect_region(1, "{'descr': '>f4', 'fortran_order': False, 'shape': (3, 4), }", 48,
		      LCP_REGION_EXACT, "big-endian", 2, d34);
	expect_region(1, "{'descr': '<i4', 'fortran_order': False, 'shape': (3, 4), }", 48,
		      LCP_REGION_EXACT, "dtype not compressed", 2, d34);
	expect_region(1, "{'descr': '|V2', 'fortran_order': False, 'shape': (3, 4), }", 24,
		      LCP_REGION_EXACT, "dtype not compressed", 2, d34);
	const uint64_t d12[] = {12};
	expect_region(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (12,), }", 48,
		      LCP_REGION_EXACT, "1-D", 1, d12);
	expect_region(1, "{\"descr\": \"<U2\", \"fortran_order\": False, \"shape\": (12L,)}", 96,
		      LCP_REGION_EXACT, NULL, 1, d12);
	expect_region(1, "{'descr': '<M8[ns]', 'fortran_order': False, 'shape': (3, 4)}", 96,
		      LCP_REGION_EXACT, NULL, 2, d34);
}

Test(format_npy, empty_array_has_only_the_header)
{
	struct lcp_buf b = LCP_BUF_INIT;
	build_npy(&b, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 4), }", 0);
	struct lcp_region_map m;
	fmt_parse_buf(b.data, b.len, 0, &m);
	cr_expect(m.ok, "%s", m.reason);
	cr_expect_eq(m.nregions, 1);
	lcp_region_map_free(&m);
	lcp_buf_free(&b);
}

static void expect_bad_n(int major, const char *dict, size_t dict_len, size_t data_len, const char *needle)
{
	struct lcp_buf b = LCP_BUF_INIT;
	build_npy_n(&b, major, dict, dict_len, data_len);
	fmt_expect_invalid(b.data, b.len, LCP_FORMAT_NUMPY, needle);
	cr_expect_eq(lcp_format_detect(b.data, b.len), LCP_FORMAT_UNKNOWN);
	lcp_buf_free(&b);
}

static void expect_bad(int major, const char *dict, size_t data_len, const char *needle)
{
	expect_bad_n(major, dict, strlen(dict), data_len, needle);
}

/* A literal with its length, NULs included. */
#define LIT(s) (s), sizeof(s) - 1

/*
 * Headers numpy 1.24 refuses (np.load raises on each; checked there by
 * hand), with data sized so that only the header is wrong: we must refuse
 * them too, not read them our own way.
 */
Test(format_npy, headers_numpy_refuses_are_refused)
{
	/* Issue 8, item 12: a NUL inside descr ("source code string cannot
	 * contain null bytes"); as a C string it read as '<f4'. */
	expect_bad_n(1, LIT("{'descr': '<f4\0', 'fortran_order': False, 'shape': (2, 2), }"), 16, "bad 'descr'");
	expect_bad_n(1, LIT("{'descr\0': '<f4', 'fortran_order': False, 'shape': (2, 2), }"), 16, "bad key");
	expect_bad(1, "{'descr': '<f4\t', 'fortran_order': False, 'shape': (2, 2), }", 16, "bad 'descr'");
	expect_bad(3, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), '\xc3\xa9': 1}", 16, "bad key");
	/* Sizes a kind does not have, datetime units numpy does not know. */
	expect_bad(1, "{'descr': '<f3', 'fortran_order': False, 'shape': (2, 2), }", 12, "unsupported descr '<f3'");
	expect_bad(1, "{'descr': '<i3', 'fortran_order': False, 'shape': (2, 2), }", 12, "unsupported descr '<i3'");
	expect_bad(1, "{'descr': '<b2', 'fortran_order': False, 'shape': (2, 2), }", 8, "unsupported descr '<b2'");
	expect_bad(1, "{'descr': '<c4', 'fortran_order': False, 'shape': (2, 2), }", 16, "unsupported descr '<c4'");
	expect_bad(1, "{'descr': '<M4', 'fortran_order': False, 'shape': (4,), }", 16, "unsupported descr '<M4'");
	expect_bad(1, "{'descr': '<M8[foo]', 'fortran_order': False, 'shape': (2,), }", 16, "unsupported descr");
	expect_bad(1, "{'descr': '<M8[D]x', 'fortran_order': False, 'shape': (2,), }", 16, "unsupported descr");
	/* Python 3 refuses a leading zero; numpy strips the 'L' of a long only
	 * from 1.0 and 2.0 headers. */
	expect_bad(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (02, 2), }", 16, "bad 'shape'");
	expect_bad(3, "{'descr': '<f4', 'fortran_order': False, 'shape': (2L, 2), }", 16, "bad 'shape'");
	/* numpy.load's max_header_size: 10000 bytes. */
	char big[10100];
	snprintf(big, sizeof big, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), %*s}", 10000, "");
	expect_bad(2, big, 16, "over the limit");
}

/* The same spellings numpy takes are still taken. */
Test(format_npy, headers_numpy_takes_are_taken)
{
	const uint64_t d2[] = {2}, d22[] = {2, 2};
	struct lcp_buf b = LCP_BUF_INIT;
	build_npy(&b, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (00, 2), }", 0);
	struct lcp_region_map m;
	fmt_parse_buf(b.data, b.len, 0, &m);
	cr_expect(m.ok, "%s", m.reason);
	lcp_region_map_free(&m);
	lcp_buf_free(&b);
	expect_region(1, "{'descr': '<M8[10ms]', 'fortran_order': False, 'shape': (2,), }", 16,
		      LCP_REGION_EXACT, NULL, 1, d2);
	expect_region(2, "{'descr': '<f16', 'fortran_order': False, 'shape': (2, 2), }", 64,
		      LCP_REGION_EXACT, "dtype not compressed", 2, d22);
	expect_region(1, "{'descr': '>b1', 'fortran_order': False, 'shape': (2, 2), }", 4,
		      LCP_REGION_EXACT, "dtype not compressed", 2, d22);
	expect_region(1, "{'descr': '<M8', 'fortran_order': False, 'shape': (2,), }", 16,
		      LCP_REGION_EXACT, NULL, 1, d2);
}

Test(format_npy, wrong_data_size_is_rejected)
{
	expect_bad(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }", 47,
		   "data is 47 bytes, shape and descr '<f4' need 48");
	expect_bad(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }", 52, "need 48");
	expect_bad(2, "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }", 4,
		   "shape overflows");
}

Test(format_npy, bad_header_dicts_are_rejected)
{
	expect_bad(1, "{'descr': '<f4', 'fortran_order': False}", 4, "lacks descr");
	expect_bad(1, "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': ()}", 4,
		   "duplicate 'descr'");
	expect_bad(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (), 'x': 1}", 4, "unexpected key");
	expect_bad(1, "{'descr': '<f4', 'fortran_order': false, 'shape': ()}", 4, "bad 'fortran_order'");
	expect_bad(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4)}", 16, "bad 'shape'");
	expect_bad(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (-4,)}", 16, "bad 'shape'");
	expect_bad(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1)}", 4, "too many dims");
	expect_bad(1, "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,)}", 4, "structured");
	expect_bad(1, "{'descr': '|O', 'fortran_order': False, 'shape': (1,)}", 8, "unsupported descr '|O'");
	expect_bad(1, "{'descr': '<q9', 'fortran_order': False, 'shape': (1,)}", 9, "unsupported descr");
	expect_bad(1, "{'descr': '<f4' 'fortran_order': False, 'shape': (1,)}", 4, "missing ','");
	expect_bad(1, "('descr', '<f4')", 4, "not a dict");
	expect_bad(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,)} x", 4, "after the header dict");
	expect_bad(1, "{'descr': '<f\\4', 'fortran_order': False, 'shape': (1,)}", 4, "bad 'descr'");
}

Test(format_npy, bad_preambles_are_rejected)
{
	struct lcp_buf b = LCP_BUF_INIT;
	build_npy(&b, 4, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,)}", 4);
	fmt_expect_invalid(b.data, b.len, LCP_FORMAT_NUMPY, "unknown header version 4.0");
	b.data[6] = 1;
	b.data[7] = 1;
	fmt_expect_invalid(b.data, b.len, LCP_FORMAT_NUMPY, "unknown header version 1.1");
	lcp_buf_free(&b);
	build_npy(&b, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,)}", 4);
	lcp_store_le16(b.data + 8, 0xffff);
	fmt_expect_invalid(b.data, b.len, LCP_FORMAT_NUMPY, "header length 65535 exceeds the file");
	lcp_buf_free(&b);
}

Test(format_npy, every_truncation_is_rejected)
{
	for (int major = 1; major <= 3; major++) {
		struct lcp_buf b = LCP_BUF_INIT;
		build_npy(&b, major, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", 24);
		fmt_expect_truncations_rejected(b.data, b.len);
		lcp_buf_free(&b);
	}
}
