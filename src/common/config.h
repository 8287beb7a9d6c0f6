/* Configuration: one table of typed keys (config.c) read from defaults, the
 * environment (DSOCK_<KEY>) and command-line flags (--key-name value), with
 * precedence flag > environment > default. Config files are issue #4.
 *
 * Ownership: config_t owns its strings; config_free releases them. */
#ifndef DSOCK_CONFIG_H
#define DSOCK_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct config {
    char *address;            /* listen address, "host:port" or ":port" */
    char *redis_host;
    char *redis_password;
    int64_t redis_db;
    char *token;              /* API bearer token; NULL when unset */
    char *jwt_secret;         /* NULL: JWT authentication disabled */
    bool debug;
    int64_t redis_timeout_ms; /* bound on every Redis wait */
    int64_t worker_ttl;       /* seconds before a silent worker counts as dead */
    int64_t ping_interval;    /* seconds between server pings */
    int64_t ping_timeout;     /* seconds of client silence before it is closed as dead */
    int64_t max_header_bytes; /* HTTP request line + headers (431 above) */
    int64_t max_body_bytes;   /* HTTP body, i.e. a /send message (413 above) */
    int64_t max_message_bytes;/* WebSocket message from a client (close 1009 above) */
    int64_t max_queued_bytes; /* unsent bytes per WebSocket before it is closed (1008) */
    int64_t max_connections;  /* per process */
    int64_t idle_timeout;     /* seconds an HTTP connection may idle or dawdle */
} config_t;

typedef enum config_role {
    CONFIG_ROLE_API = 1,
    CONFIG_ROLE_WORKER = 2,
    CONFIG_ROLE_STANDALONE = 3,
} config_role_t;

/* Fills cfg from defaults, environment and argv (argv[0] is the first flag, not the
 * program). Returns 0, or -1 with a one-line message in err. --help is reported
 * as 1 (the caller prints config_usage). */
int config_load(config_t *cfg, int argc, char **argv, char *err, size_t errlen);

/* Checks the values for a role (e.g. the API needs a token). 0 or -1 + err. */
int config_validate(const config_t *cfg, config_role_t role, char *err, size_t errlen);

/* Writes the option list (flag, variable, default, description) to stdout. */
void config_usage(const char *subcommand);

void config_free(config_t *cfg);

#endif
