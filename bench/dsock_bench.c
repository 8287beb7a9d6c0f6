/* dsock-bench: measures a running dsock from the client side (one process, one libuv
 * loop): idle memory per WebSocket connection and connect rate, fan-out to one user's
 * many connections, /send throughput over keep-alive API connections, and large
 * messages. Every message is counted against the `connections` the API reported, so
 * the run also proves nothing was lost. `--spawn` starts (and stops) the broker too. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>
#include <zlib.h>

extern char **environ;

#define MSG_MAGIC "DSB1"
#define MSG_HEAD 16          /* magic (4), scenario tag (4), sequence number (8) */
#define CONNECT_WINDOW 256   /* WebSocket handshakes in flight: below dsock's backlog */
#define DRAIN_NS (5 * 1000000000ull)
#define MAX_API_CONNS 1024
#define MAX_RECONNECTS 1000
#define MAX_LAT 4000000      /* latency samples kept per scenario */

/* ------------------------------------------------------------------ utilities */

static void stop_all(void);

/* Exits 2; whatever --spawn started is stopped first. */
static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("dsock-bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    stop_all();
    exit(2);
}

static void *xcalloc(size_t n, size_t sz) {
    void *p = calloc(n ? n : 1, sz ? sz : 1);
    if (!p) abort();
    return p;
}

static void *xrealloc(void *p, size_t sz) {
    p = realloc(p, sz ? sz : 1);
    if (!p) abort();
    return p;
}

static uint64_t now_ns(void) { return uv_hrtime(); }

static double secs(uint64_t ns) { return (double)ns / 1e9; }

/* Seconds from t0 to t1; 0 when t1 never came (no event after t0). */
static double span(uint64_t t0, uint64_t t1) { return t1 > t0 ? secs(t1 - t0) : 0; }

typedef struct lat {
    uint64_t *v;
    size_t n, cap;
} lat_t;

static void lat_add(lat_t *l, uint64_t ns) {
    if (l->n == l->cap) {
        if (l->cap >= MAX_LAT) return;
        l->cap = l->cap ? l->cap * 2 : 4096;
        l->v = xrealloc(l->v, l->cap * sizeof *l->v);
    }
    l->v[l->n++] = ns;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Percentile (0..100) in milliseconds, nearest rank; -1 when empty. */
static double lat_pct_ms(lat_t *l, double p) {
    if (!l->n) return -1;
    size_t i = (size_t)(p / 100.0 * (double)l->n);
    if (i >= l->n) i = l->n - 1;
    return (double)l->v[i] / 1e6;
}

static void lat_sort(lat_t *l) {
    if (l->n) qsort(l->v, l->n, sizeof *l->v, cmp_u64);
}

static void b64url(const unsigned char *in, size_t n, char *out) {
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0, i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = tab[v >> 18 & 63];
        out[o++] = tab[v >> 12 & 63];
        out[o++] = tab[v >> 6 & 63];
        out[o++] = tab[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = tab[v >> 18 & 63];
        out[o++] = tab[v >> 12 & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = tab[v >> 18 & 63];
        out[o++] = tab[v >> 12 & 63];
        out[o++] = tab[v >> 6 & 63];
    }
    out[o] = 0;
}

static void random_hex(char *out, size_t bytes) {
    unsigned char raw[64];
    if (bytes > sizeof raw || RAND_bytes(raw, (int)bytes) != 1) die("no randomness");
    for (size_t i = 0; i < bytes; i++) sprintf(out + 2 * i, "%02x", raw[i]);
}

/* ------------------------------------------------------------------ options */

typedef struct opts {
    const char *api, *worker, *worker2, *token, *jwt_secret;
    const char *spawn, *dsock, *redis_server;
    size_t connections, users, messages, size, concurrency;
    size_t fanout, fanout_sends, large_size, large_count;
    size_t channel, channel_users, channel_sends, channel_joins, workers;
    double duration;
    long pid, pid2;
    size_t procs;           /* bench processes the idle connections are spread over */
    bool reuse_port;        /* --spawn redis: the workers share one port (reuse_port) */
    bool run_fanout, run_throughput, run_large, run_channel;
    bool compress;          /* offer permessage-deflate on every connection */
    const char *payload;    /* "letters" (default) or "json": the filler of a message */
    double rate;            /* --rate: open-loop sends/s in the throughput scenario (0: closed loop) */
} opts_t;

static opts_t O = {
    .connections = 10000,
    .messages = 100000,
    .size = 64,
    .concurrency = 16,
    .fanout = 1000,
    .fanout_sends = 500,
    .large_size = 1048576,
    .large_count = 256,
    .channel = 10000,
    .channel_sends = 200,
    .channel_joins = 1,
    .workers = 1,
    .procs = 1,
    .duration = 10,
    .run_fanout = true,
    .run_throughput = true,
    .run_large = true,
    .payload = "letters",
    .run_channel = true,
};

static void usage(FILE *f) {
    fprintf(f,
        "Usage: dsock-bench --spawn standalone|redis [options]\n"
        "       dsock-bench --api HOST:PORT [--worker HOST:PORT] --token T --jwt-secret S [options]\n\n"
        "Deployment:\n"
        "  --spawn MODE        start dsock (and redis-server for `redis`) on free loopback ports,\n"
        "                      measure, then stop them\n"
        "  --dsock PATH        dsock binary for --spawn (default: ../dsock next to this program,\n"
        "                      else build/dsock)\n"
        "  --redis-server PATH redis-server for --spawn redis (default: redis-server on PATH)\n"
        "  --api HOST:PORT     a running dsock API (standalone: the one process)\n"
        "  --worker HOST:PORT  a running dsock worker (default: the API address)\n"
        "  --worker2 HOST:PORT a second worker: the channel scenario spreads its members over both\n"
        "  --workers W         --spawn redis: worker processes, 1 to 8 (default 1); more than 2\n"
        "                      need --reuse-port\n"
        "  --reuse-port        --spawn redis: the workers listen on one port (reuse_port), the\n"
        "                      kernel spreads the connections; their VmRSS is summed\n"
        "  --token T           the API token\n"
        "  --jwt-secret S      the workers' JWT secret (connections use HS256 JWTs, sub = user)\n"
        "  --pid PID           broker process whose VmRSS and CPU are sampled (the worker)\n"
        "  --pid2 PID          a second process to sample (the API, in a Redis deployment)\n\n"
        "Load:\n"
        "  --connections N     idle WebSocket connections (default 10000)\n"
        "  --users U           users the N connections are spread over (default N/2; N: one\n"
        "                      user per connection, the worst case for memory)\n"
        "  --procs P           bench processes opening the N idle connections (default 1): a\n"
        "                      process holds at most ~20,000 (its open-file limit); with P > 1\n"
        "                      P children open them (over loopback, child k from 127.0.0.(k+1):\n"
        "                      ~28,000 ephemeral ports per source address) and only the idle\n"
        "                      scenario runs\n"
        "  --messages M        /send calls in the throughput scenario (default 100000)\n"
        "  --size BYTES        message size for fan-out and throughput (default 64, min 16)\n"
        "  --concurrency C     keep-alive API connections firing /send (default 16)\n"
        "  --fanout K          connections of the fan-out user (default 1000)\n"
        "  --fanout-sends R    /send calls to the fan-out user (default 500)\n"
        "  --large-size BYTES  large message size (default 1048576)\n"
        "  --large-count L     large messages (default 256)\n"
        "  --channel N         members of the channel scenario's channel (default 10000)\n"
        "  --channel-users M   users the N members belong to (default N/10)\n"
        "  --channel-sends R   /send calls to the channel (default 200)\n"
        "  --channel-joins J   channels each member is in (the JWT's channels; default 1):\n"
        "                      for the memory per membership\n"
        "  --duration S        cap on the sending time of each scenario, seconds (default 10)\n"
        "  --only LIST         comma list of fanout,throughput,large,channel (idle always\n"
        "                      runs)\n"
        "  --compress on|off   offer permessage-deflate (RFC 7692) on every connection (default\n"
        "                      off); compressed messages are inflated only as far as their\n"
        "                      16-byte head, and wire bytes per delivery are reported\n"
        "  --payload KIND      filler of fan-out/throughput/large messages: letters (a..z, the\n"
        "                      default) or json (JSON records, compressing like real messages)\n"
        "  --rate R            throughput scenario in open loop: send i is due at i/R s and its\n"
        "                      latency counts from then (no coordinated omission); prints the\n"
        "                      offered and achieved rates and p50/p99/p99.9 (for bench/sweep load)\n");
}

static size_t parse_size(const char *name, const char *v, size_t min, size_t max) {
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno || end == v || *end || x < min || x > max)
        die("%s must be an integer between %zu and %zu, got \"%s\"", name, min, max, v);
    return (size_t)x;
}

static void parse_opts(int argc, char **argv) {
    bool users_set = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            exit(0);
        }
        if (strncmp(a, "--", 2)) die("unexpected argument \"%s\" (see --help)", a);
        if (!strcmp(a, "--reuse-port")) {
            O.reuse_port = true;
            continue;
        }
        const char *v;
        char namebuf[64];
        const char *eq = strchr(a, '=');
        if (eq) {
            snprintf(namebuf, sizeof namebuf, "%.*s", (int)(eq - a), a);
            a = namebuf;
            v = eq + 1;
        } else {
            if (i + 1 >= argc) die("%s needs a value (see --help)", a);
            v = argv[++i];
        }
        if (!strcmp(a, "--api")) O.api = v;
        else if (!strcmp(a, "--compress")) {
            if (strcmp(v, "on") && strcmp(v, "off")) die("--compress must be on or off");
            O.compress = !strcmp(v, "on");
        } else if (!strcmp(a, "--payload")) {
            if (strcmp(v, "letters") && strcmp(v, "json")) die("--payload must be letters or json");
            O.payload = v;
        }
        else if (!strcmp(a, "--worker")) O.worker = v;
        else if (!strcmp(a, "--worker2")) O.worker2 = v;
        else if (!strcmp(a, "--workers")) O.workers = parse_size(a, v, 1, 8);
        else if (!strcmp(a, "--procs")) O.procs = parse_size(a, v, 1, 64);
        else if (!strcmp(a, "--channel")) O.channel = parse_size(a, v, 0, 1000000);
        else if (!strcmp(a, "--channel-users")) O.channel_users = parse_size(a, v, 1, 1000000);
        else if (!strcmp(a, "--channel-sends")) O.channel_sends = parse_size(a, v, 0, 10000000);
        else if (!strcmp(a, "--channel-joins")) O.channel_joins = parse_size(a, v, 1, 32);
        else if (!strcmp(a, "--token")) O.token = v;
        else if (!strcmp(a, "--jwt-secret")) O.jwt_secret = v;
        else if (!strcmp(a, "--spawn")) O.spawn = v;
        else if (!strcmp(a, "--dsock")) O.dsock = v;
        else if (!strcmp(a, "--redis-server")) O.redis_server = v;
        else if (!strcmp(a, "--connections")) O.connections = parse_size(a, v, 0, 1000000);
        else if (!strcmp(a, "--users")) O.users = parse_size(a, v, 1, 1000000), users_set = true;
        else if (!strcmp(a, "--messages")) O.messages = parse_size(a, v, 0, 10000000);
        else if (!strcmp(a, "--size")) O.size = parse_size(a, v, 0, (size_t)1 << 30);
        else if (!strcmp(a, "--concurrency")) O.concurrency = parse_size(a, v, 1, MAX_API_CONNS);
        else if (!strcmp(a, "--fanout")) O.fanout = parse_size(a, v, 0, 1000000);
        else if (!strcmp(a, "--fanout-sends")) O.fanout_sends = parse_size(a, v, 0, 10000000);
        else if (!strcmp(a, "--large-size")) O.large_size = parse_size(a, v, MSG_HEAD, (size_t)1 << 30);
        else if (!strcmp(a, "--large-count")) O.large_count = parse_size(a, v, 0, 1000000);
        else if (!strcmp(a, "--duration")) O.duration = (double)parse_size(a, v, 1, 3600);
        else if (!strcmp(a, "--rate")) O.rate = (double)parse_size(a, v, 1, 100000000);
        else if (!strcmp(a, "--pid")) O.pid = (long)parse_size(a, v, 1, INT_MAX);
        else if (!strcmp(a, "--pid2")) O.pid2 = (long)parse_size(a, v, 1, INT_MAX);
        else if (!strcmp(a, "--only")) {
            O.run_fanout = strstr(v, "fanout") != NULL;
            O.run_throughput = strstr(v, "throughput") != NULL;
            O.run_large = strstr(v, "large") != NULL;
            O.run_channel = strstr(v, "channel") != NULL;
        } else die("unknown option %s (see --help)", a);
    }
    if (O.size < MSG_HEAD) O.size = MSG_HEAD; /* room for the tag every message carries */
    if (O.workers > 2 && !O.reuse_port) die("--workers above 2 needs --reuse-port");
    if (O.procs > 1) { /* the other scenarios count deliveries in this process only */
        O.run_fanout = O.run_throughput = O.run_large = O.run_channel = false;
    }
    if (!users_set) O.users = O.connections / 2 ? O.connections / 2 : 1;
    if (O.users > O.connections && O.connections) O.users = O.connections;
    if (!O.channel_users) O.channel_users = O.channel / 10 ? O.channel / 10 : 1;
    if (O.spawn) {
        if (strcmp(O.spawn, "standalone") && strcmp(O.spawn, "redis"))
            die("--spawn takes standalone or redis, got \"%s\"", O.spawn);
        if (O.api || O.worker || O.worker2)
            die("--spawn chooses its own addresses: drop --api/--worker/--worker2");
    } else {
        if (!O.api) die("give --spawn standalone|redis, or --api HOST:PORT (see --help)");
        if (!O.worker) O.worker = O.api;
        if (!O.token || !O.jwt_secret) die("--token and --jwt-secret are required with --api");
    }
}

/* ------------------------------------------------------------------ processes */

typedef struct proc {
    const char *name;
    pid_t pid;
    bool spawned;
    char log[PATH_MAX];
    uint64_t cpu_ticks0;
} proc_t;

#define MAX_PROCS 12 /* redis, api and up to 8 workers */
static proc_t P[MAX_PROCS];
static size_t NP;
static char tmpdir[64];

static long proc_rss_kb(pid_t pid) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6)) {
            kb = strtol(line + 6, NULL, 10);
            break;
        }
    fclose(f);
    return kb;
}

/* utime + stime in clock ticks (fields 14 and 15 of /proc/PID/stat). */
static uint64_t proc_cpu_ticks(pid_t pid) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (!p) return 0;
    unsigned long long ut = 0, st = 0;
    /* after ")": state(3) ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime */
    if (sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return 0;
    return ut + st;
}

static uint64_t self_cpu_ns(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000ull +
           (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000ull;
}

static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) || getsockname(fd, (struct sockaddr *)&a, &len))
        die("cannot find a free port: %s", strerror(errno));
    close(fd);
    return ntohs(a.sin_port);
}

static bool port_open(int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0) close(fd);
    return ok;
}

static void print_log_tail(const proc_t *p) {
    FILE *f = fopen(p->log, "r");
    if (!f) return;
    char line[512];
    fprintf(stderr, "--- %s (%s) ---\n", p->name, p->log);
    int n = 0;
    while (fgets(line, sizeof line, f) && n++ < 40) fputs(line, stderr);
    fclose(f);
}

/* Starts argv with stdout/stderr in tmpdir/NAME.log, cwd tmpdir, and an environment
 * without DSOCK_* and PORT so the caller's shell cannot change the deployment. */
static proc_t *spawn_proc(const char *name, char *const argv[]) {
    proc_t *p = &P[NP++];
    p->name = name;
    p->spawned = true;
    snprintf(p->log, sizeof p->log, "%s/%s.log", tmpdir, name);
    size_t ne = 0;
    while (environ[ne]) ne++;
    char **env = xcalloc(ne + 1, sizeof *env);
    size_t k = 0;
    for (size_t i = 0; i < ne; i++)
        if (strncmp(environ[i], "DSOCK_", 6) && strncmp(environ[i], "PORT=", 5)) env[k++] = environ[i];
    pid_t pid = fork();
    if (pid < 0) die("fork: %s", strerror(errno));
    if (pid == 0) {
        int fd = open(p->log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        int in = open("/dev/null", O_RDONLY);
        /* Its own process group: a terminal's Ctrl-C reaches only the bench, which then
         * stops the deployment in order (a second signal would kill dsock outright). */
        setpgid(0, 0);
        if (fd < 0 || in < 0 || chdir(tmpdir)) _exit(127);
        dup2(in, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        signal(SIGPIPE, SIG_DFL);
        execve(argv[0], argv, env);
        dprintf(2, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    free(env);
    p->pid = pid;
    return p;
}

static void wait_listening(proc_t *p, int port) {
    uint64_t deadline = now_ns() + 15 * 1000000000ull;
    while (now_ns() < deadline) {
        int st;
        if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
            p->pid = 0;
            print_log_tail(p);
            die("%s exited before listening on port %d", p->name, port);
        }
        if (port_open(port)) return;
        usleep(20000);
    }
    print_log_tail(p);
    die("%s is not listening on port %d after 15 s", p->name, port);
}

/* Waits until the process's log holds `what` (15 s at most). */
static void wait_log(proc_t *p, const char *what) {
    uint64_t deadline = now_ns() + 15 * 1000000000ull;
    char line[1024];
    while (now_ns() < deadline) {
        int st;
        if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
            p->pid = 0;
            print_log_tail(p);
            die("%s exited at startup", p->name);
        }
        FILE *f = fopen(p->log, "r");
        bool found = false;
        while (f && !found && fgets(line, sizeof line, f)) found = strstr(line, what) != NULL;
        if (f) fclose(f);
        if (found) return;
        usleep(20000);
    }
    print_log_tail(p);
    die("%s did not log \"%s\" within 15 s", p->name, what);
}

/* SIGTERM, then waits up to 20 s (SIGKILL after). Returns false on an unclean exit. */
static bool stop_proc(proc_t *p) {
    if (!p->spawned || !p->pid) return true;
    kill(p->pid, SIGTERM);
    uint64_t deadline = now_ns() + 20 * 1000000000ull;
    int st = 0;
    for (;;) {
        pid_t r = waitpid(p->pid, &st, WNOHANG);
        if (r == p->pid) break;
        if (r < 0) return false;
        if (now_ns() > deadline) {
            fprintf(stderr, "dsock-bench: %s did not stop within 20 s of SIGTERM: killed\n", p->name);
            kill(p->pid, SIGKILL);
            waitpid(p->pid, &st, 0);
            p->pid = 0;
            return false;
        }
        usleep(20000);
    }
    p->pid = 0;
    /* redis-server answers SIGTERM with exit 0; dsock too after a clean shutdown. */
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "dsock-bench: %s exited uncleanly (status 0x%x)\n", p->name, st);
        print_log_tail(p);
        return false;
    }
    return true;
}

static void stop_all(void) {
    for (size_t i = NP; i-- > 0;) stop_proc(&P[i]);
}

static const char *default_dsock(void) {
    static char path[PATH_MAX];
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = 0;
        char *slash = strrchr(self, '/');
        if (slash) {
            *slash = 0;
            snprintf(path, sizeof path, "%.*s/../dsock", (int)(sizeof path - 10), self);
            if (access(path, X_OK) == 0) return path;
        }
    }
    return "build/dsock";
}

static char api_addr[64], worker_addr[64], worker2_addr[64], token_buf[65], secret_buf[65];
static int redis_port; /* --spawn redis: INFO is read from it */

static void spawn_deployment(void) {
    char tmpl[] = "/tmp/dsock-bench-XXXXXX";
    if (!mkdtemp(tmpl)) die("mkdtemp: %s", strerror(errno));
    snprintf(tmpdir, sizeof tmpdir, "%s", tmpl);
    char cfg[PATH_MAX + 16];
    snprintf(cfg, sizeof cfg, "%s/config.toml", tmpdir);
    FILE *f = fopen(cfg, "w"); /* an empty config: no default file written, none read */
    if (!f) die("%s: %s", cfg, strerror(errno));
    fclose(f);

    static char dsock_path[PATH_MAX];
    const char *d = O.dsock ? O.dsock : default_dsock();
    if (!realpath(d, dsock_path)) die("dsock binary %s: %s (build it, or give --dsock)", d, strerror(errno));
    if (access(dsock_path, X_OK)) die("%s is not executable", dsock_path);

    random_hex(token_buf, 16);
    random_hex(secret_buf, 16);
    O.token = token_buf;
    O.jwt_secret = secret_buf;
    char maxconn[32];
    size_t need = O.connections + O.fanout + O.channel + O.concurrency + 64;
    snprintf(maxconn, sizeof maxconn, "%zu", need > 18000 ? need : 18000);

    if (!strcmp(O.spawn, "standalone")) {
        int port = free_port();
        snprintf(api_addr, sizeof api_addr, "127.0.0.1:%d", port);
        char *argv[] = {dsock_path, "standalone", "--config", cfg, "--address", api_addr,
                        "--token", token_buf, "--jwt-secret", secret_buf,
                        "--max-connections", maxconn, NULL};
        proc_t *p = spawn_proc("dsock", argv);
        wait_listening(p, port);
        snprintf(worker_addr, sizeof worker_addr, "%s", api_addr);
    } else {
        static char redis_path[PATH_MAX];
        const char *r = O.redis_server ? O.redis_server : "/usr/bin/redis-server";
        if (!O.redis_server && access(r, X_OK)) r = "/usr/local/bin/redis-server";
        /* Not realpath(): redis-server is a symlink whose target picks its role from argv[0]. */
        if (access(r, X_OK)) die("redis-server %s: %s (give --redis-server)", r, strerror(errno));
        snprintf(redis_path, sizeof redis_path, "%s", r);
        int rport = free_port();
        char rport_s[16], rhost[64];
        snprintf(rport_s, sizeof rport_s, "%d", rport);
        snprintf(rhost, sizeof rhost, "127.0.0.1:%d", rport);
        /* Redis drops a pub/sub subscriber whose output buffer passes 32 MB (its
         * default client-output-buffer-limit): two 16 MiB messages in flight to the
         * worker do. Room for four large messages (docs/redis.md, "Big sends"). */
        char obl[96];
        unsigned long long big = 4ull * O.large_size;
        if (big < (32ull << 20)) big = 32ull << 20;
        snprintf(obl, sizeof obl, "pubsub %llu %llu 60", big, big / 4);
        char *rargv[] = {redis_path, "--port", rport_s, "--bind", "127.0.0.1", "--save", "",
                         "--appendonly", "no", "--dir", tmpdir,
                         "--client-output-buffer-limit", obl, NULL};
        proc_t *rp = spawn_proc("redis", rargv);
        wait_listening(rp, rport);

        int wport = free_port();
        snprintf(worker_addr, sizeof worker_addr, "127.0.0.1:%d", wport);
        char *wargv[] = {dsock_path, "worker", "--config", cfg, "--address", worker_addr,
                         "--redis-host", rhost, "--jwt-secret", secret_buf,
                         "--max-connections", maxconn, NULL};
        redis_port = rport;
        if (O.reuse_port) {
            /* All the workers on one port: each must be up before the next starts
             * (the port answers as soon as the first listens, so wait for each log). */
            static char names[8][16];
            for (size_t i = 0; i < O.workers; i++) {
                if (i) snprintf(names[i], sizeof names[i], "worker%u", (unsigned)(i + 1) & 15u);
                else snprintf(names[i], sizeof names[i], "worker");
                char *rargv2[] = {dsock_path, "worker", "--config", cfg, "--address", worker_addr,
                                  "--redis-host", rhost, "--jwt-secret", secret_buf,
                                  "--max-connections", maxconn, "--reuse-port", "true", NULL};
                proc_t *p = spawn_proc(names[i], rargv2);
                wait_log(p, "msg=listening");
            }
        } else {
            proc_t *wp = spawn_proc("worker", wargv);
            wait_listening(wp, wport);
        }
        if (O.workers == 2 && !O.reuse_port) {
            int w2 = free_port();
            snprintf(worker2_addr, sizeof worker2_addr, "127.0.0.1:%d", w2);
            char *w2argv[] = {dsock_path, "worker", "--config", cfg, "--address", worker2_addr,
                              "--redis-host", rhost, "--jwt-secret", secret_buf,
                              "--max-connections", maxconn, NULL};
            proc_t *wp2 = spawn_proc("worker2", w2argv);
            wait_listening(wp2, w2);
            O.worker2 = worker2_addr;
        }

        int aport = free_port();
        snprintf(api_addr, sizeof api_addr, "127.0.0.1:%d", aport);
        char *aargv[] = {dsock_path, "api", "--config", cfg, "--address", api_addr,
                         "--redis-host", rhost, "--token", token_buf, NULL};
        proc_t *ap = spawn_proc("api", aargv);
        wait_listening(ap, aport);
    }
    O.api = api_addr;
    O.worker = worker_addr;
}

static void remove_tmpdir(void) {
    if (!tmpdir[0]) return;
    const char *files[] = {"config.toml", "dsock.log",   "redis.log",   "worker.log",
                           "worker2.log", "worker3.log", "worker4.log", "worker5.log",
                           "worker6.log", "worker7.log", "worker8.log", "api.log"};
    char path[PATH_MAX + 32];
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(path, sizeof path, "%s/%s", tmpdir, files[i]);
        unlink(path);
    }
    rmdir(tmpdir);
}

/* ------------------------------------------------------------------ scenarios */

typedef struct slot {
    uint64_t t_send, t_last;
    uint32_t expected, received;
    bool answered, done, failed;
} slot_t;

typedef struct scenario {
    const char *name;
    uint32_t tag;
    size_t total, window, size, api_conns;
    bool per_delivery; /* a latency per delivery, else one per send (to its last receiver) */
    void (*target)(uint64_t seq, char *user, size_t cap);
    slot_t *slots;
    size_t issued, answered, completed, failed, zero;
    uint64_t deliveries, bytes, expected_sum, lost, extra;
    uint64_t wire, compressed; /* frame bytes received (headers included); RSV1 messages */
    uint64_t t_start, t_last_answer, t_last_delivery, issue_deadline;
    bool stop_issuing;
    lat_t lat;
} scenario_t;

/* ------------------------------------------------------------------ WebSocket client */

enum { WS_CONNECTING, WS_HANDSHAKE, WS_OPEN, WS_CLOSING };
enum { RD_HDR, RD_PAYLOAD };

typedef struct ws_conn ws_conn_t;

typedef struct ws_hs {
    uv_connect_t creq;
    uv_write_t wreq;
    ws_conn_t *conn;
    bool write_done, resp_done;
    size_t resp_len, seen;
    char req[2048];
    char resp[512];
} ws_hs_t;

/* Per-connection state is small and inline: an idle connection holds no buffer
 * (all reads go to one loop-wide buffer), and only the first MSG_HEAD bytes of a
 * message are kept, so receiving allocates nothing. */
struct ws_conn {
    uv_tcp_t tcp;
    ws_hs_t *hs;
    uint8_t state, rd, hdr_have, hdr_need;
    uint8_t opcode, fin, in_msg, prefix_len, ctrl_len;
    uint8_t zmsg;     /* the message in progress is compressed (RSV1) */
    uint16_t zlen;    /* compressed bytes kept in zhead */
    uint64_t msg_wire;
    uint8_t hs_match; /* how much of "\r\n\r\n" ends the bytes seen so far */
    uint8_t joins;    /* channels its JWT names (channel scenario), 0: none */
    bool worker2;     /* connects to the second worker */
    uint64_t remaining;
    uint8_t hdr[14];
    uint8_t prefix[MSG_HEAD];
    uint8_t ctrl[125];
    char user[40];
    uint8_t *zhead;   /* --compress: the first ZHEAD compressed bytes of the message */
};

/* Enough of a compressed message to inflate its 16-byte head: a dynamic Huffman
 * block header is at most ~300 bytes. */
#define ZHEAD 768
static z_stream zin;
static bool zin_ready;

/* Inflates the head of a compressed message (no context takeover: each message is
 * a stream of its own) into c->prefix. */
static void inflate_head(ws_conn_t *c) {
    if (!zin_ready) {
        if (inflateInit2(&zin, -15) != Z_OK) abort();
        zin_ready = true;
    } else {
        inflateReset(&zin);
    }
    static const uint8_t tail[4] = {0, 0, 0xff, 0xff};
    zin.next_in = c->zhead;
    zin.avail_in = c->zlen;
    zin.next_out = c->prefix;
    zin.avail_out = MSG_HEAD;
    int r = inflate(&zin, Z_SYNC_FLUSH);
    if (zin.avail_out && zin.avail_in == 0 && r != Z_STREAM_END) { /* a short message */
        zin.next_in = (Bytef *)tail;
        zin.avail_in = 4;
        inflate(&zin, Z_SYNC_FLUSH);
    }
    c->prefix_len = (uint8_t)(MSG_HEAD - zin.avail_out);
}

typedef struct pong {
    uv_write_t w;
    uint8_t buf[131];
} pong_t;

static struct {
    uv_loop_t *loop;
    uv_timer_t tick;
    uv_signal_t sigint, sigterm;
    bool interrupted, closing;
    struct sockaddr_storage worker_sa, worker2_sa, api_sa;
    ws_conn_t *ws;
    size_t ws_cap, ws_used;
    /* connect batch */
    size_t batch_next, batch_end, batch_inflight, batch_ok, batch_fail;
    char first_connect_error[200];
    size_t ws_open, ws_closed_cbs, ws_unexpected_close, ws_protocol_errors;
    uint64_t msgs_total, late, foreign;
    scenario_t *sc;
    uint64_t api_errors, reconnects;
    char first_api_error[240];
    size_t api_closed_cbs;
} B;

/* --procs over loopback: the ephemeral ports (32768-60999) allow ~28,000
 * connections per source address to one worker address, so bench process k binds
 * its WebSocket connections to 127.0.0.(k+1) (all of 127/8 is local). */
static struct sockaddr_in ws_src;
static bool ws_src_set;

static void use_source_ip(size_t k) {
    const struct sockaddr_in *w = (const struct sockaddr_in *)&B.worker_sa;
    if (w->sin_family != AF_INET || (ntohl(w->sin_addr.s_addr) >> 24) != 127 || k > 250) return;
    ws_src = (struct sockaddr_in){.sin_family = AF_INET,
                                  .sin_addr.s_addr = htonl(0x7f000001u + (uint32_t)k)};
    ws_src_set = true;
}

static char rdbuf[256 * 1024];

static void ws_on_close(uv_handle_t *h) {
    ws_conn_t *c = h->data;
    if (c->hs) {
        free(c->hs);
        c->hs = NULL;
    }
    free(c->zhead);
    c->zhead = NULL;
    B.ws_closed_cbs++;
}

static void batch_pump(void);

static void ws_close(ws_conn_t *c) {
    if (c->state == WS_CLOSING) return;
    if (c->state == WS_OPEN) B.ws_open--;
    c->state = WS_CLOSING;
    uv_close((uv_handle_t *)&c->tcp, ws_on_close);
}

static void ws_fail(ws_conn_t *c, const char *why) {
    if (c->state == WS_CLOSING) return;
    if (c->state == WS_OPEN) {
        if (!B.closing) B.ws_unexpected_close++;
    } else {
        B.batch_inflight--;
        B.batch_fail++;
        if (!B.first_connect_error[0])
            snprintf(B.first_connect_error, sizeof B.first_connect_error, "%s", why);
    }
    ws_close(c);
    batch_pump();
}

static void hs_maybe_free(ws_conn_t *c) {
    if (c->hs && c->hs->write_done && c->hs->resp_done) {
        free(c->hs);
        c->hs = NULL;
    }
}

static void pump(void);

/* A send is settled once the API answered and every connection it named received
 * it; the window then has room, so the next send goes out now, not at the next tick. */
static void slot_check(scenario_t *s, slot_t *sl) {
    if (sl->done || !sl->answered || sl->received < sl->expected) return;
    sl->done = true;
    s->completed++;
    if (sl->expected == 0) {
        s->zero++;
    } else if (!s->per_delivery) {
        lat_add(&s->lat, sl->t_last - sl->t_send);
    }
    pump();
}

static void on_message(ws_conn_t *c) {
    B.msgs_total++;
    scenario_t *s = B.sc;
    if (c->zmsg) inflate_head(c);
    if (c->prefix_len < MSG_HEAD || memcmp(c->prefix, MSG_MAGIC, 4)) {
        B.foreign++;
        return;
    }
    uint32_t tag;
    uint64_t seq;
    memcpy(&tag, c->prefix + 4, 4);
    memcpy(&seq, c->prefix + 8, 8);
    if (!s || tag != s->tag || seq >= s->issued) {
        B.late++;
        return;
    }
    slot_t *sl = &s->slots[seq];
    uint64_t t = now_ns();
    sl->received++;
    sl->t_last = t;
    s->deliveries++;
    s->wire += c->msg_wire;
    s->compressed += c->zmsg;
    s->bytes += s->size;
    s->t_last_delivery = t;
    if (sl->done) {
        s->extra++;
        return;
    }
    if (s->per_delivery) lat_add(&s->lat, t - sl->t_send);
    slot_check(s, sl);
}

static void pong_done(uv_write_t *w, int status) { free(w->data); }

static void ws_pong(ws_conn_t *c) {
    /* Client frames must be masked; a zero key leaves the payload as it is. */
    pong_t *p = xcalloc(1, sizeof *p);
    p->buf[0] = 0x8A;
    p->buf[1] = (uint8_t)(0x80 | c->ctrl_len);
    memcpy(p->buf + 6, c->ctrl, c->ctrl_len);
    p->w.data = p;
    uv_buf_t b = uv_buf_init((char *)p->buf, (unsigned)(6 + c->ctrl_len));
    if (uv_write(&p->w, (uv_stream_t *)&c->tcp, &b, 1, pong_done)) free(p);
}

static void frame_done(ws_conn_t *c) {
    c->rd = RD_HDR;
    c->hdr_have = 0;
    if (c->opcode >= 8) {
        if (c->opcode == 9) ws_pong(c);
        else if (c->opcode == 8) ws_fail(c, "closed by the server");
        return;
    }
    if (c->fin) {
        c->in_msg = 0;
        on_message(c);
    }
}

/* Incremental RFC 6455 frame reader for server frames (unmasked). */
static void ws_feed(ws_conn_t *c, const uint8_t *p, size_t n) {
    while (n > 0 && c->state == WS_OPEN) {
        if (c->rd == RD_HDR) {
            if (c->hdr_have < 2) {
                c->hdr[c->hdr_have++] = *p++;
                n--;
                if (c->hdr_have < 2) continue;
                uint8_t l7 = c->hdr[1] & 0x7f;
                c->hdr_need = (uint8_t)(2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0));
                if (c->hdr[1] & 0x80) {
                    B.ws_protocol_errors++;
                    ws_fail(c, "masked server frame");
                    return;
                }
            }
            size_t take = c->hdr_need - c->hdr_have;
            if (take > n) take = n;
            memcpy(c->hdr + c->hdr_have, p, take);
            c->hdr_have = (uint8_t)(c->hdr_have + take);
            p += take;
            n -= take;
            if (c->hdr_have < c->hdr_need) return;
            uint8_t l7 = c->hdr[1] & 0x7f;
            uint64_t len = l7;
            if (l7 == 126) len = (uint64_t)c->hdr[2] << 8 | c->hdr[3];
            else if (l7 == 127) {
                len = 0;
                for (int i = 0; i < 8; i++) len = len << 8 | c->hdr[2 + i];
            }
            c->fin = c->hdr[0] >> 7;
            c->opcode = c->hdr[0] & 0x0f;
            if ((c->hdr[0] & 0x40) && (!O.compress || (c->hdr[0] & 0x0f) == 0 || (c->hdr[0] & 0x08))) {
                B.ws_protocol_errors++;
                ws_fail(c, "RSV1 where it may not be");
                return;
            }
            if (c->opcode >= 8) {
                if (len > 125 || !c->fin) {
                    B.ws_protocol_errors++;
                    ws_fail(c, "bad control frame");
                    return;
                }
                c->ctrl_len = 0;
            } else if (c->opcode == 1 || c->opcode == 2) {
                if (c->in_msg) {
                    B.ws_protocol_errors++;
                    ws_fail(c, "new message inside a fragmented one");
                    return;
                }
                c->in_msg = 1;
                c->prefix_len = 0;
                c->zmsg = (c->hdr[0] & 0x40) != 0;
                c->zlen = 0;
                c->msg_wire = 0;
            } else if (c->opcode != 0 || !c->in_msg) {
                B.ws_protocol_errors++;
                ws_fail(c, "bad opcode");
                return;
            }
            c->remaining = len;
            if (c->opcode < 8) c->msg_wire += c->hdr_need + len;
            if (len == 0) frame_done(c);
            else c->rd = RD_PAYLOAD;
        } else {
            size_t take = n < c->remaining ? n : (size_t)c->remaining;
            if (c->opcode >= 8) {
                memcpy(c->ctrl + c->ctrl_len, p, take);
                c->ctrl_len = (uint8_t)(c->ctrl_len + take);
            } else if (c->zmsg) {
                if (!c->zhead) c->zhead = xcalloc(1, ZHEAD);
                size_t k = ZHEAD - c->zlen;
                if (k > take) k = take;
                memcpy(c->zhead + c->zlen, p, k);
                c->zlen = (uint16_t)(c->zlen + k);
            } else if (c->prefix_len < MSG_HEAD) {
                size_t k = MSG_HEAD - c->prefix_len;
                if (k > take) k = take;
                memcpy(c->prefix + c->prefix_len, p, k);
                c->prefix_len = (uint8_t)(c->prefix_len + k);
            }
            p += take;
            n -= take;
            c->remaining -= take;
            if (c->remaining == 0) frame_done(c);
        }
    }
}

/* Reads the 101 answer byte by byte only until its blank line, then hands the rest
 * (a message may follow in the same segment) to the frame reader. */
static void ws_handshake_feed(ws_conn_t *c, const uint8_t *p, size_t n) {
    ws_hs_t *hs = c->hs;
    static const char end[] = "\r\n\r\n";
    size_t i = 0;
    hs->seen += n;
    while (i < n && c->hs_match < 4) {
        if (hs->resp_len < sizeof hs->resp - 1) hs->resp[hs->resp_len++] = (char)p[i];
        if (p[i] == (uint8_t)end[c->hs_match]) c->hs_match++;
        else c->hs_match = p[i] == '\r' ? 1 : 0;
        i++;
    }
    if (c->hs_match < 4) {
        if (hs->seen > 16384) ws_fail(c, "handshake answer head over 16 KiB");
        return;
    }
    hs->resp[hs->resp_len] = 0;
    if (strncmp(hs->resp, "HTTP/1.1 101", 12)) {
        char line[160];
        size_t l = strcspn(hs->resp, "\r\n");
        snprintf(line, sizeof line, "%.*s", (int)(l < 120 ? l : 120), hs->resp);
        ws_fail(c, line);
        return;
    }
    hs->resp_done = true;
    c->state = WS_OPEN;
    B.ws_open++;
    B.batch_inflight--;
    B.batch_ok++;
    hs_maybe_free(c);
    batch_pump();
    if (i < n) ws_feed(c, p + i, n - i);
}

static void ws_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
    *buf = uv_buf_init(rdbuf, sizeof rdbuf);
}

static void ws_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
    ws_conn_t *c = st->data;
    if (nread < 0) {
        ws_fail(c, nread == UV_EOF ? "closed by the server" : uv_strerror((int)nread));
        return;
    }
    if (c->state == WS_HANDSHAKE) ws_handshake_feed(c, (const uint8_t *)buf->base, (size_t)nread);
    else if (c->state == WS_OPEN) ws_feed(c, (const uint8_t *)buf->base, (size_t)nread);
}

static void ws_written(uv_write_t *w, int status) {
    ws_hs_t *hs = w->data;
    ws_conn_t *c = hs->conn;
    hs->write_done = true;
    if (status < 0 && c->state != WS_CLOSING) {
        ws_fail(c, uv_strerror(status));
        return;
    }
    hs_maybe_free(c);
}

static void ws_connected(uv_connect_t *req, int status) {
    ws_hs_t *hs = req->data;
    ws_conn_t *c = hs->conn;
    if (c->state == WS_CLOSING) return;
    if (status < 0) {
        ws_fail(c, uv_strerror(status));
        return;
    }
    c->state = WS_HANDSHAKE;
    uv_buf_t b = uv_buf_init(hs->req, (unsigned)strlen(hs->req));
    hs->wreq.data = hs;
    int rc = uv_write(&hs->wreq, (uv_stream_t *)&c->tcp, &b, 1, ws_written);
    if (rc == 0) rc = uv_read_start((uv_stream_t *)&c->tcp, ws_alloc, ws_read);
    else hs->write_done = true;
    if (rc) ws_fail(c, uv_strerror(rc));
}

static char prefix[16];

/* With joins, the JWT's channels: <prefix>ch, <prefix>ch1, ... (the channel
 * scenario sends to the first). */
static void make_jwt(const char *user, unsigned joins, char *out, size_t cap) {
    char header[64], payload[1200], signing[1400];
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned maclen = 0;
    static const char hjson[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    char pjson[880], chans[720] = "";
    size_t cl = 0;
    for (unsigned i = 0; i < joins; i++) {
        char n[12] = "";
        if (i) snprintf(n, sizeof n, "%u", i);
        cl += (size_t)snprintf(chans + cl, sizeof chans - cl, "%s\"%sch%s\"", i ? "," : "",
                               prefix, n);
    }
    int pl = snprintf(pjson, sizeof pjson, "{\"sub\":\"%s\",\"exp\":%lld%s%s%s}", user,
                      (long long)time(NULL) + 3600, joins ? ",\"channels\":[" : "", chans,
                      joins ? "]" : "");
    b64url((const unsigned char *)hjson, sizeof hjson - 1, header);
    b64url((const unsigned char *)pjson, (size_t)pl, payload);
    int sl = snprintf(signing, sizeof signing, "%s.%s", header, payload);
    HMAC(EVP_sha256(), O.jwt_secret, (int)strlen(O.jwt_secret), (const unsigned char *)signing,
         (size_t)sl, mac, &maclen);
    char sig[64];
    b64url(mac, maclen, sig);
    snprintf(out, cap, "%s.%s", signing, sig);
}

static void ws_start(ws_conn_t *c) {
    ws_hs_t *hs = xcalloc(1, sizeof *hs);
    hs->conn = c;
    c->hs = hs;
    c->state = WS_CONNECTING;
    c->tcp.data = c;
    char jwt[1800];
    make_jwt(c->user, c->joins, jwt, sizeof jwt);
    snprintf(hs->req, sizeof hs->req,
             "GET /connect?jwt=%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
             "Connection: Upgrade\r\nSec-WebSocket-Key: ZHNvY2stYmVuY2gtLWtleQ==\r\n"
             "Sec-WebSocket-Version: 13\r\n%s\r\n",
             jwt, O.worker,
             O.compress ? "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n" : "");
    hs->creq.data = hs;
    B.batch_inflight++;
    int rc = 0;
    if (ws_src_set) {
        /* The port is chosen at connect by the whole 4-tuple: a bind to port 0 would
         * search for a port free on its own, which grows slow (sys time) as they fill. */
        uv_tcp_init_ex(B.loop, &c->tcp, AF_INET);
        uv_os_fd_t fd;
        int one = 1;
        if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0)
            setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        rc = uv_tcp_bind(&c->tcp, (const struct sockaddr *)&ws_src, 0);
    } else {
        uv_tcp_init(B.loop, &c->tcp);
    }
    if (rc) {
        ws_fail(c, uv_strerror(rc));
        return;
    }
    rc = uv_tcp_connect(&hs->creq, &c->tcp,
                            (struct sockaddr *)(c->worker2 ? &B.worker2_sa : &B.worker_sa),
                            ws_connected);
    if (rc) ws_fail(c, uv_strerror(rc));
}

static void batch_pump(void) {
    while (!B.closing && !B.interrupted && B.batch_inflight < CONNECT_WINDOW && B.batch_next < B.batch_end)
        ws_start(&B.ws[B.batch_next++]);
}

/* ------------------------------------------------------------------ API client */

enum { API_CONNECTING, API_IDLE, API_BUSY, API_CLOSING };

typedef struct api_conn {
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_write_t wreq;
    int state;
    uint64_t seq;
    bool write_pending; /* wreq in use until api_written */
    scenario_t *sc;
    char head[1024];
    char *body;
    size_t body_cap, body_filled;
    char *rbuf;
    size_t rlen, rcap;
} api_conn_t;

static api_conn_t *A;
static size_t NA;

static void api_connect(api_conn_t *a);

static void api_on_close(uv_handle_t *h) {
    api_conn_t *a = h->data;
    B.api_closed_cbs++;
    if (!B.closing && !B.interrupted && B.reconnects < MAX_RECONNECTS) {
        B.reconnects++;
        api_connect(a);
    }
}

static void api_request_failed(api_conn_t *a, const char *why) {
    B.api_errors++;
    if (!B.first_api_error[0]) snprintf(B.first_api_error, sizeof B.first_api_error, "%s", why);
    scenario_t *s = a->sc;
    if (s && s == B.sc && a->seq < s->issued && !s->slots[a->seq].answered) {
        s->slots[a->seq].failed = true;
        s->failed++;
    }
}

static void api_close(api_conn_t *a) {
    if (a->state == API_CLOSING) return;
    a->state = API_CLOSING;
    uv_close((uv_handle_t *)&a->tcp, api_on_close);
}

static void api_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
    api_conn_t *a = h->data;
    if (a->rcap - a->rlen < 4096) {
        a->rcap = a->rcap ? a->rcap * 2 : 8192;
        a->rbuf = xrealloc(a->rbuf, a->rcap + 1);
    }
    *buf = uv_buf_init(a->rbuf + a->rlen, (unsigned)(a->rcap - a->rlen));
}

static void api_answer(api_conn_t *a, int status, const char *body, size_t blen) {
    scenario_t *s = a->sc;
    uint64_t t = now_ns();
    a->state = API_IDLE;
    if (!s || s != B.sc || a->seq >= s->issued) return;
    slot_t *sl = &s->slots[a->seq];
    const char *k = status == 200 ? memmem(body, blen, "\"connections\":", 14) : NULL;
    if (!k) {
        char why[240];
        snprintf(why, sizeof why, "HTTP %d %.*s", status, (int)(blen < 200 ? blen : 200), body);
        api_request_failed(a, why);
        return;
    }
    k += 14;
    uint64_t n = 0;
    while (k < body + blen && *k >= '0' && *k <= '9') n = n * 10 + (uint64_t)(*k++ - '0');
    sl->answered = true;
    sl->expected = (uint32_t)n;
    s->answered++;
    s->expected_sum += n;
    s->t_last_answer = t;
    slot_check(s, sl);
}

static void api_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
    api_conn_t *a = st->data;
    if (nread < 0) {
        if (a->state == API_BUSY) api_request_failed(a, nread == UV_EOF ? "API closed the connection"
                                                                        : uv_strerror((int)nread));
        api_close(a);
        return;
    }
    a->rlen += (size_t)nread;
    for (;;) {
        a->rbuf[a->rlen] = 0;
        char *end = memmem(a->rbuf, a->rlen, "\r\n\r\n", 4);
        if (!end) {
            if (a->rlen > 65536) {
                api_request_failed(a, "API answer head too long");
                api_close(a);
            }
            return;
        }
        size_t head_len = (size_t)(end - a->rbuf) + 4;
        *end = 0; /* the head as a C string for the header searches; restored below */
        int status = a->rlen > 12 ? atoi(a->rbuf + 9) : 0;
        const char *cl = strcasestr(a->rbuf, "\ncontent-length:");
        bool conn_close = strcasestr(a->rbuf, "\nconnection: close") != NULL;
        size_t blen = cl ? strtoul(cl + 16, NULL, 10) : 0;
        *end = '\r';
        if (!cl) {
            api_request_failed(a, "API answer without Content-Length");
            api_close(a);
            return;
        }
        if (a->rlen < head_len + blen) return;
        if (a->state == API_BUSY) api_answer(a, status, a->rbuf + head_len, blen);
        memmove(a->rbuf, a->rbuf + head_len + blen, a->rlen - head_len - blen);
        a->rlen -= head_len + blen;
        if (conn_close) {
            api_close(a);
            return;
        }
        if (!a->rlen) break;
    }
    pump();
}

static void api_connected(uv_connect_t *req, int status) {
    api_conn_t *a = req->data;
    if (a->state == API_CLOSING) return;
    if (status < 0) {
        api_request_failed(a, uv_strerror(status));
        api_close(a);
        return;
    }
    uv_tcp_nodelay(&a->tcp, 1);
    if (uv_read_start((uv_stream_t *)&a->tcp, api_alloc, api_read)) {
        api_close(a);
        return;
    }
    a->state = API_IDLE;
    pump();
}

static void api_connect(api_conn_t *a) {
    a->state = API_CONNECTING;
    a->rlen = 0;
    a->sc = NULL;
    uv_tcp_init(B.loop, &a->tcp);
    a->tcp.data = a;
    a->creq.data = a;
    int rc = uv_tcp_connect(&a->creq, &a->tcp, (struct sockaddr *)&B.api_sa, api_connected);
    if (rc) {
        api_request_failed(a, uv_strerror(rc));
        api_close(a);
    }
}

static void api_written(uv_write_t *w, int status) {
    api_conn_t *a = w->data;
    a->write_pending = false;
    if (status >= 0 && a->state == API_IDLE) pump(); /* answered before the write callback */
    if (status < 0 && a->state == API_BUSY) {
        api_request_failed(a, uv_strerror(status));
        api_close(a);
    }
}

/* JSON-looking records, varied as real messages are (ids, names, numbers), so that
 * they compress like them (5-10x), not like a repeated alphabet. */
static void json_filler(char *out, size_t n) {
    static const char *names[] = {"alice", "bob", "carol", "dave", "erin", "frank", "grace"};
    static const char *tags[] = {"\"alpha\"", "\"beta\",\"gamma\"", "\"delta\"", ""};
    size_t pos = 0;
    uint32_t x = 12345;
    char rec[256];
    for (unsigned i = 0; pos < n; i++) {
        x = x * 1103515245u + 12345u;
        int l = snprintf(rec, sizeof rec,
                         "%s{\"id\":%u,\"user\":\"%s-%u\",\"score\":%u.%02u,\"tags\":[%s],"
                         "\"active\":%s,\"ts\":\"2026-01-%02uT%02u:%02u:%02uZ\"}",
                         i ? "," : "{\"type\":\"update\",\"items\":[", 1000 + i,
                         names[x % 7], (x >> 8) % 100, (x >> 4) % 1000, (x >> 12) % 100,
                         tags[(x >> 16) % 4], (x >> 20) & 1 ? "true" : "false", 1 + (x >> 3) % 28,
                         (x >> 7) % 24, (x >> 9) % 60, (x >> 13) % 60);
        size_t k = (size_t)l < n - pos ? (size_t)l : n - pos;
        memcpy(out + pos, rec, k);
        pos += k;
    }
}

static void api_issue(api_conn_t *a, scenario_t *s, uint64_t seq) {
    if (a->body_cap < s->size) {
        a->body = xrealloc(a->body, s->size);
        a->body_cap = s->size;
        a->body_filled = 0;
    }
    if (a->body_filled < s->size) {
        /* Printable filler: the same bytes would also pass as a text message. */
        if (!strcmp(O.payload, "json"))
            json_filler(a->body, s->size);
        else
            for (size_t i = a->body_filled; i < s->size; i++) a->body[i] = (char)('a' + i % 26);
        a->body_filled = s->size;
    }
    memcpy(a->body, MSG_MAGIC, 4);
    memcpy(a->body + 4, &s->tag, 4);
    memcpy(a->body + 8, &seq, 8);
    char user[64];
    s->target(seq, user, sizeof user);
    int hl = snprintf(a->head, sizeof a->head,
                      "POST /send?%s&type=binary HTTP/1.1\r\nHost: %s\r\n"
                      "Authorization: Bearer %s\r\nContent-Length: %zu\r\n\r\n",
                      user, O.api, O.token, s->size);
    a->state = API_BUSY;
    a->seq = seq;
    a->sc = s;
    slot_t *sl = &s->slots[seq];
    sl->t_send = now_ns();
    uv_buf_t bufs[2] = {uv_buf_init(a->head, (unsigned)hl), uv_buf_init(a->body, (unsigned)s->size)};
    /* Usually the socket takes the request whole: then no write request, whose
     * completion costs libuv an epoll_ctl (the bench's own CPU counts too, on a
     * machine it shares with the broker). */
    int n = uv_try_write((uv_stream_t *)&a->tcp, bufs, 2);
    if (n == (int)((size_t)hl + s->size)) return;
    if (n > 0) {
        size_t skip = (size_t)n;
        for (int i = 0; i < 2; i++) {
            size_t k = skip < bufs[i].len ? skip : bufs[i].len;
            bufs[i].base += k;
            bufs[i].len -= k;
            skip -= k;
        }
    }
    a->wreq.data = a;
    int rc = uv_write(&a->wreq, (uv_stream_t *)&a->tcp, bufs, 2, api_written);
    a->write_pending = rc == 0;
    if (rc) {
        api_request_failed(a, uv_strerror(rc));
        api_close(a);
    }
}

/* ------------------------------------------------------------------ open loop (--rate) */

/* With --rate R the throughput scenario offers a fixed load instead of sending as
 * fast as answers come back: send i is due at t_start + i/R, leaves when it is due
 * and an API connection is free, and its latency counts from when it was due, so a
 * broker that falls behind shows the queueing it causes (a closed loop would wait
 * with it and hide it: coordinated omission). A 1 ms timer issues what fell due
 * between answers. */
static uv_timer_t open_loop_timer;
static bool open_loop_armed;

static bool open_loop_on(const scenario_t *s) { return O.rate > 0 && !strcmp(s->name, "throughput"); }

static uint64_t open_loop_due_ns(const scenario_t *s, uint64_t seq) {
    return s->t_start + (uint64_t)((double)seq * 1e9 / O.rate);
}

static bool open_loop_due(const scenario_t *s) {
    return !open_loop_on(s) || open_loop_due_ns(s, s->issued) <= now_ns();
}

/* The pacing timer ticks every millisecond, so a send may leave up to 1 ms after
 * it was due with the broker idle: that much is forgiven (the latency then counts
 * from the write), anything later counts from due + 1 ms. */
static void open_loop_stamp(scenario_t *s, uint64_t seq) {
    if (!open_loop_on(s)) return;
    uint64_t due = open_loop_due_ns(s, seq) + 1000000;
    if (s->slots[seq].t_send > due) s->slots[seq].t_send = due;
}

static void pump(void);
static void open_loop_tick(uv_timer_t *t) { pump(); }

static void open_loop_start(uv_loop_t *loop) {
    if (O.rate <= 0 || open_loop_armed) return;
    uv_timer_init(loop, &open_loop_timer);
    uv_timer_start(&open_loop_timer, open_loop_tick, 1, 1);
    open_loop_armed = true;
}

static void open_loop_stop(void) {
    if (!open_loop_armed) return;
    uv_timer_stop(&open_loop_timer);
    uv_close((uv_handle_t *)&open_loop_timer, NULL);
    open_loop_armed = false;
}

/* One machine-readable line for bench/sweep: offered and achieved sends/s, and the
 * latency percentiles of every delivery, counted from when its send was due. */
static void open_loop_print(scenario_t *s) {
    if (!open_loop_on(s)) return;
    double achieved = s->t_last_answer > s->t_start
                          ? (double)s->answered / ((double)(s->t_last_answer - s->t_start) / 1e9) : 0;
    printf("    open loop: offered %.0f sends/s, achieved %.0f sends/s; latency from due time: "
           "p50 %.3f ms, p99 %.3f ms, p99.9 %.3f ms, max %.3f ms\n", O.rate, achieved,
           s->lat.n ? lat_pct_ms(&s->lat, 50) : 0, s->lat.n ? lat_pct_ms(&s->lat, 99) : 0,
           s->lat.n ? lat_pct_ms(&s->lat, 99.9) : 0, s->lat.n ? lat_pct_ms(&s->lat, 100) : 0);
}

/* Issues sends while an API connection is free, the scenario has sends left, fewer
 * than `window` are unsettled, and its sending time is not over. */
static void pump(void) {
    scenario_t *s = B.sc;
    if (!s || s->stop_issuing || B.closing || B.interrupted) return;
    if (now_ns() >= s->issue_deadline) {
        s->stop_issuing = true;
        return;
    }
    size_t use = s->api_conns < NA ? s->api_conns : NA;
    for (size_t i = 0; i < use; i++) {
        if (s->issued >= s->total || s->issued - s->completed - s->failed >= s->window) return;
        /* The answer can come before the write callback: wreq is free only after it. */
        if (A[i].state == API_IDLE && !A[i].write_pending) {
            if (!open_loop_due(s)) return;
            uint64_t seq = s->issued++;
            api_issue(&A[i], s, seq);
            open_loop_stamp(s, seq);
        }
    }
}

/* ------------------------------------------------------------------ loop driving */

static void on_tick(uv_timer_t *t) {
    pump();
    batch_pump();
}

static void on_signal(uv_signal_t *h, int sig) {
    if (!B.interrupted) fprintf(stderr, "dsock-bench: interrupted, stopping\n");
    B.interrupted = true;
}

/* Runs the loop until done() or the deadline (or an interrupt). The 20 ms tick keeps
 * UV_RUN_ONCE from sleeping past either. */
static bool run_until(bool (*done)(void), uint64_t deadline) {
    while (!done()) {
        if (B.interrupted || now_ns() >= deadline) return false;
        uv_run(B.loop, UV_RUN_ONCE);
    }
    return true;
}

static bool batch_done(void) { return B.batch_next >= B.batch_end && B.batch_inflight == 0; }

static bool api_all_ready(void) {
    for (size_t i = 0; i < NA; i++)
        if (A[i].state == API_CONNECTING) return false;
    return true;
}

static bool scenario_done(void) {
    scenario_t *s = B.sc;
    bool issuing_over = s->issued >= s->total || s->stop_issuing;
    if (!issuing_over) return false;
    for (size_t i = 0; i < NA; i++)
        if (A[i].state == API_BUSY) return false;
    return s->completed + s->failed >= s->issued;
}

static bool all_closed(void) { return B.ws_closed_cbs >= B.ws_used && B.api_closed_cbs >= NA; }

static bool settle_done(void) { return false; }

static void settle(unsigned ms) { run_until(settle_done, now_ns() + (uint64_t)ms * 1000000ull); }

/* Opens connections ws[first..first+n) for their users; returns the seconds taken. */
static double open_batch(size_t first, size_t n) {
    B.batch_next = first;
    B.batch_end = first + n;
    B.batch_ok = B.batch_fail = 0;
    uint64_t t0 = now_ns();
    batch_pump();
    run_until(batch_done, t0 + 120 * 1000000000ull);
    return secs(now_ns() - t0);
}

/* Targets: the query parameter naming the scenario's target. */
static void target_fan(uint64_t seq, char *t, size_t cap) { snprintf(t, cap, "user=%sfan", prefix); }
static void target_big(uint64_t seq, char *t, size_t cap) { snprintf(t, cap, "user=%sbig", prefix); }
static void target_users(uint64_t seq, char *t, size_t cap) {
    snprintf(t, cap, "user=%su%" PRIu64, prefix, seq % O.users);
}
static void target_channel(uint64_t seq, char *t, size_t cap) {
    snprintf(t, cap, "channel=%sch", prefix);
}

/* --spawn redis: one INFO section of the spawned redis-server, by a blocking
 * inline command; the value of `field` (its first number after `key=`, or the
 * whole value when key is NULL), or -1. */
static double redis_info_at(const char *section, const char *field, const char *key, bool sum);

static double redis_info(const char *section, const char *field, const char *key) {
    return redis_info_at(section, field, key, false);
}

/* INFO commandstats: the calls of every command together (commands run by scripts
 * are counted too), a cost measure that CPU contention does not blur. */
static double redis_calls_total(void) { return redis_info_at("commandstats", NULL, "calls", true); }

static double redis_info_at(const char *section, const char *field, const char *key, bool sum) {
    if (!redis_port) return -1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)redis_port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    double v = -1;
    char cmd[64], buf[65536];
    size_t len = 0;
    int n = snprintf(cmd, sizeof cmd, "INFO %s\r\n", section);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0 && write(fd, cmd, (size_t)n) == n) {
        ssize_t r;
        /* a bulk reply: "$<len>\r\n<body>\r\n"; read until the body is in */
        while (len < sizeof buf - 1 && (r = read(fd, buf + len, sizeof buf - 1 - len)) > 0) {
            len += (size_t)r;
            buf[len] = '\0';
            char *nl = strstr(buf, "\r\n");
            if (nl && buf[0] == '$' && (size_t)(nl - buf) + 2 + strtoul(buf + 1, NULL, 10) + 2 <= len)
                break;
        }
        buf[len] = '\0';
        char pat[96];
        if (sum) {
            /* every "cmdstat_X:calls=N,..." line */
            v = 0;
            for (char *q = buf; (q = strstr(q, "\ncmdstat_")); q++) {
                char *c = strstr(q, ":calls=");
                char *eol = strstr(q + 1, "\n");
                if (c && (!eol || c < eol)) v += strtod(c + 7, NULL);
            }
            close(fd);
            return v;
        }
        snprintf(pat, sizeof pat, "\n%s:", field);
        char *p = strstr(buf, pat);
        if (p) {
            p += strlen(pat);
            if (key) {
                char kp[40];
                snprintf(kp, sizeof kp, "%s=", key);
                p = strstr(p, kp);
                if (p) v = strtod(p + strlen(kp), NULL);
            } else {
                v = strtod(p, NULL);
            }
        }
    }
    close(fd);
    return v;
}

/* Redis's own CPU time (INFO cpu: used_cpu_user + used_cpu_sys) in seconds, or -1. */
static double redis_cpu_seconds(void) {
    double u = redis_info("cpu", "used_cpu_user", NULL), y = redis_info("cpu", "used_cpu_sys", NULL);
    return u >= 0 && y >= 0 ? u + y : -1;
}

/* --spawn redis: Redis's own work during a scenario, from INFO commandstats. Its
 * `usec` is wall time inside each command (a script's includes the commands it
 * runs), so a Redis preempted mid-command is billed for it; the command counts
 * are exact. */
typedef struct redis_stats {
    double eval_calls, eval_usec, publish_calls, all_calls;
} redis_stats_t;

static bool redis_stats(redis_stats_t *r) {
    r->eval_calls = redis_info("commandstats", "cmdstat_evalsha", "calls");
    r->eval_usec = redis_info("commandstats", "cmdstat_evalsha", "usec");
    r->publish_calls = redis_info("commandstats", "cmdstat_publish", "calls");
    r->all_calls = redis_calls_total();
    return r->eval_calls >= 0 && r->all_calls >= 0;
}

/* 4 INFO calls per redis_stats: not counted as the sends' commands. */
static void redis_stats_print(const redis_stats_t *a, size_t sends) {
    redis_stats_t b;
    if (!sends || !redis_stats(&b)) return;
    double calls = b.eval_calls - a->eval_calls, usec = b.eval_usec - a->eval_usec;
    double pub = b.publish_calls - (a->publish_calls > 0 ? a->publish_calls : 0);
    if (calls <= 0) return;
    printf("    redis: %.0f EVALSHA (%.2f per send), %.1f us per EVALSHA, %.1f us per send; "
           "%.2f PUBLISH and %.1f commands per send (all, those inside scripts included)\n",
           calls, calls / (double)sends, usec / calls, usec / (double)sends, pub / (double)sends,
           (b.all_calls - a->all_calls - 4) / (double)sends);
}

static uint64_t cpu0_self;
static uint64_t cpu0_t;

static void cpu_mark(void) {
    for (size_t i = 0; i < NP; i++) P[i].cpu_ticks0 = P[i].pid ? proc_cpu_ticks(P[i].pid) : 0;
    cpu0_self = self_cpu_ns();
    cpu0_t = now_ns();
}

/* The CPU each sampled process and the bench used since cpu_mark, as a percentage
 * of one core; with ops > 0 also in microseconds per op (per send): the cost
 * measure that a loaded machine blurs least, since a process descheduled for a
 * while uses no CPU meanwhile. */
static void cpu_print_per(size_t ops, const char *op) {
    double wall = secs(now_ns() - cpu0_t);
    long hz = sysconf(_SC_CLK_TCK);
    if (wall < 0.1 || hz <= 0) return; /* clock-tick granularity would make it noise */
    double used[4] = {0};
    for (size_t i = 0; i < NP; i++)
        if (P[i].pid) used[i] = (double)(proc_cpu_ticks(P[i].pid) - P[i].cpu_ticks0) / (double)hz;
    double self = secs(self_cpu_ns() - cpu0_self);
    printf("    cpu (%% of one core):");
    for (size_t i = 0; i < NP; i++)
        if (P[i].pid) printf(" %s %.0f%%,", P[i].name, 100.0 * used[i] / wall);
    printf(" bench %.0f%%\n", 100.0 * self / wall);
    if (!ops) return;
    double total = 0;
    printf("    cpu per %s (us):", op);
    for (size_t i = 0; i < NP; i++)
        if (P[i].pid) {
            printf(" %s %.1f,", P[i].name, 1e6 * used[i] / (double)ops);
            total += used[i];
        }
    printf(" bench %.1f; broker total %.1f\n", 1e6 * self / (double)ops, 1e6 * total / (double)ops);
}

static void cpu_print(void) { cpu_print_per(0, NULL); }

static uint32_t next_tag;

static void scenario_run(scenario_t *s) {
    s->tag = next_tag++;
    s->slots = xcalloc(s->total, sizeof *s->slots);
    s->t_start = now_ns();
    s->issue_deadline = s->t_start + (uint64_t)(O.duration * 1e9);
    B.sc = s;
    cpu_mark();
    pump();
    run_until(scenario_done, s->issue_deadline + DRAIN_NS);
    s->stop_issuing = true;
    for (size_t i = 0; i < s->issued; i++) {
        slot_t *sl = &s->slots[i];
        if (sl->answered && sl->received < sl->expected) s->lost += sl->expected - sl->received;
    }
    lat_sort(&s->lat);
}

static void scenario_end(scenario_t *s) {
    B.sc = NULL;
    free(s->slots);
    s->slots = NULL;
    free(s->lat.v);
    s->lat.v = NULL;
}

static void print_problems(scenario_t *s) {
    size_t unanswered = s->issued - s->answered - s->failed;
    if (s->issued < s->total)
        printf("    note: the %.0f s cap (--duration) stopped sending after %zu of %zu sends\n",
               O.duration, s->issued, s->total);
    if (s->failed || unanswered || s->zero || s->extra)
        printf("    problems: %zu failed, %zu unanswered, %zu reached no connection, %" PRIu64
               " duplicate deliveries\n", s->failed, unanswered, s->zero, s->extra);
    printf("    lost: %" PRIu64 " (of %" PRIu64 " deliveries the API reported)%s\n", s->lost, s->expected_sum,
           B.interrupted ? " (interrupted: messages in flight count as lost)" : "");
}

static double rate(uint64_t n, uint64_t t0, uint64_t t1) {
    return t1 > t0 ? (double)n / secs(t1 - t0) : 0;
}

static const char *ms_str(lat_t *l, double pct, char *buf, size_t cap) {
    if (!l->n) return "n/a";
    snprintf(buf, cap, "%.2f ms", lat_pct_ms(l, pct));
    return buf;
}

static int parse_addr(const char *hp, struct sockaddr_storage *ss) {
    char host[256];
    const char *colon = strrchr(hp, ':');
    if (!colon) return -1;
    int port = atoi(colon + 1);
    snprintf(host, sizeof host, "%.*s", (int)(colon - hp), hp);
    if (!host[0] || !strcmp(host, "localhost")) snprintf(host, sizeof host, "127.0.0.1");
    if (host[0] == '[') {
        size_t l = strlen(host);
        if (host[l - 1] == ']') host[l - 1] = 0;
        return uv_ip6_addr(host + 1, port, (struct sockaddr_in6 *)ss);
    }
    return uv_ip4_addr(host, port, (struct sockaddr_in *)ss);
}

/* ------------------------------------------------------------------ main */

static void raise_nofile(size_t need) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl)) return;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur != RLIM_INFINITY && need > rl.rlim_cur)
        die("%zu connections need about %zu open files, but the limit is %llu: lower --connections "
            "or --fanout",
            O.connections + O.fanout, need, (unsigned long long)rl.rlim_cur);
}

/* --procs: the idle connections are spread over this process and P-1 children
 * forked before any connection exists (uv_loop_fork gives each its own loop). A
 * child waits for a byte on `go`, opens its share, writes "ok fail" on `report`,
 * and holds its connections until `go` reaches EOF; then it exits, and the kernel
 * closes its sockets. It never stops the deployment (NP = 0 in it). */
typedef struct child {
    pid_t pid;
    int go, report; /* the parent's ends */
    size_t first, n;
} child_t;
static child_t CH[64];
static size_t NCH;

static void idle_names(size_t n) {
    B.ws_cap = B.ws_used = n;
    B.ws = xcalloc(n ? n : 1, sizeof *B.ws);
    for (size_t i = 0; i < n; i++) snprintf(B.ws[i].user, sizeof B.ws[i].user, "%su%zu", prefix, i % O.users);
}

static void child_main(size_t k, int go, int report, size_t first, size_t n) {
    NP = 0;
    use_source_ip(k); /* 127.0.0.(k+1), k >= 1 */
    if (uv_loop_fork(B.loop)) _exit(3);
    char b;
    if (read(go, &b, 1) != 1) _exit(0);
    idle_names(O.connections);
    open_batch(first, n);
    dprintf(report, "%zu %zu %s\n", B.batch_ok, B.batch_fail, B.first_connect_error);
    while (read(go, &b, 1) > 0) {
    }
    _exit(0);
}

/* The children open every idle connection, the parent none (it keeps the API
 * connections and measures); returns the parent's share, 0. */
static size_t children_start(void) {
    size_t per = O.connections / O.procs, extra = O.connections % O.procs;
    size_t first = 0;
    for (size_t i = 0; i < O.procs; i++) {
        size_t n = per + (i < extra);
        int go[2], rep[2];
        if (pipe2(go, O_CLOEXEC) || pipe2(rep, O_CLOEXEC)) die("pipe: %s", strerror(errno));
        fflush(stdout);
        pid_t pid = fork();
        if (pid < 0) die("fork: %s", strerror(errno));
        if (pid == 0) {
            for (size_t k = 0; k < NCH; k++) close(CH[k].go), close(CH[k].report);
            close(go[1]);
            close(rep[0]);
            child_main(i + 1, go[0], rep[1], first, n);
        }
        close(go[0]);
        close(rep[1]);
        CH[NCH++] = (child_t){pid, go[1], rep[0], first, n};
        first += n;
    }
    return 0;
}

static void children_go(void) {
    for (size_t i = 0; i < NCH; i++)
        if (write(CH[i].go, "g", 1) != 1) die("child %d: %s", (int)CH[i].pid, strerror(errno));
}

/* Waits for every child's report (they open their shares while the parent opens its). */
static void children_collect(size_t *ok, size_t *fail) {
    for (size_t i = 0; i < NCH; i++) {
        char buf[64];
        ssize_t r = read(CH[i].report, buf, sizeof buf - 1);
        if (r <= 0) die("child %d reported nothing", (int)CH[i].pid);
        buf[r] = 0;
        size_t o = 0, f = 0;
        int at = 0;
        if (sscanf(buf, "%zu %zu %n", &o, &f, &at) != 2) die("child %d: bad report", (int)CH[i].pid);
        if (f && !B.first_connect_error[0])
            snprintf(B.first_connect_error, sizeof B.first_connect_error, "%.*s", (int)strcspn(buf + at, "\n"),
                     buf + at);
        *ok += o;
        *fail += f;
    }
}

static void children_stop(void) {
    for (size_t i = 0; i < NCH; i++) close(CH[i].go);
    for (size_t i = 0; i < NCH; i++) {
        waitpid(CH[i].pid, NULL, 0);
        close(CH[i].report);
    }
    NCH = 0;
}

static void rss_sample(long *out) {
    for (size_t i = 0; i < NP; i++) out[i] = P[i].pid ? proc_rss_kb(P[i].pid) : -1;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    parse_opts(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    raise_nofile(O.connections / O.procs + 1 + O.fanout + O.channel + O.concurrency + 64);

    B.loop = uv_default_loop();
    uv_signal_init(B.loop, &B.sigint);
    uv_signal_init(B.loop, &B.sigterm);
    uv_signal_start(&B.sigint, on_signal, SIGINT);
    uv_signal_start(&B.sigterm, on_signal, SIGTERM);

    if (O.spawn) {
        spawn_deployment();
    } else {
        if (O.pid) P[NP++] = (proc_t){.name = O.pid2 ? "worker" : "dsock", .pid = (pid_t)O.pid};
        if (O.pid2) P[NP++] = (proc_t){.name = "api", .pid = (pid_t)O.pid2};
    }
    if (parse_addr(O.api, &B.api_sa)) die("bad --api address \"%s\" (HOST:PORT)", O.api);
    if (parse_addr(O.worker, &B.worker_sa)) die("bad --worker address \"%s\" (HOST:PORT)", O.worker);
    if (O.worker2 && parse_addr(O.worker2, &B.worker2_sa))
        die("bad --worker2 address \"%s\" (HOST:PORT)", O.worker2);

    char run_id[9];
    random_hex(run_id, 4);
    snprintf(prefix, sizeof prefix, "bench%s-", run_id);
    next_tag = (uint32_t)strtoul(run_id, NULL, 16) & 0xffff0000u;

    printf("dsock-bench: %s%s, API %s, worker %s, users named %s*\n",
           O.spawn ? "spawned " : "running deployment", O.spawn ? O.spawn : "", O.api, O.worker, prefix);
    for (size_t i = 0; i < NP; i++) printf("  sampling %s pid %d\n", P[i].name, (int)P[i].pid);
    /* Other work on the machine skews every figure: say how busy it was. */
    double load1 = -1;
    FILE *lf = fopen("/proc/loadavg", "r");
    if (lf) {
        if (fscanf(lf, "%lf", &load1) != 1) load1 = -1;
        fclose(lf);
    }
    printf("  %ld CPUs online, 1-minute load average %.2f at start\n", sysconf(_SC_NPROCESSORS_ONLN), load1);

    uv_timer_init(B.loop, &B.tick);
    uv_timer_start(&B.tick, on_tick, 20, 20);
    /* Before any connection exists: the children inherit none. */
    size_t idle_share = O.procs > 1 ? children_start() : O.connections;

    /* API connections first: they are part of the baseline, not of the per-connection cost. */
    NA = O.concurrency;
    A = xcalloc(NA, sizeof *A);
    for (size_t i = 0; i < NA; i++) api_connect(&A[i]);
    run_until(api_all_ready, now_ns() + 10 * 1000000000ull);
    size_t api_up = 0;
    for (size_t i = 0; i < NA; i++) api_up += A[i].state == API_IDLE;
    if (!api_up) die("cannot open a connection to the API at %s: %s", O.api, B.first_api_error);

    size_t n_idle = O.connections, n_fan = O.run_fanout ? O.fanout : 0, n_big = O.run_large ? 1 : 0;
    size_t n_ch = O.run_channel ? O.channel : 0;
    B.ws_cap = n_idle + n_fan + n_big + n_ch;
    B.ws = xcalloc(B.ws_cap, sizeof *B.ws);
    size_t ch0 = n_idle + n_fan + n_big; /* the channel's members come last */
    for (size_t i = 0; i < n_ch; i++) {
        ws_conn_t *c = &B.ws[ch0 + i];
        snprintf(c->user, sizeof c->user, "%scu%zu", prefix, i % O.channel_users);
        c->joins = (uint8_t)O.channel_joins;
        c->worker2 = O.worker2 && i % 2;
    }
    for (size_t i = 0; i < n_idle; i++) snprintf(B.ws[i].user, sizeof B.ws[i].user, "%su%zu", prefix, i % O.users);
    for (size_t i = 0; i < n_fan; i++) snprintf(B.ws[n_idle + i].user, sizeof B.ws[0].user, "%sfan", prefix);
    if (n_big) snprintf(B.ws[n_idle + n_fan].user, sizeof B.ws[0].user, "%sbig", prefix);
    B.ws_used = B.ws_cap;

    int exit_code = 0;
    uint64_t lost_total = 0;
    char notes[1536], m1[32], m2[32], m3[32];
    size_t nl = 0;
    nl += (size_t)snprintf(notes + nl, sizeof notes - nl, "dsock-bench %s:", O.spawn ? O.spawn : "external");

    /* 1. idle memory and connect rate */
    long rss0[MAX_PROCS], rss1[MAX_PROCS];
    settle(300);
    rss_sample(rss0);
    printf("\n[1] idle connections: connections=%zu users=%zu (JWT HS256, %d handshakes in flight)\n",
           n_idle, O.users, CONNECT_WINDOW);
    cpu_mark();
    if (NCH) {
        printf("    opened by %zu bench processes (from 127.0.0.2 and up over loopback)\n", NCH);
        children_go();
    }
    uint64_t t_idle0 = now_ns();
    open_batch(0, idle_share);
    size_t idle_ok = B.batch_ok, idle_fail = B.batch_fail;
    children_collect(&idle_ok, &idle_fail);
    double t_conn = secs(now_ns() - t_idle0);
    printf("    opened %zu, failed %zu in %.2f s: %.0f connections/s\n", idle_ok, idle_fail, t_conn,
           t_conn > 0 ? (double)idle_ok / t_conn : 0);
    if (idle_fail) printf("    first connect error: %s\n", B.first_connect_error);
    cpu_print();
    settle(500); /* let the broker finish registering before its RSS is read */
    rss_sample(rss1);
    double per_conn = -1;
    for (size_t i = 0; i < NP; i++) {
        if (rss0[i] < 0 || rss1[i] < 0) continue;
        double pc = idle_ok ? (double)(rss1[i] - rss0[i]) * 1024.0 / (double)idle_ok : 0;
        printf("    %s VmRSS %.1f MiB -> %.1f MiB: %.0f bytes per connection\n", P[i].name,
               (double)rss0[i] / 1024, (double)rss1[i] / 1024, pc);
        if (!strcmp(P[i].name, "worker") || !strcmp(P[i].name, "dsock")) per_conn = pc;
    }
    if (O.reuse_port && O.workers > 1) { /* the connections are spread over the workers */
        long w0 = 0, w1 = 0;
        for (size_t i = 0; i < NP; i++)
            if (!strncmp(P[i].name, "worker", 6) && rss0[i] >= 0 && rss1[i] >= 0) w0 += rss0[i], w1 += rss1[i];
        per_conn = idle_ok ? (double)(w1 - w0) * 1024.0 / (double)idle_ok : 0;
        printf("    %zu workers VmRSS %.1f MiB -> %.1f MiB: %.0f bytes per connection\n", O.workers,
               (double)w0 / 1024, (double)w1 / 1024, per_conn);
    }
    if (!NP) printf("    memory: not sampled (give --pid)\n");
    char pcs[32] = "n/a";
    if (per_conn >= 0) snprintf(pcs, sizeof pcs, "%.0f", per_conn);
    nl += (size_t)snprintf(notes + nl, sizeof notes - nl, " idle N=%zu %s B/conn connect %.0f/s;",
                           idle_ok, pcs, t_conn > 0 ? (double)idle_ok / t_conn : 0);
    if (idle_fail) exit_code = 1;
    if (n_idle && !idle_ok) {
        printf("    no connection could be opened: skipping the other scenarios\n");
        n_fan = n_big = n_ch = 0;
        O.run_throughput = false;
    }

    /* 2. fan-out */
    if (n_fan && !B.interrupted) {
        double t = open_batch(n_idle, n_fan);
        size_t ok = B.batch_ok;
        printf("\n[2] fan-out: one user with K=%zu connections (%zu opened in %.2f s), %zu sends of %zu B, "
               "one at a time\n", n_fan, ok, t, O.fanout_sends, O.size);
        if (B.batch_fail) printf("    %zu connections failed: %s\n", B.batch_fail, B.first_connect_error), exit_code = 1;
        scenario_t s = {.name = "fanout", .total = O.fanout_sends, .window = 1, .size = O.size,
                        .api_conns = 1, .per_delivery = false, .target = target_fan};
        scenario_run(&s);
        double dps = rate(s.deliveries, s.t_start, s.t_last_delivery);
        printf("    %" PRIu64 " deliveries in %.2f s: %.0f deliveries/s (%.0f sends/s)\n", s.deliveries,
               span(s.t_start, s.t_last_delivery), dps, rate(s.completed, s.t_start, s.t_last_delivery));
        if (s.deliveries)
            printf("    on the wire: %.0f bytes per delivered %zu B message (%" PRIu64 " of %" PRIu64
                   " compressed)\n", (double)s.wire / (double)s.deliveries, O.size, s.compressed,
                   s.deliveries);
        printf("    latency, /send written -> last of K connections received: p50 %s, p99 %s, max %s\n",
               ms_str(&s.lat, 50, m1, sizeof m1), ms_str(&s.lat, 99, m2, sizeof m2),
               ms_str(&s.lat, 100, m3, sizeof m3));
        cpu_print_per(s.deliveries, "delivery");
        print_problems(&s);
        lost_total += s.lost;
        nl += (size_t)snprintf(notes + nl, sizeof notes - nl,
                               " fanout K=%zu %.0f deliv/s p50 %s p99 %s;", ok, dps,
                               ms_str(&s.lat, 50, m1, sizeof m1), ms_str(&s.lat, 99, m2, sizeof m2));
        if (s.issued != s.answered || s.zero || s.extra) exit_code = 1;
        scenario_end(&s);
    }

    /* 3. throughput */
    if (O.run_throughput && !B.interrupted && n_idle) {
        printf("\n[3] throughput: M=%zu sends of %zu B to %zu users (%zu connections), C=%zu keep-alive "
               "API connections, up to %zu undelivered sends\n",
               O.messages, O.size, O.users, idle_ok, O.concurrency, 4 * O.concurrency);
        scenario_t s = {.name = "throughput", .total = O.messages, .window = 4 * O.concurrency,
                        .size = O.size, .api_conns = O.concurrency, .per_delivery = true,
                        .target = target_users};
        open_loop_start(B.loop);
        redis_stats_t rs0;
        bool have_rs = redis_port && redis_stats(&rs0);
        scenario_run(&s);
        open_loop_stop();
        double rps = rate(s.answered, s.t_start, s.t_last_answer);
        double mps = rate(s.deliveries, s.t_start, s.t_last_delivery);
        printf("    %zu requests in %.2f s: %.0f API requests/s\n", s.answered,
               span(s.t_start, s.t_last_answer), rps);
        printf("    %" PRIu64 " messages delivered in %.2f s: %.0f messages/s\n", s.deliveries,
               span(s.t_start, s.t_last_delivery), mps);
        printf("    latency, /send written -> each connection received: p50 %s, p99 %s, max %s\n",
               ms_str(&s.lat, 50, m1, sizeof m1), ms_str(&s.lat, 99, m2, sizeof m2),
               ms_str(&s.lat, 100, m3, sizeof m3));
        open_loop_print(&s);
        cpu_print_per(s.answered, "send");
        if (have_rs) redis_stats_print(&rs0, s.answered);
        print_problems(&s);
        lost_total += s.lost;
        nl += (size_t)snprintf(notes + nl, sizeof notes - nl,
                               " throughput C=%zu %.0f req/s %.0f msg/s p50 %s p99 %s;",
                               O.concurrency, rps, mps, ms_str(&s.lat, 50, m1, sizeof m1),
                               ms_str(&s.lat, 99, m2, sizeof m2));
        if (s.issued != s.answered || s.zero || s.extra) exit_code = 1;
        scenario_end(&s);
    }

    /* 4. large messages */
    if (n_big && !B.interrupted) {
        open_batch(n_idle + n_fan, 1);
        if (B.batch_fail) printf("    large: connection failed: %s\n", B.first_connect_error), exit_code = 1;
        printf("\n[4] large messages: %zu messages of %zu B to one connection, 2 sends in flight\n",
               O.large_count, O.large_size);
        scenario_t s = {.name = "large", .total = O.large_count, .window = 2, .size = O.large_size,
                        .api_conns = 2, .per_delivery = true, .target = target_big};
        scenario_run(&s);
        double mbs = rate(s.bytes, s.t_start, s.t_last_delivery) / 1e6;
        printf("    %" PRIu64 " bytes received in %.2f s: %.1f MB/s (MB = 10^6 bytes)\n", s.bytes,
               span(s.t_start, s.t_last_delivery), mbs);
        printf("    latency, /send written -> received: p50 %s, p99 %s, max %s\n",
               ms_str(&s.lat, 50, m1, sizeof m1), ms_str(&s.lat, 99, m2, sizeof m2),
               ms_str(&s.lat, 100, m3, sizeof m3));
        cpu_print();
        print_problems(&s);
        lost_total += s.lost;
        nl += (size_t)snprintf(notes + nl, sizeof notes - nl, " large %zuB %.0f MB/s;", O.large_size, mbs);
        if (s.issued != s.answered || s.zero || s.extra) exit_code = 1;
        scenario_end(&s);
    }

    /* 5. channel */
    if (n_ch && !B.interrupted) {
        long r0[MAX_PROCS], r1[MAX_PROCS];
        settle(300);
        rss_sample(r0);
        double mem0 = redis_info("memory", "used_memory", NULL);
        double t = open_batch(ch0, n_ch);
        size_t ok = B.batch_ok;
        settle(500);
        rss_sample(r1);
        double mem1 = redis_info("memory", "used_memory", NULL);
        printf("\n[5] channel: one channel of N=%zu members (%zu opened in %.2f s) over M=%zu users%s, "
               "each in %zu channel(s); %zu sends of %zu B, 2 in flight\n",
               n_ch, ok, t, O.channel_users, O.worker2 ? " and 2 workers" : "", O.channel_joins,
               O.channel_sends, O.size);
        if (B.batch_fail) printf("    %zu connections failed: %s\n", B.batch_fail, B.first_connect_error), exit_code = 1;
        /* The members are spread over the workers: their growth together, per member. */
        long grown = 0;
        bool sampled = false;
        for (size_t i = 0; i < NP; i++) {
            if (r0[i] < 0 || r1[i] < 0 || !strcmp(P[i].name, "redis") || !strcmp(P[i].name, "api"))
                continue;
            printf("    %s VmRSS +%.1f MiB\n", P[i].name, (double)(r1[i] - r0[i]) / 1024);
            grown += r1[i] - r0[i];
            sampled = true;
        }
        if (sampled && ok)
            printf("    worker memory: %.0f bytes per member connection\n",
                   (double)grown * 1024.0 / (double)ok);
        if (mem0 >= 0 && mem1 >= 0 && ok)
            printf("    redis used_memory +%.1f MiB: %.0f bytes per member connection\n",
                   (mem1 - mem0) / 1048576, (mem1 - mem0) / (double)ok);
        double calls0 = redis_info("commandstats", "cmdstat_evalsha", "calls");
        double usec0 = redis_info("commandstats", "cmdstat_evalsha", "usec");
        double all0 = redis_calls_total();
        double rcpu0 = redis_cpu_seconds();
        scenario_t s = {.name = "channel", .total = O.channel_sends, .window = 2, .size = O.size,
                        .api_conns = 2, .per_delivery = false, .target = target_channel};
        scenario_run(&s);
        double calls1 = redis_info("commandstats", "cmdstat_evalsha", "calls");
        double usec1 = redis_info("commandstats", "cmdstat_evalsha", "usec");
        double all1 = redis_calls_total();
        double rcpu1 = redis_cpu_seconds();
        double dps = rate(s.deliveries, s.t_start, s.t_last_delivery);
        printf("    %" PRIu64 " deliveries in %.2f s: %.0f deliveries/s (%.0f sends/s)\n", s.deliveries,
               span(s.t_start, s.t_last_delivery), dps, rate(s.completed, s.t_start, s.t_last_delivery));
        printf("    latency, /send written -> last of N members received: p50 %s, p99 %s, max %s\n",
               ms_str(&s.lat, 50, m1, sizeof m1), ms_str(&s.lat, 99, m2, sizeof m2),
               ms_str(&s.lat, 100, m3, sizeof m3));
        char rt[64] = "";
        if (calls0 >= 0 && calls1 > calls0) {
            /* every EVALSHA meanwhile: the sends' deliver scripts, plus a few
             * heartbeats' sweeps and lastPing touches */
            printf("    redis EVALSHA during the sends: %.0f calls, %.1f us per call; %.1f Redis "
                   "commands per send (all commands, those inside scripts included, / sends)\n",
                   calls1 - calls0, (usec1 - usec0) / (calls1 - calls0),
                   s.issued ? (all1 - all0 - 5) / (double)s.issued : 0); /* 5 INFOs */
            snprintf(rt, sizeof rt, " redis %.1f us/EVALSHA", (usec1 - usec0) / (calls1 - calls0));
        }
        if (rcpu0 >= 0 && rcpu1 >= rcpu0 && s.issued)
            printf("    redis CPU during the sends (INFO cpu, user + sys): %.1f us per send "
                   "(time on a CPU, so not inflated by preemption; heartbeats included)\n",
                   (rcpu1 - rcpu0) * 1e6 / (double)s.issued);
        cpu_print();
        print_problems(&s);
        lost_total += s.lost;
        nl += (size_t)snprintf(notes + nl, sizeof notes - nl, " channel N=%zu %.0f deliv/s p50 %s%s;",
                               ok, dps, ms_str(&s.lat, 50, m1, sizeof m1), rt);
        if (s.issued != s.answered || s.zero || s.extra) exit_code = 1;
        scenario_end(&s);
    }

    /* Let stragglers arrive so `late` and closes are counted before the summary. */
    settle(200);
    size_t unexpected = B.ws_unexpected_close;
    printf("\nlost: %" PRIu64 "\n", lost_total);
    if (unexpected || B.ws_protocol_errors || B.late || B.foreign || B.api_errors)
        printf("other: %zu connections closed unexpectedly, %zu protocol errors, %" PRIu64
               " late and %" PRIu64 " foreign messages, %" PRIu64 " API errors\n",
               unexpected, B.ws_protocol_errors, B.late, B.foreign, B.api_errors);
    if (B.first_api_error[0]) printf("    first API error: %s\n", B.first_api_error);
    if (lost_total || unexpected || B.ws_protocol_errors || B.interrupted) exit_code = 1;
    snprintf(notes + nl, sizeof notes - nl, " lost %" PRIu64, lost_total);
    printf("%s\n", notes);

    /* Teardown: close every client socket, then stop what was spawned. */
    children_stop();
    B.closing = true;
    for (size_t i = 0; i < B.ws_used; i++) {
        ws_conn_t *c = &B.ws[i];
        if (c->state == WS_CLOSING) continue;
        if (c->tcp.loop) ws_close(c);
        else B.ws_closed_cbs++; /* never started */
    }
    for (size_t i = 0; i < NA; i++) {
        if (A[i].state != API_CLOSING) api_close(&A[i]);
    }
    B.interrupted = false;
    run_until(all_closed, now_ns() + 10 * 1000000000ull);
    uv_timer_stop(&B.tick);
    uv_close((uv_handle_t *)&B.tick, NULL);
    uv_close((uv_handle_t *)&B.sigint, NULL);
    uv_close((uv_handle_t *)&B.sigterm, NULL);
    uv_run(B.loop, UV_RUN_NOWAIT);

    bool clean = true;
    if (O.spawn) {
        for (size_t i = NP; i-- > 0;) clean = stop_proc(&P[i]) && clean;
        if (clean && !exit_code) remove_tmpdir();
        else fprintf(stderr, "dsock-bench: logs kept in %s\n", tmpdir);
    }
    if (!clean) exit_code = 1;
    for (size_t i = 0; i < NA; i++) {
        free(A[i].body);
        free(A[i].rbuf);
    }
    free(A);
    free(B.ws);
    return exit_code;
}
