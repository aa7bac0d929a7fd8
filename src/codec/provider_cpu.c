/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The built-in "cpu" provider: the tensor codec (codec.c) behind the seed's
 * provider interface (include/lcpfs/provider.h), for callers that want one
 * self-contained payload per tensor instead of params + chunks.
 *
 * Payload v1 (little-endian): "LCPV", u8 version 1, u32 params_len,
 * u32 nchunks, nchunks x {u64 elem_begin, u64 elem_end, u64 data_len,
 * u64 stored_xxh3, u64 output_xxh3}, u64 xxh3 of all bytes so far, the
 * codec's params block, then the chunks' bytes back to back (each chunk's
 * offset is the sum of the lengths before it). Everything is checked before
 * use: a damaged payload gives an error, never bytes.
 *
 * Thread safety: every operation may run concurrently. compress uses a codec
 * context of its own per call; the counters are atomics.
 */
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "codec/half.h"
#include "common/alloc.h"
#include "common/buf.h"
#include "common/checksum.h"
#include "common/le.h"
#include "lcpfs/codec.h"
#include "lcpfs/provider.h"

#define PAYLOAD_MAGIC "LCPV"
#define PAYLOAD_VERSION 1
#define PAYLOAD_HEADER_LEN 13
#define PAYLOAD_CHUNK_LEN 40
/* is_candidate: at most this many sampled elements, and the share of them
 * that must look like trained weights under some float interpretation:
 * zero or of magnitude 1e-10..1e6 as F32 or BF16, or up to 64 as F16 (whose
 * whole range is small: random bytes read as F16 land in 1e-10..1e6 94% of
 * the time, in ..64 about 66%; ASCII text mostly reads as 512 and more).
 * Random bytes as F32 pass about 20% of the time, text almost never. */
#define CANDIDATE_SAMPLES 1024
#define CANDIDATE_SHARE 0.9
#define CANDIDATE_MIN 1e-10f
#define CANDIDATE_MAX 1e6f
#define CANDIDATE_MAX_F16 64.0f

struct cpu_counters {
	_Atomic uint64_t bytes_in, bytes_out, compress_count, decompress_count;
	_Atomic uint64_t candidates_detected, candidates_rejected;
	_Atomic uint64_t compress_time_us, decompress_time_us;
};

static struct cpu_counters counters;

/* The seed's balanced preset, its default configuration: lcp_config_default()
 * as a constant with static storage (a unit test checks they agree). */
static const struct lcp_config cpu_config = {4, 32, 64, true, 4096, 1ull << 30, 0.97f, false};

static uint64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static const char *cpu_name(const struct lcp_provider *p)
{
	(void)p;
	return "cpu";
}

static bool plausible(float f, float max)
{
	float a = f < 0.0f ? -f : f;
	return a == 0.0f || (a >= CANDIDATE_MIN && a <= max);
}

/* Share of sampled elements that look like weights when data is read as
 * elements of dtype dt. */
static double plausible_share(const uint8_t *data, size_t len, enum lcp_dtype dt)
{
	unsigned eb = dt == LCP_DTYPE_F32 ? 4 : 2;
	size_t n = len / eb;
	size_t step = n > CANDIDATE_SAMPLES ? n / CANDIDATE_SAMPLES : 1;
	size_t seen = 0, good = 0;
	for (size_t i = 0; i < n && seen < CANDIDATE_SAMPLES; i += step, seen++) {
		const uint8_t *q = data + i * eb;
		float f = dt == LCP_DTYPE_F32	 ? lcp_load_lef32(q)
			  : dt == LCP_DTYPE_BF16 ? lcp_bf16_to_f32(lcp_load_le16(q))
						 : lcp_f16_to_f32(lcp_load_le16(q));
		good += plausible(f, dt == LCP_DTYPE_F16 ? CANDIDATE_MAX_F16 : CANDIDATE_MAX);
	}
	return seen ? (double)good / (double)seen : 0.0;
}

static bool cpu_is_candidate(const struct lcp_provider *p, const void *data, size_t len)
{
	(void)p;
	if (!data || len < cpu_config.min_size || len % 2)
		return false;
	bool yes = (len % 4 == 0 && plausible_share(data, len, LCP_DTYPE_F32) >= CANDIDATE_SHARE) ||
		   plausible_share(data, len, LCP_DTYPE_BF16) >= CANDIDATE_SHARE ||
		   plausible_share(data, len, LCP_DTYPE_F16) >= CANDIDATE_SHARE;
	if (yes)
		atomic_fetch_add(&counters.candidates_detected, 1);
	return yes;
}

static lcp_err build_payload(const struct lcp_encoded *e, uint8_t **out, size_t *out_len)
{
	struct lcp_buf b = LCP_BUF_INIT;
	lcp_err err = lcp_buf_reserve(&b, PAYLOAD_HEADER_LEN + (size_t)e->nchunks * PAYLOAD_CHUNK_LEN +
						  8 + e->params_len + e->data_len);
	if (!err)
		err = lcp_buf_append(&b, PAYLOAD_MAGIC, 4);
	if (!err)
		err = lcp_buf_append_u8(&b, PAYLOAD_VERSION);
	if (!err)
		err = lcp_buf_append_le32(&b, (uint32_t)e->params_len);
	if (!err)
		err = lcp_buf_append_le32(&b, e->nchunks);
	for (uint32_t c = 0; !err && c < e->nchunks; c++) {
		const struct lcp_chunk_info *ci = &e->chunks[c];
		err = lcp_buf_append_le64(&b, ci->elem_begin);
		if (!err)
			err = lcp_buf_append_le64(&b, ci->elem_end);
		if (!err)
			err = lcp_buf_append_le64(&b, ci->data_len);
		if (!err)
			err = lcp_buf_append_le64(&b, ci->stored_xxh3);
		if (!err)
			err = lcp_buf_append_le64(&b, ci->output_xxh3);
	}
	if (!err)
		err = lcp_buf_append_le64(&b, lcp_xxh3(b.data, b.len));
	if (!err)
		err = lcp_buf_append(&b, e->params, e->params_len);
	/* The codec stores chunks back to back in order: data is their concatenation. */
	if (!err)
		err = lcp_buf_append(&b, e->data, e->data_len);
	if (err) {
		lcp_buf_free(&b);
		return err;
	}
	*out = b.data;
	*out_len = b.len;
	return LCP_OK;
}

static lcp_err cpu_compress(const struct lcp_provider *p, const struct lcp_tensor_view *t,
			    const struct lcp_config *cfg, uint8_t **payload, size_t *payload_len,
			    struct lcp_qlor *meta)
{
	(void)p;
	if (payload)
		*payload = NULL;
	if (payload_len)
		*payload_len = 0;
	if (meta)
		lcp_qlor_init(meta, 0, 4, 16);
	if (!t || !cfg || !payload || !payload_len || !meta)
		return LCP_ERR_INVAL;
	uint64_t t0 = now_us();
	struct lcp_codec_ctx *ctx;
	lcp_err err = lcp_codec_ctx_create(&ctx);
	if (err)
		return err;
	struct lcp_encoded e;
	err = lcp_codec_encode(ctx, t, cfg, &e);
	lcp_codec_ctx_free(ctx);
	if (err)
		return err;
	err = build_payload(&e, payload, payload_len);
	if (!err) {
		*meta = e.qlor; /* ownership moves to the caller */
		memset(&e.qlor, 0, sizeof e.qlor);
		atomic_fetch_add(&counters.bytes_in, t->len);
		atomic_fetch_add(&counters.bytes_out, *payload_len);
		atomic_fetch_add(&counters.compress_count, 1);
		/* Stored, but not at the configured bits: the quality floor
		 * (or NaN/Inf) refused the quantized encodings. */
		if (e.encoding == LCP_ENC_LOSSLESS)
			atomic_fetch_add(&counters.candidates_rejected, 1);
		atomic_fetch_add(&counters.compress_time_us, now_us() - t0);
	}
	lcp_encoded_free(&e);
	return err;
}

/* Parses and checks the payload's header and chunk table. */
static lcp_err parse_payload(const uint8_t *buf, size_t len, uint32_t *nchunks,
			     const uint8_t **params, size_t *params_len, const uint8_t **table,
			     const uint8_t **data, size_t *data_len)
{
	if (!buf || len < PAYLOAD_HEADER_LEN)
		return LCP_ERR_TRUNCATED;
	if (memcmp(buf, PAYLOAD_MAGIC, 4) != 0)
		return LCP_ERR_FORMAT;
	if (buf[4] != PAYLOAD_VERSION)
		return LCP_ERR_VERSION;
	*params_len = lcp_load_le32(buf + 5);
	*nchunks = lcp_load_le32(buf + 9);
	if (*nchunks > (len - PAYLOAD_HEADER_LEN) / PAYLOAD_CHUNK_LEN)
		return LCP_ERR_TRUNCATED;
	size_t head = PAYLOAD_HEADER_LEN + (size_t)*nchunks * PAYLOAD_CHUNK_LEN;
	if (len - head < 8 || len - head - 8 < *params_len)
		return LCP_ERR_TRUNCATED;
	if (lcp_load_le64(buf + head) != lcp_xxh3(buf, head))
		return LCP_ERR_CHECKSUM;
	*table = buf + PAYLOAD_HEADER_LEN;
	*params = buf + head + 8;
	*data = *params + *params_len;
	*data_len = len - head - 8 - *params_len;
	uint64_t sum = 0;
	for (uint32_t c = 0; c < *nchunks; c++) {
		uint64_t l = lcp_load_le64(*table + (size_t)c * PAYLOAD_CHUNK_LEN + 16);
		if (l > *data_len - sum)
			return LCP_ERR_TRUNCATED;
		sum += l;
	}
	return sum == *data_len ? LCP_OK : LCP_ERR_FORMAT;
}

static lcp_err cpu_decompress(const struct lcp_provider *p, const uint8_t *payload, size_t len,
			      const struct lcp_qlor *meta, void **out, size_t *out_len)
{
	(void)p;
	if (out)
		*out = NULL;
	if (out_len)
		*out_len = 0;
	if (!out || !out_len || (!payload && len))
		return LCP_ERR_INVAL;
	uint64_t t0 = now_us();
	uint32_t nchunks;
	const uint8_t *params, *table, *data;
	size_t params_len, data_len;
	lcp_err err = parse_payload(payload, len, &nchunks, &params, &params_len, &table, &data,
				    &data_len);
	if (err)
		return err;
	struct lcp_codec_tensor *ct;
	err = lcp_codec_tensor_open(params, params_len, &ct);
	if (err)
		return err;
	unsigned eb = lcp_codec_tensor_dtype(ct) == LCP_DTYPE_F64 ? 8
		      : lcp_codec_tensor_dtype(ct) == LCP_DTYPE_F32 ? 4 : 2;
	/* The chunks must tile [0, n) exactly; the metadata, when it gives a
	 * size, must agree. */
	uint64_t n = lcp_codec_tensor_elems(ct);
	if (n > SIZE_MAX / eb || (meta && meta->original_size && meta->original_size != n * eb)) {
		lcp_codec_tensor_free(ct);
		return LCP_ERR_FORMAT;
	}
	uint8_t *buf = lcp_malloc(n ? (size_t)n * eb : 1);
	if (!buf) {
		lcp_codec_tensor_free(ct);
		return LCP_ERR_NOMEM;
	}
	uint64_t off = 0, next = 0;
	for (uint32_t c = 0; !err && c < nchunks; c++) {
		const uint8_t *r = table + (size_t)c * PAYLOAD_CHUNK_LEN;
		struct lcp_chunk_info ci = {lcp_load_le64(r), lcp_load_le64(r + 8), off,
					    lcp_load_le64(r + 16), lcp_load_le64(r + 24),
					    lcp_load_le64(r + 32)};
		if (ci.elem_begin != next || ci.elem_end <= ci.elem_begin || ci.elem_end > n) {
			err = LCP_ERR_FORMAT;
			break;
		}
		size_t olen = (size_t)(ci.elem_end - ci.elem_begin) * eb;
		uint8_t *o = buf + (size_t)ci.elem_begin * eb;
		err = lcp_codec_decode_chunk(ct, &ci, data + off, (size_t)ci.data_len, o, olen);
		if (!err && lcp_xxh3(o, olen) != ci.output_xxh3)
			err = LCP_ERR_CHECKSUM; /* decoded, but not to what the encoder saw */
		off += ci.data_len;
		next = ci.elem_end;
	}
	if (!err && next != n)
		err = LCP_ERR_FORMAT;
	lcp_codec_tensor_free(ct);
	if (err) {
		lcp_free(buf);
		return err;
	}
	*out = buf;
	*out_len = (size_t)n * eb;
	atomic_fetch_add(&counters.decompress_count, 1);
	atomic_fetch_add(&counters.decompress_time_us, now_us() - t0);
	return LCP_OK;
}

static const struct lcp_config *cpu_get_config(const struct lcp_provider *p)
{
	(void)p;
	return &cpu_config;
}

static bool cpu_supports_gpu(const struct lcp_provider *p)
{
	(void)p;
	return false;
}

static void cpu_statistics(const struct lcp_provider *p, struct lcp_stats *out)
{
	(void)p;
	out->bytes_in = atomic_load(&counters.bytes_in);
	out->bytes_out = atomic_load(&counters.bytes_out);
	out->compress_count = atomic_load(&counters.compress_count);
	out->decompress_count = atomic_load(&counters.decompress_count);
	out->candidates_detected = atomic_load(&counters.candidates_detected);
	out->candidates_rejected = atomic_load(&counters.candidates_rejected);
	out->compress_time_us = atomic_load(&counters.compress_time_us);
	out->decompress_time_us = atomic_load(&counters.decompress_time_us);
}

static const struct lcp_provider_ops cpu_ops = {
	cpu_name, cpu_is_candidate, cpu_compress, cpu_decompress,
	cpu_get_config, cpu_supports_gpu, cpu_statistics,
};

static const struct lcp_provider cpu_provider = {&cpu_ops, NULL};

const struct lcp_provider *lcp_provider_cpu(void)
{
	return &cpu_provider;
}
