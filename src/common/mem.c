#include "common/mem.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

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

static bool one_arena; /* mem_configure_worker ran */

void mem_configure_worker(void) {
#ifdef __GLIBC__
    /* Setting either threshold turns off glibc's dynamic one, which had already
     * moved the mmap threshold to the largest chunk freed so far but trimmed the
     * heap at twice that: after each message the buffers it freed went back to the
     * kernel and the next message faulted them in again, page by page (the profile
     * in docs/benchmark.md, "Large messages over Redis"). One arena: a thread's
     * arena is made of 64 MiB heaps, which a few 16 MiB buffers outgrow, and a heap
     * left empty is unmapped whatever the threshold; the main arena has no such
     * limit, and malloc_trim(0) trims its top. Messages over 32 MiB are still
     * mmapped, each time. */
    mallopt(M_ARENA_MAX, 1);
    mallopt(M_MMAP_THRESHOLD, (int)MEM_MMAP_THRESHOLD);
    mallopt(M_TRIM_THRESHOLD, (int)MEM_TRIM_THRESHOLD);
    one_arena = true;
#endif
}

void mem_release(void) {
#ifdef __GLIBC__
    malloc_trim(0);
    if (!one_arena) {
        /* glibc's malloc_trim does not shrink the top chunk of a thread's arena, but
         * a free() of a chunk of at least 64 KiB there does (heap_trim): in this
         * thread's arena, where its frames and nodes were allocated (volatile, so
         * the pair is not optimised away). */
        void *volatile p = malloc(64 << 10);
        free(p);
    }
#endif
}

static _Atomic size_t released_elsewhere;

void mem_note_released(size_t bytes) {
    atomic_fetch_add_explicit(&released_elsewhere, bytes, memory_order_relaxed);
}

size_t mem_take_released(void) {
    return atomic_exchange_explicit(&released_elsewhere, 0, memory_order_relaxed);
}
