/* Unit tests for the metrics registry and the Prometheus text writer
 * (ops/metrics.h): the exposition text of a hand-made snapshot (families, label
 * escaping, cumulative histogram buckets), the /proc parsers, errorCode
 * extraction, request ids, and per-thread shards summed by a scrape while their
 * threads count. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/metrics.h"

static char *render(const metrics_snapshot_t *s) {
    buf_t b = BUF_INIT;
    metrics_render(&b, s);
    return b.data; /* caller frees */
}

static bool has_line(const char *text, const char *line) {
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)); p++)
        if ((p == text || p[-1] == '\n') && (p[n] == '\n' || p[n] == '\0')) return true;
    return false;
}

Test(metrics, build_info_and_label_escaping) {
    metrics_snapshot_t *s = calloc(1, sizeof *s);
    s->id = (metrics_identity_t){"1.2.3", "ab\"c\\d\ne", "api", true, false, true};
    s->subscribed = -1;
    char *t = render(s);
    cr_assert(has_line(t, "# TYPE dsock_build_info gauge"), "%s", t);
    cr_assert(has_line(t, "dsock_build_info{version=\"1.2.3\",revision=\"ab\\\"c\\\\d\\ne\","
                          "role=\"api\"} 1"),
              "%s", t);
    /* api role: API families, no worker families, Redis families. */
    cr_assert(has_line(t, "dsock_api_messages_total 0"));
    cr_assert_null(strstr(t, "dsock_connections_opened_total"));
    cr_assert(has_line(t, "dsock_store_reconnects_total 0"));
    cr_assert_null(strstr(t, "dsock_store_resyncs_total")); /* a worker's */
    cr_assert_null(strstr(t, "dsock_store_subscribed"));
    cr_assert_null(strstr(t, "process_")); /* process.ok is false */
    free(t);
    free(s);
}

Test(metrics, worker_families_and_connections_gauge) {
    metrics_snapshot_t *s = calloc(1, sizeof *s);
    s->id = (metrics_identity_t){"v", "r", "worker", false, true, true};
    s->c.conns_opened = 10;
    s->c.conns_closed[METRICS_CLOSE_SLOW_CLIENT] = 3;
    s->c.conns_closed[METRICS_CLOSE_GONE] = 2;
    s->subscribed = 1;
    metrics_series_t e = {.kind = METRICS_SERIES_REFUSED, .code = "MISSING_CLAIM", .count = 4};
    metrics_series_merge(s, &e);
    metrics_series_merge(s, &e); /* an equal series adds up */
    char *t = render(s);
    cr_assert(has_line(t, "dsock_connections 5"), "%s", t);
    cr_assert(has_line(t, "dsock_connections_opened_total 10"));
    cr_assert(has_line(t, "dsock_connections_closed_total{reason=\"slow_client\"} 3"));
    cr_assert(has_line(t, "dsock_connections_closed_total{reason=\"client_close\"} 0"));
    cr_assert(has_line(t, "dsock_handshakes_refused_total{code=\"MISSING_CLAIM\"} 8"), "%s", t);
    cr_assert(has_line(t, "dsock_store_subscribed 1"));
    cr_assert(has_line(t, "dsock_store_resyncs_total 0"));
    cr_assert_null(strstr(t, "dsock_api_messages_total"));
    free(t);
    free(s);
}

Test(metrics, histogram_buckets_are_cumulative) {
    metrics_snapshot_t *s = calloc(1, sizeof *s);
    s->id = (metrics_identity_t){"v", "r", "standalone", true, true, false};
    metrics_hist_t *h = &s->c.api_duration[METRICS_EP_SEND];
    /* Observed through the writer, on this thread's shard, then copied. */
    metrics_hist_t local = {0};
    metrics_observe(&local, 100000);     /* 0.1 ms: first bucket */
    metrics_observe(&local, 500000);     /* exactly 0.5 ms: le="0.0005" (inclusive) */
    metrics_observe(&local, 3000000);    /* 3 ms: le="0.005" */
    metrics_observe(&local, 20000000000); /* 20 s: only +Inf */
    *h = local;
    char *t = render(s);
    const char *n = "dsock_api_request_duration_seconds";
    char line[200];
    snprintf(line, sizeof line, "%s_bucket{endpoint=\"send\",le=\"0.0005\"} 2", n);
    cr_assert(has_line(t, line), "%s", t);
    snprintf(line, sizeof line, "%s_bucket{endpoint=\"send\",le=\"0.0025\"} 2", n);
    cr_assert(has_line(t, line));
    snprintf(line, sizeof line, "%s_bucket{endpoint=\"send\",le=\"0.005\"} 3", n);
    cr_assert(has_line(t, line));
    snprintf(line, sizeof line, "%s_bucket{endpoint=\"send\",le=\"10\"} 3", n);
    cr_assert(has_line(t, line));
    snprintf(line, sizeof line, "%s_bucket{endpoint=\"send\",le=\"+Inf\"} 4", n);
    cr_assert(has_line(t, line));
    snprintf(line, sizeof line, "%s_count{endpoint=\"send\"} 4", n);
    cr_assert(has_line(t, line));
    snprintf(line, sizeof line, "%s_sum{endpoint=\"send\"} 20.0036", n);
    cr_assert(has_line(t, line), "%s", t);
    /* Endpoints without observations are left out. */
    cr_assert_null(strstr(t, "endpoint=\"claim\",le="));
    /* Each family is declared once. */
    const char *first = strstr(t, "# TYPE dsock_api_request_duration_seconds histogram");
    cr_assert_not_null(first);
    cr_assert_null(strstr(first + 1, "# TYPE dsock_api_request_duration_seconds "));
    free(t);
    free(s);
}

Test(metrics, request_series_and_gauges) {
    metrics_snapshot_t *s = calloc(1, sizeof *s);
    s->id = (metrics_identity_t){"v", "r", "api", true, false, true};
    metrics_series_t e = {.kind = METRICS_SERIES_REQUEST, .endpoint = METRICS_EP_SEND,
                          .status = 401, .code = "INVALID_AUTHORIZATION", .count = 2};
    metrics_series_merge(s, &e);
    s->gauges[s->ngauges++] = (metrics_gauge_value_t){"dsock_ready", "Ready.", 1};
    s->process = (metrics_process_t){.ok = true, .cpu_seconds = 1.5, .start_time_seconds = 1e9,
                                     .resident_bytes = 4096, .threads = 3};
    char *t = render(s);
    cr_assert(has_line(t, "dsock_api_requests_total{endpoint=\"send\",status=\"401\","
                          "code=\"INVALID_AUTHORIZATION\"} 2"),
              "%s", t);
    cr_assert(has_line(t, "# TYPE dsock_ready gauge"));
    cr_assert(has_line(t, "dsock_ready 1"));
    cr_assert(has_line(t, "process_cpu_seconds_total 1.5"));
    cr_assert(has_line(t, "process_start_time_seconds 1000000000"), "%s", t);
    cr_assert(has_line(t, "process_resident_memory_bytes 4096"));
    cr_assert(has_line(t, "dsock_threads 3"));
    free(t);
    free(s);
}

Test(metrics, endpoint_and_error_code) {
    cr_assert_eq(metrics_endpoint_of("/send"), METRICS_EP_SEND);
    cr_assert_eq(metrics_endpoint_of("/connect"), METRICS_EP_CONNECT);
    cr_assert_eq(metrics_endpoint_of("/metrics"), METRICS_EP_METRICS);
    cr_assert_eq(metrics_endpoint_of("/send/"), METRICS_EP_OTHER);
    cr_assert_eq(metrics_endpoint_of(NULL), METRICS_EP_OTHER);
    char code[METRICS_CODE_MAX];
    const char *body = "{\"success\":false,\"error\":\"x\",\"errorCode\":\"MISSING_CLAIM\"}";
    metrics_error_code_of(body, strlen(body), code, sizeof code);
    cr_assert_str_eq(code, "MISSING_CLAIM");
    metrics_error_code_of("{\"success\":true}", 16, code, sizeof code);
    cr_assert_str_eq(code, "");
    /* Cut at the buffer, and at the body's end (no closing quote). */
    metrics_error_code_of(body, strlen(body), code, 5);
    cr_assert_str_eq(code, "MISS");
    metrics_error_code_of(body, strlen(body) - 8, code, sizeof code);
    cr_assert_str_eq(code, "MISSING");
}

Test(metrics, proc_parsers) {
    metrics_process_t p = {0};
    /* comm holds a space and a parenthesis; fields from proc(5). */
    const char *stat =
        "4242 (ds ock) x) S 1 4242 4242 0 -1 4194560 500 0 0 0 250 150 0 0 20 0 7 0 "
        "1000 104857600 2560 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";
    cr_assert_eq(metrics_parse_proc_stat(stat, 100, 4096, 1700000000, &p), 0);
    cr_assert_float_eq(p.cpu_seconds, 4.0, 1e-9);
    cr_assert_eq(p.threads, 7);
    cr_assert_float_eq(p.start_time_seconds, 1700000010.0, 1e-6);
    cr_assert_eq(p.virtual_bytes, 104857600);
    cr_assert_eq(p.resident_bytes, 2560u * 4096u);
    cr_assert_eq(metrics_parse_proc_stat("4242 (x) S 1 2", 100, 4096, 0, &p), -1);
    cr_assert_eq(metrics_parse_proc_stat("no paren", 100, 4096, 0, &p), -1);

    uint64_t v = 0;
    cr_assert_eq(metrics_parse_btime("cpu  1 2 3\nintr 5 6\nbtime 1699999999\nprocesses 9\n", &v), 0);
    cr_assert_eq(v, 1699999999);
    cr_assert_eq(metrics_parse_btime("cpu 1\n", &v), -1);

    const char *limits = "Limit                     Soft Limit           Hard Limit           Units\n"
                         "Max processes             62720                62720                processes\n"
                         "Max open files            1024                 524288               files\n";
    cr_assert_eq(metrics_parse_max_fds(limits, &v), 0);
    cr_assert_eq(v, 1024);
    cr_assert_eq(metrics_parse_max_fds("Max open files            unlimited            unlimited  files\n", &v), 0);
    cr_assert_eq(v, UINT64_MAX);
    cr_assert_eq(metrics_parse_max_fds("nothing\n", &v), -1);
}

Test(metrics, request_ids) {
    char id[METRICS_REQID_MAX + 1];
    metrics_request_id("abc-123_x.y:z", 13, id);
    cr_assert_str_eq(id, "abc-123_x.y:z");
    /* Not reused: a space, a quote, a newline, too long, empty. */
    const char *bad[] = {"a b", "a\"b", "a\nb", ""};
    for (size_t i = 0; i < 4; i++) {
        metrics_request_id(bad[i], strlen(bad[i]), id);
        cr_assert_eq(strlen(id), 16, "%s", id);
        cr_assert(metrics_request_id_valid(id, 16));
    }
    char longid[METRICS_REQID_MAX + 2];
    memset(longid, 'a', sizeof longid - 1);
    longid[sizeof longid - 1] = '\0';
    cr_assert_not(metrics_request_id_valid(longid, strlen(longid)));
    cr_assert(metrics_request_id_valid(longid, METRICS_REQID_MAX));
    char a[METRICS_REQID_MAX + 1], b[METRICS_REQID_MAX + 1];
    metrics_request_id(NULL, 0, a);
    metrics_request_id(NULL, 0, b);
    cr_assert_str_neq(a, b);
}

/* Threads counting into their own shards while the main thread scrapes: the
 * sums never go down and end exact. */
#define PER_THREAD 200000
static void *count_thread(void *arg) {
    metrics_bind(arg);
    for (int i = 0; i < PER_THREAD; i++) {
        METRICS_INC(messages_written);
        METRICS_ADD(message_bytes_written, 3);
        if (i % 1000 == 0) metrics_http_answered(METRICS_EP_SEND, 200, "", 1000);
    }
    return NULL;
}

Test(metrics, shards_summed_while_threads_count) {
    metrics_snapshot_t *s = malloc(sizeof *s);
    metrics_collect(s);
    uint64_t base = s->c.messages_written, base_bytes = s->c.message_bytes_written;
    pthread_t t[3];
    for (int i = 0; i < 3; i++) {
        metrics_shard_t *sh = metrics_shard_new();
        cr_assert_not_null(sh);
        pthread_create(&t[i], NULL, count_thread, sh);
    }
    uint64_t last = base;
    for (int k = 0; k < 50; k++) {
        metrics_collect(s);
        cr_assert_geq(s->c.messages_written, last);
        last = s->c.messages_written;
    }
    for (int i = 0; i < 3; i++) pthread_join(t[i], NULL);
    metrics_collect(s);
    cr_assert_eq(s->c.messages_written - base, 3u * PER_THREAD);
    cr_assert_eq(s->c.message_bytes_written - base_bytes, 9u * PER_THREAD);
    uint64_t sends = 0;
    for (size_t i = 0; i < s->nseries; i++)
        if (s->series[i].kind == METRICS_SERIES_REQUEST && s->series[i].endpoint == METRICS_EP_SEND)
            sends += s->series[i].count;
    cr_assert_eq(sends, 3u * (PER_THREAD / 1000));
    cr_assert(s->process.ok);
    cr_assert_geq(s->process.threads, 1);
    cr_assert_gt(s->process.resident_bytes, 0);
    free(s);
}
