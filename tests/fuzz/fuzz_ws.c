/* fuzz_ws.c: a libFuzzer target for the WebSocket session (src/ws/ws.c).
 *
 * The input is what a client sends after the handshake: frames, masked or not, back to
 * back (the corpus, tests/fuzz/corpus-ws/, holds such bytes). The target feeds them to
 * a session three times: in one piece, in pieces whose sizes come from a hash of the
 * input, and one byte at a time; the server echoes every message (so the send path and
 * its queue run too) and drains its frames after each piece. It checks:
 *
 *   - that what the server writes is well-formed: unmasked frames, control payloads of
 *     at most 125 bytes, at most one close frame and nothing after it, its code one a
 *     server may send;
 *   - that messages handed over respect max_message, and text ones are valid UTF-8;
 *   - that the three runs agree on the messages, the close received and the code sent,
 *     and on gc__ws_closed() (wslay 1.1.1 alone fails this: it checks a close
 *     reason's UTF-8 afresh from the third byte of every piece of the frame, which
 *     the session works around by handing it close frames whole).
 *
 * A broken rule aborts. tests/fuzz/replay.c runs the corpus through the same entry
 * point in every build (ctest fuzz_corpus_ws). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "ws/ws.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_INPUT (256 * 1024)
#define MAX_MESSAGE 4096

typedef struct {
    gc__ws_session_t *s;
    uint64_t hash;       /* the data messages */
    uint64_t close_hash; /* the close: received, sent, closed */
    int messages, closes, close_code;
} run_t;

static void broken(const char *rule)
{
    fprintf(stderr, "fuzz_ws: broken rule: %s\n", rule);
    abort();
}

static uint64_t mix(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ULL;
    return h;
}

static void on_message(void *user, int opcode, const char *data, size_t len)
{
    run_t *r = user;
    if (len > MAX_MESSAGE)
        broken("a message over max_message");
    if (opcode == GC_WS_TEXT && !gc__utf8_valid(data, len))
        broken("a text message that is not UTF-8");
    if (opcode != GC_WS_TEXT && opcode != GC_WS_BINARY)
        broken("a message with a control opcode");
    r->messages++;
    r->hash = mix(r->hash, &opcode, sizeof(opcode));
    r->hash = mix(r->hash, data, len);
    int rc = gc__ws_send_message(r->s, opcode, data, len);
    if (rc != 0 && !gc__ws_closing(r->s))
        broken("an echo refused while the session is open");
}

static void on_close(void *user, int code, const char *reason, size_t len)
{
    run_t *r = user;
    r->closes++;
    r->close_code = code;
    r->close_hash = mix(r->close_hash, &code, sizeof(code));
    r->close_hash = mix(r->close_hash, reason, len);
}

/* Checks the server's frames in out (complete ones: the session drains whole frames). */
static void check_output(const gc__buf_t *out, int *close_sent)
{
    const uint8_t *p = (const uint8_t *)out->data;
    size_t off = 0;
    while (off < out->len) {
        if (*close_sent)
            broken("a frame after the server's close frame");
        if (out->len - off < 2)
            broken("a cut frame head");
        int opcode = p[off] & 0x0f;
        if (p[off] & 0x70)
            broken("RSV bits in a server frame");
        if (p[off + 1] & 0x80)
            broken("a masked server frame");
        uint64_t len = p[off + 1] & 0x7f;
        size_t h = 2;
        if (len == 126) {
            if (out->len - off < 4)
                broken("a cut frame head");
            len = ((uint64_t)p[off + 2] << 8) | p[off + 3];
            h = 4;
        } else if (len == 127) {
            if (out->len - off < 10)
                broken("a cut frame head");
            len = 0;
            for (int i = 0; i < 8; i++)
                len = (len << 8) | p[off + 2 + i];
            h = 10;
        }
        if (len > out->len - off - h)
            broken("a cut frame payload");
        if (opcode >= 0x8 && len > 125)
            broken("a control frame over 125 bytes");
        if (opcode == 0x8) {
            *close_sent = 1;
            if (len == 1)
                broken("a one-byte close payload");
        }
        off += h + (size_t)len;
    }
}

/* piece: bytes per feed; 0 takes sizes from the seed. */
static void run(const uint8_t *data, size_t size, size_t piece, uint64_t seed, run_t *r)
{
    memset(r, 0, sizeof(*r));
    r->hash = r->close_hash = 0xcbf29ce484222325ULL;
    gc__ws_callbacks_t cb = {.on_message = on_message, .on_close = on_close};
    gc__ws_limits_t limits = {.max_message = MAX_MESSAGE, .max_frame = (seed & 1) ? 512 : 0};
    r->s = gc__ws_session_new(&cb, &limits, r);
    if (r->s == NULL)
        broken("no session");
    gc__buf_t out;
    gc__buf_init(&out);
    int close_sent = 0;
    size_t off = 0;
    while (off < size) {
        size_t n = piece;
        if (n == 0) {
            seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
            n = 1 + (size_t)((seed >> 33) % 64);
        }
        if (n > size - off)
            n = size - off;
        if (gc__ws_feed(r->s, (const char *)data + off, n) != 0)
            broken("feed failed");
        off += n;
        if (gc__ws_send_into(r->s, &out) != 0)
            broken("send_into failed");
        if (gc__ws_queued_bytes(r->s) != 0)
            broken("bytes left queued after send_into");
    }
    check_output(&out, &close_sent);
    if (gc__ws_closed(r->s) && !close_sent)
        broken("closed without a close frame sent");
    if (r->closes > 1)
        broken("two close frames reported");
    r->close_hash = mix(r->close_hash, &close_sent, sizeof(close_sent));
    int sent = gc__ws_close_code_sent(r->s), closed = gc__ws_closed(r->s);
    r->close_hash = mix(r->close_hash, &sent, sizeof(sent));
    r->close_hash = mix(r->close_hash, &closed, sizeof(closed));
    gc__buf_free(&out);
    gc__ws_session_free(r->s);
    r->s = NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MAX_INPUT)
        size = MAX_INPUT;
    uint64_t seed = mix(0xcbf29ce484222325ULL, data, size);
    run_t whole, hashed, bytes;
    run(data, size, size ? size : 1, seed, &whole);
    run(data, size, 0, seed, &hashed);
    run(data, size, 1, seed, &bytes);
    if (whole.messages != hashed.messages || whole.messages != bytes.messages ||
        whole.hash != hashed.hash || whole.hash != bytes.hash)
        broken("the same messages however the bytes are split");
    if (whole.close_hash != hashed.close_hash || whole.close_hash != bytes.close_hash)
        broken("the same close however the bytes are split");
    return 0;
}
