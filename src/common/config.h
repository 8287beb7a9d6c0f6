/* Configuration: one table of typed keys (config.c) read from defaults, a config
 * file (TOML, JSON or YAML), the environment (DSOCK_<KEY>) and command-line flags
 * (--key-name value), with precedence flag > environment > file > default. The
 * --help text, the default config.toml and docs/configuration.md all come from
 * that table.
 *
 * Ownership: config_t owns its strings; config_free releases them. */
#ifndef DSOCK_CONFIG_H
#define DSOCK_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct config {
    char *address;            /* listen address, "host:port", ":port" or "[v6]:port"; never
                               * empty after config_load (an empty one became ":port") */
    int64_t port;             /* the port when no layer gave a non-empty address */
    char *redis_host;
    char *redis_username;     /* Redis 6 ACL user ("": the default user) */
    char *redis_password;
    char *redis_sentinels;    /* "": no Sentinel; else host:port,... (config_parse_sentinels) */
    char *redis_master_name;  /* the primary's name at the sentinels */
    char *redis_sentinel_password;
    int64_t redis_db;
    int64_t redis_max_retries;/* dSock 0.4 key: accepted, no effect (docs/compatibility.md) */
    bool redis_tls;           /* dSock 0.4 key: true is refused for api and worker */
    char *token;              /* API bearer token; NULL when unset (never "") */
    char *jwt_secret;         /* NULL: JWT authentication disabled (never "") */
    char *default_channels;   /* comma-delimited channel names; "" none */
    bool metrics_public;      /* GET /metrics without the token */
    char *metrics_address;    /* "": none; else a listener serving only /metrics */
    bool debug;
    char *log_format;         /* "logfmt" or "json" (checked by log_format_parse) */
    bool log_requests;        /* one access line per HTTP request */
    bool reuse_port;          /* SO_REUSEPORT on the listen address: several processes
                                 (workers) serve one port */
    int64_t redis_timeout_ms; /* bound on every Redis wait */
    int64_t idempotency_ttl;      /* seconds an Idempotency-Key is remembered */
    int64_t idempotency_max_keys; /* standalone: keys remembered at most */
    int64_t worker_ttl;       /* seconds before a silent worker counts as dead */
    int64_t ping_interval;    /* seconds between server pings */
    int64_t ping_timeout;     /* seconds of client silence before it is closed as dead */
    int64_t max_header_bytes; /* HTTP request line + headers (431 above) */
    int64_t max_body_bytes;   /* HTTP body, i.e. a /send message (413 above) */
    int64_t max_message_bytes;/* WebSocket message from a client (close 1009 above) */
    int64_t max_queued_bytes; /* unsent bytes per WebSocket before it is closed (1008) */
    char *compression;        /* "auto" or "off" (checked by config_validate) */
    int64_t compression_min_bytes; /* smaller messages are sent uncompressed */
    int64_t max_connections;  /* per process */
    int64_t idle_timeout;     /* seconds an HTTP connection may idle or dawdle */
    int64_t threads;          /* loop threads (standalone, api); 0: online CPUs, max 16 */
    int64_t drain_seconds;    /* on SIGTERM/SIGINT: clients are closed over this many seconds */
    /* dSock 0.4 keys accepted so its config files start unchanged (docs/compatibility.md) */
    char *messaging_method;   /* "redis" or "direct" (direct: a warning, still Redis) */
    char *direct_message_hostname; /* unused */
    char *direct_message_port;     /* unused; "" or a port number */
    char *ttl_duration;       /* NULL or a Go duration; sets worker_ttl unless that is set */

    /* Where the configuration came from, for the startup line: the config file read
     * (as found or as given to --config), or the default file this start wrote
     * (wrote_default), or NULL when there was none and none could be written. */
    char *source_file;
    bool wrote_default;
    char *default_dir;   /* no file found: where config_write_default_file will write */
    char **origins; /* private to config.c: see config_origin */
    unsigned char *layers; /* private to config.c: the layer that last set each key */
} config_t;

typedef enum config_role {
    CONFIG_ROLE_API = 1,
    CONFIG_ROLE_WORKER = 2,
    CONFIG_ROLE_STANDALONE = 3,
} config_role_t;

/* config_load's results. */
enum {
    CONFIG_OK = 0,
    CONFIG_HELP = 1,     /* --help or -h: print config_usage, exit 0 */
    CONFIG_VERSION = 2,  /* --version: print the version, exit 0 */
    CONFIG_ERROR = -1,   /* bad configuration (file, value, type, range): exit 1 */
    CONFIG_USAGE = -2,   /* unknown flag, stray argument, flag without value: exit 2 */
};

/* Fills cfg from defaults, the config file, the environment and argv (argv[0] is
 * the first flag, not the program or the subcommand). Looks for the config file
 * (see docs/configuration.md) unless --config names one; when none is found it
 * writes the default config.toml into the working directory and logs that (a
 * failure to write is only a warning). Returns one of the CONFIG_* values above;
 * on CONFIG_ERROR and CONFIG_USAGE err holds one line naming the source (file:line,
 * variable or flag). On anything but CONFIG_OK cfg is left empty (config_free is
 * harmless). Warnings (an unknown DSOCK_ variable, a second config file that is
 * ignored) go to the log. */
int config_load(config_t *cfg, int argc, char **argv, char *err, size_t errlen);

/* Checks the values for a role: the API needs a token, the address must parse and
 * be bindable (a socket is bound and closed at once), ping_timeout must exceed
 * ping_interval. 0 or -1 with a one-line message naming where the value came from. */
int config_validate(const config_t *cfg, config_role_t role, char *err, size_t errlen);

/* When no config file was found, writes the default config.toml (every key commented,
 * no secret) into the working directory, as the seed says, and records it in
 * source_file/wrote_default. Call after config_validate succeeded. A failure to
 * write is only a warning. */
void config_write_default_file(config_t *cfg);

/* Where key's value came from: "default", "<file>:<line>", "DSOCK_<KEY>", "PORT"
 * or "--flag". NULL for an unknown key. Valid until config_free. */
const char *config_origin(const config_t *cfg, const char *key);

/* Logs what the dSock 0.4 compatibility keys mean for this start (warnings: a
 * messaging_method of direct, which still travels over Redis; redis_tls in
 * standalone, which has no Redis; info: redis_max_retries, which has no effect).
 * Call after config_validate succeeded and the log format is set. */
void config_log_compat(const config_t *cfg, config_role_t role);

/* Parses a Go duration ("60s", "1m30s", "1.5h", "500ms", "0") into seconds. 0, or
 * -1 when it does not parse (a number without a unit, an unknown unit, a sign). */
int config_parse_duration(const char *s, double *seconds);

/* Writes the usage and every option (flag, variable, default, description) to
 * stdout. subcommand NULL: the top-level usage with the list of subcommands. */
void config_usage(const char *subcommand);

/* The body of the default config.toml: every key commented out at its default,
 * never a secret. */
void config_write_default(FILE *out);

/* The key table as Markdown (docs/configuration.md holds exactly this between its
 * "<!-- keys:begin -->" and "<!-- keys:end -->" markers; a unit test checks it). */
void config_write_markdown(FILE *out);

/* The candidate closest to word (edit distance, counting a swap of two neighbours
 * as one edit), or NULL when none is close enough to be a likely typo. For
 * "did you mean" hints, e.g. on unknown subcommands. */
const char *config_suggest(const char *word, const char *const *candidates, size_t n);

/* One sentinel of redis_sentinels. */
typedef struct config_hostport {
    char host[256]; /* brackets of an IPv6 address removed */
    int port;       /* 26379 when the entry gave none */
} config_hostport_t;
#define CONFIG_SENTINELS_MAX 16

/* Parses redis_sentinels: "host:port,host:port" (spaces around entries ignored; a
 * port of 1-65535, 26379 when left out; "[v6]:port"). The count (at least 1), or -1
 * with a one-line reason in err (an empty entry, a bad port, more than max). */
int config_parse_sentinels(const char *list, config_hostport_t *out, size_t max, char *err,
                           size_t errlen);

/* Splits a listen address ("host:port", ":port", "[v6]:port") into host (empty for
 * all interfaces, brackets removed) and port. 0, or -1 when it does not parse. */
int config_split_address(const char *addr, char *host, size_t hostlen, int *port);

/* Tests only: the last directory searched for config files (default /etc/dsock). */
void config_set_system_dir(const char *dir);

void config_free(config_t *cfg);

#endif
