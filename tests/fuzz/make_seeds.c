/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Writes the seed corpora of the fuzz harnesses into DIR/<target>/ (make
 * fuzz-seeds writes tests/fuzz/corpus, which is committed): small valid
 * files of every format shaped like the unit tests' builders (safetensors,
 * GGUF v2/v3, .npy 1.0-3.0, torch.save zips from tests/unit/torch_gen.h and
 * their data.pkl), the sidecars lcp_store_pack_at writes for them, codec
 * params blocks with their first chunk (4-bit, 8-bit, low-rank, lossless),
 * and QLOR blocks. Deterministic: the same build writes the same bytes.
 *
 * Usage: make_seeds DIR
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../unit/torch_gen.h"
#include "common/alloc.h"
#include "common/buf.h"
#include "lcpfs/codec.h"
#include "lcpfs/config.h"
#include "lcpfs/qlor.h"
#include "lcpfs/store.h"

static const char *out_dir;

static void die(const char *what)
{
	fprintf(stderr, "make_seeds: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void put(const char *target, const char *name, const void *data, size_t len)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s", out_dir, target);
	if (mkdir(path, 0755) != 0 && errno != EEXIST)
		die(path);
	snprintf(path, sizeof path, "%s/%s/seed-%s", out_dir, target, name);
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0)
		die(path);
}

static void must(lcp_err e, const char *what)
{
	if (e != LCP_OK) {
		fprintf(stderr, "make_seeds: %s: %s\n", what, lcp_strerror(e));
		exit(1);
	}
}

static void add(struct lcp_buf *b, const void *p, size_t n)
{
	must(lcp_buf_append(b, p, n), "append");
}

static void add_str(struct lcp_buf *b, const char *s)
{
	add(b, s, strlen(s));
}

static void add_fill(struct lcp_buf *b, size_t n, uint8_t seed)
{
	for (size_t i = 0; i < n; i++)
		must(lcp_buf_append_u8(b, (uint8_t)(seed + i * 7)), "append");
}

/* safetensors: u64 header length, JSON, data. */
static void st_seed(const char *name, const char *json, size_t data_len)
{
	struct lcp_buf b = LCP_BUF_INIT;
	must(lcp_buf_append_le64(&b, strlen(json)), "append");
	add_str(&b, json);
	add_fill(&b, data_len, 1);
	put("safetensors", name, b.data, b.len);
	put("detect", name, b.data, b.len);
	lcp_buf_free(&b);
}

static void g_str(struct lcp_buf *b, const char *s)
{
	must(lcp_buf_append_le64(b, strlen(s)), "append");
	add_str(b, s);
}

/* GGUF: header, key-values (alignment, a string array, nested array, bool),
 * an F32 2-D tensor, an F16 one and a Q8_0 row, aligned data. */
static void gguf_seed(const char *name, uint32_t version, uint32_t align)
{
	struct lcp_buf b = LCP_BUF_INIT;
	add(&b, "GGUF", 4);
	lcp_buf_append_le32(&b, version);
	lcp_buf_append_le64(&b, 3);
	lcp_buf_append_le64(&b, 4);
	g_str(&b, "general.alignment");
	lcp_buf_append_le32(&b, 4);
	lcp_buf_append_le32(&b, align);
	g_str(&b, "tokenizer.ggml.tokens");
	lcp_buf_append_le32(&b, 9);
	lcp_buf_append_le32(&b, 8);
	lcp_buf_append_le64(&b, 2);
	g_str(&b, "a");
	g_str(&b, "b");
	g_str(&b, "nested");
	lcp_buf_append_le32(&b, 9);
	lcp_buf_append_le32(&b, 9);
	lcp_buf_append_le64(&b, 1);
	lcp_buf_append_le32(&b, 4);
	lcp_buf_append_le64(&b, 2);
	lcp_buf_append_le32(&b, 7);
	lcp_buf_append_le32(&b, 8);
	g_str(&b, "general.flag");
	lcp_buf_append_le32(&b, 7);
	lcp_buf_append_u8(&b, 1);
	/* name, n_dims, dims, type, offset */
	g_str(&b, "w");
	lcp_buf_append_le32(&b, 2);
	lcp_buf_append_le64(&b, 4);
	lcp_buf_append_le64(&b, 2);
	lcp_buf_append_le32(&b, 0);
	lcp_buf_append_le64(&b, 0);
	g_str(&b, "h");
	lcp_buf_append_le32(&b, 2);
	lcp_buf_append_le64(&b, 4);
	lcp_buf_append_le64(&b, 2);
	lcp_buf_append_le32(&b, 1);
	lcp_buf_append_le64(&b, align);
	g_str(&b, "q");
	lcp_buf_append_le32(&b, 1);
	lcp_buf_append_le64(&b, 32);
	lcp_buf_append_le32(&b, 8);
	lcp_buf_append_le64(&b, 2 * align);
	while (b.len % align)
		lcp_buf_append_u8(&b, 0);
	add_fill(&b, 32, 3);
	add_fill(&b, align - 32 % align == align ? 0 : align - 32 % align, 0);
	add_fill(&b, 16, 5);
	add_fill(&b, align - 16 % align == align ? 0 : align - 16 % align, 0);
	add_fill(&b, 34, 9);
	put("gguf", name, b.data, b.len);
	put("detect", name, b.data, b.len);
	lcp_buf_free(&b);
}

/* .npy: preamble, dict padded to 64, data. */
static void npy_seed(const char *name, int major, const char *dict, size_t data_len)
{
	struct lcp_buf b = LCP_BUF_INIT;
	size_t pre = major == 1 ? 10 : 12, hl = strlen(dict) + 1;
	while ((pre + hl) % 64)
		hl++;
	add(&b, "\x93NUMPY", 6);
	lcp_buf_append_u8(&b, (uint8_t)major);
	lcp_buf_append_u8(&b, 0);
	if (major == 1)
		lcp_buf_append_le16(&b, (uint16_t)hl);
	else
		lcp_buf_append_le32(&b, (uint32_t)hl);
	add_str(&b, dict);
	for (size_t i = strlen(dict) + 1; i < hl; i++)
		lcp_buf_append_u8(&b, ' ');
	lcp_buf_append_u8(&b, '\n');
	add_fill(&b, data_len, 2);
	put("npy", name, b.data, b.len);
	put("detect", name, b.data, b.len);
	lcp_buf_free(&b);
}

static void torch_seeds(void)
{
	for (uint32_t n = 1; n <= 3; n += 2) {
		char name[32];
		struct lcp_buf b = LCP_BUF_INIT;
		must(torch_gen_zip(&b, n, true), "torch_gen_zip");
		snprintf(name, sizeof name, "torch-%u.pt", n);
		put("torchzip", name, b.data, b.len);
		put("detect", name, b.data, b.len);
		lcp_buf_free(&b);
		must(torch_gen_pickle(&b, n), "torch_gen_pickle");
		snprintf(name, sizeof name, "torch-%u.pkl", n);
		put("pickle", name, b.data, b.len);
		lcp_buf_free(&b);
	}
	/* Protocol 4 features torch files may carry: FRAME, SHORT_BINUNICODE,
	 * STACK_GLOBAL, MEMOIZE. */
	static const char p4[] = "\x80\x04\x95\x20\x00\x00\x00\x00\x00\x00\x00}\x94(\x8c\x01k\x94\x8c\x0b"
				 "collections\x94\x8c\x0bOrderedDict\x94\x93\x94)R\x94u.";
	put("pickle", "p4.pkl", p4, sizeof p4 - 1);
}

/* Packs some of the format seeds in a scratch directory with a tiny
 * min_size, and keeps the sidecars lcp_store_pack_at writes. */
static void sidecar_seeds(void)
{
	char scratch[] = "/tmp/lcpfs-seeds.XXXXXX";
	if (!mkdtemp(scratch))
		die("mkdtemp");
	int dfd = open(scratch, O_RDONLY | O_DIRECTORY);
	if (dfd < 0)
		die(scratch);
	struct lcp_config cfg = lcp_config_default();
	cfg.min_size = 1;
	char src[600];
	static const char *const files[] = {"safetensors/seed-st-basic", "safetensors/seed-st-dtypes",
					    "gguf/seed-v3-a32.gguf", "npy/seed-v2-f-f2.npy",
					    "npy/seed-v1-c-f4.npy", "torchzip/seed-torch-3.pt"};
	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
		snprintf(src, sizeof src, "%s/%s", out_dir, files[i]);
		FILE *in = fopen(src, "rb");
		if (!in)
			die(src);
		struct lcp_buf b = LCP_BUF_INIT;
		uint8_t chunk[4096];
		size_t k;
		while ((k = fread(chunk, 1, sizeof chunk, in)) > 0)
			add(&b, chunk, k);
		fclose(in);
		int fd = openat(dfd, "f", O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd < 0 || write(fd, b.data, b.len) != (ssize_t)b.len || close(fd) != 0)
			die("scratch file");
		lcp_buf_free(&b);
		struct lcp_pack_report rep;
		memset(&rep, 0, sizeof rep);
		must(lcp_store_pack_at(dfd, "f", -1, &cfg, NULL, NULL, &rep), files[i]);
		int sfd = openat(dfd, ".f.lcpfs", O_RDONLY);
		if (sfd < 0)
			die(files[i]);
		while ((k = (size_t)read(sfd, chunk, sizeof chunk)) > 0 && k != (size_t)-1)
			add(&b, chunk, k);
		close(sfd);
		const char *base = strrchr(files[i], '/') + 1 + strlen("seed-");
		put("sidecar", base, b.data, b.len);
		lcp_buf_free(&b);
		unlinkat(dfd, "f", 0);
		unlinkat(dfd, ".f.lcpfs", 0);
	}
	close(dfd);
	rmdir(scratch);
}

/* Encodes a rows x cols tensor of the given dtype and writes the codec seed
 * (u32 params_len, params, chunk pick 0, chunk 0) and its QLOR block. */
static void codec_seed(const char *name, enum lcp_dtype dt, uint64_t rows, uint64_t cols, int bits, int mode)
{
	size_t n = (size_t)(rows * cols), w = lcp_dtype_bytes(dt);
	uint8_t *x = calloc(n, w);
	if (!x)
		die("calloc");
	uint32_t s = 12345;
	for (size_t i = 0; i < n; i++) {
		s = s * 1103515245u + 12345u;
		float v = (float)((int)(s >> 16 & 0xffff) - 32768) / 32768.0f;
		if (mode == 1) /* low rank plus noise: gives the encoder a rank to keep */
			v = (float)((i / cols) % 7) * (float)((i % cols) % 5) * 0.1f + v * 0.01f;
		if (mode == 2 && i == 3) /* NaN: stored lossless */
			v = __builtin_nanf("");
		if (dt == LCP_DTYPE_F32) {
			memcpy(x + 4 * i, &v, 4);
		} else {
			uint32_t u;
			memcpy(&u, &v, 4);
			uint16_t h = (uint16_t)(u >> 16); /* BF16 by truncation */
			memcpy(x + 2 * i, &h, 2);
		}
	}
	struct lcp_tensor_view t = {dt, 2, {rows, cols}, x, n * w};
	struct lcp_config cfg = lcp_config_default();
	cfg.bits = (uint8_t)bits;
	struct lcp_codec_ctx *ctx;
	must(lcp_codec_ctx_create(&ctx), "codec ctx");
	struct lcp_encoded enc;
	must(lcp_codec_encode(ctx, &t, &cfg, &enc), name);
	struct lcp_buf b = LCP_BUF_INIT;
	lcp_buf_append_le32(&b, (uint32_t)enc.params_len);
	add(&b, enc.params, enc.params_len);
	lcp_buf_append_u8(&b, 0);
	add(&b, enc.data + enc.chunks[0].data_off, (size_t)enc.chunks[0].data_len);
	put("codec", name, b.data, b.len);
	lcp_buf_free(&b);
	uint8_t *q;
	size_t qlen;
	must(lcp_qlor_serialize(&enc.qlor, &q, &qlen), "qlor");
	put("qlor", name, q, qlen);
	lcp_free(q);
	lcp_encoded_free(&enc);
	lcp_codec_ctx_free(ctx);
	free(x);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: make_seeds DIR\n");
		return 2;
	}
	out_dir = argv[1];
	if (mkdir(out_dir, 0755) != 0 && errno != EEXIST)
		die(out_dir);
	st_seed("st-basic",
		"{\"__metadata__\":{\"format\":\"pt\"},"
		"\"w\":{\"dtype\":\"BF16\",\"shape\":[2,4],\"data_offsets\":[0,16]},"
		"\"n\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[16,24]}}",
		24);
	st_seed("st-dtypes",
		"{\"a\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[0,8]},"
		"\"b\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[8,16]},"
		"\"c\":{\"dtype\":\"BOOL\",\"shape\":[4],\"data_offsets\":[16,20]},"
		"\"d\":{\"dtype\":\"F64\",\"shape\":[1,1,1,2],\"data_offsets\":[20,36]},"
		"\"rope.freqs\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[36,52]},"
		"\"z\":{\"dtype\":\"F32\",\"shape\":[0,4],\"data_offsets\":[52,52]}}  ",
		52);
	st_seed("st-empty", "{}", 0);
	gguf_seed("v3-a32.gguf", 3, 32);
	gguf_seed("v2-a64.gguf", 2, 64);
	npy_seed("v1-c-f4.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }", 48);
	npy_seed("v2-f-f2.npy", 2, "{'descr': '<f2', 'fortran_order': True, 'shape': (2, 3, 4), }", 48);
	npy_seed("v3-c-f8.npy", 3, "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2), }", 32);
	npy_seed("v1-m8.npy", 1, "{'descr': '<M8[ns]', 'fortran_order': False, 'shape': (2,), }", 16);
	npy_seed("v1-u2.npy", 1, "{\"descr\": \"<U2\", \"fortran_order\": False, \"shape\": (3L,)}", 24);
	torch_seeds();
	static const uint8_t ggjt[] = {'t', 'j', 'g', 'g', 3, 0, 0, 0, 4, 0, 0, 0, 'a', 'b', 'c', 'd', 'e', 'f',
				       'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', 'p'};
	put("detect", "ggjt.bin", ggjt, sizeof ggjt);
	sidecar_seeds();
	codec_seed("q4-f32", LCP_DTYPE_F32, 16, 64, 4, 0);
	codec_seed("q4-bf16-16lanes", LCP_DTYPE_BF16, 64, 512, 4, 0); /* SIMD alias steps */
	codec_seed("q8-bf16", LCP_DTYPE_BF16, 16, 64, 8, 0);
	codec_seed("lowrank-f32", LCP_DTYPE_F32, 64, 64, 4, 1);
	codec_seed("lossless-f32", LCP_DTYPE_F32, 8, 32, 4, 2);
	return 0;
}
