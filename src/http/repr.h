/* repr.h: Python's repr() of a string, for error messages and printed settings.
 *
 * Gunicorn builds several error pages with "%r" ("Invalid PROXY line: 'PROXY UDP4 ...'",
 * "Request path '/a' does not start with SCRIPT_NAME '/b'"), and its messages about
 * settings and --print-config show values the same way; these give the same text for
 * ASCII input. Two readings of the bytes from 0x80 up:
 *   - latin-1 bytes off the wire (gc__http_repr): written as \xNN escapes (Python shows
 *     the printable latin-1 letters as they are);
 *   - UTF-8 text such as a setting's value (the _utf8 and _print forms): copied as they
 *     are, so the characters show as Python shows printable ones.
 * Pure C: the one repr of the code base (the config layer uses it too). */
#ifndef GC_HTTP_REPR_H
#define GC_HTTP_REPR_H

#include <stddef.h>
#include <stdio.h>

#include "common/buf.h"

/* Writes repr(v) into out, NUL-terminated and cut to `cap` bytes. Returns out. */
char *gc__http_repr(char *out, size_t cap, gc__view_t v);
/* The same for UTF-8 text: bytes from 0x80 up are copied. Returns out. */
char *gc__http_repr_utf8(char *out, size_t cap, gc__view_t v);
/* Writes repr(s) of the NUL-terminated UTF-8 text s to out, whole (bytes from 0x80 up
 * copied), for messages on stderr and --print-config. */
void gc__http_repr_print(FILE *out, const char *s);

#endif
