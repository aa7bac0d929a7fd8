/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The streaming encoder (lcp_codec_encode_stream): read piece by piece
 * through a source callback, encoded on a pool, it gives exactly what
 * lcp_codec_encode gives for the tensor in memory (params, chunk records
 * and bytes, metrics, QLOR checksum), in every dtype, for a tensor of many
 * chunks, one holding NaN (lossless), one with a planted low-rank part, one
 * under an unreachable floor (8-bit, then lossless: the sink restarts), the
 * lossless preset, and tensors the default preset stores exact because that
 * costs no more (small integers; a grid whose rows repeat), screened on a
 * sample whose neighbours cross the scan's parts.
 */
#include <criterion/criterion.h>
#include <stdatomic.h>
#include <string.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "lcpfs/codec.h"
#include "test_codec_helpers.h"

#define ROWS 768
#define COLS 512 /* 393216 elements: 3 chunks of 128K, a second of scan parts */
#define THREADS 3

struct mem_source {
	const uint8_t *data;
	atomic_uint reads;
};

static lcp_err read_mem(void *arg, void *buf, size_t len, uint64_t off)
{
	struct mem_source *m = arg;
	atomic_fetch_add(&m->reads, 1);
	memcpy(buf, m->data + off, len);
	return LCP_OK;
}

/* A sink gathering the last attempt and counting restarts and scanned
 * bytes. */
struct gather {
	struct lcp_buf data;
	unsigned restarts;
	uint64_t scanned;
};

static void g_scanned(void *arg, const void *data, size_t len)
{
	(void)data;
	((struct gather *)arg)->scanned += len;
}

static lcp_err g_restart(void *arg)
{
	struct gather *g = arg;
	g->data.len = 0;
	g->restarts++;
	return LCP_OK;
}

static lcp_err g_put(void *arg, const struct lcp_chunk_info *c, const uint8_t *data, uint32_t crc)
{
	struct gather *g = arg;
	(void)crc;
	cr_assert_eq(c->data_off, g->data.len, "chunks out of order");
	return lcp_buf_append(&g->data, data, (size_t)c->data_len);
}

static void fill(enum lcp_dtype dt, uint8_t *p, uint64_t n, int kind)
{
	for (uint64_t i = 0; i < n; i++) {
		double x = normal() * 0.02;
		if (kind == 1 && i == n / 2)
			x = NAN;
		if (kind == 2)
			x += 0.5 * sin((double)(i / COLS) * 0.1) * cos((double)(i % COLS) * 0.07);
		if (kind == 3) /* small integers: 2-3 bits exact */
			x = (double)lrint(x * 75.0);
		if (kind == 4) /* a coordinate grid: every row the same */
			x = (double)(i % COLS) / 8.0;
		put_value(dt, p + i * elem_bytes(dt), x);
	}
}

/* attempts: the sink restarts expected (one per attempt, the first included). */
static void compare(enum lcp_dtype dt, int kind, const struct lcp_config *cfg, unsigned attempts,
		    const char *what)
{
	uint64_t n = (uint64_t)ROWS * COLS;
	size_t len = n * elem_bytes(dt);
	uint8_t *raw = malloc(len);
	rng_state = 0x9e37 + (uint64_t)kind * 77 + dt;
	fill(dt, raw, n, kind);
	struct lcp_tensor_view v = {.dtype = dt, .ndims = 2, .dims = {ROWS, COLS}, .data = raw,
				    .len = len};
	struct lcp_codec_ctx *ctx;
	struct lcp_encoded a, b;
	cr_assert_eq(lcp_codec_ctx_create(&ctx), LCP_OK);
	cr_assert_eq(lcp_codec_encode(ctx, &v, cfg, &a), LCP_OK, "%s", what);

	struct lcp_encode_pool *pool;
	struct lcp_encode_exec *exec;
	cr_assert_eq(lcp_encode_pool_create(THREADS, false, &pool), LCP_OK);
	cr_assert_eq(lcp_encode_exec_create(pool, &exec), LCP_OK);
	struct mem_source ms = {.data = raw};
	struct lcp_tensor_source src = {.dtype = dt, .ndims = 2, .dims = {ROWS, COLS},
					.read = read_mem, .arg = &ms};
	struct gather g = {LCP_BUF_INIT, 0, 0};
	struct lcp_encode_sink sink = {.scanned = g_scanned, .restart = g_restart, .put = g_put,
				       .arg = &g};
	cr_assert_eq(lcp_codec_encode_stream(ctx, &src, cfg, exec, &sink, &b), LCP_OK, "%s", what);
	cr_assert_gt(atomic_load(&ms.reads), 1, "%s: read whole, not streamed", what);
	cr_assert_eq(g.scanned, len, "%s: scanned %llu of %zu bytes", what,
		     (unsigned long long)g.scanned, len);
	cr_assert_eq(g.restarts, attempts, "%s: %u attempts", what, g.restarts);

	cr_assert_eq(a.encoding, b.encoding, "%s", what);
	cr_assert_eq(a.rank, b.rank, "%s", what);
	cr_assert(a.params_len == b.params_len && memcmp(a.params, b.params, a.params_len) == 0,
		  "%s: params differ", what);
	cr_assert_eq(a.nchunks, b.nchunks, "%s", what);
	cr_assert_eq(memcmp(a.chunks, b.chunks, a.nchunks * sizeof *a.chunks), 0,
		     "%s: chunk records differ", what);
	cr_assert(a.data_len == g.data.len && memcmp(a.data, g.data.data, a.data_len) == 0,
		  "%s: chunk bytes differ", what);
	cr_assert_eq(b.data_len, a.data_len, "%s", what);
	cr_assert(a.cosine == b.cosine && (a.sqnr_db == b.sqnr_db || (isinf(a.sqnr_db) && isinf(b.sqnr_db))),
		  "%s: metrics differ", what);
	cr_assert_eq(a.qlor.original_checksum, b.qlor.original_checksum, "%s: QLOR checksum", what);
	cr_assert(a.fallback_reason == b.fallback_reason ||
		  (a.fallback_reason && b.fallback_reason &&
		   strcmp(a.fallback_reason, b.fallback_reason) == 0),
		  "%s: reasons differ", what);
	if (strncmp(what, "exact", 5) == 0)
		cr_assert(a.encoding == LCP_ENC_LOSSLESS && a.fallback_reason &&
			  strcmp(a.fallback_reason, "exact: no larger than 4-bit") == 0,
			  "%s: not stored exact (%d, %s)", what, a.encoding,
			  a.fallback_reason ? a.fallback_reason : "no reason");

	lcp_encoded_free(&a);
	lcp_encoded_free(&b);
	lcp_buf_free(&g.data);
	lcp_encode_exec_free(exec);
	lcp_encode_pool_free(pool);
	lcp_codec_ctx_free(ctx);
	free(raw);
}

Test(codec_stream, same_as_in_memory_every_dtype)
{
	struct lcp_config cfg = lcp_config_default();
	const enum lcp_dtype dts[] = {LCP_DTYPE_F32, LCP_DTYPE_F16, LCP_DTYPE_BF16, LCP_DTYPE_F64};
	for (size_t k = 0; k < sizeof dts / sizeof dts[0]; k++)
		compare(dts[k], 0, &cfg, 1, lcp_dtype_name(dts[k]));
}

Test(codec_stream, nan_low_rank_and_fallbacks)
{
	struct lcp_config cfg = lcp_config_default();
	compare(LCP_DTYPE_F32, 1, &cfg, 1, "NaN");
	compare(LCP_DTYPE_F16, 2, &cfg, 2, "low rank"); /* plain, then with its part */
	cfg.quality_threshold = 1.0f; /* nothing lossy meets it: 4-bit, 8-bit, lossless */
	compare(LCP_DTYPE_BF16, 0, &cfg, 3, "unreachable floor");
}

/* The planted low-rank tensor does get a part, so the case above covers
 * the candidates and the restart after the plain encoding. */
Test(codec_stream, planted_tensor_gets_a_low_rank_part)
{
	uint64_t n = (uint64_t)ROWS * COLS;
	uint8_t *raw = malloc(n * 2);
	rng_state = 0x9e37 + 2 * 77 + LCP_DTYPE_F16;
	fill(LCP_DTYPE_F16, raw, n, 2);
	struct lcp_tensor_view v = {.dtype = LCP_DTYPE_F16, .ndims = 2, .dims = {ROWS, COLS},
				    .data = raw, .len = n * 2};
	struct lcp_codec_ctx *ctx;
	struct lcp_encoded e;
	struct lcp_config cfg = lcp_config_default();
	cr_assert_eq(lcp_codec_ctx_create(&ctx), LCP_OK);
	cr_assert_eq(lcp_codec_encode(ctx, &v, &cfg, &e), LCP_OK);
	cr_assert_gt(e.rank, 0, "no low-rank part on a planted rank-1 structure");
	lcp_encoded_free(&e);
	lcp_codec_ctx_free(ctx);
	free(raw);
}

/* The lossless preset, and the exact encoding of the lossy presets when it
 * costs no more: sized without the sink, then encoded for real after the
 * lossy attempt (one restart more; the grid, of rank 1, also restarts for
 * its low-rank part first). */
Test(codec_stream, lossless_preset_and_exact_when_as_small)
{
	struct lcp_config cfg = lcp_config_lossless();
	compare(LCP_DTYPE_BF16, 0, &cfg, 1, "lossless preset, BF16");
	compare(LCP_DTYPE_F64, 1, &cfg, 1, "lossless preset, F64 with NaN");
	cfg = lcp_config_default();
	compare(LCP_DTYPE_F32, 3, &cfg, 2, "exact, small integers");
	compare(LCP_DTYPE_F16, 4, &cfg, 3, "exact, grid");
}
