/* test_tls.c: the TLS transport (src/net/tls.c) against a real OpenSSL client.
 *
 * Each test makes a non-blocking socketpair: one end is the server's transport, made
 * with gc__transport_tls on an SSL_CTX holding a key and a self-signed certificate the
 * test generates; the other end is a plain OpenSSL client SSL object. Both sides are
 * stepped in turn and waited for with poll(2) (short timeouts, never a sleep), the way
 * a worker's loop would drive them, so that every -EAGAIN and `want` the transport
 * reports is one a real connection would see. Every OpenSSL object the test makes is
 * freed again: the suite runs under LeakSanitizer in CI. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "net/tls.h"
#include "net/transport.h"
#include "unit.h"

/* How many poll rounds a handshake or a transfer may take before the test calls it
 * stuck; each round waits at most POLL_MS. */
#define MAX_ROUNDS 2000
#define POLL_MS 100

/* A key and the self-signed certificate made for it. */
typedef struct {
    EVP_PKEY *key;
    X509 *cert;
} identity_t;

/* Makes an EC P-256 key and a self-signed v3 certificate with subject and issuer
 * CN=cn and the given serial, valid from now for a day. */
static identity_t make_identity(const char *cn, uint64_t serial)
{
    identity_t id;
    id.key = EVP_EC_gen("P-256");
    ASSERT(id.key != NULL);
    id.cert = X509_new();
    ASSERT(id.cert != NULL);
    ASSERT_EQ_INT(X509_set_version(id.cert, X509_VERSION_3), 1);
    ASSERT_EQ_INT(ASN1_INTEGER_set_uint64(X509_get_serialNumber(id.cert), serial), 1);
    ASSERT(X509_gmtime_adj(X509_getm_notBefore(id.cert), -60) != NULL);
    ASSERT(X509_gmtime_adj(X509_getm_notAfter(id.cert), 24 * 60 * 60) != NULL);
    X509_NAME *name = X509_get_subject_name(id.cert);
    ASSERT_EQ_INT(
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0),
        1);
    ASSERT_EQ_INT(X509_set_issuer_name(id.cert, name), 1); /* self-signed */
    ASSERT_EQ_INT(X509_set_pubkey(id.cert, id.key), 1);
    ASSERT(X509_sign(id.cert, id.key, EVP_sha256()) > 0);
    return id;
}

static void free_identity(identity_t *id)
{
    X509_free(id->cert);
    EVP_PKEY_free(id->key);
    id->cert = NULL;
    id->key = NULL;
}

/* The server's context: its certificate and key, nothing else set. */
static SSL_CTX *server_ctx(const identity_t *id)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    ASSERT(ctx != NULL);
    ASSERT_EQ_INT(SSL_CTX_use_certificate(ctx, id->cert), 1);
    ASSERT_EQ_INT(SSL_CTX_use_PrivateKey(ctx, id->key), 1);
    ASSERT_EQ_INT(SSL_CTX_check_private_key(ctx), 1);
    return ctx;
}

/* The client's context: it trusts exactly the server's certificate and verifies it,
 * as a careful client would. */
static SSL_CTX *client_ctx(const identity_t *server)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    ASSERT(ctx != NULL);
    ASSERT_EQ_INT(X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), server->cert), 1);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    return ctx;
}

/* One connection: the server's transport on one end, the client's SSL on the other. */
typedef struct {
    gc__transport_t t;
    int cfd;
    SSL *client;
} conn_t;

static void set_nonblocking(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    ASSERT(fl >= 0);
    ASSERT_OK(fcntl(fd, F_SETFL, fl | O_NONBLOCK));
}

static void open_conn(conn_t *c, SSL_CTX *sctx, SSL_CTX *cctx, int suppress_ragged_eofs)
{
    int fds[2];
    ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds));
    set_nonblocking(fds[0]);
    set_nonblocking(fds[1]);
    gc__tls_options_t opt = {.suppress_ragged_eofs = suppress_ragged_eofs, .ktls = 0};
    ASSERT_OK(gc__transport_tls(&c->t, fds[0], sctx, &opt));
    ASSERT_EQ_INT(c->t.fd, fds[0]);
    c->cfd = fds[1];
    c->client = SSL_new(cctx);
    ASSERT(c->client != NULL);
    ASSERT_EQ_INT(SSL_set_fd(c->client, c->cfd), 1);
    SSL_set_connect_state(c->client);
}

/* Frees the client's side; the server's transport is closed by the test itself. */
static void close_client(conn_t *c)
{
    SSL_free(c->client);
    c->client = NULL;
    if (c->cfd >= 0)
        close(c->cfd);
    c->cfd = -1;
}

/* Waits until the server's socket is ready for `server_events` or the client's for
 * `client_events` (either may be 0), at most POLL_MS. */
static void wait_either(conn_t *c, int server_events, int client_events)
{
    struct pollfd p[2] = {{.fd = c->t.fd, .events = (short)server_events},
                          {.fd = c->cfd, .events = (short)client_events}};
    ASSERT(poll(p, 2, POLL_MS) >= 0);
}

/* What the client's last SSL call is waiting for, as poll events; fails the test on
 * anything but "want read" or "want write". */
static int client_wants(SSL *ssl, int rc)
{
    int e = SSL_get_error(ssl, rc);
    if (e == SSL_ERROR_WANT_READ)
        return POLLIN;
    ASSERT_EQ_INT(e, SSL_ERROR_WANT_WRITE);
    return POLLOUT;
}

/* Drives both handshakes until each is done or the server's fails. Returns the
 * server's result (1, or its negative errno); *client_rc gets the client's last
 * SSL_do_handshake result. After a success the client has also read what the server
 * sends after the handshake (TLS 1.3 session tickets), so that its socket holds no
 * unread bytes: a unix socket closed with unread bytes makes its peer see
 * ECONNRESET, not the end of the stream. */
static int handshake(conn_t *c, int *client_rc)
{
    int server = -EAGAIN;
    int client = 0;
    for (int round = 0; round < MAX_ROUNDS; round++) {
        int cwant = 0;
        if (client != 1) {
            ERR_clear_error();
            client = SSL_do_handshake(c->client);
            if (client != 1) {
                int e = SSL_get_error(c->client, client);
                if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
                    break; /* the client gave up: the server decides below */
                cwant = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
            }
        }
        if (server == -EAGAIN) {
            server = gc__tls_handshake(&c->t);
            if (server == -EAGAIN)
                ASSERT(c->t.want == POLLIN || c->t.want == POLLOUT);
        }
        if (server != -EAGAIN && server != 1) {
            *client_rc = client;
            return server;
        }
        if (server == 1 && client == 1) {
            unsigned char b;
            size_t n = 0;
            int rc = SSL_read_ex(c->client, &b, 1, &n);
            ASSERT_EQ_INT(rc, 0);
            ASSERT_EQ_INT(SSL_get_error(c->client, rc), SSL_ERROR_WANT_READ);
            int unread = -1;
            ASSERT_OK(ioctl(c->cfd, FIONREAD, &unread));
            ASSERT_EQ_INT(unread, 0);
            *client_rc = 1;
            return 1;
        }
        wait_either(c, server == 1 ? 0 : c->t.want, cwant);
    }
    *client_rc = client;
    /* The client failed while the server still waits: one more step tells why. */
    return server == -EAGAIN ? gc__tls_handshake(&c->t) : server;
}

static void handshake_ok(conn_t *c)
{
    int client_rc = 0;
    ASSERT_EQ_INT(handshake(c, &client_rc), 1);
    ASSERT_EQ_INT(client_rc, 1);
    ASSERT(gc__tls_established(&c->t));
    ASSERT_EQ_STR(gc__tls_error(&c->t), "");
}

/* Writes all of data[0..len) from the client (a few records at most here). */
static void client_write(conn_t *c, const void *data, size_t len)
{
    size_t done = 0;
    for (int round = 0; done < len && round < MAX_ROUNDS; round++) {
        size_t n = 0;
        int rc = SSL_write_ex(c->client, (const char *)data + done, len - done, &n);
        if (rc == 1) {
            done += n;
            continue;
        }
        wait_either(c, 0, client_wants(c->client, rc));
    }
    ASSERT_EQ_INT(done, len);
}

/* Reads exactly len bytes at the client. */
static void client_read(conn_t *c, void *buf, size_t len)
{
    size_t got = 0;
    for (int round = 0; got < len && round < MAX_ROUNDS; round++) {
        size_t n = 0;
        int rc = SSL_read_ex(c->client, (char *)buf + got, len - got, &n);
        if (rc == 1) {
            got += n;
            continue;
        }
        wait_either(c, 0, client_wants(c->client, rc));
    }
    ASSERT_EQ_INT(got, len);
}

/* Waits until the server's socket is readable (the client's bytes have arrived). */
static void wait_server_readable(conn_t *c)
{
    struct pollfd p = {.fd = c->t.fd, .events = POLLIN};
    ASSERT_EQ_INT(poll(&p, 1, POLL_MS * 10), 1);
}

/* Server and client identities, made once: key generation is the slow part. */
static identity_t server_id;
static identity_t client_id;

/* ALPN wire-format lists. */
static const unsigned char alpn_h2_http11[] = "\x02h2\x08http/1.1";
static const unsigned char alpn_http11[] = "\x08http/1.1";

/* The server's ALPN choice: h2 when offered, else http/1.1, else none. */
static int on_alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                          const unsigned char *in, unsigned int inlen, void *arg)
{
    (void)ssl;
    (void)arg;
    static const char *const prefs[] = {"h2", "http/1.1"};
    for (size_t p = 0; p < sizeof(prefs) / sizeof(prefs[0]); p++) {
        size_t want = strlen(prefs[p]);
        for (unsigned int i = 0; i < inlen; i += 1u + in[i]) {
            if (in[i] == want && i + 1u + want <= inlen &&
                memcmp(in + i + 1, prefs[p], want) == 0) {
                *out = in + i + 1;
                *outlen = in[i];
                return SSL_TLSEXT_ERR_OK;
            }
        }
    }
    return SSL_TLSEXT_ERR_NOACK;
}

static void test_handshake_and_info(void)
{
    SSL_CTX *sctx = server_ctx(&server_id);
    SSL_CTX *cctx = client_ctx(&server_id);
    conn_t c;
    open_conn(&c, sctx, cctx, 1);
    ASSERT(gc__transport_is_tls(&c.t));
    ASSERT_EQ_STR(c.t.ops->name, "tls");
    ASSERT(c.t.ops->sendfile == NULL); /* bytes are encrypted in user space */
    ASSERT(!gc__tls_established(&c.t));
    /* Nothing from the client yet: the handshake waits for its ClientHello. */
    ASSERT_EQ_INT(gc__tls_handshake(&c.t), -EAGAIN);
    ASSERT_EQ_INT(c.t.want, POLLIN);
    ASSERT(!gc__tls_established(&c.t));
    handshake_ok(&c);
    ASSERT_EQ_INT(gc__tls_handshake(&c.t), 1); /* done stays done */
    ASSERT_EQ_INT(SSL_get_verify_result(c.client), X509_V_OK);

    gc__tls_info_t info;
    gc__tls_info(&c.t, &info);
    ASSERT_EQ_STR(info.protocol, "TLSv1.3");
    ASSERT_EQ_STR(info.cipher, SSL_get_cipher_name(c.client));
    ASSERT(strncmp(info.cipher, "TLS_", 4) == 0); /* a TLS 1.3 suite */
    ASSERT_EQ_STR(info.alpn, "");                 /* no ALPN on either side */

    gc__transport_close(&c.t);
    close_client(&c);
    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);
}

static void test_alpn(void)
{
    SSL_CTX *sctx = server_ctx(&server_id);
    SSL_CTX_set_alpn_select_cb(sctx, on_alpn_select, NULL);
    SSL_CTX *cctx = client_ctx(&server_id);
    gc__tls_info_t info;

    conn_t c;
    open_conn(&c, sctx, cctx, 1);
    ASSERT_OK(SSL_set_alpn_protos(c.client, alpn_h2_http11, sizeof(alpn_h2_http11) - 1));
    handshake_ok(&c);
    gc__tls_info(&c.t, &info);
    ASSERT_EQ_STR(info.alpn, "h2");
    ASSERT_EQ_STR(info.protocol, "TLSv1.3");
    gc__transport_close(&c.t);
    close_client(&c);

    open_conn(&c, sctx, cctx, 1);
    ASSERT_OK(SSL_set_alpn_protos(c.client, alpn_http11, sizeof(alpn_http11) - 1));
    handshake_ok(&c);
    gc__tls_info(&c.t, &info);
    ASSERT_EQ_STR(info.alpn, "http/1.1");
    gc__transport_close(&c.t);
    close_client(&c);

    /* A client that offers no ALPN gets none, though the server would choose. */
    open_conn(&c, sctx, cctx, 1);
    handshake_ok(&c);
    gc__tls_info(&c.t, &info);
    ASSERT_EQ_STR(info.alpn, "");
    gc__transport_close(&c.t);
    close_client(&c);

    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);
}

/* The first recv runs the handshake too, as a worker's first read does. */
static void test_handshake_inside_recv(void)
{
    SSL_CTX *sctx = server_ctx(&server_id);
    SSL_CTX *cctx = client_ctx(&server_id);
    conn_t c;
    open_conn(&c, sctx, cctx, 1);
    char buf[64];
    ssize_t n = -EAGAIN;
    int client = 0;
    for (int round = 0; round < MAX_ROUNDS && n == -EAGAIN; round++) {
        int cwant = 0;
        if (client != 1) {
            client = SSL_do_handshake(c.client);
            if (client == 1)
                client_write(&c, "early", 5);
            else
                cwant = client_wants(c.client, client);
        }
        n = gc__transport_recv(&c.t, buf, sizeof(buf));
        if (n == -EAGAIN)
            wait_either(&c, c.t.want, cwant);
    }
    ASSERT_EQ_INT(n, 5);
    ASSERT_MEM_STR(buf, 5, "early");
    ASSERT(gc__tls_established(&c.t));
    gc__transport_close(&c.t);
    close_client(&c);
    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);
}

static void test_recv_and_writev_both_ways(void)
{
    SSL_CTX *sctx = server_ctx(&server_id);
    SSL_CTX *cctx = client_ctx(&server_id);
    conn_t c;
    open_conn(&c, sctx, cctx, 1);
    handshake_ok(&c);
    char buf[256];

    /* Client to server. */
    ASSERT_EQ_INT(gc__transport_recv(&c.t, buf, sizeof(buf)), -EAGAIN);
    ASSERT_EQ_INT(c.t.want, POLLIN);
    ASSERT(!gc__transport_readable_now(&c.t));
    client_write(&c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27);
    wait_server_readable(&c);
    ASSERT(gc__transport_readable_now(&c.t)); /* the record waits in the kernel */
    ASSERT_EQ_INT(gc__transport_buffered(&c.t), 0);
    ASSERT_EQ_INT(gc__transport_recv(&c.t, buf, sizeof(buf)), 27);
    ASSERT_MEM_STR(buf, 27, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    ASSERT_EQ_INT(gc__transport_recv(&c.t, buf, sizeof(buf)), -EAGAIN);
    ASSERT_EQ_INT(c.t.want, POLLIN);

    /* Server to client, one piece. */
    struct iovec one = {(void *)"pong", 4};
    ASSERT_EQ_INT(gc__transport_writev(&c.t, &one, 1), 4);
    client_read(&c, buf, 4);
    ASSERT_MEM_STR(buf, 4, "pong");

    /* Several small pieces (empty ones among them) are gathered into one record: the
     * client's socket then holds one record header, the bytes and the AEAD overhead
     * (a content-type byte and a 16-byte tag), and one SSL_read returns all of it. */
    const char *head = "HTTP/1.1 200 OK\r\n";
    const char *cl = "Content-Length: 5\r\n";
    struct iovec pieces[6] = {{(void *)"", 0},          {(void *)head, strlen(head)},
                              {(void *)cl, strlen(cl)}, {(void *)"", 0},
                              {(void *)"\r\n", 2},      {(void *)"hello", 5}};
    const char *whole = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
    size_t len = strlen(whole);
    ASSERT_EQ_INT(gc__transport_writev(&c.t, pieces, 6), len);
    int unread = -1;
    ASSERT_OK(ioctl(c.cfd, FIONREAD, &unread));
    ASSERT_EQ_INT(unread, 5 + len + 1 + 16);
    unsigned char hdr[5];
    ASSERT_EQ_INT(recv(c.cfd, hdr, sizeof(hdr), MSG_PEEK), 5);
    ASSERT_EQ_INT(hdr[0], 23); /* application_data */
    ASSERT_EQ_INT((hdr[3] << 8) | hdr[4], len + 1 + 16);
    size_t n = 0;
    ASSERT_EQ_INT(SSL_read_ex(c.client, buf, sizeof(buf), &n), 1);
    ASSERT_EQ_MEM(buf, n, whole, len);

    /* Only empty pieces: nothing to write, nothing written. */
    struct iovec empty[2] = {{(void *)"", 0}, {(void *)"", 0}};
    ASSERT_EQ_INT(gc__transport_writev(&c.t, empty, 2), 0);
    ASSERT_OK(ioctl(c.cfd, FIONREAD, &unread));
    ASSERT_EQ_INT(unread, 0);

    gc__transport_close(&c.t);
    close_client(&c);
    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);
}

/* A 1 MiB response fills the socket: the write stops with -EAGAIN wanting POLLOUT,
 * and is retried, as the server's spill does, with the same bytes copied to another
 * buffer. The previous copy is overwritten and freed before each retry, so that a
 * session still reading the old place would send wrong bytes (or trip ASan). */
/* split: each retry offers the same bytes as two pieces (100 bytes, then the rest), so
 * that they are gathered into one record where the failed write had one large piece. */
static void large_write_retried_from_a_copy(int split)
{
    SSL_CTX *sctx = server_ctx(&server_id);
    SSL_CTX *cctx = client_ctx(&server_id);
    conn_t c;
    open_conn(&c, sctx, cctx, 1);
    handshake_ok(&c);

    const size_t total = 1024 * 1024;
    unsigned char *src = malloc(total);
    unsigned char *dst = malloc(total);
    ASSERT(src != NULL && dst != NULL);
    for (size_t i = 0; i < total; i++)
        src[i] = (unsigned char)((i * 7 + i / 251) & 0xff);

    /* `offer` holds src[base..total): what the server still has to send. */
    size_t base = 0;
    unsigned char *offer = malloc(total);
    ASSERT(offer != NULL);
    memcpy(offer, src, total);

    size_t sent = 0, got = 0;
    int eagains = 0, retried = 0, must_retry = 0;
    for (int round = 0; got < total && round < MAX_ROUNDS * 4; round++) {
        int server_blocked = 0;
        while (sent < total) {
            struct iovec v[2] = {{offer + (sent - base), total - sent}, {NULL, 0}};
            int nv = 1;
            if (split && must_retry && total - sent > 100) {
                v[0].iov_len = 100;
                v[1].iov_base = offer + (sent - base) + 100;
                v[1].iov_len = total - sent - 100;
                nv = 2;
            }
            ssize_t w = gc__transport_writev(&c.t, v, nv);
            if (w > 0) {
                ASSERT(w <= (ssize_t)(total - sent));
                sent += (size_t)w;
                retried += must_retry;
                must_retry = 0;
                continue;
            }
            ASSERT_EQ_INT(w, -EAGAIN);
            ASSERT_EQ_INT(c.t.want, POLLOUT);
            ASSERT(sent < total);
            eagains++;
            must_retry = 1;
            /* The spill: what was not taken moves to a new buffer. */
            unsigned char *copy = malloc(total - sent);
            ASSERT(copy != NULL);
            memcpy(copy, offer + (sent - base), total - sent);
            memset(offer, 0xA5, total - base);
            free(offer);
            offer = copy;
            base = sent;
            server_blocked = 1;
            break;
        }
        /* The client takes what has arrived. */
        int client_blocked = 0;
        while (got < total) {
            size_t n = 0;
            int rc = SSL_read_ex(c.client, dst + got, total - got, &n);
            if (rc != 1) {
                ASSERT_EQ_INT(client_wants(c.client, rc), POLLIN);
                client_blocked = 1;
                break;
            }
            got += n;
        }
        if (server_blocked && client_blocked)
            wait_either(&c, POLLOUT, POLLIN);
        else if (client_blocked && sent == total)
            wait_either(&c, 0, POLLIN);
    }
    ASSERT_EQ_INT(sent, total);
    ASSERT_EQ_INT(got, total);
    ASSERT(eagains > 0);             /* the socket did fill up */
    ASSERT_EQ_INT(retried, eagains); /* and every retry from a copy went out */
    ASSERT_EQ_MEM(dst, total, src, total);

    free(offer);
    free(dst);
    free(src);
    gc__transport_close(&c.t);
    close_client(&c);
    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);
}

/* A record bigger than the caller's buffer is decrypted whole: the rest waits in the
 * session, where a poll on the socket would not see it. */
static void test_large_write_retried_from_a_copy(void)
{
    large_write_retried_from_a_copy(0);
}

/* The retry of a large write may come gathered from small pieces (a regression: it was
 * refused with -EIO, the whole large write having been taken as what must come again). */
static void test_large_write_retried_in_pieces(void)
{
    large_write_retried_from_a_copy(1);
}

static void test_buffered_record(void)
{
    SSL_CTX *sctx = server_ctx(&server_id);
    SSL_CTX *cctx = client_ctx(&server_id);
    conn_t c;
    open_conn(&c, sctx, cctx, 1);
    handshake_ok(&c);

    enum { RECORD = 10 * 1024 };
    static char body[RECORD];
    for (size_t i = 0; i < sizeof(body); i++)
        body[i] = (char)('a' + i % 26);
    client_write(&c, body, sizeof(body)); /* under 16 KiB: one record */
    wait_server_readable(&c);

    static char buf[RECORD + 100];
    ASSERT_EQ_INT(gc__transport_recv(&c.t, buf, 100), 100);
    ASSERT_EQ_MEM(buf, 100, body, 100);
    ASSERT_EQ_INT(gc__transport_buffered(&c.t), RECORD - 100);
    int unread = -1;
    ASSERT_OK(ioctl(c.t.fd, FIONREAD, &unread));
    ASSERT_EQ_INT(unread, 0); /* the socket has nothing more */
    ASSERT_EQ_INT(gc__transport_readable_now(&c.t), 1);

    ASSERT_EQ_INT(gc__transport_recv(&c.t, buf, sizeof(buf)), RECORD - 100);
    ASSERT_EQ_MEM(buf, RECORD - 100, body + 100, RECORD - 100);
    ASSERT_EQ_INT(gc__transport_buffered(&c.t), 0);
    ASSERT_EQ_INT(gc__transport_readable_now(&c.t), 0);
    ASSERT_EQ_INT(gc__transport_recv(&c.t, buf, sizeof(buf)), -EAGAIN);
    ASSERT_EQ_INT(c.t.want, POLLIN);

    gc__transport_close(&c.t);
    close_client(&c);
    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);
}

/* The client's close_notify is the end of its stream: recv returns 0. */
static void test_orderly_close(void)
{
    SSL_CTX *sctx = server_ctx(&server_id);
    SSL_CTX *cctx = client_ctx(&server_id);
    conn_t c;
    open_conn(&c, sctx, cctx, 0); /* orderly: 0 even when ragged ends are errors */
    handshake_ok(&c);
    client_write(&c, "last", 4);
    ASSERT_EQ_INT(SSL_shutdown(c.client), 0); /* sent; the server's not yet seen */
    wait_server_readable(&c);
    char buf[16];
    ASSERT_EQ_INT(gc__transport_recv(&c.t, buf, sizeof(buf)), 4);
    ASSERT_MEM_STR(buf, 4, "last");
    ASSERT_EQ_INT(gc__transport_recv(&c.t, buf, sizeof(buf)), 0);
    ASSERT_EQ_STR(gc__tls_error(&c.t), "");
    gc__transport_close(&c.t);
    close_client(&c);
    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);
}

/* The client closes its socket without close_notify: a plain end when ragged ends are
 * suppressed (Python's default), a reset otherwise. */
static void test_ragged_eof(void)
{
    SSL_CTX *sctx = server_ctx(&server_id);
    SSL_CTX *cctx = client_ctx(&server_id);
    for (int suppress = 1; suppress >= 0; suppress--) {
        conn_t c;
        open_conn(&c, sctx, cctx, suppress);
        handshake_ok(&c);
        close_client(&c); /* SSL_free sends nothing */
        char buf[16];
        ssize_t n = gc__transport_recv(&c.t, buf, sizeof(buf));
        if (suppress) {
            ASSERT_EQ_INT(n, 0);
        } else {
            ASSERT_EQ_INT(n, -ECONNRESET);
            ASSERT(strstr(gc__tls_error(&c.t), "unexpected eof") != NULL);
        }
        gc__transport_close(&c.t);
    }
    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);
}

/* A ragged end before the handshake is done is never a plain end. */
static void test_eof_during_handshake(void)
{
    SSL_CTX *sctx = server_ctx(&server_id);
    SSL_CTX *cctx = client_ctx(&server_id);
    conn_t c;
    open_conn(&c, sctx, cctx, 1);
    ASSERT_EQ_INT(gc__tls_handshake(&c.t), -EAGAIN);
    close_client(&c);
    ASSERT_EQ_INT(gc__tls_handshake(&c.t), -ECONNRESET);
    ASSERT(!gc__tls_established(&c.t));
    gc__transport_close(&c.t);
    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);
}

/* A plain HTTP client on the TLS port: the handshake fails with OpenSSL's reason. */
static void test_plaintext_client(void)
{
    SSL_CTX *sctx = server_ctx(&server_id);
    SSL_CTX *cctx = client_ctx(&server_id);

    conn_t c;
    open_conn(&c, sctx, cctx, 1);
    const char *req = "GET / HTTP/1.1\r\n\r\n";
    ASSERT_EQ_INT(write(c.cfd, req, strlen(req)), strlen(req));
    int rc = gc__tls_handshake(&c.t);
    ASSERT(rc < 0 && rc != -EAGAIN);
    ASSERT_EQ_INT(rc, -EPROTO);
    ASSERT(strstr(gc__tls_error(&c.t), "http request") != NULL);
    ASSERT(!gc__tls_established(&c.t));
    gc__transport_close(&c.t);
    close_client(&c);

    /* The same through recv, the way a worker meets it. */
    open_conn(&c, sctx, cctx, 1);
    ASSERT_EQ_INT(write(c.cfd, req, strlen(req)), strlen(req));
    char buf[16];
    ssize_t n = gc__transport_recv(&c.t, buf, sizeof(buf));
    ASSERT(n < 0 && n != -EAGAIN);
    ASSERT(strstr(gc__tls_error(&c.t), "http request") != NULL);
    gc__transport_close(&c.t);
    close_client(&c);

    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);
}

/* The certificate as PEM text, for comparison; owned (free). */
static char *pem_of(X509 *cert)
{
    BIO *b = BIO_new(BIO_s_mem());
    ASSERT(b != NULL);
    ASSERT_EQ_INT(PEM_write_bio_X509(b, cert), 1);
    char *data = NULL;
    long len = BIO_get_mem_data(b, &data);
    ASSERT(len > 0);
    char *out = malloc((size_t)len + 1);
    ASSERT(out != NULL);
    memcpy(out, data, (size_t)len);
    out[len] = '\0';
    BIO_free(b);
    return out;
}

static void test_client_certificate(void)
{
    SSL_CTX *sctx = server_ctx(&server_id);
    SSL_CTX_set_verify(sctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    ASSERT_EQ_INT(X509_STORE_add_cert(SSL_CTX_get_cert_store(sctx), client_id.cert), 1);
    SSL_CTX *cctx = client_ctx(&server_id);
    ASSERT_EQ_INT(SSL_CTX_use_certificate(cctx, client_id.cert), 1);
    ASSERT_EQ_INT(SSL_CTX_use_PrivateKey(cctx, client_id.key), 1);

    conn_t c;
    open_conn(&c, sctx, cctx, 1);
    handshake_ok(&c);
    const gc__tls_peer_t *peer = gc__tls_peer(&c.t);
    ASSERT(peer != NULL);
    ASSERT_EQ_STR(peer->verify, "SUCCESS");
    ASSERT_EQ_STR(peer->subject, "CN=gunicorn-c test client");
    ASSERT_EQ_STR(peer->issuer, "CN=gunicorn-c test client");
    ASSERT_EQ_STR(peer->serial, "5EED0123ABCD");
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(client_id.cert), NULL);
    ASSERT(bn != NULL);
    char *hex = BN_bn2hex(bn);
    ASSERT_EQ_STR(peer->serial, hex);
    OPENSSL_free(hex);
    BN_free(bn);
    ASSERT(peer->pem != NULL);
    ASSERT(strncmp(peer->pem, "-----BEGIN CERTIFICATE-----", 27) == 0);
    char *pem = pem_of(client_id.cert);
    ASSERT_EQ_STR(peer->pem, pem);
    free(pem);
    /* Formatted once, then the same strings. */
    ASSERT(gc__tls_peer(&c.t) == peer);
    ASSERT_EQ_STR(peer->verify, "SUCCESS");
    gc__transport_close(&c.t);
    close_client(&c);

    /* A client without a certificate fails a server that requires one. */
    SSL_CTX *anon = client_ctx(&server_id);
    open_conn(&c, sctx, anon, 1);
    int client_rc = 0;
    int rc = handshake(&c, &client_rc);
    ASSERT(rc < 0 && rc != -EAGAIN);
    ASSERT(!gc__tls_established(&c.t));
    ASSERT(strstr(gc__tls_error(&c.t), "certificate") != NULL);
    gc__transport_close(&c.t);
    close_client(&c);

    SSL_CTX_free(anon);
    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);
}

/* A verify callback that lets the handshake go on whatever the verdict: the result is
 * then only reported, as "FAILED:<reason>". */
static int on_verify_accept(int ok, X509_STORE_CTX *store)
{
    (void)ok;
    (void)store;
    return 1;
}

static void test_untrusted_client_certificate(void)
{
    SSL_CTX *sctx = server_ctx(&server_id); /* trusts nothing */
    SSL_CTX_set_verify(sctx, SSL_VERIFY_PEER, on_verify_accept);
    SSL_CTX *cctx = client_ctx(&server_id);
    ASSERT_EQ_INT(SSL_CTX_use_certificate(cctx, client_id.cert), 1);
    ASSERT_EQ_INT(SSL_CTX_use_PrivateKey(cctx, client_id.key), 1);
    conn_t c;
    open_conn(&c, sctx, cctx, 1);
    handshake_ok(&c);
    const gc__tls_peer_t *peer = gc__tls_peer(&c.t);
    char want[128];
    snprintf(want, sizeof(want), "FAILED:%s",
             X509_verify_cert_error_string(X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT));
    ASSERT_EQ_STR(peer->verify, want);
    ASSERT_EQ_STR(peer->subject, "CN=gunicorn-c test client");
    ASSERT_EQ_STR(peer->serial, "5EED0123ABCD");
    gc__transport_close(&c.t);
    close_client(&c);
    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);
}

static void test_no_client_certificate(void)
{
    SSL_CTX *sctx = server_ctx(&server_id); /* asks for none */
    SSL_CTX *cctx = client_ctx(&server_id);
    ASSERT_EQ_INT(SSL_CTX_use_certificate(cctx, client_id.cert), 1);
    ASSERT_EQ_INT(SSL_CTX_use_PrivateKey(cctx, client_id.key), 1);
    conn_t c;
    open_conn(&c, sctx, cctx, 1);
    handshake_ok(&c);
    const gc__tls_peer_t *peer = gc__tls_peer(&c.t);
    ASSERT_EQ_STR(peer->verify, "NONE");
    ASSERT(peer->subject == NULL);
    ASSERT(peer->issuer == NULL);
    ASSERT(peer->serial == NULL);
    ASSERT(peer->pem == NULL);
    gc__transport_close(&c.t);
    close_client(&c);
    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);
}

/* Our shutdown sends close_notify then ends our direction; close frees the session
 * and closes the socket. */
static void test_shutdown_then_close(void)
{
    SSL_CTX *sctx = server_ctx(&server_id);
    SSL_CTX *cctx = client_ctx(&server_id);
    conn_t c;
    open_conn(&c, sctx, cctx, 1);
    handshake_ok(&c);
    struct iovec v = {(void *)"bye", 3};
    ASSERT_EQ_INT(gc__transport_writev(&c.t, &v, 1), 3);
    ASSERT_OK(gc__transport_shutdown(&c.t));

    char buf[16];
    client_read(&c, buf, 3);
    ASSERT_MEM_STR(buf, 3, "bye");
    size_t n = 0;
    int rc = SSL_read_ex(c.client, buf, sizeof(buf), &n);
    ASSERT_EQ_INT(rc, 0);
    ASSERT_EQ_INT(SSL_get_error(c.client, rc), SSL_ERROR_ZERO_RETURN);
    ASSERT_EQ_INT(read(c.cfd, buf, sizeof(buf)), 0); /* and the socket's end */

    /* Our direction is closed, the client's is not: its last bytes still arrive. */
    client_write(&c, "tail", 4);
    wait_server_readable(&c);
    ASSERT_EQ_INT(gc__transport_recv(&c.t, buf, sizeof(buf)), 4);
    ASSERT_MEM_STR(buf, 4, "tail");

    int fd = c.t.fd;
    gc__transport_close(&c.t);
    ASSERT_EQ_INT(c.t.fd, -1);
    ASSERT(c.t.ctx == NULL);
    ASSERT(fcntl(fd, F_GETFD) < 0); /* the transport owned the descriptor */
    close_client(&c);
    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);
}

/* Shutting down before the handshake sends no close_notify, only the socket's end. */
static void test_shutdown_before_handshake(void)
{
    SSL_CTX *sctx = server_ctx(&server_id);
    SSL_CTX *cctx = client_ctx(&server_id);
    conn_t c;
    open_conn(&c, sctx, cctx, 1);
    ASSERT_OK(gc__transport_shutdown(&c.t));
    char buf[16];
    ASSERT_EQ_INT(read(c.cfd, buf, sizeof(buf)), 0);
    gc__transport_close(&c.t);
    close_client(&c);
    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);
}

/* Kernel TLS asked for on a unix socket cannot be had: the session falls back to
 * encrypting in user space, and files go through writev. */
static void test_ktls_unavailable_on_unix_socket(void)
{
    int k = gc__tls_kernel_available();
    ASSERT(k == 0 || k == 1);
    SSL_CTX *sctx = server_ctx(&server_id);
    SSL_CTX *cctx = client_ctx(&server_id);
    int fds[2];
    ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds));
    set_nonblocking(fds[0]);
    set_nonblocking(fds[1]);
    conn_t c;
    gc__tls_options_t opt = {.suppress_ragged_eofs = 1, .ktls = 1};
    ASSERT_OK(gc__transport_tls(&c.t, fds[0], sctx, &opt));
    c.cfd = fds[1];
    c.client = SSL_new(cctx);
    ASSERT(c.client != NULL);
    ASSERT_EQ_INT(SSL_set_fd(c.client, c.cfd), 1);
    SSL_set_connect_state(c.client);
    handshake_ok(&c);
    ASSERT(c.t.ops->sendfile == NULL);
    ASSERT(gc__transport_is_tls(&c.t));
    struct iovec v = {(void *)"ok", 2};
    ASSERT_EQ_INT(gc__transport_writev(&c.t, &v, 1), 2);
    char buf[2];
    client_read(&c, buf, 2);
    ASSERT_MEM_STR(buf, 2, "ok");
    gc__transport_close(&c.t);
    close_client(&c);
    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);
}

static void test_is_tls(void)
{
    int fds[2];
    ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds));
    gc__transport_t plain;
    gc__transport_socket(&plain, fds[0]);
    ASSERT(!gc__transport_is_tls(&plain));
    ASSERT_EQ_INT(gc__transport_buffered(&plain), 0); /* a socket holds nothing */
    gc__transport_close(&plain);

    SSL_CTX *sctx = server_ctx(&server_id);
    gc__transport_t t;
    gc__tls_options_t opt = {.suppress_ragged_eofs = 1, .ktls = 0};
    ASSERT_OK(gc__transport_tls(&t, fds[1], sctx, &opt));
    ASSERT(gc__transport_is_tls(&t));
    ASSERT_EQ_INT(gc__transport_buffered(&t), 0);
    gc__transport_close(&t); /* never used: close alone frees it */
    ASSERT_EQ_INT(t.fd, -1);
    SSL_CTX_free(sctx);
}

int main(int argc, char **argv)
{
    unit_init(argc, argv);
    signal(SIGPIPE, SIG_IGN); /* as the server: a write to a gone peer is -EPIPE */
    server_id = make_identity("gunicorn-c test server", 0x1001);
    client_id = make_identity("gunicorn-c test client", 0x5EED0123ABCDULL);
    RUN(test_handshake_and_info);
    RUN(test_alpn);
    RUN(test_handshake_inside_recv);
    RUN(test_recv_and_writev_both_ways);
    RUN(test_large_write_retried_from_a_copy);
    RUN(test_large_write_retried_in_pieces);
    RUN(test_buffered_record);
    RUN(test_orderly_close);
    RUN(test_ragged_eof);
    RUN(test_eof_during_handshake);
    RUN(test_plaintext_client);
    RUN(test_client_certificate);
    RUN(test_untrusted_client_certificate);
    RUN(test_no_client_certificate);
    RUN(test_shutdown_then_close);
    RUN(test_shutdown_before_handshake);
    RUN(test_ktls_unavailable_on_unix_socket);
    RUN(test_is_tls);
    free_identity(&client_id);
    free_identity(&server_id);
    return unit_done();
}
