/* Configuration: precedence (flag > environment > file > default), the file
 * search and the default file, the three file formats, every validation error
 * (each must name its source: file:line, variable or flag), the generated help,
 * and that docs/configuration.md matches the key table. Each Criterion test runs
 * in its own process, so tests chdir into a fresh temp directory and change the
 * environment freely. */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/config.h"
#include "common/config_file.h"

extern char **environ;

static char tmp[256];
static char err[1024];
static config_t cfg;

/* A clean world: empty temp cwd, HOME and system dir under it, no DSOCK_ vars. */
static void setup(void) {
    char docs_cwd[4096];
    cr_assert(getcwd(docs_cwd, sizeof docs_cwd));
    setenv("CONFIG_TEST_REPO", docs_cwd, 1);
    snprintf(tmp, sizeof tmp, "/tmp/dsock-config-test-XXXXXX");
    cr_assert(mkdtemp(tmp));
    char p[512];
    snprintf(p, sizeof p, "%s/home", tmp);
    mkdir(p, 0755);
    setenv("HOME", p, 1);
    snprintf(p, sizeof p, "%s/etc", tmp);
    mkdir(p, 0755);
    static char etc[512];
    snprintf(etc, sizeof etc, "%s", p);
    config_set_system_dir(etc);
    snprintf(p, sizeof p, "%s/cwd", tmp);
    mkdir(p, 0755);
    cr_assert_eq(chdir(p), 0);
    for (;;) {
        char **e = environ;
        while (*e && (strncmp(*e, "DSOCK_", 6))) e++;
        if (!*e) break;
        char name[256];
        size_t n = strcspn(*e, "=");
        snprintf(name, sizeof name, "%.*s", (int)n, *e);
        unsetenv(name);
    }
    unsetenv("PORT");
}

static void teardown(void) {
    config_free(&cfg);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    int rc = system(cmd);
    (void)rc;
}

TestSuite(config, .init = setup, .fini = teardown);

static void write_file(const char *rel, const char *text) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tmp, rel);
    FILE *f = fopen(path, "w");
    cr_assert(f, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
}

static int load(int argc, char **argv) {
    int rc = config_load(&cfg, argc, argv, err, sizeof err);
    if (rc == CONFIG_OK) config_write_default_file(&cfg); /* as main does once valid */
    return rc;
}
#define LOAD(...)                                                      \
    ({                                                                 \
        char *argv_[] = {__VA_ARGS__, NULL};                           \
        load((int)(sizeof argv_ / sizeof argv_[0]) - 1, argv_);        \
    })

static void expect_err(int rc, int want, const char *needle) {
    cr_assert_eq(rc, want, "rc %d, want %d (err: %s)", rc, want, err);
    cr_expect(strstr(err, needle), "error \"%s\" lacks \"%s\"", err, needle);
    cr_expect(!strchr(err, '\n'), "error is not one line: %s", err);
}

/* ---- defaults and the default file ---------------------------------------- */

Test(config, defaults_and_default_file_written) {
    setenv("DSOCK_TOKEN", "sekrit-token", 1);
    setenv("DSOCK_REDIS_PASSWORD", "sekrit-pass", 1);
    cr_assert_eq(load(0, NULL), CONFIG_OK, "%s", err);
    cr_expect_str_eq(cfg.address, ":6241");
    cr_expect_str_eq(cfg.redis_host, "localhost:6379");
    cr_expect_eq(cfg.redis_db, 0);
    cr_expect_eq(cfg.debug, false);
    cr_expect_eq(cfg.ping_interval, 60);
    cr_expect_null(cfg.jwt_secret);
    cr_expect(cfg.wrote_default);
    char want[512];
    snprintf(want, sizeof want, "%s/cwd/config.toml", tmp);
    cr_assert_str_eq(cfg.source_file, want);
    cr_expect_str_eq(config_origin(&cfg, "address"), "default");
    cr_expect_str_eq(config_origin(&cfg, "token"), "DSOCK_TOKEN");

    /* Every key is in the file, commented out, and no secret is. */
    FILE *f = fopen(want, "r");
    cr_assert(f);
    char text[16384];
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    cr_expect(!strstr(text, "sekrit"), "a secret was written:\n%s", text);
    const char *names[] = {"address", "redis_host", "redis_password", "redis_db", "token",
                           "jwt_secret", "debug", "ping_interval", "max_connections"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char line[128];
        snprintf(line, sizeof line, "\n# %s = ", names[i]);
        cr_expect(strstr(text, line), "no commented %s in:\n%s", names[i], text);
    }
    for (char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        cr_expect(*l == '#' || *l == '\n', "uncommented line: %.40s", l);

    /* Uncommented, the file is a valid config that yields the defaults. */
    char un[16384];
    size_t o = 0;
    for (char *l = text; *l;) {
        char *e = strchr(l, '\n');
        size_t len = e ? (size_t)(e - l + 1) : strlen(l);
        if (!strncmp(l, "# ", 2) && strstr(l, " = ") && strstr(l, " = ") < l + len) {
            memcpy(un + o, l + 2, len - 2);
            o += len - 2;
        }
        l += len;
    }
    un[o] = '\0';
    config_file_t cf;
    cr_assert_eq(config_file_parse("x.toml", un, o, CONFIG_FILE_TOML, &cf, err, sizeof err), 0,
                 "%s\n%s", err, un);
    cr_expect_gt(cf.len, 10);
    config_file_free(&cf);
}

Test(config, second_start_reads_written_file) {
    cr_assert_eq(load(0, NULL), CONFIG_OK, "%s", err);
    cr_assert(cfg.wrote_default);
    config_free(&cfg);
    cr_assert_eq(load(0, NULL), CONFIG_OK, "%s", err);
    cr_expect(!cfg.wrote_default);
    cr_expect(strstr(cfg.source_file, "/cwd/config.toml"));
}

Test(config, default_file_not_written_with_config_flag) {
    write_file("my.toml", "redis_db = 4\n");
    char path[512];
    snprintf(path, sizeof path, "%s/my.toml", tmp);
    cr_assert_eq(LOAD("--config", path), CONFIG_OK, "%s", err);
    cr_expect_eq(cfg.redis_db, 4);
    cr_expect(!cfg.wrote_default);
    cr_expect_str_eq(cfg.source_file, path);
    cr_expect_neq(access("config.toml", F_OK), 0, "default file written despite --config");
}

Test(config, unwritable_directory_is_a_warning) {
    cr_assert_eq(chdir("/proc"), 0);
    cr_assert_eq(load(0, NULL), CONFIG_OK, "%s", err);
    cr_expect(!cfg.wrote_default);
    cr_expect_null(cfg.source_file);
}

/* ---- precedence and search ---------------------------------------------------- */

Test(config, precedence_flag_env_file_default) {
    write_file("cwd/config.toml", "redis_db = 1\nredis_host = \"file:1\"\ndebug = true\n");
    setenv("DSOCK_REDIS_DB", "2", 1);
    setenv("DSOCK_REDIS_HOST", "env:2", 1);
    cr_assert_eq(LOAD("--redis-db", "3"), CONFIG_OK, "%s", err);
    cr_expect_eq(cfg.redis_db, 3);
    cr_expect_str_eq(cfg.redis_host, "env:2");
    cr_expect(cfg.debug);
    cr_expect_eq(cfg.ping_interval, 60);
    cr_expect_str_eq(config_origin(&cfg, "redis_db"), "--redis-db");
    cr_expect_str_eq(config_origin(&cfg, "redis_host"), "DSOCK_REDIS_HOST");
    cr_expect(strstr(config_origin(&cfg, "debug"), "/cwd/config.toml:3"), "%s",
              config_origin(&cfg, "debug"));
    cr_expect_str_eq(config_origin(&cfg, "ping_interval"), "default");
}

Test(config, search_order) {
    write_file("etc/config.toml", "redis_db = 3\n");
    cr_assert_eq(load(0, NULL), CONFIG_OK, "%s", err);
    cr_expect_eq(cfg.redis_db, 3);
    cr_expect(strstr(cfg.source_file, "/etc/config.toml"));
    config_free(&cfg);

    mkdir("../home/.config", 0755);
    mkdir("../home/.config/dsock", 0755);
    write_file("home/.config/dsock/config.yaml", "redis_db: 2\n");
    cr_assert_eq(load(0, NULL), CONFIG_OK, "%s", err);
    cr_expect_eq(cfg.redis_db, 2);
    cr_expect(strstr(cfg.source_file, "/home/.config/dsock/config.yaml"));
    config_free(&cfg);

    write_file("cwd/config.json", "{\"redis_db\": 1}\n");
    write_file("cwd/config.yml", "redis_db: 9\n");
    cr_assert_eq(load(0, NULL), CONFIG_OK, "%s", err);
    cr_expect_eq(cfg.redis_db, 1, "config.json comes before config.yml");
    cr_expect(strstr(cfg.source_file, "/cwd/config.json"));
    cr_expect(!cfg.wrote_default);
}

/* ---- formats ----------------------------------------------------------------- */

Test(config, toml_file) {
    write_file("cwd/config.toml", "# dsock\naddress = \"127.0.0.1:7000\"\n"
                                  "max_connections = 1_000 # underscores are fine\n"
                                  "jwt_secret = '''s3cret'''\ndebug = false\n");
    cr_assert_eq(load(0, NULL), CONFIG_OK, "%s", err);
    cr_expect_str_eq(cfg.address, "127.0.0.1:7000");
    cr_expect_eq(cfg.max_connections, 1000);
    cr_expect_str_eq(cfg.jwt_secret, "s3cret");
}

Test(config, json_file) {
    write_file("cwd/config.json", "{\n  \"address\": \":7001\",\n  \"redis_db\": 5,\n"
                                  "  \"debug\": true,\n  \"token\": null\n}\n");
    cr_assert_eq(load(0, NULL), CONFIG_OK, "%s", err);
    cr_expect_str_eq(cfg.address, ":7001");
    cr_expect_eq(cfg.redis_db, 5);
    cr_expect(cfg.debug);
    cr_expect_null(cfg.token);
    cr_expect(strstr(config_origin(&cfg, "redis_db"), "config.json:3"), "%s",
              config_origin(&cfg, "redis_db"));
}

Test(config, yaml_file) {
    write_file("cwd/config.yaml", "# dsock\naddress: \":7002\"\nredis_host: redis.local:6380\n"
                                  "redis_db: 0x3\ndebug: True\njwt_secret: ~\n"
                                  "token: '12345'\n");
    cr_assert_eq(load(0, NULL), CONFIG_OK, "%s", err);
    cr_expect_str_eq(cfg.address, ":7002");
    cr_expect_str_eq(cfg.redis_host, "redis.local:6380");
    cr_expect_eq(cfg.redis_db, 3);
    cr_expect(cfg.debug);
    cr_expect_null(cfg.jwt_secret);
    cr_expect_str_eq(cfg.token, "12345");
    cr_expect(strstr(config_origin(&cfg, "debug"), "config.yaml:5"), "%s",
              config_origin(&cfg, "debug"));
}

Test(config, empty_files_are_empty_configs) {
    write_file("cwd/config.yaml", "# nothing yet\n");
    cr_assert_eq(load(0, NULL), CONFIG_OK, "%s", err);
    config_free(&cfg);
    write_file("cwd/config.toml", "");
    cr_assert_eq(load(0, NULL), CONFIG_OK, "%s", err);
}

/* ---- validation errors: files ----------------------------------------------------- */

Test(config, malformed_toml) {
    write_file("cwd/config.toml", "address = \":1\"\nredis_db = 01\n");
    expect_err(load(0, NULL), CONFIG_ERROR, "/cwd/config.toml:2:12: leading zeros");
}

Test(config, malformed_json) {
    write_file("cwd/config.json", "{\n  \"redis_db\": 1,\n  \"debug\": tru\n}\n");
    expect_err(load(0, NULL), CONFIG_ERROR, "/cwd/config.json:3: malformed JSON");
    write_file("cwd/config.json", "[1, 2]\n");
    expect_err(load(0, NULL), CONFIG_ERROR, "must be an object");
    write_file("cwd/config.json", "{} {}\n");
    expect_err(load(0, NULL), CONFIG_ERROR, "text after");
}

Test(config, malformed_yaml) {
    write_file("cwd/config.yaml", "redis_db: 1\ndebug: [true\n");
    expect_err(load(0, NULL), CONFIG_ERROR, "/cwd/config.yaml:3: malformed YAML");
    write_file("cwd/config.yaml", "- a\n- b\n");
    expect_err(load(0, NULL), CONFIG_ERROR, "must be a mapping");
    write_file("cwd/config.yaml", "a: &x 1\nb: *x\n");
    expect_err(load(0, NULL), CONFIG_ERROR, "aliases are not supported");
    write_file("cwd/config.yaml", "redis_db: 1\n---\nredis_db: 2\n");
    expect_err(load(0, NULL), CONFIG_ERROR, "only one YAML document");
}

Test(config, unknown_keys_with_suggestion) {
    write_file("cwd/config.toml", "address = \":1\"\n\nredis_hots = \"x\"\n");
    expect_err(load(0, NULL), CONFIG_ERROR,
               "/cwd/config.toml:3: unknown key \"redis_hots\" (did you mean redis_host?)");
    unlink("config.toml");
    write_file("cwd/config.json", "{\n \"debug\": true,\n \"jwt_secrte\": \"x\"\n}");
    expect_err(load(0, NULL), CONFIG_ERROR,
               "config.json:3: unknown key \"jwt_secrte\" (did you mean jwt_secret?)");
    unlink("config.json");
    write_file("cwd/config.yml", "debug: true\nping_intreval: 5\n");
    expect_err(load(0, NULL), CONFIG_ERROR,
               "config.yml:2: unknown key \"ping_intreval\" (did you mean ping_interval?)");
    write_file("cwd/config.yml", "zzzzzz: 1\n");
    expect_err(load(0, NULL), CONFIG_ERROR, "unknown key \"zzzzzz\"");
    cr_expect(!strstr(err, "did you mean"), "%s", err);
}

Test(config, tables_are_unknown_keys) {
    write_file("cwd/config.toml", "debug = true\n[redis]\nhost = \"x\"\n");
    expect_err(load(0, NULL), CONFIG_ERROR, "config.toml:2: unknown key \"redis\"");
}

Test(config, duplicate_keys) {
    write_file("cwd/config.json", "{\"debug\": true,\n\"debug\": false}");
    expect_err(load(0, NULL), CONFIG_ERROR, "duplicate key \"debug\"");
    unlink("config.json");
    write_file("cwd/config.yaml", "debug: true\ndebug: false\n");
    expect_err(load(0, NULL), CONFIG_ERROR, "config.yaml:2: duplicate key \"debug\"");
}

Test(config, wrong_types) {
    write_file("cwd/config.toml", "redis_db = \"1\"\n");
    expect_err(load(0, NULL), CONFIG_ERROR,
               "config.toml:1: redis_db must be an integer, got a string");
    write_file("cwd/config.toml", "\ntoken = 12345\n");
    expect_err(load(0, NULL), CONFIG_ERROR,
               "config.toml:2: token must be a string, got an integer (put the value in quotes)");
    write_file("cwd/config.toml", "debug = \"yes\"\n");
    expect_err(load(0, NULL), CONFIG_ERROR, "config.toml:1: debug must be a boolean");
    write_file("cwd/config.toml", "redis_db = 1.5\n");
    expect_err(load(0, NULL), CONFIG_ERROR, "redis_db must be an integer, got a float");
    write_file("cwd/config.toml", "redis_host = [\"a\"]\n");
    expect_err(load(0, NULL), CONFIG_ERROR, "redis_host must be a string, got an array");
    write_file("cwd/config.toml", "address = { a = 1 }\n");
    expect_err(load(0, NULL), CONFIG_ERROR, "address must be a string, got a table");
    unlink("config.toml");
    write_file("cwd/config.yaml", "debug: yes\n");
    expect_err(load(0, NULL), CONFIG_ERROR, "config.yaml:1: debug must be a boolean");
    write_file("cwd/config.yaml", "token: 12345\n");
    expect_err(load(0, NULL), CONFIG_ERROR, "token must be a string, got an integer");
}

Test(config, out_of_range) {
    write_file("cwd/config.toml", "redis_db = -1\n");
    expect_err(load(0, NULL), CONFIG_ERROR,
               "config.toml:1: redis_db must be between 0 and 1048576, got -1");
    unlink("config.toml");
    setenv("DSOCK_PING_INTERVAL", "0", 1);
    expect_err(load(0, NULL), CONFIG_ERROR, "DSOCK_PING_INTERVAL: ping_interval must be between");
    unsetenv("DSOCK_PING_INTERVAL");
    expect_err(LOAD("--max-connections", "0"), CONFIG_ERROR,
               "--max-connections: max_connections must be between 1 and");
}

/* Every size or count limit refuses 0 (and anything below its minimum) from each
 * source, with the range message: no limit has an "unlimited" or "nothing" value
 * (docs/configuration.md, "Limits"). Its minimum itself is accepted. */
static const struct {
    const char *key, *env, *flag, *min, *below;
} limits[] = {
    {"max_header_bytes", "DSOCK_MAX_HEADER_BYTES", "--max-header-bytes", "1024", "1023"},
    {"max_body_bytes", "DSOCK_MAX_BODY_BYTES", "--max-body-bytes", "1", NULL},
    {"max_message_bytes", "DSOCK_MAX_MESSAGE_BYTES", "--max-message-bytes", "1", NULL},
    {"max_queued_bytes", "DSOCK_MAX_QUEUED_BYTES", "--max-queued-bytes", "1024", "1023"},
    {"max_connections", "DSOCK_MAX_CONNECTIONS", "--max-connections", "1", NULL},
};
#define NLIMITS (sizeof limits / sizeof limits[0])

Test(config, zero_limits_are_refused) {
    char text[128], want[160];
    for (size_t i = 0; i < NLIMITS; i++) {
        const char *k = limits[i].key;
        const char *values[] = {"0", limits[i].below};
        for (size_t v = 0; v < 2 && values[v]; v++) {
            const char *val = values[v];
            snprintf(text, sizeof text, "token = \"t\"\n%s = %s\n", k, val);
            write_file("cwd/config.toml", text);
            snprintf(want, sizeof want, "config.toml:2: %s must be between %s and", k,
                     limits[i].min);
            expect_err(load(0, NULL), CONFIG_ERROR, want);
            cr_expect(strstr(err, "got ") && !strcmp(strstr(err, "got ") + 4, val), "%s", err);
            unlink("config.toml");

            setenv(limits[i].env, val, 1);
            snprintf(want, sizeof want, "%s: %s must be between %s and", limits[i].env, k,
                     limits[i].min);
            expect_err(load(0, NULL), CONFIG_ERROR, want);
            unsetenv(limits[i].env);

            snprintf(want, sizeof want, "%s: %s must be between %s and", limits[i].flag, k,
                     limits[i].min);
            expect_err(LOAD((char *)limits[i].flag, (char *)val), CONFIG_ERROR, want);
        }
        /* The minimum is a valid limit, from any source. */
        char *argv[] = {(char *)limits[i].flag, (char *)limits[i].min, NULL};
        cr_expect_eq(load(2, argv), CONFIG_OK, "%s", err);
        config_free(&cfg);
        unlink("config.toml");
        setenv(limits[i].env, limits[i].min, 1);
        cr_expect_eq(load(0, NULL), CONFIG_OK, "%s", err);
        config_free(&cfg);
        unsetenv(limits[i].env);
        unlink("config.toml"); /* the default file a valid start wrote */
    }
    /* JSON and YAML files go through the same check. */
    write_file("cwd/config.json", "{\"max_message_bytes\": 0}");
    expect_err(load(0, NULL), CONFIG_ERROR, "config.json");
    cr_expect(strstr(err, "max_message_bytes must be between 1 and"), "%s", err);
    unlink("config.json");
    write_file("cwd/config.yaml", "max_body_bytes: 0\n");
    expect_err(load(0, NULL), CONFIG_ERROR, "config.yaml:1: max_body_bytes must be between 1 and");
}

/* The list above is every limit: each max_* key of the table is in it, so a new
 * limit cannot be added without its test. */
Test(config, every_limit_key_is_tested) {
    char *gen = NULL;
    size_t glen = 0;
    FILE *m = open_memstream(&gen, &glen);
    config_write_markdown(m);
    fclose(m);
    size_t seen = 0;
    for (const char *p = gen; (p = strstr(p, "| `max_")); p++) {
        char name[64];
        cr_assert_eq(sscanf(p, "| `%63[a-z_]`", name), 1);
        bool found = false;
        for (size_t i = 0; i < NLIMITS; i++) found = found || !strcmp(name, limits[i].key);
        cr_expect(found, "limit %s has no zero test", name);
        /* Its range in the table does not start at 0. */
        char row[512];
        snprintf(row, sizeof row, "%.*s", (int)strcspn(p, "\n"), p);
        cr_expect(!strstr(row, "| integer, 0 to"), "limit %s accepts 0: %s", name, row);
        seen++;
    }
    cr_expect_eq(seen, NLIMITS);
    free(gen);
}

Test(config, bad_values_in_env_and_flags) {
    setenv("DSOCK_REDIS_DB", "abc", 1);
    expect_err(load(0, NULL), CONFIG_ERROR, "DSOCK_REDIS_DB: redis_db must be an integer");
    setenv("DSOCK_REDIS_DB", " 1", 1);
    expect_err(load(0, NULL), CONFIG_ERROR, "DSOCK_REDIS_DB");
    unsetenv("DSOCK_REDIS_DB");
    setenv("DSOCK_DEBUG", "maybe", 1);
    expect_err(load(0, NULL), CONFIG_ERROR, "DSOCK_DEBUG: debug must be true or false");
    unsetenv("DSOCK_DEBUG");
    expect_err(LOAD("--redis-db=1x"), CONFIG_ERROR, "--redis-db: redis_db must be an integer");
    expect_err(LOAD("--redis-db", "99999999999999999999"), CONFIG_ERROR, "--redis-db");
}

Test(config, config_flag_errors) {
    expect_err(LOAD("--config", "/nonexistent/x.toml"), CONFIG_ERROR,
               "/nonexistent/x.toml: cannot open");
    write_file("cwd/settings.ini", "a=1\n");
    expect_err(LOAD("--config", "settings.ini"), CONFIG_ERROR, "settings.ini: cannot tell");
    expect_err(LOAD("--config"), CONFIG_USAGE, "--config needs a value");
    expect_err(LOAD("--config="), CONFIG_USAGE, "--config needs a file name");
}

/* ---- flags ----------------------------------------------------------------------- */

Test(config, unknown_flags) {
    expect_err(LOAD("--redis-hots", "x"), CONFIG_USAGE,
               "unknown option --redis-hots (did you mean --redis-host?)");
    expect_err(LOAD("--confg", "x"), CONFIG_USAGE, "(did you mean --config?)");
    expect_err(LOAD("--frobnicate"), CONFIG_USAGE, "unknown option --frobnicate; see --help");
    expect_err(LOAD("stray"), CONFIG_USAGE, "unexpected argument \"stray\"");
    expect_err(LOAD("-x"), CONFIG_USAGE, "unexpected argument \"-x\"");
    expect_err(LOAD("--token"), CONFIG_USAGE, "option --token needs a value");
    cr_expect_neq(access("config.toml", F_OK), 0, "usage errors must not write files");
}

Test(config, help_and_version) {
    cr_expect_eq(LOAD("--help"), CONFIG_HELP);
    cr_expect_eq(LOAD("--debug", "-h"), CONFIG_HELP);
    cr_expect_eq(LOAD("--version"), CONFIG_VERSION);
    cr_expect_neq(access("config.toml", F_OK), 0, "--help must not write files");
}

Test(config, flag_forms) {
    cr_assert_eq(LOAD("--debug", "--redis-db=7", "--address", "127.0.0.1:1"), CONFIG_OK, "%s",
                 err);
    cr_expect(cfg.debug);
    cr_expect_eq(cfg.redis_db, 7);
    cr_expect_str_eq(cfg.address, "127.0.0.1:1");
    config_free(&cfg);
    write_file("cwd/config.toml", "debug = true\n");
    cr_assert_eq(LOAD("--debug", "false", "--redis-db", "2"), CONFIG_OK, "%s", err);
    cr_expect(!cfg.debug);
    config_free(&cfg);
    cr_assert_eq(LOAD("--debug=0"), CONFIG_OK, "%s", err);
    cr_expect(!cfg.debug);
    config_free(&cfg);
    cr_assert_eq(LOAD("--token", "--looks-like-a-flag"), CONFIG_OK, "%s", err);
    cr_expect_str_eq(cfg.token, "--looks-like-a-flag");
}

Test(config, empty_secrets_are_unset) {
    setenv("DSOCK_TOKEN", "", 1);
    cr_assert_eq(LOAD("--jwt-secret", ""), CONFIG_OK, "%s", err);
    cr_expect_null(cfg.token);
    cr_expect_null(cfg.jwt_secret);
}

Test(config, unknown_env_is_only_a_warning) {
    setenv("DSOCK_REDIS_HOTS", "x", 1);
    cr_assert_eq(load(0, NULL), CONFIG_OK, "%s", err);
}

/* ---- PORT ---------------------------------------------------------------------------- */

Test(config, port_variable) {
    setenv("PORT", "8080", 1);
    cr_assert_eq(load(0, NULL), CONFIG_OK, "%s", err);
    cr_expect_str_eq(cfg.address, ":8080");
    cr_expect_str_eq(config_origin(&cfg, "address"), "PORT");
    config_free(&cfg);
    setenv("DSOCK_ADDRESS", "127.0.0.1:9", 1);
    cr_assert_eq(load(0, NULL), CONFIG_OK, "%s", err);
    cr_expect_str_eq(cfg.address, "127.0.0.1:9", "DSOCK_ADDRESS wins over PORT");
    config_free(&cfg);
    setenv("DSOCK_ADDRESS", "", 1);
    cr_assert_eq(load(0, NULL), CONFIG_OK, "%s", err);
    cr_expect_str_eq(cfg.address, ":8080");
    config_free(&cfg);
    cr_assert_eq(LOAD("--address", ":5"), CONFIG_OK, "%s", err);
    cr_expect_str_eq(cfg.address, ":5", "a flag wins over PORT");
    config_free(&cfg);
    setenv("PORT", "http", 1);
    expect_err(load(0, NULL), CONFIG_ERROR, "PORT: must be a port number");
}

Test(config, empty_address_means_port) {
    cr_assert_eq(LOAD("--address", ""), CONFIG_OK, "%s", err);
    cr_expect_str_eq(cfg.address, ":6241", "an empty address means :port (default 6241)");
    cr_expect_str_eq(config_origin(&cfg, "address"), "default");
    config_free(&cfg);
    setenv("PORT", "8080", 1);
    cr_assert_eq(LOAD("--address", ""), CONFIG_OK, "%s", err);
    cr_expect_str_eq(cfg.address, ":8080");
    cr_expect_str_eq(config_origin(&cfg, "address"), "PORT");
}

/* address and port: per layer a non-empty address wins over port; across layers the
 * usual flag > environment (DSOCK_ADDRESS > PORT > DSOCK_PORT) > file > default. */
Test(config, listen_address_precedence) {
    write_file("cwd/config.toml", "port = 7000\n");
    cr_assert_eq(load(0, NULL), CONFIG_OK, "%s", err);
    cr_expect_str_eq(cfg.address, ":7000", "a file's port alone");
    cr_expect(strstr(config_origin(&cfg, "address"), "config.toml:1"), "%s",
              config_origin(&cfg, "address"));
    config_free(&cfg);

    write_file("cwd/config.toml", "address = \"127.0.0.1:7001\"\nport = 7000\n");
    cr_assert_eq(load(0, NULL), CONFIG_OK, "%s", err);
    cr_expect_str_eq(cfg.address, "127.0.0.1:7001", "address wins over port in one layer");
    config_free(&cfg);

    write_file("cwd/config.toml", "address = \"\"\nport = 7000\n");
    cr_assert_eq(load(0, NULL), CONFIG_OK, "%s", err);
    cr_expect_str_eq(cfg.address, ":7000", "an empty address (dSock's own files) means :port");
    config_free(&cfg);

    write_file("cwd/config.toml", "address = \":7001\"\n");
    setenv("DSOCK_PORT", "8000", 1);
    cr_assert_eq(load(0, NULL), CONFIG_OK, "%s", err);
    cr_expect_str_eq(cfg.address, ":8000", "the environment's port over the file's address");
    cr_expect_str_eq(config_origin(&cfg, "address"), "DSOCK_PORT");
    config_free(&cfg);

    setenv("PORT", "8080", 1);
    cr_assert_eq(load(0, NULL), CONFIG_OK, "%s", err);
    cr_expect_str_eq(cfg.address, ":8080", "PORT over DSOCK_PORT, as in dSock 0.4");
    cr_expect_eq(cfg.port, 8080);
    config_free(&cfg);

    setenv("DSOCK_ADDRESS", "127.0.0.1:9", 1);
    cr_assert_eq(load(0, NULL), CONFIG_OK, "%s", err);
    cr_expect_str_eq(cfg.address, "127.0.0.1:9", "DSOCK_ADDRESS over PORT and DSOCK_PORT");
    config_free(&cfg);

    cr_assert_eq(LOAD("--port", "9000"), CONFIG_OK, "%s", err);
    cr_expect_str_eq(cfg.address, ":9000", "a flag's port over the environment's address");
    cr_expect_str_eq(config_origin(&cfg, "address"), "--port");
    config_free(&cfg);

    cr_assert_eq(LOAD("--address", ":5", "--port", "9000"), CONFIG_OK, "%s", err);
    cr_expect_str_eq(cfg.address, ":5");
    config_free(&cfg);

    unsetenv("PORT");
    unsetenv("DSOCK_ADDRESS");
    setenv("DSOCK_PORT", "http", 1);
    expect_err(load(0, NULL), CONFIG_ERROR, "DSOCK_PORT: port must be an integer");
    unsetenv("DSOCK_PORT");
    write_file("cwd/config.toml", "port = 70000\n");
    expect_err(load(0, NULL), CONFIG_ERROR, "port must be between 0 and 65535, got 70000");
}

/* ---- dSock 0.4's keys -------------------------------------------------------------------- */

/* A config file as written for dSock 0.4 (every key of its README but
 * default_channels) loads and validates for every role but redis_tls = true. */
Test(config, dsock04_keys_accepted) {
    write_file("cwd/config.toml",
               "port = 7100\nredis_host = \"localhost:6379\"\nredis_password = \"\"\n"
               "redis_db = 0\nredis_max_retries = 10\nredis_tls = false\ntoken = \"abc\"\n"
               "jwt_secret = \"s\"\ndebug = false\nlog_requests = true\n"
               "messaging_method = \"direct\"\ndirect_message_hostname = \"10.0.0.5\"\n"
               "direct_message_port = 7100\nttl_duration = \"60s\"\n");
    cr_assert_eq(load(0, NULL), CONFIG_OK, "%s", err);
    cr_expect_str_eq(cfg.address, ":7100");
    cr_expect_eq(cfg.redis_max_retries, 10);
    cr_expect_eq(cfg.redis_tls, false);
    cr_expect_str_eq(cfg.messaging_method, "direct");
    cr_expect_str_eq(cfg.direct_message_hostname, "10.0.0.5");
    cr_expect_str_eq(cfg.direct_message_port, "7100", "an integer in the file is taken as text");
    cr_expect_eq(cfg.worker_ttl, 60, "ttl_duration sets worker_ttl");
    cr_expect(strstr(config_origin(&cfg, "worker_ttl"), "config.toml:14"), "%s",
              config_origin(&cfg, "worker_ttl"));
    cr_expect_eq(cfg.log_requests, true);
    config_free(&cfg);

    write_file("cwd/config.toml", "");
    write_file("cwd/config.json", "{\"port\": 7101, \"direct_message_port\": \"7101\", "
                                  "\"messaging_method\": \"redis\", \"redis_max_retries\": -1}");
    cr_assert_eq(rename("config.json", "../config.json"), 0);
    char path[512];
    snprintf(path, sizeof path, "%s/config.json", tmp);
    cr_assert_eq(LOAD("--config", path), CONFIG_OK, "%s", err);
    cr_expect_str_eq(cfg.direct_message_port, "7101");
    cr_expect_eq(cfg.redis_max_retries, -1);
    cr_expect_eq(cfg.worker_ttl, 10, "no ttl_duration: worker_ttl keeps its default");
    cr_expect_null(cfg.ttl_duration);
}

Test(config, dsock04_key_values_checked) {
    cr_assert_eq(LOAD("--messaging-method", "kafka"), CONFIG_OK, "%s", err);
    cr_assert_neq(config_validate(&cfg, CONFIG_ROLE_WORKER, err, sizeof err), 0);
    cr_expect(strstr(err, "--messaging-method: messaging_method must be redis or direct, got "
                          "\"kafka\""), "%s", err);
    config_free(&cfg);

    cr_assert_eq(LOAD("--direct-message-port", "http"), CONFIG_OK, "%s", err);
    cr_assert_neq(config_validate(&cfg, CONFIG_ROLE_WORKER, err, sizeof err), 0);
    cr_expect(strstr(err, "direct_message_port must be empty or a port number"), "%s", err);
    config_free(&cfg);

    setenv("DSOCK_REDIS_TLS", "true", 1);
    cr_assert_eq(LOAD("--address", "127.0.0.1:0", "--token", "t"), CONFIG_OK, "%s", err);
    config_role_t roles[] = {CONFIG_ROLE_API, CONFIG_ROLE_WORKER};
    for (size_t i = 0; i < 2; i++) {
        cr_assert_neq(config_validate(&cfg, roles[i], err, sizeof err), 0);
        cr_expect(strstr(err, "DSOCK_REDIS_TLS: redis_tls = true is not supported") &&
                      strstr(err, "hiredis"), "%s", err);
        cr_expect(!strchr(err, '\n'));
    }
    cr_expect_eq(config_validate(&cfg, CONFIG_ROLE_STANDALONE, err, sizeof err), 0,
                 "standalone uses no Redis: %s", err);
    config_free(&cfg);
    unsetenv("DSOCK_REDIS_TLS");

    expect_err(LOAD("--redis-max-retries", "-2"), CONFIG_ERROR,
               "redis_max_retries must be between -1 and");
}

Test(config, ttl_duration_sets_worker_ttl) {
    setenv("DSOCK_TTL_DURATION", "2.5s", 1);
    cr_assert_eq(load(0, NULL), CONFIG_OK, "%s", err);
    cr_expect_eq(cfg.worker_ttl, 3, "whole seconds, rounded up");
    cr_expect_str_eq(config_origin(&cfg, "worker_ttl"), "DSOCK_TTL_DURATION");
    config_free(&cfg);

    write_file("cwd/config.toml", "worker_ttl = 5\n");
    setenv("DSOCK_TTL_DURATION", "1m", 1);
    cr_assert_eq(load(0, NULL), CONFIG_OK, "%s", err);
    cr_expect_eq(cfg.worker_ttl, 5, "worker_ttl, when set in any layer, wins");
    config_free(&cfg);
    write_file("cwd/config.toml", "");

    setenv("DSOCK_TTL_DURATION", "1s", 1);
    expect_err(load(0, NULL), CONFIG_ERROR,
               "DSOCK_TTL_DURATION: ttl_duration (which sets worker_ttl) must be between 2s and "
               "3600s, got \"1s\"");
    setenv("DSOCK_TTL_DURATION", "60", 1);
    expect_err(load(0, NULL), CONFIG_ERROR,
               "DSOCK_TTL_DURATION: ttl_duration must be a Go duration such as \"60s\"");
}

Test(config, go_durations) {
    struct { const char *s; double want; } ok[] = {
        {"60s", 60}, {"1m30s", 90}, {"1.5h", 5400}, {"500ms", 0.5}, {"0", 0},
        {"2h45m", 9900}, {"1000us", 0.001}, {"1\xc2\xb5s", 1e-6}, {"10ns", 1e-8}, {".5s", 0.5},
        {"1.s", 1},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        double v = -1;
        cr_expect_eq(config_parse_duration(ok[i].s, &v), 0, "%s", ok[i].s);
        cr_expect(v > ok[i].want - 1e-12 && v < ok[i].want + 1e-12, "%s: %g", ok[i].s, v);
    }
    const char *bad[] = {"", "60", "5x", "-1s", "+1s", ".s", "s", "1m 30s", "1d", "0s5"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        double v;
        cr_expect_neq(config_parse_duration(bad[i], &v), 0, "\"%s\" parsed", bad[i]);
    }
}

/* ---- config_validate ------------------------------------------------------------------- */

Test(config, api_needs_token) {
    cr_assert_eq(LOAD("--address", "127.0.0.1:0"), CONFIG_OK, "%s", err);
    cr_assert_neq(config_validate(&cfg, CONFIG_ROLE_API, err, sizeof err), 0);
    cr_expect(strstr(err, "the api needs a token"), "%s", err);
    cr_expect_eq(config_validate(&cfg, CONFIG_ROLE_WORKER, err, sizeof err), 0, "%s", err);
    cr_expect_eq(config_validate(&cfg, CONFIG_ROLE_STANDALONE, err, sizeof err), 0, "%s", err);
    config_free(&cfg);
    cr_assert_eq(LOAD("--address", "127.0.0.1:0", "--token", "t"), CONFIG_OK, "%s", err);
    cr_expect_eq(config_validate(&cfg, CONFIG_ROLE_API, err, sizeof err), 0, "%s", err);
}

Test(config, address_in_use) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    cr_assert_eq(listen(fd, 1), 0);
    socklen_t sl = sizeof sa;
    getsockname(fd, (struct sockaddr *)&sa, &sl);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", ntohs(sa.sin_port));
    cr_assert_eq(LOAD("--address", addr), CONFIG_OK, "%s", err);
    cr_assert_neq(config_validate(&cfg, CONFIG_ROLE_WORKER, err, sizeof err), 0);
    char want[128];
    snprintf(want, sizeof want, "--address: cannot listen on %s: Address already in use", addr);
    cr_expect(strstr(err, want), "%s", err);
    config_free(&cfg);
    write_file("cwd/config.toml", "\n\n");
    FILE *f = fopen("config.toml", "a");
    fprintf(f, "address = \"%s\"\n", addr);
    fclose(f);
    cr_assert_eq(load(0, NULL), CONFIG_OK, "%s", err);
    cr_assert_neq(config_validate(&cfg, CONFIG_ROLE_WORKER, err, sizeof err), 0);
    cr_expect(strstr(err, "config.toml:3: cannot listen on"), "%s", err);
    close(fd);
}

Test(config, address_syntax) {
    const char *badv[] = {"localhost", "1.2.3.4:", ":99999", "::1:80", "[::1]80", ":http"};
    for (size_t i = 0; i < sizeof badv / sizeof badv[0]; i++) {
        setenv("DSOCK_ADDRESS", badv[i], 1);
        cr_assert_eq(load(0, NULL), CONFIG_OK, "%s", err);
        cr_expect_neq(config_validate(&cfg, CONFIG_ROLE_WORKER, err, sizeof err), 0, "%s",
                      badv[i]);
        cr_expect(strstr(err, "DSOCK_ADDRESS: address"), "%s", err);
        config_free(&cfg);
    }
    char host[64];
    int port;
    cr_expect_eq(config_split_address("[::1]:80", host, sizeof host, &port), 0);
    cr_expect_str_eq(host, "::1");
    cr_expect_eq(port, 80);
    cr_expect_eq(config_split_address(":6241", host, sizeof host, &port), 0);
    cr_expect_str_eq(host, "");
    cr_expect_eq(config_split_address("example.com:1", host, sizeof host, &port), 0);
    cr_expect_str_eq(host, "example.com");
}

Test(config, ping_timeout_must_exceed_interval) {
    setenv("DSOCK_PING_INTERVAL", "30", 1);
    cr_assert_eq(LOAD("--ping-timeout", "30", "--address", "127.0.0.1:0"), CONFIG_OK, "%s", err);
    cr_assert_neq(config_validate(&cfg, CONFIG_ROLE_WORKER, err, sizeof err), 0);
    cr_expect(strstr(err, "--ping-timeout: ping_timeout (30) must be greater than ping_interval "
                          "(30, from DSOCK_PING_INTERVAL)"), "%s", err);
}

/* A Unix socket path must fit sun_path (hiredis would cut a longer one silently);
 * standalone has no Redis and ignores it. */
Test(config, redis_unix_socket_path) {
    cr_assert_eq(LOAD("--address", "127.0.0.1:0", "--redis-host", "unix:/run/redis/redis.sock",
                      "--redis-username", "dsock"),
                 CONFIG_OK, "%s", err);
    cr_expect_str_eq(cfg.redis_username, "dsock");
    cr_expect_eq(config_validate(&cfg, CONFIG_ROLE_WORKER, err, sizeof err), 0, "%s", err);
    config_free(&cfg);
    char longp[200] = "unix:/";
    memset(longp + 6, 'a', 150);
    longp[156] = '\0';
    char unix_only[] = "unix:";
    char *bad[] = {unix_only, longp};
    for (size_t i = 0; i < 2; i++) {
        cr_assert_eq(LOAD("--address", "127.0.0.1:0", "--redis-host", bad[i]), CONFIG_OK, "%s",
                     err);
        cr_expect_neq(config_validate(&cfg, CONFIG_ROLE_WORKER, err, sizeof err), 0, "%s", bad[i]);
        cr_expect(strstr(err, "--redis-host: redis_host unix: needs a socket path of 1 to 107 bytes"),
                  "%s", err);
        cr_expect_eq(config_validate(&cfg, CONFIG_ROLE_STANDALONE, err, sizeof err), 0, "%s", err);
        config_free(&cfg);
    }
}

/* ---- suggestions, help and docs ------------------------------------------------------------ */

Test(config, suggest) {
    const char *subs[] = {"api", "worker", "standalone"};
    cr_expect_str_eq(config_suggest("wroker", subs, 3), "worker");
    cr_expect_str_eq(config_suggest("standalon", subs, 3), "standalone");
    cr_expect_str_eq(config_suggest("apj", subs, 3), "api");
    cr_expect_null(config_suggest("serve", subs, 3));
    cr_expect_null(config_suggest("x", subs, 3));
}

static char *capture_usage(const char *sub) {
    fflush(stdout);
    int saved = dup(1);
    FILE *f = tmpfile();
    dup2(fileno(f), 1);
    config_usage(sub);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    long n = ftell(f);
    rewind(f);
    char *buf = calloc(1, (size_t)n + 1);
    cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    return buf;
}

/* The --help text names every key's flag and variable (both derive from the table
 * the docs are checked against below). */
Test(config, usage_lists_every_option) {
    char *text = capture_usage("api");
    cr_expect(strstr(text, "Usage: dsock api [options]"), "%s", text);
    const char *want[] = {"--address", "DSOCK_ADDRESS", "--redis-host", "DSOCK_REDIS_HOST",
                          "--redis-password", "--redis-db", "--token", "DSOCK_TOKEN",
                          "--jwt-secret", "--debug", "--ping-interval", "--ping-timeout",
                          "--max-body-bytes", "--idle-timeout", "--config", "--help",
                          "--version", "default :6241"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        cr_expect(strstr(text, want[i]), "--help lacks %s:\n%s", want[i], text);
    free(text);
    text = capture_usage(NULL);
    cr_expect(strstr(text, "Commands:") && strstr(text, "standalone") && strstr(text, "worker"),
              "%s", text);
    free(text);
}

/* docs/configuration.md must hold exactly the generated table, so the page, the
 * --help text and the table cannot drift apart. */
Test(config, docs_match_key_table) {
    char path[4200];
    snprintf(path, sizeof path, "%s/docs/configuration.md", getenv("CONFIG_TEST_REPO"));
    FILE *f = fopen(path, "r");
    cr_assert(f, "cannot open %s (run the tests from the repository root)", path);
    static char doc[65536];
    size_t n = fread(doc, 1, sizeof doc - 1, f);
    doc[n] = '\0';
    fclose(f);
    const char *begin = strstr(doc, "<!-- keys:begin -->\n");
    const char *end = strstr(doc, "<!-- keys:end -->");
    cr_assert(begin && end && end > begin, "markers missing in %s", path);
    begin += strlen("<!-- keys:begin -->\n");
    char *gen = NULL;
    size_t glen = 0;
    FILE *m = open_memstream(&gen, &glen);
    config_write_markdown(m);
    fclose(m);
    size_t dlen = (size_t)(end - begin);
    cr_expect(dlen == glen && !memcmp(begin, gen, glen),
              "docs/configuration.md is out of date; the table must read:\n%s", gen);
    free(gen);
}

/* ---- Redis Sentinel ---------------------------------------------------------------------- */

Test(config, sentinel_keys_from_every_layer) {
    cr_assert_eq(LOAD("--address", "127.0.0.1:0"), CONFIG_OK, "%s", err);
    cr_expect_str_eq(cfg.redis_sentinels, "");
    cr_expect_str_eq(cfg.redis_master_name, "mymaster");
    cr_expect_str_eq(cfg.redis_sentinel_password, "");
    config_free(&cfg);
    write_file("cwd/config.toml", "redis_sentinels = \"file:1\"\nredis_master_name = \"fm\"\n");
    setenv("DSOCK_REDIS_SENTINELS", "10.0.0.1:26379, 10.0.0.2:26380,s3", 1);
    setenv("DSOCK_REDIS_SENTINEL_PASSWORD", "sp", 1);
    cr_assert_eq(LOAD("--address", "127.0.0.1:0", "--redis-master-name", "prod"), CONFIG_OK,
                 "%s", err);
    cr_expect_str_eq(cfg.redis_sentinels, "10.0.0.1:26379, 10.0.0.2:26380,s3");
    cr_expect_str_eq(cfg.redis_master_name, "prod");
    cr_expect_str_eq(cfg.redis_sentinel_password, "sp");
    cr_expect_str_eq(config_origin(&cfg, "redis_sentinels"), "DSOCK_REDIS_SENTINELS");
    cr_expect_str_eq(config_origin(&cfg, "redis_master_name"), "--redis-master-name");
    cr_expect_eq(config_validate(&cfg, CONFIG_ROLE_WORKER, err, sizeof err), 0, "%s", err);
    cr_expect_eq(config_validate(&cfg, CONFIG_ROLE_API, err, sizeof err) == 0 ||
                     strstr(err, "token") != NULL,
                 1, "%s", err);
    /* The sentinel password is a secret: never in the default file. */
    FILE *f = fopen("config.toml", "r");
    cr_assert(f);
    char buf[65536];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    cr_expect(!strstr(buf, "\"sp\""), "the default file holds the sentinel password");
}

Test(config, sentinel_list_parsing) {
    config_hostport_t l[CONFIG_SENTINELS_MAX];
    char why[200];
    cr_assert_eq(config_parse_sentinels("a:1,b, [::1]:26380 ,127.0.0.1:65535", l, 16, why,
                                        sizeof why),
                 4, "%s", why);
    cr_expect_str_eq(l[0].host, "a");
    cr_expect_eq(l[0].port, 1);
    cr_expect_str_eq(l[1].host, "b");
    cr_expect_eq(l[1].port, 26379);
    cr_expect_str_eq(l[2].host, "::1");
    cr_expect_eq(l[2].port, 26380);
    cr_expect_str_eq(l[3].host, "127.0.0.1");
    cr_expect_eq(l[3].port, 65535);
    const char *bad[] = {"",       "a:1,",  ",a:1",   "a:0",     "a:65536", "a:",
                         "a:1x",   "::1",   "[::1",   "[::1]x",  ":26379",  "a b:1",
                         "a:1,,b", "[]:1",  "a:-1",   "a:123456"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        why[0] = '\0';
        cr_expect_eq(config_parse_sentinels(bad[i], l, 16, why, sizeof why), -1, "\"%s\"", bad[i]);
        cr_expect(why[0] && !strchr(why, '\n'), "\"%s\": %s", bad[i], why);
    }
    cr_expect_eq(config_parse_sentinels("a,b,c", l, 2, why, sizeof why), -1);
    cr_expect(strstr(why, "more than 2 sentinels"), "%s", why);
}

/* redis_host and redis_sentinels together: a clear error naming both sources,
 * whatever layers they came from; a default redis_host does not count. */
Test(config, sentinel_excludes_redis_host) {
    setenv("DSOCK_REDIS_HOST", "10.0.0.9:6379", 1);
    cr_assert_eq(LOAD("--address", "127.0.0.1:0", "--redis-sentinels", "127.0.0.1:26379"),
                 CONFIG_OK, "%s", err);
    cr_assert_neq(config_validate(&cfg, CONFIG_ROLE_WORKER, err, sizeof err), 0);
    cr_expect(strstr(err, "--redis-sentinels: redis_sentinels and redis_host (from "
                          "DSOCK_REDIS_HOST) are mutually exclusive"),
              "%s", err);
    cr_expect(!strchr(err, '\n'), "%s", err);
    config_free(&cfg);
    unsetenv("DSOCK_REDIS_HOST");
    write_file("cwd/config.toml", "redis_host = \"localhost:6379\"\n"
                                  "redis_sentinels = \"127.0.0.1:26379\"\n");
    cr_assert_eq(LOAD("--address", "127.0.0.1:0", "--token", "t"), CONFIG_OK, "%s", err);
    cr_assert_neq(config_validate(&cfg, CONFIG_ROLE_API, err, sizeof err), 0);
    cr_expect(strstr(err, "config.toml:2: redis_sentinels and redis_host (from ") &&
                  strstr(err, "config.toml:1) are mutually exclusive"),
              "%s", err);
}

Test(config, sentinel_bad_values) {
    cr_assert_eq(LOAD("--address", "127.0.0.1:0", "--redis-sentinels", "127.0.0.1:26379,:1"),
                 CONFIG_OK, "%s", err);
    cr_assert_neq(config_validate(&cfg, CONFIG_ROLE_WORKER, err, sizeof err), 0);
    cr_expect(strstr(err, "--redis-sentinels: redis_sentinels: entry 2 \":1\" is not host:port"),
              "%s", err);
    config_free(&cfg);
    setenv("DSOCK_REDIS_MASTER_NAME", "my master", 1);
    cr_assert_eq(LOAD("--address", "127.0.0.1:0", "--redis-sentinels", "s1"), CONFIG_OK, "%s",
                 err);
    cr_assert_neq(config_validate(&cfg, CONFIG_ROLE_WORKER, err, sizeof err), 0);
    cr_expect(strstr(err, "DSOCK_REDIS_MASTER_NAME: redis_master_name must be 1 to 255 bytes"),
              "%s", err);
    config_free(&cfg);
    /* Without sentinels the master name is not used, so not checked. */
    cr_assert_eq(LOAD("--address", "127.0.0.1:0"), CONFIG_OK, "%s", err);
    cr_expect_eq(config_validate(&cfg, CONFIG_ROLE_WORKER, err, sizeof err), 0, "%s", err);
}
