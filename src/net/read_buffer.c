#include "net/read_buffer.h"

static _Thread_local char thread_read_buffer[READ_BUFFER_SIZE];

void read_buffer_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf) {
    (void)handle;
    (void)suggested;
    buf->base = thread_read_buffer;
    buf->len = sizeof thread_read_buffer;
}
