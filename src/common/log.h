/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Logging. Messages go to stderr (foreground, tools) or syslog (daemon), one
 * line each, prefixed with the level. Thread-safe: each message is formatted
 * whole before it is written.
 */
#ifndef LCPFS_COMMON_LOG_H
#define LCPFS_COMMON_LOG_H

enum lcp_log_level { LCP_LOG_ERROR = 0, LCP_LOG_WARN = 1, LCP_LOG_INFO = 2, LCP_LOG_DEBUG = 3 };

/* Messages above level are dropped. Default: LCP_LOG_WARN. */
void lcp_log_set_level(enum lcp_log_level level);
/* Send messages to syslog (ident "lcpfs") instead of stderr. */
void lcp_log_use_syslog(int on);

void lcp_log(enum lcp_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
