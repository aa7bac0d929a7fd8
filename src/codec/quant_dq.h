/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The parts of dependent quantization's Viterbi search (quant.h,
 * lcp_quant_dq_block) that have AVX2 and AVX-512 forms in quant_dq_x86.c;
 * internal to src/codec. The search runs the 16 chains of a block side by
 * side, one step (16 elements) at a time; every form performs the scalar
 * search's operations (quant.c, dq_step1) lane by lane, in the same order,
 * so all give the same codes, ties included.
 *
 * Workspace of a block of n elements (lcp_quant_dq_work_bytes): dl and il,
 * the half-step D of each element and 1 / D (0 when D is 0), as floats;
 * dec, one byte per element: the search's decision bits, then the
 * element's class once the codes are read back; cand, four bytes per
 * element: the candidate codes k (signed) of the four (class, parity)
 * pairs j = 2q + p. In whole steps searched by the vector forms, step t
 * keeps them at cand + 64 t + 16 j + l (l: chain); the scalar and SSE2
 * forms, and every form for the block's last partial step, at
 * cand + 4 (i & ~3) + 4 j + (i & 3) for element i.
 */
#ifndef LCPFS_CODEC_QUANT_DQ_H
#define LCPFS_CODEC_QUANT_DQ_H

#include <stdint.h>

#include "codec/quant.h"

/* |x / D| is clamped here before the levels are chosen: every candidate
 * level then has |k| <= 127 (level 253 of class 1 is k = 127). */
#define DQ_MAX_V 250.0f

/* The states' least squared errors so far: c[s][l] for state s of chain l. */
typedef float lcp_dq_costs[4][LCP_DQ_CHAINS];

#if defined(__x86_64__) && defined(__GNUC__)
#define LCP_HAVE_DQ_X86 1
/*
 * Forward pass over whole steps 0 .. steps - 1 of x (16 elements each):
 * updates the costs c, writes dec (decision bits) and cand (whole-step
 * layout) of those elements. Only on CPUs with the instructions
 * (lcp_quant_dq_search_available).
 */
void lcp_dq_forward_avx2(const float *x, const float *dl, const float *il, uint32_t steps,
			 lcp_dq_costs c, uint8_t *dec, int8_t *cand);
void lcp_dq_forward_avx512(const float *x, const float *dl, const float *il, uint32_t steps,
			   lcp_dq_costs c, uint8_t *dec, int8_t *cand);
/*
 * Read-back over whole steps steps - 1 down to 0, from the chains' states
 * st after them: codes (128 + k) of those elements, dec turned into their
 * classes, st into the states before step 0.
 */
void lcp_dq_backward_avx2(uint32_t steps, uint32_t st[LCP_DQ_CHAINS], uint8_t *dec,
			  const int8_t *cand, uint8_t *codes);
void lcp_dq_backward_avx512(uint32_t steps, uint32_t st[LCP_DQ_CHAINS], uint8_t *dec,
			    const int8_t *cand, uint8_t *codes);
#endif

#endif
