/* json.c: JSON string escaping and UTF-8 checks (see json.h). */
#include "common/json.h"

#include <errno.h>

/* Length of the valid UTF-8 sequence at p (at most n bytes; p[0] >= 0x80), or 0. */
static size_t utf8_seq_len(const unsigned char *p, size_t n)
{
    unsigned char ch = p[0];
    size_t more;
    unsigned cp, min;
    if ((ch & 0xe0) == 0xc0)
        more = 1, cp = ch & 0x1f, min = 0x80;
    else if ((ch & 0xf0) == 0xe0)
        more = 2, cp = ch & 0x0f, min = 0x800;
    else if ((ch & 0xf8) == 0xf0)
        more = 3, cp = ch & 0x07, min = 0x10000;
    else
        return 0;
    if (more >= n)
        return 0;
    for (size_t j = 1; j <= more; j++) {
        if ((p[j] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[j] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return more + 1;
}

int gc__utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        size_t len = utf8_seq_len(p + i, n - i);
        if (len == 0)
            return 0;
        i += len;
    }
    return 1;
}

int gc__json_escape(gc__buf_t *out, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        /* The run of bytes that go out as they are, in one append. */
        size_t run = i;
        while (run < n) {
            unsigned char ch = p[run];
            size_t len;
            if (ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\')
                run++;
            else if (ch >= 0x80 && (len = utf8_seq_len(p + run, n - run)) > 0)
                run += len;
            else
                break;
        }
        if (gc__buf_append(out, p + i, run - i) < 0)
            return -ENOMEM;
        if (run == n)
            break;
        unsigned char ch = p[run];
        char esc[6] = {'\\', 'u', '0', '0', hex[ch >> 4], hex[ch & 0xf]};
        const char *e = esc;
        size_t elen = 6;
        if (ch == '"' || ch == '\\')
            esc[1] = (char)ch, elen = 2;
        else if (ch == '\n')
            esc[1] = 'n', elen = 2;
        else if (ch == '\r')
            esc[1] = 'r', elen = 2;
        else if (ch == '\t')
            esc[1] = 't', elen = 2;
        else if (ch >= 0x80)
            e = "\\ufffd";
        if (gc__buf_append(out, e, elen) < 0)
            return -ENOMEM;
        i = run + 1;
    }
    return 0;
}
