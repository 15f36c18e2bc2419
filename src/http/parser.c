/* parser.c: HTTP/1.x request parsing on llhttp (see parser.h).
 *
 * llhttp delivers a request in pieces through callbacks, and a piece may stop in the
 * middle of a name or value when a read ends there. We append every piece to the
 * request's `head` buffer and remember offsets, so that the request survives the
 * caller's read buffer being reused. At the end of each message the callback pauses
 * llhttp; the caller then handles the request and calls gc__http_parser_next, which
 * resumes llhttp for the next pipelined request. */
#include "http/parser.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http/forward.h"
#include "http/response.h"

void gc__http_limits_default(gc__http_limits_t *l)
{
    l->max_line = 4094;
    l->max_fields = 100;
    l->max_field_size = 8190;
    l->spool_threshold = 1024 * 1024;
    l->permit_obsolete_folding = 0;
    l->permit_unconventional_method = 0;
    l->casefold_method = 0;
    l->strip_header_spaces = 0;
    l->permit_unconventional_version = 0;
    l->forward = NULL;
}

static gc__http_parser_t *parser_of(llhttp_t *ll)
{
    return (gc__http_parser_t *)ll->data;
}

/* Records why the request is refused; the callback then returns -1 to stop llhttp. */
static int fail(gc__http_parser_t *p, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(gc__http_parser_t *p, int status, const char *fmt, ...)
{
    if (p->error_status == 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->error_msg, sizeof(p->error_msg), fmt, ap);
        va_end(ap);
        p->error_status = status;
    }
    return -1;
}

static int oom(gc__http_parser_t *p)
{
    return fail(p, 500, "Out of memory while reading the request");
}

static int on_message_begin(llhttp_t *ll)
{
    parser_of(ll)->started = 1;
    return 0;
}

/* llhttp reports the method it was given; we gave it the one we checked in
 * take_method, or a stand-in, so the request keeps the method as we saw it. */
static int on_method(llhttp_t *ll, const char *at, size_t len)
{
    gc__http_parser_t *p = parser_of(ll);
    gc__http_request_t *r = &p->req;
    if (r->method_len > 0)
        return 0;
    r->method_off = (uint32_t)r->head.len;
    if (gc__buf_append(&r->head, p->method, p->method_len) < 0)
        return oom(p);
    r->method_len = (uint32_t)p->method_len;
    return 0;
}

static int on_url(llhttp_t *ll, const char *at, size_t len)
{
    gc__http_parser_t *p = parser_of(ll);
    gc__http_request_t *r = &p->req;
    if (r->target_len == 0)
        r->target_off = (uint32_t)r->head.len;
    /* The request line is "METHOD SP target SP HTTP/x.y"; Gunicorn counts it without
     * the CRLF. The version is always 8 bytes, so we can check as the target grows. */
    size_t line = (size_t)r->method_len + 1 + r->target_len + len + 1 + 8;
    if (p->limits->max_line && line > p->limits->max_line)
        return fail(p, 400, "Request Line is too large (%zu > %zu)", line, p->limits->max_line);
    if (gc__buf_append(&r->head, at, len) < 0)
        return oom(p);
    r->target_len += (uint32_t)len;
    return 0;
}

static int on_version_complete(llhttp_t *ll)
{
    /* llhttp also takes HTTP/0.9 and HTTP/2.0 (for the h2 preface); as in Gunicorn,
     * only 1.x is HTTP/1 here. Answering 2.0 as 1.0 would misreport the protocol. */
    if (ll->http_major != 1)
        return fail(parser_of(ll), 400, "Invalid HTTP Version: HTTP/%d.%d", ll->http_major,
                    ll->http_minor);
    return 0;
}

static int field_too_big(gc__http_parser_t *p, const gc__http_field_t *f)
{
    /* "Name: value\r\n" must fit in limit_request_field_size. */
    return (size_t)f->name_len + 2 + f->value_len + 2 > p->limits->max_field_size;
}

/* Trailer fields (after a chunked body) are checked with the header rules and their
 * limits, then dropped unstored: they never reach the environ, so a trailer cannot add
 * to or override a header. Fields that RFC 9110 section 6.5.1 says cannot be processed
 * after the content (framing, routing, connection control, request modifiers,
 * authentication, content format) are refused: a front end that merges trailers into
 * the header section would otherwise route or frame by a field we never saw. The list
 * is Gunicorn's six and the rest of those groups. */
static const char *const forbidden_trailers[] = {
    "content-length",
    "transfer-encoding",
    "trailer",
    "te",
    "host",
    "connection",
    "keep-alive",
    "upgrade",
    "proxy-connection",
    "expect",
    "range",
    "if-match",
    "if-none-match",
    "if-modified-since",
    "if-unmodified-since",
    "if-range",
    "max-forwards",
    "authorization",
    "proxy-authorization",
    "cookie",
    "content-type",
    "content-encoding",
    "content-range",
};

static int on_trailer_field(gc__http_parser_t *p, const char *at, size_t len)
{
    if (p->in_value || p->ntrailers == 0) {
        if (p->ntrailers >= p->limits->max_fields)
            return fail(p, 431, "limit request headers fields");
        p->ntrailers++;
        p->trailer_name_len = p->trailer_size = 0;
        p->in_value = 0;
    }
    if (len > 0 && !gc__http_is_token(gc__view(at, len)))
        return fail(p, 400, "Invalid HTTP header name in trailer");
    for (size_t i = 0; i < len && p->trailer_name_len < sizeof(p->trailer_name); i++)
        p->trailer_name[p->trailer_name_len++] = at[i];
    /* A name longer than trailer_name keeps its first bytes, which match no forbidden
     * name (none is that long). */
    p->trailer_size += len; /* "Name: value\r\n" must fit in limit_request_field_size */
    if (p->trailer_size + 4 > p->limits->max_field_size)
        return fail(p, 431, "limit request headers fields size");
    return 0;
}

static int on_trailer_field_complete(gc__http_parser_t *p)
{
    gc__view_t name = gc__view(p->trailer_name, p->trailer_name_len);
    p->in_value = 1;
    if (name.len == 0)
        return fail(p, 400, "Invalid HTTP header name in trailer");
    for (size_t i = 0; i < sizeof(forbidden_trailers) / sizeof(forbidden_trailers[0]); i++)
        if (gc__view_ieq(name, forbidden_trailers[i])) {
            char upper[24];
            for (size_t j = 0; j < name.len; j++)
                upper[j] = name.base[j] >= 'a' && name.base[j] <= 'z' ? (char)(name.base[j] - 32)
                                                                      : name.base[j];
            return fail(p, 400, "Invalid HTTP header name: '%.*s' (not allowed in a trailer)",
                        (int)name.len, upper);
        }
    return 0;
}

static int on_trailer_value(gc__http_parser_t *p, const char *at, size_t len)
{
    if (!gc__http_is_field_value(gc__view(at, len)))
        return fail(p, 400, "Invalid HTTP Header in trailer: '%.*s'", (int)p->trailer_name_len,
                    p->trailer_name);
    p->trailer_size += len;
    if (p->trailer_size + 4 > p->limits->max_field_size)
        return fail(p, 431, "limit request headers fields size");
    return 0;
}

static int on_header_field(llhttp_t *ll, const char *at, size_t len)
{
    gc__http_parser_t *p = parser_of(ll);
    gc__http_request_t *r = &p->req;
    if (p->headers_done)
        return on_trailer_field(p, at, len);
    /* A name split across two reads arrives in two calls; only start a new field
     * after a value (or at the first field). */
    if (p->in_value || r->nfields == 0) {
        /* Fields header_map drops do not count, as in Gunicorn. */
        if (r->nfields - p->ndropped >= p->limits->max_fields)
            return fail(p, 431, "limit request headers fields");
        if (gc__http_fields_reserve(r) < 0)
            return oom(p);
        gc__http_field_t *f = &r->fields[r->nfields++];
        f->name_off = (uint32_t)r->head.len;
        f->name_len = 0;
        f->value_off = (uint32_t)r->head.len;
        f->value_len = 0;
        f->folded = 0;
    }
    p->in_value = 0;
    gc__http_field_t *f = &r->fields[r->nfields - 1];
    if (gc__buf_append(&r->head, at, len) < 0)
        return oom(p);
    f->name_len += (uint32_t)len;
    if (field_too_big(p, f))
        return fail(p, 431, "limit request headers fields size");
    return 0;
}

static const gc__forward_policy_t *forward_policy(const gc__http_parser_t *p)
{
    return p->limits->forward ? p->limits->forward : gc__forward_policy_default();
}

/* A name with "_" is refused or counted as dropped as soon as it is complete
 * (--header-map; see http/forward.h). Dropped fields leave in on_headers_complete. */
static int check_underscore(gc__http_parser_t *p, gc__view_t name)
{
    switch (gc__forward_field(forward_policy(p), p->trusted, name)) {
    case GC_FORWARD_REFUSE: {
        char upper[64];
        size_t n = name.len < sizeof(upper) ? name.len : sizeof(upper);
        for (size_t i = 0; i < n; i++)
            upper[i] = name.base[i] >= 'a' && name.base[i] <= 'z' ? (char)(name.base[i] - 32)
                                                                  : name.base[i];
        return fail(p, 400, "Invalid HTTP header name: '%.*s'", (int)n, upper);
    }
    case GC_FORWARD_DROP:
        p->ndropped++;
        return 0;
    case GC_FORWARD_KEEP:
        break;
    }
    return 0;
}

static int on_header_field_complete(llhttp_t *ll)
{
    gc__http_parser_t *p = parser_of(ll);
    if (p->headers_done)
        return on_trailer_field_complete(p);
    gc__http_field_t *f = &p->req.fields[p->req.nfields - 1];
    f->value_off = (uint32_t)p->req.head.len;
    p->in_value = 1;
    return check_underscore(p, gc__http_field_name(&p->req, p->req.nfields - 1));
}

static int on_header_value(llhttp_t *ll, const char *at, size_t len)
{
    gc__http_parser_t *p = parser_of(ll);
    gc__http_request_t *r = &p->req;
    if (p->headers_done)
        return on_trailer_value(p, at, len);
    gc__http_field_t *f = &r->fields[r->nfields - 1];
    /* llhttp joins an obs-fold continuation line to the value without telling us. A
     * value piece normally follows ':' or whitespace; one that follows a line feed is
     * a continuation line. */
    char before = at > p->feed_data ? at[-1] : p->prev_last;
    if (len > 0 && before == '\n') {
        p->folded = 1;
        f->folded = 1;
    }
    if (gc__buf_append(&r->head, at, len) < 0)
        return oom(p);
    f->value_len += (uint32_t)len;
    if (field_too_big(p, f))
        return fail(p, 431, "limit request headers fields size");
    return 0;
}

ssize_t gc__http_find_field(const gc__http_request_t *r, const char *lower)
{
    for (size_t i = 0; i < r->nfields; i++)
        if (gc__view_ieq(gc__http_field_name(r, i), lower))
            return (ssize_t)i;
    return -1;
}

static int count_fields(const gc__http_request_t *r, const char *lower)
{
    int n = 0;
    for (size_t i = 0; i < r->nfields; i++)
        n += gc__view_ieq(gc__http_field_name(r, i), lower);
    return n;
}

/* Checks Transfer-Encoding: every field, as one comma list. Only chunked is decoded, and
 * it must come last and once; a coding after chunked, or chunked on HTTP/1.0, would
 * make us and a proxy in front disagree on where the body ends. */
static int check_transfer_encoding(gc__http_parser_t *p)
{
    gc__http_request_t *r = &p->req;
    int seen = 0, chunked_last = 0, chunked_count = 0;
    for (size_t i = 0; i < r->nfields; i++) {
        if (!gc__view_ieq(gc__http_field_name(r, i), "transfer-encoding"))
            continue;
        gc__view_t v = gc__http_field_value(r, i);
        size_t pos = 0;
        do {
            size_t start = pos;
            while (pos < v.len && v.base[pos] != ',')
                pos++;
            gc__view_t item = gc__view(v.base + start, pos - start);
            while (item.len && (item.base[0] == ' ' || item.base[0] == '\t'))
                item.base++, item.len--;
            while (item.len && (item.base[item.len - 1] == ' ' || item.base[item.len - 1] == '\t'))
                item.len--;
            seen = 1;
            /* An empty value or list element is a malformed framing header, not an
             * unknown coding: 400 rather than Gunicorn's 501. */
            if (item.len == 0)
                return fail(p, 400, "Invalid HTTP Header: 'TRANSFER-ENCODING' (empty coding)");
            if (gc__view_ieq(item, "chunked")) {
                if (++chunked_count > 1)
                    return fail(p, 400, "Invalid HTTP Header: 'TRANSFER-ENCODING'");
                chunked_last = 1;
            } else if (gc__view_ieq(item, "identity") || gc__view_ieq(item, "gzip") ||
                       gc__view_ieq(item, "deflate") || gc__view_ieq(item, "compress")) {
                if (chunked_count)
                    return fail(p, 400, "Invalid HTTP Header: 'TRANSFER-ENCODING'");
                chunked_last = 0;
            } else {
                return fail(p, 501, "Unsupported transfer coding: '%.*s'", (int)v.len, v.base);
            }
        } while (pos++ < v.len);
    }
    if (!seen)
        return 0;
    if (r->major == 1 && r->minor == 0)
        return fail(p, 400, "Invalid HTTP Header: 'TRANSFER-ENCODING'");
    if (!chunked_last)
        return fail(p, 400, "Invalid HTTP Header: 'TRANSFER-ENCODING'");
    return 0;
}

/* --permit-obsolete-folding: a folded value reads as its lines joined by one space,
 * as Gunicorn joins them (llhttp keeps the continuation's own blanks). */
static void unfold_values(gc__http_request_t *r)
{
    for (size_t i = 0; i < r->nfields; i++) {
        gc__http_field_t *f = &r->fields[i];
        if (!f->folded)
            continue;
        char *v = r->head.data + f->value_off;
        uint32_t out = 0;
        for (uint32_t j = 0; j < f->value_len; j++) {
            int blank = v[j] == ' ' || v[j] == '\t';
            if (blank && (out == 0 || v[out - 1] == ' '))
                continue;
            v[out++] = blank ? ' ' : v[j];
        }
        while (out > 0 && v[out - 1] == ' ')
            out--;
        f->value_len = out;
    }
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* RFC 3986 unreserved and sub-delims: what a reg-name holds besides pct-encoded. */
static int is_reg_name_char(char c)
{
    return is_alpha(c) || (c >= '0' && c <= '9') || strchr("-._~!$&'()*+,;=", c) != NULL;
}

/* RFC 3986 IP-literal without its brackets: an IPv6 address or IPvFuture. */
static int is_ip_literal(gc__view_t v)
{
    if (v.len >= 2 && (v.base[0] == 'v' || v.base[0] == 'V')) {
        size_t i = 1;
        while (i < v.len && is_hex(v.base[i]))
            i++;
        if (i == 1 || i == v.len || v.base[i] != '.' || i + 1 == v.len)
            return 0;
        for (i++; i < v.len; i++)
            if (!is_reg_name_char(v.base[i]) && v.base[i] != ':')
                return 0;
        return 1;
    }
    char addr[INET6_ADDRSTRLEN];
    struct in6_addr a6;
    if (v.len == 0 || v.len >= sizeof(addr))
        return 0;
    memcpy(addr, v.base, v.len);
    addr[v.len] = '\0';
    return inet_pton(AF_INET6, addr, &a6) == 1;
}

/* RFC 9110 section 7.2 / RFC 3986 section 3.2: `uri-host [ ":" port ]`, where uri-host
 * is an IP-literal, an IPv4 address or a reg-name (percent-encoding allowed) and the
 * port is up to five digits. No userinfo, no path, no blanks, no list. An empty host
 * is valid grammar; the callers decide whether it is allowed. */
static int is_host_port(gc__view_t v)
{
    size_t i = 0;
    if (v.len > 0 && v.base[0] == '[') {
        const char *close = memchr(v.base, ']', v.len);
        if (close == NULL || !is_ip_literal(gc__view(v.base + 1, (size_t)(close - v.base) - 1)))
            return 0;
        i = (size_t)(close - v.base) + 1;
    } else {
        while (i < v.len && v.base[i] != ':') {
            if (v.base[i] == '%') {
                if (i + 2 >= v.len || !is_hex(v.base[i + 1]) || !is_hex(v.base[i + 2]))
                    return 0;
                i += 3;
                continue;
            }
            if (!is_reg_name_char(v.base[i]))
                return 0;
            i++;
        }
    }
    if (i == v.len)
        return 1;
    if (v.base[i] != ':' || v.len - i - 1 > 5)
        return 0;
    for (i++; i < v.len; i++)
        if (!is_digit(v.base[i]))
            return 0;
    return 1;
}

/* The request-target (RFC 9112 section 3.2): visible ASCII only, so no control byte and
 * no raw non-ASCII octet (UTF-8, overlong or not, must be percent-encoded). The
 * characters RFC 3986 leaves out but clients send unencoded ("{", "|", "^", ...) are
 * kept, as most servers keep them. An absolute-form target must be an absolute URI:
 * a scheme, "://", and an authority that is a valid host with an optional port; for
 * http and https a userinfo part is refused (RFC 9110 section 4.2.4) and so is an empty
 * host (section 4.2.1). Sets *authority when the target names one. */
static int check_target(gc__http_parser_t *p, gc__view_t t, int *authority)
{
    *authority = 0;
    for (size_t i = 0; i < t.len; i++) {
        unsigned char c = (unsigned char)t.base[i];
        if (c <= ' ' || c >= 0x7f)
            return fail(p, 400, "Invalid HTTP request line: byte 0x%02x in the target", c);
    }
    if (t.len == 0 || t.base[0] == '/' || (t.len == 1 && t.base[0] == '*'))
        return 0;
    const char *sep = NULL;
    for (size_t i = 0; i + 2 < t.len; i++)
        if (t.base[i] == ':' && t.base[i + 1] == '/' && t.base[i + 2] == '/') {
            sep = t.base + i;
            break;
        }
    if (sep == NULL)
        return 0; /* authority-form: llhttp keeps it for CONNECT, refused below */
    gc__view_t scheme = gc__view(t.base, (size_t)(sep - t.base));
    int ok = scheme.len > 0 && is_alpha(scheme.base[0]);
    for (size_t i = 1; ok && i < scheme.len; i++)
        ok = is_alpha(scheme.base[i]) || is_digit(scheme.base[i]) ||
             strchr("+-.", scheme.base[i]) != NULL;
    const char *a = sep + 3, *end = t.base + t.len, *e = a;
    while (e < end && *e != '/' && *e != '?' && *e != '#')
        e++;
    gc__view_t auth = gc__view(a, (size_t)(e - a));
    int web = gc__view_ieq(scheme, "http") || gc__view_ieq(scheme, "https");
    const char *at = memchr(auth.base, '@', auth.len);
    if (ok && at != NULL && !web) {
        auth.len -= (size_t)(at + 1 - auth.base);
        auth.base = at + 1;
        at = NULL;
    }
    if (!ok || at != NULL || !is_host_port(auth) || (web && (auth.len == 0 || auth.base[0] == ':')))
        return fail(p, 400, "Invalid HTTP request line: '%.*s' is not a valid absolute URI",
                    (int)(t.len > 200 ? 200 : t.len), t.base);
    *authority = 1;
    return 0;
}

/* Our own rules on a complete head, beyond what llhttp checks (see docs/http.md). */
static int validate_head(gc__http_parser_t *p)
{
    gc__http_request_t *r = &p->req;
    if (p->folded && !p->limits->permit_obsolete_folding)
        return fail(p, 400, "Obsolete line folding is unacceptable");
    gc__view_t target = gc__http_target(r), method = gc__http_method(r);
    /* A WSGI application cannot tunnel: CONNECT is not implemented for any resource. */
    if (method.len == 7 && memcmp(method.base, "CONNECT", 7) == 0)
        return fail(p, 501, "Method not implemented: 'CONNECT' (a WSGI server cannot tunnel)");
    int authority;
    if (check_target(p, target, &authority) < 0)
        return -1;
    int hosts = count_fields(r, "host");
    if (hosts > 1)
        return fail(p, 400, "Invalid HTTP Header: 'HOST'");
    if (hosts == 0 && r->major == 1 && r->minor == 1)
        return fail(p, 400, "Missing Host header (required in HTTP/1.1)");
    if (hosts == 1) {
        /* An empty Host is what a client sends when the target URI has no authority
         * (RFC 9112 section 3.2); for an http(s) server the URI then has an empty host,
         * which RFC 9110 section 4.2.1 says to reject. Only an absolute-form target,
         * whose authority replaces the Host, may come with an empty one. */
        gc__view_t host = gc__http_field_value(r, (size_t)gc__http_find_field(r, "host"));
        if ((host.len == 0 && !authority) ||
            (host.len > 0 && (!is_host_port(host) || host.base[0] == ':')))
            return fail(p, 400, "Invalid Host header: '%.*s'",
                        (int)(host.len > 200 ? 200 : host.len), host.base);
    }
    if (count_fields(r, "content-type") > 1)
        return fail(p, 400, "Invalid HTTP Header: 'CONTENT-TYPE'");
    if (target.len == 1 && target.base[0] == '*' && !gc__view_ieq(method, "options"))
        return fail(p, 400, "Invalid HTTP request line: '%.*s *'", (int)method.len, method.base);
    for (size_t i = 0; i < r->nfields; i++)
        if (!gc__http_is_field_value(gc__http_field_value(r, i)))
            return fail(p, 400, "Invalid HTTP Header: '%.*s'", (int)r->fields[i].name_len,
                        r->head.data + r->fields[i].name_off);
    return check_transfer_encoding(p);
}

static int on_headers_complete(llhttp_t *ll)
{
    gc__http_parser_t *p = parser_of(ll);
    gc__http_request_t *r = &p->req;
    /* llhttp drops leading whitespace of a value; drop the trailing one too.
     *
     * llhttp's loose mode (the one distributions build) lets spaces into a field name
     * ("Bad Name", "Host :"). Gunicorn refuses such names, and a proxy in front may
     * read them differently from us (request smuggling), so they are checked here. */
    for (size_t i = 0; i < r->nfields; i++) {
        gc__http_field_t *f = &r->fields[i];
        gc__view_t name = gc__http_field_name(r, i);
        while (p->limits->strip_header_spaces && f->name_len > 0 &&
               (name.base[f->name_len - 1] == ' ' || name.base[f->name_len - 1] == '\t'))
            name.len = --f->name_len;
        if (!gc__http_is_token(name))
            return fail(p, 400, "Invalid HTTP header name: '%.*s'",
                        (int)(name.len > 64 ? 64 : name.len), name.base);
        while (f->value_len > 0) {
            char c = r->head.data[f->value_off + f->value_len - 1];
            if (c != ' ' && c != '\t')
                break;
            f->value_len--;
        }
    }
    r->major = ll->http_major;
    r->minor = ll->http_minor;
    /* A request line without a version is HTTP/0.9 to llhttp, and no version callback
     * runs; Gunicorn refuses the two-part line (found by tests/fuzz). */
    if (r->major != 1)
        return fail(p, 400, "Invalid HTTP request line: '%.*s %.*s'", (int)r->method_len,
                    r->head.data + r->method_off, (int)(r->target_len > 200 ? 200 : r->target_len),
                    r->head.data + r->target_off);
    if (validate_head(p) < 0)
        return -1;
    if (p->folded)
        unfold_values(r);
    int fwd_status;
    char fwd_msg[256];
    if (gc__forward_check_head(forward_policy(p), p->trusted, r, &fwd_status, fwd_msg,
                               sizeof(fwd_msg)) < 0)
        return fail(p, fwd_status, "%s", fwd_msg);
    r->keep_alive = llhttp_should_keep_alive(ll);
    r->chunked = (ll->flags & F_CHUNKED) != 0;
    r->content_length = (ll->flags & F_CONTENT_LENGTH) ? (int64_t)ll->content_length : -1;
    p->headers_done = 1;

    ssize_t e = gc__http_find_field(r, "expect");
    if (e >= 0 && (r->major > 1 || r->minor >= 1)) {
        gc__view_t v = gc__http_field_value(r, (size_t)e);
        if (!gc__view_ieq(v, "100-continue"))
            return fail(p, 417, "Unable to comply with expectation: '%.*s'", (int)v.len, v.base);
        r->expect_continue = r->chunked || r->content_length > 0;
    }
    /* The chunk-size lines are ours to read (take_chunk_line): llhttp stops here and at
     * the end of each chunk's data. */
    p->chunk_line = r->chunked;
    if (r->expect_continue || (p->limits->head_first && (r->chunked || r->content_length > 0))) {
        /* Hand the head over now: 100 Continue goes out only if the application reads
         * the body (see gc__http_parser_resume_body); with head_first the body is read
         * while the application runs. */
        r->body_pending = 1;
        p->state = GC_HTTP_HEAD;
        return HPE_PAUSED;
    }
    return r->chunked ? HPE_PAUSED : 0;
}

/* A chunk-size line from llhttp or from take_chunk_line: how much data follows. */
static int on_chunk_header(llhttp_t *ll)
{
    gc__http_parser_t *p = parser_of(ll);
    p->chunk_left = ll->content_length;
    p->last_chunk = ll->content_length == 0;
    return 0;
}

/* At the end of a chunk (its data and CRLF consumed), the next chunk-size line is
 * read by take_chunk_line, which pauses llhttp for a turn of gc__http_parser_feed.
 * The usual line, hex digits and CRLF alone, is left to llhttp when it is already in
 * this feed: it reads it exactly as we would, and scan_cr still checks its bytes. The
 * line starts after the framing bytes not yet scanned, of which the first
 * expect_crlf are the rest of the CRLF after the data. */
static int on_chunk_complete(llhttp_t *ll)
{
    gc__http_parser_t *p = parser_of(ll);
    if (p->last_chunk)
        return 0; /* the end of the trailers: on_message_complete follows */
    const char *q = p->scan_pos, *end = p->feed_end;
    if (q != NULL && q >= p->feed_data && (size_t)(end - q) >= (size_t)p->expect_crlf) {
        q += p->expect_crlf;
        /* Up to 15 digits: a size that take_chunk_line would take too (below 2^62). */
        size_t digits = 0;
        while (q + digits < end && digits <= 15 && is_hex(q[digits]))
            digits++;
        if (digits >= 1 && digits <= 15 && end - (q + digits) >= 2 && q[digits] == '\r' &&
            q[digits + 1] == '\n')
            return 0;
    }
    p->chunk_line = 1;
    return HPE_PAUSED;
}

/* Moves a body that outgrew memory into an unlinked temporary file in $TMPDIR (or /tmp). */
static int spool(gc__http_body_t *b)
{
    const char *dir = getenv("TMPDIR");
    char path[4096];
    snprintf(path, sizeof(path), "%s/gunicorn-c-body-XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkstemp(path);
    if (fd < 0)
        return -errno;
    unlink(path);
    size_t off = 0;
    while (off < b->mem.len) {
        ssize_t w = write(fd, b->mem.data + off, b->mem.len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            int err = -errno;
            close(fd);
            return err;
        }
        off += (size_t)w;
    }
    gc__buf_free(&b->mem);
    b->fd = fd;
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int gc__http_percent_decode(gc__buf_t *out, gc__view_t v)
{
    gc__buf_reset(out);
    if (gc__buf_reserve(out, v.len + 1) < 0)
        return -ENOMEM;
    for (size_t i = 0; i < v.len; i++) {
        char c = v.base[i];
        int hi, lo;
        if (c == '%' && i + 2 < v.len && (hi = hexval(v.base[i + 1])) >= 0 &&
            (lo = hexval(v.base[i + 2])) >= 0) {
            c = (char)(hi * 16 + lo);
            i += 2;
        }
        out->data[out->len++] = c;
    }
    return 0;
}

int gc__http_fields_reserve(gc__http_request_t *r)
{
    if (r->nfields < r->fields_cap)
        return 0;
    size_t cap = r->fields_cap ? r->fields_cap * 2 : 16;
    gc__http_field_t *f = realloc(r->fields, cap * sizeof(*f));
    if (f == NULL)
        return -ENOMEM;
    r->fields = f;
    r->fields_cap = cap;
    return 0;
}

int gc__http_body_append(gc__http_body_t *b, const char *at, size_t len, size_t spool_threshold)
{
    if (b->fd < 0 && b->mem.len + len > spool_threshold) {
        int err = spool(b);
        if (err < 0)
            return err == -ENOMEM ? -EIO : err;
    }
    if (b->fd >= 0) {
        while (len > 0) {
            ssize_t w = pwrite(b->fd, at, len, (off_t)b->len);
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0)
                return errno == ENOMEM ? -EIO : -errno;
            at += w;
            len -= (size_t)w;
            b->len += (uint64_t)w;
        }
        return 0;
    }
    if (gc__buf_append(&b->mem, at, len) < 0)
        return -ENOMEM;
    b->len += len;
    return 0;
}

/* Checks the framing bytes in [b, e) (request line, fields, chunk lines, trailers; not
 * body data) for a CR that is not followed by LF, and that a chunk's data is followed
 * by CRLF. llhttp as distributions build it (its loose mode) takes any byte after the
 * CR that ends the header section as the LF, so "...\r\n\rX-Header: v" would end the
 * head at the "X" and the rest would be read as the next request (a prefix of the
 * message answered 200), and it skips any two bytes after a chunk's data. */
static int scan_cr(gc__http_parser_t *p, const char *b, const char *e)
{
    while (b < e) {
        if (!p->expect_crlf && !p->cr_pending) {
            /* Nothing pending: only the next CR matters. */
            const char *cr = memchr(b, '\r', (size_t)(e - b));
            if (cr == NULL)
                return 0;
            p->cr_pending = 1;
            b = cr + 1;
            continue;
        }
        if (p->expect_crlf) {
            if (*b != (p->expect_crlf == 2 ? '\r' : '\n'))
                return fail(p, 400, "Invalid chunked body: chunk data not followed by CRLF");
            p->expect_crlf--;
        }
        if (p->cr_pending && *b != '\n')
            return fail(p, 400, "Invalid HTTP request: CR not followed by LF");
        p->cr_pending = *b == '\r';
        b++;
    }
    return 0;
}

static int on_body(llhttp_t *ll, const char *at, size_t len)
{
    gc__http_parser_t *p = parser_of(ll);
    if (p->scan_pos != NULL && p->scan_pos <= at) {
        if (scan_cr(p, p->scan_pos, at) < 0)
            return -1;
        if (p->cr_pending)
            return fail(p, 400, "Invalid HTTP request: CR not followed by LF");
        p->scan_pos = at + len;
    }
    if (p->req.chunked && len <= p->chunk_left) {
        p->chunk_left -= len;
        p->expect_crlf = p->chunk_left == 0 ? 2 : 0;
    }
    int err = gc__http_body_append(&p->req.body, at, len, p->limits->spool_threshold);
    if (err == -ENOMEM)
        return oom(p);
    if (err < 0)
        return fail(p, 500, "Cannot write the request body to a temporary file");
    return 0;
}

static int on_message_complete(llhttp_t *ll)
{
    parser_of(ll)->req.body_pending = 0;
    parser_of(ll)->state = GC_HTTP_READY;
    return HPE_PAUSED;
}

static llhttp_settings_t settings;

void gc__http_parser_init(gc__http_parser_t *p, const gc__http_limits_t *limits)
{
    if (settings.on_message_complete == NULL) {
        llhttp_settings_init(&settings);
        settings.on_message_begin = on_message_begin;
        settings.on_method = on_method;
        settings.on_url = on_url;
        settings.on_version_complete = on_version_complete;
        settings.on_header_field = on_header_field;
        settings.on_header_field_complete = on_header_field_complete;
        settings.on_header_value = on_header_value;
        settings.on_headers_complete = on_headers_complete;
        settings.on_body = on_body;
        settings.on_chunk_header = on_chunk_header;
        settings.on_chunk_complete = on_chunk_complete;
        settings.on_message_complete = on_message_complete;
    }
    memset(p, 0, sizeof(*p));
    llhttp_init(&p->ll, HTTP_REQUEST, &settings);
    p->ll.data = p;
    p->limits = limits;
    gc__buf_init(&p->req.head);
    gc__buf_init(&p->req.body.mem);
    p->req.body.fd = -1;
    p->req.content_length = -1;
    p->req.script_name = -1;
}

static void request_clear(gc__http_request_t *r)
{
    gc__buf_reset(&r->head);
    r->method_off = r->method_len = 0;
    r->target_off = r->target_len = 0;
    r->nfields = 0;
    r->major = r->minor = 0;
    r->keep_alive = r->chunked = r->expect_continue = r->body_pending = 0;
    r->close_delimited = 0;
    r->version[0] = '\0';
    r->content_length = -1;
    r->url_scheme = 0;
    r->script_name = -1;
    /* A big body's memory is given back rather than kept for the next request. */
    if (r->body.mem.cap > 64 * 1024)
        gc__buf_free(&r->body.mem);
    gc__buf_reset(&r->body.mem);
    if (r->body.fd >= 0)
        close(r->body.fd);
    r->body.fd = -1;
    r->body.len = 0;
}

void gc__http_parser_free(gc__http_parser_t *p)
{
    request_clear(&p->req);
    gc__buf_free(&p->req.head);
    gc__buf_free(&p->line);
    gc__buf_free(&p->req.body.mem);
    free(p->req.fields);
    p->req.fields = NULL;
    p->req.fields_cap = 0;
}

void gc__http_parser_next(gc__http_parser_t *p)
{
    request_clear(&p->req);
    p->state = GC_HTTP_NEED_MORE;
    p->headers_done = p->in_value = p->started = p->folded = 0;
    p->line_started = p->substituted = p->line_done = 0;
    gc__buf_reset(&p->line);
    p->method_len = 0;
    p->ndropped = 0;
    p->chunk_line = p->last_chunk = 0;
    p->ntrailers = p->trailer_name_len = p->trailer_size = 0;
    p->cr_pending = 0;
    p->chunk_left = 0;
    p->expect_crlf = 0;
    /* After a request with "Connection: Upgrade" (or a CONNECT) llhttp would hand every
     * later byte over as another protocol's, with no request around it. Gunicorn has no
     * upgrades and reads on in HTTP/1.1, so llhttp starts afresh instead. */
    if (p->ll.upgrade)
        llhttp_reset(&p->ll);
    else
        llhttp_resume(&p->ll);
}

/* Turns an llhttp error into Gunicorn's status and message, unless a callback already
 * chose them. */
static void map_llhttp_error(gc__http_parser_t *p, llhttp_errno_t err)
{
    const char *reason = llhttp_get_error_reason(&p->ll);
    if (reason == NULL)
        reason = llhttp_errno_name(err);
    switch (err) {
    case HPE_INVALID_METHOD:
        fail(p, 400, "Invalid HTTP method: %s", reason);
        break;
    case HPE_INVALID_VERSION:
        /* HTTP/1.2 to 1.9: a version of HTTP/1 we do not implement, which
         * --permit-unconventional-http-version serves as 1.1 (take_line). */
        if (p->ll.http_major == 1 && p->ll.http_minor >= 2 && p->ll.http_minor <= 9)
            fail(p, 505, "HTTP Version Not Supported: HTTP/1.%d", p->ll.http_minor);
        else
            fail(p, 400, "Invalid HTTP Version: %s", reason);
        break;
    case HPE_INVALID_URL:
        fail(p, 400, "Invalid HTTP request line: %s", reason);
        break;
    case HPE_INVALID_TRANSFER_ENCODING:
        /* llhttp raises this when chunked is not the last coding: the framing is
         * ambiguous, not merely unsupported. */
        fail(p, 400, "Invalid HTTP Header: 'TRANSFER-ENCODING' (%s)", reason);
        break;
    default:
        fail(p, 400, "Invalid HTTP request: %s", reason);
        break;
    }
}

static size_t feed(gc__http_parser_t *p, const char *data, size_t len)
{
    p->feed_data = data;
    p->feed_end = data + len;
    p->scan_pos = data;
    llhttp_errno_t err = llhttp_execute(&p->ll, data, len);
    size_t used = len;
    if (err == HPE_OK) {
        used = len;
    } else if (err == HPE_PAUSED &&
               (p->state == GC_HTTP_READY || p->state == GC_HTTP_HEAD || p->chunk_line)) {
        used = (size_t)(llhttp_get_error_pos(&p->ll) - data);
        if (p->state == GC_HTTP_NEED_MORE)
            llhttp_resume(&p->ll); /* at a chunk-size line: take_chunk_line goes on */
    } else if (err == HPE_PAUSED_UPGRADE) {
        /* An Upgrade request: hand over its head; the connection will not be reused
         * for HTTP after it. */
        p->state = GC_HTTP_READY;
        p->req.keep_alive = 0;
        used = (size_t)(llhttp_get_error_pos(&p->ll) - data);
    } else {
        if (p->error_status == 0)
            map_llhttp_error(p, err);
        p->state = GC_HTTP_ERROR;
        return len;
    }
    /* The framing bytes after the last body piece; a request is handed over only if
     * none of its line ends is a bare CR. */
    const char *from = p->scan_pos;
    p->scan_pos = NULL;
    if (from >= data && from <= data + used && scan_cr(p, from, data + used) < 0) {
        p->state = GC_HTTP_ERROR;
        return len;
    }
    return used;
}

/* Reads a chunk-size line (RFC 9112 section 7.1) ourselves and gives llhttp the size
 * alone: llhttp 8.1 refuses the optional whitespace (BWS) that RFC 9112 section 7.1.1
 * allows around ";" and "=" in chunk extensions ("5 ; name = value"), which Gunicorn
 * and other servers accept. The line is checked against the grammar
 *     chunk-size *( BWS ";" BWS token [ BWS "=" BWS ( token / quoted-string ) ] ) CRLF
 * with no other whitespace, a CR only before the final LF, at most CHUNK_LINE_MAX
 * bytes, and a size that fits in 62 bits. Extensions are not used. Returns the bytes
 * consumed. */
#define CHUNK_LINE_MAX 4096

static size_t skip_bws(const char *s, size_t i, size_t n)
{
    while (i < n && (s[i] == ' ' || s[i] == '\t'))
        i++;
    return i;
}

static size_t skip_token(const char *s, size_t i, size_t n)
{
    size_t j = i;
    while (j < n && gc__http_is_token(gc__view(s + j, 1)))
        j++;
    return j;
}

static int parse_chunk_line(const char *s, size_t n, uint64_t *size)
{
    size_t i = 0;
    uint64_t v = 0;
    while (i < n && is_hex(s[i])) {
        if (v >> 58)
            return -1;
        char c = s[i++];
        v = v * 16 + (uint64_t)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
    }
    if (i == 0)
        return -1;
    while (i < n) {
        i = skip_bws(s, i, n);
        if (i == n || s[i] != ';')
            return -1;
        i = skip_bws(s, i + 1, n);
        size_t j = skip_token(s, i, n);
        if (j == i)
            return -1;
        i = skip_bws(s, j, n);
        if (i == n || s[i] != '=') {
            i = j; /* no value: the next extension or the end must follow */
            continue;
        }
        i = skip_bws(s, i + 1, n);
        if (i < n && s[i] == '"') {
            for (i++; i < n && s[i] != '"'; i++) {
                unsigned char c = (unsigned char)s[i];
                if (c == '\\') {
                    if (++i == n)
                        return -1;
                    c = (unsigned char)s[i];
                    if ((c < ' ' && c != '\t') || c == 0x7f)
                        return -1;
                } else if ((c < ' ' && c != '\t') || c == 0x7f) {
                    return -1;
                }
            }
            if (i == n)
                return -1;
            i++;
        } else {
            j = skip_token(s, i, n);
            if (j == i)
                return -1;
            i = j;
        }
    }
    *size = v;
    return 0;
}

static size_t take_chunk_line(gc__http_parser_t *p, const char *data, size_t len)
{
    const char *nl = memchr(data, '\n', len);
    size_t n = nl ? (size_t)(nl - data) + 1 : len;
    if (p->line.len + n > CHUNK_LINE_MAX) {
        fail(p, 400, "Invalid chunk size line: longer than %d bytes", CHUNK_LINE_MAX);
        goto error;
    }
    /* A line that arrives whole (the usual case) is parsed where it is. */
    const char *s = data;
    size_t l = n;
    if (p->line.len > 0 || nl == NULL) {
        if (gc__buf_append(&p->line, data, n) < 0) {
            oom(p);
            goto error;
        }
        if (nl == NULL)
            return len;
        s = p->line.data;
        l = p->line.len;
    }
    uint64_t size;
    if (l < 2 || s[l - 2] != '\r' || parse_chunk_line(s, l - 2, &size) < 0) {
        fail(p, 400, "Invalid chunk size line: '%.*s'", (int)(l > 64 ? 64 : l), s);
        goto error;
    }
    /* The size alone, in hex, for llhttp. */
    char line[20];
    size_t m = sizeof(line);
    line[--m] = '\n';
    line[--m] = '\r';
    uint64_t v = size;
    do {
        line[--m] = "0123456789abcdef"[v & 15];
        v >>= 4;
    } while (v != 0);
    gc__buf_reset(&p->line);
    p->chunk_line = 0;
    p->cr_pending = 0;
    feed(p, line + m, sizeof(line) - m);
    return n;
error:
    p->state = GC_HTTP_ERROR;
    return len;
}

static int is_method_char(unsigned char c)
{
    return c > ' ' && c < 0x7f;
}

/* llhttp knows a fixed list of methods; Gunicorn takes any token. */
static int llhttp_knows(const char *m, size_t n)
{
    static const char *const known[] = {
#define XX(num, name, string) #string,
        HTTP_METHOD_MAP(XX)
#undef XX
    };
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (strlen(known[i]) == n && memcmp(known[i], m, n) == 0)
            return 1;
    return 0;
}

/* Collects and checks the method ourselves, with Gunicorn's rules: a token; unless
 * --permit-unconventional-http-method, 3 to 20 characters, no lowercase and no '#'.
 * llhttp then gets the method, or PUT as a stand-in for one it does not know (body
 * framing never depends on the method). Empty lines before a request are skipped, as
 * RFC 9112 section 2.2 allows. Returns the bytes consumed. */
static size_t take_method(gc__http_parser_t *p, const char *data, size_t len)
{
    size_t i = 0;
    if (p->method_len == 0)
        while (i < len && (data[i] == '\r' || data[i] == '\n'))
            i++;
    for (; i < len; i++) {
        unsigned char c = (unsigned char)data[i];
        if (c == ' ')
            break;
        p->started = 1;
        if (!is_method_char(c) || p->method_len >= sizeof(p->method) - 1) {
            fail(p, 400, "Invalid HTTP method: '%.*s'", (int)p->method_len, p->method);
            p->state = GC_HTTP_ERROR;
            return len;
        }
        p->method[p->method_len++] = (char)c;
    }
    if (i == len)
        return len; /* the method goes on in the next read */
    gc__view_t m = gc__view(p->method, p->method_len);
    int ok = gc__http_is_token(m);
    if (ok && !p->limits->permit_unconventional_method) {
        ok = m.len >= 3 && m.len <= 20 && memchr(m.base, '#', m.len) == NULL;
        for (size_t j = 0; ok && j < m.len; j++)
            ok = !(m.base[j] >= 'a' && m.base[j] <= 'z');
    }
    if (!ok) {
        fail(p, 400, "Invalid HTTP method: '%.*s'", (int)m.len, m.base);
        p->state = GC_HTTP_ERROR;
        return len;
    }
    if (p->limits->casefold_method)
        for (size_t j = 0; j < p->method_len; j++)
            if (p->method[j] >= 'a' && p->method[j] <= 'z')
                p->method[j] = (char)(p->method[j] - 32);
    p->line_started = 1;
    char line[32];
    int known = llhttp_knows(p->method, p->method_len);
    p->substituted = !known;
    int n = snprintf(line, sizeof(line), "%.*s ", known ? (int)p->method_len : 3,
                     known ? p->method : "PUT");
    feed(p, line, (size_t)n);
    return i + 1;
}

/* With --permit-unconventional-http-version, the rest of the request line is collected
 * and its version checked here: any "HTTP/d.d" is taken (llhttp knows only 1.0 and
 * 1.1 among them) and llhttp is given HTTP/1.1 for versions from 1.1 up, HTTP/1.0
 * below; the application sees the version as sent in SERVER_PROTOCOL. */
static size_t take_line(gc__http_parser_t *p, const char *data, size_t len)
{
    const char *nl = memchr(data, '\n', len);
    size_t n = nl ? (size_t)(nl - data) + 1 : len;
    size_t limit = p->limits->max_line ? p->limits->max_line + 2 : 8192;
    if (p->method_len + 1 + p->line.len + n > limit + 1) {
        fail(p, 400, "Request Line is too large (%zu > %zu)", p->method_len + 1 + p->line.len + n,
             p->limits->max_line);
        goto error;
    }
    if (gc__buf_append(&p->line, data, n) < 0) {
        oom(p);
        goto error;
    }
    if (nl == NULL)
        return len;
    char *line = p->line.data;
    size_t l = p->line.len;
    if (l < 2 || line[l - 2] != '\r') {
        fail(p, 400, "Invalid HTTP request line: bare LF");
        goto error;
    }
    l -= 2;
    char *sp = NULL;
    for (size_t i = l; i > 0; i--)
        if (line[i - 1] == ' ') {
            sp = line + i - 1;
            break;
        }
    const char *v = sp ? sp + 1 : NULL;
    size_t vlen = sp ? (size_t)(line + l - v) : 0;
    if (v == NULL || vlen != 8 || memcmp(v, "HTTP/", 5) != 0 || !is_digit(v[5]) || v[6] != '.' ||
        !is_digit(v[7])) {
        fail(p, 400, "Invalid HTTP Version: '%.*s'", (int)(vlen > 16 ? 16 : vlen), v ? v : "");
        goto error;
    }
    int major = v[5] - '0', minor = v[7] - '0';
    if (!(major == 1 && minor <= 1))
        snprintf(p->req.version, sizeof(p->req.version), "%.8s", v);
    int newer = major > 1 || (major == 1 && minor >= 1);
    p->line.len = (size_t)(sp - line);
    gc__buf_append_str(&p->line, newer ? " HTTP/1.1\r\n" : " HTTP/1.0\r\n");
    p->line_done = 1;
    feed(p, p->line.data, p->line.len);
    return n;
error:
    p->state = GC_HTTP_ERROR;
    return len;
}

size_t gc__http_parser_feed(gc__http_parser_t *p, const char *data, size_t len)
{
    if (p->state != GC_HTTP_NEED_MORE || len == 0)
        return 0;
    size_t pre = 0;
    if (!p->line_started) {
        pre = take_method(p, data, len);
        if (p->state != GC_HTTP_NEED_MORE || !p->line_started || pre == len)
            return pre;
    }
    if (p->limits->permit_unconventional_version && !p->line_done) {
        pre += take_line(p, data + pre, len - pre);
        if (p->state != GC_HTTP_NEED_MORE || !p->line_done || pre == len)
            return pre;
    }
    while (pre < len && p->state == GC_HTTP_NEED_MORE) {
        if (p->chunk_line) {
            pre += take_chunk_line(p, data + pre, len - pre);
            continue;
        }
        size_t used = feed(p, data + pre, len - pre);
        if (used > 0)
            p->prev_last = data[pre + used - 1];
        pre += used;
        if (!p->chunk_line)
            break;
    }
    return pre;
}

void gc__http_parser_resume_body(gc__http_parser_t *p)
{
    if (p->state != GC_HTTP_HEAD)
        return;
    p->state = GC_HTTP_NEED_MORE;
    llhttp_resume(&p->ll);
}

void gc__http_parser_eof(gc__http_parser_t *p)
{
    if (p->state != GC_HTTP_NEED_MORE || !p->started)
        return;
    /* A request cut short: there is nobody left to answer, but the caller logs it. */
    fail(p, 400, "Unexpected end of request");
    p->state = GC_HTTP_ERROR;
}

ssize_t gc__http_body_read(const gc__http_body_t *b, uint64_t off, char *dst, size_t n)
{
    if (off >= b->len)
        return 0;
    if (n > b->len - off)
        n = (size_t)(b->len - off);
    if (b->fd < 0) {
        memcpy(dst, b->mem.data + off, n);
        return (ssize_t)n;
    }
    for (;;) {
        ssize_t r = pread(b->fd, dst, n, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        return r < 0 ? -errno : r;
    }
}
