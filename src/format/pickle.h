/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Just enough of a pickle reader to learn, from a torch.save data.pkl, which
 * storages exist (persistent ids ('storage', torch.XStorage, key, location,
 * numel)) and which tensors are rebuilt from them (torch._utils.
 * _rebuild_tensor_v2(storage, offset, size, stride, ...)), with the dict key
 * each tensor is stored under. Nothing is ever imported or called: globals
 * are names, calls are recorded and produce opaque values.
 *
 * Like torch.load(weights_only=True), the reference reader, it refuses a
 * pickle naming a global outside torch's own rebuild functions, storage,
 * tensor and dtype classes and collections.OrderedDict, a call of anything
 * but such a global, NEWOBJ of anything but torch.nn.Parameter, APPEND to a
 * non-list, BUILD of anything but a tensor, parameter or dict, and every
 * opcode that unpickler does not read (protocol 2's binary subset: no
 * FRAME, MEMOIZE, STACK_GLOBAL, DUP, POP, DICT, LIST...).
 *
 * Work is linear in the pickle's length (every opcode costs O(1) amortized)
 * and memory is bounded by PKL_MAX_STORAGES and the working-memory budget
 * below, which grows with the storages and tensors found.
 */
#ifndef LCPFS_FORMAT_PICKLE_H
#define LCPFS_FORMAT_PICKLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lcpfs/codec.h"
#include "lcpfs/dtype.h"
#include "lcpfs/err.h"

/* Largest pickle scanned: it is held in memory, and values keep offsets
 * into it in 28 bits. */
#define PKL_MAX_BYTES (1u << 28)
/* Storages one pickle may declare: torch files hold at most tens of
 * thousands; this admits a million while bounding the records we keep. */
#define PKL_MAX_STORAGES (1u << 20)
/* Working memory (stack, marks, memo, kept tuple items) a pickle may use:
 * a base for any pickle plus an allowance per storage and per tensor found
 * so far (torch.save needs about 200 bytes per tensor), never more than the
 * hard cap. Past it the pickle is refused. */
#define PKL_WORK_BASE_BYTES (16u << 20)
#define PKL_WORK_BYTES_PER_OBJECT 1024u
#define PKL_MAX_WORK_BYTES (1u << 30)
/* Longest storage key and dict key kept (torch writes short decimal keys). */
#define PKL_MAX_KEY 1024

struct pkl_storage {
	const uint8_t *key;      /* zip entry is <archive>/data/<key>; points into the pickle */
	uint32_t key_len;
	const uint8_t *type_name; /* class name ("FloatStorage"); points into the pickle */
	uint32_t type_len;
	unsigned elem_bytes;     /* 0 when the storage type is not known */
	bool is_float;           /* F32, F16, BF16 or F64 */
	enum lcp_dtype dtype;    /* when is_float */
	uint64_t numel;          /* elements, from the persistent id */
	uint32_t uses;           /* tensors rebuilt from it (saturates at 2) */
	/* The first tensor rebuilt from it; meaningful when uses >= 1. */
	bool shape_ok;           /* sizes/strides were non-negative ints, <= LCP_MAX_DIMS */
	bool whole;              /* offset 0, contiguous, exactly numel elements */
	uint32_t ndims;
	uint32_t dims_at;        /* its dims are pkl_result.dims[dims_at .. + ndims] */
	const uint8_t *name;     /* dict key it was stored under, or NULL; into the pickle */
	uint32_t name_len;
};

struct pkl_result {
	struct pkl_storage *storages; /* owned */
	size_t nstorages;
	uint64_t *dims;               /* owned pool of tensor dims */
	size_t ndims;
	size_t ntensors;              /* _rebuild_tensor_v2 calls */
};

/*
 * Runs the pickle in data[0, len). The result points into data, which must
 * outlive it. LCP_ERR_FORMAT with a message in why (at most why_len bytes)
 * when the pickle is malformed, uses an opcode outside the binary subset
 * torch writes, names a global torch.load(weights_only=True) would refuse,
 * or passes a limit above; LCP_ERR_NOMEM on allocation failure. On any error
 * *out is empty. Not thread-safe on one result; distinct calls are.
 */
lcp_err pkl_scan(const uint8_t *data, size_t len, struct pkl_result *out, char *why, size_t why_len);
void pkl_result_free(struct pkl_result *r);

#endif
