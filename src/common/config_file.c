/* Config file readers (see config_file.h). TOML goes through our strict reader,
 * JSON through cJSON and YAML through libyaml's event parser; each yields the
 * top-level keys only, with nested values reported as "array" or "table" so the
 * config layer can name the wrong type. */
#include "common/config_file.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "common/mem.h"
#include "common/toml.h"

const char *config_file_type_name(config_file_type_t t) {
    switch (t) {
    case CONFIG_FILE_STRING: return "string";
    case CONFIG_FILE_INTEGER: return "integer";
    case CONFIG_FILE_FLOAT: return "float";
    case CONFIG_FILE_BOOLEAN: return "boolean";
    case CONFIG_FILE_ARRAY: return "array";
    case CONFIG_FILE_TABLE: return "table";
    case CONFIG_FILE_NULL: return "null";
    }
    return "value";
}

const char *config_file_printable(const char *s, char *out, size_t n) {
    size_t o = 0, max = n > 68 ? 64 : n - 4;
    for (; *s && o < max; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20 || c == 0x7f) {
            if (o + 4 >= max) break;
            o += (size_t)snprintf(out + o, n - o, "\\x%02X", c);
        } else {
            out[o++] = (char)c;
        }
    }
    if (*s) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
    return out;
}

config_file_format_t config_file_format(const char *path) {
    const char *dot = strrchr(path, '.');
    const char *slash = strrchr(path, '/');
    if (!dot || (slash && dot < slash)) return 0;
    if (!strcasecmp(dot, ".toml")) return CONFIG_FILE_TOML;
    if (!strcasecmp(dot, ".json")) return CONFIG_FILE_JSON;
    if (!strcasecmp(dot, ".yaml") || !strcasecmp(dot, ".yml")) return CONFIG_FILE_YAML;
    return 0;
}

void config_file_free(config_file_t *f) {
    for (size_t i = 0; i < f->len; i++) {
        free(f->entries[i].key);
        free(f->entries[i].str);
    }
    free(f->entries);
    f->entries = NULL;
    f->len = 0;
}

/* Appends an entry; refuses a key seen before (JSON and YAML parsers allow them). */
static config_file_entry_t *add_entry(config_file_t *f, const char *name, const char *key,
                                      int line, char *err, size_t errlen) {
    for (size_t i = 0; i < f->len; i++) {
        if (!strcmp(f->entries[i].key, key)) {
            char pk[80];
            config_file_printable(key, pk, sizeof pk);
            if (line)
                snprintf(err, errlen, "%s:%d: duplicate key \"%s\"", name, line, pk);
            else
                snprintf(err, errlen, "%s: duplicate key \"%s\"", name, pk);
            return NULL;
        }
    }
    f->entries = mem_realloc(f->entries, (f->len + 1) * sizeof *f->entries);
    config_file_entry_t *e = &f->entries[f->len++];
    memset(e, 0, sizeof *e);
    e->key = mem_strdup(key);
    e->line = line;
    return e;
}

static int set_string(config_file_entry_t *e, const char *name, const char *s, size_t len,
                      char *err, size_t errlen) {
    if (memchr(s, '\0', len)) {
        snprintf(err, errlen, "%s:%d: %s: a NUL character is not allowed in a value", name,
                 e->line, e->key);
        return -1;
    }
    e->type = CONFIG_FILE_STRING;
    e->str = mem_strndup(s, len);
    return 0;
}

/* ---- TOML ------------------------------------------------------------------- */

static int parse_toml(const char *name, const char *buf, size_t len, config_file_t *out,
                      char *err, size_t errlen) {
    toml_error_t terr;
    toml_value_t *root = toml_parse(buf, len, &terr);
    if (!root) {
        snprintf(err, errlen, "%s:%d:%d: %s", name, terr.line, terr.col, terr.msg);
        return -1;
    }
    int rc = 0;
    for (size_t i = 0; i < root->u.table.len && rc == 0; i++) {
        const toml_entry_t *te = &root->u.table.entries[i];
        config_file_entry_t *e = add_entry(out, name, te->key, te->line, err, errlen);
        if (!e) {
            rc = -1;
            break;
        }
        const toml_value_t *v = te->value;
        switch (v->type) {
        case TOML_STRING:
            rc = set_string(e, name, v->u.str.ptr, v->u.str.len, err, errlen);
            break;
        case TOML_INTEGER: e->type = CONFIG_FILE_INTEGER; e->integer = v->u.integer; break;
        case TOML_FLOAT: e->type = CONFIG_FILE_FLOAT; e->flt = v->u.flt; break;
        case TOML_BOOLEAN: e->type = CONFIG_FILE_BOOLEAN; e->boolean = v->u.boolean; break;
        case TOML_ARRAY: e->type = CONFIG_FILE_ARRAY; break;
        case TOML_TABLE: e->type = CONFIG_FILE_TABLE; break;
        }
    }
    toml_free(root);
    return rc;
}

/* ---- JSON ------------------------------------------------------------------- */

static int line_at(const char *buf, const char *at) {
    int line = 1;
    for (const char *p = buf; p < at; p++) line += *p == '\n';
    return line;
}

/* cJSON keeps no positions, so a small scan of the text finds the line of a
 * top-level key (compared as written, so a key spelled with escapes gets 0). */
static int json_key_line(const char *buf, size_t len, const char *key) {
    int depth = 0, line = 1;
    size_t klen = strlen(key);
    for (size_t i = 0; i < len; i++) {
        char c = buf[i];
        if (c == '\n') line++;
        else if (c == '{' || c == '[') depth++;
        else if (c == '}' || c == ']') depth--;
        else if (c == '"') {
            size_t s = ++i;
            while (i < len && buf[i] != '"') i += buf[i] == '\\' ? 2 : 1;
            if (i >= len) return 0;
            size_t j = i + 1;
            while (j < len && (buf[j] == ' ' || buf[j] == '\t' || buf[j] == '\r' || buf[j] == '\n'))
                j++;
            if (depth == 1 && j < len && buf[j] == ':' && i - s == klen &&
                !memcmp(buf + s, key, klen))
                return line;
        }
    }
    return 0;
}

static int parse_json(const char *name, const char *buf, size_t len, config_file_t *out,
                      char *err, size_t errlen) {
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
    if (!root) {
        const char *at = end && end >= buf && end <= buf + len ? end : buf;
        snprintf(err, errlen, "%s:%d: malformed JSON", name, line_at(buf, at));
        return -1;
    }
    /* Only whitespace may follow the value. */
    for (const char *p = end; p && p < buf + len; p++) {
        if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n') {
            snprintf(err, errlen, "%s:%d: malformed JSON: text after the top-level object",
                     name, line_at(buf, p));
            cJSON_Delete(root);
            return -1;
        }
    }
    if (!cJSON_IsObject(root)) {
        snprintf(err, errlen, "%s:1: a JSON config must be an object of keys to values", name);
        cJSON_Delete(root);
        return -1;
    }
    int rc = 0;
    for (cJSON *it = root->child; it && rc == 0; it = it->next) {
        config_file_entry_t *e =
            add_entry(out, name, it->string, json_key_line(buf, len, it->string), err, errlen);
        if (!e) {
            rc = -1;
            break;
        }
        if (cJSON_IsString(it)) {
            rc = set_string(e, name, it->valuestring, strlen(it->valuestring), err, errlen);
        } else if (cJSON_IsBool(it)) {
            e->type = CONFIG_FILE_BOOLEAN;
            e->boolean = cJSON_IsTrue(it);
        } else if (cJSON_IsNumber(it)) {
            /* JSON has one number type: an integral value within 2^53 is an integer. */
            double d = it->valuedouble;
            if (d == floor(d) && fabs(d) <= 9007199254740992.0) {
                e->type = CONFIG_FILE_INTEGER;
                e->integer = (int64_t)d;
            } else {
                e->type = CONFIG_FILE_FLOAT;
                e->flt = d;
            }
        } else if (cJSON_IsNull(it)) {
            e->type = CONFIG_FILE_NULL;
        } else if (cJSON_IsArray(it)) {
            e->type = CONFIG_FILE_ARRAY;
        } else {
            e->type = CONFIG_FILE_TABLE;
        }
    }
    cJSON_Delete(root);
    return rc;
}

/* ---- YAML ------------------------------------------------------------------- */

static bool all_of(const char *s, size_t n, const char *set) {
    if (!n) return false;
    for (size_t i = 0; i < n; i++)
        if (!strchr(set, s[i])) return false;
    return true;
}

/* YAML 1.2 core schema resolution of a plain scalar. */
static void yaml_resolve(config_file_entry_t *e, const char *s, size_t n) {
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};
    static const char *const trues[] = {"true", "True", "TRUE"};
    static const char *const falses[] = {"false", "False", "FALSE"};
    for (size_t i = 0; i < 5; i++)
        if (strlen(nulls[i]) == n && !memcmp(s, nulls[i], n)) {
            e->type = CONFIG_FILE_NULL;
            return;
        }
    for (size_t i = 0; i < 3; i++) {
        if (strlen(trues[i]) == n && !memcmp(s, trues[i], n)) {
            e->type = CONFIG_FILE_BOOLEAN;
            e->boolean = true;
            return;
        }
        if (strlen(falses[i]) == n && !memcmp(s, falses[i], n)) {
            e->type = CONFIG_FILE_BOOLEAN;
            e->boolean = false;
            return;
        }
    }
    char tmp[64];
    if (n < sizeof tmp) {
        memcpy(tmp, s, n);
        tmp[n] = '\0';
        const char *d = tmp + (tmp[0] == '-' || tmp[0] == '+');
        int base = 0;
        if (all_of(d, strlen(d), "0123456789")) base = 10;
        else if (tmp[0] == '0' && tmp[1] == 'x' && all_of(tmp + 2, n - 2, "0123456789abcdefABCDEF"))
            base = 16;
        else if (tmp[0] == '0' && tmp[1] == 'o' && all_of(tmp + 2, n - 2, "01234567"))
            base = 8;
        if (base) {
            errno = 0;
            long long v = strtoll(base == 10 ? tmp : tmp + 2, NULL, base);
            if (!errno) {
                e->type = CONFIG_FILE_INTEGER;
                e->integer = v;
                return;
            }
        }
        char *end;
        errno = 0;
        double f = strtod(tmp, &end);
        bool numeric = all_of(tmp, n, "0123456789+-.eE") && *end == '\0' && !errno;
        const char *m = tmp + (tmp[0] == '-' || tmp[0] == '+');
        bool special = !strcmp(m, ".inf") || !strcmp(m, ".Inf") || !strcmp(m, ".INF") ||
                       !strcmp(tmp, ".nan") || !strcmp(tmp, ".NaN") || !strcmp(tmp, ".NAN");
        if (numeric || special) {
            e->type = CONFIG_FILE_FLOAT;
            e->flt = special ? (m[1] == 'n' || m[1] == 'N' ? NAN
                                                            : (tmp[0] == '-' ? -INFINITY : INFINITY))
                             : f;
            return;
        }
    }
    e->type = CONFIG_FILE_STRING;
    e->str = mem_strndup(s, n);
}

static int yaml_fail(const char *name, const yaml_parser_t *yp, char *err, size_t errlen) {
    if (yp->context)
        snprintf(err, errlen, "%s:%zu: malformed YAML: %s %s", name, yp->problem_mark.line + 1,
                 yp->problem ? yp->problem : "error", yp->context);
    else
        snprintf(err, errlen, "%s:%zu: malformed YAML: %s", name, yp->problem_mark.line + 1,
                 yp->problem ? yp->problem : "error");
    return -1;
}

/* Skips the rest of a nested sequence or mapping whose start event was just read. */
static int yaml_skip(const char *name, yaml_parser_t *yp, char *err, size_t errlen) {
    int depth = 1;
    while (depth > 0) {
        yaml_event_t ev;
        if (!yaml_parser_parse(yp, &ev)) return yaml_fail(name, yp, err, errlen);
        if (ev.type == YAML_SEQUENCE_START_EVENT || ev.type == YAML_MAPPING_START_EVENT) depth++;
        if (ev.type == YAML_SEQUENCE_END_EVENT || ev.type == YAML_MAPPING_END_EVENT) depth--;
        if (ev.type == YAML_ALIAS_EVENT) {
            snprintf(err, errlen, "%s:%zu: YAML aliases are not supported in dsock config", name,
                     ev.start_mark.line + 1);
            yaml_event_delete(&ev);
            return -1;
        }
        yaml_event_delete(&ev);
    }
    return 0;
}

static int parse_yaml(const char *name, const char *buf, size_t len, config_file_t *out,
                      char *err, size_t errlen) {
    yaml_parser_t yp;
    if (!yaml_parser_initialize(&yp)) {
        snprintf(err, errlen, "%s: cannot start the YAML parser", name);
        return -1;
    }
    yaml_parser_set_input_string(&yp, (const unsigned char *)buf, len);
    /* States: 0 before the document, 1 in the top mapping, 2 after it. */
    int state = 0, rc = 0, docs = 0;
    char *key = NULL;
    int key_line = 0;
    for (bool done = false; !done && rc == 0;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&yp, &ev)) {
            rc = yaml_fail(name, &yp, err, errlen);
            break;
        }
        int line = (int)ev.start_mark.line + 1;
        switch (ev.type) {
        case YAML_STREAM_START_EVENT:
        case YAML_DOCUMENT_END_EVENT:
            break;
        case YAML_STREAM_END_EVENT:
            done = true;
            break;
        case YAML_DOCUMENT_START_EVENT:
            if (++docs > 1) {
                snprintf(err, errlen, "%s:%d: only one YAML document is allowed", name, line);
                rc = -1;
            }
            state = 0;
            break;
        case YAML_ALIAS_EVENT:
            snprintf(err, errlen, "%s:%d: YAML aliases are not supported in dsock config", name,
                     line);
            rc = -1;
            break;
        case YAML_MAPPING_START_EVENT:
        case YAML_SEQUENCE_START_EVENT:
            if (state == 0 && ev.type == YAML_MAPPING_START_EVENT) {
                state = 1;
            } else if (state == 1 && key) {
                config_file_entry_t *e = add_entry(out, name, key, key_line, err, errlen);
                if (!e) {
                    rc = -1;
                    break;
                }
                e->type = ev.type == YAML_MAPPING_START_EVENT ? CONFIG_FILE_TABLE
                                                              : CONFIG_FILE_ARRAY;
                free(key);
                key = NULL;
                rc = yaml_skip(name, &yp, err, errlen);
            } else if (state == 1) {
                snprintf(err, errlen, "%s:%d: a key must be a plain string", name, line);
                rc = -1;
            } else {
                snprintf(err, errlen, "%s:%d: a YAML config must be a mapping of keys to values",
                         name, line);
                rc = -1;
            }
            break;
        case YAML_MAPPING_END_EVENT:
            state = 2;
            break;
        case YAML_SEQUENCE_END_EVENT:
            break;
        case YAML_SCALAR_EVENT: {
            const char *s = (const char *)ev.data.scalar.value;
            size_t n = ev.data.scalar.length;
            if (state == 0) {
                /* An empty document is an empty config; any other scalar is not a config. */
                if (n == 0 && ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
                    state = 2;
                    break;
                }
                snprintf(err, errlen, "%s:%d: a YAML config must be a mapping of keys to values",
                         name, line);
                rc = -1;
            } else if (!key) {
                if (memchr(s, '\0', n)) {
                    snprintf(err, errlen, "%s:%d: a NUL character is not allowed in a key", name,
                             line);
                    rc = -1;
                    break;
                }
                key = mem_strndup(s, n);
                key_line = line;
            } else {
                config_file_entry_t *e = add_entry(out, name, key, key_line, err, errlen);
                free(key);
                key = NULL;
                if (!e) {
                    rc = -1;
                    break;
                }
                const char *tag = (const char *)ev.data.scalar.tag;
                bool plain = ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
                if (plain && !(tag && !strcmp(tag, YAML_STR_TAG))) {
                    if (memchr(s, '\0', n)) rc = set_string(e, name, s, n, err, errlen);
                    else yaml_resolve(e, s, n);
                } else {
                    rc = set_string(e, name, s, n, err, errlen);
                }
            }
            break;
        }
        default:
            break;
        }
        yaml_event_delete(&ev);
    }
    free(key);
    yaml_parser_delete(&yp);
    return rc;
}

int config_file_parse(const char *name, const char *buf, size_t len, config_file_format_t fmt,
                      config_file_t *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    int rc;
    switch (fmt) {
    case CONFIG_FILE_TOML: rc = parse_toml(name, buf, len, out, err, errlen); break;
    case CONFIG_FILE_JSON: rc = parse_json(name, buf, len, out, err, errlen); break;
    case CONFIG_FILE_YAML: rc = parse_yaml(name, buf, len, out, err, errlen); break;
    default:
        snprintf(err, errlen, "%s: unknown config format (use .toml, .json, .yaml or .yml)",
                 name);
        rc = -1;
    }
    if (rc) config_file_free(out);
    return rc;
}

int config_file_read(const char *path, config_file_t *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    config_file_format_t fmt = config_file_format(path);
    if (!fmt) {
        snprintf(err, errlen, "%s: cannot tell the format: name the file .toml, .json, .yaml "
                              "or .yml", path);
        return -1;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s: not a regular file", path);
        close(fd);
        return -1;
    }
    if (st.st_size > CONFIG_FILE_MAX_BYTES) {
        snprintf(err, errlen, "%s: larger than %d bytes; not a config file?", path,
                 CONFIG_FILE_MAX_BYTES);
        close(fd);
        return -1;
    }
    size_t cap = (size_t)st.st_size + 1, len = 0;
    char *buf = mem_alloc(cap);
    for (;;) {
        ssize_t r = read(fd, buf + len, cap - len);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
            free(buf);
            close(fd);
            return -1;
        }
        if (r == 0) break;
        len += (size_t)r;
        if (len == cap) { /* grew since fstat */
            snprintf(err, errlen, "%s: changed while it was read", path);
            free(buf);
            close(fd);
            return -1;
        }
    }
    close(fd);
    int rc = config_file_parse(path, buf, len, fmt, out, err, errlen);
    free(buf);
    return rc;
}
