/* Logging to stderr: one line per event, prefixed with level and role.
 * Ownership: nothing is retained; messages are formatted and written at once. */
#ifndef DSOCK_LOG_H
#define DSOCK_LOG_H

#include <stdbool.h>

/* Set once at startup; debug lines are dropped unless enabled. */
void log_set_debug(bool enabled);
bool log_debug_enabled(void);
/* Role name shown on every line ("api", "worker", "standalone"). Not copied: pass a literal. */
void log_set_role(const char *role);

void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Out of memory or a broken invariant: log and abort. Never returns. */
void log_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
