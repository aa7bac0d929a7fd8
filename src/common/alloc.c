/* SPDX-License-Identifier: Apache-2.0 */
/* Allocation wrapper with a failure-injection counter for tests. */
#include "common/alloc.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* -1: never fail. Otherwise the number of allocations still allowed. */
static atomic_long allocs_left = -1;

static int should_fail(void)
{
	long left = atomic_load_explicit(&allocs_left, memory_order_relaxed);
	while (left >= 0) {
		if (left == 0)
			return 1;
		if (atomic_compare_exchange_weak(&allocs_left, &left, left - 1))
			return 0;
	}
	return 0;
}

void lcp_alloc_fail_after(long n)
{
	atomic_store(&allocs_left, n < 0 ? -1 : n);
}

void *lcp_malloc(size_t size)
{
	if (should_fail())
		return NULL;
	return malloc(size ? size : 1);
}

void *lcp_calloc(size_t count, size_t size)
{
	if (size && count > SIZE_MAX / size)
		return NULL;
	if (should_fail())
		return NULL;
	return calloc(count ? count : 1, size ? size : 1);
}

void *lcp_realloc(void *ptr, size_t size)
{
	if (should_fail())
		return NULL;
	return realloc(ptr, size ? size : 1);
}

void lcp_free(void *ptr)
{
	free(ptr);
}

char *lcp_strdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = lcp_malloc(n);
	if (d)
		memcpy(d, s, n);
	return d;
}
