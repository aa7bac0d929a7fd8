/* SPDX-License-Identifier: Apache-2.0 */
/*
 * GGUF v2 and v3 (ggml's docs/gguf.md): "GGUF", u32 version, u64 tensor
 * count, u64 key-value count, the key-values, the tensor infos (name, n_dims,
 * dims fastest-varying first, ggml type, offset from the aligned data start),
 * padding to general.alignment (default 32), the tensor data. Version 1 used
 * 32-bit counts and is refused. Every length is checked against the file
 * size before anything is skipped or allocated, so a header that lies costs
 * neither a crash nor memory. As in ggml, duplicate keys or tensor names,
 * misaligned tensor offsets and rows that are not whole blocks are refused;
 * tensors may be listed in any order but must not overlap.
 *
 * Regions: the header up to the data start EXACT; F32, F16 and BF16 tensors
 * by the shared TENSOR/EXACT rule with dims reversed into storage order;
 * quantized and integer tensors EXACT ("quantized", "dtype not compressed");
 * padding between tensors and bytes after the last EXACT.
 */
#include "format/fmt.h"

#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/le.h"

#define GGUF_DEFAULT_ALIGNMENT 32
/* ggml refuses a tensor name of GGML_MAX_NAME (64) bytes or more: the name
 * and its NUL must fit its 64-byte field. */
#define GGUF_MAX_NAME 64
/* The spec: a key is ASCII and at most 65535 bytes. */
#define GGUF_MAX_KEY 65535
/* ggml's GGML_MAX_DIMS; the spec: "currently at most 4". */
#define GGUF_MAX_DIMS 4
/* Nested arrays deeper than this are not metadata but an attack on the stack. */
#define GGUF_MAX_DEPTH 8
/* Each tensor info and key costs us a record and a copy of its name; real
 * files have thousands of tensors and tens of keys. */
#define GGUF_MAX_TENSORS (1u << 20)
#define GGUF_MAX_KVS (1u << 16)
/* Smallest encodings: a KV is key length (8) + type (4) + a 1-byte value;
 * a tensor info is name length (8) + n_dims (4) + type (4) + offset (8). */
#define GGUF_MIN_KV_BYTES 13
#define GGUF_MIN_TINFO_BYTES 24

enum {
	GGUF_U8 = 0, GGUF_I8 = 1, GGUF_U16 = 2, GGUF_I16 = 3, GGUF_U32 = 4, GGUF_I32 = 5,
	GGUF_F32 = 6, GGUF_BOOL = 7, GGUF_STRING = 8, GGUF_ARRAY = 9, GGUF_U64 = 10,
	GGUF_I64 = 11, GGUF_F64 = 12,
};

/* ggml tensor types: elements per block and bytes per block (ggml-common.h). */
struct ggml_type_info {
	const char *name;
	uint32_t blck;
	uint32_t bytes;
};

static const struct ggml_type_info ggml_types[] = {
	[0] = {"F32", 1, 4},        [1] = {"F16", 1, 2},       [2] = {"Q4_0", 32, 18},
	[3] = {"Q4_1", 32, 20},     [6] = {"Q5_0", 32, 22},    [7] = {"Q5_1", 32, 24},
	[8] = {"Q8_0", 32, 34},     [9] = {"Q8_1", 32, 36},    [10] = {"Q2_K", 256, 84},
	[11] = {"Q3_K", 256, 110},  [12] = {"Q4_K", 256, 144}, [13] = {"Q5_K", 256, 176},
	[14] = {"Q6_K", 256, 210},  [15] = {"Q8_K", 256, 292}, [16] = {"IQ2_XXS", 256, 66},
	[17] = {"IQ2_XS", 256, 74}, [18] = {"IQ3_XXS", 256, 98}, [19] = {"IQ1_S", 256, 50},
	[20] = {"IQ4_NL", 32, 18},  [21] = {"IQ3_S", 256, 110}, [22] = {"IQ2_S", 256, 82},
	[23] = {"IQ4_XS", 256, 136}, [24] = {"I8", 1, 1},      [25] = {"I16", 1, 2},
	[26] = {"I32", 1, 4},       [27] = {"I64", 1, 8},      [28] = {"F64", 1, 8},
	[29] = {"IQ1_M", 256, 56},  [30] = {"BF16", 1, 2},     [34] = {"TQ1_0", 256, 54},
	[35] = {"TQ2_0", 256, 66},  [39] = {"MXFP4", 32, 17},
};
#define GGML_NTYPES (sizeof ggml_types / sizeof ggml_types[0])

struct gguf_tensor {
	char *name;
	uint32_t ndims;
	uint64_t dims[LCP_MAX_DIMS]; /* as stored: fastest-varying first */
	uint32_t type;
	uint64_t off;                /* relative to the data start */
	uint64_t len;
};

static int tensor_cmp(const void *a, const void *b)
{
	const struct gguf_tensor *x = a, *y = b;
	if (x->off != y->off)
		return x->off < y->off ? -1 : 1;
	return x->len < y->len ? -1 : x->len > y->len;
}

static int name_cmp(const void *a, const void *b)
{
	const struct gguf_tensor *x = *(struct gguf_tensor *const *)a;
	const struct gguf_tensor *y = *(struct gguf_tensor *const *)b;
	return strcmp(x->name, y->name);
}

/* Turns a short stream into a precise validation failure. */
static lcp_err short_read(struct fmt_ctx *c, lcp_err e, const char *what, uint64_t at)
{
	if (e == LCP_ERR_TRUNCATED)
		return fmt_invalid(c, "gguf: %s at offset %llu runs past the end of the file", what,
				   (unsigned long long)at);
	return e;
}

static lcp_err get_u32(struct fmt_stream *s, uint32_t *v, const char *what)
{
	uint8_t b[4];
	uint64_t at = s->pos;
	lcp_err e = fmt_stream_get(s, b, 4);
	if (e)
		return short_read(s->c, e, what, at);
	*v = lcp_load_le32(b);
	return LCP_OK;
}

static lcp_err get_u64(struct fmt_stream *s, uint64_t *v, const char *what)
{
	uint8_t b[8];
	uint64_t at = s->pos;
	lcp_err e = fmt_stream_get(s, b, 8);
	if (e)
		return short_read(s->c, e, what, at);
	*v = lcp_load_le64(b);
	return LCP_OK;
}

/* Reads a gguf_string: into dst (NUL-terminated) when it fits dst_cap - 1,
 * else fails; with dst NULL just skips it. */
static lcp_err get_string(struct fmt_stream *s, char *dst, size_t dst_cap, const char *what)
{
	uint64_t n;
	lcp_err e = get_u64(s, &n, what);
	if (e)
		return e;
	uint64_t at = s->pos;
	if (!dst)
		return short_read(s->c, fmt_stream_skip(s, n), what, at);
	if (n >= dst_cap)
		return fmt_invalid(s->c, "gguf: %s at offset %llu is %llu bytes long", what,
				   (unsigned long long)at, (unsigned long long)n);
	e = fmt_stream_get(s, dst, (size_t)n);
	if (e)
		return short_read(s->c, e, what, at);
	dst[n] = '\0';
	if (memchr(dst, '\0', (size_t)n))
		return fmt_invalid(s->c, "gguf: %s at offset %llu holds a NUL byte", what,
				   (unsigned long long)at);
	return LCP_OK;
}

/* A key: at most GGUF_MAX_KEY bytes of ASCII (the spec), into a buffer of
 * GGUF_MAX_KEY + 1. */
static lcp_err get_key(struct fmt_stream *s, char *dst)
{
	uint64_t at = s->pos + 8;
	lcp_err e = get_string(s, dst, GGUF_MAX_KEY + 1, "key");
	if (e)
		return e;
	for (const char *p = dst; *p; p++)
		if ((unsigned char)*p > 0x7f)
			return fmt_invalid(s->c, "gguf: key at offset %llu is not ASCII", (unsigned long long)at);
	return LCP_OK;
}

static int scalar_size(uint32_t type)
{
	switch (type) {
	case GGUF_U8: case GGUF_I8: case GGUF_BOOL: return 1;
	case GGUF_U16: case GGUF_I16: return 2;
	case GGUF_U32: case GGUF_I32: case GGUF_F32: return 4;
	case GGUF_U64: case GGUF_I64: case GGUF_F64: return 8;
	default: return 0;
	}
}

/* n bool values: the spec allows only 0 and 1 ("anything else is invalid"). */
static lcp_err get_bools(struct fmt_stream *s, uint64_t n)
{
	uint8_t b[256];
	while (n) {
		size_t k = n < sizeof b ? (size_t)n : sizeof b;
		uint64_t at = s->pos;
		lcp_err e = fmt_stream_get(s, b, k);
		if (e)
			return short_read(s->c, e, "bool value", at);
		for (size_t i = 0; i < k; i++)
			if (b[i] > 1)
				return fmt_invalid(s->c, "gguf: bool value %u at offset %llu", b[i],
						   (unsigned long long)(at + i));
		n -= k;
	}
	return LCP_OK;
}

static lcp_err skip_value(struct fmt_stream *s, uint32_t type, unsigned depth)
{
	int sz = scalar_size(type);
	uint64_t at = s->pos;
	if (type == GGUF_BOOL)
		return get_bools(s, 1);
	if (sz)
		return short_read(s->c, fmt_stream_skip(s, (uint64_t)sz), "value", at);
	if (type == GGUF_STRING)
		return get_string(s, NULL, 0, "string value");
	if (type != GGUF_ARRAY)
		return fmt_invalid(s->c, "gguf: unknown value type %u at offset %llu", type,
				   (unsigned long long)at);
	if (depth >= GGUF_MAX_DEPTH)
		return fmt_invalid(s->c, "gguf: arrays nested deeper than %d at offset %llu",
				   GGUF_MAX_DEPTH, (unsigned long long)at);
	uint32_t etype;
	uint64_t count;
	lcp_err e = get_u32(s, &etype, "array type");
	if (!e)
		e = get_u64(s, &count, "array length");
	if (e)
		return e;
	uint64_t left = s->c->size - s->pos;
	sz = scalar_size(etype);
	if (sz) {
		if (count > left / (uint64_t)sz)
			return fmt_invalid(s->c, "gguf: array of %llu elements at offset %llu runs past the end of the file",
					   (unsigned long long)count, (unsigned long long)at);
		if (etype == GGUF_BOOL)
			return get_bools(s, count);
		return fmt_stream_skip(s, count * (uint64_t)sz);
	}
	if (etype != GGUF_STRING && etype != GGUF_ARRAY)
		return fmt_invalid(s->c, "gguf: unknown array element type %u at offset %llu", etype,
				   (unsigned long long)at);
	/* Each string or array element takes at least 8 (resp. 12) bytes. */
	if (count > left / 8)
		return fmt_invalid(s->c, "gguf: array of %llu elements at offset %llu runs past the end of the file",
				   (unsigned long long)count, (unsigned long long)at);
	for (uint64_t i = 0; i < count; i++) {
		e = skip_value(s, etype, depth + 1);
		if (e)
			return e;
	}
	return LCP_OK;
}

static int str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Keys seen so far, to refuse duplicates as ggml does (a key meaning two
 * things makes the file ambiguous). Grown as keys are read. */
struct keyset {
	char **k;
	size_t n, cap;
};

static lcp_err keyset_add(struct keyset *ks, const char *key)
{
	if (ks->n == ks->cap) {
		size_t nc = ks->cap ? ks->cap * 2 : 32;
		char **nk = lcp_realloc(ks->k, nc * sizeof *nk);
		if (!nk)
			return LCP_ERR_NOMEM;
		ks->k = nk;
		ks->cap = nc;
	}
	ks->k[ks->n] = lcp_strdup(key);
	if (!ks->k[ks->n])
		return LCP_ERR_NOMEM;
	ks->n++;
	return LCP_OK;
}

static lcp_err parse_kvs(struct fmt_stream *s, uint64_t kv_count, uint64_t *alignment)
{
	char *key = lcp_malloc(GGUF_MAX_KEY + 1);
	if (!key)
		return LCP_ERR_NOMEM;
	struct keyset ks = {NULL, 0, 0};
	lcp_err e = LCP_OK;
	for (uint64_t i = 0; i < kv_count && !e; i++) {
		uint32_t type;
		e = get_key(s, key);
		if (!e)
			e = get_u32(s, &type, "value type");
		if (!e)
			e = keyset_add(&ks, key);
		if (e)
			break;
		if (strcmp(key, "general.alignment") == 0) {
			uint32_t a;
			if (type != GGUF_U32) {
				e = fmt_invalid(s->c, "gguf: general.alignment has type %u, not u32", type);
				break;
			}
			e = get_u32(s, &a, "general.alignment");
			if (e)
				break;
			/* ggml pads with a mask, so only powers of two work. */
			if (a == 0 || (a & (a - 1)) != 0) {
				e = fmt_invalid(s->c, "gguf: general.alignment %u is not a power of two", a);
				break;
			}
			*alignment = a;
			continue;
		}
		e = skip_value(s, type, 0);
	}
	if (!e && ks.n > 1) {
		qsort(ks.k, ks.n, sizeof *ks.k, str_cmp);
		for (size_t i = 1; i < ks.n && !e; i++)
			if (strcmp(ks.k[i - 1], ks.k[i]) == 0)
				e = fmt_invalid(s->c, "gguf: duplicate key '%.60s'", ks.k[i]);
	}
	for (size_t i = 0; i < ks.n; i++)
		lcp_free(ks.k[i]);
	lcp_free(ks.k);
	lcp_free(key);
	return e;
}

static lcp_err parse_tinfo(struct fmt_stream *s, struct gguf_tensor *t, char *name)
{
	uint64_t at = s->pos;
	lcp_err e = get_string(s, name, GGUF_MAX_NAME, "tensor name");
	if (!e)
		e = get_u32(s, &t->ndims, "tensor n_dims");
	if (e)
		return e;
	/* The spec: strings are UTF-8. The name becomes the region's. */
	if (!fmt_utf8_ok((const uint8_t *)name, strlen(name)))
		return fmt_invalid(s->c, "gguf: tensor name at offset %llu is not UTF-8", (unsigned long long)at);
	if (t->ndims > GGUF_MAX_DIMS)
		return fmt_invalid(s->c, "gguf: tensor '%.60s' has %u dims (max %d)", name, t->ndims,
				   GGUF_MAX_DIMS);
	uint64_t numel = 1;
	for (uint32_t d = 0; d < t->ndims; d++) {
		e = get_u64(s, &t->dims[d], "tensor dim");
		if (e)
			return e;
		if (!fmt_mul_ok(&numel, t->dims[d]))
			return fmt_invalid(s->c, "gguf: tensor '%.60s' element count overflows", name);
	}
	e = get_u32(s, &t->type, "tensor type");
	if (!e)
		e = get_u64(s, &t->off, "tensor offset");
	if (e)
		return e;
	if (t->type >= GGML_NTYPES || !ggml_types[t->type].name)
		return fmt_invalid(s->c, "gguf: tensor '%.60s' has unknown ggml type %u", name, t->type);
	const struct ggml_type_info *ti = &ggml_types[t->type];
	if (t->ndims > 0 && t->dims[0] % ti->blck != 0)
		return fmt_invalid(s->c, "gguf: tensor '%.60s' row of %llu is not a multiple of the %s block %u",
				   name, (unsigned long long)t->dims[0], ti->name, ti->blck);
	if (t->ndims == 0 && ti->blck != 1)
		return fmt_invalid(s->c, "gguf: scalar tensor '%.60s' of block type %s", name, ti->name);
	t->len = numel / ti->blck;
	if (!fmt_mul_ok(&t->len, ti->bytes))
		return fmt_invalid(s->c, "gguf: tensor '%.60s' byte size overflows", name);
	t->name = lcp_strdup(name);
	return t->name ? LCP_OK : LCP_ERR_NOMEM;
}

static lcp_err check_names_unique(struct fmt_ctx *c, struct gguf_tensor *ts, uint64_t n)
{
	if (n < 2)
		return LCP_OK;
	struct gguf_tensor **p = lcp_calloc((size_t)n, sizeof *p);
	if (!p)
		return LCP_ERR_NOMEM;
	for (uint64_t i = 0; i < n; i++)
		p[i] = &ts[i];
	qsort(p, (size_t)n, sizeof *p, name_cmp);
	lcp_err e = LCP_OK;
	for (uint64_t i = 1; i < n && !e; i++)
		if (strcmp(p[i - 1]->name, p[i]->name) == 0)
			e = fmt_invalid(c, "gguf: duplicate tensor name '%.60s'", p[i]->name);
	lcp_free(p);
	return e;
}

static lcp_err add_regions(struct fmt_ctx *c, struct gguf_tensor *ts, uint64_t n, uint64_t data_start,
			   uint64_t alignment)
{
	for (uint64_t i = 0; i < n; i++) {
		if (ts[i].off % alignment != 0)
			return fmt_invalid(c, "gguf: tensor '%.60s' offset %llu is not aligned to %llu",
					   ts[i].name, (unsigned long long)ts[i].off,
					   (unsigned long long)alignment);
	}
	if (n)
		qsort(ts, (size_t)n, sizeof *ts, tensor_cmp);
	uint64_t data_len = c->size - data_start;
	uint64_t at = 0;
	for (uint64_t i = 0; i < n; i++) {
		if (ts[i].off < at)
			return fmt_invalid(c, "gguf: tensor '%.50s' at %llu overlaps '%.50s'", ts[i].name,
					   (unsigned long long)ts[i].off, ts[i - 1].name);
		if (ts[i].off > data_len || ts[i].len > data_len - ts[i].off)
			return fmt_invalid(c, "gguf: tensor '%.60s' [%llu, +%llu) runs past the end of the file",
					   ts[i].name, (unsigned long long)ts[i].off,
					   (unsigned long long)ts[i].len);
		at = ts[i].off + ts[i].len;
	}
	lcp_err e = data_start ? fmt_add(c, LCP_REGION_EXACT, 0, data_start, NULL, NULL) : LCP_OK;
	for (uint64_t i = 0; i < n && !e; i++) {
		const struct ggml_type_info *ti = &ggml_types[ts[i].type];
		uint64_t dims[LCP_MAX_DIMS];
		for (uint32_t d = 0; d < ts[i].ndims; d++)
			dims[d] = ts[i].dims[ts[i].ndims - 1 - d];
		bool is_float = ts[i].type == 0 || ts[i].type == 1 || ts[i].type == 30;
		struct fmt_tensor ft = {
			.name = ts[i].name,
			.dtype_name = ti->name,
			.is_float = is_float,
			.dtype = ts[i].type == 0 ? LCP_DTYPE_F32 : ts[i].type == 1 ? LCP_DTYPE_F16 : LCP_DTYPE_BF16,
			.not_float_reason = ti->blck > 1 ? "quantized" : "dtype not compressed",
			.ndims = ts[i].ndims,
			.dims = dims,
			.off = data_start + ts[i].off,
			.len = ts[i].len,
		};
		e = fmt_add_tensor(c, &ft, NULL);
	}
	return e;
}

lcp_err fmt_parse_gguf(struct fmt_ctx *c)
{
	struct fmt_stream s;
	lcp_err e = fmt_stream_init(&s, c, 4);
	if (e)
		return e;
	struct gguf_tensor *ts = NULL;
	uint64_t nts = 0;
	char *name = NULL;
	uint32_t version;
	uint64_t tensor_count, kv_count, alignment = GGUF_DEFAULT_ALIGNMENT;

	e = get_u32(&s, &version, "version");
	if (e)
		goto out;
	if (version != 2 && version != 3) {
		e = fmt_invalid(c, version == 1 ? "gguf: version 1 is not supported" : "gguf: unknown version %u",
				version);
		goto out;
	}
	e = get_u64(&s, &tensor_count, "tensor count");
	if (!e)
		e = get_u64(&s, &kv_count, "key-value count");
	if (e)
		goto out;
	if (tensor_count > GGUF_MAX_TENSORS || kv_count > GGUF_MAX_KVS) {
		e = fmt_invalid(c, "gguf: %llu tensors and %llu key-values over the limits of %u and %u",
				(unsigned long long)tensor_count, (unsigned long long)kv_count, GGUF_MAX_TENSORS,
				GGUF_MAX_KVS);
		goto out;
	}
	uint64_t left = c->size - s.pos;
	if (kv_count > left / GGUF_MIN_KV_BYTES || tensor_count > left / GGUF_MIN_TINFO_BYTES ||
	    kv_count * GGUF_MIN_KV_BYTES + tensor_count * GGUF_MIN_TINFO_BYTES > left) {
		e = fmt_invalid(c, "gguf: %llu tensors and %llu key-values cannot fit in %llu bytes",
				(unsigned long long)tensor_count, (unsigned long long)kv_count,
				(unsigned long long)c->size);
		goto out;
	}
	e = parse_kvs(&s, kv_count, &alignment);
	if (e)
		goto out;
	name = lcp_malloc(GGUF_MAX_NAME);
	if (!name) {
		e = LCP_ERR_NOMEM;
		goto out;
	}
	/* Grown as infos are read, so memory follows the bytes really present
	 * rather than the count the header claims. */
	uint64_t cap = 0;
	for (nts = 0; nts < tensor_count;) {
		if (nts == cap) {
			uint64_t ncap = cap ? cap * 2 : 16;
			struct gguf_tensor *n = lcp_realloc(ts, (size_t)ncap * sizeof *n);
			if (!n) {
				e = LCP_ERR_NOMEM;
				goto out;
			}
			ts = n;
			cap = ncap;
		}
		memset(&ts[nts], 0, sizeof ts[nts]);
		e = parse_tinfo(&s, &ts[nts], name);
		if (ts[nts].name)
			nts++;
		if (e)
			goto out;
	}
	e = check_names_unique(c, ts, nts);
	if (e)
		goto out;
	uint64_t data_start = s.pos + (alignment - s.pos % alignment) % alignment;
	/* With no tensors there is no data section, and writers omit the padding. */
	if (nts == 0 && data_start > c->size)
		data_start = c->size;
	if (data_start > c->size) {
		e = fmt_invalid(c, "gguf: aligned data start %llu is past the end of the file",
				(unsigned long long)data_start);
		goto out;
	}
	e = add_regions(c, ts, nts, data_start, alignment);
out:
	for (uint64_t i = 0; i < nts; i++)
		lcp_free(ts[i].name);
	lcp_free(ts);
	lcp_free(name);
	fmt_stream_free(&s);
	return e;
}
