/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Helpers shared by the store's files: the reserved names (sidecars,
 * temporaries, parked sidecars), opening regular files by name without
 * side effects, locked temporaries, payload headers, sidecar loading, the
 * crash-injection hook and the store's xattr bookkeeping. Nothing here is
 * visible outside src/store.
 */
#ifndef LCPFS_STORE_PRIV_H
#define LCPFS_STORE_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "common/io.h"
#include "lcpfs/err.h"
#include "lcpfs/store.h"
#include "store/sidecar.h"

/* Names beginning with this are the store's own (temporaries, hashed and
 * parked sidecars); the mount never lets a user create one. */
#define LCP_RESERVED_PREFIX ".lcpfs-"
/* Temporaries: ".lcpfs-tmp." + 16 hex digits + "." + a tag letter. */
#define LCP_TEMP_PREFIX ".lcpfs-tmp."
/* The sidecar of a name too long for ".NAME.lcpfs": ".lcpfs-h." + 32 hex
 * digits of xxh3-128(NAME). */
#define LCP_HASHED_PREFIX ".lcpfs-h."
/* A sidecar on its way to its place: ".lcpfs-p." + 32 hex digits of its
 * file id. It guards no name; recovery moves it beside its payload. */
#define LCP_PARKED_PREFIX ".lcpfs-p."
#define LCP_SIDECAR_SUFFIX ".lcpfs"
/* The lock file of a directory (lock.c). */
#define LCP_LOCK_NAME ".lcpfs-lock"
/* The store's own extended attributes (never carried over by a swap). */
#define LCP_XATTR_PREFIX "user.lcpfs."
/* The refusal marker: the reason a tensor file was left raw. */
#define LCP_REFUSED_XATTR "user.lcpfs.refused"

/* The sidecar name of name into out (LCP_SIDECAR_NAME_LEN bytes):
 * ".NAME.lcpfs" when it fits in NAME_MAX, else the hashed form.
 * LCP_ERR_NAMETOOLONG when name is longer than NAME_MAX, LCP_ERR_INVAL when
 * it is empty or holds '/'. */
lcp_err lcp_store_sidecar_name(const char *name, char *out);
/* The parked name of a sidecar with file id id into out (LCP_SIDECAR_NAME_LEN). */
void lcp_store_parked_name(const uint8_t id[LCP_FILE_ID_LEN], char *out);

enum lcp_name_kind {
	LCP_NAME_USER,        /* an ordinary name */
	LCP_NAME_SIDECAR,     /* ".X.lcpfs": guards X */
	LCP_NAME_HASHED,      /* ".lcpfs-h.<hex>": guards a long name with that hash */
	LCP_NAME_PARKED,      /* ".lcpfs-p.<hex>": guards nothing */
	LCP_NAME_TEMP,        /* ".lcpfs-tmp.*" */
	LCP_NAME_RESERVED,    /* another ".lcpfs-*" name: left alone */
};
enum lcp_name_kind lcp_store_name_kind(const char *name);

/* 16 random bytes (a file id). */
lcp_err lcp_store_random_id(uint8_t id[LCP_FILE_ID_LEN]);

/* True when a and b are the same object with the same size, mtime and ctime. */
bool lcp_store_same_version(const struct stat *a, const struct stat *b);

/* Removes temporary name in dirfd if no live process holds it (takes its
 * lock, or finds locks unsupported). Returns true when it was removed. */
bool lcp_store_temp_remove_if_dead(int dirfd, const char *name);

/* The payload header of an open file of size bytes: *valid when it has our
 * magic, version and length; hdr receives the first 32 bytes (zeros past
 * the end of a shorter file). */
lcp_err lcp_store_read_header(int fd, uint64_t size, uint8_t hdr[LCP_PAYLOAD_HEADER_LEN],
			      bool *valid);

/* Reads and parses the sidecar of open fd (st: its stat). */
lcp_err lcp_store_load_sidecar_fd(int fd, const struct stat *st, struct lcp_sidecar *sc);

/* Whether file fd (size bytes) holds the payload sidecar sc describes,
 * judged without the 32-byte header: its size is sc's payload size and the
 * stored bytes of its first chunk match their checksum. A payload whose
 * header was damaged is still recognised this way. */
bool lcp_store_payload_body_matches(int fd, uint64_t size, const struct lcp_sidecar *sc);

/* Copies owner, mode bits (setuid and setgid included: chown first, since
 * it clears them), the extended attributes except the store's own, and
 * atime/mtime from the file described by from (fd from_fd, or -1 to skip
 * xattrs) to to_fd. The owner is kept only when the caller may (EPERM is
 * not an error). */
lcp_err lcp_store_copy_metadata(int from_fd, const struct stat *from, int to_fd);

/* Records reason as the refusal marker of open file fd (best effort: a
 * backing without user xattrs just forgets refusals). */
void lcp_store_refusal_set(int fd, const char *reason);

/* The payload fd of an open committed file (owned by f). */
int lcp_store_file_fd(const struct lcp_store_file *f);

/* A piece of a committed file's logical bytes that decodes on its own: one
 * chunk of a region, or a CRC-32 field (chunk LCP_STORE_NO_CHUNK, read
 * with lcp_store_read). */
#define LCP_STORE_NO_CHUNK UINT32_MAX
struct lcp_store_piece {
	uint32_t region;
	uint32_t chunk;
	uint64_t lo, hi; /* its logical byte range [lo, hi) */
};

/* The piece holding logical offset off; false when off is at or past the
 * end of the file. Thread-safe (reads immutable state). */
bool lcp_store_locate(const struct lcp_store_file *f, uint64_t off, struct lcp_store_piece *p);

/* Decodes chunk ci of region ri whole into out (out_len must be its
 * reconstructed size), checking the stored and the output checksums: any
 * mismatch or undecodable byte is LCP_ERR_CHECKSUM (out must then not be
 * served); LCP_ERR_NOMEM or the payload read's error otherwise. No cache.
 * Thread-safe for distinct out buffers. */
lcp_err lcp_store_decode_chunk(const struct lcp_store_file *f, uint32_t ri, uint32_t ci,
			       void *out, size_t out_len);

/* Removes sidecar-named scname in dirfd if it is a regular file holding
 * our sidecar magic (a stranger's file of that name is left alone). */
void lcp_store_remove_sidecar(int dirfd, const char *scname);

/* Name locks (lock.c): held by every step sequence that moves a name's
 * payload or sidecar, so that two never interleave, also across processes
 * and (where the backing shares locks) machines. Takes the lock of name1 in
 * dir1, and of name2 in dir2 when name2 is not NULL, waiting for them (in
 * an order that cannot deadlock) up to a bound: LCP_ERR_BUSY then. A
 * backing without locks counts as locked, and so does a directory where no
 * lock file can be made (full disk, read-only, no permission: the
 * operation's own calls decide there). Creates the directories' lock files
 * when needed. Release with lcp_store_unlock_names. */
struct lcp_name_lock {
	int fd[2];
	off_t off[2];
};
lcp_err lcp_store_lock_names(int dir1, const char *name1, int dir2, const char *name2,
			     struct lcp_name_lock *l);
void lcp_store_unlock_names(struct lcp_name_lock *l);

/* The use lock of the tree at dirfd (a flock of its top directory) taken
 * exclusively, for recovery, not waiting: LCP_ERR_BUSY (logged, naming the
 * directory) when another process holds it, or holds that of a directory
 * above dirfd's (a mount there covers this tree). */
lcp_err lcp_store_lock_tree_exclusive(int dirfd, int *fd);

/* Whether another process (a mount, a recovery) holds the use lock of
 * directory dirfd, met while walking a tree to recover: logs why the
 * recovery stops. */
bool lcp_store_subtree_in_use(int dirfd);

/* fsync(2) of fd as an lcp_err. */
lcp_err lcp_store_fsync(int fd);

/* Crash-injection test hook: with LCPFS_TEST_CRASH equal to step in the
 * environment the process kills itself with SIGKILL (store.h lists the steps). */
void lcp_store_crash_point(const char *step);

#endif
