/* SPDX-License-Identifier: Apache-2.0 */
/* Whole-buffer pread and write loops; see io.h. */
#include "common/io.h"

#include "common/err_errno.h"

#include <errno.h>
#include <unistd.h>

lcp_err lcp_write_all(int fd, const void *p, size_t len)
{
	const uint8_t *b = p;
	while (len) {
		ssize_t n = write(fd, b, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return lcp_err_from_errno(errno);
		}
		b += n;
		len -= (size_t)n;
	}
	return LCP_OK;
}

lcp_err lcp_pread_all(int fd, void *p, size_t len, uint64_t off)
{
	uint8_t *b = p;
	while (len) {
		ssize_t n = pread(fd, b, len, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return lcp_err_from_errno(errno);
		}
		if (n == 0)
			return LCP_ERR_TRUNCATED;
		b += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return LCP_OK;
}
