/* tls.c: the TLS transport (see tls.h) on OpenSSL.
 *
 * Every call is non-blocking and maps OpenSSL's "want read / want write" onto the
 * transport's -EAGAIN and `want`. Writes follow OpenSSL's retry rule: after a write
 * that could not go out, the next one must offer the same bytes again (at least as
 * many); the callers of a transport do that by nature (they resend what was not
 * taken), and the session allows the bytes to have moved in memory meanwhile (the
 * sink's spill copies them). */
#include "net/tls.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

/* Bytes gathered from several small pieces into one record. */
#define GC_TLS_GATHER 16384

typedef struct {
    SSL *ssl;
    int established;
    int suppress_ragged_eofs;
    size_t wpend;  /* bytes offered to a write that must be retried */
    char err[160]; /* why the last call failed */
    int peer_done; /* `peer` has been formatted */
    gc__tls_peer_t peer;
    char verify_buf[96];
} tls_t;

static tls_t *tls_of(const gc__transport_t *t)
{
    return t->ctx;
}

/* Notes OpenSSL's reason for a failure (the first error queued, else `fallback`). */
static void note_error(tls_t *s, const char *fallback)
{
    unsigned long e = ERR_peek_error();
    if (e != 0)
        ERR_error_string_n(e, s->err, sizeof(s->err));
    else
        snprintf(s->err, sizeof(s->err), "%s", fallback);
    ERR_clear_error();
}

/* What an SSL call's failure means for the caller: -EAGAIN with t->want, 0 for the
 * peer's end, or a negative errno. `reading` says whether a clean end is possible. */
static ssize_t failure(gc__transport_t *t, int ret, int reading)
{
    tls_t *s = tls_of(t);
    int saved = errno;
    switch (SSL_get_error(s->ssl, ret)) {
    case SSL_ERROR_WANT_READ:
        t->want = POLLIN;
        return -EAGAIN;
    case SSL_ERROR_WANT_WRITE:
        t->want = POLLOUT;
        return -EAGAIN;
    case SSL_ERROR_ZERO_RETURN: /* close_notify: the peer's orderly end */
        ERR_clear_error();
        return reading ? 0 : -EPIPE;
    case SSL_ERROR_SYSCALL:
        if (ERR_peek_error() == 0 && saved != 0) {
            snprintf(s->err, sizeof(s->err), "%s", strerror(saved));
            return saved == EAGAIN ? -EIO : -saved;
        }
        /* A TCP end without close_notify (OpenSSL 1.1's way of saying so). */
        note_error(s, "unexpected EOF");
        return reading && s->suppress_ragged_eofs && s->established ? 0 : -ECONNRESET;
    case SSL_ERROR_SSL:
        if (ERR_GET_REASON(ERR_peek_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
            note_error(s, "unexpected EOF");
            return reading && s->suppress_ragged_eofs && s->established ? 0 : -ECONNRESET;
        }
        note_error(s, "TLS protocol error");
        return -EPROTO;
    default:
        note_error(s, "TLS error");
        return -EPROTO;
    }
}

#if defined(SSL_OP_ENABLE_KTLS)
static const gc__transport_ops_t ktls_ops;
#endif

/* The handshake is over: with kernel TLS in place, files go by sendfile again. */
static void established(gc__transport_t *t)
{
    tls_t *s = tls_of(t);
    s->established = 1;
#if defined(SSL_OP_ENABLE_KTLS)
    if (BIO_get_ktls_send(SSL_get_wbio(s->ssl)))
        t->ops = &ktls_ops;
#endif
}

int gc__tls_handshake(gc__transport_t *t)
{
    tls_t *s = tls_of(t);
    if (s->established)
        return 1;
    ERR_clear_error();
    errno = 0;
    int rc = SSL_do_handshake(s->ssl);
    if (rc == 1) {
        established(t);
        return 1;
    }
    ssize_t r = failure(t, rc, 0);
    return r == 0 ? -ECONNRESET : (int)r;
}

static ssize_t tls_recv(gc__transport_t *t, void *buf, size_t len)
{
    tls_t *s = tls_of(t);
    size_t n = 0;
    ERR_clear_error();
    errno = 0;
    int rc = SSL_read_ex(s->ssl, buf, len, &n);
    if (rc == 1) {
        if (!s->established)
            established(t);
        return (ssize_t)n;
    }
    if (!s->established && SSL_is_init_finished(s->ssl))
        established(t); /* done, and the client has sent nothing more yet */
    return failure(t, rc, 1);
}

/* Writes `len` bytes at `data` in one call. */
static ssize_t write_bytes(gc__transport_t *t, const void *data, size_t len)
{
    tls_t *s = tls_of(t);
    size_t n = 0;
    ERR_clear_error();
    errno = 0;
    int rc = SSL_write_ex(s->ssl, data, len, &n);
    if (rc == 1) {
        if (!s->established)
            established(t);
        s->wpend = 0;
        return (ssize_t)n;
    }
    ssize_t r = failure(t, rc, 0);
    if (r == -EAGAIN)
        /* The retry must offer these bytes again, at least the one record OpenSSL has
         * made of them (a gathered retry offers that much). */
        s->wpend = len < GC_TLS_GATHER ? len : GC_TLS_GATHER;
    return r;
}

static ssize_t tls_writev(gc__transport_t *t, const struct iovec *iov, int n)
{
    tls_t *s = tls_of(t);
    while (n > 0 && iov[0].iov_len == 0) {
        iov++;
        n--;
    }
    if (n == 0)
        return 0;
    /* A large first piece goes as it is; small ones are gathered into one record, so
     * that a response head and the start of its body share a record. */
    if (n == 1 || iov[0].iov_len >= GC_TLS_GATHER)
        return write_bytes(t, iov[0].iov_base, iov[0].iov_len);
    char gather[GC_TLS_GATHER];
    size_t len = 0;
    for (int i = 0; i < n && len < sizeof(gather); i++) {
        size_t take = iov[i].iov_len;
        if (take > sizeof(gather) - len)
            take = sizeof(gather) - len;
        memcpy(gather + len, iov[i].iov_base, take);
        len += take;
    }
    if (len < s->wpend) { /* fewer bytes than the write being retried: a caller's bug */
        snprintf(s->err, sizeof(s->err), "a TLS write was not retried with its bytes");
        return -EIO;
    }
    return write_bytes(t, gather, len);
}

#if defined(SSL_OP_ENABLE_KTLS)
static ssize_t tls_sendfile(gc__transport_t *t, int in_fd, off_t *offset, size_t count)
{
    tls_t *s = tls_of(t);
    ERR_clear_error();
    errno = 0;
    ossl_ssize_t w = SSL_sendfile(s->ssl, in_fd, *offset, count, 0);
    if (w >= 0) {
        *offset += w;
        return w;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
        t->want = POLLOUT;
        return -EAGAIN;
    }
    note_error(s, "sendfile failed");
    return errno ? -errno : -EIO;
}
#endif

static size_t tls_buffered(gc__transport_t *t)
{
    int n = SSL_pending(tls_of(t)->ssl);
    return n > 0 ? (size_t)n : 0;
}

static int tls_readable_now(gc__transport_t *t)
{
    if (tls_buffered(t) > 0)
        return 1;
    int n = 0;
    return ioctl(t->fd, FIONREAD, &n) == 0 && n > 0;
}

static int tls_shutdown(gc__transport_t *t)
{
    tls_t *s = tls_of(t);
    if (s->established) {
        /* Our close_notify, sent if the socket takes it now; the client's is not
         * waited for (what it still sends is read and dropped). */
        ERR_clear_error();
        SSL_shutdown(s->ssl);
        ERR_clear_error();
    }
    return shutdown(t->fd, SHUT_WR) == 0 ? 0 : -errno;
}

static void tls_close(gc__transport_t *t)
{
    tls_t *s = tls_of(t);
    if (s != NULL) {
        SSL_free(s->ssl);
        free((void *)s->peer.subject);
        free((void *)s->peer.issuer);
        OPENSSL_free((void *)s->peer.serial);
        free((void *)s->peer.pem);
        free(s);
        t->ctx = NULL;
    }
    if (t->fd >= 0)
        close(t->fd);
    t->fd = -1;
}

static const gc__transport_ops_t tls_ops = {
    .name = "tls",
    .recv = tls_recv,
    .writev = tls_writev,
    .sendfile = NULL, /* bytes must be encrypted in user space */
    .readable_now = tls_readable_now,
    .buffered = tls_buffered,
    .shutdown = tls_shutdown,
    .close = tls_close,
};

#if defined(SSL_OP_ENABLE_KTLS)
/* Once the kernel encrypts for us, files can go with sendfile again. */
static const gc__transport_ops_t ktls_ops = {
    .name = "tls",
    .recv = tls_recv,
    .writev = tls_writev,
    .sendfile = tls_sendfile,
    .readable_now = tls_readable_now,
    .buffered = tls_buffered,
    .shutdown = tls_shutdown,
    .close = tls_close,
};
#endif

int gc__transport_tls(gc__transport_t *t, int fd, struct ssl_ctx_st *ctx,
                      const gc__tls_options_t *opt)
{
    t->ops = &tls_ops;
    t->fd = fd;
    t->want = 0;
    t->ctx = NULL;
    tls_t *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        close(fd);
        t->fd = -1;
        return -ENOMEM;
    }
    t->ctx = s;
    s->suppress_ragged_eofs = opt->suppress_ragged_eofs;
    s->ssl = SSL_new(ctx);
    if (s->ssl == NULL || SSL_set_fd(s->ssl, fd) != 1) {
        ERR_clear_error();
        tls_close(t);
        return -ENOMEM;
    }
    /* Partial writes report progress record by record; a retried write may offer its
     * bytes from another place in memory (the spill copies them). */
    SSL_set_mode(s->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
#if defined(SSL_OP_ENABLE_KTLS)
    if (opt->ktls)
        SSL_set_options(s->ssl, SSL_OP_ENABLE_KTLS);
#endif
    SSL_set_accept_state(s->ssl);
    return 0;
}

int gc__transport_is_tls(const gc__transport_t *t)
{
    return t->ops->close == tls_close;
}

int gc__tls_established(const gc__transport_t *t)
{
    return tls_of(t)->established;
}

const char *gc__tls_error(const gc__transport_t *t)
{
    return tls_of(t)->err;
}

void gc__tls_info(const gc__transport_t *t, gc__tls_info_t *out)
{
    tls_t *s = tls_of(t);
    const unsigned char *alpn = NULL;
    unsigned alpn_len = 0;
    SSL_get0_alpn_selected(s->ssl, &alpn, &alpn_len);
    static const char *const known[] = {"h2", "http/1.1"};
    out->alpn = "";
    for (size_t i = 0; alpn != NULL && i < sizeof(known) / sizeof(known[0]); i++)
        if (strlen(known[i]) == alpn_len && memcmp(known[i], alpn, alpn_len) == 0)
            out->alpn = known[i];
    out->protocol = SSL_get_version(s->ssl);
    out->cipher = SSL_get_cipher_name(s->ssl);
    if (out->cipher == NULL)
        out->cipher = "";
}

/* What a memory BIO holds, as a NUL-terminated string (owned: free), or NULL. Frees
 * the BIO. `ok` says whether writing into it succeeded. */
static char *bio_string(BIO *b, int ok)
{
    char *out = NULL, *data = NULL;
    long len = ok ? BIO_get_mem_data(b, &data) : -1;
    if (len >= 0 && (out = malloc((size_t)len + 1)) != NULL) {
        memcpy(out, data, (size_t)len);
        out[len] = '\0';
    }
    BIO_free(b);
    return out;
}

/* A name in RFC 2253 form (owned: free), or NULL. */
static char *name_string(const X509_NAME *name)
{
    BIO *b = BIO_new(BIO_s_mem());
    return b ? bio_string(b, X509_NAME_print_ex(b, name, 0, XN_FLAG_RFC2253) >= 0) : NULL;
}

/* The certificate in PEM (owned: free), or NULL. */
static char *pem_string(X509 *cert)
{
    BIO *b = BIO_new(BIO_s_mem());
    return b ? bio_string(b, PEM_write_bio_X509(b, cert) == 1) : NULL;
}

const gc__tls_peer_t *gc__tls_peer(gc__transport_t *t)
{
    tls_t *s = tls_of(t);
    if (s->peer_done)
        return &s->peer;
    s->peer_done = 1;
    s->peer.verify = "NONE";
    X509 *cert = SSL_get1_peer_certificate(s->ssl);
    if (cert == NULL)
        return &s->peer;
    long v = SSL_get_verify_result(s->ssl);
    if (v == X509_V_OK) {
        s->peer.verify = "SUCCESS";
    } else {
        snprintf(s->verify_buf, sizeof(s->verify_buf), "FAILED:%s",
                 X509_verify_cert_error_string(v));
        s->peer.verify = s->verify_buf;
    }
    s->peer.subject = name_string(X509_get_subject_name(cert));
    s->peer.issuer = name_string(X509_get_issuer_name(cert));
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
    s->peer.serial = bn != NULL ? BN_bn2hex(bn) : NULL;
    BN_free(bn);
    s->peer.pem = pem_string(cert);
    X509_free(cert);
    ERR_clear_error();
    return &s->peer;
}

int gc__tls_kernel_available(void)
{
#if defined(SSL_OP_ENABLE_KTLS)
    FILE *f = fopen("/proc/sys/net/ipv4/tcp_available_ulp", "r");
    if (f == NULL)
        return 0;
    char line[256] = "";
    int found = fgets(line, sizeof(line), f) != NULL && strstr(line, "tls") != NULL;
    fclose(f);
    return found;
#else
    return 0;
#endif
}
