/* A strict TOML 1.0 reader for configuration files: I/O-free, it parses one
 * buffer into a tree of tables, arrays and scalars. It accepts key/values, tables,
 * arrays of tables, inline tables, all string forms, integers, floats and
 * booleans; anything else (dates and times, invalid syntax) is an error with the
 * line and column where it was found. */
#ifndef DSOCK_TOML_H
#define DSOCK_TOML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum toml_type {
    TOML_STRING = 1,
    TOML_INTEGER,
    TOML_FLOAT,
    TOML_BOOLEAN,
    TOML_ARRAY,
    TOML_TABLE,
} toml_type_t;

typedef struct toml_value toml_value_t;

/* One key of a table. key is NUL-terminated but may hold NUL bytes (a quoted key
 * with \u0000), so key_len is the real length. line/col: where the key starts. */
typedef struct toml_entry {
    char *key;
    size_t key_len;
    int line, col;
    toml_value_t *value;
} toml_entry_t;

struct toml_value {
    toml_type_t type;
    int line, col; /* where the value (or the table's header) starts; 1-based */
    union {
        struct {
            char *ptr; /* NUL-terminated UTF-8; may hold NUL bytes, see len */
            size_t len;
        } str;
        int64_t integer;
        double flt;
        bool boolean;
        struct {
            toml_value_t **items;
            size_t len, cap;
        } array;
        struct {
            toml_entry_t *entries; /* in the order they were defined */
            size_t len, cap;
        } table;
    } u;
    unsigned flags; /* private to toml.c: how a table or array was defined */
};

typedef struct toml_error {
    int line, col;  /* 1-based; where parsing stopped */
    char msg[200];  /* e.g. "invalid escape \\q in string" (no position prefix) */
} toml_error_t;

/* Parses len bytes (need not be NUL-terminated). Returns the root table, owned by
 * the caller (free with toml_free), or NULL with err filled. Nesting deeper than
 * TOML_MAX_DEPTH is refused so hostile input cannot exhaust the stack. */
#define TOML_MAX_DEPTH 64
toml_value_t *toml_parse(const char *buf, size_t len, toml_error_t *err);

/* Frees a tree from toml_parse; toml_free(NULL) does nothing. */
void toml_free(toml_value_t *v);

/* The value of key in a table (keys compared byte for byte), or NULL. The result
 * belongs to the tree. */
const toml_value_t *toml_get(const toml_value_t *table, const char *key);

/* "string", "integer", "float", "boolean", "array" or "table". */
const char *toml_type_name(toml_type_t t);

#endif
