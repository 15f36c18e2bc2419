/* forward.c: header_map, forwarder_headers, secure_scheme_headers and SCRIPT_NAME (see
 * forward.h). */
#include "http/forward.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/repr.h"

/* Header names compare without regard to case. Gunicorn upper-cases the request's
 * names and compares them with the configured ones as given, so a lower-case key in
 * secure_scheme_headers or forwarder_headers never matches there; here it does. */
static int name_eq(gc__view_t v, const char *s)
{
    size_t n = strlen(s);
    if (v.len != n)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char a = (unsigned char)v.base[i], b = (unsigned char)s[i];
        if (a >= 'a' && a <= 'z')
            a = (unsigned char)(a - 32);
        if (b >= 'a' && b <= 'z')
            b = (unsigned char)(b - 32);
        if (a != b)
            return 0;
    }
    return 1;
}

/* --- the policy ------------------------------------------------------------------- */

static char *default_forwarders[] = {"SCRIPT_NAME", "PATH_INFO"};
static gc__scheme_header_t default_schemes[] = {
    {"X-FORWARDED-PROTOCOL", "ssl"},
    {"X-FORWARDED-PROTO", "https"},
    {"X-FORWARDED-SSL", "on"},
};
static const gc__forward_policy_t default_policy = {
    .header_map = GC_HEADER_MAP_DROP,
    .forwarders = default_forwarders,
    .nforwarders = 2,
    .schemes = default_schemes,
    .nschemes = 3,
    .script_name = "",
};

const gc__forward_policy_t *gc__forward_policy_default(void)
{
    return &default_policy;
}

int gc__forward_policy_init(gc__forward_policy_t *fp)
{
    memset(fp, 0, sizeof(*fp));
    fp->header_map = GC_HEADER_MAP_DROP;
    fp->script_name = strdup("");
    return fp->script_name ? 0 : -ENOMEM;
}

int gc__forward_policy_add_forwarder(gc__forward_policy_t *fp, const char *name)
{
    if (strcmp(name, "*") == 0) {
        fp->forwarders_any = 1;
        return 0;
    }
    char **list = realloc(fp->forwarders, (fp->nforwarders + 1) * sizeof(*list));
    if (list == NULL)
        return -ENOMEM;
    fp->forwarders = list;
    if ((list[fp->nforwarders] = strdup(name)) == NULL)
        return -ENOMEM;
    fp->nforwarders++;
    return 0;
}

int gc__forward_policy_add_scheme(gc__forward_policy_t *fp, const char *name, const char *value)
{
    gc__scheme_header_t *list = realloc(fp->schemes, (fp->nschemes + 1) * sizeof(*list));
    if (list == NULL)
        return -ENOMEM;
    fp->schemes = list;
    gc__scheme_header_t *h = &list[fp->nschemes];
    h->name = strdup(name);
    h->value = value ? strdup(value) : NULL;
    if (h->name == NULL || (value && h->value == NULL)) {
        free(h->name);
        free(h->value);
        return -ENOMEM;
    }
    fp->nschemes++;
    return 0;
}

int gc__forward_policy_set_script_name(gc__forward_policy_t *fp, const char *script_name)
{
    char *copy = strdup(script_name ? script_name : "");
    if (copy == NULL)
        return -ENOMEM;
    free(fp->script_name);
    fp->script_name = copy;
    return 0;
}

void gc__forward_policy_free(gc__forward_policy_t *fp)
{
    for (size_t i = 0; i < fp->nforwarders; i++)
        free(fp->forwarders[i]);
    free(fp->forwarders);
    for (size_t i = 0; i < fp->nschemes; i++) {
        free(fp->schemes[i].name);
        free(fp->schemes[i].value);
    }
    free(fp->schemes);
    free(fp->script_name);
    memset(fp, 0, sizeof(*fp));
}

/* --- per request ------------------------------------------------------------------ */

enum gc__forward_action gc__forward_field(const gc__forward_policy_t *fp, int trusted,
                                          gc__view_t name)
{
    if (memchr(name.base, '_', name.len) == NULL)
        return GC_FORWARD_KEEP;
    /* --strip-header-spaces may leave "Name " here; the name is what precedes. */
    while (name.len && (name.base[name.len - 1] == ' ' || name.base[name.len - 1] == '\t'))
        name.len--;
    if (trusted) {
        if (fp->forwarders_any)
            return GC_FORWARD_KEEP;
        for (size_t i = 0; i < fp->nforwarders; i++)
            if (name_eq(name, fp->forwarders[i]))
                return GC_FORWARD_KEEP;
    }
    switch (fp->header_map) {
    case GC_HEADER_MAP_DANGEROUS:
        return GC_FORWARD_KEEP;
    case GC_HEADER_MAP_REFUSE:
        return GC_FORWARD_REFUSE;
    case GC_HEADER_MAP_DROP:
        break;
    }
    return GC_FORWARD_DROP;
}

void gc__http_split_target(gc__view_t t, gc__view_t *path, gc__view_t *query)
{
    const char *p = t.base, *end = t.base + t.len;
    /* Absolute form (http://host/path): the path starts after the authority. */
    if (t.len > 0 && t.base[0] != '/') {
        const char *sep = memmem(t.base, t.len, "://", 3);
        if (sep != NULL) {
            const char *slash = memchr(sep + 3, '/', (size_t)(end - (sep + 3)));
            const char *q = memchr(sep + 3, '?', (size_t)(end - (sep + 3)));
            p = slash && (!q || slash < q) ? slash : (q ? q : end);
        }
    }
    const char *hash = memchr(p, '#', (size_t)(end - p));
    if (hash)
        end = hash;
    const char *qm = memchr(p, '?', (size_t)(end - p));
    *path = gc__view(p, (size_t)((qm ? qm : end) - p));
    *query = qm ? gc__view(qm + 1, (size_t)(end - qm - 1)) : gc__view("", 0);
}

int gc__forward_check_head(const gc__forward_policy_t *fp, int trusted, gc__http_request_t *r,
                           int *status, char *msg, size_t cap)
{
    r->url_scheme = GC_SCHEME_UNSET;
    r->script_name = -1;
    /* Drop what header_map drops. The parser counted these fields out of
     * limit_request_fields as they arrived, and refused the ones to refuse. */
    size_t kept = 0;
    for (size_t i = 0; i < r->nfields; i++)
        if (gc__forward_field(fp, trusted, gc__http_field_name(r, i)) != GC_FORWARD_DROP)
            r->fields[kept++] = r->fields[i];
    r->nfields = kept;

    for (size_t i = 0; i < r->nfields; i++) {
        gc__view_t name = gc__http_field_name(r, i);
        /* The first scheme header decides (even "http" on a TLS listener); a later one
         * that implies the other scheme means the proxy chain is confused or a client
         * slipped one past it. Untrusted peers' scheme headers are plain headers. */
        for (size_t j = 0; trusted && j < fp->nschemes; j++) {
            if (!name_eq(name, fp->schemes[j].name))
                continue;
            gc__view_t v = gc__http_field_value(r, i);
            const char *want = fp->schemes[j].value;
            int https = want && v.len == strlen(want) && memcmp(v.base, want, v.len) == 0;
            int scheme = https ? GC_SCHEME_HTTPS : GC_SCHEME_HTTP;
            if (r->url_scheme == GC_SCHEME_UNSET)
                r->url_scheme = scheme;
            else if (r->url_scheme != scheme)
                goto contradictory;
            break;
        }
        /* Only a field that survived header_map gets here: from a trusted peer listed
         * in forwarder_headers, or anyone's under header_map=dangerous. The last one
         * wins, as in Gunicorn's environ loop. */
        if (name_eq(name, "SCRIPT_NAME"))
            r->script_name = (int)i;
    }

    gc__view_t sn = r->script_name >= 0 ? gc__http_field_value(r, (size_t)r->script_name)
                                        : gc__view(fp->script_name, strlen(fp->script_name));
    if (sn.len > 0) {
        /* A plain prefix test on the raw path, as Gunicorn's: "/app" also fits
         * "/application", and "/a%20b" does not fit "/a b". */
        gc__view_t path, query;
        gc__http_split_target(gc__http_target(r), &path, &query);
        if (path.len < sn.len || memcmp(path.base, sn.base, sn.len) != 0) {
            char rp[100], rs[100];
            snprintf(msg, cap,
                     "Configuration problem: Request path %s does not start with SCRIPT_NAME %s",
                     gc__http_repr(rp, sizeof(rp), path), gc__http_repr(rs, sizeof(rs), sn));
            *status = 500;
            return -1;
        }
    }
    return 0;

contradictory:
    snprintf(msg, cap, "Contradictory scheme headers");
    *status = 400;
    return -1;
}
