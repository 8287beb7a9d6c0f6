/* Unit tests for `dsock healthcheck`'s I/O-free parts (ops/healthcheck.h): the URL
 * parser, the default URL derived from DSOCK_ADDRESS / PORT, and the status line. */
#include <criterion/criterion.h>
#include <string.h>

#include "ops/healthcheck.h"

static healthcheck_target_t parse_ok(const char *url) {
    healthcheck_target_t t;
    char err[128] = "";
    cr_assert_eq(healthcheck_parse_url(url, &t, err, sizeof err), 0, "%s: %s", url, err);
    return t;
}

Test(healthcheck_url, forms) {
    healthcheck_target_t t = parse_ok("http://127.0.0.1:6241/healthz");
    cr_assert_str_eq(t.host, "127.0.0.1");
    cr_assert_str_eq(t.port, "6241");
    cr_assert_str_eq(t.path, "/healthz");
    t = parse_ok("http://localhost");
    cr_assert_str_eq(t.host, "localhost");
    cr_assert_str_eq(t.port, "80");
    cr_assert_str_eq(t.path, "/");
    t = parse_ok("http://[::1]:8080/readyz?x=1#frag");
    cr_assert_str_eq(t.host, "::1");
    cr_assert_str_eq(t.port, "8080");
    cr_assert_str_eq(t.path, "/readyz?x=1");
    t = parse_ok("http://h:1?q");
    cr_assert_str_eq(t.path, "/?q");
    t = parse_ok("http://[fe80::1]");
    cr_assert_str_eq(t.host, "fe80::1");
    cr_assert_str_eq(t.port, "80");
    t = parse_ok("http://h:65535#x");
    cr_assert_str_eq(t.port, "65535");
    cr_assert_str_eq(t.path, "/");
}

Test(healthcheck_url, refused) {
    static const char *bad[] = {
        "https://h/healthz", "h:6241/healthz", "http://", "http://:80/", "http://h:/",
        "http://h:0/", "http://h:65536/", "http://h:123456/", "http://h:12a/", "http://u@h/",
        "http://[::1/", "http://[::1]x/", "http://h /", "http://h/\x01", "http://h/\xc3\xa9", "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        healthcheck_target_t t;
        char err[128] = "";
        cr_assert_eq(healthcheck_parse_url(bad[i], &t, err, sizeof err), -1, "%s", bad[i]);
        cr_assert(err[0], "a reason for %s", bad[i]);
    }
}

Test(healthcheck_url, long_path_refused_not_truncated) {
    char url[3000] = "http://h/";
    memset(url + 9, 'a', 2000);
    url[2009] = '\0';
    healthcheck_target_t t;
    char err[128];
    cr_assert_eq(healthcheck_parse_url(url, &t, err, sizeof err), -1);
}

static void default_is(const char *address, const char *port, const char *want) {
    char out[300];
    healthcheck_default_url(address, port, out, sizeof out);
    cr_assert_str_eq(out, want, "address=%s port=%s", address ? address : "(unset)",
                     port ? port : "(unset)");
}

Test(healthcheck_url, default_follows_dsock_address_rules) {
    default_is(NULL, NULL, "http://127.0.0.1:6241/healthz");
    default_is(NULL, "8080", "http://127.0.0.1:8080/healthz");
    default_is("", "8080", "http://127.0.0.1:8080/healthz"); /* empty address: :$PORT */
    default_is(":7000", "8080", "http://127.0.0.1:7000/healthz"); /* DSOCK_ADDRESS wins */
    default_is("0.0.0.0:7000", NULL, "http://127.0.0.1:7000/healthz");
    default_is("[::]:7000", NULL, "http://127.0.0.1:7000/healthz");
    default_is("10.1.2.3:7000", NULL, "http://10.1.2.3:7000/healthz");
    default_is("[::1]:7000", NULL, "http://[::1]:7000/healthz");
    default_is(NULL, "junk", "http://127.0.0.1:6241/healthz");
    default_is(NULL, "0", "http://127.0.0.1:6241/healthz");
}

Test(healthcheck_status, lines) {
    cr_assert_eq(healthcheck_status("HTTP/1.1 200 OK\r\n", 17), 200);
    cr_assert_eq(healthcheck_status("HTTP/1.0 503 Service Unavailable\r\n\r\n", 36), 503);
    cr_assert_eq(healthcheck_status("HTTP/1.1 204\r\n", 14), 204);
    cr_assert_eq(healthcheck_status("HTTP/1.1 200 OK", 15), -1);      /* no line end yet */
    cr_assert_eq(healthcheck_status("HTTP/2 200 OK\r\n", 15), -1);
    cr_assert_eq(healthcheck_status("HTTP/1.1 20 OK\r\n", 16), -1);
    cr_assert_eq(healthcheck_status("HTTP/1.1 2000 OK\r\n", 18), -1);
    cr_assert_eq(healthcheck_status("SSH-2.0-OpenSSH\r\n", 17), -1);
    cr_assert_eq(healthcheck_status("HTTP/1.1 099 x\r\n", 16), -1);
    /* Fed byte by byte: no status until the line is complete. */
    const char *s = "HTTP/1.1 200 OK\r\n";
    for (size_t n = 0; n < strlen(s); n++) cr_assert_eq(healthcheck_status(s, n), -1, "%zu", n);
}
