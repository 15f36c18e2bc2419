/* ws.h: the server side of a WebSocket connection (RFC 6455), sans-IO, on wslay.
 *
 * Two parts, neither touching a socket, a clock or Python:
 *
 *   the opening handshake   gc__ws_handshake_check()  a parsed HTTP/1.1 request
 *                                                      (http/parser.h) -> what is wrong
 *                                                      with it, or the key and offers
 *                           gc__ws_accept_key()        Sec-WebSocket-Accept
 *                           gc__ws_write_101()         the 101 Switching Protocols head
 *
 *   the framing (a session) bytes in   gc__ws_feed()  -> on_message / on_close /
 *                                                         on_ping / on_pong
 *                           bytes out  gc__ws_send_message(), gc__ws_send_ping(),
 *                                      gc__ws_close() queue; gc__ws_send_into()
 *                                      drains the frames into the caller's buffer
 *
 * wslay's event API does the framing and most of RFC 6455's checks (masking, RSV bits,
 * reserved opcodes, control frames fragmented or over 125 bytes, continuation frames
 * out of place, UTF-8 of text messages, the message size limit, automatic pongs). This
 * layer adds what wslay leaves to its user or does differently: a frame size limit,
 * the close frame's own checks (a one-byte payload, the close code table with
 * 1012-1014 allowed, the reason's UTF-8 checked whatever the chunking), the close
 * handshake's state, a 1002 close for the protocol errors wslay ends with an empty
 * close frame, and a close frame sent after the messages queued before it.
 * tests/unit/test_ws.c drives it with a wslay client in memory and with hand-made
 * frames.
 *
 * Memory is bounded: an incoming message is held whole (wslay buffers it) but never
 * past max_message bytes; outgoing frames stay queued until gc__ws_send_into(), and
 * gc__ws_queued_bytes() tells the caller how many, so it can stop producing.
 *
 * Threads: a session is used from one thread. */
#ifndef GC_WS_WS_H
#define GC_WS_WS_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "http/parser.h"

/* Opcodes of messages (RFC 6455 section 5.2). */
enum {
    GC_WS_TEXT = 0x1,
    GC_WS_BINARY = 0x2,
    GC_WS_CLOSE = 0x8,
    GC_WS_PING = 0x9,
    GC_WS_PONG = 0xa,
};

/* Close codes this layer sends (RFC 6455 section 7.4.1). */
enum {
    GC_WS_CLOSE_NORMAL = 1000,
    GC_WS_CLOSE_GOING_AWAY = 1001,
    GC_WS_CLOSE_PROTOCOL_ERROR = 1002,
    GC_WS_CLOSE_NO_STATUS = 1005, /* reported by on_close for an empty close frame */
    GC_WS_CLOSE_ABNORMAL = 1006,  /* reported by gc__ws_close_code_received: none came */
    GC_WS_CLOSE_INVALID_DATA = 1007,
    GC_WS_CLOSE_TOO_BIG = 1009,
    GC_WS_CLOSE_INTERNAL_ERROR = 1011,
};

/* ---------------------------------------------------------------------------------- */
/* The opening handshake (RFC 6455 section 4.2).                                       */

#define GC_WS_MAX_OFFERS 16 /* subprotocols, and extensions, a request may offer */

typedef struct {
    /* 0 when the request is a valid WebSocket opening handshake; otherwise the status
     * to answer (400; 426 for a version other than 13, to be answered with the header
     * "Sec-WebSocket-Version: 13") and a static message saying why. */
    int status;
    const char *error;
    /* The fields below borrow the request's head and are valid while it lives. */
    gc__view_t key; /* Sec-WebSocket-Key, trimmed */
    /* Sec-WebSocket-Protocol: the offered subprotocols in order, from every such field. */
    gc__view_t protocols[GC_WS_MAX_OFFERS];
    size_t nprotocols;
    /* Sec-WebSocket-Extensions: each offered extension with its parameters as sent
     * ("permessage-deflate; client_max_window_bits"), split on commas. */
    gc__view_t extensions[GC_WS_MAX_OFFERS];
    size_t nextensions;
} gc__ws_handshake_t;

/* Checks that `req` (borrowed) opens a WebSocket: GET, HTTP/1.1 or later, a Host,
 * "Upgrade: websocket", "upgrade" among the Connection tokens, a Sec-WebSocket-Key of
 * 24 base64 characters that decode to 16 bytes, and Sec-WebSocket-Version 13. Fills
 * `hs`; returns 0 when it is one, or hs->status. */
int gc__ws_handshake_check(const gc__http_request_t *req, gc__ws_handshake_t *hs);

#define GC_WS_ACCEPT_LEN 28 /* base64 of a SHA-1 */

/* Writes Sec-WebSocket-Accept for `key` (base64 of SHA-1 of key + the RFC's GUID) into
 * out, NUL-terminated. Returns 0 or -ENOMEM (OpenSSL could not hash). */
int gc__ws_accept_key(gc__view_t key, char out[GC_WS_ACCEPT_LEN + 1]);

/* Appends "HTTP/1.1 101 Switching Protocols" with Upgrade, Connection,
 * Sec-WebSocket-Accept for `key`, Sec-WebSocket-Protocol when `subprotocol` is not
 * NULL, then `nextra` extra fields given as name/value pairs (extra[2i] the name,
 * extra[2i+1] the value; borrowed), and the blank line. Returns 0, -EINVAL (a name
 * that is not a token, a value with CR, LF or NUL, a subprotocol that is not a token;
 * `out` is then unchanged) or -ENOMEM. */
int gc__ws_write_101(gc__buf_t *out, gc__view_t key, const char *subprotocol,
                     const gc__view_t *extra, size_t nextra);

/* ---------------------------------------------------------------------------------- */
/* The session.                                                                        */

typedef struct {
    /* A whole data message: GC_WS_TEXT (valid UTF-8) or GC_WS_BINARY. The bytes are
     * borrowed for the call. Required. */
    void (*on_message)(void *user, int opcode, const char *data, size_t len);
    /* The client's close frame, valid: code 1005 when it had no payload. The reply is
     * queued already (the same code echoed, or empty for an empty frame), unless the
     * server had sent its own close first. Required. */
    void (*on_close)(void *user, int code, const char *reason, size_t len);
    /* Optional: a ping (its pong is queued already) and a pong. */
    void (*on_ping)(void *user, const char *data, size_t len);
    void (*on_pong)(void *user, const char *data, size_t len);
} gc__ws_callbacks_t;

typedef struct {
    uint64_t max_message; /* bytes of one data message, fragments joined; over it: 1009 */
    uint64_t max_frame;   /* payload bytes of one frame; over it: 1009. 0: max_message */
} gc__ws_limits_t;

/* 1 MiB messages and frames. */
void gc__ws_limits_default(gc__ws_limits_t *l);

typedef struct gc__ws_session gc__ws_session_t;

/* Returns an owned session, or NULL when memory runs out. `cb` and `limits` are copied;
 * `user` is passed to every callback. */
gc__ws_session_t *gc__ws_session_new(const gc__ws_callbacks_t *cb, const gc__ws_limits_t *limits,
                                     void *user);
void gc__ws_session_free(gc__ws_session_t *s);

/* Hands bytes from the client (borrowed for the call) to the session; callbacks fire
 * from inside. Bytes that come after the connection has failed, or after the client's
 * close frame, are dropped; a close frame cut by the end of the bytes is copied (at
 * most 139 bytes) and read when the rest comes. Returns 0, or -ENOMEM: the session is
 * then unusable (the caller closes the connection). A protocol error is not an error
 * return: the session queues its close frame and gc__ws_closed() becomes 1 once it is
 * drained. */
int gc__ws_feed(gc__ws_session_t *s, const char *data, size_t len);

/* Queue a data message (GC_WS_TEXT or GC_WS_BINARY; the bytes are copied; text is not
 * checked), a ping (payload at most 125 bytes), or the server's close frame (code 1000
 * to 4999 of RFC 6455's table, reason at most 123 bytes of UTF-8; code 0 sends an empty
 * close frame). Return 0, -EINVAL (bad arguments), -EPIPE (a close frame has been
 * queued already: nothing more may be sent) or -ENOMEM. */
int gc__ws_send_message(gc__ws_session_t *s, int opcode, const char *data, size_t len);
int gc__ws_send_ping(gc__ws_session_t *s, const char *data, size_t len);
int gc__ws_close(gc__ws_session_t *s, int code, const char *reason, size_t len);

/* Appends every queued frame to `out`. Returns 0 or -ENOMEM. */
int gc__ws_send_into(gc__ws_session_t *s, gc__buf_t *out);
/* 1 when frames wait for gc__ws_send_into(). */
int gc__ws_want_write(const gc__ws_session_t *s);
/* Payload bytes queued and not yet drained: the back-pressure signal. */
size_t gc__ws_queued_bytes(const gc__ws_session_t *s);

/* 1 once a close frame has been received or queued: no more messages may be sent, or
 * none will be received. */
int gc__ws_closing(const gc__ws_session_t *s);
/* 1 when the caller should close the TCP connection once it has written what
 * gc__ws_send_into() gave: the close handshake finished both ways, or the session
 * failed (a protocol error, a limit) and its close frame has been drained. */
int gc__ws_closed(const gc__ws_session_t *s);
/* The code of the close frame drained (0 before; 1005 for an empty one), and of the
 * one received (1006 before). */
int gc__ws_close_code_sent(const gc__ws_session_t *s);
int gc__ws_close_code_received(const gc__ws_session_t *s);

#endif
