/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Packing a raw file in place: parse its regions, encode tensor regions one
 * at a time (peak memory: one tensor, its encoding and the codec's scratch),
 * store exact regions in zstd-or-raw chunks, write payload and sidecar under
 * temporary names, fsync, and commit by renaming (sidecar first, payload
 * second, then fsync of the directory). Every failure before the payload
 * rename leaves the raw file untouched and removes the temporaries.
 */
#include "lcpfs/store.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/checksum.h"
#include "lcpfs/qlor.h"
#include "store/sidecar.h"
#include "store/store_priv.h"

/* Exact chunks are cheap metadata; zstd level 1 decodes at GB/s. */
#define EXACT_ZSTD_LEVEL 1

struct packer {
	int dirfd;
	int rawfd;
	int pfd;                 /* temp payload */
	char ptmp[64];
	char stmp[64];
	bool ptmp_made, stmp_made;
	uint64_t poff;           /* bytes written to the payload so far */
	struct lcp_region_map map;
	struct lcp_sidecar sc;
	uint32_t *crc;           /* per region: CRC-32 of reconstructed bytes */
	bool *crc_wanted;
	ZSTD_CCtx *zc;
	struct lcp_codec_ctx *codec;
	struct lcp_xxh3_stream *orig;
	struct lcp_pack_report *rep;
};

static void refuse(struct lcp_pack_report *rep, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void refuse(struct lcp_pack_report *rep, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(rep->reason, sizeof rep->reason, fmt, ap);
	va_end(ap);
	rep->committed = false;
}

static lcp_err pwrite_payload(struct packer *p, const void *data, size_t len)
{
	lcp_err err = lcp_write_all(p->pfd, data, len);
	if (err == LCP_OK)
		p->poff += len;
	return err;
}

static lcp_err pack_exact(struct packer *p, uint32_t ri)
{
	const struct lcp_region *r = &p->map.regions[ri];
	struct lcp_sc_region *s = &p->sc.regions[ri];
	size_t bound = ZSTD_compressBound(LCP_EXACT_CHUNK_BYTES);
	uint8_t *in = lcp_malloc(LCP_EXACT_CHUNK_BYTES);
	uint8_t *out = lcp_malloc(bound + 1);
	uint32_t n = (uint32_t)((r->len + LCP_EXACT_CHUNK_BYTES - 1) / LCP_EXACT_CHUNK_BYTES);
	uint32_t crc = 0;
	lcp_err err = LCP_OK;

	s->chunks = lcp_calloc(n ? n : 1, sizeof *s->chunks);
	if (!in || !out || !s->chunks) {
		err = LCP_ERR_NOMEM;
		goto out;
	}
	s->nchunks = n;
	for (uint32_t i = 0; i < n && err == LCP_OK; i++) {
		uint64_t b = (uint64_t)i * LCP_EXACT_CHUNK_BYTES;
		size_t len = (size_t)(r->len - b < LCP_EXACT_CHUNK_BYTES ? r->len - b
									   : LCP_EXACT_CHUNK_BYTES);
		size_t stored;
		err = lcp_pread_all(p->rawfd, in, len, r->off + b);
		if (err)
			break;
		lcp_xxh3_stream_update(p->orig, in, len);
		if (p->crc_wanted[ri])
			crc = lcp_crc32(crc, in, len);
		size_t z = ZSTD_compressCCtx(p->zc, out + 1, bound, in, len, EXACT_ZSTD_LEVEL);
		if (!ZSTD_isError(z) && z < len) {
			out[0] = LCP_EXACT_MODE_ZSTD;
			stored = z + 1;
		} else {
			out[0] = LCP_EXACT_MODE_RAW;
			memcpy(out + 1, in, len);
			stored = len + 1;
		}
		struct lcp_sc_chunk *c = &s->chunks[i];
		c->begin = b;
		c->end = b + len;
		c->payload_off = p->poff;
		c->stored_len = stored;
		c->stored_xxh3 = lcp_xxh3(out, stored);
		c->output_xxh3 = lcp_xxh3(in, len);
		err = pwrite_payload(p, out, stored);
	}
	p->crc[ri] = crc;
out:
	lcp_free(in);
	lcp_free(out);
	return err;
}

/* CRC-32 of a tensor's reconstruction, decoding it chunk by chunk; also
 * proves that every chunk decodes to its recorded output checksum. */
static lcp_err tensor_crc(const struct lcp_encoded *enc, unsigned unit, uint32_t *crc_out)
{
	struct lcp_codec_tensor *t;
	uint8_t *buf = NULL;
	size_t cap = 0;
	uint32_t crc = 0;
	lcp_err err = lcp_codec_tensor_open(enc->params, enc->params_len, &t);
	if (err)
		return err;
	for (uint32_t i = 0; i < enc->nchunks && err == LCP_OK; i++) {
		const struct lcp_chunk_info *c = &enc->chunks[i];
		size_t len = (size_t)(c->elem_end - c->elem_begin) * unit;
		if (len > cap) {
			lcp_free(buf);
			buf = lcp_malloc(len);
			cap = buf ? len : 0;
			if (!buf) {
				err = LCP_ERR_NOMEM;
				break;
			}
		}
		err = lcp_codec_decode_chunk(t, c, enc->data + c->data_off, (size_t)c->data_len, buf,
					     len);
		if (err == LCP_OK && lcp_xxh3(buf, len) != c->output_xxh3)
			err = LCP_ERR_CHECKSUM;
		if (err == LCP_OK)
			crc = lcp_crc32(crc, buf, len);
	}
	lcp_free(buf);
	lcp_codec_tensor_free(t);
	*crc_out = crc;
	return err;
}

static lcp_err pack_tensor(struct packer *p, uint32_t ri, const struct lcp_config *cfg)
{
	const struct lcp_region *r = &p->map.regions[ri];
	struct lcp_sc_region *s = &p->sc.regions[ri];
	struct lcp_tensor_view v;
	struct lcp_encoded enc;
	unsigned unit = lcp_dtype_bytes(r->dtype);
	uint8_t *data;
	lcp_err err;

	memset(&enc, 0, sizeof enc);
	if (r->len > SIZE_MAX)
		return LCP_ERR_NOMEM;
	data = lcp_malloc(r->len ? (size_t)r->len : 1);
	if (!data)
		return LCP_ERR_NOMEM;
	err = lcp_pread_all(p->rawfd, data, (size_t)r->len, r->off);
	if (err)
		goto out;
	lcp_xxh3_stream_update(p->orig, data, (size_t)r->len);
	memset(&v, 0, sizeof v);
	v.dtype = r->dtype;
	v.ndims = r->ndims;
	memcpy(v.dims, r->dims, sizeof v.dims);
	v.data = data;
	v.len = (size_t)r->len;
	err = lcp_codec_encode(p->codec, &v, cfg, &enc);
	/* The raw bytes are no longer needed: free them before writing, so the
	 * peak is the tensor plus its encoding, not more. */
	lcp_free(data);
	data = NULL;
	if (err)
		goto out;
	if (p->crc_wanted[ri] && (err = tensor_crc(&enc, unit, &p->crc[ri])) != LCP_OK)
		goto out;
	s->encoding = (uint8_t)enc.encoding;
	s->bits = enc.bits;
	s->symmetric = enc.symmetric;
	s->rank = enc.rank;
	s->group_size = enc.group_size;
	s->cosine = enc.cosine;
	s->sqnr_db = enc.sqnr_db;
	s->stored_bytes = enc.stored_bytes;
	if (enc.params_len > UINT32_MAX) {
		err = LCP_ERR_RANGE;
		goto out;
	}
	s->params = lcp_malloc(enc.params_len ? enc.params_len : 1);
	s->chunks = lcp_calloc(enc.nchunks ? enc.nchunks : 1, sizeof *s->chunks);
	if (!s->params || !s->chunks) {
		err = LCP_ERR_NOMEM;
		goto out;
	}
	memcpy(s->params, enc.params, enc.params_len);
	s->params_len = (uint32_t)enc.params_len;
	size_t qlen = 0;
	err = lcp_qlor_serialize(&enc.qlor, &s->qlor, &qlen);
	if (err)
		goto out;
	s->qlor_len = (uint32_t)qlen;
	s->nchunks = enc.nchunks;
	for (uint32_t i = 0; i < enc.nchunks; i++) {
		const struct lcp_chunk_info *c = &enc.chunks[i];
		s->chunks[i] = (struct lcp_sc_chunk){
			.begin = c->elem_begin, .end = c->elem_end,
			.payload_off = p->poff + c->data_off, .stored_len = c->data_len,
			.stored_xxh3 = c->stored_xxh3, .output_xxh3 = c->output_xxh3,
		};
	}
	err = pwrite_payload(p, enc.data, enc.data_len);
out:
	lcp_free(data);
	lcp_encoded_free(&enc);
	return err;
}

static lcp_err copy_region_meta(struct packer *p)
{
	uint32_t n = (uint32_t)p->map.nregions;
	p->sc.regions = lcp_calloc(n ? n : 1, sizeof *p->sc.regions);
	p->crc = lcp_calloc(n ? n : 1, sizeof *p->crc);
	p->crc_wanted = lcp_calloc(n ? n : 1, sizeof *p->crc_wanted);
	if (!p->sc.regions || !p->crc || !p->crc_wanted)
		return LCP_ERR_NOMEM;
	p->sc.nregions = n;
	for (uint32_t i = 0; i < n; i++) {
		const struct lcp_region *r = &p->map.regions[i];
		struct lcp_sc_region *s = &p->sc.regions[i];
		s->kind = r->kind;
		s->off = r->off;
		s->len = r->len;
		s->dtype = r->kind == LCP_REGION_TENSOR ? (uint8_t)r->dtype : 0xff;
		s->ndims = r->ndims;
		memcpy(s->dims, r->dims, sizeof s->dims);
		snprintf(s->dtype_name, sizeof s->dtype_name, "%s", r->dtype_name);
		if (r->name && !(s->name = lcp_strdup(r->name)))
			return LCP_ERR_NOMEM;
		if (r->exact_reason && !(s->exact_reason = lcp_strdup(r->exact_reason)))
			return LCP_ERR_NOMEM;
		if (r->kind == LCP_REGION_CRC32) {
			if (r->crc_of >= n || p->map.regions[r->crc_of].kind == LCP_REGION_CRC32)
				return LCP_ERR_FORMAT;
			s->crc_of = r->crc_of;
			p->crc_wanted[r->crc_of] = true;
		}
	}
	return LCP_OK;
}

/* Crash-injection test hook (store.h, LCPFS_TEST_CRASH): dies like kill -9
 * at the named step of a commit. */
static void crash_point(const char *step)
{
	const char *want = getenv("LCPFS_TEST_CRASH");
	if (want && strcmp(want, step) == 0)
		raise(SIGKILL);
}

static bool same_file(const struct stat *a, const struct stat *b)
{
	return a->st_ino == b->st_ino && a->st_dev == b->st_dev && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

static lcp_err fsync_fd(int fd)
{
	return fsync(fd) == 0 ? LCP_OK : errno == ENOSPC || errno == EDQUOT ? LCP_ERR_NOSPC
									     : LCP_ERR_IO;
}

/* Writes everything under temporary names; on LCP_OK both are fsynced. */
static lcp_err write_temps(struct packer *p, const struct lcp_config *cfg, const struct stat *st,
			   lcp_progress_fn progress, void *progress_arg)
{
	uint8_t hdr[LCP_PAYLOAD_HEADER_LEN];
	struct lcp_buf sb = LCP_BUF_INIT;
	lcp_err err;
	int sfd;

	if ((err = lcp_store_random_id(p->sc.file_id)) != LCP_OK)
		return err;
	if ((err = lcp_store_temp_name('p', p->ptmp, sizeof p->ptmp)) != LCP_OK ||
	    (err = lcp_store_temp_name('s', p->stmp, sizeof p->stmp)) != LCP_OK)
		return err;
	p->pfd = openat(p->dirfd, p->ptmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (p->pfd < 0)
		return errno == ENOSPC || errno == EDQUOT ? LCP_ERR_NOSPC : LCP_ERR_IO;
	p->ptmp_made = true;
	lcp_payload_header_build(p->sc.file_id, hdr);
	if ((err = pwrite_payload(p, hdr, sizeof hdr)) != LCP_OK)
		return err;
	p->sc.payload_header_xxh3 = lcp_xxh3(hdr, sizeof hdr);
	for (uint32_t i = 0; i < p->sc.nregions; i++) {
		const struct lcp_region *r = &p->map.regions[i];
		if (r->kind == LCP_REGION_EXACT)
			err = pack_exact(p, i);
		else if (r->kind == LCP_REGION_TENSOR)
			err = pack_tensor(p, i, cfg);
		else {
			/* The original CRC bytes still count for provenance. */
			uint8_t b[4];
			err = lcp_pread_all(p->rawfd, b, 4, r->off);
			if (err == LCP_OK)
				lcp_xxh3_stream_update(p->orig, b, 4);
		}
		if (err)
			return err;
		if (progress)
			progress(progress_arg, r->off + r->len, (uint64_t)st->st_size);
	}
	for (uint32_t i = 0; i < p->sc.nregions; i++)
		if (p->sc.regions[i].kind == LCP_REGION_CRC32)
			p->sc.regions[i].crc_value = p->crc[p->sc.regions[i].crc_of];
	p->sc.payload_size = p->poff;
	p->sc.logical_size = (uint64_t)st->st_size;
	p->sc.original_xxh3 = lcp_xxh3_stream_digest(p->orig);
	p->sc.format = p->map.format;
	p->sc.config = *cfg;
	/* Keep the raw file's permissions and times: the commit changes how the
	 * bytes are stored, not the file's attributes. */
	if (fchmod(p->pfd, st->st_mode & 07777) != 0)
		return LCP_ERR_IO;
	if (fchown(p->pfd, st->st_uid, st->st_gid) != 0 && errno != EPERM)
		return LCP_ERR_IO;
	if ((err = fsync_fd(p->pfd)) != LCP_OK)
		return err;
	if ((err = lcp_sidecar_serialize(&p->sc, &sb)) != LCP_OK) {
		lcp_buf_free(&sb);
		return err;
	}
	sfd = openat(p->dirfd, p->stmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
		     st->st_mode & 0666);
	if (sfd < 0) {
		lcp_buf_free(&sb);
		return errno == ENOSPC || errno == EDQUOT ? LCP_ERR_NOSPC : LCP_ERR_IO;
	}
	p->stmp_made = true;
	err = lcp_write_all(sfd, sb.data, sb.len);
	if (err == LCP_OK)
		err = fsync_fd(sfd);
	close(sfd);
	p->rep->stored_size = p->poff + sb.len;
	lcp_buf_free(&sb);
	return err;
}

static void packer_cleanup(struct packer *p)
{
	if (p->pfd >= 0)
		close(p->pfd);
	if (p->ptmp_made)
		unlinkat(p->dirfd, p->ptmp, 0);
	if (p->stmp_made)
		unlinkat(p->dirfd, p->stmp, 0);
	if (p->rawfd >= 0)
		close(p->rawfd);
	lcp_region_map_free(&p->map);
	lcp_sidecar_free(&p->sc);
	lcp_free(p->crc);
	lcp_free(p->crc_wanted);
	ZSTD_freeCCtx(p->zc);
	lcp_codec_ctx_free(p->codec);
	lcp_xxh3_stream_free(p->orig);
}

lcp_err lcp_store_pack_progress_at(int dirfd, const char *name, const struct lcp_config *cfg,
				   lcp_may_commit_fn may_commit, void *arg,
				   lcp_progress_fn progress, void *progress_arg,
				   struct lcp_pack_report *rep)
{
	struct packer p;
	struct stat st, st2;
	struct lcp_reader rd;
	char scname[256];
	bool has_tensor = false;
	lcp_err err;

	memset(rep, 0, sizeof *rep);
	rep->format = LCP_FORMAT_UNKNOWN;
	if (!cfg || !lcp_codec_config_ok(cfg) || strchr(name, '/'))
		return LCP_ERR_INVAL;
	memset(&p, 0, sizeof p);
	p.dirfd = dirfd;
	p.pfd = -1;
	p.rep = rep;
	p.rawfd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (p.rawfd < 0)
		return errno == ENOENT ? LCP_ERR_NOENT : LCP_ERR_IO;
	if (fstat(p.rawfd, &st) != 0) {
		err = LCP_ERR_IO;
		goto out;
	}
	rep->logical_size = rep->stored_size = (uint64_t)st.st_size;
	err = LCP_OK;
	if (!S_ISREG(st.st_mode)) {
		refuse(rep, "not a regular file");
		goto out;
	}
	if (st.st_nlink > 1) {
		/* The commit replaces NAME by a new inode: the other names would
		 * keep the raw bytes and the links would silently split. */
		refuse(rep, "file has several hard links");
		goto out;
	}
	if (lcp_store_sidecar_name(name, scname, sizeof scname) != LCP_OK) {
		refuse(rep, "name too long");
		goto out;
	}
	if ((uint64_t)st.st_size < cfg->min_size) {
		refuse(rep, "smaller than min_size (%llu bytes)", (unsigned long long)cfg->min_size);
		goto out;
	}
	if ((err = lcp_reader_from_fd(&rd, &p.rawfd)) != LCP_OK)
		goto out;
	if ((err = lcp_format_parse(&rd, cfg->min_size, &p.map)) != LCP_OK)
		goto out;
	rep->format = p.map.format;
	if (!p.map.ok || p.map.format == LCP_FORMAT_UNKNOWN) {
		refuse(rep, "%s", p.map.reason[0] ? p.map.reason : "not a tensor file");
		goto out;
	}
	for (size_t i = 0; i < p.map.nregions; i++)
		has_tensor |= p.map.regions[i].kind == LCP_REGION_TENSOR;
	if (!has_tensor) {
		refuse(rep, "%s", p.map.reason[0] ? p.map.reason : "no compressible tensor");
		goto out;
	}
	if (p.map.nregions > UINT32_MAX) {
		refuse(rep, "too many regions");
		goto out;
	}
	p.zc = ZSTD_createCCtx();
	if (!p.zc || lcp_codec_ctx_create(&p.codec) != LCP_OK ||
	    lcp_xxh3_stream_create(&p.orig) != LCP_OK) {
		err = LCP_ERR_NOMEM;
		goto out;
	}
	if ((err = copy_region_meta(&p)) != LCP_OK)
		goto out;
	err = write_temps(&p, cfg, &st, progress, progress_arg);
	if (err == LCP_ERR_NOSPC) {
		refuse(rep, "no space left on device");
		err = LCP_OK;
		goto out;
	}
	if (err == LCP_ERR_TRUNCATED) {
		refuse(rep, "file changed while packing");
		err = LCP_OK;
		goto out;
	}
	if (err != LCP_OK && err != LCP_ERR_NOMEM && err != LCP_ERR_IO) {
		/* The codec turned a tensor down: that is a refusal, not a failure. */
		refuse(rep, "encoding failed: %s", lcp_strerror(err));
		err = LCP_OK;
		goto out;
	}
	if (err)
		goto out;
	/* The raw file must be the one we read, unchanged, under the same name. */
	if (fstat(p.rawfd, &st2) != 0 || !same_file(&st, &st2) ||
	    fstatat(dirfd, name, &st2, AT_SYMLINK_NOFOLLOW) != 0 || !same_file(&st, &st2)) {
		refuse(rep, "file changed while packing");
		goto out;
	}
	if (may_commit && !may_commit(arg)) {
		refuse(rep, "commit refused (file in use)");
		goto out;
	}
	{
		struct timespec ts[2] = {st.st_atim, st.st_mtim};
		futimens(p.pfd, ts);
	}
	crash_point("temps");
	/* Commit: the sidecar first (beside the raw file it is stale, as its
	 * file id is not in the raw bytes), then the payload over NAME. */
	if (renameat(dirfd, p.stmp, dirfd, scname) != 0) {
		err = LCP_ERR_IO;
		goto out;
	}
	p.stmp_made = false;
	crash_point("sidecar");
	if (renameat(dirfd, p.ptmp, dirfd, name) != 0) {
		unlinkat(dirfd, scname, 0);
		err = LCP_ERR_IO;
		goto out;
	}
	p.ptmp_made = false;
	crash_point("payload");
	fsync(dirfd);
	rep->committed = true;
	rep->reason[0] = 0;
out:
	if (!rep->committed)
		rep->stored_size = rep->logical_size; /* the raw file is what stays */
	packer_cleanup(&p);
	return err;
}

lcp_err lcp_store_pack_at(int dirfd, const char *name, const struct lcp_config *cfg,
			  lcp_may_commit_fn may_commit, void *arg, struct lcp_pack_report *rep)
{
	return lcp_store_pack_progress_at(dirfd, name, cfg, may_commit, arg, NULL, NULL, rep);
}
