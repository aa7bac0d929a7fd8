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

#include <stdio.h>
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
/* The central directory and data.pkl are held in memory while the file is
 * scanned; torch files with a million tensors stay below these (about 70
 * and 110 MB). Entries: one per storage plus torch's few bookkeeping ones. */
#define ZIP_MAX_CD_BYTES (128u << 20)
#define ZIP_MAX_PKL_BYTES PKL_MAX_BYTES
#define ZIP_MAX_ENTRIES (PKL_MAX_STORAGES + 1024u)

struct zentry {
	const char *name;         /* into the central directory buffer, not NUL-terminated */
	uint16_t nlen;
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
	uint8_t *cd;              /* the central directory, which entry names point into */
};

static void zip_free(struct zip *z)
{
	lcp_free(z->e);
	lcp_free(z->cd);
	z->e = NULL;
	z->cd = NULL;
	z->n = 0;
}

/* An entry name for messages: at most 60 bytes of it. */
#define ZNAME(ze) (int)((ze)->nlen < 60 ? (ze)->nlen : 60), (ze)->name

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
	if (*count > ZIP_MAX_ENTRIES)
		return fmt_invalid(c, "zip: %llu entries over the limit of %u", (unsigned long long)*count,
				   ZIP_MAX_ENTRIES);
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
	z->cd = lcp_malloc(z->cd_size ? (size_t)z->cd_size : 1);
	if (!z->cd)
		return LCP_ERR_NOMEM;
	lcp_err e = fmt_read(c, z->cd, (size_t)z->cd_size, z->cd_off);
	if (e)
		return bad_read(c, e, "central directory");
	z->e = count ? lcp_calloc((size_t)count, sizeof *z->e) : NULL;
	if (count && !z->e)
		return LCP_ERR_NOMEM;
	size_t pos = 0;
	for (uint64_t i = 0; i < count; i++) {
		if (z->cd_size - pos < ZIP_CDH_LEN || lcp_load_le32(z->cd + pos) != ZIP_CDH_SIG)
			return fmt_invalid(c, "zip: bad central directory header %llu", (unsigned long long)i);
		const uint8_t *h = z->cd + pos;
		uint16_t nlen = lcp_load_le16(h + 28), xlen = lcp_load_le16(h + 30), clen = lcp_load_le16(h + 32);
		if (z->cd_size - pos - ZIP_CDH_LEN < (uint64_t)nlen + xlen + clen)
			return fmt_invalid(c, "zip: central directory header %llu runs past its end",
					   (unsigned long long)i);
		struct zentry *ze = &z->e[z->n++];
		ze->flags = lcp_load_le16(h + 8);
		ze->method = lcp_load_le16(h + 10);
		ze->csize = lcp_load_le32(h + 20);
		ze->usize = lcp_load_le32(h + 24);
		ze->lho = lcp_load_le32(h + 42);
		ze->cdh_off = z->cd_off + pos;
		ze->name = (const char *)h + ZIP_CDH_LEN;
		ze->nlen = nlen;
		/* Names may become region names, which must be UTF-8 text. */
		if (memchr(ze->name, '\0', nlen) || !fmt_utf8_ok((const uint8_t *)ze->name, nlen))
			return fmt_invalid(c, "zip: entry name with a NUL byte or not UTF-8");
		if (lcp_load_le16(h + 34) != 0)
			return fmt_invalid(c, "zip: multi-disk archives are not supported");
		if (!zip64_extra(h + ZIP_CDH_LEN + nlen, xlen, ze, ze->usize == 0xFFFFFFFFu,
				 ze->csize == 0xFFFFFFFFu, ze->lho == 0xFFFFFFFFu))
			return fmt_invalid(c, "zip: entry '%.*s' has a bad zip64 extra field", ZNAME(ze));
		pos += ZIP_CDH_LEN + (size_t)nlen + xlen + clen;
	}
	if (pos != z->cd_size)
		return fmt_invalid(c, "zip: %llu stray bytes in the central directory",
				   (unsigned long long)(z->cd_size - pos));
	return LCP_OK;
}

/* Reads the local header (through s: entries are visited in file order, so
 * neighbouring small entries cost one read) and locates data, descriptor and
 * CRC fields. */
static lcp_err read_local(struct fmt_ctx *c, struct zip *z, struct zentry *ze, struct fmt_stream *s)
{
	uint8_t h[ZIP_LFH_LEN];
	s->pos = ze->lho;
	lcp_err e = fmt_stream_get(s, h, sizeof h);
	if (e)
		return bad_read(c, e, "local file header");
	if (lcp_load_le32(h) != ZIP_LFH_SIG)
		return fmt_invalid(c, "zip: entry '%.*s' has no local header at %llu", ZNAME(ze),
				   (unsigned long long)ze->lho);
	uint16_t nlen = lcp_load_le16(h + 26), xlen = lcp_load_le16(h + 28);
	if (nlen != ze->nlen || lcp_load_le16(h + 8) != ze->method || lcp_load_le16(h + 6) != ze->flags)
		return fmt_invalid(c, "zip: entry '%.*s' local header disagrees with the central directory",
				   ZNAME(ze));
	/* Name and extra field: at most 2 x 64 KiB, more than the stream holds. */
	size_t lxlen = (size_t)nlen + xlen;
	uint8_t *lx = lcp_malloc(lxlen + 1);
	if (!lx)
		return LCP_ERR_NOMEM;
	e = lxlen <= s->cap ? fmt_stream_get(s, lx, lxlen) : fmt_read(c, lx, lxlen, ze->lho + ZIP_LFH_LEN);
	if (e) {
		lcp_free(lx);
		return bad_read(c, e, "local file header");
	}
	bool same = memcmp(lx, ze->name, nlen) == 0;
	/* A zip64 extra in the local header makes a data descriptor's sizes 8 bytes. */
	ze->zip64_local = false;
	for (size_t i = nlen; i + 4 <= lxlen;) {
		uint16_t id = lcp_load_le16(lx + i), sz = lcp_load_le16(lx + i + 2);
		if (id == 1)
			ze->zip64_local = true;
		i += 4 + (size_t)sz;
	}
	lcp_free(lx);
	if (!same)
		return fmt_invalid(c, "zip: entry '%.*s' local header names another file", ZNAME(ze));
	ze->data_off = ze->lho + ZIP_LFH_LEN + nlen + xlen;
	if (ze->data_off > z->cd_off || ze->csize > z->cd_off - ze->data_off)
		return fmt_invalid(c, "zip: entry '%.*s' data runs into the central directory", ZNAME(ze));
	ze->end = ze->data_off + ze->csize;
	ze->local_crc_off = ze->lho + 14;
	ze->dd_crc_off = UINT64_MAX;
	if (ze->flags & 8) {
		if (lcp_load_le32(h + 14) == 0)
			ze->local_crc_off = UINT64_MAX;
		uint8_t sig[4];
		uint64_t dlen = ze->zip64_local ? 20 : 12;
		s->pos = ze->end;
		e = fmt_stream_get(s, sig, 4);
		if (e)
			return bad_read(c, e, "data descriptor");
		bool has_sig = lcp_load_le32(sig) == ZIP_DD_SIG;
		ze->dd_crc_off = ze->end + (has_sig ? 4 : 0);
		dlen += has_sig ? 4 : 0;
		if (dlen > z->cd_off - ze->end)
			return fmt_invalid(c, "zip: entry '%.*s' data descriptor runs into the central directory",
					   ZNAME(ze));
		ze->end += dlen;
	}
	return LCP_OK;
}

static int entry_cmp(const void *a, const void *b)
{
	const struct zentry *x = *(struct zentry *const *)a, *y = *(struct zentry *const *)b;
	return x->lho < y->lho ? -1 : x->lho > y->lho;
}

/* Reads every local header in file order and checks that no two entries
 * overlap. */
static lcp_err read_locals(struct fmt_ctx *c, struct zip *z)
{
	if (z->n == 0)
		return LCP_OK;
	struct zentry **o = lcp_calloc(z->n, sizeof *o);
	if (!o)
		return LCP_ERR_NOMEM;
	struct fmt_stream s;
	lcp_err e = fmt_stream_init(&s, c, 0);
	if (e) {
		lcp_free(o);
		return e;
	}
	for (size_t i = 0; i < z->n; i++)
		o[i] = &z->e[i];
	qsort(o, z->n, sizeof *o, entry_cmp);
	for (size_t i = 0; i < z->n && !e; i++)
		e = read_local(c, z, o[i], &s);
	for (size_t i = 1; i < z->n && !e; i++)
		if (o[i]->lho < o[i - 1]->end)
			e = fmt_invalid(c, "zip: entries '%.*s' and '%.*s' overlap", ZNAME(o[i - 1]), ZNAME(o[i]));
	fmt_stream_free(&s);
	lcp_free(o);
	return e;
}

/* The storage entries <archive>/data/<key>, by key, in a hash table keyed by
 * a random seed (a file cannot choose names that all collide). */
struct entry_index {
	uint32_t *slots;          /* entry index + 1, 0 = empty */
	size_t mask;
	uint64_t seed;
	size_t skip;              /* length of "<archive>/data/" */
};

static bool is_storage_entry(const struct zentry *ze, const struct zentry *pkl, size_t prefix_len)
{
	return ze->nlen > prefix_len + 5 && memcmp(ze->name, pkl->name, prefix_len) == 0 &&
	       memcmp(ze->name + prefix_len, "data/", 5) == 0;
}

static lcp_err index_entries(struct entry_index *ix, const struct zip *z, const struct zentry *pkl,
			     size_t prefix_len)
{
	size_t n = 0, cap = 16;
	for (size_t i = 0; i < z->n; i++)
		n += is_storage_entry(&z->e[i], pkl, prefix_len);
	while (cap < 2 * n)
		cap *= 2;
	ix->slots = lcp_calloc(cap, sizeof *ix->slots);
	if (!ix->slots)
		return LCP_ERR_NOMEM;
	ix->mask = cap - 1;
	ix->seed = fmt_hash_seed();
	ix->skip = prefix_len + 5;
	for (size_t i = 0; i < z->n; i++) {
		const struct zentry *ze = &z->e[i];
		if (!is_storage_entry(ze, pkl, prefix_len))
			continue;
		/* A repeated name keeps its last entry, as a scan from the start would. */
		size_t k = fmt_hash(ze->name + ix->skip, ze->nlen - ix->skip, ix->seed) & ix->mask;
		for (;; k = (k + 1) & ix->mask) {
			uint32_t s = ix->slots[k];
			if (s == 0 || (z->e[s - 1].nlen == ze->nlen &&
				       memcmp(z->e[s - 1].name, ze->name, ze->nlen) == 0))
				break;
		}
		ix->slots[k] = (uint32_t)(i + 1);
	}
	return LCP_OK;
}

static const struct zentry *find_entry(const struct entry_index *ix, const struct zip *z, const uint8_t *key,
				       size_t klen)
{
	for (size_t k = fmt_hash(key, klen, ix->seed) & ix->mask;; k = (k + 1) & ix->mask) {
		uint32_t s = ix->slots[k];
		if (s == 0)
			return NULL;
		const struct zentry *ze = &z->e[s - 1];
		if (ze->nlen - ix->skip == klen && memcmp(ze->name + ix->skip, key, klen) == 0)
			return ze;
	}
}

static lcp_err add_storage(struct fmt_ctx *c, const struct pkl_result *pr, const struct pkl_storage *st,
			   const struct zentry *ze)
{
	const char *why = NULL;
	if (st->elem_bytes == 0)
		why = "unknown storage type";
	else if (st->uses == 0)
		why = "storage without a tensor";
	else if (st->uses > 1)
		why = "storage shared by several tensors";
	else if (!st->shape_ok)
		why = "unusual tensor shape";
	else if (!st->whole)
		why = "view of a storage";
	/* The tensor's dict key names it; else the entry name. */
	char name[PKL_MAX_KEY + 1];
	const uint8_t *nm = st->uses == 1 && st->name ? st->name : (const uint8_t *)ze->name;
	size_t nl = st->uses == 1 && st->name ? st->name_len : ze->nlen;
	if (nl > PKL_MAX_KEY)
		nl = PKL_MAX_KEY;
	memcpy(name, nm, nl);
	name[nl] = '\0';
	char type[16];
	snprintf(type, sizeof type, "%.*s", (int)(st->type_len < 15 ? st->type_len : 15),
		 (const char *)st->type_name);
	struct fmt_tensor ft = {
		.name = name,
		.dtype_name = type,
		.is_float = !why && st->is_float,
		.dtype = st->dtype,
		.not_float_reason = why,
		.ndims = why ? 0 : st->ndims,
		.dims = why || st->ndims == 0 ? NULL : pr->dims + st->dims_at,
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
		return fmt_invalid(c, "pytorch: data.pkl of %llu bytes over the limit of %u",
				   (unsigned long long)pkl->csize, ZIP_MAX_PKL_BYTES);
	uint8_t *buf = lcp_malloc(pkl->csize ? (size_t)pkl->csize : 1);
	if (!buf)
		return LCP_ERR_NOMEM;
	struct pkl_result pr;
	struct entry_index ix = {NULL, 0, 0, 0};
	char why[120];
	lcp_err e = fmt_read(c, buf, (size_t)pkl->csize, pkl->data_off);
	if (!e) {
		e = pkl_scan(buf, (size_t)pkl->csize, &pr, why, sizeof why);
		if (e == LCP_ERR_FORMAT)
			e = fmt_invalid(c, "pytorch: data.pkl: %s", why);
	}
	if (e) {
		lcp_free(buf);
		return e;
	}
	e = index_entries(&ix, z, pkl, prefix_len);
	for (size_t s = 0; s < pr.nstorages && !e; s++) {
		const struct pkl_storage *st = &pr.storages[s];
		const struct zentry *ze = find_entry(&ix, z, st->key, st->key_len);
		uint64_t bytes = st->numel;
		if (!ze)
			e = fmt_invalid(c, "pytorch: storage '%.*s' has no zip entry",
					(int)(st->key_len < 40 ? st->key_len : 40), (const char *)st->key);
		else if (st->elem_bytes && (!fmt_mul_ok(&bytes, st->elem_bytes) || bytes != ze->csize))
			e = fmt_invalid(c, "pytorch: storage '%.*s' holds %llu bytes, data.pkl says %llu elements of %u",
					(int)(st->key_len < 40 ? st->key_len : 40), (const char *)st->key,
					(unsigned long long)ze->csize, (unsigned long long)st->numel, st->elem_bytes);
		else
			e = add_storage(c, &pr, st, ze);
	}
	lcp_free(ix.slots);
	pkl_result_free(&pr);
	lcp_free(buf);
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
		const char *slash = memchr(z.e[i].name, '/', z.e[i].nlen);
		if (slash && slash != z.e[i].name &&
		    (size_t)(z.e[i].name + z.e[i].nlen - slash) == sizeof "/data.pkl" - 1 &&
		    memcmp(slash, "/data.pkl", sizeof "/data.pkl" - 1) == 0) {
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
	e = read_locals(c, &z);
	if (e)
		goto out;
	for (size_t i = 0; i < z.n; i++) {
		if (z.e[i].method != 0) {
			fmt_whole_exact(c, "pytorch: entry '%.*s' is compressed (method %u): kept exact",
					ZNAME(&z.e[i]), z.e[i].method);
			goto out;
		}
		if (z.e[i].flags & 1) {
			fmt_whole_exact(c, "pytorch: entry '%.*s' is encrypted: kept exact", ZNAME(&z.e[i]));
			goto out;
		}
		if (z.e[i].csize != z.e[i].usize) {
			e = fmt_invalid(c, "pytorch: stored entry '%.*s' has different sizes", ZNAME(&z.e[i]));
			goto out;
		}
	}
	e = torch_regions(c, &z, pkl, prefix_len);
out:
	zip_free(&z);
	return e;
}
