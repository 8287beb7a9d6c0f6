/* Redis Sentinel: the +switch-master event parser (the rest is I/O, tested by
 * tests/integration/test_sentinel.py with real sentinels). */
#include <criterion/criterion.h>
#include <string.h>

#include "store/redis_sentinel.h"

static int parse(const char *msg, const char *name, char *host, int *port) {
    return redis_sentinel_parse_switch(msg, strlen(msg), name, host, 256, port);
}

Test(sentinel, switch_master_for_our_name) {
    char host[256];
    int port = 0;
    cr_assert_eq(parse("mymaster 127.0.0.1 6379 127.0.0.1 6380", "mymaster", host, &port), 0);
    cr_expect_str_eq(host, "127.0.0.1");
    cr_expect_eq(port, 6380);
    cr_assert_eq(parse("m 10.0.0.1 1 ::1 65535", "m", host, &port), 0);
    cr_expect_str_eq(host, "::1");
    cr_expect_eq(port, 65535);
}

Test(sentinel, switch_master_refused) {
    char host[256] = "unchanged";
    int port = 7;
    const char *bad[] = {
        "other 127.0.0.1 6379 127.0.0.1 6380",         /* another master */
        "mymaster2 127.0.0.1 6379 127.0.0.1 6380",     /* a prefix is not the name */
        "mymaster 127.0.0.1 6379 127.0.0.1",           /* too few fields */
        "mymaster 127.0.0.1 6379 127.0.0.1 6380 x",    /* too many */
        "mymaster 127.0.0.1 6379 127.0.0.1 0",         /* port range */
        "mymaster 127.0.0.1 6379 127.0.0.1 65536",
        "mymaster 127.0.0.1 6379 127.0.0.1 63x",
        "mymaster 127.0.0.1 6379 127.0.0.1 -1",
        "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_expect_eq(parse(bad[i], "mymaster", host, &port), -1, "%s", bad[i]);
    cr_expect_str_eq(host, "unchanged");
    cr_expect_eq(port, 7);
    /* an embedded NUL, and an over-long message */
    const char nul[] = "mymaster 1 2 127.0.0.1\0 6380";
    cr_expect_eq(redis_sentinel_parse_switch(nul, sizeof nul - 1, "mymaster", host, 256, &port),
                 -1);
    char big[700];
    memset(big, 'a', sizeof big);
    cr_expect_eq(redis_sentinel_parse_switch(big, sizeof big, "mymaster", host, 256, &port), -1);
    /* a host longer than the caller's buffer */
    char small[4];
    cr_expect_eq(redis_sentinel_parse_switch("m a 1 host.example 2", 20, "m", small, sizeof small,
                                             &port),
                 -1);
}
