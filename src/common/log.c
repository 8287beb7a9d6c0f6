/* stderr logger. Lines are built in a stack buffer and written with one write(2)
 * so concurrent processes sharing a terminal do not interleave mid-line. */
#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static bool debug_on;
static const char *role_name = "dsock";

void log_set_debug(bool enabled) { debug_on = enabled; }
bool log_debug_enabled(void) { return debug_on; }
void log_set_role(const char *role) { role_name = role; }

static void log_line(const char *level, const char *fmt, va_list ap) {
    char line[2048];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s [%s] ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, level, role_name);
    if (n < 0) return;
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    if (m < 0) return;
    size_t len = (size_t)n + (size_t)m;
    if (len > sizeof line - 2) len = sizeof line - 2;
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}

#define DEFINE_LOG(fn, level, cond)         \
    void fn(const char *fmt, ...) {         \
        if (!(cond)) return;                \
        va_list ap;                         \
        va_start(ap, fmt);                  \
        log_line(level, fmt, ap);           \
        va_end(ap);                         \
    }

DEFINE_LOG(log_debug, "DEBUG", debug_on)
DEFINE_LOG(log_info, "INFO", 1)
DEFINE_LOG(log_warn, "WARN", 1)
DEFINE_LOG(log_error, "ERROR", 1)

void log_fatal(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    log_line("FATAL", fmt, ap);
    va_end(ap);
    abort();
}
