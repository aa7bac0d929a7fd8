/* SPDX-License-Identifier: Apache-2.0 */
/* Logging to stderr or syslog; see log.h. */
#include "common/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <syslog.h>

static atomic_int log_level = LCP_LOG_WARN;
static atomic_int log_syslog;

void lcp_log_set_level(enum lcp_log_level level)
{
	atomic_store(&log_level, (int)level);
}

void lcp_log_use_syslog(int on)
{
	if (on)
		openlog("lcpfs", LOG_PID, LOG_DAEMON);
	atomic_store(&log_syslog, on);
}

void lcp_log(enum lcp_log_level level, const char *fmt, ...)
{
	static const char *const prefix[] = {"error", "warning", "info", "debug"};
	static const int priority[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
	char line[1024];
	va_list ap;

	if ((int)level > atomic_load(&log_level))
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	if (atomic_load(&log_syslog))
		syslog(priority[level], "%s", line);
	else
		fprintf(stderr, "lcpfs: %s: %s\n", prefix[level], line);
}
