/* SPDX-License-Identifier: Apache-2.0 */
/* Descriptions for lcp_err codes. The tables are indexed by the pinned values. */
#include "lcpfs/err.h"

static const char *const messages[LCP_ERR__COUNT] = {
	[LCP_OK] = "success",
	[LCP_ERR_NOMEM] = "out of memory",
	[LCP_ERR_INVAL] = "invalid argument",
	[LCP_ERR_IO] = "input/output error",
	[LCP_ERR_TRUNCATED] = "input is truncated",
	[LCP_ERR_FORMAT] = "malformed input",
	[LCP_ERR_VERSION] = "unsupported format version",
	[LCP_ERR_CHECKSUM] = "checksum mismatch",
	[LCP_ERR_UNSUPPORTED] = "unsupported input",
	[LCP_ERR_QUALITY] = "quality threshold not met",
	[LCP_ERR_NOSPC] = "no space left on device",
	[LCP_ERR_RANGE] = "value out of range",
	[LCP_ERR_NOPROVIDER] = "no compression provider",
	[LCP_ERR_NOENT] = "no such file",
	[LCP_ERR_EXIST] = "file exists",
	[LCP_ERR_ACCES] = "permission denied",
	[LCP_ERR_NOTEMPTY] = "directory not empty",
	[LCP_ERR_ISDIR] = "is a directory",
	[LCP_ERR_NOTDIR] = "not a directory",
	[LCP_ERR_XDEV] = "cross-device link",
	[LCP_ERR_PERM] = "operation not permitted",
	[LCP_ERR_NAMETOOLONG] = "file name too long",
	[LCP_ERR_MLINK] = "too many links",
	[LCP_ERR_BUSY] = "resource busy",
	[LCP_ERR_AGAIN] = "cannot tell now, try again",
	[LCP_ERR_ROFS] = "read-only file system",
	[LCP_ERR_LOOP] = "too many levels of symbolic links",
	[LCP_ERR_FBIG] = "file too large",
	[LCP_ERR_TXTBSY] = "text file busy",
	[LCP_ERR_MFILE] = "too many open files",
	[LCP_ERR_OVERFLOW] = "value too large for its type",
};

static const char *const names[LCP_ERR__COUNT] = {
	[LCP_OK] = "LCP_OK",
	[LCP_ERR_NOMEM] = "LCP_ERR_NOMEM",
	[LCP_ERR_INVAL] = "LCP_ERR_INVAL",
	[LCP_ERR_IO] = "LCP_ERR_IO",
	[LCP_ERR_TRUNCATED] = "LCP_ERR_TRUNCATED",
	[LCP_ERR_FORMAT] = "LCP_ERR_FORMAT",
	[LCP_ERR_VERSION] = "LCP_ERR_VERSION",
	[LCP_ERR_CHECKSUM] = "LCP_ERR_CHECKSUM",
	[LCP_ERR_UNSUPPORTED] = "LCP_ERR_UNSUPPORTED",
	[LCP_ERR_QUALITY] = "LCP_ERR_QUALITY",
	[LCP_ERR_NOSPC] = "LCP_ERR_NOSPC",
	[LCP_ERR_RANGE] = "LCP_ERR_RANGE",
	[LCP_ERR_NOPROVIDER] = "LCP_ERR_NOPROVIDER",
	[LCP_ERR_NOENT] = "LCP_ERR_NOENT",
	[LCP_ERR_EXIST] = "LCP_ERR_EXIST",
	[LCP_ERR_ACCES] = "LCP_ERR_ACCES",
	[LCP_ERR_NOTEMPTY] = "LCP_ERR_NOTEMPTY",
	[LCP_ERR_ISDIR] = "LCP_ERR_ISDIR",
	[LCP_ERR_NOTDIR] = "LCP_ERR_NOTDIR",
	[LCP_ERR_XDEV] = "LCP_ERR_XDEV",
	[LCP_ERR_PERM] = "LCP_ERR_PERM",
	[LCP_ERR_NAMETOOLONG] = "LCP_ERR_NAMETOOLONG",
	[LCP_ERR_MLINK] = "LCP_ERR_MLINK",
	[LCP_ERR_BUSY] = "LCP_ERR_BUSY",
	[LCP_ERR_AGAIN] = "LCP_ERR_AGAIN",
	[LCP_ERR_ROFS] = "LCP_ERR_ROFS",
	[LCP_ERR_LOOP] = "LCP_ERR_LOOP",
	[LCP_ERR_FBIG] = "LCP_ERR_FBIG",
	[LCP_ERR_TXTBSY] = "LCP_ERR_TXTBSY",
	[LCP_ERR_MFILE] = "LCP_ERR_MFILE",
	[LCP_ERR_OVERFLOW] = "LCP_ERR_OVERFLOW",
};

const char *lcp_strerror(lcp_err err)
{
	if ((unsigned)err >= LCP_ERR__COUNT)
		return "unknown error";
	return messages[err];
}

const char *lcp_err_name(lcp_err err)
{
	if ((unsigned)err >= LCP_ERR__COUNT)
		return "LCP_ERR_UNKNOWN";
	return names[err];
}
