/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer harness: the data.pkl scanner alone (pkl_scan), which a zip's
 * mutations reach only slowly. A refusal says why; a result's storages and
 * dims point inside the pickle and the dims pool.
 */
#include <string.h>

#include "format/pickle.h"
#include "fuzz.h"

FUZZ_TARGET(pickle)
{
	struct pkl_result r;
	char why[120];
	why[0] = '\0';
	lcp_err e = pkl_scan(data, size, &r, why, sizeof why);
	FUZZ_CHECK(e == LCP_OK || e == LCP_ERR_FORMAT);
	if (e) {
		FUZZ_CHECK(why[0] != '\0' && r.nstorages == 0 && r.storages == NULL);
		return 0;
	}
	FUZZ_CHECK(r.nstorages <= PKL_MAX_STORAGES);
	for (size_t i = 0; i < r.nstorages; i++) {
		const struct pkl_storage *st = &r.storages[i];
		FUZZ_CHECK(st->key >= data && st->key_len > 0 && st->key_len <= PKL_MAX_KEY &&
			   (size_t)(st->key - data) + st->key_len <= size);
		FUZZ_CHECK(!memchr(st->key, '/', st->key_len));
		if (st->uses && st->shape_ok)
			FUZZ_CHECK(st->ndims <= LCP_MAX_DIMS && st->dims_at + st->ndims <= r.ndims);
		if (st->name)
			FUZZ_CHECK(st->name >= data && (size_t)(st->name - data) + st->name_len <= size);
	}
	pkl_result_free(&r);
	return 0;
}
