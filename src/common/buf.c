/* buf.c: growable byte buffer (see buf.h). */
#include "common/buf.h"

#include <errno.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

int gc__view_ieq(gc__view_t v, const char *lower)
{
    size_t n = strlen(lower);
    if (v.len != n)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = v.base[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c + 32);
        if (c != lower[i])
            return 0;
    }
    return 1;
}

void gc__buf_init(gc__buf_t *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void gc__buf_free(gc__buf_t *b)
{
    free(b->data);
    gc__buf_init(b);
}

int gc__buf_reserve(gc__buf_t *b, size_t extra)
{
    if (b->cap - b->len >= extra)
        return 0;
    size_t need = b->len + extra;
    /* No allocator gives more than PTRDIFF_MAX bytes; checking first also keeps the
     * doubling below from wrapping to 0 and spinning for ever. */
    if (need < b->len || need > (size_t)PTRDIFF_MAX)
        return -ENOMEM;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap = cap > (size_t)PTRDIFF_MAX / 2 ? need : cap * 2;
    char *p = realloc(b->data, cap);
    if (p == NULL)
        return -ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

int gc__buf_append(gc__buf_t *b, const void *p, size_t n)
{
    if (n == 0)
        return 0;
    if (gc__buf_reserve(b, n) < 0)
        return -ENOMEM;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

int gc__buf_append_str(gc__buf_t *b, const char *s)
{
    return gc__buf_append(b, s, strlen(s));
}

int gc__buf_printf(gc__buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || gc__buf_reserve(b, (size_t)n + 1) < 0)
        return -ENOMEM;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void gc__buf_consume(gc__buf_t *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}
