/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Group quantization kernels: uniform grids with a per-group scale, stored as
 * a log-domain code relative to a per-tensor super-scale ("double
 * quantization"), searched for minimum squared error.
 *
 * A group reconstructs as  y[i] = sd * (float)((int)code[i] - off)  where
 *  - symmetric:  off = 2^(bits-1), sd = +/-scale (the aux byte is the sign,
 *    so the long side of the asymmetric-around-zero range [-8, 7] goes to
 *    the group's largest-magnitude element);
 *  - asymmetric: off = aux (an integer zero point in [0, 2^bits)), sd = scale.
 * "bits" is the width of the code symbols (4 or 8). The 4-bit-class
 * entropy-coded mode (lcp_quant_group_ecsq) uses 8-bit symbols with a step
 * chosen for rate, not range: see there.
 *
 * Scale codes: 8-bit codes with 16 steps per octave (scale_log2_steps 4,
 * 254 codes = 16 octaves below super) or 16-bit codes with 256 steps per
 * octave (scale_log2_steps 8: 0.27% steps, for 8-bit symbols where a 4%
 * scale step would cost more than the code's own precision). Code c > 0:
 * scale = super * 2^((c - cmax) / steps), cmax = 255 or 65535; code 0 means
 * scale 0 (an all-zero group). It is computed as one binary32 multiply by a
 * pinned constant and an exact ldexpf, so every machine gets the same
 * scales; the encoder searches over exactly these representable scales, so
 * storing them costs no extra error.
 */
#ifndef LCPFS_CODEC_QUANT_H
#define LCPFS_CODEC_QUANT_H

#include <stdbool.h>
#include <stdint.h>

struct lcp_qparams {
	uint8_t bits;             /* code symbol width: 4 or 8 */
	bool symmetric;
	uint8_t scale_log2_steps; /* 4 (8-bit scale codes) or 8 (16-bit) */
	float super;              /* per-tensor super-scale, finite, >= 0 */
};

/* Largest scale code for a grid (255 or 65535). */
uint16_t lcp_qscale_max(const struct lcp_qparams *p);

/* Scale magnitude for a code (0 -> 0); code must be <= lcp_qscale_max(p).
 * It is lcp_qscale_pow2(lcp_qscale_frac(p, k), oct) with e = max - code steps
 * below super, oct = ceil(e / steps), k = oct * steps - e; the two parts are
 * exposed so a decoder can tabulate the first per tensor. */
float lcp_qscale(const struct lcp_qparams *p, uint16_t code);
float lcp_qscale_frac(const struct lcp_qparams *p, unsigned k); /* k < steps */
float lcp_qscale_pow2(float v, unsigned oct); /* v * 2^-oct, exactly */

/* The super-scale for n values split into groups of group_size (last group
 * may be shorter): a little above the largest group's natural scale so the
 * search can also try scales larger than it. 0 when every value is 0. */
float lcp_quant_super(const float *x, uint64_t n, uint32_t group_size, uint8_t bits,
		      bool symmetric);

/* Quantizes one group of n (1..256) finite values: writes n codes, its scale
 * code and aux byte. Returns the group's squared error (float arithmetic). */
float lcp_quant_group(const float *x, uint32_t n, const struct lcp_qparams *p, uint8_t *codes,
		      uint16_t *scode, uint8_t *aux);

/*
 * Entropy-coded scalar quantization of one group (p: 8-bit symbols,
 * symmetric, 8-bit scale codes): the step is the representable scale nearest
 * to `step` (the caller derives it from the group's RMS), codes are
 * round(x / step) + 128 clamped to [0, 255], aux 0. With an entropy coder
 * behind it, a step that does not depend on the group's extremes spends bits
 * where the values are and keeps outliers at full precision instead of
 * stretching the grid for them. Returns the squared error.
 */
float lcp_quant_group_ecsq(const float *x, uint32_t n, const struct lcp_qparams *p, float step,
			   uint8_t *codes, uint16_t *scode, uint8_t *aux);

/* Reference dequantization: y[i] = sd * (float)((int)codes[i] - off). */
void lcp_dequant_ref(const uint8_t *codes, uint32_t n, float sd, int off, float *y);
/* The decoder's path: the same bits as lcp_dequant_ref, by a table of exact
 * small-integer floats (cheaper than an int conversion per element). */
void lcp_dequant(const uint8_t *codes, uint32_t n, float sd, int off, float *y);

#endif
