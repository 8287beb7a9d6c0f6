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
 * Ownership: the glue belongs to the context; hiredis frees it through its cleanup
 * hook when the context is freed (the poll handle closes asynchronously). */
#ifndef DSOCK_REDIS_UV_H
#define DSOCK_REDIS_UV_H

#include <uv.h>

struct redisAsyncContext;

/* 0, or -1 when the socket cannot be watched (the caller frees the context). */
int redis_uv_attach(struct redisAsyncContext *ac, uv_loop_t *loop);

#endif
