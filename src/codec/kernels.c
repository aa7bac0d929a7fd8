/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The reference and baseline decode kernels, and the run-time choice of a
 * kernel set (kernels.h).
 */
#include "codec/kernels.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "codec/codec_format.h"
#include "codec/half.h"
#include "codec/quant.h"
#include "common/le.h"

/* Values dequantized per pass into a stack buffer before they are stored. */
#define STAGE 256u

/* A run group piece by group piece (at most STAGE values each): values by
 * dequant (lcp_dequant_ref or its SSE2 twin lcp_dequant; the _dq pair with
 * dependent quantization), the low-rank term
 * by lcp_codec_lr_segment (shared with the encoder), narrowing by the scalar
 * functions of half.h (ref) or their SSE2 array forms. */
static void run_generic(const struct lcp_dequant_run *r, enum lcp_dtype dt, bool ref)
{
	float y[STAGE], l[STAGE];
	uint16_t h[STAGE];
	unsigned eb = lcp_codec_elem_bytes(dt);
	uint32_t i = 0, g = 0, in_group = r->phase;
	while (i < r->n) {
		uint32_t len = r->group_size - in_group;
		if (len > r->n - i)
			len = r->n - i;
		if (len > STAGE)
			len = STAGE;
		if (r->cls)
			(ref ? lcp_dequant_dq_ref : lcp_dequant_dq)(r->codes + i, r->cls + i, len, r->sd[g],
								    (int)r->off[g], y);
		else
			(ref ? lcp_dequant_ref : lcp_dequant)(r->codes + i, len, r->sd[g], (int)r->off[g], y);
		if (r->rank) {
			lcp_codec_lr_segment(r->u, r->vt, r->cols, r->rank, r->col + i, len, l);
			for (uint32_t j = 0; j < len; j++)
				y[j] = y[j] + l[j];
		}
		uint8_t *o = r->out + (size_t)i * eb;
		if (dt == LCP_DTYPE_F32) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
			memcpy(o, y, (size_t)len * 4); /* already the stored byte order */
#else
			for (uint32_t j = 0; j < len; j++)
				lcp_store_lef32(o + 4 * j, y[j]);
#endif
		} else if (dt == LCP_DTYPE_F64) {
			for (uint32_t j = 0; j < len; j++)
				lcp_store_lef64(o + 8 * j, (double)y[j]);
		} else {
			if (ref)
				for (uint32_t j = 0; j < len; j++)
					h[j] = dt == LCP_DTYPE_F16 ? lcp_f16_from_f32(y[j]) : lcp_bf16_from_f32(y[j]);
			else if (dt == LCP_DTYPE_F16)
				lcp_f16_from_f32_n(y, h, len);
			else
				lcp_bf16_from_f32_n(y, h, len);
			for (uint32_t j = 0; j < len; j++)
				lcp_store_le16(o + 2 * j, h[j]);
		}
		i += len;
		in_group += len;
		if (in_group == r->group_size) {
			in_group = 0;
			g++;
		}
	}
}

static void ref_store(const struct lcp_dequant_run *r, enum lcp_dtype dt)
{
	run_generic(r, dt, true);
}

void lcp_dequant_store_baseline(const struct lcp_dequant_run *r, enum lcp_dtype dt)
{
	run_generic(r, dt, false);
}

void lcp_side_params_ref(const struct lcp_side_params *p)
{
	const uint8_t *side = p->side;
	uint64_t ng = p->ng;
	for (uint64_t i = 0; i < p->count; i++) {
		uint64_t g = p->g0 + i;
		uint16_t sc = p->sbytes == 2 ? (uint16_t)(side[g] << 8 | side[ng + g]) : side[g];
		uint8_t aux = side[p->sbytes * ng + g];
		float s;
		if (p->sbytes == 1) {
			s = p->scale8[sc];
		} else {
			unsigned e = 65535u - sc, oct = (e + 255) >> 8;
			s = sc ? lcp_qscale_pow2(p->frac16[(oct << 8) - e], oct) : 0.0f;
		}
		p->sd[i] = p->symmetric && aux ? -s : s;
		p->off[i] = p->symmetric ? p->sym_off : (float)aux;
	}
}

void lcp_dq_classes_ref(const uint8_t *codes, uint32_t n, uint8_t *cls)
{
	uint8_t state[LCP_DQ_CHAINS] = {0};
	for (uint32_t i = 0; i < n; i++) {
		uint8_t *s = &state[i % LCP_DQ_CHAINS];
		cls[i] = (uint8_t)(*s >> 1);
		*s = (uint8_t)lcp_dq_next(*s, codes[i] & 1u);
	}
}

void lcp_dq_classes_continue(const uint8_t *codes, uint32_t n, uint32_t *qp, uint32_t *s0p,
			     uint8_t *cls)
{
	uint32_t q = *qp, s0 = *s0p, i = 0; /* bit l: chain l's class bit, low bit */
#ifdef __SSE2__
	const __m128i bit = _mm_set_epi8((char)0x80, 0x40, 0x20, 0x10, 8, 4, 2, 1, (char)0x80, 0x40,
					 0x20, 0x10, 8, 4, 2, 1);
	for (; i + LCP_DQ_CHAINS <= n; i += LCP_DQ_CHAINS) {
		__m128i c = _mm_loadu_si128((const __m128i *)(const void *)(codes + i));
		/* bit 0 of each byte to its sign bit: the parities as a mask */
		uint32_t p = (uint32_t)_mm_movemask_epi8(_mm_slli_epi16(c, 7));
		/* q's bits spread to bytes: each half broadcasts its byte of q,
		 * then byte l keeps 1 where bit l % 8 is set */
		__m128i v = _mm_set_epi64x((long long)((q >> 8) * 0x0101010101010101ull),
					   (long long)((q & 0xffu) * 0x0101010101010101ull));
		v = _mm_and_si128(_mm_cmpeq_epi8(_mm_and_si128(v, bit), bit), _mm_set1_epi8(1));
		_mm_storeu_si128((__m128i *)(void *)(cls + i), v);
		uint32_t nq = s0 ^ p;
		s0 = q;
		q = nq;
	}
#endif
	for (; i < n; i++) {
		unsigned l = i % LCP_DQ_CHAINS;
		uint32_t p = codes[i] & 1u;
		cls[i] = (uint8_t)(q >> l & 1u);
		uint32_t nq = (s0 >> l & 1u) ^ p;
		s0 = (s0 & ~(1u << l)) | (q & (1u << l));
		q = (q & ~(1u << l)) | nq << l;
	}
	*qp = q;
	*s0p = s0;
}

void lcp_dq_classes_fast(const uint8_t *codes, uint32_t n, uint8_t *cls)
{
	uint32_t q = 0, s0 = 0;
	lcp_dq_classes_continue(codes, n, &q, &s0, cls);
}

void lcp_dequant_store_dq(void (*store)(const struct lcp_dequant_run *, enum lcp_dtype),
			  const struct lcp_dequant_run *r, enum lcp_dtype dt, uint32_t *q,
			  uint32_t *s0)
{
	uint8_t cls[STAGE];
	unsigned eb = lcp_codec_elem_bytes(dt);
	for (uint32_t i = 0; i < r->n; i += STAGE) {
		struct lcp_dequant_run p = *r;
		p.n = r->n - i < STAGE ? r->n - i : STAGE;
		p.codes = r->codes + i;
		p.cls = cls;
		p.phase = (uint32_t)((r->phase + i) % r->group_size);
		p.sd = r->sd + (r->phase + i) / r->group_size;
		p.off = r->off + (r->phase + i) / r->group_size;
		p.col = r->col + i;
		p.out = r->out + (size_t)i * eb;
		lcp_dq_classes_continue(p.codes, p.n, q, s0, cls);
		store(&p, dt);
	}
}


void lcp_alias_slot_table(const struct lcp_rans_dec *d, struct lcp_rans_dec *slots)
{
	/* a bucket's two runs of slots, each a base entry and rank + 1 a slot */
	for (uint32_t u = 0; u < LCP_ALIAS_BUCKETS; u++)
		for (uint32_t side = 0; side < 2; side++) {
			uint32_t e = d->entry[side][u], code = e & 0x7fu ? (e & 0x7fu) + 64u : 0u;
			uint32_t lo = side ? d->split[u] : 0, end = side ? LCP_ALIAS_SPAN : d->split[u];
			uint32_t v = code | (e >> 7 & 0xfffu) << 8 | (lo + (e >> 19) - LCP_ALIAS_SPAN) << 20;
			for (uint32_t *at = slots->slot + u * LCP_ALIAS_SPAN; lo < end; lo++, v += 1u << 20)
				at[lo] = v;
		}
	slots->alias = false;
}

/* One step of an alias block on nl lanes through its slot table, escapes
 * included: the entries first, then the escapes' words, then the state
 * updates and renormalizations. False when an escape word is above 255. */
static bool alias_step_escapes(const uint32_t *slot, unsigned nl, uint32_t *x, const uint8_t **p,
			       uint8_t *sym)
{
	uint32_t e[LCP_RANS_MAX_LANES];
	for (unsigned l = 0; l < nl; l++)
		e[l] = slot[x[l] & (LCP_RANS_SCALE - 1)];
	for (unsigned l = 0; l < nl; l++) {
		if (e[l] & 0xffu)
			continue;
		uint32_t w = lcp_load_le16(*p);
		if (w > 255)
			return false;
		e[l] |= w; /* its symbol byte was 0 */
		*p += 2;
	}
	for (unsigned l = 0; l < nl; l++) {
		uint32_t v = (e[l] >> 8 & 0xfffu) * (x[l] >> LCP_RANS_PROB_BITS) + (e[l] >> 20);
		if (v < LCP_RANS_LOW) {
			v = v << 16 | lcp_load_le16(*p);
			*p += 2;
		}
		sym[l] = (uint8_t)e[l];
		x[l] = v;
	}
	return true;
}

/* The same, as lcp_rans_decode_scalar's step where no lane escapes (the
 * common case: one loop, a branch-free renormalization), else again from
 * the step's start by alias_step_escapes: 1.3x as fast into F32 as two
 * loops every step, on the decode benchmark's matrix. */
static inline bool alias_step_scalar(const uint32_t *slot, unsigned nl, uint32_t *x,
				     const uint8_t **p, uint8_t *sym)
{
	uint32_t x0[LCP_RANS_MAX_LANES], zero = 0;
	const uint8_t *p0 = *p;
	memcpy(x0, x, nl * sizeof *x);
	for (unsigned l = 0; l < nl; l++) {
		uint32_t e = slot[x[l] & (LCP_RANS_SCALE - 1)];
		uint32_t v = (e >> 8 & 0xfffu) * (x[l] >> LCP_RANS_PROB_BITS) + (e >> 20);
		uint32_t w = lcp_load_le16(*p), mask = 0u - (uint32_t)(v < LCP_RANS_LOW);
		sym[l] = (uint8_t)e;
		zero |= (e & 0xffu) - 1u; /* bit 31 set by an escape's symbol 0 */
		x[l] = (v & ~mask) | ((v << 16 | w) & mask);
		*p += 2 * (mask & 1);
	}
	if (!(zero >> 31))
		return true;
	memcpy(x, x0, nl * sizeof *x);
	*p = p0;
	return alias_step_escapes(slot, nl, x, p, sym);
}

/* One step of a rANS block on nl lanes (the plain-C set's loop): symbols
 * to sym, states x updated, words from *p, renormalization by mask. */
static inline void rans_step_scalar(const uint32_t *slot, unsigned nl, uint32_t *x,
				    const uint8_t **p, uint8_t *sym)
{
	for (unsigned l = 0; l < nl; l++) {
		uint32_t e = slot[x[l] & (LCP_RANS_SCALE - 1)];
		uint32_t v = (e >> 8 & 0xfffu) * (x[l] >> LCP_RANS_PROB_BITS) + (e >> 20);
		/* Select by mask: compilers turn ?: back into a branch. */
		uint32_t w = lcp_load_le16(*p), mask = 0u - (uint32_t)(v < LCP_RANS_LOW);
		sym[l] = (uint8_t)e;
		x[l] = (v & ~mask) | ((v << 16 | w) & mask);
		*p += 2 * (mask & 1);
	}
}

/* lcp_rans_decode_scalar, or (alias) lcp_alias_decode_scalar. */
static lcp_err decode_scalar(const struct lcp_rans_block *b, unsigned nb, unsigned lanes,
			     const uint8_t *readable_end, bool alias)
{
	struct lcp_rans_dec slots; /* alias: 16 KiB on the stack, no allocation per call */
	for (unsigned k = 0; k < nb; k++) {
		uint32_t x[LCP_RANS_MAX_LANES];
		struct lcp_rans_cursor cur;
		if (b[k].len < 4u * lanes)
			return LCP_ERR_FORMAT;
		if (alias && (k == 0 || b[k].table != b[k - 1].table))
			lcp_alias_slot_table(b[k].table, &slots);
		const uint32_t *slot = alias ? slots.slot : b[k].table->slot;
		for (unsigned l = 0; l < lanes; l++)
			x[l] = lcp_load_le32(b[k].in + 4u * l);
		lcp_rans_cursor_init(&cur, &b[k], 4u * lanes, readable_end);
		uint32_t t = 0, steps = b[k].stop / lanes;
		while (t < steps) {
			uint32_t run = lcp_rans_run(&cur, 1, readable_end, steps - t,
						    alias ? LCP_ALIAS_STEP_BYTES : LCP_RANS_STEP_BYTES);
			if (run == 0)
				break;
			/* Locals, not cur.p and b[k].out directly: byte stores may
			 * alias anything, and would make the compiler reload them. */
			const uint8_t *p = cur.p;
			for (uint32_t j = 0; j < run; j++, t++) {
				uint8_t sym[LCP_RANS_MAX_LANES];
				if (!alias)
					rans_step_scalar(slot, lanes, x, &p, sym);
				else if (!alias_step_scalar(slot, lanes, x, &p, sym))
					return LCP_ERR_FORMAT;
				memcpy(b[k].out + (size_t)t * lanes, sym, lanes);
			}
			cur.p = p;
		}
		lcp_err err = lcp_rans_finish(&b[k], lanes, x, cur.p, cur.end, t * lanes);
		if (err)
			return err;
	}
	return LCP_OK;
}

lcp_err lcp_rans_decode_scalar(const struct lcp_rans_block *b, unsigned nb, unsigned lanes,
			       const uint8_t *readable_end)
{
	return decode_scalar(b, nb, lanes, readable_end, false);
}

lcp_err lcp_alias_decode_scalar(const struct lcp_rans_block *b, unsigned nb, unsigned lanes,
				const uint8_t *readable_end)
{
	return decode_scalar(b, nb, lanes, readable_end, true);
}

void lcp_pairs_unpair(const uint8_t *sym, const uint8_t *nib, uint64_t e0, uint64_t e1,
		      uint8_t *codes)
{
	for (uint64_t i = e0; i < e1; i++) {
		uint64_t s = i % 32u, p = 16u * (i / 32u) + s % 16u;
		codes[i] = (uint8_t)(s < 16u ? (sym[p] & 15u) << 4 | (nib[p] & 15u)
					     : (sym[p] & 0xf0u) | nib[p] >> 4);
	}
}

static const struct lcp_kernels kernels_ref = { "ref", lcp_rans_decode_ref, NULL, ref_store,
						lcp_side_params_ref, lcp_dq_classes_ref,
						lcp_rans_decode_ref, NULL };

static const struct lcp_kernels kernels_baseline = { "baseline", lcp_rans_decode_scalar, NULL,
						     lcp_dequant_store_baseline, lcp_side_params_ref,
						     lcp_dq_classes_fast, lcp_alias_decode_scalar, NULL };

#ifdef LCP_HAVE_AVX512_KERNELS
static bool cpu_has(const char *set)
{
	__builtin_cpu_init();
	if (strcmp(set, "avx2") == 0)
		return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("popcnt");
	bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
		      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("popcnt") &&
		      __builtin_cpu_supports("fma");
	if (strcmp(set, "avx512bf16") == 0)
		return avx512 && __builtin_cpu_supports("avx512bf16");
	return avx512;
}
#endif

const struct lcp_kernels *lcp_kernels_named(const char *name)
{
	if (!name)
		return NULL;
	if (strcmp(name, "ref") == 0)
		return &kernels_ref;
	if (strcmp(name, "baseline") == 0)
		return &kernels_baseline;
#ifdef LCP_HAVE_AVX512_KERNELS
	if (strcmp(name, "avx512bf16") == 0 && cpu_has("avx512bf16"))
		return &lcp_kernels_avx512bf16;
	if (strcmp(name, "avx512") == 0 && cpu_has("avx512"))
		return &lcp_kernels_avx512;
	if (strcmp(name, "avx2") == 0 && cpu_has("avx2"))
		return &lcp_kernels_avx2;
#endif
	return NULL;
}

static const struct lcp_kernels *chosen;
static const struct lcp_kernels *forced;
static pthread_once_t choose_once = PTHREAD_ONCE_INIT;

static void choose(void)
{
	chosen = lcp_kernels_named(getenv("LCPFS_DECODE"));
	if (!chosen)
		chosen = lcp_kernels_named("avx512bf16");
	if (!chosen)
		chosen = lcp_kernels_named("avx512");
	if (!chosen)
		chosen = lcp_kernels_named("avx2");
	if (!chosen)
		chosen = &kernels_baseline;
}

const struct lcp_kernels *lcp_kernels(void)
{
	if (forced)
		return forced;
	pthread_once(&choose_once, choose);
	return chosen;
}

void lcp_kernels_force(const struct lcp_kernels *k)
{
	forced = k;
}
