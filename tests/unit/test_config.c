/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Configuration: the seed's presets with exactly its values, its validation
 * rules at every boundary, and the option-string parser (strict numbers,
 * preset-first semantics, unknown options, errors leave the config alone).
 * Ports the seed's test_qlora_config_presets and test_qlora_config_validation.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "leak_check.h"
#include "lcpfs/config.h"

#define GIB ((uint64_t)1 << 30)

static void expect_cfg(const struct lcp_config *c, unsigned bits, unsigned rank, unsigned group,
		       bool sym, uint64_t min_size, uint64_t max_size, float q)
{
	cr_expect_eq(c->bits, bits);
	cr_expect_eq(c->rank, rank);
	cr_expect_eq(c->group_size, group);
	cr_expect_eq(c->symmetric, sym);
	cr_expect_eq(c->min_size, min_size);
	cr_expect_eq(c->max_size, max_size);
	/* Exact: both sides are the same float literal. */
	cr_expect_eq(c->quality_threshold, q);
}

/* Seed: test_qlora_config_presets */
Test(config, seed_presets)
{
	struct lcp_config a = lcp_config_aggressive();
	struct lcp_config q = lcp_config_quality();
	struct lcp_config b = lcp_config_balanced();

	cr_expect_eq(a.bits, 4);
	cr_expect_eq(a.rank, 8);
	cr_expect(lcp_config_is_valid(&a));
	cr_expect_eq(q.bits, 8);
	cr_expect_eq(q.rank, 64);
	cr_expect(lcp_config_is_valid(&q));
	cr_expect(lcp_config_is_valid(&b));
}

Test(config, preset_values_exactly)
{
	struct lcp_config a = lcp_config_aggressive();
	struct lcp_config b = lcp_config_balanced();
	struct lcp_config q = lcp_config_quality();
	struct lcp_config d = lcp_config_default();

	expect_cfg(&a, 4, 8, 128, true, 4096, 1073741824u, 0.95f);
	expect_cfg(&b, 4, 32, 64, true, 4096, 1073741824u, 0.97f);
	expect_cfg(&q, 8, 64, 32, false, 4096, 1073741824u, 0.99f);
	expect_cfg(&d, 4, 32, 64, true, 4096, 1073741824u, 0.97f);
}

/* Seed: test_qlora_config_validation */
Test(config, seed_validation)
{
	struct lcp_config c = lcp_config_default();

	cr_expect(lcp_config_is_valid(&c));
	c.bits = 3;
	cr_expect_not(lcp_config_is_valid(&c));
	c.bits = 4;
	c.rank = 0;
	cr_expect_not(lcp_config_is_valid(&c));
}

Test(config, validation_boundaries)
{
	struct lcp_config base = lcp_config_default();
	struct lcp_config c;
	static const unsigned bad_bits[] = {0, 1, 2, 3, 5, 6, 7, 9, 16, 255};

	for (size_t i = 0; i < sizeof bad_bits / sizeof bad_bits[0]; i++) {
		c = base;
		c.bits = (uint8_t)bad_bits[i];
		cr_expect_not(lcp_config_is_valid(&c), "bits %u", bad_bits[i]);
	}
	c = base;
	c.bits = 8;
	cr_expect(lcp_config_is_valid(&c));

	c = base;
	c.rank = 1;
	cr_expect(lcp_config_is_valid(&c));
	c.rank = 1024;
	cr_expect(lcp_config_is_valid(&c));
	c.rank = 1025;
	cr_expect_not(lcp_config_is_valid(&c));

	c = base;
	c.group_size = 8;
	cr_expect(lcp_config_is_valid(&c));
	c.group_size = 7;
	cr_expect_not(lcp_config_is_valid(&c));
	c.group_size = 256;
	cr_expect(lcp_config_is_valid(&c));
	c.group_size = 257;
	cr_expect_not(lcp_config_is_valid(&c));

	c = base;
	c.min_size = 0;
	cr_expect_not(lcp_config_is_valid(&c));
	c.min_size = c.max_size;
	cr_expect(lcp_config_is_valid(&c));
	c.min_size = c.max_size + 1;
	cr_expect_not(lcp_config_is_valid(&c));

	c = base;
	c.quality_threshold = 1.0f;
	cr_expect(lcp_config_is_valid(&c));
	c.quality_threshold = 0.0f;
	cr_expect_not(lcp_config_is_valid(&c));
	c.quality_threshold = -0.5f;
	cr_expect_not(lcp_config_is_valid(&c));
	c.quality_threshold = 1.0001f;
	cr_expect_not(lcp_config_is_valid(&c));
	c.quality_threshold = NAN;
	cr_expect_not(lcp_config_is_valid(&c));
	c.quality_threshold = 1e-30f;
	cr_expect(lcp_config_is_valid(&c));
}

static lcp_err parse(struct lcp_config *c, const char *opts, char *errbuf, size_t n)
{
	return lcp_config_parse_options(c, opts, NULL, errbuf, n);
}

Test(config, parse_empty_and_null)
{
	struct lcp_config c = lcp_config_aggressive();
	struct lcp_config want = c;
	char err[128] = "x";

	cr_expect_eq(parse(&c, NULL, err, sizeof err), LCP_OK);
	cr_expect_eq(memcmp(&c, &want, sizeof c), 0);
	cr_expect_str_eq(err, "");
	cr_expect_eq(parse(&c, "", err, sizeof err), LCP_OK);
	cr_expect_eq(parse(&c, ",,", err, sizeof err), LCP_OK);
	cr_expect_eq(memcmp(&c, &want, sizeof c), 0);
}

Test(config, parse_each_option)
{
	struct lcp_config c = lcp_config_default();
	char err[128];

	cr_assert_eq(parse(&c, "bits=8,rank=16,group=32,asym,quality=0.9,min_size=8k", err,
			   sizeof err),
		     LCP_OK, "%s", err);
	expect_cfg(&c, 8, 16, 32, false, 8192, GIB, 0.9f);
	cr_assert_eq(parse(&c, "sym,min_size=2M", err, sizeof err), LCP_OK, "%s", err);
	cr_expect_eq(c.symmetric, true);
	cr_expect_eq(c.min_size, 2097152u);
	cr_assert_eq(parse(&c, "min_size=1G", err, sizeof err), LCP_OK, "%s", err);
	cr_expect_eq(c.min_size, GIB);
	cr_assert_eq(parse(&c, "min_size=12345,quality=1,quality=.5", err, sizeof err), LCP_OK);
	cr_expect_eq(c.min_size, 12345u);
	cr_expect_eq(c.quality_threshold, 0.5f);
	cr_assert_eq(parse(&c, ",rank=1024,,group=256,", err, sizeof err), LCP_OK);
	cr_expect_eq(c.rank, 1024);
	cr_expect_eq(c.group_size, 256u);
	expect_no_leaks();
}

Test(config, parse_presets)
{
	struct lcp_config c = lcp_config_default();
	char err[128];

	cr_assert_eq(parse(&c, "preset=quality", err, sizeof err), LCP_OK);
	expect_cfg(&c, 8, 64, 32, false, 4096, GIB, 0.99f);
	cr_assert_eq(parse(&c, "preset=aggressive", err, sizeof err), LCP_OK);
	expect_cfg(&c, 4, 8, 128, true, 4096, GIB, 0.95f);
	cr_assert_eq(parse(&c, "preset=balanced", err, sizeof err), LCP_OK);
	expect_cfg(&c, 4, 32, 64, true, 4096, GIB, 0.97f);
	cr_expect(!c.lossless);
}

/* preset=lossless: balanced's fields with lossless set; options after it
 * keep it lossless, another preset clears it; no other preset sets it. */
Test(config, parse_lossless_preset)
{
	struct lcp_config c = lcp_config_default();
	char err[128];

	cr_expect(!c.lossless && !lcp_config_quality().lossless && !lcp_config_aggressive().lossless);
	cr_assert_eq(parse(&c, "preset=lossless", err, sizeof err), LCP_OK, "%s", err);
	expect_cfg(&c, 4, 32, 64, true, 4096, GIB, 0.97f);
	cr_expect(c.lossless);
	cr_expect(lcp_config_is_valid(&c));
	cr_assert_eq(parse(&c, "min_size=1k,preset=lossless", err, sizeof err), LCP_OK);
	cr_expect(c.lossless && c.min_size == 1024);
	cr_assert_eq(parse(&c, "preset=quality", err, sizeof err), LCP_OK);
	cr_expect(!c.lossless);
	cr_expect_eq(parse(&c, "preset=exact", err, sizeof err), LCP_ERR_INVAL);
	cr_expect(strstr(err, "lossless") != NULL, "the error lists the presets: %s", err);
}

/* A preset applies first wherever it appears; the rest apply in order. */
Test(config, parse_preset_applies_first)
{
	struct lcp_config c = lcp_config_default();
	char err[128];

	cr_assert_eq(parse(&c, "bits=8,rank=4,preset=aggressive,group=16", err, sizeof err),
		     LCP_OK, "%s", err);
	expect_cfg(&c, 8, 4, 16, true, 4096, GIB, 0.95f);
	cr_assert_eq(parse(&c, "preset=aggressive,preset=quality,rank=2", err, sizeof err),
		     LCP_OK);
	expect_cfg(&c, 8, 2, 32, false, 4096, GIB, 0.99f);
	cr_assert_eq(parse(&c, "rank=5,rank=7", err, sizeof err), LCP_OK);
	cr_expect_eq(c.rank, 7);
}

Test(config, parse_rejects_garbage)
{
	static const char *const bad[] = {
		"bits=4x", "bits=", "bits", "bits=3", "bits=-4", "bits=+4", "bits= 4", "bits=0x4",
		"bits=260", "bits=4.0", "rank=0", "rank=1025", "rank=65552", "rank=", "group=7",
		"group=257", "group=64k", "quality=2", "quality=0", "quality=-0.5", "quality=nan",
		"quality=inf", "quality=0.9x", "quality=", "quality=1.01", "quality= 0.9",
		"min_size=0", "min_size=4x", "min_size=4kk", "min_size=4K ", "min_size=-1",
		"min_size=99999999999999999999999", "min_size=17179869184G", "min_size=2G",
		"min_size=", "asym=1", "sym=", "preset=turbo", "preset=", "preset",
		"bits=8,rank=0", "rank=0,preset=quality", "=4", "bits=8,foo",
	};
	const struct lcp_config start = lcp_config_quality();

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct lcp_config c = start;
		char err[160] = "";

		cr_expect_eq(parse(&c, bad[i], err, sizeof err), LCP_ERR_INVAL, "'%s'", bad[i]);
		cr_expect_eq(memcmp(&c, &start, sizeof c), 0, "'%s' changed the config", bad[i]);
		cr_expect_neq(err[0], '\0', "'%s' gave no message", bad[i]);
	}
	expect_no_leaks();
}

Test(config, parse_error_names_the_option)
{
	struct lcp_config c = lcp_config_default();
	char err[160];

	cr_expect_eq(parse(&c, "rank=16,bits=4x", err, sizeof err), LCP_ERR_INVAL);
	cr_expect_not_null(strstr(err, "bits=4x"), "%s", err);
	cr_expect_eq(parse(&c, "quality=2", err, sizeof err), LCP_ERR_INVAL);
	cr_expect_not_null(strstr(err, "quality=2"), "%s", err);
	cr_expect_eq(parse(&c, "frobnicate", err, sizeof err), LCP_ERR_INVAL);
	cr_expect_not_null(strstr(err, "frobnicate"), "%s", err);
}

Test(config, parse_small_or_null_errbuf)
{
	struct lcp_config c = lcp_config_default();
	char err[4] = "abc";

	cr_expect_eq(parse(&c, "bits=4x", err, sizeof err), LCP_ERR_INVAL);
	cr_expect_eq(err[3], '\0');
	cr_expect_eq(strlen(err), 3);
	cr_expect_eq(parse(&c, "bits=4x", NULL, 0), LCP_ERR_INVAL);
	cr_expect_eq(parse(&c, "bits=4x", err, 0), LCP_ERR_INVAL);
}

Test(config, parse_unknown_options_returned)
{
	struct lcp_config c = lcp_config_default();
	char *unknown = (char *)"sentinel";
	char err[128];

	cr_assert_eq(lcp_config_parse_options(&c, "bits=8,foo=1,ro,rank=4,allow_other", &unknown,
					      err, sizeof err),
		     LCP_OK, "%s", err);
	cr_assert_not_null(unknown);
	cr_expect_str_eq(unknown, "foo=1,ro,allow_other");
	cr_expect_eq(c.bits, 8);
	cr_expect_eq(c.rank, 4);
	lcp_free(unknown);

	unknown = (char *)"sentinel";
	cr_assert_eq(lcp_config_parse_options(&c, "bits=4", &unknown, err, sizeof err), LCP_OK);
	cr_expect_null(unknown);

	/* Unknown options do not excuse a bad known one; nothing leaks. */
	unknown = (char *)"sentinel";
	cr_expect_eq(lcp_config_parse_options(&c, "foo,bits=5", &unknown, err, sizeof err),
		     LCP_ERR_INVAL);
	cr_expect_null(unknown);
	cr_expect_eq(c.bits, 4);
	expect_no_leaks();
}

Test(config, parse_invalid_start_is_rejected)
{
	struct lcp_config c = lcp_config_default();
	struct lcp_config before;
	char err[128];

	c.group_size = 3;
	before = c;
	cr_expect_eq(parse(&c, "", err, sizeof err), LCP_ERR_INVAL);
	cr_expect_eq(memcmp(&c, &before, sizeof c), 0);
	cr_expect_eq(parse(&c, "group=16", err, sizeof err), LCP_OK);
	cr_expect_eq(c.group_size, 16u);
}

Test(config, parse_allocation_failure)
{
	struct lcp_config c = lcp_config_default();
	const struct lcp_config before = c;
	char *unknown = NULL;
	char err[128];
	lcp_err rc;

	lcp_alloc_fail_after(0);
	rc = parse(&c, "bits=8", err, sizeof err);
	lcp_alloc_fail_after(-1);
	cr_expect_eq(rc, LCP_ERR_NOMEM);
	cr_expect_eq(memcmp(&c, &before, sizeof c), 0);

	/* The copy succeeds, collecting the unknown option fails. */
	lcp_alloc_fail_after(1);
	rc = lcp_config_parse_options(&c, "bits=8,foo", &unknown, err, sizeof err);
	lcp_alloc_fail_after(-1);
	cr_expect_eq(rc, LCP_ERR_NOMEM);
	cr_expect_null(unknown);
	cr_expect_eq(memcmp(&c, &before, sizeof c), 0);
	expect_no_leaks();
}

Test(config, describe_names_presets_and_options)
{
	char buf[160];
	struct lcp_config c = lcp_config_quality();

	lcp_config_describe(&c, buf, sizeof buf);
	cr_assert_str_eq(buf, "quality");
	c = lcp_config_lossless();
	lcp_config_describe(&c, buf, sizeof buf);
	cr_assert_str_eq(buf, "lossless");
	c = lcp_config_balanced();
	c.rank = 8;
	lcp_config_describe(&c, buf, sizeof buf);
	cr_assert_str_eq(buf, "bits=4,rank=8,group=64,sym,quality=0.97,min_size=4096");
	/* What it prints parses back to the same configuration. */
	struct lcp_config back = lcp_config_default();
	cr_assert_eq(lcp_config_parse_options(&back, buf, NULL, NULL, 0), LCP_OK);
	cr_assert_eq(back.rank, 8);
	cr_assert_eq(back.group_size, 64);
	cr_assert_eq(back.quality_threshold, 0.97f);
}
