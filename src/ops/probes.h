/* Probes: GET /healthz (the process is alive and every loop turns) and GET /readyz
 * (the process can do its job), and the draining flag of a graceful shutdown
 * (docs/probes-and-drain.md).
 *
 * State is process-wide and kept in atomics, because a probe is answered by
 * whichever loop thread accepted its connection while the others write their own
 * state. Each loop (the main thread's and every shard's) owns one slot
 * (probes_slot_new, on the main thread before the shard threads start): its loop
 * bumps the slot's heartbeat from a repeating timer (PROBES_BEAT_MS) and writes the
 * readiness of its store there; nothing else writes the slot. A slot that has not
 * beaten for PROBES_STALL_MS makes /healthz and /readyz fail with loop_stalled.
 *
 * Reasons are static lower_snake_case strings (docs/api.md, "Probes"); they are
 * the only thing a probe reveals. The getters probes_ready and probes_draining
 * are for the metrics (dsock_ready, dsock_draining) too.
 *
 * Ownership: slots live as long as the process; probes_reset (tests) forgets them. */
#ifndef DSOCK_PROBES_H
#define DSOCK_PROBES_H

#include <stdbool.h>
#include <stdint.h>

#include "net/http_server.h"

#define PROBES_BEAT_MS 250    /* how often each loop bumps its heartbeat */
#define PROBES_STALL_MS 2000  /* a heartbeat older than this: loop_stalled */
#define PROBES_MAX_SLOTS 32   /* the main thread and at most 16 shards, with room */

/* Reason codes. */
#define PROBES_DRAINING "draining"
#define PROBES_LOOP_STALLED "loop_stalled"
#define PROBES_STARTING "starting"

/* A new slot, alive as of now and not ready (reason "starting") until its first
 * probes_slot_set_ready. Returns its index, or -1 when all are taken. */
int probes_slot_new(void);

/* From the slot's own loop: "this loop turned", and what its store says: reason
 * NULL when ready, else a static reason code. */
void probes_slot_beat(int slot);
void probes_slot_set_ready(int slot, const char *reason);

/* The slot's loop is shutting down for good: it no longer beats and no longer
 * counts (it answers no probe either: its server is closed first). */
void probes_slot_retire(int slot);

/* From the first SIGTERM/SIGINT on: not ready, reason "draining". Never undone. */
void probes_set_draining(void);
bool probes_draining(void);

/* /healthz: every live slot beat within PROBES_STALL_MS. */
bool probes_healthy(const char **reason);
/* /readyz: healthy, not draining, and every live slot ready. reason: the first
 * failing check's code (draining, loop_stalled, then the slots' own), or NULL. */
bool probes_ready(const char **reason);

/* The same at a given CLOCK_MONOTONIC time in ms (tests). */
bool probes_healthy_at(uint64_t now_ms, const char **reason);
bool probes_ready_at(uint64_t now_ms, const char **reason);
uint64_t probes_now_ms(void);

/* For the server's precheck, on the request line and headers: not /healthz or
 * /readyz (HTTP_NOT_MINE); else answered at once, without a token and without
 * reading a body (HTTP_ANSWERED): 200 {"status":"ok"} or 503
 * {"status":"not_ready","reason":"..."}; GET and HEAD only (405 otherwise). */
http_verdict_t probes_precheck(http_conn_t *c, const http_request_t *req);

/* Tests only: forget every slot and the draining flag. */
void probes_reset(void);

#endif
