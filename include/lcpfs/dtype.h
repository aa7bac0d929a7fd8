/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tensor element types, numbered as the seed numbers them (the values are
 * stored in QLOR metadata blocks and must never change).
 */
#ifndef LCPFS_DTYPE_H
#define LCPFS_DTYPE_H

#include <stdbool.h>
#include <stdint.h>

enum lcp_dtype {
	LCP_DTYPE_F32 = 0,
	LCP_DTYPE_F16 = 1,
	LCP_DTYPE_BF16 = 2,
	LCP_DTYPE_F64 = 3,
	LCP_DTYPE_F8_E4M3 = 4,
	LCP_DTYPE_F8_E5M2 = 5,
};
#define LCP_DTYPE_COUNT 6

/* Width in bits (32, 16, 16, 64, 8, 8); 0 for a value outside the enum. */
unsigned lcp_dtype_bits(enum lcp_dtype dtype);
/* Width in bytes; 0 for a value outside the enum. */
unsigned lcp_dtype_bytes(enum lcp_dtype dtype);
/* Seed's lower-case name ("float32", "bfloat16", "float8_e4m3"...); "unknown"
 * for a value outside the enum. Static storage. */
const char *lcp_dtype_name(enum lcp_dtype dtype);
/* Converts a stored byte; false (and *out untouched) for an unknown value. */
bool lcp_dtype_from_u8(uint8_t value, enum lcp_dtype *out);

#endif
