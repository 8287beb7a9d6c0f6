#include "common/rand.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/random.h>

#include "common/log.h"

void rand_bytes(void *out, size_t n) {
    uint8_t *p = out;
    while (n > 0) {
        ssize_t r = getrandom(p, n, 0);
        if (r < 0) {
            if (errno == EINTR) continue;
            log_fatal("getrandom failed", LOG_I("errno", errno));
        }
        p += r;
        n -= (size_t)r;
    }
}

void rand_uuid4(char out[RAND_UUID_LEN + 1]) {
    uint8_t b[16];
    rand_bytes(b, sizeof b);
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    snprintf(out, RAND_UUID_LEN + 1,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
             b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
             b[15]);
}

void rand_id(char out[RAND_ID_LEN + 1]) {
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    size_t filled = 0;
    /* Rejection sampling keeps the distribution uniform over 62 symbols. */
    while (filled < RAND_ID_LEN) {
        uint8_t b[64];
        rand_bytes(b, sizeof b);
        for (size_t i = 0; i < sizeof b && filled < RAND_ID_LEN; i++) {
            if (b[i] < 248) out[filled++] = alphabet[b[i] % 62];
        }
    }
    out[RAND_ID_LEN] = '\0';
}
