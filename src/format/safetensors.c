/* SPDX-License-Identifier: Apache-2.0 */
/*
 * safetensors: u64 little-endian header length N, N bytes of JSON (an object
 * of tensor entries plus an optional "__metadata__" object of strings), then
 * the data section, which the tensors' data_offsets must tile exactly: sorted
 * by offset, no gap, no overlap, nothing past the end. JSON goes through
 * jansson with duplicate keys rejected (two entries for one name would make
 * the file mean two things), after a pre-scan that bounds its memory.
 *
 * Regions: the 8 + N header bytes EXACT; each tensor a TENSOR or an EXACT
 * region by the shared rule (fmt_add_tensor).
 */
#include "format/fmt.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/le.h"

/* The reference reader (the safetensors crate, MAX_HEADER_SIZE) refuses
 * headers over 10^8 bytes; so do we. Real models' headers are well under
 * 10 MiB. */
#define ST_MAX_HEADER_BYTES 100000000u
/* jansson costs about 40 bytes per array element and 1 KiB per tensor entry
 * (measured), so the header's size alone does not bound its memory: a
 * linear pre-scan counts the JSON tokens (keys, values, containers) first.
 * A tensor entry takes 10 plus one per dim; 2^20 allow some 100000 tensors
 * (real single files hold a few thousand) and cost at most ~100 MiB. No
 * valid header nests deeper than 3 (root, entry, shape). */
#define ST_MAX_JSON_TOKENS (1u << 20)
#define ST_MAX_JSON_DEPTH 3

struct st_dtype {
	const char *name;
	unsigned bytes;
	bool is_float;
	enum lcp_dtype dtype;
};

static const struct st_dtype st_dtypes[] = {
	{"F64", 8, true, LCP_DTYPE_F64},
	{"F32", 4, true, LCP_DTYPE_F32},
	{"F16", 2, true, LCP_DTYPE_F16},
	{"BF16", 2, true, LCP_DTYPE_BF16},
	{"I64", 8, false, LCP_DTYPE_F32},
	{"I32", 4, false, LCP_DTYPE_F32},
	{"I16", 2, false, LCP_DTYPE_F32},
	{"I8", 1, false, LCP_DTYPE_F32},
	{"U64", 8, false, LCP_DTYPE_F32},
	{"U32", 4, false, LCP_DTYPE_F32},
	{"U16", 2, false, LCP_DTYPE_F32},
	{"U8", 1, false, LCP_DTYPE_F32},
	{"BOOL", 1, false, LCP_DTYPE_F32},
	{"F8_E4M3", 1, false, LCP_DTYPE_F32},
	{"F8_E5M2", 1, false, LCP_DTYPE_F32},
	{"F8_E8M0", 1, false, LCP_DTYPE_F32},
	{"C64", 8, false, LCP_DTYPE_F32},
};

struct st_tensor {
	const char *name;  /* points into the JSON object (lives as long as it) */
	const struct st_dtype *dt;
	uint32_t ndims;
	uint64_t dims[LCP_MAX_DIMS];
	uint64_t begin, end;
};

static int tensor_cmp(const void *a, const void *b)
{
	const struct st_tensor *x = a, *y = b;
	if (x->begin != y->begin)
		return x->begin < y->begin ? -1 : 1;
	if (x->end != y->end)
		return x->end < y->end ? -1 : 1;
	return 0;
}

static bool json_u64(const json_t *v, uint64_t *out)
{
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return false;
	*out = (uint64_t)json_integer_value(v);
	return true;
}

static lcp_err parse_entry(struct fmt_ctx *c, const char *name, json_t *v, struct st_tensor *t)
{
	if (!json_is_object(v))
		return fmt_invalid(c, "safetensors: entry '%.60s' is not an object", name);
	json_t *dtype = json_object_get(v, "dtype");
	json_t *shape = json_object_get(v, "shape");
	json_t *offs = json_object_get(v, "data_offsets");
	if (!json_is_string(dtype) || !json_is_array(shape) || !json_is_array(offs))
		return fmt_invalid(c, "safetensors: tensor '%.60s' lacks dtype, shape or data_offsets", name);
	if (json_object_size(v) != 3)
		return fmt_invalid(c, "safetensors: tensor '%.60s' has unexpected keys", name);
	t->name = name;
	t->dt = NULL;
	for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++)
		if (strcmp(json_string_value(dtype), st_dtypes[i].name) == 0)
			t->dt = &st_dtypes[i];
	if (!t->dt)
		return fmt_invalid(c, "safetensors: tensor '%.60s' has unknown dtype '%.16s'", name,
				   json_string_value(dtype));
	size_t nd = json_array_size(shape);
	if (nd > UINT32_MAX)
		return fmt_invalid(c, "safetensors: tensor '%.60s' has too many dims", name);
	/* More than LCP_MAX_DIMS dims is valid safetensors: the tensor is kept
	 * exact ("too many dims") and only its first dims are recorded. */
	t->ndims = (uint32_t)nd;
	uint64_t numel = 1;
	for (size_t d = 0; d < nd; d++) {
		uint64_t dim;
		if (!json_u64(json_array_get(shape, d), &dim))
			return fmt_invalid(c, "safetensors: tensor '%.60s' shape[%zu] is not a non-negative integer",
					   name, d);
		if (d < LCP_MAX_DIMS)
			t->dims[d] = dim;
		if (!fmt_mul_ok(&numel, dim))
			return fmt_invalid(c, "safetensors: tensor '%.60s' shape overflows", name);
	}
	if (json_array_size(offs) != 2 || !json_u64(json_array_get(offs, 0), &t->begin) ||
	    !json_u64(json_array_get(offs, 1), &t->end))
		return fmt_invalid(c, "safetensors: tensor '%.60s' data_offsets is not [begin, end]", name);
	if (t->end < t->begin)
		return fmt_invalid(c, "safetensors: tensor '%.60s' data_offsets [%llu, %llu) end before begin",
				   name, (unsigned long long)t->begin, (unsigned long long)t->end);
	uint64_t bytes = numel;
	if (!fmt_mul_ok(&bytes, t->dt->bytes) || bytes != t->end - t->begin)
		return fmt_invalid(c, "safetensors: tensor '%.60s' data_offsets [%llu, %llu) do not hold its shape",
				   name, (unsigned long long)t->begin, (unsigned long long)t->end);
	return LCP_OK;
}

static lcp_err check_metadata(struct fmt_ctx *c, json_t *meta)
{
	if (!json_is_object(meta))
		return fmt_invalid(c, "safetensors: __metadata__ is not an object");
	const char *k;
	json_t *v;
	json_object_foreach(meta, k, v) {
		if (!json_is_string(v))
			return fmt_invalid(c, "safetensors: __metadata__ '%.60s' is not a string", k);
	}
	return LCP_OK;
}

static lcp_err parse_json(struct fmt_ctx *c, json_t *root, uint64_t hdr_end)
{
	if (!json_is_object(root))
		return fmt_invalid(c, "safetensors: header is not a JSON object");
	size_t n = json_object_size(root);
	struct st_tensor *ts = n ? lcp_calloc(n, sizeof *ts) : NULL;
	if (n && !ts)
		return LCP_ERR_NOMEM;
	size_t nt = 0;
	lcp_err e = LCP_OK;
	const char *k;
	json_t *v;
	json_object_foreach(root, k, v) {
		if (strcmp(k, "__metadata__") == 0)
			e = check_metadata(c, v);
		else
			e = parse_entry(c, k, v, &ts[nt++]);
		if (e)
			goto out;
	}
	if (nt)
		qsort(ts, nt, sizeof *ts, tensor_cmp);
	uint64_t data_len = c->size - hdr_end;
	uint64_t at = 0;
	for (size_t i = 0; i < nt; i++) {
		if (ts[i].begin > at) {
			e = fmt_invalid(c, "safetensors: gap [%llu, %llu) before tensor '%.60s'",
					(unsigned long long)at, (unsigned long long)ts[i].begin, ts[i].name);
			goto out;
		}
		if (ts[i].begin < at) {
			e = fmt_invalid(c, "safetensors: tensor '%.50s' data_offsets [%llu, %llu) overlap '%.50s'",
					ts[i].name, (unsigned long long)ts[i].begin, (unsigned long long)ts[i].end,
					ts[i - 1].name);
			goto out;
		}
		if (ts[i].end > data_len) {
			e = fmt_invalid(c, "safetensors: tensor '%.60s' data_offsets [%llu, %llu) past the data end %llu",
					ts[i].name, (unsigned long long)ts[i].begin, (unsigned long long)ts[i].end,
					(unsigned long long)data_len);
			goto out;
		}
		at = ts[i].end;
	}
	if (at != data_len) {
		e = fmt_invalid(c, "safetensors: %llu bytes after the last tensor",
				(unsigned long long)(data_len - at));
		goto out;
	}
	e = fmt_add(c, LCP_REGION_EXACT, 0, hdr_end, NULL, NULL);
	for (size_t i = 0; i < nt && !e; i++) {
		struct fmt_tensor ft = {
			.name = ts[i].name,
			.dtype_name = ts[i].dt->name,
			.is_float = ts[i].dt->is_float,
			.dtype = ts[i].dt->dtype,
			.ndims = ts[i].ndims,
			.dims = ts[i].dims,
			.off = hdr_end + ts[i].begin,
			.len = ts[i].end - ts[i].begin,
		};
		e = fmt_add_tensor(c, &ft, NULL);
	}
out:
	lcp_free(ts);
	return e;
}

/* Bounds what jansson would build from hdr: counts tokens (each string,
 * number, literal, object and array) and nesting in one pass, without
 * allocating. Malformed JSON is left for jansson to reject. */
static lcp_err prescan_json(struct fmt_ctx *c, const char *hdr, size_t n)
{
	uint64_t tokens = 0;
	unsigned depth = 0;
	bool in_string = false, in_scalar = false;

	for (size_t i = 0; i < n; i++) {
		char ch = hdr[i];
		if (in_string) {
			if (ch == '\\')
				i++;
			else if (ch == '"')
				in_string = false;
			continue;
		}
		bool scalar_char = (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') ||
				   (ch >= 'A' && ch <= 'Z') || ch == '-' || ch == '+' || ch == '.';
		if (scalar_char && !in_scalar)
			tokens++;
		in_scalar = scalar_char;
		if (ch == '"') {
			in_string = true;
			tokens++;
		} else if (ch == '{' || ch == '[') {
			tokens++;
			if (++depth > ST_MAX_JSON_DEPTH)
				return fmt_invalid(c, "safetensors: header JSON nested deeper than %d "
						   "(at byte %zu)", ST_MAX_JSON_DEPTH, i);
		} else if ((ch == '}' || ch == ']') && depth) {
			depth--;
		}
		if (tokens > ST_MAX_JSON_TOKENS)
			return fmt_invalid(c, "safetensors: header JSON holds more than %u keys and "
					   "values (at byte %zu)", ST_MAX_JSON_TOKENS, i);
	}
	return LCP_OK;
}

lcp_err fmt_parse_safetensors(struct fmt_ctx *c)
{
	uint8_t lenbuf[8];
	if (c->size < 8)
		return fmt_invalid(c, "safetensors: file shorter than 8 bytes");
	lcp_err e = fmt_read(c, lenbuf, 8, 0);
	if (e)
		return e;
	uint64_t n = lcp_load_le64(lenbuf);
	if (n > c->size - 8)
		return fmt_invalid(c, "safetensors: header length %llu exceeds the file (%llu bytes)",
				   (unsigned long long)n, (unsigned long long)c->size);
	if (n > ST_MAX_HEADER_BYTES)
		return fmt_invalid(c, "safetensors: header length %llu over the %u-byte limit",
				   (unsigned long long)n, ST_MAX_HEADER_BYTES);
	char *hdr = lcp_malloc(n ? (size_t)n : 1);
	if (!hdr)
		return LCP_ERR_NOMEM;
	e = fmt_read(c, hdr, (size_t)n, 8);
	if (e) {
		lcp_free(hdr);
		return e;
	}
	if ((e = prescan_json(c, hdr, (size_t)n)) != LCP_OK) {
		lcp_free(hdr);
		return e;
	}
	json_error_t jerr;
	json_t *root = json_loadb(hdr, (size_t)n, JSON_REJECT_DUPLICATES, &jerr);
	lcp_free(hdr);
	if (!root)
		return fmt_invalid(c, "safetensors: header JSON: %.100s (at byte %d)", jerr.text, jerr.position);
	e = parse_json(c, root, 8 + n);
	json_decref(root);
	return e;
}
