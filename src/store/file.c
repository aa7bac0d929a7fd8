/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Open committed files: validate the sidecar against its payload, map byte
 * ranges to regions and chunks, decode only the touched chunks (through the
 * shared cache), and verify every checksum. Reads are thread-safe: the
 * opened state is immutable and each read decodes into its own buffer.
 */
#include "lcpfs/store.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <zstd.h>

#include "common/alloc.h"
#include "common/checksum.h"
#include "common/le.h"
#include "common/thread_buf.h"
#include "store/cache.h"
#include "store/sidecar.h"
#include "store/store_priv.h"

struct lcp_store_file {
	int fd;                          /* payload */
	struct lcp_sidecar sc;
	uint64_t sidecar_len;
	struct lcp_chunk_cache *cache;   /* not owned, may be NULL */
	struct lcp_codec_tensor **ct;    /* per region, TENSOR only */
};

void lcp_store_close(struct lcp_store_file *f)
{
	if (!f)
		return;
	if (f->ct) {
		for (uint32_t i = 0; i < f->sc.nregions; i++)
			lcp_codec_tensor_free(f->ct[i]);
		lcp_free(f->ct);
	}
	if (f->fd >= 0)
		close(f->fd);
	lcp_sidecar_free(&f->sc);
	lcp_free(f);
}

static bool parse_failure(lcp_err err)
{
	return err == LCP_ERR_CHECKSUM || err == LCP_ERR_FORMAT || err == LCP_ERR_TRUNCATED ||
	       err == LCP_ERR_VERSION;
}

/* True when open file fd begins with the sidecar magic. */
static bool has_sidecar_magic(int fd)
{
	uint8_t m[8];
	return lcp_pread_all(fd, m, sizeof m, 0) == LCP_OK && memcmp(m, LCP_SIDECAR_MAGIC, 8) == 0;
}

static void read_refusal(int fd, struct lcp_probe *pr)
{
	ssize_t n = fgetxattr(fd, LCP_REFUSED_XATTR, pr->refused, sizeof pr->refused - 1);
	pr->refused[n > 0 ? n : 0] = '\0';
}

/* Opens the codec side of a committed file; takes fd and sc. */
static lcp_err make_file(int fd, struct lcp_sidecar *sc, uint64_t sidecar_len,
			 struct lcp_chunk_cache *cache, struct lcp_store_file **out)
{
	struct lcp_store_file *f = lcp_calloc(1, sizeof *f);
	lcp_err err = LCP_OK;

	if (!f) {
		close(fd);
		lcp_sidecar_free(sc);
		return LCP_ERR_NOMEM;
	}
	f->fd = fd;
	f->sc = *sc;
	memset(sc, 0, sizeof *sc);
	f->sidecar_len = sidecar_len;
	f->cache = cache;
	f->ct = lcp_calloc(f->sc.nregions ? f->sc.nregions : 1, sizeof *f->ct);
	if (!f->ct)
		err = LCP_ERR_NOMEM;
	for (uint32_t i = 0; i < f->sc.nregions && err == LCP_OK; i++) {
		const struct lcp_sc_region *r = &f->sc.regions[i];
		if (r->kind != LCP_REGION_TENSOR)
			continue;
		err = lcp_codec_tensor_open(r->params, r->params_len, &f->ct[i]);
		if (err == LCP_OK && (lcp_codec_tensor_dtype(f->ct[i]) != r->dtype ||
				      lcp_codec_tensor_elems(f->ct[i]) != r->len / lcp_sc_unit_bytes(r)))
			err = LCP_ERR_FORMAT;
	}
	if (err) {
		lcp_store_close(f);
		return err;
	}
	*out = f;
	return LCP_OK;
}

/* Whether name in dirfd still names the object st describes, unchanged (a
 * rename away and back changes its ctime). */
static bool still_holds(int dirfd, const char *name, const struct stat *st)
{
	struct stat now;
	return fstatat(dirfd, name, &now, AT_SYMLINK_NOFOLLOW) == 0 &&
	       lcp_store_same_version(st, &now);
}

static lcp_err cannot_tell(struct lcp_probe *pr, lcp_err err, const char *fmt, const char *what)
{
	snprintf(pr->note, sizeof pr->note, fmt, what, lcp_strerror(err));
	return err;
}

lcp_err lcp_store_probe_at(int dirfd, const char *name, struct lcp_chunk_cache *cache,
			   struct lcp_probe *pr, struct lcp_store_file **out)
{
	char scname[LCP_STORE_NAME_LEN];
	uint8_t hdr[LCP_PAYLOAD_HEADER_LEN];
	struct lcp_sidecar sc;
	struct stat st, sst;
	bool hdr_valid;
	int fd = -1, sfd = -1;
	lcp_err err;

	memset(pr, 0, sizeof *pr);
	memset(&sc, 0, sizeof sc);
	if (out)
		*out = NULL;
	if ((err = lcp_store_sidecar_name(name, scname)) != LCP_OK)
		return err;
	err = lcp_store_open_regular(dirfd, name, O_RDONLY, &fd, &st);
	if (err == LCP_OK || err == LCP_ERR_UNSUPPORTED) {
		pr->dev = (uint64_t)st.st_dev;
		pr->ino = (uint64_t)st.st_ino;
		pr->nlink = (uint64_t)st.st_nlink;
		pr->size = (uint64_t)st.st_size;
	}
	if (err == LCP_ERR_UNSUPPORTED) {
		pr->repr = LCP_REPR_RAW; /* not a regular file: never ours, never opened */
		return LCP_OK;
	}
	if (err == LCP_ERR_NOENT)
		return err;
	if (err)
		return cannot_tell(pr, err, "cannot open %s: %s", name);
	pr->regular = true;
	if ((err = lcp_store_read_header(fd, (uint64_t)st.st_size, hdr, &hdr_valid)) != LCP_OK) {
		cannot_tell(pr, err, "cannot read %s: %s", name);
		goto out;
	}
	err = lcp_store_open_regular(dirfd, scname, O_RDONLY, &sfd, &sst);
	if (err == LCP_ERR_NOENT) {
		err = LCP_OK;
		if (hdr_valid && st.st_nlink > 1) {
			/* Another name of a compressed file whose sidecar is not
			 * (yet) beside this one: a link made on the backing, or an
			 * unfinished one. Recovery pairs them. */
			snprintf(pr->note, sizeof pr->note,
				 "its bytes are an lcpfs payload with %llu links and no sidecar "
				 "beside this name", (unsigned long long)st.st_nlink);
			err = LCP_ERR_AGAIN;
			goto out;
		}
		if (hdr_valid && !still_holds(dirfd, name, &st)) {
			/* Moved away, sidecar and all, between our two opens. */
			snprintf(pr->note, sizeof pr->note, "%s was renamed while being looked at",
				 name);
			err = LCP_ERR_AGAIN;
			goto out;
		}
		pr->repr = LCP_REPR_RAW;
		if (hdr_valid)
			snprintf(pr->note, sizeof pr->note,
				 "its bytes are an lcpfs payload, but no sidecar is beside it");
		read_refusal(fd, pr);
		goto out;
	}
	if (err == LCP_ERR_UNSUPPORTED) {
		snprintf(pr->note, sizeof pr->note, "%s is not a regular file", scname);
		err = LCP_ERR_AGAIN;
		goto out;
	}
	if (err) {
		cannot_tell(pr, err, "cannot open sidecar %s: %s", scname);
		goto out;
	}
	err = lcp_store_load_sidecar_fd(sfd, &sst, &sc);
	if (parse_failure(err)) {
		/* Beside a payload, or when it is ours by its magic, a sidecar
		 * that does not parse is damage; anything else is a stranger's
		 * file named like a sidecar. */
		if (hdr_valid || has_sidecar_magic(sfd)) {
			pr->repr = LCP_REPR_DAMAGED;
			snprintf(pr->note, sizeof pr->note, "sidecar %s: %s", scname,
				 lcp_strerror(err));
		} else {
			pr->repr = LCP_REPR_RAW;
			read_refusal(fd, pr);
		}
		err = LCP_OK;
		goto out;
	}
	if (err) {
		cannot_tell(pr, err, "cannot read sidecar %s: %s", scname);
		goto out;
	}
	if (st.st_size >= LCP_PAYLOAD_HEADER_LEN &&
	    memcmp(hdr + 16, sc.file_id, LCP_FILE_ID_LEN) == 0) {
		/* The id decides whose payload this is, even if the magic was
		 * damaged: then the header checksum reports it. */
		if (lcp_xxh3(hdr, sizeof hdr) != sc.payload_header_xxh3 ||
		    (uint64_t)st.st_size != sc.payload_size) {
			pr->repr = LCP_REPR_DAMAGED;
			snprintf(pr->note, sizeof pr->note,
				 "payload header or size disagrees with its sidecar");
			goto out;
		}
		pr->repr = LCP_REPR_COMPRESSED;
		pr->logical_size = sc.logical_size;
		pr->stored_size = sc.payload_size + (uint64_t)sst.st_size;
		pr->sidecar_blocks = (uint64_t)sst.st_blocks;
		if (out) {
			err = make_file(fd, &sc, (uint64_t)sst.st_size, cache, out);
			fd = -1;
			if (parse_failure(err)) {
				pr->repr = LCP_REPR_DAMAGED;
				snprintf(pr->note, sizeof pr->note, "codec parameters: %s",
					 lcp_strerror(err));
				err = LCP_OK;
			} else if (err) {
				cannot_tell(pr, err, "cannot open %s: %s", name);
			}
		}
		goto out;
	}
	if (lcp_store_payload_body_matches(fd, (uint64_t)st.st_size, &sc)) {
		pr->repr = LCP_REPR_DAMAGED;
		snprintf(pr->note, sizeof pr->note, "payload header damaged");
	} else if (hdr_valid) {
		snprintf(pr->note, sizeof pr->note,
			 "a payload beside the sidecar of another payload (an unfinished rename?)");
		err = LCP_ERR_AGAIN;
	} else {
		/* Not its payload (size or first chunk differ): the sidecar is
		 * stale, e.g. left by a commit that crashed before its payload
		 * rename. */
		pr->repr = LCP_REPR_RAW;
		snprintf(pr->note, sizeof pr->note, "a stale sidecar is beside it");
		read_refusal(fd, pr);
	}
out:
	lcp_sidecar_free(&sc);
	if (fd >= 0)
		close(fd);
	if (sfd >= 0)
		close(sfd);
	return err;
}

lcp_err lcp_store_open_at(int dirfd, const char *name, struct lcp_chunk_cache *cache,
			  struct lcp_store_file **out)
{
	struct lcp_probe pr;
	lcp_err err = lcp_store_probe_at(dirfd, name, cache, &pr, out);

	if (err)
		return err;
	if (pr.repr == LCP_REPR_COMPRESSED)
		return LCP_OK;
	return pr.repr == LCP_REPR_RAW ? LCP_ERR_NOENT : LCP_ERR_CHECKSUM;
}

int lcp_store_file_fd(const struct lcp_store_file *f)
{
	return f->fd;
}

uint64_t lcp_store_logical_size(const struct lcp_store_file *f)
{
	return f->sc.logical_size;
}

uint64_t lcp_store_stored_size(const struct lcp_store_file *f)
{
	return f->sc.payload_size + f->sidecar_len;
}

/* Reads the stored bytes of chunk c into this thread's buffer (*out, valid
 * until the thread's next read). A payload that ends early is damage. The
 * read path keeps its buffers per thread (common/thread_buf.h): fresh pages
 * for every read cost as much as decoding a small one (page faults were a
 * sixth of the daemon's time on random 128 KiB reads). */
static lcp_err load_stored(const struct lcp_store_file *f, const struct lcp_sc_chunk *c,
			   uint8_t **out)
{
	uint8_t *stored = lcp_thread_buf(LCP_TBUF_STORED, (size_t)c->stored_len);

	*out = NULL;
	if (!stored)
		return LCP_ERR_NOMEM;
	lcp_err err = lcp_pread_all(f->fd, stored, (size_t)c->stored_len, c->payload_off);
	if (err == LCP_ERR_TRUNCATED)
		err = LCP_ERR_CHECKSUM;
	if (err)
		return err;
	*out = stored;
	return LCP_OK;
}

static struct lcp_chunk_info chunk_info(const struct lcp_sc_chunk *c)
{
	return (struct lcp_chunk_info){
		.elem_begin = c->begin, .elem_end = c->end, .data_off = 0,
		.data_len = c->stored_len, .stored_xxh3 = c->stored_xxh3,
		.output_xxh3 = c->output_xxh3,
	};
}

/* Any codec failure but memory means these bytes must not be served. */
static lcp_err as_damage(lcp_err err)
{
	return err && err != LCP_ERR_NOMEM ? LCP_ERR_CHECKSUM : err;
}

lcp_err lcp_store_decode_chunk(const struct lcp_store_file *f, uint32_t ri, uint32_t ci,
			       void *out, size_t out_len)
{
	const struct lcp_sc_region *r = &f->sc.regions[ri];
	const struct lcp_sc_chunk *c = &r->chunks[ci];
	uint8_t *stored;
	lcp_err err = load_stored(f, c, &stored);

	if (err)
		return err;
	if (r->kind == LCP_REGION_TENSOR) {
		struct lcp_chunk_info info = chunk_info(c);
		err = as_damage(lcp_codec_decode_chunk(f->ct[ri], &info, stored,
						       (size_t)c->stored_len, out, out_len));
	} else if (lcp_xxh3(stored, (size_t)c->stored_len) != c->stored_xxh3 || c->stored_len < 1) {
		err = LCP_ERR_CHECKSUM;
	} else if (stored[0] == LCP_EXACT_MODE_RAW && c->stored_len - 1 == out_len) {
		memcpy(out, stored + 1, out_len);
	} else if (stored[0] == LCP_EXACT_MODE_ZSTD) {
		size_t n = ZSTD_decompress(out, out_len, stored + 1, (size_t)c->stored_len - 1);
		if (ZSTD_isError(n) || n != out_len)
			err = LCP_ERR_CHECKSUM;
	} else {
		err = LCP_ERR_CHECKSUM;
	}
	/* Decode is deterministic, so a mismatch here means damage or a bug:
	 * either way these bytes must not be served. */
	if (err == LCP_OK && lcp_xxh3(out, out_len) != c->output_xxh3)
		err = LCP_ERR_CHECKSUM;
	return err;
}

/* Whether reads of part of a chunk decode only the blocks they touch
 * (test hook LCPFS_DECODE_RANGE=0: decode whole chunks, the reference the
 * range path is compared with). Read once per process. */
static bool range_decode_on(void)
{
	static atomic_int state; /* 0 unknown, 1 on, 2 off */
	int s = atomic_load_explicit(&state, memory_order_relaxed);
	if (s == 0) {
		const char *e = getenv("LCPFS_DECODE_RANGE");
		s = e && strcmp(e, "0") == 0 ? 2 : 1;
		atomic_store_explicit(&state, s, memory_order_relaxed);
	}
	return s == 1;
}

static struct lcp_cache_key cache_key(const struct lcp_store_file *f, uint32_t ri, uint32_t ci,
				      uint32_t block)
{
	struct lcp_cache_key key;
	memset(&key, 0, sizeof key);
	memcpy(key.file_id, f->sc.file_id, LCP_FILE_ID_LEN);
	key.region = ri;
	key.chunk = ci;
	key.block = block;
	return key;
}

/* Copies bytes [off, off + len) of chunk ci of region ri (offsets within
 * the chunk's reconstruction) into dst by decoding the whole chunk, through
 * the cache (one entry per chunk). For chunks that decode only whole. */
static lcp_err read_part_whole(struct lcp_store_file *f, uint32_t ri, uint32_t ci, size_t off,
			       void *dst, size_t len)
{
	const struct lcp_sc_region *r = &f->sc.regions[ri];
	const struct lcp_sc_chunk *c = &r->chunks[ci];
	size_t out_len = (size_t)(c->end - c->begin) * lcp_sc_unit_bytes(r);
	struct lcp_cache_key key = cache_key(f, ri, ci, LCP_CACHE_WHOLE_CHUNK);
	uint8_t *buf;
	lcp_err err;

	if (f->cache && lcp_chunk_cache_copy(f->cache, &key, off, dst, len))
		return LCP_OK;
	buf = lcp_thread_buf(LCP_TBUF_DECODED, out_len);
	if (!buf)
		return LCP_ERR_NOMEM;
	err = lcp_store_decode_chunk(f, ri, ci, buf, out_len);
	if (err == LCP_OK) {
		memcpy(dst, buf + off, len);
		if (f->cache)
			lcp_chunk_cache_put(f->cache, &key, buf, out_len);
	}
	return err;
}

/*
 * The same for a tensor chunk that decodes by blocks: only the blocks the
 * range touches are decoded (lcp_codec_decode_range). A read smaller than a
 * block goes through the cache, whose entries are blocks: the reads that
 * come back for the rest of a block are small ones (3000 O_DIRECT 4 KiB
 * reads within 4 MiB: 44 to 68 thousand reads/s with the cache, 8 to 16
 * thousand without). A larger read leaves the cache alone: every byte it
 * decodes goes to the kernel's page cache anyway, and copying its edge
 * blocks into fresh cache memory cost a tenth to a quarter of the speed of
 * cold random 128 KiB reads (bench_mount). The stored bytes are read and
 * checked whole (the codec checks their checksum); the chunk's output
 * checksum covers the whole chunk and cannot be checked here: the stored
 * checksum and the deterministic decode stand behind a range.
 */
static lcp_err read_part_blocks(struct lcp_store_file *f, uint32_t ri, uint32_t ci, size_t off,
				uint8_t *dst, size_t len)
{
	const struct lcp_sc_region *r = &f->sc.regions[ri];
	const struct lcp_sc_chunk *c = &r->chunks[ci];
	const unsigned unit = lcp_sc_unit_bytes(r);
	const uint64_t block_bytes = lcp_codec_tensor_block_elems(f->ct[ri]) * unit;
	const uint64_t chunk_bytes = (c->end - c->begin) * unit;
	const bool cached = f->cache && len < block_bytes;
	uint64_t lo, hi; /* bytes of the chunk to decode */

	if (cached) {
		/* Serve the touched blocks from the cache while they are there;
		 * decode from the first missing block to the last one. */
		uint64_t k0 = off / block_bytes, k1 = (off + len - 1) / block_bytes, m0 = k1 + 1, m1 = 0;
		for (uint64_t k = k0; k <= k1; k++) {
			uint64_t b0 = k * block_bytes, b1 = b0 + block_bytes;
			uint64_t a = off > b0 ? off : b0, e = off + len < b1 ? off + len : b1;
			struct lcp_cache_key key = cache_key(f, ri, ci, (uint32_t)k);
			if (!lcp_chunk_cache_copy(f->cache, &key, (size_t)(a - b0), dst + (a - off),
						  (size_t)(e - a))) {
				m0 = k < m0 ? k : m0;
				m1 = k;
			}
		}
		if (m0 > k1)
			return LCP_OK;
		lo = m0 * block_bytes;
		hi = (m1 + 1) * block_bytes < chunk_bytes ? (m1 + 1) * block_bytes : chunk_bytes;
	} else {
		/* Whole elements only: a read may start or end mid-element. */
		lo = off / unit * unit;
		hi = (off + len + unit - 1) / unit * unit;
	}

	uint8_t *stored, *buf = lcp_thread_buf(LCP_TBUF_DECODED, (size_t)(hi - lo));
	lcp_err err = buf ? load_stored(f, c, &stored) : LCP_ERR_NOMEM;
	if (err)
		return err;
	struct lcp_chunk_info info = chunk_info(c);
	err = as_damage(lcp_codec_decode_range(f->ct[ri], &info, stored, (size_t)c->stored_len,
					       c->begin + lo / unit, (hi - lo) / unit, buf,
					       (size_t)(hi - lo)));
	if (err == LCP_OK) {
		uint64_t a = off > lo ? off : lo, e = off + len < hi ? off + len : hi;
		memcpy(dst + (a - off), buf + (a - lo), (size_t)(e - a));
		for (uint64_t b0 = lo; cached && b0 < hi; b0 += block_bytes) {
			struct lcp_cache_key key = cache_key(f, ri, ci, (uint32_t)(b0 / block_bytes));
			uint64_t b1 = b0 + block_bytes < hi ? b0 + block_bytes : hi;
			lcp_chunk_cache_put(f->cache, &key, buf + (b0 - lo), (size_t)(b1 - b0));
		}
	}
	return err;
}

/* Copies bytes [off, off + len) of chunk ci of region ri into dst: a read
 * of the whole chunk decodes straight into dst (and is not cached: the
 * kernel's page cache keeps what a large read returns); a read of part of
 * it decodes what it must. */
static lcp_err read_chunk_part(struct lcp_store_file *f, uint32_t ri, uint32_t ci, size_t off,
			       void *dst, size_t len)
{
	const struct lcp_sc_region *r = &f->sc.regions[ri];
	const struct lcp_sc_chunk *c = &r->chunks[ci];
	size_t out_len = (size_t)(c->end - c->begin) * lcp_sc_unit_bytes(r);

	if (off == 0 && len == out_len)
		return lcp_store_decode_chunk(f, ri, ci, dst, len);
	if (r->kind == LCP_REGION_TENSOR && range_decode_on() &&
	    lcp_codec_tensor_block_elems(f->ct[ri]) < c->end - c->begin)
		return read_part_blocks(f, ri, ci, off, dst, len);
	return read_part_whole(f, ri, ci, off, dst, len);
}

/* First region whose end is beyond off (regions tile the file in order). */
static uint32_t find_region(const struct lcp_sidecar *sc, uint64_t off)
{
	uint32_t lo = 0, hi = sc->nregions;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (sc->regions[mid].off + sc->regions[mid].len <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static uint32_t find_chunk(const struct lcp_sc_region *r, uint64_t unit_idx)
{
	uint32_t lo = 0, hi = r->nchunks;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (r->chunks[mid].end <= unit_idx)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

bool lcp_store_locate(const struct lcp_store_file *f, uint64_t off, struct lcp_store_piece *p)
{
	if (off >= f->sc.logical_size)
		return false;
	p->region = find_region(&f->sc, off);
	const struct lcp_sc_region *r = &f->sc.regions[p->region];
	if (r->kind == LCP_REGION_CRC32) {
		p->chunk = LCP_STORE_NO_CHUNK;
		p->lo = r->off;
		p->hi = r->off + r->len;
		return true;
	}
	unsigned unit = lcp_sc_unit_bytes(r);
	p->chunk = find_chunk(r, (off - r->off) / unit);
	p->lo = r->off + r->chunks[p->chunk].begin * unit;
	p->hi = r->off + r->chunks[p->chunk].end * unit;
	return true;
}

/* A read that spans several chunks reads their stored bytes one after the
 * other: asking the kernel for all of them first lets the disk serve them
 * at once. (Measured, cold random 128 KiB reads, half of which span two
 * chunks: see bench_mount.) A no-op for bytes already in the page cache. */
static void prefetch_stored(const struct lcp_store_file *f, uint64_t off, uint64_t end)
{
	struct lcp_store_piece a, b;
	if (!lcp_store_locate(f, off, &a) || !lcp_store_locate(f, end - 1, &b) ||
	    (a.region == b.region && a.chunk == b.chunk))
		return;
	uint64_t lo = UINT64_MAX, hi = 0;
	for (const struct lcp_store_piece *p = &a; p; p = p == &a ? &b : NULL) {
		if (p->chunk == LCP_STORE_NO_CHUNK)
			continue;
		const struct lcp_sc_chunk *c = &f->sc.regions[p->region].chunks[p->chunk];
		lo = c->payload_off < lo ? c->payload_off : lo;
		hi = c->payload_off + c->stored_len > hi ? c->payload_off + c->stored_len : hi;
	}
	if (lo < hi)
		(void)posix_fadvise(f->fd, (off_t)lo, (off_t)(hi - lo), POSIX_FADV_WILLNEED);
}

lcp_err lcp_store_read(struct lcp_store_file *f, void *buf, size_t len, uint64_t off,
		       size_t *nread, uint64_t *bad_off)
{
	uint8_t *dst = buf;
	uint64_t end;
	size_t done = 0;

	*nread = 0;
	if (off >= f->sc.logical_size || len == 0)
		return LCP_OK;
	end = f->sc.logical_size - off < len ? f->sc.logical_size : off + len;
	prefetch_stored(f, off, end);
	for (uint32_t ri = find_region(&f->sc, off); ri < f->sc.nregions && off < end; ri++) {
		const struct lcp_sc_region *r = &f->sc.regions[ri];
		uint64_t rend = r->off + r->len < end ? r->off + r->len : end;
		if (r->kind == LCP_REGION_CRC32) {
			uint8_t v[4];
			lcp_store_le32(v, r->crc_value);
			memcpy(dst + done, v + (off - r->off), (size_t)(rend - off));
			done += (size_t)(rend - off);
			off = rend;
			continue;
		}
		unsigned unit = lcp_sc_unit_bytes(r);
		while (off < rend) {
			uint64_t rel = off - r->off;
			uint32_t ci = find_chunk(r, rel / unit);
			const struct lcp_sc_chunk *c = &r->chunks[ci];
			uint64_t cbeg = c->begin * unit, cend = c->end * unit;
			uint64_t take = (rend - r->off < cend ? rend - r->off : cend) - rel;
			lcp_err err = read_chunk_part(f, ri, ci, (size_t)(rel - cbeg), dst + done,
						      (size_t)take);
			if (err) {
				if (bad_off)
					*bad_off = r->off + cbeg;
				*nread = 0;
				return err;
			}
			done += (size_t)take;
			off += take;
		}
	}
	*nread = done;
	return LCP_OK;
}

lcp_err lcp_store_verify(struct lcp_store_file *f, char *where, size_t where_len)
{
	if (where_len)
		where[0] = 0;
	for (uint32_t ri = 0; ri < f->sc.nregions; ri++) {
		const struct lcp_sc_region *r = &f->sc.regions[ri];
		unsigned unit = lcp_sc_unit_bytes(r);
		for (uint32_t ci = 0; ci < r->nchunks; ci++) {
			const struct lcp_sc_chunk *c = &r->chunks[ci];
			size_t out_len = (size_t)(c->end - c->begin) * unit;
			uint8_t *buf = lcp_malloc(out_len);
			lcp_err err;
			if (!buf)
				return LCP_ERR_NOMEM;
			err = lcp_store_decode_chunk(f, ri, ci, buf, out_len);
			lcp_free(buf);
			if (err == LCP_OK)
				continue;
			if (where_len) {
				if (r->name)
					snprintf(where, where_len,
						 "%s '%s' chunk %u at offset %llu",
						 r->kind == LCP_REGION_TENSOR ? "tensor" : "exact tensor",
						 r->name, ci,
						 (unsigned long long)(r->off + c->begin * unit));
				else
					snprintf(where, where_len,
						 "exact region %u chunk %u at offset %llu", ri, ci,
						 (unsigned long long)(r->off + c->begin * unit));
			}
			return err;
		}
	}
	/* The CRC fields must match the reconstruction they cover. */
	for (uint32_t ri = 0; ri < f->sc.nregions; ri++) {
		const struct lcp_sc_region *r = &f->sc.regions[ri], *t;
		if (r->kind != LCP_REGION_CRC32)
			continue;
		t = &f->sc.regions[r->crc_of];
		uint32_t crc = 0;
		uint8_t *buf = lcp_malloc(1u << 20);
		lcp_err err = buf ? LCP_OK : LCP_ERR_NOMEM;
		for (uint64_t o = 0; o < t->len && err == LCP_OK;) {
			size_t n = t->len - o < (1u << 20) ? (size_t)(t->len - o) : (1u << 20), got;
			err = lcp_store_read(f, buf, n, t->off + o, &got, NULL);
			crc = lcp_crc32(crc, buf, got);
			o += n;
		}
		lcp_free(buf);
		if (err == LCP_OK && crc != r->crc_value)
			err = LCP_ERR_CHECKSUM;
		if (err) {
			if (where_len)
				snprintf(where, where_len, "CRC-32 field at offset %llu",
					 (unsigned long long)r->off);
			return err;
		}
	}
	return LCP_OK;
}

static void tensor_report_shape(struct lcp_tensor_report *t, const char *dtype_name,
				uint32_t ndims, const uint64_t *dims)
{
	snprintf(t->dtype, sizeof t->dtype, "%s", dtype_name);
	t->ndims = ndims;
	memcpy(t->dims, dims, sizeof t->dims);
}

static uint64_t elems_of(uint32_t ndims, const uint64_t *dims)
{
	uint64_t n = 1;
	for (uint32_t d = 0; d < ndims; d++)
		n *= dims[d];
	return n;
}

lcp_err lcp_store_report(const struct lcp_store_file *f, struct lcp_file_report *out)
{
	size_t n = 0, k = 0;
	memset(out, 0, sizeof *out);
	out->format = f->sc.format;
	out->logical_size = f->sc.logical_size;
	out->stored_size = lcp_store_stored_size(f);
	out->original_xxh3 = f->sc.original_xxh3;
	out->config = f->sc.config;
	for (uint32_t i = 0; i < f->sc.nregions; i++)
		n += f->sc.regions[i].name && f->sc.regions[i].kind != LCP_REGION_CRC32;
	out->tensors = lcp_calloc(n ? n : 1, sizeof *out->tensors);
	if (!out->tensors)
		return LCP_ERR_NOMEM;
	for (uint32_t i = 0; i < f->sc.nregions; i++) {
		const struct lcp_sc_region *r = &f->sc.regions[i];
		struct lcp_tensor_report *t = &out->tensors[k];
		if (!r->name || r->kind == LCP_REGION_CRC32)
			continue;
		t->name = lcp_strdup(r->name);
		if (!t->name) {
			lcp_file_report_free(out);
			return LCP_ERR_NOMEM;
		}
		out->ntensors = ++k;
		if (r->exact_reason && !(t->note = lcp_strdup(r->exact_reason))) {
			lcp_file_report_free(out);
			return LCP_ERR_NOMEM;
		}
		tensor_report_shape(t, r->dtype_name, r->ndims, r->dims);
		uint64_t elems = elems_of(r->ndims, r->dims);
		if (r->kind == LCP_REGION_TENSOR) {
			elems = r->len / lcp_sc_unit_bytes(r);
			t->encoding = r->encoding == LCP_ENC_Q4 ? "q4"
				      : r->encoding == LCP_ENC_Q8 ? "q8" : "lossless";
			t->bits = r->bits;
			t->group_size = r->group_size;
			t->rank = r->rank;
			t->sqnr_db = r->sqnr_db;
			t->cosine = r->cosine;
			/* Everything stored for the tensor: params and chunk data
			 * (the codec's count) plus its chunk table and QLOR block
			 * in the sidecar. */
			uint64_t bytes = r->stored_bytes + r->qlor_len +
					 (uint64_t)r->nchunks * LCP_SC_CHUNK_RECORD_BYTES;
			t->bits_per_weight = elems ? (double)bytes * 8.0 / (double)elems : 0;
		} else {
			t->encoding = "exact";
			t->sqnr_db = INFINITY;
			t->cosine = 1.0;
			t->bits_per_weight = elems ? (double)r->len * 8.0 / (double)elems : 0;
		}
	}
	return LCP_OK;
}

void lcp_file_report_free(struct lcp_file_report *r)
{
	for (size_t i = 0; i < r->ntensors; i++) {
		lcp_free(r->tensors[i].name);
		lcp_free(r->tensors[i].note);
	}
	lcp_free(r->tensors);
	memset(r, 0, sizeof *r);
}
