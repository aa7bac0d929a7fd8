/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Reference quantizers (see refquant.h), written from the published formats:
 * - ggml Q4_0: 32-blocks, fp16 d = (signed absmax element) / -8, codes
 *   min(15, trunc(x/d + 8.5)), value (q - 8) d. 18 bytes per block.
 * - ggml Q4_1: fp16 d = (max - min) / 15 and fp16 m = min, codes
 *   min(15, trunc((x - min)/d + 0.5)), value q d + m. 20 bytes per block.
 * - ggml Q8_0: fp16 d = absmax / 127, codes round(x/d), value q d. 34 bytes.
 * - ggml IQ4_NL: fp16 d, 4-bit indices into the non-linear codebook
 *   kvalues_iq4nl; d from ggml's weighted least-squares search (weights x^2
 *   without an importance matrix, 15 trial scales around -127/max), final
 *   indices recomputed with 1/d. 18 bytes per block.
 * - bitsandbytes NF4: 64-blocks, fp32 absmax, nearest of the 16 NF4 levels
 *   (normal-float quantiles from the QLoRA paper). 4.5 bits/weight.
 * - NF4 with double quantization (QLoRA): the absmax values, minus their
 *   mean (one fp32 offset per tensor), quantized blockwise (256 per block,
 *   fp32 absmax each) to the 8-bit signed dynamic map of bitsandbytes
 *   (create_dynamic_map: 7 decades, linearly spaced fractions). 4.127 bpw.
 * All fp16 conversions round to nearest even (as ggml's F16C path does).
 */
#include "refquant.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/half.h"

#define QK 32      /* ggml block */
#define NF4_BLOCK 64
#define DQ_BLOCK 256
#define GROUP_MAX_EPS 1e-15f /* ggml's threshold for an all-zero block */
#define IQ4_NTRY 7          /* ggml quantize_iq4_nl: ntry = 7 */

static uint64_t nblocks(uint64_t n, uint64_t b)
{
	return (n + b - 1) / b;
}

/* Copies block ib of x (size b) into buf, zero padding past n. */
static const float *block_of(const float *x, uint64_t n, uint64_t ib, uint64_t b, float *buf)
{
	uint64_t off = ib * b;
	if (off + b <= n)
		return x + off;
	memset(buf, 0, b * sizeof *buf);
	memcpy(buf, x + off, (n - off) * sizeof *buf);
	return buf;
}

static void put_block(float *y, uint64_t n, uint64_t ib, uint64_t b, const float *vals)
{
	uint64_t off = ib * b;
	uint64_t len = off + b <= n ? b : n - off;
	memcpy(y + off, vals, len * sizeof *y);
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

/* ---- Q4_0 */

static size_t q4_0_bytes(uint64_t n)
{
	return nblocks(n, QK) * 18;
}

static void q4_0_quantize(const float *x, uint64_t n, uint8_t *out)
{
	float buf[QK];
	for (uint64_t ib = 0; ib < nblocks(n, QK); ib++) {
		const float *b = block_of(x, n, ib, QK, buf);
		float amax = 0.0f, max = 0.0f;
		for (int j = 0; j < QK; j++)
			if (fabsf(b[j]) > amax) {
				amax = fabsf(b[j]);
				max = b[j];
			}
		float d = max / -8.0f;
		float id = d != 0.0f ? 1.0f / d : 0.0f;
		uint8_t *o = out + ib * 18;
		put16(o, lcp_f16_from_f32(d));
		for (int j = 0; j < QK / 2; j++) {
			int q0 = (int)(int8_t)(b[j] * id + 8.5f);
			int q1 = (int)(int8_t)(b[j + QK / 2] * id + 8.5f);
			q0 = q0 > 15 ? 15 : q0;
			q1 = q1 > 15 ? 15 : q1;
			o[2 + j] = (uint8_t)(q0 | q1 << 4);
		}
	}
}

static void q4_0_dequantize(const uint8_t *in, uint64_t n, float *y)
{
	float vals[QK];
	for (uint64_t ib = 0; ib < nblocks(n, QK); ib++) {
		const uint8_t *p = in + ib * 18;
		float d = lcp_f16_to_f32(get16(p));
		for (int j = 0; j < QK / 2; j++) {
			vals[j] = (float)((p[2 + j] & 15) - 8) * d;
			vals[j + QK / 2] = (float)((p[2 + j] >> 4) - 8) * d;
		}
		put_block(y, n, ib, QK, vals);
	}
}

/* ---- Q4_1 */

static size_t q4_1_bytes(uint64_t n)
{
	return nblocks(n, QK) * 20;
}

static void q4_1_quantize(const float *x, uint64_t n, uint8_t *out)
{
	float buf[QK];
	for (uint64_t ib = 0; ib < nblocks(n, QK); ib++) {
		const float *b = block_of(x, n, ib, QK, buf);
		float min = INFINITY, max = -INFINITY;
		for (int j = 0; j < QK; j++) {
			min = b[j] < min ? b[j] : min;
			max = b[j] > max ? b[j] : max;
		}
		float d = (max - min) / 15.0f;
		float id = d != 0.0f ? 1.0f / d : 0.0f;
		uint8_t *o = out + ib * 20;
		put16(o, lcp_f16_from_f32(d));
		put16(o + 2, lcp_f16_from_f32(min));
		for (int j = 0; j < QK / 2; j++) {
			int q0 = (int)(int8_t)((b[j] - min) * id + 0.5f);
			int q1 = (int)(int8_t)((b[j + QK / 2] - min) * id + 0.5f);
			q0 = q0 > 15 ? 15 : q0;
			q1 = q1 > 15 ? 15 : q1;
			o[4 + j] = (uint8_t)(q0 | q1 << 4);
		}
	}
}

static void q4_1_dequantize(const uint8_t *in, uint64_t n, float *y)
{
	float vals[QK];
	for (uint64_t ib = 0; ib < nblocks(n, QK); ib++) {
		const uint8_t *p = in + ib * 20;
		float d = lcp_f16_to_f32(get16(p)), m = lcp_f16_to_f32(get16(p + 2));
		for (int j = 0; j < QK / 2; j++) {
			vals[j] = (float)(p[4 + j] & 15) * d + m;
			vals[j + QK / 2] = (float)(p[4 + j] >> 4) * d + m;
		}
		put_block(y, n, ib, QK, vals);
	}
}

/* ---- Q8_0 */

static size_t q8_0_bytes(uint64_t n)
{
	return nblocks(n, QK) * 34;
}

static void q8_0_quantize(const float *x, uint64_t n, uint8_t *out)
{
	float buf[QK];
	for (uint64_t ib = 0; ib < nblocks(n, QK); ib++) {
		const float *b = block_of(x, n, ib, QK, buf);
		float amax = 0.0f;
		for (int j = 0; j < QK; j++)
			amax = fabsf(b[j]) > amax ? fabsf(b[j]) : amax;
		float d = amax / 127.0f;
		float id = d != 0.0f ? 1.0f / d : 0.0f;
		uint8_t *o = out + ib * 34;
		put16(o, lcp_f16_from_f32(d));
		for (int j = 0; j < QK; j++)
			o[2 + j] = (uint8_t)(int8_t)roundf(b[j] * id);
	}
}

static void q8_0_dequantize(const uint8_t *in, uint64_t n, float *y)
{
	float vals[QK];
	for (uint64_t ib = 0; ib < nblocks(n, QK); ib++) {
		const uint8_t *p = in + ib * 34;
		float d = lcp_f16_to_f32(get16(p));
		for (int j = 0; j < QK; j++)
			vals[j] = (float)(int8_t)p[2 + j] * d;
		put_block(y, n, ib, QK, vals);
	}
}

/* ---- IQ4_NL */

static const int8_t iq4nl_values[16] = { -127, -104, -83, -65, -49, -35, -22, -10,
					 1,    13,   25,  38,  53,  69,  89,  113 };

/* Index of the codebook entry nearest to v (ties to the upper entry, as
 * ggml's binary search does). */
static int iq4nl_index(float v)
{
	if (v <= iq4nl_values[0])
		return 0;
	if (v >= iq4nl_values[15])
		return 15;
	int lo = 0, hi = 15;
	while (hi - lo > 1) {
		int mid = (lo + hi) / 2;
		if (v < iq4nl_values[mid])
			hi = mid;
		else
			lo = mid;
	}
	return v - iq4nl_values[hi - 1] < iq4nl_values[hi] - v ? hi - 1 : hi;
}

/* Weighted least-squares fit of the scale for fixed indices: returns
 * sum w q x and sum w q^2 for the indices that inverse scale id picks. */
static void iq4nl_sums(const float *b, const float *w, float id, float *sumqx, float *sumq2)
{
	float sx = 0.0f, s2 = 0.0f;
	for (int j = 0; j < QK; j++) {
		float q = iq4nl_values[iq4nl_index(id * b[j])];
		sx += w[j] * q * b[j];
		s2 += w[j] * q * q;
	}
	*sumqx = sx;
	*sumq2 = s2;
}

static void iq4nl_quantize(const float *x, uint64_t n, uint8_t *out)
{
	float buf[QK], w[QK];
	for (uint64_t ib = 0; ib < nblocks(n, QK); ib++) {
		const float *b = block_of(x, n, ib, QK, buf);
		uint8_t *o = out + ib * 18;
		float amax = 0.0f, max = 0.0f;
		for (int j = 0; j < QK; j++) {
			w[j] = b[j] * b[j];
			if (fabsf(b[j]) > amax) {
				amax = fabsf(b[j]);
				max = b[j];
			}
		}
		float d = 0.0f;
		if (amax >= GROUP_MAX_EPS) {
			float sumqx, sumq2;
			iq4nl_sums(b, w, 1.0f / (-max / iq4nl_values[0]), &sumqx, &sumq2);
			d = sumqx / sumq2;
			float best = d * sumqx;
			for (int t = -IQ4_NTRY; t <= IQ4_NTRY; t++) {
				iq4nl_sums(b, w, (float)(t + iq4nl_values[0]) / max, &sumqx, &sumq2);
				if (sumq2 > 0.0f && sumqx * sumqx > best * sumq2) {
					d = sumqx / sumq2;
					best = d * sumqx;
				}
			}
		}
		put16(o, lcp_f16_from_f32(d));
		float id = d != 0.0f ? 1.0f / d : 0.0f;
		for (int j = 0; j < QK / 2; j++) {
			int l0 = iq4nl_index(id * b[j]);
			int l1 = iq4nl_index(id * b[j + QK / 2]);
			o[2 + j] = (uint8_t)(l0 | l1 << 4);
		}
	}
}

static void iq4nl_dequantize(const uint8_t *in, uint64_t n, float *y)
{
	float vals[QK];
	for (uint64_t ib = 0; ib < nblocks(n, QK); ib++) {
		const uint8_t *p = in + ib * 18;
		float d = lcp_f16_to_f32(get16(p));
		for (int j = 0; j < QK / 2; j++) {
			vals[j] = d * (float)iq4nl_values[p[2 + j] & 15];
			vals[j + QK / 2] = d * (float)iq4nl_values[p[2 + j] >> 4];
		}
		put_block(y, n, ib, QK, vals);
	}
}

/* ---- NF4 */

static const float nf4_levels[16] = {
	-1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
	-0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
	0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
	0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f,
};

static int nearest(const float *table, int len, float v)
{
	int lo = 0, hi = len - 1;
	if (v <= table[0])
		return 0;
	if (v >= table[hi])
		return hi;
	while (hi - lo > 1) {
		int mid = (lo + hi) / 2;
		if (v < table[mid])
			hi = mid;
		else
			lo = mid;
	}
	return v - table[lo] <= table[hi] - v ? lo : hi;
}

static void put32f(uint8_t *p, float f)
{
	uint32_t u;
	memcpy(&u, &f, sizeof u);
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(u >> (8 * i));
}

static float get32f(const uint8_t *p)
{
	uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
		     (uint32_t)p[3] << 24;
	float f;
	memcpy(&f, &u, sizeof f);
	return f;
}

/* Codes of n elements: NF4 indices, two per byte, blocks of 64. */
static void nf4_codes(const float *x, uint64_t n, const float *absmax, uint8_t *codes)
{
	float buf[NF4_BLOCK];
	for (uint64_t ib = 0; ib < nblocks(n, NF4_BLOCK); ib++) {
		const float *b = block_of(x, n, ib, NF4_BLOCK, buf);
		float inv = absmax[ib] > 0.0f ? 1.0f / absmax[ib] : 0.0f;
		for (int j = 0; j < NF4_BLOCK; j += 2) {
			int l0 = nearest(nf4_levels, 16, b[j] * inv);
			int l1 = nearest(nf4_levels, 16, b[j + 1] * inv);
			codes[ib * (NF4_BLOCK / 2) + (uint64_t)j / 2] = (uint8_t)(l0 << 4 | l1);
		}
	}
}

static void nf4_values(const uint8_t *codes, uint64_t n, const float *absmax, float *y)
{
	float vals[NF4_BLOCK];
	for (uint64_t ib = 0; ib < nblocks(n, NF4_BLOCK); ib++) {
		for (int j = 0; j < NF4_BLOCK; j += 2) {
			uint8_t c = codes[ib * (NF4_BLOCK / 2) + (uint64_t)j / 2];
			vals[j] = nf4_levels[c >> 4] * absmax[ib];
			vals[j + 1] = nf4_levels[c & 15] * absmax[ib];
		}
		put_block(y, n, ib, NF4_BLOCK, vals);
	}
}

static float block_absmax(const float *x, uint64_t n, uint64_t ib)
{
	float a = 0.0f;
	for (uint64_t j = ib * NF4_BLOCK; j < n && j < (ib + 1) * NF4_BLOCK; j++)
		a = fabsf(x[j]) > a ? fabsf(x[j]) : a;
	return a;
}

/* Layout: codes (nb * 32 bytes), then nb fp32 absmax. */
static size_t nf4_bytes(uint64_t n)
{
	return nblocks(n, NF4_BLOCK) * (NF4_BLOCK / 2 + 4);
}

/* Per-block absmax values of one call (part of the format's work, so its
 * allocation is inside the timed region like the rest). */
static float *absmax_alloc(uint64_t nb)
{
	float *a = malloc(nb * sizeof *a);
	if (!a) {
		fprintf(stderr, "refquant: out of memory\n");
		abort();
	}
	return a;
}

static void nf4_quantize(const float *x, uint64_t n, uint8_t *out)
{
	uint64_t nb = nblocks(n, NF4_BLOCK);
	float *absmax_scratch = absmax_alloc(nb);
	for (uint64_t ib = 0; ib < nb; ib++) {
		absmax_scratch[ib] = block_absmax(x, n, ib);
		put32f(out + nb * (NF4_BLOCK / 2) + ib * 4, absmax_scratch[ib]);
	}
	nf4_codes(x, n, absmax_scratch, out);
	free(absmax_scratch);
}

static void nf4_dequantize(const uint8_t *in, uint64_t n, float *y)
{
	uint64_t nb = nblocks(n, NF4_BLOCK);
	float *absmax_scratch = absmax_alloc(nb);
	for (uint64_t ib = 0; ib < nb; ib++)
		absmax_scratch[ib] = get32f(in + nb * (NF4_BLOCK / 2) + ib * 4);
	nf4_values(in, n, absmax_scratch, y);
	free(absmax_scratch);
}

/* ---- NF4 with double-quantized absmax */

static float dyn_map[256];
static int dyn_map_ready;

/* bitsandbytes create_dynamic_map(signed=True, max_exponent_bits=7,
 * total_bits=8): for decade i = 0..6, 2^i fractions (midpoints of a
 * linspace(0.1, 1, 2^i + 1)) times 10^(i - 6), both signs, plus 0 and 1;
 * sorted. */
static void build_dyn_map(void)
{
	if (dyn_map_ready)
		return;
	int len = 0;
	for (int i = 0; i < 7; i++) {
		int items = (1 << i) + 1;
		float scale = powf(10.0f, (float)(i - 6));
		for (int f = 0; f + 1 < items; f++) {
			float b0 = 0.1f + 0.9f * (float)f / (float)(items - 1);
			float b1 = 0.1f + 0.9f * (float)(f + 1) / (float)(items - 1);
			float mean = (b0 + b1) / 2.0f;
			dyn_map[len++] = scale * mean;
			dyn_map[len++] = -scale * mean;
		}
	}
	dyn_map[len++] = 0.0f;
	dyn_map[len++] = 1.0f;
	/* insertion sort: 256 entries, once */
	for (int i = 1; i < len; i++) {
		float v = dyn_map[i];
		int j = i - 1;
		while (j >= 0 && dyn_map[j] > v) {
			dyn_map[j + 1] = dyn_map[j];
			j--;
		}
		dyn_map[j + 1] = v;
	}
	dyn_map_ready = 1;
}

/* Layout: codes (nb * 32), nb one-byte absmax codes, nb2 fp32 second-level
 * absmax (blocks of 256 absmax values), one fp32 offset. */
static size_t nf4dq_bytes(uint64_t n)
{
	uint64_t nb = nblocks(n, NF4_BLOCK);
	return nb * (NF4_BLOCK / 2 + 1) + nblocks(nb, DQ_BLOCK) * 4 + 4;
}

static void nf4dq_quantize(const float *x, uint64_t n, uint8_t *out)
{
	uint64_t nb = nblocks(n, NF4_BLOCK), nb2 = nblocks(nb, DQ_BLOCK);
	float *absmax_scratch = absmax_alloc(nb);
	build_dyn_map();
	double mean = 0.0;
	for (uint64_t ib = 0; ib < nb; ib++) {
		absmax_scratch[ib] = block_absmax(x, n, ib);
		mean += absmax_scratch[ib];
	}
	float offset = (float)(mean / (double)nb);
	uint8_t *acodes = out + nb * (NF4_BLOCK / 2);
	uint8_t *a2 = acodes + nb;
	for (uint64_t jb = 0; jb < nb2; jb++) {
		uint64_t end = (jb + 1) * DQ_BLOCK < nb ? (jb + 1) * DQ_BLOCK : nb;
		float m2 = 0.0f;
		for (uint64_t ib = jb * DQ_BLOCK; ib < end; ib++)
			m2 = fabsf(absmax_scratch[ib] - offset) > m2 ? fabsf(absmax_scratch[ib] - offset)
								     : m2;
		put32f(a2 + jb * 4, m2);
		float inv = m2 > 0.0f ? 1.0f / m2 : 0.0f;
		for (uint64_t ib = jb * DQ_BLOCK; ib < end; ib++) {
			int c = nearest(dyn_map, 256, (absmax_scratch[ib] - offset) * inv);
			acodes[ib] = (uint8_t)c;
		}
	}
	put32f(a2 + nb2 * 4, offset);
	/* As bitsandbytes does: the NF4 codes are chosen with the exact
	 * absmax, and only afterwards are the absmax values compressed. */
	nf4_codes(x, n, absmax_scratch, out);
	free(absmax_scratch);
}

static void nf4dq_dequantize(const uint8_t *in, uint64_t n, float *y)
{
	uint64_t nb = nblocks(n, NF4_BLOCK), nb2 = nblocks(nb, DQ_BLOCK);
	float *absmax_scratch = absmax_alloc(nb);
	build_dyn_map();
	const uint8_t *acodes = in + nb * (NF4_BLOCK / 2);
	const uint8_t *a2 = acodes + nb;
	float offset = get32f(a2 + nb2 * 4);
	for (uint64_t ib = 0; ib < nb; ib++)
		absmax_scratch[ib] = dyn_map[acodes[ib]] * get32f(a2 + (ib / DQ_BLOCK) * 4) + offset;
	nf4_values(in, n, absmax_scratch, y);
	free(absmax_scratch);
}

const struct ref_scheme ref_schemes[] = {
	{ "Q4_0", q4_0_bytes, q4_0_quantize, q4_0_dequantize },
	{ "Q4_1", q4_1_bytes, q4_1_quantize, q4_1_dequantize },
	{ "IQ4_NL", q4_0_bytes, iq4nl_quantize, iq4nl_dequantize },
	{ "NF4", nf4_bytes, nf4_quantize, nf4_dequantize },
	{ "NF4-DQ", nf4dq_bytes, nf4dq_quantize, nf4dq_dequantize },
	{ "Q8_0", q8_0_bytes, q8_0_quantize, q8_0_dequantize },
};
const size_t ref_nschemes = sizeof ref_schemes / sizeof ref_schemes[0];

const struct ref_scheme *ref_scheme_find(const char *name)
{
	for (size_t i = 0; i < ref_nschemes; i++)
		if (strcmp(ref_schemes[i].name, name) == 0)
			return &ref_schemes[i];
	return NULL;
}
