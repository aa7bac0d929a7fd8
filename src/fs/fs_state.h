/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The life of a regular file in the mount, as pure code: no FUSE, no
 * system calls, no locks. Each inode carries one struct fs_track; the
 * daemon calls these functions under the inode's lock and carries out the
 * action they return (queue a compression job, forget the refusal marker).
 *
 *            write + last release              commit
 *   raw ------------------------> pending -------------------> compressed
 *    ^  \                          |   \ refused (marker kept)     |
 *    |   `-- not a tensor file <---'    `----------> refused       |
 *    |                                                  |           |
 *    +--------------- first write (marker forgotten) ---'           |
 *    +--------------- materialized (first write, truncate, link) ---'
 *
 * A job deferred for a transient cause keeps the file pending (with the
 * cause as its reason) and runs again after a backoff; a raw file whose
 * marker asks for a retry is queued when the store first answers for it.
 *
 * A compressed file opened for writing stays compressed until its first
 * write or truncate (so `touch` leaves it compressed). A job is tied to the
 * write generation it was queued at; any write, truncate, open for writing,
 * rename or unlink bumps the generation, and the job's commit is then
 * refused and the file queued again once no writer is left.
 */
#ifndef LCPFS_FS_STATE_H
#define LCPFS_FS_STATE_H

#include <stdbool.h>
#include <stdint.h>

/* What user.lcpfs.state shows. */
enum fs_state { FS_RAW = 0, FS_PENDING, FS_COMPRESSED, FS_REFUSED };

/* What the store answered for the file (lcp_store_probe_at). */
enum fs_probe_answer { FS_PROBE_RAW, FS_PROBE_COMPRESSED, FS_PROBE_DAMAGED };

/* How a compression job ended. */
enum fs_job_end {
	FS_JOB_COMMITTED,   /* payload and sidecar in place */
	FS_JOB_NOT_TENSOR,  /* stays raw, no reason */
	FS_JOB_REFUSED,     /* a tensor file left raw, reason recorded */
	FS_JOB_FAILED,      /* the attempt failed (I/O, memory): reason shown, not recorded */
	FS_JOB_OVERTAKEN,   /* the file changed, was reopened or renamed meanwhile */
	FS_JOB_DEFERRED,    /* left raw for a transient cause (full disk, no memory,
	                       no fd, I/O error): tried again after a backoff */
};

/* What the caller must do after a transition. */
enum fs_action {
	FS_DO_NOTHING = 0,
	FS_DO_QUEUE,        /* queue a job at generation t->wgen (t->queued is set) */
	FS_DO_FORGET_REFUSAL, /* remove the refusal marker from the backing file */
	FS_DO_QUEUE_LATER,  /* queue the job again after a backoff (t->queued
	                       stays set) */
	FS_DO_CHECK_SMALL,  /* a changed file under min_size: parse its header;
	                       a tensor file is refused (fs_track_too_small) */
};

struct fs_track {
	enum fs_state state;
	bool known;              /* the store has answered for this inode */
	bool damaged;            /* compressed but unreadable: reads and writes fail */
	unsigned nopen;          /* open handles */
	unsigned nwriters;       /* open handles with write access */
	bool dirty;              /* bytes changed through the mount since the last queueing */
	bool queued;             /* a job is queued or running */
	bool materializing;      /* a materialize is under way (others wait) */
	uint64_t wgen;           /* write generation */
	uint64_t content_gen;    /* bumped whenever the backing file is swapped */
	char reason[200];        /* why refused (or why a job failed), or "" */
};

/* A fresh inode: unknown until the store answers. */
void fs_track_init(struct fs_track *t);

/* The store's answer (only taken while nothing is under way). refused is
 * the refusal marker of a raw file, or "". */
void fs_track_probed(struct fs_track *t, enum fs_probe_answer a, const char *refused);

/* The store's answer was a raw file whose marker asks for a retry (a pack
 * deferred for a transient cause, maybe by an earlier mount): FS_DO_QUEUE
 * unless a job, a writer or a materialize is under way. The marker stays
 * the reason until the job ends. */
enum fs_action fs_track_retry(struct fs_track *t);

/* The store's answer was a raw file refused for a cause that is gone now
 * (several hard links, one left): as fs_track_retry, but the stale reason
 * is no longer shown. */
enum fs_action fs_track_recheck(struct fs_track *t);

/* The store could not be asked about the file now (after a commit, the
 * backing file changed and must be asked about again). */
void fs_track_unknown(struct fs_track *t);

/* A handle opens (writable: with write access; truncated: O_TRUNC). */
void fs_track_opened(struct fs_track *t, bool writable, bool truncated);

/* Bytes changed through the mount (write, truncate, fallocate). Returns
 * FS_DO_FORGET_REFUSAL on the first change of a refused file. */
enum fs_action fs_track_written(struct fs_track *t);

/* A handle goes away. small: the file is under min_size (never packed).
 * Returns FS_DO_QUEUE when the last writer of a changed file leaves, or
 * FS_DO_CHECK_SMALL when the file is small (it stays raw). */
enum fs_action fs_track_released(struct fs_track *t, bool writable, bool small);

/* The header parse FS_DO_CHECK_SMALL asked for found a tensor file: it is
 * refused with reason, unless a writer or a job came meanwhile. Returns
 * whether it is (then the caller records the refusal mark). */
bool fs_track_too_small(struct fs_track *t, const char *reason);

/* The file's name went away or changed (unlink, rename): a job under way
 * must not commit under the old name. */
void fs_track_name_changed(struct fs_track *t);

/* A job queued at generation wgen is about to run: true to go on; false
 * when it is overtaken (then fs_track_job_done(OVERTAKEN) decides). */
bool fs_track_job_may_start(const struct fs_track *t, uint64_t wgen);

/* The commit gate: true when the prepared job may commit now. */
bool fs_track_gate(const struct fs_track *t, uint64_t wgen);

/* A job ended. has_name: the file still has a name to be packed under.
 * Returns FS_DO_QUEUE when an overtaken job must run again, FS_DO_QUEUE_LATER
 * when a deferred one must (reason: its cause). */
enum fs_action fs_track_job_done(struct fs_track *t, enum fs_job_end end, const char *reason,
				 bool has_name);

/* The job committed, but the inode stays the raw version its open handles
 * read (a new inode stands for the committed file): raw, nothing queued,
 * and its contents never change again. */
void fs_track_superseded(struct fs_track *t);

/* A compressed file was materialized (its bytes, now raw, did not change),
 * or emptied in place (discarded: bytes changed). */
void fs_track_materialized(struct fs_track *t);
void fs_track_discarded(struct fs_track *t);

/* Asks for a job although no byte changed (a link made the file one of
 * several names: the pack then records why it stays raw). */
enum fs_action fs_track_want_job(struct fs_track *t);

/* The name shown in user.lcpfs.state. */
const char *fs_state_name(enum fs_state s);

#endif
