/* json.h: the inside of a JSON string, and UTF-8 checks.
 *
 * Shared by the two writers of JSON: the access log's JSON lines (wsgi/access.c) and
 * the control socket's answers (arbiter/show.c). Both write the quotes, keys and
 * punctuation themselves; these functions only make bytes safe between the quotes. */
#ifndef GC_COMMON_JSON_H
#define GC_COMMON_JSON_H

#include <stddef.h>

#include "common/buf.h"

/* Appends the n bytes at s (borrowed) to out as the body of a JSON string, without the
 * quotes: `"` and `\` are backslash-escaped, newline, carriage return and tab become
 * \n \r \t, other control bytes and DEL become \u00XX, and valid UTF-8 is copied as it
 * is. A byte that does not start a valid UTF-8 sequence becomes \ufffd (one per byte),
 * so the result is always valid JSON whatever the input. Returns 0, or -ENOMEM (out
 * may then hold part of the text). */
int gc__json_escape(gc__buf_t *out, const char *s, size_t n);

/* 1 when the n bytes at s are valid UTF-8 (no overlong forms, no surrogates, nothing
 * above U+10FFFF: what Python's strict decoder accepts), else 0. */
int gc__utf8_valid(const char *s, size_t n);

#endif
