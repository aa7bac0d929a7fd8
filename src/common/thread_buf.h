/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Per-thread scratch buffers, kept between calls and freed when the thread
 * exits: for hot paths where fresh memory on every call costs page faults
 * worth as much as the work itself (a read of a few blocks). Each thread
 * has LCP_THREAD_BUF_COUNT of them, one per purpose, each as large as the
 * largest size its thread asked for.
 */
#ifndef LCPFS_COMMON_THREAD_BUF_H
#define LCPFS_COMMON_THREAD_BUF_H

#include <stddef.h>

/* What each buffer is for: one user per index. */
enum lcp_thread_buf_use {
	LCP_TBUF_STORED = 0, /* src/store: a chunk's stored bytes */
	LCP_TBUF_DECODED,    /* src/store: a decoded range */
	LCP_TBUF_REPLY,      /* src/fs: a read request's reply */
	LCP_THREAD_BUF_COUNT
};

/* This thread's buffer for use, grown to at least need bytes (its contents
 * are not kept when it grows), or NULL when memory runs out. Valid until the
 * thread's next call for the same use, or its exit. */
void *lcp_thread_buf(enum lcp_thread_buf_use use, size_t need);

#endif
