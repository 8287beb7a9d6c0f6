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

/* The allocator policy of `dsock worker` (docs/architecture.md, "Large
 * messages"), set at startup before any thread starts: one malloc arena (the
 * worker runs one loop thread; the main thread only waits for signals), chunks up
 * to MEM_MMAP_THRESHOLD from the heap rather than each mmapped, and the free top of
 * the heap returned to the kernel by free() only beyond MEM_TRIM_THRESHOLD. So a
 * stream of 1 MiB (or 16 MiB) messages reuses warm pages instead of faulting in
 * and zeroing fresh ones for every buffer of every message (the hiredis reply, the
 * decoded message, the frame). Memory still goes back: the worker's sweep calls
 * mem_release once a second after big releases, big messages included. Not for
 * `dsock api` and standalone, which run several loop threads, each with its arena:
 * a free() in another thread's arena never trims it, so a high threshold would keep
 * what a burst left there (their big buffers are fewer: the profile showed no gain). */
#define MEM_MMAP_THRESHOLD (32u << 20) /* glibc's maximum for its dynamic threshold */
#define MEM_TRIM_THRESHOLD (64u << 20) /* twice it, as glibc's own dynamic rule */
void mem_configure_worker(void);

/* Memory freed outside the worker's own accounting that is worth a trim (the Redis
 * reader's big buffer when the connection went idle): counted here, taken by the
 * worker's sweep (mem_take_released), which trims once its total is big enough.
 * Thread-safe. */
void mem_note_released(size_t bytes);
size_t mem_take_released(void);

/* Gives the free memory of the heaps back to the kernel now: malloc_trim(0), and
 * the top of the calling thread's arena, which malloc_trim leaves alone in a
 * thread's arena (standalone runs its workers on threads). Not cheap: call it at
 * most about once a second, and only after big releases. */
void mem_release(void);

#endif
