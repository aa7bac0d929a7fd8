/* SPDX-License-Identifier: Apache-2.0 */
/*
 * expect_no_leaks(): fails the current test if LeakSanitizer finds memory
 * that is no longer reachable. Needed because a leak report that
 * LeakSanitizer prints when a criterion test process exits does not fail the
 * test. Active in the SAN=1 build only (ASan defines __SANITIZE_ADDRESS__);
 * in the plain build it checks nothing, and the tests' other expectations
 * still run.
 */
#ifndef LCPFS_TEST_LEAK_CHECK_H
#define LCPFS_TEST_LEAK_CHECK_H

#include <criterion/criterion.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#define expect_no_leaks() \
	cr_expect_eq(__lsan_do_recoverable_leak_check(), 0, "LeakSanitizer found leaks (see log)")
#else
#define expect_no_leaks() ((void)0)
#endif

#endif
