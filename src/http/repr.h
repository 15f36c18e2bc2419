/* repr.h: Python's repr() of a latin-1 string, for error messages.
 *
 * Gunicorn builds several error pages with "%r" ("Invalid PROXY line: 'PROXY UDP4 ...'",
 * "Request path '/a' does not start with SCRIPT_NAME '/b'"); this gives the same text
 * for ASCII input. Bytes from 0x7f up are written as \xNN escapes (Python shows the
 * printable latin-1 letters as they are). Pure C. */
#ifndef GC_HTTP_REPR_H
#define GC_HTTP_REPR_H

#include <stddef.h>

#include "common/buf.h"

/* Writes repr(v) into out, NUL-terminated and cut to `cap` bytes. Returns out. */
char *gc__http_repr(char *out, size_t cap, gc__view_t v);

#endif
