/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Reports of raw files and the JSON rendering shared by `lcpfs inspect
 * --json` and the mount's "user.lcpfs.inspect" xattr.
 */
#include "lcpfs/store.h"

#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/alloc.h"

lcp_err lcp_store_report_raw_at(int dirfd, const char *name, struct lcp_file_report *out)
{
	struct lcp_region_map map;
	struct lcp_reader rd;
	struct stat st;
	size_t n = 0;
	int fd;
	lcp_err err = lcp_store_open_regular(dirfd, name, O_RDONLY, &fd, &st);

	memset(out, 0, sizeof *out);
	if (err)
		return err; /* LCP_ERR_UNSUPPORTED: not a regular file */
	err = lcp_reader_from_fd(&rd, &fd);
	if (err == LCP_OK)
		err = lcp_format_parse(&rd, 0, &map);
	close(fd);
	if (err)
		return err;
	out->format = map.format;
	out->logical_size = out->stored_size = map.file_size;
	for (size_t i = 0; i < map.nregions; i++)
		n += map.regions[i].name && map.regions[i].kind != LCP_REGION_CRC32;
	out->tensors = lcp_calloc(n ? n : 1, sizeof *out->tensors);
	if (!out->tensors) {
		lcp_region_map_free(&map);
		return LCP_ERR_NOMEM;
	}
	for (size_t i = 0; i < map.nregions; i++) {
		const struct lcp_region *r = &map.regions[i];
		struct lcp_tensor_report *t = &out->tensors[out->ntensors];
		uint64_t elems = 1;
		if (!r->name || r->kind == LCP_REGION_CRC32)
			continue;
		t->name = lcp_strdup(r->name);
		if (!t->name) {
			lcp_region_map_free(&map);
			lcp_file_report_free(out);
			return LCP_ERR_NOMEM;
		}
		out->ntensors++;
		snprintf(t->dtype, sizeof t->dtype, "%s", r->dtype_name);
		t->ndims = r->ndims;
		memcpy(t->dims, r->dims, sizeof t->dims);
		for (uint32_t d = 0; d < r->ndims; d++)
			elems *= r->dims[d];
		t->encoding = "exact";
		t->sqnr_db = INFINITY;
		t->cosine = 1.0;
		t->bits_per_weight = elems ? (double)r->len * 8.0 / (double)elems : 0;
	}
	lcp_region_map_free(&map);
	return LCP_OK;
}

static int set_new(json_t *o, const char *k, json_t *v)
{
	return v ? json_object_set_new(o, k, v) : -1;
}

static json_t *tensor_json(const struct lcp_tensor_report *t)
{
	json_t *o = json_object(), *shape = json_array();
	int bad = !o || !shape;
	for (uint32_t d = 0; d < t->ndims && !bad; d++)
		bad |= json_array_append_new(shape, json_integer((json_int_t)t->dims[d])) != 0;
	if (bad) {
		json_decref(o);
		json_decref(shape);
		return NULL;
	}
	bad |= set_new(o, "name", json_string(t->name)) != 0;
	bad |= set_new(o, "dtype", json_string(t->dtype)) != 0;
	bad |= json_object_set_new(o, "shape", shape) != 0;
	bad |= set_new(o, "encoding", json_string(t->encoding)) != 0;
	bad |= set_new(o, "bits", json_integer(t->bits)) != 0;
	bad |= set_new(o, "group", json_integer(t->group_size)) != 0;
	bad |= set_new(o, "rank", json_integer(t->rank)) != 0;
	bad |= set_new(o, "bpw", json_real(t->bits_per_weight)) != 0;
	bad |= set_new(o, "sqnr_db", isfinite(t->sqnr_db) ? json_real(t->sqnr_db) : json_null()) != 0;
	bad |= set_new(o, "cosine", isfinite(t->cosine) ? json_real(t->cosine) : json_null()) != 0;
	bad |= set_new(o, "note", t->note ? json_string(t->note) : json_null()) != 0;
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}

lcp_err lcp_store_report_json(const struct lcp_file_report *r, char **json)
{
	json_t *o = json_object(), *ts = json_array();
	char *s;
	int bad = !o || !ts;

	*json = NULL;
	for (size_t i = 0; i < r->ntensors && !bad; i++)
		bad |= json_array_append_new(ts, tensor_json(&r->tensors[i])) != 0;
	if (bad) {
		json_decref(o);
		json_decref(ts);
		return LCP_ERR_NOMEM;
	}
	bad |= set_new(o, "format", json_string(lcp_format_name(r->format))) != 0;
	/* A raw file's report has no configuration (bits 0). */
	if (r->config.bits) {
		char preset[160];
		lcp_config_describe(&r->config, preset, sizeof preset);
		bad |= set_new(o, "preset", json_string(preset)) != 0;
	} else {
		bad |= set_new(o, "preset", json_null()) != 0;
	}
	bad |= set_new(o, "logical_size", json_integer((json_int_t)r->logical_size)) != 0;
	bad |= set_new(o, "stored_size", json_integer((json_int_t)r->stored_size)) != 0;
	bad |= json_object_set_new(o, "tensors", ts) != 0;
	s = bad ? NULL : json_dumps(o, JSON_PRESERVE_ORDER | JSON_COMPACT);
	json_decref(o);
	if (!s)
		return LCP_ERR_NOMEM;
	/* jansson allocates with malloc; hand out our allocator's memory. */
	*json = lcp_strdup(s);
	free(s);
	return *json ? LCP_OK : LCP_ERR_NOMEM;
}
