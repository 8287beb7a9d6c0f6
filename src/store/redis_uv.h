/* The event glue between a hiredis async context and a libuv loop (our own, in place
 * of hiredis 0.14's adapters/libuv.h): one uv_poll_t per context, watching what
 * hiredis asks for.
 *
 * The difference that matters: libuv reports a socket error (EPOLLERR, e.g. the
 * reset that follows a Redis SIGKILL while commands are in flight) as a negative
 * status and stops watching the descriptor. hiredis's adapter returns on that status,
 * so hiredis never learns of the error and only redis_conn's command timeout noticed
 * the dead connection, redis_timeout_ms later. Here an error is handed to hiredis as
 * "readable and writable": its read (or connect check) then fails with the socket's
 * error and it drops the connection at once, answering every pending command.
 *
 * Reading: a readable socket is read straight into the hiredis reader's buffer
 * (which then parses it, as hiredis would), at least 16 KiB and otherwise as much
 * as the buffer has room for, instead of hiredis's 16 KiB stack buffer that it
 * copies into the reader: one copy fewer, and a 1 MiB reply takes a few reads
 * instead of 64 loop turns. The reader keeps its buffer between replies (hiredis
 * would free it whenever it is empty and over 16 KiB, so every big reply regrew one
 * from nothing, realloc by realloc); redis_uv_idle gives it back once it is idle.
 *
 * Writing: hiredis 0.14 writes its output buffer (an sds) and, after a partial
 * write, moves the unwritten rest to the front (sdsrange): for a command of 16 MiB
 * and a socket taking a few MiB per write, several passes over the command. Here an
 * output buffer of at least 64 KiB, or any while earlier ones wait, is taken
 * whole (hiredis gets a fresh empty one) and written with writev from an offset,
 * in order, then freed; hiredis still writes small buffers itself when nothing
 * taken waits. A failed write goes back to hiredis, which then fails the same way
 * and disconnects as it always does. A caller with a big command already in the
 * protocol hands it over whole (redis_uv_send_owned): no copy at all.
 *
 * Deferred writes: commands added on a connected context are written from an idle
 * callback at the start of the next loop iteration, before it polls, rather than
 * when the poll reports the socket writable; the poll handle is touched only when
 * the set of watched events changes (uv_poll_start costs two epoll_ctl). So the
 * commands of one turn go out in one write and a write that completes at once
 * changes nothing in epoll (docs/architecture.md, "System calls on the send path").
 *
 * Ownership: the glue belongs to the context; hiredis frees it through its cleanup
 * hook when the context is freed (the poll handle closes asynchronously). */
#ifndef DSOCK_REDIS_UV_H
#define DSOCK_REDIS_UV_H

#include <stdint.h>
#include <uv.h>

struct redisAsyncContext;

/* 0, or -1 when the socket cannot be watched (the caller frees the context). */
int redis_uv_attach(struct redisAsyncContext *ac, uv_loop_t *loop);

/* Sends cmd, a whole command in the Redis protocol, without copying it: its reply
 * goes to fn like that of redisAsyncFormattedCommand, and its bytes are written
 * from cmd after everything sent before. owner (the allocation holding cmd) is the
 * glue's from the call on, success or not: freed with free() once written or when
 * the connection goes. 0, or -1 when the context is not connected. */
int redis_uv_send_owned(struct redisAsyncContext *ac,
                        void (*fn)(struct redisAsyncContext *, void *, void *), void *privdata,
                        void *owner, const char *cmd, size_t len);

/* Call it often (every tick); at most every REDIS_UV_IDLE_MS it frees the reader's
 * buffer when it is over REDIS_UV_KEEP_BYTES, holds no unparsed byte, and less than
 * its size was read since the previous check: so a stream of big replies keeps its
 * buffer, and an idle connection holds at most REDIS_UV_KEEP_BYTES a second later. */
#define REDIS_UV_IDLE_MS 1000
#define REDIS_UV_KEEP_BYTES (64u << 10)
void redis_uv_idle(struct redisAsyncContext *ac, uint64_t now_ms);

#endif
