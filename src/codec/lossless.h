/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The lossless tier: float tensors stored bit-exact (the lossless preset,
 * tensors whose exact encoding is as small as a lossy one, NaN/Inf, the
 * quality floor's last resort). Internal to src/codec; layout in
 * codec_format.h and man/lcpfs.5.
 *
 * A chunk is stored in the smallest of three modes: its bytes as they are;
 * a zstd frame of its byte planes (format 1's only mode, kept for data that
 * repeats, such as coordinate grids); or split planes: the 8 bits below
 * the sign bit of each element (the whole exponent of BF16 and F32, the
 * exponent and top mantissa bits of F16, the exponent's top of F64) form
 * plane 0 and the remaining bits (sign, mantissa) planes 1.., little-endian;
 * each plane is stored raw, as one repeated byte, or rANS-coded in blocks
 * (stream.h). Trained weights have a skewed exponent and near-uniform
 * mantissas, so plane 0 carries most of the saving, and the rANS blocks
 * decode with the same SIMD kernels as quantization codes.
 */
#ifndef LCPFS_CODEC_LOSSLESS_H
#define LCPFS_CODEC_LOSSLESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec/kernels.h"
#include "common/buf.h"
#include "lcpfs/codec.h"
#include "lcpfs/err.h"

/* zstd's compression context (zstd.h's ZSTD_CCtx; only .c files include
 * zstd.h). */
struct ZSTD_CCtx_s;

/* Mode byte of a lossless chunk. */
enum lossless_mode { LOSSLESS_RAW = 0, LOSSLESS_ZSTD_PLANES = 1, LOSSLESS_SPLIT = 2 };

/* The row length for the repeat checks below: the last dim above 1 (a
 * [64, 64, 1] grid repeats every 64 elements), 1 when there is none. */
uint64_t lcp_lossless_period(uint32_t ndims, const uint64_t *dims);

/*
 * The screen of an exact encoding: whether a lossless encoding of n
 * elements may take at most a given number of bytes, judged on a sample of
 * up to 64K evenly spaced elements (from element 0): the planes' order-0
 * cost, or at least a quarter of the sampled elements repeating their left
 * or upper neighbour (period apart, lcp_lossless_period; zstd's case). A
 * cheap screen: false means it surely cannot (within the estimate's
 * slack), true that it is worth encoding to see. The sample is gathered
 * part by part, in any order (lcp_lossless_screen_part, then
 * lcp_lossless_screen_fold in any order gives the same sums), so an encoder
 * reading a tensor piece by piece screens it without holding it. Not
 * thread-safe per object; zero-initialize before the first part.
 */
struct lcp_lossless_screen {
	uint64_t taken, same;
	uint64_t hist[8][256]; /* per plane (split, as stored) */
};

/* Adds the sampled elements of part [b, b + m) of a tensor of n elements
 * of eb bytes, whose bytes are at part, to s. A sampled element's neighbour
 * before the part is read through read(arg, buf, eb, offset in bytes): a
 * few elements per part. Errors are read's. */
lcp_err lcp_lossless_screen_part(struct lcp_lossless_screen *s, unsigned eb, uint64_t n,
				 uint64_t period, const uint8_t *part, uint64_t b, uint64_t m,
				 lcp_tensor_read_fn read, void *arg);

/* Adds the sample of another part to s. */
void lcp_lossless_screen_fold(struct lcp_lossless_screen *s, const struct lcp_lossless_screen *part,
			      unsigned eb);

/* The verdict for the whole sample of n elements of eb bytes against a
 * limit of `limit` bytes. */
bool lcp_lossless_screen_may_pay(const struct lcp_lossless_screen *s, unsigned eb, uint64_t n,
				 uint64_t limit);

/* Bytes of scratch lcp_lossless_encode_chunk needs for m elements of eb
 * bytes. */
size_t lcp_lossless_encode_scratch(unsigned eb, uint64_t m);

/*
 * Appends one chunk, the m elements of eb bytes (2, 4 or 8) at raw, to out:
 * the mode byte and its payload, in the smallest mode (zstd is tried only
 * when the elements repeat their left or upper neighbour (period apart,
 * lcp_lossless_period) in at least a quarter of the places: zstd then
 * finds matches rANS cannot, and elsewhere it costs time for nothing).
 * rANS planes use blocks of block_elems. zc: a zstd context (ZSTD_CCtx) set up by the caller; scratch:
 * lcp_lossless_encode_scratch bytes. Deterministic.
 */
lcp_err lcp_lossless_encode_chunk(struct ZSTD_CCtx_s *zc, unsigned eb, const uint8_t *raw,
				  uint64_t m, uint64_t period, uint32_t block_elems, uint8_t *scratch,
				  struct lcp_buf *out);

/* Scratch bytes lcp_lossless_decode_split needs for a chunk of m elements
 * of eb bytes (plane buffers and rANS tables). */
size_t lcp_lossless_decode_scratch(unsigned eb, uint64_t m);

/*
 * Elements [first, first + count) of a split-planes chunk of m elements of
 * eb bytes, whose payload after the mode byte is src[0, len), into out
 * (storage order, little-endian), with kernel set k: only the rANS blocks
 * the range touches are decoded. scratch: lcp_lossless_decode_scratch bytes,
 * aligned as lcp_malloc aligns; bytes before readable_end may be loaded. LCP_ERR_FORMAT
 * when the payload is malformed.
 */
lcp_err lcp_lossless_decode_split(const struct lcp_kernels *k, unsigned eb, const uint8_t *src,
				  size_t len, uint64_t m, uint32_t block_elems, uint64_t first,
				  uint64_t count, uint8_t *out, uint8_t *scratch,
				  const uint8_t *readable_end);

/* The split of one element's bits v (eb bytes): plane 0 gets the 8 bits
 * below the sign bit, the rest (low bits, then the sign) are packed below
 * them, little-endian, into eb - 1 bytes. */
static inline unsigned lcp_lossless_shift(unsigned eb)
{
	return 8 * eb - 9;
}

#endif
