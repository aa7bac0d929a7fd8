/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internals of the FUSE daemon shared by its files: the mount object, the
 * inode table, open handles, and the tensor layer's entry points. Nothing
 * here is visible outside src/fs.
 *
 * The mount is one object (struct fs_mount), handed to libfuse as session
 * userdata and to the compression workers as their argument; there is no
 * global or file-scope mutable state.
 *
 * Locks, in the order they are taken (never the other way round):
 *   1. m->ns (rwlock)      the backing namespace: which backing file each
 *                          name and inode stands for. Read: operations that
 *                          turn a name or an inode into a result (lookup,
 *                          open, getattr, setattr, xattrs, readdir setup).
 *                          Write: rename, unlink, link, and the short
 *                          commit steps that swap the backing file behind an
 *                          inode (pack commit, materialize commit, discard).
 *                          Never held across encoding, decoding, or any open
 *                          of something that is not a regular file.
 *   2. inode->lock (mutex) the inode's tensor state (struct fs_track), its
 *                          committed file (sf) and open-time records.
 *   3. h->lock (mutex)     a handle's backing fd / committed file switch.
 *   4. m->table_lock       the (dev, ino) hash, lookup counts, references and
 *                          pins, each inode's fd, parent and name. No
 *                          system call that may wait (an open or stat on a
 *                          network backing) runs under it.
 *   5. m->queue_lock       the compression job queue.
 * fs_lock.h's assertions check the holds where a function needs them.
 */
#ifndef LCPFS_FS_PRIV_H
#define LCPFS_FS_PRIV_H

#define FUSE_USE_VERSION 312

#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "common/err_errno.h"
#include "fs/fs_lock.h"
#include "fs/fs_state.h"
#include "lcpfs/config.h"
#include "lcpfs/err.h"
#include "lcpfs/store.h"

struct fs_sfile;
struct fs_job;
struct fs_reader;
struct lcp_chunk_cache;
struct lcp_decode_ahead;

struct fs_inode {
	/* Identity and lifetime: m->table_lock. */
	dev_t dev;
	ino_t ino;
	struct fs_inode *hnext;
	uint64_t nlookup;         /* references the kernel holds (lookup - forget) */
	uint64_t refs;            /* our own: children's parent links, handles, jobs */
	uint64_t pins;            /* open handles (each also holds a reference) */
	int fd;                   /* O_PATH fd of the backing object: always for a
	                             directory, while pinned or recently used for
	                             anything else, else -1 (then reached by
	                             parent and name) */
	struct fs_inode *lru_prev, *lru_next; /* the fd LRU (unpinned files) */
	bool in_lru;
	mode_t type;              /* S_IFMT bits */
	struct fs_inode *parent;  /* last known name, for the store's dirfd+name calls; */
	char *name;               /* NULL once unlinked (or for the root) */
	bool retired;             /* replaced by a commit while open (fs_inode_retire):
	                             set once with ns held for writing and table_lock;
	                             read under either */

	/* Tensor state: lock. */
	struct fs_mutex lock;
	pthread_cond_t changed;   /* signalled when a materialize ends */
	struct fs_track t;
	struct fs_sfile *sf;      /* the committed file, when t.state == FS_COMPRESSED
	                             and a handle has it open (closed at the last
	                             release: an idle inode keeps only its sizes) */
	uint64_t logical_size;    /* the committed file's sizes, from the store's */
	uint64_t stored_size;     /* last answer (state compressed, known, not */
	uint64_t sidecar_blocks;  /* damaged); blocks in st_blocks units */
	uint64_t nlink;           /* link count when the store last answered */
	bool announcing;          /* just committed, kernel cache not yet invalidated */
	bool materialize_logged;  /* a failed materialize logged since the last success */
	bool untold_logged;       /* "cannot tell" logged since the store last answered */
	int format;               /* enum lcp_format of the last pack attempt, or -1 */
	struct timespec seen_mtime; /* backing mtime/size at the last open: keep_cache */
	off_t seen_size;
};

/* One open file. */
struct fs_handle {
	pthread_mutex_t lock;     /* fd, sf and content_gen below */
	int fd;                   /* backing fd, or -1 while reading through sf */
	struct fs_sfile *sf;      /* committed file read through, or NULL */
	struct fs_reader *reader; /* sf's read stream (made at the first read), or NULL */
	uint64_t content_gen;     /* the inode's content generation fd/sf belong to */
	int flags;                /* open flags, for reopening the backing file */
	bool writable;
};

struct fs_mount {
	struct fuse_session *se;
	const char *backing;      /* as given, for log lines */
	struct lcp_config cfg;
	uint64_t cache_bytes;
	unsigned threads;
	double attr_timeout;      /* how long the kernel keeps attributes, seconds */
	double entry_timeout;     /* how long the kernel keeps names, seconds */
	bool readonly;
	bool acl;                 /* POSIX ACLs enforced by the kernel (fs_init) */
	struct fs_rwlock ns;

	/* The inode table (fs_inode.c). */
	struct fs_mutex table_lock;
	struct fs_inode **buckets;
	struct fs_inode root;
	struct fs_inode *lru_head, *lru_tail; /* fds of files nobody has open */
	size_t lru_count, lru_max;
	size_t npinned;           /* inodes with open handles */

	/* Compression (fs_tensor.c). */
	struct lcp_chunk_cache *cache;
	struct lcp_encode_pool *pool; /* encoder threads, shared by every job */
	struct fs_mutex queue_lock;
	pthread_cond_t queue_cond;
	struct fs_job *queue_head, *queue_tail;
	struct fs_job *running;   /* jobs the workers run now (linked by next) */
	struct fs_job *finished;  /* jobs that ended once the unmount began: freed
	                             (and their inodes let go) after the workers */
	atomic_bool stopping;
	pthread_t *workers;
	unsigned nworkers;
	const char *crash_at;     /* LCPFS_CRASH_AT, test hook */
	const char *hold_at;      /* LCPFS_TEST_HOLD, test hook */
	const char *hold_dir;     /* LCPFS_TEST_HOLD_DIR */
	int backing_lock;         /* shared use lock of the backing, or -1 */
	int writer_lock;          /* the backing's writer lock (read-write), or -1 */

	/* Decode-ahead for sequential readers (fs.c creates it; fs_tensor.c
	 * reads through it). */
	struct lcp_decode_ahead *ahead;
	uint64_t ahead_bytes;     /* its window */

	/* Readahead (fs.c). */
	char readahead_file[96];  /* sysfs read_ahead_kb of the mount, or "" */
	uint64_t readahead_kb;
	atomic_flag readahead_done;
};

/* The mount of a request. */
static inline struct fs_mount *fs_mount_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* Sets the mount's readahead (once; the first request after INIT calls it,
 * since the kernel's INIT handling lowers the readahead to what was
 * negotiated). */
void fs_apply_readahead(struct fs_mount *m);

/* Inode table (fs_inode.c). */
/* Room for "/proc/self/fd/N". */
#define FS_PROCPATH_LEN 32
lcp_err fs_table_init(struct fs_mount *m, int root_fd);
struct fs_inode *fs_inode_of(struct fs_mount *m, fuse_ino_t ino);
fuse_ino_t fs_ino_of(struct fs_mount *m, struct fs_inode *inode);
/* Finds or adds the inode for backing object (st->st_dev, st->st_ino), counts
 * one kernel lookup, records (parent, name) as its name. fd: an O_PATH fd of
 * the object (owned: kept, or closed when not needed), or -1 (a directory
 * must have one). */
struct fs_inode *fs_inode_add(struct fs_mount *m, struct fs_inode *parent, const char *name,
			      int fd, const struct stat *st);
void fs_inode_forget(struct fs_mount *m, struct fs_inode *inode, uint64_t n);
/* Finds the inode of a backing object and takes a reference, or NULL. */
struct fs_inode *fs_inode_find(struct fs_mount *m, dev_t dev, ino_t ino);
void fs_inode_ref(struct fs_mount *m, struct fs_inode *inode);
void fs_inode_unref(struct fs_mount *m, struct fs_inode *inode);
/* An open handle of the inode comes (pin: a reference, and an O_PATH fd of
 * the object while any handle is open) or goes (unpin). */
void fs_inode_pin(struct fs_mount *m, struct fs_inode *inode);
void fs_inode_unpin(struct fs_mount *m, struct fs_inode *inode);
/* The name (parent, name) was unlinked or replaced: forgets it if it is the
 * one the inode records (another name of a hard link stays). */
void fs_inode_drop_name(struct fs_mount *m, struct fs_inode *inode, struct fs_inode *parent,
			const char *name);
/* Records a new name (rename, link) or none (unlinked: parent NULL). */
void fs_inode_set_name(struct fs_mount *m, struct fs_inode *inode, struct fs_inode *parent,
		       const char *name);
/* Copies the inode's name into name[len] and returns an fd of its parent
 * directory opened for reading (fsync-able; caller closes), or -1 with
 * *err set (ENOENT when unlinked). */
int fs_inode_dirfd_name(struct fs_mount *m, struct fs_inode *inode, char *name, size_t len,
			int *err);
/* Reads the inode's parent directory on the backing through: a network
 * backing's client (GlusterFS) then knows every name in it anew. */
void fs_inode_reread_dir(struct fs_mount *m, struct fs_inode *inode);
/* Opens what the inode's name holds now, with open(2) flags (O_PATH too; a
 * FIFO is never waited on, O_TRUNC truncates only the right object), and
 * checks it is the inode's object. Returns the fd (the caller's), or -1
 * with *err: ESTALE when the name now holds another object or nothing
 * (another machine replaced or removed it: the kernel looks it up again),
 * or the open's error. A directory, or an inode without a name (unlinked
 * through this mount) but open, is opened through its own fd. */
int fs_inode_open(struct fs_mount *m, struct fs_inode *inode, int flags, int *err);
/* An O_PATH fd of the inode's object for changing or reading its metadata:
 * its own fd when it has one (a directory, an open file), else as
 * fs_inode_open(O_PATH). Caller closes; -1 with *err on failure. */
int fs_inode_path_fd(struct fs_mount *m, struct fs_inode *inode, int *err);
/* lstat of the inode's object, the same way; 0 or an errno (ESTALE as
 * above). */
int fs_inode_stat(struct fs_mount *m, struct fs_inode *inode, struct stat *st);
/* 0 when the inode's name holds its object now (or it has no name), else
 * ESTALE (or the stat's error). */
int fs_inode_check_name(struct fs_mount *m, struct fs_inode *inode);
/* Points the inode at a new backing object (after commit or materialize):
 * re-keys the table; fd, an O_PATH fd of the new object (owned), replaces
 * the inode's own fd, if it had one, or is closed. Caller holds ns for
 * writing. */
void fs_inode_rekey(struct fs_mount *m, struct fs_inode *inode, int fd, const struct stat *st);
/* A commit replaced the inode's backing object while handles of it are
 * open (ns held for writing): the inode leaves the table instead of being
 * re-keyed, as a file replaced by a rename stays what its open descriptors
 * read. No lookup finds it again and it has no name; its handles keep
 * their backing fds, a stat is answered from its own fd (closed at the
 * last unpin, so that the backing frees the raw file), and it is freed at
 * the kernel's last FORGET. The committed file becomes a new inode at
 * its next lookup. Returns the parent it had, whose reference passes to
 * the caller (fs_inode_unref), and moves its name into *name (the
 * caller's, lcp_free); NULL and *name NULL when it had none. */
struct fs_inode *fs_inode_retire(struct fs_mount *m, struct fs_inode *inode, char **name);
/* The inode's path below the backing directory, for log lines. */
void fs_inode_path(struct fs_mount *m, struct fs_inode *inode, char *buf, size_t len);
/* "/proc/self/fd/<fd>" into buf (FS_PROCPATH_LEN bytes). */
void fs_procpath(int fd, char *buf, size_t len);

/* Tensor layer (fs_tensor.c). */
/* Test hook (LCPFS_TEST_HOLD, lcpfs(1)): at a named point, waits for the
 * test's go file. */
void fs_tensor_hold(struct fs_mount *m, const char *point);
/* Sets m->cfg from the compression options (comma-separated, or NULL for
 * the defaults); errbuf names a bad option. */
lcp_err fs_tensor_configure(struct fs_mount *m, const char *options, char *errbuf,
			    size_t errbuf_len);
/* Recovers the backing directory (lcp_store_recover_dir; not on a
 * read-only mount) and takes its use lock. Logs what it could not do.
 * LCP_ERR_BUSY, with nothing taken, when a read-write mount of a directory
 * below (or a recovery) uses the tree: the mount must not start. */
lcp_err fs_tensor_recover(struct fs_mount *m, int root_fd);
/* Creates the chunk cache and starts the compression workers. */
lcp_err fs_tensor_start(struct fs_mount *m);
/* At unmount: no new jobs, and no commit from now on (a new mount may
 * open the raw files at once): every queued or running job's file is
 * marked for a retry (the next mount packs it when it first looks it up),
 * the backing's writer and use locks are let go, then the workers end. */
void fs_tensor_stop(struct fs_mount *m);
bool fs_name_hidden(const char *name);
/* Releases an inode's tensor state when the inode is freed. */
void fs_tensor_inode_gone(struct fs_inode *inode);
/* Makes sure the store has answered for a regular file (ns held). Returns
 * 0, or EIO when it cannot tell now (logged; asked again next time). */
int fs_tensor_known(struct fs_mount *m, struct fs_inode *inode);
/* Adjusts a backing stat of the inode's object for what the mount shows: a
 * compressed file's logical size, and its payload's plus its sidecar's
 * allocated blocks. Opens nothing. */
void fs_tensor_fix_stat(struct fs_inode *inode, struct stat *st);
/* Opens a regular file for h (ns held for reading): a compressed file is
 * read through the store, whatever the access mode (it turns raw on the
 * first write); O_TRUNC empties it (a new empty file takes its name).
 * ESTALE when the inode's name holds another file now, or the inode was
 * retired (the kernel looks the name up again and opens the new file).
 * Returns 0 or an errno. Takes ns for writing itself when it must
 * (truncating a compressed file): the caller passes its hold and gets it
 * back as a read hold. */
int fs_tensor_open(struct fs_mount *m, struct fs_inode *inode, struct fs_handle *h);
/* What a read through a handle gives fs_read to reply with: the bytes of
 * a committed file as view's segments (pointing into buf and into chunks
 * decoded ahead, held until fs_tensor_read_done), or the backing fd of a
 * raw file, not read, for a splice reply. */
struct fs_read_reply {
	struct lcp_read_view view;
	char *buf;                /* the request thread's reply buffer (not owned) */
	struct fs_reader *reader;
	int fd;                   /* raw: the backing fd (valid while the handle is), else -1 */
};
/* Reads len bytes at off through h. Returns the bytes read (committed
 * file), 0 with rep->fd set (raw file), or -errno. The caller replies from
 * the same thread (rep->buf is that thread's), then calls
 * fs_tensor_read_done(rep) whatever the outcome. */
ssize_t fs_tensor_read(struct fs_mount *m, struct fs_inode *inode, struct fs_handle *h,
		       size_t len, off_t off, struct fs_read_reply *rep);
void fs_tensor_read_done(struct fs_read_reply *rep);
/* The backing fd for a change through h: a compressed file is materialized
 * first (no lock may be held). Returns the fd, or -errno. */
int fs_tensor_write_fd(struct fs_mount *m, struct fs_inode *inode, struct fs_handle *h);
/* Makes a regular file raw before it changes with no handle (truncate):
 * materialized, or emptied in place when to_empty. No lock may be held.
 * Returns 0 or an errno. */
int fs_tensor_make_raw(struct fs_mount *m, struct fs_inode *inode, bool to_empty);
void fs_tensor_handle_close(struct fs_handle *h);
/* Write tracking. */
void fs_tensor_opened(struct fs_mount *m, struct fs_inode *inode, bool writable, bool truncated);
void fs_tensor_written(struct fs_mount *m, struct fs_inode *inode);
/* An open handle goes away: at the last writer release of a dirty file the
 * compression job is queued. */
void fs_tensor_released(struct fs_mount *m, struct fs_inode *inode, bool writable);
/* The name of inode was unlinked or replaced: a pending job must not commit. */
void fs_tensor_name_gone(struct fs_inode *inode);
/* One of the inode's links went away through the mount (ns held for
 * writing; the inode has a name to be asked about under): a file refused
 * for several hard links that has one left is queued for packing (after a
 * short delay). */
void fs_tensor_link_dropped(struct fs_mount *m, struct fs_inode *inode);
/* Namespace operations that carry sidecars along (ns held for writing);
 * return 0 or an errno. */
int fs_tensor_unlink(struct fs_mount *m, int dirfd, const char *name);
/* rmdir that also removes the store's lock file of an otherwise empty
 * directory. */
int fs_tensor_rmdir(struct fs_mount *m, int dirfd, const char *name);
int fs_tensor_rename(struct fs_mount *m, int olddirfd, const char *oldname, int newdirfd,
		     const char *newname, unsigned int flags);
/* Links inode as newname in newparent: a compressed file is materialized
 * first (so that every name stays writable) and then refused compression
 * with its reason. No lock may be held. */
int fs_tensor_link(struct fs_mount *m, struct fs_inode *inode, struct fs_inode *newparent,
		   const char *newname);
/* Whether the inode is a compressed file now, with a sidecar beside its
 * payload (ns held). */
bool fs_tensor_has_sidecar(struct fs_inode *inode);
/* Gives the sidecar of a compressed inode owner uid:gid ((uid_t)-1 and
 * (gid_t)-1 keep them) and the read and write bits of mode
 * (lcp_store_sidecar_attrs_at, sync_fd as there), ns held; 0 when it has
 * none. 0 or an errno (logged). */
int fs_tensor_sidecar_attrs(struct fs_mount *m, struct fs_inode *inode, mode_t mode, uid_t uid,
			    gid_t gid, int *sync_fd);
/* The largest xattr value Linux passes (XATTR_SIZE_MAX), and the pieces
 * the inspect report is cut into for user.lcpfs.inspect.K. */
#define FS_XATTR_VALUE_MAX 65536u
#define FS_INSPECT_PART_BYTES FS_XATTR_VALUE_MAX
/* Computed xattrs: value of user.lcpfs.<key> into buf (size 0: length only);
 * returns length, or -errno (-ENODATA when the key does not apply, -E2BIG
 * for "inspect" when the report is larger than an xattr value can be). */
ssize_t fs_tensor_xattr(struct fs_mount *m, struct fs_inode *inode, const char *key, char *buf,
			size_t size);

/* xattr operations (fs_xattr.c). */
void fs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size);
void fs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
		 size_t size, int flags);
void fs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size);
void fs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name);

/* The operation table (fs_ops.c). */
extern const struct fuse_lowlevel_ops fs_ops;

#endif
