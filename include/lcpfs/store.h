/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The on-disk representation: a committed tensor file NAME in a backing
 * directory is a payload file at NAME plus a sidecar ".NAME.lcpfs" (a
 * versioned container whose per-tensor metadata uses the QLOR layout; every
 * byte is documented in man/lcpfs.5). A file with no sidecar, or whose
 * bytes do not begin with a payload header carrying its sidecar's random
 * file id, is raw: its bytes are the file's bytes.
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
 * likewise untouched. Files smaller than cfg->min_size are not packed, nor
 * files with several hard links (the commit would split them), nor names
 * longer than 248 bytes (the sidecar name must fit). Refusal reasons: the
 * format's own (rep->reason from lcp_format_parse), "not a tensor file",
 * "no compressible tensor", "smaller than min_size (N bytes)", "no space
 * left on device", "file changed while packing" (size, mtime or inode
 * differ at the end, or the name now points elsewhere), "commit refused
 * (file in use)" (may_commit said no), "encoding failed: ...".
 * Encoding streams one tensor at a time: peak memory is a small multiple of
 * the largest tensor (measured: 12 MiB peak RSS packing 48 MiB of 1 MiB
 * tensors). Temporaries are ".lcpfs-tmp.<16 hex>.p|s" in dirfd. The
 * payload takes the raw file's mode, owner (when permitted) and times.
 * Thread-safe for distinct names.
 * Test hook: with environment variable LCPFS_TEST_CRASH set to "temps"
 * (temporaries written and fsynced, nothing renamed), "sidecar" (sidecar
 * renamed into place, payload not) or "payload" (both renamed, directory
 * not yet fsynced), the process kills itself with SIGKILL at that step.
 */
lcp_err lcp_store_pack_at(int dirfd, const char *name, const struct lcp_config *cfg,
			  lcp_may_commit_fn may_commit, void *arg, struct lcp_pack_report *rep);

/* Progress of a pack: bytes of the raw file processed so far out of total.
 * Called from the packing thread between regions. */
typedef void (*lcp_progress_fn)(void *arg, uint64_t done, uint64_t total);

/* lcp_store_pack_at with a progress callback (progress may be NULL). */
lcp_err lcp_store_pack_progress_at(int dirfd, const char *name, const struct lcp_config *cfg,
				   lcp_may_commit_fn may_commit, void *arg,
				   lcp_progress_fn progress, void *progress_arg,
				   struct lcp_pack_report *rep);

/* Bounded LRU cache of decoded chunks, shared by open files. Thread-safe. */
struct lcp_chunk_cache;
lcp_err lcp_chunk_cache_create(size_t capacity_bytes, struct lcp_chunk_cache **out);
void lcp_chunk_cache_free(struct lcp_chunk_cache *c);

/* An open committed file. Reads are thread-safe. */
struct lcp_store_file;

/* Opens `name` in dirfd. LCP_ERR_NOENT when the file is raw: no sidecar
 * (always raw, even if its bytes look like a payload: a file copied from a
 * backing dir stays what it is), or a sidecar, valid or not, beside a file
 * that is not one of our payloads (stale). LCP_ERR_CHECKSUM (or
 * FORMAT/VERSION/TRUNCATED) when the file is a payload and its sidecar is
 * damaged or names another file id, or the payload's header or size
 * disagrees with its sidecar: damage, never served as raw.
 * cache may be NULL (no caching). Cost: reads and parses the whole sidecar
 * and every tensor's params block; keep the handle open while reading. */
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
 * rename flags as renameat2 (RENAME_NOREPLACE, RENAME_EXCHANGE). Orders,
 * each leaving a state lcp_store_recover_dir repairs: unlink removes the
 * payload, then the sidecar; rename moves the sidecar, then the payload
 * (RENAME_NOREPLACE: the payload first, as the atomic existence check);
 * RENAME_EXCHANGE exchanges or moves the sidecars, then exchanges the
 * payloads; link links the sidecar, then the payload. A raw file renamed
 * over a committed one removes the target's now stale sidecar. Errors:
 * LCP_ERR_NOENT, LCP_ERR_EXIST, LCP_ERR_ACCES, LCP_ERR_NOSPC, LCP_ERR_INVAL,
 * LCP_ERR_RANGE (a committed file's new name too long for its sidecar),
 * LCP_ERR_IO. Not atomic against concurrent namespace changes of the same
 * names (the daemon serializes them). */
lcp_err lcp_store_unlink_at(int dirfd, const char *name);
lcp_err lcp_store_rename_at(int olddirfd, const char *oldname, int newdirfd, const char *newname,
			    unsigned int flags);
lcp_err lcp_store_link_at(int olddirfd, const char *oldname, int newdirfd, const char *newname);

/*
 * At mount: in dirfd and below, removes temporaries (".lcpfs-tmp.*", also
 * those of a pack still running elsewhere on a shared backing dir: that pack
 * then fails and leaves its raw file), moves each valid sidecar beside the
 * payload in the same directory that carries its file id (completing or
 * undoing a rename, exchange or link interrupted between its two steps),
 * and removes valid sidecars whose payload is gone. Sidecars that do not
 * parse are left alone. A commit needs no finishing: it is its final rename.
 * Not to be run concurrently with other store operations on the same tree.
 */
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

/* Report of a raw (uncommitted) file name in dirfd: its format and tensors
 * as lcp_format_parse sees them (min_size 0), every tensor "exact", stored
 * size = logical size. For `lcpfs inspect` on a file that is not packed. */
lcp_err lcp_store_report_raw_at(int dirfd, const char *name, struct lcp_file_report *out);

/*
 * Renders r as JSON: {"format": "safetensors", "logical_size": N,
 * "stored_size": N, "tensors": [{"name", "dtype", "shape": [..], "encoding",
 * "bits", "group", "rank", "bpw", "sqnr_db", "cosine"}]}, with sqnr_db null
 * when infinite (exact tensors). This is what `lcpfs inspect --json` prints
 * and what the mount exposes as xattr "user.lcpfs.inspect". *json is a
 * NUL-terminated lcp_malloc'ed string (release with lcp_free). Thread-safe.
 */
lcp_err lcp_store_report_json(const struct lcp_file_report *r, char **json);

/* Checks every checksum (sidecar, each stored chunk, each reconstruction).
 * LCP_OK when intact; LCP_ERR_CHECKSUM naming the first damaged place in
 * where (e.g. "tensor 'w1' chunk 3 at offset 123456"). */
lcp_err lcp_store_verify(struct lcp_store_file *f, char *where, size_t where_len);

#endif
