/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Low-rank approximation for the encoder: a rank-k fit W ~ U V^T by
 * randomized SVD. This is the only place in lcpfs that calls BLAS/LAPACK
 * (DESIGN.md: BLAS belongs to the encoder; decoding never needs it).
 */
#ifndef LCPFS_CODEC_LOWRANK_H
#define LCPFS_CODEC_LOWRANK_H

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
 * A quick lower estimate of the largest squared singular value of the
 * rows x cols row-major matrix w (finite, rows and cols >= 2), and the
 * matching rank-1 fit: one step of block power iteration from a two-column
 * test matrix (from seed): Y = W Omega, Q = orth(Y), Q2 = orth(W^T Q), then
 * the top eigenpair (lambda, c) of (W Q2)^T (W Q2): *sigma1_sq = lambda,
 * v = Q2 c (cols, unit norm), u = W v (rows, that is sigma_1 u_1). Three
 * passes over w with two columns each (plain loops: too narrow for BLAS),
 * a few percent of lcp_lowrank_fit's cost. When sigma_1 stands out (the only case in which a low-rank part can
 * pay) the estimate is within a few percent of it. u and v are
 * caller-owned. Deterministic and thread-safe like lcp_lowrank_fit.
 * LCP_ERR_NOMEM when a workspace cannot be allocated.
 */
lcp_err lcp_lowrank_top_estimate(const float *w, uint32_t rows, uint32_t cols, uint64_t seed,
				 double *sigma1_sq, float *u, float *v);

#endif
