/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What keeps processes sharing one backing directory apart (lock.c): one
 * writer lock per backing; name locks that make a second commit of a name
 * wait for the first; plain files that need no lock file; no usable lock
 * file (a full disk, no permission) stopping nothing; rmdir of a
 * directory that only holds the lock file. And recovery, which must never
 * turn a payload whose sidecar is lost into a file reading as the
 * payload's bytes (what two interleaved packs of one name used to leave).
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

#include "lcpfs/store.h"
#include "store/store_priv.h"
#include "test_store_helpers.h"

/* A test that could hang (a lock never released) is killed by SIGALRM. */
#define HANG_TIMEOUT_SEC 30
/* How long the lock holder waits for the second process to report that it
 * waits: a commit on a busy machine starts within this. */
#define WAIT_REPORT_SEC 20
/* An ordinary user for operations that must not need root. */
#define UNPRIVILEGED_ID 1234

static struct scratch dir;
static struct synth st, st2;

static void setup(void)
{
	alarm(HANG_TIMEOUT_SEC);
	scratch_make(&dir);
	synth_build(&st, 0x5eed);
	synth_build(&st2, 0xfeed);
}

static void teardown(void)
{
	unlinkat(dir.fd, "sub/.lcpfs-lock", 0);
	unlinkat(dir.fd, "sub/f", 0);
	unlinkat(dir.fd, "sub", AT_REMOVEDIR);
	free(st.data);
	free(st2.data);
	scratch_remove(&dir);
}

TestSuite(locks, .init = setup, .fini = teardown);

static bool exists(int dfd, const char *name)
{
	struct stat s;
	return fstatat(dfd, name, &s, AT_SYMLINK_NOFOLLOW) == 0;
}

Test(locks, one_writer_per_backing)
{
	int a, b;
	cr_assert_eq(lcp_store_lock_writer(dir.fd, &a), LCP_OK);
	cr_assert_eq(lcp_store_lock_writer(dir.fd, &b), LCP_ERR_BUSY, "a second writer got in");
	cr_assert_eq(b, -1);
	close(a);
	cr_assert_eq(lcp_store_lock_writer(dir.fd, &b), LCP_OK, "the lock outlived its holder");
	close(b);
}

/* A mount of a directory covers the whole tree below it: a recovery of a
 * subdirectory (or of a directory holding the mounted one) must not run
 * beside it, and a second writer below it must not start. flock and OFD
 * locks of two open files conflict within one process too. */
Test(locks, recovery_refuses_a_tree_a_mount_above_or_below_uses)
{
	int sub, held;
	cr_assert_eq(mkdirat(dir.fd, "sub", 0755), 0);
	sub = openat(dir.fd, "sub", O_RDONLY | O_DIRECTORY);
	cr_assert_geq(sub, 0);

	cr_assert_eq(lcp_store_hold_backing(dir.fd, &held), LCP_OK);
	cr_expect_eq(lcp_store_recover_dir(sub), LCP_ERR_BUSY,
		     "recovery of a subdirectory ran beside a mount of its parent");
	close(held);
	cr_expect_eq(lcp_store_recover_dir(sub), LCP_OK, "the refusal outlived the mount");

	cr_assert_eq(lcp_store_hold_backing(sub, &held), LCP_OK);
	cr_expect_eq(lcp_store_recover_dir(dir.fd), LCP_ERR_BUSY,
		     "recovery of a tree ran beside a mount of a directory in it");
	close(held);
	cr_expect_eq(lcp_store_recover_dir(dir.fd), LCP_OK);
	close(sub);
}

Test(locks, no_writer_below_a_writer)
{
	int sub, top, below;
	cr_assert_eq(mkdirat(dir.fd, "sub", 0755), 0);
	sub = openat(dir.fd, "sub", O_RDONLY | O_DIRECTORY);
	cr_assert_geq(sub, 0);
	cr_assert_eq(lcp_store_lock_writer(dir.fd, &top), LCP_OK);
	cr_expect_eq(lcp_store_lock_writer(sub, &below), LCP_ERR_BUSY,
		     "a writer started inside a mounted backing");
	cr_expect_eq(below, -1);
	close(top);
	cr_expect_eq(lcp_store_lock_writer(sub, &below), LCP_OK, "the refusal outlived the writer");
	close(below);
	close(sub);
}

/* A child holds the name lock of m and waits until the parent's commit of
 * m reports (through LCPFS_TEST_LOCK_WAIT) that it waits; meanwhile m must
 * still be raw. Exit status 0 when all of that held. */
static void hold_name_lock(int ready_fd, const char *marker)
{
	struct lcp_name_lock l;
	struct timespec step = {0, 10000000L};
	lcp_err err;

	if (lcp_store_lock_names(dir.fd, "m.safetensors", -1, NULL, &l) != LCP_OK)
		_exit(2);
	if (write(ready_fd, "x", 1) != 1)
		_exit(2);
	for (int i = 0; i < WAIT_REPORT_SEC * 100 && access(marker, F_OK) != 0; i++)
		nanosleep(&step, NULL);
	if (access(marker, F_OK) != 0)
		_exit(3); /* the commit never waited */
	if (repr_of(dir.fd, "m.safetensors", &err) != LCP_REPR_RAW || err != LCP_OK)
		_exit(4); /* it committed under our lock */
	lcp_store_unlock_names(&l);
	_exit(0);
}

Test(locks, a_commit_waits_for_the_name_lock)
{
	struct lcp_config cfg = lcp_config_default();
	struct lcp_pack_report rep;
	struct lcp_pack_job *job;
	char marker[128];
	int pipefd[2], status;
	char c;
	lcp_err err;

	write_file(dir.fd, "m.safetensors", st.data, st.len);
	cr_assert_eq(lcp_store_pack_prepare_at(dir.fd, "m.safetensors", -1, &cfg, NULL, NULL, &rep,
					       &job), LCP_OK);
	cr_assert_not_null(job, "not prepared: %s", rep.reason);
	snprintf(marker, sizeof marker, "%s.waiting", dir.path);
	cr_assert_eq(pipe(pipefd), 0);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0)
		hold_name_lock(pipefd[1], marker);
	cr_assert_eq(read(pipefd[0], &c, 1), 1, "the holder did not take the lock");
	setenv("LCPFS_TEST_LOCK_WAIT", marker, 1);
	err = lcp_store_pack_commit(job, &rep);
	unsetenv("LCPFS_TEST_LOCK_WAIT");
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		  "holder: status %d (2 no lock, 3 the commit never waited, 4 it committed "
		  "under the holder's lock)", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	cr_assert_eq(err, LCP_OK);
	cr_assert(rep.committed, "%s", rep.reason);
	cr_assert_eq(repr_of(dir.fd, "m.safetensors", &err), LCP_REPR_COMPRESSED);
	lcp_store_pack_free(job);
	unlink(marker);
	close(pipefd[0]);
	close(pipefd[1]);
}

Test(locks, plain_files_need_no_lock_file)
{
	write_file(dir.fd, "a", "a", 1);
	write_file(dir.fd, "b", "b", 1);
	cr_assert_eq(lcp_store_rename_at(dir.fd, "a", dir.fd, "c", 0), LCP_OK);
	cr_assert_eq(lcp_store_link_at(dir.fd, "c", dir.fd, "d"), LCP_OK);
	cr_assert_eq(lcp_store_unlink_at(dir.fd, "b"), LCP_OK);
	cr_assert(!exists(dir.fd, ".lcpfs-lock"), "a lock file among plain files");
	write_file(dir.fd, "m.safetensors", st.data, st.len);
	pack_in(dir.fd, "m.safetensors");
	cr_assert(exists(dir.fd, ".lcpfs-lock"), "a commit without the name lock");
}

Test(locks, rmdir_takes_the_lock_file_along)
{
	cr_assert_eq(mkdirat(dir.fd, "sub", 0755), 0);
	int sub = openat(dir.fd, "sub", O_RDONLY | O_DIRECTORY);
	cr_assert_geq(sub, 0);
	write_file(sub, "m.safetensors", st.data, st.len);
	pack_in(sub, "m.safetensors");
	cr_assert(exists(sub, ".lcpfs-lock"));
	write_file(sub, "f", "f", 1);
	cr_assert_eq(lcp_store_unlink_at(sub, "m.safetensors"), LCP_OK);
	cr_assert_eq(lcp_store_rmdir_at(dir.fd, "sub"), LCP_ERR_NOTEMPTY);
	cr_assert(exists(sub, "f") && exists(sub, ".lcpfs-lock"), "rmdir removed something");
	cr_assert_eq(unlinkat(sub, "f", 0), 0);
	close(sub);
	cr_assert_eq(lcp_store_rmdir_at(dir.fd, "sub"), LCP_OK);
	cr_assert(!exists(dir.fd, "sub"));
}

/* Two packs of m interleaved (as before the name lock): m holds pack A's
 * payload, m's sidecar name holds pack B's sidecar (it replaced A's), and
 * B's payload is gone (A's replaced it). Nothing can read m right: it must
 * stay "cannot tell" (EIO) through recovery, never read as A's payload
 * bytes. */
Test(locks, recovery_keeps_a_lost_sidecars_payload_unreadable)
{
	lcp_err err;
	write_file(dir.fd, "m.safetensors", st.data, st.len);
	write_file(dir.fd, "x.safetensors", st2.data, st2.len);
	pack_in(dir.fd, "m.safetensors");
	pack_in(dir.fd, "x.safetensors");
	cr_assert_eq(renameat(dir.fd, ".x.safetensors.lcpfs", dir.fd, ".m.safetensors.lcpfs"), 0);
	cr_assert_eq(unlinkat(dir.fd, "x.safetensors", 0), 0);
	repr_of(dir.fd, "m.safetensors", &err);
	cr_assert_eq(err, LCP_ERR_AGAIN, "before recovery: %s", lcp_err_name(err));
	cr_assert_eq(lcp_store_recover_dir(dir.fd), LCP_OK);
	enum lcp_repr r = repr_of(dir.fd, "m.safetensors", &err);
	cr_assert(err != LCP_OK || r != LCP_REPR_RAW,
		  "after recovery m reads as its payload's bytes");
	cr_assert(exists(dir.fd, ".m.safetensors.lcpfs"), "the sidecar keeping m unreadable went");
}

/* Where no lock file can be used (here: one only root may write, for a
 * user allowed to change the directory; likewise a full disk), namespace
 * operations run unlocked instead of failing: an unlink must still work. */
Test(locks, no_usable_lock_file_does_not_stop_an_unlink)
{
	int status;
	write_file(dir.fd, "m.safetensors", st.data, st.len);
	pack_in(dir.fd, "m.safetensors");
	cr_assert_eq(fchmodat(dir.fd, ".lcpfs-lock", 0600, 0), 0);
	cr_assert_eq(fchmod(dir.fd, 0777), 0);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		if (setgid(UNPRIVILEGED_ID) != 0 || setuid(UNPRIVILEGED_ID) != 0)
			_exit(2);
		_exit(lcp_store_unlink_at(dir.fd, "m.safetensors") == LCP_OK ? 0 : 3);
	}
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		  "unlink as a user: status %d (2 setuid failed, 3 the unlink failed)",
		  WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	cr_assert(!exists(dir.fd, "m.safetensors") && !exists(dir.fd, ".m.safetensors.lcpfs"));
}
