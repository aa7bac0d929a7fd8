/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The one allocation wrapper. All lcpfs code allocates through these so that
 * tests can make the Nth allocation fail (lcp_alloc_fail_after) and check
 * that every caller turns it into LCP_ERR_NOMEM without leaking or crashing.
 */
#ifndef LCPFS_COMMON_ALLOC_H
#define LCPFS_COMMON_ALLOC_H

#include <stddef.h>

void *lcp_malloc(size_t size);
void *lcp_calloc(size_t count, size_t size); /* fails cleanly on overflow */
void *lcp_realloc(void *ptr, size_t size);
void lcp_free(void *ptr);
char *lcp_strdup(const char *s);

/* Test hook: after n more successful allocations, every allocation fails
 * until lcp_alloc_fail_after(-1) is called. Thread-safe (atomic counter). */
void lcp_alloc_fail_after(long n);

#endif
