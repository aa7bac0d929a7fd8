/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Byte streams as the codec stores them (layouts in codec_format.h): rANS
 * streams of blocks (lanes, table, block lengths, blocks) and planes (raw,
 * one byte repeated, or a rANS stream), written by the encoder and decoded
 * by range. Shared by quantized chunks (codes, side streams) and lossless
 * chunks (byte planes). Internal to src/codec.
 */
#ifndef LCPFS_CODEC_STREAM_H
#define LCPFS_CODEC_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec/kernels.h"
#include "codec/rans.h"
#include "common/buf.h"
#include "lcpfs/err.h"

/* Lanes for a stream of m symbols in blocks of block_elems: 16, or fewer
 * so each lane codes at least LANE_MIN_SYMBOLS (the lane states' bytes
 * matter in short streams). */
unsigned lcp_stream_lanes(uint64_t m, uint32_t block_elems);

/* Appends sym[0, m) to b as a rANS stream with `lanes` lanes in blocks of
 * block_elems, with the stream's own frequency table, built from hist (the
 * symbols' histogram) or, when hist is NULL, counted here. m < 2^32 (a
 * chunk's symbols at most), as for lcp_stream_put_plane. */
lcp_err lcp_stream_put_rans(struct lcp_buf *b, const uint8_t *sym, uint64_t m,
			    uint32_t block_elems, unsigned lanes, const uint64_t hist[256]);

/* The histogram of sym[0, m) (m < 2^32). */
void lcp_stream_count(const uint8_t *sym, uint64_t m, uint64_t hist[256]);

/* lcp_stream_cost_bytes of an alias stream of the symbols of hist (rans.h:
 * its most frequent symbols in range coded directly, the others as
 * escapes, a word each); UINT64_MAX when the symbols leave no alias model
 * (none in its range). */
uint64_t lcp_stream_alias_cost_bytes(const uint64_t hist[256]);

/* Appends sym[0, m), whose histogram is hist, to b as an alias stream
 * (code mode CODE_ALIAS): lanes, table, block lengths and blocks as
 * lcp_stream_put_rans. LCP_ERR_INVAL, with nothing appended, where
 * lcp_stream_alias_cost_bytes is UINT64_MAX. */
lcp_err lcp_stream_put_alias(struct lcp_buf *b, const uint8_t *sym, uint64_t m,
			     uint32_t block_elems, unsigned lanes, const uint64_t hist[256]);

/* rANS with 16 lanes is kept unless raw or zstd is smaller by more than 1
 * part in 50; with fewer lanes it must be smaller by that margin
 * (codec_format.h says why). */
bool lcp_stream_prefer_rans(size_t rans_len, size_t alt_len, unsigned lanes);

/* Bytes a rANS stream of the symbols of hist takes, about: their order-0
 * cost with the table's frequencies (without the table and lane states).
 * Integer arithmetic: the same on every machine. */
uint64_t lcp_stream_cost_bytes(const uint64_t hist[256]);

/*
 * Appends the plane p[0, m) to b as u8 enum plane_mode, then: PLANE_CONSTANT
 * one byte when all m are equal; PLANE_RANS a rANS stream (blocks of
 * block_elems, `lanes` lanes) when that is smaller than the raw bytes; else
 * PLANE_RAW and the m bytes. A rANS encoding that the histogram's entropy
 * already shows cannot pay is not attempted.
 */
lcp_err lcp_stream_put_plane(struct lcp_buf *b, const uint8_t *p, uint64_t m,
			     uint32_t block_elems, unsigned lanes);

/* A parsed rANS stream: its lanes, where its block lengths and blocks are,
 * and its table, built into the caller's storage. */
struct lcp_stream {
	unsigned lanes;
	uint64_t nblocks, block_elems;
	const uint8_t *lens, *blocks;
	const struct lcp_rans_dec *table;
};

/* Parses the rANS stream of m symbols (blocks of block_elems) that starts
 * at src (len bytes available); *used gets its length. Every symbol must
 * be < limit. LCP_ERR_FORMAT when damaged. */
lcp_err lcp_stream_parse(const uint8_t *src, size_t len, uint64_t m, uint64_t block_elems,
			 unsigned limit, struct lcp_rans_dec *table, struct lcp_stream *rs,
			 size_t *used);

/* lcp_stream_parse of an alias stream (alias true; its table must be an
 * alias model) or a rANS stream. */
lcp_err lcp_stream_parse_as(const uint8_t *src, size_t len, uint64_t m, uint64_t block_elems,
			    unsigned limit, bool alias, struct lcp_rans_dec *table,
			    struct lcp_stream *rs, size_t *used);

/* One plane of m bytes as stored (lcp_stream_put_plane), parsed. */
struct lcp_plane {
	uint8_t mode;           /* enum plane_mode */
	const uint8_t *raw;     /* PLANE_RAW: the m bytes */
	uint8_t value;          /* PLANE_CONSTANT: the byte */
	struct lcp_stream rs;   /* PLANE_RANS: the stream, its table in the caller's storage */
};

/* Parses the plane of m bytes (rANS blocks of block_elems) at *p, before
 * end, into *pl, building a rANS plane's table in *table; *p moves past it.
 * LCP_ERR_FORMAT when damaged. */
lcp_err lcp_stream_parse_plane(const uint8_t **p, const uint8_t *end, uint64_t m,
			       uint64_t block_elems, struct lcp_rans_dec *table, struct lcp_plane *pl);

/* Block b of a parsed stream of m symbols, decoded into out + b *
 * block_elems up to symbol `upto` of the stream; at is where its bytes
 * start (the blocks are back to back). */
struct lcp_rans_block lcp_stream_block(const struct lcp_stream *rs, uint64_t b, uint64_t m,
				       uint64_t upto, const uint8_t *at, uint8_t *out);

/*
 * Decodes the blocks of the parsed stream rs (m symbols) that hold symbols
 * [first, first + count) into the same positions of out, with the kernel
 * set k, up to 8 blocks side by side; with fuse, straight to dequantized
 * output instead (fuse->first is set per call: the element of its first
 * block, block index * fuse->block_elems). Bytes before readable_end
 * may be loaded.
 */
lcp_err lcp_stream_decode_range(const struct lcp_kernels *k, const struct lcp_stream *rs,
				uint64_t m, uint64_t first, uint64_t count, uint8_t *out,
				const uint8_t *readable_end, struct lcp_rans_fuse *fuse);

#endif
