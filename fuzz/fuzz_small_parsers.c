/* libFuzzer target for the small parsers of outside text that have no target of
 * their own: the identifier and integer validators (protocol/validate.h: every
 * id and integer from the API, JWTs and the bus), Go durations from config files
 * (config_parse_duration), the healthcheck client's URL and status-line parsers
 * (ops/healthcheck.h), the redis_sentinels list (config_parse_sentinels) and
 * Sentinel's +switch-master messages, which come from the network
 * (redis_sentinel_parse_switch). The first byte picks the parser; the rest is its input.
 * Each is checked against an independent reference or its documented invariants. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "ops/healthcheck.h"
#include "protocol/validate.h"
#include "store/redis_sentinel.h"
#include "../tests/support/reference.h"

/* Reference identifier rule: valid UTF-8 and no C0, DEL or C1 code point. */
static bool ref_ident(const uint8_t *s, size_t n) {
    if (!n || !ref_utf8_valid(s, n)) return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < 0x20 || s[i] == 0x7F) return false;
        /* C1 U+0080..U+009F is encoded C2 80..C2 9F */
        if (s[i] == 0xC2 && i + 1 < n && s[i + 1] >= 0x80 && s[i + 1] <= 0x9F) return false;
    }
    return true;
}

/* Reference integer rule: [+-]?[0-9]+ within int64, computed digit by digit. */
static bool ref_int(const uint8_t *s, size_t n, int64_t *out) {
    size_t i = 0;
    bool neg = false;
    if (i < n && (s[i] == '+' || s[i] == '-')) neg = s[i++] == '-';
    if (i == n) return false;
    __int128 v = 0;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        v = v * 10 + (s[i] - '0');
        if (v > (__int128)INT64_MAX + 1) return false;
    }
    if (neg) v = -v;
    if (v > INT64_MAX || v < INT64_MIN) return false;
    *out = (int64_t)v;
    return true;
}

static char *cstring(const uint8_t *data, size_t size) {
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    uint8_t which = data[0] % 7;
    const uint8_t *in = data + 1;
    size_t n = size - 1;
    switch (which) {
    case 0: {
        if (ident_valid((const char *)in, n) != ref_ident(in, n)) abort();
        break;
    }
    case 1: {
        int64_t got = 42, want = 0;
        bool ok = parse_int64((const char *)in, n, &got);
        bool ref = ref_int(in, n, &want);
        if (ok != ref || (ok && got != want) || (!ok && got != 42)) abort();
        break;
    }
    case 2: {
        char *s = cstring(in, n);
        double sec = -1;
        int r = config_parse_duration(s, &sec);
        if (r != 0 && r != -1) abort();
        if (r == 0 && !(sec >= 0)) abort(); /* no sign is accepted: never negative or NaN */
        free(s);
        break;
    }
    case 3: {
        char *s = cstring(in, n);
        healthcheck_target_t t;
        char err[128];
        if (healthcheck_parse_url(s, &t, err, sizeof err) == 0) {
            if (!memchr(t.host, '\0', sizeof t.host) || !memchr(t.port, '\0', sizeof t.port) ||
                !memchr(t.path, '\0', sizeof t.path) || t.path[0] != '/')
                abort();
            long p = atol(t.port);
            if (p < 1 || p > 65535) abort();
        } else if (!memchr(err, '\0', sizeof err)) {
            abort();
        }
        free(s);
        break;
    }
    case 4: {
        int st = healthcheck_status((const char *)in, n);
        if (st != -1 && (st < 100 || st > 999)) abort();
        if (st != -1 && (n < 12 || memcmp(in, "HTTP/1.", 7) != 0)) abort();
        break;
    }
    case 5: {
        char *s = cstring(in, n);
        config_hostport_t out[4];
        char err[128];
        int k = config_parse_sentinels(s, out, 4, err, sizeof err);
        if (k == -1) {
            if (!memchr(err, '\0', sizeof err)) abort();
        } else if (k < 1 || k > 4) {
            abort();
        } else {
            for (int i = 0; i < k; i++)
                if (!memchr(out[i].host, '\0', sizeof out[i].host) || out[i].port < 1 ||
                    out[i].port > 65535)
                    abort();
        }
        free(s);
        break;
    }
    case 6: {
        char host[64];
        int port = 0;
        int r = redis_sentinel_parse_switch((const char *)in, n, "mymaster", host, sizeof host,
                                            &port);
        if (r != 0 && r != -1) abort();
        /* Only our master's messages (fields split on spaces, so leading ones are
         * skipped), and only a whole address, are taken. */
        size_t sp = 0;
        while (sp < n && in[sp] == ' ') sp++;
        if (r == 0 && (n - sp < 9 || memcmp(in + sp, "mymaster ", 9) != 0 || port < 1 ||
                       port > 65535 || !memchr(host, '\0', sizeof host) || !host[0]))
            abort();
        break;
    }
    }
    return 0;
}
