/* The embedded in-memory store behind `dsock standalone`: the API and the worker
 * meet only through this store. Every operation answers synchronously (the
 * callback runs before the call returns).
 *
 * Threads: the records live in a shared core (store_memory_shared_new) behind one
 * mutex; each loop thread uses its own view of it (store_memory_view_new), to
 * which that thread's worker attaches. A send reaching connections registered
 * through the caller's own view runs straight into its worker (no hand-off); for
 * connections of other views a copy goes through each such view's lock-free
 * inbox and wakes its loop, where its worker gets it. Sends from one view to
 * another arrive in call order; a view delivers what its inbox holds before a
 * synchronous delivery, so sends that completed on other threads stay ahead.
 * See store.h for the contract. */
#ifndef DSOCK_STORE_MEMORY_H
#define DSOCK_STORE_MEMORY_H

#include <uv.h>

#include "store/store.h"

/* Views per shared core, over the life of the core. */
#define STORE_MEMORY_MAX_VIEWS 64

typedef struct store_memory_shared store_memory_shared_t;

/* Never NULL. Free it with store_memory_shared_free once every view is closed
 * (its store_close done callback has run). */
store_memory_shared_t *store_memory_shared_new(void);
void store_memory_shared_free(store_memory_shared_t *sh); /* NULL is a no-op */

/* A view for one loop thread; every call on it (and its close) happens on the
 * thread that runs loop. Never NULL; aborts past STORE_MEMORY_MAX_VIEWS.
 *
 * The loop holds a sweep timer (on the first view of a core only) that frees
 * expired claims every second, and a wake-up handle; both are unreferenced, so
 * they never keep the loop alive by themselves. A claim also counts as gone at
 * access as soon as now >= its expiration.
 *
 * Behaviour specific to this backend, within store.h:
 * - No operation ever answers STORE_UNAVAILABLE, except one made after
 *   store_close() started on that view.
 * - store_send / store_disconnect give each attached view holding target
 *   connections the message once, as given (its worker matches its connections
 *   itself); the delivery reports connections = matching registered connections
 *   (counted at the call), workers = 1 (one process, one worker, whatever the
 *   number of views) or 0 when no attached view holds one, unreachable = 0.
 *   store_disconnect also forgets the matching connection records at once.
 *   on_resync is never called (nothing is ever lost).
 * - The arrays store_info hands its callback are a snapshot owned by the store,
 *   valid during the callback.
 * - An empty session ("") is the same as none, in stored records and in targets;
 *   an empty target id is the same as none.
 * - store_worker_attach: -EBUSY on a second attach on one view, -EINVAL without
 *   on_message.
 * - store_close: the view leaves the core at once (connection records it
 *   registered are forgotten, other threads stop handing it messages), then frees
 *   itself once its handles are closed (on a later loop iteration), dropping
 *   messages still in its inbox, then calls done. */
store_t *store_memory_view_new(store_memory_shared_t *sh, uv_loop_t *loop);

/* A shared core with one view that owns it: store_close frees both. For one
 * thread (and tests). */
store_t *store_memory_new(uv_loop_t *loop);

/* Idempotency keys (store.h, store_idem_t): remembered ttl_s seconds, at most
 * max_keys of them (the oldest are forgotten first when full). Defaults 300 s and
 * 100,000. Call before any view is in use. */
void store_memory_shared_set_idempotency(store_memory_shared_t *sh, unsigned ttl_s,
                                         size_t max_keys);

/* Records held right now in the view's core, for tests and metrics: claims
 * include expired ones the sweep has not freed yet. */
size_t store_memory_claim_count(const store_t *s);
size_t store_memory_conn_count(const store_t *s);
/* The same for a whole core, from any thread (metrics). */
void store_memory_shared_sizes(store_memory_shared_t *sh, size_t *claims, size_t *conns);

#endif
