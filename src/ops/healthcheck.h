/* `dsock healthcheck [URL]`: a tiny HTTP client for container health checks, so
 * that the image needs no curl (deploy/Containerfile's HEALTHCHECK runs it). It GETs
 * the URL over a plain TCP socket with a short overall timeout and exits 0 when the
 * answer's status is 200, 1 otherwise (refused, timed out, malformed, any other
 * status), 2 on a usage error. No TLS, no redirects, no body parsing: a probe only.
 * docs/operations.md, "Container image". */
#ifndef DSOCK_OPS_HEALTHCHECK_H
#define DSOCK_OPS_HEALTHCHECK_H

#include <stddef.h>

#define HEALTHCHECK_DEFAULT_PATH "/healthz"
#define HEALTHCHECK_TIMEOUT_MS 3000

typedef struct healthcheck_target {
    char host[256]; /* without brackets for an IPv6 literal */
    char port[8];
    char path[1024]; /* starts with '/'; the query, if any, included */
} healthcheck_target_t;

/* Parses "http://HOST[:PORT][/PATH]" (HOST may be "[v6]"); no userinfo, no fragment,
 * only printable ASCII. Port defaults to 80, path to "/". 0 on success, -1 with a
 * reason in err otherwise. I/O-free. */
int healthcheck_parse_url(const char *url, healthcheck_target_t *t, char *err, size_t errlen);

/* The URL used without an argument: http://127.0.0.1:PORT/healthz, PORT taken from
 * the port of DSOCK_ADDRESS when set (and its host, unless it is a wildcard), else
 * from port, else 6241: the address dsock itself listens on with that environment.
 * address is DSOCK_ADDRESS, port is PORT or else DSOCK_PORT (NULL when unset).
 * I/O-free. */
void healthcheck_default_url(const char *address, const char *port, char *out, size_t outlen);

/* Status code of an HTTP/1.x status line at the start of buf ("HTTP/1.1 200 OK\r\n"),
 * or -1 if buf does not start with a complete, well-formed one. I/O-free. */
int healthcheck_status(const char *buf, size_t len);

/* The subcommand: argv[0] is "healthcheck". Returns the exit status. */
int healthcheck_main(int argc, char **argv);

#endif
