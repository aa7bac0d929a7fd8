/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Little-endian load/store helpers for on-disk formats. Every on-disk field
 * goes through these, never through a struct cast, so layout does not depend
 * on the compiler or the host byte order.
 */
#ifndef LCPFS_COMMON_LE_H
#define LCPFS_COMMON_LE_H

#include <stdint.h>
#include <string.h>

static inline uint16_t lcp_load_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (uint16_t)p[1] << 8);
}

static inline uint32_t lcp_load_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t lcp_load_le64(const uint8_t *p)
{
	return (uint64_t)lcp_load_le32(p) | (uint64_t)lcp_load_le32(p + 4) << 32;
}

static inline float lcp_load_lef32(const uint8_t *p)
{
	uint32_t u = lcp_load_le32(p);
	float f;
	memcpy(&f, &u, sizeof f);
	return f;
}

static inline double lcp_load_lef64(const uint8_t *p)
{
	uint64_t u = lcp_load_le64(p);
	double d;
	memcpy(&d, &u, sizeof d);
	return d;
}

static inline void lcp_store_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static inline void lcp_store_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static inline void lcp_store_le64(uint8_t *p, uint64_t v)
{
	lcp_store_le32(p, (uint32_t)v);
	lcp_store_le32(p + 4, (uint32_t)(v >> 32));
}

static inline void lcp_store_lef32(uint8_t *p, float f)
{
	uint32_t u;
	memcpy(&u, &f, sizeof u);
	lcp_store_le32(p, u);
}

static inline void lcp_store_lef64(uint8_t *p, double d)
{
	uint64_t u;
	memcpy(&u, &d, sizeof u);
	lcp_store_le64(p, u);
}

/*
 * Bounds-checked cursor over an input buffer. Every take_* returns false
 * (and leaves the cursor unchanged) when fewer bytes remain than requested,
 * so a parser written with it cannot read out of bounds.
 */
struct lcp_cursor {
	const uint8_t *buf;
	size_t len;
	size_t pos;
};

static inline int lcp_cursor_has(const struct lcp_cursor *c, size_t n)
{
	return c->pos <= c->len && n <= c->len - c->pos;
}

static inline int lcp_cursor_take(struct lcp_cursor *c, const uint8_t **p, size_t n)
{
	if (!lcp_cursor_has(c, n))
		return 0;
	*p = c->buf + c->pos;
	c->pos += n;
	return 1;
}

static inline int lcp_cursor_u8(struct lcp_cursor *c, uint8_t *v)
{
	const uint8_t *p;
	if (!lcp_cursor_take(c, &p, 1))
		return 0;
	*v = p[0];
	return 1;
}

static inline int lcp_cursor_u16(struct lcp_cursor *c, uint16_t *v)
{
	const uint8_t *p;
	if (!lcp_cursor_take(c, &p, 2))
		return 0;
	*v = lcp_load_le16(p);
	return 1;
}

static inline int lcp_cursor_u32(struct lcp_cursor *c, uint32_t *v)
{
	const uint8_t *p;
	if (!lcp_cursor_take(c, &p, 4))
		return 0;
	*v = lcp_load_le32(p);
	return 1;
}

static inline int lcp_cursor_u64(struct lcp_cursor *c, uint64_t *v)
{
	const uint8_t *p;
	if (!lcp_cursor_take(c, &p, 8))
		return 0;
	*v = lcp_load_le64(p);
	return 1;
}

#endif
