/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Packing through the encoder pool (src/store/pack.c, src/codec/pool.c):
 * the payload and sidecar do not depend on the number of threads (whole
 * small tensors, streamed large ones with a hole, a low-rank candidate, a
 * lossless one, one stored exact because that costs no more, a
 * quality-floor restart of a stream, the lossless preset), holes read as zeros,
 * and a transient failure (no memory) defers the pack with a retry mark,
 * never a refusal.
 */
#include <criterion/criterion.h>
#include <sys/xattr.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "lcpfs/codec.h"
#include "lcpfs/store.h"
#include "store/sidecar.h"
#include "test_store_helpers.h"

/* Shapes of the test file (see build_file): "big" is streamed (over the
 * store's 1 MiB small-tensor size) in 12 chunks, with a hole of HOLE_BYTES
 * (aligned to 4 KiB, covering three whole chunks) in its middle; "lr" is
 * streamed too and holds a planted rank-1 part; "ints" (small integers) is
 * streamed and stored exact under the lossy presets; the others are
 * encoded whole. */
#define BIG_ROWS 1024
#define BIG_COLS 1536
#define LR_ROWS 512
#define LR_COLS 768
#define INT_ROWS 640
#define INT_COLS 1024
#define HOLE_BYTES (768u * 1024u)
/* Encoder thread counts compared with the calling thread alone. */
static const unsigned thread_counts[] = {1, 2, 3};

static struct scratch dir;

TestSuite(store_pack, .init = NULL, .fini = NULL);

/* Writes the test file name into dir; with sparse, the hole in "big" is
 * left unwritten (a real hole), else written as zeros. */
static void build_file(const char *name, bool sparse)
{
	char hdr[4096];
	size_t big = (size_t)BIG_ROWS * BIG_COLS * 2, lr = (size_t)LR_ROWS * LR_COLS * 4;
	size_t nan = 64 * 64 * 4, small = 128 * 256 * 2, in = 16 * 16 * 4;
	size_t ints = (size_t)INT_ROWS * INT_COLS * 4;
	size_t o_lr = big, o_nan = o_lr + lr, o_small = o_nan + nan, o_i = o_small + small;
	size_t o_ints = o_i + in, end = o_ints + ints;
	int n = snprintf(hdr, sizeof hdr,
			 "{\"big\":{\"dtype\":\"F16\",\"shape\":[%d,%d],\"data_offsets\":[0,%zu]},"
			 "\"lr\":{\"dtype\":\"F32\",\"shape\":[%d,%d],\"data_offsets\":[%zu,%zu]},"
			 "\"nan\":{\"dtype\":\"F32\",\"shape\":[64,64],\"data_offsets\":[%zu,%zu]},"
			 "\"small\":{\"dtype\":\"BF16\",\"shape\":[128,256],\"data_offsets\":[%zu,%zu]},"
			 "\"i\":{\"dtype\":\"I32\",\"shape\":[16,16],\"data_offsets\":[%zu,%zu]},"
			 "\"ints\":{\"dtype\":\"F32\",\"shape\":[%d,%d],\"data_offsets\":[%zu,%zu]}}",
			 BIG_ROWS, BIG_COLS, big, LR_ROWS, LR_COLS, o_lr, o_nan, o_nan, o_small, o_small,
			 o_i, o_i, o_ints, INT_ROWS, INT_COLS, o_ints, end);
	/* The data section starts 4 KiB-aligned, so the hole can be. */
	while ((8 + n) % 4096)
		hdr[n++] = ' ';
	size_t start = 8 + (size_t)n;
	uint8_t *d = calloc(1, start + end);
	lcp_store_le64(d, (uint64_t)n);
	memcpy(d + 8, hdr, (size_t)n);
	uint64_t seed = 0x5eed;
	uint8_t *p = d + start;
	for (size_t k = 0; k < big / 2; k++)
		lcp_store_le16(p + 2 * k, test_f16(test_gauss(&seed)));
	size_t hole_at = (big / 2) / 4096 * 4096;
	memset(p + hole_at, 0, HOLE_BYTES);
	float u[LR_ROWS], v[LR_COLS];
	for (int i = 0; i < LR_ROWS; i++)
		u[i] = test_gauss(&seed) * 20.0f;
	for (int j = 0; j < LR_COLS; j++)
		v[j] = test_gauss(&seed) * 20.0f;
	for (int i = 0; i < LR_ROWS; i++)
		for (int j = 0; j < LR_COLS; j++)
			lcp_store_lef32(p + o_lr + 4 * ((size_t)i * LR_COLS + j),
					u[i] * v[j] + test_gauss(&seed));
	for (size_t k = 0; k < nan / 4; k++)
		lcp_store_lef32(p + o_nan + 4 * k, k == 77 ? NAN : test_gauss(&seed));
	for (size_t k = 0; k < small / 2; k++) {
		float f = test_gauss(&seed);
		uint32_t b;
		memcpy(&b, &f, 4);
		lcp_store_le16(p + o_small + 2 * k, (uint16_t)(b >> 16));
	}
	for (size_t k = 0; k < in; k++)
		p[o_i + k] = (uint8_t)k;
	/* lrintf: no negative zeros (their sign bits would cost more than 4 bits) */
	for (size_t k = 0; k < ints / 4; k++)
		lcp_store_lef32(p + o_ints + 4 * k, (float)lrintf(1.5f * test_gauss(&seed)));
	int fd = openat(dir.fd, name, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	cr_assert_geq(fd, 0);
	size_t hole = start + hole_at;
	if (!sparse) {
		cr_assert_eq(write(fd, d, start + end), (ssize_t)(start + end));
	} else {
		cr_assert_eq(pwrite(fd, d, hole, 0), (ssize_t)hole);
		size_t after = hole + HOLE_BYTES;
		cr_assert_eq(pwrite(fd, d + after, start + end - after, (off_t)after),
			     (ssize_t)(start + end - after));
	}
	close(fd);
	free(d);
}

/* Packs src (in dir) to dst with threads encoder threads (0: none) and
 * config cfg; must commit. */
static void pack_with(const char *src, const char *dst, unsigned threads,
		      const struct lcp_config *cfg)
{
	struct lcp_encode_pool *pool = NULL;
	struct lcp_pack_report rep;
	if (threads)
		cr_assert_eq(lcp_encode_pool_create(threads, false, &pool), LCP_OK);
	struct lcp_pack_opts o = {.cfg = cfg, .pool = pool};
	int in = openat(dir.fd, src, O_RDONLY);
	cr_assert_geq(in, 0);
	cr_assert_eq(lcp_store_pack_opts(dir.fd, dst, in, &o, &rep), LCP_OK);
	cr_assert(rep.committed, "%u threads: %s", threads, rep.reason);
	close(in);
	lcp_encode_pool_free(pool);
}

/* The sidecar of name with what differs between two packs of the same
 * bytes cleared (the random file id and the checksum of the payload header
 * holding it), serialized again. */
static uint8_t *normalized_sidecar(const char *name, size_t *len)
{
	char sc_name[300];
	snprintf(sc_name, sizeof sc_name, ".%s.lcpfs", name);
	size_t n;
	uint8_t *raw = read_file(dir.fd, sc_name, &n);
	struct lcp_sidecar sc;
	cr_assert_eq(lcp_sidecar_parse(raw, n, &sc), LCP_OK);
	memset(sc.file_id, 0, sizeof sc.file_id);
	sc.payload_header_xxh3 = 0;
	struct lcp_buf b = LCP_BUF_INIT;
	cr_assert_eq(lcp_sidecar_serialize(&sc, &b), LCP_OK);
	lcp_sidecar_free(&sc);
	free(raw);
	*len = b.len;
	return b.data;
}

static void assert_same_pack(const char *a, const char *b, const char *what)
{
	size_t la, lb;
	uint8_t *pa = read_file(dir.fd, a, &la), *pb = read_file(dir.fd, b, &lb);
	cr_assert_eq(la, lb, "%s: payload sizes %zu and %zu", what, la, lb);
	cr_assert_gt(la, LCP_PAYLOAD_HEADER_LEN);
	cr_assert_eq(memcmp(pa + LCP_PAYLOAD_HEADER_LEN, pb + LCP_PAYLOAD_HEADER_LEN,
			    la - LCP_PAYLOAD_HEADER_LEN), 0, "%s: payload bytes differ", what);
	free(pa);
	free(pb);
	uint8_t *sa = normalized_sidecar(a, &la), *sb = normalized_sidecar(b, &lb);
	cr_assert(la == lb && memcmp(sa, sb, la) == 0, "%s: sidecars differ", what);
	lcp_free(sa);
	lcp_free(sb);
}

/* Every checksum of packed file name holds; *big_bits gets the bits of
 * tensor "big". */
static void verify_packed(const char *name, unsigned *big_bits)
{
	struct lcp_store_file *f;
	struct lcp_file_report r;
	char where[200];
	cr_assert_eq(lcp_store_open_at(dir.fd, name, NULL, &f), LCP_OK);
	cr_assert_eq(lcp_store_verify(f, where, sizeof where), LCP_OK, "%s: %s", name, where);
	cr_assert_eq(lcp_store_report(f, &r), LCP_OK);
	for (size_t k = 0; k < r.ntensors; k++)
		if (strcmp(r.tensors[k].name, "big") == 0)
			*big_bits = r.tensors[k].bits;
	lcp_file_report_free(&r);
	lcp_store_close(f);
}

static void same_bytes_for(const struct lcp_config *cfg, const char *what, unsigned want_bits)
{
	unsigned bits = 0;
	scratch_make(&dir);
	build_file("src.safetensors", true);
	pack_with("src.safetensors", "serial.safetensors", 0, cfg);
	verify_packed("serial.safetensors", &bits);
	cr_assert_eq(bits, want_bits, "%s: 'big' stored at %u bits", what, bits);
	for (size_t k = 0; k < sizeof thread_counts / sizeof thread_counts[0]; k++) {
		char name[64], label[96];
		snprintf(name, sizeof name, "t%u.safetensors", thread_counts[k]);
		snprintf(label, sizeof label, "%s, %u threads", what, thread_counts[k]);
		pack_with("src.safetensors", name, thread_counts[k], cfg);
		assert_same_pack("serial.safetensors", name, label);
	}
	/* The same file with its hole written as zeros packs the same: holes
	 * are zeros. */
	build_file("dense.safetensors", false);
	pack_with("dense.safetensors", "dense-packed.safetensors", 2, cfg);
	assert_same_pack("serial.safetensors", "dense-packed.safetensors", "dense copy");
	scratch_remove(&dir);
}

Test(store_pack, payload_does_not_depend_on_the_thread_count)
{
	struct lcp_config cfg = lcp_config_default();
	same_bytes_for(&cfg, "default", 4);
}

/* A floor no 4-bit encoding meets: every quantized tensor is encoded again
 * at 8 bits, so the streamed ones restart their sink (the payload is cut
 * back to the tensor's start). */
Test(store_pack, quality_floor_restarts_give_the_same_bytes)
{
	struct lcp_config cfg = lcp_config_default();
	cfg.quality_threshold = 0.9999f;
	same_bytes_for(&cfg, "quality 0.9999", 8);
}

/* The lossless preset: every float tensor exact (bits 0), streamed or whole. */
Test(store_pack, lossless_preset_gives_the_same_bytes)
{
	struct lcp_config cfg = lcp_config_lossless();
	same_bytes_for(&cfg, "lossless preset", 0);
}

/* The test file has what the comparisons above are meant to cover: a
 * low-rank part kept, a lossless tensor, a streamed tensor stored exact
 * because that costs no more (its note kept for inspect), the 8-bit
 * fallback. */
Test(store_pack, the_file_exercises_every_path)
{
	scratch_make(&dir);
	build_file("src.safetensors", true);
	struct lcp_config cfg = lcp_config_default();
	pack_with("src.safetensors", "p.safetensors", 2, &cfg);
	struct lcp_store_file *f;
	struct lcp_file_report r;
	cr_assert_eq(lcp_store_open_at(dir.fd, "p.safetensors", NULL, &f), LCP_OK);
	cr_assert_eq(lcp_store_report(f, &r), LCP_OK);
	bool lr = false, lossless = false, exact = false;
	for (size_t k = 0; k < r.ntensors; k++) {
		const struct lcp_tensor_report *t = &r.tensors[k];
		lr |= strcmp(t->name, "lr") == 0 && t->rank > 0;
		lossless |= strcmp(t->name, "nan") == 0 && strcmp(t->encoding, "lossless") == 0;
		exact |= strcmp(t->name, "ints") == 0 && strcmp(t->encoding, "lossless") == 0 &&
			 t->note && strcmp(t->note, "exact: no larger than 4-bit") == 0;
	}
	cr_assert(lr, "no low-rank part on the planted tensor");
	cr_assert(lossless, "the NaN tensor is not lossless");
	cr_assert(exact, "the small integers are not stored exact with their note");
	char where[200];
	cr_assert_eq(lcp_store_verify(f, where, sizeof where), LCP_OK, "%s", where);
	lcp_file_report_free(&r);
	lcp_store_close(f);
	scratch_remove(&dir);
}

/* Running out of memory at any point of a pack in place never refuses the
 * file for good: the outcome is DEFERRED with a retry mark, the raw file
 * is intact and nothing is left behind; given memory it commits. */
Test(store_pack, no_memory_defers_never_refuses)
{
	scratch_make(&dir);
	build_file("m.safetensors", false);
	size_t len;
	uint8_t *orig = read_file(dir.fd, "m.safetensors", &len);
	struct lcp_config cfg = lcp_config_default();
	struct lcp_pack_opts o = {.cfg = &cfg};
	struct lcp_pack_report rep;
	bool deferred = false;
	/* Failing the nth allocation, n = 0, 1, 3, 7, ... (every stage of a
	 * pack is reached; stepping through each one would take minutes). */
	for (long n = 0;; n = 2 * n + 1) {
		lcp_alloc_fail_after(n);
		lcp_err err = lcp_store_pack_opts(dir.fd, "m.safetensors", -1, &o, &rep);
		lcp_alloc_fail_after(-1);
		if (err == LCP_OK && rep.committed)
			break;
		cr_assert(err == LCP_OK && rep.outcome == LCP_PACK_DEFERRED,
			  "after %ld allocations: error %d, outcome %d (%s)", n, err, rep.outcome,
			  rep.reason);
		deferred = true;
		char mark[256];
		int fd = openat(dir.fd, "m.safetensors", O_RDONLY);
		ssize_t ml = fgetxattr(fd, "user.lcpfs.refused", mark, sizeof mark - 1);
		close(fd);
		/* Before the raw file is open nothing can carry a mark. */
		if (ml < 0)
			continue;
		mark[ml] = '\0';
		cr_assert(lcp_store_refusal_is_retry(mark), "mark '%s' asks for no retry", mark);
		size_t now_len;
		uint8_t *now = read_file(dir.fd, "m.safetensors", &now_len);
		cr_assert(now_len == len && memcmp(now, orig, len) == 0, "raw file changed");
		free(now);
		cr_assert_eq(scratch_count(&dir), 1, "leftovers after %ld allocations", n);
	}
	cr_assert(deferred, "no allocation failure was met");
	free(orig);
	scratch_remove(&dir);
}
