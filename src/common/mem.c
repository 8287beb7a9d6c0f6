#include "common/mem.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"

void *mem_alloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) log_fatal("out of memory", LOG_U("bytes", n));
    return p;
}

void *mem_calloc(size_t n, size_t s) {
    void *p = calloc(n ? n : 1, s ? s : 1);
    if (!p) log_fatal("out of memory", LOG_U("count", n), LOG_U("size", s));
    return p;
}

void *mem_realloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) log_fatal("out of memory reallocating", LOG_U("bytes", n));
    return q;
}

char *mem_strndup(const char *s, size_t n) {
    char *d = mem_alloc(n + 1);
    if (n) memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *mem_strdup(const char *s) { return mem_strndup(s, strlen(s)); }
