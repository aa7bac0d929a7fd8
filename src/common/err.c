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
