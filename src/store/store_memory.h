/* The embedded in-memory store behind `dsock standalone`: the API and the one worker
 * share a libuv loop and meet only through this store. Every operation answers
 * synchronously (the callback runs before the call returns), so a /send runs
 * straight into the worker's delivery with no hand-off. See store.h for the contract. */
#ifndef DSOCK_STORE_MEMORY_H
#define DSOCK_STORE_MEMORY_H

#include <uv.h>

#include "store/store.h"

/* Never NULL. The loop is used only for a sweep timer (unreferenced, so it never
 * keeps the loop alive by itself) that frees expired claims every second; a claim
 * also counts as gone at access as soon as now >= its expiration.
 *
 * Behaviour specific to this backend, within store.h:
 * - No operation ever answers STORE_UNAVAILABLE, except one made after
 *   store_close() started.
 * - store_send / store_disconnect call the attached worker's on_message at most
 *   once, with the message as given (the worker matches its connections itself),
 *   and only when the target has registered connections; the delivery reports
 *   connections = matching registered connections, workers = 1 or 0, and
 *   unreachable = 0. on_resync is never called (nothing is ever lost).
 * - The arrays store_info hands its callback point into the store: the callback
 *   reads them before changing the store (register, unregister, take, ...).
 * - An empty session ("") is the same as none, in stored records and in targets;
 *   an empty target id is the same as none.
 * - store_worker_attach: -EBUSY on a second attach, -EINVAL without on_message.
 * - store_close frees everything once the timer handle is closed (on a later loop
 *   iteration), then calls done. */
store_t *store_memory_new(uv_loop_t *loop);

/* Records held right now, for tests and metrics: claims include expired ones the
 * sweep has not freed yet. s must come from store_memory_new. */
size_t store_memory_claim_count(const store_t *s);
size_t store_memory_conn_count(const store_t *s);

#endif
