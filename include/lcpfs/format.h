/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tensor file formats: detection by validating the header, and the region map
 * of a file, an ordered list of regions that covers every byte exactly once.
 *
 *   EXACT  bytes kept as they are (headers, padding, metadata, integer/bool/F8
 *          tensors, tensors under min_size, 1-D tensors, unknown data)
 *   TENSOR a float tensor the codec may compress (F32, F16, BF16, F64)
 *   CRC32  4 bytes that hold the little-endian CRC-32 of another region's
 *          reconstructed bytes (the CRC fields of a PyTorch zip entry)
 *
 * A file that fails validation gets format LCP_FORMAT_UNKNOWN (or the format
 * it claimed, with ok = false) and a single EXACT region, with the reason.
 *
 * Per format (the files in src/format say why):
 *   safetensors  header (8 + N bytes) EXACT; the data_offsets must tile the
 *                data section exactly. F32/F16/BF16/F64 tensors by the rule below.
 *   GGUF v2/v3   header up to the aligned data start EXACT; F32/F16/BF16 by
 *                the rule below, dims reversed into storage order; quantized
 *                and integer types EXACT; padding EXACT.
 *   GGML legacy  ('ggml', 'ggmf' v1, 'ggjt' v1-3) valid but kept whole:
 *                ok = true, one EXACT region, reason says so.
 *   NumPy        header EXACT; the array (named "array") by the rule below
 *                when descr is <f2/<f4/<f8; Fortran-order dims reversed.
 *   PyTorch zip  a storage used by exactly one tensor, contiguous, offset 0,
 *                spanning the storage, becomes a TENSOR (named by its dict
 *                key) by the rule below, plus CRC32 regions for its CRC
 *                fields; a zip without <archive>/data.pkl is UNKNOWN; a torch
 *                zip with compressed entries is ok = true, one EXACT region.
 *   Rule: TENSOR when the dtype is a float the codec takes, 2 <= ndims <=
 *   LCP_MAX_DIMS, len >= min_size and the name is not a rotary-embedding
 *   table (freqs*, inv_freq, rotary*, rope*: computed constants the model is
 *   very sensitive to); otherwise EXACT with exact_reason.
 *   Zero-length tensors have no region. LCP_FORMAT_RAW is never returned.
 *
 * Limits: every parser's time is linear in the bytes it reads, and what one
 * file can make it hold is bounded by named constants, each with its reason
 * beside it (ST_MAX_HEADER_BYTES in safetensors.c, GGUF_MAX_* in gguf.c,
 * NPY_MAX_* in npy.c, ZIP_MAX_* in torchzip.c, PKL_* in pickle.h); the
 * table is in lcpfs(5), LIMITS. A file past a limit gets ok = false with
 * the limit in its reason, like any invalid file.
 */
#ifndef LCPFS_FORMAT_H
#define LCPFS_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lcpfs/codec.h"
#include "lcpfs/dtype.h"
#include "lcpfs/err.h"

/* Numbered in the seed's order. */
enum lcp_format {
	LCP_FORMAT_SAFETENSORS = 0,
	LCP_FORMAT_GGUF = 1,
	LCP_FORMAT_GGML = 2,
	LCP_FORMAT_PYTORCH = 3,
	LCP_FORMAT_NUMPY = 4,
	LCP_FORMAT_RAW = 5,
	LCP_FORMAT_UNKNOWN = 6,
};

/* ".safetensors", ".gguf", ".ggml", ".pt", ".npy", ".bin", "" (seed). */
const char *lcp_format_extension(enum lcp_format f);
/* "safetensors", "gguf", "ggml", "pytorch", "numpy", "raw", "unknown". */
const char *lcp_format_name(enum lcp_format f);

/* Random-access source of file bytes. read must fill buf completely or fail. */
struct lcp_reader {
	uint64_t size;
	lcp_err (*read)(void *ctx, void *buf, size_t len, uint64_t off);
	void *ctx;
};
/* Reader over a memory buffer (ctx points at the struct lcp_mem_source). */
struct lcp_mem_source {
	const uint8_t *data;
	size_t len;
};
void lcp_reader_from_memory(struct lcp_reader *r, struct lcp_mem_source *src);
/* Reader over a file descriptor (pread; ctx points at *fd, which must stay
 * valid while r is used). size from fstat. LCP_ERR_IO when fstat fails,
 * LCP_ERR_INVAL for anything but a regular file. A read past the current end
 * (the file shrank) gives LCP_ERR_TRUNCATED. */
lcp_err lcp_reader_from_fd(struct lcp_reader *r, int *fd);

enum lcp_region_kind {
	LCP_REGION_EXACT = 0,
	LCP_REGION_TENSOR = 1,
	LCP_REGION_CRC32 = 2,
};

struct lcp_region {
	enum lcp_region_kind kind;
	uint64_t off;            /* byte offset in the file */
	uint64_t len;            /* byte length (4 for CRC32) */
	char *name;              /* tensor name (owned) or NULL for non-tensor bytes;
	                            .npy: "array"; .pt: the dict key, else the
	                            zip entry name */
	char dtype_name[16];     /* the file's own dtype spelling ("F32", "I32",
	                            "Q8_0", "<f4", "FloatStorage") or "" */
	/* dtype: TENSOR only. ndims/dims: TENSOR, and EXACT tensors when known
	 * (ndims 0 for a scalar or when unknown). */
	enum lcp_dtype dtype;
	uint32_t ndims;
	uint64_t dims[LCP_MAX_DIMS]; /* in storage order: row-major over the bytes
	                                (a Fortran-order array's dims are reversed,
	                                a GGUF tensor's dims are reversed) */
	/* CRC32 only: index of the region (in this map) whose reconstructed bytes
	 * the CRC covers. A zip entry's local and central CRC fields each get one. */
	uint32_t crc_of;
	/* EXACT tensors are tensors too: why this one is kept exact, a static
	 * string: "dtype not compressed", "1-D" (also scalars), "under min_size",
	 * "positional table", "too many dims", "quantized" (GGUF), "big-endian" (.npy), and for .pt
	 * storages "storage shared by several tensors", "view of a storage",
	 * "storage without a tensor", "unknown storage type", "unusual tensor
	 * shape". NULL for non-tensor bytes. */
	const char *exact_reason;
};

struct lcp_region_map {
	enum lcp_format format;
	bool ok;                 /* false: validation failed, one EXACT region;
	                            UNKNOWN files always have ok = false */
	char reason[160];        /* why !ok; for an ok file kept as one EXACT
	                            region (GGML, compressed torch zip) why; else "" */
	uint64_t file_size;
	size_t nregions;
	struct lcp_region *regions; /* ordered by off, contiguous, covering [0, file_size) */
};

/*
 * Detects the format and builds the region map. Tensors under min_size bytes
 * and 1-D tensors become EXACT. Never fails on bad content (that gives
 * ok = false with a reason); returns an error only for I/O or allocation
 * failure. Reads the file through r; peak memory is bounded by the header
 * size, never the data section.
 */
lcp_err lcp_format_parse(const struct lcp_reader *r, uint64_t min_size, struct lcp_region_map *out);
void lcp_region_map_free(struct lcp_region_map *m);

/* Format of a complete file held in memory, by full validation (not magic
 * bytes alone): what lcp_format_parse would report, or LCP_FORMAT_UNKNOWN when
 * validation fails. */
enum lcp_format lcp_format_detect(const void *data, size_t len);

#endif
