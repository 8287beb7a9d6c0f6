/* Validators for values that come from outside the process: one definition of
 * "an acceptable identifier" and of "an integer parameter", shared by the API
 * (query parameters), the JWT engine (sub, sid) and the Redis bus decoder (target
 * ids), so the rules cannot drift apart. I/O-free; every function takes a length
 * and never relies on a terminating NUL.
 *
 * Identifier (user, session, claim id, connection id; a channel name, see below):
 * non-empty, valid UTF-8 (RFC 3629, see utf8.h), and no code point of Unicode
 * general category Cc: C0 U+0000-U+001F, DEL U+007F and C1 U+0080-U+009F. A NUL
 * would cut the id short in every C string it is copied into (the JWT sub
 * "victim\u0000-attacker" became user "victim"); the other controls have no use
 * in an id and only help forge log lines or terminal output (C1 holds NEL U+0085
 * and the 8-bit CSI U+009B). Everything else, spaces and format characters
 * included, is accepted: ids are opaque. docs/api.md states the rule. */
#ifndef DSOCK_VALIDATE_H
#define DSOCK_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum ident_status {
    IDENT_OK = 0,
    IDENT_EMPTY,     /* zero length */
    IDENT_NOT_UTF8,  /* not valid UTF-8 */
    IDENT_CONTROL,   /* valid UTF-8 holding a C0, DEL or C1 control (NUL included) */
    IDENT_TOO_LONG,  /* channel_name_check only: over CHANNEL_NAME_MAX bytes */
} ident_status_t;

ident_status_t ident_check(const char *s, size_t len);

static inline bool ident_valid(const char *s, size_t len) { return ident_check(s, len) == IDENT_OK; }

/* A channel name: an identifier of at most CHANNEL_NAME_MAX bytes. Longer names
 * are IDENT_TOO_LONG (checked first, so a huge name is not scanned). */
#define CHANNEL_NAME_MAX 256
static inline ident_status_t channel_name_check(const char *s, size_t len) {
    return len > CHANNEL_NAME_MAX ? IDENT_TOO_LONG : ident_check(s, len);
}
static inline bool channel_name_valid(const char *s, size_t len) {
    return channel_name_check(s, len) == IDENT_OK;
}

/* A comma-delimited list of channel names (POST /claim's channels parameter,
 * default_channels): empty items are dropped, and so are repeated names (the first
 * place wins). Returns IDENT_OK and a malloc'd array of malloc'd NUL-terminated
 * names (*out NULL when *count is 0; free with channel_list_free), or the status of
 * the first bad item (nothing to free). */
ident_status_t channel_list_parse(const char *s, size_t len, char ***out, size_t *count);
void channel_list_free(char **list, size_t count);

/* Strict decimal integer: an optional '+' or '-', then one or more ASCII digits,
 * and nothing else in s[0..len): no whitespace anywhere (strtoll would skip a
 * leading " \t\n\v\f\r"), no "0x", no NUL. Leading zeros are fine. A value out of
 * int64_t range is refused. The '+' is accepted because Go's strconv.ParseInt,
 * which the seed used, accepts it. Returns true and sets *out on success; *out is
 * untouched on failure. */
bool parse_int64(const char *s, size_t len, int64_t *out);

#endif
