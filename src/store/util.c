/* SPDX-License-Identifier: Apache-2.0 */
/* Store helpers: names, whole reads and writes, random ids (store_priv.h). */
#include "store/store_priv.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/alloc.h"
#include "lcpfs/store.h"

bool lcp_store_is_internal_name(const char *name)
{
	size_t n = strlen(name), s = strlen(LCP_SIDECAR_SUFFIX);
	if (strncmp(name, LCP_TEMP_PREFIX, strlen(LCP_TEMP_PREFIX)) == 0)
		return true;
	/* ".X.lcpfs" with a non-empty X */
	return n > s + 1 && name[0] == '.' && strcmp(name + n - s, LCP_SIDECAR_SUFFIX) == 0;
}

lcp_err lcp_store_sidecar_name(const char *name, char *out, size_t out_len)
{
	size_t n = strlen(name);
	if (n == 0 || n > LCP_STORE_NAME_MAX || n + 8 > out_len)
		return LCP_ERR_RANGE;
	snprintf(out, out_len, ".%s%s", name, LCP_SIDECAR_SUFFIX);
	return LCP_OK;
}

lcp_err lcp_store_random_id(uint8_t id[LCP_FILE_ID_LEN])
{
	size_t got = 0;
	while (got < LCP_FILE_ID_LEN) {
		ssize_t n = getrandom(id + got, LCP_FILE_ID_LEN - got, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return LCP_ERR_IO;
		}
		got += (size_t)n;
	}
	return LCP_OK;
}

lcp_err lcp_store_temp_name(char tag, char *out, size_t out_len)
{
	uint8_t r[8];
	size_t got = 0;
	while (got < sizeof r) {
		ssize_t n = getrandom(r + got, sizeof r - got, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return LCP_ERR_IO;
		}
		got += (size_t)n;
	}
	if (out_len < 32)
		return LCP_ERR_RANGE;
	int len = snprintf(out, out_len, "%s", LCP_TEMP_PREFIX);
	for (size_t i = 0; i < sizeof r; i++)
		len += snprintf(out + len, out_len - (size_t)len, "%02x", r[i]);
	snprintf(out + len, out_len - (size_t)len, ".%c", tag);
	return LCP_OK;
}

lcp_err lcp_store_load_sidecar(int dirfd, const char *scname, struct lcp_sidecar *sc,
			       uint64_t *sc_len)
{
	struct stat st;
	uint8_t *buf;
	lcp_err err;
	int fd = openat(dirfd, scname, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	memset(sc, 0, sizeof *sc);
	if (fd < 0)
		return errno == ENOENT ? LCP_ERR_NOENT : LCP_ERR_IO;
	if (fstat(fd, &st) != 0) {
		close(fd);
		return LCP_ERR_IO;
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > LCP_MAX_SIDECAR_BYTES) {
		close(fd);
		return LCP_ERR_FORMAT;
	}
	buf = lcp_malloc((size_t)st.st_size + 1);
	if (!buf) {
		close(fd);
		return LCP_ERR_NOMEM;
	}
	err = lcp_pread_all(fd, buf, (size_t)st.st_size, 0);
	close(fd);
	if (err == LCP_OK)
		err = lcp_sidecar_parse(buf, (size_t)st.st_size, sc);
	lcp_free(buf);
	if (err == LCP_OK && sc_len)
		*sc_len = (uint64_t)st.st_size;
	return err;
}

bool lcp_store_payload_id(int fd, uint8_t id[LCP_FILE_ID_LEN])
{
	uint8_t h[LCP_PAYLOAD_HEADER_LEN];
	if (lcp_pread_all(fd, h, sizeof h, 0) != LCP_OK)
		return false;
	return lcp_payload_header_check(h, id);
}
