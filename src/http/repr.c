/* repr.c: Python's repr() of a string (see repr.h). */
#include "http/repr.h"

#include <string.h>

/* Python quotes with ' unless the text holds a ' and no ". */
static char quote_for(gc__view_t v)
{
    return memchr(v.base, '\'', v.len) && !memchr(v.base, '"', v.len) ? '"' : '\'';
}

/* What stands for byte c between the quotes, written to esc; returns its length. */
static size_t escape(unsigned char c, char quote, int utf8, char esc[4])
{
    static const char hex[] = "0123456789abcdef";
    esc[0] = '\\';
    if (c == '\\' || c == (unsigned char)quote) {
        esc[1] = (char)c;
        return 2;
    }
    if (c == '\t' || c == '\n' || c == '\r') {
        esc[1] = c == '\t' ? 't' : c == '\n' ? 'n' : 'r';
        return 2;
    }
    if (c < 0x20 || c == 0x7f || (c >= 0x80 && !utf8)) {
        esc[1] = 'x';
        esc[2] = hex[c >> 4];
        esc[3] = hex[c & 0xf];
        return 4;
    }
    esc[0] = (char)c;
    return 1;
}

/* Writes as much of repr(v) as fits, escape by escape, and a NUL. */
static char *repr_into(char *out, size_t cap, gc__view_t v, int utf8)
{
    if (cap == 0)
        return out;
    char quote = quote_for(v), esc[4];
    size_t o = 0;
    for (size_t i = 0; i <= v.len + 1; i++) {
        size_t n;
        if (i == 0 || i == v.len + 1) {
            esc[0] = quote;
            n = 1;
        } else {
            n = escape((unsigned char)v.base[i - 1], quote, utf8, esc);
        }
        if (o + n >= cap)
            break;
        memcpy(out + o, esc, n);
        o += n;
    }
    out[o] = '\0';
    return out;
}

char *gc__http_repr(char *out, size_t cap, gc__view_t v)
{
    return repr_into(out, cap, v, 0);
}

char *gc__http_repr_utf8(char *out, size_t cap, gc__view_t v)
{
    return repr_into(out, cap, v, 1);
}

void gc__http_repr_print(FILE *out, const char *s)
{
    gc__view_t v = gc__view(s, strlen(s));
    char quote = quote_for(v), esc[4];
    fputc(quote, out);
    for (size_t i = 0; i < v.len; i++)
        fwrite(esc, 1, escape((unsigned char)s[i], quote, 1, esc), out);
    fputc(quote, out);
}
