/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Real files: tests/tools/make_test_files.py writes safetensors (BF16, F16),
 * GGUF v2/v3 (F32, F16, BF16, Q8_0; alignment 32 and 64), .npy v1-v3 in C
 * and Fortran order, a torch.save .pt and malformed variants from the
 * arrays in tests/data, with a manifest of what independent readers
 * (tests/tools/readers.py: numpy, torch, a GGUF reader from the spec) see in
 * each. Here every file goes through lcp_format_parse and each region is
 * checked against that view: names, shapes, offsets, lengths, which tensors
 * are compressible, and for the .pt, that each CRC32 region holds the zip
 * entry's CRC.
 */
#include <criterion/criterion.h>
#include <string.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <unistd.h>

#include "test_format_helpers.h"

#define DATA_FILE "tests/data/llama2c-stories260K.safetensors"
/* The min_size the checks use: stories260K's 32x64 matrices are 8 KiB in
 * F32 (kept as tensors) and 4 KiB in F16/BF16 (kept exact), so both sides of
 * the rule are exercised. */
#define REAL_MIN_SIZE 8192

static bool is_float_dtype(const char *d)
{
	static const char *const f[] = {"F32", "F16", "BF16", "F64", "<f4", "<f2", "<f8",
					 "float32", "float16", "bfloat16", "float64"};
	for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
		if (strcmp(d, f[i]) == 0)
			return true;
	return false;
}

static const struct lcp_region *find_region(const struct lcp_region_map *m, uint64_t off, size_t *idx)
{
	for (size_t i = 0; i < m->nregions; i++) {
		if (m->regions[i].off == off) {
			*idx = i;
			return &m->regions[i];
		}
	}
	return NULL;
}

static void check_valid(const char *path, const char *format, json_t *desc, int fd,
			const struct lcp_region_map *m)
{
	cr_expect(m->ok, "%s: %s", path, m->reason);
	cr_expect_str_eq(lcp_format_name(m->format), format, "%s", path);
	if (!m->ok)
		return;
	json_t *hb = json_object_get(desc, "header_bytes");
	if (hb && m->nregions)
		cr_expect_eq(m->regions[0].len, (uint64_t)json_integer_value(hb), "%s: header", path);
	size_t expected_tensors = 0, tensor_regions = 0;
	for (size_t i = 0; i < m->nregions; i++)
		tensor_regions += m->regions[i].kind == LCP_REGION_TENSOR;
	size_t ti;
	json_t *t;
	json_array_foreach(json_object_get(desc, "tensors"), ti, t) {
		const char *name = json_string_value(json_object_get(t, "name"));
		const char *dtype = json_string_value(json_object_get(t, "dtype"));
		uint64_t off = (uint64_t)json_integer_value(json_object_get(t, "offset"));
		uint64_t nbytes = (uint64_t)json_integer_value(json_object_get(t, "nbytes"));
		json_t *shape = json_object_get(t, "shape");
		json_t *whole = json_object_get(t, "whole_storage");
		if (nbytes == 0)
			continue;
		size_t idx = SIZE_MAX;
		const struct lcp_region *r = find_region(m, off, &idx);
		cr_assert_not_null(r, "%s: no region at %llu for '%s'", path, (unsigned long long)off, name);
		cr_expect_eq(r->len, nbytes, "%s: '%s' length", path, name);
		cr_expect_str_eq(r->name ? r->name : "(null)", name, "%s", path);
		if (r->ndims || json_array_size(shape) == 0) {
			cr_expect_eq(r->ndims, json_array_size(shape), "%s: '%s' ndims", path, name);
			for (size_t d = 0; d < json_array_size(shape) && d < r->ndims; d++)
				cr_expect_eq(r->dims[d], (uint64_t)json_integer_value(json_array_get(shape, d)),
					     "%s: '%s' dim %zu", path, name, d);
		}
		bool expect_tensor = is_float_dtype(dtype) && json_array_size(shape) >= 2 &&
				     nbytes >= REAL_MIN_SIZE && (!whole || json_is_true(whole)) &&
				     !strstr(name, "freqs"); /* rotary tables stay exact */
		expected_tensors += expect_tensor;
		cr_expect_eq(r->kind, expect_tensor ? LCP_REGION_TENSOR : LCP_REGION_EXACT,
			     "%s: '%s' (%s) kind %d", path, name, dtype, r->kind);
		json_t *crc = json_object_get(t, "crc");
		if (!crc || r->kind != LCP_REGION_TENSOR)
			continue;
		size_t ncrc = 0;
		for (size_t i = 0; i < m->nregions; i++) {
			if (m->regions[i].kind != LCP_REGION_CRC32 || m->regions[i].crc_of != idx)
				continue;
			uint8_t b[4];
			cr_assert_eq(pread(fd, b, 4, (off_t)m->regions[i].off), 4);
			cr_expect_eq(lcp_load_le32(b), (uint32_t)json_integer_value(crc),
				     "%s: CRC field at %llu of '%s'", path, (unsigned long long)m->regions[i].off, name);
			ncrc++;
		}
		/* torch writes data descriptors: descriptor + central CRC (the local
		 * one stays zero and is not a CRC32 region). */
		cr_expect_eq(ncrc, 2, "%s: '%s' CRC fields", path, name);
	}
	cr_expect_gt(expected_tensors, 0, "%s has compressible tensors", path);
	cr_expect_eq(tensor_regions, expected_tensors, "%s: TENSOR regions", path);
}

Test(format_real, files_match_independent_readers, .timeout = 120)
{
	cr_assert_eq(access(DATA_FILE, R_OK), 0, "%s is missing (tests run from the repository root)",
		     DATA_FILE);
	const char *py = getenv("PYTHON") ? getenv("PYTHON") : "/usr/bin/python3";
	char dir[] = "/tmp/lcpfs-format-real-XXXXXX";
	cr_assert_not_null(mkdtemp(dir));
	char cmd[512];
	snprintf(cmd, sizeof cmd, "'%s' tests/tools/make_test_files.py '%s' >/dev/null", py, dir);
	int rc = system(cmd);
	cr_assert_eq(rc, 0, "make_test_files.py failed (%d)", rc);
	char path[512];
	snprintf(path, sizeof path, "%s/manifest.json", dir);
	json_error_t jerr;
	json_t *man = json_load_file(path, 0, &jerr);
	cr_assert_not_null(man, "manifest: %s", jerr.text);
	size_t i, nfiles = 0;
	json_t *f;
	json_array_foreach(json_object_get(man, "files"), i, f) {
		const char *name = json_string_value(json_object_get(f, "file"));
		const char *expect = json_string_value(json_object_get(f, "expect"));
		const char *format = json_string_value(json_object_get(f, "format"));
		snprintf(path, sizeof path, "%s/%s", dir, name);
		int fd = open(path, O_RDONLY);
		cr_assert_geq(fd, 0, "%s", path);
		struct lcp_reader r;
		struct lcp_region_map m;
		cr_assert_eq(lcp_reader_from_fd(&r, &fd), LCP_OK);
		cr_assert_eq(lcp_format_parse(&r, REAL_MIN_SIZE, &m), LCP_OK, "%s", name);
		fmt_check_invariants(&m, r.size);
		if (strcmp(expect, "valid") == 0) {
			check_valid(name, format, json_object_get(f, "describe"), fd, &m);
		} else {
			cr_expect_not(m.ok, "%s must fail validation", name);
			cr_expect_str_eq(lcp_format_name(m.format), format, "%s: %s", name, m.reason);
		}
		lcp_region_map_free(&m);
		close(fd);
		unlink(path);
		nfiles++;
	}
	cr_expect_geq(nfiles, 20, "manifest lists every generated file");
	json_decref(man);
	snprintf(path, sizeof path, "%s/manifest.json", dir);
	unlink(path);
	cr_expect_eq(rmdir(dir), 0, "every generated file is in the manifest");
}
