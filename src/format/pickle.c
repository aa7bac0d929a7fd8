/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A pickle stack machine that only builds inert values: ints, strings,
 * tuples, global names, storages (from persistent ids) and tensors (from
 * _rebuild_tensor_v2 calls); every other call or object becomes an opaque
 * value. Enough for torch.save's data.pkl, and safe on hostile input: every
 * read is bounds-checked, the memo is capped, the stack is heap-grown, and
 * nodes come from an arena freed at once.
 */
#include "format/pickle.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "common/le.h"

/* A memo index beyond this is not from torch.save; it would only cost memory. */
#define PKL_MAX_MEMO (1u << 22)
#define PKL_ARENA_BLOCK 1024
#define PKL_MAX_KEY 1024

enum nkind {
	N_MARK, N_NONE, N_BOOL, N_INT, N_FLOAT, N_STR, N_BYTES, N_TUPLE, N_LIST, N_DICT,
	N_GLOBAL, N_STORAGE, N_TENSOR, N_OBJ,
};

struct node {
	enum nkind kind;
	int64_t i;               /* INT value; STORAGE/TENSOR: index in the result */
	const uint8_t *s;        /* STR/BYTES bytes; GLOBAL: module */
	size_t slen;
	const uint8_t *s2;       /* GLOBAL: name */
	size_t s2len;
	struct node **items;     /* TUPLE items (owned by the node) */
	size_t n;
};

struct vm {
	const uint8_t *p, *end, *start;
	struct node **blocks;
	size_t nblocks, used;
	struct node **stack;
	size_t sp, scap;
	struct node **memo;
	size_t mcap, mcount;
	struct pkl_result *res;
	size_t scap_res, tcap_res;
	char *why;
	size_t why_len;
};

static struct node mark_node = {.kind = N_MARK};

static lcp_err bad(struct vm *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static lcp_err bad(struct vm *v, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(v->why, v->why_len, fmt, ap);
	va_end(ap);
	return LCP_ERR_FORMAT;
}

static struct node *new_node(struct vm *v, enum nkind kind)
{
	if (v->nblocks == 0 || v->used == PKL_ARENA_BLOCK) {
		struct node **nb = lcp_realloc(v->blocks, (v->nblocks + 1) * sizeof *nb);
		if (!nb)
			return NULL;
		v->blocks = nb;
		v->blocks[v->nblocks] = lcp_calloc(PKL_ARENA_BLOCK, sizeof(struct node));
		if (!v->blocks[v->nblocks])
			return NULL;
		v->nblocks++;
		v->used = 0;
	}
	struct node *n = &v->blocks[v->nblocks - 1][v->used++];
	n->kind = kind;
	return n;
}

static lcp_err push(struct vm *v, struct node *n)
{
	if (!n)
		return LCP_ERR_NOMEM;
	if (v->sp == v->scap) {
		size_t nc = v->scap ? v->scap * 2 : 64;
		struct node **ns = lcp_realloc(v->stack, nc * sizeof *ns);
		if (!ns)
			return LCP_ERR_NOMEM;
		v->stack = ns;
		v->scap = nc;
	}
	v->stack[v->sp++] = n;
	return LCP_OK;
}

static lcp_err push_new(struct vm *v, enum nkind kind)
{
	return push(v, new_node(v, kind));
}

static lcp_err pop(struct vm *v, struct node **out)
{
	if (v->sp == 0 || v->stack[v->sp - 1]->kind == N_MARK)
		return bad(v, "pickle stack underflow at byte %zu", (size_t)(v->p - v->start));
	*out = v->stack[--v->sp];
	return LCP_OK;
}

/* Pops everything above the topmost mark and the mark; *items points at them
 * inside the stack (valid until the next push). */
static lcp_err pop_mark(struct vm *v, struct node ***items, size_t *n)
{
	size_t i = v->sp;
	while (i > 0 && v->stack[i - 1]->kind != N_MARK)
		i--;
	if (i == 0)
		return bad(v, "pickle: no mark at byte %zu", (size_t)(v->p - v->start));
	*items = &v->stack[i];
	*n = v->sp - i;
	v->sp = i - 1;
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

static lcp_err make_tuple(struct vm *v, struct node **items, size_t n)
{
	struct node *t = new_node(v, N_TUPLE);
	if (!t)
		return LCP_ERR_NOMEM;
	if (n) {
		t->items = lcp_calloc(n, sizeof *t->items);
		if (!t->items)
			return LCP_ERR_NOMEM;
		memcpy(t->items, items, n * sizeof *items);
	}
	t->n = n;
	return push(v, t);
}

static bool str_is(const struct node *n, const char *s)
{
	return n->kind == N_STR && n->slen == strlen(s) && memcmp(n->s, s, n->slen) == 0;
}

static bool global_is(const struct node *n, const char *mod, const char *name)
{
	return n->kind == N_GLOBAL && n->slen == strlen(mod) && memcmp(n->s, mod, n->slen) == 0 &&
	       n->s2len == strlen(name) && memcmp(n->s2, name, n->s2len) == 0;
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

static char *dup_bytes(const uint8_t *s, size_t n)
{
	char *d = lcp_malloc(n + 1);
	if (d) {
		memcpy(d, s, n);
		d[n] = '\0';
	}
	return d;
}

/* ('storage', torch.XStorage, key, location, numel) -> a STORAGE node. */
static lcp_err persistent_load(struct vm *v, struct node *pid)
{
	if (pid->kind != N_TUPLE || pid->n != 5 || !str_is(pid->items[0], "storage") ||
	    pid->items[1]->kind != N_GLOBAL || pid->items[2]->kind != N_STR ||
	    pid->items[4]->kind != N_INT || pid->items[4]->i < 0)
		return bad(v, "pickle: unsupported persistent id at byte %zu", (size_t)(v->p - v->start));
	const struct node *type = pid->items[1], *key = pid->items[2];
	if (key->slen == 0 || key->slen > PKL_MAX_KEY || memchr(key->s, '\0', key->slen) ||
	    memchr(key->s, '/', key->slen))
		return bad(v, "pickle: bad storage key at byte %zu", (size_t)(v->p - v->start));
	struct pkl_result *r = v->res;
	size_t idx = r->nstorages;
	for (size_t i = 0; i < r->nstorages; i++)
		if (strlen(r->storages[i].key) == key->slen && memcmp(r->storages[i].key, key->s, key->slen) == 0)
			idx = i;
	char tname[32];
	snprintf(tname, sizeof tname, "%.*s", (int)(type->s2len < 31 ? type->s2len : 31), (const char *)type->s2);
	if (idx < r->nstorages) {
		if (strcmp(r->storages[idx].type_name, tname) != 0 || r->storages[idx].numel != (uint64_t)pid->items[4]->i)
			return bad(v, "pickle: storage '%.40s' declared twice differently", r->storages[idx].key);
	} else {
		if (r->nstorages == v->scap_res) {
			size_t nc = v->scap_res ? v->scap_res * 2 : 16;
			struct pkl_storage *ns = lcp_realloc(r->storages, nc * sizeof *ns);
			if (!ns)
				return LCP_ERR_NOMEM;
			r->storages = ns;
			v->scap_res = nc;
		}
		struct pkl_storage *st = &r->storages[idx];
		memset(st, 0, sizeof *st);
		st->key = dup_bytes(key->s, key->slen);
		if (!st->key)
			return LCP_ERR_NOMEM;
		r->nstorages++;
		memcpy(st->type_name, tname, sizeof tname);
		st->numel = (uint64_t)pid->items[4]->i;
		/* Only torch's own classes are known; a same-named class elsewhere is not. */
		bool torch_mod = type->slen == 5 && memcmp(type->s, "torch", 5) == 0;
		for (size_t i = 0; torch_mod && i < sizeof storage_types / sizeof storage_types[0]; i++) {
			if (strcmp(tname, storage_types[i].name) == 0) {
				st->elem_bytes = storage_types[i].bytes;
				st->is_float = storage_types[i].is_float;
				st->dtype = storage_types[i].dtype;
			}
		}
	}
	struct node *n = new_node(v, N_STORAGE);
	if (!n)
		return LCP_ERR_NOMEM;
	n->i = (int64_t)idx;
	return push(v, n);
}

static bool int_tuple(const struct node *t, uint64_t *out, uint32_t *n)
{
	if (t->kind != N_TUPLE || t->n > LCP_MAX_DIMS)
		return false;
	for (size_t i = 0; i < t->n; i++) {
		if (t->items[i]->kind != N_INT || t->items[i]->i < 0)
			return false;
		out[i] = (uint64_t)t->items[i]->i;
	}
	*n = (uint32_t)t->n;
	return true;
}

/* _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, hooks[, metadata]) */
static lcp_err rebuild_tensor(struct vm *v, struct node *args)
{
	if (args->kind != N_TUPLE || args->n < 4 || args->items[0]->kind != N_STORAGE)
		return push_new(v, N_OBJ);
	struct pkl_result *r = v->res;
	if (r->ntensors == v->tcap_res) {
		size_t nc = v->tcap_res ? v->tcap_res * 2 : 16;
		struct pkl_tensor *nt = lcp_realloc(r->tensors, nc * sizeof *nt);
		if (!nt)
			return LCP_ERR_NOMEM;
		r->tensors = nt;
		v->tcap_res = nc;
	}
	size_t ti = r->ntensors++;
	struct pkl_tensor *t = &r->tensors[ti];
	memset(t, 0, sizeof *t);
	t->storage = (size_t)args->items[0]->i;
	uint32_t ns = 0;
	t->shape_ok = args->items[1]->kind == N_INT && args->items[1]->i >= 0 &&
		      int_tuple(args->items[2], t->dims, &t->ndims) &&
		      int_tuple(args->items[3], t->strides, &ns) && ns == t->ndims;
	t->offset = t->shape_ok ? (uint64_t)args->items[1]->i : 0;
	struct pkl_storage *st = &r->storages[t->storage];
	st->uses++;
	st->tensor = ti;
	struct node *n = new_node(v, N_TENSOR);
	if (!n)
		return LCP_ERR_NOMEM;
	n->i = (int64_t)ti;
	return push(v, n);
}

static lcp_err reduce(struct vm *v)
{
	struct node *args, *fn;
	lcp_err e = pop(v, &args);
	if (!e)
		e = pop(v, &fn);
	if (e)
		return e;
	if (global_is(fn, "torch._utils", "_rebuild_tensor_v2"))
		return rebuild_tensor(v, args);
	if ((global_is(fn, "torch._utils", "_rebuild_parameter") ||
	     global_is(fn, "torch._utils", "_rebuild_parameter_with_state")) &&
	    args->kind == N_TUPLE && args->n >= 1 && args->items[0]->kind == N_TENSOR)
		return push(v, args->items[0]);
	if (global_is(fn, "collections", "OrderedDict"))
		return push_new(v, N_DICT);
	return push_new(v, N_OBJ);
}

/* Remembers the dict key a tensor is stored under (the first one wins). */
static lcp_err set_item(struct vm *v, struct node *target, struct node *key, struct node *val)
{
	if (target->kind != N_DICT || key->kind != N_STR || val->kind != N_TENSOR)
		return LCP_OK;
	struct pkl_tensor *t = &v->res->tensors[val->i];
	if (t->name || key->slen > PKL_MAX_KEY)
		return LCP_OK;
	t->name = dup_bytes(key->s, key->slen);
	return t->name ? LCP_OK : LCP_ERR_NOMEM;
}

static lcp_err memo_put(struct vm *v, uint64_t idx)
{
	if (v->sp == 0 || v->stack[v->sp - 1]->kind == N_MARK)
		return bad(v, "pickle: memoizing nothing at byte %zu", (size_t)(v->p - v->start));
	if (idx >= PKL_MAX_MEMO)
		return bad(v, "pickle: memo index %llu too large", (unsigned long long)idx);
	if (idx >= v->mcap) {
		size_t nc = v->mcap ? v->mcap : 64;
		while (nc <= idx)
			nc *= 2;
		struct node **nm = lcp_realloc(v->memo, nc * sizeof *nm);
		if (!nm)
			return LCP_ERR_NOMEM;
		memset(nm + v->mcap, 0, (nc - v->mcap) * sizeof *nm);
		v->memo = nm;
		v->mcap = nc;
	}
	v->memo[idx] = v->stack[v->sp - 1];
	if (idx >= v->mcount)
		v->mcount = idx + 1;
	return LCP_OK;
}

static lcp_err memo_get(struct vm *v, uint64_t idx)
{
	if (idx >= v->mcap || !v->memo[idx])
		return bad(v, "pickle: memo index %llu unset", (unsigned long long)idx);
	return push(v, v->memo[idx]);
}

static lcp_err push_str(struct vm *v, enum nkind kind, uint64_t n)
{
	const uint8_t *s;
	if (!take(v, &s, n))
		return bad(v, "pickle: string runs past the end");
	struct node *x = new_node(v, kind);
	if (!x)
		return LCP_ERR_NOMEM;
	x->s = s;
	x->slen = (size_t)n;
	return push(v, x);
}

static lcp_err push_int(struct vm *v, int64_t i)
{
	struct node *x = new_node(v, N_INT);
	if (!x)
		return LCP_ERR_NOMEM;
	x->i = i;
	return push(v, x);
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
	struct node *x = new_node(v, N_GLOBAL);
	if (!x)
		return LCP_ERR_NOMEM;
	x->s = m;
	x->slen = (size_t)(nl - m);
	x->s2 = nm;
	x->s2len = (size_t)(nl2 - nm);
	v->p = nl2 + 1;
	return push(v, x);
}

static lcp_err step(struct vm *v, uint8_t op, bool *stop)
{
	const uint8_t *a;
	struct node *x, *y, *z, **items;
	size_t n;
	lcp_err e;
#define NEED(k) do { if (!take(v, &a, (k))) return bad(v, "pickle: opcode 0x%02x truncated", op); } while (0)
	switch (op) {
	case 0x80: NEED(1); return LCP_OK;            /* PROTO */
	case 0x95: NEED(8); return LCP_OK;            /* FRAME */
	case '}': return push_new(v, N_DICT);         /* EMPTY_DICT */
	case ']': return push_new(v, N_LIST);         /* EMPTY_LIST */
	case ')': return make_tuple(v, NULL, 0);      /* EMPTY_TUPLE */
	case 0x8f: return push_new(v, N_OBJ);         /* EMPTY_SET */
	case '(': return push(v, &mark_node);         /* MARK */
	case 'X': NEED(4); return push_str(v, N_STR, lcp_load_le32(a));
	case 0x8c: NEED(1); return push_str(v, N_STR, a[0]);
	case 0x8d: NEED(8); return push_str(v, N_STR, lcp_load_le64(a));
	case 'U': NEED(1); return push_str(v, N_BYTES, a[0]);
	case 'T': NEED(4); return push_str(v, N_BYTES, lcp_load_le32(a));
	case 'C': NEED(1); return push_str(v, N_BYTES, a[0]);
	case 'B': NEED(4); return push_str(v, N_BYTES, lcp_load_le32(a));
	case 0x8e: NEED(8); return push_str(v, N_BYTES, lcp_load_le64(a));
	case 'J': NEED(4); return push_int(v, (int32_t)lcp_load_le32(a));
	case 'K': NEED(1); return push_int(v, a[0]);
	case 'M': NEED(2); return push_int(v, lcp_load_le16(a));
	case 0x8a: {                                   /* LONG1 */
		NEED(1);
		uint8_t len = a[0];
		NEED(len);
		if (len > 8)
			return push_new(v, N_OBJ);
		uint64_t u = 0;
		for (unsigned i = 0; i < len; i++)
			u |= (uint64_t)a[i] << (8 * i);
		if (len > 0 && len < 8 && (a[len - 1] & 0x80))
			u |= ~(uint64_t)0 << (8 * len);
		return push_int(v, (int64_t)u);
	}
	case 'N': return push_new(v, N_NONE);
	case 0x88: case 0x89: return push_new(v, N_BOOL);
	case 'G': NEED(8); return push_new(v, N_FLOAT);
	case 'c': return global_op(v);
	case 0x93:                                     /* STACK_GLOBAL */
		if ((e = pop(v, &y)) || (e = pop(v, &x)))
			return e;
		if (x->kind != N_STR || y->kind != N_STR)
			return bad(v, "pickle: STACK_GLOBAL of non-strings");
		if (!(z = new_node(v, N_GLOBAL)))
			return LCP_ERR_NOMEM;
		z->s = x->s;
		z->slen = x->slen;
		z->s2 = y->s;
		z->s2len = y->slen;
		return push(v, z);
	case 't':
		if ((e = pop_mark(v, &items, &n)))
			return e;
		return make_tuple(v, items, n);
	case 0x85: case 0x86: case 0x87: {            /* TUPLE1..3 */
		size_t k = (size_t)(op - 0x84);
		if (v->sp < k)
			return bad(v, "pickle stack underflow");
		for (size_t i = v->sp - k; i < v->sp; i++)
			if (v->stack[i]->kind == N_MARK)
				return bad(v, "pickle: mark inside TUPLE%zu", k);
		v->sp -= k;
		return make_tuple(v, &v->stack[v->sp], k);
	}
	case 'l':
		if ((e = pop_mark(v, &items, &n)))
			return e;
		return push_new(v, N_LIST);
	case 'a':                                      /* APPEND */
		if ((e = pop(v, &x)))
			return e;
		return v->sp ? LCP_OK : bad(v, "pickle: APPEND to nothing");
	case 'e': case 0x90:                           /* APPENDS, ADDITEMS */
		if ((e = pop_mark(v, &items, &n)))
			return e;
		return v->sp ? LCP_OK : bad(v, "pickle: APPENDS to nothing");
	case 0x91:                                     /* FROZENSET */
		if ((e = pop_mark(v, &items, &n)))
			return e;
		return push_new(v, N_OBJ);
	case 'd':
		if ((e = pop_mark(v, &items, &n)))
			return e;
		if (n % 2)
			return bad(v, "pickle: odd DICT");
		if (!(z = new_node(v, N_DICT)))
			return LCP_ERR_NOMEM;
		for (size_t i = 0; i < n; i += 2)
			if ((e = set_item(v, z, items[i], items[i + 1])))
				return e;
		return push(v, z);
	case 's':
		if ((e = pop(v, &y)) || (e = pop(v, &x)))
			return e;
		if (v->sp == 0 || v->stack[v->sp - 1]->kind == N_MARK)
			return bad(v, "pickle: SETITEM on nothing");
		return set_item(v, v->stack[v->sp - 1], x, y);
	case 'u':
		if ((e = pop_mark(v, &items, &n)))
			return e;
		if (n % 2 || v->sp == 0 || v->stack[v->sp - 1]->kind == N_MARK)
			return bad(v, "pickle: bad SETITEMS");
		for (size_t i = 0; i < n; i += 2)
			if ((e = set_item(v, v->stack[v->sp - 1], items[i], items[i + 1])))
				return e;
		return LCP_OK;
	case 'q': NEED(1); return memo_put(v, a[0]);
	case 'r': NEED(4); return memo_put(v, lcp_load_le32(a));
	case 0x94: return memo_put(v, v->mcount);      /* MEMOIZE */
	case 'h': NEED(1); return memo_get(v, a[0]);
	case 'j': NEED(4); return memo_get(v, lcp_load_le32(a));
	case 'Q':                                      /* BINPERSID */
		if ((e = pop(v, &x)))
			return e;
		return persistent_load(v, x);
	case 'R': return reduce(v);
	case 'b':                                      /* BUILD */
		if ((e = pop(v, &x)))
			return e;
		return v->sp ? LCP_OK : bad(v, "pickle: BUILD on nothing");
	case 0x81:                                     /* NEWOBJ */
		if ((e = pop(v, &x)) || (e = pop(v, &y)))
			return e;
		return push_new(v, N_OBJ);
	case 0x92:                                     /* NEWOBJ_EX */
		if ((e = pop(v, &x)) || (e = pop(v, &y)) || (e = pop(v, &z)))
			return e;
		return push_new(v, N_OBJ);
	case '0': return pop(v, &x);
	case '1': return pop_mark(v, &items, &n);
	case '2':
		if (v->sp == 0)
			return bad(v, "pickle: DUP of nothing");
		return push(v, v->stack[v->sp - 1]);
	case '.': *stop = true; return LCP_OK;
	default:
		return bad(v, "pickle: unsupported opcode 0x%02x at byte %zu", op, (size_t)(v->p - v->start - 1));
	}
#undef NEED
}

void pkl_result_free(struct pkl_result *r)
{
	for (size_t i = 0; i < r->nstorages; i++)
		lcp_free(r->storages[i].key);
	for (size_t i = 0; i < r->ntensors; i++)
		lcp_free(r->tensors[i].name);
	lcp_free(r->storages);
	lcp_free(r->tensors);
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
	lcp_err e = LCP_OK;
	bool stop = false;
	while (!e && !stop) {
		if (v.p >= v.end) {
			e = bad(&v, "pickle: no STOP opcode");
			break;
		}
		uint8_t op = *v.p++;
		e = step(&v, op, &stop);
	}
	for (size_t b = 0; b < v.nblocks; b++) {
		size_t used = b + 1 == v.nblocks ? v.used : PKL_ARENA_BLOCK;
		for (size_t i = 0; i < used; i++)
			lcp_free(v.blocks[b][i].items);
		lcp_free(v.blocks[b]);
	}
	lcp_free(v.blocks);
	lcp_free(v.stack);
	lcp_free(v.memo);
	if (e)
		pkl_result_free(out);
	return e;
}
