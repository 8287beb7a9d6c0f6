/* Allocation wrappers that abort loudly on out-of-memory, so callers never
 * carry a half-built state. Free with free(). */
#ifndef DSOCK_MEM_H
#define DSOCK_MEM_H

#include <stddef.h>

void *mem_alloc(size_t n);            /* malloc or abort */
void *mem_calloc(size_t n, size_t s); /* calloc or abort */
void *mem_realloc(void *p, size_t n); /* realloc or abort */
char *mem_strndup(const char *s, size_t n); /* NUL-terminated copy of n bytes */
char *mem_strdup(const char *s);

#endif
