/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Whole-buffer file I/O: pread and write loops that retry short transfers
 * and EINTR, shared by the format readers and the store.
 */
#ifndef LCPFS_COMMON_IO_H
#define LCPFS_COMMON_IO_H

#include <stddef.h>
#include <stdint.h>

#include "lcpfs/err.h"

/* pread(2) all len bytes at off; end of file first gives LCP_ERR_TRUNCATED,
 * a failure the lcp_err of its errno (LCP_ERR_IO for EIO). */
lcp_err lcp_pread_all(int fd, void *buf, size_t len, uint64_t off);

/* write(2) all len bytes; a failure gives the lcp_err of its errno (ENOSPC
 * and EDQUOT: LCP_ERR_NOSPC, on which callers keep the raw file). */
lcp_err lcp_write_all(int fd, const void *buf, size_t len);

#endif
