/* SPDX-License-Identifier: Apache-2.0 */
/* Helpers shared by the store's files: names, whole reads and writes, ids. */
#ifndef LCPFS_STORE_PRIV_H
#define LCPFS_STORE_PRIV_H

#include <stddef.h>
#include <stdint.h>

#include "common/io.h"
#include "lcpfs/err.h"
#include "store/sidecar.h"

/* Longest name a committed file may have: its sidecar ".NAME.lcpfs" must fit
 * in NAME_MAX (255). */
#define LCP_STORE_NAME_MAX 248
/* Temporaries are ".lcpfs-tmp." + 16 hex digits + "." + a tag letter. */
#define LCP_TEMP_PREFIX ".lcpfs-tmp."
#define LCP_SIDECAR_SUFFIX ".lcpfs"

/* ".NAME.lcpfs" into out (at least 256 bytes); LCP_ERR_RANGE when NAME is
 * longer than LCP_STORE_NAME_MAX. */
lcp_err lcp_store_sidecar_name(const char *name, char *out, size_t out_len);
/* A fresh temporary name with the given tag into out (at least 32 bytes). */
lcp_err lcp_store_temp_name(char tag, char *out, size_t out_len);
/* 16 random bytes. */
lcp_err lcp_store_random_id(uint8_t id[LCP_FILE_ID_LEN]);
/* Reads and parses sidecar file `scname` in dirfd. LCP_ERR_NOENT when absent.
 * *sc_len receives its size. */
lcp_err lcp_store_load_sidecar(int dirfd, const char *scname, struct lcp_sidecar *sc,
			       uint64_t *sc_len);
/* Reads the payload header of open fd; true with the id when it is ours. */
bool lcp_store_payload_id(int fd, uint8_t id[LCP_FILE_ID_LEN]);

#endif
