/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The lossless tier's chunks (lossless.h): splitting elements into planes,
 * choosing each plane's and each chunk's storage, and the range decode of
 * split planes.
 */
#include "codec/lossless.h"

#include <string.h>
#include <zstd.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "codec/codec_format.h"
#include "codec/stream.h"
#include "common/le.h"

/* The chunk's largest element: 8 bytes, so at most 8 planes. */
#define MAX_PLANES 8u

#ifdef __SSE2__
/* 16-bit lanes of the 8 bits below the sign (lo: plane 0) and of the sign
 * and low 7 bits (hi: plane 1) for 8 lanes v of 16 bits. */
static inline void split16(__m128i v, __m128i *p0, __m128i *p1)
{
	const __m128i ff = _mm_set1_epi16(0xff), low7 = _mm_set1_epi16(0x7f);
	*p0 = _mm_and_si128(_mm_srli_epi16(v, 7), ff);
	*p1 = _mm_or_si128(_mm_and_si128(v, low7), _mm_and_si128(_mm_srli_epi16(v, 8),
								 _mm_set1_epi16(0x80)));
}

/* The inverse: 16-bit elements from planes 0 and 1 in 16-bit lanes. */
static inline __m128i merge16(__m128i p0, __m128i p1)
{
	return _mm_or_si128(_mm_or_si128(_mm_slli_epi16(p0, 7), _mm_and_si128(p1, _mm_set1_epi16(0x7f))),
			    _mm_slli_epi16(_mm_and_si128(p1, _mm_set1_epi16(0x80)), 8));
}
#endif

/* Splits m elements of eb bytes into eb planes of m bytes (lossless.h);
 * SSE2 does 16 elements of 2 or 4 bytes at a time, the same bits. */
static void split(unsigned eb, const uint8_t *raw, uint64_t m, uint8_t *planes)
{
	uint8_t *p0 = planes;
	uint64_t i = 0;
	if (eb == 2) {
		uint8_t *p1 = planes + m;
#ifdef __SSE2__
		for (; i + 16 <= m; i += 16) {
			__m128i a0, a1, b0, b1;
			split16(_mm_loadu_si128((const __m128i *)(const void *)(raw + 2 * i)), &a0, &a1);
			split16(_mm_loadu_si128((const __m128i *)(const void *)(raw + 2 * i + 16)), &b0, &b1);
			_mm_storeu_si128((__m128i *)(void *)(p0 + i), _mm_packus_epi16(a0, b0));
			_mm_storeu_si128((__m128i *)(void *)(p1 + i), _mm_packus_epi16(a1, b1));
		}
#endif
		for (; i < m; i++) {
			uint32_t v = lcp_load_le16(raw + 2 * i);
			p0[i] = (uint8_t)(v >> 7);
			p1[i] = (uint8_t)((v & 0x7fu) | (v >> 8 & 0x80u));
		}
	} else if (eb == 4) {
		uint8_t *p1 = planes + m, *p2 = p1 + m, *p3 = p2 + m;
#ifdef __SSE2__
		/* The 16-bit halves of 8 elements side by side (low halves via
		 * shifts, as packs_epi32 saturates), then as eb = 2 for the high
		 * halves; the low halves' bytes are planes 1 and 2. */
		const __m128i ff = _mm_set1_epi16(0xff);
		for (; i + 16 <= m; i += 16) {
			__m128i lo[2], hi[2];
			for (unsigned h = 0; h < 2; h++) {
				__m128i v0 = _mm_loadu_si128((const __m128i *)(const void *)(raw + 4 * i + 32 * h));
				__m128i v1 = _mm_loadu_si128((const __m128i *)(const void *)(raw + 4 * i + 32 * h + 16));
				lo[h] = _mm_packs_epi32(_mm_srai_epi32(_mm_slli_epi32(v0, 16), 16),
							_mm_srai_epi32(_mm_slli_epi32(v1, 16), 16));
				hi[h] = _mm_packs_epi32(_mm_srai_epi32(v0, 16), _mm_srai_epi32(v1, 16));
			}
			__m128i a0, a3, b0, b3;
			split16(hi[0], &a0, &a3);
			split16(hi[1], &b0, &b3);
			_mm_storeu_si128((__m128i *)(void *)(p0 + i), _mm_packus_epi16(a0, b0));
			_mm_storeu_si128((__m128i *)(void *)(p3 + i), _mm_packus_epi16(a3, b3));
			_mm_storeu_si128((__m128i *)(void *)(p1 + i),
					 _mm_packus_epi16(_mm_and_si128(lo[0], ff), _mm_and_si128(lo[1], ff)));
			_mm_storeu_si128((__m128i *)(void *)(p2 + i),
					 _mm_packus_epi16(_mm_srli_epi16(lo[0], 8), _mm_srli_epi16(lo[1], 8)));
		}
#endif
		for (; i < m; i++) {
			uint32_t v = lcp_load_le32(raw + 4 * i);
			uint32_t r = (v & 0x7fffffu) | (v >> 31) << 23;
			p0[i] = (uint8_t)(v >> 23);
			p1[i] = (uint8_t)r;
			p2[i] = (uint8_t)(r >> 8);
			p3[i] = (uint8_t)(r >> 16);
		}
	} else {
		for (; i < m; i++) {
			uint64_t v = lcp_load_le64(raw + 8 * i);
			uint64_t r = (v & ((1ull << 55) - 1)) | (v >> 63) << 55;
			p0[i] = (uint8_t)(v >> 55);
			for (unsigned j = 1; j < 8; j++)
				planes[j * m + i] = (uint8_t)(r >> (8 * (j - 1)));
		}
	}
}

/* Elements [first, first + count) from their planes (pl[j] indexed by
 * element) into out: the inverse of split (SSE2: 16 elements of 2 or 4
 * bytes at a time, the same bits). */
static void merge(unsigned eb, const uint8_t *const pl[MAX_PLANES], uint64_t first, uint64_t count,
		  uint8_t *out)
{
	const uint8_t *p0 = pl[0] + first;
	uint64_t i = 0;
#ifdef __SSE2__
	const __m128i z = _mm_setzero_si128();
#endif
	if (eb == 2) {
		const uint8_t *p1 = pl[1] + first;
#ifdef __SSE2__
		for (; i + 16 <= count; i += 16) {
			__m128i a = _mm_loadu_si128((const __m128i *)(const void *)(p0 + i));
			__m128i b = _mm_loadu_si128((const __m128i *)(const void *)(p1 + i));
			_mm_storeu_si128((__m128i *)(void *)(out + 2 * i),
					 merge16(_mm_unpacklo_epi8(a, z), _mm_unpacklo_epi8(b, z)));
			_mm_storeu_si128((__m128i *)(void *)(out + 2 * i + 16),
					 merge16(_mm_unpackhi_epi8(a, z), _mm_unpackhi_epi8(b, z)));
		}
#endif
		for (; i < count; i++)
			lcp_store_le16(out + 2 * i, (uint16_t)((uint32_t)(p1[i] & 0x80u) << 8 |
							       (uint32_t)p0[i] << 7 | (p1[i] & 0x7fu)));
	} else if (eb == 4) {
		const uint8_t *p1 = pl[1] + first, *p2 = pl[2] + first, *p3 = pl[3] + first;
#ifdef __SSE2__
		for (; i + 16 <= count; i += 16) {
			__m128i a = _mm_loadu_si128((const __m128i *)(const void *)(p0 + i));
			__m128i b = _mm_loadu_si128((const __m128i *)(const void *)(p1 + i));
			__m128i c = _mm_loadu_si128((const __m128i *)(const void *)(p2 + i));
			__m128i d = _mm_loadu_si128((const __m128i *)(const void *)(p3 + i));
			__m128i lo0 = _mm_unpacklo_epi8(b, c), lo1 = _mm_unpackhi_epi8(b, c);
			__m128i hi0 = merge16(_mm_unpacklo_epi8(a, z), _mm_unpacklo_epi8(d, z));
			__m128i hi1 = merge16(_mm_unpackhi_epi8(a, z), _mm_unpackhi_epi8(d, z));
			uint8_t *o = out + 4 * i;
			_mm_storeu_si128((__m128i *)(void *)o, _mm_unpacklo_epi16(lo0, hi0));
			_mm_storeu_si128((__m128i *)(void *)(o + 16), _mm_unpackhi_epi16(lo0, hi0));
			_mm_storeu_si128((__m128i *)(void *)(o + 32), _mm_unpacklo_epi16(lo1, hi1));
			_mm_storeu_si128((__m128i *)(void *)(o + 48), _mm_unpackhi_epi16(lo1, hi1));
		}
#endif
		for (; i < count; i++)
			lcp_store_le32(out + 4 * i, (uint32_t)(p3[i] & 0x80u) << 24 | (uint32_t)p0[i] << 23 |
							    (uint32_t)(p3[i] & 0x7fu) << 16 |
							    (uint32_t)p2[i] << 8 | p1[i]);
	} else {
		for (; i < count; i++) {
			uint64_t r = 0;
			for (unsigned j = 7; j >= 1; j--)
				r = r << 8 | pl[j][first + i];
			lcp_store_le64(out + 8 * i, (r & ((1ull << 55) - 1)) | (uint64_t)p0[i] << 55 |
							    (r >> 55) << 63);
		}
	}
}

/* Whether the elements of eb bytes at a and b are equal. */
static inline unsigned elem_eq(unsigned eb, const uint8_t *a, const uint8_t *b)
{
	if (eb == 2)
		return lcp_load_le16(a) == lcp_load_le16(b);
	if (eb == 4)
		return lcp_load_le32(a) == lcp_load_le32(b);
	return lcp_load_le64(a) == lcp_load_le64(b);
}

/* Whether at least a quarter of the m elements equal their left or upper
 * neighbour (period apart, within the chunk). */
static bool repeats(unsigned eb, const uint8_t *raw, uint64_t m, uint64_t period)
{
	uint64_t same = 0;
	if (period <= 1 || period >= m)
		period = 1; /* the left neighbour twice */
	for (uint64_t i = period; i < m; i++)
		same += elem_eq(eb, raw + i * eb, raw + (i - 1) * eb) |
			elem_eq(eb, raw + i * eb, raw + (i - period) * eb);
	return 4 * same >= m;
}

uint64_t lcp_lossless_period(uint32_t ndims, const uint64_t *dims)
{
	for (uint32_t i = ndims; i-- > 0;)
		if (dims[i] > 1)
			return dims[i];
	return 1;
}

/* Elements the screen looks at, at most. */
#define SCREEN_SAMPLE 65536u
/* Its estimate may be this many times the limit and still pass: order-0
 * costs from a sample are rough. */
#define SCREEN_SLACK 2u

/* Element i as stored: in the part (elements [b, ...) at part) when
 * i >= b, else read into buf. */
static lcp_err elem_at(unsigned eb, const uint8_t *part, uint64_t b, uint64_t i,
		       lcp_tensor_read_fn read, void *arg, uint8_t buf[8], const uint8_t **e)
{
	if (i >= b) {
		*e = part + (i - b) * eb;
		return LCP_OK;
	}
	*e = buf;
	return read(arg, buf, eb, i * eb);
}

lcp_err lcp_lossless_screen_part(struct lcp_lossless_screen *s, unsigned eb, uint64_t n,
				 uint64_t period, const uint8_t *part, uint64_t b, uint64_t m,
				 lcp_tensor_read_fn read, void *arg)
{
	uint64_t step = n > SCREEN_SAMPLE ? n / SCREEN_SAMPLE : 1;
	uint8_t planes[MAX_PLANES];
	for (uint64_t i = (b + step - 1) / step * step; i < b + m && i < n; i += step) {
		uint8_t lbuf[8], ubuf[8];
		const uint8_t *e = part + (i - b) * eb, *left = NULL, *up = NULL;
		lcp_err err = i >= 1 ? elem_at(eb, part, b, i - 1, read, arg, lbuf, &left) : LCP_OK;
		if (!err && period > 1 && i >= period)
			err = elem_at(eb, part, b, i - period, read, arg, ubuf, &up);
		if (err)
			return err;
		split(eb, e, 1, planes);
		for (unsigned j = 0; j < eb; j++)
			s->hist[j][planes[j]]++;
		s->same += (left && elem_eq(eb, e, left)) || (up && elem_eq(eb, e, up));
		s->taken++;
	}
	return LCP_OK;
}

void lcp_lossless_screen_fold(struct lcp_lossless_screen *s, const struct lcp_lossless_screen *part,
			      unsigned eb)
{
	s->taken += part->taken;
	s->same += part->same;
	for (unsigned j = 0; j < eb; j++)
		for (unsigned v = 0; v < 256; v++)
			s->hist[j][v] += part->hist[j][v];
}

bool lcp_lossless_screen_may_pay(const struct lcp_lossless_screen *s, unsigned eb, uint64_t n,
				 uint64_t limit)
{
	if (n == 0 || 4 * s->same >= s->taken)
		return true;
	uint64_t bytes = 0;
	for (unsigned j = 0; j < eb; j++) {
		uint64_t c = lcp_stream_cost_bytes(s->hist[j]);
		bytes += c < s->taken ? c : s->taken;
	}
	/* scaled from the sample to the tensor */
	return (double)bytes * ((double)n / (double)s->taken) <= (double)SCREEN_SLACK * (double)limit;
}

size_t lcp_lossless_encode_scratch(unsigned eb, uint64_t m)
{
	return (size_t)(eb * m);
}

lcp_err lcp_lossless_encode_chunk(struct ZSTD_CCtx_s *zc, unsigned eb, const uint8_t *raw,
				  uint64_t m, uint64_t period, uint32_t block_elems, uint8_t *scratch,
				  struct lcp_buf *out)
{
	size_t at = out->len, raw_len = (size_t)(m * eb);
	lcp_err err = lcp_buf_append_u8(out, LOSSLESS_SPLIT);
	split(eb, raw, m, scratch);
	unsigned lanes = lcp_stream_lanes(m, block_elems);
	for (unsigned j = 0; !err && j < eb; j++)
		err = lcp_stream_put_plane(out, scratch + j * m, m, block_elems, lanes);
	if (err)
		return err;
	size_t best = out->len - at;
	if (repeats(eb, raw, m, period)) {
		for (unsigned b = 0; b < eb; b++)
			for (uint64_t i = 0; i < m; i++)
				scratch[b * m + i] = raw[i * eb + b];
		size_t bound = ZSTD_compressBound(raw_len);
		err = lcp_buf_reserve(out, bound);
		if (err)
			return err;
		size_t z = ZSTD_compress2(zc, out->data + out->len, bound, scratch, raw_len);
		if (!ZSTD_isError(z) && 1 + z < best) {
			memmove(out->data + at + 1, out->data + out->len, z);
			out->data[at] = LOSSLESS_ZSTD_PLANES;
			out->len = at + 1 + z;
			best = 1 + z;
		}
	}
	if (best > 1 + raw_len) {
		out->len = at;
		err = lcp_buf_append_u8(out, LOSSLESS_RAW);
		if (!err)
			err = lcp_buf_append(out, raw, raw_len);
	}
	return err;
}

/* Plane buffers, then one rANS table per plane. */
static size_t planes_bytes(unsigned eb, uint64_t m)
{
	return ((size_t)(eb * m) + 63u) & ~(size_t)63u;
}

size_t lcp_lossless_decode_scratch(unsigned eb, uint64_t m)
{
	return planes_bytes(eb, m) + eb * sizeof(struct lcp_rans_dec);
}

lcp_err lcp_lossless_decode_split(const struct lcp_kernels *k, unsigned eb, const uint8_t *src,
				  size_t len, uint64_t m, uint32_t block_elems, uint64_t first,
				  uint64_t count, uint8_t *out, uint8_t *scratch,
				  const uint8_t *readable_end)
{
	struct lcp_rans_dec *tables = (struct lcp_rans_dec *)(void *)(scratch + planes_bytes(eb, m));
	const uint8_t *pl[MAX_PLANES] = {0};
	const uint8_t *p = src, *end = src + len;
	for (unsigned j = 0; j < eb; j++) {
		uint8_t *buf = scratch + j * m;
		struct lcp_plane plane;
		lcp_err err = lcp_stream_parse_plane(&p, end, m, block_elems, &tables[j], &plane);
		if (!err && plane.mode == PLANE_RANS)
			err = lcp_stream_decode_range(k, &plane.rs, m, first, count, buf, readable_end,
						      NULL);
		if (err)
			return err;
		if (plane.mode == PLANE_CONSTANT)
			memset(buf + first, plane.value, (size_t)count);
		pl[j] = plane.mode == PLANE_RAW ? plane.raw : buf;
	}
	if (p != end)
		return LCP_ERR_FORMAT;
	merge(eb, pl, first, count, out);
	return LCP_OK;
}
