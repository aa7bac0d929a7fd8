/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Growable byte buffer used by serializers. Appends either succeed or leave
 * the buffer unchanged and return LCP_ERR_NOMEM. Owns its memory.
 */
#ifndef LCPFS_COMMON_BUF_H
#define LCPFS_COMMON_BUF_H

#include <stddef.h>
#include <stdint.h>

#include "lcpfs/err.h"

struct lcp_buf {
	uint8_t *data;
	size_t len;
	size_t cap;
};

#define LCP_BUF_INIT {NULL, 0, 0}

lcp_err lcp_buf_reserve(struct lcp_buf *b, size_t extra);
lcp_err lcp_buf_append(struct lcp_buf *b, const void *data, size_t len);
lcp_err lcp_buf_append_u8(struct lcp_buf *b, uint8_t v);
lcp_err lcp_buf_append_le16(struct lcp_buf *b, uint16_t v);
lcp_err lcp_buf_append_le32(struct lcp_buf *b, uint32_t v);
lcp_err lcp_buf_append_le64(struct lcp_buf *b, uint64_t v);
lcp_err lcp_buf_append_lef32(struct lcp_buf *b, float v);
lcp_err lcp_buf_append_lef64(struct lcp_buf *b, double v);
void lcp_buf_free(struct lcp_buf *b); /* releases memory, resets to empty */

#endif
