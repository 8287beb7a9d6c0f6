/* The configuration table: every key once, with its type, default and help text.
 * Environment variables and flags are derived from the key name, so they cannot
 * drift apart (DSOCK_ + upper case; -- + key with '-' for '_'). */
#include "common/config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"

typedef enum { T_STRING, T_INT, T_BOOL } key_type_t;

typedef struct config_key {
    const char *name;
    key_type_t type;
    size_t offset;
    const char *def; /* default as text; NULL: unset */
    int64_t min, max;
    const char *help;
} config_key_t;

#define OFF(f) offsetof(config_t, f)
static const config_key_t keys[] = {
    {"address", T_STRING, OFF(address), ":6241", 0, 0,
     "listen address, host:port or :port (empty: :$PORT)"},
    {"redis_host", T_STRING, OFF(redis_host), "localhost:6379", 0, 0, "Redis host:port"},
    {"redis_password", T_STRING, OFF(redis_password), "", 0, 0, "Redis password"},
    {"redis_db", T_INT, OFF(redis_db), "0", 0, 1 << 20, "Redis database number"},
    {"token", T_STRING, OFF(token), NULL, 0, 0, "API bearer token (required by api)"},
    {"jwt_secret", T_STRING, OFF(jwt_secret), NULL, 0, 0,
     "HMAC secret; when set, workers accept JWTs"},
    {"debug", T_BOOL, OFF(debug), "false", 0, 0, "log debug lines"},
    {"redis_timeout_ms", T_INT, OFF(redis_timeout_ms), "2000", 10, 600000,
     "bound on every Redis wait, in milliseconds"},
    {"worker_ttl", T_INT, OFF(worker_ttl), "10", 2, 3600,
     "seconds after which a silent worker counts as dead"},
    {"ping_interval", T_INT, OFF(ping_interval), "60", 1, 86400,
     "seconds between server pings"},
    {"ping_timeout", T_INT, OFF(ping_timeout), "150", 2, 86400,
     "seconds of client silence before the connection is closed as dead"},
    {"max_header_bytes", T_INT, OFF(max_header_bytes), "16384", 1024, 1 << 24,
     "HTTP request line and headers limit (431 above)"},
    {"max_body_bytes", T_INT, OFF(max_body_bytes), "16777216", 0, (int64_t)1 << 32,
     "HTTP body limit, i.e. largest /send message (413 above)"},
    {"max_message_bytes", T_INT, OFF(max_message_bytes), "1048576", 0, (int64_t)1 << 32,
     "largest WebSocket message accepted from a client (close 1009 above)"},
    {"max_queued_bytes", T_INT, OFF(max_queued_bytes), "67108864", 1024, (int64_t)1 << 40,
     "unsent bytes per WebSocket connection before it is closed with 1008"},
    {"max_connections", T_INT, OFF(max_connections), "18000", 1, 1 << 24,
     "connections per process"},
    {"idle_timeout", T_INT, OFF(idle_timeout), "60", 1, 86400,
     "seconds an HTTP connection may idle or take to send a request"},
};
#define NKEYS (sizeof keys / sizeof keys[0])

static void env_name(const char *key, char *out, size_t n) {
    snprintf(out, n, "DSOCK_%s", key);
    for (char *p = out; *p; p++) *p = (char)toupper((unsigned char)*p);
}

static void flag_name(const char *key, char *out, size_t n) {
    snprintf(out, n, "--%s", key);
    for (char *p = out; *p; p++)
        if (*p == '_') *p = '-';
}

static int set_value(config_t *cfg, const config_key_t *k, const char *value, const char *source,
                     char *err, size_t errlen) {
    void *field = (char *)cfg + k->offset;
    switch (k->type) {
    case T_STRING: {
        char **s = field;
        free(*s);
        *s = mem_strdup(value);
        return 0;
    }
    case T_INT: {
        char *end;
        errno = 0;
        long long v = strtoll(value, &end, 10);
        if (errno || end == value || *end) {
            snprintf(err, errlen, "%s: %s must be an integer, got \"%s\"", source, k->name, value);
            return -1;
        }
        if (v < k->min || v > k->max) {
            snprintf(err, errlen, "%s: %s must be between %lld and %lld, got %lld", source,
                     k->name, (long long)k->min, (long long)k->max, v);
            return -1;
        }
        *(int64_t *)field = v;
        return 0;
    }
    case T_BOOL:
        if (!strcmp(value, "true") || !strcmp(value, "1")) {
            *(bool *)field = true;
        } else if (!strcmp(value, "false") || !strcmp(value, "0")) {
            *(bool *)field = false;
        } else {
            snprintf(err, errlen, "%s: %s must be true or false, got \"%s\"", source, k->name,
                     value);
            return -1;
        }
        return 0;
    }
    return -1;
}

int config_load(config_t *cfg, int argc, char **argv, char *err, size_t errlen) {
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < NKEYS; i++) {
        if (keys[i].def && set_value(cfg, &keys[i], keys[i].def, "default", err, errlen))
            return -1;
    }
    for (size_t i = 0; i < NKEYS; i++) {
        char name[64];
        env_name(keys[i].name, name, sizeof name);
        const char *v = getenv(name);
        if (v && set_value(cfg, &keys[i], v, name, err, errlen)) return -1;
    }
    /* The seed: an empty address falls back to :$PORT. */
    const char *port = getenv("PORT");
    if (port && *port && (!getenv("DSOCK_ADDRESS") || !*getenv("DSOCK_ADDRESS"))) {
        char addr[64];
        snprintf(addr, sizeof addr, ":%s", port);
        free(cfg->address);
        cfg->address = mem_strdup(addr);
    }
    for (int a = 0; a < argc; a++) {
        const char *arg = argv[a];
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) return 1;
        const char *eq = strchr(arg, '=');
        size_t nlen = eq ? (size_t)(eq - arg) : strlen(arg);
        const config_key_t *k = NULL;
        for (size_t i = 0; i < NKEYS; i++) {
            char fname[64];
            flag_name(keys[i].name, fname, sizeof fname);
            if (strlen(fname) == nlen && !strncmp(fname, arg, nlen)) k = &keys[i];
        }
        if (!k) {
            snprintf(err, errlen, "unknown option \"%.*s\" (see --help)", (int)nlen, arg);
            return -1;
        }
        const char *value = eq ? eq + 1 : NULL;
        if (!value) {
            if (k->type == T_BOOL && (a + 1 >= argc || argv[a + 1][0] == '-')) {
                value = "true";
            } else if (a + 1 < argc) {
                value = argv[++a];
            } else {
                snprintf(err, errlen, "option %s needs a value", arg);
                return -1;
            }
        }
        char source[80];
        snprintf(source, sizeof source, "flag %.*s", (int)nlen, arg);
        if (set_value(cfg, k, value, source, err, errlen)) return -1;
    }
    if (cfg->token && !*cfg->token) {
        free(cfg->token);
        cfg->token = NULL;
    }
    if (cfg->jwt_secret && !*cfg->jwt_secret) {
        free(cfg->jwt_secret);
        cfg->jwt_secret = NULL;
    }
    return 0;
}

int config_validate(const config_t *cfg, config_role_t role, char *err, size_t errlen) {
    if (role == CONFIG_ROLE_API && !cfg->token) {
        snprintf(err, errlen,
                 "the api needs a token: set DSOCK_TOKEN or --token (an empty token is never "
                 "accepted)");
        return -1;
    }
    if (!cfg->address || !*cfg->address) {
        snprintf(err, errlen, "address is empty and PORT is not set");
        return -1;
    }
    if (cfg->ping_timeout <= cfg->ping_interval) {
        snprintf(err, errlen, "ping_timeout (%lld) must be greater than ping_interval (%lld)",
                 (long long)cfg->ping_timeout, (long long)cfg->ping_interval);
        return -1;
    }
    return 0;
}

void config_usage(const char *subcommand) {
    printf("Usage: dsock %s [options]\n\nOptions (flag, environment variable, default):\n",
           subcommand);
    for (size_t i = 0; i < NKEYS; i++) {
        char fname[64], ename[64];
        flag_name(keys[i].name, fname, sizeof fname);
        env_name(keys[i].name, ename, sizeof ename);
        printf("  %-22s %-26s %-12s %s\n", fname, ename,
               keys[i].def ? (*keys[i].def ? keys[i].def : "\"\"") : "(none)", keys[i].help);
    }
}

void config_free(config_t *cfg) {
    for (size_t i = 0; i < NKEYS; i++) {
        if (keys[i].type == T_STRING) {
            char **s = (char **)((char *)cfg + keys[i].offset);
            free(*s);
            *s = NULL;
        }
    }
}
