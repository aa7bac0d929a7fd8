/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The store's integrity protocol: what a name is (compressed, raw, damaged,
 * or cannot tell) from durable facts only; no open of a FIFO or symlink;
 * recovery that proves what it deletes and never takes a live process's
 * temporaries; hashed sidecar names up to NAME_MAX; the two-phase pack's
 * commit checks and metadata; and a crash (SIGKILL through LCPFS_TEST_CRASH)
 * after every step of every protocol, before and after recovery.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <sys/xattr.h>

#include "common/alloc.h"
#include "lcpfs/store.h"
#include "test_store_helpers.h"

/* A test that could hang (a FIFO opened for reading) is killed by SIGALRM
 * and fails instead (criterion's own .timeout leaks in its runner under
 * ASan with parallel jobs). The crash tests run many children: more time. */
#define HANG_TIMEOUT_SEC 20
#define CRASH_TESTS_TIMEOUT_SEC 180

static struct scratch dir;
static struct synth st, st2;

static void setup(void)
{
	alarm(HANG_TIMEOUT_SEC);
	scratch_make(&dir);
	synth_build(&st, 0x1234567);
	synth_build(&st2, 0xabcdef);
	write_file(dir.fd, "m.safetensors", st.data, st.len);
}

static void teardown(void)
{
	free(st.data);
	free(st2.data);
	scratch_remove(&dir);
}

TestSuite(integrity, .init = setup, .fini = teardown);

/* What name reads as: its reconstruction, its raw bytes, or NULL when it
 * cannot be read (damaged, cannot tell, absent). */
static uint8_t *logical(int dfd, const char *name, size_t *len)
{
	struct lcp_store_file *f = NULL;
	struct lcp_probe pr;
	lcp_err err = lcp_store_probe_at(dfd, name, NULL, &pr, &f);
	if (err || pr.repr == LCP_REPR_DAMAGED)
		return NULL;
	if (pr.repr == LCP_REPR_RAW)
		return read_file(dfd, name, len);
	*len = lcp_store_logical_size(f);
	uint8_t *b = malloc(*len + 1);
	size_t got;
	cr_assert_eq(lcp_store_read(f, b, *len, 0, &got, NULL), LCP_OK);
	cr_assert_eq(got, *len);
	lcp_store_close(f);
	return b;
}

static bool reads_as(int dfd, const char *name, const uint8_t *want, size_t want_len)
{
	size_t n;
	uint8_t *b = logical(dfd, name, &n);
	bool same = b && n == want_len && memcmp(b, want, n) == 0;
	free(b);
	return same;
}

/* The reconstruction of the packed name (fails when not compressed). */
static uint8_t *recon(int dfd, const char *name, size_t *len)
{
	lcp_err err;
	cr_assert_eq(repr_of(dfd, name, &err), LCP_REPR_COMPRESSED, "%s", name);
	cr_assert_eq(err, LCP_OK);
	return logical(dfd, name, len);
}

Test(integrity, answers_compressed_and_raw)
{
	lcp_err err;
	cr_assert_eq(repr_of(dir.fd, "m.safetensors", &err), LCP_REPR_RAW);
	cr_assert_eq(err, LCP_OK);
	pack_in(dir.fd, "m.safetensors");
	cr_assert_eq(repr_of(dir.fd, "m.safetensors", &err), LCP_REPR_COMPRESSED);
	cr_assert_eq(err, LCP_OK);
	repr_of(dir.fd, "absent", &err);
	cr_assert_eq(err, LCP_ERR_NOENT);
}

/* Defect: recovery deleted the sidecar of a payload whose header was
 * damaged, and the file then read as its container bytes for good. */
Test(integrity, damaged_header_is_damage_and_recovery_keeps_it)
{
	lcp_err err;
	size_t n;
	pack_in(dir.fd, "m.safetensors");
	uint8_t *good = recon(dir.fd, "m.safetensors", &n);
	int fd = openat(dir.fd, "m.safetensors", O_WRONLY);
	cr_assert_eq(pwrite(fd, "m", 1, 0), 1); /* the magic, as the repro */
	close(fd);
	cr_assert_eq(repr_of(dir.fd, "m.safetensors", &err), LCP_REPR_DAMAGED);
	cr_assert_eq(err, LCP_OK);
	cr_assert_eq(lcp_store_recover_dir(dir.fd), LCP_OK);
	cr_assert_eq(repr_of(dir.fd, "m.safetensors", &err), LCP_REPR_DAMAGED,
		     "recovery removed the sidecar of a damaged payload");
	cr_assert_eq(faccessat(dir.fd, ".m.safetensors.lcpfs", F_OK, 0), 0);
	/* Putting the byte back makes it whole: nothing was lost. */
	fd = openat(dir.fd, "m.safetensors", O_WRONLY);
	cr_assert_eq(pwrite(fd, "l", 1, 0), 1);
	close(fd);
	cr_assert(reads_as(dir.fd, "m.safetensors", good, n));
	/* The whole header, id included, zeroed: still damage (size and first
	 * chunk are the sidecar's payload's), and still kept by recovery. */
	uint8_t zeros[32] = {0};
	fd = openat(dir.fd, "m.safetensors", O_WRONLY);
	cr_assert_eq(pwrite(fd, zeros, sizeof zeros, 0), 32);
	close(fd);
	cr_assert_eq(repr_of(dir.fd, "m.safetensors", &err), LCP_REPR_DAMAGED);
	cr_assert_eq(lcp_store_recover_dir(dir.fd), LCP_OK);
	cr_assert_eq(faccessat(dir.fd, ".m.safetensors.lcpfs", F_OK, 0), 0);
	free(good);
}

Test(integrity, damaged_sidecar_is_damage)
{
	lcp_err err;
	size_t n;
	pack_in(dir.fd, "m.safetensors");
	uint8_t *sc = read_file(dir.fd, ".m.safetensors.lcpfs", &n);
	sc[n / 2] ^= 0x40;
	write_file(dir.fd, ".m.safetensors.lcpfs", sc, n);
	cr_assert_eq(repr_of(dir.fd, "m.safetensors", &err), LCP_REPR_DAMAGED);
	cr_assert_eq(lcp_store_recover_dir(dir.fd), LCP_OK);
	cr_assert_eq(scratch_count(&dir), 2, "a sidecar that does not parse is left alone");
	free(sc);
}

/* Defect: a sidecar that could not be opened (a symlink, a FIFO, too many
 * open files) made the payload read as raw bytes. */
static void expect_cannot_tell(const char *why)
{
	lcp_err err;
	enum lcp_repr r = repr_of(dir.fd, "m.safetensors", &err);
	cr_assert(err != LCP_OK && err != LCP_ERR_NOENT, "%s: answered %d (%s)", why, r,
		  lcp_err_name(err));
	struct lcp_store_file *f;
	cr_assert_neq(lcp_store_open_at(dir.fd, "m.safetensors", NULL, &f), LCP_ERR_NOENT,
		      "%s: taken for raw", why);
}

Test(integrity, sidecar_symlink_fifo_dir_cannot_tell)
{
	pack_in(dir.fd, "m.safetensors");
	cr_assert_eq(renameat(dir.fd, ".m.safetensors.lcpfs", dir.fd, "kept"), 0);
	cr_assert_eq(symlinkat("kept", dir.fd, ".m.safetensors.lcpfs"), 0);
	expect_cannot_tell("symlink");
	unlinkat(dir.fd, ".m.safetensors.lcpfs", 0);
	cr_assert_eq(mkfifoat(dir.fd, ".m.safetensors.lcpfs", 0644), 0);
	expect_cannot_tell("FIFO"); /* and no hang: the suite has a timeout (alarm) */
	cr_assert_eq(lcp_store_recover_dir(dir.fd), LCP_OK, "recovery with a FIFO sidecar");
	unlinkat(dir.fd, ".m.safetensors.lcpfs", 0);
	cr_assert_eq(mkdirat(dir.fd, ".m.safetensors.lcpfs", 0755), 0);
	expect_cannot_tell("directory");
	unlinkat(dir.fd, ".m.safetensors.lcpfs", AT_REMOVEDIR);
	cr_assert_eq(renameat(dir.fd, "kept", dir.fd, ".m.safetensors.lcpfs"), 0);
	lcp_err err;
	cr_assert_eq(repr_of(dir.fd, "m.safetensors", &err), LCP_REPR_COMPRESSED);
}

Test(integrity, too_many_open_files_cannot_tell)
{
	struct rlimit old, low;
	pack_in(dir.fd, "m.safetensors");
	int probe_fd = open("/dev/null", O_RDONLY);
	close(probe_fd);
	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
	/* Room for the payload's fd, none for the sidecar's. */
	low = old;
	low.rlim_cur = (rlim_t)probe_fd + 1;
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
	struct lcp_probe pr;
	lcp_err err = lcp_store_probe_at(dir.fd, "m.safetensors", NULL, &pr, NULL);
	setrlimit(RLIMIT_NOFILE, &old);
	cr_assert_eq(err, LCP_ERR_MFILE, "got %s (repr %d)", lcp_err_name(err), pr.repr);
	cr_assert_neq(pr.note[0], 0);
}

Test(integrity, allocation_failures_never_answer_raw)
{
	pack_in(dir.fd, "m.safetensors");
	for (long n = 0; n < 200; n++) {
		struct lcp_store_file *f = NULL;
		struct lcp_probe pr;
		lcp_alloc_fail_after(n);
		lcp_err err = lcp_store_probe_at(dir.fd, "m.safetensors", NULL, &pr, &f);
		lcp_alloc_fail_after(-1);
		if (err == LCP_OK) {
			cr_assert_eq(pr.repr, LCP_REPR_COMPRESSED, "n=%ld: answered %d", n, pr.repr);
			cr_assert_not_null(f);
			lcp_store_close(f);
			return;
		}
		cr_assert_eq(err, LCP_ERR_NOMEM, "n=%ld: %s", n, lcp_err_name(err));
	}
	cr_assert_fail("probe never succeeded");
}

Test(integrity, fifo_and_special_names_are_never_opened)
{
	lcp_err err;
	struct lcp_probe pr;
	cr_assert_eq(mkfifoat(dir.fd, "fifo", 0644), 0);
	cr_assert_eq(lcp_store_probe_at(dir.fd, "fifo", NULL, &pr, NULL), LCP_OK);
	cr_assert_eq(pr.repr, LCP_REPR_RAW);
	cr_assert_not(pr.regular);
	/* Namespace operations on it run plain (no open, no hang). */
	cr_assert_eq(lcp_store_rename_at(dir.fd, "fifo", dir.fd, "fifo2", 0), LCP_OK);
	cr_assert_eq(lcp_store_link_at(dir.fd, "fifo2", dir.fd, "fifo3"), LCP_OK);
	cr_assert_eq(lcp_store_unlink_at(dir.fd, "fifo2"), LCP_OK);
	cr_assert_eq(lcp_store_unlink_at(dir.fd, "fifo3"), LCP_OK);
	/* Packing a FIFO in place neither blocks nor packs. */
	struct lcp_config cfg = lcp_config_default();
	struct lcp_pack_report rep;
	cr_assert_eq(mkfifoat(dir.fd, "fifo", 0644), 0);
	cr_assert_eq(lcp_store_pack_at(dir.fd, "fifo", -1, &cfg, NULL, NULL, &rep), LCP_OK);
	cr_assert_not(rep.committed);
	cr_assert_eq(repr_of(dir.fd, "fifo", &err), LCP_REPR_RAW);
}

Test(integrity, missing_sidecar_reads_raw_and_nothing_is_deleted)
{
	lcp_err err;
	size_t n;
	pack_in(dir.fd, "m.safetensors");
	uint8_t *good = recon(dir.fd, "m.safetensors", &n);
	cr_assert_eq(renameat(dir.fd, ".m.safetensors.lcpfs", dir.fd, "../saved.lcpfs"), 0);
	struct lcp_probe pr;
	cr_assert_eq(lcp_store_probe_at(dir.fd, "m.safetensors", NULL, &pr, NULL), LCP_OK);
	cr_assert_eq(pr.repr, LCP_REPR_RAW);
	cr_assert(strstr(pr.note, "no sidecar"), "note: %s", pr.note);
	cr_assert_eq(lcp_store_recover_dir(dir.fd), LCP_OK);
	cr_assert_eq(scratch_count(&dir), 1, "the payload stays");
	/* The sidecar restored from a backup: whole again. */
	cr_assert_eq(renameat(dir.fd, "../saved.lcpfs", dir.fd, ".m.safetensors.lcpfs"), 0);
	cr_assert_eq(repr_of(dir.fd, "m.safetensors", &err), LCP_REPR_COMPRESSED);
	cr_assert(reads_as(dir.fd, "m.safetensors", good, n));
	free(good);
}

Test(integrity, stale_sidecar_beside_raw_reads_raw)
{
	lcp_err err;
	pack_in(dir.fd, "m.safetensors");
	/* A raw file renamed over the payload behind the store's back. */
	write_file(dir.fd, "m.safetensors", st2.data, st2.len);
	cr_assert_eq(repr_of(dir.fd, "m.safetensors", &err), LCP_REPR_RAW);
	cr_assert_eq(err, LCP_OK);
	cr_assert(reads_as(dir.fd, "m.safetensors", st2.data, st2.len));
	cr_assert_eq(lcp_store_recover_dir(dir.fd), LCP_OK);
	cr_assert_eq(scratch_count(&dir), 1, "the stale sidecar is removed with proof");
}

Test(integrity, payload_beside_another_sidecar_cannot_tell)
{
	lcp_err err;
	write_file(dir.fd, "o.safetensors", st2.data, st2.len);
	pack_in(dir.fd, "m.safetensors");
	pack_in(dir.fd, "o.safetensors");
	cr_assert_eq(renameat(dir.fd, ".o.safetensors.lcpfs", dir.fd, ".m.safetensors.lcpfs"), 0);
	repr_of(dir.fd, "m.safetensors", &err);
	cr_assert_eq(err, LCP_ERR_AGAIN);
	/* o's payload now has no sidecar at all: its bytes, not damage. */
	cr_assert_eq(repr_of(dir.fd, "o.safetensors", &err), LCP_REPR_RAW);
	/* Recovery: m's old sidecar is gone for good, so m reads raw (its
	 * bytes) and the sidecar goes back beside o. Nothing reads wrong. */
	cr_assert_eq(lcp_store_recover_dir(dir.fd), LCP_OK);
	cr_assert_eq(repr_of(dir.fd, "o.safetensors", &err), LCP_REPR_COMPRESSED);
}

Test(integrity, hard_link_made_on_the_backing)
{
	lcp_err err;
	size_t n;
	pack_in(dir.fd, "m.safetensors");
	uint8_t *good = recon(dir.fd, "m.safetensors", &n);
	cr_assert_eq(linkat(dir.fd, "m.safetensors", dir.fd, "l.safetensors", 0), 0);
	repr_of(dir.fd, "l.safetensors", &err);
	cr_assert_eq(err, LCP_ERR_AGAIN, "a second name of a payload is never raw");
	cr_assert_eq(lcp_store_recover_dir(dir.fd), LCP_OK);
	cr_assert(reads_as(dir.fd, "l.safetensors", good, n));
	cr_assert(reads_as(dir.fd, "m.safetensors", good, n));
	/* Several links: cannot be materialized or discarded in place. */
	struct lcp_materialize *mat;
	cr_assert_eq(lcp_store_materialize_prepare_at(dir.fd, "l.safetensors", &mat), LCP_ERR_MLINK);
	uint64_t dev, ino;
	cr_assert_eq(lcp_store_discard_at(dir.fd, "l.safetensors", &dev, &ino), LCP_ERR_MLINK);
	free(good);
}

Test(integrity, live_temporaries_survive_recovery)
{
	struct lcp_store_temp live;
	cr_assert_eq(lcp_store_temp_create(dir.fd, 'p', 0600, &live), LCP_OK);
	write_file(dir.fd, ".lcpfs-tmp.00000000deadbeef.p", "x", 1); /* a crashed one */
	cr_assert_eq(lcp_store_recover_dir(dir.fd), LCP_OK);
	cr_assert_eq(faccessat(dir.fd, live.name, F_OK, 0), 0, "a live temporary was removed");
	cr_assert_neq(faccessat(dir.fd, ".lcpfs-tmp.00000000deadbeef.p", F_OK, 0), 0);
	/* Held by another process too (the lock is per open file). */
	pid_t pid = fork();
	if (pid == 0)
		_exit(lcp_store_recover_dir(dir.fd) == LCP_OK &&
			      faccessat(dir.fd, live.name, F_OK, 0) == 0
		      ? 0
		      : 1);
	int status;
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "another process removed it");
	lcp_store_temp_remove(dir.fd, &live);
	cr_assert_eq(scratch_count(&dir), 1);
}

/* The state a live pack is in after placing its sidecar beside the raw
 * file, its payload still a (locked) temporary: the sidecar is in use, not
 * stale. Once the temporary is nobody's, both go. */
Test(integrity, sidecar_of_a_pack_in_flight_is_kept)
{
	size_t np;
	pack_in(dir.fd, "m.safetensors");
	uint8_t *payload = read_file(dir.fd, "m.safetensors", &np);
	write_file(dir.fd, "m.safetensors", st.data, st.len); /* raw again */
	struct lcp_store_temp t;
	cr_assert_eq(lcp_store_temp_create(dir.fd, 'p', 0600, &t), LCP_OK);
	cr_assert_eq(write(t.fd, payload, np), (ssize_t)np);
	cr_assert_eq(lcp_store_recover_dir(dir.fd), LCP_OK);
	cr_assert_eq(faccessat(dir.fd, ".m.safetensors.lcpfs", F_OK, 0), 0,
		     "the sidecar of a pack in flight was removed");
	cr_assert_eq(faccessat(dir.fd, t.name, F_OK, 0), 0);
	close(t.fd); /* the packing process is gone */
	cr_assert_eq(lcp_store_recover_dir(dir.fd), LCP_OK);
	cr_assert_eq(scratch_count(&dir), 1, "temporary and stale sidecar left");
	cr_assert(reads_as(dir.fd, "m.safetensors", st.data, st.len));
	free(payload);
}

Test(integrity, recovery_waits_for_a_backing_in_use)
{
	int held;
	pack_in(dir.fd, "m.safetensors");
	write_file(dir.fd, ".lcpfs-tmp.00000000deadbeef.p", "x", 1);
	cr_assert_eq(lcp_store_hold_backing(dir.fd, &held), LCP_OK);
	cr_assert_eq(lcp_store_recover_dir(dir.fd), LCP_ERR_BUSY);
	cr_assert_eq(scratch_count(&dir), 3, "recovery changed a backing in use");
	close(held);
	cr_assert_eq(lcp_store_recover_dir(dir.fd), LCP_OK);
	cr_assert_eq(scratch_count(&dir), 2);
}

/* Names of 249..255 bytes: the sidecar takes the hashed form. */
static void long_name(char *out, size_t len, char fill)
{
	memset(out, fill, len);
	memcpy(out + len - 12, ".safetensors", 12);
	out[len] = '\0';
}

Test(integrity, long_names_pack_rename_link_unlink)
{
	char a[256], b[256], c[256];
	lcp_err err;
	size_t n;
	pack_in(dir.fd, "m.safetensors");
	uint8_t *good = recon(dir.fd, "m.safetensors", &n);
	for (size_t len = 249; len <= 255; len++) {
		long_name(a, len, 'a');
		cr_assert_eq(lcp_store_rename_at(dir.fd, "m.safetensors", dir.fd, a, 0), LCP_OK,
			     "rename to %zu bytes", len);
		cr_assert(reads_as(dir.fd, a, good, n), "%zu", len);
		cr_assert_eq(scratch_count(&dir), 2);
		cr_assert_eq(lcp_store_rename_at(dir.fd, a, dir.fd, "m.safetensors", 0), LCP_OK);
		cr_assert(reads_as(dir.fd, "m.safetensors", good, n));
	}
	long_name(a, 255, 'a');
	long_name(b, 254, 'b');
	long_name(c, 250, 'c');
	write_file(dir.fd, a, st2.data, st2.len);
	pack_in(dir.fd, a);
	size_t n2;
	uint8_t *good2 = recon(dir.fd, a, &n2);
	cr_assert_eq(lcp_store_link_at(dir.fd, a, dir.fd, b), LCP_OK);
	cr_assert(reads_as(dir.fd, b, good2, n2));
	cr_assert_eq(lcp_store_rename_at(dir.fd, "m.safetensors", dir.fd, b, 0), LCP_OK);
	cr_assert(reads_as(dir.fd, b, good, n));
	cr_assert(reads_as(dir.fd, a, good2, n2));
	cr_assert_eq(lcp_store_rename_at(dir.fd, a, dir.fd, b, RENAME_EXCHANGE), LCP_OK);
	cr_assert(reads_as(dir.fd, b, good2, n2));
	cr_assert(reads_as(dir.fd, a, good, n));
	cr_assert_eq(lcp_store_materialize_at(dir.fd, a), LCP_OK);
	cr_assert(reads_as(dir.fd, a, good, n));
	cr_assert_eq(repr_of(dir.fd, a, &err), LCP_REPR_RAW);
	/* A crash state: the payload renamed back behind the store's back,
	 * its hashed sidecar left at the other long name's. */
	cr_assert_eq(lcp_store_rename_at(dir.fd, b, dir.fd, c, 0), LCP_OK);
	cr_assert_eq(renameat(dir.fd, c, dir.fd, b), 0);
	cr_assert_neq(repr_of(dir.fd, b, &err), LCP_REPR_COMPRESSED);
	cr_assert_eq(lcp_store_recover_dir(dir.fd), LCP_OK);
	cr_assert(reads_as(dir.fd, b, good2, n2));
	cr_assert_eq(lcp_store_unlink_at(dir.fd, b), LCP_OK);
	cr_assert_eq(lcp_store_unlink_at(dir.fd, a), LCP_OK);
	cr_assert_eq(scratch_count(&dir), 0);
	free(good);
	free(good2);
}

/* Two-phase pack: the commit checks durable facts. */
static struct lcp_pack_job *prepare(const char *name)
{
	struct lcp_config cfg = lcp_config_default();
	struct lcp_pack_report rep;
	struct lcp_pack_job *job = NULL;
	cr_assert_eq(lcp_store_pack_prepare_at(dir.fd, name, -1, &cfg, NULL, NULL, &rep, &job),
		     LCP_OK);
	cr_assert_not_null(job, "not prepared: %s", rep.reason);
	return job;
}

static void expect_commit(struct lcp_pack_job *job, enum lcp_pack_outcome want, const char *why)
{
	struct lcp_pack_report rep;
	cr_assert_eq(lcp_store_pack_commit(job, &rep), LCP_OK, "%s", why);
	cr_assert_eq(rep.outcome, want, "%s: outcome %d (%s)", why, rep.outcome, rep.reason);
	lcp_store_pack_free(job);
}

Test(integrity, commit_refuses_a_changed_file)
{
	struct lcp_pack_job *job = prepare("m.safetensors");
	cr_assert_eq(fchmodat(dir.fd, "m.safetensors", 0600, 0), 0); /* ctime only */
	expect_commit(job, LCP_PACK_RETRY, "chmod during the pack");
	job = prepare("m.safetensors");
	int fd = openat(dir.fd, "m.safetensors", O_WRONLY);
	cr_assert_eq(pwrite(fd, st.data, 8, 0), 8); /* same bytes, new mtime */
	close(fd);
	expect_commit(job, LCP_PACK_RETRY, "write during the pack");
	job = prepare("m.safetensors");
	cr_assert_eq(renameat(dir.fd, "m.safetensors", dir.fd, "moved"), 0);
	expect_commit(job, LCP_PACK_RETRY, "renamed during the pack");
	cr_assert_eq(renameat(dir.fd, "moved", dir.fd, "m.safetensors"), 0);
	cr_assert(reads_as(dir.fd, "m.safetensors", st.data, st.len));
	cr_assert_eq(scratch_count(&dir), 1, "temporaries left");
}

/* Defect: a hard link made while the file was being compressed split it. */
Test(integrity, commit_refuses_a_link_made_meanwhile)
{
	struct lcp_pack_job *job = prepare("m.safetensors");
	struct lcp_pack_report rep;
	cr_assert_eq(linkat(dir.fd, "m.safetensors", dir.fd, "l.safetensors", 0), 0);
	/* The link changed ctime: a retry, which then refuses for good. */
	expect_commit(job, LCP_PACK_RETRY, "link during the pack");
	struct lcp_config cfg = lcp_config_default();
	cr_assert_eq(lcp_store_pack_at(dir.fd, "m.safetensors", -1, &cfg, NULL, NULL, &rep), LCP_OK);
	cr_assert_eq(rep.outcome, LCP_PACK_REFUSED);
	cr_assert_str_eq(rep.reason, "file has several hard links");
	struct stat a, b;
	cr_assert_eq(fstatat(dir.fd, "m.safetensors", &a, 0), 0);
	cr_assert_eq(fstatat(dir.fd, "l.safetensors", &b, 0), 0);
	cr_assert_eq(a.st_ino, b.st_ino, "the link was split");
	cr_assert_eq(a.st_nlink, 2);
	struct lcp_probe pr;
	cr_assert_eq(lcp_store_probe_at(dir.fd, "l.safetensors", NULL, &pr, NULL), LCP_OK);
	cr_assert_str_eq(pr.refused, "file has several hard links", "refusal marker: '%s'",
			 pr.refused);
}

Test(integrity, metadata_survives_pack_and_materialize)
{
	struct stat a, b;
	struct timespec ts[2] = {{1000000000, 5}, {1100000000, 7}};
	cr_assert_eq(fchownat(dir.fd, "m.safetensors", 1234, 2345, 0), 0);
	cr_assert_eq(fchmodat(dir.fd, "m.safetensors", 06751, 0), 0);
	int fd = openat(dir.fd, "m.safetensors", O_RDONLY);
	cr_assert_eq(fsetxattr(fd, "user.note", "kept", 4, 0), 0);
	cr_assert_eq(fsetxattr(fd, "user.lcpfs.refused", "old", 3, 0), 0);
	cr_assert_eq(futimens(fd, ts), 0);
	close(fd);
	pack_in(dir.fd, "m.safetensors");
	for (int round = 0; round < 2; round++) {
		cr_assert_eq(fstatat(dir.fd, "m.safetensors", &a, 0), 0);
		cr_assert_eq(a.st_mode & 07777, 06751, "round %d: mode %o", round, a.st_mode & 07777);
		cr_assert_eq(a.st_uid, 1234);
		cr_assert_eq(a.st_gid, 2345);
		cr_assert_eq(a.st_mtim.tv_sec, ts[1].tv_sec);
		cr_assert_eq(a.st_mtim.tv_nsec, ts[1].tv_nsec);
		char v[16];
		fd = openat(dir.fd, "m.safetensors", O_RDONLY);
		cr_assert_eq(fgetxattr(fd, "user.note", v, sizeof v), 4, "round %d", round);
		cr_assert_lt(fgetxattr(fd, "user.lcpfs.refused", v, sizeof v), 0,
			     "the store's own xattr was carried");
		close(fd);
		if (round == 0)
			cr_assert_eq(lcp_store_materialize_at(dir.fd, "m.safetensors"), LCP_OK);
	}
	(void)b;
}

/* Defect: an open with O_TRUNC emptied the payload in place, under the
 * store files other machines' mounts had open on it: their reads failed
 * their checksums (EIO, "damaged payload"). */
Test(integrity, discard_leaves_the_payload_alone)
{
	struct stat a, b;
	struct lcp_store_file *reader;
	uint64_t dev = 0, ino = 0;
	size_t n, got;
	lcp_err err;
	pack_in(dir.fd, "m.safetensors");
	uint8_t *want = recon(dir.fd, "m.safetensors", &n);
	cr_assert_eq(lcp_store_open_at(dir.fd, "m.safetensors", NULL, &reader), LCP_OK);
	cr_assert_eq(fchmodat(dir.fd, "m.safetensors", 0640, 0), 0);
	cr_assert_eq(fstatat(dir.fd, "m.safetensors", &a, 0), 0);
	cr_assert_eq(lcp_store_discard_at(dir.fd, "m.safetensors", &dev, &ino), LCP_OK);
	cr_assert_eq(fstatat(dir.fd, "m.safetensors", &b, 0), 0);
	cr_assert_neq(a.st_ino, b.st_ino, "a new file takes the name");
	cr_assert_eq(ino, (uint64_t)b.st_ino);
	cr_assert_eq(dev, (uint64_t)b.st_dev);
	cr_assert_eq(b.st_size, 0);
	cr_assert_eq(b.st_mode & 07777, 0640, "the payload's mode is kept");
	cr_assert_eq(repr_of(dir.fd, "m.safetensors", &err), LCP_REPR_RAW);
	cr_assert_eq(scratch_count(&dir), 1, "no sidecar, no temporary left");
	/* The reader that had it open reads the whole reconstruction still. */
	uint8_t *b2 = malloc(n);
	cr_assert_eq(lcp_store_read(reader, b2, n, 0, &got, NULL), LCP_OK);
	cr_assert_eq(got, n);
	cr_assert(memcmp(b2, want, n) == 0, "the open file changed under its reader");
	lcp_store_close(reader);
	free(b2);
	free(want);
}

/*
 * Crash after every step: a child runs the operation with LCPFS_TEST_CRASH
 * naming the step and dies by SIGKILL there. Then, before recovery, no name
 * reads wrong bytes (it reads its old or its new version, or cannot be
 * told); after recovery, every name reads as one whole version, consistently
 * (old for all, or new for all), and nothing is left over.
 */
enum op { OP_RENAME, OP_EXCHANGE, OP_LINK, OP_UNLINK, OP_MATERIALIZE, OP_DISCARD, OP_PACK };

static void run_op(enum op op, const char *a, const char *t, int tdir)
{
	struct lcp_config cfg = lcp_config_default();
	struct lcp_pack_report rep;
	switch (op) {
	case OP_RENAME:
		lcp_store_rename_at(dir.fd, a, tdir, t, 0);
		break;
	case OP_EXCHANGE:
		lcp_store_rename_at(dir.fd, a, tdir, t, RENAME_EXCHANGE);
		break;
	case OP_LINK:
		lcp_store_link_at(dir.fd, a, tdir, t);
		break;
	case OP_UNLINK:
		lcp_store_unlink_at(dir.fd, a);
		break;
	case OP_MATERIALIZE:
		lcp_store_materialize_at(dir.fd, a);
		break;
	case OP_DISCARD: {
		uint64_t dev, ino;
		lcp_store_discard_at(dir.fd, a, &dev, &ino);
		break;
	}
	case OP_PACK:
		lcp_store_pack_at(dir.fd, a, -1, &cfg, NULL, NULL, &rep);
		break;
	}
}

struct version {
	const uint8_t *a, *t; /* contents of A and T (NULL: absent) */
	size_t alen, tlen;
};

static bool name_is(int dfd, const char *name, const uint8_t *want, size_t len)
{
	if (!want)
		return faccessat(dfd, name, F_OK, AT_SYMLINK_NOFOLLOW) != 0;
	return reads_as(dfd, name, want, len);
}

static bool name_ok_or_untold(int dfd, const char *name, const uint8_t *w1, size_t l1,
			      const uint8_t *w2, size_t l2)
{
	lcp_err err;
	enum lcp_repr r = repr_of(dfd, name, &err);
	if (err && err != LCP_ERR_NOENT)
		return true; /* cannot tell: EIO for a reader, never wrong bytes */
	if (err == LCP_OK && r == LCP_REPR_DAMAGED)
		return false;
	return name_is(dfd, name, w1, l1) || name_is(dfd, name, w2, l2);
}

static int count_all(int d)
{
	int n = 0;
	DIR *dp = fdopendir(dup(d));
	struct dirent *e;
	rewinddir(dp);
	while ((e = readdir(dp)) != NULL)
		n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
		     strcmp(e->d_name, ".lcpfs-lock");
	closedir(dp);
	return n;
}

static void crash_case(enum op op, const char *step, const char *a, const char *t, int tdir,
		       struct version old, struct version new, int entries_old, int entries_new)
{
	int status;
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		setenv("LCPFS_TEST_CRASH", step, 1);
		run_op(op, a, t, tdir);
		_exit(3); /* the step was not reached */
	}
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
		  "step %s not reached (status %d)", step, status);
	cr_assert(name_ok_or_untold(dir.fd, a, old.a, old.alen, new.a, new.alen),
		  "%s: A reads wrong bytes before recovery", step);
	if (t)
		cr_assert(name_ok_or_untold(tdir, t, old.t, old.tlen, new.t, new.tlen),
			  "%s: T reads wrong bytes before recovery", step);
	cr_assert_eq(lcp_store_recover_dir(dir.fd), LCP_OK);
	bool is_old = name_is(dir.fd, a, old.a, old.alen) &&
		      (!t || name_is(tdir, t, old.t, old.tlen));
	bool is_new = name_is(dir.fd, a, new.a, new.alen) &&
		      (!t || name_is(tdir, t, new.t, new.tlen));
	cr_assert(is_old || is_new, "%s: after recovery neither the old nor the new version",
		  step);
	/* When both versions read the same (materialize) either layout is right. */
	int have = count_all(dir.fd) + (tdir != dir.fd ? count_all(tdir) : 0);
	cr_assert((is_old && have == entries_old) || (is_new && have == entries_new),
		  "%s: %d entries after recovery (%s version: %d)", step, have,
		  is_old ? "old" : "new", is_old ? entries_old : entries_new);
}

/* Resets the scratch directory to: A = m compressed, T = o compressed (or
 * raw, or absent), optional subdirectory "sub" for T. */
static void reset(bool t_present, bool t_packed, bool sub)
{
	DIR *d = opendir(dir.path);
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (!strcmp(e->d_name, "sub")) {
			int s = openat(dir.fd, "sub", O_RDONLY | O_DIRECTORY);
			DIR *sd = fdopendir(s);
			struct dirent *se;
			while ((se = readdir(sd)) != NULL)
				if (strcmp(se->d_name, ".") && strcmp(se->d_name, ".."))
					unlinkat(dirfd(sd), se->d_name, 0);
			closedir(sd);
			unlinkat(dir.fd, "sub", AT_REMOVEDIR);
		} else {
			unlinkat(dir.fd, e->d_name, 0);
		}
	}
	closedir(d);
	if (sub)
		cr_assert_eq(mkdirat(dir.fd, "sub", 0755), 0);
	int tdir = sub ? openat(dir.fd, "sub", O_RDONLY | O_DIRECTORY) : dir.fd;
	write_file(dir.fd, "a.safetensors", st.data, st.len);
	pack_in(dir.fd, "a.safetensors");
	if (t_present) {
		write_file(tdir, "t.safetensors", st2.data, st2.len);
		if (t_packed)
			pack_in(tdir, "t.safetensors");
	}
	if (sub)
		close(tdir);
}

Test(integrity, crash_at_every_step_of_rename)
{
	alarm(CRASH_TESTS_TIMEOUT_SEC);
	static const char *const steps_taken[] = {"rename-payload"};
	static const char *const steps_free[] = {"rename-link", "rename-payload"};
	for (int variant = 0; variant < 4; variant++) {
		/* 0: T compressed; 1: T raw; 2: T absent; 3: T compressed in
		 * another directory. */
		bool t_present = variant != 2, t_packed = variant == 0 || variant == 3;
		bool sub = variant == 3;
		const char *const *steps = t_packed ? steps_taken : steps_free;
		int nsteps = t_packed ? 1 : 2;
		for (int s = 0; s < nsteps; s++) {
			reset(t_present, t_packed, sub);
			int tdir = sub ? openat(dir.fd, "sub", O_RDONLY | O_DIRECTORY) : dir.fd;
			size_t la, lt = 0;
			uint8_t *ra = recon(dir.fd, "a.safetensors", &la);
			uint8_t *rt = t_present ? logical(tdir, "t.safetensors", &lt) : NULL;
			struct version old = {ra, rt, la, lt}, new = {NULL, ra, 0, la};
			int e_old = 2 + (t_present ? 1 + t_packed : 0) + sub, e_new = 2 + sub;
			crash_case(OP_RENAME, steps[s], "a.safetensors", "t.safetensors", tdir, old,
				   new, e_old, e_new);
			free(ra);
			free(rt);
			if (sub)
				close(tdir);
		}
	}
}

Test(integrity, crash_at_every_step_of_exchange_link_unlink)
{
	alarm(CRASH_TESTS_TIMEOUT_SEC);
	size_t la, lt;
	for (int variant = 0; variant < 2; variant++) {
		reset(true, variant == 0, false);
		uint8_t *ra = recon(dir.fd, "a.safetensors", &la);
		uint8_t *rt = logical(dir.fd, "t.safetensors", &lt);
		struct version old = {ra, rt, la, lt}, new = {rt, ra, lt, la};
		int e = variant == 0 ? 4 : 3;
		crash_case(OP_EXCHANGE, "exchange", "a.safetensors", "t.safetensors", dir.fd, old,
			   new, e, e);
		free(ra);
		free(rt);
	}
	reset(false, false, false);
	uint8_t *ra = recon(dir.fd, "a.safetensors", &la);
	struct version old = {ra, NULL, la, 0}, new = {ra, ra, la, la};
	crash_case(OP_LINK, "link-sidecar", "a.safetensors", "t.safetensors", dir.fd, old, new, 2,
		   4);
	reset(false, false, false);
	struct version gone = {NULL, NULL, 0, 0};
	crash_case(OP_UNLINK, "unlink", "a.safetensors", NULL, dir.fd, old, gone, 2, 0);
	free(ra);
}

Test(integrity, crash_at_every_step_of_pack_materialize_discard)
{
	alarm(CRASH_TESTS_TIMEOUT_SEC);
	static const char *const pack_steps[] = {"temps", "sidecar", "payload"};
	size_t la, lr, lx;
	for (int s = 0; s < 3; s++) {
		reset(false, false, false);
		cr_assert_eq(lcp_store_materialize_at(dir.fd, "a.safetensors"), LCP_OK);
		/* A raw tensor file: old = its bytes, new = its reconstruction
		 * (the encoder is deterministic: a copy packs the same). */
		uint8_t *raw = read_file(dir.fd, "a.safetensors", &lr);
		write_file(dir.fd, "x", raw, lr);
		pack_in(dir.fd, "x");
		uint8_t *rx = recon(dir.fd, "x", &lx);
		cr_assert_eq(lcp_store_unlink_at(dir.fd, "x"), LCP_OK);
		struct version old = {raw, NULL, lr, 0}, new = {rx, NULL, lx, 0};
		crash_case(OP_PACK, pack_steps[s], "a.safetensors", NULL, dir.fd, old, new, 1, 2);
		free(rx);
		free(raw);
	}
	reset(false, false, false);
	uint8_t *ra = recon(dir.fd, "a.safetensors", &la);
	struct version same = {ra, NULL, la, 0};
	crash_case(OP_MATERIALIZE, "materialize", "a.safetensors", NULL, dir.fd, same, same, 2, 1);
	reset(false, false, false);
	struct version empty = {(const uint8_t *)"", NULL, 0, 0};
	crash_case(OP_DISCARD, "discard", "a.safetensors", NULL, dir.fd, same, empty, 2, 1);
	free(ra);
}

/* A pack into a destination that is itself compressed parks its sidecar. */
Test(integrity, crash_while_packing_over_a_compressed_destination)
{
	alarm(CRASH_TESTS_TIMEOUT_SEC);
	static const char *const steps[] = {"sidecar", "payload", "parked"};
	struct lcp_config cfg = lcp_config_default();
	size_t la, lt, lx;
	for (int s = 0; s < 3; s++) {
		reset(true, false, false);
		uint8_t *ra = recon(dir.fd, "a.safetensors", &la);
		write_file(dir.fd, "x", st2.data, st2.len);
		pack_in(dir.fd, "x");
		uint8_t *rx = recon(dir.fd, "x", &lx);
		cr_assert_eq(lcp_store_unlink_at(dir.fd, "x"), LCP_OK);
		int src = openat(dir.fd, "t.safetensors", O_RDONLY);
		int status;
		pid_t pid = fork();
		if (pid == 0) {
			struct lcp_pack_report rep;
			setenv("LCPFS_TEST_CRASH", steps[s], 1);
			lcp_store_pack_at(dir.fd, "a.safetensors", src, &cfg, NULL, NULL, &rep);
			_exit(3);
		}
		cr_assert_eq(waitpid(pid, &status, 0), pid);
		cr_assert(WIFSIGNALED(status), "step %s not reached", steps[s]);
		close(src);
		cr_assert(name_ok_or_untold(dir.fd, "a.safetensors", ra, la, rx, lx),
			  "%s: wrong bytes before recovery", steps[s]);
		cr_assert_eq(lcp_store_recover_dir(dir.fd), LCP_OK);
		lcp_err err;
		cr_assert_eq(repr_of(dir.fd, "a.safetensors", &err), LCP_REPR_COMPRESSED, "%s",
			     steps[s]);
		cr_assert(reads_as(dir.fd, "a.safetensors", ra, la) ||
			  reads_as(dir.fd, "a.safetensors", rx, lx), "%s: neither version", steps[s]);
		cr_assert_eq(scratch_count(&dir), 3, "%s: leftovers", steps[s]);
		(void)lt;
		free(rx);
		free(ra);
	}
}
