/* SPDX-License-Identifier: Apache-2.0 */
/* The state machine of a regular file in the mount; see fs_state.h. */
#include "fs/fs_state.h"

#include <stdio.h>
#include <string.h>

void fs_track_init(struct fs_track *t)
{
	memset(t, 0, sizeof *t);
	t->state = FS_RAW;
}

void fs_track_probed(struct fs_track *t, enum fs_probe_answer a, const char *refused)
{
	/* While a job or a writer is under way the daemon's own view is newer
	 * than what the backing says. */
	if (t->queued || t->nwriters || t->materializing)
		return;
	t->known = true;
	t->damaged = a == FS_PROBE_DAMAGED;
	if (a != FS_PROBE_RAW) {
		t->state = FS_COMPRESSED;
		t->reason[0] = '\0';
	} else {
		t->state = refused && refused[0] ? FS_REFUSED : FS_RAW;
		snprintf(t->reason, sizeof t->reason, "%s", refused ? refused : "");
	}
}

enum fs_action fs_track_retry(struct fs_track *t)
{
	if (t->state == FS_COMPRESSED || t->queued || t->nwriters || t->materializing)
		return FS_DO_NOTHING;
	t->state = FS_PENDING;
	t->queued = true;
	return FS_DO_QUEUE;
}

enum fs_action fs_track_recheck(struct fs_track *t)
{
	enum fs_action a = fs_track_retry(t);
	if (a == FS_DO_QUEUE)
		t->reason[0] = '\0';
	return a;
}

void fs_track_unknown(struct fs_track *t)
{
	t->known = false;
}

void fs_track_opened(struct fs_track *t, bool writable, bool truncated)
{
	t->nopen++;
	if (writable) {
		t->nwriters++;
		t->wgen++; /* a queued job must wait for this writer */
	}
	if (truncated)
		t->dirty = true;
}

enum fs_action fs_track_written(struct fs_track *t)
{
	bool was_refused = t->state == FS_REFUSED;

	t->dirty = true;
	t->wgen++;
	if (t->state == FS_REFUSED || (t->state == FS_RAW && t->reason[0])) {
		t->state = FS_RAW;
		t->reason[0] = '\0';
	}
	return was_refused ? FS_DO_FORGET_REFUSAL : FS_DO_NOTHING;
}

/* Queues a job unless one is under way (that one is then overtaken and
 * queues again by itself). */
static enum fs_action queue(struct fs_track *t)
{
	t->state = FS_PENDING;
	t->reason[0] = '\0';
	if (t->queued)
		return FS_DO_NOTHING;
	t->queued = true;
	return FS_DO_QUEUE;
}

enum fs_action fs_track_released(struct fs_track *t, bool writable, bool small)
{
	if (t->nopen)
		t->nopen--;
	if (writable && t->nwriters)
		t->nwriters--;
	if (t->nwriters || !t->dirty)
		return FS_DO_NOTHING;
	t->dirty = false;
	if (small) {
		if (t->state == FS_COMPRESSED)
			return FS_DO_NOTHING;
		t->state = FS_RAW;
		return FS_DO_CHECK_SMALL;
	}
	return queue(t);
}

bool fs_track_too_small(struct fs_track *t, const char *reason)
{
	if (t->state != FS_RAW || t->nwriters || t->queued || t->dirty || t->materializing)
		return false;
	t->state = FS_REFUSED;
	snprintf(t->reason, sizeof t->reason, "%s", reason);
	return true;
}

void fs_track_name_changed(struct fs_track *t)
{
	t->wgen++;
}

bool fs_track_job_may_start(const struct fs_track *t, uint64_t wgen)
{
	return t->wgen == wgen && t->nwriters == 0 && t->state == FS_PENDING;
}

bool fs_track_gate(const struct fs_track *t, uint64_t wgen)
{
	return t->nwriters == 0 && t->wgen == wgen && !t->materializing;
}

enum fs_action fs_track_job_done(struct fs_track *t, enum fs_job_end end, const char *reason,
				 bool has_name)
{
	t->queued = false;
	switch (end) {
	case FS_JOB_COMMITTED:
		t->state = FS_COMPRESSED;
		t->known = true;
		t->damaged = false;
		t->reason[0] = '\0';
		t->content_gen++;
		return FS_DO_NOTHING;
	case FS_JOB_NOT_TENSOR:
	case FS_JOB_REFUSED:
	case FS_JOB_FAILED:
		if (t->state != FS_PENDING)
			break; /* a writer came meanwhile: its release decides */
		t->state = end == FS_JOB_NOT_TENSOR ? FS_RAW : FS_REFUSED;
		snprintf(t->reason, sizeof t->reason, "%s", reason ? reason : "");
		return FS_DO_NOTHING;
	case FS_JOB_DEFERRED:
		if (t->state != FS_PENDING)
			break; /* a writer came meanwhile: its release decides */
		snprintf(t->reason, sizeof t->reason, "%s", reason ? reason : "");
		t->queued = true;
		return FS_DO_QUEUE_LATER;
	case FS_JOB_OVERTAKEN:
		break;
	}
	/* Overtaken: the bytes, the name or the writers changed meanwhile. */
	if (t->state != FS_PENDING || !has_name) {
		if (t->state == FS_PENDING)
			t->state = FS_RAW; /* unlinked: nothing to pack under */
		return FS_DO_NOTHING;
	}
	if (t->nwriters) {
		t->dirty = true; /* the last writer's release queues it */
		return FS_DO_NOTHING;
	}
	return queue(t); /* renamed or reopened only: try again */
}

void fs_track_superseded(struct fs_track *t)
{
	t->queued = false;
	t->dirty = false;
	t->state = FS_RAW;
	t->reason[0] = '\0';
}

void fs_track_materialized(struct fs_track *t)
{
	t->state = FS_RAW;
	t->damaged = false;
	t->reason[0] = '\0';
	t->content_gen++;
	/* The bytes are the ones it read as: nothing to compress unless they
	 * change (a write sets dirty) or a link asks for a job. */
}

void fs_track_discarded(struct fs_track *t)
{
	fs_track_materialized(t);
	t->dirty = true;
	t->wgen++;
}

enum fs_action fs_track_want_job(struct fs_track *t)
{
	if (t->state == FS_COMPRESSED)
		return FS_DO_NOTHING;
	if (t->nwriters) {
		t->dirty = true;
		return FS_DO_NOTHING;
	}
	return queue(t);
}

const char *fs_state_name(enum fs_state s)
{
	static const char *const names[] = {
		[FS_RAW] = "raw", [FS_PENDING] = "pending", [FS_COMPRESSED] = "compressed",
		[FS_REFUSED] = "refused",
	};
	return (unsigned)s < sizeof names / sizeof names[0] ? names[s] : "raw";
}
