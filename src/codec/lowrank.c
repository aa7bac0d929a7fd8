/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Randomized SVD (Halko, Martinsson and Tropp, "Finding structure with
 * randomness", 2011: algorithm 4.4 with QR between power iterations, then
 * algorithm 5.1) on top of OpenBLAS and LAPACKE. The only file that includes
 * cblas.h / lapacke.h.
 *
 * Layout trick: BLAS/LAPACK work in column-major order, and a row-major
 * rows x cols matrix W is, byte for byte, the column-major cols x rows matrix
 * W^T. So everything here is written column-major with W used through a
 * transpose flag: no copies of W, and LAPACKE never has to transpose (its
 * row-major wrappers would allocate behind lcp_malloc's back). Workspaces are
 * sized by LAPACK's own queries and allocated through lcp_malloc, so the
 * allocation-failure tests reach every path.
 */
#include "codec/lowrank.h"

#include <math.h>
#include <pthread.h>
#include <stddef.h>
#include <string.h>

#include <cblas.h>
#include <lapacke.h>

#include "common/alloc.h"

static pthread_once_t blas_once = PTHREAD_ONCE_INIT;

/* OpenBLAS's threaded kernels split sums differently with the thread count,
 * which would make the payload depend on the machine's load; one thread
 * makes every sgemm a fixed sequence of operations. */
static void blas_single_thread(void)
{
	openblas_set_num_threads(1);
}

static uint64_t splitmix64(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/*
 * Test matrix entries: the sum of four 16-bit uniforms (Irwin-Hall), centred
 * and scaled to unit variance. The range finder only needs a random,
 * rotation-agnostic sketch; this one is computed in integers, so unlike a
 * Box-Muller transform through libm's log/cos it is the same on every libm.
 */
static void fill_test_matrix(float *omega, size_t n, uint64_t seed)
{
	/* Var of a discrete uniform on 0..65535 is (65536^2 - 1)/12; four of
	 * them: (65536^2 - 1)/3, std ~ 37837.23. */
	const float inv_std = 1.0f / 37837.23f;
	uint64_t state = seed;
	for (size_t i = 0; i < n; i++) {
		uint64_t r = splitmix64(&state);
		int32_t sum = (int32_t)(r & 0xffff) + (int32_t)((r >> 16) & 0xffff) +
			      (int32_t)((r >> 32) & 0xffff) + (int32_t)(r >> 48);
		omega[i] = (float)(sum - 2 * 65535) * inv_std;
	}
}

static lcp_err lapack_err(lapack_int info)
{
	if (info == LAPACK_WORK_MEMORY_ERROR || info == LAPACK_TRANSPOSE_MEMORY_ERROR)
		return LCP_ERR_NOMEM;
	return info == 0 ? LCP_OK : LCP_ERR_UNSUPPORTED;
}

/* Workspace (in floats) that LAPACK asks for, 0 on a failed query. LAPACK
 * returns the size as a float, which above 2^24 may have been rounded down:
 * a small relative margin covers that. */
static size_t lwork_from(float q)
{
	return (size_t)((double)q * (1.0 + 1.0 / 1048576.0)) + 64;
}

static size_t query_geqrf(lapack_int m, lapack_int n)
{
	float q = 0.0f;
	if (LAPACKE_sgeqrf_work(LAPACK_COL_MAJOR, m, n, NULL, m, NULL, &q, -1) != 0)
		return 0;
	return lwork_from(q);
}

static size_t query_orgqr(lapack_int m, lapack_int n)
{
	float q = 0.0f;
	if (LAPACKE_sorgqr_work(LAPACK_COL_MAJOR, m, n, n, NULL, m, NULL, &q, -1) != 0)
		return 0;
	return lwork_from(q);
}

static size_t query_gesdd(lapack_int m, lapack_int n, lapack_int ldvt)
{
	float q = 0.0f;
	lapack_int iw = 0;
	if (LAPACKE_sgesdd_work(LAPACK_COL_MAJOR, 'S', m, n, NULL, m, NULL, NULL, m, NULL, ldvt,
				&q, -1, &iw) != 0)
		return 0;
	return lwork_from(q);
}

/* Replaces the m x s column-major y (m >= s) by an orthonormal basis of its
 * column space (Householder QR: stays orthonormal even when y is rank
 * deficient or zero, where tau = 0 leaves identity columns). */
static lcp_err orthonormalize(float *y, lapack_int m, lapack_int s, float *tau, float *work,
			      size_t lwork)
{
	lapack_int info = LAPACKE_sgeqrf_work(LAPACK_COL_MAJOR, m, s, y, m, tau, work,
					      (lapack_int)lwork);
	if (info == 0)
		info = LAPACKE_sorgqr_work(LAPACK_COL_MAJOR, m, s, s, y, m, tau, work,
					   (lapack_int)lwork);
	return lapack_err(info);
}

/* Thin SVD of the column-major m x n matrix a (destroyed): a = U diag(sv) VT
 * with U m x min, VT min x n (leading dimension ldvt). */
static lcp_err thin_svd(float *a, lapack_int m, lapack_int n, float *sv, float *uu, float *vt,
			lapack_int ldvt, float *work, size_t lwork, lapack_int *iwork)
{
	lapack_int info = LAPACKE_sgesdd_work(LAPACK_COL_MAJOR, 'S', m, n, a, m, sv, uu, m, vt,
					      ldvt, work, (lapack_int)lwork, iwork);
	return lapack_err(info);
}

/*
 * Small matrices (min(rows, cols) <= k + oversampling): the sketch would be
 * the whole space, so take the exact thin SVD of W^T (cols x rows,
 * column-major = w as given): W^T = V diag(sv) U^T.
 */
static lcp_err fit_exact(const float *w, lapack_int m, lapack_int n, uint32_t k, float *u,
			 float *vt, float *sv)
{
	lapack_int mn = m < n ? m : n;
	size_t lwork = query_gesdd(n, m, mn);
	float *a = lcp_malloc((size_t)m * (size_t)n * sizeof *a);
	float *v = lcp_malloc((size_t)n * (size_t)mn * sizeof *v);
	float *ut = lcp_malloc((size_t)mn * (size_t)m * sizeof *ut);
	float *s = lcp_malloc((size_t)mn * sizeof *s);
	float *work = lcp_malloc((lwork ? lwork : 1) * sizeof *work);
	lapack_int *iwork = lcp_malloc(8 * (size_t)mn * sizeof *iwork);
	lcp_err err = LCP_OK;
	if (!a || !v || !ut || !s || !work || !iwork) {
		err = LCP_ERR_NOMEM;
		goto out;
	}
	if (lwork == 0) {
		err = LCP_ERR_UNSUPPORTED;
		goto out;
	}
	memcpy(a, w, (size_t)m * (size_t)n * sizeof *a);
	err = thin_svd(a, n, m, s, v, ut, mn, work, lwork, iwork);
	if (err)
		goto out;
	/* v is cols x mn: its column j is row j of V^T. ut is mn x rows:
	 * element (j, i) is U[i][j]. */
	for (uint32_t j = 0; j < k; j++) {
		sv[j] = s[j];
		memcpy(vt + (size_t)j * (size_t)n, v + (size_t)j * (size_t)n,
		       (size_t)n * sizeof *vt);
	}
	for (size_t i = 0; i < (size_t)m; i++)
		for (uint32_t j = 0; j < k; j++)
			u[i * k + j] = ut[j + i * (size_t)mn] * s[j];
out:
	lcp_free(a);
	lcp_free(v);
	lcp_free(ut);
	lcp_free(s);
	lcp_free(work);
	lcp_free(iwork);
	return err;
}

/*
 * The randomized path, s = k + oversampling < min(m, n). Names follow HMT
 * with A = W (m x n); A itself is only ever touched through sgemm as the
 * column-major n x m matrix w with a transpose flag.
 *   Y = A Omega, Q = qr(Y); repeat: Z = qr(A^T Q), Q = qr(A Z);
 *   B^T = A^T Q (n x s) = V S Ub^T  =>  A ~ Q B = (Q Ub) S V^T.
 */
static lcp_err fit_randomized(const float *w, lapack_int m, lapack_int n, uint32_t k,
			      lapack_int s, uint64_t seed, float *u, float *vt, float *sv)
{
	size_t lwork = query_geqrf(m, s);
	size_t l2 = query_orgqr(m, s), l3 = query_geqrf(n, s), l4 = query_orgqr(n, s);
	size_t l5 = query_gesdd(n, s, s);
	if (lwork == 0 || l2 == 0 || l3 == 0 || l4 == 0 || l5 == 0)
		return LCP_ERR_UNSUPPORTED;
	lwork = lwork > l2 ? lwork : l2;
	lwork = lwork > l3 ? lwork : l3;
	lwork = lwork > l4 ? lwork : l4;
	lwork = lwork > l5 ? lwork : l5;

	float *q = lcp_malloc((size_t)m * (size_t)s * sizeof *q);  /* Y, then Q */
	float *z = lcp_malloc((size_t)n * (size_t)s * sizeof *z);  /* Omega, Z, B^T */
	float *v = lcp_malloc((size_t)n * (size_t)s * sizeof *v);  /* V of B^T */
	float *ubt = lcp_malloc((size_t)s * (size_t)s * sizeof *ubt);
	float *sig = lcp_malloc((size_t)s * sizeof *sig);
	float *tau = lcp_malloc((size_t)s * sizeof *tau);
	float *work = lcp_malloc(lwork * sizeof *work);
	lapack_int *iwork = lcp_malloc(8 * (size_t)s * sizeof *iwork);
	lcp_err err = LCP_OK;
	if (!q || !z || !v || !ubt || !sig || !tau || !work || !iwork) {
		err = LCP_ERR_NOMEM;
		goto out;
	}

	fill_test_matrix(z, (size_t)n * (size_t)s, seed);
	cblas_sgemm(CblasColMajor, CblasTrans, CblasNoTrans, m, s, n, 1.0f, w, n, z, n, 0.0f, q, m);
	err = orthonormalize(q, m, s, tau, work, lwork);
	/* Power iterations sharpen a slowly decaying spectrum (error bound
	 * improves as sigma_{k+1}^(1/(2q+1))); the QR between the two products
	 * keeps float round-off from collapsing Q onto the top direction. */
	for (unsigned it = 0; !err && it < LCP_LOWRANK_POWER_ITERS; it++) {
		cblas_sgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, n, s, m, 1.0f, w, n, q, m,
			    0.0f, z, n);
		err = orthonormalize(z, n, s, tau, work, lwork);
		if (err)
			break;
		cblas_sgemm(CblasColMajor, CblasTrans, CblasNoTrans, m, s, n, 1.0f, w, n, z, n,
			    0.0f, q, m);
		err = orthonormalize(q, m, s, tau, work, lwork);
	}
	if (err)
		goto out;
	/* B^T = A^T Q: n x s, tall, so its thin SVD is cheap (O(n s^2)). */
	cblas_sgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, n, s, m, 1.0f, w, n, q, m, 0.0f, z,
		    n);
	err = thin_svd(z, n, s, sig, v, ubt, s, work, lwork, iwork);
	if (err)
		goto out;
	/* vt row j = column j of V (contiguous in column-major). */
	for (uint32_t j = 0; j < k; j++) {
		sv[j] = sig[j];
		memcpy(vt + (size_t)j * (size_t)n, v + (size_t)j * (size_t)n,
		       (size_t)n * sizeof *vt);
	}
	/* u (row-major m x k) is the column-major k x m matrix
	 * (Q Ub_k)^T = Ub_k^T Q^T, and Ub_k^T = the first k rows of ubt. */
	cblas_sgemm(CblasColMajor, CblasNoTrans, CblasTrans, (lapack_int)k, m, s, 1.0f, ubt, s, q,
		    m, 0.0f, u, (lapack_int)k);
	for (size_t i = 0; i < (size_t)m; i++)
		for (uint32_t j = 0; j < k; j++)
			u[i * k + j] *= sig[j];
out:
	lcp_free(q);
	lcp_free(z);
	lcp_free(v);
	lcp_free(ubt);
	lcp_free(sig);
	lcp_free(tau);
	lcp_free(work);
	lcp_free(iwork);
	return err;
}

lcp_err lcp_lowrank_fit(const float *w, uint32_t rows, uint32_t cols, uint32_t k, uint64_t seed,
			float *u, float *vt, float *sv)
{
	if (!w || !u || !vt || !sv || rows == 0 || cols == 0 || k == 0)
		return LCP_ERR_INVAL;
	if (rows > INT32_MAX || cols > INT32_MAX)
		return LCP_ERR_RANGE;
	uint32_t mn = rows < cols ? rows : cols;
	if (k > mn)
		return LCP_ERR_INVAL;
	size_t total = (size_t)rows * (size_t)cols;
	for (size_t i = 0; i < total; i++)
		if (!isfinite(w[i]))
			return LCP_ERR_INVAL;
	pthread_once(&blas_once, blas_single_thread);

	lapack_int m = (lapack_int)rows, n = (lapack_int)cols;
	uint64_t s = (uint64_t)k + LCP_LOWRANK_OVERSAMPLE;
	if (s >= mn)
		return fit_exact(w, m, n, k, u, vt, sv);
	return fit_randomized(w, m, n, k, (lapack_int)s, seed, u, vt, sv);
}

void lcp_lowrank_test2(float *omega, size_t cols, uint64_t seed)
{
	fill_test_matrix(omega, cols * 2, seed);
}

void lcp_lowrank_orth2(float *a, size_t m)
{
	float *c0 = a, *c1 = a + m;
	double n0 = 0.0, d = 0.0, n1 = 0.0;
	for (size_t i = 0; i < m; i++)
		n0 += (double)c0[i] * c0[i];
	float s0 = n0 > 0.0 ? (float)(1.0 / sqrt(n0)) : 0.0f;
	for (size_t i = 0; i < m; i++) {
		c0[i] *= s0;
		d += (double)c0[i] * c1[i];
	}
	for (size_t i = 0; i < m; i++) {
		c1[i] -= (float)d * c0[i];
		n1 += (double)c1[i] * c1[i];
	}
	float s1 = n1 > 0.0 ? (float)(1.0 / sqrt(n1)) : 0.0f;
	for (size_t i = 0; i < m; i++)
		c1[i] *= s1;
}

/* Partial sums per column in lcp_lowrank_times2: independent chains, so the
 * dot products run at the loads' pace instead of the adds' latency. */
#define DOT_LANES 16

void lcp_lowrank_times2(const float *w, size_t rows, size_t cols, const float *q, float *y,
			size_t ystride)
{
	const float *q0 = q, *q1 = q + cols;
	for (size_t i = 0; i < rows; i++) {
		const float *r = w + i * cols;
		float a0[DOT_LANES] = {0}, a1[DOT_LANES] = {0};
		size_t j = 0;
		for (; j + DOT_LANES <= cols; j += DOT_LANES)
			for (unsigned k = 0; k < DOT_LANES; k++) {
				a0[k] += r[j + k] * q0[j + k];
				a1[k] += r[j + k] * q1[j + k];
			}
		for (; j < cols; j++) {
			a0[0] += r[j] * q0[j];
			a1[0] += r[j] * q1[j];
		}
		float s0 = 0.0f, s1 = 0.0f;
		for (unsigned k = 0; k < DOT_LANES; k++) {
			s0 += a0[k];
			s1 += a1[k];
		}
		y[i] = s0;
		y[ystride + i] = s1;
	}
}

/* The same arithmetic per element as one loop over j, in blocks of
 * DOT_LANES through local copies: GCC -O2 vectorizes a block, not the
 * plain loop, whose z and r it must assume may overlap. The plain loop
 * was 15% of `lcpfs pack -j 1` on the 256 MiB bench model. */
void lcp_lowrank_times2t(const float *w, size_t rows, size_t cols, const float *y, size_t ystride,
			 float *z)
{
	memset(z, 0, cols * 2 * sizeof *z);
	float *z0 = z, *z1 = z + cols;
	for (size_t i = 0; i < rows; i++) {
		const float *r = w + i * cols;
		float y0 = y[i], y1 = y[ystride + i];
		size_t j = 0;
		for (; j + DOT_LANES <= cols; j += DOT_LANES) {
			float t0[DOT_LANES], t1[DOT_LANES];
			memcpy(t0, z0 + j, sizeof t0);
			memcpy(t1, z1 + j, sizeof t1);
			for (unsigned k = 0; k < DOT_LANES; k++) {
				t0[k] += r[j + k] * y0;
				t1[k] += r[j + k] * y1;
			}
			memcpy(z0 + j, t0, sizeof t0);
			memcpy(z1 + j, t1, sizeof t1);
		}
		for (; j < cols; j++) {
			z0[j] += r[j] * y0;
			z1[j] += r[j] * y1;
		}
	}
}

double lcp_lowrank_top2(const float *y, size_t rows, const float *q2, size_t cols, float *u,
			float *v)
{
	double g00 = 0.0, g01 = 0.0, g11 = 0.0;
	for (size_t i = 0; i < rows; i++) {
		g00 += (double)y[i] * y[i];
		g01 += (double)y[i] * y[rows + i];
		g11 += (double)y[rows + i] * y[rows + i];
	}
	/* Largest eigenvalue of the symmetric 2 x 2 [g00 g01; g01 g11], and
	 * its eigenvector (from whichever row of G - lambda I is larger). */
	double half = 0.5 * (g00 + g11), dev = 0.5 * (g00 - g11);
	double lambda = half + sqrt(dev * dev + g01 * g01);
	double c0 = g01, c1 = lambda - g00;
	if (fabs(lambda - g11) + fabs(g01) > fabs(c0) + fabs(c1)) {
		c0 = lambda - g11;
		c1 = g01;
	}
	double cn = sqrt(c0 * c0 + c1 * c1);
	if (cn > 0.0) {
		c0 /= cn;
		c1 /= cn;
	} else {
		c0 = 1.0;
		c1 = 0.0;
	}
	for (size_t j = 0; j < cols; j++)
		v[j] = (float)(c0 * q2[j] + c1 * q2[cols + j]);
	for (size_t i = 0; i < rows; i++)
		u[i] = (float)(c0 * y[i] + c1 * y[rows + i]);
	return lambda;
}
