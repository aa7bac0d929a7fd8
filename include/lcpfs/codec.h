/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The tensor codec: compresses one float tensor into a small parameter block
 * plus independently decodable chunks, and reconstructs any chunk alone.
 *
 * Encoding (group-wise 4/8-bit quantization, optional low-rank part taken out
 * before quantizing, entropy coding, quality floor with 8-bit and lossless
 * fallbacks) may use BLAS and is deterministic: the same input and config give
 * the same bytes. Decoding is plain C with a fixed operation order, so the
 * same chunk always reconstructs to the same bytes on any thread.
 *
 * Element order: a tensor is a flat sequence of elements in storage order,
 * viewed as a matrix of rows = product of all dims but the last, cols = last
 * dim. A chunk reconstructs a contiguous element range [elem_begin, elem_end),
 * i.e. a contiguous byte range of the tensor's storage.
 */
#ifndef LCPFS_CODEC_H
#define LCPFS_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lcpfs/config.h"
#include "lcpfs/dtype.h"
#include "lcpfs/err.h"
#include "lcpfs/qlor.h"

#define LCP_MAX_DIMS 8

/* A tensor in memory, as read from a file. data holds len bytes; len must be
 * the product of dims times lcp_dtype_bytes(dtype). Not owned. */
struct lcp_tensor_view {
	enum lcp_dtype dtype;
	uint32_t ndims;
	uint64_t dims[LCP_MAX_DIMS];
	const void *data;
	size_t len;
};

/* How a tensor ended up stored (values pinned: stored in the sidecar). */
enum lcp_encoding {
	LCP_ENC_Q4 = 1,       /* 4-bit groups (+ optional low-rank part) */
	LCP_ENC_Q8 = 2,       /* 8-bit groups (+ optional low-rank part) */
	LCP_ENC_LOSSLESS = 3, /* exact bytes, losslessly compressed */
};

/* One independently decodable piece of an encoded tensor. */
struct lcp_chunk_info {
	uint64_t elem_begin;  /* first element reconstructed */
	uint64_t elem_end;    /* one past the last */
	uint64_t data_off;    /* offset of its stored bytes in lcp_encoded.data */
	uint64_t data_len;    /* stored length */
	uint64_t stored_xxh3; /* xxh3-64 of the stored bytes, checked before decoding */
	uint64_t output_xxh3; /* xxh3-64 of the reconstructed bytes */
};

/* Result of lcp_codec_encode. Owned by the caller; release with
 * lcp_encoded_free. */
struct lcp_encoded {
	enum lcp_encoding encoding;
	uint8_t bits;         /* 4, 8; 0 for lossless */
	uint32_t group_size;  /* 0 for lossless */
	bool symmetric;
	uint16_t rank;        /* low-rank components kept (0..config rank) */
	double cosine;        /* cosine(original, reconstruction); 1 for lossless */
	double sqnr_db;       /* 10 log10(sum x^2 / sum (x-y)^2); INFINITY when exact */
	uint64_t stored_bytes; /* params_len + data_len: everything this tensor stores */
	uint8_t *params;      /* codec-defined, versioned, checksummed block that every
	                         chunk decode needs (dtype, shape, scales' coder state,
	                         low-rank factors...) */
	size_t params_len;
	uint8_t *data;        /* chunk bytes, concatenated */
	size_t data_len;
	uint32_t nchunks;
	struct lcp_chunk_info *chunks;
	struct lcp_qlor qlor; /* the seed's metadata for this tensor: bits (0 for
	                         lossless), the rank kept, dtype, dims (left empty
	                         if a dim exceeds 32 bits), original_size,
	                         original_checksum = xxh3 of the input bytes,
	                         timestamp 0 (so output is deterministic; the
	                         caller may set it), scales = {the per-tensor
	                         super-scale} (none for lossless), has_zero_points
	                         = asymmetric with no zero points listed (they are
	                         per group, inside the chunks) */
	const char *fallback_reason; /* static string when the configured bits were
	                                not kept (quality floor, NaN/Inf), else NULL */
};

void lcp_encoded_free(struct lcp_encoded *enc);

/* Per-thread encoder workspace. Not thread-safe; one per thread. */
struct lcp_codec_ctx;
lcp_err lcp_codec_ctx_create(struct lcp_codec_ctx **out);
void lcp_codec_ctx_free(struct lcp_codec_ctx *ctx);

/* Codec-level check of a config: like lcp_config_is_valid but rank 0 (no
 * low-rank part) is allowed. */
bool lcp_codec_config_ok(const struct lcp_config *cfg);

/*
 * Encodes one tensor (F32, F16, BF16 or F64; anything else: LCP_ERR_UNSUPPORTED).
 * Tries cfg->bits; if cosine < cfg->quality_threshold retries at 8 bits, then
 * stores lossless. NaN/Inf anywhere: lossless. Deterministic.
 * On success *out is filled; on error *out is zeroed. This is
 * lcp_codec_encode_stream on the caller's thread, with the chunks gathered
 * in out->data: the same bytes.
 */
lcp_err lcp_codec_encode(struct lcp_codec_ctx *ctx, const struct lcp_tensor_view *t,
			 const struct lcp_config *cfg, struct lcp_encoded *out);

/*
 * Streaming encoding: a tensor read piece by piece from a source, encoded
 * chunk by chunk (in parallel through an executor), its chunks handed to a
 * sink in order. Memory is bounded whatever the tensor's size: per running
 * task one chunk's working set, plus a reorder window of encoded chunks
 * (LCP_ENCODE_WINDOW_PER_THREAD per executor thread), plus, for a tensor of
 * at most LCP_ENCODE_HOLD_MAX_ELEMS elements that may get a low-rank part,
 * the tensor as binary32 from its scan to its last attempt (larger tensors
 * get no low-rank part and are read again from the source for each
 * attempt).
 */

/* Reads bytes [off, off + len) of the tensor's storage into buf: LCP_OK or
 * the error that ends the encoding. Called from any executor thread, for
 * distinct buffers concurrently. */
typedef lcp_err (*lcp_tensor_read_fn)(void *arg, void *buf, size_t len, uint64_t off);

/* A tensor to encode: its dtype and dims (as lcp_tensor_view), and its
 * bytes: mem when the whole storage is in memory (len = product of dims *
 * dtype bytes; read is then unused), else read. Not owned. */
struct lcp_tensor_source {
	enum lcp_dtype dtype;
	uint32_t ndims;
	uint64_t dims[LCP_MAX_DIMS];
	const void *mem;
	lcp_tensor_read_fn read;
	void *arg;
};

/*
 * Where encoded chunks go, called on the encoding thread only, in this
 * order: scanned (may be NULL) with every byte of the tensor's storage once,
 * in order (so a caller can hash what it packs without reading it again);
 * then for each attempt restart (may be NULL when the sink never holds a
 * failed attempt: its chunks are then simply put again; the first call
 * starts the first attempt) followed by put for chunk 0, 1, ... in order.
 * put gets the chunk's record (elem range, data_off from the start of the
 * attempt's first chunk, data_len, both checksums), its stored bytes, and
 * the CRC-32 of its reconstruction when want_crc (else 0). A quality-floor
 * fallback calls restart again: everything put since the previous restart
 * is void. Any error returned ends the encoding with that error.
 */
struct lcp_encode_sink {
	void (*scanned)(void *arg, const void *data, size_t len);
	lcp_err (*restart)(void *arg);
	lcp_err (*put)(void *arg, const struct lcp_chunk_info *chunk, const uint8_t *data,
		       uint32_t crc);
	void *arg;
	bool want_crc;
};

/* Encoded chunks an executor may hold ahead of the sink, per thread. */
#define LCP_ENCODE_WINDOW_PER_THREAD 4u
/* Largest tensor held whole as binary32 to fit a low-rank part (64 MiB). */
#define LCP_ENCODE_HOLD_MAX_ELEMS (1ull << 24)

/*
 * A pool of encoder threads, each with its own codec context, shared by any
 * number of concurrent encodings. Each encoding feeds it through its own
 * executor, and the threads take tasks from the executors that have work in
 * turn (one task each, round-robin), so one large tensor or file never holds
 * another back by more than one task per thread. With background, the
 * threads run at a lower scheduling priority (nice +LCP_ENCODE_BACKGROUND_NICE)
 * so that the process's other threads (a daemon's request threads) go
 * first. Create/free are not thread-safe against use; free only when no
 * executor is attached.
 */
#define LCP_ENCODE_BACKGROUND_NICE 10
struct lcp_encode_pool;
lcp_err lcp_encode_pool_create(unsigned threads, bool background, struct lcp_encode_pool **out);
void lcp_encode_pool_free(struct lcp_encode_pool *pool);
unsigned lcp_encode_pool_threads(const struct lcp_encode_pool *pool);

/* One client's queue into a pool. Used by one thread at a time (one
 * encoding at a time); any number of executors may share a pool. */
struct lcp_encode_exec;
lcp_err lcp_encode_exec_create(struct lcp_encode_pool *pool, struct lcp_encode_exec **out);
void lcp_encode_exec_free(struct lcp_encode_exec *exec);

/*
 * Ordered task runs: fn(arg, i, ctx) for i = 0 .. n-1, run by the
 * executor's pool threads (each call with a context no concurrent call
 * uses), or, with exec NULL, on the caller's thread with ctx, one task each
 * time the caller asks for a result. The caller consumes results in order:
 * lcp_encode_run_next sets *i to the next task (0, 1, ...), waits for it and
 * returns its error; at most `window` tasks run or wait ahead of the caller,
 * so a task's results may live in slot i % window of the caller's storage
 * until the next call. A failed task cancels those not yet started.
 * lcp_encode_run_end cancels what has not started, waits for what runs and
 * frees the run.
 */
typedef lcp_err (*lcp_task_fn)(void *arg, uint32_t i, struct lcp_codec_ctx *ctx);
struct lcp_encode_run;
lcp_err lcp_encode_run_start(struct lcp_encode_exec *exec, struct lcp_codec_ctx *ctx, uint32_t n,
			     uint32_t window, lcp_task_fn fn, void *arg,
			     struct lcp_encode_run **out);
lcp_err lcp_encode_run_next(struct lcp_encode_run *r, uint32_t *i);
void lcp_encode_run_end(struct lcp_encode_run *r);
/* The window an executor's runs should use: LCP_ENCODE_WINDOW_PER_THREAD
 * per pool thread; 1 for exec NULL. */
uint32_t lcp_encode_exec_window(const struct lcp_encode_exec *exec);

/*
 * Encodes the tensor of src with cfg as lcp_codec_encode would (the same
 * bytes, whatever the executor and its thread count), handing the chunks to
 * sink. ctx serves the caller's own steps (exec NULL: all of them). On
 * success *out is filled as by lcp_codec_encode except that data is NULL
 * (data_len still counts the bytes put in the last attempt) and
 * qlor.original_checksum is the xxh3 of the storage. On error *out is zeroed
 * and what was put is void.
 */
lcp_err lcp_codec_encode_stream(struct lcp_codec_ctx *ctx, const struct lcp_tensor_source *src,
				const struct lcp_config *cfg, struct lcp_encode_exec *exec,
				const struct lcp_encode_sink *sink, struct lcp_encoded *out);

/* The most bytes of the original tensor one stored chunk of a dtype dt
 * tensor covers, whatever the encoding (quantized chunks hold at most 128K
 * elements, lossless ones at most 256 KiB): a tensor of L bytes is stored in
 * at least ceil(L / this) chunks. */
uint64_t lcp_codec_max_chunk_bytes(enum lcp_dtype dt);

/* Parsed params block, immutable once opened; safe to share between threads. */
struct lcp_codec_tensor;
/* Validates and parses a params block (every field bounds-checked; a damaged
 * block gives LCP_ERR_CHECKSUM or LCP_ERR_FORMAT, never a crash). */
lcp_err lcp_codec_tensor_open(const uint8_t *params, size_t params_len,
			      struct lcp_codec_tensor **out);
void lcp_codec_tensor_free(struct lcp_codec_tensor *t);
enum lcp_dtype lcp_codec_tensor_dtype(const struct lcp_codec_tensor *t);
/* Elements of the whole tensor (the product of its dims). */
uint64_t lcp_codec_tensor_elems(const struct lcp_codec_tensor *t);
/* Elements per independently decodable block inside the tensor's chunks
 * (counted from each chunk's first element; the last block of a chunk may
 * be shorter): lcp_codec_decode_range decodes the blocks a range touches.
 * Equal to the chunk length when chunks decode only whole (format version
 * 1, lossless tensors). Some chunks of a tensor may still be stored in a
 * form that decodes whole (codec_format.h), so this is a cost hint, never a
 * condition. */
uint64_t lcp_codec_tensor_block_elems(const struct lcp_codec_tensor *t);

/*
 * Reconstructs one chunk into out, which must hold
 * (chunk->elem_end - chunk->elem_begin) * dtype bytes. Checks
 * chunk->stored_xxh3 against data first (LCP_ERR_CHECKSUM on mismatch: out is
 * then unspecified and must not be served). Plain C, fixed operation order,
 * no allocation beyond a bounded scratch: the same inputs give the same bytes
 * on every call and thread. Thread-safe for distinct out buffers.
 */
lcp_err lcp_codec_decode_chunk(const struct lcp_codec_tensor *t, const struct lcp_chunk_info *chunk,
			       const uint8_t *data, size_t data_len, void *out, size_t out_len);

/*
 * Reconstructs elements [first, first + count) of one chunk (chunk->
 * elem_begin <= first, count >= 1, first + count <= chunk->elem_end) into
 * out, which must hold count * dtype bytes: exactly the bytes
 * lcp_codec_decode_chunk writes for those elements. data must hold the whole
 * chunk's stored bytes; chunk->stored_xxh3 is checked first
 * (LCP_ERR_CHECKSUM: out unspecified). chunk->output_xxh3 covers the whole
 * chunk, so only a whole-chunk decode can check it; the stored checksum and
 * the deterministic decode are what stand behind a range. The work is that
 * of the touched blocks (lcp_codec_tensor_block_elems) plus the chunk's
 * small side stream. Same threading and allocation rules as
 * lcp_codec_decode_chunk.
 */
lcp_err lcp_codec_decode_range(const struct lcp_codec_tensor *t, const struct lcp_chunk_info *chunk,
			       const uint8_t *data, size_t data_len, uint64_t first, uint64_t count,
			       void *out, size_t out_len);

/*
 * The built-in "cpu" provider (src/codec/provider_cpu.c): this codec behind
 * the provider interface of lcpfs/provider.h, one self-contained payload per
 * tensor. Static storage; register it once with lcp_provider_register.
 */
struct lcp_provider;
const struct lcp_provider *lcp_provider_cpu(void);

#endif
