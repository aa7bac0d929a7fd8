/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tensor element types: widths and names, indexed by the seed's numbering.
 * One table so that bits, bytes and name can never disagree.
 */
#include "lcpfs/dtype.h"

#include <stddef.h>

struct dtype_info {
	unsigned bits;
	const char *name;
};

static const struct dtype_info dtypes[LCP_DTYPE_COUNT] = {
	[LCP_DTYPE_F32] = {32, "float32"},
	[LCP_DTYPE_F16] = {16, "float16"},
	[LCP_DTYPE_BF16] = {16, "bfloat16"},
	[LCP_DTYPE_F64] = {64, "float64"},
	[LCP_DTYPE_F8_E4M3] = {8, "float8_e4m3"},
	[LCP_DTYPE_F8_E5M2] = {8, "float8_e5m2"},
};

/* The enum's value may come from a cast of untrusted data: check the range
 * as unsigned so negative values are out of range too. */
static const struct dtype_info *lookup(enum lcp_dtype dtype)
{
	unsigned v = (unsigned)dtype;
	return v < LCP_DTYPE_COUNT ? &dtypes[v] : NULL;
}

unsigned lcp_dtype_bits(enum lcp_dtype dtype)
{
	const struct dtype_info *d = lookup(dtype);
	return d ? d->bits : 0;
}

unsigned lcp_dtype_bytes(enum lcp_dtype dtype)
{
	return lcp_dtype_bits(dtype) / 8;
}

const char *lcp_dtype_name(enum lcp_dtype dtype)
{
	const struct dtype_info *d = lookup(dtype);
	return d ? d->name : "unknown";
}

bool lcp_dtype_from_u8(uint8_t value, enum lcp_dtype *out)
{
	if (value >= LCP_DTYPE_COUNT)
		return false;
	*out = (enum lcp_dtype)value;
	return true;
}
