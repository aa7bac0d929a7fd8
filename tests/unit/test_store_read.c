/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The read path of the store: range reads that decode only the blocks they
 * touch, the block cache, and decode-ahead streams (sequential, parallel and
 * out of order, damaged chunks, windows, close and free orders), on a
 * synthetic safetensors file with several chunks per tensor in F32, F16 and
 * BF16. The reference for every byte is a read of the whole file in one
 * call: it decodes every chunk whole, and each whole decode is checked
 * against the output checksum the encoder recorded.
 */
#include <criterion/criterion.h>
#include <pthread.h>

#include "common/alloc.h"
#include "lcpfs/store.h"
#include "leak_check.h"
#include "store/cache.h"
#include "store/sidecar.h"
#include "test_store_helpers.h"

/* The file: tensors in this order (elements per chunk: 131072, or whole
 * rows of it, so chunks of "b" hold 131 rows of 1000):
 *   a  F32  [512, 1024]  4 chunks of 512 KiB, blocks of 16384 elements
 *   b  F16  [300, 1000]  3 chunks
 *   c  BF16 [256, 640]   2 chunks
 *   n  F32  [100]        1-D: exact
 *   i  I32  [64, 64]     integer: exact */
#define A_ELEMS (512 * 1024)
#define B_ELEMS (300 * 1000)
#define C_ELEMS (256 * 640)
#define N_ELEMS 100
#define I_ELEMS (64 * 64)
/* Elements per rANS block (codec_format.h): the unit a range read decodes. */
#define BLOCK_ELEMS 16384
/* Random reads per read size: enough to cross every chunk and block
 * boundary of the ~3 MiB file many times, few enough to stay fast. */
#define READS_PER_SIZE 300

static struct scratch dir;
static uint8_t *ref;      /* the whole file as one read returns it */
static uint64_t ref_len;
static size_t a_off;      /* file offset of tensor a's data */

static void build_file(uint64_t seed)
{
	char hdr[1024];
	size_t ob = (size_t)A_ELEMS * 4, oc = ob + (size_t)B_ELEMS * 2;
	size_t on = oc + (size_t)C_ELEMS * 2, oi = on + N_ELEMS * 4, end = oi + I_ELEMS * 4;
	int n = snprintf(hdr, sizeof hdr,
			 "{\"a\":{\"dtype\":\"F32\",\"shape\":[512,1024],\"data_offsets\":[0,%zu]},"
			 "\"b\":{\"dtype\":\"F16\",\"shape\":[300,1000],\"data_offsets\":[%zu,%zu]},"
			 "\"c\":{\"dtype\":\"BF16\",\"shape\":[256,640],\"data_offsets\":[%zu,%zu]},"
			 "\"n\":{\"dtype\":\"F32\",\"shape\":[100],\"data_offsets\":[%zu,%zu]},"
			 "\"i\":{\"dtype\":\"I32\",\"shape\":[64,64],\"data_offsets\":[%zu,%zu]}}",
			 ob, ob, oc, oc, on, on, oi, oi, end);
	while (n % 8)
		hdr[n++] = ' ';
	a_off = 8 + (size_t)n;
	size_t len = a_off + end;
	uint8_t *d = malloc(len), *t = d + a_off;
	lcp_store_le64(d, (uint64_t)n);
	memcpy(d + 8, hdr, (size_t)n);
	/* Rows of different scales, as in trained weights. */
	for (size_t k = 0; k < A_ELEMS; k++)
		lcp_store_lef32(t + 4 * k, test_gauss(&seed) * (float)(1 + (k / 1024) % 7));
	for (size_t k = 0; k < B_ELEMS; k++)
		lcp_store_le16(t + ob + 2 * k, test_f16(test_gauss(&seed) * (float)(1 + (k / 1000) % 5)));
	for (size_t k = 0; k < C_ELEMS; k++) {
		float v = test_gauss(&seed);
		uint32_t u;
		memcpy(&u, &v, 4);
		lcp_store_le16(t + oc + 2 * k, (uint16_t)(u >> 16));
	}
	for (size_t k = 0; k < N_ELEMS; k++)
		lcp_store_lef32(t + on + 4 * k, 1.0f + test_gauss(&seed));
	for (size_t k = 0; k < I_ELEMS; k++)
		lcp_store_le32(t + oi + 4 * k, (uint32_t)test_rng(&seed));
	write_file(dir.fd, "m.safetensors", d, len);
	free(d);
}

static struct lcp_store_file *open_file(struct lcp_chunk_cache *cache)
{
	struct lcp_store_file *f;
	cr_assert_eq(lcp_store_open_at(dir.fd, "m.safetensors", cache, &f), LCP_OK);
	return f;
}

static void setup(void)
{
	struct lcp_config cfg = lcp_config_default();
	struct lcp_pack_report rep;
	size_t got;

	scratch_make(&dir);
	build_file(0xfeed);
	cr_assert_eq(lcp_store_pack_at(dir.fd, "m.safetensors", -1, &cfg, NULL, NULL, &rep), LCP_OK);
	cr_assert(rep.committed, "not committed: %s", rep.reason);
	struct lcp_store_file *f = open_file(NULL);
	ref_len = lcp_store_logical_size(f);
	ref = malloc(ref_len);
	cr_assert_eq(lcp_store_read(f, ref, ref_len, 0, &got, NULL), LCP_OK);
	cr_assert_eq(got, ref_len);
	lcp_store_close(f);
}

static void teardown(void)
{
	free(ref);
	scratch_remove(&dir);
}

TestSuite(store_read, .init = setup, .fini = teardown);

/* The logical range and payload range of chunk ci of tensor "a", from the
 * sidecar. */
static void chunk_of_a(uint32_t ci, uint64_t *lo, uint64_t *hi, uint64_t *payload_off,
		       uint64_t *stored_len)
{
	size_t n;
	uint8_t *b = read_file(dir.fd, ".m.safetensors.lcpfs", &n);
	struct lcp_sidecar sc;
	cr_assert_eq(lcp_sidecar_parse(b, n, &sc), LCP_OK);
	free(b);
	for (uint32_t r = 0; r < sc.nregions; r++) {
		const struct lcp_sc_region *reg = &sc.regions[r];
		if (reg->kind != LCP_REGION_TENSOR || !reg->name || strcmp(reg->name, "a") != 0)
			continue;
		cr_assert_gt(reg->nchunks, ci);
		*lo = reg->off + reg->chunks[ci].begin * 4;
		*hi = reg->off + reg->chunks[ci].end * 4;
		*payload_off = reg->chunks[ci].payload_off;
		*stored_len = reg->chunks[ci].stored_len;
		lcp_sidecar_free(&sc);
		return;
	}
	cr_assert_fail("no tensor region 'a'");
}

static const size_t read_sizes[] = { 1, 4096, 131072, 1u << 20, 3, 70001 };

/* READS_PER_SIZE reads of each size at random offsets (most of them not
 * element-aligned), through read(), compared with the reference. */
static void check_random_ranges(struct lcp_store_file *f, uint64_t seed)
{
	uint8_t *b = malloc((1u << 20) + 1);
	for (size_t s = 0; s < sizeof read_sizes / sizeof read_sizes[0]; s++) {
		for (int k = 0; k < READS_PER_SIZE; k++) {
			size_t len = read_sizes[s], got;
			uint64_t off = test_rng(&seed) % ref_len;
			cr_assert_eq(lcp_store_read(f, b, len, off, &got, NULL), LCP_OK);
			size_t expect = ref_len - off < len ? (size_t)(ref_len - off) : len;
			cr_assert_eq(got, expect);
			cr_assert_eq(memcmp(b, ref + off, got), 0, "%zu bytes at %llu differ", len,
				     (unsigned long long)off);
		}
	}
	free(b);
}

Test(store_read, ranges_equal_whole_chunk_decodes)
{
	struct lcp_store_file *f = open_file(NULL);
	check_random_ranges(f, 1);
	lcp_store_close(f);
}

Test(store_read, ranges_through_block_cache_equal_whole_chunk_decodes)
{
	struct lcp_chunk_cache *c;
	/* Small: a few blocks, so entries are evicted while ranges reuse others. */
	cr_assert_eq(lcp_chunk_cache_create(300000, &c), LCP_OK);
	struct lcp_store_file *f = open_file(c);
	check_random_ranges(f, 2);
	check_random_ranges(f, 2); /* the same ranges again: now partly cached */
	cr_assert_leq(lcp_chunk_cache_used(c), 300000);
	lcp_store_close(f);
	lcp_chunk_cache_free(c);
}

Test(store_read, small_read_decodes_and_caches_only_its_blocks)
{
	struct lcp_chunk_cache *c;
	size_t got;
	uint8_t b[8192];
	const size_t block_bytes = (size_t)BLOCK_ELEMS * 4; /* tensor a is F32 */
	cr_assert_eq(lcp_chunk_cache_create(64u << 20, &c), LCP_OK);
	struct lcp_store_file *f = open_file(c);
	/* 4 KiB, unaligned, inside block 3 of chunk 1 of tensor a. */
	uint64_t off = a_off + (uint64_t)(131072 + 3 * BLOCK_ELEMS) * 4 + 1001;
	cr_assert_eq(lcp_store_read(f, b, 4096, off, &got, NULL), LCP_OK);
	cr_assert_eq(memcmp(b, ref + off, 4096), 0);
	cr_assert_eq(lcp_chunk_cache_used(c), block_bytes, "cached %zu bytes, not one block",
		     lcp_chunk_cache_used(c));
	/* Another read in the same block: served from it, nothing decoded. */
	cr_assert_eq(lcp_store_read(f, b, 4096, off + 20000, &got, NULL), LCP_OK);
	cr_assert_eq(memcmp(b, ref + off + 20000, 4096), 0);
	cr_assert_eq(lcp_chunk_cache_used(c), block_bytes);
	/* One across the boundary into block 4: that block only is added. */
	uint64_t edge = a_off + (uint64_t)(131072 + 4 * BLOCK_ELEMS) * 4 - 100;
	cr_assert_eq(lcp_store_read(f, b, 8192, edge, &got, NULL), LCP_OK);
	cr_assert_eq(memcmp(b, ref + edge, 8192), 0);
	cr_assert_eq(lcp_chunk_cache_used(c), 2 * block_bytes);
	lcp_store_close(f);
	lcp_chunk_cache_free(c);
}

/* Reads the whole file front to back in steps of step bytes through a
 * stream and compares. */
static void read_sequentially(struct lcp_read_stream *s, size_t step)
{
	uint8_t *b = malloc(step);
	for (uint64_t off = 0; off < ref_len; off += step) {
		size_t got;
		cr_assert_eq(lcp_read_stream_read(s, b, step, off, &got, NULL), LCP_OK);
		size_t expect = ref_len - off < step ? (size_t)(ref_len - off) : step;
		cr_assert_eq(got, expect);
		cr_assert_eq(memcmp(b, ref + off, got), 0, "%zu bytes at %llu differ", step,
			     (unsigned long long)off);
	}
	free(b);
}

Test(store_read, sequential_stream_decodes_ahead_within_window)
{
	static const size_t steps[] = { 4096, 65539, 1u << 20, 1 << 17 };
	const size_t window = 1u << 20;
	struct lcp_decode_ahead *da;
	size_t held, peak;
	cr_assert_eq(lcp_decode_ahead_create(2, window, &da), LCP_OK);
	struct lcp_store_file *f = open_file(NULL);
	for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
		struct lcp_read_stream *s;
		cr_assert_eq(lcp_read_stream_open(f, da, &s), LCP_OK);
		read_sequentially(s, steps[i]);
		lcp_read_stream_close(s);
	}
	lcp_decode_ahead_usage(da, &held, &peak);
	cr_assert_gt(peak, 0, "nothing was decoded ahead");
	cr_assert_leq(peak, window, "held %zu bytes, window %zu", peak, window);
	cr_assert_leq(held, window);
	lcp_decode_ahead_free(da);
	lcp_store_close(f);
	expect_no_leaks();
}

Test(store_read, random_stream_reads_equal_reference)
{
	struct lcp_decode_ahead *da;
	struct lcp_read_stream *s;
	cr_assert_eq(lcp_decode_ahead_create(2, 4u << 20, &da), LCP_OK);
	struct lcp_store_file *f = open_file(NULL);
	cr_assert_eq(lcp_read_stream_open(f, da, &s), LCP_OK);
	uint8_t *b = malloc(1u << 20);
	uint64_t seed = 5;
	/* Runs of a few sequential reads from random places, so streams start,
	 * decode ahead and are abandoned over and over. */
	for (int run = 0; run < 200; run++) {
		size_t len = read_sizes[run % 6];
		uint64_t off = test_rng(&seed) % ref_len;
		for (int k = 0; k < 4 && off < ref_len; k++, off += len) {
			size_t got;
			cr_assert_eq(lcp_read_stream_read(s, b, len, off, &got, NULL), LCP_OK);
			cr_assert_eq(memcmp(b, ref + off, got), 0, "%zu bytes at %llu differ", len,
				     (unsigned long long)off);
		}
	}
	free(b);
	lcp_read_stream_close(s);
	lcp_decode_ahead_free(da);
	lcp_store_close(f);
	expect_no_leaks();
}

/* Concatenates v's segments into out; counts the bytes outside buf. */
static size_t gather(const struct lcp_read_view *v, const uint8_t *buf, size_t len, uint8_t *out,
		     size_t *outside)
{
	size_t n = 0;
	for (unsigned i = 0; i < v->nseg; i++) {
		const uint8_t *b = v->seg[i].iov_base;
		memcpy(out + n, b, v->seg[i].iov_len);
		n += v->seg[i].iov_len;
		if (b < buf || b >= buf + len)
			*outside += v->seg[i].iov_len;
	}
	return n;
}

Test(store_read, views_point_into_chunks_decoded_ahead)
{
	enum { HOLD = 3, STEP = 1 << 18 };
	struct lcp_decode_ahead *da;
	struct lcp_read_stream *s;
	struct lcp_read_view v[HOLD];
	uint8_t *buf[HOLD], *out = malloc(STEP);
	size_t outside = 0;
	cr_assert_eq(lcp_decode_ahead_create(2, 4u << 20, &da), LCP_OK);
	struct lcp_store_file *f = open_file(NULL);
	cr_assert_eq(lcp_read_stream_open(f, da, &s), LCP_OK);
	for (int i = 0; i < HOLD; i++)
		buf[i] = malloc(STEP);
	/* Up to HOLD views held at once, released oldest first, as replies
	 * of parallel requests would be. */
	uint64_t k = 0;
	for (uint64_t off = 0; off < ref_len; off += STEP, k++) {
		struct lcp_read_view *w = &v[k % HOLD];
		if (k >= HOLD)
			lcp_read_stream_release(s, w);
		size_t got;
		cr_assert_eq(lcp_read_stream_view(s, buf[k % HOLD], STEP, off, w, &got, NULL), LCP_OK);
		cr_assert_leq(w->nseg, LCP_READ_VIEW_SEGS);
		cr_assert_eq(gather(w, buf[k % HOLD], STEP, out, &outside), got);
		cr_assert_eq(memcmp(out, ref + off, got), 0, "view at %llu differs",
			     (unsigned long long)off);
	}
	for (uint64_t i = 0; i < HOLD && i < k; i++)
		lcp_read_stream_release(s, &v[i]);
	cr_assert_gt(outside, ref_len / 2, "only %zu of %llu bytes came without a copy", outside,
		     (unsigned long long)ref_len);
	lcp_read_stream_close(s);
	for (int i = 0; i < HOLD; i++)
		free(buf[i]);
	free(out);
	lcp_decode_ahead_free(da);
	lcp_store_close(f);
	expect_no_leaks();
}

struct par {
	struct lcp_read_stream *s;
	unsigned first, stride; /* pieces first, first + stride, ... */
	size_t piece;
	uint64_t seed;          /* random reads instead, when nonzero */
	int bad;
};

static void *par_reader(void *arg)
{
	struct par *p = arg;
	uint8_t *b = malloc(p->piece);
	size_t got;
	if (p->seed) {
		for (int k = 0; k < 400; k++) {
			uint64_t off = test_rng(&p->seed) % ref_len;
			size_t len = (size_t)(test_rng(&p->seed) % p->piece) + 1;
			if (lcp_read_stream_read(p->s, b, len, off, &got, NULL) != LCP_OK ||
			    memcmp(b, ref + off, got) != 0)
				p->bad++;
		}
	} else {
		for (uint64_t i = p->first; i * p->piece < ref_len; i += p->stride) {
			uint64_t off = i * p->piece;
			if (lcp_read_stream_read(p->s, b, p->piece, off, &got, NULL) != LCP_OK ||
			    memcmp(b, ref + off, got) != 0)
				p->bad++;
		}
	}
	free(b);
	return NULL;
}

/* Like the kernel's read-ahead: several threads read consecutive pieces of
 * one stream (so they arrive out of order), while other threads read random
 * ranges of their own streams of the same file. */
Test(store_read, parallel_out_of_order_readers_equal_reference)
{
	enum { SEQ = 4, RND = 2 };
	struct lcp_decode_ahead *da;
	struct lcp_read_stream *seq, *rnd[RND];
	pthread_t th[SEQ + RND];
	struct par p[SEQ + RND];
	cr_assert_eq(lcp_decode_ahead_create(2, 2u << 20, &da), LCP_OK);
	struct lcp_store_file *f = open_file(NULL);
	for (int pass = 0; pass < 3; pass++) {
		cr_assert_eq(lcp_read_stream_open(f, da, &seq), LCP_OK);
		for (int i = 0; i < SEQ; i++) {
			p[i] = (struct par){ seq, (unsigned)i, SEQ, (size_t)(128u << 10) << pass, 0, 0 };
			cr_assert_eq(pthread_create(&th[i], NULL, par_reader, &p[i]), 0);
		}
		for (int i = 0; i < RND; i++) {
			cr_assert_eq(lcp_read_stream_open(f, da, &rnd[i]), LCP_OK);
			p[SEQ + i] = (struct par){ rnd[i], 0, 0, 200000, (uint64_t)(pass * 10 + i + 1), 0 };
			cr_assert_eq(pthread_create(&th[SEQ + i], NULL, par_reader, &p[SEQ + i]), 0);
		}
		for (int i = 0; i < SEQ + RND; i++) {
			pthread_join(th[i], NULL);
			cr_assert_eq(p[i].bad, 0, "pass %d thread %d: %d bad reads", pass, i, p[i].bad);
		}
		lcp_read_stream_close(seq);
		for (int i = 0; i < RND; i++)
			lcp_read_stream_close(rnd[i]);
	}
	lcp_decode_ahead_free(da);
	lcp_store_close(f);
	expect_no_leaks();
}

/* Sequential reads of step bytes: those touching [lo, hi) must fail with
 * the chunk's offset, all others must succeed with the reference bytes. */
static void read_around_damage(struct lcp_read_stream *s, size_t step, uint64_t lo, uint64_t hi)
{
	uint8_t *b = malloc(step);
	int failed = 0;
	for (uint64_t off = 0; off < ref_len; off += step) {
		size_t got;
		uint64_t bad = UINT64_MAX, end = off + step < ref_len ? off + step : ref_len;
		lcp_err err = lcp_read_stream_read(s, b, step, off, &got, &bad);
		if (off < hi && end > lo) {
			cr_assert_eq(err, LCP_ERR_CHECKSUM, "read of %zu at %llu: %s", step,
				     (unsigned long long)off, lcp_err_name(err));
			cr_assert_eq(bad, lo);
			failed++;
		} else {
			cr_assert_eq(err, LCP_OK, "read of %zu at %llu: %s", step,
				     (unsigned long long)off, lcp_err_name(err));
			cr_assert_eq(memcmp(b, ref + off, got), 0);
		}
	}
	cr_assert_gt(failed, 0);
	free(b);
}

Test(store_read, damaged_chunk_fails_only_its_range_with_decode_ahead)
{
	uint64_t lo, hi, poff, plen;
	struct lcp_decode_ahead *da;
	chunk_of_a(2, &lo, &hi, &poff, &plen);
	flip_byte_at(dir.fd, "m.safetensors", poff + plen / 2);
	cr_assert_eq(lcp_decode_ahead_create(2, 4u << 20, &da), LCP_OK);
	struct lcp_store_file *f = open_file(NULL);
	static const size_t steps[] = { 4096, 1u << 17, 1u << 20 };
	for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
		struct lcp_read_stream *s;
		cr_assert_eq(lcp_read_stream_open(f, da, &s), LCP_OK);
		read_around_damage(s, steps[i], lo, hi);
		lcp_read_stream_close(s);
	}
	/* The same without decode-ahead, and a small read inside the chunk. */
	struct lcp_read_stream *s;
	cr_assert_eq(lcp_read_stream_open(f, NULL, &s), LCP_OK);
	read_around_damage(s, 1u << 17, lo, hi);
	lcp_read_stream_close(s);
	size_t got;
	uint8_t b[16];
	cr_assert_eq(lcp_store_read(f, b, 3, lo + 70001, &got, NULL), LCP_ERR_CHECKSUM);
	lcp_decode_ahead_free(da);
	lcp_store_close(f);
	expect_no_leaks();
}

Test(store_read, close_with_decodes_in_flight_and_free_before_close)
{
	struct lcp_decode_ahead *da;
	struct lcp_read_stream *s[3];
	uint8_t b[4096];
	size_t got;
	cr_assert_eq(lcp_decode_ahead_create(2, 8u << 20, &da), LCP_OK);
	struct lcp_store_file *f = open_file(NULL);
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(lcp_read_stream_open(f, da, &s[i]), LCP_OK);
		/* Two adjoining reads start a run: chunks get queued. */
		cr_assert_eq(lcp_read_stream_read(s[i], b, sizeof b, 0, &got, NULL), LCP_OK);
		cr_assert_eq(lcp_read_stream_read(s[i], b, sizeof b, 4096, &got, NULL), LCP_OK);
	}
	lcp_read_stream_close(s[0]); /* with work queued or running */
	lcp_decode_ahead_free(da);   /* streams still open: they outlive it */
	cr_assert_eq(lcp_read_stream_read(s[1], b, sizeof b, 8192, &got, NULL), LCP_OK);
	cr_assert_eq(memcmp(b, ref + 8192, sizeof b), 0);
	read_sequentially(s[2], 1u << 16);
	lcp_read_stream_close(s[1]);
	lcp_read_stream_close(s[2]); /* the last one frees the pool */
	lcp_store_close(f);
	expect_no_leaks();
}

Test(store_read, window_zero_and_no_pool_are_plain_reads)
{
	struct lcp_decode_ahead *da;
	struct lcp_read_stream *s;
	size_t held, peak;
	cr_assert_eq(lcp_decode_ahead_create(1, 0, &da), LCP_OK);
	struct lcp_store_file *f = open_file(NULL);
	cr_assert_eq(lcp_read_stream_open(f, da, &s), LCP_OK);
	read_sequentially(s, 1u << 16);
	lcp_read_stream_close(s);
	lcp_decode_ahead_usage(da, &held, &peak);
	cr_assert_eq(peak, 0);
	cr_assert_eq(lcp_read_stream_open(f, NULL, &s), LCP_OK);
	read_sequentially(s, 1u << 16);
	lcp_read_stream_close(s);
	lcp_decode_ahead_free(da);
	lcp_store_close(f);
}

Test(store_read, allocation_failures_never_give_wrong_bytes)
{
	struct lcp_decode_ahead *da;
	cr_assert_eq(lcp_decode_ahead_create(2, 2u << 20, &da), LCP_OK);
	struct lcp_chunk_cache *c;
	cr_assert_eq(lcp_chunk_cache_create(1u << 20, &c), LCP_OK);
	struct lcp_store_file *f = open_file(c);
	uint8_t *b = malloc(1u << 18);
	for (long n = 0; n < 60; n++) {
		struct lcp_read_stream *s;
		lcp_alloc_fail_after(n);
		lcp_err err = lcp_read_stream_open(f, da, &s);
		if (err) {
			lcp_alloc_fail_after(-1);
			cr_assert_eq(err, LCP_ERR_NOMEM);
			continue;
		}
		for (uint64_t off = (uint64_t)n * 4099; off < ref_len; off += 1u << 18) {
			size_t got;
			err = lcp_read_stream_read(s, b, 1u << 18, off, &got, NULL);
			cr_assert(err == LCP_OK || err == LCP_ERR_NOMEM, "%s", lcp_err_name(err));
			if (err == LCP_OK)
				cr_assert_eq(memcmp(b, ref + off, got), 0, "at %llu",
					     (unsigned long long)off);
		}
		lcp_alloc_fail_after(-1);
		lcp_read_stream_close(s);
	}
	free(b);
	lcp_decode_ahead_free(da);
	lcp_store_close(f);
	lcp_chunk_cache_free(c);
	expect_no_leaks();
}
