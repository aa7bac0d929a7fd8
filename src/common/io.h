/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Whole-buffer file I/O: pread and write loops that retry short transfers
 * and EINTR, shared by the format readers and the store.
 */
#ifndef LCPFS_COMMON_IO_H
#define LCPFS_COMMON_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lcpfs/err.h"

/* pread(2) all len bytes at off; end of file first gives LCP_ERR_TRUNCATED,
 * a failure the lcp_err of its errno (LCP_ERR_IO for EIO). */
lcp_err lcp_pread_all(int fd, void *buf, size_t len, uint64_t off);

/* write(2) all len bytes; a failure gives the lcp_err of its errno (ENOSPC
 * and EDQUOT: LCP_ERR_NOSPC, on which callers keep the raw file). */
lcp_err lcp_write_all(int fd, const void *buf, size_t len);

/* pwrite(2) all len bytes at off; errors as lcp_write_all. */
lcp_err lcp_pwrite_all(int fd, const void *buf, size_t len, uint64_t off);

/* lcp_pread_all, except that the file's holes (lseek SEEK_DATA/SEEK_HOLE)
 * are filled with zeros instead of being read; on a filesystem without
 * hole reporting every byte is read. Thread-safe for one fd (the file
 * offset is never relied on). */
lcp_err lcp_pread_holes(int fd, void *buf, size_t len, uint64_t off);

/* True when all n bytes at p are zero. */
bool lcp_bytes_zero(const void *p, size_t n);

/* Bytes of the aligned blocks lcp_pwrite_sparse leaves as holes. */
#define LCP_HOLE_BLOCK 4096u

/* pwrite(2) of len bytes at off, except that every LCP_HOLE_BLOCK-aligned
 * block of the file that the buffer covers entirely with zero bytes is not
 * written: in a file that had nothing there it stays a hole (reads as
 * zeros). The caller sets the final size with ftruncate, so a trailing
 * hole counts too. Errors as lcp_write_all. */
lcp_err lcp_pwrite_sparse(int fd, const void *buf, size_t len, uint64_t off);

#endif
