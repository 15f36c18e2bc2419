/* ws.c: the WebSocket opening handshake and a server session on wslay's event API.
 *
 * wslay's event context is made to work over memory: its recv callback reads from the
 * bytes gc__ws_feed() was given, its send callback appends to the buffer
 * gc__ws_send_into() was given, and it never sees a socket. Whole messages come from
 * its on_msg_recv callback (it buffers them, up to max_message); its frame callbacks
 * let us see each frame's head (the frame size limit) and each close frame's payload.
 *
 * What we do beside wslay, and why:
 *   - Close frames. wslay 1.1.1 treats a one-byte close payload as "no status",
 *     refuses 1012-1014 (registered by IANA since RFC 6455: service restart, try again
 *     later, bad gateway), and answers a reason that is not UTF-8 with 1007 where a bad
 *     close payload is a protocol error (1002). Worse, it checks the reason's UTF-8
 *     from the third byte of *every* chunk of the frame, so a frame split by TCP
 *     inside the reason is checked wrongly: a valid reason may be refused, an invalid
 *     one let through. So a close frame goes to wslay whole: the bytes handed to it
 *     are followed frame by frame (scan(): each head's opcode and length, nothing
 *     else), and a close frame the input ends inside is held back (at most 139 bytes)
 *     until the rest comes. We check every close frame at its end (on_frame_recv_end
 *     runs before wslay's own checks) and queue our answer first: wslay's later
 *     attempt to queue a close is then refused by wslay itself (one close per
 *     connection).
 *   - Protocol errors found by wslay's frame layer (a fragmented control frame, one
 *     over 125 bytes, a length with the top bit set) make wslay_event_recv fail and
 *     queue an *empty* close frame. We stop wslay's writing instead and append a 1002
 *     close frame made with wslay's frame API, so the client learns why; the same for a
 *     close reason wslay refused as UTF-8 (its 1007 is queued, not yet written).
 *   - A close frame goes after the data frames queued before it: wslay sends control
 *     frames first (queue_close_last).
 *   - Frames are drained whole: our send callback takes every byte it is offered, so
 *     between two calls no frame is half written, and switching to our own close frame
 *     never cuts one.
 * UTF-8 of text messages (1007), masking, RSV bits, reserved opcodes, continuation
 * frames out of place (1002) and the message limit (1009) are wslay's; tests/unit/
 * test_ws.c checks each of them through this layer. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <wslay/wslay.h>

#include "common/json.h"
#include "http/response.h"
#include "ws/ws.h"

/* ---------------------------------------------------------------------------------- */
/* The opening handshake.                                                              */

static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static gc__view_t trim(gc__view_t v)
{
    while (v.len > 0 && is_ows(v.base[0])) {
        v.base++;
        v.len--;
    }
    while (v.len > 0 && is_ows(v.base[v.len - 1]))
        v.len--;
    return v;
}

/* Splits a comma-separated list and calls `each` on every non-empty trimmed element;
 * stops early (returning 1) when `each` does. */
static int each_element(gc__view_t v, int (*each)(gc__view_t, void *), void *arg)
{
    size_t start = 0;
    for (size_t i = 0; i <= v.len; i++) {
        if (i == v.len || v.base[i] == ',') {
            gc__view_t el = trim(gc__view(v.base + start, i - start));
            if (el.len > 0 && each(el, arg))
                return 1;
            start = i + 1;
        }
    }
    return 0;
}

static int token_is(gc__view_t el, void *lower)
{
    return gc__view_ieq(el, lower);
}

/* 1 when some field named `name` holds the token `lower` in its comma-separated list. */
static int has_token(const gc__http_request_t *r, const char *name, const char *lower)
{
    for (size_t i = 0; i < r->nfields; i++)
        if (gc__view_ieq(gc__http_field_name(r, i), name) &&
            each_element(gc__http_field_value(r, i), token_is, (void *)lower))
            return 1;
    return 0;
}

typedef struct {
    gc__view_t *into;
    size_t *n;
    int overflow;
} offers_t;

static int add_offer(gc__view_t el, void *arg)
{
    offers_t *o = arg;
    if (*o->n == GC_WS_MAX_OFFERS) {
        o->overflow = 1;
        return 1;
    }
    o->into[(*o->n)++] = el;
    return 0;
}

/* Collects the elements of every field named `name`; 0, or -1 past GC_WS_MAX_OFFERS. */
static int collect(const gc__http_request_t *r, const char *name, gc__view_t *into, size_t *n)
{
    offers_t o = {into, n, 0};
    *n = 0;
    for (size_t i = 0; i < r->nfields && !o.overflow; i++)
        if (gc__view_ieq(gc__http_field_name(r, i), name))
            each_element(gc__http_field_value(r, i), add_offer, &o);
    return o.overflow ? -1 : 0;
}

static int refuse(gc__ws_handshake_t *hs, int status, const char *why)
{
    hs->status = status;
    hs->error = why;
    return status;
}

int gc__ws_handshake_check(const gc__http_request_t *req, gc__ws_handshake_t *hs)
{
    memset(hs, 0, sizeof(*hs));
    if (!gc__view_ieq(gc__http_method(req), "get"))
        return refuse(hs, 400, "WebSocket handshake: method is not GET");
    if (req->major != 1 || req->minor < 1)
        return refuse(hs, 400, "WebSocket handshake: HTTP/1.1 required");
    if (gc__http_find_field(req, "host") < 0)
        return refuse(hs, 400, "WebSocket handshake: no Host");
    if (!has_token(req, "upgrade", "websocket"))
        return refuse(hs, 400, "WebSocket handshake: no \"Upgrade: websocket\"");
    if (!has_token(req, "connection", "upgrade"))
        return refuse(hs, 400, "WebSocket handshake: Connection lacks \"upgrade\"");

    /* Exactly one version field, exactly "13" (RFC 6455 4.2.2: otherwise 426 and the
     * versions we speak). */
    ssize_t v = gc__http_find_field(req, "sec-websocket-version");
    if (v < 0 || !gc__view_ieq(trim(gc__http_field_value(req, (size_t)v)), "13"))
        return refuse(hs, 426, "WebSocket handshake: Sec-WebSocket-Version must be 13");

    ssize_t k = gc__http_find_field(req, "sec-websocket-key");
    if (k < 0)
        return refuse(hs, 400, "WebSocket handshake: no Sec-WebSocket-Key");
    for (size_t i = (size_t)k + 1; i < req->nfields; i++)
        if (gc__view_ieq(gc__http_field_name(req, i), "sec-websocket-key"))
            return refuse(hs, 400, "WebSocket handshake: more than one Sec-WebSocket-Key");
    gc__view_t key = trim(gc__http_field_value(req, (size_t)k));
    /* 16 bytes in base64: 22 characters and "==". EVP_DecodeBlock checks the alphabet
     * and returns 18 (the padding decodes to two zero bytes). */
    unsigned char raw[24];
    if (key.len != 24 || key.base[22] != '=' || key.base[23] != '=' ||
        EVP_DecodeBlock(raw, (const unsigned char *)key.base, 24) != 18)
        return refuse(hs, 400, "WebSocket handshake: Sec-WebSocket-Key is not 16 bytes in base64");
    hs->key = key;

    if (collect(req, "sec-websocket-protocol", hs->protocols, &hs->nprotocols) < 0)
        return refuse(hs, 400, "WebSocket handshake: too many subprotocols offered");
    for (size_t i = 0; i < hs->nprotocols; i++)
        if (!gc__http_is_token(hs->protocols[i]))
            return refuse(hs, 400, "WebSocket handshake: a subprotocol is not a token");
    if (collect(req, "sec-websocket-extensions", hs->extensions, &hs->nextensions) < 0)
        return refuse(hs, 400, "WebSocket handshake: too many extensions offered");
    return 0;
}

int gc__ws_accept_key(gc__view_t key, char out[GC_WS_ACCEPT_LEN + 1])
{
    unsigned char digest[SHA_DIGEST_LENGTH];
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok = md != NULL && EVP_DigestInit_ex(md, EVP_sha1(), NULL) == 1 &&
             EVP_DigestUpdate(md, key.base, key.len) == 1 &&
             EVP_DigestUpdate(md, ws_guid, sizeof(ws_guid) - 1) == 1 &&
             EVP_DigestFinal_ex(md, digest, NULL) == 1;
    EVP_MD_CTX_free(md);
    if (!ok)
        return -ENOMEM;
    EVP_EncodeBlock((unsigned char *)out, digest, SHA_DIGEST_LENGTH);
    return 0;
}

static int value_ok(gc__view_t v)
{
    for (size_t i = 0; i < v.len; i++)
        if (v.base[i] == '\r' || v.base[i] == '\n' || v.base[i] == '\0')
            return 0;
    return 1;
}

int gc__ws_write_101(gc__buf_t *out, gc__view_t key, const char *subprotocol,
                     const gc__view_t *extra, size_t nextra)
{
    if (subprotocol != NULL && !gc__http_is_token(gc__view(subprotocol, strlen(subprotocol))))
        return -EINVAL;
    for (size_t i = 0; i < nextra; i++)
        if (!gc__http_is_token(extra[2 * i]) || !value_ok(extra[2 * i + 1]))
            return -EINVAL;
    char accept[GC_WS_ACCEPT_LEN + 1];
    int rc = gc__ws_accept_key(key, accept);
    if (rc < 0)
        return rc;
    size_t before = out->len;
    rc = gc__buf_printf(out,
                        "HTTP/1.1 101 Switching Protocols\r\n"
                        "Upgrade: websocket\r\n"
                        "Connection: Upgrade\r\n"
                        "Sec-WebSocket-Accept: %s\r\n",
                        accept);
    if (rc == 0 && subprotocol != NULL)
        rc = gc__buf_printf(out, "Sec-WebSocket-Protocol: %s\r\n", subprotocol);
    for (size_t i = 0; rc == 0 && i < nextra; i++) {
        const gc__view_t *n = &extra[2 * i], *val = &extra[2 * i + 1];
        rc = gc__buf_printf(out, "%.*s: %.*s\r\n", (int)n->len, n->base, (int)val->len, val->base);
    }
    if (rc == 0)
        rc = gc__buf_append(out, "\r\n", 2);
    if (rc < 0)
        out->len = before;
    return rc;
}

/* ---------------------------------------------------------------------------------- */
/* The session.                                                                        */

/* A close frame must reach wslay in one piece (see "Close frames" above), so the
 * bytes handed to it are followed frame by frame: only each head is read, for the
 * frame's opcode and length. Frames wslay will refuse need no care, as long as the
 * count stays in step until then. */
typedef struct {
    uint8_t head[14];
    size_t have, need; /* head bytes seen, head bytes in all (2 until the second) */
    uint64_t left;     /* payload bytes still to come, once the head is whole */
    int in_payload;
    int close; /* the frame is a close frame wslay will read (at most 125 bytes) */
} scan_t;

static int scan_in_close(const scan_t *st)
{
    if (st->in_payload)
        return st->close;
    return st->have > 0 && (st->head[0] & 0x0f) == WSLAY_CONNECTION_CLOSE;
}

/* Moves `st` over the n bytes at p. With `hold`, stops before a close frame that does
 * not end within them and returns where it starts (st then stands there); otherwise,
 * or when none does, returns n. A close frame never spans two calls with `hold`, so
 * its start is always within p. */
static size_t scan(scan_t *st, const uint8_t *p, size_t n, int hold)
{
    scan_t at_frame = *st;
    size_t frame_pos = 0;
    size_t pos = 0;
    while (pos < n) {
        if (st->in_payload) {
            uint64_t k = st->left < n - pos ? st->left : n - pos;
            pos += (size_t)k;
            st->left -= k;
        } else {
            if (st->have == 0) {
                at_frame = *st;
                frame_pos = pos;
                st->need = 2;
            }
            st->head[st->have++] = p[pos++];
            if (st->have == 2) {
                uint8_t len7 = st->head[1] & 0x7f;
                st->need = 2 +
                           (len7 == 126   ? 2
                            : len7 == 127 ? 8
                                          : 0) +
                           ((st->head[1] & 0x80) ? 4 : 0);
            }
            if (st->have < st->need)
                continue;
            uint64_t len = st->head[1] & 0x7f;
            if (len >= 126) {
                size_t ext = len == 126 ? 2 : 8;
                len = 0;
                for (size_t i = 0; i < ext; i++)
                    len = (len << 8) | st->head[2 + i];
            }
            st->close = (st->head[0] & 0x0f) == WSLAY_CONNECTION_CLOSE && len <= 125;
            st->left = len;
            st->in_payload = 1;
            st->have = 0;
        }
        if (st->in_payload && st->left == 0)
            st->in_payload = 0;
    }
    if (hold && scan_in_close(st)) {
        *st = at_frame;
        return frame_pos;
    }
    return n;
}

struct gc__ws_session {
    wslay_event_context_ptr ctx;
    gc__ws_callbacks_t cb;
    gc__ws_limits_t limits;
    void *user;

    const uint8_t *in; /* gc__ws_feed's bytes, while it runs */
    size_t in_len;
    scan_t scan;     /* where the bytes handed to wslay are, frame by frame */
    gc__buf_t carry; /* the start of a close frame held back until it is whole */
    gc__buf_t *out;  /* where wslay's frames go: gc__ws_send_into's buffer, the stash */

    int frame_opcode; /* the frame being received (from on_frame_recv_start) */
    int in_close;     /* a close frame has started and not ended */
    char close_payload[125];
    size_t close_len;

    int failed;          /* we found a protocol error or a limit and queued our close */
    int broken;          /* out of memory: the caller must just close */
    int close_queued;    /* gc__ws_close() queued the server's close */
    int close_received;  /* a valid close frame came */
    int close_code_recv; /* ... its code (1005: none) */
    gc__buf_t stash;     /* frames drained early, so that a close goes after them */
    gc__buf_t tail;      /* our own 1002 close frame when wslay's writing was stopped */
    int tail_queued;     /* ... it was made */
    int tail_drained;    /* ... and drained */
};

void gc__ws_limits_default(gc__ws_limits_t *l)
{
    l->max_message = 1 << 20;
    l->max_frame = 1 << 20;
}

/* RFC 6455 7.4 and IANA's registry: the codes a close frame may carry. */
static int close_code_valid(int code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

/* A protocol error or a limit: queue our close frame (wslay refuses a second one, so
 * one queued earlier stays) and read nothing more. */
static void fail(gc__ws_session_t *s, int code)
{
    if (s->failed)
        return;
    s->failed = 1;
    wslay_event_queue_close(s->ctx, (uint16_t)code, NULL, 0);
    wslay_event_shutdown_read(s->ctx);
}

/* Queues a close frame after every data frame queued before it. wslay sends control
 * frames ahead of data frames, so a close queued behind a message would go first and
 * the message never: what is queued is drained into the stash first (it was counted
 * in gc__ws_queued_bytes already and stays counted until gc__ws_send_into). */
static int queue_close_last(gc__ws_session_t *s, int code, const char *reason, size_t len)
{
    if (wslay_event_want_write(s->ctx)) {
        gc__buf_t *saved = s->out;
        s->out = &s->stash;
        int r = wslay_event_send(s->ctx);
        s->out = saved;
        if (r != 0) {
            s->broken = 1;
            return WSLAY_ERR_NOMEM;
        }
    }
    return wslay_event_queue_close(s->ctx, (uint16_t)code, (const uint8_t *)reason, len);
}

static ssize_t on_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                       void *user_data)
{
    gc__ws_session_t *s = user_data;
    if (s->in_len == 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    size_t n = len < s->in_len ? len : s->in_len;
    size_t whole = scan(&s->scan, s->in, n, 1);
    if (whole == 0) {
        if (n < s->in_len) {
            /* A close frame longer than wslay's room: cannot happen (its buffer is
             * 4 KiB, nearly empty whenever it asks, a close frame at most 139 bytes),
             * but if it did, a cut close frame beats a stall. */
            scan(&s->scan, s->in, n, 0);
        } else {
            /* The input ends inside a close frame: keep it for the next feed. */
            if (gc__buf_append(&s->carry, s->in, n) < 0) {
                s->broken = 1;
                wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
                return -1;
            }
            s->in += n;
            s->in_len = 0;
            wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
            return -1;
        }
    } else {
        n = whole;
    }
    memcpy(buf, s->in, n);
    s->in += n;
    s->in_len -= n;
    return (ssize_t)n;
}

static ssize_t on_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                       void *user_data)
{
    gc__ws_session_t *s = user_data;
    if (s->out == NULL || gc__buf_append(s->out, data, len) < 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return (ssize_t)len;
}

static void on_frame_start(wslay_event_context_ptr ctx,
                           const struct wslay_event_on_frame_recv_start_arg *arg, void *user_data)
{
    gc__ws_session_t *s = user_data;
    if (s->failed)
        return;
    s->frame_opcode = arg->opcode;
    s->in_close = arg->opcode == WSLAY_CONNECTION_CLOSE;
    s->close_len = 0;
    if (arg->payload_length > s->limits.max_frame)
        fail(s, GC_WS_CLOSE_TOO_BIG);
    else if (arg->opcode == WSLAY_CONNECTION_CLOSE && arg->payload_length == 1)
        fail(s, GC_WS_CLOSE_PROTOCOL_ERROR); /* half a code */
}

static void on_frame_chunk(wslay_event_context_ptr ctx,
                           const struct wslay_event_on_frame_recv_chunk_arg *arg, void *user_data)
{
    gc__ws_session_t *s = user_data;
    if (s->failed || s->frame_opcode != WSLAY_CONNECTION_CLOSE)
        return;
    /* wslay's frame layer keeps control payloads to 125 bytes; stay safe anyway. */
    size_t room = sizeof(s->close_payload) - s->close_len;
    size_t n = arg->data_length < room ? arg->data_length : room;
    memcpy(s->close_payload + s->close_len, arg->data, n);
    s->close_len += n;
}

/* The end of a close frame, before wslay looks at it. */
static void on_frame_end(wslay_event_context_ptr ctx, void *user_data)
{
    gc__ws_session_t *s = user_data;
    if (s->failed || s->frame_opcode != WSLAY_CONNECTION_CLOSE)
        return;
    s->in_close = 0;
    int code = GC_WS_CLOSE_NO_STATUS;
    const char *reason = NULL;
    size_t reason_len = 0;
    if (s->close_len >= 2) {
        code = ((unsigned char)s->close_payload[0] << 8) | (unsigned char)s->close_payload[1];
        reason = s->close_payload + 2;
        reason_len = s->close_len - 2;
        if (!close_code_valid(code) || !gc__utf8_valid(reason, reason_len)) {
            fail(s, GC_WS_CLOSE_PROTOCOL_ERROR);
            return;
        }
    }
    s->close_received = 1;
    s->close_code_recv = code;
    /* The reply echoes the code (RFC 6455 5.5.1); wslay refuses it when our own close
     * went first, which is what the close handshake wants. */
    queue_close_last(s, code == GC_WS_CLOSE_NO_STATUS ? 0 : code, NULL, 0);
    wslay_event_shutdown_read(ctx);
    s->cb.on_close(s->user, code, reason, reason_len);
}

static void on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
                   void *user_data)
{
    gc__ws_session_t *s = user_data;
    if (s->failed)
        return;
    const char *data = (const char *)arg->msg;
    switch (arg->opcode) {
    case WSLAY_TEXT_FRAME:
    case WSLAY_BINARY_FRAME:
        s->cb.on_message(s->user, arg->opcode, data, arg->msg_length);
        break;
    case WSLAY_PING:
        if (s->cb.on_ping != NULL)
            s->cb.on_ping(s->user, data, arg->msg_length);
        break;
    case WSLAY_PONG:
        if (s->cb.on_pong != NULL)
            s->cb.on_pong(s->user, data, arg->msg_length);
        break;
    default: /* close frames are ours, in on_frame_end */
        break;
    }
}

gc__ws_session_t *gc__ws_session_new(const gc__ws_callbacks_t *cb, const gc__ws_limits_t *limits,
                                     void *user)
{
    gc__ws_session_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->cb = *cb;
    s->limits = *limits;
    if (s->limits.max_frame == 0 || s->limits.max_frame > s->limits.max_message)
        s->limits.max_frame = s->limits.max_message;
    s->user = user;
    s->close_code_recv = GC_WS_CLOSE_ABNORMAL;
    gc__buf_init(&s->stash);
    gc__buf_init(&s->tail);
    gc__buf_init(&s->carry);
    struct wslay_event_callbacks wcb = {
        .recv_callback = on_recv,
        .send_callback = on_send,
        .on_frame_recv_start_callback = on_frame_start,
        .on_frame_recv_chunk_callback = on_frame_chunk,
        .on_frame_recv_end_callback = on_frame_end,
        .on_msg_recv_callback = on_msg,
    };
    if (wslay_event_context_server_init(&s->ctx, &wcb, s) != 0) {
        free(s);
        return NULL;
    }
    wslay_event_config_set_max_recv_msg_length(s->ctx, s->limits.max_message);
    return s;
}

void gc__ws_session_free(gc__ws_session_t *s)
{
    if (s == NULL)
        return;
    wslay_event_context_free(s->ctx);
    gc__buf_free(&s->stash);
    gc__buf_free(&s->tail);
    gc__buf_free(&s->carry);
    free(s);
}

static ssize_t tail_send(const uint8_t *data, size_t len, int flags, void *user_data)
{
    gc__ws_session_t *s = user_data;
    return gc__buf_append(&s->tail, data, len) == 0 ? (ssize_t)len : WSLAY_ERR_NOMEM;
}

/* wslay_event_recv failed on a frame its frame layer refused: it queued an empty close
 * frame. Or it refused a close frame's reason as UTF-8 with 1007, a code meant for
 * messages (RFC 6455 7.4.1), where a bad close payload is a protocol error. Stop wslay's writing
 * (what was queued and not drained goes: the connection is being failed) and make our 1002 close
 * frame with wslay's frame API instead. */
static int fail_framing(gc__ws_session_t *s)
{
    s->failed = 1;
    wslay_event_shutdown_read(s->ctx);
    wslay_event_shutdown_write(s->ctx);
    if (wslay_event_get_close_sent(s->ctx))
        return 0; /* our close went out already: nothing more to say */
    struct wslay_frame_callbacks fcb = {.send_callback = tail_send};
    wslay_frame_context_ptr fctx;
    if (wslay_frame_context_init(&fctx, &fcb, s) != 0)
        return -ENOMEM;
    uint8_t payload[2] = {GC_WS_CLOSE_PROTOCOL_ERROR >> 8, GC_WS_CLOSE_PROTOCOL_ERROR & 0xff};
    struct wslay_frame_iocb iocb = {
        .fin = 1,
        .opcode = WSLAY_CONNECTION_CLOSE,
        .payload_length = sizeof(payload),
        .data = payload,
        .data_length = sizeof(payload),
    };
    ssize_t r = wslay_frame_send(fctx, &iocb);
    wslay_frame_context_free(fctx);
    if (r != (ssize_t)sizeof(payload))
        return -ENOMEM;
    s->tail_queued = 1;
    return 0;
}

/* Hands s->in to wslay until it is all taken or reading stops. */
static int pump_in(gc__ws_session_t *s)
{
    int rc = 0;
    /* wslay_event_recv stops at a short read of its recv callback, and ours is short
     * at the end of the input and before a close frame, so one call may leave bytes: go
     * on while it takes some. */
    while (s->in_len > 0 && wslay_event_get_read_enabled(s->ctx)) {
        size_t before = s->in_len;
        int r = wslay_event_recv(s->ctx);
        if (s->broken || r == WSLAY_ERR_NOMEM)
            rc = -ENOMEM;
        else if (r != 0)
            rc = fail_framing(s);
        else if (s->in_close && !s->failed && !wslay_event_get_read_enabled(s->ctx))
            rc = fail_framing(s); /* wslay refused the reason's UTF-8 with 1007 */
        if (r != 0 || s->failed || s->in_len == before)
            break;
    }
    return rc;
}

int gc__ws_feed(gc__ws_session_t *s, const char *data, size_t len)
{
    if (s->broken)
        return -ENOMEM;
    int rc = 0;
    if (s->carry.len > 0 && wslay_event_get_read_enabled(s->ctx)) {
        /* Complete the close frame held back (at most 139 bytes), then hand it over. */
        while (len > 0) {
            if (gc__buf_append(&s->carry, data, 1) < 0) {
                rc = -ENOMEM;
                goto out;
            }
            data++;
            len--;
            scan_t probe = s->scan;
            if (scan(&probe, (const uint8_t *)s->carry.data, s->carry.len, 1) > 0)
                break;
        }
        scan_t probe = s->scan;
        if (scan(&probe, (const uint8_t *)s->carry.data, s->carry.len, 1) == 0)
            return 0; /* still not whole: wait for more */
        gc__buf_t whole = s->carry;
        gc__buf_init(&s->carry);
        s->in = (const uint8_t *)whole.data;
        s->in_len = whole.len;
        rc = pump_in(s);
        gc__buf_free(&whole);
        if (rc < 0)
            goto out;
    }
    s->in = (const uint8_t *)data;
    s->in_len = len;
    rc = pump_in(s);
out:
    s->in = NULL;
    s->in_len = 0;
    if (rc < 0)
        s->broken = 1;
    return rc;
}

static int queue_result(int r)
{
    switch (r) {
    case 0:
        return 0;
    case WSLAY_ERR_NO_MORE_MSG:
        return -EPIPE;
    case WSLAY_ERR_NOMEM:
        return -ENOMEM;
    default:
        return -EINVAL;
    }
}

int gc__ws_send_message(gc__ws_session_t *s, int opcode, const char *data, size_t len)
{
    if (opcode != GC_WS_TEXT && opcode != GC_WS_BINARY)
        return -EINVAL;
    struct wslay_event_msg m = {(uint8_t)opcode, (const uint8_t *)data, len};
    return queue_result(wslay_event_queue_msg(s->ctx, &m));
}

int gc__ws_send_ping(gc__ws_session_t *s, const char *data, size_t len)
{
    if (len > 125)
        return -EINVAL;
    struct wslay_event_msg m = {WSLAY_PING, (const uint8_t *)data, len};
    return queue_result(wslay_event_queue_msg(s->ctx, &m));
}

int gc__ws_close(gc__ws_session_t *s, int code, const char *reason, size_t len)
{
    if (code == 0 ? len > 0 : !close_code_valid(code))
        return -EINVAL;
    if (len > 123 || !gc__utf8_valid(reason, len))
        return -EINVAL;
    int rc = queue_result(queue_close_last(s, code, reason, len));
    if (rc == 0)
        s->close_queued = 1;
    return rc;
}

int gc__ws_send_into(gc__ws_session_t *s, gc__buf_t *out)
{
    if (s->broken)
        return -ENOMEM;
    if (s->stash.len > 0) {
        if (gc__buf_append(out, s->stash.data, s->stash.len) < 0)
            return -ENOMEM; /* nothing lost: the stash stays for the next call */
        gc__buf_free(&s->stash);
    }
    s->out = out;
    int r = wslay_event_send(s->ctx);
    s->out = NULL;
    if (r != 0) {
        s->broken = 1;
        return -ENOMEM;
    }
    if (s->tail_queued && !s->tail_drained) {
        if (gc__buf_append(out, s->tail.data, s->tail.len) < 0) {
            s->broken = 1;
            return -ENOMEM;
        }
        s->tail_drained = 1;
        gc__buf_free(&s->tail);
    }
    return 0;
}

int gc__ws_want_write(const gc__ws_session_t *s)
{
    return s->stash.len > 0 || wslay_event_want_write(s->ctx) ||
           (s->tail_queued && !s->tail_drained);
}

size_t gc__ws_queued_bytes(const gc__ws_session_t *s)
{
    /* With wslay's writing stopped, what it still holds will never go. */
    size_t in_wslay =
        wslay_event_get_write_enabled(s->ctx) ? wslay_event_get_queued_msg_length(s->ctx) : 0;
    return in_wslay + s->stash.len + (s->tail_drained ? 0 : s->tail.len);
}

int gc__ws_closing(const gc__ws_session_t *s)
{
    /* wslay stops reading whenever it queues a close frame itself. */
    return s->failed || s->broken || s->close_received || s->close_queued ||
           !wslay_event_get_read_enabled(s->ctx) || !wslay_event_get_write_enabled(s->ctx);
}

int gc__ws_closed(const gc__ws_session_t *s)
{
    if (s->broken)
        return 1;
    /* wslay counts a close drained into the stash as sent: the caller has not had it. */
    if (s->stash.len > 0)
        return 0;
    int sent = wslay_event_get_close_sent(s->ctx) || s->tail_drained;
    return sent && !wslay_event_get_read_enabled(s->ctx);
}

int gc__ws_close_code_sent(const gc__ws_session_t *s)
{
    if (s->tail_drained)
        return GC_WS_CLOSE_PROTOCOL_ERROR;
    return wslay_event_get_close_sent(s->ctx) ? wslay_event_get_status_code_sent(s->ctx) : 0;
}

int gc__ws_close_code_received(const gc__ws_session_t *s)
{
    return s->close_code_recv;
}
