/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The one mapping between errno values and lcp_err codes. The store turns
 * the errno of a failed system call into an lcp_err at the call site
 * (lcp_err_from_errno(errno), right after the call), and the FUSE daemon
 * turns an lcp_err back into the errno of its reply. Codes with an errno of
 * their own round-trip exactly (ENOTEMPTY -> LCP_ERR_NOTEMPTY -> ENOTEMPTY);
 * the rest fold into the nearest code. Pure functions, thread-safe.
 */
#ifndef LCPFS_COMMON_ERR_ERRNO_H
#define LCPFS_COMMON_ERR_ERRNO_H

#include "lcpfs/err.h"

/* lcp_err for a system call's errno. ENOSPC and EDQUOT give LCP_ERR_NOSPC
 * (callers keep the raw file on a full disk), ENFILE and EMFILE
 * LCP_ERR_MFILE, EWOULDBLOCK LCP_ERR_AGAIN, EOPNOTSUPP LCP_ERR_UNSUPPORTED;
 * errno values with no code of their own give LCP_ERR_IO; 0 gives LCP_OK. */
lcp_err lcp_err_from_errno(int e);

/* errno for an lcp_err: 0 for LCP_OK; damaged or unreadable stored bytes
 * (LCP_ERR_IO, CHECKSUM, FORMAT, VERSION, TRUNCATED) and unknown codes give
 * EIO; LCP_ERR_QUALITY and LCP_ERR_RANGE give EINVAL; LCP_ERR_NOPROVIDER
 * gives EOPNOTSUPP. */
int lcp_err_to_errno(lcp_err err);

#endif
