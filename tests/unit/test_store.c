/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Store tests: pack, open, read ranges, verify, damage, refusals, namespace
 * operations, recovery, the chunk cache and the JSON report, on a synthetic
 * safetensors file built in test_store_helpers.h.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <pthread.h>

#include "common/alloc.h"
#include "lcpfs/store.h"
#include "store/cache.h"
#include "test_store_helpers.h"

/* The balanced preset's cosine floor: the store must never keep a tensor
 * below the floor the config states. */
#define QUALITY_FLOOR 0.97
/* Random ranges read per test: enough to cross every region and many chunk
 * boundaries of the ~70 KiB file, few enough to stay fast. */
#define RANDOM_READS 400

static struct scratch dir;
static struct synth st;

static void setup(void)
{
	scratch_make(&dir);
	synth_build(&st, 0x1234567);
	write_file(dir.fd, "m.safetensors", st.data, st.len);
}

static void teardown(void)
{
	free(st.data);
	scratch_remove(&dir);
}

static void pack_ok(const char *name)
{
	struct lcp_config cfg = lcp_config_default();
	struct lcp_pack_report rep;
	cr_assert_eq(lcp_store_pack_at(dir.fd, name, -1, &cfg, NULL, NULL, &rep), LCP_OK);
	cr_assert(rep.committed, "not committed: %s", rep.reason);
	cr_assert_eq(rep.format, LCP_FORMAT_SAFETENSORS);
	cr_assert_eq(rep.logical_size, st.len);
	cr_assert_lt(rep.stored_size, st.len);
}

static uint8_t *read_whole(struct lcp_store_file *f)
{
	uint64_t n = lcp_store_logical_size(f);
	uint8_t *b = malloc(n + 1);
	size_t got;
	cr_assert_eq(lcp_store_read(f, b, n + 100, 0, &got, NULL), LCP_OK);
	cr_assert_eq(got, n);
	return b;
}

TestSuite(store, .init = setup, .fini = teardown);

Test(store, pack_open_read_whole)
{
	struct lcp_store_file *f;
	pack_ok("m.safetensors");
	cr_assert_eq(lcp_store_open_at(dir.fd, "m.safetensors", NULL, &f), LCP_OK);
	cr_assert_eq(lcp_store_logical_size(f), st.len);
	uint8_t *b = read_whole(f);
	/* header and the exact tensors (n, i) byte-identical */
	cr_assert_eq(memcmp(b, st.data, st.data_start), 0, "header differs");
	size_t exact_off = st.data_start + ST_W_LEN + ST_H_LEN;
	cr_assert_eq(memcmp(b + exact_off, st.data + exact_off, ST_N_LEN + ST_I_LEN), 0);
	/* the F32 tensor within the floor */
	double cos = cosine_f32(b + st.data_start, st.data + st.data_start, ST_W_LEN / 4);
	cr_assert_geq(cos, QUALITY_FLOOR, "cosine %f", cos);
	cr_assert_eq(lcp_store_verify(f, NULL, 0), LCP_OK);
	free(b);
	lcp_store_close(f);
	cr_assert_eq(scratch_count(&dir), 2, "payload + sidecar only, no temporaries");
}

Test(store, raw_file_is_noent)
{
	struct lcp_store_file *f;
	cr_assert_eq(lcp_store_open_at(dir.fd, "m.safetensors", NULL, &f), LCP_ERR_NOENT);
	cr_assert_eq(lcp_store_open_at(dir.fd, "absent", NULL, &f), LCP_ERR_NOENT);
}

static void random_ranges(struct lcp_chunk_cache *cache, uint64_t seed)
{
	struct lcp_store_file *f;
	cr_assert_eq(lcp_store_open_at(dir.fd, "m.safetensors", cache, &f), LCP_OK);
	uint8_t *whole = read_whole(f);
	uint64_t n = lcp_store_logical_size(f);
	uint8_t *b = malloc(n + 64);
	for (int k = 0; k < RANDOM_READS; k++) {
		uint64_t off = test_rng(&seed) % (n + 16);
		size_t len = (size_t)(test_rng(&seed) % (k % 4 ? 4096 : n)), got;
		cr_assert_eq(lcp_store_read(f, b, len, off, &got, NULL), LCP_OK);
		size_t expect = off >= n ? 0 : (size_t)(n - off < len ? n - off : len);
		cr_assert_eq(got, expect, "read %zu at %llu", len, (unsigned long long)off);
		cr_assert_eq(memcmp(b, whole + (off < n ? off : n), got), 0,
			     "range %zu at %llu differs", len, (unsigned long long)off);
	}
	free(b);
	free(whole);
	lcp_store_close(f);
}

Test(store, random_ranges_equal_whole_read)
{
	pack_ok("m.safetensors");
	random_ranges(NULL, 99);
}

Test(store, random_ranges_through_small_cache)
{
	struct lcp_chunk_cache *c;
	pack_ok("m.safetensors");
	/* smaller than one tensor chunk: forces evictions and refusals */
	cr_assert_eq(lcp_chunk_cache_create(40000, &c), LCP_OK);
	random_ranges(c, 7);
	cr_assert_leq(lcp_chunk_cache_used(c), 40000);
	lcp_chunk_cache_free(c);
}

struct thr {
	struct lcp_store_file *f;
	const uint8_t *whole;
	uint64_t seed;
	int bad;
};

static void *reader(void *arg)
{
	struct thr *t = arg;
	uint64_t n = lcp_store_logical_size(t->f);
	uint8_t b[8192];
	for (int k = 0; k < RANDOM_READS; k++) {
		uint64_t off = test_rng(&t->seed) % n;
		size_t len = (size_t)(test_rng(&t->seed) % sizeof b), got;
		if (lcp_store_read(t->f, b, len, off, &got, NULL) != LCP_OK ||
		    memcmp(b, t->whole + off, got) != 0)
			t->bad++;
	}
	return NULL;
}

Test(store, concurrent_readers_share_cache)
{
	struct lcp_chunk_cache *c;
	struct lcp_store_file *f;
	pthread_t th[4];
	struct thr t[4];
	pack_ok("m.safetensors");
	cr_assert_eq(lcp_chunk_cache_create(1 << 20, &c), LCP_OK);
	cr_assert_eq(lcp_store_open_at(dir.fd, "m.safetensors", c, &f), LCP_OK);
	uint8_t *whole = read_whole(f);
	for (int i = 0; i < 4; i++) {
		t[i] = (struct thr){f, whole, (uint64_t)i + 11, 0};
		pthread_create(&th[i], NULL, reader, &t[i]);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		cr_assert_eq(t[i].bad, 0, "thread %d saw %d bad reads", i, t[i].bad);
	}
	free(whole);
	lcp_store_close(f);
	lcp_chunk_cache_free(c);
}

static void flip_byte(const char *name, uint64_t off)
{
	flip_byte_at(dir.fd, name, off);
}

Test(store, payload_damage_fails_verify_and_read)
{
	struct lcp_store_file *f;
	char where[256];
	struct stat sb;
	pack_ok("m.safetensors");
	cr_assert_eq(fstatat(dir.fd, "m.safetensors", &sb, 0), 0);
	/* every tenth byte past the header, one at a time */
	for (uint64_t off = 40; off < (uint64_t)sb.st_size; off += (uint64_t)sb.st_size / 10) {
		flip_byte("m.safetensors", off);
		cr_assert_eq(lcp_store_open_at(dir.fd, "m.safetensors", NULL, &f), LCP_OK);
		cr_assert_eq(lcp_store_verify(f, where, sizeof where), LCP_ERR_CHECKSUM,
			     "flip at %llu not detected", (unsigned long long)off);
		cr_assert_neq(where[0], 0);
		uint64_t n = lcp_store_logical_size(f), bad = UINT64_MAX;
		uint8_t *b = malloc(n);
		size_t got = 1;
		cr_assert_eq(lcp_store_read(f, b, n, 0, &got, &bad), LCP_ERR_CHECKSUM);
		cr_assert_eq(got, 0);
		cr_assert_lt(bad, n);
		free(b);
		lcp_store_close(f);
		flip_byte("m.safetensors", off); /* restore */
	}
	/* the payload header: its id or magic */
	flip_byte("m.safetensors", 20);
	cr_assert_eq(lcp_store_open_at(dir.fd, "m.safetensors", NULL, &f), LCP_ERR_CHECKSUM);
	flip_byte("m.safetensors", 20);
	flip_byte("m.safetensors", 2);
	cr_assert_eq(lcp_store_open_at(dir.fd, "m.safetensors", NULL, &f), LCP_ERR_CHECKSUM);
}

Test(store, sidecar_damage_fails_open)
{
	struct lcp_store_file *f;
	struct stat sb;
	pack_ok("m.safetensors");
	cr_assert_eq(fstatat(dir.fd, ".m.safetensors.lcpfs", &sb, 0), 0);
	for (uint64_t off = 0; off < (uint64_t)sb.st_size; off += 7) {
		flip_byte(".m.safetensors.lcpfs", off);
		lcp_err err = lcp_store_open_at(dir.fd, "m.safetensors", NULL, &f);
		cr_assert(err == LCP_ERR_CHECKSUM || err == LCP_ERR_FORMAT ||
				  err == LCP_ERR_TRUNCATED,
			  "flip at %llu gave %s", (unsigned long long)off, lcp_err_name(err));
		flip_byte(".m.safetensors.lcpfs", off);
	}
	cr_assert_eq(lcp_store_open_at(dir.fd, "m.safetensors", NULL, &f), LCP_OK);
	lcp_store_close(f);
}

static void expect_refused(const char *name, const void *data, size_t len, const char *why)
{
	struct lcp_config cfg = lcp_config_default();
	struct lcp_pack_report rep;
	size_t n;
	write_file(dir.fd, name, data, len);
	int before = scratch_count(&dir);
	cr_assert_eq(lcp_store_pack_at(dir.fd, name, -1, &cfg, NULL, NULL, &rep), LCP_OK);
	cr_assert_not(rep.committed, "%s was committed", name);
	cr_assert_neq(rep.reason[0], 0, "%s: no reason", why);
	uint8_t *b = read_file(dir.fd, name, &n);
	cr_assert_eq(n, len);
	cr_assert_eq(memcmp(b, data, len), 0, "%s: raw file changed", why);
	free(b);
	cr_assert_eq(scratch_count(&dir), before, "%s: temporaries left", why);
}

Test(store, refusals_leave_raw_untouched)
{
	uint8_t text[8192];
	for (size_t i = 0; i < sizeof text; i++)
		text[i] = (uint8_t)('a' + i % 26);
	expect_refused("notes.txt", text, sizeof text, "not a tensor file");
	expect_refused("small.safetensors", st.data, 100, "under min_size");
	uint8_t *trunc = malloc(st.len);
	memcpy(trunc, st.data, st.len);
	expect_refused("trunc.safetensors", trunc, st.len - 1000, "truncated");
	lcp_store_le64(trunc, 1ull << 40);
	expect_refused("hdr.safetensors", trunc, st.len, "absurd header length");
	free(trunc);
}

Test(store, prepared_pack_never_committed_keeps_raw)
{
	struct lcp_config cfg = lcp_config_default();
	struct lcp_pack_report rep;
	struct lcp_pack_job *job;
	size_t n;
	cr_assert_eq(lcp_store_pack_prepare_at(dir.fd, "m.safetensors", -1, &cfg, NULL, NULL, &rep,
					       &job),
		     LCP_OK);
	cr_assert_not_null(job, "not prepared: %s", rep.reason);
	cr_assert_eq(scratch_count(&dir), 3, "raw file and two temporaries");
	lcp_store_pack_free(job);
	uint8_t *b = read_file(dir.fd, "m.safetensors", &n);
	cr_assert_eq(n, st.len);
	cr_assert_eq(memcmp(b, st.data, n), 0);
	free(b);
	cr_assert_eq(scratch_count(&dir), 1);
}

Test(store, internal_names)
{
	cr_assert(lcp_store_is_internal_name(".m.safetensors.lcpfs"));
	cr_assert(lcp_store_is_internal_name(".lcpfs-tmp.0011223344556677.p"));
	cr_assert(lcp_store_is_internal_name(".lcpfs-h.00112233445566778899aabbccddeeff"));
	cr_assert(lcp_store_is_internal_name(".lcpfs-anything"));
	cr_assert_not(lcp_store_is_internal_name("m.safetensors"));
	cr_assert_not(lcp_store_is_internal_name(".lcpfs"));
	cr_assert_not(lcp_store_is_internal_name(".bashrc"));
	cr_assert_not(lcp_store_is_internal_name("x.lcpfs"));
}

static void expect_reads_as(const char *name, const uint8_t *want, size_t len)
{
	struct lcp_store_file *f;
	cr_assert_eq(lcp_store_open_at(dir.fd, name, NULL, &f), LCP_OK, "%s not committed", name);
	uint8_t *b = read_whole(f);
	cr_assert_eq(lcp_store_logical_size(f), len);
	cr_assert_eq(memcmp(b, want, len), 0);
	free(b);
	lcp_store_close(f);
}

Test(store, rename_link_unlink_take_the_sidecar)
{
	struct lcp_store_file *f;
	pack_ok("m.safetensors");
	cr_assert_eq(lcp_store_open_at(dir.fd, "m.safetensors", NULL, &f), LCP_OK);
	uint8_t *recon = read_whole(f);
	lcp_store_close(f);

	cr_assert_eq(lcp_store_rename_at(dir.fd, "m.safetensors", dir.fd, "r.safetensors", 0),
		     LCP_OK);
	expect_reads_as("r.safetensors", recon, st.len);
	cr_assert_eq(faccessat(dir.fd, ".m.safetensors.lcpfs", F_OK, 0), -1);
	cr_assert_eq(lcp_store_link_at(dir.fd, "r.safetensors", dir.fd, "l.safetensors"), LCP_OK);
	expect_reads_as("l.safetensors", recon, st.len);
	cr_assert_eq(lcp_store_unlink_at(dir.fd, "r.safetensors"), LCP_OK);
	expect_reads_as("l.safetensors", recon, st.len);
	cr_assert_eq(scratch_count(&dir), 2);

	/* a raw file renamed over a committed one: the stale sidecar goes */
	write_file(dir.fd, "plain", "hello", 5);
	cr_assert_eq(lcp_store_rename_at(dir.fd, "plain", dir.fd, "l.safetensors", 0), LCP_OK);
	cr_assert_eq(lcp_store_open_at(dir.fd, "l.safetensors", NULL, &f), LCP_ERR_NOENT);
	cr_assert_eq(scratch_count(&dir), 1);
	free(recon);
}

Test(store, rename_noreplace_and_exchange)
{
	struct lcp_store_file *f;
	pack_ok("m.safetensors");
	cr_assert_eq(lcp_store_open_at(dir.fd, "m.safetensors", NULL, &f), LCP_OK);
	uint8_t *recon = read_whole(f);
	lcp_store_close(f);
	write_file(dir.fd, "raw.bin", "rawbytes", 8);
	cr_assert_eq(lcp_store_rename_at(dir.fd, "m.safetensors", dir.fd, "raw.bin",
					 RENAME_NOREPLACE),
		     LCP_ERR_EXIST);
	expect_reads_as("m.safetensors", recon, st.len);
	cr_assert_eq(lcp_store_rename_at(dir.fd, "m.safetensors", dir.fd, "raw.bin",
					 RENAME_EXCHANGE),
		     LCP_OK);
	expect_reads_as("raw.bin", recon, st.len);
	size_t n;
	uint8_t *b = read_file(dir.fd, "m.safetensors", &n);
	cr_assert_eq(n, 8);
	cr_assert_eq(memcmp(b, "rawbytes", 8), 0);
	cr_assert_eq(lcp_store_open_at(dir.fd, "m.safetensors", NULL, &f), LCP_ERR_NOENT);
	free(b);
	/* two committed files exchange their sidecars too */
	struct synth other;
	synth_build(&other, 0xabcdef); /* same layout, other values */
	write_file(dir.fd, "m.safetensors", other.data, other.len);
	free(other.data);
	pack_ok("m.safetensors");
	cr_assert_eq(lcp_store_open_at(dir.fd, "m.safetensors", NULL, &f), LCP_OK);
	uint8_t *recon2 = read_whole(f);
	lcp_store_close(f);
	cr_assert_eq(lcp_store_rename_at(dir.fd, "m.safetensors", dir.fd, "raw.bin",
					 RENAME_EXCHANGE),
		     LCP_OK);
	cr_assert_neq(memcmp(recon, recon2, st.len), 0);
	expect_reads_as("raw.bin", recon2, st.len);
	expect_reads_as("m.safetensors", recon, st.len);
	free(recon);
	free(recon2);
}

Test(store, recovery_repairs_crash_states)
{
	struct lcp_store_file *f;
	pack_ok("m.safetensors");
	cr_assert_eq(lcp_store_open_at(dir.fd, "m.safetensors", NULL, &f), LCP_OK);
	uint8_t *recon = read_whole(f);
	lcp_store_close(f);
	/* crash inside a rename: sidecar moved, payload not yet */
	cr_assert_eq(renameat(dir.fd, ".m.safetensors.lcpfs", dir.fd, ".n.safetensors.lcpfs"), 0);
	cr_assert_neq(lcp_store_open_at(dir.fd, "m.safetensors", NULL, &f), LCP_OK);
	/* leftovers of an interrupted pack and a stale sidecar */
	write_file(dir.fd, ".lcpfs-tmp.0123456789abcdef.p", "x", 1);
	write_file(dir.fd, "raw", "raw", 3);
	cr_assert_eq(linkat(dir.fd, ".n.safetensors.lcpfs", dir.fd, ".gone.lcpfs", 0), 0);
	cr_assert_eq(lcp_store_recover_dir(dir.fd), LCP_OK);
	expect_reads_as("m.safetensors", recon, st.len);
	cr_assert_eq(scratch_count(&dir), 3, "payload, its sidecar, raw");
	free(recon);
}

Test(store, materialize_gives_raw_reconstruction)
{
	struct lcp_store_file *f;
	size_t n;
	pack_ok("m.safetensors");
	cr_assert_eq(lcp_store_open_at(dir.fd, "m.safetensors", NULL, &f), LCP_OK);
	uint8_t *recon = read_whole(f);
	lcp_store_close(f);
	cr_assert_eq(lcp_store_materialize_at(dir.fd, "m.safetensors"), LCP_OK);
	cr_assert_eq(lcp_store_open_at(dir.fd, "m.safetensors", NULL, &f), LCP_ERR_NOENT);
	uint8_t *b = read_file(dir.fd, "m.safetensors", &n);
	cr_assert_eq(n, st.len);
	cr_assert_eq(memcmp(b, recon, n), 0);
	cr_assert_eq(scratch_count(&dir), 1);
	free(b);
	free(recon);
}

Test(store, report_and_json)
{
	struct lcp_store_file *f;
	struct lcp_file_report r;
	char *js;
	pack_ok("m.safetensors");
	cr_assert_eq(lcp_store_open_at(dir.fd, "m.safetensors", NULL, &f), LCP_OK);
	cr_assert_eq(lcp_store_report(f, &r), LCP_OK);
	cr_assert_eq(r.ntensors, 4);
	cr_assert_str_eq(r.tensors[0].name, "w");
	cr_assert_str_eq(r.tensors[0].dtype, "F32");
	cr_assert_eq(r.tensors[0].ndims, 2);
	cr_assert_eq(r.tensors[0].dims[0], 96);
	cr_assert_str_eq(r.tensors[3].name, "i");
	cr_assert_str_eq(r.tensors[3].encoding, "exact");
	cr_assert_geq(r.tensors[0].cosine, QUALITY_FLOOR);
	cr_assert_eq(lcp_store_report_json(&r, &js), LCP_OK);
	json_t *o = json_loads(js, 0, NULL);
	cr_assert_not_null(o, "invalid JSON: %s", js);
	cr_assert_str_eq(json_string_value(json_object_get(o, "format")), "safetensors");
	cr_assert_eq(json_integer_value(json_object_get(o, "logical_size")), (json_int_t)st.len);
	cr_assert_str_eq(json_string_value(json_object_get(o, "preset")), "balanced");
	json_t *t0 = json_array_get(json_object_get(o, "tensors"), 0);
	static const char *const keys[] = {"name", "dtype", "shape", "encoding", "bits",
					   "group", "rank", "bpw", "sqnr_db", "cosine", "note"};
	for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
		cr_assert_not_null(json_object_get(t0, keys[k]), "missing key %s", keys[k]);
	cr_assert_eq(json_object_size(t0), sizeof keys / sizeof keys[0]);
	json_decref(o);
	lcp_free(js);
	lcp_file_report_free(&r);
	lcp_store_close(f);
}

Test(store, allocation_failures_are_clean)
{
	struct lcp_store_file *f;
	pack_ok("m.safetensors");
	/* every allocation of open + read, failed in turn */
	for (long n = 0; n < 400; n++) {
		lcp_alloc_fail_after(n);
		lcp_err err = lcp_store_open_at(dir.fd, "m.safetensors", NULL, &f);
		if (err == LCP_OK) {
			uint8_t b[4096];
			size_t got;
			err = lcp_store_read(f, b, sizeof b, st.data_start, &got, NULL);
			lcp_store_close(f);
		}
		lcp_alloc_fail_after(-1);
		cr_assert(err == LCP_OK || err == LCP_ERR_NOMEM, "n=%ld gave %s", n,
			  lcp_err_name(err));
		if (err == LCP_OK)
			break;
	}
}

TestSuite(store_cache);

Test(store_cache, lru_evicts_oldest_within_capacity)
{
	struct lcp_chunk_cache *c;
	struct lcp_cache_key k[3];
	uint8_t data[100], out[100];
	memset(k, 0, sizeof k);
	for (int i = 0; i < 3; i++)
		k[i].chunk = (uint32_t)i;
	cr_assert_eq(lcp_chunk_cache_create(250, &c), LCP_OK);
	memset(data, 1, sizeof data);
	lcp_chunk_cache_put(c, &k[0], data, 100);
	memset(data, 2, sizeof data);
	lcp_chunk_cache_put(c, &k[1], data, 100);
	cr_assert(lcp_chunk_cache_copy(c, &k[0], 0, out, 100)); /* k0 now most recent */
	cr_assert_eq(out[99], 1);
	memset(data, 3, sizeof data);
	lcp_chunk_cache_put(c, &k[2], data, 100);                /* evicts k1 */
	cr_assert_not(lcp_chunk_cache_copy(c, &k[1], 0, out, 100));
	cr_assert(lcp_chunk_cache_copy(c, &k[2], 50, out, 50));
	cr_assert_eq(out[0], 3);
	cr_assert_eq(lcp_chunk_cache_used(c), 200);
	cr_assert_not(lcp_chunk_cache_copy(c, &k[2], 60, out, 50), "range past the entry");
	uint8_t big[300] = {0};
	lcp_chunk_cache_put(c, &k[1], big, sizeof big);          /* larger than capacity */
	cr_assert_not(lcp_chunk_cache_copy(c, &k[1], 0, out, 1));
	lcp_chunk_cache_free(c);
}

Test(store, pack_allocation_failures_keep_raw)
{
	struct lcp_config cfg = lcp_config_default();
	struct lcp_pack_report rep;
	long n;
	/* Fail the Nth allocation of a pack, for every N until a pack gets
	 * through: each failure must leave the raw file and no temporaries. */
	for (n = 0; n < 5000; n++) {
		lcp_alloc_fail_after(n);
		lcp_err err = lcp_store_pack_at(dir.fd, "m.safetensors", -1, &cfg, NULL, NULL, &rep);
		lcp_alloc_fail_after(-1);
		if (err == LCP_OK && rep.committed)
			break;
		cr_assert(err == LCP_ERR_NOMEM || (err == LCP_OK && !rep.committed), "n=%ld: %s", n,
			  lcp_err_name(err));
		size_t len;
		uint8_t *b = read_file(dir.fd, "m.safetensors", &len);
		cr_assert_eq(len, st.len);
		cr_assert_eq(memcmp(b, st.data, len), 0, "n=%ld: raw changed", n);
		free(b);
		cr_assert_eq(scratch_count(&dir), 1, "n=%ld: temporaries left", n);
	}
	cr_assert_lt(n, 5000, "pack never succeeded");
	cr_log_info("pack succeeded once %ld allocations could succeed", n);
	cr_assert_gt(n, 0);
}

Test(store, recovery_undoes_half_exchange_and_half_link)
{
	struct lcp_store_file *f;
	struct synth other;
	pack_ok("m.safetensors");
	synth_build(&other, 0xabcdef);
	write_file(dir.fd, "o.safetensors", other.data, other.len);
	free(other.data);
	pack_ok("o.safetensors");
	cr_assert_eq(lcp_store_open_at(dir.fd, "m.safetensors", NULL, &f), LCP_OK);
	uint8_t *rm = read_whole(f);
	lcp_store_close(f);
	cr_assert_eq(lcp_store_open_at(dir.fd, "o.safetensors", NULL, &f), LCP_OK);
	uint8_t *ro = read_whole(f);
	lcp_store_close(f);
	/* crash inside an exchange: sidecars swapped, payloads not yet */
	cr_assert_eq(renameat2(dir.fd, ".m.safetensors.lcpfs", dir.fd, ".o.safetensors.lcpfs",
			       RENAME_EXCHANGE),
		     0);
	lcp_err err = lcp_store_open_at(dir.fd, "m.safetensors", NULL, &f);
	cr_assert(err != LCP_OK && err != LCP_ERR_NOENT,
		  "a payload beside another file's sidecar is never raw: %s", lcp_err_name(err));
	/* crash inside a link: the sidecar linked, the payload not yet */
	cr_assert_eq(linkat(dir.fd, ".o.safetensors.lcpfs", dir.fd, ".l.safetensors.lcpfs", 0), 0);
	cr_assert_eq(lcp_store_recover_dir(dir.fd), LCP_OK);
	expect_reads_as("m.safetensors", rm, st.len);
	expect_reads_as("o.safetensors", ro, st.len);
	cr_assert_eq(scratch_count(&dir), 4, "two payloads, two sidecars");
	free(rm);
	free(ro);
}

Test(store, raw_report_lists_tensors_exact)
{
	struct lcp_file_report r;
	cr_assert_eq(lcp_store_report_raw_at(dir.fd, "m.safetensors", &r), LCP_OK);
	cr_assert_eq(r.format, LCP_FORMAT_SAFETENSORS);
	cr_assert_eq(r.logical_size, st.len);
	cr_assert_eq(r.stored_size, st.len);
	cr_assert_eq(r.ntensors, 4);
	for (size_t i = 0; i < r.ntensors; i++)
		cr_assert_str_eq(r.tensors[i].encoding, "exact");
	cr_assert_str_eq(r.tensors[1].name, "h");
	cr_assert_str_eq(r.tensors[1].dtype, "F16");
	cr_assert_eq(r.tensors[1].bits_per_weight, 16.0);
	lcp_file_report_free(&r);
}

Test(store, hard_linked_raw_file_is_refused)
{
	struct lcp_config cfg = lcp_config_default();
	struct lcp_pack_report rep;
	cr_assert_eq(linkat(dir.fd, "m.safetensors", dir.fd, "link.safetensors", 0), 0);
	cr_assert_eq(lcp_store_pack_at(dir.fd, "m.safetensors", -1, &cfg, NULL, NULL, &rep), LCP_OK);
	cr_assert_not(rep.committed);
	cr_assert_str_eq(rep.reason, "file has several hard links");
	cr_assert_eq(scratch_count(&dir), 2);
}

Test(store, probe_gives_sizes_without_opening)
{
	struct lcp_store_file *f;
	struct lcp_probe pr;
	struct stat sst;
	pack_ok("m.safetensors");
	cr_assert_eq(lcp_store_probe_at(dir.fd, "m.safetensors", NULL, &pr, NULL), LCP_OK);
	cr_assert_eq(pr.repr, LCP_REPR_COMPRESSED);
	cr_assert_eq(fstatat(dir.fd, ".m.safetensors.lcpfs", &sst, 0), 0);
	cr_assert_eq(pr.sidecar_blocks, (uint64_t)sst.st_blocks);
	cr_assert_eq(pr.logical_size, st.len);
	cr_assert_eq(pr.stored_size, pr.size + (uint64_t)sst.st_size);
	cr_assert_eq(lcp_store_open_at(dir.fd, "m.safetensors", NULL, &f), LCP_OK);
	cr_assert_eq(pr.stored_size, lcp_store_stored_size(f));
	lcp_store_close(f);
}

Test(store, sidecar_attrs_follow_owner_and_rw_bits)
{
	struct stat sst;
	pack_ok("m.safetensors");
	cr_assert_eq(lcp_store_sidecar_attrs_at(dir.fd, "m.safetensors", 04751, 1234, 4321, NULL),
		     LCP_OK);
	cr_assert_eq(fstatat(dir.fd, ".m.safetensors.lcpfs", &sst, 0), 0);
	/* Read and write bits only: 0751 & 0666. */
	cr_assert_eq(sst.st_mode & 07777, 0640, "mode %o", sst.st_mode & 07777);
	if (geteuid() == 0) {
		cr_assert_eq(sst.st_uid, 1234);
		cr_assert_eq(sst.st_gid, 4321);
	}
	int sync_fd;
	cr_assert_eq(lcp_store_sidecar_attrs_at(dir.fd, "m.safetensors", 0600, (uid_t)-1,
						(gid_t)-1, &sync_fd), LCP_OK);
	cr_assert_geq(sync_fd, 0, "a change gives an fd to sync");
	cr_assert_eq(fsync(sync_fd), 0);
	close(sync_fd);
	cr_assert_eq(lcp_store_sidecar_attrs_at(dir.fd, "m.safetensors", 0600, (uid_t)-1,
						(gid_t)-1, &sync_fd), LCP_OK);
	cr_assert_eq(sync_fd, -1, "no change, nothing to sync");
	cr_assert_eq(fstatat(dir.fd, ".m.safetensors.lcpfs", &sst, 0), 0);
	cr_assert_eq(sst.st_mode & 07777, 0600);
	if (geteuid() == 0)
		cr_assert_eq(sst.st_uid, 1234, "(uid_t)-1 keeps the owner");
}

Test(store, sidecar_attrs_leave_strangers_alone)
{
	struct stat sst;
	/* A raw file: no sidecar, nothing to do. */
	cr_assert_eq(lcp_store_sidecar_attrs_at(dir.fd, "m.safetensors", 0600, (uid_t)-1, (gid_t)-1,
						NULL), LCP_OK);
	/* A user's file named like a sidecar, without the magic. */
	write_file(dir.fd, ".m.safetensors.lcpfs", "not ours", 8);
	cr_assert_eq(fchmodat(dir.fd, ".m.safetensors.lcpfs", 0644, 0), 0);
	cr_assert_eq(lcp_store_sidecar_attrs_at(dir.fd, "m.safetensors", 0600, (uid_t)-1, (gid_t)-1,
						NULL), LCP_OK);
	cr_assert_eq(fstatat(dir.fd, ".m.safetensors.lcpfs", &sst, 0), 0);
	cr_assert_eq(sst.st_mode & 07777, 0644);
}
