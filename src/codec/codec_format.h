/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The codec's on-disk layout, shared by the encoder (codec.c) and the
 * decoder (decode.c); internal to src/codec.
 * Kernels live in quant.c, F16/BF16 conversions in half.c.
 *
 * Layout decisions (the params block pins them, man/lcpfs.5 documents them):
 *  - A tensor is a flat element sequence in storage order, viewed as
 *    rows x cols with cols = last dim: that keeps every chunk one contiguous
 *    byte range of the original tensor, and the last dim is the contiguous one.
 *  - Groups run along the flat order: group g is elements [g*G, (g+1)*G); only
 *    the tensor's last group may be shorter. So 1xN and Nx1 tensors (and
 *    rows shorter than G) cost one scale per G elements, not one per row; when
 *    cols is a multiple of G (every real weight matrix) groups are row pieces.
 *  - Chunks are [i*C, min((i+1)*C, n)) with C a multiple of G (and of cols
 *    when a whole number of rows fits the target), so groups never straddle
 *    chunks and a chunk needs only the params block to decode.
 *
 * Params block v1 (little-endian): "LCPQ", u8 version 1, u8 encoding (enum
 * lcp_encoding), u8 dtype, u8 bits (4, 8; 0 lossless), u8 flags (bit 0
 * symmetric, bit 1 entropy-coded 4-bit class), u8 log2 of scale codes per
 * octave (4 or 8; 0 lossless), u16 rank, u32 group size, u32 chunk elements,
 * f32 super-scale, u8 ndims, u64 dims[ndims], fp16 V^T[rank * cols], u64
 * xxh3 of all bytes before it.
 *
 * Quantized chunk: u8 modes, u32 side_len, the side stream, the code
 * stream, then the low-rank rows if any. The side stream holds the chunk's
 * groups' scale codes (one plane, or a high-byte plane and a low-byte plane
 * for 16-bit codes), then one aux byte per group; the code stream its codes
 * (one byte each for 8-bit symbols; 4-bit symbols packed two per byte, low
 * nibble first). Each stream is stored as one zstd frame without the
 * optional content size (bit 0 of modes for side, bit 1 for codes) or as is.
 * zstd's Huffman-coded literals bring the codes to their order-0 entropy.
 * Two frames, not one: a shared frame measured 3% larger (the scale codes'
 * symbols spoil the codes' Huffman table).
 * With a low-rank part (rank r > 0) the params block carries V^T (r x cols,
 * fp16) and each quantized chunk ends with the fp16 rows of U (r per row)
 * for every row it touches, so chunks stay independent; element (i, j)
 * reconstructs as dequant + sum_k U[i][k] * V^T[k][j], summed in binary32
 * from k = 0 upward, exactly as the encoder computed the residual.
 * Lossless chunk: u8 mode, then mode 1: zstd frame of the chunk's byte planes
 * (all byte 0s, then all byte 1s...: exponent bytes compress far better when
 * not interleaved with mantissa noise), mode 0: the raw bytes.
 */
#ifndef LCPFS_CODEC_FORMAT_H
#define LCPFS_CODEC_FORMAT_H

#include <stdbool.h>
#include <stdint.h>

#include "codec/quant.h"
#include "lcpfs/codec.h"

#define PARAMS_MAGIC "LCPQ"
#define PARAMS_VERSION 1
#define PARAMS_FIXED_LEN 25 /* through ndims */
#define QCHUNK_HEADER_LEN 5 /* u8 modes, u32 side_len */
/* Target reconstructed bytes per chunk: large enough that zstd frames and
 * chunk-table entries cost little, small enough that a random 4 KiB read
 * decodes little it does not need. */
#define CHUNK_TARGET_BYTES (256u * 1024u)
#define MAX_RANK 1024

/* A parsed params block (lcp_codec_tensor_open). Immutable once built. */
struct lcp_codec_tensor {
	enum lcp_encoding encoding;
	enum lcp_dtype dtype;
	unsigned elem_bytes;
	struct lcp_qparams q;  /* decoding parameters (8-bit symbols when ecsq) */
	bool ecsq;             /* 4-bit class, entropy-coded step (quant.h) */
	uint32_t group_size;
	uint32_t chunk_elems;
	uint16_t rank;
	uint64_t n;
	uint64_t cols;
	float *vt;            /* rank > 0: V^T (rank x cols), binary32 */
	float scale8[256];    /* 8-bit scale codes: lcp_qscale of every code */
};

/* Bytes per element of a dtype the codec handles (F32, F16, BF16, F64);
 * 0 for any other. */
unsigned lcp_codec_elem_bytes(enum lcp_dtype dt);

/* Rows [*r0, *r0 + *nrows) of the 2-D view (cols columns) touched by
 * elements [b, b + m), m > 0. */
void lcp_codec_touched_rows(uint64_t cols, uint64_t b, uint64_t m, uint64_t *r0, uint64_t *nrows);

/*
 * The low-rank term of len consecutive elements of one row, from column c0:
 * l[j] = sum over k = 0, 1, ... rank-1 of urow[k] * vt[k][c0 + j], summed
 * in binary32 starting from +0.0f. Shared by the encoder (residual) and the
 * decoder (reconstruction), so both see the same bits. The k-outer order
 * lets the j loop run four lanes at a time; each lane performs exactly the
 * scalar sequence of multiplies and adds.
 */
void lcp_codec_lr_segment(const float *urow, const float *vt, uint64_t cols, uint16_t rank,
			  uint64_t c0, uint64_t len, float *l);

#endif
