/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The on-disk representation: a committed tensor file NAME in a backing
 * directory is a payload file at NAME plus a sidecar ".NAME.lcpfs" (a
 * versioned container whose per-tensor metadata uses the QLOR layout; every
 * byte is documented in man/lcpfs.5). A file with no sidecar, or whose
 * sidecar does not match its payload, is raw: its bytes are the file's bytes.
 *
 * Commit order (crash-safe: each instant leaves NAME readable as its raw or
 * its committed version): write payload and sidecar under temporary names,
 * fsync both, rename the sidecar into place, rename the payload over NAME,
 * fsync the directory. The sidecar names its payload by a random file id and
 * the payload's size and checksum, so a sidecar left beside a raw file is
 * recognised as stale and ignored (and removed by lcp_store_recover_dir).
 *
 * The daemon (src/fs) and the offline tool (src/cli) share all of this.
 * Functions take a directory fd plus a name in it (never a path with '/').
 */
#ifndef LCPFS_STORE_H
#define LCPFS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lcpfs/codec.h"
#include "lcpfs/config.h"
#include "lcpfs/err.h"
#include "lcpfs/format.h"

/* True for names the store uses for itself (sidecars, temporaries). The
 * mount hides them from readdir and answers ENOENT to lookups of them. */
bool lcp_store_is_internal_name(const char *name);

/* Outcome of a pack. */
struct lcp_pack_report {
	enum lcp_format format;
	bool committed;          /* true: payload + sidecar are in place */
	char reason[200];        /* why not committed ("not a tensor file", "truncated
	                            header: ...", "no space left", ...), or "" */
	uint64_t logical_size;   /* bytes the file reads as */
	uint64_t stored_size;    /* payload + sidecar bytes */
};

/* Called just before the first rename of a commit; returning false aborts
 * the commit (temporaries removed, raw file untouched). The daemon uses it to
 * refuse a swap when the file was reopened for writing meanwhile. */
typedef bool (*lcp_may_commit_fn)(void *arg);

/*
 * Compresses raw file `name` in dirfd in place. Bad format, quality refusal,
 * a full disk or any other failure to compress leaves the raw file exactly as
 * it was and returns LCP_OK with committed = false and the reason; an error
 * return means the attempt itself failed (I/O, memory) and the raw file is
 * likewise untouched. Files smaller than cfg->min_size are not packed.
 * Encoding streams one tensor at a time: peak memory is a small multiple of
 * the largest tensor. Thread-safe for distinct names.
 */
lcp_err lcp_store_pack_at(int dirfd, const char *name, const struct lcp_config *cfg,
			  lcp_may_commit_fn may_commit, void *arg, struct lcp_pack_report *rep);

/* Bounded LRU cache of decoded chunks, shared by open files. Thread-safe. */
struct lcp_chunk_cache;
lcp_err lcp_chunk_cache_create(size_t capacity_bytes, struct lcp_chunk_cache **out);
void lcp_chunk_cache_free(struct lcp_chunk_cache *c);

/* An open committed file. Reads are thread-safe. */
struct lcp_store_file;

/* Opens `name` in dirfd. LCP_ERR_NOENT when the file is raw (no valid
 * sidecar). A sidecar whose own checksum fails: LCP_ERR_CHECKSUM. cache may
 * be NULL (no caching). */
lcp_err lcp_store_open_at(int dirfd, const char *name, struct lcp_chunk_cache *cache,
			  struct lcp_store_file **out);
void lcp_store_close(struct lcp_store_file *f);
uint64_t lcp_store_logical_size(const struct lcp_store_file *f);
/* Bytes really stored (payload + sidecar), for st_blocks and ratios. */
uint64_t lcp_store_stored_size(const struct lcp_store_file *f);

/*
 * Reads up to len bytes at off into buf (short only at end of file; *nread
 * says how many). Decodes only the chunks the range touches; the bytes equal
 * those of a whole-file decode. A chunk whose checksum fails gives
 * LCP_ERR_CHECKSUM and no bytes (the caller answers EIO); *bad_off receives
 * the file offset of the damaged chunk when bad_off is non-NULL.
 */
lcp_err lcp_store_read(struct lcp_store_file *f, void *buf, size_t len, uint64_t off,
		       size_t *nread, uint64_t *bad_off);

/* Replaces committed `name` by a raw file holding its reconstructed bytes,
 * atomically (the committed version stays readable until the rename), then
 * removes the sidecar. */
lcp_err lcp_store_materialize_at(int dirfd, const char *name);

/* Sidecar-aware namespace operations: the sidecar follows its payload.
 * rename flags as renameat2 (RENAME_NOREPLACE, RENAME_EXCHANGE). */
lcp_err lcp_store_unlink_at(int dirfd, const char *name);
lcp_err lcp_store_rename_at(int olddirfd, const char *oldname, int newdirfd, const char *newname,
			    unsigned int flags);
lcp_err lcp_store_link_at(int olddirfd, const char *oldname, int newdirfd, const char *newname);

/* At mount: removes temporaries and stale sidecars in dirfd and below,
 * finishing nothing half-way (a commit is its final rename). */
lcp_err lcp_store_recover_dir(int dirfd);

/* What `lcpfs inspect` and the xattrs show. */
struct lcp_tensor_report {
	char *name;
	char dtype[16];
	uint32_t ndims;
	uint64_t dims[LCP_MAX_DIMS];
	const char *encoding;    /* "q4", "q8", "lossless", "exact" */
	uint8_t bits;
	uint32_t group_size;
	uint16_t rank;
	double bits_per_weight;
	double sqnr_db;
	double cosine;
};
struct lcp_file_report {
	enum lcp_format format;
	uint64_t logical_size;
	uint64_t stored_size;
	uint64_t original_xxh3;  /* provenance only */
	struct lcp_config config;
	size_t ntensors;
	struct lcp_tensor_report *tensors;
};
lcp_err lcp_store_report(const struct lcp_store_file *f, struct lcp_file_report *out);
void lcp_file_report_free(struct lcp_file_report *r);

/* Checks every checksum (sidecar, each stored chunk, each reconstruction).
 * LCP_OK when intact; LCP_ERR_CHECKSUM naming the first damaged place in
 * where (e.g. "tensor 'w1' chunk 3 at offset 123456"). */
lcp_err lcp_store_verify(struct lcp_store_file *f, char *where, size_t where_len);

#endif
