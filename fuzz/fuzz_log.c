/* libFuzzer target for the log line formatter: the input is split into byte-string
 * fields (at 0xFE bytes) and formatted in both formats into a buffer whose size the
 * input chooses. Checked: the line fits, is one line of valid UTF-8 with no raw
 * control byte, the JSON form parses, and when nothing was cut every logfmt value
 * decodes back to its exact input bytes. */
#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "protocol/utf8.h"
#include "../tests/support/reference.h"

#define MAX_FIELDS 8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    size_t cap = LOG_LINE_MIN + (size_t)(data[0] | data[1] << 8) % (LOG_LINE_MAX - LOG_LINE_MIN + 1);
    data += 2;
    size -= 2;
    log_field_t f[MAX_FIELDS];
    size_t n = 0, start = 0;
    static const char *const keys[MAX_FIELDS] = {"a", "user", "session", "path", "e", "f", "g",
                                                 "h"};
    for (size_t i = 0; i <= size && n < MAX_FIELDS; i++) {
        if (i == size || data[i] == 0xfe) {
            f[n] = (log_field_t){.key = keys[n], .kind = LOG_FIELD_BYTES,
                                 .s = (const char *)data + start, .len = i - start};
            n++;
            start = i + 1;
        }
    }
    static char buf[LOG_LINE_MAX + 1];
    static char dec[LOG_LINE_MAX];
    for (int fm = 0; fm < 2; fm++) {
        log_header_t h = {.format = (log_format_t)fm, .time = {1795931720, 123456789},
                          .level = LOG_INFO, .role = "worker"};
        size_t len = log_format_line(buf, cap, &h, "fuzz", f, n);
        if (len == 0 || len > cap - 1 || buf[len] || buf[len - 1] != '\n') abort();
        for (size_t i = 0; i + 1 < len; i++)
            if ((unsigned char)buf[i] < 0x20 || buf[i] == 0x7f) abort();
        if (!utf8_valid((const uint8_t *)buf, len)) abort();
        bool truncated = strstr(buf, "truncated") != NULL;
        if (fm == LOG_FORMAT_JSON) {
            cJSON *j = cJSON_ParseWithLength(buf, len);
            if (!j) abort();
            cJSON_Delete(j);
            continue;
        }
        if (truncated) continue;
        const char *p = strstr(buf, " msg=fuzz");
        if (!p) abort();
        p += strlen(" msg=fuzz");
        for (size_t k = 0; k < n; k++) {
            char want[16];
            snprintf(want, sizeof want, " %s=", f[k].key);
            if (strncmp(p, want, strlen(want))) abort();
            p += strlen(want);
            long m = ref_logfmt_unescape(&p, dec);
            if (m < 0 || (size_t)m != f[k].len || memcmp(dec, f[k].s, f[k].len)) abort();
        }
        if (strcmp(p, "\n")) abort();
    }
    return 0;
}
