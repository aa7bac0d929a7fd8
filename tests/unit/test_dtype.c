/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tensor dtypes: the seed's numbering (stored on disk), widths and names,
 * and rejection of values outside the enum. Ports the seed's
 * test_tensor_dtype_bits and test_tensor_dtype_from_u8.
 */
#include <criterion/criterion.h>

#include "lcpfs/dtype.h"

/* Seed: test_tensor_dtype_bits */
Test(dtype, seed_bits)
{
	cr_expect_eq(lcp_dtype_bits(LCP_DTYPE_F32), 32);
	cr_expect_eq(lcp_dtype_bits(LCP_DTYPE_F16), 16);
	cr_expect_eq(lcp_dtype_bits(LCP_DTYPE_BF16), 16);
	cr_expect_eq(lcp_dtype_bits(LCP_DTYPE_F64), 64);
	cr_expect_eq(lcp_dtype_bits(LCP_DTYPE_F8_E4M3), 8);
	cr_expect_eq(lcp_dtype_bits(LCP_DTYPE_F8_E5M2), 8);
}

/* Seed: test_tensor_dtype_from_u8 */
Test(dtype, seed_from_u8)
{
	enum lcp_dtype d = LCP_DTYPE_F64;

	cr_expect(lcp_dtype_from_u8(0, &d));
	cr_expect_eq(d, LCP_DTYPE_F32);
	cr_expect(lcp_dtype_from_u8(1, &d));
	cr_expect_eq(d, LCP_DTYPE_F16);
	d = LCP_DTYPE_BF16;
	cr_expect_not(lcp_dtype_from_u8(255, &d));
	cr_expect_eq(d, LCP_DTYPE_BF16, "out must be untouched on failure");
}

Test(dtype, numbering_is_pinned)
{
	cr_expect_eq(LCP_DTYPE_F32, 0);
	cr_expect_eq(LCP_DTYPE_F16, 1);
	cr_expect_eq(LCP_DTYPE_BF16, 2);
	cr_expect_eq(LCP_DTYPE_F64, 3);
	cr_expect_eq(LCP_DTYPE_F8_E4M3, 4);
	cr_expect_eq(LCP_DTYPE_F8_E5M2, 5);
	cr_expect_eq(LCP_DTYPE_COUNT, 6);
}

Test(dtype, from_u8_every_byte)
{
	for (unsigned v = 0; v < 256; v++) {
		enum lcp_dtype d = (enum lcp_dtype)99;
		bool ok = lcp_dtype_from_u8((uint8_t)v, &d);

		cr_expect_eq(ok, v < 6, "value %u", v);
		if (ok)
			cr_expect_eq((unsigned)d, v);
		else
			cr_expect_eq((unsigned)d, 99u);
	}
}

Test(dtype, bytes)
{
	cr_expect_eq(lcp_dtype_bytes(LCP_DTYPE_F32), 4);
	cr_expect_eq(lcp_dtype_bytes(LCP_DTYPE_F16), 2);
	cr_expect_eq(lcp_dtype_bytes(LCP_DTYPE_BF16), 2);
	cr_expect_eq(lcp_dtype_bytes(LCP_DTYPE_F64), 8);
	cr_expect_eq(lcp_dtype_bytes(LCP_DTYPE_F8_E4M3), 1);
	cr_expect_eq(lcp_dtype_bytes(LCP_DTYPE_F8_E5M2), 1);
}

Test(dtype, seed_names)
{
	cr_expect_str_eq(lcp_dtype_name(LCP_DTYPE_F32), "float32");
	cr_expect_str_eq(lcp_dtype_name(LCP_DTYPE_F16), "float16");
	cr_expect_str_eq(lcp_dtype_name(LCP_DTYPE_BF16), "bfloat16");
	cr_expect_str_eq(lcp_dtype_name(LCP_DTYPE_F64), "float64");
	cr_expect_str_eq(lcp_dtype_name(LCP_DTYPE_F8_E4M3), "float8_e4m3");
	cr_expect_str_eq(lcp_dtype_name(LCP_DTYPE_F8_E5M2), "float8_e5m2");
}

Test(dtype, out_of_range_values)
{
	enum lcp_dtype bad[] = {(enum lcp_dtype)6, (enum lcp_dtype)255, (enum lcp_dtype)-1};

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		cr_expect_eq(lcp_dtype_bits(bad[i]), 0);
		cr_expect_eq(lcp_dtype_bytes(bad[i]), 0);
		cr_expect_str_eq(lcp_dtype_name(bad[i]), "unknown");
	}
}
