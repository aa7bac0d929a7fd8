/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The daemon's file state machine (src/fs/fs_state.c), as pure code: every
 * path of raw -> pending -> compressed/refused -> materialized, the job
 * generations, and the defects it must not bring back (touch decompressing
 * for good, a refusal shown as "raw", an overtaken job lost).
 */
#include <criterion/criterion.h>
#include <string.h>

#include "fs/fs_state.h"

static struct fs_track t;

static void fresh(void)
{
	fs_track_init(&t);
}

TestSuite(fs_state, .init = fresh);

/* A writer writes and goes: the job is queued at the last release. */
static uint64_t write_and_release(void)
{
	fs_track_opened(&t, true, false);
	cr_assert_eq(fs_track_written(&t), FS_DO_NOTHING);
	cr_assert_eq(fs_track_released(&t, true, false), FS_DO_QUEUE);
	cr_assert_eq(t.state, FS_PENDING);
	cr_assert(t.queued);
	return t.wgen;
}

Test(fs_state, unknown_until_probed)
{
	cr_assert_not(t.known);
	fs_track_probed(&t, FS_PROBE_COMPRESSED, "");
	cr_assert(t.known);
	cr_assert_eq(t.state, FS_COMPRESSED);
	cr_assert_not(t.damaged);
	fresh();
	fs_track_probed(&t, FS_PROBE_DAMAGED, "");
	cr_assert_eq(t.state, FS_COMPRESSED);
	cr_assert(t.damaged);
	fresh();
	fs_track_probed(&t, FS_PROBE_RAW, "file has several hard links");
	cr_assert_eq(t.state, FS_REFUSED);
	cr_assert_str_eq(t.reason, "file has several hard links");
	fresh();
	fs_track_probed(&t, FS_PROBE_RAW, "");
	cr_assert_eq(t.state, FS_RAW);
	cr_assert_str_eq(fs_state_name(t.state), "raw");
}

Test(fs_state, write_release_commit)
{
	uint64_t g = write_and_release();
	cr_assert(fs_track_job_may_start(&t, g));
	cr_assert(fs_track_gate(&t, g));
	uint64_t before = t.content_gen;
	cr_assert_eq(fs_track_job_done(&t, FS_JOB_COMMITTED, "", true), FS_DO_NOTHING);
	cr_assert_eq(t.state, FS_COMPRESSED);
	cr_assert_not(t.queued);
	cr_assert_gt(t.content_gen, before, "a commit swaps the backing file");
}

/* A commit while a reader holds the file open: the inode stays the raw
 * version the reader reads (a new inode is the committed file). */
Test(fs_state, commit_under_a_reader_supersedes)
{
	uint64_t g = write_and_release();
	fs_track_opened(&t, false, false);
	cr_assert(fs_track_gate(&t, g), "a reader does not hold a commit back");
	uint64_t before = t.content_gen;
	fs_track_superseded(&t);
	cr_assert_eq(t.state, FS_RAW);
	cr_assert_not(t.queued);
	cr_assert_eq(t.content_gen, before, "the reader keeps its raw fd");
	cr_assert_eq(fs_track_released(&t, false, false), FS_DO_NOTHING,
		     "nothing to compress when the reader goes");
	cr_assert_eq(t.state, FS_RAW);
}

Test(fs_state, nothing_queued_without_a_change)
{
	fs_track_opened(&t, true, false);
	cr_assert_eq(fs_track_released(&t, true, false), FS_DO_NOTHING);
	cr_assert_eq(t.state, FS_RAW);
	fs_track_opened(&t, false, false);
	cr_assert_eq(fs_track_released(&t, false, false), FS_DO_NOTHING);
}

/* Defect: touch (open for writing, no write) decompressed a file for good. */
Test(fs_state, touch_keeps_a_compressed_file)
{
	fs_track_probed(&t, FS_PROBE_COMPRESSED, "");
	fs_track_opened(&t, true, false);
	cr_assert_eq(t.state, FS_COMPRESSED, "opening for writing is no change");
	cr_assert_eq(fs_track_released(&t, true, false), FS_DO_NOTHING);
	cr_assert_eq(t.state, FS_COMPRESSED);
	/* The first write materializes it; the last release queues it again. */
	fs_track_opened(&t, true, false);
	fs_track_materialized(&t);
	cr_assert_eq(t.state, FS_RAW);
	fs_track_written(&t);
	cr_assert_eq(fs_track_released(&t, true, false), FS_DO_QUEUE);
	cr_assert_eq(t.state, FS_PENDING);
}

Test(fs_state, truncating_open_of_compressed_file)
{
	fs_track_probed(&t, FS_PROBE_COMPRESSED, "");
	fs_track_opened(&t, true, true);
	fs_track_discarded(&t);
	cr_assert_eq(t.state, FS_RAW);
	cr_assert_eq(fs_track_released(&t, true, false), FS_DO_QUEUE, "emptied: its bytes changed");
}

Test(fs_state, small_files_are_not_queued)
{
	fs_track_opened(&t, true, false);
	fs_track_written(&t);
	cr_assert_eq(fs_track_released(&t, true, true), FS_DO_CHECK_SMALL);
	cr_assert_eq(t.state, FS_RAW);
	cr_assert_not(t.queued);
	cr_assert(fs_track_too_small(&t, "smaller than min_size (4096 bytes)"));
	cr_assert_eq(t.state, FS_REFUSED);
	cr_assert_str_eq(t.reason, "smaller than min_size (4096 bytes)");
	cr_assert_eq(fs_track_written(&t), FS_DO_FORGET_REFUSAL, "the mark goes at the next write");
}

Test(fs_state, small_file_refused_only_if_nothing_came_meanwhile)
{
	fs_track_opened(&t, true, false);
	fs_track_written(&t);
	cr_assert_eq(fs_track_released(&t, true, true), FS_DO_CHECK_SMALL);
	fs_track_opened(&t, true, false); /* a writer came before the parse ended */
	cr_assert_not(fs_track_too_small(&t, "smaller than min_size (4096 bytes)"));
	cr_assert_eq(t.state, FS_RAW);
	cr_assert_str_eq(t.reason, "");
}

/* A write while the job runs: its commit is refused by the gate, and the
 * last release queues the job again (one job at a time). */
Test(fs_state, job_overtaken_by_a_writer)
{
	uint64_t g = write_and_release();
	cr_assert(fs_track_job_may_start(&t, g));
	fs_track_opened(&t, true, false);
	cr_assert_not(fs_track_gate(&t, g), "a writer is open");
	fs_track_written(&t);
	cr_assert_eq(fs_track_job_done(&t, FS_JOB_OVERTAKEN, "", true), FS_DO_NOTHING);
	cr_assert_not(t.queued);
	cr_assert_eq(fs_track_released(&t, true, false), FS_DO_QUEUE);
	uint64_t g2 = t.wgen;
	cr_assert_neq(g2, g);
	cr_assert(fs_track_gate(&t, g2));
}

Test(fs_state, release_during_a_job_does_not_queue_twice)
{
	uint64_t g = write_and_release();
	fs_track_opened(&t, true, false);
	fs_track_written(&t);
	cr_assert_eq(fs_track_released(&t, true, false), FS_DO_NOTHING, "a job is under way");
	cr_assert_not(fs_track_gate(&t, g));
	cr_assert_eq(fs_track_job_done(&t, FS_JOB_OVERTAKEN, "", true), FS_DO_QUEUE,
		     "the overtaken job runs again for the new bytes");
	cr_assert(fs_track_gate(&t, t.wgen));
}

Test(fs_state, rename_during_a_job_requeues)
{
	uint64_t g = write_and_release();
	fs_track_name_changed(&t);
	cr_assert_not(fs_track_gate(&t, g));
	cr_assert_eq(fs_track_job_done(&t, FS_JOB_OVERTAKEN, "", true), FS_DO_QUEUE);
	cr_assert_eq(t.state, FS_PENDING);
}

Test(fs_state, unlink_during_a_job_ends_raw)
{
	uint64_t g = write_and_release();
	fs_track_name_changed(&t);
	cr_assert_not(fs_track_job_may_start(&t, g));
	cr_assert_eq(fs_track_job_done(&t, FS_JOB_OVERTAKEN, "", false), FS_DO_NOTHING);
	cr_assert_eq(t.state, FS_RAW);
	cr_assert_not(t.queued);
}

/* Defect: a refusal for hard links showed "raw". */
Test(fs_state, refusal_keeps_its_reason_until_a_write)
{
	write_and_release();
	fs_track_job_done(&t, FS_JOB_REFUSED, "file has several hard links", true);
	cr_assert_eq(t.state, FS_REFUSED);
	cr_assert_str_eq(fs_state_name(t.state), "refused");
	cr_assert_str_eq(t.reason, "file has several hard links");
	fs_track_opened(&t, true, false);
	cr_assert_eq(t.state, FS_REFUSED, "opening is no change");
	cr_assert_eq(fs_track_written(&t), FS_DO_FORGET_REFUSAL);
	cr_assert_eq(t.state, FS_RAW);
	cr_assert_str_eq(t.reason, "");
	cr_assert_eq(fs_track_written(&t), FS_DO_NOTHING, "forgotten once");
}

Test(fs_state, not_a_tensor_file_is_plain_raw)
{
	write_and_release();
	fs_track_job_done(&t, FS_JOB_NOT_TENSOR, "not a tensor file", true);
	cr_assert_eq(t.state, FS_RAW);
}

Test(fs_state, failure_shows_its_reason)
{
	write_and_release();
	fs_track_job_done(&t, FS_JOB_FAILED, "input/output error", true);
	cr_assert_eq(t.state, FS_REFUSED);
	cr_assert_str_eq(t.reason, "input/output error");
}

/* A link of a compressed file: materialized, then a job asked for although
 * no byte changed, so the refusal is recorded rather than "raw". */
Test(fs_state, link_asks_for_a_job)
{
	fs_track_probed(&t, FS_PROBE_COMPRESSED, "");
	fs_track_materialized(&t);
	cr_assert_eq(t.state, FS_RAW);
	cr_assert_eq(fs_track_want_job(&t), FS_DO_QUEUE);
	cr_assert_eq(t.state, FS_PENDING);
	cr_assert_eq(fs_track_want_job(&t), FS_DO_NOTHING, "already queued");
	fresh();
	fs_track_opened(&t, true, false);
	cr_assert_eq(fs_track_want_job(&t), FS_DO_NOTHING, "a writer's release will queue it");
	cr_assert_eq(fs_track_released(&t, true, false), FS_DO_QUEUE);
}

Test(fs_state, probe_does_not_override_work_under_way)
{
	write_and_release();
	fs_track_probed(&t, FS_PROBE_RAW, "stale");
	cr_assert_eq(t.state, FS_PENDING, "a probe during a job changed the state");
	fs_track_unknown(&t);
	cr_assert_not(t.known);
}

Test(fs_state, gate_waits_for_a_materialize)
{
	uint64_t g = write_and_release();
	t.materializing = true;
	cr_assert_not(fs_track_gate(&t, g));
	t.materializing = false;
	cr_assert(fs_track_gate(&t, g));
}

/* A transient failure (full disk) keeps the file pending with its cause and
 * asks for the same job again later; the next try can commit. */
Test(fs_state, deferred_job_is_queued_again_later)
{
	uint64_t g = write_and_release();
	cr_assert_eq(fs_track_job_done(&t, FS_JOB_DEFERRED, "no space left on device", true),
		     FS_DO_QUEUE_LATER);
	cr_assert_eq(t.state, FS_PENDING);
	cr_assert_str_eq(t.reason, "no space left on device");
	cr_assert(t.queued, "the retry is the job under way");
	cr_assert_eq(fs_track_released(&t, false, false), FS_DO_NOTHING, "no second job");
	cr_assert(fs_track_job_may_start(&t, g));
	cr_assert_eq(fs_track_job_done(&t, FS_JOB_COMMITTED, "", true), FS_DO_NOTHING);
	cr_assert_eq(t.state, FS_COMPRESSED);
}

/* A writer during the backoff takes over: the retry is overtaken and its
 * release queues a fresh job. */
Test(fs_state, deferred_job_overtaken_by_a_writer)
{
	uint64_t g = write_and_release();
	fs_track_job_done(&t, FS_JOB_DEFERRED, "out of memory", true);
	fs_track_opened(&t, true, false);
	fs_track_written(&t);
	cr_assert_not(fs_track_job_may_start(&t, g));
	cr_assert_eq(fs_track_job_done(&t, FS_JOB_OVERTAKEN, "", true), FS_DO_NOTHING);
	cr_assert_eq(fs_track_released(&t, true, false), FS_DO_QUEUE);
}

/* A retry mark found on a raw file (deferred by an earlier mount) queues a
 * job; a content refusal's mark does not, nor does a mark while a writer is
 * there. */
Test(fs_state, recheck_queues_without_the_stale_reason)
{
	fs_track_probed(&t, FS_PROBE_RAW, "file has several hard links");
	cr_assert_eq(t.state, FS_REFUSED);
	cr_assert_eq(fs_track_recheck(&t), FS_DO_QUEUE);
	cr_assert_eq(t.state, FS_PENDING);
	cr_assert(t.queued);
	cr_assert_str_eq(t.reason, "");
	cr_assert_eq(fs_track_recheck(&t), FS_DO_NOTHING, "already queued");
	fresh();
	fs_track_probed(&t, FS_PROBE_RAW, "file has several hard links");
	fs_track_opened(&t, true, false);
	cr_assert_eq(fs_track_recheck(&t), FS_DO_NOTHING, "a writer decides");
	cr_assert_str_eq(t.reason, "file has several hard links");
}

Test(fs_state, retry_mark_queues_a_job)
{
	fs_track_probed(&t, FS_PROBE_RAW, "retry: no space left on device");
	cr_assert_eq(fs_track_retry(&t), FS_DO_QUEUE);
	cr_assert_eq(t.state, FS_PENDING);
	cr_assert(t.queued);
	cr_assert_str_eq(t.reason, "retry: no space left on device");
	cr_assert_eq(fs_track_retry(&t), FS_DO_NOTHING, "already queued");
	fresh();
	fs_track_probed(&t, FS_PROBE_COMPRESSED, "");
	cr_assert_eq(fs_track_retry(&t), FS_DO_NOTHING, "compressed");
	fresh();
	fs_track_opened(&t, true, false);
	cr_assert_eq(fs_track_retry(&t), FS_DO_NOTHING, "a writer decides");
}
