/* h2.h: the server side of an HTTP/2 connection, sans-IO, on nghttp2.
 *
 * nghttp2 does the framing, HPACK, flow control and most of RFC 9113's checks; this
 * layer turns what it reports into what the rest of gunicorn-c understands and back:
 *
 *   bytes in   gc__h2_feed()  -> on_request(stream)    a stream's head, as the same
 *                                                      gc__http_request_t the HTTP/1
 *                                                      parser makes (http/parser.h)
 *                             -> on_body_done(stream)  its body, complete (memory or a
 *                                                      spooled temporary file)
 *                             -> on_stream_close(stream, code)
 *   responses  gc__h2_respond(), gc__h2_send_data(), gc__h2_send_trailers() ...
 *   bytes out  gc__h2_want_write(), gc__h2_send_into()
 *
 * No sockets, no clock of its own beyond gc__monotonic_ms() for one rate limit, no
 * Python: the caller moves bytes, and tests/unit/test_h2.c drives it with an nghttp2
 * client session in memory.
 *
 * Threads: a session and its streams are used from one thread (the worker's loop). An
 * application running in another thread hands its response pieces to the loop, which
 * calls gc__h2_send_data() and friends.
 *
 * Stream lifetime. A stream object exists from its HEADERS frame. on_request hands it
 * to the caller, who holds it until gc__h2_stream_release(); until then the pointer
 * stays valid even after the stream closed (a client reset fires on_stream_close, and
 * later calls on it fail with -ECONNRESET). Streams never handed over (refused, reset
 * or malformed before their head was complete) are freed without any callback. Held
 * streams count toward max_concurrent_streams together with the open ones, so a client
 * that resets its streams at once cannot have more requests running than the limit
 * (CVE-2023-44487).
 *
 * Bad requests. RFC 9113 section 8.1.1 makes a malformed request a stream error:
 * nghttp2 answers those itself with RST_STREAM(PROTOCOL_ERROR) and the stream never
 * reaches on_request (missing or repeated pseudo-header fields, a pseudo-header after a
 * regular field, unknown pseudo-headers, neither :authority nor host, connection-specific
 * fields, TE other than "trailers", upper-case or invalid names, invalid values, a :path
 * that is not origin-form or "*"). One check comes after the head: DATA that disagrees
 * with content-length resets a stream already handed over (on_stream_close with
 * PROTOCOL_ERROR, and no on_body_done). Requests that
 * are well-formed HTTP/2 but break Gunicorn's limits or header policy do reach
 * on_request with stream->error_status set (400, 431, 500, 501) and error_msg: the
 * caller answers them with that status on that stream only, as an HTTP/1 worker would
 * answer the connection, and their body is discarded. */
#ifndef GC_H2_H2_H
#define GC_H2_H2_H

#include <stdint.h>
#include <sys/types.h>

#include "common/buf.h"
#include "http/parser.h"

/* HTTP/2 error codes (RFC 9113 section 7) the caller may use or see. */
enum {
    GC_H2_NO_ERROR = 0x0,
    GC_H2_PROTOCOL_ERROR = 0x1,
    GC_H2_INTERNAL_ERROR = 0x2,
    GC_H2_FLOW_CONTROL_ERROR = 0x3,
    GC_H2_STREAM_CLOSED = 0x5,
    GC_H2_REFUSED_STREAM = 0x7,
    GC_H2_CANCEL = 0x8,
    GC_H2_COMPRESSION_ERROR = 0x9,
    GC_H2_ENHANCE_YOUR_CALM = 0xb,
};

typedef struct {
    /* The four SETTINGS of Gunicorn's http2_* settings. */
    uint32_t max_concurrent_streams; /* 100 */
    uint32_t initial_window_size;    /* 65535; at most 2^31-1 */
    uint32_t max_frame_size;         /* 16384; 16384..16777215 */
    uint32_t max_header_list_size;   /* 65536 bytes as RFC 9113 counts them (name + value +
                                      * 32 per field), checked on the decoded fields; 0:
                                      * unlimited */
    /* limit_request_line (applied to the length of :path), limit_request_fields,
     * limit_request_field_size (a field counts as its HTTP/1 line "name: value\r\n" would,
     * so a request passes or fails the same on either protocol), the body spool
     * threshold and the header policy. Copied; `forward` stays borrowed and must outlive
     * the session. The HTTP/1-only switches (folding, casefold ...) are not used. */
    gc__http_limits_t http;
    /* In-memory body bytes the whole connection may hold: past it every stream's body
     * spills to its file, so that max_concurrent_streams bodies never hold
     * max_concurrent_streams times the spool threshold. 0: 4 x spool_threshold. */
    size_t body_memory;
    int trusted; /* the peer is a trusted front end (forward.h) */

    /* Defences; gc__h2_settings_default() sets nghttp2's defaults where it has them. */
    uint32_t reset_burst, reset_rate; /* client RST_STREAM: token bucket (1000, 33/s) */
    uint32_t bad_burst, bad_rate;     /* streams the client made us reset or refuse
                                       * (malformed, over a limit): token bucket (200,
                                       * 10/s); then GOAWAY(ENHANCE_YOUR_CALM) */
    uint32_t max_continuations;       /* CONTINUATION frames per header block (8) */
    uint32_t max_settings;            /* entries in one SETTINGS frame (32) */
    uint32_t max_outbound_ack;        /* SETTINGS/PING acks waiting to be sent (1000) */
    uint32_t max_deflate_table;       /* our HPACK encoder's dynamic table (4096) */
} gc__h2_settings_t;

/* Gunicorn's defaults (http2_* and limit_request_*) and the defences' defaults. */
void gc__h2_settings_default(gc__h2_settings_t *s);

typedef struct gc__h2_session gc__h2_session_t;

/* One request/response exchange. The fields above `priv` are the caller's to read (and
 * `user` to set); the codec owns the object (see "Stream lifetime" above). */
typedef struct gc__h2_stream {
    int32_t id;
    void *user; /* the caller's, never touched by the codec */
    /* The request, as http/parser.h describes it: HTTP/2.0 (version "HTTP/2.0"),
     * keep_alive 1, the target from :path, a "host" field from :authority when the
     * client sent no Host, cookie crumbs joined by "; " into one field (RFC 9113 8.2.3),
     * content_length from content-length (-1 without). Valid until release. */
    gc__http_request_t req;
    gc__view_t scheme;   /* :scheme (a view into req.head) */
    int error_status;    /* 0, or the status to answer (see "Bad requests" above) */
    char error_msg[256]; /* ... and Gunicorn's message for it */
    int weight;          /* RFC 7540 priority from the HEADERS frame: 1..256, 16 default */
    int32_t depends_on;  /* ... the stream it depends on, 0 default */
    int exclusive;       /* ... the exclusive flag */
    int body_done;       /* the whole body is in req.body (END_STREAM seen) */
    int body_error;      /* a negative errno: the body could not be stored (the stream
                          * was reset with INTERNAL_ERROR) */
    int closed;          /* the stream is closed; close_code says how */
    uint32_t close_code;

    struct gc__h2_stream_priv *priv; /* the codec's own */
} gc__h2_stream_t;

typedef struct {
    /* A stream's head is complete (END_HEADERS), with or without its body: check
     * stream->body_done, or wait for on_body_done. The caller holds the stream from now
     * on. Required. */
    void (*on_request)(void *user, gc__h2_stream_t *st);
    /* The body is complete (fires once for a held stream, right after on_request when
     * the HEADERS frame ended the stream; never if the stream closes first: see
     * on_stream_close). Optional. */
    void (*on_body_done)(void *user, gc__h2_stream_t *st);
    /* A held stream closed: code 0 when both sides finished, else the RST_STREAM or
     * GOAWAY code (GC_H2_CANCEL ... from the client). Optional; not called after
     * gc__h2_stream_release nor from gc__h2_free. */
    void (*on_stream_close)(void *user, gc__h2_stream_t *st, uint32_t code);
    /* nghttp2 took some of a stream's queued response bytes: `queued` bytes are left.
     * For back-pressure (see gc__h2_stream_queued). Optional. */
    void (*on_data_sent)(void *user, gc__h2_stream_t *st, size_t queued);
} gc__h2_callbacks_t;

/* A response header field for gc__h2_respond and friends. Borrowed for the call. */
typedef struct {
    gc__view_t name;
    gc__view_t value;
} gc__h2_header_t;

/* A server session that expects the client's connection preface (after TLS ALPN "h2",
 * or h2c with prior knowledge). Our SETTINGS are queued at once. The settings and
 * callbacks are copied; `user` is passed to every callback. Returns NULL when the
 * settings are out of range (the config layer has checked them) or on OOM. */
gc__h2_session_t *gc__h2_new(const gc__h2_settings_t *settings, const gc__h2_callbacks_t *cb,
                             void *user);
/* Frees the session and every stream, held ones too (no callback runs). */
void gc__h2_free(gc__h2_session_t *s);

/* h2c Upgrade (RFC 7540 section 3.2), right after gc__h2_new and before any feed: the
 * caller has parsed the whole HTTP/1.1 request (body included), will write "101
 * Switching Protocols" itself, then what gc__h2_send_into gives. `settings_b64` is the
 * HTTP2-Settings field value (base64url); `was_head`: the request was HEAD. The
 * request becomes stream 1, held by the caller as if on_request had fired: when
 * `req` is not NULL it is moved into the stream (the caller's struct is left empty,
 * safe to free or forget). Returns 0 and *out, or -EINVAL (bad HTTP2-Settings), -EPROTO
 * (not a fresh session) or -ENOMEM. */
int gc__h2_upgrade(gc__h2_session_t *s, gc__view_t settings_b64, int was_head,
                   gc__http_request_t *req, gc__h2_stream_t **out);

/* Feeds bytes read from the peer; callbacks run inside. Returns the bytes consumed (all
 * of them), or a negative error (bad preface, flood, a callback's failure): then take
 * what gc__h2_send_into still gives (a GOAWAY, when nghttp2 queued one), write it and
 * close the connection. */
ssize_t gc__h2_feed(gc__h2_session_t *s, const uint8_t *data, size_t len);

/* Whether frames are waiting to be sent (including response data nghttp2 can send now,
 * within the peer's flow-control windows). */
int gc__h2_want_write(const gc__h2_session_t *s);
/* Whether the session still wants to read. With gc__h2_want_write both 0, the
 * connection is finished (after a GOAWAY, or a fatal error) and may close. */
int gc__h2_want_read(const gc__h2_session_t *s);

/* Appends pending frames to `out` until it holds at least `max` bytes or nothing is
 * pending (so out->len stays below max plus one frame). Returns the bytes appended (0:
 * nothing to send) or a negative error (-ENOMEM, or a fatal session error: close). */
ssize_t gc__h2_send_into(gc__h2_session_t *s, gc__buf_t *out, size_t max);

/* Whether no stream is open or held: a connection that is stopping may close. */
int gc__h2_idle(const gc__h2_session_t *s);

/* Whether gc__h2_goaway's PING is still unanswered: the client may have opened streams
 * that are still on their way, so a stopping connection must not close yet, idle or
 * not (the last-call timer bounds the wait for a client that never answers). */
int gc__h2_draining(const gc__h2_session_t *s);

/* Graceful stop (RFC 9113 section 6.8): sends GOAWAY(NO_ERROR) with the last stream id
 * 2^31-1 and a PING; when the PING's ACK arrives (the client has seen the GOAWAY, so no
 * stream it opens later was in flight), the final GOAWAY with the last stream id
 * actually processed follows. Streams already open run to their end; new ones are
 * refused. Close when gc__h2_idle, no longer gc__h2_draining and nothing is left to
 * write (or at the graceful timeout). Returns 0 or a negative error; a second call does nothing. */
int gc__h2_goaway(gc__h2_session_t *s);
/* Ends the session now with GOAWAY(code); nothing more is read. */
int gc__h2_terminate(gc__h2_session_t *s, uint32_t code);

/* The response head on a held stream: `status` (100..599 but not 1xx here), then
 * fields. Names are lower-cased; connection-specific fields (connection, keep-alive,
 * proxy-connection, transfer-encoding, upgrade) are dropped, as HTTP/2 forbids them.
 * With end_stream the response has no body; otherwise the body follows with
 * gc__h2_send_data. Returns 0, -EINVAL (bad status, name or value: nothing was sent),
 * -EALREADY (a response was already started), -ECONNRESET (the stream is closed) or
 * -ENOMEM. */
int gc__h2_respond(gc__h2_session_t *s, gc__h2_stream_t *st, int status, const gc__h2_header_t *h,
                   size_t n, int end_stream);
/* An informational response (103 Early Hints) before the final one. Same returns;
 * -EINVAL also for a status outside 100..199 or 101. */
int gc__h2_send_informational(gc__h2_session_t *s, gc__h2_stream_t *st, int status,
                              const gc__h2_header_t *h, size_t n);
/* Queues body bytes (copied) for the stream's response; `end` ends the body (with no
 * trailers, the stream too). The bytes of a response to HEAD, or of a 204 or 304, are
 * dropped (HTTP/2 frames carry no body there). Returns 0, -EPIPE (the body was already ended, or
 * there is no response head yet), -ECONNRESET (the stream closed: stop producing) or -ENOMEM. */
int gc__h2_send_data(gc__h2_session_t *s, gc__h2_stream_t *st, const void *data, size_t len,
                     int end);
/* Ends the body with trailer fields (gunicorn.http2.send_trailers): sent after the
 * queued bytes. Returns like gc__h2_send_data, and -EINVAL for a bad field. */
int gc__h2_send_trailers(gc__h2_session_t *s, gc__h2_stream_t *st, const gc__h2_header_t *h,
                         size_t n);
/* Response body bytes queued and not yet taken by nghttp2 (the peer's window may hold
 * them back). The caller makes the application wait while this is above its mark, and
 * resumes it from on_data_sent. */
size_t gc__h2_stream_queued(const gc__h2_stream_t *st);
/* Resets a stream with RST_STREAM(code), e.g. INTERNAL_ERROR when the application
 * failed after its response head went out. Returns 0 or a negative error. */
int gc__h2_reset(gc__h2_session_t *s, gc__h2_stream_t *st, uint32_t code);
/* The caller is done with a held stream: the pointer must not be used again. A
 * response not yet ended is reset (INTERNAL_ERROR); one that is ended is still sent. */
void gc__h2_stream_release(gc__h2_session_t *s, gc__h2_stream_t *st);

/* Counters, for logs and tests. */
typedef struct {
    uint64_t requests;      /* heads handed over */
    uint64_t refused;       /* streams refused: over the concurrency limit or stopping */
    uint64_t bad;           /* streams reset or answered as malformed or over a limit */
    uint64_t client_resets; /* RST_STREAM received */
    int streams;            /* stream objects alive (open or held) */
    int held;               /* ... of which the caller holds */
    size_t body_memory;     /* request body bytes held in memory */
} gc__h2_stats_t;
void gc__h2_stats(const gc__h2_session_t *s, gc__h2_stats_t *out);

#endif
