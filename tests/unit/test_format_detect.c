/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Format detection and names, ported from the seed's test_tensor_format_detection
 * and test_tensor_format_extension. Deliberate change: the seed decided from
 * two to eight magic bytes, so its 8-byte stubs ("GGUF\0\0\0\0", "PK\3\4...")
 * were "detected"; lcpfs detects by validating the whole header (issue 2), so
 * those stubs must now come out UNKNOWN, and the smallest VALID file of each
 * format must be detected instead.
 */
#include <criterion/criterion.h>

#include "test_format_helpers.h"

Test(format_detect, seed_stubs_are_now_rejected)
{
	static const uint8_t gguf[] = "GGUF\0\0\0\0";
	static const uint8_t ggml[] = "GGML\0\0\0\0";
	static const uint8_t numpy[] = {0x93, 'N', 'U', 'M', 'P', 'Y', 0, 0};
	static const uint8_t pytorch[] = "PK\x03\x04\0\0\0\0";
	static const uint8_t unknown[] = "UNKNOWN_";
	cr_expect_eq(lcp_format_detect(gguf, 8), LCP_FORMAT_UNKNOWN);
	cr_expect_eq(lcp_format_detect(ggml, 8), LCP_FORMAT_UNKNOWN);
	cr_expect_eq(lcp_format_detect(numpy, 8), LCP_FORMAT_UNKNOWN);
	cr_expect_eq(lcp_format_detect(pytorch, 8), LCP_FORMAT_UNKNOWN);
	cr_expect_eq(lcp_format_detect(unknown, 8), LCP_FORMAT_UNKNOWN);
	cr_expect_eq(lcp_format_detect("short", 5), LCP_FORMAT_UNKNOWN);
	cr_expect_eq(lcp_format_detect("", 0), LCP_FORMAT_UNKNOWN);
	/* The seed's safetensors rule: any length < 1e6 followed by '{'. */
	static const uint8_t st_stub[] = {5, 0, 0, 0, 0, 0, 0, 0, '{', 'x', 'x', 'x', 'x', 0, 0, 0};
	cr_expect_eq(lcp_format_detect(st_stub, sizeof st_stub), LCP_FORMAT_UNKNOWN);
}

Test(format_detect, smallest_valid_files)
{
	/* safetensors: header "{}" and an empty data section. */
	static const uint8_t st[] = {2, 0, 0, 0, 0, 0, 0, 0, '{', '}'};
	cr_expect_eq(lcp_format_detect(st, sizeof st), LCP_FORMAT_SAFETENSORS);

	/* GGUF v3, no tensors, no key-values. */
	static const uint8_t gguf[24] = {'G', 'G', 'U', 'F', 3};
	cr_expect_eq(lcp_format_detect(gguf, sizeof gguf), LCP_FORMAT_GGUF);

	/* Legacy unversioned ggml: magic 0x67676d6c little-endian, n_vocab = 1,
	 * then a vocab entry of length 0. */
	static const uint8_t ggml[] = {'l', 'm', 'g', 'g', 1, 0, 0, 0, 0, 0, 0, 0};
	cr_expect_eq(lcp_format_detect(ggml, sizeof ggml), LCP_FORMAT_GGML);

	/* .npy 1.0 of one float32 scalar. */
	struct lcp_buf npy = LCP_BUF_INIT;
	const char *dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (), }";
	fmt_append(&npy, "\x93NUMPY\x01\x00", 8);
	lcp_buf_append_le16(&npy, (uint16_t)(strlen(dict) + 1));
	fmt_append_str(&npy, dict);
	fmt_append_str(&npy, "\n");
	fmt_append_fill(&npy, 4, 0);
	cr_expect_eq(lcp_format_detect(npy.data, npy.len), LCP_FORMAT_NUMPY);
	lcp_buf_free(&npy);

	/* torch.save({}): a zip holding archive/data.pkl. */
	struct lcp_buf pt = LCP_BUF_INIT;
	struct fmt_zip_entry e[] = {{"archive/data.pkl", fmt_empty_pickle, sizeof fmt_empty_pickle, 0}};
	fmt_build_zip(&pt, e, 1, true, true, NULL);
	cr_expect_eq(lcp_format_detect(pt.data, pt.len), LCP_FORMAT_PYTORCH);
	lcp_buf_free(&pt);
}

Test(format_detect, zip_without_data_pkl_is_not_pytorch)
{
	struct lcp_buf z = LCP_BUF_INIT;
	struct fmt_zip_entry e[] = {{"archive/readme.txt", "hello", 5, 0}};
	fmt_build_zip(&z, e, 1, false, false, NULL);
	cr_expect_eq(lcp_format_detect(z.data, z.len), LCP_FORMAT_UNKNOWN);
	fmt_expect_invalid(z.data, z.len, LCP_FORMAT_UNKNOWN, "without data.pkl");
	lcp_buf_free(&z);
}

Test(format_detect, ggml_needs_known_version_and_plausible_vocab)
{
	/* 'ggjt' v3 is fine, v4 is not; n_vocab that cannot fit is not. */
	static const uint8_t ggjt3[] = {'t', 'j', 'g', 'g', 3, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0};
	static const uint8_t ggjt4[] = {'t', 'j', 'g', 'g', 4, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0};
	static const uint8_t big_vocab[] = {'l', 'm', 'g', 'g', 0xff, 0xff, 0, 0, 0, 0, 0, 0};
	cr_expect_eq(lcp_format_detect(ggjt3, sizeof ggjt3), LCP_FORMAT_GGML);
	cr_expect_eq(lcp_format_detect(ggjt4, sizeof ggjt4), LCP_FORMAT_UNKNOWN);
	cr_expect_eq(lcp_format_detect(big_vocab, sizeof big_vocab), LCP_FORMAT_UNKNOWN);
	/* Valid GGML is kept whole and exact, with ok = true. */
	struct lcp_region_map m;
	fmt_parse_buf(ggjt3, sizeof ggjt3, 0, &m);
	cr_expect(m.ok);
	cr_expect_eq(m.format, LCP_FORMAT_GGML);
	cr_expect_eq(m.nregions, 1);
	cr_expect_eq(m.regions[0].kind, LCP_REGION_EXACT);
	lcp_region_map_free(&m);
}

Test(format_detect, extension)
{
	cr_expect_str_eq(lcp_format_extension(LCP_FORMAT_SAFETENSORS), ".safetensors");
	cr_expect_str_eq(lcp_format_extension(LCP_FORMAT_GGUF), ".gguf");
	cr_expect_str_eq(lcp_format_extension(LCP_FORMAT_PYTORCH), ".pt");
	cr_expect_str_eq(lcp_format_extension(LCP_FORMAT_GGML), ".ggml");
	cr_expect_str_eq(lcp_format_extension(LCP_FORMAT_NUMPY), ".npy");
	cr_expect_str_eq(lcp_format_extension(LCP_FORMAT_RAW), ".bin");
	cr_expect_str_eq(lcp_format_extension(LCP_FORMAT_UNKNOWN), "");
	cr_expect_str_eq(lcp_format_extension((enum lcp_format)99), "");
}

Test(format_detect, names)
{
	cr_expect_str_eq(lcp_format_name(LCP_FORMAT_SAFETENSORS), "safetensors");
	cr_expect_str_eq(lcp_format_name(LCP_FORMAT_GGUF), "gguf");
	cr_expect_str_eq(lcp_format_name(LCP_FORMAT_GGML), "ggml");
	cr_expect_str_eq(lcp_format_name(LCP_FORMAT_PYTORCH), "pytorch");
	cr_expect_str_eq(lcp_format_name(LCP_FORMAT_NUMPY), "numpy");
	cr_expect_str_eq(lcp_format_name(LCP_FORMAT_RAW), "raw");
	cr_expect_str_eq(lcp_format_name(LCP_FORMAT_UNKNOWN), "unknown");
	cr_expect_str_eq(lcp_format_name((enum lcp_format)99), "unknown");
}

Test(format_detect, empty_file_has_no_regions)
{
	struct lcp_region_map m;
	fmt_parse_buf("", 0, 0, &m);
	cr_expect_not(m.ok);
	cr_expect_eq(m.format, LCP_FORMAT_UNKNOWN);
	cr_expect_eq(m.nregions, 0);
	lcp_region_map_free(&m);
}
