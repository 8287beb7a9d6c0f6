/* Identifiers from the operating system's CSPRNG (getrandom(2)). A failure of the
 * CSPRNG aborts: an id must never be guessable. */
#ifndef DSOCK_RAND_H
#define DSOCK_RAND_H

#include <stddef.h>

#define RAND_UUID_LEN 36 /* without the NUL */
#define RAND_ID_LEN 32   /* claim ids and tokens: 32 chars of [A-Za-z0-9] */

void rand_bytes(void *out, size_t n);
/* Writes a UUIDv4 in canonical lower-case form plus NUL into out[37]. */
void rand_uuid4(char out[RAND_UUID_LEN + 1]);
/* Writes RAND_ID_LEN alphanumeric characters plus NUL into out[33] (~190 bits). */
void rand_id(char out[RAND_ID_LEN + 1]);

#endif
