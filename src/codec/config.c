/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Compression configuration: the seed's presets and validation rules, and
 * the option-string parser used by `lcpfs pack -o` and the mount options.
 *
 * The parser is strict on purpose: a typo in a mount option must stop the
 * mount rather than silently compress with a different setting than asked.
 * Numbers go through strtoull/strtof with every outcome checked (no digits,
 * trailing garbage, sign, overflow, NaN), and each option is range-checked as
 * it is applied so the error message can name the option at fault.
 */
#include "lcpfs/config.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"

#define GIB ((uint64_t)1024 * 1024 * 1024)

static struct lcp_config make(uint8_t bits, uint16_t rank, uint32_t group, bool symmetric,
			      float quality)
{
	struct lcp_config c = {
		.bits = bits,
		.rank = rank,
		.group_size = group,
		.symmetric = symmetric,
		.min_size = 4096,
		.max_size = GIB,
		.quality_threshold = quality,
	};
	return c;
}

struct lcp_config lcp_config_aggressive(void)
{
	return make(4, 8, 128, true, 0.95f);
}

struct lcp_config lcp_config_balanced(void)
{
	return make(4, 32, 64, true, 0.97f);
}

struct lcp_config lcp_config_quality(void)
{
	return make(8, 64, 32, false, 0.99f);
}

struct lcp_config lcp_config_lossless(void)
{
	struct lcp_config c = lcp_config_balanced();
	c.lossless = true;
	return c;
}

struct lcp_config lcp_config_default(void)
{
	return lcp_config_balanced();
}

static bool same_config(const struct lcp_config *a, const struct lcp_config *b)
{
	return a->bits == b->bits && a->rank == b->rank && a->group_size == b->group_size &&
	       a->symmetric == b->symmetric && a->min_size == b->min_size &&
	       a->max_size == b->max_size && a->quality_threshold == b->quality_threshold &&
	       a->lossless == b->lossless;
}

void lcp_config_describe(const struct lcp_config *cfg, char *out, size_t out_len)
{
	static const struct {
		const char *name;
		struct lcp_config (*make)(void);
	} presets[] = {
		{"balanced", lcp_config_balanced},
		{"aggressive", lcp_config_aggressive},
		{"quality", lcp_config_quality},
		{"lossless", lcp_config_lossless},
	};
	for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++) {
		struct lcp_config p = presets[i].make();
		if (same_config(cfg, &p)) {
			snprintf(out, out_len, "%s", presets[i].name);
			return;
		}
	}
	snprintf(out, out_len, "%sbits=%u,rank=%u,group=%u,%s,quality=%g,min_size=%llu",
		 cfg->lossless ? "preset=lossless," : "", cfg->bits, cfg->rank, cfg->group_size,
		 cfg->symmetric ? "sym" : "asym", (double)cfg->quality_threshold,
		 (unsigned long long)cfg->min_size);
}

/* The seed's comparisons; a NaN threshold fails both and is invalid. */
static bool quality_ok(float q)
{
	return q > 0.0f && q <= 1.0f;
}

bool lcp_config_is_valid(const struct lcp_config *cfg)
{
	return (cfg->bits == 4 || cfg->bits == 8) && cfg->rank >= 1 && cfg->rank <= 1024 &&
	       cfg->group_size >= 8 && cfg->group_size <= 256 && cfg->min_size > 0 &&
	       cfg->max_size >= cfg->min_size && quality_ok(cfg->quality_threshold);
}

static void set_err(char *errbuf, size_t errbuf_len, const char *fmt, ...)
{
	va_list ap;

	if (!errbuf || errbuf_len == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(errbuf, errbuf_len, fmt, ap);
	va_end(ap);
}

/* Digits only: strtoull alone would accept leading blanks, a sign (and
 * wrap "-1" to UINT64_MAX) and a 0x prefix. */
static bool parse_u64(const char *s, uint64_t mult_allowed, uint64_t *out)
{
	char *end;
	unsigned long long v;
	uint64_t mult = 1;

	if (*s < '0' || *s > '9')
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno == ERANGE)
		return false;
	if (mult_allowed && *end) {
		switch (*end) {
		case 'k':
			mult = 1024;
			break;
		case 'M':
			mult = 1024 * 1024;
			break;
		case 'G':
			mult = GIB;
			break;
		default:
			return false;
		}
		end++;
	}
	if (*end)
		return false;
	if (v > UINT64_MAX / mult)
		return false;
	*out = (uint64_t)v * mult;
	return true;
}

static bool parse_float(const char *s, float *out)
{
	char *end;
	float v;

	/* Same reasoning as parse_u64: no blanks, no sign, no "inf"/"nan". */
	if ((*s < '0' || *s > '9') && *s != '.')
		return false;
	errno = 0;
	v = strtof(s, &end);
	if (end == s || *end || errno == ERANGE || !isfinite(v))
		return false;
	*out = v;
	return true;
}

static bool preset_by_name(const char *name, struct lcp_config *out)
{
	if (strcmp(name, "aggressive") == 0)
		*out = lcp_config_aggressive();
	else if (strcmp(name, "balanced") == 0)
		*out = lcp_config_balanced();
	else if (strcmp(name, "quality") == 0)
		*out = lcp_config_quality();
	else if (strcmp(name, "lossless") == 0)
		*out = lcp_config_lossless();
	else
		return false;
	return true;
}

/* Appends item to the malloc'ed comma-separated list *list. */
static lcp_err append_item(char **list, const char *item)
{
	size_t old = *list ? strlen(*list) : 0;
	size_t add = strlen(item);
	char *n = lcp_realloc(*list, old + (old ? 1 : 0) + add + 1);

	if (!n)
		return LCP_ERR_NOMEM;
	if (old)
		n[old++] = ',';
	memcpy(n + old, item, add + 1);
	*list = n;
	return LCP_OK;
}

enum opt_result { OPT_APPLIED, OPT_UNKNOWN, OPT_BAD };

/* Applies one non-preset option "key" or "key=value" to *c. */
static enum opt_result apply_one(struct lcp_config *c, char *item, char *errbuf, size_t errbuf_len)
{
	char *eq = strchr(item, '=');
	const char *key = item;
	const char *val = NULL;
	uint64_t u;
	float f;
	enum opt_result r = OPT_BAD;

	if (eq) {
		*eq = '\0';
		val = eq + 1;
	}
	if (strcmp(key, "asym") == 0 || strcmp(key, "sym") == 0) {
		if (val) {
			set_err(errbuf, errbuf_len, "option '%s' takes no value", key);
		} else {
			c->symmetric = strcmp(key, "sym") == 0;
			r = OPT_APPLIED;
		}
		goto out;
	}
	if (strcmp(key, "bits") != 0 && strcmp(key, "rank") != 0 && strcmp(key, "group") != 0 &&
	    strcmp(key, "quality") != 0 && strcmp(key, "min_size") != 0 &&
	    strcmp(key, "preset") != 0) {
		r = OPT_UNKNOWN;
		goto out;
	}
	if (!val || !*val) {
		set_err(errbuf, errbuf_len, "option '%s' needs a value", key);
		goto out;
	}
	if (strcmp(key, "preset") == 0) {
		/* Already applied in the first pass; only its name was checked there. */
		r = OPT_APPLIED;
	} else if (strcmp(key, "bits") == 0) {
		if (!parse_u64(val, 0, &u) || (u != 4 && u != 8)) {
			set_err(errbuf, errbuf_len, "bits=%s: expected 4 or 8", val);
			goto out;
		}
		c->bits = (uint8_t)u;
		r = OPT_APPLIED;
	} else if (strcmp(key, "rank") == 0) {
		if (!parse_u64(val, 0, &u) || u < 1 || u > 1024) {
			set_err(errbuf, errbuf_len, "rank=%s: expected an integer in 1..1024", val);
			goto out;
		}
		c->rank = (uint16_t)u;
		r = OPT_APPLIED;
	} else if (strcmp(key, "group") == 0) {
		if (!parse_u64(val, 0, &u) || u < 8 || u > 256) {
			set_err(errbuf, errbuf_len, "group=%s: expected an integer in 8..256", val);
			goto out;
		}
		c->group_size = (uint32_t)u;
		r = OPT_APPLIED;
	} else if (strcmp(key, "quality") == 0) {
		if (!parse_float(val, &f) || !quality_ok(f)) {
			set_err(errbuf, errbuf_len, "quality=%s: expected a number in (0, 1]", val);
			goto out;
		}
		c->quality_threshold = f;
		r = OPT_APPLIED;
	} else {
		if (!parse_u64(val, 1, &u) || u == 0 || u > c->max_size) {
			set_err(errbuf, errbuf_len,
				"min_size=%s: expected a size in 1..%llu (suffix k, M or G allowed)",
				val, (unsigned long long)c->max_size);
			goto out;
		}
		c->min_size = u;
		r = OPT_APPLIED;
	}
out:
	if (eq)
		*eq = '=';
	return r;
}

/*
 * Two passes over a private copy: the first finds the preset (the last one
 * wins if several are given) so that it resets the fields before any other
 * option applies, wherever it appears; the second applies the rest in order.
 */
lcp_err lcp_config_parse_options(struct lcp_config *cfg, const char *options, char **unknown,
				 char *errbuf, size_t errbuf_len)
{
	struct lcp_config c = *cfg;
	char *copy = NULL;
	char *list = NULL;
	char *item;
	char *next;
	lcp_err err = LCP_OK;

	if (unknown)
		*unknown = NULL;
	if (errbuf && errbuf_len)
		errbuf[0] = '\0';
	if (!options)
		options = "";
	copy = lcp_strdup(options);
	if (!copy) {
		set_err(errbuf, errbuf_len, "out of memory");
		return LCP_ERR_NOMEM;
	}

	/* Empty items (",,", a trailing comma) are skipped: option strings are
	 * often assembled by concatenation. */
	for (item = copy; item; item = next) {
		next = strchr(item, ',');
		if (next)
			*next++ = '\0';
		if (strncmp(item, "preset=", 7) == 0 && !preset_by_name(item + 7, &c)) {
			set_err(errbuf, errbuf_len,
				"%s: expected preset=aggressive, balanced, quality or lossless", item);
			err = LCP_ERR_INVAL;
			goto out;
		}
	}
	/* Pass 1 cut the copy at every comma; walk the pieces again by length. */
	for (item = copy; item < copy + strlen(options) + 1; item += strlen(item) + 1) {
		if (!*item)
			continue;
		switch (apply_one(&c, item, errbuf, errbuf_len)) {
		case OPT_APPLIED:
			break;
		case OPT_UNKNOWN:
			if (!unknown) {
				set_err(errbuf, errbuf_len, "unknown option '%s'", item);
				err = LCP_ERR_INVAL;
				goto out;
			}
			err = append_item(&list, item);
			if (err != LCP_OK) {
				set_err(errbuf, errbuf_len, "out of memory");
				goto out;
			}
			break;
		case OPT_BAD:
			err = LCP_ERR_INVAL;
			goto out;
		}
	}
	/* Each option was checked alone; this catches a starting *cfg that was
	 * invalid and that the options did not repair. */
	if (!lcp_config_is_valid(&c)) {
		set_err(errbuf, errbuf_len, "resulting configuration is invalid");
		err = LCP_ERR_INVAL;
		goto out;
	}
	*cfg = c;
	if (unknown) {
		*unknown = list;
		list = NULL;
	}
out:
	lcp_free(list);
	lcp_free(copy);
	return err;
}
