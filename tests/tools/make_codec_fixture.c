/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Writes a codec fixture: a few synthetic but weight-like tensors encoded by
 * the codec this file is linked with, as params blocks, chunk tables and
 * chunk bytes in hex, with the xxh3 of each tensor's whole reconstruction.
 * tests/unit/test_codec_compat.c decodes the committed fixtures with the
 * current decoder and requires the same bytes, so files written by an older
 * version keep reading back exactly as they did.
 *
 * The tensors cover every stored class: the default preset (4-bit
 * entropy-coded (dependent quantization since format 3), with a planted
 * rank-1 part so a low-rank term is kept), the
 * quality preset (8-bit asymmetric), 4-bit asymmetric (4-bit codes), 8-bit
 * symmetric, a lossless tensor (a NaN inside), an F64 tensor of 33024
 * elements (two chunks in format 1, three rANS blocks in format 2), rows that
 * repeat (codes stored as zstd in format 2) and uniform noise at 8 bits
 * (codes stored raw); dtypes F16, BF16, F32, F64; row lengths that are not
 * multiples of the group size. Since format 3 also: dependent quantization
 * with group 100 (the decoders' unfused path), the lossless preset on every
 * dtype (split planes, two rANS blocks but for F64), a coordinate
 * grid the default preset stores exact (zstd planes) and random bit
 * patterns (raw). Since format 4 also: the 8-bit class's codes as pairs
 * (two 16-lane blocks into F16; three blocks, the last ending inside a
 * 32-code step, into BF16; a kept low-rank term, F32). Since format 5
 * also: dependent quantization's codes as alias streams, escapes included
 * (two blocks into F16; a last block ending inside a step, BF16), and
 * heavy tails that keep rANS (F32).
 *
 * Build and run from the repository root, after `make`:
 *   cc -std=c11 -D_GNU_SOURCE -Iinclude -Isrc tests/tools/make_codec_fixture.c \
 *      build/liblcpfs.a $(pkg-config --libs openblas lapacke libxxhash jansson \
 *      libzstd zlib) -lm -lpthread -o /tmp/make_codec_fixture
 *   /tmp/make_codec_fixture > tests/data/codec_vN_tensors.txt
 *
 * Format (text): '#' comment lines; per tensor "tensor NAME DTYPE NDIMS D0
 * D1 ...", "params HEX", one "chunk BEGIN END STORED_XXH3 OUTPUT_XXH3 HEX"
 * line per chunk, "recon XXH3", "end". Numbers are decimal, checksums 16
 * hex digits.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/half.h"
#include "common/checksum.h"
#include "lcpfs/codec.h"
#include "lcpfs/config.h"
#include "../unit/test_codec_helpers.h"

/* How a tensor's values are drawn: GRID is a coordinate grid (the column
 * index, as pose models store), BITS random bit patterns (NaNs included),
 * TAILS weights of which 1 in 25 is 8x larger (codes so spread that an
 * alias stream's escapes would cost more than rANS). */
enum shape { WEIGHTS, REPEATED_ROWS, UNIFORM, GRID, BITS, TAILS };

/* Weight-like values: Gaussian with a per-row scale (rows differ by up to
 * 4x, as trained layers do), a heavy tail (1 in 200 values 6x larger), and
 * an optional rank-1 part u_i v_j of relative strength lr. */
static double weight(uint64_t i, uint64_t cols, double lr)
{
	uint64_t row = i / cols, col = i % cols;
	double row_scale = 0.5 + 1.5 * (double)((row * 2654435761u) % 1000) / 1000.0;
	double g = sqrt(-2.0 * log(uniform01())) * cos(6.283185307179586 * uniform01());
	if (uniform01() < 0.005)
		g *= 6.0;
	double u = sin(0.37 * (double)row + 1.0), v = cos(0.11 * (double)col);
	return 0.02 * (row_scale * g + lr * 4.0 * u * v);
}

static void hex(const uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		printf("%02x", b[i]);
}

static const char *dtype_name(enum lcp_dtype dt)
{
	return dt == LCP_DTYPE_F32 ? "F32" : dt == LCP_DTYPE_F16 ? "F16" : dt == LCP_DTYPE_BF16 ? "BF16" : "F64";
}

static int emit(struct lcp_codec_ctx *ctx, const char *name, enum lcp_dtype dt, uint64_t rows,
		uint64_t cols, enum shape shape, double lr, double nan_at, const struct lcp_config *cfg)
{
	uint64_t n = rows * cols;
	unsigned eb = elem_bytes(dt);
	uint8_t *x = malloc(n * eb), *y = malloc(n * eb);
	if (!x || !y)
		return 1;
	for (uint64_t i = 0; i < n; i++) {
		double v = shape == UNIFORM ? 0.02 * (2.0 * uniform01() - 1.0)
			   : shape == GRID  ? (double)(i % cols)
			   : shape == TAILS ? weight(i, cols, lr) * (uniform01() < 0.04 ? 8.0 : 1.0)
					    : weight(i, cols, lr);
		if (shape == REPEATED_ROWS && i >= 4 * cols) /* rows 4.. repeat rows 0..3 */
			memcpy(x + i * eb, x + (i % (4 * cols)) * eb, eb);
		else if (shape == BITS)
			for (unsigned b = 0; b < eb; b++)
				x[i * eb + b] = (uint8_t)rnd();
		else
			put_value(dt, x + i * eb, v);
	}
	if (nan_at >= 0)
		put_value(dt, x + (uint64_t)(nan_at * (double)n) * eb, NAN);
	struct lcp_tensor_view v = { .dtype = dt, .ndims = 2, .dims = { rows, cols }, .data = x,
				     .len = n * eb };
	struct lcp_encoded e;
	struct lcp_codec_tensor *t;
	if (lcp_codec_encode(ctx, &v, cfg, &e) || lcp_codec_tensor_open(e.params, e.params_len, &t))
		return 1;
	printf("# %s: encoding %d, bits %u, group %u, rank %u, %u chunks, %zu stored bytes\n", name,
	       e.encoding, e.bits, e.group_size, e.rank, e.nchunks, (size_t)e.stored_bytes);
	printf("tensor %s %s 2 %llu %llu\nparams ", name, dtype_name(dt), (unsigned long long)rows,
	       (unsigned long long)cols);
	hex(e.params, e.params_len);
	printf("\n");
	for (uint32_t c = 0; c < e.nchunks; c++) {
		const struct lcp_chunk_info *ci = &e.chunks[c];
		size_t len = (ci->elem_end - ci->elem_begin) * eb;
		if (lcp_codec_decode_chunk(t, ci, e.data + ci->data_off, ci->data_len,
					   y + ci->elem_begin * eb, len) ||
		    lcp_xxh3(y + ci->elem_begin * eb, len) != ci->output_xxh3)
			return 1;
		printf("chunk %llu %llu %016llx %016llx ", (unsigned long long)ci->elem_begin,
		       (unsigned long long)ci->elem_end, (unsigned long long)ci->stored_xxh3,
		       (unsigned long long)ci->output_xxh3);
		hex(e.data + ci->data_off, ci->data_len);
		printf("\n");
	}
	printf("recon %016llx\nend\n", (unsigned long long)lcp_xxh3(y, n * eb));
	lcp_codec_tensor_free(t);
	lcp_encoded_free(&e);
	free(x);
	free(y);
	return 0;
}

int main(void)
{
	struct lcp_codec_ctx *ctx;
	rng_state = 0x243f6a8885a308d3ull;
	if (lcp_codec_ctx_create(&ctx))
		return 1;
	struct lcp_config def = lcp_config_default(), q = lcp_config_quality();
	struct lcp_config ll = lcp_config_lossless(), g100 = def;
	struct lcp_config asym4 = def, sym8 = q, def0 = def;
	def0.rank = 0;
	g100.group_size = 100;
	g100.rank = 0;
	asym4.symmetric = false;
	asym4.rank = 0;
	sym8.symmetric = true;
	sym8.rank = 0;
	printf("# lcpfs codec fixture (tests/tools/make_codec_fixture.c): decode with the\n"
	       "# current decoder must give exactly these reconstructions.\n");
	int err = emit(ctx, "default_f16_rank", LCP_DTYPE_F16, 64, 256, WEIGHTS, 1.0, -1, &def) ||
		  emit(ctx, "quality_bf16", LCP_DTYPE_BF16, 40, 200, WEIGHTS, 0.0, -1, &q) ||
		  emit(ctx, "asym4_f32", LCP_DTYPE_F32, 3, 1000, WEIGHTS, 0.0, -1, &asym4) ||
		  emit(ctx, "sym8_f32", LCP_DTYPE_F32, 50, 64, WEIGHTS, 0.0, -1, &sym8) ||
		  emit(ctx, "lossless_f16", LCP_DTYPE_F16, 32, 64, WEIGHTS, 0.0, 0.3, &def) ||
		  emit(ctx, "default_f64_33k", LCP_DTYPE_F64, 129, 256, WEIGHTS, 0.0, -1, &def) ||
		  emit(ctx, "repeated_rows_f16", LCP_DTYPE_F16, 64, 128, REPEATED_ROWS, 0.0, -1, &def) ||
		  emit(ctx, "uniform_q8_f32", LCP_DTYPE_F32, 16, 256, UNIFORM, 0.0, -1, &q) ||
		  emit(ctx, "dq_bf16_group100", LCP_DTYPE_BF16, 40, 500, WEIGHTS, 0.0, -1, &g100) ||
		  emit(ctx, "lossless_f32_split", LCP_DTYPE_F32, 20, 1000, WEIGHTS, 0.0, -1, &ll) ||
		  emit(ctx, "lossless_bf16_split", LCP_DTYPE_BF16, 20, 1000, WEIGHTS, 0.0, -1, &ll) ||
		  emit(ctx, "lossless_f16_split", LCP_DTYPE_F16, 20, 1000, WEIGHTS, 0.0, -1, &ll) ||
		  emit(ctx, "lossless_f64_split", LCP_DTYPE_F64, 4, 1000, WEIGHTS, 0.0, -1, &ll) ||
		  emit(ctx, "grid_f16_exact", LCP_DTYPE_F16, 64, 64, GRID, 0.0, -1, &def) ||
		  emit(ctx, "bits_f32_raw", LCP_DTYPE_F32, 8, 256, BITS, 0.0, -1, &ll) ||
		  emit(ctx, "pairs_f16", LCP_DTYPE_F16, 32, 1024, WEIGHTS, 0.0, -1, &q) ||
		  emit(ctx, "pairs_bf16_tail", LCP_DTYPE_BF16, 33, 1000, WEIGHTS, 0.0, -1, &q) ||
		  emit(ctx, "pairs_f32_rank", LCP_DTYPE_F32, 40, 1000, WEIGHTS, 1.0, -1, &q) ||
		  emit(ctx, "alias_f16", LCP_DTYPE_F16, 32, 1024, WEIGHTS, 0.0, -1, &def0) ||
		  emit(ctx, "alias_bf16_tail", LCP_DTYPE_BF16, 33, 1000, WEIGHTS, 0.0, -1, &def0) ||
		  emit(ctx, "dq_f32_tails_rans", LCP_DTYPE_F32, 40, 1024, TAILS, 0.0, -1, &def0);
	lcp_codec_ctx_free(ctx);
	if (err)
		fprintf(stderr, "make_codec_fixture: encode or decode failed\n");
	return err;
}
