/* RFC 6455 frame parser (client-to-server frames) and server frame encoder.
 * The header is gathered into the parser a stage at a time (2 bytes, extended
 * length, mask) so every violation is reported as soon as the byte that proves it
 * arrives, and the same events come out however the input is split. Data payloads
 * are skipped, except text, which is unmasked in place only to validate UTF-8, and
 * compressed messages (permessage-deflate), unmasked and inflated to be validated. */
#include "protocol/ws_frame.h"

#include <string.h>

#include "protocol/utf8.h"
#include "protocol/ws_deflate.h"

enum { ST_HEADER = 0, ST_PAYLOAD = 1, ST_CLOSED = 2 };

/* Index into parse_errors; stored in p->failed so the error can be repeated. */
enum {
    E_NONE = 0,
    E_RSV,
    E_OPCODE,
    E_UNMASKED,
    E_CTRL_FRAGMENTED,
    E_CTRL_TOO_LONG,
    E_CLOSE_LEN1,
    E_CONT_NO_MESSAGE,
    E_MESSAGE_IN_PROGRESS,
    E_LEN_TOP_BIT,
    E_LEN_NOT_MINIMAL,
    E_TOO_BIG,
    E_UTF8,
    E_UTF8_TRUNCATED,
    E_CLOSE_CODE,
    E_CLOSE_UTF8,
    E_RSV1_FRAME,
    E_INFLATE,
    E_INFLATE_NOMEM,
};

static const struct {
    uint16_t code;
    const char *msg;
} parse_errors[] = {
    [E_NONE] = {0, ""},
    [E_RSV] = {WS_CLOSE_PROTOCOL_ERROR, "reserved bits set"},
    [E_OPCODE] = {WS_CLOSE_PROTOCOL_ERROR, "unknown opcode"},
    [E_UNMASKED] = {WS_CLOSE_PROTOCOL_ERROR, "unmasked client frame"},
    [E_CTRL_FRAGMENTED] = {WS_CLOSE_PROTOCOL_ERROR, "fragmented control frame"},
    [E_CTRL_TOO_LONG] = {WS_CLOSE_PROTOCOL_ERROR, "control frame payload over 125 bytes"},
    [E_CLOSE_LEN1] = {WS_CLOSE_PROTOCOL_ERROR, "close payload of one byte"},
    [E_CONT_NO_MESSAGE] = {WS_CLOSE_PROTOCOL_ERROR, "continuation frame without a message"},
    [E_MESSAGE_IN_PROGRESS] = {WS_CLOSE_PROTOCOL_ERROR, "new message inside a fragmented message"},
    [E_LEN_TOP_BIT] = {WS_CLOSE_PROTOCOL_ERROR, "64-bit payload length with the top bit set"},
    [E_LEN_NOT_MINIMAL] = {WS_CLOSE_PROTOCOL_ERROR, "payload length not minimally encoded"},
    [E_TOO_BIG] = {WS_CLOSE_TOO_BIG, "message too big"},
    [E_UTF8] = {WS_CLOSE_INVALID_DATA, "invalid UTF-8 in text message"},
    [E_UTF8_TRUNCATED] = {WS_CLOSE_INVALID_DATA, "text message ends inside a UTF-8 sequence"},
    [E_CLOSE_CODE] = {WS_CLOSE_PROTOCOL_ERROR, "invalid close code"},
    [E_CLOSE_UTF8] = {WS_CLOSE_INVALID_DATA, "invalid UTF-8 in close reason"},
    [E_RSV1_FRAME] = {WS_CLOSE_PROTOCOL_ERROR, "RSV1 set on a control or continuation frame"},
    [E_INFLATE] = {WS_CLOSE_PROTOCOL_ERROR, "invalid compressed data"},
    [E_INFLATE_NOMEM] = {WS_CLOSE_INTERNAL, "out of memory inflating a message"},
};

void ws_parser_init(ws_parser_t *p, uint64_t max_message) {
    memset(p, 0, sizeof *p);
    p->max_message = max_message;
    p->state = ST_HEADER;
    p->hdr_need = 2;
}

static void error_event(const ws_parser_t *p, ws_event_t *ev) {
    ev->type = WS_EVENT_ERROR;
    ev->close_code = parse_errors[p->failed].code;
    ev->error = parse_errors[p->failed].msg;
}

static void drop_inflater(ws_parser_t *p) {
    ws_inflater_free(p->inflater);
    p->inflater = NULL;
}

void ws_parser_free(ws_parser_t *p) { drop_inflater(p); }

void ws_parser_set_deflate(ws_parser_t *p) { p->deflate = 1; }

/* Every other field is written before it is read again: frame_len, opcode, fin
 * and mask by the next header, frame_pos and ctrl_len when its payload starts;
 * msg_len, utf8_state and compressed were reset when the last message ended. */
bool ws_parser_at_rest(const ws_parser_t *p) {
    return p->state == ST_HEADER && p->hdr_len == 0 && p->msg_opcode == 0 && !p->failed &&
           !p->inflater && p->msg_len == 0;
}

uint64_t ws_parser_wire_limit(uint64_t max_message) {
    uint64_t slack = (max_message >> 3) + 1024;
    return max_message > UINT64_MAX - slack ? UINT64_MAX : max_message + slack;
}

static size_t fail(ws_parser_t *p, int err, ws_event_t *ev, size_t consumed) {
    drop_inflater(p); /* no more input will be read */
    p->failed = (uint8_t)err;
    error_event(p, ev);
    return consumed;
}

static bool is_control(unsigned op) {
    return op & 0x8;
}

/* Called once the frame length is known. Data frames count against the message
 * limit here, from the header alone, so an oversized message is refused before
 * any of its payload is read. */
static int check_length(ws_parser_t *p) {
    if (is_control(p->opcode)) return E_NONE;
    uint64_t limit = p->compressed ? ws_parser_wire_limit(p->max_message) : p->max_message;
    if (p->msg_len > limit || p->frame_len > limit - p->msg_len) return E_TOO_BIG;
    p->msg_len += p->frame_len;
    return E_NONE;
}

/* Runs when hdr_len reaches hdr_need. Either raises hdr_need for the next header
 * stage or leaves it equal to hdr_len, meaning the header is complete. */
static int header_step(ws_parser_t *p) {
    unsigned b1 = p->hdr[1];
    unsigned len7 = b1 & 0x7f;
    unsigned ext = len7 == 126 ? 2 : len7 == 127 ? 8 : 0;

    if (p->hdr_need == 2) {
        unsigned b0 = p->hdr[0];
        if (b0 & 0x30) return E_RSV; /* RSV2/RSV3: no extension defines them */
        unsigned op = b0 & 0x0f;
        /* RSV1 is permessage-deflate's "compressed" bit: allowed only once it was
         * negotiated, and only on the first frame of a data message (RFC 7692 6). */
        if (b0 & 0x40) {
            if (!p->deflate) return E_RSV;
            if (op != WS_OP_TEXT && op != WS_OP_BINARY) return E_RSV1_FRAME;
        }
        p->opcode = (uint8_t)op;
        p->fin = (uint8_t)(b0 >> 7);
        switch (op) {
        case WS_OP_CONT:
            if (!p->msg_opcode) return E_CONT_NO_MESSAGE;
            break;
        case WS_OP_TEXT:
        case WS_OP_BINARY:
            if (p->msg_opcode) return E_MESSAGE_IN_PROGRESS;
            p->compressed = (uint8_t)((b0 & 0x40) != 0); /* before check_length */
            break;
        case WS_OP_CLOSE:
        case WS_OP_PING:
        case WS_OP_PONG:
            if (!p->fin) return E_CTRL_FRAGMENTED;
            if (len7 > 125) return E_CTRL_TOO_LONG;
            if (op == WS_OP_CLOSE && len7 == 1) return E_CLOSE_LEN1;
            break;
        default:
            return E_OPCODE;
        }
        if (!(b1 & 0x80)) return E_UNMASKED;
        if (ext) {
            p->hdr_need = (uint8_t)(2 + ext);
            return E_NONE;
        }
        p->frame_len = len7;
        p->hdr_need = 6;
        return check_length(p);
    }

    if (ext && p->hdr_need == 2 + ext) {
        uint64_t v = 0;
        for (unsigned i = 0; i < ext; i++) v = (v << 8) | p->hdr[2 + i];
        if (ext == 8 && (v >> 63)) return E_LEN_TOP_BIT;
        if (v < (ext == 2 ? 126u : 65536u)) return E_LEN_NOT_MINIMAL;
        p->frame_len = v;
        p->hdr_need = (uint8_t)(p->hdr_need + 4);
        return check_length(p);
    }

    memcpy(p->mask, p->hdr + p->hdr_need - 4, 4);
    return E_NONE;
}

/* XOR with the mask, eight bytes at a time; off is the payload offset mod 4. */
static void unmask(uint8_t *d, size_t n, const uint8_t mask[4], unsigned off) {
    uint8_t m8[8];
    for (unsigned i = 0; i < 8; i++) m8[i] = mask[(off + i) & 3];
    uint64_t mw;
    memcpy(&mw, m8, 8);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, d + i, 8);
        w ^= mw;
        memcpy(d + i, &w, 8);
    }
    for (; i < n; i++) d[i] ^= m8[i & 7];
}

/* Inflates (validates) the next unmasked bytes of a compressed message; the
 * inflater is made at its first bytes (or at its end, for an empty message). */
static int inflate_span(ws_parser_t *p, const uint8_t *span, size_t n, bool fin) {
    if (!p->inflater) {
        p->inflater = ws_inflater_new(p->max_message, p->msg_opcode == WS_OP_TEXT);
        if (!p->inflater) return E_INFLATE_NOMEM;
    }
    switch (ws_inflater_feed(p->inflater, span, n, fin)) {
    case WS_INFLATE_OK: return E_NONE;
    case WS_INFLATE_TOO_BIG: return E_TOO_BIG;
    case WS_INFLATE_UTF8: return E_UTF8;
    default: return E_INFLATE;
    }
}

/* The whole payload of the current frame has been read. */
static int frame_done(ws_parser_t *p, ws_event_t *ev) {
    switch (p->opcode) {
    case WS_OP_PING:
    case WS_OP_PONG:
        ev->type = p->opcode == WS_OP_PING ? WS_EVENT_PING : WS_EVENT_PONG;
        ev->payload = p->ctrl;
        ev->payload_len = p->ctrl_len;
        return E_NONE;
    case WS_OP_CLOSE:
        if (p->ctrl_len == 0) {
            ev->close_code = WS_CLOSE_NO_STATUS;
        } else {
            uint16_t code = (uint16_t)(p->ctrl[0] << 8 | p->ctrl[1]);
            if (!ws_close_code_valid(code)) return E_CLOSE_CODE;
            if (!utf8_valid(p->ctrl + 2, p->ctrl_len - 2u)) return E_CLOSE_UTF8;
            ev->close_code = code;
        }
        ev->type = WS_EVENT_CLOSE;
        ev->payload = p->ctrl_len ? p->ctrl + 2 : p->ctrl;
        ev->payload_len = p->ctrl_len ? p->ctrl_len - 2u : 0;
        p->state = ST_CLOSED;
        return E_NONE;
    default: /* data frame */
        if (!p->fin) return E_NONE;
        if (p->compressed) {
            int e = inflate_span(p, NULL, 0, true);
            if (e) return e;
            ev->message_len = ws_inflater_total(p->inflater);
            drop_inflater(p);
            p->compressed = 0;
        } else {
            if (p->msg_opcode == WS_OP_TEXT && p->utf8_state != UTF8_ACCEPT) return E_UTF8_TRUNCATED;
            ev->message_len = p->msg_len;
        }
        ev->type = WS_EVENT_MESSAGE;
        ev->opcode = p->msg_opcode;
        p->msg_opcode = 0;
        p->msg_len = 0;
        p->utf8_state = UTF8_ACCEPT;
        return E_NONE;
    }
}

size_t ws_parser_feed(ws_parser_t *p, uint8_t *data, size_t len, ws_event_t *ev) {
    memset(ev, 0, sizeof *ev);
    if (p->failed) {
        error_event(p, ev);
        return 0;
    }
    if (p->state == ST_CLOSED) return len; /* nothing may follow a close: discard */

    size_t pos = 0;
    for (;;) {
        if (p->state == ST_HEADER) {
            while (p->hdr_len < p->hdr_need) {
                if (pos == len) return pos;
                size_t take = (size_t)(p->hdr_need - p->hdr_len);
                if (take > len - pos) take = len - pos;
                memcpy(p->hdr + p->hdr_len, data + pos, take);
                p->hdr_len = (uint8_t)(p->hdr_len + take);
                pos += take;
                if (p->hdr_len == p->hdr_need) {
                    int e = header_step(p);
                    if (e) return fail(p, e, ev, pos);
                }
            }
            if (!is_control(p->opcode) && p->opcode != WS_OP_CONT) {
                p->msg_opcode = p->opcode;
                p->utf8_state = UTF8_ACCEPT;
            }
            p->state = ST_PAYLOAD;
            p->frame_pos = 0;
            p->ctrl_len = 0;
        }

        uint64_t left = p->frame_len - p->frame_pos;
        size_t n = left < (uint64_t)(len - pos) ? (size_t)left : len - pos;
        if (n) {
            uint8_t *span = data + pos;
            unsigned off = (unsigned)(p->frame_pos & 3);
            if (is_control(p->opcode)) {
                uint8_t *dst = p->ctrl + p->ctrl_len;
                for (size_t i = 0; i < n; i++) dst[i] = span[i] ^ p->mask[(off + i) & 3];
                p->ctrl_len = (uint8_t)(p->ctrl_len + n);
            } else if (p->compressed) {
                unmask(span, n, p->mask, off);
                int e = inflate_span(p, span, n, false);
                if (e) return fail(p, e, ev, pos + n);
            } else if (p->msg_opcode == WS_OP_TEXT) {
                unmask(span, n, p->mask, off);
                p->utf8_state = utf8_feed(p->utf8_state, span, n);
                if (p->utf8_state == UTF8_REJECT) return fail(p, E_UTF8, ev, pos + n);
            }
            pos += n;
            p->frame_pos += n;
        }
        if (p->frame_pos < p->frame_len) return pos; /* input exhausted mid-payload */

        p->state = ST_HEADER;
        p->hdr_len = 0;
        p->hdr_need = 2;
        int e = frame_done(p, ev);
        if (e) return fail(p, e, ev, pos);
        if (ev->type != WS_EVENT_NONE) return pos;
    }
}

size_t ws_frame_header(uint8_t out[WS_FRAME_HEADER_MAX], int opcode, uint64_t payload_len) {
    out[0] = (uint8_t)(0x80 | (opcode & 0x0f));
    if (payload_len < 126) {
        out[1] = (uint8_t)payload_len;
        return 2;
    }
    if (payload_len <= 0xffff) {
        out[1] = 126;
        out[2] = (uint8_t)(payload_len >> 8);
        out[3] = (uint8_t)payload_len;
        return 4;
    }
    out[1] = 127;
    for (int i = 0; i < 8; i++) out[2 + i] = (uint8_t)(payload_len >> (56 - 8 * i));
    return 10;
}

size_t ws_close_payload(uint8_t out[125], uint16_t code, const char *reason) {
    out[0] = (uint8_t)(code >> 8);
    out[1] = (uint8_t)code;
    if (!reason) return 2;
    size_t n = strnlen(reason, 124);
    if (n > 123) {
        n = 123;
        /* Back up to the start of the code point that straddles the cut. */
        while (n > 0 && ((uint8_t)reason[n] & 0xC0) == 0x80) n--;
    }
    /* A peer must fail the connection on a bad reason, so never send one. */
    if (!utf8_valid((const uint8_t *)reason, n)) return 2;
    memcpy(out + 2, reason, n);
    return 2 + n;
}

bool ws_close_code_valid(uint16_t code) {
    if (code >= 3000 && code <= 4999) return true;       /* registered / private use */
    if (code >= 1000 && code <= 1003) return true;
    return code >= 1007 && code <= 1014;                 /* 1012-1014: IANA registry */
}
