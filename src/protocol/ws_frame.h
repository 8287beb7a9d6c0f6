/* RFC 6455 frame engine for the server side: I/O-free, like wslay. The parser
 * consumes client bytes and reports events; data-message payloads are validated
 * (masking, UTF-8 for text, size limit) but not kept, because dsock has no
 * upstream path (contract: client messages are read and discarded). Control frame
 * payloads (<= 125 bytes) are kept in the parser so ping/close can be answered.
 * The encoder writes server (unmasked) frames.
 *
 * Ownership: the parser is a plain struct embedded by the caller; the only heap it
 * holds is an inflater, while a compressed message (permessage-deflate) is being
 * read, freed when the message ends or fails, or by ws_parser_free. Event payload
 * pointers point into the parser and are valid until the next feed. */
#ifndef DSOCK_WS_FRAME_H
#define DSOCK_WS_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
    WS_OP_CONT = 0x0,
    WS_OP_TEXT = 0x1,
    WS_OP_BINARY = 0x2,
    WS_OP_CLOSE = 0x8,
    WS_OP_PING = 0x9,
    WS_OP_PONG = 0xA,
};

enum {
    WS_CLOSE_NORMAL = 1000,
    WS_CLOSE_GOING_AWAY = 1001,
    WS_CLOSE_PROTOCOL_ERROR = 1002,
    WS_CLOSE_UNSUPPORTED = 1003,
    WS_CLOSE_NO_STATUS = 1005,  /* never sent on the wire */
    WS_CLOSE_ABNORMAL = 1006,   /* never sent on the wire */
    WS_CLOSE_INVALID_DATA = 1007,
    WS_CLOSE_POLICY = 1008,
    WS_CLOSE_TOO_BIG = 1009,
    WS_CLOSE_INTERNAL = 1011,
};

typedef enum ws_event_type {
    WS_EVENT_NONE = 0,  /* input exhausted, nothing to report */
    WS_EVENT_PING,      /* payload/payload_len: echo it in a pong */
    WS_EVENT_PONG,
    WS_EVENT_MESSAGE,   /* a data message completed; opcode + total length */
    WS_EVENT_CLOSE,     /* peer sent close: close_code (1005 if none), reason */
    WS_EVENT_ERROR,     /* protocol violation: close_code says what to send; sticky */
} ws_event_type_t;

typedef struct ws_event {
    ws_event_type_t type;
    int opcode;                 /* WS_EVENT_MESSAGE: WS_OP_TEXT or WS_OP_BINARY */
    uint64_t message_len;       /* WS_EVENT_MESSAGE */
    const uint8_t *payload;     /* PING/PONG/CLOSE: control payload (close: the reason) */
    size_t payload_len;
    uint16_t close_code;        /* CLOSE: peer's code; ERROR: code to send (1002/1007/1009) */
    const char *error;          /* ERROR: short static description */
} ws_event_t;

typedef struct ws_parser {
    uint64_t max_message;       /* largest whole (possibly fragmented) message accepted */
    /* private state below; zeroed by ws_parser_init. Ordered so that the inflater
     * pointer costs no size: the struct is embedded in every connection. */
    uint64_t frame_len;
    uint64_t frame_pos;
    uint64_t msg_len;           /* wire bytes of the current message */
    struct ws_inflater *inflater; /* only while a compressed message is read */
    uint32_t utf8_state;
    uint8_t state;
    uint8_t hdr[14];
    uint8_t hdr_len;
    uint8_t hdr_need;
    uint8_t opcode;             /* current frame */
    uint8_t fin;
    uint8_t msg_opcode;         /* current data message (0: none in progress) */
    uint8_t mask[4];
    uint8_t failed;
    uint8_t deflate;            /* permessage-deflate negotiated; else RSV1 is an error */
    uint8_t compressed;         /* the current message has RSV1 */
    uint8_t ctrl_len;
    uint8_t ctrl[125];
} ws_parser_t;

/* max_message is the largest message accepted, in bytes, taken as given (the
 * configuration refuses 0, docs/configuration.md "Limits"; UINT64_MAX: no limit).
 * A message over it is refused (1009) from its frame header, before its payload
 * arrives. */
void ws_parser_init(ws_parser_t *p, uint64_t max_message);

/* Consumes bytes from data[0..len) until one event is ready or input runs out.
 * Returns the number of bytes consumed; *ev says what happened (WS_EVENT_NONE when
 * the input was exhausted without an event, and then all len bytes were consumed).
 * Call again with the rest while bytes remain. The same events come out however
 * the input is split. The data buffer may be modified (text payloads are unmasked
 * in place to validate them). Violations are reported as soon as the byte that
 * proves them arrives (invalid UTF-8 mid-frame, an oversized length in a header);
 * ev->error is a static string. After an ERROR event every later call returns 0
 * bytes and the same ERROR. After a CLOSE event the peer may send nothing more:
 * later calls consume and ignore all input and report WS_EVENT_NONE. */
size_t ws_parser_feed(ws_parser_t *p, uint8_t *data, size_t len, ws_event_t *ev);

/* permessage-deflate was negotiated (RFC 7692, with client_no_context_takeover:
 * every message is a deflate stream of its own). From then on RSV1 is allowed on the first frame
 * of a data message (and nowhere else: 1002) and marks it compressed: its payload is
 * inflated with an inflater the parser holds only until the message ends (or fails),
 * the inflated size is held to max_message (1009 as soon as it is passed, before
 * more is inflated), and inflated text must be UTF-8 (1007); a corrupt stream is
 * 1002. The wire size of a compressed message is bounded too, by
 * ws_parser_wire_limit, since empty deflate blocks inflate to nothing. The event's
 * message_len is the inflated size. */
void ws_parser_set_deflate(ws_parser_t *p);

/* The largest wire size of a compressed message: max_message plus what deflate
 * can add to incompressible data, with a generous margin (1/8 + 1 KiB). */
uint64_t ws_parser_wire_limit(uint64_t max_message);

/* Frees what the parser holds (an inflater in the middle of a compressed message);
 * idempotent. The owner of a parser calls it when it is done with it. */
void ws_parser_free(ws_parser_t *p);

/* Between messages: no frame header, payload, message or inflater in progress,
 * and no error nor close seen. A parser at rest holds nothing a fresh one (of the
 * same max_message, with ws_parser_set_deflate when negotiated) would not, so an
 * owner may drop it and start a fresh one for the next bytes: the worker keeps a
 * parser only for connections that stopped mid-frame (docs/benchmark.md, "Idle
 * memory"). */
bool ws_parser_at_rest(const ws_parser_t *p);

/* Largest server frame header. */
#define WS_FRAME_HEADER_MAX 10

/* Writes the header of an unmasked, final server frame; returns its length (2..10).
 * A compressed message (permessage-deflate) sets RSV1 in out[0] (0x40) after this. */
size_t ws_frame_header(uint8_t out[WS_FRAME_HEADER_MAX], int opcode, uint64_t payload_len);

/* Writes a close payload (2-byte code + reason truncated to fit 123 bytes at a UTF-8
 * boundary) into out[125]; returns its length. reason may be NULL; a reason that is
 * not valid UTF-8 is left out (the peer would have to fail the connection). */
size_t ws_close_payload(uint8_t out[125], uint16_t code, const char *reason);

/* Is this a close code a peer may send (RFC 6455 7.4, IANA registry)? */
bool ws_close_code_valid(uint16_t code);

#endif
