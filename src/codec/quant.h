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
 * "bits" is the width of the code symbols (4 or 8). The entropy-coded
 * 4-bit class uses 8-bit symbols with a step chosen for rate, not range:
 * scalar rounding (params version 2, still read) or dependent quantization
 * (below).
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
#include <stddef.h>
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
 * Dependent quantization (the 4-bit class since params version 3; the
 * on-disk contract, also in codec_format.h and man/lcpfs.5). Two
 * interleaved scalar quantizers with half-step D share the code k (the
 * symbol minus 128): class 0 reconstructs 2k D, class 1 (2k - sgn(k)) D, so
 * class 0 holds the even multiples of D and class 1 zero and the odd ones.
 * Which class an element uses follows from the parities of the codes before
 * it: the elements of each rANS block (B elements from the chunk's start)
 * are dealt round-robin to LCP_DQ_CHAINS chains (element i of the block to
 * chain i mod 16); along a chain a state s in 0..3 starts at 0, the element
 * uses class s >> 1, and its code moves the state to
 * lcp_dq_next(s, k & 1). The encoder picks the codes of a whole chain
 * jointly (a Viterbi search for the least squared error), which reaches
 * the same error as plain rounding with a coarser step: fewer bits.
 * Chains 16 elements apart map onto the 16 rANS lanes, so a SIMD decoder
 * walks 16 states side by side.
 */
#define LCP_DQ_CHAINS 16u

/* Next state after a code of parity p (0 or 1) in state s (0..3): the
 * table {{0, 2}, {2, 0}, {1, 3}, {3, 1}}, i.e. s' = (s >> 1 | ((s & 1) ^ p)
 * << 1): the new class bit is the old low bit xor p, the new low bit the
 * old class bit. */
static inline unsigned lcp_dq_next(unsigned s, unsigned p)
{
	static const uint8_t next[4][2] = {{0, 2}, {2, 0}, {1, 3}, {3, 1}};
	return next[s & 3][p & 1];
}

/* The scale code whose scale is nearest to `step` (log distance on the
 * grid of p, code >= 1), and that scale in *scale; 0 and *scale = 0 when
 * step or p->super is 0 or the scale underflows. */
uint16_t lcp_quant_scale_code(const struct lcp_qparams *p, float step, float *scale);

/* Workspace bytes lcp_quant_dq_block needs for n elements. */
size_t lcp_quant_dq_work_bytes(uint32_t n);

/*
 * Dependent quantization of the n elements of one block (its chains start
 * at element 0): element i has half-step delta[(phase + i) / group_size]
 * (>= 0; 0 forces code 128), finite |x| / delta up to a bound past which
 * codes saturate at +-127. Writes n codes (k + 128); work holds
 * lcp_quant_dq_work_bytes(n) bytes, 16-byte aligned. Returns the squared
 * error. Deterministic: the same inputs give the same codes on any
 * machine.
 */
float lcp_quant_dq_block(const float *x, uint32_t n, const float *delta, uint32_t group_size,
			 uint32_t phase, uint8_t *codes, void *work);

/*
 * The forms of the search: plain C, then SSE2, AVX2 and AVX-512 with 4, 8
 * and 16 chains per vector operation (quant_dq.h). Every form gives the same codes
 * and the same error on every machine, so the payload bytes never depend on
 * the CPU; only the speed does.
 */
enum lcp_dq_search {
	LCP_DQ_SEARCH_NONE = -1,
	LCP_DQ_SEARCH_SCALAR,
	LCP_DQ_SEARCH_SSE2,
	LCP_DQ_SEARCH_AVX2,
	LCP_DQ_SEARCH_AVX512,
};
/* Whether this build and CPU can run form. Thread-safe. */
bool lcp_quant_dq_search_available(enum lcp_dq_search form);
/* The form called name ("scalar", "sse2", "avx2", "avx512"), or
 * LCP_DQ_SEARCH_NONE when unknown or unavailable here. Thread-safe. */
enum lcp_dq_search lcp_quant_dq_search_named(const char *name);
/* form's name as above ("none" for anything else); a static string. */
const char *lcp_quant_dq_search_name(enum lcp_dq_search form);
/* The form lcp_quant_dq_block runs: the one named by the environment
 * variable LCPFS_DQ_SEARCH when available, else the fastest this CPU has.
 * Chosen once; thread-safe. */
enum lcp_dq_search lcp_quant_dq_search(void);
/* lcp_quant_dq_block through form, which must be available (tests and
 * benchmarks compare the forms with it). */
float lcp_quant_dq_block_with(enum lcp_dq_search form, const float *x, uint32_t n,
			      const float *delta, uint32_t group_size, uint32_t phase,
			      uint8_t *codes, void *work);

/* Reconstruction level L = 2k - sgn(k) * cls of code c (k = c - 128) in
 * class cls (0 or 1): y = D * (float)L. */
static inline int lcp_dq_level(uint8_t c, unsigned cls)
{
	int k = (int)c - 128;
	return 2 * k - (cls ? (k > 0) - (k < 0) : 0);
}

/* Reference dequantization: y[i] = sd * (float)((int)codes[i] - off). */
void lcp_dequant_ref(const uint8_t *codes, uint32_t n, float sd, int off, float *y);
/* The decoder's path: the same bits as lcp_dequant_ref, by a table of exact
 * small-integer floats (cheaper than an int conversion per element). */
void lcp_dequant(const uint8_t *codes, uint32_t n, float sd, int off, float *y);
/* Dependent quantization: y[i] = sd * (float)(2k - sgn(k) * cls[i]), k =
 * codes[i] - off; the reference, and the decoder's path (same bits). */
void lcp_dequant_dq_ref(const uint8_t *codes, const uint8_t *cls, uint32_t n, float sd, int off,
			float *y);
void lcp_dequant_dq(const uint8_t *codes, const uint8_t *cls, uint32_t n, float sd, int off,
		    float *y);

#endif
