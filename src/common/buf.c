/* SPDX-License-Identifier: Apache-2.0 */
/* Growable byte buffer; see buf.h. */
#include "common/buf.h"

#include <stdint.h>
#include <string.h>

#include "common/alloc.h"
#include "common/le.h"

lcp_err lcp_buf_reserve(struct lcp_buf *b, size_t extra)
{
	if (extra <= b->cap - b->len)
		return LCP_OK;
	if (extra > SIZE_MAX / 2 - b->len)
		return LCP_ERR_NOMEM;
	size_t cap = b->cap ? b->cap : 64;
	while (cap - b->len < extra)
		cap *= 2;
	uint8_t *p = lcp_realloc(b->data, cap);
	if (!p)
		return LCP_ERR_NOMEM;
	b->data = p;
	b->cap = cap;
	return LCP_OK;
}

lcp_err lcp_buf_append(struct lcp_buf *b, const void *data, size_t len)
{
	lcp_err err = lcp_buf_reserve(b, len);
	if (err)
		return err;
	if (len)
		memcpy(b->data + b->len, data, len);
	b->len += len;
	return LCP_OK;
}

lcp_err lcp_buf_append_u8(struct lcp_buf *b, uint8_t v)
{
	return lcp_buf_append(b, &v, 1);
}

lcp_err lcp_buf_append_le16(struct lcp_buf *b, uint16_t v)
{
	uint8_t p[2];
	lcp_store_le16(p, v);
	return lcp_buf_append(b, p, sizeof p);
}

lcp_err lcp_buf_append_le32(struct lcp_buf *b, uint32_t v)
{
	uint8_t p[4];
	lcp_store_le32(p, v);
	return lcp_buf_append(b, p, sizeof p);
}

lcp_err lcp_buf_append_le64(struct lcp_buf *b, uint64_t v)
{
	uint8_t p[8];
	lcp_store_le64(p, v);
	return lcp_buf_append(b, p, sizeof p);
}

lcp_err lcp_buf_append_lef32(struct lcp_buf *b, float v)
{
	uint8_t p[4];
	lcp_store_lef32(p, v);
	return lcp_buf_append(b, p, sizeof p);
}

lcp_err lcp_buf_append_lef64(struct lcp_buf *b, double v)
{
	uint8_t p[8];
	lcp_store_lef64(p, v);
	return lcp_buf_append(b, p, sizeof p);
}

void lcp_buf_free(struct lcp_buf *b)
{
	lcp_free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}
