/* SPDX-License-Identifier: Apache-2.0 */
/* Whole-buffer pread and write loops, hole-aware reads and writes; see
 * io.h. */
#include "common/io.h"

#include "common/err_errno.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

/* write(2) (off < 0) or pwrite(2) at off of all len bytes. */
static lcp_err write_loop(int fd, const uint8_t *b, size_t len, int64_t off)
{
	while (len) {
		ssize_t n = off < 0 ? write(fd, b, len) : pwrite(fd, b, len, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return lcp_err_from_errno(errno);
		}
		b += n;
		len -= (size_t)n;
		if (off >= 0)
			off += n;
	}
	return LCP_OK;
}

lcp_err lcp_write_all(int fd, const void *p, size_t len)
{
	return write_loop(fd, p, len, -1);
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

lcp_err lcp_pwrite_all(int fd, const void *p, size_t len, uint64_t off)
{
	return write_loop(fd, p, len, (int64_t)off);
}

lcp_err lcp_pread_holes(int fd, void *p, size_t len, uint64_t off)
{
	uint8_t *b = p;
	uint64_t end = off + len;
	while (off < end) {
		off_t data = lseek(fd, (off_t)off, SEEK_DATA);
		if (data < 0 && errno == ENXIO)
			data = (off_t)end; /* no data from here to the end of the file */
		else if (data < 0) /* no hole reporting here: read it all */
			return lcp_pread_all(fd, b + (len - (end - off)), (size_t)(end - off), off);
		if ((uint64_t)data > off) {
			uint64_t hole_end = (uint64_t)data < end ? (uint64_t)data : end;
			memset(b + (len - (end - off)), 0, (size_t)(hole_end - off));
			off = hole_end;
			continue;
		}
		off_t hole = lseek(fd, (off_t)off, SEEK_HOLE);
		uint64_t upto = hole < 0 || (uint64_t)hole > end ? end : (uint64_t)hole;
		if (upto <= off)
			upto = end;
		lcp_err err = lcp_pread_all(fd, b + (len - (end - off)), (size_t)(upto - off), off);
		if (err)
			return err;
		off = upto;
	}
	return LCP_OK;
}

bool lcp_bytes_zero(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint64_t acc = 0;
	size_t i = 0;
	/* 256 bytes at a time, stopping at the first that are not all zero:
	 * a chunk of weights is asked about on every encode and almost never
	 * is (a whole-buffer pass was 3% of lcpfs pack's CPU). */
	for (; i + 256 <= n && acc == 0; i += 256)
		for (size_t j = 0; j < 256; j += 8) {
			uint64_t w;
			memcpy(&w, b + i + j, sizeof w);
			acc |= w;
		}
	for (; i + 8 <= n && acc == 0; i += 8) {
		uint64_t w;
		memcpy(&w, b + i, sizeof w);
		acc |= w;
	}
	if (acc)
		return false;
	for (; i < n; i++)
		acc |= b[i];
	return acc == 0;
}

lcp_err lcp_pwrite_sparse(int fd, const void *p, size_t len, uint64_t off)
{
	const uint8_t *b = p;
	uint64_t end = off + len;
	uint64_t run = off; /* start of the bytes still to write */
	/* Whole aligned blocks inside [off, end) that are all zero are skipped;
	 * everything else is written in runs. */
	uint64_t blk = (off + LCP_HOLE_BLOCK - 1) / LCP_HOLE_BLOCK * LCP_HOLE_BLOCK;
	for (; blk + LCP_HOLE_BLOCK <= end; blk += LCP_HOLE_BLOCK) {
		if (!lcp_bytes_zero(b + (blk - off), LCP_HOLE_BLOCK))
			continue;
		if (blk > run) {
			lcp_err err = lcp_pwrite_all(fd, b + (run - off), (size_t)(blk - run), run);
			if (err)
				return err;
		}
		run = blk + LCP_HOLE_BLOCK;
	}
	return run < end ? lcp_pwrite_all(fd, b + (run - off), (size_t)(end - run), run) : LCP_OK;
}
