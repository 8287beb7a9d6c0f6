/* Config file readers: TOML (common/toml.h), JSON (cJSON) and YAML (libyaml),
 * each turned into the same flat list of top-level keys with their type and line,
 * so config.c checks keys and types once for every format.
 *
 * Ownership: config_file_t owns its entries; config_file_free releases them. */
#ifndef DSOCK_CONFIG_FILE_H
#define DSOCK_CONFIG_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum config_file_format {
    CONFIG_FILE_TOML = 1,
    CONFIG_FILE_JSON,
    CONFIG_FILE_YAML,
} config_file_format_t;

typedef enum config_file_type {
    CONFIG_FILE_STRING = 1,
    CONFIG_FILE_INTEGER,
    CONFIG_FILE_FLOAT,
    CONFIG_FILE_BOOLEAN,
    CONFIG_FILE_ARRAY,
    CONFIG_FILE_TABLE,
    CONFIG_FILE_NULL, /* JSON null, YAML null/~/empty: "leave the default" */
} config_file_type_t;

typedef struct config_file_entry {
    char *key;  /* NUL-terminated; a key holding a NUL byte is cut there */
    int line;   /* 1-based; 0 when the format cannot tell */
    config_file_type_t type;
    char *str;  /* CONFIG_FILE_STRING: the text (NUL-terminated, NUL bytes refused) */
    int64_t integer;
    double flt;
    bool boolean;
} config_file_entry_t;

typedef struct config_file {
    config_file_entry_t *entries; /* in file order */
    size_t len;
} config_file_t;

/* Largest config file read; a bigger one is refused rather than slurped. */
#define CONFIG_FILE_MAX_BYTES (1024 * 1024)

/* The format named by path's extension (.toml, .json, .yaml, .yml), or 0. */
config_file_format_t config_file_format(const char *path);

/* Parses a buffer. name is used in messages only ("name:line: ..."). Returns 0, or
 * -1 with a one-line message in err naming name and the line where known. */
int config_file_parse(const char *name, const char *buf, size_t len, config_file_format_t fmt,
                      config_file_t *out, char *err, size_t errlen);

/* Reads and parses path, the format taken from its extension. 0 or -1 + err. */
int config_file_read(const char *path, config_file_t *out, char *err, size_t errlen);

const char *config_file_type_name(config_file_type_t t);

/* Copies s into out (size n) for an error message: control characters become
 * \xNN and long text is cut with "...", so a message stays on one line. */
const char *config_file_printable(const char *s, char *out, size_t n);

/* config_file_free on a zeroed or already-freed struct does nothing. */
void config_file_free(config_file_t *f);

#endif
