/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internals of the FUSE daemon shared by its files: the mount context, the
 * inode table, open handles and the hooks through which the passthrough
 * operations (fs_ops.c) let the tensor layer (fs_tensor.c) see and steer what
 * happens to regular files. Nothing here is visible outside src/fs.
 *
 * Locking, outermost first:
 *   ctx.ns (rwlock)     the backing namespace. Held for reading by operations
 *                       that turn a name or an inode's O_PATH fd into a result
 *                       (lookup, open, getattr, ...), for writing by
 *                       operations that swap the backing file behind an inode
 *                       (commit, materialize) and by rename/unlink/link, so no
 *                       lookup or open sees a half-swapped name.
 *   inode.lock (mutex)  per-inode tensor state (open/writer counts, dirty
 *                       flag, write generation, state, store file).
 *   table lock          the (dev, ino) hash, lookup counts, references,
 *                       each inode's fd, parent and name.
 */
#ifndef LCPFS_FS_PRIV_H
#define LCPFS_FS_PRIV_H

#define FUSE_USE_VERSION 312

#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "lcpfs/config.h"
#include "common/err_errno.h"
#include "lcpfs/err.h"

/* What user.lcpfs.state shows. */
enum fs_state { FS_RAW = 0, FS_PENDING, FS_COMPRESSED, FS_REFUSED };

struct fs_sfile;

struct fs_inode {
	/* Identity and lifetime: table lock. */
	dev_t dev;
	ino_t ino;
	struct fs_inode *hnext;
	uint64_t nlookup;         /* references the kernel holds (lookup - forget) */
	uint64_t refs;            /* our own: children's parent links, handles, jobs */
	int fd;                   /* O_PATH fd of the backing object */
	mode_t type;              /* S_IFMT bits */
	struct fs_inode *parent;  /* last known name, for the store's dirfd+name calls; */
	char *name;               /* NULL once unlinked (or for the root) */

	/* Tensor tracking: lock. */
	pthread_mutex_t lock;
	unsigned nopen;           /* open handles */
	unsigned nwriters;        /* open handles with write access */
	bool dirty;               /* written through the mount since the last queued job */
	uint64_t wgen;            /* bumped by every open-for-write, write, truncate, rename */
	enum fs_state state;
	bool probed;              /* state known (store consulted) */
	char reason[200];         /* why refused */
	struct fs_sfile *sf;      /* the committed file, when state == FS_COMPRESSED */
	bool damaged;             /* committed, but its sidecar is unusable: reads fail */
	bool probe_again;         /* the store could not be asked: probe at next lookup */
	bool announcing;          /* just committed, kernel cache not yet invalidated */
	int format;               /* enum lcp_format of the last pack attempt */
	struct timespec seen_mtime; /* backing mtime/size at the last open: keep_cache */
	off_t seen_size;
};

/* One open file. */
struct fs_handle {
	int fd;                   /* backing fd, -1 when reading through sf */
	struct fs_sfile *sf;      /* committed file being read, or NULL */
	bool writable;
};

struct fs_ctx {
	struct fuse_session *se;
	struct fs_inode root;
	const char *backing;      /* as given, for log lines */
	struct lcp_config cfg;
	uint64_t cache_bytes;
	unsigned threads;
	double timeout;           /* entry and attribute timeout, seconds */
	bool readonly;
	pthread_rwlock_t ns;
	char readahead_file[96];  /* sysfs read_ahead_kb of the mount, or "" */
	uint64_t readahead_kb;
};

extern struct fs_ctx fs_ctx;

/* Sets the mount's readahead (once; the first request after INIT calls it,
 * since the kernel's INIT handling lowers the readahead to what was
 * negotiated). */
void fs_apply_readahead(void);

/* Inode table (fs_inode.c). */
void fs_table_init(int root_fd);
struct fs_inode *fs_inode_of(fuse_ino_t ino);
fuse_ino_t fs_ino_of(struct fs_inode *inode);
/* Finds or adds the inode for backing object (st->st_dev, st->st_ino), counts
 * one kernel lookup, records (parent, name) as its name. Takes ownership of
 * fd (closed when the inode already exists). */
struct fs_inode *fs_inode_add(struct fs_inode *parent, const char *name, int fd,
			      const struct stat *st);
void fs_inode_forget(struct fs_inode *inode, uint64_t n);
/* Finds the inode of a backing object and takes a reference, or NULL. */
struct fs_inode *fs_inode_find(dev_t dev, ino_t ino);
void fs_inode_ref(struct fs_inode *inode);
void fs_inode_unref(struct fs_inode *inode);
/* Records a new name (rename, link) or none (unlinked: parent NULL). */
void fs_inode_set_name(struct fs_inode *inode, struct fs_inode *parent, const char *name);
/* Copies the inode's name into name[len] and returns an fd of its parent
 * directory opened for reading (fsync-able; caller closes), or -1 with errno
 * (ENOENT when unlinked). */
int fs_inode_dirfd_name(struct fs_inode *inode, char *name, size_t len);
/* Points the inode at a new backing object (after commit or materialize):
 * replaces fd (closing the old one) and re-keys the table. Caller holds ns
 * for writing. */
void fs_inode_rekey(struct fs_inode *inode, int fd, const struct stat *st);
/* The inode's path below the backing directory, for log lines. */
void fs_inode_path(struct fs_inode *inode, char *buf, size_t len);
/* The inode's current O_PATH fd as a /proc/self/fd path. */
void fs_inode_procpath(struct fs_inode *inode, char *buf, size_t len);
int fs_inode_fd(struct fs_inode *inode);

/* Tensor layer (fs_tensor.c). */
/* Sets fs_ctx.cfg from the compression options (comma-separated, or NULL
 * for the defaults); errbuf names a bad option. */
lcp_err fs_tensor_configure(const char *options, char *errbuf, size_t errbuf_len);
lcp_err fs_tensor_start(int root_fd);
/* At unmount: no new jobs; the workers finish every queued one, then exit. */
void fs_tensor_stop(void);
bool fs_name_hidden(const char *name);
/* Releases an inode's tensor state when the inode is freed. */
void fs_tensor_inode_gone(struct fs_inode *inode);
/* Learns the state of a newly looked-up regular file (committed or raw). */
void fs_tensor_probe(struct fs_inode *inode);
/* Adjusts a backing stat for what the mount shows (logical size, real blocks). */
void fs_tensor_fix_stat(struct fs_inode *inode, struct stat *st);
/* Before the backing file is opened or truncated: a committed file that is
 * about to change is turned raw first (materialized; or, when the caller is
 * about to truncate it to nothing, just forgotten as committed). Caller holds
 * ns for writing. Returns 0 or an errno. */
int fs_tensor_make_raw(struct fs_inode *inode, bool to_empty);
bool fs_tensor_is_committed(struct fs_inode *inode);
/* Opens a committed file for reading: fills h->sf. Returns 0, or ENOENT when
 * the file is not committed, or an errno. */
int fs_tensor_open_read(struct fs_inode *inode, struct fs_handle *h);
/* Reads through the store; returns bytes or -errno. */
ssize_t fs_tensor_read(struct fs_inode *inode, struct fs_handle *h, char *buf, size_t len,
		       off_t off);
void fs_tensor_handle_close(struct fs_handle *h);
/* Write tracking. */
void fs_tensor_opened(struct fs_inode *inode, bool writable, bool truncated);
void fs_tensor_written(struct fs_inode *inode);
/* An open handle goes away: at the last writer release of a dirty file the
 * compression job is queued. */
void fs_tensor_released(struct fs_inode *inode, bool writable);
/* The name of inode was unlinked or replaced: a pending job must not commit. */
void fs_tensor_name_gone(struct fs_inode *inode);
/* Namespace operations that carry sidecars along; return 0 or an errno. */
int fs_tensor_unlink(int dirfd, const char *name);
int fs_tensor_rename(int olddirfd, const char *oldname, int newdirfd, const char *newname,
		     unsigned int flags);
int fs_tensor_link(int olddirfd, const char *oldname, int newdirfd, const char *newname);
/* Computed xattrs: value of user.lcpfs.<key> into buf (size 0: length only);
 * returns length, or -errno (-ENODATA when the key does not apply). */
ssize_t fs_tensor_xattr(struct fs_inode *inode, const char *key, char *buf, size_t size);

/* xattr operations (fs_xattr.c). */
void fs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size);
void fs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
		 size_t size, int flags);
void fs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size);
void fs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name);

/* The operation table (fs_ops.c). */
extern const struct fuse_lowlevel_ops fs_ops;

#endif
