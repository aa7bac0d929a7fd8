/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The container format in memory: the payload header and the sidecar, with
 * their serializers and bounds-checked parsers. man/lcpfs.5 documents every
 * byte; this header and sidecar.c are the reference for it.
 */
#ifndef LCPFS_STORE_SIDECAR_H
#define LCPFS_STORE_SIDECAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "lcpfs/codec.h"
#include "lcpfs/config.h"
#include "lcpfs/err.h"
#include "lcpfs/format.h"

#define LCP_FILE_ID_LEN 16
#define LCP_PAYLOAD_HEADER_LEN 32
#define LCP_PAYLOAD_MAGIC "lcpfsPL\x1a"
#define LCP_SIDECAR_MAGIC "lcpfsSC\x1a"
#define LCP_CONTAINER_VERSION 1
/* Largest reconstructed chunk a sidecar may declare: reads allocate one
 * chunk at a time, so a damaged table must not ask for more. The codec
 * targets 256 KiB chunks; exact regions use LCP_EXACT_CHUNK_BYTES. */
#define LCP_MAX_CHUNK_OUT_BYTES (64u << 20)
/* Sidecars larger than this are refused before being read whole. */
#define LCP_MAX_SIDECAR_BYTES (1ull << 30)
/* Exact regions are stored in chunks of this many bytes. */
#define LCP_EXACT_CHUNK_BYTES (256u * 1024u)
/* Bytes of one chunk-table record in the sidecar. */
#define LCP_SC_CHUNK_RECORD_BYTES 48
/* First byte of a stored exact chunk. */
#define LCP_EXACT_MODE_RAW 0
#define LCP_EXACT_MODE_ZSTD 1

/* One chunk: [begin, end) in elements (TENSOR) or bytes (EXACT) of its region. */
struct lcp_sc_chunk {
	uint64_t begin;
	uint64_t end;
	uint64_t payload_off;  /* offset of its stored bytes in the payload file */
	uint64_t stored_len;
	uint64_t stored_xxh3;  /* of the stored bytes */
	uint64_t output_xxh3;  /* of the reconstructed bytes */
};

struct lcp_sc_region {
	enum lcp_region_kind kind;
	uint64_t off;          /* logical file offset */
	uint64_t len;
	char *name;            /* owned or NULL */
	char dtype_name[16];   /* NUL-terminated, at most 15 bytes */
	char *exact_reason;    /* owned or NULL */
	uint8_t dtype;         /* enum lcp_dtype for TENSOR; 0xff when none */
	uint32_t ndims;
	uint64_t dims[LCP_MAX_DIMS];
	/* TENSOR */
	uint8_t encoding;      /* enum lcp_encoding */
	uint8_t bits;
	bool symmetric;
	uint16_t rank;
	uint32_t group_size;
	double cosine;
	double sqnr_db;
	uint64_t stored_bytes; /* codec's stored_bytes (params + chunk data) */
	uint8_t *params;       /* owned */
	uint32_t params_len;
	uint8_t *qlor;         /* owned serialized QLOR block */
	uint32_t qlor_len;
	/* CRC32 */
	uint32_t crc_of;
	uint32_t crc_value;
	/* EXACT and TENSOR */
	uint32_t nchunks;
	struct lcp_sc_chunk *chunks; /* owned */
};

struct lcp_sidecar {
	uint8_t file_id[LCP_FILE_ID_LEN];
	uint64_t payload_size;
	uint64_t payload_header_xxh3;
	uint64_t logical_size;
	uint64_t original_xxh3;
	enum lcp_format format;
	struct lcp_config config;
	uint32_t nregions;
	struct lcp_sc_region *regions; /* owned */
};

/* Writes the 32-byte payload header for file_id into out. */
void lcp_payload_header_build(const uint8_t file_id[LCP_FILE_ID_LEN],
			      uint8_t out[LCP_PAYLOAD_HEADER_LEN]);
/* True when hdr (LCP_PAYLOAD_HEADER_LEN bytes) has the payload magic and
 * version; copies the file id to file_id then. */
bool lcp_payload_header_check(const uint8_t *hdr, uint8_t file_id[LCP_FILE_ID_LEN]);

/* Serializes sc (appending to out), checksum included. */
lcp_err lcp_sidecar_serialize(const struct lcp_sidecar *sc, struct lcp_buf *out);
/*
 * Parses and validates a whole sidecar: magic, version, total length,
 * trailing checksum (LCP_ERR_CHECKSUM), then every field and count with
 * bounds checks (LCP_ERR_FORMAT / LCP_ERR_TRUNCATED): regions contiguous and
 * covering [0, logical_size), chunks contiguous and covering their region,
 * chunk bytes inside the payload, QLOR blocks parse to their stored length.
 * Never reads outside buf. On error *sc owns nothing.
 */
lcp_err lcp_sidecar_parse(const uint8_t *buf, size_t len, struct lcp_sidecar *sc);
void lcp_sidecar_free(struct lcp_sidecar *sc);

/* Elements of a tensor region's chunk range unit: bytes per element of a
 * TENSOR region, 1 for EXACT. */
unsigned lcp_sc_unit_bytes(const struct lcp_sc_region *r);

#endif
