/* The configuration table: every key once, with its type, default, range and help
 * text. Environment variables (DSOCK_ + upper case), flags (-- + key with '-' for
 * '_'), --help, the default config.toml and docs/configuration.md are all derived
 * from it, so they cannot drift apart. Values are layered default < file <
 * environment < flag, and each key remembers which layer set it for error messages. */
#include "common/config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/config_file.h"
#include "common/log.h"
#include "common/mem.h"
#include "protocol/validate.h"

typedef enum { T_STRING, T_INT, T_BOOL } key_type_t;

typedef struct config_key {
    const char *name;
    key_type_t type;
    size_t offset;
    const char *def; /* default as text; NULL: unset */
    int64_t min, max;
    bool secret;     /* never written to the default file */
    const char *help;
} config_key_t;

/* One rule per kind of integer key (docs/configuration.md, "Limits"): a size or
 * count limit (max_*) is at least 1 and has no "unlimited" value, since its maximum
 * already bounds it; a duration or interval is at least one of its units and has
 * no "never" value. The only 0 with a meaning is threads = 0 (one per CPU), which
 * is a setting, not a limit. */
#define OFF(f) offsetof(config_t, f)
static const config_key_t keys[] = {
    {"address", T_STRING, OFF(address), ":6241", 0, 0, false,
     "listen address, host:port or :port (empty: :port); see \"Listen address\" for how it "
     "and port combine"},
    {"port", T_INT, OFF(port), "6241", 0, 65535, false,
     "the port to listen on, on all interfaces, when no address is given (also PORT)"},
    {"redis_host", T_STRING, OFF(redis_host), "localhost:6379", 0, 0, false,
     "Redis host:port, or unix:/path/to/redis.sock for a Unix socket"},
    {"redis_username", T_STRING, OFF(redis_username), "", 0, 0, false,
     "Redis 6 ACL user (AUTH user password); empty: the default user (docs/redis.md)"},
    {"redis_password", T_STRING, OFF(redis_password), "", 0, 0, true, "Redis password"},
    {"redis_sentinels", T_STRING, OFF(redis_sentinels), "", 0, 0, false,
     "Redis Sentinel: host:port of the sentinels, comma-delimited (port 26379 when left out); "
     "dsock asks them for the primary and follows failovers. Excludes redis_host "
     "(docs/redis.md, Sentinel)"},
    {"redis_master_name", T_STRING, OFF(redis_master_name), "mymaster", 0, 0, false,
     "Redis Sentinel: the name the sentinels monitor the primary under"},
    {"redis_sentinel_password", T_STRING, OFF(redis_sentinel_password), "", 0, 0, true,
     "Redis Sentinel: the sentinels' password (their requirepass); empty: none"},
    {"redis_db", T_INT, OFF(redis_db), "0", 0, 1 << 20, false, "Redis database number"},
    {"redis_max_retries", T_INT, OFF(redis_max_retries), "10", -1, 1 << 20, false,
     "dSock 0.4 key, accepted and without effect: Redis is reconnected forever, with back-off"},
    {"redis_tls", T_BOOL, OFF(redis_tls), "false", 0, 0, false,
     "dSock 0.4 key: true is refused (Debian's hiredis has no TLS; use a TLS tunnel)"},
    {"token", T_STRING, OFF(token), NULL, 0, 0, true, "API bearer token (required by api)"},
    {"jwt_secret", T_STRING, OFF(jwt_secret), NULL, 0, 0, true,
     "HMAC secret; when set, workers accept JWTs"},
    {"default_channels", T_STRING, OFF(default_channels), "", 0, 0, false,
     "channels every new connection joins, comma-delimited (docs/api.md, Channels)"},
    {"metrics_public", T_BOOL, OFF(metrics_public), "false", 0, 0, false,
     "serve GET /metrics without the token (docs/metrics.md)"},
    {"metrics_address", T_STRING, OFF(metrics_address), "", 0, 0, false,
     "a second listen address serving only /metrics, without the token (empty: none)"},
    {"debug", T_BOOL, OFF(debug), "false", 0, 0, false, "log debug lines"},
    {"log_format", T_STRING, OFF(log_format), "logfmt", 0, 0, false,
     "log line format: logfmt or json (docs/logging.md)"},
    {"log_requests", T_BOOL, OFF(log_requests), "false", 0, 0, false,
     "one access line per HTTP request (docs/logging.md)"},
    {"reuse_port", T_BOOL, OFF(reuse_port), "false", 0, 0, false,
     "SO_REUSEPORT on the listen address: several processes (workers) listen on one port "
     "and the kernel spreads new connections over them (docs/configuration.md)"},
    {"redis_timeout_ms", T_INT, OFF(redis_timeout_ms), "2000", 10, 600000, false,
     "bound on every Redis wait, in milliseconds"},
    {"idempotency_ttl", T_INT, OFF(idempotency_ttl), "300", 1, 86400, false,
     "seconds an Idempotency-Key and its first answer are remembered (docs/api.md)"},
    {"idempotency_max_keys", T_INT, OFF(idempotency_max_keys), "100000", 1, 1 << 24, false,
     "standalone: Idempotency-Keys remembered at most, the oldest forgotten first (Redis keeps "
     "each for idempotency_ttl)"},
    {"worker_ttl", T_INT, OFF(worker_ttl), "10", 2, 3600, false,
     "seconds after which a silent worker counts as dead"},
    {"ping_interval", T_INT, OFF(ping_interval), "60", 1, 86400, false,
     "seconds between server pings"},
    {"ping_timeout", T_INT, OFF(ping_timeout), "150", 2, 86400, false,
     "seconds of client silence before the connection is closed as dead"},
    {"max_header_bytes", T_INT, OFF(max_header_bytes), "16384", 1024, 1 << 24, false,
     "HTTP request line and headers limit (431 above)"},
    {"max_body_bytes", T_INT, OFF(max_body_bytes), "16777216", 1, (int64_t)1 << 30, false,
     "HTTP body limit, i.e. largest /send message (413 above)"},
    {"max_message_bytes", T_INT, OFF(max_message_bytes), "1048576", 1, (int64_t)1 << 30, false,
     "largest WebSocket message accepted from a client (close 1009 above)"},
    {"max_queued_bytes", T_INT, OFF(max_queued_bytes), "67108864", 1024, (int64_t)1 << 40,
     false, "memory held by unsent frames per WebSocket connection before it is closed with 1008"},
    {"compression", T_STRING, OFF(compression), "auto", 0, 0, false,
     "permessage-deflate: auto (accepted when a client offers it) or off (docs/api.md)"},
    {"compression_min_bytes", T_INT, OFF(compression_min_bytes), "256", 1, (int64_t)1 << 30,
     false, "smallest message sent compressed to a client that negotiated compression"},
    {"max_connections", T_INT, OFF(max_connections), "18000", 1, 1 << 24, false,
     "HTTP connections, and WebSocket connections, each per process (503 above)"},
    {"idle_timeout", T_INT, OFF(idle_timeout), "60", 1, 86400, false,
     "seconds an HTTP connection may idle or take to send a request"},
    {"threads", T_INT, OFF(threads), "0", 0, 16, false,
     "event-loop threads of standalone and api (0: one per online CPU, at most 16); "
     "a worker always runs one"},
    {"drain_seconds", T_INT, OFF(drain_seconds), "10", 1, 3600, false,
     "seconds over which a stopping worker closes its clients with 1001 (docs/probes-and-drain.md)"},
    {"messaging_method", T_STRING, OFF(messaging_method), "redis", 0, 0, false,
     "dSock 0.4 key: redis or direct; direct only logs a warning, messages still travel over "
     "Redis"},
    {"direct_message_hostname", T_STRING, OFF(direct_message_hostname), "", 0, 0, false,
     "dSock 0.4 key, accepted and unused (direct messaging is not implemented)"},
    {"direct_message_port", T_STRING, OFF(direct_message_port), "", 0, 0, false,
     "dSock 0.4 key, accepted and unused: empty or a port number (a string or an integer)"},
    {"ttl_duration", T_STRING, OFF(ttl_duration), NULL, 0, 0, false,
     "dSock 0.4 key: a Go duration (\"60s\"); sets worker_ttl, in whole seconds rounded up, "
     "unless worker_ttl is set"},
};
#define NKEYS (sizeof keys / sizeof keys[0])

/* File names tried in each search directory, in order. */
static const char *const file_names[] = {"config.toml", "config.json", "config.yaml",
                                         "config.yml"};
#define NFILES (sizeof file_names / sizeof file_names[0])

static const char *system_dir = "/etc/dsock";

void config_set_system_dir(const char *dir) { system_dir = dir; }

static void env_name(const char *key, char *out, size_t n) {
    snprintf(out, n, "DSOCK_%s", key);
    for (char *p = out; *p; p++) *p = (char)toupper((unsigned char)*p);
}

static void flag_name(const char *key, char *out, size_t n) {
    snprintf(out, n, "--%s", key);
    for (char *p = out; *p; p++)
        if (*p == '_') *p = '-';
}

static const char *type_name(key_type_t t) {
    return t == T_STRING ? "string" : t == T_INT ? "integer" : "boolean";
}

static const config_key_t *key_by_name(const char *name) {
    for (size_t i = 0; i < NKEYS; i++)
        if (!strcmp(keys[i].name, name)) return &keys[i];
    return NULL;
}

/* ---- did you mean ---------------------------------------------------------- */

/* Optimal-string-alignment distance: Levenshtein plus adjacent swaps, since a
 * swapped pair of letters is the most common typo in a key name. */
static size_t edit_distance(const char *a, const char *b) {
    size_t n = strlen(a), m = strlen(b);
    if (n > 64 || m > 64) return (size_t)-1;
    size_t d[65][65];
    for (size_t i = 0; i <= n; i++) d[i][0] = i;
    for (size_t j = 0; j <= m; j++) d[0][j] = j;
    for (size_t i = 1; i <= n; i++) {
        for (size_t j = 1; j <= m; j++) {
            size_t cost = tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]);
            size_t v = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < v) v = d[i][j - 1] + 1;
            if (d[i - 1][j - 1] + cost < v) v = d[i - 1][j - 1] + cost;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < v)
                v = d[i - 2][j - 2] + 1;
            d[i][j] = v;
        }
    }
    return d[n][m];
}

const char *config_suggest(const char *word, const char *const *candidates, size_t n) {
    size_t len = strlen(word);
    size_t limit = len < 4 ? 1 : len < 9 ? 2 : 3;
    const char *best = NULL;
    size_t best_d = limit + 1;
    for (size_t i = 0; i < n; i++) {
        size_t d = edit_distance(word, candidates[i]);
        if (d < best_d) {
            best_d = d;
            best = candidates[i];
        }
    }
    return best;
}

/* The closest key name, in the spelling of the source (key, variable or flag). */
static void suggest_key(const char *word, void (*spell)(const char *, char *, size_t),
                        char *out, size_t n) {
    char names[NKEYS][64];
    const char *cands[NKEYS];
    for (size_t i = 0; i < NKEYS; i++) {
        if (spell)
            spell(keys[i].name, names[i], sizeof names[i]);
        else
            snprintf(names[i], sizeof names[i], "%s", keys[i].name);
        cands[i] = names[i];
    }
    const char *s = config_suggest(word, cands, NKEYS);
    if (s)
        snprintf(out, n, " (did you mean %s?)", s);
    else
        out[0] = '\0';
}

/* ---- setting values --------------------------------------------------------- */

/* The layers, lowest first; each key remembers the one that set it last, so the
 * listen address can be resolved per layer (address and port) and ttl_duration
 * can tell whether worker_ttl was set. */
enum { LAYER_DEFAULT, LAYER_FILE, LAYER_ENV, LAYER_FLAG };
static _Thread_local unsigned char cur_layer;

static void set_origin(config_t *cfg, const config_key_t *k, const char *origin) {
    size_t i = (size_t)(k - keys);
    free(cfg->origins[i]);
    cfg->origins[i] = mem_strdup(origin);
    cfg->layers[i] = cur_layer;
}

static unsigned char layer_of(const config_t *cfg, const char *name) {
    const config_key_t *k = key_by_name(name);
    return k ? cfg->layers[k - keys] : LAYER_DEFAULT;
}

static void store_string(config_t *cfg, const config_key_t *k, const char *s) {
    char **field = (char **)((char *)cfg + k->offset);
    free(*field);
    *field = mem_strdup(s);
}

static int store_int(config_t *cfg, const config_key_t *k, int64_t v, const char *source,
                     char *err, size_t errlen) {
    if (v < k->min || v > k->max) {
        snprintf(err, errlen, "%s: %s must be between %lld and %lld, got %lld", source, k->name,
                 (long long)k->min, (long long)k->max, (long long)v);
        return -1;
    }
    *(int64_t *)((char *)cfg + k->offset) = v;
    return 0;
}

/* A value given as text (default, variable or flag). */
static int set_text(config_t *cfg, const config_key_t *k, const char *value, const char *source,
                    char *err, size_t errlen) {
    char pv[80];
    switch (k->type) {
    case T_STRING:
        store_string(cfg, k, value);
        break;
    case T_INT: {
        const char *p = value + (*value == '-');
        bool ok = *p != '\0';
        for (; *p; p++) ok = ok && isdigit((unsigned char)*p);
        errno = 0;
        long long v = ok ? strtoll(value, NULL, 10) : 0;
        if (!ok || errno) {
            snprintf(err, errlen, "%s: %s must be an integer, got \"%s\"", source, k->name,
                     config_file_printable(value, pv, sizeof pv));
            return -1;
        }
        if (store_int(cfg, k, v, source, err, errlen)) return -1;
        break;
    }
    case T_BOOL: {
        bool *b = (bool *)((char *)cfg + k->offset);
        if (!strcasecmp(value, "true") || !strcmp(value, "1")) {
            *b = true;
        } else if (!strcasecmp(value, "false") || !strcmp(value, "0")) {
            *b = false;
        } else {
            snprintf(err, errlen, "%s: %s must be true or false, got \"%s\"", source, k->name,
                     config_file_printable(value, pv, sizeof pv));
            return -1;
        }
        break;
    }
    }
    set_origin(cfg, k, source);
    return 0;
}

/* A typed value from a config file. */
static int set_entry(config_t *cfg, const config_file_entry_t *e, const char *file, char *err,
                     size_t errlen) {
    char source[4200];
    if (e->line)
        snprintf(source, sizeof source, "%s:%d", file, e->line);
    else
        snprintf(source, sizeof source, "%s", file);
    const config_key_t *k = key_by_name(e->key);
    if (!k) {
        char hint[96], pk[80];
        suggest_key(e->key, NULL, hint, sizeof hint);
        snprintf(err, errlen, "%s: unknown key \"%s\"%s", source,
                 config_file_printable(e->key, pk, sizeof pk), hint);
        return -1;
    }
    if (e->type == CONFIG_FILE_NULL) return 0; /* null: keep the default */
    char itext[32];
    /* dSock 0.4 documented direct_message_port as a string and read it as a number:
     * a file may give either. */
    if (k->offset == OFF(direct_message_port) && e->type == CONFIG_FILE_INTEGER) {
        snprintf(itext, sizeof itext, "%lld", (long long)e->integer);
        store_string(cfg, k, itext);
        set_origin(cfg, k, source);
        return 0;
    }
    bool match = (k->type == T_STRING && e->type == CONFIG_FILE_STRING) ||
                 (k->type == T_INT && e->type == CONFIG_FILE_INTEGER) ||
                 (k->type == T_BOOL && e->type == CONFIG_FILE_BOOLEAN);
    if (!match) {
        const char *hint = "";
        if (k->type == T_STRING && e->type != CONFIG_FILE_ARRAY && e->type != CONFIG_FILE_TABLE)
            hint = " (put the value in quotes)";
        else if (k->type != T_STRING && e->type == CONFIG_FILE_STRING)
            hint = " (write the value without quotes)";
        snprintf(err, errlen, "%s: %s must be %s %s, got %s %s%s", source, k->name,
                 k->type == T_INT ? "an" : "a", type_name(k->type),
                 e->type == CONFIG_FILE_INTEGER || e->type == CONFIG_FILE_ARRAY ? "an" : "a",
                 config_file_type_name(e->type), hint);
        return -1;
    }
    switch (k->type) {
    case T_STRING: store_string(cfg, k, e->str); break;
    case T_INT:
        if (store_int(cfg, k, e->integer, source, err, errlen)) return -1;
        break;
    case T_BOOL: *(bool *)((char *)cfg + k->offset) = e->boolean; break;
    }
    set_origin(cfg, k, source);
    return 0;
}

/* ---- the config file ---------------------------------------------------------- */

static bool is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* The first config file in the search path, or NULL (caller frees). */
static char *find_config_file(char **cwd_out) {
    char cwd[4096];
    const char *home = getenv("HOME");
    char homedir[4200] = "";
    const char *dirs[3];
    size_t ndirs = 0;
    if (getcwd(cwd, sizeof cwd)) {
        dirs[ndirs++] = cwd;
        *cwd_out = mem_strdup(cwd);
    }
    if (home && *home) {
        snprintf(homedir, sizeof homedir, "%s/.config/dsock", home);
        dirs[ndirs++] = homedir;
    }
    dirs[ndirs++] = system_dir;
    for (size_t d = 0; d < ndirs; d++) {
        char *found = NULL;
        for (size_t f = 0; f < NFILES; f++) {
            char path[4300];
            snprintf(path, sizeof path, "%s/%s", dirs[d], file_names[f]);
            if (!is_file(path)) continue;
            if (!found)
                found = mem_strdup(path);
            else
                log_warn("config file ignored: another one is used", LOG_S("ignored", path),
                         LOG_S("used", found));
        }
        if (found) return found;
    }
    return NULL;
}

/* Writes the default config.toml into dir; never replaces an existing file. The
 * file is written under a temporary name and linked into place, so a process
 * starting beside this one (same directory) never reads it half-written. */
static char *write_default_file(const char *dir) {
    char path[4300], tmp[4400];
    snprintf(path, sizeof path, "%s/config.toml", dir);
    snprintf(tmp, sizeof tmp, "%s/.config.toml.XXXXXX", dir);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        log_warn("no config file found, and the default could not be written; continuing "
                 "with defaults", LOG_S("path", path), LOG_S("error", strerror(errno)));
        return NULL;
    }
    fchmod(fd, 0644);
    FILE *f = fdopen(fd, "w");
    if (!f) {
        close(fd);
        unlink(tmp);
        return NULL;
    }
    config_write_default(f);
    int failed = fflush(f) != 0 || ferror(f);
    int e = errno;
    fclose(f);
    if (!failed && link(tmp, path) != 0) {
        failed = 1;
        e = errno;
    }
    unlink(tmp);
    if (failed) {
        if (e == EEXIST) return NULL; /* another process beside us wrote it first */
        log_warn("no config file found, and writing the default failed; continuing with "
                 "defaults", LOG_S("path", path), LOG_S("error", strerror(e)));
        return NULL;
    }
    log_info("no config file found: wrote the defaults", LOG_S("path", path));
    return mem_strdup(path);
}

static int load_file(config_t *cfg, const char *path, char *err, size_t errlen) {
    config_file_t file;
    if (config_file_read(path, &file, err, errlen)) return -1;
    int rc = 0;
    for (size_t i = 0; i < file.len && rc == 0; i++)
        rc = set_entry(cfg, &file.entries[i], path, err, errlen);
    config_file_free(&file);
    return rc;
}

/* ---- the environment ---------------------------------------------------------- */

extern char **environ;

/* A DSOCK_ variable that names no key is most likely a typo: say so, but do not
 * refuse to start, since the environment is shared with other programs. */
static void warn_unknown_env(void) {
    for (char **e = environ; e && *e; e++) {
        if (strncmp(*e, "DSOCK_", 6)) continue;
        const char *eq = strchr(*e, '=');
        size_t n = eq ? (size_t)(eq - *e) : strlen(*e);
        char name[128];
        if (n >= sizeof name) continue;
        memcpy(name, *e, n);
        name[n] = '\0';
        bool known = false;
        for (size_t i = 0; i < NKEYS && !known; i++) {
            char en[64];
            env_name(keys[i].name, en, sizeof en);
            known = !strcmp(en, name);
        }
        if (known) continue;
        char hint[96];
        suggest_key(name, env_name, hint, sizeof hint);
        log_warn("unknown environment variable ignored", LOG_S("name", name),
                 LOG_S("hint", hint[0] ? hint : NULL));
    }
}

static int load_env(config_t *cfg, char *err, size_t errlen) {
    for (size_t i = 0; i < NKEYS; i++) {
        char name[64];
        env_name(keys[i].name, name, sizeof name);
        const char *v = getenv(name);
        if (v && set_text(cfg, &keys[i], v, name, err, errlen)) return -1;
    }
    /* The seed and dSock 0.4: the plain PORT variable (as hosting platforms set it)
     * gives the port; it wins over DSOCK_PORT, as in 0.4, and is resolved with the
     * rest of the environment layer (see resolve_address). */
    const char *port = getenv("PORT");
    if (port && *port) {
        char *end;
        errno = 0;
        long p = strtol(port, &end, 10);
        if (errno || *end || end == port || p < 0 || p > 65535 || !isdigit((unsigned char)*port)) {
            char pv[80];
            snprintf(err, errlen, "PORT: must be a port number (0-65535), got \"%s\"",
                     config_file_printable(port, pv, sizeof pv));
            return -1;
        }
        char a[16];
        snprintf(a, sizeof a, "%ld", p);
        if (set_text(cfg, key_by_name("port"), a, "PORT", err, errlen)) return -1;
    }
    return 0;
}

/* ---- flags ------------------------------------------------------------------ */

typedef struct pending {
    const config_key_t *key;
    const char *value;
    char flag[64];
} pending_t;

static bool is_bool_word(const char *s) {
    return !strcasecmp(s, "true") || !strcasecmp(s, "false") || !strcmp(s, "1") ||
           !strcmp(s, "0");
}

/* Reads argv without applying anything yet: flags go on top of the file and the
 * environment, but --config decides which file is read. */
static int parse_flags(int argc, char **argv, pending_t *out, size_t *nout,
                       const char **config_path, char *err, size_t errlen) {
    *nout = 0;
    for (int a = 0; a < argc; a++) {
        const char *arg = argv[a];
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) return CONFIG_HELP;
        if (!strcmp(arg, "--version")) return CONFIG_VERSION;
        if (strncmp(arg, "--", 2) || !arg[2]) {
            char pa[80];
            snprintf(err, errlen, "unexpected argument \"%s\" (options are --name value; see "
                                  "--help)", config_file_printable(arg, pa, sizeof pa));
            return CONFIG_USAGE;
        }
        const char *eq = strchr(arg, '=');
        size_t nlen = eq ? (size_t)(eq - arg) : strlen(arg);
        char name[64];
        if (nlen >= sizeof name) nlen = sizeof name - 1;
        memcpy(name, arg, nlen);
        name[nlen] = '\0';
        char pname[80];
        config_file_printable(name, pname, sizeof pname);
        const char *value = eq ? eq + 1 : NULL;
        const config_key_t *k = NULL;
        for (size_t i = 0; i < NKEYS && !k; i++) {
            char fname[64];
            flag_name(keys[i].name, fname, sizeof fname);
            if (!strcmp(fname, name)) k = &keys[i];
        }
        if (!k && strcmp(name, "--config")) {
            char hint[96];
            suggest_key(name, flag_name, hint, sizeof hint);
            if (!hint[0] && config_suggest(name, (const char *const[]){"--config"}, 1))
                snprintf(hint, sizeof hint, " (did you mean --config?)");
            snprintf(err, errlen, "unknown option %s%s; see --help", pname, hint);
            return CONFIG_USAGE;
        }
        if (!value) {
            /* A boolean flag alone means true; it takes the next word only when that
             * word is a boolean. */
            if (k && k->type == T_BOOL)
                value = a + 1 < argc && is_bool_word(argv[a + 1]) ? argv[++a] : "true";
            else if (a + 1 < argc)
                value = argv[++a];
            else {
                snprintf(err, errlen, "option %s needs a value", pname);
                return CONFIG_USAGE;
            }
        }
        if (!k) {
            if (!*value) {
                snprintf(err, errlen, "option --config needs a file name");
                return CONFIG_USAGE;
            }
            *config_path = value;
            continue;
        }
        pending_t *p = &out[(*nout)++];
        p->key = k;
        p->value = value;
        snprintf(p->flag, sizeof p->flag, "%s", name);
    }
    return CONFIG_OK;
}

/* ---- load ------------------------------------------------------------------- */

static void clear_empty(char **s) {
    if (*s && !**s) {
        free(*s);
        *s = NULL;
    }
}

/* address and port are one setting spelled two ways (docs/configuration.md,
 * "Listen address"): within a layer a non-empty address wins over port, and a
 * layer that gives a port without a non-empty address makes the address :port
 * (named after the port's source in errors). So the usual precedence, flag >
 * environment (DSOCK_ADDRESS > PORT > DSOCK_PORT) > file > default, holds for the
 * pair as a whole. */
static void resolve_address(config_t *cfg) {
    bool port_here = layer_of(cfg, "port") == cur_layer;
    bool addr_here = layer_of(cfg, "address") == cur_layer && cfg->address && *cfg->address;
    if (!port_here || addr_here) return;
    const config_key_t *a = key_by_name("address");
    char text[16];
    snprintf(text, sizeof text, ":%lld", (long long)cfg->port);
    store_string(cfg, a, text);
    set_origin(cfg, a, config_origin(cfg, "port"));
}

/* Seconds per unit of a Go duration; µs in its two spellings (U+00B5, U+03BC). */
static const struct { const char *unit; double s; } duration_units[] = {
    {"ns", 1e-9}, {"us", 1e-6}, {"\xc2\xb5s", 1e-6}, {"\xce\xbcs", 1e-6},
    {"ms", 1e-3}, {"s", 1},     {"m", 60},             {"h", 3600},
};

int config_parse_duration(const char *s, double *seconds) {
    if (!s || !*s) return -1;
    if (!strcmp(s, "0")) {
        *seconds = 0;
        return 0;
    }
    double total = 0;
    const char *p = s;
    while (*p) {
        /* [0-9]*(.[0-9]*)? with at least one digit, then a unit */
        const char *start = p;
        double v = 0, scale = 1;
        bool digits = false;
        while (isdigit((unsigned char)*p)) {
            v = v * 10 + (*p++ - '0');
            digits = true;
        }
        if (*p == '.') {
            p++;
            while (isdigit((unsigned char)*p)) {
                scale /= 10;
                v += (*p++ - '0') * scale;
                digits = true;
            }
        }
        if (!digits || p == start) return -1;
        size_t best = 0;
        double unit = 0;
        for (size_t i = 0; i < sizeof duration_units / sizeof duration_units[0]; i++) {
            size_t n = strlen(duration_units[i].unit);
            /* the longest unit that matches: "ms" before "m" */
            if (n > best && !strncmp(p, duration_units[i].unit, n)) {
                best = n;
                unit = duration_units[i].s;
            }
        }
        if (!best) return -1;
        p += best;
        total += v * unit;
        if (total > 1e12) return -1;
    }
    *seconds = total;
    return 0;
}

/* dSock 0.4's ttl_duration (how often its worker refreshed its keys, which expired
 * a little after) maps onto worker_ttl, the time after which a silent worker's
 * connections stop counting: unless worker_ttl itself is set in any layer. */
static int apply_ttl_duration(config_t *cfg, char *err, size_t errlen) {
    if (!cfg->ttl_duration || !*cfg->ttl_duration) return 0;
    const char *origin = config_origin(cfg, "ttl_duration");
    char pv[80];
    double sec;
    if (config_parse_duration(cfg->ttl_duration, &sec)) {
        snprintf(err, errlen, "%s: ttl_duration must be a Go duration such as \"60s\" or "
                              "\"1m30s\", got \"%s\"",
                 origin, config_file_printable(cfg->ttl_duration, pv, sizeof pv));
        return -1;
    }
    if (layer_of(cfg, "worker_ttl") != LAYER_DEFAULT) return 0;
    const config_key_t *k = key_by_name("worker_ttl");
    double whole = (double)(int64_t)sec;
    int64_t v = (int64_t)(whole < sec ? whole + 1 : whole);
    if (v < k->min || v > k->max) {
        snprintf(err, errlen, "%s: ttl_duration (which sets worker_ttl) must be between %llds "
                              "and %llds, got \"%s\"",
                 origin, (long long)k->min, (long long)k->max,
                 config_file_printable(cfg->ttl_duration, pv, sizeof pv));
        return -1;
    }
    cfg->worker_ttl = v;
    unsigned char saved = cur_layer;
    cur_layer = layer_of(cfg, "ttl_duration");
    set_origin(cfg, k, origin);
    cur_layer = saved;
    return 0;
}

static int load(config_t *cfg, int argc, char **argv, char *err, size_t errlen) {
    cur_layer = LAYER_DEFAULT;
    for (size_t i = 0; i < NKEYS; i++) {
        if (keys[i].def && set_text(cfg, &keys[i], keys[i].def, "default", err, errlen))
            return CONFIG_ERROR;
        if (!keys[i].def) set_origin(cfg, &keys[i], "default");
    }
    pending_t *flags = mem_calloc((size_t)argc + 1, sizeof *flags);
    size_t nflags;
    const char *config_path = NULL;
    int rc = parse_flags(argc, argv, flags, &nflags, &config_path, err, errlen);
    if (rc != CONFIG_OK) goto out;

    rc = CONFIG_ERROR;
    cur_layer = LAYER_FILE;
    if (config_path) {
        if (load_file(cfg, config_path, err, errlen)) goto out;
        cfg->source_file = mem_strdup(config_path);
    } else {
        char *cwd = NULL;
        char *found = find_config_file(&cwd);
        if (found) {
            cfg->source_file = found;
            if (load_file(cfg, found, err, errlen)) {
                free(cwd);
                goto out;
            }
        } else if (cwd) {
            /* Written by config_write_default_file once the whole configuration
             * is known to be valid: a failed start leaves nothing behind. */
            cfg->default_dir = cwd;
            cwd = NULL;
        }
        free(cwd);
    }

    resolve_address(cfg);

    cur_layer = LAYER_ENV;
    warn_unknown_env();
    if (load_env(cfg, err, errlen)) goto out;
    resolve_address(cfg);

    cur_layer = LAYER_FLAG;
    for (size_t i = 0; i < nflags; i++)
        if (set_text(cfg, flags[i].key, flags[i].value, flags[i].flag, err, errlen)) goto out;
    resolve_address(cfg);

    /* The seed: an empty address means :port, whichever layer emptied it (the
     * port of the highest layer that gave one, PORT included). */
    if (!cfg->address || !*cfg->address) {
        const config_key_t *a = key_by_name("address");
        char text[16];
        snprintf(text, sizeof text, ":%lld", (long long)cfg->port);
        store_string(cfg, a, text);
        cur_layer = layer_of(cfg, "port");
        set_origin(cfg, a, config_origin(cfg, "port"));
    }
    if (apply_ttl_duration(cfg, err, errlen)) goto out;
    /* An empty token or secret is the same as none: it must never authenticate. */
    clear_empty(&cfg->token);
    clear_empty(&cfg->jwt_secret);
    rc = CONFIG_OK;
out:
    free(flags);
    return rc;
}

int config_load(config_t *cfg, int argc, char **argv, char *err, size_t errlen) {
    memset(cfg, 0, sizeof *cfg);
    if (errlen) err[0] = '\0';
    cfg->origins = mem_calloc(NKEYS, sizeof *cfg->origins);
    cfg->layers = mem_calloc(NKEYS, sizeof *cfg->layers);
    int rc = load(cfg, argc, argv, err, errlen);
    if (rc != CONFIG_OK) config_free(cfg);
    return rc;
}

void config_write_default_file(config_t *cfg) {
    if (!cfg->default_dir) return;
    cfg->source_file = write_default_file(cfg->default_dir);
    cfg->wrote_default = cfg->source_file != NULL;
    free(cfg->default_dir);
    cfg->default_dir = NULL;
}

const char *config_origin(const config_t *cfg, const char *key) {
    const config_key_t *k = key_by_name(key);
    if (!k || !cfg->origins) return NULL;
    return cfg->origins[k - keys];
}

/* ---- validation ------------------------------------------------------------ */

int config_split_address(const char *addr, char *host, size_t hostlen, int *port) {
    const char *colon;
    const char *h = addr;
    size_t hlen;
    if (addr[0] == '[') {
        const char *close = strchr(addr, ']');
        if (!close || close[1] != ':') return -1;
        h = addr + 1;
        hlen = (size_t)(close - h);
        colon = close + 1;
        if (hlen == 0) return -1;
    } else {
        colon = strrchr(addr, ':');
        if (!colon || memchr(addr, ':', (size_t)(colon - addr))) return -1;
        hlen = (size_t)(colon - addr);
    }
    const char *p = colon + 1;
    if (!*p || strlen(p) > 5) return -1;
    for (const char *q = p; *q; q++)
        if (!isdigit((unsigned char)*q)) return -1;
    long v = strtol(p, NULL, 10);
    if (v > 65535 || hlen >= hostlen) return -1;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = (int)v;
    return 0;
}

/* Binds and closes a socket on the address, so a port in use or a host that is not
 * ours fails at startup with the name of the setting rather than later. With
 * reuse_port the probe asks for SO_REUSEPORT too: a port other processes listen
 * on with it (reuse_port workers) is then free to join. */
static int check_bind(const char *address, const char *origin, bool reuse_port, char *err,
                      size_t errlen) {
    char addr[80];
    config_file_printable(address, addr, sizeof addr);
    char host[256];
    int port;
    if (config_split_address(address, host, sizeof host, &port)) {
        snprintf(err, errlen, "%s: address \"%s\" is not host:port, :port or [ipv6]:port",
                 origin, addr);
        return -1;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char portstr[8];
    snprintf(portstr, sizeof portstr, "%d", port);
    int g = getaddrinfo(*host ? host : NULL, portstr, &hints, &res);
    if (g) {
        snprintf(err, errlen, "%s: cannot resolve the host of address \"%s\": %s", origin, addr,
                 gai_strerror(g));
        return -1;
    }
    int fd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, res->ai_protocol);
    int rc = 0;
    if (fd < 0) {
        snprintf(err, errlen, "%s: cannot listen on %s: %s", origin, addr, strerror(errno));
        rc = -1;
    } else {
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (reuse_port) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
        if (bind(fd, res->ai_addr, res->ai_addrlen)) {
            snprintf(err, errlen, "%s: cannot listen on %s: %s", origin, addr, strerror(errno));
            rc = -1;
        }
        close(fd);
    }
    freeaddrinfo(res);
    return rc;
}

int config_parse_sentinels(const char *list, config_hostport_t *out, size_t max, char *err,
                           size_t errlen) {
    size_t n = 0;
    const char *p = list ? list : "";
    for (;;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        while (len && (*p == ' ' || *p == '\t')) p++, len--;
        while (len && (p[len - 1] == ' ' || p[len - 1] == '\t')) len--;
        char item[300];
        if (len == 0 || len >= sizeof item) {
            snprintf(err, errlen, "entry %zu is %s (expected host:port,host:port)", n + 1,
                     len ? "too long" : "empty");
            return -1;
        }
        memcpy(item, p, len);
        item[len] = '\0';
        if (n == max) {
            snprintf(err, errlen, "more than %zu sentinels", max);
            return -1;
        }
        config_hostport_t *hp = &out[n];
        hp->port = 26379;
        const char *host = item, *port = NULL;
        size_t hlen;
        if (item[0] == '[') { /* [v6] or [v6]:port */
            const char *rb = strchr(item, ']');
            if (!rb || (rb[1] && rb[1] != ':')) goto bad;
            host = item + 1;
            hlen = (size_t)(rb - host);
            if (rb[1] == ':') port = rb + 2;
        } else {
            const char *colon = strchr(item, ':');
            if (colon && strchr(colon + 1, ':')) goto bad; /* a bare IPv6: use brackets */
            hlen = colon ? (size_t)(colon - item) : len;
            if (colon) port = colon + 1;
        }
        if (hlen == 0 || hlen >= sizeof hp->host) goto bad;
        for (size_t i = 0; i < hlen; i++)
            if ((unsigned char)host[i] <= 0x20 || host[i] == 0x7f) goto bad;
        memcpy(hp->host, host, hlen);
        hp->host[hlen] = '\0';
        if (port) {
            size_t pl = strlen(port);
            bool digits = pl >= 1 && pl <= 5;
            for (size_t i = 0; digits && i < pl; i++) digits = isdigit((unsigned char)port[i]);
            if (!digits || atoi(port) < 1 || atoi(port) > 65535) goto bad;
            hp->port = atoi(port);
        }
        n++;
        if (!end) return (int)n;
        p = end + 1;
        continue;
    bad:;
        char pv[80];
        snprintf(err, errlen, "entry %zu \"%s\" is not host:port (a port of 1-65535; an IPv6 "
                              "address in brackets)",
                 n + 1, config_file_printable(item, pv, sizeof pv));
        return -1;
    }
}

static const char *origin_or(const config_t *cfg, const char *key) {
    const char *o = config_origin(cfg, key);
    return o ? o : "default";
}

int config_validate(const config_t *cfg, config_role_t role, char *err, size_t errlen) {
    if (role == CONFIG_ROLE_API && !cfg->token) {
        snprintf(err, errlen, "the api needs a token: set DSOCK_TOKEN, --token or token in the "
                              "config file (an empty token is never accepted)");
        return -1;
    }
    if (!cfg->address || !*cfg->address) {
        snprintf(err, errlen, "%s: address is empty and PORT is not set",
                 origin_or(cfg, "address"));
        return -1;
    }
    if (cfg->ping_timeout <= cfg->ping_interval) {
        snprintf(err, errlen,
                 "%s: ping_timeout (%lld) must be greater than ping_interval (%lld, from %s)",
                 origin_or(cfg, "ping_timeout"), (long long)cfg->ping_timeout,
                 (long long)cfg->ping_interval, origin_or(cfg, "ping_interval"));
        return -1;
    }
    /* dSock 0.4's keys: the values it accepted, and no more. */
    if (strcmp(cfg->messaging_method, "redis") && strcmp(cfg->messaging_method, "direct")) {
        char pv[80];
        snprintf(err, errlen, "%s: messaging_method must be redis or direct, got \"%s\"",
                 origin_or(cfg, "messaging_method"),
                 config_file_printable(cfg->messaging_method, pv, sizeof pv));
        return -1;
    }
    if (*cfg->direct_message_port) {
        const char *p = cfg->direct_message_port;
        bool ok = strlen(p) <= 5;
        for (const char *q = p; *q && ok; q++) ok = isdigit((unsigned char)*q);
        if (!ok || atol(p) < 1 || atol(p) > 65535) {
            char pv[80];
            snprintf(err, errlen, "%s: direct_message_port must be empty or a port number "
                                  "(1-65535), got \"%s\"",
                     origin_or(cfg, "direct_message_port"), config_file_printable(p, pv, sizeof pv));
            return -1;
        }
    }
    if (cfg->redis_tls && role != CONFIG_ROLE_STANDALONE) {
        snprintf(err, errlen,
                 "%s: redis_tls = true is not supported: this dsock is built with Debian's "
                 "hiredis, which has no TLS. Reach Redis through a TLS tunnel (stunnel, "
                 "a sidecar) listening on a private address, point redis_host at it and "
                 "set redis_tls = false (docs/compatibility.md)",
                 origin_or(cfg, "redis_tls"));
        return -1;
    }
    if (cfg->redis_sentinels && *cfg->redis_sentinels) {
        /* Two sources for one address would leave the operator guessing which wins. */
        if (layer_of(cfg, "redis_host") != LAYER_DEFAULT) {
            snprintf(err, errlen,
                     "%s: redis_sentinels and redis_host (from %s) are mutually exclusive: with "
                     "Sentinel, dsock asks the sentinels where the primary is; remove one",
                     origin_or(cfg, "redis_sentinels"), origin_or(cfg, "redis_host"));
            return -1;
        }
        config_hostport_t list[CONFIG_SENTINELS_MAX];
        char why[200];
        if (config_parse_sentinels(cfg->redis_sentinels, list, CONFIG_SENTINELS_MAX, why,
                                   sizeof why) < 0) {
            snprintf(err, errlen, "%s: redis_sentinels: %s", origin_or(cfg, "redis_sentinels"),
                     why);
            return -1;
        }
        /* The name travels in +switch-master events, space-separated. */
        const char *m = cfg->redis_master_name;
        bool ok = m && *m && strlen(m) <= 255;
        for (const char *q = m; ok && *q; q++)
            ok = (unsigned char)*q > 0x20 && *q != 0x7f;
        if (!ok) {
            char pv[80];
            snprintf(err, errlen,
                     "%s: redis_master_name must be 1 to 255 bytes without spaces or control "
                     "characters, got \"%s\"",
                     origin_or(cfg, "redis_master_name"),
                     config_file_printable(m ? m : "", pv, sizeof pv));
            return -1;
        }
    }
    /* hiredis copies a socket path into sun_path and silently cuts a longer one. */
    if (role != CONFIG_ROLE_STANDALONE && cfg->redis_host &&
        !strncmp(cfg->redis_host, "unix:", 5)) {
        size_t n = strlen(cfg->redis_host + 5);
        if (n == 0 || n >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
            char pv[80];
            snprintf(err, errlen,
                     "%s: redis_host unix: needs a socket path of 1 to %zu bytes, got \"%s\"",
                     origin_or(cfg, "redis_host"),
                     sizeof(((struct sockaddr_un *)0)->sun_path) - 1,
                     config_file_printable(cfg->redis_host, pv, sizeof pv));
            return -1;
        }
    }
    if (cfg->compression && strcmp(cfg->compression, "auto") != 0 &&
        strcmp(cfg->compression, "off") != 0) {
        char pv[80];
        snprintf(err, errlen, "%s: compression must be auto or off, got \"%s\"",
                 origin_or(cfg, "compression"),
                 config_file_printable(cfg->compression, pv, sizeof pv));
        return -1;
    }
    if (cfg->default_channels && *cfg->default_channels) {
        char **list;
        size_t n;
        if (channel_list_parse(cfg->default_channels, strlen(cfg->default_channels), &list, &n) !=
            IDENT_OK) {
            snprintf(err, errlen,
                     "%s: default_channels must be comma-delimited channel names (UTF-8, no "
                     "control characters, at most %d bytes each)",
                     origin_or(cfg, "default_channels"), CHANNEL_NAME_MAX);
            return -1;
        }
        channel_list_free(list, n);
    }
    if (cfg->metrics_address && *cfg->metrics_address) {
        if (!strcmp(cfg->metrics_address, cfg->address)) {
            snprintf(err, errlen, "%s: metrics_address must differ from address",
                     origin_or(cfg, "metrics_address"));
            return -1;
        }
        if (check_bind(cfg->metrics_address, origin_or(cfg, "metrics_address"), false, err,
                       errlen))
            return -1;
    }
    return check_bind(cfg->address, origin_or(cfg, "address"), cfg->reuse_port, err, errlen);
}

void config_log_compat(const config_t *cfg, config_role_t role) {
    bool redis = role != CONFIG_ROLE_STANDALONE;
    if (!strcmp(cfg->messaging_method, "direct") && redis)
        log_warn("messaging_method = direct is not implemented: messages from the API to the "
                 "workers still travel over Redis pub/sub (direct_message_hostname and "
                 "direct_message_port are unused)",
                 LOG_S("source", config_origin(cfg, "messaging_method")));
    else if (!strcmp(cfg->messaging_method, "direct"))
        log_warn("messaging_method = direct is ignored: standalone hands messages to its "
                 "worker in-process",
                 LOG_S("source", config_origin(cfg, "messaging_method")));
    if (layer_of(cfg, "redis_max_retries") != LAYER_DEFAULT)
        log_info("redis_max_retries is accepted for dSock 0.4 configs and has no effect: Redis "
                 "is reconnected forever with back-off, and a request that cannot reach it "
                 "answers 503",
                 LOG_S("source", config_origin(cfg, "redis_max_retries")));
    if (cfg->redis_tls && !redis)
        log_warn("redis_tls is ignored: standalone uses no Redis",
                 LOG_S("source", config_origin(cfg, "redis_tls")));
}

/* ---- generated text ---------------------------------------------------------- */

static const char *shown_default(const config_key_t *k) {
    if (!k->def) return "(none)";
    if (!*k->def) return "\"\"";
    return k->def;
}

void config_usage(const char *subcommand) {
    if (!subcommand) {
        printf("Usage: dsock [command] [options]\n\n"
               "Commands:\n"
               "  standalone   API and worker in one process, no Redis needed (the default)\n"
               "  api          the HTTP API service (needs Redis and a token)\n"
               "  worker       the WebSocket worker service (needs Redis)\n\n"
               "Run \"dsock <command> --help\" for a command's options.\n\n");
        subcommand = "[command]";
    } else {
        printf("Usage: dsock %s [options]\n\n", subcommand);
    }
    printf("Options (flag, environment variable, default; precedence: flag > environment >\n"
           "config file > default):\n");
    for (size_t i = 0; i < NKEYS; i++) {
        char fname[64], ename[64], lhs[96];
        flag_name(keys[i].name, fname, sizeof fname);
        env_name(keys[i].name, ename, sizeof ename);
        snprintf(lhs, sizeof lhs, "%s <%s>", fname, type_name(keys[i].type));
        printf("  %-30s %-26s default %s\n      %s", lhs, ename, shown_default(&keys[i]),
               keys[i].help);
        if (keys[i].type == T_INT)
            printf(" (%lld to %lld)", (long long)keys[i].min, (long long)keys[i].max);
        printf("\n");
    }
    printf("  %-30s %-26s %s\n", "--config <path>", "", "read this config file, no search");
    printf("  %-30s %-26s %s\n", "-h, --help", "", "show this help");
    printf("  %-30s %-26s %s\n", "--version", "", "print the version");
    printf("\nConfig files: config.toml, config.json, config.yaml or config.yml in the working\n"
           "directory, then $HOME/.config/dsock, then /etc/dsock; the first found is used.\n"
           "With none, a commented config.toml with the defaults is written to the working\n"
           "directory. PORT sets the port (over DSOCK_PORT) when DSOCK_ADDRESS is not set.\n");
}

static void toml_quoted(FILE *out, const char *s) {
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fprintf(out, "\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            fprintf(out, "\\u%04x", (unsigned char)*s);
        else
            fputc(*s, out);
    }
    fputc('"', out);
}

void config_write_default(FILE *out) {
    fprintf(out, "# dsock configuration, written because no config file was found.\n"
                 "# Every key is shown at its default and commented out: remove the \"# \" to\n"
                 "# change one. Precedence: command-line flag > environment variable > this\n"
                 "# file > default. See docs/configuration.md.\n"
                 "# Secrets (token, redis_password, jwt_secret) are best given in the\n"
                 "# environment; if you put them here, keep this file private.\n");
    for (size_t i = 0; i < NKEYS; i++) {
        const config_key_t *k = &keys[i];
        char ename[64], fname[64];
        env_name(k->name, ename, sizeof ename);
        flag_name(k->name, fname, sizeof fname);
        fprintf(out, "\n# %s%s\n# (%s, %s)\n# %s = ", k->help, k->secret ? "; a secret" : "",
                ename, fname, k->name);
        if (k->type == T_STRING)
            toml_quoted(out, k->def && !k->secret ? k->def : "");
        else
            fputs(k->def, out);
        fputc('\n', out);
    }
}

void config_write_markdown(FILE *out) {
    fprintf(out, "| Key | Type | Default | Environment variable | Flag | Description |\n"
                 "| --- | --- | --- | --- | --- | --- |\n");
    for (size_t i = 0; i < NKEYS; i++) {
        const config_key_t *k = &keys[i];
        char ename[64], fname[64], type[64];
        env_name(k->name, ename, sizeof ename);
        flag_name(k->name, fname, sizeof fname);
        if (k->type == T_INT)
            snprintf(type, sizeof type, "integer, %lld to %lld", (long long)k->min,
                     (long long)k->max);
        else
            snprintf(type, sizeof type, "%s", type_name(k->type));
        char def[64];
        if (!k->def)
            snprintf(def, sizeof def, "none");
        else
            snprintf(def, sizeof def, "`%s`", *k->def ? k->def : "\"\"");
        fprintf(out, "| `%s` | %s | %s | `%s` | `%s` | %s%s |\n", k->name, type, def, ename, fname,
                k->help, k->secret ? "; a secret, never written to the default file" : "");
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
    if (cfg->origins)
        for (size_t i = 0; i < NKEYS; i++) free(cfg->origins[i]);
    free(cfg->origins);
    free(cfg->layers);
    free(cfg->source_file);
    free(cfg->default_dir);
    memset(cfg, 0, sizeof *cfg);
}
