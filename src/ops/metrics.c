/* Metrics registry and Prometheus text writer (docs/metrics.md). The writing side
 * is per thread and lock-free (see metrics.h); the reading side sums the shards
 * and writes the exposition text, I/O-free, from a snapshot. */
#include "ops/metrics.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "common/rand.h"

const double metrics_bucket_bounds[METRICS_BUCKETS] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
static const uint64_t bounds_ns[METRICS_BUCKETS] = {
    500000,    1000000,   2500000,   5000000,    10000000,   25000000,   50000000,
    100000000, 250000000, 500000000, 1000000000, 2500000000, 5000000000, 10000000000};

_Static_assert(sizeof(metrics_counts_t) % sizeof(uint64_t) == 0, "counts are uint64_t only");

static metrics_shard_t shards[METRICS_MAX_SHARDS];
static size_t nshards = 1; /* shards[0]: threads never bound (main, tests) */
_Thread_local metrics_shard_t *metrics_self = &shards[0];

static struct {
    const char *name, *help;
    metrics_gauge_fn fn;
    void *ud;
} gauges[METRICS_MAX_GAUGES];
static size_t ngauges;
static metrics_identity_t identity = {"", "", "", false, false, false};
static void (*sizes_fn)(void *ud, uint64_t *claims, uint64_t *records);
static void *sizes_ud;
static double start_time; /* process_start_time_seconds, read once */

/* ---- writing ------------------------------------------------------------- */

uint64_t metrics_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void metrics_observe(metrics_hist_t *h, uint64_t ns) {
    size_t i = 0;
    while (i < METRICS_BUCKETS && ns > bounds_ns[i]) i++;
    metrics_add_(&h->counts[i], 1);
    metrics_add_(&h->sum_ns, ns);
}

static void series_add(metrics_series_kind_t kind, metrics_endpoint_t ep, int status,
                       const char *code) {
    metrics_shard_t *s = metrics_self;
    char c[METRICS_CODE_MAX];
    snprintf(c, sizeof c, "%s", code ? code : "");
    size_t n = s->nseries; /* only this thread writes it */
    for (size_t i = 0; i < n; i++) {
        metrics_series_t *e = &s->series[i];
        if (e->kind == kind && e->endpoint == ep && e->status == status && !strcmp(e->code, c)) {
            metrics_add_(&e->count, 1);
            return;
        }
    }
    if (n == METRICS_SERIES_MAX) return; /* beyond any real vocabulary: not counted */
    metrics_series_t *e = &s->series[n];
    e->kind = (uint8_t)kind;
    e->endpoint = (uint8_t)ep;
    e->status = (uint16_t)status;
    memcpy(e->code, c, sizeof c);
    __atomic_store_n(&e->count, 1, __ATOMIC_RELAXED);
    /* Publishes the entry: a reader that sees n + 1 sees its labels. */
    __atomic_store_n(&s->nseries, n + 1, __ATOMIC_RELEASE);
}

void metrics_http_answered(metrics_endpoint_t ep, int status, const char *code, uint64_t ns) {
    series_add(METRICS_SERIES_REQUEST, ep, status, code);
    metrics_observe_api(ep, ns);
    if (ep == METRICS_EP_CONNECT && status >= 400)
        series_add(METRICS_SERIES_REFUSED, METRICS_EP_CONNECT, 0, code);
}

static const char *const endpoint_names[METRICS_ENDPOINTS] = {
    "claim", "send", "disconnect", "info", "connect", "metrics", "channel", "other"};

metrics_endpoint_t metrics_endpoint_of(const char *path) {
    if (!path) return METRICS_EP_OTHER;
    static const char *const paths[] = {"/claim", "/send", "/disconnect", "/info", "/connect",
                                        "/metrics"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++)
        if (!strcmp(path, paths[i])) return (metrics_endpoint_t)i;
    if (!strncmp(path, "/channel/subscribe/", 19) || !strncmp(path, "/channel/unsubscribe/", 21))
        return METRICS_EP_CHANNEL;
    return METRICS_EP_OTHER;
}

const char *metrics_endpoint_name(metrics_endpoint_t ep) {
    return ep < METRICS_ENDPOINTS ? endpoint_names[ep] : "other";
}

void metrics_error_code_of(const char *body, size_t len, char *out, size_t cap) {
    static const char key[] = "\"errorCode\":\"";
    out[0] = '\0';
    if (!body || cap == 0) return;
    const char *p = memmem(body, len, key, sizeof key - 1);
    if (!p) return;
    p += sizeof key - 1;
    const char *end = body + len;
    size_t n = 0;
    /* Codes are [A-Z0-9_]; anything else ends it (an escape never starts one). */
    while (p < end && *p != '"' && *p != '\\' && n + 1 < cap) out[n++] = *p++;
    out[n] = '\0';
}

void metrics_set_subscribed(int v) {
    __atomic_store_n(&metrics_self->subscribed, (int64_t)v, __ATOMIC_RELAXED);
}

/* ---- shards and registration ------------------------------------------- */

metrics_shard_t *metrics_shard_new(void) {
    if (nshards == METRICS_MAX_SHARDS) return NULL;
    metrics_shard_t *s = &shards[nshards++];
    s->subscribed = -1;
    return s;
}

void metrics_bind(metrics_shard_t *s) {
    if (s) metrics_self = s;
}

int metrics_gauge_register(const char *name, const char *help, metrics_gauge_fn fn, void *ud) {
    if (ngauges == METRICS_MAX_GAUGES) return -1;
    gauges[ngauges].name = name;
    gauges[ngauges].help = help;
    gauges[ngauges].fn = fn;
    gauges[ngauges].ud = ud;
    ngauges++;
    return 0;
}

static int read_file(const char *path, char *buf, size_t cap) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    size_t n = 0;
    while (n + 1 < cap) {
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r <= 0) break;
        n += (size_t)r;
    }
    close(fd);
    buf[n] = '\0';
    return n ? 0 : -1;
}

/* The boot time line of /proc/stat comes after one line per CPU and the long
 * interrupt line: read the file in pieces, keeping the last partial line. */
static int read_btime(uint64_t *out) {
    FILE *f = fopen("/proc/stat", "re");
    if (!f) return -1;
    char line[256];
    int rc = -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "btime ", 6) && metrics_parse_btime(line, out) == 0) {
            rc = 0;
            break;
        }
    fclose(f);
    return rc;
}

void metrics_set_identity(const metrics_identity_t *id) {
    identity = *id;
    uint64_t btime;
    char stat[1024];
    metrics_process_t p;
    if (read_btime(&btime) == 0 && read_file("/proc/self/stat", stat, sizeof stat) == 0 &&
        metrics_parse_proc_stat(stat, sysconf(_SC_CLK_TCK), sysconf(_SC_PAGESIZE), btime, &p) == 0)
        start_time = p.start_time_seconds;
}

void metrics_set_store_sizes(void (*fn)(void *ud, uint64_t *claims, uint64_t *records),
                             void *ud) {
    sizes_fn = fn;
    sizes_ud = ud;
}

/* ---- reading ------------------------------------------------------------- */

void metrics_series_merge(metrics_snapshot_t *s, const metrics_series_t *e) {
    for (size_t i = 0; i < s->nseries; i++) {
        metrics_series_t *m = &s->series[i];
        if (m->kind == e->kind && m->endpoint == e->endpoint && m->status == e->status &&
            !strcmp(m->code, e->code)) {
            m->count += e->count;
            return;
        }
    }
    if (s->nseries < sizeof s->series / sizeof s->series[0]) s->series[s->nseries++] = *e;
}

static void read_process(metrics_process_t *p) {
    char stat[1024];
    memset(p, 0, sizeof *p);
    if (read_file("/proc/self/stat", stat, sizeof stat) ||
        metrics_parse_proc_stat(stat, sysconf(_SC_CLK_TCK), sysconf(_SC_PAGESIZE), 0, p))
        return;
    p->start_time_seconds = start_time;
    char limits[4096];
    if (read_file("/proc/self/limits", limits, sizeof limits) ||
        metrics_parse_max_fds(limits, &p->max_fds)) {
        struct rlimit rl;
        p->max_fds = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? (uint64_t)rl.rlim_cur : 0;
    }
    DIR *d = opendir("/proc/self/fd");
    if (!d) return;
    uint64_t n = 0;
    for (struct dirent *de; (de = readdir(d));)
        if (de->d_name[0] != '.') n++;
    closedir(d);
    p->open_fds = n ? n - 1 : 0; /* without the one opendir holds */
    p->ok = true;
}

void metrics_collect(metrics_snapshot_t *out) {
    memset(out, 0, sizeof *out);
    out->id = identity;
    out->subscribed = -1;
    uint64_t *dst = (uint64_t *)&out->c;
    const size_t words = sizeof out->c / sizeof(uint64_t);
    for (size_t i = 0; i < nshards; i++) {
        metrics_shard_t *sh = &shards[i];
        const uint64_t *src = (const uint64_t *)&sh->c;
        for (size_t k = 0; k < words; k++) dst[k] += __atomic_load_n(&src[k], __ATOMIC_RELAXED);
        int64_t sub = i ? __atomic_load_n(&sh->subscribed, __ATOMIC_RELAXED) : -1;
        if (sub >= 0) out->subscribed = out->subscribed < 0 || sub < out->subscribed ? sub
                                                                                    : out->subscribed;
        size_t n = __atomic_load_n(&sh->nseries, __ATOMIC_ACQUIRE);
        for (size_t j = 0; j < n; j++) {
            metrics_series_t e = {0};
            e.kind = sh->series[j].kind;
            e.endpoint = sh->series[j].endpoint;
            e.status = sh->series[j].status;
            memcpy(e.code, sh->series[j].code, sizeof e.code);
            e.count = __atomic_load_n(&sh->series[j].count, __ATOMIC_RELAXED);
            metrics_series_merge(out, &e);
        }
    }
    if (sizes_fn) {
        out->has_store_sizes = true;
        sizes_fn(sizes_ud, &out->store_claims, &out->store_records);
    }
    for (size_t i = 0; i < ngauges; i++)
        out->gauges[out->ngauges++] =
            (metrics_gauge_value_t){gauges[i].name, gauges[i].help, gauges[i].fn(gauges[i].ud)};
    read_process(&out->process);
}

/* ---- the exposition text ----------------------------------------------- */

static void label_value(buf_t *b, const char *s) {
    for (; *s; s++) {
        if (*s == '\\') buf_append(b, "\\\\", 2);
        else if (*s == '"') buf_append(b, "\\\"", 2);
        else if (*s == '\n') buf_append(b, "\\n", 2);
        else buf_append(b, s, 1);
    }
}

static void family(buf_t *b, const char *name, const char *type, const char *help) {
    buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void sample_u(buf_t *b, const char *name, uint64_t v) {
    buf_printf(b, "%s %llu\n", name, (unsigned long long)v);
}

/* A family of one unlabelled sample: its HELP and TYPE lines, then the value. */
static void single_u(buf_t *b, const char *name, const char *type, const char *help, uint64_t v) {
    family(b, name, type, help);
    sample_u(b, name, v);
}

/* A float as Prometheus reads it (Go's ParseFloat): shortest round-trip form. */
static void fmt_double(char *out, size_t cap, double v) {
    if (v == (double)(int64_t)v && v < 9007199254740992.0 && v > -9007199254740992.0) {
        snprintf(out, cap, "%lld", (long long)v); /* integers in full, not 1e+09 */
        return;
    }
    for (int prec = 6; prec <= 17; prec++) {
        snprintf(out, cap, "%.*g", prec, v);
        if (strtod(out, NULL) == v) return;
    }
}

static void sample_d(buf_t *b, const char *name, double v) {
    char num[40];
    fmt_double(num, sizeof num, v);
    buf_printf(b, "%s %s\n", name, num);
}

static void labelled_u(buf_t *b, const char *name, const char *label, const char *value,
                       uint64_t v) {
    buf_printf(b, "%s{%s=\"", name, label);
    label_value(b, value);
    buf_printf(b, "\"} %llu\n", (unsigned long long)v);
}

static uint64_t hist_count(const metrics_hist_t *h) {
    uint64_t n = 0;
    for (size_t i = 0; i <= METRICS_BUCKETS; i++) n += h->counts[i];
    return n;
}

/* One labelled histogram series: cumulative buckets, +Inf, _sum, _count. */
static void histogram(buf_t *b, const char *name, const char *label, const char *value,
                      const metrics_hist_t *h) {
    uint64_t cum = 0;
    char le[40];
    for (size_t i = 0; i <= METRICS_BUCKETS; i++) {
        cum += h->counts[i];
        if (i < METRICS_BUCKETS) fmt_double(le, sizeof le, metrics_bucket_bounds[i]);
        else snprintf(le, sizeof le, "+Inf");
        buf_printf(b, "%s_bucket{%s=\"", name, label);
        label_value(b, value);
        buf_printf(b, "\",le=\"%s\"} %llu\n", le, (unsigned long long)cum);
    }
    char sum[40];
    fmt_double(sum, sizeof sum, (double)h->sum_ns / 1e9);
    buf_printf(b, "%s_sum{%s=\"", name, label);
    label_value(b, value);
    buf_printf(b, "\"} %s\n%s_count{%s=\"", sum, name, label);
    label_value(b, value);
    buf_printf(b, "\"} %llu\n", (unsigned long long)cum);
}

static const char *const close_names[METRICS_CLOSE_REASONS] = {
    "client_close", "server_close", "disconnect_api", "slow_client",
    "ping_timeout", "protocol_error", "shutdown", "gone"};
static const char *const drop_names[METRICS_DROP_REASONS] = {
    "slow_client", "invalid_bus_message", "connection_closing"};
static const char *const op_names[METRICS_STORE_OPS] = {
    "claim_create", "claim_take", "send", "disconnect",
    "info", "conn_register", "conn_unregister", "conn_touch", "subscribe",
    "channel_apply"};
static const char *const error_names[METRICS_STORE_ERROR_KINDS] = {"error", "timeout"};

void metrics_render(buf_t *b, const metrics_snapshot_t *s) {
    const metrics_counts_t *c = &s->c;
    const metrics_identity_t *id = &s->id;

    family(b, "dsock_build_info", "gauge", "dsock version, revision and role (always 1).");
    buf_append_str(b, "dsock_build_info{version=\"");
    label_value(b, id->version ? id->version : "");
    buf_append_str(b, "\",revision=\"");
    label_value(b, id->revision ? id->revision : "");
    buf_append_str(b, "\",role=\"");
    label_value(b, id->role ? id->role : "");
    buf_append_str(b, "\"} 1\n");

    if (id->worker) {
        uint64_t closed = 0;
        for (size_t i = 0; i < METRICS_CLOSE_REASONS; i++) closed += c->conns_closed[i];
        single_u(b, "dsock_connections", "gauge", "Open WebSocket connections.",
                 c->conns_opened > closed ? c->conns_opened - closed : 0);
        single_u(b, "dsock_connections_opened_total", "counter",
                 "WebSocket connections opened (101 sent).",
                 c->conns_opened);
        family(b, "dsock_connections_closed_total", "counter",
               "WebSocket connections closed, by reason.");
        for (size_t i = 0; i < METRICS_CLOSE_REASONS; i++)
            labelled_u(b, "dsock_connections_closed_total", "reason", close_names[i],
                       c->conns_closed[i]);
        family(b, "dsock_handshakes_refused_total", "counter",
               "Refused /connect requests, by errorCode.");
        for (size_t i = 0; i < s->nseries; i++)
            if (s->series[i].kind == METRICS_SERIES_REFUSED)
                labelled_u(b, "dsock_handshakes_refused_total", "code", s->series[i].code,
                           s->series[i].count);
        single_u(b, "dsock_messages_written_total", "counter",
                 "Data messages handed to client connections (written or queued).",
                 c->messages_written);
        single_u(b, "dsock_message_bytes_written_total", "counter",
                 "Payload bytes of the data messages handed to client connections.",
                 c->message_bytes_written);
        single_u(b, "dsock_messages_compressed_total", "counter",
                 "Messages compressed for permessage-deflate clients: once per message, window and "
                 "loop thread, however many clients receive it.",
                 c->messages_compressed);
        family(b, "dsock_deliveries_dropped_total", "counter",
               "Messages for a connection that did not reach it, by reason.");
        for (size_t i = 0; i < METRICS_DROP_REASONS; i++)
            labelled_u(b, "dsock_deliveries_dropped_total", "reason", drop_names[i],
                       c->dropped[i]);
    }
    if (id->api) {
        single_u(b, "dsock_api_messages_total", "counter", "Messages accepted by POST /send.",
                 c->api_messages);
        single_u(b, "dsock_api_message_bytes_total", "counter",
                 "Body bytes of the messages accepted by POST /send.",
                 c->api_message_bytes);
        single_u(b, "dsock_api_idempotent_replays_total", "counter",
                 "Requests answered from an earlier request with the same Idempotency-Key.",
                 c->api_idem_replays);
        single_u(b, "dsock_store_idempotency_evicted_total", "counter",
                 "Idempotency-Keys the memory store forgot before their TTL because it was full.",
                 c->idem_evicted);
    }

    family(b, "dsock_api_requests_total", "counter",
           "HTTP requests answered, by endpoint, status and errorCode.");
    for (size_t i = 0; i < s->nseries; i++) {
        const metrics_series_t *e = &s->series[i];
        if (e->kind != METRICS_SERIES_REQUEST) continue;
        buf_printf(b, "dsock_api_requests_total{endpoint=\"%s\",status=\"%u\",code=\"",
                   metrics_endpoint_name((metrics_endpoint_t)e->endpoint), (unsigned)e->status);
        label_value(b, e->code);
        buf_printf(b, "\"} %llu\n", (unsigned long long)e->count);
    }
    family(b, "dsock_api_request_duration_seconds", "histogram",
           "Time from a request's first byte to its answer, by endpoint.");
    for (size_t i = 0; i < METRICS_ENDPOINTS; i++)
        if (hist_count(&c->api_duration[i]))
            histogram(b, "dsock_api_request_duration_seconds", "endpoint", endpoint_names[i],
                      &c->api_duration[i]);

    family(b, "dsock_store_operation_duration_seconds", "histogram",
           "Store operations, from the call to the answer, by operation.");
    for (size_t i = 0; i < METRICS_STORE_OPS; i++)
        if (hist_count(&c->store_duration[i]))
            histogram(b, "dsock_store_operation_duration_seconds", "op", op_names[i],
                      &c->store_duration[i]);
    family(b, "dsock_store_errors_total", "counter", "Failed store operations, by kind.");
    for (size_t i = 0; i < METRICS_STORE_ERROR_KINDS; i++)
        labelled_u(b, "dsock_store_errors_total", "kind", error_names[i], c->store_errors[i]);
    if (id->redis) {
        single_u(b, "dsock_store_reconnects_total", "counter",
                 "Redis connections ready again after being lost.",
                 c->store_reconnects);
        single_u(b, "dsock_store_primary_changes_total", "counter",
                 "Redis Sentinel: times a new primary address was learnt (0 without Sentinel).",
                 c->store_primary_changes);
        single_u(b, "dsock_store_not_primary_total", "counter",
                 "Redis Sentinel: connections dropped because the server was not the primary "
                 "(ROLE, READONLY).",
                 c->store_not_primary);
    }
    if (id->redis && id->worker) {
        single_u(b, "dsock_store_resyncs_total", "counter",
                 "Times this worker registered its connections again after Redis lost them.",
                 c->store_resyncs);
    }
    if (s->subscribed >= 0) {
        single_u(b, "dsock_store_subscribed", "gauge",
                 "1 when the worker's Redis subscription is up, else 0.",
                 (uint64_t)s->subscribed);
    }
    if (s->has_store_sizes) {
        single_u(b, "dsock_store_claims", "gauge", "Claims held by the memory store.",
                 s->store_claims);
        single_u(b, "dsock_store_connection_records", "gauge",
                 "Connection records held by the memory store.",
                 s->store_records);
    }
    for (size_t i = 0; i < s->ngauges; i++) {
        family(b, s->gauges[i].name, "gauge", s->gauges[i].help);
        sample_d(b, s->gauges[i].name, s->gauges[i].value);
    }

    const metrics_process_t *p = &s->process;
    if (p->ok) {
        family(b, "process_cpu_seconds_total", "counter", "User and system CPU time, in seconds.");
        sample_d(b, "process_cpu_seconds_total", p->cpu_seconds);
        single_u(b, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
                 p->resident_bytes);
        single_u(b, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.",
                 p->virtual_bytes);
        single_u(b, "process_open_fds", "gauge", "Open file descriptors.",
                 p->open_fds);
        single_u(b, "process_max_fds", "gauge", "Maximum number of open file descriptors.",
                 p->max_fds);
        if (p->start_time_seconds > 0) {
            family(b, "process_start_time_seconds", "gauge",
                   "Start time of the process since the Unix epoch, in seconds.");
            sample_d(b, "process_start_time_seconds", p->start_time_seconds);
        }
        single_u(b, "dsock_threads", "gauge", "Threads of the process.",
                 p->threads);
    }
}

/* ---- /proc parsers --------------------------------------------------------- */

int metrics_parse_proc_stat(const char *text, long clk_tck, long page, uint64_t boot_time,
                            metrics_process_t *out) {
    /* "pid (comm) state ppid ...": comm may hold spaces and parentheses. */
    const char *p = strrchr(text, ')');
    if (!p || clk_tck <= 0 || page <= 0) return -1;
    p++;
    unsigned long long f[24] = {0}; /* f[k]: field k+1 of proc(5), from field 3 on */
    int k = 2;
    while (*p && k < 24) {
        while (*p == ' ') p++;
        if (!*p || *p == '\n') break;
        char *end;
        if (k == 2) { /* state: a letter */
            end = (char *)p;
            while (*end && *end != ' ') end++;
        } else { /* a few fields (priority, nice) may be negative: kept as 0 */
            long long v = strtoll(p, &end, 10);
            if (end == p) return -1;
            f[k] = v < 0 ? 0 : (unsigned long long)v;
        }
        p = end;
        k++;
    }
    if (k < 24) return -1;
    /* proc(5) numbering: utime 14, stime 15, num_threads 20, starttime 22, vsize 23,
     * rss 24 (pages). */
    out->cpu_seconds = (double)(f[13] + f[14]) / (double)clk_tck;
    out->threads = f[19];
    out->start_time_seconds = (double)boot_time + (double)f[21] / (double)clk_tck;
    out->virtual_bytes = f[22];
    out->resident_bytes = f[23] * (unsigned long long)page;
    return 0;
}

int metrics_parse_btime(const char *text, uint64_t *out) {
    const char *p = strstr(text, "btime ");
    if (!p || (p != text && p[-1] != '\n')) return -1;
    char *end;
    unsigned long long v = strtoull(p + 6, &end, 10);
    if (end == p + 6) return -1;
    *out = v;
    return 0;
}

int metrics_parse_max_fds(const char *text, uint64_t *out) {
    /* "Max open files            1024                 524288               files" */
    const char *p = strstr(text, "Max open files");
    if (!p) return -1;
    p += 14;
    while (*p == ' ') p++;
    if (!strncmp(p, "unlimited", 9)) {
        *out = UINT64_MAX;
        return 0;
    }
    char *end;
    unsigned long long v = strtoull(p, &end, 10);
    if (end == p) return -1;
    *out = v;
    return 0;
}

/* ---- request ids ------------------------------------------------------------ */

bool metrics_request_id_valid(const char *s, size_t len) {
    if (!s || len == 0 || len > METRICS_REQID_MAX) return false;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                  ch == '-' || ch == '_' || ch == '.' || ch == ':';
        if (!ok) return false;
    }
    return true;
}

/* A per-thread generator seeded once from getrandom: ids only need to be unique
 * enough to find a request in the logs, not unguessable, and this keeps a system
 * call off every request. splitmix64 over a random start. */
static _Thread_local uint64_t reqid_state;
static _Thread_local bool reqid_seeded;

void metrics_request_id(const char *given, size_t given_len, char *out) {
    if (metrics_request_id_valid(given, given_len)) {
        memcpy(out, given, given_len);
        out[given_len] = '\0';
        return;
    }
    if (!reqid_seeded) {
        rand_bytes(&reqid_state, sizeof reqid_state);
        reqid_seeded = true;
    }
    uint64_t z = (reqid_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    snprintf(out, METRICS_REQID_MAX + 1, "%016llx", (unsigned long long)z);
}
