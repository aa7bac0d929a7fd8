/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Reference quantizers for the codec benchmark, written from the published
 * block formats: ggml Q4_0, Q4_1, Q8_0 and IQ4_NL (32-element blocks, fp16
 * scales) and bitsandbytes NF4 (64-element blocks, fp32 absmax) with and
 * without QLoRA's double quantization of the absmax values. Each scheme packs
 * a flat float array into its stored bytes and unpacks it back to float; the
 * stored size counts everything the format keeps. A trailing partial block is
 * quantized as if padded with zeros (the benchmark's tensors are whole
 * blocks anyway). Not thread-safe (the NF4-DQ map is built lazily);
 * the benchmark is single-threaded.
 */
#ifndef LCPFS_BENCH_REFQUANT_H
#define LCPFS_BENCH_REFQUANT_H

#include <stddef.h>
#include <stdint.h>

struct ref_scheme {
	const char *name;
	/* Bytes stored for n elements (codes, scales, offsets: all of it). */
	size_t (*stored_bytes)(uint64_t n);
	/* Packs n elements into out (stored_bytes(n) bytes). */
	void (*quantize)(const float *x, uint64_t n, uint8_t *out);
	/* Unpacks stored bytes of n elements into y. */
	void (*dequantize)(const uint8_t *in, uint64_t n, float *y);
};

/* The table of schemes, in the benchmark's print order. */
extern const struct ref_scheme ref_schemes[];
extern const size_t ref_nschemes;

/* Lookup by name ("Q4_0", "IQ4_NL", ...); NULL when unknown. */
const struct ref_scheme *ref_scheme_find(const char *name);

#endif
