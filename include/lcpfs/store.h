/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The on-disk representation and its protocols (every byte and rule is in
 * man/lcpfs.5). A committed tensor file NAME in a backing directory is a
 * payload file at NAME (a 32-byte header carrying a random file id, then
 * chunk bytes) plus a sidecar found by name: ".NAME.lcpfs", or
 * ".lcpfs-h.<32 hex of xxh3-128(NAME)>" when that would exceed NAME_MAX.
 *
 * What NAME is gets decided from durable facts only (lcp_store_probe_at):
 * compressed, raw, damaged, or "cannot tell now" (an error: a sidecar that
 * cannot be opened or is not a regular file, a payload beside another
 * payload's sidecar while a rename is unfinished, ...). A payload is never
 * served as content, and the store never deletes anything on a guess.
 *
 * Every namespace change is a sequence of renames, links and unlinks each of
 * whose prefixes lcp_store_recover_dir repairs (pairing sidecars and
 * payloads by file id across the whole tree), so a crash at any instant
 * leaves each file readable as its old or its new version.
 *
 * Names are opened only after fstatat says they are regular files, with
 * O_NONBLOCK | O_NOCTTY | O_NOFOLLOW, and re-checked after the open: no
 * store call ever opens a FIFO, a device or a socket, or blocks on one.
 *
 * The daemon (src/fs) and the offline tool (src/cli) share all of this.
 * Functions take a directory fd plus a name in it (never a path with '/').
 *
 * Test hook: with environment variable LCPFS_TEST_CRASH set to one of the
 * step names listed at each protocol below, the process kills itself with
 * SIGKILL right after that step.
 */
#ifndef LCPFS_STORE_H
#define LCPFS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "lcpfs/codec.h"
#include "lcpfs/config.h"
#include "lcpfs/err.h"
#include "lcpfs/format.h"

/* Bounded LRU cache of decoded chunks, shared by open files. Thread-safe. */
struct lcp_chunk_cache;
lcp_err lcp_chunk_cache_create(size_t capacity_bytes, struct lcp_chunk_cache **out);
void lcp_chunk_cache_free(struct lcp_chunk_cache *c);

/* An open committed file. Reads are thread-safe. */
struct lcp_store_file;

/* Room for any sidecar or temporary name, NUL included. */
#define LCP_STORE_NAME_LEN 256

/* True for names the store uses for itself: sidecars ".X.lcpfs" and every
 * name beginning with ".lcpfs-" (temporaries, hashed and parked sidecars).
 * The mount hides them from readdir, answers ENOENT to lookups of them and
 * EPERM to creating them; `lcpfs pack` refuses them as a destination. */
bool lcp_store_is_internal_name(const char *name);

/*
 * A temporary file ".lcpfs-tmp.<16 hex>.<tag>" in dirfd, created with mode
 * and opened read-write. While its fd is open the temporary is locked (an
 * open-file-description lock), and recovery, in this or any other process,
 * removes only temporaries nobody holds. Create returns LCP_ERR_AGAIN in
 * the rare case a concurrent recovery removed it before the lock was taken.
 */
struct lcp_store_temp {
	int fd;
	char name[40];
};
lcp_err lcp_store_temp_create(int dirfd, char tag, unsigned mode, struct lcp_store_temp *t);
/* Unlinks the temporary (if its name still holds it) and closes its fd. */
void lcp_store_temp_remove(int dirfd, struct lcp_store_temp *t);

/* Gives open regular file to_fd the owner (when permitted), mode bits
 * (setuid and setgid included), extended attributes (except the store's own
 * "user.lcpfs.*") and atime/mtime of open file from_fd: what every swap
 * of a file's representation keeps. */
lcp_err lcp_store_copy_attributes(int from_fd, int to_fd);

/*
 * Opens regular file name in dirfd without side effects (the store's
 * own opens, and the tool's of a user's file): fstatat first
 * (nothing that is not a regular file is ever opened: LCP_ERR_UNSUPPORTED),
 * then openat with flags | O_NONBLOCK | O_NOCTTY | O_NOFOLLOW | O_CLOEXEC,
 * then fstat: a different object than the one stat'ed (replaced meanwhile)
 * gives LCP_ERR_AGAIN. On success *fd is open and *st describes it; on
 * LCP_ERR_UNSUPPORTED *st describes what is there. Other errors are the
 * system call's (LCP_ERR_NOENT when absent).
 */
lcp_err lcp_store_open_regular(int dirfd, const char *name, int flags, int *fd, struct stat *st);

/* Gives the sidecar of NAME in dirfd the owner uid and gid ((uid_t)-1 or
 * (gid_t)-1 keeps that one) and the read and write bits of mode (mode &
 * 0666), as a commit does: what a chmod or chown of a compressed file does
 * to its sidecar (lcpfs(5)). The owner is left when not permitted (an
 * unprivileged caller), as by a commit. LCP_OK also when NAME has no
 * sidecar of the store's. With sync_fd non-NULL, *sync_fd is an fd of the
 * sidecar when anything changed, for the caller to fsync (outside its
 * locks: an fsync may take long) and close, else -1; with sync_fd NULL
 * nothing is made durable. Thread-safe; the caller serializes it with
 * changes of NAME. */
lcp_err lcp_store_sidecar_attrs_at(int dirfd, const char *name, unsigned mode, uid_t uid,
				   gid_t gid, int *sync_fd);

/* What a file is. */
enum lcp_repr {
	LCP_REPR_RAW = 0,        /* its bytes are the file's bytes */
	LCP_REPR_COMPRESSED = 1, /* a payload and its sidecar agree */
	LCP_REPR_DAMAGED = 2,    /* compressed, but unreadable: reads are EIO */
};

struct lcp_probe {
	enum lcp_repr repr;
	bool regular;          /* NAME is a regular file (others are RAW, unopened) */
	uint64_t dev, ino;     /* the object NAME named */
	uint64_t nlink;
	uint64_t size;         /* its size on the backing */
	/* COMPRESSED only (else 0), from the sidecar, so that a caller can
	 * answer a stat without opening the file: */
	uint64_t logical_size;   /* what a reader sees (lcp_store_logical_size) */
	uint64_t stored_size;    /* payload + sidecar bytes (lcp_store_stored_size) */
	uint64_t sidecar_blocks; /* the sidecar's st_blocks (512-byte units) */
	char note[512];        /* DAMAGED: what is wrong. RAW: something worth a log
	                          line ("its bytes are an lcpfs payload, but no
	                          sidecar is beside it"), or "". Cannot tell (an
	                          error return): why, or "". */
	char refused[200];     /* RAW: the refusal recorded on the file, or "" */
};

/*
 * Decides what NAME in dirfd is:
 *   COMPRESSED  NAME's header carries a file id, and the sidecar found by
 *               NAME parses, carries that id, and agrees with the payload's
 *               size and header checksum;
 *   DAMAGED     the sidecar is there but fails its checksum or does not
 *               parse beside a payload, or the sidecar's id is in NAME's
 *               header but size or header checksum disagree, or NAME's
 *               header is damaged while its size and first stored chunk
 *               are the sidecar's payload's;
 *   RAW         not a regular file, or no sidecar (a user's copy of payload
 *               bytes reads as its own bytes), or a sidecar provably stale
 *               (NAME is not its payload: wrong size, or first chunk
 *               differs) beside a file that is not a payload.
 * Returns LCP_OK with pr filled, LCP_ERR_NOENT when NAME does not exist, or
 * another error when it cannot tell now, with pr->note saying why: any
 * open or read failure (LCP_ERR_MFILE, NOMEM, IO, ACCES, ...), a sidecar
 * name holding a symlink, FIFO or anything not a regular file
 * (LCP_ERR_AGAIN), a payload beside a sidecar of another payload, or a
 * payload with several links and no sidecar beside this name (an unfinished
 * rename or link: LCP_ERR_AGAIN until recovery pairs them), or a payload
 * with no sidecar that NAME no longer holds once the sidecar was looked for
 * (renamed away meanwhile: LCP_ERR_AGAIN). Nothing is
 * cached: ask again later.
 * With out non-NULL a COMPRESSED file is also opened for reading into *out
 * (cache may be NULL: no caching); with out NULL the probe only reads the
 * sidecar and the payload header. Thread-safe.
 */
lcp_err lcp_store_probe_at(int dirfd, const char *name, struct lcp_chunk_cache *cache,
			   struct lcp_probe *pr, struct lcp_store_file **out);

/* Outcome of a pack. */
enum lcp_pack_outcome {
	LCP_PACK_COMMITTED = 0, /* payload + sidecar are in place */
	LCP_PACK_NOT_TENSOR,    /* not a tensor file: stays raw, nothing recorded */
	LCP_PACK_REFUSED,       /* a tensor file left raw; the reason is recorded
	                           on it as the refusal marker (lcpfs.5) */
	LCP_PACK_RETRY,         /* changed while packing, or in the way: try again */
	LCP_PACK_DEFERRED,      /* a tensor file left raw for a transient cause (no
	                           space, too many open files, no memory, an I/O
	                           error): try again later; packed in place, it
	                           carries a retry marker (the reason after
	                           LCP_STORE_RETRY_PREFIX) */
};

/* The start of a refusal marker that asks for a retry (a transient cause). */
#define LCP_STORE_RETRY_PREFIX "retry: "
/* The refusal of a pack in place of a file with several hard links: it
 * holds only while the file has them (a caller packs it again once it has
 * one link left). */
#define LCP_STORE_REFUSED_LINKS "file has several hard links"

struct lcp_pack_report {
	enum lcp_format format;
	enum lcp_pack_outcome outcome;
	bool committed;          /* outcome == LCP_PACK_COMMITTED */
	char reason[200];        /* why not committed ("not a tensor file", "truncated
	                            header: ...", "no space left on device", ...), or "" */
	uint64_t logical_size;   /* bytes the file reads as */
	uint64_t stored_size;    /* payload + sidecar bytes */
};

/* Progress of a pack: bytes of the raw file processed so far out of total.
 * Called from the packing thread between regions. */
typedef void (*lcp_progress_fn)(void *arg, uint64_t done, uint64_t total);

/* A pack whose temporaries are written, waiting for its commit. */
struct lcp_pack_job;

/* How a pack runs. */
struct lcp_pack_opts {
	const struct lcp_config *cfg;
	struct lcp_encode_pool *pool; /* encoder threads, shared with any other
					 packs, or NULL: the calling thread
					 encodes. The payload's bytes are the
					 same either way. */
	lcp_progress_fn progress;     /* may be NULL */
	void *progress_arg;
};

/*
 * Phase one of a pack: parses NAME in dirfd, encodes it, writes payload and
 * sidecar temporaries (with the raw file's metadata) and fsyncs them. Takes
 * no lock of the caller's and calls nothing back but progress. With srcfd
 * -1 the raw file is NAME itself (pack in place); otherwise it is the open
 * regular file srcfd (`lcpfs pack SRC DST`), NAME is only the destination,
 * and no refusal marker is recorded (the caller records one where it wants
 * it: lcp_store_refusal_record). LCP_OK with *job set: ready to commit;
 * LCP_OK with *job NULL: not packed, rep says why (outcome NOT_TENSOR,
 * REFUSED, RETRY or DEFERRED); an error: the attempt failed for a reason
 * that is neither the file's nor transient (bad arguments, permissions).
 * In every case but a commit the raw file is untouched (the marker aside)
 * and no temporary is left. Refusals: the format's own reason (rep->reason
 * from lcp_format_parse), "no compressible tensor", "smaller than min_size
 * (N bytes)", "file has several hard links", "encoding failed: ...".
 * Retry: "file changed while packing", "already compressed or in the way".
 * Deferred: the cause ("no space left on device", "out of memory", ...).
 * Holes of the raw file are never read: they are zeros.
 * Encoding streams every tensor through the opts' pool: peak memory is per
 * encoder thread one chunk's working set (plus a held tensor of at most
 * LCP_ENCODE_HOLD_MAX_ELEMS while its low rank is chosen), plus a bounded
 * window of encoded chunks, whatever the file's or its tensors' sizes.
 * Thread-safe for distinct names.
 */
lcp_err lcp_store_pack_prepare_opts(int dirfd, const char *name, int srcfd,
				    const struct lcp_pack_opts *opts, struct lcp_pack_report *rep,
				    struct lcp_pack_job **job);

/* lcp_store_pack_prepare_opts on the calling thread alone. */
lcp_err lcp_store_pack_prepare_at(int dirfd, const char *name, int srcfd,
				  const struct lcp_config *cfg, lcp_progress_fn progress,
				  void *progress_arg, struct lcp_pack_report *rep,
				  struct lcp_pack_job **job);

/* Records what rep says on open regular file fd as a pack in place would:
 * REFUSED, its reason; DEFERRED, the retry marker; else nothing. */
void lcp_store_refusal_record(int fd, const struct lcp_pack_report *rep);

/* True when refusal marker text (lcp_probe.refused) asks for a retry. */
bool lcp_store_refusal_is_retry(const char *marker);

/*
 * Phase two: commits a prepared pack from durable facts. In place, NAME must
 * still be the same inode with the same size, mtime and ctime as prepared
 * (a chmod, chown or write meanwhile changes ctime: outcome RETRY) and have
 * one link (a hard link made meanwhile: REFUSED "file has several hard
 * links", never a split). The payload already has the raw file's owner,
 * mode bits (setuid and setgid included), times and extended attributes
 * (except the store's own "user.lcpfs.*"), carried by prepare and still
 * right since ctime did not change. The renames run in an order every
 * prefix of which recovery repairs:
 *   sidecar to its name (or, when that name is taken, to a parked name),
 *   [step "sidecar"], payload over NAME [step "payload"], parked sidecar to
 *   its name [step "parked"], fsync of the directory.
 * Step "temps" is just before the first rename. The checks and renames run
 * under NAME's lock (a byte of the directory's lock file ".lcpfs-lock"), so
 * two commits of one name, in two processes or on two machines of a backing
 * that shares locks, never interleave: the later one finds the earlier's
 * result and replaces it whole. Outcome and sizes go to rep. The daemon
 * calls it under its own gate. The job stays the caller's: release it with
 * lcp_store_pack_free.
 */
lcp_err lcp_store_pack_commit(struct lcp_pack_job *job, struct lcp_pack_report *rep);

/* The (dev, ino) of the raw file a job packs. */
void lcp_store_pack_source(const struct lcp_pack_job *job, uint64_t *dev, uint64_t *ino);

/* Removes whatever temporaries the job still has and frees it (NULL: no-op). */
void lcp_store_pack_free(struct lcp_pack_job *job);

/* Prepare and commit in one call (the offline tool, tests). */
lcp_err lcp_store_pack_opts(int dirfd, const char *name, int srcfd,
			    const struct lcp_pack_opts *opts, struct lcp_pack_report *rep);
lcp_err lcp_store_pack_at(int dirfd, const char *name, int srcfd, const struct lcp_config *cfg,
			  lcp_progress_fn progress, void *progress_arg,
			  struct lcp_pack_report *rep);

/* lcp_store_probe_at with the old answer for callers that only read:
 * LCP_OK when compressed (*out open), LCP_ERR_NOENT when raw or absent,
 * LCP_ERR_CHECKSUM when damaged, another error when it cannot tell. */
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

/*
 * Decode-ahead for sequential readers. A pool (one per mount) owns worker
 * threads and a byte budget, the window: the decoded chunks waiting for
 * their readers, in all streams together, never take more than window
 * bytes (the buffers are kept for reuse up to that bound, so the memory is
 * the window, not a multiple of it). Each open file reads through a stream,
 * which watches its reads: after SEQ reads that each start at or near the
 * end of the previous ones, it has the workers decode the whole chunks past
 * that end, up to twice the bytes read in the run and at most window
 * bytes ahead, while the reader copies out what is ready. A read away from
 * the run cancels the chunks not yet started. Reads of chunks nobody
 * scheduled decode in the reader's thread (lcp_store_read); the bytes are
 * the same either way, and a damaged chunk fails only the reads that
 * touch it (LCP_ERR_CHECKSUM, as lcp_store_read).
 */
struct lcp_decode_ahead;
/* threads >= 1 workers; window_bytes 0 makes every stream a plain reader. */
lcp_err lcp_decode_ahead_create(unsigned threads, size_t window_bytes,
				struct lcp_decode_ahead **out);
/* Stops and joins the workers. The memory goes when the last stream is
 * closed (streams still open keep working, without decode-ahead). NULL:
 * no-op. */
void lcp_decode_ahead_free(struct lcp_decode_ahead *da);
/* Bytes of decoded chunks and spare buffers held now, and the most ever
 * held (never more than the window). Thread-safe. */
void lcp_decode_ahead_usage(struct lcp_decode_ahead *da, size_t *held, size_t *peak);

struct lcp_read_stream;
/* A stream reading f (which must outlive it) through da (NULL: no
 * decode-ahead). */
lcp_err lcp_read_stream_open(struct lcp_store_file *f, struct lcp_decode_ahead *da,
			     struct lcp_read_stream **out);
/* lcp_store_read through the stream. Thread-safe: several threads may read
 * one stream at once (the kernel sends a file's read-ahead requests in
 * parallel). */
lcp_err lcp_read_stream_read(struct lcp_read_stream *s, void *buf, size_t len, uint64_t off,
			     size_t *nread, uint64_t *bad_off);
/*
 * The same read without copying what was decoded ahead: on LCP_OK, v's
 * segments (in order, *nread bytes in all) point into decoded chunks the
 * stream keeps for the caller, and into buf (len bytes, used for
 * everything else). The caller hands v back with lcp_read_stream_release
 * once it is done with the bytes (after the reply is written); until then
 * the chunks stay. On an error v holds nothing. Thread-safe as read.
 */
#define LCP_READ_VIEW_SEGS 16
struct lcp_read_view {
	unsigned nseg;
	struct iovec seg[LCP_READ_VIEW_SEGS];
	unsigned nheld;               /* for the stream: what v keeps */
	void *held[LCP_READ_VIEW_SEGS];
	size_t held_len[LCP_READ_VIEW_SEGS];
};
lcp_err lcp_read_stream_view(struct lcp_read_stream *s, void *buf, size_t len, uint64_t off,
			     struct lcp_read_view *v, size_t *nread, uint64_t *bad_off);
void lcp_read_stream_release(struct lcp_read_stream *s, struct lcp_read_view *v);
/* Drops the stream's decoded chunks (waiting for any a worker is decoding).
 * No read of s may be running or follow, and no view may be held. NULL:
 * no-op. */
void lcp_read_stream_close(struct lcp_read_stream *s);

/*
 * Materializing: replacing compressed NAME by a raw file holding its
 * reconstructed bytes, in two phases like a pack. Prepare decodes into a
 * locked temporary and fsyncs it, with no lock of the caller's held:
 * LCP_ERR_NOENT when NAME is raw or absent, LCP_ERR_CHECKSUM when damaged,
 * LCP_ERR_MLINK when the payload has several links (a rename could not keep
 * them together: the file stays compressed and read-only), another error
 * when it cannot tell. Commit checks that NAME is still the same payload
 * (same inode, size and mtime; else LCP_ERR_AGAIN) with one link, gives the
 * temporary the payload's current owner, mode bits (setuid and setgid
 * included), extended attributes and times, renames it over NAME [step
 * "materialize"] (the reconstruction is what NAME read as, so readers see
 * no change), removes the sidecar and fsyncs the directory. Free removes
 * the temporary unless committed.
 */
struct lcp_materialize;
lcp_err lcp_store_materialize_prepare_at(int dirfd, const char *name,
					 struct lcp_materialize **out);
lcp_err lcp_store_materialize_commit(struct lcp_materialize *m);
void lcp_store_materialize_free(struct lcp_materialize *m);
/* The (dev, ino) of the raw file a committed materialize put at NAME. */
void lcp_store_materialize_result(const struct lcp_materialize *m, uint64_t *dev, uint64_t *ino);
/* Prepare and commit in one call. */
lcp_err lcp_store_materialize_at(int dirfd, const char *name);

/*
 * Empties compressed (or damaged) NAME, for an open with O_TRUNC: a new
 * empty file with the payload's owner, mode bits and extended attributes
 * (except the store's own), its mtime now, is written as a locked
 * temporary and fsynced, renamed over NAME if NAME still is that payload
 * with one link [step "discard"], and the sidecar removed. The payload
 * itself is never changed (other processes, other machines, may be reading
 * it). *dev and *ino receive the new file's. LCP_ERR_NOENT when NAME is raw
 * or absent, LCP_ERR_MLINK with several links, LCP_ERR_AGAIN when NAME
 * changed meanwhile.
 */
lcp_err lcp_store_discard_at(int dirfd, const char *name, uint64_t *dev, uint64_t *ino);
/* The same in two steps, so that a caller serializing NAME's namespace
 * holds its lock for the swap only. Prepare (dirfd must stay open until
 * free): the checks above, and the empty temporary written and fsynced.
 * Commit: under NAME's lock, NAME must still be that payload with the
 * same metadata (else LCP_ERR_AGAIN: prepare again), then the rename and
 * the directory's fsync; no file is fsynced. Free removes an uncommitted
 * temporary (d may be NULL). Errors as above. */
struct lcp_discard;
lcp_err lcp_store_discard_prepare_at(int dirfd, const char *name, struct lcp_discard **out);
lcp_err lcp_store_discard_commit(struct lcp_discard *d, uint64_t *dev, uint64_t *ino);
void lcp_store_discard_free(struct lcp_discard *d);

/*
 * Namespace operations that keep each file's sidecar with its payload.
 * rename flags as renameat2 (RENAME_NOREPLACE, RENAME_EXCHANGE). Orders
 * (every prefix leaves a state in which no name reads wrong bytes, and
 * which lcp_store_recover_dir completes or undoes):
 *   unlink of a compressed file: payload [step "unlink"], then sidecar;
 *   rename of a compressed A to T whose sidecar name is free: link A's
 *     sidecar to T's sidecar name [step "rename-link"], payload A over T
 *     [step "rename-payload"], unlink A's sidecar;
 *   rename of a compressed A over a T that has a sidecar: payload A over T
 *     [step "rename-payload"] (T reads "cannot tell" until) A's sidecar over
 *     T's sidecar;
 *   rename of a raw A over a compressed T: A over T [step "rename-payload"]
 *     (T's sidecar is now provably stale), then T's sidecar is removed;
 *   RENAME_EXCHANGE: the payloads [step "exchange"], then the sidecars
 *     (exchanged, or moved when one side is raw);
 *   link of a compressed A: A's sidecar to T's sidecar name [step
 *     "link-sidecar"], then the payload.
 * Two names of one inode renamed onto each other change nothing. A name
 * that cannot be told (lcp_store_probe_at error) is not moved: that error.
 * Errors are the system calls' (LCP_ERR_NOENT, EXIST, NOTEMPTY, ISDIR,
 * NOTDIR, XDEV, PERM, ACCES, MLINK, BUSY, NOSPC, INVAL, ...). When either
 * name has a sidecar, the sequence runs under the names' locks (as do
 * every commit, materialize and discard): it never interleaves with
 * another process's sequence on those names. Plain files (no sidecar at
 * either name) are renamed, linked or unlinked by the system call alone.
 */
lcp_err lcp_store_unlink_at(int dirfd, const char *name);
lcp_err lcp_store_rename_at(int olddirfd, const char *oldname, int newdirfd, const char *newname,
			    unsigned int flags);
lcp_err lcp_store_link_at(int olddirfd, const char *oldname, int newdirfd, const char *newname);

/* Forgets the refusal marker of regular file NAME (its bytes changed);
 * a missing marker is not an error. */
lcp_err lcp_store_refusal_clear_at(int dirfd, const char *name);

/*
 * At mount (and `lcpfs recover`): in the tree below dirfd,
 *   - removes temporaries that no live process holds (never another
 *     running mount's or pack's: those are locked);
 *   - pairs sidecars and payloads by file id across the whole tree: a
 *     sidecar whose name does not hold its payload (intact or with a
 *     damaged header) moves beside the one payload inode carrying its id
 *     that has no sidecar of its own (finishing or undoing an interrupted
 *     rename, exchange, link or commit, across directories too); another
 *     name of that inode gets a link of it;
 *   - removes a sidecar only with proof: the name it guards holds no
 *     payload of it, and no payload anywhere in the tree carrying its id
 *     lacks a sidecar.
 * Sidecars that do not parse, names it cannot judge, and sidecars of a
 * payload a live process is still writing are left alone (and logged).
 * Each change is one rename, link or unlink, so a crash during recovery
 * leaves a state the next run repairs. Takes the tree's use lock (a
 * flock(2) of dirfd's directory) exclusively: LCP_ERR_BUSY, with nothing
 * done, while another process holds it (a running mount, see
 * lcp_store_hold_backing).
 */
lcp_err lcp_store_recover_dir(int dirfd);

/* Takes the use lock of the tree at dirfd shared, for as long as *fd stays
 * open: recovery elsewhere then waits its turn (LCP_ERR_BUSY) instead of
 * taking this process's renames in flight for a crash's leftovers. A
 * backing without such locks gives LCP_OK all the same. */
lcp_err lcp_store_hold_backing(int dirfd, int *fd);

/*
 * The writer lock of the backing tree at dirfd, for as long as *fd stays
 * open: an open-file-description write lock on byte 0 of dirfd's lock file
 * ".lcpfs-lock" (created if missing). Only one read-write mount of a
 * backing may run at a time: LCP_ERR_BUSY (and *fd -1) when another process
 * holds it, on this machine or, where the backing shares locks between its
 * clients (GlusterFS), on another, or holds that of a directory above
 * dirfd's (a mount there writes in this tree too; logged, naming it). A backing whose clients do not share
 * locks (sshfs) only keeps out a second writer on the same machine; one
 * without locks at all gives LCP_OK.
 */
lcp_err lcp_store_lock_writer(int dirfd, int *fd);

/* rmdir of name in dirfd that also removes the store's lock file when it
 * is all the directory holds (under its lock, so nobody keeps using it),
 * and temporaries this process has open when they and the lock file are
 * all it holds (a job of a file removed meanwhile: its commit fails, as
 * its temporaries are gone). Another process's temporaries keep the
 * directory (LCP_ERR_NOTEMPTY). The caller must not commit anything in
 * that directory meanwhile. */
lcp_err lcp_store_rmdir_at(int dirfd, const char *name);

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
	char *note;              /* why it is stored as it is, when not as configured
	                            ("1-D", "exact: no larger than 4-bit", a quality
	                            floor...), or NULL */
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
 * size = logical size. For `lcpfs inspect` on a file that is not packed.
 * Opened with lcp_store_open_regular: LCP_ERR_UNSUPPORTED, at once, for
 * anything that is not a regular file (a FIFO, a device). */
lcp_err lcp_store_report_raw_at(int dirfd, const char *name, struct lcp_file_report *out);

/*
 * Renders r as JSON: {"format": "safetensors", "preset": "balanced",
 * "logical_size": N, "stored_size": N, "tensors": [{"name", "dtype", "shape":
 * [..], "encoding", "bits", "group", "rank", "bpw", "sqnr_db", "cosine",
 * "note"}]}, with preset as lcp_config_describe names r->config (null for a
 * raw file's report), sqnr_db null when infinite (exact tensors) and note
 * null when none. This is what `lcpfs inspect --json` prints and what the
 * mount exposes as xattr "user.lcpfs.inspect". *json is a
 * NUL-terminated lcp_malloc'ed string (release with lcp_free). Thread-safe.
 */
lcp_err lcp_store_report_json(const struct lcp_file_report *r, char **json);

/* Checks every checksum (sidecar, each stored chunk, each reconstruction).
 * LCP_OK when intact; LCP_ERR_CHECKSUM naming the first damaged place in
 * where (e.g. "tensor 'w1' chunk 3 at offset 123456"). */
lcp_err lcp_store_verify(struct lcp_store_file *f, char *where, size_t where_len);

#endif
