/* One receive buffer per event-loop thread, shared by every socket on it: libuv
 * calls alloc_cb and then read_cb synchronously, and every read_cb consumes or
 * copies what it needs, so an idle connection holds no read buffer (uSockets' way). */
#ifndef DSOCK_READ_BUFFER_H
#define DSOCK_READ_BUFFER_H

#include <uv.h>

#define READ_BUFFER_SIZE (64 * 1024)

/* A uv_alloc_cb that hands out the calling thread's buffer. */
void read_buffer_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf);

#endif
