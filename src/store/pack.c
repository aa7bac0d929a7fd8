/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Packing a raw file, in two phases (store.h). Prepare parses its regions
 * and walks them in order: exact regions go into zstd-or-raw chunks on the
 * packing thread; tensors are encoded by the codec's encoder pool, small
 * ones whole (several at once, ahead of the region being written, within
 * a bounded window) and large ones as a stream of chunks
 * (lcp_codec_encode_stream: bounded memory whatever their size), and the
 * payload is written in region and chunk order, so its bytes do not depend
 * on the pool. Holes of the raw file are never read. Payload and sidecar
 * are written under locked temporary names with the raw file's metadata,
 * and fsynced. Commit checks the raw file is the
 * version prepared (so that metadata is still its own) and renames: sidecar
 * (to its name, or parked when the name is taken), payload over NAME,
 * parked sidecar to its name, fsync of the directory. Every failure before the payload rename leaves the raw file
 * untouched and removes the temporaries.
 */
#include "lcpfs/store.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
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
#include "common/err_errno.h"
#include "common/io.h"
#include "common/log.h"
#include "lcpfs/qlor.h"
#include "store/sidecar.h"
#include "store/store_priv.h"

/* Exact chunks are cheap metadata; zstd level 1 decodes at GB/s. */
#define EXACT_ZSTD_LEVEL 1
/* Tensors up to this size are encoded whole, several at once (one task
 * each, read into memory); larger ones are streamed chunk by chunk. One
 * MiB is a few chunks: a stream of fewer would leave threads idle. */
#define SMALL_TENSOR_BYTES (1u << 20)

/* Encoding state of one prepare. */
struct packer {
	int rawfd;               /* not owned */
	int pfd;                 /* the payload temporary, not owned */
	lcp_err io_err;          /* first failed read or write (vs. a codec refusal) */
	uint64_t poff;           /* bytes written to the payload so far */
	struct lcp_region_map map;
	struct lcp_sidecar sc;
	uint32_t *crc;           /* per region: CRC-32 of reconstructed bytes */
	bool *crc_wanted;
	ZSTD_CCtx *zc;
	struct lcp_codec_ctx *codec;
	struct lcp_encode_exec *exec;       /* streams (NULL: this thread) */
	struct lcp_encode_exec *exec_small; /* small tensors, ahead of the stream */
	_Atomic lcp_err read_err;           /* first failed read of a stream's source */
	struct lcp_xxh3_stream *orig;
	struct lcp_pack_report *rep;
	const struct lcp_config *cfg;
};

/* A small tensor encoded ahead of its turn (pack_regions). */
struct small_slot {
	uint8_t *raw;            /* its bytes, hashed when its turn comes */
	struct lcp_encoded enc;
	bool io_failed;          /* the error was the read's */
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

/* Records the first I/O failure, so that it is told apart from the codec
 * turning a tensor down. */
static lcp_err io(struct packer *p, lcp_err err)
{
	if (err && !p->io_err)
		p->io_err = err;
	return err;
}

static lcp_err pwrite_payload(struct packer *p, const void *data, size_t len)
{
	lcp_err err = io(p, lcp_pwrite_all(p->pfd, data, len, p->poff));
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
		err = io(p, lcp_pread_holes(p->rawfd, in, len, r->off + b));
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

/* Fills tensor region ri's sidecar entry from its encoding, whose chunks
 * start at payload offset base. */
static lcp_err fill_tensor_region(struct packer *p, uint32_t ri, const struct lcp_encoded *enc,
				  uint64_t base)
{
	struct lcp_sc_region *s = &p->sc.regions[ri];
	s->encoding = (uint8_t)enc->encoding;
	s->bits = enc->bits;
	s->symmetric = enc->symmetric;
	s->rank = enc->rank;
	s->group_size = enc->group_size;
	s->cosine = enc->cosine;
	s->sqnr_db = enc->sqnr_db;
	s->stored_bytes = enc->stored_bytes;
	if (enc->params_len > UINT32_MAX)
		return LCP_ERR_RANGE;
	s->params = lcp_malloc(enc->params_len ? enc->params_len : 1);
	s->chunks = lcp_calloc(enc->nchunks ? enc->nchunks : 1, sizeof *s->chunks);
	if (!s->params || !s->chunks)
		return LCP_ERR_NOMEM;
	memcpy(s->params, enc->params, enc->params_len);
	s->params_len = (uint32_t)enc->params_len;
	/* Why the tensor is not stored as configured (quality floor, exact
	 * because that is as small): kept in the region's reason for inspect. */
	if (enc->fallback_reason && !s->exact_reason &&
	    !(s->exact_reason = lcp_strdup(enc->fallback_reason)))
		return LCP_ERR_NOMEM;
	size_t qlen = 0;
	lcp_err err = lcp_qlor_serialize(&enc->qlor, &s->qlor, &qlen);
	if (err)
		return err;
	s->qlor_len = (uint32_t)qlen;
	s->nchunks = enc->nchunks;
	for (uint32_t i = 0; i < enc->nchunks; i++) {
		const struct lcp_chunk_info *c = &enc->chunks[i];
		s->chunks[i] = (struct lcp_sc_chunk){
			.begin = c->elem_begin, .end = c->elem_end,
			.payload_off = base + c->data_off, .stored_len = c->data_len,
			.stored_xxh3 = c->stored_xxh3, .output_xxh3 = c->output_xxh3,
		};
	}
	return LCP_OK;
}

static void view_of(const struct lcp_region *r, struct lcp_tensor_source *src)
{
	memset(src, 0, sizeof *src);
	src->dtype = r->dtype;
	src->ndims = r->ndims;
	memcpy(src->dims, r->dims, sizeof src->dims);
}

static bool is_small_tensor(const struct lcp_region *r)
{
	return r->kind == LCP_REGION_TENSOR && r->len <= SMALL_TENSOR_BYTES;
}

/* The regions of a prepare and where their small tensors' encodings wait. */
struct region_run {
	struct packer *p;
	struct small_slot *slots;
	uint32_t window;
};

/* Task: encodes small tensor region i (other regions: nothing) into its
 * slot. */
static lcp_err small_task(void *arg, uint32_t i, struct lcp_codec_ctx *ctx)
{
	struct region_run *rr = arg;
	const struct lcp_region *r = &rr->p->map.regions[i];
	struct small_slot *sl = &rr->slots[i % rr->window];
	if (!is_small_tensor(r))
		return LCP_OK;
	sl->io_failed = false;
	sl->raw = lcp_malloc(r->len ? (size_t)r->len : 1);
	if (!sl->raw)
		return LCP_ERR_NOMEM;
	lcp_err err = lcp_pread_holes(rr->p->rawfd, sl->raw, (size_t)r->len, r->off);
	if (err) {
		sl->io_failed = true;
		return err;
	}
	struct lcp_tensor_source src;
	view_of(r, &src);
	struct lcp_tensor_view v = {.dtype = src.dtype, .ndims = src.ndims, .data = sl->raw,
				    .len = (size_t)r->len};
	memcpy(v.dims, src.dims, sizeof v.dims);
	return lcp_codec_encode(ctx, &v, rr->p->cfg, &sl->enc);
}

/* Writes small tensor region ri, encoded ahead in sl. */
static lcp_err put_small(struct packer *p, uint32_t ri, struct small_slot *sl)
{
	const struct lcp_region *r = &p->map.regions[ri];
	lcp_err err = LCP_OK;
	lcp_xxh3_stream_update(p->orig, sl->raw, (size_t)r->len);
	lcp_free(sl->raw);
	sl->raw = NULL;
	if (p->crc_wanted[ri])
		err = tensor_crc(&sl->enc, lcp_dtype_bytes(r->dtype), &p->crc[ri]);
	uint64_t base = p->poff;
	if (!err)
		err = fill_tensor_region(p, ri, &sl->enc, base);
	if (!err)
		err = pwrite_payload(p, sl->enc.data, sl->enc.data_len);
	lcp_encoded_free(&sl->enc);
	return err;
}

/* A large tensor's stream into the payload: chunks written in order from
 * the tensor's start; a quality-floor restart truncates back to it. */
struct stream_sink {
	struct packer *p;
	uint32_t ri;
	uint64_t base;
	uint32_t crc;
	uint64_t crc_len;
};

static lcp_err stream_read(void *arg, void *buf, size_t len, uint64_t off)
{
	struct stream_sink *ss = arg;
	const struct lcp_region *r = &ss->p->map.regions[ss->ri];
	lcp_err err = lcp_pread_holes(ss->p->rawfd, buf, len, r->off + off);
	lcp_err none = LCP_OK;
	if (err)
		atomic_compare_exchange_strong(&ss->p->read_err, &none, err);
	return err;
}

static void stream_scanned(void *arg, const void *data, size_t len)
{
	struct stream_sink *ss = arg;
	lcp_xxh3_stream_update(ss->p->orig, data, len);
}

static lcp_err stream_restart(void *arg)
{
	struct stream_sink *ss = arg;
	struct packer *p = ss->p;
	ss->crc = 0;
	ss->crc_len = 0;
	if (p->poff == ss->base)
		return LCP_OK;
	if (ftruncate(p->pfd, (off_t)ss->base) != 0)
		return io(p, lcp_err_from_errno(errno));
	p->poff = ss->base;
	return LCP_OK;
}

static lcp_err stream_put(void *arg, const struct lcp_chunk_info *c, const uint8_t *data,
			  uint32_t crc)
{
	struct stream_sink *ss = arg;
	uint64_t len = (c->elem_end - c->elem_begin) * lcp_dtype_bytes(ss->p->map.regions[ss->ri].dtype);
	ss->crc = ss->crc_len ? lcp_crc32_combine(ss->crc, crc, len) : crc;
	ss->crc_len += len;
	return pwrite_payload(ss->p, data, (size_t)c->data_len);
}

/* Streams large tensor region ri through the encoder pool. */
static lcp_err pack_stream(struct packer *p, uint32_t ri)
{
	const struct lcp_region *r = &p->map.regions[ri];
	struct stream_sink ss = {.p = p, .ri = ri, .base = p->poff};
	struct lcp_encode_sink sink = {.scanned = stream_scanned, .restart = stream_restart,
				       .put = stream_put, .arg = &ss, .want_crc = p->crc_wanted[ri]};
	struct lcp_tensor_source src;
	struct lcp_encoded enc;
	view_of(r, &src);
	src.read = stream_read;
	src.arg = &ss;
	lcp_err err = lcp_codec_encode_stream(p->codec, &src, p->cfg, p->exec, &sink, &enc);
	lcp_err rerr = atomic_load(&p->read_err);
	if (err && rerr)
		return io(p, rerr);
	if (err)
		return err;
	p->crc[ri] = ss.crc;
	err = fill_tensor_region(p, ri, &enc, ss.base);
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

struct lcp_pack_job {
	int dirfd;                   /* dup of the caller's */
	char *name;                  /* the destination */
	bool in_place;               /* the raw file is NAME itself */
	int rawfd;
	struct stat raw_st;          /* the raw file when prepare opened it */
	struct lcp_store_temp ptmp, stmp;
	uint8_t file_id[LCP_FILE_ID_LEN];
	enum lcp_format format;
	uint64_t stored_size;
};

/*
 * Every region in order. Small tensors are encoded by a run of tasks over
 * the regions (the task of any other region does nothing), up to a window
 * ahead of the region being written, so they keep the pool busy while this
 * thread writes, packs exact regions or streams a large tensor.
 */
static lcp_err pack_regions(struct packer *p, uint64_t total, lcp_progress_fn progress,
			    void *progress_arg)
{
	struct region_run rr = {.p = p, .window = lcp_encode_exec_window(p->exec_small)};
	struct lcp_encode_run *run = NULL;
	uint32_t n = (uint32_t)p->map.nregions;
	lcp_err err = LCP_OK;

	rr.slots = lcp_calloc(rr.window, sizeof *rr.slots);
	if (!rr.slots)
		return LCP_ERR_NOMEM;
	if (n)
		err = lcp_encode_run_start(p->exec_small, p->codec, n, rr.window, small_task, &rr, &run);
	for (uint32_t k = 0; !err && k < n; k++) {
		uint32_t i;
		const struct lcp_region *r = &p->map.regions[k];
		err = lcp_encode_run_next(run, &i);
		if (err) {
			if (rr.slots[i % rr.window].io_failed)
				io(p, err);
			break;
		}
		if (r->kind == LCP_REGION_EXACT) {
			err = pack_exact(p, i);
		} else if (is_small_tensor(r)) {
			err = put_small(p, i, &rr.slots[i % rr.window]);
		} else if (r->kind == LCP_REGION_TENSOR) {
			err = pack_stream(p, i);
		} else {
			/* The original CRC bytes still count for provenance. */
			uint8_t b[4];
			err = io(p, lcp_pread_all(p->rawfd, b, 4, r->off));
			if (err == LCP_OK)
				lcp_xxh3_stream_update(p->orig, b, 4);
		}
		if (!err && progress)
			progress(progress_arg, r->off + r->len, total);
	}
	lcp_encode_run_end(run);
	for (uint32_t k = 0; k < rr.window; k++) {
		lcp_free(rr.slots[k].raw);
		lcp_encoded_free(&rr.slots[k].enc);
	}
	lcp_free(rr.slots);
	return err;
}

/* Writes payload and sidecar temporaries; on LCP_OK both are fsynced. */
static lcp_err write_temps(struct packer *p, struct lcp_pack_job *job,
			   const struct lcp_config *cfg, lcp_progress_fn progress,
			   void *progress_arg)
{
	uint8_t hdr[LCP_PAYLOAD_HEADER_LEN];
	struct lcp_buf sb = LCP_BUF_INIT;
	uint64_t total = (uint64_t)job->raw_st.st_size;
	lcp_err err;

	if ((err = io(p, lcp_store_random_id(p->sc.file_id))) != LCP_OK)
		return err;
	memcpy(job->file_id, p->sc.file_id, LCP_FILE_ID_LEN);
	if ((err = io(p, lcp_store_temp_create(job->dirfd, 'p', 0600, &job->ptmp))) != LCP_OK)
		return err;
	p->pfd = job->ptmp.fd;
	lcp_payload_header_build(p->sc.file_id, hdr);
	if ((err = pwrite_payload(p, hdr, sizeof hdr)) != LCP_OK)
		return err;
	p->sc.payload_header_xxh3 = lcp_xxh3(hdr, sizeof hdr);
	err = pack_regions(p, total, progress, progress_arg);
	if (err)
		return err;
	for (uint32_t i = 0; i < p->sc.nregions; i++)
		if (p->sc.regions[i].kind == LCP_REGION_CRC32)
			p->sc.regions[i].crc_value = p->crc[p->sc.regions[i].crc_of];
	p->sc.payload_size = p->poff;
	p->sc.logical_size = total;
	p->sc.original_xxh3 = lcp_xxh3_stream_digest(p->orig);
	p->sc.format = p->map.format;
	p->sc.config = *cfg;
	if ((err = io(p, lcp_store_fsync(p->pfd))) != LCP_OK)
		return err;
	if ((err = lcp_sidecar_serialize(&p->sc, &sb)) != LCP_OK) {
		lcp_buf_free(&sb);
		return err;
	}
	err = io(p, lcp_store_temp_create(job->dirfd, 's', 0600, &job->stmp));
	if (err == LCP_OK)
		err = io(p, lcp_write_all(job->stmp.fd, sb.data, sb.len));
	if (err == LCP_OK)
		err = io(p, lcp_store_fsync(job->stmp.fd));
	job->stored_size = p->poff + sb.len;
	lcp_buf_free(&sb);
	return err;
}

/* The commit changes how the bytes are stored, not the file: owner, mode
 * (setuid and setgid included), xattrs and times go to the payload, as the
 * raw file has them now (the commit refuses if they change before it); the
 * sidecar gets the owner and read/write bits, for offline readers. */
static lcp_err carry_metadata(struct lcp_pack_job *job)
{
	struct stat st;
	lcp_err err;

	if (fstat(job->rawfd, &st) != 0)
		return lcp_err_from_errno(errno);
	if ((err = lcp_store_copy_metadata(job->rawfd, &st, job->ptmp.fd)) != LCP_OK ||
	    (err = lcp_store_fsync(job->ptmp.fd)) != LCP_OK)
		return err;
	if (fchown(job->stmp.fd, st.st_uid, st.st_gid) != 0 && errno != EPERM)
		return lcp_err_from_errno(errno);
	if (fchmod(job->stmp.fd, st.st_mode & 0666) != 0)
		return lcp_err_from_errno(errno);
	return lcp_store_fsync(job->stmp.fd);
}

static void packer_free(struct packer *p)
{
	lcp_region_map_free(&p->map);
	lcp_sidecar_free(&p->sc);
	lcp_free(p->crc);
	lcp_free(p->crc_wanted);
	ZSTD_freeCCtx(p->zc);
	lcp_codec_ctx_free(p->codec);
	lcp_encode_exec_free(p->exec);
	lcp_encode_exec_free(p->exec_small);
	lcp_xxh3_stream_free(p->orig);
}

void lcp_store_pack_free(struct lcp_pack_job *job)
{
	if (!job)
		return;
	lcp_store_temp_remove(job->dirfd, &job->ptmp);
	lcp_store_temp_remove(job->dirfd, &job->stmp);
	if (job->rawfd >= 0)
		close(job->rawfd);
	if (job->dirfd >= 0)
		close(job->dirfd);
	lcp_free(job->name);
	lcp_free(job);
}

void lcp_store_pack_source(const struct lcp_pack_job *job, uint64_t *dev, uint64_t *ino)
{
	*dev = (uint64_t)job->raw_st.st_dev;
	*ino = (uint64_t)job->raw_st.st_ino;
}

void lcp_store_refusal_record(int fd, const struct lcp_pack_report *rep)
{
	char marker[sizeof LCP_STORE_RETRY_PREFIX + sizeof rep->reason];
	if (rep->outcome == LCP_PACK_REFUSED)
		lcp_store_refusal_set(fd, rep->reason);
	else if (rep->outcome == LCP_PACK_DEFERRED) {
		snprintf(marker, sizeof marker, "%s%s", LCP_STORE_RETRY_PREFIX, rep->reason);
		lcp_store_refusal_set(fd, marker);
	}
}

bool lcp_store_refusal_is_retry(const char *marker)
{
	return strncmp(marker, LCP_STORE_RETRY_PREFIX, strlen(LCP_STORE_RETRY_PREFIX)) == 0;
}

/* Compression must never make a file take much more disk than it took raw:
 * a sparse file's holes take no blocks raw, but every chunk of them still
 * gets a stored chunk and a sidecar record (2.4 MB for a 16 GiB tensor of
 * holes). Storing runs of zero chunks compactly would be a format change for
 * files nobody keeps; comparing allocated blocks, as du counts them, once
 * the temporaries are fsynced is simple and catches every such case. The
 * margin lets a small file pay for its sidecar's block. */
#define DISK_MARGIN_BYTES (64u << 10)

/* Sets rep's reason when payload and sidecar, as written, take at least
 * DISK_MARGIN_BYTES more disk than the raw file. */
static lcp_err refuse_if_bigger_on_disk(const struct lcp_pack_job *job,
					struct lcp_pack_report *rep)
{
	struct stat pst, sst;
	uint64_t raw, stored;

	if (fstat(job->ptmp.fd, &pst) != 0 || fstat(job->stmp.fd, &sst) != 0)
		return lcp_err_from_errno(errno);
	raw = (uint64_t)job->raw_st.st_blocks * 512u;
	stored = ((uint64_t)pst.st_blocks + (uint64_t)sst.st_blocks) * 512u;
	if (stored >= raw + DISK_MARGIN_BYTES)
		refuse(rep, "not smaller on disk than the original (%llu bytes allocated raw, "
		       "holes taking none; %llu compressed)", (unsigned long long)raw,
		       (unsigned long long)stored);
	return LCP_OK;
}

/* Sidecar bytes the file's chunks will take at least: every chunk has a
 * record, and a region of L bytes has at least ceil(L / the largest chunk
 * its kind can have) chunks. */
static uint64_t least_sidecar_bytes(const struct lcp_region_map *map)
{
	uint64_t chunks = 0;
	for (size_t i = 0; i < map->nregions; i++) {
		const struct lcp_region *r = &map->regions[i];
		uint64_t most = LCP_EXACT_CHUNK_BYTES;
		if (r->kind == LCP_REGION_TENSOR && lcp_codec_max_chunk_bytes(r->dtype) > most)
			most = lcp_codec_max_chunk_bytes(r->dtype);
		if (r->kind == LCP_REGION_TENSOR || r->kind == LCP_REGION_EXACT)
			chunks += r->len / most + (r->len % most != 0);
	}
	return chunks * LCP_SC_CHUNK_RECORD_BYTES;
}

/* Sets rep's reason, before anything is encoded, when the sidecar alone
 * would take DISK_MARGIN_BYTES more than the raw file's allocated blocks (a
 * file mostly holes): the encoding would be refused after it, and costs
 * about 6 CPU seconds per 16 GiB of holes. */
static void refuse_if_sidecar_outgrows_disk(const struct lcp_pack_job *job,
					    const struct lcp_region_map *map,
					    struct lcp_pack_report *rep)
{
	uint64_t raw = (uint64_t)job->raw_st.st_blocks * 512u, least = least_sidecar_bytes(map);
	if (least >= raw + DISK_MARGIN_BYTES)
		refuse(rep, "not smaller on disk than the original (%llu bytes allocated raw, "
		       "holes taking none; at least %llu compressed)", (unsigned long long)raw,
		       (unsigned long long)least);
}

/* A refusal (outcome REFUSED or DEFERRED) ends the prepare: a pack in place
 * records it on the raw file; one from a source leaves that to the caller. */
static void refuse_for_good(struct lcp_pack_report *rep, const struct lcp_pack_job *job,
			    enum lcp_pack_outcome outcome)
{
	rep->outcome = outcome;
	if (job->in_place && job->rawfd >= 0)
		lcp_store_refusal_record(job->rawfd, rep);
}

/* Causes that say nothing about the file and may be gone later: the pack
 * is deferred, not refused. */
static bool transient(lcp_err err)
{
	return err == LCP_ERR_NOSPC || err == LCP_ERR_MFILE || err == LCP_ERR_NOMEM ||
	       err == LCP_ERR_IO || err == LCP_ERR_AGAIN || err == LCP_ERR_BUSY;
}

/* Opens the raw file of a prepare into job (rawfd, raw_st); LCP_OK with
 * rep->outcome set when there is nothing to pack. */
static lcp_err open_raw(struct lcp_pack_job *job, int srcfd, struct lcp_pack_report *rep,
			bool *go)
{
	struct lcp_probe pr;
	lcp_err err;

	*go = false;
	if (!job->in_place) {
		job->rawfd = fcntl(srcfd, F_DUPFD_CLOEXEC, 0);
		if (job->rawfd < 0 || fstat(job->rawfd, &job->raw_st) != 0)
			return lcp_err_from_errno(errno);
		if (!S_ISREG(job->raw_st.st_mode)) {
			rep->outcome = LCP_PACK_NOT_TENSOR;
			refuse(rep, "not a regular file");
			return LCP_OK;
		}
		*go = true;
		return LCP_OK;
	}
	/* In place: only a raw file is packed (the probe reads no more than a
	 * sidecar beside it, if any). */
	if ((err = lcp_store_probe_at(job->dirfd, job->name, NULL, &pr, NULL)) != LCP_OK)
		return err;
	if (!pr.regular || pr.repr != LCP_REPR_RAW) {
		rep->outcome = LCP_PACK_NOT_TENSOR;
		refuse(rep, "%s", pr.regular ? "already compressed" : "not a regular file");
		return LCP_OK;
	}
	err = lcp_store_open_regular(job->dirfd, job->name, O_RDONLY, &job->rawfd, &job->raw_st);
	if (err == LCP_ERR_AGAIN || (err == LCP_OK && (uint64_t)job->raw_st.st_ino != pr.ino)) {
		rep->outcome = LCP_PACK_RETRY;
		refuse(rep, "file changed while packing");
		return LCP_OK;
	}
	if (err)
		return err;
	*go = true;
	return LCP_OK;
}

lcp_err lcp_store_pack_prepare_opts(int dirfd, const char *name, int srcfd,
				    const struct lcp_pack_opts *opts, struct lcp_pack_report *rep,
				    struct lcp_pack_job **out)
{
	const struct lcp_config *cfg = opts ? opts->cfg : NULL;
	char scname[LCP_STORE_NAME_LEN];
	struct lcp_pack_job *job;
	struct packer p;
	struct lcp_reader rd;
	bool has_tensor = false, go;
	lcp_err err;

	memset(rep, 0, sizeof *rep);
	rep->format = LCP_FORMAT_UNKNOWN;
	*out = NULL;
	if (!opts || !cfg || !lcp_codec_config_ok(cfg) || lcp_store_is_internal_name(name))
		return LCP_ERR_INVAL;
	if ((err = lcp_store_sidecar_name(name, scname)) != LCP_OK)
		return err;
	job = lcp_calloc(1, sizeof *job);
	if (!job) {
		refuse(rep, "%s", lcp_strerror(LCP_ERR_NOMEM));
		rep->outcome = LCP_PACK_DEFERRED;
		return LCP_OK;
	}
	job->rawfd = -1;
	job->ptmp.fd = job->stmp.fd = -1;
	job->in_place = srcfd < 0;
	job->dirfd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
	job->name = lcp_strdup(name);
	memset(&p, 0, sizeof p);
	if (job->dirfd < 0 || !job->name) {
		err = job->dirfd < 0 ? lcp_err_from_errno(errno) : LCP_ERR_NOMEM;
		goto fail;
	}
	if ((err = open_raw(job, srcfd, rep, &go)) != LCP_OK || !go)
		goto fail;
	rep->logical_size = rep->stored_size = (uint64_t)job->raw_st.st_size;
	p.rawfd = job->rawfd;
	p.rep = rep;
	if ((err = lcp_reader_from_fd(&rd, &p.rawfd)) != LCP_OK)
		goto fail;
	if ((err = lcp_format_parse(&rd, cfg->min_size, &p.map)) != LCP_OK)
		goto fail;
	rep->format = p.map.format;
	if (p.map.format == LCP_FORMAT_UNKNOWN || p.map.format == LCP_FORMAT_RAW) {
		rep->outcome = LCP_PACK_NOT_TENSOR;
		refuse(rep, "%s", p.map.reason[0] ? p.map.reason : "not a tensor file");
		goto fail;
	}
	/* From here on it is a tensor file: a refusal is recorded on it. */
	for (size_t i = 0; i < p.map.nregions; i++)
		has_tensor |= p.map.regions[i].kind == LCP_REGION_TENSOR;
	if (!p.map.ok)
		refuse(rep, "%s", p.map.reason[0] ? p.map.reason : "not a tensor file");
	else if (job->in_place && job->raw_st.st_nlink > 1)
		/* The commit replaces NAME by a new inode: the other names would
		 * keep the raw bytes and the links would silently split. */
		refuse(rep, "%s", LCP_STORE_REFUSED_LINKS);
	else if ((uint64_t)job->raw_st.st_size < cfg->min_size)
		refuse(rep, "smaller than min_size (%llu bytes)", (unsigned long long)cfg->min_size);
	else if (!has_tensor)
		refuse(rep, "%s", p.map.reason[0] ? p.map.reason : "no compressible tensor");
	else if (p.map.nregions > UINT32_MAX)
		refuse(rep, "too many regions");
	else
		refuse_if_sidecar_outgrows_disk(job, &p.map, rep);
	if (rep->reason[0]) {
		refuse_for_good(rep, job, LCP_PACK_REFUSED);
		goto fail;
	}
	p.cfg = cfg;
	p.zc = ZSTD_createCCtx();
	if (!p.zc || lcp_codec_ctx_create(&p.codec) != LCP_OK ||
	    lcp_xxh3_stream_create(&p.orig) != LCP_OK) {
		err = LCP_ERR_NOMEM;
		goto fail;
	}
	if (opts->pool && ((err = lcp_encode_exec_create(opts->pool, &p.exec)) != LCP_OK ||
			   (err = lcp_encode_exec_create(opts->pool, &p.exec_small)) != LCP_OK))
		goto fail;
	if ((err = copy_region_meta(&p)) != LCP_OK)
		goto fail;
	err = write_temps(&p, job, cfg, opts->progress, opts->progress_arg);
	if (err == LCP_OK)
		err = io(&p, carry_metadata(job));
	if (err == LCP_OK && (err = io(&p, refuse_if_bigger_on_disk(job, rep))) == LCP_OK &&
	    rep->reason[0]) {
		refuse_for_good(rep, job, LCP_PACK_REFUSED);
		goto fail;
	}
	if (err == LCP_OK) {
		job->format = p.map.format;
		packer_free(&p);
		*out = job;
		return LCP_OK;
	}
	if (p.io_err == LCP_ERR_TRUNCATED) {
		rep->outcome = LCP_PACK_RETRY;
		refuse(rep, "file changed while packing");
		err = LCP_OK;
	} else if (!p.io_err && !transient(err)) {
		/* The codec turned a tensor down: that is a refusal, not a failure. */
		refuse(rep, "encoding failed: %s", lcp_strerror(err));
		refuse_for_good(rep, job, LCP_PACK_REFUSED);
		err = LCP_OK;
	} else if (p.io_err) {
		err = p.io_err;
	}
fail:
	/* A full disk, no memory, no fd, a failing backing: nothing to do
	 * with the file, so it is tried again later, never refused for good. */
	if (err && transient(err)) {
		refuse(rep, "%s", lcp_strerror(err));
		refuse_for_good(rep, job, LCP_PACK_DEFERRED);
		err = LCP_OK;
	}
	packer_free(&p);
	lcp_store_pack_free(job);
	return err;
}

/* A rename of a temporary failed with errno e. ENOENT: our temporary
 * vanished (removed by hand, or by a recovery on a machine whose locks do not
 * reach ours): nothing was published, so the pack is tried again rather than
 * refused. Anything else is an error. */
static lcp_err temps_gone(int e, struct lcp_pack_report *rep)
{
	if (e != ENOENT)
		return lcp_err_from_errno(e);
	rep->outcome = LCP_PACK_RETRY;
	refuse(rep, "temporaries vanished before the commit");
	return LCP_OK;
}

static lcp_err commit_locked(struct lcp_pack_job *job, const char *scname,
			     struct lcp_pack_report *rep);

lcp_err lcp_store_pack_commit(struct lcp_pack_job *job, struct lcp_pack_report *rep)
{
	char scname[LCP_STORE_NAME_LEN];
	struct lcp_name_lock lock;
	lcp_err err;

	rep->committed = false;
	rep->reason[0] = '\0';
	rep->format = job->format;
	rep->logical_size = rep->stored_size = (uint64_t)job->raw_st.st_size;
	if (job->ptmp.fd < 0 || job->stmp.fd < 0)
		return LCP_ERR_INVAL;
	if ((err = lcp_store_sidecar_name(job->name, scname)) != LCP_OK)
		return err;
	/* Two commits of one name must not interleave their renames (a payload
	 * would end beside the other's sidecar). */
	if ((err = lcp_store_lock_names(job->dirfd, job->name, -1, NULL, &lock)) != LCP_OK)
		return err;
	err = commit_locked(job, scname, rep);
	lcp_store_unlock_names(&lock);
	return err;
}

static lcp_err commit_locked(struct lcp_pack_job *job, const char *scname,
			     struct lcp_pack_report *rep)
{
	char parked[LCP_STORE_NAME_LEN];
	struct stat now, held, sc_st;
	bool park;

	/* Durable facts only: the raw file must be the version prepared. A
	 * write, truncate, chmod or chown meanwhile changed size, mtime or
	 * ctime; a rename put another inode under NAME. */
	if (fstat(job->rawfd, &held) != 0)
		return lcp_err_from_errno(errno);
	now = held;
	bool gone = false;
	if (job->in_place && fstatat(job->dirfd, job->name, &now, AT_SYMLINK_NOFOLLOW) != 0) {
		if (errno != ENOENT)
			return lcp_err_from_errno(errno);
		gone = true;
	}
	if (gone || !lcp_store_same_version(&held, &job->raw_st) ||
	    (job->in_place && !lcp_store_same_version(&now, &job->raw_st))) {
		rep->outcome = LCP_PACK_RETRY;
		refuse(rep, "file changed while packing");
		return LCP_OK;
	}
	if (job->in_place && now.st_nlink > 1) {
		refuse(rep, "%s", LCP_STORE_REFUSED_LINKS);
		refuse_for_good(rep, job, LCP_PACK_REFUSED);
		return LCP_OK;
	}
	/* Unchanged ctime: the metadata prepare carried over is still the
	 * file's. What is left are renames. */
	lcp_store_crash_point("temps");
	/* Sidecar first. Beside the raw file it is provably stale (its payload
	 * is not there), so NAME still reads raw. When the name is taken (a
	 * stale sidecar, or the destination is compressed) it waits under a
	 * parked name, which guards nothing and which recovery moves beside
	 * its payload. */
	park = fstatat(job->dirfd, scname, &sc_st, AT_SYMLINK_NOFOLLOW) == 0;
	lcp_store_parked_name(job->file_id, parked);
	if (renameat(job->dirfd, job->stmp.name, job->dirfd, park ? parked : scname) != 0)
		return temps_gone(errno, rep);
	lcp_store_crash_point("sidecar");
	if (renameat(job->dirfd, job->ptmp.name, job->dirfd, job->name) != 0) {
		int e = errno;
		unlinkat(job->dirfd, park ? parked : scname, 0); /* ours, never used */
		return temps_gone(e, rep);
	}
	lcp_store_crash_point("payload");
	if (park) {
		if (renameat(job->dirfd, parked, job->dirfd, scname) != 0)
			lcp_log(LCP_LOG_ERROR,
				"%s: sidecar left parked as %s (%s); recovery will place it",
				job->name, parked, strerror(errno));
		lcp_store_crash_point("parked");
	}
	fsync(job->dirfd);
	/* The temporaries are in place: nothing of them left to remove. */
	close(job->ptmp.fd);
	close(job->stmp.fd);
	job->ptmp.fd = job->stmp.fd = -1;
	rep->outcome = LCP_PACK_COMMITTED;
	rep->committed = true;
	rep->stored_size = job->stored_size;
	return LCP_OK;
}

lcp_err lcp_store_pack_prepare_at(int dirfd, const char *name, int srcfd,
				  const struct lcp_config *cfg, lcp_progress_fn progress,
				  void *progress_arg, struct lcp_pack_report *rep,
				  struct lcp_pack_job **out)
{
	struct lcp_pack_opts o = {.cfg = cfg, .progress = progress, .progress_arg = progress_arg};
	return lcp_store_pack_prepare_opts(dirfd, name, srcfd, &o, rep, out);
}

lcp_err lcp_store_pack_opts(int dirfd, const char *name, int srcfd,
			    const struct lcp_pack_opts *opts, struct lcp_pack_report *rep)
{
	struct lcp_pack_job *job;
	lcp_err err = lcp_store_pack_prepare_opts(dirfd, name, srcfd, opts, rep, &job);
	if (err || !job)
		return err;
	err = lcp_store_pack_commit(job, rep);
	lcp_store_pack_free(job);
	return err;
}

lcp_err lcp_store_pack_at(int dirfd, const char *name, int srcfd, const struct lcp_config *cfg,
			  lcp_progress_fn progress, void *progress_arg,
			  struct lcp_pack_report *rep)
{
	struct lcp_pack_opts o = {.cfg = cfg, .progress = progress, .progress_arg = progress_arg};
	return lcp_store_pack_opts(dirfd, name, srcfd, &o, rep);
}
