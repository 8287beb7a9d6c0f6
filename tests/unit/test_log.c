/* Unit tests for the log line formatter (log_format_line): the exact header in both
 * formats, the escaping of every byte value on its own (logfmt and JSON), UTF-8
 * that is valid, invalid or valid but misleading, empty / NULL / binary values,
 * integers at their limits, value and line truncation (always at a unit boundary,
 * always leaving a complete line), key sanitizing, and a random round trip: any
 * byte string decodes back from its logfmt form, and every JSON line parses. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "protocol/utf8.h"
#include "../support/reference.h"

/* 2026-11-29T05:55:20.123Z */
#define T0 ((struct timespec){.tv_sec = 1795931720, .tv_nsec = 123456789})

static char line[LOG_LINE_MAX];

static size_t fmt_fields(log_format_t f, const log_field_t *fields, size_t n) {
    log_header_t h = {.format = f, .time = T0, .level = LOG_INFO, .role = "worker"};
    size_t len = log_format_line(line, sizeof line, &h, "m", fields, n);
    cr_assert_eq(len, strlen(line));
    return len;
}

/* What follows the header ("... msg=m " or "...,"msg":"m","), without the newline
 * (and the closing brace in JSON). */
static const char *tail_of(log_format_t f) {
    const char *prefix = f == LOG_FORMAT_JSON
                             ? "{\"time\":\"2026-11-29T05:55:20.123Z\",\"level\":\"info\","
                               "\"role\":\"worker\",\"msg\":\"m\","
                             : "time=2026-11-29T05:55:20.123Z level=info role=worker msg=m ";
    size_t pl = strlen(prefix), len = strlen(line);
    cr_assert(len > pl && !strncmp(line, prefix, pl), "unexpected header: %s", line);
    cr_assert_eq(line[len - 1], '\n');
    static char out[LOG_LINE_MAX];
    size_t end = len - 1 - (f == LOG_FORMAT_JSON);
    if (f == LOG_FORMAT_JSON) cr_assert_eq(line[len - 2], '}');
    memcpy(out, line + pl, end - pl);
    out[end - pl] = '\0';
    return out;
}

static const char *one_bytes(log_format_t f, const char *s, size_t n) {
    log_field_t fl[] = {LOG_B("k", s, n)};
    fmt_fields(f, fl, 1);
    return tail_of(f);
}

static const char *one(log_format_t f, const char *s) { return one_bytes(f, s, strlen(s)); }

Test(log, header_logfmt_exact) {
    log_header_t h = {.format = LOG_FORMAT_LOGFMT, .time = T0, .level = LOG_WARN,
                      .role = "standalone", .worker = "0c138e2a-3bc9-4c8f-a44a-1118e3999156"};
    size_t n = log_format_line(line, sizeof line, &h, "client connected", NULL, 0);
    cr_assert_str_eq(line, "time=2026-11-29T05:55:20.123Z level=warn role=standalone "
                           "worker=0c138e2a-3bc9-4c8f-a44a-1118e3999156 "
                           "msg=\"client connected\"\n");
    cr_assert_eq(n, strlen(line));
    /* No worker ("" or NULL), no role: the keys are left out. */
    h.worker = "";
    h.role = NULL;
    h.level = LOG_DEBUG;
    log_format_line(line, sizeof line, &h, "x", NULL, 0);
    cr_assert_str_eq(line, "time=2026-11-29T05:55:20.123Z level=debug msg=x\n");
    const char *names[] = {"debug", "info", "warn", "error", "fatal"};
    for (int l = LOG_DEBUG; l <= LOG_FATAL; l++) {
        h.level = (log_level_t)l;
        log_format_line(line, sizeof line, &h, "x", NULL, 0);
        char want[64];
        snprintf(want, sizeof want, " level=%s ", names[l]);
        cr_assert(strstr(line, want), "%s", line);
    }
}

Test(log, fields_logfmt_and_json_exact) {
    log_field_t f[] = {
        LOG_S("id", "abc"),        LOG_S("user", "evil\nuser"), LOG_S("none", NULL),
        LOG_S("empty", ""),        LOG_I("neg", INT64_MIN),     LOG_U("max", UINT64_MAX),
        LOG_U("code", 1008),       LOG_BOOL("yes", true),       LOG_BOOL("no", false),
        LOG_B("bin", "a\0b", 3),
    };
    fmt_fields(LOG_FORMAT_LOGFMT, f, sizeof f / sizeof f[0]);
    cr_assert_str_eq(tail_of(LOG_FORMAT_LOGFMT),
                     "id=abc user=\"evil\\nuser\" empty=\"\" neg=-9223372036854775808 "
                     "max=18446744073709551615 code=1008 yes=true no=false bin=\"a\\u0000b\"");
    fmt_fields(LOG_FORMAT_JSON, f, sizeof f / sizeof f[0]);
    cr_assert_str_eq(line, "{\"time\":\"2026-11-29T05:55:20.123Z\",\"level\":\"info\","
                           "\"role\":\"worker\",\"msg\":\"m\",\"id\":\"abc\","
                           "\"user\":\"evil\\nuser\",\"empty\":\"\","
                           "\"neg\":-9223372036854775808,\"max\":18446744073709551615,"
                           "\"code\":1008,\"yes\":true,\"no\":false,\"bin\":\"a\\u0000b\"}\n");
    cJSON *j = cJSON_Parse(line);
    cr_assert(j, "not JSON: %s", line);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "user")->valuestring, "evil\nuser");
    cJSON_Delete(j);
}

/* Every byte value alone: its exact escaped form. */
Test(log, every_single_byte) {
    for (int b = 0; b < 256; b++) {
        char in = (char)b, want_l[16], want_j[16];
        if (b == '\n' || b == '\r' || b == '\t') {
            char e = b == '\n' ? 'n' : b == '\r' ? 'r' : 't';
            snprintf(want_l, sizeof want_l, "k=\"\\%c\"", e);
            snprintf(want_j, sizeof want_j, "\"k\":\"\\%c\"", e);
        } else if (b == '"' || b == '\\') {
            snprintf(want_l, sizeof want_l, "k=\"\\%c\"", b);
            snprintf(want_j, sizeof want_j, "\"k\":\"\\%c\"", b);
        } else if (b < 0x20 || b == 0x7f) {
            snprintf(want_l, sizeof want_l, "k=\"\\u%04x\"", b);
            snprintf(want_j, sizeof want_j, "\"k\":\"\\u%04x\"", b);
        } else if (b >= 0x80) { /* alone, never valid UTF-8 */
            snprintf(want_l, sizeof want_l, "k=\"\\x%02x\"", b);
            snprintf(want_j, sizeof want_j, "\"k\":\"\\u%04x\"", b);
        } else if (b == ' ' || b == '=') {
            snprintf(want_l, sizeof want_l, "k=\"%c\"", b);
            snprintf(want_j, sizeof want_j, "\"k\":\"%c\"", b);
        } else {
            snprintf(want_l, sizeof want_l, "k=%c", b);
            snprintf(want_j, sizeof want_j, "\"k\":\"%c\"", b);
        }
        cr_assert_str_eq(one_bytes(LOG_FORMAT_LOGFMT, &in, 1), want_l, "byte 0x%02x", b);
        cr_assert_str_eq(one_bytes(LOG_FORMAT_JSON, &in, 1), want_j, "byte 0x%02x", b);
    }
}

Test(log, quoting_inside_longer_values) {
    cr_assert_str_eq(one(LOG_FORMAT_LOGFMT, "a=b"), "k=\"a=b\"");
    cr_assert_str_eq(one(LOG_FORMAT_LOGFMT, "a b"), "k=\"a b\"");
    cr_assert_str_eq(one(LOG_FORMAT_LOGFMT, "say \"hi\" \\o/"), "k=\"say \\\"hi\\\" \\\\o/\"");
    cr_assert_str_eq(one(LOG_FORMAT_LOGFMT, "127.0.0.1:6379/db-0_x"), "k=127.0.0.1:6379/db-0_x");
    cr_assert_str_eq(one(LOG_FORMAT_LOGFMT, "k=v x=y"), "k=\"k=v x=y\"");
}

Test(log, utf8_valid_invalid_and_misleading) {
    /* Valid and harmless: as is, unquoted in logfmt. */
    cr_assert_str_eq(one(LOG_FORMAT_LOGFMT, "Jos\xc3\xa9"), "k=Jos\xc3\xa9");
    cr_assert_str_eq(one(LOG_FORMAT_LOGFMT, "\xe2\x82\xac\xf0\x9f\x98\x80"),
                     "k=\xe2\x82\xac\xf0\x9f\x98\x80");
    cr_assert_str_eq(one(LOG_FORMAT_JSON, "Jos\xc3\xa9"), "\"k\":\"Jos\xc3\xa9\"");
    /* Valid but able to mislead a reader: NEL and other C1, line and paragraph
     * separators, bidi overrides and isolates, BOM. */
    cr_assert_str_eq(one(LOG_FORMAT_LOGFMT, "a\xc2\x85z"), "k=\"a\\u0085z\"");
    cr_assert_str_eq(one(LOG_FORMAT_LOGFMT, "\xc2\x80\xc2\x9f"), "k=\"\\u0080\\u009f\"");
    cr_assert_str_eq(one(LOG_FORMAT_LOGFMT, "\xc2\xa0"), "k=\xc2\xa0"); /* NBSP: after C1 */
    cr_assert_str_eq(one(LOG_FORMAT_LOGFMT, "\xe2\x80\xa8\xe2\x80\xa9"), "k=\"\\u2028\\u2029\"");
    cr_assert_str_eq(one(LOG_FORMAT_LOGFMT, "\xe2\x80\xae"), "k=\"\\u202e\"");
    cr_assert_str_eq(one(LOG_FORMAT_LOGFMT, "\xe2\x81\xa6"), "k=\"\\u2066\"");
    cr_assert_str_eq(one(LOG_FORMAT_LOGFMT, "\xef\xbb\xbf"), "k=\"\\ufeff\"");
    cr_assert_str_eq(one(LOG_FORMAT_JSON, "\xe2\x80\xa8"), "\"k\":\"\\u2028\"");
    /* Invalid: each byte that is not part of a valid sequence on its own. */
    cr_assert_str_eq(one(LOG_FORMAT_LOGFMT, "\xc0\x80"), "k=\"\\xc0\\x80\"");       /* overlong */
    cr_assert_str_eq(one(LOG_FORMAT_LOGFMT, "\xe0\x80\xaf"), "k=\"\\xe0\\x80\\xaf\""); /* overlong */
    cr_assert_str_eq(one(LOG_FORMAT_LOGFMT, "\xed\xa0\x80"), "k=\"\\xed\\xa0\\x80\""); /* surrogate */
    cr_assert_str_eq(one(LOG_FORMAT_LOGFMT, "\xf4\x90\x80\x80"),
                     "k=\"\\xf4\\x90\\x80\\x80\""); /* above U+10FFFF */
    cr_assert_str_eq(one(LOG_FORMAT_LOGFMT, "a\xe2\x82"), "k=\"a\\xe2\\x82\"");  /* cut short */
    cr_assert_str_eq(one(LOG_FORMAT_LOGFMT, "\xe2\x82z"), "k=\"\\xe2\\x82z\"");
    cr_assert_str_eq(one(LOG_FORMAT_LOGFMT, "\x80\xc3\xa9"), "k=\"\\x80\xc3\xa9\"");
    cr_assert_str_eq(one(LOG_FORMAT_JSON, "\xed\xa0\x80"), "\"k\":\"\\u00ed\\u00a0\\u0080\"");
}

Test(log, forged_line_stays_one_value) {
    const char *user = "x\n2026-01-01T00:00:00.000Z ERROR [worker] forged\r\n"
                       "time=2026-01-01T00:00:00.000Z level=error msg=forged";
    log_field_t f[] = {LOG_S("user", user), LOG_S("id", "a")};
    for (int fm = 0; fm < 2; fm++) {
        size_t n = fmt_fields((log_format_t)fm, f, 2);
        cr_assert_eq(strchr(line, '\n'), line + n - 1, "one line only: %s", line);
        cr_assert_null(strchr(line, '\r'));
    }
    fmt_fields(LOG_FORMAT_LOGFMT, f, 2);
    cr_assert_str_eq(tail_of(LOG_FORMAT_LOGFMT),
                     "user=\"x\\n2026-01-01T00:00:00.000Z ERROR [worker] forged\\r\\n"
                     "time=2026-01-01T00:00:00.000Z level=error msg=forged\" id=a");
}

Test(log, keys_are_sanitized) {
    log_field_t f[] = {{.key = "a b=c\"\n", .kind = LOG_FIELD_STR, .s = "v"},
                       {.key = "", .kind = LOG_FIELD_INT, .i = 1}};
    fmt_fields(LOG_FORMAT_LOGFMT, f, 2);
    cr_assert_str_eq(tail_of(LOG_FORMAT_LOGFMT), "a_b_c__=v _=1");
}

/* The project's strict validator (RFC 3629), independent of the logger's decoder. */
static bool valid_utf8(const char *s) { return utf8_valid((const uint8_t *)s, strlen(s)); }

Test(log, long_values_are_cut_at_unit_boundaries) {
    char v[2000];
    /* Plain: LOG_VALUE_MAX bytes, the last three being the marker. */
    memset(v, 'a', 600);
    v[600] = '\0';
    const char *t = one(LOG_FORMAT_LOGFMT, v);
    cr_assert_eq(strlen(t), 2 + LOG_VALUE_MAX + strlen(" truncated=true"), "%s", t);
    cr_assert(!strncmp(t + 2 + LOG_VALUE_MAX - 3, "... truncated=true", 18), "%s", t);
    /* Exactly LOG_VALUE_MAX: whole, no marker. */
    v[LOG_VALUE_MAX] = '\0';
    t = one(LOG_FORMAT_LOGFMT, v);
    cr_assert_eq(strlen(t), 2 + LOG_VALUE_MAX);
    cr_assert_null(strstr(t, "truncated"));
    /* One more byte: cut. */
    memset(v, 'a', sizeof v);
    v[LOG_VALUE_MAX + 1] = '\0';
    cr_assert(strstr(one(LOG_FORMAT_LOGFMT, v), "... truncated=true"));
    /* Escapes are never split: 300 newlines are 600 escaped bytes. */
    for (int i = 0; i < 300; i++) v[i] = '\n';
    v[300] = '\0';
    t = one(LOG_FORMAT_LOGFMT, v);
    const char *end = strstr(t, "...\" truncated=true");
    cr_assert(end, "%s", t);
    size_t body = (size_t)(end - (t + 3)); /* after k=" */
    cr_assert_eq(body % 2, 0);
    cr_assert(body <= LOG_VALUE_MAX - 3 && body >= LOG_VALUE_MAX - 3 - 1);
    for (size_t i = 0; i < body; i += 2) cr_assert(t[3 + i] == '\\' && t[4 + i] == 'n');
    /* Six-byte escapes (JSON \u00HH for invalid bytes), and multibyte characters. */
    memset(v, 0xff, 200);
    v[200] = '\0';
    t = one(LOG_FORMAT_JSON, v);
    end = strstr(t, "...\",\"truncated\":true");
    cr_assert(end, "%s", t);
    cr_assert_eq((size_t)(end - (t + 5)) % 6, 0);
    for (int i = 0; i < 300; i++) memcpy(v + 2 * i, "\xc3\xa9", 2);
    v[600] = '\0';
    t = one(LOG_FORMAT_LOGFMT, v);
    cr_assert(valid_utf8(t), "%s", t);
    cr_assert(strstr(t, "... truncated=true"));
    /* A cut JSON line still parses. */
    t = one(LOG_FORMAT_JSON, v);
    cJSON *j = cJSON_Parse(line);
    cr_assert(j, "%s", line);
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(j, "truncated")));
    cJSON_Delete(j);
}

/* Many long fields: the line stays within its buffer, complete, and says so. */
Test(log, line_is_bounded) {
    static char big[5000];
    memset(big, '"', sizeof big - 1);
    log_field_t f[20];
    for (int i = 0; i < 20; i++) f[i] = (log_field_t){.key = "f", .kind = LOG_FIELD_STR, .s = big};
    for (size_t cap = LOG_LINE_MIN; cap <= LOG_LINE_MAX; cap += 97) {
        for (int fm = 0; fm < 2; fm++) {
            static char buf[LOG_LINE_MAX + 16];
            memset(buf, 'Z', sizeof buf);
            log_header_t h = {.format = (log_format_t)fm, .time = T0, .level = LOG_ERROR,
                              .role = "standalone",
                              .worker = "0c138e2a-3bc9-4c8f-a44a-1118e3999156"};
            size_t n = log_format_line(buf, cap, &h, "a message", f, 20);
            cr_assert(n > 0 && n <= cap - 1, "cap %zu: %zu", cap, n);
            cr_assert_eq(buf[n], '\0');
            cr_assert_eq(buf[cap], 'Z', "wrote past the buffer");
            cr_assert_eq(buf[n - 1], '\n');
            cr_assert_eq(strchr(buf, '\n'), buf + n - 1);
            cr_assert(strstr(buf, fm ? ",\"truncated\":true}\n" : " truncated=true\n"), "%s", buf);
            if (fm) {
                cJSON *j = cJSON_Parse(buf);
                cr_assert(j, "cap %zu: %s", cap, buf);
                cJSON_Delete(j);
            }
        }
    }
    /* A long literal message in the smallest buffer is cut, not dropped. */
    char msg[400];
    memset(msg, 'm', sizeof msg - 1);
    msg[sizeof msg - 1] = '\0';
    char small[LOG_LINE_MIN];
    log_header_t h = {.format = LOG_FORMAT_JSON, .time = T0, .level = LOG_ERROR,
                      .role = "standalone", .worker = "0c138e2a-3bc9-4c8f-a44a-1118e3999156"};
    size_t n = log_format_line(small, sizeof small, &h, msg, NULL, 0);
    cr_assert(n < sizeof small && strstr(small, "\"msg\":\"mmm"), "%s", small);
    cJSON *j = cJSON_Parse(small);
    cr_assert(j, "%s", small);
    cJSON_Delete(j);
    /* Below the minimum: nothing. */
    cr_assert_eq(log_format_line(small, LOG_LINE_MIN - 1, &h, "x", NULL, 0), 0);
}

/* Random byte strings (biased toward the interesting bytes) come back exactly from
 * their logfmt form; in JSON they always parse, and valid UTF-8 comes back exactly. */
Test(log, random_round_trip) {
    static const unsigned char alphabet[] = {'a', 'Z', '0', ' ', '=', '"', '\\', '\n', '\r',
                                             '\t', 0, 1, 0x1b, 0x7f, 0x80, 0xbf, 0xc2, 0xc3,
                                             0x85, 0xa9, 0xe2, 0x80, 0xa8, 0xae, 0xed, 0xf0,
                                             0x9f, 0xf4, 0xff, 'x', '.', '-'};
    srand(7);
    for (int iter = 0; iter < 20000; iter++) {
        char in[48], out[256];
        size_t n = (size_t)(rand() % 40);
        for (size_t i = 0; i < n; i++) in[i] = (char)alphabet[rand() % sizeof alphabet];
        const char *t = one_bytes(LOG_FORMAT_LOGFMT, in, n);
        cr_assert(!strncmp(t, "k=", 2));
        cr_assert(valid_utf8(line), "not UTF-8: %s", line);
        for (const char *p = line; *p; p++)
            cr_assert((unsigned char)*p >= 0x20 || (*p == '\n' && !p[1]), "raw control in %s", line);
        const char *v = t + 2;
        long m = ref_logfmt_unescape(&v, out);
        cr_assert(m == (long)n && !memcmp(in, out, n), "round trip failed: %s", t);

        one_bytes(LOG_FORMAT_JSON, in, n);
        cJSON *j = cJSON_Parse(line);
        cr_assert(j, "not JSON: %s", line);
        in[n] = '\0';
        bool plain_utf8 = memchr(in, 0, n) == NULL && valid_utf8(in);
        if (plain_utf8) cr_assert_str_eq(cJSON_GetObjectItem(j, "k")->valuestring, in);
        cJSON_Delete(j);
    }
}

Test(log, format_names) {
    log_format_t f = LOG_FORMAT_JSON;
    cr_assert_eq(log_format_parse("logfmt", &f), 0);
    cr_assert_eq(f, LOG_FORMAT_LOGFMT);
    cr_assert_eq(log_format_parse("json", &f), 0);
    cr_assert_eq(f, LOG_FORMAT_JSON);
    cr_assert_eq(log_format_parse("JSON", &f), -1);
    cr_assert_eq(log_format_parse("", &f), -1);
    cr_assert_eq(log_format_parse(NULL, &f), -1);
}

/* The macros: a call with no fields and with several compiles and counts right
 * (checked here by formatting through log_emit into a pipe would need I/O; the
 * compile-time part is what matters: message literal, typed fields). */
Test(log, macros_compile) {
    log_set_debug(false);
    log_debug("not written", LOG_S("k", "v"), LOG_U("n", 1));
    log_debug("not written either");
    log_field_t f[] = {LOG_S("a", "1"), LOG_I("b", -1), LOG_U("c", 2u), LOG_BOOL("d", 1),
                       LOG_B("e", "xy", 2)};
    cr_assert_eq(f[1].i, -1);
    cr_assert_eq(f[4].len, 2);
}
