/* Structured logging to stderr: one line per event, in logfmt (default) or JSON.
 *
 * A line is a fixed header (time, level, role, worker id when the process has one,
 * message) followed by typed key/value fields:
 *
 *     log_info("client connected", LOG_S("id", c->ix.id), LOG_S("user", user),
 *              LOG_U("code", code));
 *     log_warn("redis connection lost");
 *
 * The message must be a string literal describing the event (the macros reject
 * anything else), so text from outside can only ever reach a line as a field value,
 * and every string value goes through the escaper (docs/logging.md): no input can
 * end a line early or forge a key. Keys are literals too. A line is bounded
 * (LOG_LINE_MAX) and written with one write(2), so lines of concurrent threads and
 * processes sharing a file do not interleave.
 *
 * Never pass a token, JWT, claim id or password as a field (docs/logging.md).
 *
 * Ownership: nothing is retained; lines are formatted and written at once. The
 * setters are meant for startup, before any thread but the main one exists. */
#ifndef DSOCK_LOG_H
#define DSOCK_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

typedef enum { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR, LOG_FATAL } log_level_t;
typedef enum { LOG_FORMAT_LOGFMT, LOG_FORMAT_JSON } log_format_t;

/* Bounds: a whole line, newline included, and one escaped value. A longer value is
 * cut at a character boundary and ends with "..."; the line then ends with
 * truncated=true. */
#define LOG_LINE_MAX 4096
#define LOG_VALUE_MAX 512
/* The smallest buffer log_format_line accepts. */
#define LOG_LINE_MIN 256

typedef enum {
    LOG_FIELD_STR,   /* s, NUL-terminated; NULL leaves the field out */
    LOG_FIELD_BYTES, /* s and len: any bytes, NUL included */
    LOG_FIELD_INT,   /* i */
    LOG_FIELD_UINT,  /* u */
    LOG_FIELD_BOOL,  /* b */
} log_field_kind_t;

/* One key/value. Separate members rather than a union, so that each LOG_ macro's
 * designated initializer checks the type of its value. */
typedef struct log_field {
    const char *key;
    log_field_kind_t kind;
    const char *s;
    size_t len;
    int64_t i;
    uint64_t u;
    bool b;
} log_field_t;

/* Field constructors, for the argument lists of the log_ macros. */
#define LOG_S(k, v) {.key = "" k, .kind = LOG_FIELD_STR, .s = (v)}
#define LOG_B(k, p, n) {.key = "" k, .kind = LOG_FIELD_BYTES, .s = (p), .len = (n)}
#define LOG_I(k, v) {.key = "" k, .kind = LOG_FIELD_INT, .i = (v)}
#define LOG_U(k, v) {.key = "" k, .kind = LOG_FIELD_UINT, .u = (v)}
#define LOG_BOOL(k, v) {.key = "" k, .kind = LOG_FIELD_BOOL, .b = (v)}

/* log_info(msg, fields...): msg is a string literal, fields are LOG_ constructors
 * (none is fine). The empty argument appended by the wrappers makes __VA_ARGS__
 * end with a comma whenever fields are present, so the array always closes with
 * the terminator and a call without fields is valid C11. */
#define LOG_CALL_(level, msg, ...) \
    log_emit((level), "" msg, (const log_field_t[]){__VA_ARGS__{.key = NULL}})
#define log_debug(...) (log_debug_enabled() ? LOG_CALL_(LOG_DEBUG, __VA_ARGS__, ) : (void)0)
#define log_info(...) LOG_CALL_(LOG_INFO, __VA_ARGS__, )
#define log_warn(...) LOG_CALL_(LOG_WARN, __VA_ARGS__, )
#define log_error(...) LOG_CALL_(LOG_ERROR, __VA_ARGS__, )
/* Out of memory or a broken invariant: log and abort. Never returns. */
#define log_fatal(...) log_emit_fatal_(__VA_ARGS__, )
#define log_emit_fatal_(msg, ...) \
    log_emit_fatal("" msg, (const log_field_t[]){__VA_ARGS__{.key = NULL}})

/* Set once at startup; debug lines are dropped unless enabled. */
void log_set_debug(bool enabled);
bool log_debug_enabled(void);
/* Role name shown on every line ("api", "worker", "standalone"). Not copied: pass a literal. */
void log_set_role(const char *role);
/* The process's worker id, shown on every line from now on (copied; NULL or "" for none). */
void log_set_worker(const char *id);
void log_set_format(log_format_t format);
/* "logfmt" or "json": 0 and *out set, or -1. */
int log_format_parse(const char *name, log_format_t *out);

/* Formats and writes one line. fields ends with an element whose key is NULL. Use
 * the macros above rather than these. */
void log_emit(log_level_t level, const char *msg, const log_field_t *fields);
void log_emit_fatal(const char *msg, const log_field_t *fields) __attribute__((noreturn));

/* The I/O-free core, exposed for tests: the line's fixed part. */
typedef struct log_header {
    log_format_t format;
    struct timespec time; /* CLOCK_REALTIME, written in UTC with milliseconds */
    log_level_t level;
    const char *role;     /* NULL: left out */
    const char *worker;   /* NULL or "": left out */
} log_header_t;

/* Formats one line into buf (cap >= LOG_LINE_MIN): the header, msg, then the n
 * fields, escaped per docs/logging.md, ending with '\n' and a NUL that is not
 * counted. Returns the length, at most cap - 1. When everything does not fit,
 * values are cut or fields dropped, and the line ends with truncated=true. */
size_t log_format_line(char *buf, size_t cap, const log_header_t *h, const char *msg,
                       const log_field_t *fields, size_t n);

#endif
