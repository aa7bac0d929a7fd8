/* SPDX-License-Identifier: Apache-2.0 */
/*
 * NumPy .npy, header versions 1.0, 2.0 and 3.0: "\x93NUMPY", major, minor,
 * header length (u16 for 1.0, u32 after), then the header, a Python literal
 * dict such as {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }
 * padded with spaces and a newline, then the raw array data.
 *
 * The header is Python syntax, not JSON (single quotes, True/False, tuples),
 * so a JSON library cannot read it; the grammar numpy writes is tiny, so a
 * strict hand-written parser takes exactly that: the three keys once each,
 * string descr, bool fortran_order, tuple of non-negative ints shape.
 * Structured dtypes (a list as descr) and object arrays are refused: their
 * data size cannot be checked. The data must be exactly prod(shape) *
 * itemsize bytes.
 *
 * Regions: the header EXACT; the array (named "array") a TENSOR when descr is <f2, <f4 or
 * <f8 (shared rule for dims and min_size), otherwise EXACT ("big-endian",
 * "dtype not compressed"). Fortran-order dims are reversed into storage order.
 */
#include "format/fmt.h"

#include <string.h>

#include "common/alloc.h"
#include "common/le.h"

/* numpy.load refuses headers over 10000 bytes (its max_header_size) unless
 * told to trust the file; so do we. */
#define NPY_MAX_HEADER_BYTES 10000u
/* Longest key or descr string kept: the longest valid descr we accept
 * ('<M8[ns]', '|S' + digits) is far shorter. */
#define NPY_MAX_STR 64

struct npy_parse {
	const char *p;
	const char *end;
	bool py2_longs;          /* versions 1.0 and 2.0: numpy strips a long's 'L' */
};

static void skip_ws(struct npy_parse *ps)
{
	while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
		ps->p++;
}

static bool eat(struct npy_parse *ps, char ch)
{
	skip_ws(ps);
	if (ps->p < ps->end && *ps->p == ch) {
		ps->p++;
		return true;
	}
	return false;
}

/* A quoted string of printable ASCII without escapes (numpy never writes
 * any in these keys). A NUL, a control or a non-ASCII byte makes numpy
 * refuse the header (Python source cannot hold a NUL; no key or descr has
 * the others), and would make the C string mean something else. */
static bool parse_str(struct npy_parse *ps, char *out, size_t cap)
{
	skip_ws(ps);
	if (ps->p >= ps->end || (*ps->p != '\'' && *ps->p != '"'))
		return false;
	char q = *ps->p++;
	size_t n = 0;
	while (ps->p < ps->end && *ps->p != q) {
		unsigned char ch = (unsigned char)*ps->p;
		if (ch == '\\' || ch < 0x20 || ch > 0x7e || n + 1 >= cap)
			return false;
		out[n++] = *ps->p++;
	}
	if (ps->p >= ps->end)
		return false;
	ps->p++;
	out[n] = '\0';
	return true;
}

static bool parse_word(struct npy_parse *ps, const char *w)
{
	size_t n = strlen(w);
	skip_ws(ps);
	if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, w, n) != 0)
		return false;
	ps->p += n;
	return true;
}

static bool parse_uint(struct npy_parse *ps, uint64_t *v)
{
	skip_ws(ps);
	if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9')
		return false;
	/* Python 3 refuses leading zeros ("02"), though not "0" or "00". */
	bool zero = *ps->p == '0';
	uint64_t x = 0;
	while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') {
		if (zero && *ps->p != '0')
			return false;
		uint64_t d = (uint64_t)(*ps->p - '0');
		if (x > (UINT64_MAX - d) / 10)
			return false;
		x = x * 10 + d;
		ps->p++;
	}
	/* Python 2 era files wrote longs as 3L; numpy strips that for 1.0 and
	 * 2.0 headers only. */
	if (ps->py2_longs && ps->p < ps->end && *ps->p == 'L')
		ps->p++;
	*v = x;
	return true;
}

/* (), (n,), (a, b), (a, b,) */
static bool parse_shape(struct npy_parse *ps, uint64_t *dims, uint32_t *ndims, uint32_t max)
{
	if (!eat(ps, '('))
		return false;
	uint32_t n = 0;
	if (eat(ps, ')')) {
		*ndims = 0;
		return true;
	}
	for (;;) {
		if (n == max || !parse_uint(ps, &dims[n]))
			return false;
		n++;
		bool comma = eat(ps, ',');
		if (eat(ps, ')')) {
			/* A one-element tuple needs its comma: (3) is just 3. */
			if (n == 1 && !comma)
				return false;
			break;
		}
		if (!comma)
			return false;
	}
	*ndims = n;
	return true;
}

struct npy_header {
	char descr[NPY_MAX_STR];
	bool fortran;
	uint32_t ndims;
	uint64_t dims[LCP_MAX_DIMS + 1];
};

static const char *parse_dict(struct npy_parse *ps, struct npy_header *h)
{
	bool have_descr = false, have_fortran = false, have_shape = false;
	if (!eat(ps, '{'))
		return "header is not a dict";
	for (;;) {
		if (eat(ps, '}'))
			break;
		char key[NPY_MAX_STR];
		if (!parse_str(ps, key, sizeof key))
			return "bad key in header dict";
		if (!eat(ps, ':'))
			return "missing ':' in header dict";
		if (strcmp(key, "descr") == 0) {
			if (have_descr)
				return "duplicate 'descr'";
			skip_ws(ps);
			if (ps->p < ps->end && *ps->p == '[')
				return "structured dtype not supported";
			if (!parse_str(ps, h->descr, sizeof h->descr))
				return "bad 'descr' value";
			have_descr = true;
		} else if (strcmp(key, "fortran_order") == 0) {
			if (have_fortran)
				return "duplicate 'fortran_order'";
			if (parse_word(ps, "True"))
				h->fortran = true;
			else if (parse_word(ps, "False"))
				h->fortran = false;
			else
				return "bad 'fortran_order' value";
			have_fortran = true;
		} else if (strcmp(key, "shape") == 0) {
			if (have_shape)
				return "duplicate 'shape'";
			if (!parse_shape(ps, h->dims, &h->ndims, LCP_MAX_DIMS + 1))
				return "bad 'shape' value";
			if (h->ndims > LCP_MAX_DIMS)
				return "too many dims";
			have_shape = true;
		} else {
			return "unexpected key in header dict";
		}
		if (!eat(ps, ',')) {
			if (!eat(ps, '}'))
				return "missing ',' in header dict";
			break;
		}
	}
	skip_ws(ps);
	if (ps->p != ps->end)
		return "bytes after the header dict";
	if (!have_descr || !have_fortran || !have_shape)
		return "header dict lacks descr, fortran_order or shape";
	return NULL;
}

static bool size_in(uint64_t n, const unsigned *sizes)
{
	for (; *sizes; sizes++)
		if (n == *sizes)
			return true;
	return false;
}

/* A datetime unit as numpy spells it: '[' optional multiplier, unit ']'. */
static bool datetime_unit(const char *d)
{
	static const char *const units[] = {"Y", "M", "W", "D", "h", "m", "s", "ms", "us", "ns", "ps", "fs", "as"};
	if (*d++ != '[')
		return false;
	while (*d >= '0' && *d <= '9')
		d++;
	const char *close = strchr(d, ']');
	if (!close || close[1] != '\0')
		return false;
	for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
		if ((size_t)(close - d) == strlen(units[i]) && memcmp(d, units[i], strlen(units[i])) == 0)
			return true;
	return false;
}

/*
 * Item size of a descr such as '<f4', '|b1', '<U8', '<M8[ns]'; 0 when numpy
 * would not take it (a size its kind does not have: '<f3', '<i3', '<b2';
 * an unknown datetime unit) or we do not (object arrays, zero-size items).
 */
static uint64_t descr_itemsize(const char *d, char *order, char *kind)
{
	static const unsigned bool_sizes[] = {1, 0}, int_sizes[] = {1, 2, 4, 8, 0};
	static const unsigned float_sizes[] = {2, 4, 8, 16, 0}, complex_sizes[] = {8, 16, 32, 0};
	static const unsigned time_sizes[] = {8, 0};
	*order = '|';
	if (*d == '<' || *d == '>' || *d == '|' || *d == '=')
		*order = *d++;
	if (*d == '\0' || !strchr("biufcVSUMm", *d))
		return 0;
	*kind = *d++;
	uint64_t n = 0;
	if (*d < '0' || *d > '9')
		return 0;
	while (*d >= '0' && *d <= '9') {
		n = n * 10 + (uint64_t)(*d - '0');
		if (n > (1u << 30))
			return 0;
		d++;
	}
	switch (*kind) {
	case 'b': if (!size_in(n, bool_sizes)) return 0; break;
	case 'i': case 'u': if (!size_in(n, int_sizes)) return 0; break;
	case 'f': if (!size_in(n, float_sizes)) return 0; break;
	case 'c': if (!size_in(n, complex_sizes)) return 0; break;
	case 'M': case 'm':
		if (!size_in(n, time_sizes) || (*d != '\0' && !datetime_unit(d)))
			return 0;
		return n;
	default: break;
	}
	if (*d != '\0')
		return 0;
	return *kind == 'U' ? n * 4 : n;
}

lcp_err fmt_parse_npy(struct fmt_ctx *c)
{
	uint8_t pre[12];
	if (c->size < 10)
		return fmt_invalid(c, "numpy: file shorter than the 10-byte preamble");
	lcp_err e = fmt_read(c, pre, c->size < 12 ? 10 : 12, 0);
	if (e)
		return e;
	uint8_t major = pre[6], minor = pre[7];
	if (major < 1 || major > 3 || minor != 0)
		return fmt_invalid(c, "numpy: unknown header version %u.%u", major, minor);
	uint64_t hl, hoff;
	if (major == 1) {
		hl = lcp_load_le16(pre + 8);
		hoff = 10;
	} else {
		if (c->size < 12)
			return fmt_invalid(c, "numpy: file shorter than the 12-byte preamble");
		hl = lcp_load_le32(pre + 8);
		hoff = 12;
	}
	if (hl > c->size - hoff)
		return fmt_invalid(c, "numpy: header length %llu exceeds the file",
				   (unsigned long long)hl);
	if (hl > NPY_MAX_HEADER_BYTES)
		return fmt_invalid(c, "numpy: header length %llu over the limit",
				   (unsigned long long)hl);
	char *hdr = lcp_malloc(hl ? (size_t)hl : 1);
	if (!hdr)
		return LCP_ERR_NOMEM;
	e = fmt_read(c, hdr, (size_t)hl, hoff);
	if (e) {
		lcp_free(hdr);
		return e;
	}
	struct npy_header h;
	memset(&h, 0, sizeof h);
	struct npy_parse ps = {hdr, hdr + hl, major < 3};
	const char *bad = parse_dict(&ps, &h);
	lcp_free(hdr);
	if (bad)
		return fmt_invalid(c, "numpy: %s", bad);

	char order, kind;
	uint64_t item = descr_itemsize(h.descr, &order, &kind);
	if (item == 0)
		return fmt_invalid(c, "numpy: unsupported descr '%.20s'", h.descr);
	uint64_t bytes = item;
	for (uint32_t d = 0; d < h.ndims; d++)
		if (!fmt_mul_ok(&bytes, h.dims[d]))
			return fmt_invalid(c, "numpy: shape overflows");
	uint64_t data_off = hoff + hl;
	if (bytes != c->size - data_off)
		return fmt_invalid(c, "numpy: data is %llu bytes, shape and descr '%.20s' need %llu",
				   (unsigned long long)(c->size - data_off), h.descr, (unsigned long long)bytes);

	e = fmt_add(c, LCP_REGION_EXACT, 0, data_off, NULL, NULL);
	if (e)
		return e;
	uint64_t dims[LCP_MAX_DIMS];
	for (uint32_t d = 0; d < h.ndims; d++)
		dims[d] = h.fortran ? h.dims[h.ndims - 1 - d] : h.dims[d];
	bool little = order == '<' || (order == '|' && item == 1);
	bool is_float = kind == 'f' && little && (item == 2 || item == 4 || item == 8);
	struct fmt_tensor t = {
		.name = "array",
		.dtype_name = h.descr,
		.is_float = is_float,
		.dtype = item == 2 ? LCP_DTYPE_F16 : item == 4 ? LCP_DTYPE_F32 : LCP_DTYPE_F64,
		.not_float_reason = kind == 'f' && order == '>' ? "big-endian" : "dtype not compressed",
		.ndims = h.ndims,
		.dims = dims,
		.off = data_off,
		.len = bytes,
	};
	return fmt_add_tensor(c, &t, NULL);
}
