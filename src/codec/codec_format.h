/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The codec's on-disk layout, shared by the encoder (codec.c) and the
 * decoder (decode.c); internal to src/codec. Quantization kernels live in
 * quant.c, F16/BF16 conversions in half.c, the entropy coder in rans.c, the
 * decode kernels and their run-time choice in kernels*.c.
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
 * Params block (little-endian): "LCPQ", u8 version, u8 encoding (enum
 * lcp_encoding), u8 dtype, u8 bits (4, 8; 0 lossless), u8 flags (bit 0
 * symmetric, bit 1 entropy-coded 4-bit class, bit 2 (version 3 only)
 * dependent quantization, which needs bit 1), u8 log2 of scale codes per
 * octave (4 or 8; 0 lossless), u16 rank, u32 group size, u32 chunk elements,
 * f32 super-scale, u8 ndims, u64 dims[ndims], fp16 V^T[rank * cols];
 * versions 2 to 5 then have u32 block elements B (0 for lossless in
 * version 2); last, u64 xxh3 of all bytes before it. Version 5 is written
 * for dependent quantization (its chunks may hold alias streams, code mode
 * 4 below; version 3 before) and the 8-bit class (encoding q8; its chunks
 * may hold pairs, code mode 3; version 4 before), and its side planes hold
 * blocks (plane_block_elems); older readers must refuse both: they refuse
 * the version. Version 3 is written for lossless tensors, version 2 for
 * the other quantized tensors (4-bit codes); version 1 (no block field)
 * was written for lossless ones. All five are read.
 *
 * Dependent quantization (flags bit 2; quant.h has the search): the
 * entropy-coded class's 8-bit codes c with k = c - 128 reconstruct as
 * D * (2k - sgn(k) * q), D the group's scale, q the element's quantizer
 * class. Within each block (B elements from the chunk's start, whatever
 * the code stream's mode) element i belongs to chain i mod 16; each chain
 * has a state s = 0 at the block's start, an element takes q = s >> 1, and
 * its code sets s to {{0,2},{2,0},{1,3},{3,1}}[s][k & 1]. Chains of 16
 * interleaved elements are the 16 rANS lanes: a SIMD decoder walks the
 * states as two 16-bit masks (kernels.h).
 *
 * Quantized chunk: u8 modes, u32 side_len, the side stream, the code
 * stream, then the low-rank rows if any. The side stream holds the chunk's
 * groups' scale codes (one plane, or a high-byte plane and a low-byte plane
 * for 16-bit codes), then one aux byte per group. Version 1: bit 0 of modes
 * set when the side stream is one zstd frame without the optional content
 * size, bit 1 when the codes are (else both are as is). Version 2: bits 0-1
 * the side stream's mode (enum side_mode: raw, one zstd frame, or planes:
 * each plane u8 enum plane_mode then ng raw bytes, one byte repeated, or a
 * rANS stream of one block of ng symbols, in version 5 of blocks of
 * plane_block_elems(ng)), bits 2-3 the codes' (enum
 * code_mode: raw, one zstd frame, a rANS stream, or (q8, versions 4 and
 * 5) pairs; version 5: bits 2-4, and 4 (dependent quantization), an alias
 * stream), the other bits zero. Raw and
 * zstd codes are one byte each, 4-bit symbols packed two per byte, low
 * nibble first. A rANS stream (rans.h): u8 log2 of the lane count L (0..4),
 * its own frequency table (lcp_rans_table_write), u32 byte length of each
 * block, then the blocks: block k codes symbols [k*B, min((k+1)*B, m)) with
 * L lanes (B: the params block's, or for a plane its length). The encoder
 * takes rANS for codes unless raw or zstd is smaller by more than 2% (zstd
 * wins on rows that repeat, as in embedding tables with untrained tokens),
 * with L = 16 unless a chunk is too short to give each lane 1024 codes (and
 * then only when rANS is smaller by 2%: fewer lanes decode in scalar code,
 * slower than zstd); and
 * planes (16 lanes) for the side stream unless zstd or raw is smaller by
 * more than 2% (zstd decoded the 8-bit class's side streams in a sixth of
 * the whole decode time; their planes take fewer bytes); in the 8-bit
 * class a plane is stored raw unless rANS saves an eighth of its bytes
 * (codec.c, SIDE_RANS_MIN_SAVING).
 *
 * Pairs (code mode 3, versions 4 and 5, 8-bit codes): one rANS symbol per two
 * codes. Block j of the chunk (its elements [j*B, min((j+1)*B, m)), n of
 * them) has P(n) = 16 floor(n / 32) + min(n mod 32, 16) pairs; pair p of a
 * block covers its elements a = 32 floor(p / 16) + p mod 16 and a + 16
 * (the second is padding, written as code 0 and ignored, when a + 16 >= n),
 * so 16 lanes decode two 16-code vectors in element order per step. The
 * code stream is the nibble plane, one byte per pair of every block in
 * turn, (c_a & 15) | (c_{a+16} & 15) << 4, then a rANS stream of the same
 * pairs' symbols (c_a >> 4) | (c_{a+16} >> 4) << 4 in blocks of P(B)
 * (block j of the stream holds block j's pairs). The encoder takes pairs,
 * with the same lanes, for the 8-bit chunks it would store as rANS unless
 * they take more than 1 part in 25 more bytes (PAIRS_PREFERENCE in
 * codec.c): the low nibbles of 8-bit codes are nearly uniform, so pairs
 * cost ~0.12 bits per weight on the decode benchmark's matrix, and they
 * halve the rANS steps.
 *
 * Alias streams (code mode 4, version 5, dependent quantization's codes;
 * rans.h has the map): a rANS stream's layout with a map from slots to
 * symbols that 32 buckets of at most two symbols each describe, so a SIMD
 * decoder finds 16 lanes' symbols with three register permutes where a
 * rANS table needs a 16-lane gather; codes outside the map's 31 symbols
 * (0.4% of the decode benchmark's matrix) are escapes, a word each. On the
 * Zen 5 development machine a zmm gather costs ~3.6 ns of throughput, as
 * much as the rest of a 4-bit step: alias streams decode 1.3-1.4x as fast
 * and take 0.18% more bytes. The encoder takes one unless the histogram's
 * estimate is 2% above rANS's (ALIAS_PREFERENCE in codec.c).
 *
 * Why rANS, and why this shape (measured with throwaway prototypes on the
 * codes of the shared weights, one core of the 2-core development machine,
 * ns per code): zstd's Huffman literals (the version-1
 * streams) decode at 0.51 (4-bit class) and 0.80 (8-bit) and take 3.90
 * bits per 4-bit code against an order-0 entropy of 3.835; a static Huffman
 * code with 4 interleaved streams and a 12-bit multi-symbol table decodes at
 * 0.44 and 1.06 (one symbol per lookup at 8 bits) for 3.867 bits; rANS with
 * 12-bit frequencies, 16 lanes per block (one AVX-512 register of states)
 * and 8 blocks decoded side by side decodes at 0.21 at both widths for 3.870
 * bits at B = 16384 (lanes' final states ~3.5 bytes each). One register
 * chain is latency-bound (0.46 for two, 0.29 for four), so the speed needs
 * independent blocks, which also serve range reads: B is the unit a read
 * decodes. The same blocks cost nothing to split more lanes across per chunk,
 * but each lane's state costs bytes, hence 1024 codes per lane. Tables are
 * per chunk: a tensor-wide table lost 2% against zstd's per-frame Huffman on
 * tensors whose rows differ (the decode benchmark's matrix), and costs one
 * 128K-code chunk 0.003 (4-bit) to 0.014 (8-bit) bits per code. Encoding is
 * integer arithmetic (one division per code), a small part of quantization.
 *
 * With a low-rank part (rank r > 0) the params block carries V^T (r x cols,
 * fp16) and each quantized chunk ends with the fp16 rows of U (r per row)
 * for every row it touches, so chunks stay independent; element (i, j)
 * reconstructs as dequant + sum_k U[i][k] * V^T[k][j], summed in binary32
 * from k = 0 upward, exactly as the encoder computed the residual.
 * Lossless chunk (lossless.c): u8 mode, then mode 0: the raw bytes; mode 1:
 * a zstd frame of the chunk's byte planes (all byte 0s, then all byte
 * 1s...: exponent bytes compress far better when not interleaved with
 * mantissa noise); mode 2 (version 3 only): split planes. An element of
 * E = 8 * element bytes bits v splits into plane 0, the 8 bits below the
 * sign ((v >> (E - 9)) & 255: the exponent of F32 and BF16, F16's exponent
 * and top 3 mantissa bits, F64's top 8 exponent bits), and r = (v mod
 * 2^(E - 9)) | sign << (E - 9), whose little-endian bytes are planes 1 to
 * E/8 - 1. Then each plane in turn: u8 enum plane_mode and m raw bytes, one
 * byte (repeated m times) or a rANS stream of the m symbols in blocks of B
 * (the params block's; version-3 lossless tensors have B > 0, so a range
 * read decodes only the blocks it touches). The encoder keeps a plane
 * raw when rANS would not be smaller, tries zstd only on chunks where a
 * quarter of the elements repeat the left or upper neighbour, and keeps
 * the smallest mode.
 */
#ifndef LCPFS_CODEC_FORMAT_H
#define LCPFS_CODEC_FORMAT_H

#include <stdbool.h>
#include <stdint.h>

#include "codec/quant.h"
#include "codec/rans.h"
#include "lcpfs/codec.h"

#define PARAMS_MAGIC "LCPQ"
#define PARAMS_VERSION_1 1 /* still read */
#define PARAMS_VERSION_2 2 /* written for 4-bit codes without dependent quantization */
#define PARAMS_VERSION_3 3 /* written for dependent quantization and lossless tensors */
#define PARAMS_VERSION_4 4 /* written for the 8-bit class: chunks may hold pairs */
#define PARAMS_VERSION_5 5 /* written for dependent quantization (alias streams) and the 8-bit
				class (pairs); side planes in blocks of PLANE_BLOCK_ELEMS */
/* Flags byte of the params block. */
#define PARAMS_FLAG_SYMMETRIC 1u
#define PARAMS_FLAG_ENTROPY 2u /* entropy-coded 4-bit class: 8-bit symbols, offset 128 */
#define PARAMS_FLAG_DQ 4u      /* versions 3 and 5: dependent quantization (with ENTROPY) */
#define PARAMS_FIXED_LEN 25 /* through ndims */
#define PARAMS_V2_TAIL_LEN 4 /* u32 block elements */
#define QCHUNK_HEADER_LEN 5 /* u8 modes, u32 side_len */
/* Target reconstructed bytes per lossless chunk (and per quantized chunk in
 * version 1): large enough that zstd frames and chunk-table entries cost
 * little, small enough that a random read decodes little it does not
 * need. */
#define CHUNK_TARGET_BYTES (256u * 1024u)
/* Target elements per quantized chunk (version 2): 8 rANS blocks, so a whole
 * chunk decodes 8 blocks side by side (kernels_avx512.c) whatever the dtype;
 * 256 KiB of F16/BF16 output, 512 KiB of F32. */
#define CHUNK_TARGET_ELEMS (128u * 1024u)
/* Elements per rANS block: the unit a range read decodes. 16 lanes of 1024
 * codes each keep the lane states (~3.5 bytes a lane, see above) at ~0.03
 * bits per code. */
#define BLOCK_ELEMS 16384u
/* Smallest block a params block may declare (bounds the block table). */
#define MIN_BLOCK_ELEMS 256u
/* Fewest symbols per lane: chunks shorter than 16 of these get fewer lanes. */
#define LANE_MIN_SYMBOLS 1024u
#define RANS_MAX_LOG2_LANES 4
/* Symbols per block of a side plane's rANS stream of ng symbols in
 * version 5 (one block of ng before): 1024, or a quarter of ng (rounded
 * up) beyond 4096, so a plane has at most 4 blocks. An 8-bit chunk's 4096
 * scale codes decode as 4 blocks side by side, not one latency-bound
 * 16-lane chain: its decode 5-10% faster for +0.01 bits per weight; at
 * most 4, as each block's lane states cost ~60 bytes. */
#define PLANE_BLOCK_ELEMS 1024u
static inline uint64_t plane_block_elems(uint64_t ng)
{
	return ng <= 4u * PLANE_BLOCK_ELEMS ? PLANE_BLOCK_ELEMS : (ng + 3) / 4;
}
/* Blocks handed to the rANS kernel at once. */
#define RANS_BATCH 8u
/* Largest reconstructed chunk a params block may declare: bounds the
 * decoder's scratch. */
#define MAX_CHUNK_BYTES (64u * CHUNK_TARGET_BYTES)
#define MAX_RANK 1024

/* How a quantized chunk stores its side stream (bits 0-1 of its modes
 * byte in version 2; version 1 has raw and zstd only, as bit 0) and its
 * codes (bits 2-3; version 1: bit 1). */
enum side_mode { SIDE_RAW = 0, SIDE_ZSTD = 1, SIDE_PLANES = 2 };
enum code_mode { CODE_RAW = 0, CODE_ZSTD = 1, CODE_RANS = 2, CODE_PAIRS = 3, CODE_ALIAS = 4 };
/* Modes of one plane of a side stream stored as planes. */
enum plane_mode { PLANE_RAW = 0, PLANE_CONSTANT = 1, PLANE_RANS = 2 };
/* Planes of a side stream: two scale-code byte planes and the aux plane. */
#define SIDE_MAX_PLANES 3

/* Pairs of a block of n elements (code mode CODE_PAIRS). */
static inline uint64_t lcp_pairs_in(uint64_t n)
{
	return 16u * (n / 32u) + (n % 32u < 16u ? n % 32u : 16u);
}

/* Pairs of a chunk of m elements in blocks of block_elems. */
static inline uint64_t lcp_pairs_in_chunk(uint64_t m, uint64_t block_elems)
{
	uint64_t full = m / block_elems;
	return full * lcp_pairs_in(block_elems) + lcp_pairs_in(m - full * block_elems);
}

/* A parsed params block (lcp_codec_tensor_open). Immutable once built. */
struct lcp_codec_tensor {
	uint8_t version;       /* PARAMS_VERSION_1 .. _4 */
	enum lcp_encoding encoding;
	enum lcp_dtype dtype;
	unsigned elem_bytes;
	struct lcp_qparams q;  /* decoding parameters (8-bit symbols when ecsq) */
	bool ecsq;             /* 4-bit class, entropy-coded step (quant.h) */
	bool dq;               /* ... with dependent quantization (quant.h) */
	uint32_t group_size;
	uint32_t chunk_elems;
	uint32_t block_elems;  /* rANS block (versions 2 and 3), else chunk_elems */
	uint16_t rank;
	uint64_t n;
	uint64_t cols;
	float *vt;            /* rank > 0: V^T (rank x cols), binary32 */
	float scale8[256];    /* 8-bit scale codes: lcp_qscale of every code */
	float frac16[256];    /* lcp_qscale_frac of every k below 2^steps */
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
