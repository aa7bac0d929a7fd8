/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Private plumbing shared by the format parsers: a parse context that owns
 * the regions found so far, bounds-checked reads through the lcp_reader, a
 * buffered forward stream for headers that are walked field by field (GGUF),
 * and the rule that turns a parsed tensor into a TENSOR or an EXACT region.
 *
 * Error convention inside src/format: a parser returns LCP_ERR_FORMAT after
 * fmt_invalid() recorded why the file failed validation; the entry point turns
 * that into an ok = false map. Any other error (I/O, allocation) is returned
 * to the caller of lcp_format_parse as it is.
 */
#ifndef LCPFS_FORMAT_FMT_H
#define LCPFS_FORMAT_FMT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lcpfs/format.h"

struct fmt_ctx {
	const struct lcp_reader *r;
	uint64_t size;
	uint64_t min_size;
	enum lcp_format format;   /* format claimed so far (kept on failure) */
	struct lcp_region *regions; /* in insertion order until finalized */
	size_t nregions;
	size_t cap;
	char reason[160];         /* set by fmt_invalid / fmt_whole_exact */
	bool whole_exact;         /* valid file kept as one EXACT region */
};

/* Records why validation failed (printf-style) and returns LCP_ERR_FORMAT. */
lcp_err fmt_invalid(struct fmt_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A valid file that is deliberately kept whole and exact (legacy GGML, a
 * torch zip with compressed entries): drops regions added so far. */
void fmt_whole_exact(struct fmt_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Reads len bytes at off; LCP_ERR_TRUNCATED (nothing read) when the range is
 * not inside the file, else the reader's own error. */
lcp_err fmt_read(struct fmt_ctx *c, void *buf, size_t len, uint64_t off);

/* Appends a zeroed region [off, off + len) of the given kind and returns its
 * insertion index (what crc_of refers to until finalization). name is copied
 * (NULL allowed). */
lcp_err fmt_add(struct fmt_ctx *c, enum lcp_region_kind kind, uint64_t off, uint64_t len,
		const char *name, size_t *index);

/* Description of a parsed tensor for fmt_add_tensor. */
struct fmt_tensor {
	const char *name;
	const char *dtype_name;   /* the file's spelling */
	bool is_float;            /* dtype is one the codec takes (F32/F16/BF16/F64) */
	enum lcp_dtype dtype;     /* meaningful when is_float */
	const char *not_float_reason; /* EXACT reason when !is_float */
	uint32_t ndims;           /* may exceed LCP_MAX_DIMS (then kept exact) */
	const uint64_t *dims;     /* storage order (row-major over the bytes) */
	uint64_t off;
	uint64_t len;
};

/* Adds a tensor as a TENSOR region when it is a float tensor with at least two
 * dims, at most LCP_MAX_DIMS, and len >= min_size; otherwise as an EXACT region
 * with exact_reason. Zero-length tensors add nothing. index gets the insertion
 * index, or SIZE_MAX when nothing was added. */
lcp_err fmt_add_tensor(struct fmt_ctx *c, const struct fmt_tensor *t, size_t *index);

/* Multiplies *acc by v; false on uint64 overflow. */
bool fmt_mul_ok(uint64_t *acc, uint64_t v);

/* Whether s[0, n) is UTF-8 as CPython decodes it with "surrogatepass"
 * (encoded surrogates allowed; overlong forms and code points past
 * U+10FFFF not). Names that end up in region maps must pass it. */
bool fmt_utf8_ok(const uint8_t *s, size_t n);

/* Hash of a name chosen by the file, for hash tables of names (pickle
 * storage keys, zip entry names). Keyed by seed (fmt_hash_seed: random per
 * call), so a file cannot be crafted to make every name collide. */
uint64_t fmt_hash_seed(void);
uint64_t fmt_hash(const void *data, size_t len, uint64_t seed);

/* Forward-only buffered reader for headers parsed field by field. */
struct fmt_stream {
	struct fmt_ctx *c;
	uint64_t pos;             /* file offset of the next byte */
	uint8_t *buf;
	size_t cap;
	uint64_t buf_off;         /* file offset of buf[0] */
	size_t buf_len;
};

lcp_err fmt_stream_init(struct fmt_stream *s, struct fmt_ctx *c, uint64_t pos);
void fmt_stream_free(struct fmt_stream *s);
/* Copies n bytes (n <= s->cap) at the position and advances; LCP_ERR_TRUNCATED
 * when the file ends first. */
lcp_err fmt_stream_get(struct fmt_stream *s, void *dst, size_t n);
/* Advances n bytes; LCP_ERR_TRUNCATED when that passes the end of the file. */
lcp_err fmt_stream_skip(struct fmt_stream *s, uint64_t n);

/* The parsers. Each is entered with c->format set to the claimed format. */
lcp_err fmt_parse_safetensors(struct fmt_ctx *c);
lcp_err fmt_parse_gguf(struct fmt_ctx *c);
lcp_err fmt_parse_npy(struct fmt_ctx *c);
lcp_err fmt_parse_torch_zip(struct fmt_ctx *c);

#endif
