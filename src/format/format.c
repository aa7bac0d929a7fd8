/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Format dispatch and region-map assembly: picks a parser from the leading
 * bytes, lets it validate the file and add the regions it understands, then
 * sorts them and fills every byte in between with EXACT regions, so that the
 * map always covers [0, file_size) exactly once. A file that fails validation
 * ends up as one EXACT region with the reason.
 */
#include "format/fmt.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/io.h"
#include "common/le.h"

const char *lcp_format_extension(enum lcp_format f)
{
	switch (f) {
	case LCP_FORMAT_SAFETENSORS: return ".safetensors";
	case LCP_FORMAT_GGUF: return ".gguf";
	case LCP_FORMAT_GGML: return ".ggml";
	case LCP_FORMAT_PYTORCH: return ".pt";
	case LCP_FORMAT_NUMPY: return ".npy";
	case LCP_FORMAT_RAW: return ".bin";
	case LCP_FORMAT_UNKNOWN: return "";
	}
	return "";
}

const char *lcp_format_name(enum lcp_format f)
{
	switch (f) {
	case LCP_FORMAT_SAFETENSORS: return "safetensors";
	case LCP_FORMAT_GGUF: return "gguf";
	case LCP_FORMAT_GGML: return "ggml";
	case LCP_FORMAT_PYTORCH: return "pytorch";
	case LCP_FORMAT_NUMPY: return "numpy";
	case LCP_FORMAT_RAW: return "raw";
	case LCP_FORMAT_UNKNOWN: return "unknown";
	}
	return "unknown";
}

static lcp_err mem_read(void *ctx, void *buf, size_t len, uint64_t off)
{
	const struct lcp_mem_source *src = ctx;
	if (off > src->len || len > src->len - off)
		return LCP_ERR_RANGE;
	if (len)
		memcpy(buf, src->data + off, len);
	return LCP_OK;
}

void lcp_reader_from_memory(struct lcp_reader *r, struct lcp_mem_source *src)
{
	r->size = src->len;
	r->read = mem_read;
	r->ctx = src;
}

static lcp_err fd_read(void *ctx, void *buf, size_t len, uint64_t off)
{
	return lcp_pread_all(*(const int *)ctx, buf, len, off);
}

lcp_err lcp_reader_from_fd(struct lcp_reader *r, int *fd)
{
	struct stat st;
	if (fstat(*fd, &st) != 0)
		return LCP_ERR_IO;
	if (!S_ISREG(st.st_mode) || st.st_size < 0)
		return LCP_ERR_INVAL;
	r->size = (uint64_t)st.st_size;
	r->read = fd_read;
	r->ctx = fd;
	return LCP_OK;
}

lcp_err fmt_invalid(struct fmt_ctx *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->reason, sizeof c->reason, fmt, ap);
	va_end(ap);
	return LCP_ERR_FORMAT;
}

static void drop_regions(struct fmt_ctx *c)
{
	for (size_t i = 0; i < c->nregions; i++)
		lcp_free(c->regions[i].name);
	lcp_free(c->regions);
	c->regions = NULL;
	c->nregions = 0;
	c->cap = 0;
}

void fmt_whole_exact(struct fmt_ctx *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->reason, sizeof c->reason, fmt, ap);
	va_end(ap);
	drop_regions(c);
	c->whole_exact = true;
}

lcp_err fmt_read(struct fmt_ctx *c, void *buf, size_t len, uint64_t off)
{
	if (off > c->size || len > c->size - off)
		return LCP_ERR_TRUNCATED;
	if (len == 0)
		return LCP_OK;
	return c->r->read(c->r->ctx, buf, len, off);
}

bool fmt_mul_ok(uint64_t *acc, uint64_t v)
{
	if (v != 0 && *acc > UINT64_MAX / v)
		return false;
	*acc *= v;
	return true;
}

bool fmt_utf8_ok(const uint8_t *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		uint8_t c = s[i];
		size_t k;
		uint32_t cp, min;
		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			k = 1, cp = c & 0x1f, min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			k = 2, cp = c & 0x0f, min = 0x800;
		} else if ((c & 0xf8) == 0xf0) {
			k = 3, cp = c & 0x07, min = 0x10000;
		} else {
			return false;
		}
		if (n - i <= k)
			return false;
		for (size_t j = 1; j <= k; j++) {
			if ((s[i + j] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + j] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff)
			return false;
		i += k + 1;
	}
	return true;
}

uint64_t fmt_hash_seed(void)
{
	uint64_t seed;
	if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) != (ssize_t)sizeof seed) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		seed = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ull ^ (uint64_t)ts.tv_sec;
	}
	return seed;
}

/* FNV-1a over the bytes from a seeded state, then a 64-bit finalizer so the
 * low bits used as a table index depend on every bit of the state. */
uint64_t fmt_hash(const void *data, size_t len, uint64_t seed)
{
	const uint8_t *p = data;
	uint64_t h = 0xcbf29ce484222325ull ^ seed;
	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ull;
	h ^= h >> 33;
	return h;
}

lcp_err fmt_add(struct fmt_ctx *c, enum lcp_region_kind kind, uint64_t off, uint64_t len,
		const char *name, size_t *index)
{
	if (c->nregions == c->cap) {
		size_t ncap = c->cap ? c->cap * 2 : 16;
		struct lcp_region *n = lcp_realloc(c->regions, ncap * sizeof *n);
		if (!n)
			return LCP_ERR_NOMEM;
		c->regions = n;
		c->cap = ncap;
	}
	struct lcp_region *reg = &c->regions[c->nregions];
	memset(reg, 0, sizeof *reg);
	if (name) {
		reg->name = lcp_strdup(name);
		if (!reg->name)
			return LCP_ERR_NOMEM;
	}
	reg->kind = kind;
	reg->off = off;
	reg->len = len;
	if (index)
		*index = c->nregions;
	c->nregions++;
	return LCP_OK;
}

/*
 * Rotary-embedding tables (freqs_cos, rope_freqs, inv_freq...) are computed
 * constants, not learned weights, and tiny; a model is far more sensitive to
 * them than their size suggests (4-bit freqs tables alone cost stories260K
 * +15% perplexity while passing the cosine floor), so they stay exact.
 */
static bool is_positional_table(const char *name)
{
	static const char *const markers[] = {"freqs", "inv_freq", "rotary", "rope"};
	if (!name)
		return false;
	for (size_t i = 0; i < sizeof markers / sizeof markers[0]; i++)
		if (strcasestr(name, markers[i]))
			return true;
	return false;
}

lcp_err fmt_add_tensor(struct fmt_ctx *c, const struct fmt_tensor *t, size_t *index)
{
	if (index)
		*index = SIZE_MAX;
	if (t->len == 0)
		return LCP_OK;
	const char *why = NULL;
	if (!t->is_float)
		why = t->not_float_reason ? t->not_float_reason : "dtype not compressed";
	else if (t->ndims > LCP_MAX_DIMS)
		why = "too many dims";
	else if (t->ndims < 2)
		why = "1-D";
	else if (t->len < c->min_size)
		why = "under min_size";
	else if (is_positional_table(t->name))
		why = "positional table";
	size_t i;
	lcp_err e = fmt_add(c, why ? LCP_REGION_EXACT : LCP_REGION_TENSOR, t->off, t->len, t->name, &i);
	if (e)
		return e;
	struct lcp_region *reg = &c->regions[i];
	snprintf(reg->dtype_name, sizeof reg->dtype_name, "%s", t->dtype_name ? t->dtype_name : "");
	reg->exact_reason = why;
	reg->dtype = t->is_float ? t->dtype : LCP_DTYPE_F32;
	/* Shapes of EXACT tensors are filled too (inspect shows them). */
	if (t->ndims <= LCP_MAX_DIMS) {
		reg->ndims = t->ndims;
		for (uint32_t d = 0; d < t->ndims; d++)
			reg->dims[d] = t->dims[d];
	}
	if (index)
		*index = i;
	return LCP_OK;
}

lcp_err fmt_stream_init(struct fmt_stream *s, struct fmt_ctx *c, uint64_t pos)
{
	memset(s, 0, sizeof *s);
	s->c = c;
	s->pos = pos;
	s->cap = 1u << 16;
	s->buf = lcp_malloc(s->cap);
	return s->buf ? LCP_OK : LCP_ERR_NOMEM;
}

void fmt_stream_free(struct fmt_stream *s)
{
	lcp_free(s->buf);
	s->buf = NULL;
}

lcp_err fmt_stream_get(struct fmt_stream *s, void *dst, size_t n)
{
	if (n > s->cap)
		return LCP_ERR_INVAL;
	if (s->pos > s->c->size || n > s->c->size - s->pos)
		return LCP_ERR_TRUNCATED;
	if (s->pos < s->buf_off || s->pos + n > s->buf_off + s->buf_len) {
		uint64_t left = s->c->size - s->pos;
		size_t want = left < s->cap ? (size_t)left : s->cap;
		lcp_err e = fmt_read(s->c, s->buf, want, s->pos);
		if (e)
			return e;
		s->buf_off = s->pos;
		s->buf_len = want;
	}
	memcpy(dst, s->buf + (s->pos - s->buf_off), n);
	s->pos += n;
	return LCP_OK;
}

lcp_err fmt_stream_skip(struct fmt_stream *s, uint64_t n)
{
	if (s->pos > s->c->size || n > s->c->size - s->pos)
		return LCP_ERR_TRUNCATED;
	s->pos += n;
	return LCP_OK;
}

/*
 * Legacy GGML (pre-GGUF llama.cpp files): the header after the magic is
 * model-specific, so it cannot be validated field by field. We accept the
 * three little-endian magics with a version they were written with and a
 * plausible first hyper-parameter (n_vocab: nonzero, and each vocab entry
 * takes at least 4 bytes), and keep the file whole and exact: ok = true,
 * one EXACT region. Nothing in such a file is compressed.
 */
static lcp_err parse_ggml(struct fmt_ctx *c, const uint8_t *head, size_t head_len)
{
	uint32_t magic = lcp_load_le32(head);
	size_t hp = 4; /* offset of the first hyper-parameter */
	if (magic == 0x67676d66u || magic == 0x67676a74u) { /* 'ggmf', 'ggjt' */
		if (head_len < 8)
			return fmt_invalid(c, "ggml: truncated before the version");
		uint32_t v = lcp_load_le32(head + 4);
		uint32_t vmax = magic == 0x67676d66u ? 1 : 3;
		if (v < 1 || v > vmax)
			return fmt_invalid(c, "ggml: unknown version %u", v);
		hp = 8;
	}
	if (head_len < hp + 4)
		return fmt_invalid(c, "ggml: truncated before the hyper-parameters");
	uint32_t n_vocab = lcp_load_le32(head + hp);
	if (n_vocab == 0 || (uint64_t)n_vocab * 4 > c->size - hp - 4)
		return fmt_invalid(c, "ggml: implausible n_vocab %u", n_vocab);
	fmt_whole_exact(c, "ggml: legacy format kept exact");
	return LCP_OK;
}

static int region_cmp(const void *a, const void *b)
{
	const struct lcp_region *x = *(struct lcp_region *const *)a;
	const struct lcp_region *y = *(struct lcp_region *const *)b;
	if (x->off != y->off)
		return x->off < y->off ? -1 : 1;
	return 0;
}

static bool is_plain_exact(const struct lcp_region *r)
{
	return r->kind == LCP_REGION_EXACT && !r->name && !r->exact_reason && !r->dtype_name[0];
}

/*
 * Sorts the parser's regions, checks they neither overlap nor leave the file,
 * fills the gaps with plain EXACT regions (merging neighbours), and remaps
 * crc_of from insertion indexes to final indexes. Moves the result into out.
 */
static lcp_err finalize(struct fmt_ctx *c, struct lcp_region_map *out)
{
	size_t n = c->nregions;
	struct lcp_region **order = NULL;
	size_t *final_of = NULL;
	struct lcp_region *res = NULL;
	lcp_err e = LCP_OK;

	if (n) {
		order = lcp_calloc(n, sizeof *order);
		final_of = lcp_calloc(n, sizeof *final_of);
		if (!order || !final_of) {
			e = LCP_ERR_NOMEM;
			goto done;
		}
	}
	for (size_t i = 0; i < n; i++)
		order[i] = &c->regions[i];
	if (n)
		qsort(order, n, sizeof *order, region_cmp);

	uint64_t at = 0;
	for (size_t i = 0; i < n; i++) {
		if (order[i]->len == 0 || order[i]->off < at || order[i]->off > c->size ||
		    order[i]->len > c->size - order[i]->off) {
			/* Parsers check extents first; reaching this is a parser bug,
			 * still reported as a validation failure, never a bad map. */
			e = fmt_invalid(c, "%s: internal: region at %llu overlaps or leaves the file",
					lcp_format_name(c->format), (unsigned long long)order[i]->off);
			goto done;
		}
		at = order[i]->off + order[i]->len;
	}

	/* Worst case: a gap before every region and one at the end. */
	size_t cap = 2 * n + 1;
	res = lcp_calloc(cap, sizeof *res);
	if (!res) {
		e = LCP_ERR_NOMEM;
		goto done;
	}
	size_t m = 0;
	at = 0;
	for (size_t i = 0; i <= n; i++) {
		uint64_t next = i < n ? order[i]->off : c->size;
		if (next > at) {
			if (m && is_plain_exact(&res[m - 1])) {
				res[m - 1].len += next - at;
			} else {
				memset(&res[m], 0, sizeof res[m]);
				res[m].kind = LCP_REGION_EXACT;
				res[m].off = at;
				res[m].len = next - at;
				m++;
			}
		}
		if (i == n)
			break;
		struct lcp_region *r = order[i];
		final_of[r - c->regions] = SIZE_MAX;
		if (is_plain_exact(r) && m && is_plain_exact(&res[m - 1])) {
			res[m - 1].len += r->len;
		} else {
			final_of[r - c->regions] = m;
			res[m] = *r;
			m++;
		}
		at = r->off + r->len;
	}
	for (size_t i = 0; i < m; i++) {
		if (res[i].kind != LCP_REGION_CRC32)
			continue;
		size_t target = res[i].crc_of < n ? final_of[res[i].crc_of] : SIZE_MAX;
		if (target == SIZE_MAX || res[target].kind != LCP_REGION_TENSOR) {
			e = fmt_invalid(c, "%s: internal: CRC field at %llu has no tensor",
					lcp_format_name(c->format), (unsigned long long)res[i].off);
			goto done;
		}
		res[i].crc_of = (uint32_t)target;
	}
	/* Names moved into res; the parser's array only keeps the shells. */
	lcp_free(c->regions);
	c->regions = NULL;
	c->nregions = 0;
	out->regions = res;
	out->nregions = m;
	res = NULL;
done:
	lcp_free(res);
	lcp_free(order);
	lcp_free(final_of);
	return e;
}

static lcp_err whole_map(struct lcp_region_map *out, uint64_t size)
{
	out->nregions = 0;
	out->regions = NULL;
	if (size == 0)
		return LCP_OK;
	out->regions = lcp_calloc(1, sizeof *out->regions);
	if (!out->regions)
		return LCP_ERR_NOMEM;
	out->regions[0].kind = LCP_REGION_EXACT;
	out->regions[0].off = 0;
	out->regions[0].len = size;
	out->nregions = 1;
	return LCP_OK;
}

static bool is_zip_start(const uint8_t *h, size_t n)
{
	return n >= 4 && h[0] == 'P' && h[1] == 'K' &&
	       ((h[2] == 3 && h[3] == 4) || (h[2] == 5 && h[3] == 6));
}

static lcp_err dispatch(struct fmt_ctx *c)
{
	uint8_t head[16];
	size_t head_len = c->size < sizeof head ? (size_t)c->size : sizeof head;
	lcp_err e = fmt_read(c, head, head_len, 0);
	if (e)
		return e;

	if (head_len >= 6 && memcmp(head, "\x93NUMPY", 6) == 0) {
		c->format = LCP_FORMAT_NUMPY;
		return fmt_parse_npy(c);
	}
	if (head_len >= 4 && memcmp(head, "GGUF", 4) == 0) {
		c->format = LCP_FORMAT_GGUF;
		return fmt_parse_gguf(c);
	}
	if (head_len >= 4) {
		uint32_t magic = lcp_load_le32(head);
		if (magic == 0x67676d6cu || magic == 0x67676d66u || magic == 0x67676a74u) {
			c->format = LCP_FORMAT_GGML;
			return parse_ggml(c, head, head_len);
		}
	}
	if (is_zip_start(head, head_len))
		return fmt_parse_torch_zip(c);
	/* safetensors has no magic: the claim is an 8-byte length followed by
	 * the JSON object's opening brace. */
	if (head_len >= 9 && head[8] == '{') {
		c->format = LCP_FORMAT_SAFETENSORS;
		return fmt_parse_safetensors(c);
	}
	return fmt_invalid(c, "no known tensor format");
}

lcp_err lcp_format_parse(const struct lcp_reader *r, uint64_t min_size, struct lcp_region_map *out)
{
	memset(out, 0, sizeof *out);
	out->format = LCP_FORMAT_UNKNOWN;
	out->file_size = r->size;

	struct fmt_ctx c;
	memset(&c, 0, sizeof c);
	c.r = r;
	c.size = r->size;
	c.min_size = min_size;
	c.format = LCP_FORMAT_UNKNOWN;

	lcp_err e = dispatch(&c);
	if (e == LCP_OK && !c.whole_exact)
		e = finalize(&c, out);
	if (e == LCP_ERR_TRUNCATED && !c.reason[0])
		e = fmt_invalid(&c, "%s: truncated", lcp_format_name(c.format));
	if (e != LCP_OK && e != LCP_ERR_FORMAT) {
		drop_regions(&c);
		lcp_region_map_free(out);
		return e;
	}
	drop_regions(&c);
	out->format = c.format;
	out->ok = e == LCP_OK;
	memcpy(out->reason, c.reason, sizeof out->reason);
	if (e == LCP_ERR_FORMAT || c.whole_exact) {
		e = whole_map(out, c.size);
		if (e) {
			lcp_region_map_free(out);
			return e;
		}
	}
	return LCP_OK;
}

void lcp_region_map_free(struct lcp_region_map *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->nregions; i++)
		lcp_free(m->regions[i].name);
	lcp_free(m->regions);
	m->regions = NULL;
	m->nregions = 0;
}

enum lcp_format lcp_format_detect(const void *data, size_t len)
{
	struct lcp_mem_source src = {data, len};
	struct lcp_reader r;
	struct lcp_region_map m;
	lcp_reader_from_memory(&r, &src);
	if (lcp_format_parse(&r, 0, &m) != LCP_OK)
		return LCP_FORMAT_UNKNOWN;
	enum lcp_format f = m.ok ? m.format : LCP_FORMAT_UNKNOWN;
	lcp_region_map_free(&m);
	return f;
}
