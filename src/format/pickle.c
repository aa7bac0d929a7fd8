/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A pickle stack machine that only builds inert values: ints, strings, short
 * tuples, global names, storages (from persistent ids) and tensors (from
 * _rebuild_tensor_v2 calls); every other call or object is an opaque value.
 * Enough for torch.save's data.pkl, and safe on hostile input:
 *
 *  - every read is bounds-checked against the pickle;
 *  - values are 8-byte records (strings point into the pickle; ints beyond
 *    32 bits go to a side pool), marks are a stack of positions, so no
 *    opcode scans the stack: the run is linear in the pickle's length;
 *  - storages are found by key through a hash table, not a scan;
 *  - a tuple keeps its items only when it is short enough to be something
 *    we read (a persistent id, rebuild arguments, a shape): longer ones keep
 *    their length only and cost nothing;
 *  - every growth of the stack, marks, memo and tuple pool is charged to a
 *    budget that grows with the storages and tensors found (pickle.h).
 */
#include "format/pickle.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "common/le.h"
#include "format/fmt.h"

/* Tuples with more items than this keep only their length: persistent ids
 * have 5 items, rebuild arguments 6, shapes at most LCP_MAX_DIMS. */
#define PKL_TUPLE_KEEP LCP_MAX_DIMS
/* Highest pickle protocol (Python's pickle.HIGHEST_PROTOCOL). */
#define PKL_MAX_PROTOCOL 5

enum vkind {
	V_UNSET = 0, /* an empty memo slot */
	V_NONE, V_BOOL, V_INT, V_FLOAT, V_STR, V_BYTES, V_TUPLE, V_LIST, V_DICT, V_GLOBAL,
	V_STORAGE, V_TENSOR, V_OBJ,
	V_LONGTUPLE, /* a tuple of more than PKL_TUPLE_KEEP items: only its length kept */
	V_ODICT,     /* an OrderedDict (REDUCE of collections.OrderedDict) */
};

/* What a global names, as far as we care. */
enum gkind {
	G_OTHER,          /* allowed, called into an opaque value */
	G_REBUILD_V2,     /* torch._utils._rebuild_tensor_v2 */
	G_REBUILD_PARAM,  /* torch._utils._rebuild_parameter */
	G_ORDERED_DICT,   /* collections.OrderedDict */
	G_TORCH_CLASS,    /* a storage class of module torch */
	G_PARAMETER,      /* torch.nn.parameter.Parameter */
};

/* Offsets and lengths in the pickle take PKL_OFF_BITS (pickles are at most
 * PKL_MAX_BYTES); a global's kind sits above its name's offset. */
#define PKL_OFF_BITS 28
#define PKL_OFF_MASK ((1u << PKL_OFF_BITS) - 1)

/* One value: 8 bytes, since the memo of a large pickle holds millions. */
struct val {
	unsigned kind : 4; /* enum vkind */
	unsigned len : 28; /* V_STR/V_BYTES/V_GLOBAL (its name): bytes; V_TUPLE, V_LONGTUPLE: items;
	                      V_TENSOR: which use of its storage (1 = first, 2 = later);
	                      V_INT: 1 when u indexes the int pool */
	uint32_t u;        /* V_INT: the value as int32, or its index in the int pool;
	                      V_STR/V_BYTES: offset in the pickle; V_GLOBAL: name offset,
	                      enum gkind in the top bits; V_TUPLE: first item in the tuple
	                      pool; V_STORAGE/V_TENSOR: storage index */
};
_Static_assert(sizeof(struct val) == 8, "values are 8 bytes");

struct vm {
	const uint8_t *p, *end, *start;
	struct val *stack;
	size_t sp, scap;
	uint32_t *marks;          /* stack positions of the open marks */
	size_t nmarks, kcap;
	struct val *memo;
	size_t mcap;
	struct val *pool;         /* items of kept tuples */
	size_t npool, pcap;
	int64_t *ints;            /* ints that do not fit 32 bits */
	size_t nints, icap;
	uint32_t *slots;          /* storage hash table: index + 1, 0 = empty */
	size_t nslots;
	uint64_t seed;            /* of the hash */
	size_t dcap, scap_res;
	struct pkl_result *res;
	char *why;
	size_t why_len;
};

static lcp_err bad(struct vm *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static lcp_err bad(struct vm *v, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(v->why, v->why_len, fmt, ap);
	va_end(ap);
	return LCP_ERR_FORMAT;
}

static size_t at_byte(const struct vm *v)
{
	return (size_t)(v->p - v->start);
}

static size_t work_bytes(const struct vm *v)
{
	return (v->scap + v->mcap + v->pcap) * sizeof(struct val) + v->kcap * sizeof(uint32_t) +
	       v->icap * sizeof(int64_t);
}

static size_t work_limit(const struct vm *v)
{
	size_t objects = v->res->nstorages + v->res->ntensors;
	size_t lim = PKL_WORK_BASE_BYTES + objects * PKL_WORK_BYTES_PER_OBJECT;
	return lim < PKL_MAX_WORK_BYTES ? lim : PKL_MAX_WORK_BYTES;
}

/* Grows arr (elements of elem bytes, capacity *cap) to hold need elements,
 * doubling, within the working-memory budget; *out gets the array (arr
 * itself when it was large enough). */
static lcp_err grow(struct vm *v, void *arr, size_t *cap, size_t need, size_t elem, const char *what, void **out)
{
	*out = arr;
	if (need <= *cap)
		return LCP_OK;
	size_t nc = *cap ? *cap : 64;
	while (nc < need)
		nc *= 2;
	size_t extra = (nc - *cap) * elem;
	if (work_bytes(v) + extra > work_limit(v))
		return bad(v, "pickle: %s needs more than the %zu bytes of working memory allowed for %zu storages "
			   "and %zu tensors", what, work_limit(v), v->res->nstorages, v->res->ntensors);
	void *n = lcp_realloc(arr, nc * elem);
	if (!n)
		return LCP_ERR_NOMEM;
	*out = n;
	*cap = nc;
	return LCP_OK;
}

/* The stack position of the topmost mark: values below it cannot be popped. */
static size_t fence(const struct vm *v)
{
	return v->nmarks ? v->marks[v->nmarks - 1] : 0;
}

static lcp_err push(struct vm *v, struct val x)
{
	void *p;
	lcp_err e = grow(v, v->stack, &v->scap, v->sp + 1, sizeof *v->stack, "the stack", &p);
	if (e)
		return e;
	v->stack = p;
	v->stack[v->sp++] = x;
	return LCP_OK;
}

static lcp_err push_kind(struct vm *v, enum vkind k)
{
	return push(v, (struct val){.kind = k});
}

static lcp_err pop(struct vm *v, struct val *out)
{
	if (v->sp == fence(v))
		return bad(v, "pickle stack underflow at byte %zu", at_byte(v));
	*out = v->stack[--v->sp];
	return LCP_OK;
}

/* The value on top, which must be above the topmost mark. */
static lcp_err top(struct vm *v, struct val **out, const char *op)
{
	if (v->sp == fence(v))
		return bad(v, "pickle: %s on nothing at byte %zu", op, at_byte(v));
	*out = &v->stack[v->sp - 1];
	return LCP_OK;
}

/* Pops everything above the topmost mark and the mark: *items = index of the
 * first of them in the stack (valid until the next push), *n their count. */
static lcp_err pop_mark(struct vm *v, size_t *items, size_t *n)
{
	if (v->nmarks == 0)
		return bad(v, "pickle: no mark at byte %zu", at_byte(v));
	*items = v->marks[--v->nmarks];
	*n = v->sp - *items;
	v->sp = *items;
	return LCP_OK;
}

static bool take(struct vm *v, const uint8_t **p, uint64_t n)
{
	if (n > (uint64_t)(v->end - v->p))
		return false;
	*p = v->p;
	v->p += n;
	return true;
}

static lcp_err make_tuple(struct vm *v, size_t items, size_t n)
{
	if (n > PKL_TUPLE_KEEP)
		return push(v, (struct val){.kind = V_LONGTUPLE, .len = (unsigned)n});
	void *p;
	lcp_err e = grow(v, v->pool, &v->pcap, v->npool + n, sizeof *v->pool, "tuples", &p);
	if (e)
		return e;
	v->pool = p;
	if (n)
		memcpy(&v->pool[v->npool], &v->stack[items], n * sizeof *v->pool);
	struct val t = {.kind = V_TUPLE, .len = (unsigned)n, .u = (uint32_t)v->npool};
	v->npool += n;
	return push(v, t);
}

/* Item i of a tuple whose items are kept. */
static const struct val *item(const struct vm *v, const struct val *t, size_t i)
{
	return &v->pool[t->u + i];
}

static bool kept_tuple(const struct val *t, size_t min_items)
{
	return t->kind == V_TUPLE && t->len >= min_items;
}

static bool is_int(const struct val *x)
{
	return x->kind == V_INT;
}

static int64_t int_of(const struct vm *v, const struct val *x)
{
	return x->len ? v->ints[x->u] : (int64_t)(int32_t)x->u;
}

static enum gkind gkind_of(const struct val *x)
{
	return (enum gkind)(x->u >> PKL_OFF_BITS);
}

static uint32_t goff_of(const struct val *x)
{
	return x->u & PKL_OFF_MASK;
}

static bool bytes_is(const struct vm *v, uint64_t off, size_t len, const char *s)
{
	return len == strlen(s) && memcmp(v->start + off, s, len) == 0;
}

static bool str_is(const struct vm *v, const struct val *x, const char *s)
{
	return x->kind == V_STR && bytes_is(v, x->u, x->len, s);
}

/* The names in torch 1.13's allowlist for weights_only (the reference
 * reader here): dtypes, element types of its tensor and storage classes. */
static const char *const torch_dtypes[] = {
	"complex32", "complex64", "complex128", "float16", "float32", "float64",
	"int8", "int16", "int32", "int64", NULL,
};
static const char *const torch_elems[] = {
	"BFloat16", "Bool", "Byte", "Char", "Double", "Float", "Half", "Int", "Long", "Short", NULL,
};
static const char *const sparse_elems[] = {
	"BFloat16", "Byte", "Char", "Double", "Float", "Half", "Int", "Long", "Short", NULL,
};
static const char *const cpu_only_storage_elems[] = {
	"QInt32", "QInt8", "QUInt2x4", "QUInt4x2", "QUInt8", NULL,
};
static const char *const complex_elems[] = {"ComplexDouble", "ComplexFloat", NULL};
static const char *const rebuild_fns[] = {
	"_rebuild_parameter", "_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_sparse_tensor",
	"_rebuild_meta_tensor_no_storage", "_rebuild_sparse_csr_tensor", NULL,
};

/* n is one of names followed by suffix ("" for none). */
static bool name_in(const uint8_t *n, size_t nlen, const char *const *names, const char *suffix)
{
	size_t k = strlen(suffix);
	if (nlen < k || memcmp(n + nlen - k, suffix, k) != 0)
		return false;
	for (; *names; names++)
		if (strlen(*names) == nlen - k && memcmp(n, *names, nlen - k) == 0)
			return true;
	return false;
}

/*
 * The globals torch.load(weights_only=True) allows (torch 1.13's list):
 * collections.OrderedDict, torch.nn.parameter.Parameter,
 * torch.serialization._get_layout, torch.Size, torch.Tensor, the dtypes, the
 * tensor classes (torch, torch.cuda, torch.sparse, torch.cuda.sparse), the
 * storage classes (torch, torch.cuda, torch.storage) and six
 * torch._utils._rebuild_* functions. false for anything else.
 */
static bool classify_global(const uint8_t *m, size_t mlen, const uint8_t *n, size_t nlen, uint8_t *g)
{
#define IS(s, len, lit) ((len) == sizeof(lit) - 1 && memcmp((s), (lit), (len)) == 0)
	*g = G_OTHER;
	if (IS(m, mlen, "collections") && IS(n, nlen, "OrderedDict")) {
		*g = G_ORDERED_DICT;
		return true;
	}
	if (IS(m, mlen, "torch._utils")) {
		if (IS(n, nlen, "_rebuild_tensor_v2"))
			*g = G_REBUILD_V2;
		else if (IS(n, nlen, "_rebuild_parameter"))
			*g = G_REBUILD_PARAM;
		return name_in(n, nlen, rebuild_fns, "");
	}
	if (IS(m, mlen, "torch.nn.parameter") && IS(n, nlen, "Parameter")) {
		*g = G_PARAMETER;
		return true;
	}
	if (IS(m, mlen, "torch.serialization"))
		return IS(n, nlen, "_get_layout");
	if (IS(m, mlen, "torch.storage"))
		return IS(n, nlen, "TypedStorage") || IS(n, nlen, "UntypedStorage");
	if (IS(m, mlen, "torch.sparse") || IS(m, mlen, "torch.cuda.sparse"))
		return name_in(n, nlen, sparse_elems, "Tensor");
	if (IS(m, mlen, "torch.cuda"))
		return name_in(n, nlen, torch_elems, "Tensor") || name_in(n, nlen, torch_elems, "Storage") ||
		       name_in(n, nlen, complex_elems, "Storage");
	if (!IS(m, mlen, "torch"))
		return false;
	if (name_in(n, nlen, torch_elems, "Storage") || name_in(n, nlen, complex_elems, "Storage") ||
	    name_in(n, nlen, cpu_only_storage_elems, "Storage")) {
		*g = G_TORCH_CLASS;
		return true;
	}
	return IS(n, nlen, "Size") || IS(n, nlen, "Tensor") || name_in(n, nlen, torch_elems, "Tensor") ||
	       name_in(n, nlen, torch_dtypes, "");
#undef IS
}

static lcp_err push_global(struct vm *v, const uint8_t *m, size_t mlen, const uint8_t *n, size_t nlen)
{
	uint8_t g;
	if (!classify_global(m, mlen, n, nlen, &g))
		return bad(v, "pickle: global '%.*s.%.*s' is not one torch.load(weights_only=True) allows",
			   (int)(mlen < 40 ? mlen : 40), (const char *)m, (int)(nlen < 40 ? nlen : 40),
			   (const char *)n);
	return push(v, (struct val){.kind = V_GLOBAL, .len = (unsigned)nlen,
				    .u = (uint32_t)(n - v->start) | (uint32_t)g << PKL_OFF_BITS});
}

struct storage_type {
	const char *name;
	unsigned bytes;
	bool is_float;
	enum lcp_dtype dtype;
};

static const struct storage_type storage_types[] = {
	{"FloatStorage", 4, true, LCP_DTYPE_F32},
	{"HalfStorage", 2, true, LCP_DTYPE_F16},
	{"BFloat16Storage", 2, true, LCP_DTYPE_BF16},
	{"DoubleStorage", 8, true, LCP_DTYPE_F64},
	{"LongStorage", 8, false, LCP_DTYPE_F32},
	{"IntStorage", 4, false, LCP_DTYPE_F32},
	{"ShortStorage", 2, false, LCP_DTYPE_F32},
	{"CharStorage", 1, false, LCP_DTYPE_F32},
	{"ByteStorage", 1, false, LCP_DTYPE_F32},
	{"BoolStorage", 1, false, LCP_DTYPE_F32},
	{"ComplexFloatStorage", 8, false, LCP_DTYPE_F32},
	{"ComplexDoubleStorage", 16, false, LCP_DTYPE_F32},
	{"QInt8Storage", 1, false, LCP_DTYPE_F32},
	{"QUInt8Storage", 1, false, LCP_DTYPE_F32},
	{"QInt32Storage", 4, false, LCP_DTYPE_F32},
};

/* Slot of key in the hash table: holding it, or the empty one it goes in. */
static size_t key_slot(const struct vm *v, const uint8_t *key, size_t len)
{
	size_t mask = v->nslots - 1;
	for (size_t i = (size_t)fmt_hash(key, len, v->seed) & mask;; i = (i + 1) & mask) {
		uint32_t s = v->slots[i];
		if (s == 0)
			return i;
		const struct pkl_storage *st = &v->res->storages[s - 1];
		if (st->key_len == len && memcmp(st->key, key, len) == 0)
			return i;
	}
}

/* Keeps the table at most half full (rebuilt at twice the size). */
static lcp_err slots_reserve(struct vm *v)
{
	if (2 * (v->res->nstorages + 1) <= v->nslots)
		return LCP_OK;
	size_t ns = v->nslots ? 2 * v->nslots : 1024;
	uint32_t *nt = lcp_calloc(ns, sizeof *nt);
	if (!nt)
		return LCP_ERR_NOMEM;
	lcp_free(v->slots);
	v->slots = nt;
	v->nslots = ns;
	for (size_t i = 0; i < v->res->nstorages; i++) {
		const struct pkl_storage *st = &v->res->storages[i];
		v->slots[key_slot(v, st->key, st->key_len)] = (uint32_t)(i + 1);
	}
	return LCP_OK;
}

/* The locations torch restores storages to: cpu, cuda[:N], mps, meta. */
static bool known_location(const struct vm *v, const struct val *loc)
{
	if (loc->kind != V_STR)
		return false;
	const uint8_t *s = v->start + loc->u;
	return str_is(v, loc, "cpu") || str_is(v, loc, "mps") || str_is(v, loc, "meta") ||
	       (loc->len >= 4 && memcmp(s, "cuda", 4) == 0);
}

/* ('storage', torch.XStorage, key, location, numel) -> a V_STORAGE value. */
static lcp_err persistent_load(struct vm *v, const struct val *pid)
{
	if (!kept_tuple(pid, 5) || pid->len != 5 || !str_is(v, item(v, pid, 0), "storage") ||
	    item(v, pid, 1)->kind != V_GLOBAL || item(v, pid, 2)->kind != V_STR ||
	    !is_int(item(v, pid, 4)) || int_of(v, item(v, pid, 4)) < 0)
		return bad(v, "pickle: unsupported persistent id at byte %zu", at_byte(v));
	if (!known_location(v, item(v, pid, 3)))
		return bad(v, "pickle: storage location torch cannot restore at byte %zu", at_byte(v));
	const struct val *type = item(v, pid, 1), *key = item(v, pid, 2);
	const uint8_t *ks = v->start + key->u, *tname = v->start + goff_of(type);
	uint64_t numel = (uint64_t)int_of(v, item(v, pid, 4));
	if (key->len == 0 || key->len > PKL_MAX_KEY || memchr(ks, '\0', key->len) || memchr(ks, '/', key->len))
		return bad(v, "pickle: bad storage key at byte %zu", at_byte(v));
	lcp_err e = slots_reserve(v);
	if (e)
		return e;
	struct pkl_result *r = v->res;
	size_t slot = key_slot(v, ks, key->len);
	size_t idx;
	if (v->slots[slot]) {
		idx = v->slots[slot] - 1;
		const struct pkl_storage *st = &r->storages[idx];
		if (st->type_len != type->len || memcmp(st->type_name, tname, type->len) != 0 || st->numel != numel)
			return bad(v, "pickle: storage '%.40s' declared twice differently", (const char *)st->key);
	} else {
		if (r->nstorages >= PKL_MAX_STORAGES)
			return bad(v, "pickle: more than %u storages", PKL_MAX_STORAGES);
		if (r->nstorages == v->scap_res) {
			size_t nc = v->scap_res ? v->scap_res * 2 : 16;
			struct pkl_storage *ns = lcp_realloc(r->storages, nc * sizeof *ns);
			if (!ns)
				return LCP_ERR_NOMEM;
			r->storages = ns;
			v->scap_res = nc;
		}
		idx = r->nstorages++;
		v->slots[slot] = (uint32_t)(idx + 1);
		struct pkl_storage *st = &r->storages[idx];
		memset(st, 0, sizeof *st);
		st->key = ks;
		st->key_len = key->len;
		st->type_name = tname;
		st->type_len = type->len;
		st->numel = numel;
		/* Only torch's own classes are known; a same-named class elsewhere is not. */
		for (size_t i = 0; gkind_of(type) == G_TORCH_CLASS && i < sizeof storage_types / sizeof storage_types[0];
		     i++) {
			if (bytes_is(v, goff_of(type), type->len, storage_types[i].name)) {
				st->elem_bytes = storage_types[i].bytes;
				st->is_float = storage_types[i].is_float;
				st->dtype = storage_types[i].dtype;
			}
		}
	}
	return push(v, (struct val){.kind = V_STORAGE, .u = (uint32_t)idx});
}

/* A kept tuple of non-negative ints, at most LCP_MAX_DIMS of them. */
static bool int_tuple(const struct vm *v, const struct val *t, uint64_t *out, uint32_t *n)
{
	if (!kept_tuple(t, 0) || t->len > LCP_MAX_DIMS)
		return false;
	for (size_t i = 0; i < t->len; i++) {
		const struct val *x = item(v, t, i);
		if (!is_int(x) || int_of(v, x) < 0)
			return false;
		out[i] = (uint64_t)int_of(v, x);
	}
	*n = t->len;
	return true;
}

/* Row-major contiguous (torch ignores the stride of a size-1 dim) and exactly
 * numel elements. */
static bool spans_storage(const uint64_t *dims, const uint64_t *strides, uint32_t n, uint64_t numel)
{
	uint64_t expect = 1;
	for (uint32_t d = n; d-- > 0;) {
		if (dims[d] != 1 && strides[d] != expect)
			return false;
		if (dims[d] != 0 && expect > UINT64_MAX / dims[d])
			return false;
		expect *= dims[d];
	}
	return expect == numel;
}

/* Elements a view of dims/strides from offset reaches: offset + sum((dim -
 * 1) * stride) + 1, or 0 for an empty view; false on overflow. */
static bool view_extent(uint64_t offset, const uint64_t *dims, const uint64_t *strides, uint32_t n,
			uint64_t *extent)
{
	uint64_t end = offset;
	for (uint32_t d = 0; d < n; d++) {
		if (dims[d] == 0) {
			*extent = 0;
			return true;
		}
		uint64_t span = dims[d] - 1;
		if (strides[d] && span > (UINT64_MAX - end) / strides[d])
			return false;
		end += span * strides[d];
	}
	*extent = end + 1;
	return end != UINT64_MAX;
}

/*
 * _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad,
 * hooks), six arguments as torch 1.13 takes them (later versions take a
 * seventh, metadata, written for tensors with special bits only). What
 * torch would fail on is refused: other arguments,
 * a negative or non-int offset, sizes and strides that are not non-negative
 * ints of one length, a view reaching past its storage. A shape of more than
 * LCP_MAX_DIMS dims (items not kept) is taken as it is: "unusual tensor
 * shape" for its storage.
 */
static lcp_err rebuild_tensor(struct vm *v, const struct val *args)
{
	if (!kept_tuple(args, 6) || args->len != 6 || item(v, args, 0)->kind != V_STORAGE)
		return bad(v, "pickle: _rebuild_tensor_v2 without (storage, offset, size, stride, ...) at byte %zu",
			   at_byte(v));
	struct pkl_result *r = v->res;
	size_t si = item(v, args, 0)->u;
	struct pkl_storage *st = &r->storages[si];
	const struct val *off = item(v, args, 1), *size = item(v, args, 2), *stride = item(v, args, 3);
	if (!is_int(off) || int_of(v, off) < 0)
		return bad(v, "pickle: tensor with a bad storage offset at byte %zu", at_byte(v));
	uint64_t offset = (uint64_t)int_of(v, off);
	uint64_t dims[LCP_MAX_DIMS], strides[LCP_MAX_DIMS], extent;
	uint32_t nd = 0, ns = 0;
	bool long_shape = size->kind == V_LONGTUPLE && stride->kind == V_LONGTUPLE && size->len == stride->len;
	if (!long_shape) {
		if (!int_tuple(v, size, dims, &nd) || !int_tuple(v, stride, strides, &ns) || nd != ns)
			return bad(v, "pickle: tensor size and stride are not non-negative ints of one length at byte %zu",
				   at_byte(v));
		if (!view_extent(offset, dims, strides, nd, &extent) || extent > st->numel)
			return bad(v, "pickle: tensor view runs past its storage of %llu elements at byte %zu",
				   (unsigned long long)st->numel, at_byte(v));
	}
	r->ntensors++;
	if (st->uses < 2)
		st->uses++;
	if (st->uses == 1 && !long_shape) {
		st->shape_ok = true;
		st->whole = offset == 0 && spans_storage(dims, strides, nd, st->numel);
		if (r->ndims + nd > v->dcap) {
			size_t nc = v->dcap ? v->dcap * 2 : 64;
			while (nc < r->ndims + nd)
				nc *= 2;
			uint64_t *ndp = lcp_realloc(r->dims, nc * sizeof *ndp);
			if (!ndp)
				return LCP_ERR_NOMEM;
			r->dims = ndp;
			v->dcap = nc;
		}
		st->ndims = nd;
		st->dims_at = (uint32_t)r->ndims;
		/* A scalar has no dims, and the pool may not exist yet. */
		if (nd)
			memcpy(&r->dims[r->ndims], dims, nd * sizeof *dims);
		r->ndims += nd;
	}
	return push(v, (struct val){.kind = V_TENSOR, .len = st->uses, .u = (uint32_t)si});
}

static lcp_err reduce(struct vm *v)
{
	struct val args = {0}, fn = {0};
	lcp_err e = pop(v, &args);
	if (!e)
		e = pop(v, &fn);
	if (e)
		return e;
	if (fn.kind != V_GLOBAL)
		return bad(v, "pickle: REDUCE of something not a global at byte %zu", at_byte(v));
	switch (gkind_of(&fn)) {
	case G_REBUILD_V2:
		return rebuild_tensor(v, &args);
	case G_REBUILD_PARAM:                /* (data, requires_grad, backward_hooks) */
		if (!kept_tuple(&args, 3) || args.len != 3 || item(v, &args, 0)->kind != V_TENSOR)
			return bad(v, "pickle: _rebuild_parameter without (tensor, requires_grad, hooks) at byte %zu",
				   at_byte(v));
		return push(v, *item(v, &args, 0));
	case G_ORDERED_DICT:
		return push_kind(v, V_ODICT);
	default:
		return push_kind(v, V_OBJ);
	}
}

/* Remembers the dict key the first tensor of a storage is stored under (the
 * first key wins). */
static void set_item(struct vm *v, const struct val *target, const struct val *key, const struct val *val)
{
	if ((target->kind != V_DICT && target->kind != V_ODICT) || key->kind != V_STR || val->kind != V_TENSOR || val->len != 1 ||
	    key->len > PKL_MAX_KEY)
		return;
	struct pkl_storage *st = &v->res->storages[val->u];
	if (st->name)
		return;
	st->name = v->start + key->u;
	st->name_len = key->len;
}

static lcp_err memo_put(struct vm *v, uint64_t idx)
{
	struct val *x;
	lcp_err e = top(v, &x, "memoizing");
	if (e)
		return e;
	if (idx >= SIZE_MAX / 2 ||
	    (idx >= v->mcap && work_bytes(v) + (idx + 1 - v->mcap) * sizeof *v->memo > work_limit(v)))
		return bad(v, "pickle: memo index %llu too large for %zu storages and %zu tensors",
			   (unsigned long long)idx, v->res->nstorages, v->res->ntensors);
	size_t old = v->mcap;
	void *p;
	e = grow(v, v->memo, &v->mcap, (size_t)idx + 1, sizeof *v->memo, "the memo", &p);
	if (e)
		return e;
	v->memo = p;
	if (v->mcap > old)
		memset(&v->memo[old], 0, (v->mcap - old) * sizeof *v->memo);
	v->memo[idx] = *x;
	return LCP_OK;
}

static lcp_err memo_get(struct vm *v, uint64_t idx)
{
	if (idx >= v->mcap || v->memo[idx].kind == V_UNSET)
		return bad(v, "pickle: memo index %llu unset", (unsigned long long)idx);
	return push(v, v->memo[idx]);
}

static lcp_err push_str(struct vm *v, enum vkind kind, uint64_t n, bool unicode)
{
	const uint8_t *s;
	if (!take(v, &s, n))
		return bad(v, "pickle: string runs past the end");
	if (unicode && !fmt_utf8_ok(s, (size_t)n))
		return bad(v, "pickle: string at byte %zu is not UTF-8", (size_t)(s - v->start));
	return push(v, (struct val){.kind = kind, .len = (unsigned)n, .u = (uint32_t)(s - v->start)});
}

static lcp_err push_int(struct vm *v, int64_t i)
{
	if (i >= INT32_MIN && i <= INT32_MAX)
		return push(v, (struct val){.kind = V_INT, .u = (uint32_t)(int32_t)i});
	void *p;
	lcp_err e = grow(v, v->ints, &v->icap, v->nints + 1, sizeof *v->ints, "ints", &p);
	if (e)
		return e;
	v->ints = p;
	v->ints[v->nints] = i;
	return push(v, (struct val){.kind = V_INT, .len = 1, .u = (uint32_t)v->nints++});
}

/* "module\nname\n" */
static lcp_err global_op(struct vm *v)
{
	const uint8_t *m = v->p;
	const uint8_t *nl = memchr(m, '\n', (size_t)(v->end - m));
	if (!nl)
		return bad(v, "pickle: unterminated GLOBAL");
	const uint8_t *nm = nl + 1;
	const uint8_t *nl2 = memchr(nm, '\n', (size_t)(v->end - nm));
	if (!nl2)
		return bad(v, "pickle: unterminated GLOBAL");
	v->p = nl2 + 1;
	return push_global(v, m, (size_t)(nl - m), nm, (size_t)(nl2 - nm));
}

/*
 * One opcode. The set is what torch.load(weights_only=True) reads (torch
 * 1.13's, the reference here, plus BINFLOAT that later versions read):
 * protocol 2 binary opcodes; anything else is refused, as it refuses it.
 */
static lcp_err step(struct vm *v, uint8_t op, bool *stop)
{
	const uint8_t *a;
	struct val x = {0}, y = {0}, *t;
	size_t items = 0, n = 0;
	lcp_err e;
#define NEED(k) do { if (!take(v, &a, (k))) return bad(v, "pickle: opcode 0x%02x truncated", op); } while (0)
	switch (op) {
	case 0x80:                                     /* PROTO */
		NEED(1);
		if (a[0] > PKL_MAX_PROTOCOL)
			return bad(v, "pickle: unsupported protocol %u", a[0]);
		return LCP_OK;
	case '}': return push_kind(v, V_DICT);        /* EMPTY_DICT */
	case ']': return push_kind(v, V_LIST);        /* EMPTY_LIST */
	case ')': return make_tuple(v, v->sp, 0);     /* EMPTY_TUPLE */
	case 0x8f: return push_kind(v, V_OBJ);        /* EMPTY_SET */
	case '(': {                                    /* MARK */
		void *p;
		if ((e = grow(v, v->marks, &v->kcap, v->nmarks + 1, sizeof *v->marks, "marks", &p)))
			return e;
		v->marks = p;
		v->marks[v->nmarks++] = (uint32_t)v->sp;
		return LCP_OK;
	}
	case 'X': NEED(4); return push_str(v, V_STR, lcp_load_le32(a), true);   /* BINUNICODE */
	case 'U': NEED(1); return push_str(v, V_BYTES, a[0], true);            /* SHORT_BINSTRING, decoded as UTF-8 */
	case 'J': NEED(4); return push_int(v, (int32_t)lcp_load_le32(a));
	case 'K': NEED(1); return push_int(v, a[0]);
	case 'M': NEED(2); return push_int(v, lcp_load_le16(a));
	case 0x8a: {                                   /* LONG1 */
		NEED(1);
		uint8_t len = a[0];
		NEED(len);
		if (len > 8)
			return push_kind(v, V_OBJ);
		uint64_t u = 0;
		for (unsigned i = 0; i < len; i++)
			u |= (uint64_t)a[i] << (8 * i);
		if (len > 0 && len < 8 && (a[len - 1] & 0x80))
			u |= ~(uint64_t)0 << (8 * len);
		return push_int(v, (int64_t)u);
	}
	case 'N': return push_kind(v, V_NONE);
	case 0x88: case 0x89: return push_kind(v, V_BOOL);
	case 'G': NEED(8); return push_kind(v, V_FLOAT);
	case 'c': return global_op(v);
	case 't':
		if ((e = pop_mark(v, &items, &n)))
			return e;
		return make_tuple(v, items, n);
	case 0x85: case 0x86: case 0x87: {            /* TUPLE1..3 */
		size_t k = (size_t)(op - 0x84);
		if (v->sp - fence(v) < k)
			return bad(v, "pickle stack underflow at byte %zu", at_byte(v));
		v->sp -= k;
		return make_tuple(v, v->sp, k);
	}
	case 'a':                                      /* APPEND */
		if ((e = pop(v, &x)) || (e = top(v, &t, "APPEND")))
			return e;
		return t->kind == V_LIST ? LCP_OK : bad(v, "pickle: APPEND to a non-list at byte %zu", at_byte(v));
	case 'e':                                      /* APPENDS */
		if ((e = pop_mark(v, &items, &n)) || (e = top(v, &t, "APPENDS")))
			return e;
		return t->kind == V_LIST ? LCP_OK : bad(v, "pickle: APPENDS to a non-list at byte %zu", at_byte(v));
	case 's':                                      /* SETITEM */
		if ((e = pop(v, &y)) || (e = pop(v, &x)) || (e = top(v, &t, "SETITEM")))
			return e;
		if (t->kind != V_DICT && t->kind != V_ODICT)
			return bad(v, "pickle: SETITEM on a non-dict at byte %zu", at_byte(v));
		set_item(v, t, &x, &y);
		return LCP_OK;
	case 'u':                                      /* SETITEMS */
		if ((e = pop_mark(v, &items, &n)))
			return e;
		if (n % 2)
			return bad(v, "pickle: odd SETITEMS");
		if ((e = top(v, &t, "SETITEMS")))
			return e;
		if (t->kind != V_DICT && t->kind != V_ODICT)
			return bad(v, "pickle: SETITEMS on a non-dict at byte %zu", at_byte(v));
		for (size_t i = 0; i < n; i += 2)
			set_item(v, t, &v->stack[items + i], &v->stack[items + i + 1]);
		return LCP_OK;
	case 'q': NEED(1); return memo_put(v, a[0]);
	case 'r': NEED(4); return memo_put(v, lcp_load_le32(a));
	case 'h': NEED(1); return memo_get(v, a[0]);
	case 'j': NEED(4); return memo_get(v, lcp_load_le32(a));
	case 'Q':                                      /* BINPERSID */
		if ((e = pop(v, &x)))
			return e;
		return persistent_load(v, &x);
	case 'R': return reduce(v);
	case 'b':                                      /* BUILD: of a tensor, parameter or OrderedDict */
		if ((e = pop(v, &x)) || (e = top(v, &t, "BUILD")))
			return e;
		if (t->kind != V_TENSOR && t->kind != V_ODICT)
			return bad(v, "pickle: BUILD of a value that is no tensor, parameter or OrderedDict at byte %zu",
				   at_byte(v));
		return LCP_OK;
	case 0x81:                                     /* NEWOBJ: torch.nn.Parameter(*args) only */
		if ((e = pop(v, &x)) || (e = pop(v, &y)))
			return e;
		if (y.kind != V_GLOBAL || gkind_of(&y) != G_PARAMETER)
			return bad(v, "pickle: NEWOBJ of a class other than Parameter at byte %zu", at_byte(v));
		if (kept_tuple(&x, 1) && item(v, &x, 0)->kind == V_TENSOR)
			return push(v, *item(v, &x, 0));
		return push_kind(v, V_OBJ);
	case '.':                                      /* STOP: returns the top value */
		if ((e = top(v, &t, "STOP")))
			return e;
		*stop = true;
		return LCP_OK;
	default:
		return bad(v, "pickle: unsupported opcode 0x%02x at byte %zu", op, at_byte(v) - 1);
	}
#undef NEED
}

void pkl_result_free(struct pkl_result *r)
{
	lcp_free(r->storages);
	lcp_free(r->dims);
	memset(r, 0, sizeof *r);
}

lcp_err pkl_scan(const uint8_t *data, size_t len, struct pkl_result *out, char *why, size_t why_len)
{
	memset(out, 0, sizeof *out);
	struct vm v;
	memset(&v, 0, sizeof v);
	v.p = v.start = data;
	v.end = data + len;
	v.res = out;
	v.why = why;
	v.why_len = why_len;
	v.seed = fmt_hash_seed();
	lcp_err e = LCP_OK;
	bool stop = false;
	/* Offsets into the pickle are kept in PKL_OFF_BITS bits. */
	if (len > PKL_MAX_BYTES)
		e = bad(&v, "pickle: %zu bytes over the limit of %u", len, PKL_MAX_BYTES);
	while (!e && !stop) {
		if (v.p >= v.end) {
			e = bad(&v, "pickle: no STOP opcode");
			break;
		}
		uint8_t op = *v.p++;
		e = step(&v, op, &stop);
	}
	lcp_free(v.stack);
	lcp_free(v.marks);
	lcp_free(v.memo);
	lcp_free(v.pool);
	lcp_free(v.ints);
	lcp_free(v.slots);
	if (e)
		pkl_result_free(out);
	return e;
}
