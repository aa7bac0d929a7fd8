/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Codec benchmark: lcpfs's default preset and its 8-bit (quality) preset
 * against reference implementations of ggml Q4_0, Q4_1, IQ4_NL, Q8_0 and
 * bitsandbytes NF4 (with and without double-quantized scales) on the real
 * weights in ../shared/data. Prints one table (stored bits/weight, SQNR,
 * minimum cosine, one-thread encode/decode speed, ranks chosen), the targets
 * of issue 3 as PASS/MISS lines, the encoder's dependent-quantization
 * search per SIMD form (issue 11), decode speed (issue 10), the lossless
 * preset against a byte-plane zstd -3 reference (issue 12), then the
 * model-level check: stories260K with the tensors a mount compresses,
 * reconstructed by each scheme and scored by ../shared/tools/stories260k.py
 * (kld, top1, perplexity; issue 12).
 *
 * Every speed is per second of the timing thread's CPU time (now_s).
 * Exit status is 0 unless the benchmark could not run (targets only print).
 * Environment: BENCH_DATA (default ../shared/data), BENCH_OUT (directory for
 * the reconstructed model files; default a fresh /tmp directory, removed at
 * the end), PYTHON (default /usr/bin/python3), BENCH_ONLY=decode (load the
 * weights, run only the decode-speed section: a short run for decoder work).
 * Runs with cwd = repo root.
 */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#include "codec/half.h"
#include "codec/kernels.h"
#include "codec/quant.h"
#include "lcpfs/codec.h"
#include "lcpfs/config.h"
#include "lib/refquant.h"

#define RUNS 3                  /* best of RUNS for every timing */
#define MIN_ELEMS 4096          /* tensors smaller than this are not counted */
#define MOUNT_MIN_BYTES 4096    /* the mount's default min_size */
#define TARGET_BPW 4.0          /* default preset: bits/weight ceiling */
#define TARGET_8BIT_BPW 8.5     /* 8-bit preset: bits/weight ceiling */
#define TARGET_DEC_MBS 1500.0   /* decode, MB/s of output per core */
#define TARGET_ENC_MBS 50.0     /* encode, MB/s of input per core, largest tensor */
#define TARGET_ENC_ALL_MBS 100.0 /* encode, MB/s of f32 input per core, 4-bit, every
				    tensor of both files (issue 11) */
#define TARGET_PPL_PCT 5.0      /* 4-bit: stories260K perplexity change (issue 3) */
#define MAX_RANK_BINS 65        /* ranks 0..63, then one bin for >= 64 */
/* Decode speed (issue 10): one matrix of DEC_COLS columns made of all the
 * real weights above (3.7 M on the shared files: 14 MiB of F32 output, past
 * the core's caches as a read of a model file is). */
#define DEC_COLS 4096
#define DEC_RUNS 15              /* best of, alternating with Q4_0 (noisy shared cores) */
#define TARGET_DEC_GWS 1.5      /* G weights/s per core, every output dtype */
#define TARGET_DEC_VS_Q4_0 0.75 /* of ggml Q4_0 dequantization, same run */
#define RANGE_READS 400         /* random 4 KiB reads timed per way */
/* Lossless preset (issue 12): ratios on the shared weights, of a byte-plane
 * zstd -3 reference, speeds per core. */
#define TARGET_LL_F32 1.15
#define TARGET_LL_F16 1.15
#define TARGET_LL_BF16 1.40
#define TARGET_LL_VS_REF 1.05
#define TARGET_LL_DEC_GBS 1.5
#define TARGET_LL_ENC_MBS 200.0

enum { S_DEFAULT, S_8BIT, S_REF0 };

struct tensor {
	char *name;
	uint64_t rows, cols, n;
	uint32_t ndims;
	uint64_t dims[LCP_MAX_DIMS];
	size_t data_off; /* absolute offset of its bytes in the file */
	float *x;
};

struct file {
	char *name;
	uint8_t *bytes;
	size_t len;
	struct tensor *t;
	size_t nt;
};

struct result {
	uint64_t elems;
	double stored_bytes, sig, err, mincos;
	double enc_s, dec_s;
	unsigned rank_hist[MAX_RANK_BINS];
	uint64_t rank_sum;
	unsigned fallbacks;
	double largest_enc_mbs;
	uint64_t largest_n;
	bool failed;
};

/* Seconds of this thread's CPU time: every timed step runs on the calling
 * thread (OpenBLAS is held to one thread), and on shared cores a wall clock
 * also counts the time other processes take (under a load of 6 on 2 cores,
 * best-of-3 wall times swung by 2x between runs). */
static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p) {
		fprintf(stderr, "bench_codec: out of memory\n");
		exit(2);
	}
	return p;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static uint8_t *read_all(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	long sz = ftell(f);
	fseek(f, 0, SEEK_SET);
	uint8_t *b = sz > 0 ? xmalloc((size_t)sz) : NULL;
	if (b && fread(b, 1, (size_t)sz, f) != (size_t)sz) {
		free(b);
		b = NULL;
	}
	fclose(f);
	*len = b ? (size_t)sz : 0;
	return b;
}

/* Whether a tensor name marks a rotary-embedding table, which a mount keeps
 * exact (the markers of src/format/format.c). */
static bool rotary(const char *name)
{
	return strstr(name, "freqs") || strstr(name, "inv_freq") || strstr(name, "rotary") ||
	       strstr(name, "rope");
}

/* Parses a safetensors header and collects F32 tensors of >= 2 dims,
 * viewed as [prod(dims[:-1]), dims[-1]]: those the table counts (>=
 * MIN_ELEMS elements), or with mount_set those a mount compresses (>=
 * MOUNT_MIN_BYTES bytes, rotary tables left out). */
static bool load_file(const char *dir, const char *name, bool mount_set, struct file *f)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	memset(f, 0, sizeof *f);
	f->name = strdup(name);
	f->bytes = read_all(path, &f->len);
	if (!f->bytes || f->len < 8)
		return false;
	uint64_t hlen = 0;
	for (int i = 7; i >= 0; i--)
		hlen = hlen << 8 | f->bytes[i];
	if (hlen > f->len - 8)
		return false;
	json_error_t jerr;
	json_t *h = json_loadb((const char *)f->bytes + 8, hlen, 0, &jerr);
	if (!json_is_object(h))
		return false;
	size_t data0 = 8 + hlen;
	f->t = xmalloc(json_object_size(h) * sizeof *f->t);
	const char *key;
	json_t *v;
	json_object_foreach(h, key, v) {
		json_t *shape = json_object_get(v, "shape"), *offs = json_object_get(v, "data_offsets");
		const char *dt = json_string_value(json_object_get(v, "dtype"));
		if (!dt || strcmp(dt, "F32") != 0 || !json_is_array(shape) || !json_is_array(offs))
			continue;
		size_t nd = json_array_size(shape);
		if (nd < 2 || nd > LCP_MAX_DIMS)
			continue;
		struct tensor t = { .ndims = (uint32_t)nd, .rows = 1, .n = 1 };
		for (size_t i = 0; i < nd; i++) {
			t.dims[i] = (uint64_t)json_integer_value(json_array_get(shape, i));
			t.n *= t.dims[i];
			if (i + 1 < nd)
				t.rows *= t.dims[i];
		}
		t.cols = t.dims[nd - 1];
		uint64_t b = (uint64_t)json_integer_value(json_array_get(offs, 0));
		uint64_t e = (uint64_t)json_integer_value(json_array_get(offs, 1));
		bool counted = mount_set ? t.n * 4 >= MOUNT_MIN_BYTES && !rotary(key) : t.n >= MIN_ELEMS;
		if (!counted || e - b != t.n * 4 || data0 + e > f->len)
			continue;
		t.name = strdup(key);
		t.data_off = data0 + b;
		t.x = xmalloc(t.n * sizeof *t.x);
		memcpy(t.x, f->bytes + t.data_off, t.n * sizeof *t.x); /* aligned copy */
		f->t[f->nt++] = t;
	}
	json_decref(h);
	return f->nt > 0;
}

static void accumulate(struct result *r, const float *x, const float *y, uint64_t n)
{
	double sxx = 0, syy = 0, sxy = 0, e = 0;
	for (uint64_t i = 0; i < n; i++) {
		double a = x[i], b = y[i];
		sxx += a * a;
		syy += b * b;
		sxy += a * b;
		e += (a - b) * (a - b);
	}
	double cos = sxx > 0 && syy > 0 ? sxy / sqrt(sxx * syy) : (sxx == syy ? 1.0 : 0.0);
	r->sig += sxx;
	r->err += e;
	r->mincos = cos < r->mincos ? cos : r->mincos;
	r->elems += n;
}

static double best_enc_time(double t, double best)
{
	return t < best ? t : best;
}

/* One tensor through lcpfs: best-of-RUNS encode and decode; y gets the
 * reconstruction. */
static bool run_lcpfs(struct lcp_codec_ctx *ctx, const struct lcp_config *cfg,
		      const struct tensor *t, float *y, struct result *r, double *enc_s)
{
	struct lcp_tensor_view view = { .dtype = LCP_DTYPE_F32, .ndims = t->ndims, .data = t->x,
					.len = t->n * sizeof(float) };
	memcpy(view.dims, t->dims, sizeof view.dims);
	struct lcp_encoded enc;
	double best = INFINITY;
	for (int run = 0; run < RUNS; run++) {
		double t0 = now_s();
		lcp_err err = lcp_codec_encode(ctx, &view, cfg, &enc);
		best = best_enc_time(now_s() - t0, best);
		if (err) {
			fprintf(stderr, "bench_codec: encode %s: %s\n", t->name, lcp_strerror(err));
			return false;
		}
		if (run + 1 < RUNS)
			lcp_encoded_free(&enc);
	}
	struct lcp_codec_tensor *ct = NULL;
	lcp_err err = lcp_codec_tensor_open(enc.params, enc.params_len, &ct);
	double dbest = INFINITY;
	for (int run = 0; !err && run < RUNS; run++) {
		double t0 = now_s();
		for (uint32_t c = 0; !err && c < enc.nchunks; c++) {
			const struct lcp_chunk_info *ch = &enc.chunks[c];
			err = lcp_codec_decode_chunk(ct, ch, enc.data + ch->data_off, ch->data_len,
						     y + ch->elem_begin,
						     (ch->elem_end - ch->elem_begin) * sizeof(float));
		}
		dbest = best_enc_time(now_s() - t0, dbest);
	}
	lcp_codec_tensor_free(ct);
	if (err) {
		fprintf(stderr, "bench_codec: decode %s: %s\n", t->name, lcp_strerror(err));
		lcp_encoded_free(&enc);
		return false;
	}
	r->stored_bytes += (double)enc.stored_bytes;
	r->rank_hist[enc.rank < MAX_RANK_BINS - 1 ? enc.rank : MAX_RANK_BINS - 1]++;
	r->rank_sum += enc.rank;
	r->fallbacks += enc.fallback_reason != NULL;
	r->dec_s += dbest;
	*enc_s = best;
	lcp_encoded_free(&enc);
	return true;
}

static void run_ref(const struct ref_scheme *s, const struct tensor *t, float *y,
		    struct result *r, double *enc_s)
{
	size_t nb = s->stored_bytes(t->n);
	uint8_t *buf = xmalloc(nb);
	double best = INFINITY, dbest = INFINITY;
	for (int run = 0; run < RUNS; run++) {
		double t0 = now_s();
		s->quantize(t->x, t->n, buf);
		best = best_enc_time(now_s() - t0, best);
	}
	for (int run = 0; run < RUNS; run++) {
		double t0 = now_s();
		s->dequantize(buf, t->n, y);
		dbest = best_enc_time(now_s() - t0, dbest);
	}
	free(buf);
	r->stored_bytes += (double)nb;
	r->dec_s += dbest;
	*enc_s = best;
}

static const char *scheme_name(size_t s)
{
	if (s == S_DEFAULT)
		return "lcpfs-default";
	if (s == S_8BIT)
		return "lcpfs-8bit";
	return ref_schemes[s - S_REF0].name;
}

/* Runs scheme s over every counted tensor of f. recon, when not NULL,
 * receives a copy of the file's bytes with those tensors replaced by their
 * reconstruction. */
static void run_scheme(struct lcp_codec_ctx *ctx, const struct file *f, size_t s,
		       struct result *r, uint8_t *recon)
{
	memset(r, 0, sizeof *r);
	r->mincos = 1.0;
	struct lcp_config cfg = s == S_8BIT ? lcp_config_quality() : lcp_config_default();
	for (size_t i = 0; i < f->nt && !r->failed; i++) {
		const struct tensor *t = &f->t[i];
		float *y = xmalloc(t->n * sizeof *y);
		double enc_s = 0;
		if (s < S_REF0)
			r->failed = !run_lcpfs(ctx, &cfg, t, y, r, &enc_s);
		else
			run_ref(&ref_schemes[s - S_REF0], t, y, r, &enc_s);
		if (!r->failed) {
			accumulate(r, t->x, y, t->n);
			r->enc_s += enc_s;
			if (t->n > r->largest_n) {
				r->largest_n = t->n;
				r->largest_enc_mbs = (double)t->n * 4 / enc_s / 1e6;
			}
			if (recon)
				memcpy(recon + t->data_off, y, t->n * sizeof *y);
		}
		free(y);
	}
}

static double sqnr_db(const struct result *r)
{
	return r->err > 0 ? 10.0 * log10(r->sig / r->err) : INFINITY;
}

static double bpw(const struct result *r)
{
	return r->stored_bytes * 8.0 / (double)r->elems;
}

static void print_ranks(const struct result *r, char *out, size_t len)
{
	size_t used = 0;
	out[0] = 0;
	for (int k = 0; k < MAX_RANK_BINS && used < len; k++)
		if (r->rank_hist[k])
			used += (size_t)snprintf(out + used, len - used, "%sr%d%s:%u",
						 used ? " " : "", k,
						 k == MAX_RANK_BINS - 1 ? "+" : "", r->rank_hist[k]);
	if (used < len)
		snprintf(out + used, len - used, " (sum %llu%s)", (unsigned long long)r->rank_sum,
			 r->fallbacks ? ", fallbacks" : "");
}

/* What stories260k.py reports for a reconstruction against the original. */
struct model_metrics {
	double kld, top1, ppl_pct, ppl_dev_pct;
	int prefix;
	bool same;
};

/* Runs stories260k.py on recon vs orig. Returns false when it could not
 * run. */
static bool run_model(const char *python, const char *recon, const char *orig,
		      struct model_metrics *m)
{
	char cmd[9000];
	snprintf(cmd, sizeof cmd, "'%s' ../shared/tools/stories260k.py '%s' '%s'", python, recon,
		 orig);
	FILE *p = popen(cmd, "r");
	if (!p)
		return false;
	char line[8192];
	size_t got = fread(line, 1, sizeof line - 1, p);
	line[got] = 0;
	int rc = pclose(p);
	json_error_t jerr;
	json_t *j = json_loads(line, 0, &jerr);
	if (rc != 0 || !json_is_object(j)) {
		json_decref(j);
		return false;
	}
	m->kld = json_number_value(json_object_get(j, "kld"));
	m->top1 = json_number_value(json_object_get(j, "top1"));
	m->ppl_pct = json_number_value(json_object_get(j, "ppl_delta_pct"));
	m->ppl_dev_pct = json_number_value(json_object_get(j, "ppl_dev_delta_pct"));
	m->prefix = (int)json_integer_value(json_object_get(j, "greedy_prefix"));
	m->same = json_is_true(json_object_get(j, "greedy_same"));
	json_decref(j);
	return true;
}

static bool write_file(const char *path, const uint8_t *b, size_t len)
{
	FILE *f = fopen(path, "wb");
	if (!f)
		return false;
	bool ok = fwrite(b, 1, len, f) == len;
	return fclose(f) == 0 && ok;
}

/* Every counted tensor of every file, one after another, cut into rows of
 * DEC_COLS values (the tail that fills no row is left out); *rows gets their
 * number. No row repeats, so zstd finds no matches rANS could not. */
static float *decode_matrix(const struct file *files, size_t nfiles, uint64_t *rows)
{
	uint64_t n = 0;
	for (size_t f = 0; f < nfiles; f++)
		for (size_t i = 0; i < files[f].nt; i++)
			n += files[f].t[i].n;
	*rows = n / DEC_COLS;
	if (*rows == 0)
		return NULL;
	float *x = xmalloc(n * sizeof *x);
	uint64_t at = 0;
	for (size_t f = 0; f < nfiles; f++)
		for (size_t i = 0; i < files[f].nt; i++) {
			memcpy(x + at, files[f].t[i].x, files[f].t[i].n * sizeof *x);
			at += files[f].t[i].n;
		}
	return x;
}

/* Seconds to decode every chunk of enc into out (NAN on a decode error). */
static double time_decode(const struct lcp_encoded *enc, const struct lcp_codec_tensor *ct,
			  uint8_t *out, unsigned eb)
{
	double t0 = now_s();
	for (uint32_t c = 0; c < enc->nchunks; c++) {
		const struct lcp_chunk_info *ch = &enc->chunks[c];
		size_t len = (ch->elem_end - ch->elem_begin) * eb;
		if (lcp_codec_decode_chunk(ct, ch, enc->data + ch->data_off, ch->data_len,
					   out + ch->elem_begin * eb, len) != LCP_OK)
			return NAN;
	}
	return now_s() - t0;
}

/* Microseconds per read of 4 KiB at random places (the same for both
 * ways), decoding with lcp_codec_decode_range or the whole chunk; best of
 * RUNS. */
static void range_reads(const struct lcp_encoded *enc, const struct lcp_codec_tensor *ct,
			unsigned eb, double *range_us, double *chunk_us)
{
	uint64_t count = 4096 / eb, n = enc->chunks[enc->nchunks - 1].elem_end;
	uint8_t *out = xmalloc(4096), *whole = xmalloc(lcp_codec_tensor_block_elems(ct) > 0 ?
							  (size_t)(enc->chunks[0].elem_end * eb) : 1);
	*range_us = *chunk_us = INFINITY;
	for (int way = 0; way < 2; way++)
		for (int run = 0; run < RUNS; run++) {
			uint64_t seed = 12345;
			double t0 = now_s();
			for (int r = 0; r < RANGE_READS; r++) {
				seed = seed * 6364136223846793005ull + 1442695040888963407ull;
				uint64_t first = (seed >> 16) % (n - count + 1);
				uint32_t c = 0;
				while (enc->chunks[c].elem_end <= first)
					c++;
				const struct lcp_chunk_info *ch = &enc->chunks[c];
				uint64_t cnt = ch->elem_end - first < count ? ch->elem_end - first : count;
				if (way == 0)
					lcp_codec_decode_range(ct, ch, enc->data + ch->data_off, ch->data_len, first,
							       cnt, out, cnt * eb);
				else
					lcp_codec_decode_chunk(ct, ch, enc->data + ch->data_off, ch->data_len, whole,
							       (ch->elem_end - ch->elem_begin) * eb);
			}
			double us = (now_s() - t0) * 1e6 / RANGE_READS;
			double *best = way == 0 ? range_us : chunk_us;
			*best = us < *best ? us : *best;
		}
	free(out);
	free(whole);
}

/*
 * The encoder's dependent-quantization (Viterbi) search on its own, every
 * form this CPU has (issue 11: it is ~30% of lcpfs pack's CPU): the matrix
 * of decode_speed in blocks of DQ_BLOCK weights, half-steps DQ_COEF x the
 * RMS of each group of 64 (the default preset's rule), one thread, best of
 * RUNS; next to the plain-C form and SSE2 (the form main runs), and whether
 * every form chose the plain-C form's codes.
 */
#define DQ_BLOCK 16384
#define DQ_GROUP 64
#define DQ_COEF 0.14f
static void dq_search_speed(const struct file *files, size_t nfiles)
{
	uint64_t rows;
	float *x = decode_matrix(files, nfiles, &rows);
	if (!x)
		return;
	uint64_t n = rows * DEC_COLS;
	float *delta = xmalloc((n / DQ_GROUP + 1) * sizeof *delta);
	for (uint64_t g = 0; g < n / DQ_GROUP; g++) {
		double ss = 0.0;
		for (unsigned j = 0; j < DQ_GROUP; j++)
			ss += (double)x[g * DQ_GROUP + j] * x[g * DQ_GROUP + j];
		delta[g] = DQ_COEF * (float)sqrt(ss / DQ_GROUP);
	}
	uint8_t *want = xmalloc(n), *got = xmalloc(n);
	void *work = xmalloc(lcp_quant_dq_work_bytes(DQ_BLOCK));
	printf("\nDependent-quantization search (issue 11): %llu weights in blocks of %d, groups of %d,\n"
	       "one thread, best of %d; M weights/s and MB/s of f32 input; \"auto\" = %s.\n",
	       (unsigned long long)n, DQ_BLOCK, DQ_GROUP, RUNS,
	       lcp_quant_dq_search_name(lcp_quant_dq_search()));
	printf("%-7s %11s %9s %10s %9s  %s\n", "form", "M weights/s", "MB/s", "vs scalar", "vs sse2",
	       "codes");
	double rate[LCP_DQ_SEARCH_AVX512 + 1] = { 0 };
	bool same[LCP_DQ_SEARCH_AVX512 + 1] = { true };
	for (int f = LCP_DQ_SEARCH_SCALAR; f <= LCP_DQ_SEARCH_AVX512; f++) {
		enum lcp_dq_search form = (enum lcp_dq_search)f;
		if (!lcp_quant_dq_search_available(form))
			continue;
		double best = INFINITY;
		uint8_t *codes = f == LCP_DQ_SEARCH_SCALAR ? want : got;
		for (int run = 0; run < RUNS; run++) {
			double t0 = now_s();
			for (uint64_t i = 0; i < n; i += DQ_BLOCK) {
				uint32_t len = n - i < DQ_BLOCK ? (uint32_t)(n - i) : DQ_BLOCK;
				lcp_quant_dq_block_with(form, x + i, len, delta + i / DQ_GROUP, DQ_GROUP, 0,
							codes + i, work);
			}
			best = best_enc_time(now_s() - t0, best);
		}
		rate[f] = (double)n / best;
		same[f] = memcmp(codes, want, n) == 0;
	}
	for (int f = LCP_DQ_SEARCH_SCALAR; f <= LCP_DQ_SEARCH_AVX512; f++)
		if (rate[f] > 0.0)
			printf("%-7s %11.1f %9.1f %9.2fx %8.2fx  %s\n",
			       lcp_quant_dq_search_name((enum lcp_dq_search)f), rate[f] / 1e6,
			       rate[f] * 4 / 1e6, rate[f] / rate[LCP_DQ_SEARCH_SCALAR],
			       rate[f] / rate[LCP_DQ_SEARCH_SSE2],
			       f == LCP_DQ_SEARCH_SCALAR ? "reference" : same[f] ? "same" : "DIFFERENT");
	free(x);
	free(delta);
	free(want);
	free(got);
	free(work);
}

/*
 * Decode per core into F32, F16 and BF16 at 4 and 8 bits (the default and
 * quality presets), with the kernels this CPU gets and with the plain-C
 * reference, next to ggml Q4_0 dequantization of the same values into F32
 * in the same run. Prints the table and the targets of issue 10.
 */
static void decode_speed(struct lcp_codec_ctx *ctx, const struct file *files, size_t nfiles)
{
	uint64_t rows;
	float *x = decode_matrix(files, nfiles, &rows);
	if (!x) {
		printf("\nDecode speed: not enough weights to build the matrix\n");
		return;
	}
	uint64_t n = rows * DEC_COLS;
	const struct ref_scheme *q40 = ref_scheme_find("Q4_0");
	uint8_t *qbuf = xmalloc(q40->stored_bytes(n)), *out = xmalloc(n * 4), *in = xmalloc(n * 4);
	float *qy = xmalloc(n * sizeof *qy);
	q40->quantize(x, n, qbuf);
	const struct lcp_kernels *auto_k = lcp_kernels(), *ref_k = lcp_kernels_named("ref");
	printf("\nDecode speed (issue 10): one %llux%d matrix of all the real weights above, every\n"
	       "chunk decoded on one thread into the tensor's dtype, low-rank ceiling 0 (a kept rank\n"
	       "r adds r multiply-adds per weight); kernels \"%s\" (chosen for this CPU), best of %d\n"
	       "runs alternating with ggml Q4_0 dequantizing the same values to F32; \"ref\" = the\n"
	       "plain-C reference kernels, best of %d.\n",
	       (unsigned long long)rows, DEC_COLS, auto_k->name, DEC_RUNS, RUNS);
	printf("%-13s %-5s %7s %11s %9s %9s %9s %9s\n", "scheme", "dtype", "bpw", "G weights/s",
	       "GB/s", "Q4_0 G/s", "vs Q4_0", "ref G/s");
	static const enum lcp_dtype dts[] = { LCP_DTYPE_F32, LCP_DTYPE_F16, LCP_DTYPE_BF16 };
	static const char *dt_names[] = { "F32", "F16", "BF16" };
	char verdicts[6][200];
	unsigned nv = 0;
	double range_us = NAN, chunk_us = NAN;
	uint64_t range_block = 0;
	for (int preset = 0; preset < 2; preset++) {
		struct lcp_config cfg = preset ? lcp_config_quality() : lcp_config_default();
		const char *pname = preset ? "lcpfs-8bit" : "lcpfs-default";
		cfg.rank = 0;
		for (unsigned d = 0; d < 3; d++) {
			unsigned eb = dts[d] == LCP_DTYPE_F32 ? 4 : 2;
			for (uint64_t i = 0; i < n; i++) {
				uint16_t h = dts[d] == LCP_DTYPE_F16 ? lcp_f16_from_f32(x[i])
								     : lcp_bf16_from_f32(x[i]);
				if (eb == 4)
					memcpy(in + 4 * i, &x[i], 4);
				else
					memcpy(in + 2 * i, &h, 2);
			}
			struct lcp_tensor_view v = { .dtype = dts[d], .ndims = 2,
						     .dims = { rows, DEC_COLS }, .data = in,
						     .len = n * eb };
			struct lcp_encoded enc;
			struct lcp_codec_tensor *ct = NULL;
			if (lcp_codec_encode(ctx, &v, &cfg, &enc) != LCP_OK) {
				printf("%-13s %-5s   (encode failed)\n", pname, dt_names[d]);
				continue;
			}
			double t = INFINITY, tref = INFINITY, tq = INFINITY;
			if (lcp_codec_tensor_open(enc.params, enc.params_len, &ct) == LCP_OK) {
				for (int run = 0; run < DEC_RUNS; run++) {
					double t0 = now_s();
					q40->dequantize(qbuf, n, qy);
					tq = best_enc_time(now_s() - t0, tq);
					t = best_enc_time(time_decode(&enc, ct, out, eb), t);
				}
				lcp_kernels_force(ref_k);
				for (int run = 0; run < RUNS; run++)
					tref = best_enc_time(time_decode(&enc, ct, out, eb), tref);
				lcp_kernels_force(NULL);
			}
			double gws = (double)n / t / 1e9, q_gws = (double)n / tq / 1e9;
			printf("%-13s %-5s %7.3f %11.2f %9.2f %9.2f %8.2fx %9.2f\n", pname, dt_names[d],
			       8.0 * (double)enc.stored_bytes / (double)n, gws, gws * eb, q_gws, gws / q_gws,
			       (double)n / tref / 1e9);
			if (preset == 0 && dts[d] == LCP_DTYPE_F16 && ct) {
				range_reads(&enc, ct, eb, &range_us, &chunk_us);
				range_block = lcp_codec_tensor_block_elems(ct);
			}
			snprintf(verdicts[nv++], sizeof verdicts[0],
				 "%s %s into %s: %.2f G weights/s >= %.1f and %.2fx >= %.2fx Q4_0",
				 gws >= TARGET_DEC_GWS && gws >= TARGET_DEC_VS_Q4_0 * q_gws ? "PASS" : "FAIL",
				 pname, dt_names[d], gws, TARGET_DEC_GWS, gws / q_gws, TARGET_DEC_VS_Q4_0);
			lcp_codec_tensor_free(ct);
			lcp_encoded_free(&enc);
		}
	}
	printf("\nRandom reads of 4 KiB of the lcpfs-default F16 tensor, %d of them, best of %d: "
	       "%.1f us each decoding\nthe range (its blocks of %llu weights), %.1f us decoding "
	       "the whole chunk.\n",
	       RANGE_READS, RUNS, range_us, (unsigned long long)range_block, chunk_us);
	printf("\nTargets (issue 10, decode per core):\n");
	for (unsigned i = 0; i < nv; i++)
		printf("%s\n", verdicts[i]);
	free(qbuf);
	free(out);
	free(in);
	free(qy);
	free(x);
}

static void free_file(struct file *f)
{
	for (size_t i = 0; i < f->nt; i++) {
		free(f->t[i].name);
		free(f->t[i].x);
	}
	free(f->t);
	free(f->bytes);
	free(f->name);
}

/* Index of the scheme called name, or SIZE_MAX. */
static size_t scheme_index(const char *name)
{
	for (size_t s = 0; s < S_REF0 + ref_nschemes; s++)
		if (strcmp(scheme_name(s), name) == 0)
			return s;
	return SIZE_MAX;
}

/*
 * Model-level check (issue 12): stories260K with every tensor a mount
 * compresses (F32, >= 2 dims, >= 4096 bytes, rotary tables exact)
 * reconstructed by each scheme and scored by ../shared/tools/stories260k.py
 * against the original: kld (mean KL divergence of the next-token
 * distributions over ../shared/data/stories_dev.txt), top1, perplexity
 * changes, greedy text.
 */
static void model_section(struct lcp_codec_ctx *ctx, const char *dir, const char *python,
			  const char *name)
{
	static const char *const schemes[] = { "lcpfs-default", "lcpfs-8bit", "IQ4_NL", "Q4_0",
					       "Q4_1", "Q8_0" };
	enum { NM = sizeof schemes / sizeof schemes[0] };
	struct file f;
	if (!load_file(dir, name, true, &f)) {
		printf("\nModel check: %s unreadable\n", name);
		free_file(&f);
		return;
	}
	char tmpl[] = "/tmp/lcpfs-bench-XXXXXX", orig[4200];
	const char *out = getenv("BENCH_OUT");
	bool own_dir = !out;
	if (own_dir)
		out = mkdtemp(tmpl);
	snprintf(orig, sizeof orig, "%s/%s", dir, name);
	uint64_t elems = 0;
	for (size_t i = 0; i < f.nt; i++)
		elems += f.t[i].n;
	printf("\nModel check (issue 12): %s, the %zu tensors a mount compresses (F32, >= 2 dims,\n"
	       ">= %d bytes, rotary tables exact: %llu weights), reconstructed by each scheme and\n"
	       "scored by stories260k.py against the original: kld = mean KL(original || scheme) of the\n"
	       "next-token distributions over stories_dev.txt, top1 = share of the same argmax, ppl =\n"
	       "perplexity change on the 60-token text and on stories_dev.txt; one step's kld scatters\n"
	       "~6%% around the kld-vs-bpw curve (docs/DESIGN-notes.md).\n",
	       name, f.nt, MOUNT_MIN_BYTES, (unsigned long long)elems);
	printf("%-13s %7s %8s %7s %9s %9s %7s %6s\n", "scheme", "bpw", "kld", "top1", "ppl", "ppl dev",
	       "prefix", "greedy");
	struct model_metrics mm[NM];
	bool ran[NM] = { false };
	for (size_t m = 0; m < NM && out; m++) {
		size_t si = scheme_index(schemes[m]);
		uint8_t *recon = xmalloc(f.len);
		memcpy(recon, f.bytes, f.len);
		struct result r;
		run_scheme(ctx, &f, si, &r, recon);
		char path[4300];
		snprintf(path, sizeof path, "%s/%s.safetensors", out, schemes[m]);
		ran[m] = !r.failed && write_file(path, recon, f.len) && run_model(python, path, orig, &mm[m]);
		if (ran[m])
			printf("%-13s %7.3f %8.4f %7.4f %+8.2f%% %+8.2f%% %7d %6s\n", schemes[m], bpw(&r),
			       mm[m].kld, mm[m].top1, mm[m].ppl_pct, mm[m].ppl_dev_pct, mm[m].prefix,
			       mm[m].same ? "same" : "no");
		else
			printf("%-13s   (could not run)\n", schemes[m]);
		if (own_dir)
			unlink(path);
		free(recon);
	}
	if (own_dir && out)
		rmdir(out);
	printf("\nTargets (issue 12, model level):\n");
	if (ran[0] && ran[2])
		printf("%s lcpfs-default kld %.4f <= IQ4_NL kld %.4f (%.0f%% lower)\n",
		       mm[0].kld <= mm[2].kld ? "PASS" : "MISS", mm[0].kld, mm[2].kld,
		       100.0 * (1.0 - mm[0].kld / mm[2].kld));
	if (ran[1] && ran[5])
		printf("%s lcpfs-8bit kld %.5f <= Q8_0 kld %.5f, greedy text %s\n",
		       mm[1].kld <= mm[5].kld && mm[1].same ? "PASS" : "MISS", mm[1].kld, mm[5].kld,
		       mm[1].same ? "identical" : "changed");
	if (ran[0])
		printf("INFO lcpfs-default 60-token ppl change %+.2f%% (issue 3 asked <= %.0f%% on a\n"
		       "     smaller set; it swings by several %% between neighbouring steps: kld decides)\n",
		       mm[0].ppl_pct, TARGET_PPL_PCT);
	free_file(&f);
}

/* x as n values of dtype dt (F16/BF16 rounded to nearest even). */
static void to_dtype(const float *x, uint64_t n, enum lcp_dtype dt, uint8_t *out)
{
	for (uint64_t i = 0; i < n; i++) {
		if (dt == LCP_DTYPE_F32) {
			memcpy(out + 4 * i, &x[i], 4);
		} else {
			uint16_t h = dt == LCP_DTYPE_F16 ? lcp_f16_from_f32(x[i]) : lcp_bf16_from_f32(x[i]);
			memcpy(out + 2 * i, &h, 2);
		}
	}
}

/* One lossless row's sums. */
struct lossless_row {
	double raw, stored, ref, enc_s, dec_s, ref_dec_s;
	bool exact, failed;
};

/* One tensor (bytes x, n values of dt) through the lossless preset and the
 * reference (its byte planes as one zstd -3 frame), best of RUNS each. */
static void lossless_tensor(struct lcp_codec_ctx *ctx, ZSTD_CCtx *zc, ZSTD_DCtx *zd,
			    const struct tensor *t, enum lcp_dtype dt, const uint8_t *x,
			    struct lossless_row *row)
{
	const struct lcp_config cfg = lcp_config_lossless();
	unsigned eb = dt == LCP_DTYPE_F32 ? 4 : 2;
	size_t len = t->n * eb;
	struct lcp_tensor_view v = { .dtype = dt, .ndims = t->ndims, .data = x, .len = len };
	memcpy(v.dims, t->dims, sizeof v.dims);
	struct lcp_encoded enc;
	double best = INFINITY, dbest = INFINITY, zbest = INFINITY;
	for (int run = 0; run < RUNS; run++) {
		double t0 = now_s();
		lcp_err err = lcp_codec_encode(ctx, &v, &cfg, &enc);
		best = best_enc_time(now_s() - t0, best);
		if (err) {
			row->failed = true;
			return;
		}
		if (run + 1 < RUNS)
			lcp_encoded_free(&enc);
	}
	uint8_t *y = xmalloc(len), *planes = xmalloc(len), *z = xmalloc(ZSTD_compressBound(len));
	struct lcp_codec_tensor *ct = NULL;
	if (lcp_codec_tensor_open(enc.params, enc.params_len, &ct) == LCP_OK) {
		for (int run = 0; run < RUNS; run++)
			dbest = best_enc_time(time_decode(&enc, ct, y, eb), dbest);
		row->exact = row->exact && !isnan(dbest) && memcmp(x, y, len) == 0;
	} else {
		row->failed = true;
	}
	for (unsigned b = 0; b < eb; b++)
		for (uint64_t i = 0; i < t->n; i++)
			planes[b * t->n + i] = x[i * eb + b];
	size_t zlen = ZSTD_compressCCtx(zc, z, ZSTD_compressBound(len), planes, len, 3);
	for (int run = 0; run < RUNS && !ZSTD_isError(zlen); run++) {
		double t0 = now_s();
		size_t r = ZSTD_decompressDCtx(zd, planes, len, z, zlen);
		zbest = best_enc_time(now_s() - t0, zbest);
		row->failed |= r != len;
	}
	row->failed |= ZSTD_isError(zlen);
	row->raw += (double)len;
	row->stored += (double)enc.stored_bytes;
	row->ref += (double)zlen;
	row->enc_s += best;
	row->dec_s += dbest;
	row->ref_dec_s += zbest;
	lcp_codec_tensor_free(ct);
	lcp_encoded_free(&enc);
	free(y);
	free(planes);
	free(z);
}

/*
 * The lossless preset (issue 12) on every counted tensor of the shared
 * weights as F32 and rounded to F16 and BF16: ratio (everything the codec
 * stores), next to a byte-plane zstd -3 reference (each tensor's byte
 * planes as one frame), encode and decode speed on one thread, and that
 * every byte came back.
 */
static void lossless_section(struct lcp_codec_ctx *ctx, const struct file *files, size_t nfiles)
{
	static const enum lcp_dtype dts[] = { LCP_DTYPE_F32, LCP_DTYPE_F16, LCP_DTYPE_BF16 };
	static const char *dt_names[] = { "F32", "F16", "BF16" };
	static const double min_ratio[] = { TARGET_LL_F32, TARGET_LL_F16, TARGET_LL_BF16 };
	ZSTD_CCtx *zc = ZSTD_createCCtx();
	ZSTD_DCtx *zd = ZSTD_createDCtx();
	if (!zc || !zd) {
		fprintf(stderr, "bench_codec: no zstd context\n");
		exit(2);
	}
	printf("\nLossless preset (issue 12): every tensor above as F32, and rounded to F16 and BF16;\n"
	       "ratio = input bytes / everything the codec stores; ref = each tensor's byte planes as\n"
	       "one zstd -3 frame; encode MB/s of input and decode GB/s of output on one thread, best\n"
	       "of %d (ref decode: zstd alone, without putting the planes back together).\n", RUNS);
	printf("%-5s %9s %9s %9s %9s %10s %10s %10s  %s\n", "dtype", "MB", "ratio", "ref", "vs ref",
	       "enc MB/s", "dec GB/s", "ref GB/s", "exact");
	char verdicts[3][3][200];
	for (unsigned d = 0; d < 3; d++) {
		struct lossless_row row = { .exact = true };
		for (size_t fi = 0; fi < nfiles && !row.failed; fi++)
			for (size_t i = 0; i < files[fi].nt && !row.failed; i++) {
				const struct tensor *t = &files[fi].t[i];
				uint8_t *x = xmalloc(t->n * 4);
				to_dtype(t->x, t->n, dts[d], x);
				lossless_tensor(ctx, zc, zd, t, dts[d], x, &row);
				free(x);
			}
		if (row.failed) {
			printf("%-5s   (failed)\n", dt_names[d]);
			snprintf(verdicts[d][0], sizeof verdicts[d][0], "FAIL %s: encode or decode failed",
				 dt_names[d]);
			verdicts[d][1][0] = verdicts[d][2][0] = 0;
			continue;
		}
		double ratio = row.raw / row.stored, ref = row.raw / row.ref;
		double enc = row.raw / row.enc_s / 1e6, dec = row.raw / row.dec_s / 1e9;
		printf("%-5s %9.1f %8.3fx %8.3fx %8.3fx %10.0f %10.2f %10.2f  %s\n", dt_names[d],
		       row.raw / 1e6, ratio, ref, ratio / ref, enc, dec, row.raw / row.ref_dec_s / 1e9,
		       row.exact ? "yes" : "NO");
		snprintf(verdicts[d][0], sizeof verdicts[d][0],
			 "%s %s: every byte back, ratio %.3fx >= %.2fx and >= %.2fx the reference (%.3fx)",
			 row.exact && ratio >= min_ratio[d] && ratio >= TARGET_LL_VS_REF * ref ? "PASS"
												  : "MISS",
			 dt_names[d], ratio, min_ratio[d], TARGET_LL_VS_REF, ratio / ref);
		snprintf(verdicts[d][1], sizeof verdicts[d][1], "%s %s: decode %.2f GB/s >= %.1f",
			 dec >= TARGET_LL_DEC_GBS ? "PASS" : "MISS", dt_names[d], dec, TARGET_LL_DEC_GBS);
		snprintf(verdicts[d][2], sizeof verdicts[d][2], "%s %s: encode %.0f MB/s >= %.0f",
			 enc >= TARGET_LL_ENC_MBS ? "PASS" : "MISS", dt_names[d], enc, TARGET_LL_ENC_MBS);
	}
	printf("\nTargets (issue 12, lossless, per core):\n");
	for (unsigned d = 0; d < 3; d++)
		for (unsigned k = 0; k < 3; k++)
			if (verdicts[d][k][0])
				printf("%s\n", verdicts[d][k]);
	ZSTD_freeCCtx(zc);
	ZSTD_freeDCtx(zd);
}

int main(void)
{
	const char *dir = getenv("BENCH_DATA") ? getenv("BENCH_DATA") : "../shared/data";
	const char *python = getenv("PYTHON") ? getenv("PYTHON") : "/usr/bin/python3";
	DIR *d = opendir(dir);
	if (!d) {
		fprintf(stderr, "bench_codec: cannot open %s: %s\n", dir, strerror(errno));
		return 2;
	}
	char *names[64];
	size_t nnames = 0;
	struct dirent *de;
	while ((de = readdir(d)) && nnames < 64) {
		size_t l = strlen(de->d_name);
		if (l > 12 && strcmp(de->d_name + l - 12, ".safetensors") == 0)
			names[nnames++] = strdup(de->d_name);
	}
	closedir(d);
	qsort(names, nnames, sizeof *names, cmp_str);

	struct lcp_codec_ctx *ctx = NULL;
	if (lcp_codec_ctx_create(&ctx)) {
		fprintf(stderr, "bench_codec: no codec context\n");
		return 2;
	}
	size_t nschemes = S_REF0 + ref_nschemes;
	struct file *files = xmalloc(nnames * sizeof *files);
	struct result *res = xmalloc(nnames * nschemes * sizeof *res);
	const char *model_name = NULL;
	const char *only = getenv("BENCH_ONLY");
	bool decode_only = only && strcmp(only, "decode") == 0;

	printf("Codec benchmark: every F32 tensor with >= 2 dims and >= %d elements, viewed as\n"
	       "[prod(dims[:-1]), dims[-1]]; bpw = all stored bytes * 8 / elements; SQNR = 10 log10\n"
	       "(sum x^2 / sum (x-y)^2) over all of a file's tensors; cos = the worst tensor's\n"
	       "cosine; enc = MB/s of f32 input, dec = MB/s of f32 output, one thread, best of %d;\n"
	       "every speed in this benchmark is per second of the thread's CPU time.\n"
	       "lcpfs-default = preset balanced, lcpfs-8bit = preset quality; ranks: rank:tensors.\n\n",
	       MIN_ELEMS, RUNS);
	printf("%-30s %-13s %7s %9s %9s %9s %9s  %s\n", "file", "scheme", "bpw", "SQNR dB",
	       "min cos", "enc MB/s", "dec MB/s", "ranks");
	for (size_t fi = 0; fi < nnames; fi++) {
		struct file *f = &files[fi];
		if (!load_file(dir, names[fi], false, f)) {
			fprintf(stderr, "bench_codec: %s: unreadable or no tensors\n", names[fi]);
			return 2;
		}
		if (strstr(f->name, "stories260K"))
			model_name = f->name;
		for (size_t s = 0; s < nschemes && !decode_only; s++) {
			struct result *r = &res[fi * nschemes + s];
			run_scheme(ctx, f, s, r, NULL);
			char ranks[512] = "";
			if (s < S_REF0)
				print_ranks(r, ranks, sizeof ranks);
			if (r->failed) {
				printf("%-30s %-13s   (failed)\n", f->name, scheme_name(s));
				continue;
			}
			printf("%-30s %-13s %7.3f %9.2f %9.5f %9.1f %9.1f  %s\n", f->name,
			       scheme_name(s), bpw(r), sqnr_db(r), r->mincos,
			       (double)r->elems * 4 / r->enc_s / 1e6,
			       (double)r->elems * 4 / r->dec_s / 1e6, ranks);
		}
		fflush(stdout);
	}

	if (decode_only) {
		decode_speed(ctx, files, nnames);
		goto done;
	}
	printf("\nTargets (issue 3):\n");
	size_t iq0 = S_REF0 + (size_t)(ref_scheme_find("Q4_0") - ref_schemes);
	size_t iiq = S_REF0 + (size_t)(ref_scheme_find("IQ4_NL") - ref_schemes);
	size_t iq8 = S_REF0 + (size_t)(ref_scheme_find("Q8_0") - ref_schemes);
	const struct result *largest = NULL;
	for (size_t fi = 0; fi < nnames; fi++) {
		const struct result *r = res + fi * nschemes;
		const struct result *def = &r[S_DEFAULT], *b8 = &r[S_8BIT];
		const char *fn = files[fi].name;
		if (def->failed || b8->failed) {
			printf("MISS %s: lcpfs failed to encode or decode\n", fn);
			continue;
		}
		printf("%s %s: default %.3f bpw <= %.1f and %.3f dB >= Q4_0 %.3f dB (required)\n",
		       bpw(def) <= TARGET_BPW && sqnr_db(def) >= sqnr_db(&r[iq0]) ? "PASS" : "MISS", fn,
		       bpw(def), TARGET_BPW, sqnr_db(def), sqnr_db(&r[iq0]));
		printf("%s %s: default %.3f dB >= IQ4_NL %.3f dB (goal)\n",
		       sqnr_db(def) >= sqnr_db(&r[iiq]) ? "PASS" : "MISS", fn, sqnr_db(def),
		       sqnr_db(&r[iiq]));
		printf("%s %s: 8-bit %.3f dB >= Q8_0 %.3f dB at %.3f bpw <= %.1f\n",
		       sqnr_db(b8) >= sqnr_db(&r[iq8]) && bpw(b8) <= TARGET_8BIT_BPW ? "PASS" : "MISS",
		       fn, sqnr_db(b8), sqnr_db(&r[iq8]), bpw(b8), TARGET_8BIT_BPW);
		double dec = (double)def->elems * 4 / def->dec_s / 1e6;
		double dec8 = (double)b8->elems * 4 / b8->dec_s / 1e6;
		printf("%s %s: decode default %.0f MB/s, 8-bit %.0f MB/s >= %.0f MB/s per core\n",
		       dec >= TARGET_DEC_MBS && dec8 >= TARGET_DEC_MBS ? "PASS" : "MISS", fn, dec, dec8,
		       TARGET_DEC_MBS);
		if (!largest || def->largest_n > largest->largest_n)
			largest = def;
	}
	if (largest)
		printf("%s encode on the largest tensor (%llu elements): default %.1f MB/s >= %.0f "
		       "MB/s\n",
		       largest->largest_enc_mbs >= TARGET_ENC_MBS ? "PASS" : "MISS",
		       (unsigned long long)largest->largest_n, largest->largest_enc_mbs,
		       TARGET_ENC_MBS);
	double enc_bytes = 0.0, enc_s = 0.0;
	for (size_t fi = 0; fi < nnames; fi++) {
		const struct result *def = &res[fi * nschemes + S_DEFAULT];
		enc_bytes += (double)def->elems * 4;
		enc_s += def->enc_s;
	}
	if (enc_s > 0.0)
		printf("%s encoder per core, f32 input, default 4-bit, every tensor: %.1f MB/s >= %.0f "
		       "MB/s\n",
		       enc_bytes / enc_s / 1e6 >= TARGET_ENC_ALL_MBS ? "PASS" : "MISS",
		       enc_bytes / enc_s / 1e6, TARGET_ENC_ALL_MBS);

	dq_search_speed(files, nnames);
	decode_speed(ctx, files, nnames);

	lossless_section(ctx, files, nnames);
	if (model_name)
		model_section(ctx, dir, python, model_name);
done:
	for (size_t fi = 0; fi < nnames; fi++) {
		free_file(&files[fi]);
		free(names[fi]);
	}
	free(files);
	free(res);
	lcp_codec_ctx_free(ctx);
	return 0;
}
