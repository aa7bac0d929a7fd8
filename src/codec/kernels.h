/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Decode kernels and their run-time choice. Internal to src/codec.
 *
 * "ref" is plain C with the fixed operation order that defines the
 * reconstruction (rANS symbols by lcp_rans_decode_ref, values by
 * lcp_dequant_ref, narrowing by the scalar functions of half.h). Every other
 * set computes exactly the same bytes by other means: "baseline" (SSE2 on
 * x86-64, else plain C), "avx2" (its rANS kernel; chosen at run time when
 * the CPU has AVX2 but not AVX-512), "avx512" (AVX-512 F/BW/VL, chosen
 * when the CPU has it) and "avx512bf16" (the same with the BF16 extension,
 * chosen when the CPU has that too). tests/unit/test_codec_kernels.c compares every set
 * the machine supports with "ref", bit for bit.
 */
#ifndef LCPFS_CODEC_KERNELS_H
#define LCPFS_CODEC_KERNELS_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "codec/rans.h"
#include "lcpfs/dtype.h"
#include "lcpfs/err.h"

/*
 * A run of consecutive codes of one chunk, to dequantize and store in the
 * output dtype: element i (0 <= i < n) belongs to group g = (phase + i) /
 * group_size and reconstructs as
 *   y = sd[g] * (float)(codes[i] - off[g])            (lcp_dequant_ref)
 * or, with dependent quantization (cls set: the element's class, 0 or 1,
 * quant.h), k = codes[i] - off[g],
 *   y = sd[g] * (float)(2k - sgn(k) * cls[i])          (lcp_dequant_dq_ref)
 * then
 *   y = y + l,  l = ((0 + u[0] * vt[0][col + i]) + u[1] * vt[1][col + i]) ...
 * the second line only with a low-rank term (rank > 0; the run then lies
 * within one row, vt[k] = vt + k * cols), all in binary32; stored
 * little-endian at out + i * element bytes, any alignment; F16/BF16 round to
 * nearest even (half.h), F64 is exact. off[g] holds a small integer (0..255)
 * as a float.
 */
struct lcp_dequant_run {
	const uint8_t *codes;
	uint32_t n;
	uint32_t group_size;
	uint32_t phase;    /* elements of group 0 that precede the run, < group_size */
	const float *sd;   /* per group */
	const float *off;  /* per group */
	const uint8_t *cls; /* dependent quantization: per element; else NULL */
	uint16_t rank;     /* low-rank term: 0 for none */
	const float *u;    /* rank values of the run's row */
	const float *vt;   /* rank x cols */
	uint64_t cols;
	uint64_t col;      /* column of element 0 */
	uint8_t *out;
};

/*
 * Dequantization fused into rANS decoding: block k of a call (b[k]) holds
 * the chunk's elements first + k * block_elems ..., and they are stored as
 * the run of them would store them (struct lcp_dequant_run, no low-rank
 * term) at out + element * element bytes. b[k].out still receives whatever
 * codes the kernel decodes in scalar code. With dependent quantization the
 * blocks start at block boundaries (their chains start there, quant.h) and
 * the kernel walks the chains' states itself. With nibbles set the blocks
 * are the pair stream of a chunk of m 8-bit codes (codec_format.h, code
 * mode 3), each decoded to its end: b[k] holds the pair symbols of element
 * block first / block_elems + k, nibbles is the chunk's nibble plane, and
 * codes (m bytes, indexed by chunk element) receives whatever codes the
 * kernel forms in scalar code.
 */
struct lcp_rans_fuse {
	const float *sd;        /* per group of the chunk, from group 0 */
	const float *off;
	uint32_t group_size;    /* a power of two >= 16 dividing block_elems */
	uint32_t block_elems;
	uint64_t first;         /* chunk element of b[0]'s first code */
	enum lcp_dtype dt;      /* F32, F16 or BF16 */
	bool dq;                /* dependent quantization (off[g] is then 128) */
	uint8_t *out;           /* where the chunk's element 0 goes */
	const uint8_t *nibbles; /* pairs: the chunk's nibble plane; else NULL */
	uint8_t *codes;         /* pairs: scratch codes of the chunk */
	uint64_t m;             /* pairs: the chunk's elements */
};

/* Pairs (code mode 3): the codes of elements [e0, e1) of one block, from
 * its pair symbols sym and nibble bytes nib (each indexed by the block's
 * pair), into codes (indexed by the block's element). The pairs that hold
 * those elements must be decoded. */
void lcp_pairs_unpair(const uint8_t *sym, const uint8_t *nib, uint64_t e0, uint64_t e1,
		      uint8_t *codes);

/*
 * The scale and offset of groups [g0, g0 + count) of a chunk, from its side
 * stream: scale codes (one plane, or for 16-bit codes a high-byte plane
 * then a low-byte plane) then the aux plane, ng bytes each. The scale of
 * code c is (quant.h) 0 for c = 0 and lcp_qscale_pow2(frac16[k], oct) with
 * e = 65535 - c, oct = ceil(e / 256), k = 256 * oct - e; for 8-bit codes
 * that is scale8[c], and with e = 255 - c, oct = ceil(e / 16), k = 16 * oct
 * - e, frac16's first 16 values. Symmetric: sd = -scale when aux != 0, off
 * = sym_off; asymmetric: sd = scale, off = aux.
 */
struct lcp_side_params {
	const uint8_t *side;
	uint64_t ng;
	unsigned sbytes;       /* bytes per scale code: 1 or 2 */
	uint64_t g0, count;
	const float *scale8;   /* 256 values, sbytes 1 */
	const float *frac16;   /* 256 values, sbytes 2; 16, sbytes 1 */
	bool symmetric;
	float sym_off;
	float *sd, *off;       /* count values each */
};

struct lcp_kernels {
	const char *name;
	/* Decodes nb blocks of one chunk (see rans.h), each with its own
	 * table; bytes before readable_end may be loaded but never change the
	 * result. */
	lcp_err (*rans_decode)(const struct lcp_rans_block *b, unsigned nb, unsigned lanes,
			       const uint8_t *readable_end);
	/* rans_decode with the dequantization of f fused in; NULL when a set
	 * has none (the decoder then decodes, then runs dequant_store). */
	lcp_err (*rans_decode_fused)(const struct lcp_rans_block *b, unsigned nb, unsigned lanes,
				     const uint8_t *readable_end, const struct lcp_rans_fuse *f);
	/* Reconstructs a run into dtype dt (F32, F16, BF16 or F64). */
	void (*dequant_store)(const struct lcp_dequant_run *r, enum lcp_dtype dt);
	/* Fills p->sd and p->off. */
	void (*side_params)(const struct lcp_side_params *p);
	/* Dependent quantization: the class (0 or 1) of each of the first n
	 * codes of a rANS block, given from the block's first code: cls[i] =
	 * state >> 1 of chain i mod 16 before code i (quant.h). */
	void (*dq_classes)(const uint8_t *codes, uint32_t n, uint8_t *cls);
	/* rans_decode and rans_decode_fused for alias streams (rans.h); the
	 * sets without SIMD alias steps decode them with lcp_rans_decode_ref
	 * and have no fused form (NULL). */
	lcp_err (*alias_decode)(const struct lcp_rans_block *b, unsigned nb, unsigned lanes,
				const uint8_t *readable_end);
	lcp_err (*alias_decode_fused)(const struct lcp_rans_block *b, unsigned nb, unsigned lanes,
				      const uint8_t *readable_end, const struct lcp_rans_fuse *f);
};

/* The reference dq_classes: each chain's state through lcp_dq_next. */
void lcp_dq_classes_ref(const uint8_t *codes, uint32_t n, uint8_t *cls);

/* dq_classes on 16 chains at once as bit masks (every set but ref): the
 * class bits q and low bits s0 of the 16 states, q' = s0 ^ parities,
 * s0' = q, which is what lcp_dq_next computes. */
void lcp_dq_classes_fast(const uint8_t *codes, uint32_t n, uint8_t *cls);

/* lcp_dq_classes_fast from chain states other than the start: *q and *s0
 * hold the 16 chains' class and low bits (bit l: chain l) before codes[0],
 * which must be a block's code 16j; they are updated past codes[n - 1]. */
void lcp_dq_classes_continue(const uint8_t *codes, uint32_t n, uint32_t *q, uint32_t *s0,
			     uint8_t *cls);

/* Stores the dependent-quantization run r (r->cls ignored) with store, in
 * pieces whose classes come from lcp_dq_classes_continue with the chain
 * states *q, *s0 before r->codes[0] (a block's code 16j). */
void lcp_dequant_store_dq(void (*store)(const struct lcp_dequant_run *, enum lcp_dtype),
			  const struct lcp_dequant_run *r, enum lcp_dtype dt, uint32_t *q,
			  uint32_t *s0);

/*
 * rANS in plain C for the baseline set, and for blocks of fewer than 16
 * lanes in the others: step by step (one symbol per lane) with a branch-free
 * renormalization (the reference's branch is a coin toss the predictor
 * loses), word loads kept inside readable memory by the cursor below; each
 * block's last symbols by the reference.
 */
lcp_err lcp_rans_decode_scalar(const struct lcp_rans_block *b, unsigned nb, unsigned lanes,
			       const uint8_t *readable_end);
/* The same for alias blocks (rans.h), through lcp_alias_slot_table: the
 * baseline set's alias_decode, and the others' for fewer than 16 lanes. */
lcp_err lcp_alias_decode_scalar(const struct lcp_rans_block *b, unsigned nb, unsigned lanes,
				const uint8_t *readable_end);
/* An alias table's map spelled out as a rANS slot table (rans.h's layout:
 * code | f << 8 | rank << 20, code 0 for the escape), for decoders that
 * look slots up one by one or by gathers. */
void lcp_alias_slot_table(const struct lcp_rans_dec *d, struct lcp_rans_dec *slots);

/* The plain-C side_params (every set but avx512 uses it, and avx512 for
 * the rare groups whose scale is subnormal). */
void lcp_side_params_ref(const struct lcp_side_params *p);

/* The plain-C run of the baseline set, for kernels that leave a dtype or a
 * case to it. */
void lcp_dequant_store_baseline(const struct lcp_dequant_run *r, enum lcp_dtype dt);

/* Bytes a SIMD rANS step of 16 lanes loads from its words and consumes, at
 * most (16 words); an alias step (rans.h) twice that (16 escapes' words,
 * then 16 renormalizations'). */
#define LCP_RANS_STEP_BYTES 32u
#define LCP_ALIAS_STEP_BYTES 64u
/* Room of a block's stack copy of its last words (lcp_rans_cursor). */
#define LCP_RANS_TAIL_PAD 128u

/*
 * Where a SIMD rANS decoder reads one block's renormalization words: p the
 * next one, end the end of the words, limit the end of what it may load.
 * Loads are whole steps' worth, so near the end of the readable memory the
 * block's last words (fewer than a step) move to tail, zero-padded: what
 * lies past the words never changes the result, and the decoder runs to the
 * block's end.
 */
struct lcp_rans_cursor {
	const uint8_t *p, *end, *limit;
	uint8_t tail[LCP_RANS_TAIL_PAD];
};

/* A cursor at the words of b, which start head bytes in. */
static inline void lcp_rans_cursor_init(struct lcp_rans_cursor *c, const struct lcp_rans_block *b,
					size_t head, const uint8_t *readable_end)
{
	c->p = b->in + head;
	c->end = b->in + b->len;
	c->limit = readable_end;
}

/* Steps the cursor allows before its load limit, moving the last words to
 * the copy when they are fewer than a step from readable_end; 0 only when a
 * damaged block has read past its copy. */
static inline size_t lcp_rans_cursor_steps(struct lcp_rans_cursor *c, const uint8_t *readable_end,
					   size_t step_bytes)
{
	size_t s = c->p <= c->limit ? (size_t)(c->limit - c->p) / step_bytes : 0;
	if (s == 0 && c->limit == readable_end && c->p <= c->end) {
		size_t rem = (size_t)(c->end - c->p); /* end <= readable_end < p + a step */
		memcpy(c->tail, c->p, rem);
		memset(c->tail + rem, 0, LCP_RANS_TAIL_PAD - rem);
		c->p = c->tail;
		c->end = c->tail + rem;
		c->limit = c->tail + LCP_RANS_TAIL_PAD;
		s = LCP_RANS_TAIL_PAD / step_bytes;
	}
	return s;
}

/* The steps (at most left) of step_bytes each that all K cursors allow; 0
 * only when a damaged block has read past its copy. */
static inline uint32_t lcp_rans_run(struct lcp_rans_cursor *cur, unsigned K,
				    const uint8_t *readable_end, uint32_t left, size_t step_bytes)
{
	size_t run = left;
	for (unsigned k = 0; k < K; k++) {
		size_t s = lcp_rans_cursor_steps(&cur[k], readable_end, step_bytes);
		run = s < run ? s : run;
	}
	return (uint32_t)run;
}

/* The set decoding uses: the fastest this CPU supports, or the one named by
 * the environment variable LCPFS_DECODE ("ref", "baseline", "avx2",
 * "avx512", "avx512bf16"; an unknown or unsupported name is ignored). Chosen once;
 * thread-safe. */
const struct lcp_kernels *lcp_kernels(void);

/* A set by name; NULL when unknown or when this CPU lacks it. */
const struct lcp_kernels *lcp_kernels_named(const char *name);

/* Test hook: lcp_kernels() returns k from now on (NULL: the automatic
 * choice again). Not thread-safe: call it while no decode runs. */
void lcp_kernels_force(const struct lcp_kernels *k);

#if defined(__x86_64__) && defined(__GNUC__)
#define LCP_HAVE_AVX512_KERNELS 1
/* kernels_avx512.c and kernels_avx2.c; use them through lcp_kernels_named,
 * which checks the CPU. */
extern const struct lcp_kernels lcp_kernels_avx512bf16;
extern const struct lcp_kernels lcp_kernels_avx512;
extern const struct lcp_kernels lcp_kernels_avx2;
#endif

#endif
