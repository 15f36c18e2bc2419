/* buf.h: a growable byte buffer and a borrowed byte view.
 *
 * gc__buf_t owns its storage; gc__view_t borrows someone else's. Growth is bounded by
 * the callers (limits come from settings), and a failed allocation is reported with
 * -ENOMEM so that client-driven sizes fail the request, never the worker. */
#ifndef GC_COMMON_BUF_H
#define GC_COMMON_BUF_H

#include <stddef.h>
#include <string.h>

typedef struct {
    const char *base; /* borrowed */
    size_t len;
} gc__view_t;

typedef struct {
    char *data; /* owned; NULL until the first append */
    size_t len;
    size_t cap;
} gc__buf_t;

#define GC_VIEW_LIT(s) ((gc__view_t){(s), sizeof(s) - 1})

static inline gc__view_t gc__view(const char *base, size_t len)
{
    return (gc__view_t){base, len};
}

/* Case-insensitive ASCII comparison of a view with a NUL-terminated lower-case literal. */
int gc__view_ieq(gc__view_t v, const char *lower);

void gc__buf_init(gc__buf_t *b);
/* Frees the storage; the buffer is empty and reusable afterwards. */
void gc__buf_free(gc__buf_t *b);
/* Makes room for `extra` more bytes, at least doubling the capacity. Returns 0, or
 * -ENOMEM (the buffer unchanged) when the allocation fails or the size would exceed
 * PTRDIFF_MAX. */
int gc__buf_reserve(gc__buf_t *b, size_t extra);
int gc__buf_append(gc__buf_t *b, const void *p, size_t n);
int gc__buf_append_str(gc__buf_t *b, const char *s);
/* printf-style append. Returns 0 or -ENOMEM. */
int gc__buf_printf(gc__buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Removes the first n bytes, keeping the rest. */
void gc__buf_consume(gc__buf_t *b, size_t n);

static inline void gc__buf_reset(gc__buf_t *b)
{
    b->len = 0;
}

#endif
