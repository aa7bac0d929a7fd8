/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Just enough of a pickle reader to learn, from a torch.save data.pkl, which
 * storages exist (persistent ids ('storage', torch.XStorage, key, location,
 * numel)) and which tensors are rebuilt from them (torch._utils.
 * _rebuild_tensor_v2(storage, offset, size, stride, ...)), with the dict key
 * each tensor is stored under. Nothing is ever imported or called: globals
 * are names, calls are recorded and produce opaque objects.
 */
#ifndef LCPFS_FORMAT_PICKLE_H
#define LCPFS_FORMAT_PICKLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lcpfs/codec.h"
#include "lcpfs/dtype.h"
#include "lcpfs/err.h"

struct pkl_storage {
	char *key;              /* the zip entry is <archive>/data/<key>; owned */
	char type_name[32];     /* "FloatStorage", ... */
	unsigned elem_bytes;    /* 0 when the storage type is not known */
	bool is_float;          /* F32, F16, BF16 or F64 */
	enum lcp_dtype dtype;   /* when is_float */
	uint64_t numel;         /* elements, from the persistent id */
	uint32_t uses;          /* tensors rebuilt from it */
	size_t tensor;          /* index of the last such tensor */
};

struct pkl_tensor {
	size_t storage;         /* index into storages */
	uint64_t offset;        /* storage offset, in elements */
	bool shape_ok;          /* sizes/strides were non-negative ints, <= LCP_MAX_DIMS */
	uint32_t ndims;
	uint64_t dims[LCP_MAX_DIMS];
	uint64_t strides[LCP_MAX_DIMS];
	char *name;             /* dict key it was stored under, or NULL; owned */
};

struct pkl_result {
	struct pkl_storage *storages;
	size_t nstorages;
	struct pkl_tensor *tensors;
	size_t ntensors;
};

/*
 * Runs the pickle in data[0, len). LCP_ERR_FORMAT with a message in why (at
 * most why_len bytes) when the pickle is malformed or uses an opcode outside
 * the protocol 2-5 binary subset torch writes; LCP_ERR_NOMEM on allocation
 * failure. On any error *out is empty. Memory is O(len).
 */
lcp_err pkl_scan(const uint8_t *data, size_t len, struct pkl_result *out, char *why, size_t why_len);
void pkl_result_free(struct pkl_result *r);

#endif
