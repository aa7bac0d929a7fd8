/* SPDX-License-Identifier: Apache-2.0 */
/*
 * PyTorch zip (torch.save since 1.6): a zip archive whose entries are
 * <archive>/data.pkl (the pickled object), <archive>/data/<key> (one raw
 * storage each), and small bookkeeping files, all STORED. We read the end of
 * central directory (and the zip64 one when present: torch always writes
 * it), the central directory, every local header, and run data.pkl through
 * a non-executing pickle reader to learn each storage's dtype and the
 * tensors built on it.
 *
 * A zip without a data.pkl entry is not a PyTorch file (UNKNOWN, untouched).
 * A torch zip with a compressed entry is valid but kept whole and exact.
 *
 * Regions: a storage used by exactly one tensor that is contiguous, starts at
 * offset 0 and spans the whole storage becomes a TENSOR region over the
 * entry's data by the shared rule (float dtype, >= 2 dims, >= min_size), with
 * the tensor's dict key as name; the entry's CRC-32 fields (local header,
 * data descriptor when flag bit 3 is set, central directory) become CRC32
 * regions pointing at it, except a local CRC left zero because a data
 * descriptor follows (it must stay zero). Every other byte is EXACT.
 */
#include "format/fmt.h"

#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/le.h"
#include "format/pickle.h"

#define ZIP_EOCD_SIG 0x06054b50u
#define ZIP64_EOCD_SIG 0x06064b50u
#define ZIP64_LOC_SIG 0x07064b50u
#define ZIP_CDH_SIG 0x02014b50u
#define ZIP_LFH_SIG 0x04034b50u
#define ZIP_DD_SIG 0x08074b50u
#define ZIP_EOCD_LEN 22
#define ZIP64_LOC_LEN 20
#define ZIP64_EOCD_LEN 56
#define ZIP_CDH_LEN 46
#define ZIP_LFH_LEN 30
#define ZIP_MAX_COMMENT 65535
/* The central directory and data.pkl are held in memory; torch files with
 * tens of thousands of tensors stay far below these. */
#define ZIP_MAX_CD_BYTES (64u << 20)
#define ZIP_MAX_PKL_BYTES (256u << 20)

struct zentry {
	char *name;
	uint16_t flags, method;
	uint64_t csize, usize;
	uint64_t lho;             /* local header offset */
	uint64_t cdh_off;         /* its central directory header's file offset */
	uint64_t data_off;
	uint64_t end;             /* end of data (and descriptor) */
	uint64_t local_crc_off;   /* or UINT64_MAX: left as zero, not a CRC */
	uint64_t dd_crc_off;      /* or UINT64_MAX */
	bool zip64_local;
};

struct zip {
	struct zentry *e;
	size_t n;
	uint64_t cd_off, cd_size;
};

static void zip_free(struct zip *z)
{
	for (size_t i = 0; i < z->n; i++)
		lcp_free(z->e[i].name);
	lcp_free(z->e);
	z->e = NULL;
	z->n = 0;
}

static lcp_err bad_read(struct fmt_ctx *c, lcp_err e, const char *what)
{
	if (e == LCP_ERR_TRUNCATED)
		return fmt_invalid(c, "zip: %s runs past the end of the file", what);
	return e;
}

/* Finds the end of central directory record; fills cd_off/cd_size and the
 * entry count. */
static lcp_err find_cd(struct fmt_ctx *c, struct zip *z, uint64_t *count)
{
	uint64_t tail = c->size < ZIP_EOCD_LEN + ZIP_MAX_COMMENT ? c->size : ZIP_EOCD_LEN + ZIP_MAX_COMMENT;
	if (tail < ZIP_EOCD_LEN)
		return fmt_invalid(c, "zip: too short for an end of central directory record");
	uint8_t *buf = lcp_malloc((size_t)tail);
	if (!buf)
		return LCP_ERR_NOMEM;
	uint64_t base = c->size - tail;
	lcp_err e = fmt_read(c, buf, (size_t)tail, base);
	if (e) {
		lcp_free(buf);
		return e;
	}
	/* The record whose comment length reaches exactly the end of the file. */
	size_t at = SIZE_MAX;
	for (size_t i = (size_t)tail - ZIP_EOCD_LEN + 1; i-- > 0;) {
		if (lcp_load_le32(buf + i) == ZIP_EOCD_SIG &&
		    i + ZIP_EOCD_LEN + lcp_load_le16(buf + i + 20) == tail) {
			at = i;
			break;
		}
	}
	if (at == SIZE_MAX) {
		lcp_free(buf);
		return fmt_invalid(c, "zip: no end of central directory record");
	}
	const uint8_t *r = buf + at;
	uint64_t eocd = base + at;
	uint16_t disk = lcp_load_le16(r + 4), cd_disk = lcp_load_le16(r + 6);
	*count = lcp_load_le16(r + 10);
	z->cd_size = lcp_load_le32(r + 12);
	z->cd_off = lcp_load_le32(r + 16);
	bool entries_match = lcp_load_le16(r + 8) == *count;
	lcp_free(buf);
	if (disk != 0 || cd_disk != 0 || !entries_match)
		return fmt_invalid(c, "zip: multi-disk archives are not supported");
	uint64_t cd_end = eocd;

	uint8_t loc[ZIP64_LOC_LEN];
	if (eocd >= ZIP64_LOC_LEN && !fmt_read(c, loc, sizeof loc, eocd - ZIP64_LOC_LEN) &&
	    lcp_load_le32(loc) == ZIP64_LOC_SIG) {
		uint64_t z64 = lcp_load_le64(loc + 8);
		uint8_t rec[ZIP64_EOCD_LEN];
		if (z64 > eocd - ZIP64_LOC_LEN || eocd - ZIP64_LOC_LEN - z64 < ZIP64_EOCD_LEN)
			return fmt_invalid(c, "zip: zip64 end of central directory out of place");
		e = fmt_read(c, rec, sizeof rec, z64);
		if (e)
			return bad_read(c, e, "zip64 end of central directory");
		if (lcp_load_le32(rec) != ZIP64_EOCD_SIG)
			return fmt_invalid(c, "zip: bad zip64 end of central directory signature");
		if (lcp_load_le64(rec + 24) != lcp_load_le64(rec + 32) || lcp_load_le32(rec + 16) != 0)
			return fmt_invalid(c, "zip: multi-disk archives are not supported");
		*count = lcp_load_le64(rec + 32);
		z->cd_size = lcp_load_le64(rec + 40);
		z->cd_off = lcp_load_le64(rec + 48);
		cd_end = z64;
	}
	if (z->cd_off > cd_end || z->cd_size != cd_end - z->cd_off)
		return fmt_invalid(c, "zip: central directory [%llu, +%llu) does not end at %llu",
				   (unsigned long long)z->cd_off, (unsigned long long)z->cd_size,
				   (unsigned long long)cd_end);
	if (z->cd_size > ZIP_MAX_CD_BYTES)
		return fmt_invalid(c, "zip: central directory of %llu bytes over the limit",
				   (unsigned long long)z->cd_size);
	if (*count > z->cd_size / ZIP_CDH_LEN)
		return fmt_invalid(c, "zip: %llu entries cannot fit in the central directory",
				   (unsigned long long)*count);
	return LCP_OK;
}

/* Applies the zip64 extended-information extra field to the fields the
 * central header left at 0xFFFFFFFF. */
static bool zip64_extra(const uint8_t *x, size_t xlen, struct zentry *ze, bool need_u, bool need_c,
			bool need_o)
{
	size_t i = 0;
	while (i + 4 <= xlen) {
		uint16_t id = lcp_load_le16(x + i), sz = lcp_load_le16(x + i + 2);
		if (sz > xlen - i - 4)
			return false;
		if (id == 1) {
			const uint8_t *p = x + i + 4;
			size_t left = sz;
			if (need_u) {
				if (left < 8)
					return false;
				ze->usize = lcp_load_le64(p);
				p += 8;
				left -= 8;
			}
			if (need_c) {
				if (left < 8)
					return false;
				ze->csize = lcp_load_le64(p);
				p += 8;
				left -= 8;
			}
			if (need_o) {
				if (left < 8)
					return false;
				ze->lho = lcp_load_le64(p);
			}
			return true;
		}
		i += 4 + (size_t)sz;
	}
	return !need_u && !need_c && !need_o;
}

static lcp_err read_cd(struct fmt_ctx *c, struct zip *z, uint64_t count)
{
	uint8_t *cd = lcp_malloc(z->cd_size ? (size_t)z->cd_size : 1);
	if (!cd)
		return LCP_ERR_NOMEM;
	lcp_err e = fmt_read(c, cd, (size_t)z->cd_size, z->cd_off);
	if (e) {
		lcp_free(cd);
		return bad_read(c, e, "central directory");
	}
	z->e = count ? lcp_calloc((size_t)count, sizeof *z->e) : NULL;
	if (count && !z->e) {
		lcp_free(cd);
		return LCP_ERR_NOMEM;
	}
	size_t pos = 0;
	for (uint64_t i = 0; i < count; i++) {
		if (z->cd_size - pos < ZIP_CDH_LEN || lcp_load_le32(cd + pos) != ZIP_CDH_SIG) {
			e = fmt_invalid(c, "zip: bad central directory header %llu", (unsigned long long)i);
			break;
		}
		const uint8_t *h = cd + pos;
		uint16_t nlen = lcp_load_le16(h + 28), xlen = lcp_load_le16(h + 30), clen = lcp_load_le16(h + 32);
		if (z->cd_size - pos - ZIP_CDH_LEN < (uint64_t)nlen + xlen + clen) {
			e = fmt_invalid(c, "zip: central directory header %llu runs past its end",
					(unsigned long long)i);
			break;
		}
		struct zentry *ze = &z->e[z->n];
		ze->flags = lcp_load_le16(h + 8);
		ze->method = lcp_load_le16(h + 10);
		ze->csize = lcp_load_le32(h + 20);
		ze->usize = lcp_load_le32(h + 24);
		ze->lho = lcp_load_le32(h + 42);
		ze->cdh_off = z->cd_off + pos;
		ze->name = lcp_malloc((size_t)nlen + 1);
		if (!ze->name) {
			e = LCP_ERR_NOMEM;
			break;
		}
		memcpy(ze->name, h + ZIP_CDH_LEN, nlen);
		ze->name[nlen] = '\0';
		z->n++;
		if (memchr(ze->name, '\0', nlen)) {
			e = fmt_invalid(c, "zip: entry name with a NUL byte");
			break;
		}
		if (lcp_load_le16(h + 34) != 0) {
			e = fmt_invalid(c, "zip: multi-disk archives are not supported");
			break;
		}
		if (!zip64_extra(h + ZIP_CDH_LEN + nlen, xlen, ze, ze->usize == 0xFFFFFFFFu,
				 ze->csize == 0xFFFFFFFFu, ze->lho == 0xFFFFFFFFu)) {
			e = fmt_invalid(c, "zip: entry '%.60s' has a bad zip64 extra field", ze->name);
			break;
		}
		pos += ZIP_CDH_LEN + (size_t)nlen + xlen + clen;
	}
	if (!e && pos != z->cd_size)
		e = fmt_invalid(c, "zip: %llu stray bytes in the central directory",
				(unsigned long long)(z->cd_size - pos));
	lcp_free(cd);
	return e;
}

/* Reads the local header and locates data, descriptor and CRC fields. */
static lcp_err read_local(struct fmt_ctx *c, struct zip *z, struct zentry *ze)
{
	uint8_t h[ZIP_LFH_LEN];
	lcp_err e = fmt_read(c, h, sizeof h, ze->lho);
	if (e)
		return bad_read(c, e, "local file header");
	if (lcp_load_le32(h) != ZIP_LFH_SIG)
		return fmt_invalid(c, "zip: entry '%.60s' has no local header at %llu", ze->name,
				   (unsigned long long)ze->lho);
	uint16_t nlen = lcp_load_le16(h + 26), xlen = lcp_load_le16(h + 28);
	size_t cn = strlen(ze->name);
	if (nlen != cn || lcp_load_le16(h + 8) != ze->method || lcp_load_le16(h + 6) != ze->flags)
		return fmt_invalid(c, "zip: entry '%.60s' local header disagrees with the central directory",
				   ze->name);
	uint8_t *lx = lcp_malloc((size_t)nlen + xlen + 1);
	if (!lx)
		return LCP_ERR_NOMEM;
	e = fmt_read(c, lx, (size_t)nlen + xlen, ze->lho + ZIP_LFH_LEN);
	if (e) {
		lcp_free(lx);
		return bad_read(c, e, "local file header");
	}
	bool same = memcmp(lx, ze->name, nlen) == 0;
	/* A zip64 extra in the local header makes a data descriptor's sizes 8 bytes. */
	ze->zip64_local = false;
	for (size_t i = nlen; i + 4 <= (size_t)nlen + xlen;) {
		uint16_t id = lcp_load_le16(lx + i), sz = lcp_load_le16(lx + i + 2);
		if (id == 1)
			ze->zip64_local = true;
		i += 4 + (size_t)sz;
	}
	lcp_free(lx);
	if (!same)
		return fmt_invalid(c, "zip: entry '%.60s' local header names another file", ze->name);
	ze->data_off = ze->lho + ZIP_LFH_LEN + nlen + xlen;
	if (ze->data_off > z->cd_off || ze->csize > z->cd_off - ze->data_off)
		return fmt_invalid(c, "zip: entry '%.60s' data runs into the central directory", ze->name);
	ze->end = ze->data_off + ze->csize;
	ze->local_crc_off = ze->lho + 14;
	ze->dd_crc_off = UINT64_MAX;
	if (ze->flags & 8) {
		if (lcp_load_le32(h + 14) == 0)
			ze->local_crc_off = UINT64_MAX;
		uint8_t sig[4];
		uint64_t dlen = ze->zip64_local ? 20 : 12;
		e = fmt_read(c, sig, 4, ze->end);
		if (e)
			return bad_read(c, e, "data descriptor");
		bool has_sig = lcp_load_le32(sig) == ZIP_DD_SIG;
		ze->dd_crc_off = ze->end + (has_sig ? 4 : 0);
		dlen += has_sig ? 4 : 0;
		if (dlen > z->cd_off - ze->end)
			return fmt_invalid(c, "zip: entry '%.60s' data descriptor runs into the central directory",
					   ze->name);
		ze->end += dlen;
	}
	return LCP_OK;
}

static int entry_cmp(const void *a, const void *b)
{
	const struct zentry *x = *(struct zentry *const *)a, *y = *(struct zentry *const *)b;
	return x->lho < y->lho ? -1 : x->lho > y->lho;
}

static lcp_err check_layout(struct fmt_ctx *c, struct zip *z)
{
	if (z->n == 0)
		return LCP_OK;
	struct zentry **o = lcp_calloc(z->n, sizeof *o);
	if (!o)
		return LCP_ERR_NOMEM;
	for (size_t i = 0; i < z->n; i++)
		o[i] = &z->e[i];
	qsort(o, z->n, sizeof *o, entry_cmp);
	lcp_err e = LCP_OK;
	for (size_t i = 1; i < z->n && !e; i++)
		if (o[i]->lho < o[i - 1]->end)
			e = fmt_invalid(c, "zip: entries '%.50s' and '%.50s' overlap", o[i - 1]->name, o[i]->name);
	lcp_free(o);
	return e;
}

static bool is_contiguous(const struct pkl_tensor *t)
{
	uint64_t expect = 1;
	for (uint32_t d = t->ndims; d-- > 0;) {
		/* torch ignores the stride of a size-1 dim when it checks contiguity */
		if (t->dims[d] != 1 && t->strides[d] != expect)
			return false;
		if (!fmt_mul_ok(&expect, t->dims[d]))
			return false;
	}
	return true;
}

static lcp_err add_storage(struct fmt_ctx *c, const struct pkl_result *pr, const struct pkl_storage *st,
			   const struct zentry *ze)
{
	const struct pkl_tensor *t = st->uses == 1 ? &pr->tensors[st->tensor] : NULL;
	const char *why = NULL;
	uint64_t numel = 1;
	if (st->elem_bytes == 0)
		why = "unknown storage type";
	else if (st->uses == 0)
		why = "storage without a tensor";
	else if (st->uses > 1)
		why = "storage shared by several tensors";
	else if (!t->shape_ok)
		why = "unusual tensor shape";
	if (!why) {
		for (uint32_t d = 0; d < t->ndims; d++)
			fmt_mul_ok(&numel, t->dims[d]);
		if (t->offset != 0 || numel != st->numel || !is_contiguous(t))
			why = "view of a storage";
	}
	struct fmt_tensor ft = {
		.name = t && t->name ? t->name : ze->name,
		.dtype_name = st->type_name,
		.is_float = !why && st->is_float,
		.dtype = st->dtype,
		.not_float_reason = why,
		.ndims = why ? 0 : t->ndims,
		.dims = t ? t->dims : NULL,
		.off = ze->data_off,
		.len = ze->csize,
	};
	size_t idx;
	lcp_err e = fmt_add_tensor(c, &ft, &idx);
	if (e || idx == SIZE_MAX || c->regions[idx].kind != LCP_REGION_TENSOR)
		return e;
	uint64_t crcs[3] = {ze->local_crc_off, ze->dd_crc_off, ze->cdh_off + 16};
	for (int i = 0; i < 3 && !e; i++) {
		if (crcs[i] == UINT64_MAX)
			continue;
		size_t ci;
		e = fmt_add(c, LCP_REGION_CRC32, crcs[i], 4, NULL, &ci);
		if (!e)
			c->regions[ci].crc_of = (uint32_t)idx;
	}
	return e;
}

static lcp_err torch_regions(struct fmt_ctx *c, struct zip *z, const struct zentry *pkl, size_t prefix_len)
{
	if (pkl->csize > ZIP_MAX_PKL_BYTES)
		return fmt_invalid(c, "pytorch: data.pkl of %llu bytes over the limit",
				   (unsigned long long)pkl->csize);
	uint8_t *buf = lcp_malloc(pkl->csize ? (size_t)pkl->csize : 1);
	if (!buf)
		return LCP_ERR_NOMEM;
	lcp_err e = fmt_read(c, buf, (size_t)pkl->csize, pkl->data_off);
	if (e) {
		lcp_free(buf);
		return e;
	}
	struct pkl_result pr;
	char why[120];
	e = pkl_scan(buf, (size_t)pkl->csize, &pr, why, sizeof why);
	lcp_free(buf);
	if (e == LCP_ERR_FORMAT)
		return fmt_invalid(c, "pytorch: data.pkl: %s", why);
	if (e)
		return e;
	for (size_t s = 0; s < pr.nstorages && !e; s++) {
		const struct pkl_storage *st = &pr.storages[s];
		const struct zentry *ze = NULL;
		for (size_t i = 0; i < z->n; i++) {
			const char *n = z->e[i].name;
			if (strncmp(n, pkl->name, prefix_len) == 0 && strncmp(n + prefix_len, "data/", 5) == 0 &&
			    strcmp(n + prefix_len + 5, st->key) == 0)
				ze = &z->e[i];
		}
		uint64_t bytes = st->numel;
		if (!ze)
			e = fmt_invalid(c, "pytorch: storage '%.40s' has no zip entry", st->key);
		else if (st->elem_bytes && (!fmt_mul_ok(&bytes, st->elem_bytes) || bytes != ze->csize))
			e = fmt_invalid(c, "pytorch: storage '%.40s' holds %llu bytes, data.pkl says %llu elements of %u",
					st->key, (unsigned long long)ze->csize, (unsigned long long)st->numel,
					st->elem_bytes);
		else
			e = add_storage(c, &pr, st, ze);
	}
	pkl_result_free(&pr);
	return e;
}

lcp_err fmt_parse_torch_zip(struct fmt_ctx *c)
{
	struct zip z;
	memset(&z, 0, sizeof z);
	uint64_t count = 0;
	lcp_err e = find_cd(c, &z, &count);
	if (!e)
		e = read_cd(c, &z, count);
	if (e)
		goto out;
	/* <archive>/data.pkl with a single path component before it. */
	const struct zentry *pkl = NULL;
	size_t prefix_len = 0;
	for (size_t i = 0; i < z.n; i++) {
		const char *slash = strchr(z.e[i].name, '/');
		if (slash && slash != z.e[i].name && strcmp(slash, "/data.pkl") == 0) {
			if (pkl) {
				e = fmt_invalid(c, "zip: two data.pkl entries");
				goto out;
			}
			pkl = &z.e[i];
			prefix_len = (size_t)(slash - z.e[i].name) + 1;
		}
	}
	if (!pkl) {
		e = fmt_invalid(c, "zip archive without data.pkl: not a PyTorch file");
		goto out;
	}
	c->format = LCP_FORMAT_PYTORCH;
	for (size_t i = 0; i < z.n && !e; i++)
		e = read_local(c, &z, &z.e[i]);
	if (!e)
		e = check_layout(c, &z);
	if (e)
		goto out;
	for (size_t i = 0; i < z.n; i++) {
		if (z.e[i].method != 0) {
			fmt_whole_exact(c, "pytorch: entry '%.60s' is compressed (method %u): kept exact",
					z.e[i].name, z.e[i].method);
			goto out;
		}
		if (z.e[i].flags & 1) {
			fmt_whole_exact(c, "pytorch: entry '%.60s' is encrypted: kept exact", z.e[i].name);
			goto out;
		}
		if (z.e[i].csize != z.e[i].usize) {
			e = fmt_invalid(c, "pytorch: stored entry '%.60s' has different sizes", z.e[i].name);
			goto out;
		}
	}
	e = torch_regions(c, &z, pkl, prefix_len);
out:
	zip_free(&z);
	return e;
}
