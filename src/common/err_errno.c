/* SPDX-License-Identifier: Apache-2.0 */
/* errno <-> lcp_err, in one table; see err_errno.h. */
#include "common/err_errno.h"

#include <errno.h>

/* Codes that stand for exactly one errno, both ways. */
static const struct {
	lcp_err err;
	int e;
} exact[] = {
	{LCP_ERR_NOMEM, ENOMEM},      {LCP_ERR_INVAL, EINVAL},       {LCP_ERR_IO, EIO},
	{LCP_ERR_UNSUPPORTED, EOPNOTSUPP}, {LCP_ERR_NOSPC, ENOSPC},  {LCP_ERR_NOENT, ENOENT},
	{LCP_ERR_EXIST, EEXIST},      {LCP_ERR_ACCES, EACCES},       {LCP_ERR_NOTEMPTY, ENOTEMPTY},
	{LCP_ERR_ISDIR, EISDIR},      {LCP_ERR_NOTDIR, ENOTDIR},     {LCP_ERR_XDEV, EXDEV},
	{LCP_ERR_PERM, EPERM},        {LCP_ERR_NAMETOOLONG, ENAMETOOLONG},
	{LCP_ERR_MLINK, EMLINK},      {LCP_ERR_BUSY, EBUSY},         {LCP_ERR_AGAIN, EAGAIN},
	{LCP_ERR_ROFS, EROFS},        {LCP_ERR_LOOP, ELOOP},         {LCP_ERR_FBIG, EFBIG},
	{LCP_ERR_TXTBSY, ETXTBSY},    {LCP_ERR_MFILE, EMFILE},       {LCP_ERR_OVERFLOW, EOVERFLOW},
};

lcp_err lcp_err_from_errno(int e)
{
	switch (e) {
	case 0:
		return LCP_OK;
	case EDQUOT:
		return LCP_ERR_NOSPC;
	case ENFILE:
		return LCP_ERR_MFILE;
	case ENOTSUP:
#if ENOTSUP != EOPNOTSUPP
	case EOPNOTSUPP:
#endif
		return LCP_ERR_UNSUPPORTED;
#if EWOULDBLOCK != EAGAIN
	case EWOULDBLOCK:
		return LCP_ERR_AGAIN;
#endif
	default:
		break;
	}
	for (unsigned i = 0; i < sizeof exact / sizeof exact[0]; i++)
		if (exact[i].e == e)
			return exact[i].err;
	return LCP_ERR_IO;
}

int lcp_err_to_errno(lcp_err err)
{
	if (err == LCP_OK)
		return 0;
	if (err == LCP_ERR_QUALITY || err == LCP_ERR_RANGE)
		return EINVAL;
	if (err == LCP_ERR_NOPROVIDER)
		return EOPNOTSUPP;
	for (unsigned i = 0; i < sizeof exact / sizeof exact[0]; i++)
		if (exact[i].err == err)
			return exact[i].e;
	return EIO;
}
