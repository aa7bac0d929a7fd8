/* SPDX-License-Identifier: Apache-2.0 */
/* The one place where library errors become errno values for FUSE replies. */
#include <errno.h>

#include "fs/fs_priv.h"

int fs_errno_from_lcp(lcp_err err)
{
	switch (err) {
	case LCP_OK:
		return 0;
	case LCP_ERR_NOMEM:
		return ENOMEM;
	case LCP_ERR_INVAL:
	case LCP_ERR_RANGE:
		return EINVAL;
	case LCP_ERR_NOSPC:
		return ENOSPC;
	case LCP_ERR_NOENT:
		return ENOENT;
	case LCP_ERR_EXIST:
		return EEXIST;
	case LCP_ERR_ACCES:
		return EACCES;
	case LCP_ERR_UNSUPPORTED:
	case LCP_ERR_NOPROVIDER:
		return EOPNOTSUPP;
	/* Damaged or unreadable stored bytes, and everything else: the data
	 * cannot be produced. */
	case LCP_ERR_IO:
	case LCP_ERR_TRUNCATED:
	case LCP_ERR_FORMAT:
	case LCP_ERR_VERSION:
	case LCP_ERR_CHECKSUM:
	case LCP_ERR_QUALITY:
	case LCP_ERR__COUNT:
		break;
	}
	return EIO;
}
