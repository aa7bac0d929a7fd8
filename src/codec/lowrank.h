/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Low-rank approximation for the encoder: a rank-k fit W ~ U V^T by
 * randomized SVD. This is the only place in lcpfs that calls BLAS/LAPACK
 * (DESIGN.md: BLAS belongs to the encoder; decoding never needs it).
 */
#ifndef LCPFS_CODEC_LOWRANK_H
#define LCPFS_CODEC_LOWRANK_H

#include <stddef.h>
#include <stdint.h>

#include "lcpfs/err.h"

/* Columns added to the sketch beyond k (Halko-Martinsson-Tropp's p). */
#define LCP_LOWRANK_OVERSAMPLE 8u
/* Power iterations (each followed by QR re-orthonormalization). */
#define LCP_LOWRANK_POWER_ITERS 2u

/*
 * Rank-k approximation of the rows x cols row-major matrix w by randomized
 * SVD (Halko-Martinsson-Tropp: range finder with a Gaussian-like test matrix
 * of k + LCP_LOWRANK_OVERSAMPLE columns, LCP_LOWRANK_POWER_ITERS power
 * iterations with QR re-orthonormalization between them, QR, small SVD via
 * LAPACKE). When k + oversampling reaches min(rows, cols) the sketch would
 * span everything, so an exact SVD is computed instead.
 *
 * Writes u (rows x k, row-major, singular values folded in: column j is
 * sigma_j * u_j), vt (k x cols, row-major, orthonormal rows) and sv (the k
 * largest singular values, descending, >= 0). Buffers are caller-owned and
 * must not overlap w or each other. w is not modified.
 *
 * Requirements: 1 <= k <= min(rows, cols); rows, cols <= INT32_MAX; every
 * element of w finite (else LCP_ERR_INVAL). A zero matrix gives zero u and
 * sv (never NaN). Returns LCP_ERR_NOMEM when workspace allocation fails
 * (all allocation through lcp_malloc), LCP_ERR_UNSUPPORTED if LAPACK reports
 * a failure (e.g. the SVD did not converge); outputs are then unspecified.
 *
 * Deterministic: the test matrix comes from a fixed integer PRNG seeded by
 * seed, and OpenBLAS is put in single-threaded mode on first use (process
 * wide), so the same w, k and seed give identical bytes on the same machine.
 * Thread-safe (no shared mutable state beyond that one-time setting).
 */
lcp_err lcp_lowrank_fit(const float *w, uint32_t rows, uint32_t cols, uint32_t k, uint64_t seed,
			float *u, float *vt, float *sv);

/*
 * A quick lower estimate of the largest squared singular value of a
 * rows x cols row-major matrix W and the matching rank-1 fit, as steps a
 * caller can split by rows (W's row blocks are independent in each pass):
 * one step of block power iteration from a two-column test matrix,
 *   omega = lcp_lowrank_test2(seed)            (cols x 2)
 *   Y  = W omega          lcp_lowrank_times2   (rows x 2), then orth2(Y)
 *   Z  = W^T Y            lcp_lowrank_times2t  (per row block, summed), orth2(Z)
 *   Y2 = W Z              lcp_lowrank_times2
 *   lambda, u, v = lcp_lowrank_top2(Y2, Z): the top eigenpair (lambda, c)
 *     of Y2^T Y2, v = Z c (unit), u = Y2 c (= W v, that is sigma_1 u_1).
 * Three passes over W with two columns each (plain loops: too narrow for
 * BLAS), a few percent of lcp_lowrank_fit's cost; when sigma_1 stands out
 * (the only case in which a low-rank part can pay) lambda is within a few
 * percent of it. Two-column matrices are column-major (column 1 follows
 * column 0 at +rows or +cols); y arguments take their column stride.
 * Deterministic (fixed order of operations) and thread-safe.
 */
void lcp_lowrank_test2(float *omega, size_t cols, uint64_t seed);
void lcp_lowrank_orth2(float *a, size_t m);
/* y[i], y[ystride + i] = row i of w (rows x cols) times column 0, 1 of q. */
void lcp_lowrank_times2(const float *w, size_t rows, size_t cols, const float *q, float *y,
			size_t ystride);
/* z (cols x 2, overwritten) = w^T (y[0..rows), y[ystride..ystride+rows)). */
void lcp_lowrank_times2t(const float *w, size_t rows, size_t cols, const float *y,
			 size_t ystride, float *z);
/* Returns lambda; writes u (rows) and v (cols). */
double lcp_lowrank_top2(const float *y, size_t rows, const float *q2, size_t cols, float *u,
			float *v);

#endif
