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
};

/* Seed presets: aggressive {4, 8, 128, sym, 4096, 1 GiB, 0.95},
 * balanced {4, 32, 64, sym, 4096, 1 GiB, 0.97} (the default),
 * quality {8, 64, 32, asym, 4096, 1 GiB, 0.99}. */
struct lcp_config lcp_config_aggressive(void);
struct lcp_config lcp_config_balanced(void);
struct lcp_config lcp_config_quality(void);
struct lcp_config lcp_config_default(void);

/* The seed's rules: bits 4 or 8, rank 1..1024, group 8..256, min_size > 0,
 * max_size >= min_size, 0 < quality_threshold <= 1. */
bool lcp_config_is_valid(const struct lcp_config *cfg);

/*
 * Applies a comma-separated option string to *cfg:
 *   preset=aggressive|balanced|quality, bits=N, rank=N, group=N, asym, sym,
 *   quality=F, min_size=N (suffixes k, M, G accepted).
 * A preset resets every field first, wherever it appears in the string; the
 * other options then apply in order. Options this parser does not know are
 * returned in *unknown (a malloc'ed comma-separated string, or NULL when none)
 * if unknown is non-NULL, and are an error otherwise. The result must satisfy
 * lcp_config_is_valid. On error *cfg is unchanged and errbuf (if non-NULL)
 * names the offending option.
 */
lcp_err lcp_config_parse_options(struct lcp_config *cfg, const char *options, char **unknown,
				 char *errbuf, size_t errbuf_len);

#endif
