/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Sidecar serialization: parse -> serialize gives the same bytes, and
 * damaged sidecars (every truncation, every single-bit flip, random bytes
 * with the checksum recomputed so the structural checks run) are refused
 * with an error and never crash or read out of bounds (run under SAN=1).
 */
#include <criterion/criterion.h>

#include "common/buf.h"
#include "common/checksum.h"
#include "lcpfs/store.h"
#include "store/sidecar.h"
#include "test_store_helpers.h"

/* Random damage rounds with the checksum fixed up: each runs the full
 * structural validation once; a few thousand cover every field kind. */
#define FIXED_CHECKSUM_ROUNDS 3000

static uint8_t *packed_sidecar(struct scratch *d, size_t *len)
{
	struct synth s;
	struct lcp_config cfg = lcp_config_default();
	struct lcp_pack_report rep;
	synth_build(&s, 42);
	write_file(d->fd, "m.safetensors", s.data, s.len);
	free(s.data);
	cr_assert_eq(lcp_store_pack_at(d->fd, "m.safetensors", -1, &cfg, NULL, NULL, &rep), LCP_OK);
	cr_assert(rep.committed, "%s", rep.reason);
	return read_file(d->fd, ".m.safetensors.lcpfs", len);
}

static bool is_refusal(lcp_err e)
{
	return e == LCP_ERR_CHECKSUM || e == LCP_ERR_FORMAT || e == LCP_ERR_TRUNCATED ||
	       e == LCP_ERR_VERSION;
}

Test(store_sidecar, roundtrip_is_byte_identical)
{
	struct scratch d;
	struct lcp_sidecar sc;
	struct lcp_buf b = LCP_BUF_INIT;
	size_t len;
	scratch_make(&d);
	uint8_t *raw = packed_sidecar(&d, &len);
	cr_assert_eq(lcp_sidecar_parse(raw, len, &sc), LCP_OK);
	cr_assert_eq(sc.nregions, 5, "header, w, h, n, i");
	cr_assert_eq(lcp_sidecar_serialize(&sc, &b), LCP_OK);
	cr_assert_eq(b.len, len);
	cr_assert_eq(memcmp(b.data, raw, len), 0);
	lcp_buf_free(&b);
	lcp_sidecar_free(&sc);
	free(raw);
	scratch_remove(&d);
}

Test(store_sidecar, every_truncation_refused)
{
	struct scratch d;
	struct lcp_sidecar sc;
	size_t len;
	scratch_make(&d);
	uint8_t *raw = packed_sidecar(&d, &len);
	for (size_t n = 0; n < len; n++) {
		uint8_t *copy = malloc(n + 1); /* exact size: ASan sees any overread */
		memcpy(copy, raw, n);
		lcp_err e = lcp_sidecar_parse(copy, n, &sc);
		cr_assert(is_refusal(e), "truncated to %zu gave %s", n, lcp_err_name(e));
		free(copy);
	}
	free(raw);
	scratch_remove(&d);
}

Test(store_sidecar, every_bit_flip_refused)
{
	struct scratch d;
	struct lcp_sidecar sc;
	size_t len;
	scratch_make(&d);
	uint8_t *raw = packed_sidecar(&d, &len);
	for (size_t i = 0; i < len; i++) {
		uint8_t bit = (uint8_t)(1u << (i % 8));
		raw[i] ^= bit;
		lcp_err e = lcp_sidecar_parse(raw, len, &sc);
		cr_assert(is_refusal(e), "flip at %zu gave %s", i, lcp_err_name(e));
		raw[i] ^= bit;
	}
	free(raw);
	scratch_remove(&d);
}

Test(store_sidecar, damage_with_fixed_checksum_never_crashes)
{
	struct scratch d;
	struct lcp_sidecar sc;
	size_t len;
	uint64_t seed = 77;
	int accepted = 0;
	scratch_make(&d);
	uint8_t *raw = packed_sidecar(&d, &len);
	uint8_t *copy = malloc(len);
	for (int round = 0; round < FIXED_CHECKSUM_ROUNDS; round++) {
		memcpy(copy, raw, len);
		int flips = 1 + (int)(test_rng(&seed) % 3);
		for (int k = 0; k < flips; k++) {
			/* skip the magic, total length and trailer so the structural
			 * checks are what is exercised */
			size_t at = 24 + (size_t)(test_rng(&seed) % (len - 32));
			copy[at] = (uint8_t)test_rng(&seed);
		}
		lcp_store_le64(copy + len - 8, lcp_xxh3(copy, len - 8));
		lcp_err e = lcp_sidecar_parse(copy, len, &sc);
		cr_assert(e == LCP_OK || is_refusal(e) || e == LCP_ERR_NOMEM, "%s", lcp_err_name(e));
		if (e == LCP_OK) {
			accepted++;
			lcp_sidecar_free(&sc);
		}
	}
	/* Value fields (sizes of stats, checksums) carry no redundancy, so some
	 * damaged-but-consistent sidecars parse; the chunk checksums catch
	 * those at read time. Structure damage must not: most rounds refuse. */
	cr_assert_lt(accepted, FIXED_CHECKSUM_ROUNDS);
	free(copy);
	free(raw);
	scratch_remove(&d);
}

Test(store_sidecar, payload_header)
{
	uint8_t id[LCP_FILE_ID_LEN], got[LCP_FILE_ID_LEN], h[LCP_PAYLOAD_HEADER_LEN];
	for (int i = 0; i < LCP_FILE_ID_LEN; i++)
		id[i] = (uint8_t)(i * 7 + 1);
	lcp_payload_header_build(id, h);
	/* the documented bytes: magic "lcpfsPL" 0x1a, version 1, header length 32 */
	static const uint8_t want[16] = {'l', 'c', 'p', 'f', 's', 'P', 'L', 0x1a,
					 1, 0, 0, 0, 32, 0, 0, 0};
	cr_assert_eq(memcmp(h, want, 16), 0);
	cr_assert(lcp_payload_header_check(h, got));
	cr_assert_eq(memcmp(got, id, LCP_FILE_ID_LEN), 0);
	h[8] = 2;
	cr_assert_not(lcp_payload_header_check(h, got));
}

/* Rounds of sidecar damage (checksum recomputed) followed by open, a whole
 * read and verify: each round rewrites the sidecar file, so keep it modest. */
#define OPEN_DAMAGE_ROUNDS 300

Test(store_sidecar, damaged_but_consistent_sidecar_never_crashes_reads)
{
	struct scratch d;
	size_t len;
	uint64_t seed = 991;
	scratch_make(&d);
	uint8_t *raw = packed_sidecar(&d, &len);
	uint8_t *copy = malloc(len);
	for (int round = 0; round < OPEN_DAMAGE_ROUNDS; round++) {
		struct lcp_store_file *f;
		memcpy(copy, raw, len);
		size_t at = 24 + (size_t)(test_rng(&seed) % (len - 32));
		copy[at] = (uint8_t)test_rng(&seed);
		lcp_store_le64(copy + len - 8, lcp_xxh3(copy, len - 8));
		write_file(d.fd, ".m.safetensors.lcpfs", copy, len);
		if (lcp_store_open_at(d.fd, "m.safetensors", NULL, &f) != LCP_OK)
			continue;
		uint64_t n = lcp_store_logical_size(f);
		uint8_t *b = malloc(n ? n : 1);
		size_t got;
		(void)lcp_store_read(f, b, n, 0, &got, NULL);
		(void)lcp_store_verify(f, NULL, 0);
		free(b);
		lcp_store_close(f);
	}
	free(copy);
	free(raw);
	scratch_remove(&d);
}

/* The lossless preset: recorded in the sidecar (config flags byte 75, bit
 * 0), the file reads back byte-identical, its float tensors are stored
 * lossless with no note while the 1-D one keeps its reason; a flags byte
 * with an unknown bit is refused. */
Test(store_sidecar, lossless_preset_is_recorded_and_exact)
{
	struct scratch d;
	struct synth s;
	struct lcp_config cfg = lcp_config_lossless();
	struct lcp_pack_report rep;
	struct lcp_sidecar sc;
	size_t len;
	scratch_make(&d);
	synth_build(&s, 43);
	write_file(d.fd, "m.safetensors", s.data, s.len);
	cr_assert_eq(lcp_store_pack_at(d.fd, "m.safetensors", -1, &cfg, NULL, NULL, &rep), LCP_OK);
	cr_assert(rep.committed, "%s", rep.reason);
	uint8_t *raw = read_file(d.fd, ".m.safetensors.lcpfs", &len);
	cr_assert_eq(raw[75], 1);
	cr_assert_eq(lcp_sidecar_parse(raw, len, &sc), LCP_OK);
	cr_expect(sc.config.lossless);
	lcp_sidecar_free(&sc);

	struct lcp_store_file *f;
	cr_assert_eq(lcp_store_open_at(d.fd, "m.safetensors", NULL, &f), LCP_OK);
	uint8_t *back = malloc(s.len + 1);
	size_t got = 0;
	cr_assert_eq(lcp_store_read(f, back, s.len + 1, 0, &got, NULL), LCP_OK);
	cr_assert_eq(got, s.len);
	cr_assert_arr_eq(back, s.data, s.len, "the lossless preset changed a byte");
	struct lcp_file_report r;
	cr_assert_eq(lcp_store_report(f, &r), LCP_OK);
	cr_expect(r.config.lossless);
	cr_expect_str_eq(r.tensors[0].encoding, "lossless");
	cr_expect_null(r.tensors[0].note);
	cr_expect_str_eq(r.tensors[2].encoding, "exact");
	cr_expect_str_eq(r.tensors[2].note, "1-D");
	lcp_file_report_free(&r);
	lcp_store_close(f);
	free(back);

	raw[75] = 2;
	lcp_store_le64(raw + len - 8, lcp_xxh3(raw, len - 8));
	cr_expect_eq(lcp_sidecar_parse(raw, len, &sc), LCP_ERR_FORMAT);
	free(raw);
	free(s.data);
	scratch_remove(&d);
}
