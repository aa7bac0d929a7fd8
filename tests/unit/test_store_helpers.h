/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Helpers for tests/unit/test_store*.c: a scratch directory per test, a
 * synthetic safetensors file built byte by byte (its header JSON written out
 * here, not produced by lcpfs), whole-file I/O, and a cosine measure.
 */
#ifndef LCPFS_TEST_STORE_HELPERS_H
#define LCPFS_TEST_STORE_HELPERS_H

#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/le.h"
#include "lcpfs/store.h"

struct scratch {
	char path[64];
	int fd;
};

static inline void scratch_make(struct scratch *s)
{
	strcpy(s->path, "/tmp/lcpfs-test-store-XXXXXX");
	cr_assert_not_null(mkdtemp(s->path));
	s->fd = open(s->path, O_RDONLY | O_DIRECTORY);
	cr_assert_geq(s->fd, 0);
}

static inline void scratch_remove(struct scratch *s)
{
	DIR *d = opendir(s->path);
	struct dirent *e;
	while (d && (e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			unlinkat(s->fd, e->d_name, 0);
	if (d)
		closedir(d);
	close(s->fd);
	rmdir(s->path);
}

/* Entries in the scratch dir (all names, hidden ones too). */
static inline int scratch_count(struct scratch *s)
{
	DIR *d = opendir(s->path);
	struct dirent *e;
	int n = 0;
	/* The lock file the store keeps in a directory it committed in is
	 * neither a file nor a leftover. */
	while (d && (e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
		    strcmp(e->d_name, ".lcpfs-lock"))
			n++;
	if (d)
		closedir(d);
	return n;
}

static inline void write_file(int dirfd, const char *name, const void *data, size_t len)
{
	int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, data, len), (ssize_t)len);
	close(fd);
}

static inline uint8_t *read_file(int dirfd, const char *name, size_t *len)
{
	int fd = openat(dirfd, name, O_RDONLY);
	struct stat st;
	cr_assert_geq(fd, 0, "open %s", name);
	cr_assert_eq(fstat(fd, &st), 0);
	uint8_t *b = malloc((size_t)st.st_size + 1);
	cr_assert_eq(pread(fd, b, (size_t)st.st_size, 0), st.st_size);
	close(fd);
	*len = (size_t)st.st_size;
	return b;
}

/* Flips byte off of file name in dirfd (twice restores it). */
static inline void flip_byte_at(int dirfd, const char *name, uint64_t off)
{
	int fd = openat(dirfd, name, O_RDWR);
	uint8_t v;
	cr_assert_geq(fd, 0);
	cr_assert_eq(pread(fd, &v, 1, (off_t)off), 1);
	v ^= 0x5a;
	cr_assert_eq(pwrite(fd, &v, 1, (off_t)off), 1);
	close(fd);
}

/* Packs name in dfd in place with the default configuration; fails the
 * test unless it committed. */
static inline void pack_in(int dfd, const char *name)
{
	struct lcp_config cfg = lcp_config_default();
	struct lcp_pack_report rep;
	cr_assert_eq(lcp_store_pack_at(dfd, name, -1, &cfg, NULL, NULL, &rep), LCP_OK);
	cr_assert(rep.committed, "%s not committed: %s", name, rep.reason);
}

/* What name in dfd is (lcp_store_probe_at); *err its answer. */
static inline enum lcp_repr repr_of(int dfd, const char *name, lcp_err *err)
{
	struct lcp_probe pr;
	*err = lcp_store_probe_at(dfd, name, NULL, &pr, NULL);
	return pr.repr;
}

static inline uint64_t test_rng(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Roughly normal values: the sum of four uniforms, centred. */
static inline float test_gauss(uint64_t *s)
{
	float v = 0;
	for (int i = 0; i < 4; i++)
		v += (float)(test_rng(s) >> 40) / (float)(1u << 24);
	return (v - 2.0f) * 0.05f;
}

/* binary16 bits of a value in the normal range (truncating the mantissa). */
static inline uint16_t test_f16(float f)
{
	uint32_t u;
	memcpy(&u, &f, 4);
	uint32_t sign = (u >> 16) & 0x8000u;
	int exp = (int)((u >> 23) & 0xff) - 127 + 15;
	if (exp <= 0)
		return (uint16_t)sign;
	return (uint16_t)(sign | (uint32_t)exp << 10 | ((u >> 13) & 0x3ffu));
}

/* The synthetic file: 8-byte length, JSON header padded with spaces to a
 * multiple of 8, then the tensors in this order:
 *   w  F32 [96, 128]   compressible
 *   h  F16 [64, 96]    compressible
 *   n  F32 [128]       1-D: exact
 *   i  I32 [16, 16]    integer: exact
 * Offsets of each tensor in the data section are written out below. */
#define ST_W_LEN (96 * 128 * 4)
#define ST_H_LEN (64 * 96 * 2)
#define ST_N_LEN (128 * 4)
#define ST_I_LEN (16 * 16 * 4)

struct synth {
	uint8_t *data;
	size_t len;
	size_t data_start;         /* first byte of the data section */
	const float *w;            /* the F32 tensor's values (into data) */
};

static inline void synth_build(struct synth *s, uint64_t seed)
{
	char hdr[512];
	size_t o_h = ST_W_LEN, o_n = o_h + ST_H_LEN, o_i = o_n + ST_N_LEN, end = o_i + ST_I_LEN;
	int n = snprintf(hdr, sizeof hdr,
			 "{\"w\":{\"dtype\":\"F32\",\"shape\":[96,128],\"data_offsets\":[0,%zu]},"
			 "\"h\":{\"dtype\":\"F16\",\"shape\":[64,96],\"data_offsets\":[%zu,%zu]},"
			 "\"n\":{\"dtype\":\"F32\",\"shape\":[128],\"data_offsets\":[%zu,%zu]},"
			 "\"i\":{\"dtype\":\"I32\",\"shape\":[16,16],\"data_offsets\":[%zu,%zu]}}",
			 o_h, o_h, o_n, o_n, o_i, o_i, end);
	while (n % 8)
		hdr[n++] = ' ';
	s->data_start = 8 + (size_t)n;
	s->len = s->data_start + end;
	s->data = malloc(s->len);
	lcp_store_le64(s->data, (uint64_t)n);
	memcpy(s->data + 8, hdr, (size_t)n);
	uint8_t *d = s->data + s->data_start;
	for (size_t k = 0; k < ST_W_LEN / 4; k++)
		lcp_store_lef32(d + 4 * k, test_gauss(&seed));
	for (size_t k = 0; k < ST_H_LEN / 2; k++)
		lcp_store_le16(d + o_h + 2 * k, test_f16(test_gauss(&seed) + 0.5f));
	for (size_t k = 0; k < ST_N_LEN / 4; k++)
		lcp_store_lef32(d + o_n + 4 * k, 1.0f + test_gauss(&seed));
	for (size_t k = 0; k < ST_I_LEN / 4; k++)
		lcp_store_le32(d + o_i + 4 * k, (uint32_t)test_rng(&seed));
	s->w = (const float *)(const void *)d;
}

static inline double cosine_f32(const uint8_t *a, const uint8_t *b, size_t n)
{
	double ab = 0, aa = 0, bb = 0;
	for (size_t i = 0; i < n; i++) {
		double x = lcp_load_lef32(a + 4 * i), y = lcp_load_lef32(b + 4 * i);
		ab += x * y;
		aa += x * x;
		bb += y * y;
	}
	return ab / sqrt(aa * bb);
}

#endif
