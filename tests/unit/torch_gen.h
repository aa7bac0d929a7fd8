/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Generator of large PyTorch zip files, laid out byte for byte the way
 * torch.save (pickle protocol 2) writes a state dict of many small tensors:
 * every string, tuple and call result memoized (BINPUT, LONG_BINPUT past
 * index 255), repeated globals and strings fetched back with BINGET, dict
 * items in SETITEMS batches of 1000, one STORED zip entry per storage with a
 * data descriptor, and the zip64 end records. Used by the unit tests (a file
 * is parsed or refused, never hangs) and by bench_format (scan time and
 * memory for 80,000 and 1,000,000 storages). No criterion dependency.
 *
 * Tensor i is named "layers.<i>.weight", lives in storage "<i>", and is a
 * 2x2 F32 tensor (16 bytes) holding i in every element.
 */
#ifndef LCPFS_TEST_TORCH_GEN_H
#define LCPFS_TEST_TORCH_GEN_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/checksum.h"
#include "lcpfs/err.h"

/* pickle batches dict items by this many (pickle.py's _BATCHSIZE). */
#define TORCH_GEN_BATCH 1000

struct torch_gen_pickle {
	struct lcp_buf *b;
	uint32_t memo;      /* next memo index */
	lcp_err err;        /* first append failure */
};

static inline void tg_put(struct torch_gen_pickle *p, const void *d, size_t n)
{
	if (!p->err)
		p->err = lcp_buf_append(p->b, d, n);
}

static inline void tg_u8(struct torch_gen_pickle *p, uint8_t v)
{
	tg_put(p, &v, 1);
}

static inline void tg_le32(struct torch_gen_pickle *p, uint32_t v)
{
	uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
	tg_put(p, b, 4);
}

/* BINPUT / LONG_BINPUT of the next memo index; returns that index. */
static inline uint32_t tg_memoize(struct torch_gen_pickle *p)
{
	uint32_t i = p->memo++;
	if (i < 256) {
		tg_u8(p, 'q');
		tg_u8(p, (uint8_t)i);
	} else {
		tg_u8(p, 'r');
		tg_le32(p, i);
	}
	return i;
}

static inline void tg_get(struct torch_gen_pickle *p, uint32_t i)
{
	if (i < 256) {
		tg_u8(p, 'h');
		tg_u8(p, (uint8_t)i);
	} else {
		tg_u8(p, 'j');
		tg_le32(p, i);
	}
}

static inline uint32_t tg_str(struct torch_gen_pickle *p, const char *s)
{
	tg_u8(p, 'X');
	tg_le32(p, (uint32_t)strlen(s));
	tg_put(p, s, strlen(s));
	return tg_memoize(p);
}

static inline uint32_t tg_global(struct torch_gen_pickle *p, const char *mod, const char *name)
{
	tg_u8(p, 'c');
	tg_put(p, mod, strlen(mod));
	tg_u8(p, '\n');
	tg_put(p, name, strlen(name));
	tg_u8(p, '\n');
	return tg_memoize(p);
}

static inline void tg_int(struct torch_gen_pickle *p, uint32_t v)
{
	if (v < 256) {
		tg_u8(p, 'K');
		tg_u8(p, (uint8_t)v);
	} else {
		tg_u8(p, 'J');
		tg_le32(p, v);
	}
}

/*
 * data.pkl of {"layers.<i>.weight": 2x2 float tensor on storage "<i>"} for
 * i < ntensors. Appends to out.
 */
static inline lcp_err torch_gen_pickle(struct lcp_buf *out, uint32_t ntensors)
{
	struct torch_gen_pickle p = {out, 0, LCP_OK};
	/* Memo indexes of the objects pickle memoizes once and fetches back. */
	uint32_t m_rebuild = 0, m_storage = 0, m_float = 0, m_cpu = 0, m_od = 0;
	char s[48];
	tg_put(&p, "\x80\x02}", 3);
	tg_memoize(&p);
	for (uint32_t i = 0; i < ntensors; i++) {
		if (i % TORCH_GEN_BATCH == 0)
			tg_u8(&p, '(');
		snprintf(s, sizeof s, "layers.%u.weight", i);
		tg_str(&p, s);
		if (i == 0)
			m_rebuild = tg_global(&p, "torch._utils", "_rebuild_tensor_v2");
		else
			tg_get(&p, m_rebuild);
		tg_put(&p, "((", 2);
		if (i == 0) {
			m_storage = tg_str(&p, "storage");
			m_float = tg_global(&p, "torch", "FloatStorage");
		} else {
			tg_get(&p, m_storage);
			tg_get(&p, m_float);
		}
		snprintf(s, sizeof s, "%u", i);
		tg_str(&p, s);
		if (i == 0)
			m_cpu = tg_str(&p, "cpu");
		else
			tg_get(&p, m_cpu);
		tg_int(&p, 4);
		tg_u8(&p, 't');
		tg_memoize(&p);
		tg_u8(&p, 'Q');
		tg_int(&p, 0);
		tg_put(&p, "K\x02K\x02\x86", 5);   /* size (2, 2) */
		tg_memoize(&p);
		tg_put(&p, "K\x02K\x01\x86", 5);   /* stride (2, 1) */
		tg_memoize(&p);
		tg_u8(&p, 0x89);                     /* requires_grad False */
		if (i == 0)
			m_od = tg_global(&p, "collections", "OrderedDict");
		else
			tg_get(&p, m_od);
		tg_put(&p, ")R", 2);                 /* backward hooks */
		tg_memoize(&p);
		tg_u8(&p, 't');
		tg_memoize(&p);
		tg_u8(&p, 'R');
		tg_memoize(&p);
		if (i % TORCH_GEN_BATCH == TORCH_GEN_BATCH - 1 || i + 1 == ntensors)
			tg_u8(&p, 'u');
	}
	tg_u8(&p, '.');
	return p.err;
}

/* Central directory facts of one entry, kept while the local part is written. */
struct torch_gen_entry {
	uint64_t lho;
	uint32_t crc;
	uint32_t len;
};

static inline lcp_err tg_zip_local(struct lcp_buf *b, const char *name, const void *data, uint32_t len,
				   struct torch_gen_entry *e)
{
	lcp_err err = LCP_OK;
	e->lho = b->len;
	e->crc = lcp_crc32(0, data, len);
	e->len = len;
	/* flags 0x0808: sizes in a data descriptor, UTF-8 names (as torch) */
	err = err ? err : lcp_buf_append_le32(b, 0x04034b50u);
	err = err ? err : lcp_buf_append_le16(b, 20);
	err = err ? err : lcp_buf_append_le16(b, 0x0808);
	err = err ? err : lcp_buf_append_le16(b, 0);
	err = err ? err : lcp_buf_append_le32(b, 0);
	err = err ? err : lcp_buf_append_le32(b, 0);
	err = err ? err : lcp_buf_append_le32(b, 0);
	err = err ? err : lcp_buf_append_le32(b, 0);
	err = err ? err : lcp_buf_append_le16(b, (uint16_t)strlen(name));
	err = err ? err : lcp_buf_append_le16(b, 0);
	err = err ? err : lcp_buf_append(b, name, strlen(name));
	err = err ? err : lcp_buf_append(b, data, len);
	err = err ? err : lcp_buf_append_le32(b, 0x08074b50u);
	err = err ? err : lcp_buf_append_le32(b, e->crc);
	err = err ? err : lcp_buf_append_le32(b, len);
	err = err ? err : lcp_buf_append_le32(b, len);
	return err;
}

static inline lcp_err tg_zip_central(struct lcp_buf *b, const char *name, const struct torch_gen_entry *e)
{
	lcp_err err = LCP_OK;
	err = err ? err : lcp_buf_append_le32(b, 0x02014b50u);
	err = err ? err : lcp_buf_append_le16(b, 20);
	err = err ? err : lcp_buf_append_le16(b, 20);
	err = err ? err : lcp_buf_append_le16(b, 0x0808);
	err = err ? err : lcp_buf_append_le16(b, 0);
	err = err ? err : lcp_buf_append_le32(b, 0);
	err = err ? err : lcp_buf_append_le32(b, e->crc);
	err = err ? err : lcp_buf_append_le32(b, e->len);
	err = err ? err : lcp_buf_append_le32(b, e->len);
	err = err ? err : lcp_buf_append_le16(b, (uint16_t)strlen(name));
	err = err ? err : lcp_buf_append_le16(b, 0);
	err = err ? err : lcp_buf_append_le16(b, 0);
	err = err ? err : lcp_buf_append_le16(b, 0);
	err = err ? err : lcp_buf_append_le16(b, 0);
	err = err ? err : lcp_buf_append_le32(b, 0);
	err = err ? err : lcp_buf_append_le32(b, (uint32_t)e->lho);
	err = err ? err : lcp_buf_append(b, name, strlen(name));
	return err;
}

/*
 * A whole torch.save zip of ntensors tensors into out (appended). With
 * with_storages false the archive holds only data.pkl and version: the
 * pickle still names ntensors storages, which the archive then lacks (a
 * hostile file: every storage must be scanned before one is found missing).
 * Offsets must stay under 4 GiB (about 15 million tensors).
 */
static inline lcp_err torch_gen_zip(struct lcp_buf *out, uint32_t ntensors, bool with_storages)
{
	struct lcp_buf pkl = LCP_BUF_INIT;
	lcp_err err = torch_gen_pickle(&pkl, ntensors);
	uint32_t nent = 2 + (with_storages ? ntensors : 0);
	struct torch_gen_entry *ents = calloc(nent, sizeof *ents);
	if (!ents)
		err = err ? err : LCP_ERR_NOMEM;
	char name[64];
	uint32_t k = 0;
	if (!err)
		err = tg_zip_local(out, "archive/data.pkl", pkl.data, (uint32_t)pkl.len, &ents[k++]);
	for (uint32_t i = 0; with_storages && i < ntensors && !err; i++) {
		float v[4] = {(float)i, (float)i, (float)i, (float)i};
		snprintf(name, sizeof name, "archive/data/%u", i);
		err = tg_zip_local(out, name, v, sizeof v, &ents[k++]);
	}
	if (!err)
		err = tg_zip_local(out, "archive/version", "3\n", 2, &ents[k++]);
	uint64_t cd = out->len;
	k = 0;
	if (!err)
		err = tg_zip_central(out, "archive/data.pkl", &ents[k++]);
	for (uint32_t i = 0; with_storages && i < ntensors && !err; i++) {
		snprintf(name, sizeof name, "archive/data/%u", i);
		err = tg_zip_central(out, name, &ents[k++]);
	}
	if (!err)
		err = tg_zip_central(out, "archive/version", &ents[k++]);
	uint64_t cd_size = out->len - cd, z64 = out->len;
	err = err ? err : lcp_buf_append_le32(out, 0x06064b50u);
	err = err ? err : lcp_buf_append_le64(out, 44);
	err = err ? err : lcp_buf_append_le16(out, 45);
	err = err ? err : lcp_buf_append_le16(out, 45);
	err = err ? err : lcp_buf_append_le32(out, 0);
	err = err ? err : lcp_buf_append_le32(out, 0);
	err = err ? err : lcp_buf_append_le64(out, nent);
	err = err ? err : lcp_buf_append_le64(out, nent);
	err = err ? err : lcp_buf_append_le64(out, cd_size);
	err = err ? err : lcp_buf_append_le64(out, cd);
	err = err ? err : lcp_buf_append_le32(out, 0x07064b50u);
	err = err ? err : lcp_buf_append_le32(out, 0);
	err = err ? err : lcp_buf_append_le64(out, z64);
	err = err ? err : lcp_buf_append_le32(out, 1);
	/* The classic record says "see zip64" with all-ones fields. */
	err = err ? err : lcp_buf_append_le32(out, 0x06054b50u);
	err = err ? err : lcp_buf_append_le16(out, 0);
	err = err ? err : lcp_buf_append_le16(out, 0);
	err = err ? err : lcp_buf_append_le16(out, 0xFFFF);
	err = err ? err : lcp_buf_append_le16(out, 0xFFFF);
	err = err ? err : lcp_buf_append_le32(out, 0xFFFFFFFFu);
	err = err ? err : lcp_buf_append_le32(out, 0xFFFFFFFFu);
	err = err ? err : lcp_buf_append_le16(out, 0);
	free(ents);
	lcp_buf_free(&pkl);
	return err;
}

#endif
