/* repr.c: Python's repr() of a string (see repr.h). */
#include "http/repr.h"

#include <stdio.h>
#include <string.h>

char *gc__http_repr(char *out, size_t cap, gc__view_t v)
{
    if (cap == 0)
        return out;
    /* Python quotes with ' unless the text holds a ' and no ". */
    char quote = '\'';
    if (memchr(v.base, '\'', v.len) && !memchr(v.base, '"', v.len))
        quote = '"';
    size_t o = 0;
    char esc[8];
#define PUT(s, n)                                                                                  \
    do {                                                                                           \
        size_t n_ = (n);                                                                           \
        if (o + n_ >= cap)                                                                         \
            goto done;                                                                             \
        memcpy(out + o, (s), n_);                                                                  \
        o += n_;                                                                                   \
    } while (0)
    PUT(&quote, 1);
    for (size_t i = 0; i < v.len; i++) {
        unsigned char c = (unsigned char)v.base[i];
        if (c == '\\' || c == (unsigned char)quote) {
            esc[0] = '\\';
            esc[1] = (char)c;
            PUT(esc, 2);
        } else if (c == '\t') {
            PUT("\\t", 2);
        } else if (c == '\n') {
            PUT("\\n", 2);
        } else if (c == '\r') {
            PUT("\\r", 2);
        } else if (c < 0x20 || c >= 0x7f) {
            snprintf(esc, sizeof(esc), "\\x%02x", c);
            PUT(esc, 4);
        } else {
            PUT(&c, 1);
        }
    }
    PUT(&quote, 1);
#undef PUT
done:
    out[o] = '\0';
    return out;
}
