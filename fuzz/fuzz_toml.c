/* libFuzzer target for the strict TOML reader and the config file readers. Every
 * input is parsed as TOML; a tree is walked to check the reader's promises (strings
 * NUL-terminated at their length and valid UTF-8, keys unique per table), an error
 * must carry a position inside the input and a message. The same bytes then go
 * through the config-level readers for TOML, JSON and YAML. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/config_file.h"
#include "common/toml.h"

#define CHECK(cond)              \
    do {                         \
        if (!(cond)) abort();    \
    } while (0)

static void check_utf8(const unsigned char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        size_t k = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : 4;
        CHECK(c < 0x80 || (c >= 0xc2 && c <= 0xf4));
        CHECK(i + k <= n);
        for (size_t j = 1; j < k; j++) CHECK((s[i + j] & 0xc0) == 0x80);
        i += k;
    }
}

static void walk(const toml_value_t *v, int depth) {
    CHECK(depth < 10000);
    CHECK(v->line >= 1 && v->col >= 1);
    switch (v->type) {
    case TOML_STRING:
        CHECK(v->u.str.ptr && v->u.str.ptr[v->u.str.len] == '\0');
        check_utf8((const unsigned char *)v->u.str.ptr, v->u.str.len);
        break;
    case TOML_ARRAY:
        for (size_t i = 0; i < v->u.array.len; i++) walk(v->u.array.items[i], depth + 1);
        break;
    case TOML_TABLE:
        for (size_t i = 0; i < v->u.table.len; i++) {
            const toml_entry_t *e = &v->u.table.entries[i];
            CHECK(e->key && e->key[e->key_len] == '\0');
            check_utf8((const unsigned char *)e->key, e->key_len);
            for (size_t j = 0; j < i; j++)
                CHECK(v->u.table.entries[j].key_len != e->key_len ||
                      memcmp(v->u.table.entries[j].key, e->key, e->key_len));
            walk(e->value, depth + 1);
        }
        break;
    case TOML_INTEGER:
    case TOML_FLOAT:
    case TOML_BOOLEAN:
        break;
    default:
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* A private copy, so reading past the end is caught by ASan. */
    char *buf = malloc(size ? size : 1);
    memcpy(buf, data, size);
    int lines = 1;
    for (size_t i = 0; i < size; i++) lines += buf[i] == '\n';

    toml_error_t err;
    toml_value_t *root = toml_parse(buf, size, &err);
    if (root) {
        CHECK(root->type == TOML_TABLE);
        walk(root, 0);
        toml_free(root);
    } else {
        CHECK(err.line >= 1 && err.line <= lines);
        CHECK(err.col >= 1);
        CHECK(err.msg[0] != '\0' && memchr(err.msg, '\0', sizeof err.msg));
    }

    static const config_file_format_t fmts[] = {CONFIG_FILE_TOML, CONFIG_FILE_JSON,
                                                CONFIG_FILE_YAML};
    for (size_t f = 0; f < 3; f++) {
        config_file_t cf;
        char msg[512];
        if (config_file_parse("fuzz", buf, size, fmts[f], &cf, msg, sizeof msg) == 0) {
            for (size_t i = 0; i < cf.len; i++) {
                CHECK(cf.entries[i].key);
                CHECK(cf.entries[i].type != CONFIG_FILE_STRING || cf.entries[i].str);
            }
            config_file_free(&cf);
        } else {
            CHECK(msg[0] && strchr(msg, '\n') == NULL);
            CHECK(!cf.entries && cf.len == 0);
        }
    }
    free(buf);
    return 0;
}
