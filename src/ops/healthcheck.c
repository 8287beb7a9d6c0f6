/* `dsock healthcheck [URL]` (healthcheck.h): one blocking GET with a deadline over
 * the whole exchange (resolve, connect, write, read the status line), for
 * container and orchestrator health checks. Plain POSIX sockets, not libuv: it runs
 * for milliseconds in its own short-lived process and owns nothing beyond main's
 * stack. */
#include "ops/healthcheck.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int healthcheck_parse_url(const char *url, healthcheck_target_t *t, char *err, size_t errlen) {
    memset(t, 0, sizeof *t);
    for (const char *c = url; *c; c++) {
        if ((unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f) {
            snprintf(err, errlen, "the URL must be printable ASCII without spaces");
            return -1;
        }
    }
    if (strncmp(url, "http://", 7) != 0) {
        snprintf(err, errlen, "only http:// URLs are supported");
        return -1;
    }
    const char *h = url + 7;
    const char *end = h + strcspn(h, "/?#");
    if (memchr(h, '@', (size_t)(end - h))) {
        snprintf(err, errlen, "credentials in the URL are not supported");
        return -1;
    }
    const char *host = h, *host_end, *port = NULL;
    if (*h == '[') {
        host = h + 1;
        host_end = memchr(host, ']', (size_t)(end - host));
        if (!host_end) {
            snprintf(err, errlen, "unterminated [IPv6] host");
            return -1;
        }
        if (host_end + 1 < end) {
            if (host_end[1] != ':') {
                snprintf(err, errlen, "unexpected text after ]");
                return -1;
            }
            port = host_end + 2;
        }
    } else {
        host_end = memchr(h, ':', (size_t)(end - h));
        if (host_end) port = host_end + 1;
        else host_end = end;
    }
    size_t hl = (size_t)(host_end - host);
    if (hl == 0 || hl >= sizeof t->host) {
        snprintf(err, errlen, "the host is empty or too long");
        return -1;
    }
    memcpy(t->host, host, hl);
    if (port) {
        size_t pl = (size_t)(end - port);
        long p = 0;
        for (size_t i = 0; i < pl; i++) {
            if (port[i] < '0' || port[i] > '9' || i >= 5) {
                p = -1;
                break;
            }
            p = p * 10 + (port[i] - '0');
        }
        if (pl == 0 || p < 1 || p > 65535) {
            snprintf(err, errlen, "the port must be a number from 1 to 65535");
            return -1;
        }
        snprintf(t->port, sizeof t->port, "%ld", p);
    } else {
        snprintf(t->port, sizeof t->port, "80");
    }
    size_t path_len = strcspn(end, "#");
    if (path_len == 0) {
        snprintf(t->path, sizeof t->path, "/");
    } else if (path_len + 2 > sizeof t->path) {
        snprintf(err, errlen, "the path is too long");
        return -1;
    } else {
        /* "http://h?x" has a query and no path: the request target is "/?x". */
        snprintf(t->path, sizeof t->path, "%s%.*s", *end == '?' ? "/" : "", (int)path_len, end);
    }
    return 0;
}

void healthcheck_default_url(const char *address, const char *port, char *out, size_t outlen) {
    const char *host = "127.0.0.1";
    char hostbuf[256];
    long p = 6241;
    if (address && *address) {
        /* dsock's own address syntax: "host:port", ":port" or "[v6]:port". */
        const char *colon = strrchr(address, ':');
        if (colon) {
            char *e;
            long v = strtol(colon + 1, &e, 10);
            if (!*e && e != colon + 1 && v > 0 && v <= 65535) p = v;
            size_t hl = (size_t)(colon - address);
            if (hl >= 2 && address[0] == '[' && address[hl - 1] == ']') {
                address++;
                hl -= 2;
            }
            if (hl > 0 && hl < sizeof hostbuf) {
                memcpy(hostbuf, address, hl);
                hostbuf[hl] = '\0';
                /* A wildcard listens on loopback too; a specific address only there. */
                if (strcmp(hostbuf, "0.0.0.0") && strcmp(hostbuf, "::") && strcmp(hostbuf, "*"))
                    host = hostbuf;
            }
        }
    } else if (port && *port) {
        char *e;
        long v = strtol(port, &e, 10);
        if (!*e && v > 0 && v <= 65535) p = v;
    }
    snprintf(out, outlen, strchr(host, ':') ? "http://[%s]:%ld%s" : "http://%s:%ld%s", host, p,
             HEALTHCHECK_DEFAULT_PATH);
}

int healthcheck_status(const char *buf, size_t len) {
    const char *eol = memchr(buf, '\n', len);
    if (!eol) return -1;
    /* "HTTP/1.x SSS" then a space or the line's end. */
    if ((size_t)(eol - buf) < 12 || memcmp(buf, "HTTP/1.", 7) != 0 || buf[7] < '0' ||
        buf[7] > '9' || buf[8] != ' ')
        return -1;
    int code = 0;
    for (int i = 9; i < 12; i++) {
        if (buf[i] < '0' || buf[i] > '9') return -1;
        code = code * 10 + (buf[i] - '0');
    }
    if (buf[12] != ' ' && buf[12] != '\r' && buf[12] != '\n') return -1;
    return code < 100 ? -1 : code;
}

static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for events on fd until the deadline; 1 when ready, 0 on timeout or error. */
static int wait_fd(int fd, short events, long long deadline) {
    for (;;) {
        long long left = deadline - now_ms();
        if (left <= 0) return 0;
        struct pollfd pfd = {.fd = fd, .events = events};
        int n = poll(&pfd, 1, (int)left);
        if (n > 0) return 1;
        if (n < 0 && errno != EINTR) return 0;
    }
}

static int connect_any(const healthcheck_target_t *t, long long deadline, char *err, size_t errlen) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    int rc = getaddrinfo(t->host, t->port, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "cannot resolve the host: %s", gai_strerror(rc));
        return -1;
    }
    int fd = -1;
    snprintf(err, errlen, "cannot connect");
    for (struct addrinfo *a = res; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) continue;
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) break;
        int soerr = errno;
        socklen_t sl = sizeof soerr;
        if (soerr == EINPROGRESS && wait_fd(fd, POLLOUT, deadline) &&
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr == 0)
            break;
        snprintf(err, errlen, "cannot connect: %s", soerr == EINPROGRESS ? "timed out" : strerror(soerr));
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

/* 0 when the answer's status is 200; 1 otherwise, with a reason in err. */
static int check(const healthcheck_target_t *t, char *err, size_t errlen) {
    long long deadline = now_ms() + HEALTHCHECK_TIMEOUT_MS;
    int fd = connect_any(t, deadline, err, errlen);
    if (fd < 0) return 1;
    char req[1536];
    int n = snprintf(req, sizeof req,
                     strchr(t->host, ':') ? "GET %s HTTP/1.1\r\nHost: [%s]:%s\r\n"
                                            "User-Agent: dsock-healthcheck\r\nConnection: close\r\n\r\n"
                                          : "GET %s HTTP/1.1\r\nHost: %s:%s\r\n"
                                            "User-Agent: dsock-healthcheck\r\nConnection: close\r\n\r\n",
                     t->path, t->host, t->port);
    size_t off = 0;
    int result = 1;
    while (off < (size_t)n) {
        ssize_t w = send(fd, req + off, (size_t)n - off, MSG_NOSIGNAL);
        if (w > 0) {
            off += (size_t)w;
        } else if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
            if (!wait_fd(fd, POLLOUT, deadline)) {
                snprintf(err, errlen, "timed out sending the request");
                goto out;
            }
        } else {
            snprintf(err, errlen, "cannot send the request: %s", strerror(errno));
            goto out;
        }
    }
    char buf[512];
    size_t got = 0;
    for (;;) {
        if (healthcheck_status(buf, got) >= 0 || got == sizeof buf) break;
        if (!wait_fd(fd, POLLIN, deadline)) {
            snprintf(err, errlen, "timed out waiting for the answer");
            goto out;
        }
        ssize_t r = recv(fd, buf + got, sizeof buf - got, 0);
        if (r > 0) {
            got += (size_t)r;
        } else if (r == 0) {
            break;
        } else if (errno != EAGAIN && errno != EINTR) {
            snprintf(err, errlen, "cannot read the answer: %s", strerror(errno));
            goto out;
        }
    }
    int status = healthcheck_status(buf, got);
    if (status == 200) {
        result = 0;
    } else if (status < 0) {
        snprintf(err, errlen, "not an HTTP answer");
    } else {
        snprintf(err, errlen, "status %d", status);
    }
out:
    close(fd);
    return result;
}

int healthcheck_main(int argc, char **argv) {
    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("usage: dsock healthcheck [URL]\n\n"
               "GETs URL (default http://127.0.0.1:$PORT%s, the port and host taken from\n"
               "DSOCK_ADDRESS, PORT or DSOCK_PORT as dsock itself does, else 6241) within %d ms and exits 0\n"
               "when the status is 200, 1 otherwise. For container health checks.\n",
               HEALTHCHECK_DEFAULT_PATH, HEALTHCHECK_TIMEOUT_MS);
        return 0;
    }
    if (argc > 2 || (argc == 2 && argv[1][0] == '-')) {
        fprintf(stderr, "dsock healthcheck: usage: dsock healthcheck [URL]\n");
        return 2;
    }
    char url[1400], err[256];
    if (argc == 2) snprintf(url, sizeof url, "%s", argv[1]);
    else {
        /* Same order as dsock's own listen address: DSOCK_ADDRESS, PORT, DSOCK_PORT. */
        const char *port = getenv("PORT");
        if (!port || !*port) port = getenv("DSOCK_PORT");
        healthcheck_default_url(getenv("DSOCK_ADDRESS"), port, url, sizeof url);
    }
    healthcheck_target_t t;
    if (healthcheck_parse_url(url, &t, err, sizeof err) < 0) {
        fprintf(stderr, "dsock healthcheck: %s\n", err);
        return 2;
    }
    if (check(&t, err, sizeof err) != 0) {
        /* The URL is ours or the operator's; printed as parsed (printable ASCII). */
        fprintf(stderr, "dsock healthcheck: http://%s%s%s:%s%s: %s\n", strchr(t.host, ':') ? "[" : "",
                t.host, strchr(t.host, ':') ? "]" : "", t.port, t.path, err);
        return 1;
    }
    return 0;
}
