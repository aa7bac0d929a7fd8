/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Compression configuration: the seed's QLoraConfig, its three presets with
 * exactly the seed's values, its validation rules, and the option-string
 * parser shared by `lcpfs pack -o` and the mount options.
 */
#ifndef LCPFS_CONFIG_H
#define LCPFS_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lcpfs/err.h"

struct lcp_config {
	uint8_t bits;            /* quantization width: 4 or 8 */
	uint16_t rank;           /* low-rank ceiling; the codec may choose less, even 0 */
	uint32_t group_size;     /* elements per quantization group, 8..256 */
	bool symmetric;          /* false: per-group zero points (asymmetric) */
	uint64_t min_size;       /* tensors (and files) smaller than this stay exact */
	uint64_t max_size;       /* seed field; larger tensors are chunked, never refused */
	float quality_threshold; /* per-tensor cosine floor, in (0, 1] */
	bool lossless;           /* every float tensor bit-exact (preset lossless); the
	                            fields above stay valid but no value changes */
};

/* Seed presets: aggressive {4, 8, 128, sym, 4096, 1 GiB, 0.95},
 * balanced {4, 32, 64, sym, 4096, 1 GiB, 0.97} (the default),
 * quality {8, 64, 32, asym, 4096, 1 GiB, 0.99}; and lossless: balanced's
 * fields with lossless set (nothing quantized, every value kept). */
struct lcp_config lcp_config_aggressive(void);
struct lcp_config lcp_config_balanced(void);
struct lcp_config lcp_config_quality(void);
struct lcp_config lcp_config_lossless(void);
struct lcp_config lcp_config_default(void);

/* Names cfg the way `-o` takes it: the preset's name when cfg equals one
 * ("balanced", "aggressive", "quality", "lossless"), else the options that
 * give it ("bits=4,rank=32,group=64,sym,quality=0.97,min_size=4096", with
 * "preset=lossless," first when lossless). Writes a NUL-terminated string of
 * at most out_len bytes (truncated if shorter than needed). Thread-safe. */
void lcp_config_describe(const struct lcp_config *cfg, char *out, size_t out_len);

/* The seed's rules: bits 4 or 8, rank 1..1024, group 8..256, min_size > 0,
 * max_size >= min_size, 0 < quality_threshold <= 1. */
bool lcp_config_is_valid(const struct lcp_config *cfg);

/*
 * Applies a comma-separated option string to *cfg:
 *   preset=aggressive|balanced|quality|lossless, bits=N, rank=N, group=N, asym, sym,
 *   quality=F, min_size=N (suffixes k, M, G accepted: powers of 1024).
 * A preset resets every field first, wherever it appears in the string (if
 * several are given, the last one); the other options then apply in order.
 * Numbers are plain decimal digits (no sign, blank, 0x or trailing garbage:
 * "bits=4x", "bits=", "bits= 4" are errors); each value must satisfy the
 * seed's rule for its field (bits 4 or 8, rank 1..1024, group 8..256,
 * quality in (0, 1], 0 < min_size <= max_size). asym and sym take no value.
 * Empty items (",,", a trailing comma) are ignored; options NULL is the
 * same as "" (only the validity check below). Options this parser does not know are
 * returned in *unknown (an lcp_malloc'ed comma-separated string in their
 * original order, released with lcp_free, or NULL when none) if unknown is
 * non-NULL, and are an error otherwise. The result must satisfy
 * lcp_config_is_valid. Errors: LCP_ERR_INVAL (bad or unknown option, invalid
 * result), LCP_ERR_NOMEM. On error *cfg is unchanged, *unknown (if given) is
 * NULL, and errbuf (if non-NULL) names the offending option; on success
 * errbuf holds "". Thread-safe.
 */
lcp_err lcp_config_parse_options(struct lcp_config *cfg, const char *options, char **unknown,
				 char *errbuf, size_t errbuf_len);

#endif
