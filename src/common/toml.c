/* Strict TOML 1.0 reader (see toml.h). A hand-written recursive descent over the
 * buffer: one pass checks the UTF-8, a second builds the tree. The TOML rules on
 * defining tables (a table is defined once; dotted keys may only extend tables
 * they created; inline tables are closed) are kept with a few flags per table. */
#include "common/toml.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"

/* How a table or an array came to be; decides what may extend it later. */
enum {
    F_IMPLICIT = 1u << 0, /* made as a parent of a [a.b] header; [a] may still define it */
    F_HEADER = 1u << 1,   /* defined by a [header] or as an element of [[header]] */
    F_DOTTED = 1u << 2,   /* made by a dotted key: only dotted keys may add to it */
    F_INLINE = 1u << 3,   /* { ... }: closed once written */
    F_AOT = 1u << 4,      /* an array made by [[header]]: may be appended to */
};

#define MAX_KEY_PARTS 32
#define MAX_TABLE_KEYS 4096 /* lookups are linear: keeps hostile input cheap */

typedef struct parser {
    const char *p, *end;
    const char *line_start;
    int line;
    int depth;
    bool failed;
    toml_error_t *err;
} parser_t;

typedef struct key_part {
    char *s;
    size_t len;
    int line, col;
} key_part_t;

typedef struct sbuf {
    char *ptr;
    size_t len, cap;
} sbuf_t;

static void sb_put(sbuf_t *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 32;
        while (cap < b->len + n + 1) cap *= 2;
        b->ptr = mem_realloc(b->ptr, cap);
        b->cap = cap;
    }
    memcpy(b->ptr + b->len, s, n);
    b->len += n;
    b->ptr[b->len] = '\0';
}

static void sb_putc(sbuf_t *b, char c) { sb_put(b, &c, 1); }

static int col_of(const parser_t *P) { return (int)(P->p - P->line_start) + 1; }

/* Records the first error only: later ones are consequences of it. */
__attribute__((format(printf, 2, 3))) static void fail(parser_t *P, const char *fmt, ...) {
    if (P->failed) return;
    P->failed = true;
    P->err->line = P->line;
    P->err->col = col_of(P);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(P->err->msg, sizeof P->err->msg, fmt, ap);
    va_end(ap);
}

static int peek(const parser_t *P) { return P->p < P->end ? (unsigned char)*P->p : -1; }
static int peek_at(const parser_t *P, size_t k) {
    return (size_t)(P->end - P->p) > k ? (unsigned char)P->p[k] : -1;
}

static void adv(parser_t *P) {
    if (*P->p == '\n') {
        P->line++;
        P->line_start = P->p + 1;
    }
    P->p++;
}

static bool is_ctrl(int c) { return (c >= 0 && c < 0x20 && c != '\t') || c == 0x7f; }
static bool is_bare(int c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-';
}
static bool is_digit(int c) { return c >= '0' && c <= '9'; }

/* Describes a byte for an error message: printable as itself, else as U+XXXX. */
static const char *show(int c, char *buf, size_t n) {
    if (c < 0)
        snprintf(buf, n, "end of file");
    else if (c == '\n')
        snprintf(buf, n, "end of line");
    else if (c > 0x20 && c < 0x7f)
        snprintf(buf, n, "'%c'", c);
    else
        snprintf(buf, n, "character 0x%02X", c);
    return buf;
}

/* ---- tree ---------------------------------------------------------------- */

static toml_value_t *new_value(toml_type_t t, int line, int col) {
    toml_value_t *v = mem_calloc(1, sizeof *v);
    v->type = t;
    v->line = line;
    v->col = col;
    return v;
}

void toml_free(toml_value_t *v) {
    if (!v) return;
    switch (v->type) {
    case TOML_STRING:
        free(v->u.str.ptr);
        break;
    case TOML_ARRAY:
        for (size_t i = 0; i < v->u.array.len; i++) toml_free(v->u.array.items[i]);
        free(v->u.array.items);
        break;
    case TOML_TABLE:
        for (size_t i = 0; i < v->u.table.len; i++) {
            free(v->u.table.entries[i].key);
            toml_free(v->u.table.entries[i].value);
        }
        free(v->u.table.entries);
        break;
    default:
        break;
    }
    free(v);
}

static toml_entry_t *find(const toml_value_t *t, const char *key, size_t len) {
    for (size_t i = 0; i < t->u.table.len; i++) {
        toml_entry_t *e = &t->u.table.entries[i];
        if (e->key_len == len && !memcmp(e->key, key, len)) return e;
    }
    return NULL;
}

const toml_value_t *toml_get(const toml_value_t *table, const char *key) {
    if (!table || table->type != TOML_TABLE) return NULL;
    toml_entry_t *e = find(table, key, strlen(key));
    return e ? e->value : NULL;
}

const char *toml_type_name(toml_type_t t) {
    switch (t) {
    case TOML_STRING: return "string";
    case TOML_INTEGER: return "integer";
    case TOML_FLOAT: return "float";
    case TOML_BOOLEAN: return "boolean";
    case TOML_ARRAY: return "array";
    case TOML_TABLE: return "table";
    }
    return "value";
}

/* Takes ownership of v (freeing it on failure). */
static toml_entry_t *add(parser_t *P, toml_value_t *t, const key_part_t *k, toml_value_t *v) {
    if (t->u.table.len >= MAX_TABLE_KEYS) {
        fail(P, "too many keys in one table (the limit is %d)", MAX_TABLE_KEYS);
        toml_free(v);
        return NULL;
    }
    if (t->u.table.len == t->u.table.cap) {
        t->u.table.cap = t->u.table.cap ? t->u.table.cap * 2 : 8;
        t->u.table.entries =
            mem_realloc(t->u.table.entries, t->u.table.cap * sizeof *t->u.table.entries);
    }
    toml_entry_t *e = &t->u.table.entries[t->u.table.len++];
    e->key = mem_strndup(k->s, k->len);
    e->key_len = k->len;
    e->line = k->line;
    e->col = k->col;
    e->value = v;
    return e;
}

static void push(toml_value_t *a, toml_value_t *v) {
    if (a->u.array.len == a->u.array.cap) {
        a->u.array.cap = a->u.array.cap ? a->u.array.cap * 2 : 8;
        a->u.array.items = mem_realloc(a->u.array.items, a->u.array.cap * sizeof(toml_value_t *));
    }
    a->u.array.items[a->u.array.len++] = v;
}

/* ---- lexical pieces -------------------------------------------------------- */

/* TOML documents are UTF-8; checking it once up front lets every later step treat
 * bytes >= 0x80 as already-valid text. */
static bool check_utf8(parser_t *P) {
    const unsigned char *s = (const unsigned char *)P->p, *e = (const unsigned char *)P->end;
    int line = 1;
    const unsigned char *ls = s;
    for (const unsigned char *q = s; q < e;) {
        unsigned c = *q;
        if (c < 0x80) {
            if (c == '\n') {
                line++;
                ls = q + 1;
            }
            q++;
            continue;
        }
        size_t n;
        uint32_t cp, min;
        if ((c & 0xe0) == 0xc0) n = 2, cp = c & 0x1f, min = 0x80;
        else if ((c & 0xf0) == 0xe0) n = 3, cp = c & 0x0f, min = 0x800;
        else if ((c & 0xf8) == 0xf0) n = 4, cp = c & 0x07, min = 0x10000;
        else goto bad;
        if ((size_t)(e - q) < n) goto bad;
        for (size_t i = 1; i < n; i++) {
            if ((q[i] & 0xc0) != 0x80) goto bad;
            cp = (cp << 6) | (q[i] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) goto bad;
        q += n;
        continue;
    bad:
        P->line = line;
        P->line_start = (const char *)ls;
        P->p = (const char *)q;
        fail(P, "invalid UTF-8 (a TOML file must be UTF-8 text)");
        return false;
    }
    return true;
}

static void skip_ws(parser_t *P) {
    while (peek(P) == ' ' || peek(P) == '\t') P->p++;
}

/* A comment runs to the end of the line and may hold no control character but tab. */
static void skip_comment(parser_t *P) {
    if (peek(P) != '#') return;
    P->p++;
    for (int c; (c = peek(P)) >= 0 && c != '\n';) {
        if (c == '\r' && peek_at(P, 1) == '\n') return;
        if (is_ctrl(c)) {
            char b[32];
            fail(P, "%s is not allowed in a comment", show(c, b, sizeof b));
            return;
        }
        P->p++;
    }
}

/* Consumes one newline (LF or CRLF). False when there is none here. */
static bool eat_newline(parser_t *P) {
    if (peek(P) == '\n') {
        adv(P);
        return true;
    }
    if (peek(P) == '\r' && peek_at(P, 1) == '\n') {
        P->p++;
        adv(P);
        return true;
    }
    return false;
}

/* Between array elements: whitespace, newlines and comments. */
static void skip_blank(parser_t *P) {
    for (;;) {
        skip_ws(P);
        if (peek(P) == '#') skip_comment(P);
        if (P->failed || !eat_newline(P)) return;
    }
}

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static void put_utf8(sbuf_t *b, uint32_t cp) {
    char u[4];
    size_t n;
    if (cp < 0x80) u[0] = (char)cp, n = 1;
    else if (cp < 0x800) u[0] = (char)(0xc0 | cp >> 6), u[1] = (char)(0x80 | (cp & 0x3f)), n = 2;
    else if (cp < 0x10000)
        u[0] = (char)(0xe0 | cp >> 12), u[1] = (char)(0x80 | ((cp >> 6) & 0x3f)),
        u[2] = (char)(0x80 | (cp & 0x3f)), n = 3;
    else
        u[0] = (char)(0xf0 | cp >> 18), u[1] = (char)(0x80 | ((cp >> 12) & 0x3f)),
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3f)), u[3] = (char)(0x80 | (cp & 0x3f)), n = 4;
    sb_put(b, u, n);
}

/* At the backslash of an escape in a basic string. */
static void escape(parser_t *P, sbuf_t *b) {
    P->p++;
    int c = peek(P);
    switch (c) {
    case 'b': sb_putc(b, '\b'); P->p++; return;
    case 't': sb_putc(b, '\t'); P->p++; return;
    case 'n': sb_putc(b, '\n'); P->p++; return;
    case 'f': sb_putc(b, '\f'); P->p++; return;
    case 'r': sb_putc(b, '\r'); P->p++; return;
    case '"': sb_putc(b, '"'); P->p++; return;
    case '\\': sb_putc(b, '\\'); P->p++; return;
    case 'u':
    case 'U': {
        int n = c == 'u' ? 4 : 8;
        uint32_t cp = 0;
        for (int i = 1; i <= n; i++) {
            int h = hexval(peek_at(P, (size_t)i));
            if (h < 0) {
                fail(P, "\\%c needs exactly %d hex digits", c, n);
                return;
            }
            cp = cp << 4 | (uint32_t)h;
        }
        if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
            fail(P, "\\%c%0*X is not a Unicode scalar value", c, n, cp);
            return;
        }
        put_utf8(b, cp);
        P->p += n + 1;
        return;
    }
    default: {
        char s[32];
        if (c > 0x20 && c < 0x7f)
            fail(P, "invalid escape \\%c in string", c);
        else
            fail(P, "invalid escape: backslash followed by %s", show(c, s, sizeof s));
    }
    }
}

/* Basic ("...") or literal ('...') string on one line; also used for quoted keys. */
static bool single_line_string(parser_t *P, sbuf_t *b) {
    int q = peek(P);
    P->p++;
    for (;;) {
        int c = peek(P);
        if (c == q) {
            P->p++;
            if (!b->ptr) sb_put(b, "", 0);
            return true;
        }
        if (c < 0 || c == '\n' || (c == '\r' && peek_at(P, 1) == '\n')) {
            fail(P, "unterminated string (a %s string ends on its line)",
                 q == '"' ? "basic" : "literal");
            return false;
        }
        if (q == '"' && c == '\\') {
            escape(P, b);
            if (P->failed) return false;
            continue;
        }
        if (is_ctrl(c)) {
            char s[32];
            fail(P, "%s in a string must be written as an escape", show(c, s, sizeof s));
            return false;
        }
        sb_putc(b, (char)c);
        P->p++;
    }
}

/* """...""" or '''...''': after the opening delimiter. Up to two quotes may sit
 * just before the closing delimiter, so a run of 3-5 quotes ends the string. */
static bool multi_line_string(parser_t *P, sbuf_t *b, int q) {
    eat_newline(P); /* a newline right after the delimiter is trimmed */
    sb_put(b, "", 0);
    for (;;) {
        int c = peek(P);
        if (c < 0) {
            fail(P, "unterminated multi-line string");
            return false;
        }
        if (c == q) {
            size_t run = 0;
            while (peek_at(P, run) == q) run++;
            if (run >= 3) {
                if (run > 5) {
                    fail(P, "too many quotes at the end of a multi-line string");
                    return false;
                }
                for (size_t i = 0; i < run - 3; i++) sb_putc(b, (char)q);
                P->p += run;
                return true;
            }
            for (size_t i = 0; i < run; i++) sb_putc(b, (char)q);
            P->p += run;
            continue;
        }
        if (c == '\n' || (c == '\r' && peek_at(P, 1) == '\n')) {
            eat_newline(P);
            sb_putc(b, '\n');
            continue;
        }
        if (q == '"' && c == '\\') {
            /* A backslash ending a line trims every space and newline after it. */
            size_t k = 1;
            while (peek_at(P, k) == ' ' || peek_at(P, k) == '\t') k++;
            if (peek_at(P, k) == '\n' || (peek_at(P, k) == '\r' && peek_at(P, k + 1) == '\n')) {
                P->p += k;
                for (;;) {
                    if (peek(P) == ' ' || peek(P) == '\t')
                        P->p++;
                    else if (!eat_newline(P))
                        break;
                }
                continue;
            }
            escape(P, b);
            if (P->failed) return false;
            continue;
        }
        if (is_ctrl(c)) {
            char s[32];
            fail(P, "%s in a string must be written as an escape", show(c, s, sizeof s));
            return false;
        }
        sb_putc(b, (char)c);
        P->p++;
    }
}

/* key = simple-key *( ws "." ws simple-key ); fills parts, returns how many (0 on error). */
static size_t parse_key(parser_t *P, key_part_t *parts) {
    size_t n = 0;
    for (;;) {
        if (n == MAX_KEY_PARTS) {
            fail(P, "key has more than %d dotted parts", MAX_KEY_PARTS);
            goto err;
        }
        key_part_t *k = &parts[n];
        k->line = P->line;
        k->col = col_of(P);
        int c = peek(P);
        sbuf_t b = {0};
        if (c == '"' || c == '\'') {
            if (peek_at(P, 1) == c && peek_at(P, 2) == c) {
                fail(P, "a key cannot be a multi-line string");
                goto err;
            }
            if (!single_line_string(P, &b)) {
                free(b.ptr);
                goto err;
            }
        } else if (is_bare(c)) {
            const char *s = P->p;
            while (is_bare(peek(P))) P->p++;
            sb_put(&b, s, (size_t)(P->p - s));
        } else {
            char s[32];
            fail(P, "expected a key, found %s", show(c, s, sizeof s));
            goto err;
        }
        k->s = b.ptr;
        k->len = b.len;
        n++;
        skip_ws(P);
        if (peek(P) != '.') return n;
        P->p++;
        skip_ws(P);
    }
err:
    for (size_t i = 0; i < n; i++) free(parts[i].s);
    return 0;
}

static void free_key(key_part_t *parts, size_t n) {
    for (size_t i = 0; i < n; i++) free(parts[i].s);
}

/* ---- values ----------------------------------------------------------------- */

/* Digits of one base with '_' allowed only between two digits. Returns the count
 * of characters taken, or -1 after reporting a misplaced underscore. */
static long digits(parser_t *P, const char *s, size_t n, int base, sbuf_t *out) {
    size_t i = 0;
    bool prev_digit = false;
    for (; i < n; i++) {
        int c = (unsigned char)s[i];
        int v = hexval(c);
        if (c == '_') {
            if (!prev_digit || i + 1 >= n || hexval((unsigned char)s[i + 1]) < 0 ||
                hexval((unsigned char)s[i + 1]) >= base) {
                fail(P, "an underscore in a number must sit between two digits");
                return -1;
            }
            prev_digit = false;
            continue;
        }
        if (v < 0 || v >= base) break;
        sb_putc(out, (char)c);
        prev_digit = true;
    }
    return (long)i;
}

static toml_value_t *number(parser_t *P, const char *s, size_t n, int line, int col) {
    sbuf_t b = {0};
    toml_value_t *v = NULL;
    size_t i = 0;
    if (n > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'o' || s[1] == 'b')) {
        int base = s[1] == 'x' ? 16 : s[1] == 'o' ? 8 : 2;
        long k = digits(P, s + 2, n - 2, base, &b);
        if (k < 0) goto out;
        if (k == 0 || (size_t)k != n - 2) goto invalid;
        errno = 0;
        unsigned long long u = strtoull(b.ptr, NULL, base);
        if (errno || u > INT64_MAX) {
            fail(P, "integer %.*s is out of range (64-bit signed)", (int)n, s);
            goto out;
        }
        v = new_value(TOML_INTEGER, line, col);
        v->u.integer = (int64_t)u;
        goto out;
    }
    if (s[0] == '+' || s[0] == '-') sb_putc(&b, s[i++]);
    if (i >= n || !is_digit((unsigned char)s[i])) goto invalid;
    if (s[i] == '0' && i + 1 < n && (is_digit((unsigned char)s[i + 1]) || s[i + 1] == '_')) {
        fail(P, "leading zeros are not allowed in %.*s", (int)n, s);
        goto out;
    }
    long k = digits(P, s + i, n - i, 10, &b);
    if (k < 0) goto out;
    i += (size_t)k;
    bool is_float = false;
    if (i < n && s[i] == '.') {
        sb_putc(&b, '.');
        i++;
        if (i >= n || !is_digit((unsigned char)s[i])) goto invalid;
        k = digits(P, s + i, n - i, 10, &b);
        if (k < 0) goto out;
        i += (size_t)k;
        is_float = true;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        sb_putc(&b, 'e');
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-')) sb_putc(&b, s[i++]);
        if (i >= n || !is_digit((unsigned char)s[i])) goto invalid;
        k = digits(P, s + i, n - i, 10, &b);
        if (k < 0) goto out;
        i += (size_t)k;
        is_float = true;
    }
    if (i != n) goto invalid;
    errno = 0;
    if (is_float) {
        double d = strtod(b.ptr, NULL);
        if (errno == ERANGE && (d > 1.0 || d < -1.0)) {
            fail(P, "float %.*s is out of range", (int)n, s);
            goto out;
        }
        v = new_value(TOML_FLOAT, line, col);
        v->u.flt = d;
    } else {
        long long x = strtoll(b.ptr, NULL, 10);
        if (errno == ERANGE) {
            fail(P, "integer %.*s is out of range (64-bit signed)", (int)n, s);
            goto out;
        }
        v = new_value(TOML_INTEGER, line, col);
        v->u.integer = x;
    }
    goto out;
invalid:
    fail(P, "invalid value %.*s (strings need quotes)", (int)n, s);
out:
    free(b.ptr);
    return v;
}

static bool looks_like_date(const char *s, size_t n) {
    bool ymd = n >= 5 && is_digit(s[0]) && is_digit(s[1]) && is_digit(s[2]) && is_digit(s[3]) &&
               s[4] == '-';
    bool hms = n >= 3 && is_digit(s[0]) && is_digit(s[1]) && s[2] == ':';
    return ymd || hms;
}

/* Bare values: booleans, numbers, inf/nan, and dates (refused). */
static toml_value_t *bare_value(parser_t *P) {
    int line = P->line, col = col_of(P);
    const char *s = P->p;
    for (int c; (c = peek(P)) >= 0 && (is_bare(c) || c == '+' || c == '.' || c == ':');) P->p++;
    size_t n = (size_t)(P->p - s);
    if (n == 0) {
        char b[32];
        fail(P, "expected a value, found %s", show(peek(P), b, sizeof b));
        return NULL;
    }
    toml_value_t *v;
    if ((n == 4 && !memcmp(s, "true", 4)) || (n == 5 && !memcmp(s, "false", 5))) {
        v = new_value(TOML_BOOLEAN, line, col);
        v->u.boolean = n == 4;
        return v;
    }
    const char *m = s + (s[0] == '+' || s[0] == '-');
    size_t mn = n - (size_t)(m - s);
    if (mn == 3 && (!memcmp(m, "inf", 3) || !memcmp(m, "nan", 3))) {
        v = new_value(TOML_FLOAT, line, col);
        v->u.flt = m[0] == 'i' ? __builtin_inf() : __builtin_nan("");
        if (s[0] == '-') v->u.flt = -v->u.flt;
        return v;
    }
    if (looks_like_date(s, n)) {
        P->p = s;
        fail(P, "dates and times are not supported in dsock config");
        return NULL;
    }
    P->p = s;
    v = number(P, s, n, line, col);
    P->p = s + n;
    return v;
}

static toml_value_t *parse_value(parser_t *P);
static bool keyval(parser_t *P, toml_value_t *table);

static toml_value_t *array(parser_t *P) {
    toml_value_t *a = new_value(TOML_ARRAY, P->line, col_of(P));
    P->p++;
    for (;;) {
        skip_blank(P);
        if (P->failed) break;
        if (peek(P) == ']') {
            P->p++;
            return a;
        }
        toml_value_t *v = parse_value(P);
        if (!v) break;
        push(a, v);
        skip_blank(P);
        if (P->failed) break;
        if (peek(P) == ',') {
            P->p++;
            continue;
        }
        if (peek(P) == ']') {
            P->p++;
            return a;
        }
        char b[32];
        fail(P, "expected ',' or ']' in array, found %s", show(peek(P), b, sizeof b));
        break;
    }
    toml_free(a);
    return NULL;
}

static toml_value_t *inline_table(parser_t *P) {
    toml_value_t *t = new_value(TOML_TABLE, P->line, col_of(P));
    P->p++;
    skip_ws(P);
    if (peek(P) == '}') {
        P->p++;
        t->flags = F_INLINE;
        return t;
    }
    for (;;) {
        skip_ws(P);
        if (peek(P) == '}') {
            fail(P, "a trailing comma is not allowed in an inline table");
            break;
        }
        if (!keyval(P, t)) break;
        skip_ws(P);
        if (peek(P) == ',') {
            P->p++;
            continue;
        }
        if (peek(P) == '}') {
            P->p++;
            t->flags = F_INLINE;
            return t;
        }
        if (peek(P) == '\n' || peek(P) == '\r' || peek(P) == '#')
            fail(P, "an inline table must be on one line (TOML 1.0)");
        else {
            char b[32];
            fail(P, "expected ',' or '}' in inline table, found %s", show(peek(P), b, sizeof b));
        }
        break;
    }
    toml_free(t);
    return NULL;
}

static toml_value_t *parse_value(parser_t *P) {
    if (++P->depth > TOML_MAX_DEPTH) {
        fail(P, "values nested deeper than %d", TOML_MAX_DEPTH);
        P->depth--;
        return NULL;
    }
    toml_value_t *v = NULL;
    int c = peek(P);
    int line = P->line, col = col_of(P);
    if (c == '"' || c == '\'') {
        sbuf_t b = {0};
        bool ok;
        if (peek_at(P, 1) == c && peek_at(P, 2) == c) {
            P->p += 3;
            ok = multi_line_string(P, &b, c);
        } else {
            ok = single_line_string(P, &b);
        }
        if (ok) {
            v = new_value(TOML_STRING, line, col);
            v->u.str.ptr = b.ptr;
            v->u.str.len = b.len;
        } else {
            free(b.ptr);
        }
    } else if (c == '[') {
        v = array(P);
    } else if (c == '{') {
        v = inline_table(P);
    } else {
        v = bare_value(P);
    }
    P->depth--;
    return v;
}

/* ---- keys into tables --------------------------------------------------------- */

/* The key as written, for messages: control characters (possible in quoted keys)
 * become '?' so a message stays on one line. */
static void show_key(const key_part_t *parts, size_t n, char *out, size_t len) {
    size_t o = 0;
    for (size_t i = 0; i < n && o + 1 < len; i++) {
        if (i) out[o++] = '.';
        for (size_t j = 0; j < parts[i].len && o + 1 < len; j++) {
            unsigned char c = (unsigned char)parts[i].s[j];
            out[o++] = c < 0x20 || c == 0x7f ? '?' : (char)c;
        }
    }
    out[o] = '\0';
}

/* key = value into table (dotted keys make or extend sub-tables). */
static bool keyval(parser_t *P, toml_value_t *table) {
    key_part_t parts[MAX_KEY_PARTS];
    size_t n = parse_key(P, parts);
    if (!n) return false;
    char name[160];
    show_key(parts, n, name, sizeof name);
    bool ok = false;
    if (peek(P) != '=') {
        char b[32];
        fail(P, "expected '=' after key %s, found %s", name, show(peek(P), b, sizeof b));
        goto out;
    }
    P->p++;
    skip_ws(P);
    toml_value_t *t = table;
    for (size_t i = 0; i + 1 < n; i++) {
        toml_entry_t *e = find(t, parts[i].s, parts[i].len);
        if (!e) {
            toml_value_t *sub = new_value(TOML_TABLE, parts[i].line, parts[i].col);
            sub->flags = F_DOTTED;
            e = add(P, t, &parts[i], sub);
            if (!e) goto out;
        } else if (e->value->type != TOML_TABLE) {
            fail(P, "cannot set %s: %.*s is already a%s %s", name, (int)parts[i].len, parts[i].s,
                 e->value->type == TOML_INTEGER || e->value->type == TOML_ARRAY ? "n" : "",
                 toml_type_name(e->value->type));
            goto out;
        } else if (e->value->flags & F_INLINE) {
            fail(P, "cannot set %s: inline table %.*s cannot be extended", name,
                 (int)parts[i].len, parts[i].s);
            goto out;
        } else if (!(e->value->flags & F_DOTTED)) {
            fail(P, "cannot set %s with a dotted key: table %.*s is defined by a [table] header",
                 name, (int)parts[i].len, parts[i].s);
            goto out;
        }
        t = e->value;
    }
    if (find(t, parts[n - 1].s, parts[n - 1].len)) {
        P->p = P->line_start + parts[0].col - 1;
        fail(P, "duplicate key %s", name);
        goto out;
    }
    toml_value_t *v = parse_value(P);
    if (!v) goto out;
    ok = add(P, t, &parts[n - 1], v) != NULL;
out:
    free_key(parts, n);
    return ok;
}

/* [a.b.c] or [[a.b.c]]: returns the table that following key/values go into. */
static toml_value_t *header(parser_t *P, toml_value_t *root) {
    int line = P->line, col = col_of(P);
    bool aot = peek_at(P, 1) == '[';
    P->p += aot ? 2 : 1;
    skip_ws(P);
    key_part_t parts[MAX_KEY_PARTS];
    size_t n = parse_key(P, parts);
    if (!n) return NULL;
    char name[160];
    show_key(parts, n, name, sizeof name);
    toml_value_t *t = root, *result = NULL;
    if (peek(P) != ']' || (aot && peek_at(P, 1) != ']')) {
        char b[32];
        fail(P, "expected '%s' to close the table header, found %s", aot ? "]]" : "]",
             show(peek(P), b, sizeof b));
        goto out;
    }
    P->p += aot ? 2 : 1;
    for (size_t i = 0; i + 1 < n; i++) {
        toml_entry_t *e = find(t, parts[i].s, parts[i].len);
        if (!e) {
            toml_value_t *sub = new_value(TOML_TABLE, line, col);
            sub->flags = F_IMPLICIT;
            if (!(e = add(P, t, &parts[i], sub))) goto out;
        }
        toml_value_t *v = e->value;
        if (v->type == TOML_ARRAY && (v->flags & F_AOT)) {
            t = v->u.array.items[v->u.array.len - 1];
        } else if (v->type == TOML_TABLE && !(v->flags & F_INLINE)) {
            t = v;
        } else {
            fail(P, "cannot define [%s]: %.*s is %s", name, (int)parts[i].len, parts[i].s,
                 v->type == TOML_TABLE ? "an inline table, which cannot be extended"
                 : v->type == TOML_ARRAY ? "an array, not an array of tables"
                                         : "not a table");
            goto out;
        }
    }
    const key_part_t *last = &parts[n - 1];
    toml_entry_t *e = find(t, last->s, last->len);
    if (aot) {
        if (!e) {
            toml_value_t *a = new_value(TOML_ARRAY, line, col);
            a->flags = F_AOT;
            if (!(e = add(P, t, last, a))) goto out;
        } else if (e->value->type != TOML_ARRAY || !(e->value->flags & F_AOT)) {
            fail(P, "cannot define [[%s]]: %s is already defined as a%s %s", name, name,
                 e->value->type == TOML_ARRAY ? "n" : "",
                 e->value->type == TOML_ARRAY ? "array" : toml_type_name(e->value->type));
            goto out;
        }
        result = new_value(TOML_TABLE, line, col);
        result->flags = F_HEADER;
        push(e->value, result);
        goto out;
    }
    if (!e) {
        result = new_value(TOML_TABLE, line, col);
        result->flags = F_HEADER;
        if (!add(P, t, last, result)) result = NULL;
        goto out;
    }
    toml_value_t *v = e->value;
    if (v->type == TOML_TABLE && v->flags == F_IMPLICIT) {
        v->flags = F_HEADER;
        v->line = line;
        v->col = col;
        result = v;
    } else if (v->type == TOML_TABLE && (v->flags & F_HEADER)) {
        fail(P, "table [%s] is defined twice (first on line %d)", name, v->line);
    } else if (v->type == TOML_TABLE && (v->flags & F_DOTTED)) {
        fail(P, "table [%s] was already defined with dotted keys on line %d", name, v->line);
    } else if (v->type == TOML_ARRAY && (v->flags & F_AOT)) {
        fail(P, "[%s] is an array of tables: use [[%s]]", name, name);
    } else {
        fail(P, "cannot define [%s]: the key is already a%s %s", name,
             v->type == TOML_INTEGER || v->type == TOML_ARRAY ? "n" : "",
             v->type == TOML_TABLE ? "inline table" : toml_type_name(v->type));
    }
out:
    free_key(parts, n);
    return result;
}

toml_value_t *toml_parse(const char *buf, size_t len, toml_error_t *err) {
    parser_t P = {.p = buf, .end = buf + len, .line_start = buf, .line = 1, .err = err};
    memset(err, 0, sizeof *err);
    if (!check_utf8(&P)) return NULL;
    toml_value_t *root = new_value(TOML_TABLE, 1, 1);
    root->flags = F_HEADER;
    toml_value_t *cur = root;
    /* A byte-order mark is allowed at the very start. */
    if (len >= 3 && !memcmp(buf, "\xEF\xBB\xBF", 3)) P.p += 3;
    while (!P.failed) {
        skip_ws(&P);
        int c = peek(&P);
        if (c < 0) break;
        if (c == '[') {
            toml_value_t *t = header(&P, root);
            if (!t) break;
            cur = t;
        } else if (c != '#' && c != '\n' && c != '\r') {
            if (!keyval(&P, cur)) break;
        }
        skip_ws(&P);
        skip_comment(&P);
        if (P.failed) break;
        if (peek(&P) < 0) break;
        if (!eat_newline(&P)) {
            char b[32];
            fail(&P, "expected the end of the line, found %s", show(peek(&P), b, sizeof b));
        }
    }
    if (P.failed) {
        toml_free(root);
        return NULL;
    }
    return root;
}
