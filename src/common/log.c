/* Structured stderr logger (see log.h and docs/logging.md). A line is built in a
 * stack buffer by the I/O-free log_format_line and written with one write(2), so
 * concurrent threads and processes sharing a file do not interleave mid-line. */
#include "common/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static bool debug_on;
static const char *role_name = "dsock";
static char worker_id[64];
static log_format_t line_format = LOG_FORMAT_LOGFMT;

void log_set_debug(bool enabled) { debug_on = enabled; }
bool log_debug_enabled(void) { return debug_on; }
void log_set_role(const char *role) { role_name = role; }
void log_set_format(log_format_t format) { line_format = format; }

void log_set_worker(const char *id) {
    snprintf(worker_id, sizeof worker_id, "%s", id ? id : "");
}

int log_format_parse(const char *name, log_format_t *out) {
    if (!name) return -1;
    if (!strcmp(name, "logfmt")) {
        *out = LOG_FORMAT_LOGFMT;
        return 0;
    }
    if (!strcmp(name, "json")) {
        *out = LOG_FORMAT_JSON;
        return 0;
    }
    return -1;
}

/* ---- formatting ---------------------------------------------------------------- */

/* Room kept free at the end of the buffer for the tail: the truncation marker, the
 * JSON closing brace, the newline and the NUL. */
#define TAIL_ROOM 24

typedef struct writer {
    char *buf;
    size_t len, lim; /* lim: where the fields must stop, TAIL_ROOM before the end */
    log_format_t fmt;
    bool first;
    bool truncated;
} writer_t;

static bool fits(const writer_t *w, size_t n) { return n <= w->lim - w->len; }

static void put(writer_t *w, const char *s, size_t n) {
    memcpy(w->buf + w->len, s, n);
    w->len += n;
}

static const char hex[] = "0123456789abcdef";

/* Decodes one UTF-8 sequence strictly (RFC 3629: no overlong form, no surrogate,
 * nothing above U+10FFFF). Returns its length, or 0 when s does not start with one. */
static size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp) {
    unsigned char c = s[0];
    size_t len;
    uint32_t v, min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if (c >= 0xc2 && c <= 0xdf) {
        len = 2, v = c & 0x1f, min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3, v = c & 0x0f, min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4, v = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        v = v << 6 | (s[i] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) return 0;
    *cp = v;
    return len;
}

/* Code points that are valid but would let a value rearrange or break what a
 * reader sees: C1 controls (NEL among them), the Unicode line and paragraph
 * separators, bidirectional overrides and isolates, and the BOM. */
static bool cp_needs_escape(uint32_t cp) {
    return (cp >= 0x80 && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029 ||
           (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069) || cp == 0xfeff;
}

/* The escaped form of the unit at s: its length in *in and its text in out (at
 * most 6 bytes). *plain is set when it may appear in an unquoted logfmt value. */
static size_t escape_unit(log_format_t fmt, const unsigned char *s, size_t n, size_t *in,
                          char out[6], bool *plain) {
    uint32_t cp;
    size_t len = utf8_decode(s, n, &cp);
    *plain = false;
    if (!len) { /* a byte that is not part of valid UTF-8 */
        *in = 1;
        out[0] = '\\';
        if (fmt == LOG_FORMAT_JSON) {
            memcpy(out + 1, "u00", 3);
            out[4] = hex[s[0] >> 4], out[5] = hex[s[0] & 15];
            return 6;
        }
        out[1] = 'x', out[2] = hex[s[0] >> 4], out[3] = hex[s[0] & 15];
        return 4;
    }
    *in = len;
    if (cp == '"' || cp == '\\' || cp == '\n' || cp == '\r' || cp == '\t') {
        out[0] = '\\';
        out[1] = cp == '"' ? '"' : cp == '\\' ? '\\' : cp == '\n' ? 'n' : cp == '\r' ? 'r' : 't';
        return 2;
    }
    if (cp < 0x20 || cp == 0x7f || cp_needs_escape(cp)) {
        out[0] = '\\', out[1] = 'u';
        for (int i = 0; i < 4; i++) out[2 + i] = hex[(cp >> (12 - 4 * i)) & 15];
        return 6;
    }
    *plain = cp != ' ' && cp != '=';
    memcpy(out, s, len);
    return len;
}

/* Starts an item: the separator and the key (a literal; anything but
 * [A-Za-z0-9_.-] becomes '_', so even a mistaken key cannot break the line). */
static bool put_key(writer_t *w, const char *key) {
    size_t kl = strlen(key);
    if (kl > 64) kl = 64;
    if (!fits(w, kl + 4 + (kl == 0))) return false;
    if (!w->first) put(w, w->fmt == LOG_FORMAT_JSON ? "," : " ", 1);
    w->first = false;
    if (w->fmt == LOG_FORMAT_JSON) put(w, "\"", 1);
    if (!kl) put(w, "_", 1);
    for (size_t i = 0; i < kl; i++) {
        char c = key[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '.' || c == '-';
        w->buf[w->len++] = ok ? c : '_';
    }
    put(w, w->fmt == LOG_FORMAT_JSON ? "\":" : "=", w->fmt == LOG_FORMAT_JSON ? 2 : 1);
    return true;
}

/* A string value: quoted unless every unit is plain (logfmt; always in JSON), cut
 * with "..." when its escaped form exceeds LOG_VALUE_MAX or the room left. */
static bool put_string(writer_t *w, const char *key, const char *s, size_t n) {
    size_t start = w->len;
    bool first = w->first;
    if (!put_key(w, key)) return false;
    size_t room = w->lim - w->len;
    if (room < 2 + 3 + 1) goto undo; /* quotes, "..." and one byte at least */
    size_t budget = room - 2 < LOG_VALUE_MAX ? room - 2 : LOG_VALUE_MAX;
    const unsigned char *u = (const unsigned char *)s;
    /* Fast path, the usual case: short printable ASCII without '"' or '\', copied
     * as it is (quoted when it holds a space or '='). */
    if (n <= budget) {
        bool quote = w->fmt == LOG_FORMAT_JSON || n == 0, simple = true;
        for (size_t i = 0; i < n && simple; i++) {
            simple = u[i] >= 0x20 && u[i] < 0x7f && u[i] != '"' && u[i] != '\\';
            quote |= u[i] == ' ' || u[i] == '=';
        }
        if (simple) {
            if (quote) put(w, "\"", 1);
            put(w, s, n);
            if (quote) put(w, "\"", 1);
            return true;
        }
    }
    /* Measure: the escaped length up to the budget, and whether quotes are needed. */
    size_t total = 0, i = 0, in;
    bool quote = w->fmt == LOG_FORMAT_JSON || n == 0, plain;
    char tmp[6];
    while (i < n && total <= budget) {
        total += escape_unit(w->fmt, u + i, n - i, &in, tmp, &plain);
        quote |= !plain;
        i += in;
    }
    bool cut = i < n || total > budget;
    /* Write: whole units only, leaving room for the marker when cutting. */
    size_t limit = cut ? budget - 3 : budget;
    if (quote) put(w, "\"", 1);
    size_t out = 0;
    for (i = 0; i < n;) {
        size_t k = escape_unit(w->fmt, u + i, n - i, &in, tmp, &plain);
        if (out + k > limit) break;
        put(w, tmp, k);
        out += k;
        i += in;
    }
    if (cut) {
        put(w, "...", 3);
        w->truncated = true;
    }
    if (quote) put(w, "\"", 1);
    return true;
undo:
    w->len = start;
    w->first = first;
    return false;
}

static bool put_raw(writer_t *w, const char *key, const char *text) {
    size_t start = w->len;
    bool first = w->first;
    size_t tl = strlen(text);
    if (put_key(w, key) && fits(w, tl)) {
        put(w, text, tl);
        return true;
    }
    w->len = start;
    w->first = first;
    return false;
}

static const char *level_name(log_level_t level) {
    switch (level) {
    case LOG_DEBUG: return "debug";
    case LOG_INFO: return "info";
    case LOG_WARN: return "warn";
    case LOG_ERROR: return "error";
    case LOG_FATAL: return "fatal";
    }
    return "unknown";
}

static bool put_field(writer_t *w, const log_field_t *f) {
    char num[32];
    switch (f->kind) {
    case LOG_FIELD_STR:
        return !f->s || put_string(w, f->key, f->s, strlen(f->s));
    case LOG_FIELD_BYTES:
        return put_string(w, f->key, f->s ? f->s : "", f->s ? f->len : 0);
    case LOG_FIELD_INT:
        snprintf(num, sizeof num, "%lld", (long long)f->i);
        return put_raw(w, f->key, num);
    case LOG_FIELD_UINT:
        snprintf(num, sizeof num, "%llu", (unsigned long long)f->u);
        return put_raw(w, f->key, num);
    case LOG_FIELD_BOOL:
        return put_raw(w, f->key, f->b ? "true" : "false");
    }
    return true;
}

size_t log_format_line(char *buf, size_t cap, const log_header_t *h, const char *msg,
                       const log_field_t *fields, size_t n) {
    if (cap < LOG_LINE_MIN) {
        if (cap) buf[0] = '\0';
        return 0;
    }
    writer_t w = {.buf = buf, .lim = cap - TAIL_ROOM, .fmt = h->format, .first = true};
    if (w.fmt == LOG_FORMAT_JSON) put(&w, "{", 1);

    struct tm tm;
    time_t sec = h->time.tv_sec;
    gmtime_r(&sec, &tm);
    char ts[64];
    snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (long)(h->time.tv_nsec / 1000000));
    const char *lv = level_name(h->level);
    /* The header always fits a LOG_LINE_MIN buffer up to msg, which is cut if need be. */
    bool ok = put_string(&w, "time", ts, strlen(ts)) && put_string(&w, "level", lv, strlen(lv)) &&
              (!h->role || put_string(&w, "role", h->role, strlen(h->role))) &&
              (!h->worker || !h->worker[0] ||
               put_string(&w, "worker", h->worker, strlen(h->worker))) &&
              put_string(&w, "msg", msg ? msg : "", msg ? strlen(msg) : 0);
    for (size_t i = 0; ok && i < n; i++) ok = put_field(&w, &fields[i]);
    if (!ok) w.truncated = true;

    /* The tail always fits: lim kept TAIL_ROOM free. */
    w.lim = cap - 1;
    if (w.truncated) {
        if (w.fmt == LOG_FORMAT_JSON)
            put(&w, ",\"truncated\":true", 17);
        else
            put(&w, " truncated=true", 15);
    }
    if (w.fmt == LOG_FORMAT_JSON) put(&w, "}", 1);
    put(&w, "\n", 1);
    buf[w.len] = '\0';
    return w.len;
}

/* ---- output ---------------------------------------------------------------------- */

static void write_line(log_level_t level, const char *msg, const log_field_t *fields) {
    size_t n = 0;
    while (fields[n].key) n++;
    log_header_t h = {.format = line_format, .level = level, .role = role_name,
                      .worker = worker_id};
    clock_gettime(CLOCK_REALTIME, &h.time);
    char line[LOG_LINE_MAX];
    size_t len = log_format_line(line, sizeof line, &h, msg, fields, n);
    ssize_t wr = write(STDERR_FILENO, line, len);
    (void)wr;
}

void log_emit(log_level_t level, const char *msg, const log_field_t *fields) {
    if (level == LOG_DEBUG && !debug_on) return;
    write_line(level, msg, fields);
}

void log_emit_fatal(const char *msg, const log_field_t *fields) {
    write_line(LOG_FATAL, msg, fields);
    abort();
}
