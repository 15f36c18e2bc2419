/* unit.h: the assertion harness for the C unit tests (in the spirit of libuv's
 * test/task.h).
 *
 * Each test file is one executable: a set of `static void test_xxx(void)` functions and
 * a main that runs them with RUN() and ends with `return unit_done();`. The first failed
 * assertion prints "file:line: in test_xxx: what went wrong" with both values and exits
 * with status 1, so ctest reports the executable as failed and the message says where.
 * Nothing is kept running after a failure: later assertions in a broken test would only
 * add noise.
 *
 * `test_foo NAME` runs only the tests whose name contains NAME, which helps when
 * debugging one case under gdb or valgrind.
 *
 * A test that forks must leave the child with _exit(), never by returning into RUN. */
#ifndef GC_TESTS_UNIT_H
#define GC_TESTS_UNIT_H

#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The running test, for failure messages, and the optional name filter. */
static const char *unit_current = "(setup)";
static const char *unit_filter = NULL;
static int unit_ran = 0;

/* Prints n bytes with control and non-ASCII bytes escaped, so that a CRLF or a stray NUL
 * in a mismatch is visible. Long values are cut to keep the report readable. */
static inline void unit_print_mem(const char *p, size_t n)
{
    size_t shown = n > 512 ? 512 : n;
    fputc('"', stderr);
    for (size_t i = 0; i < shown; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '\r')
            fputs("\\r", stderr);
        else if (c == '\n')
            fputs("\\n", stderr);
        else if (c == '\t')
            fputs("\\t", stderr);
        else if (c == '"' || c == '\\')
            fprintf(stderr, "\\%c", c);
        else if (c < 0x20 || c >= 0x7f)
            fprintf(stderr, "\\x%02x", c);
        else
            fputc(c, stderr);
    }
    fputc('"', stderr);
    if (shown < n)
        fprintf(stderr, "... (%zu bytes)", n);
}

static inline void unit_fail_head(const char *file, int line)
{
    fflush(stdout);
    fprintf(stderr, "\n%s:%d: in %s: ", file, line, unit_current);
}

static inline void unit_fail_end(void)
{
    fputc('\n', stderr);
    fflush(stderr);
    exit(1);
}

static inline void unit_check(int ok, const char *file, int line, const char *expr)
{
    if (ok)
        return;
    unit_fail_head(file, line);
    fprintf(stderr, "assertion failed: %s", expr);
    unit_fail_end();
}

static inline void unit_check_int(intmax_t a, intmax_t b, const char *file, int line,
                                  const char *ea, const char *eb)
{
    if (a == b)
        return;
    unit_fail_head(file, line);
    fprintf(stderr, "%s == %s\n  left:  %jd\n  right: %jd", ea, eb, a, b);
    unit_fail_end();
}

static inline void unit_check_mem(const char *a, size_t alen, const char *b, size_t blen,
                                  const char *file, int line, const char *ea, const char *eb)
{
    if (alen == blen && (alen == 0 || memcmp(a, b, alen) == 0))
        return;
    unit_fail_head(file, line);
    fprintf(stderr, "%s == %s\n  left:  ", ea, eb);
    if (a == NULL)
        fputs("NULL", stderr);
    else
        unit_print_mem(a, alen);
    fprintf(stderr, " (%zu bytes)\n  right: ", alen);
    if (b == NULL)
        fputs("NULL", stderr);
    else
        unit_print_mem(b, blen);
    fprintf(stderr, " (%zu bytes)", blen);
    size_t i = 0;
    while (a && b && i < alen && i < blen && a[i] == b[i])
        i++;
    fprintf(stderr, "\n  first difference at byte %zu", i);
    unit_fail_end();
}

static inline void unit_check_str(const char *a, const char *b, const char *file, int line,
                                  const char *ea, const char *eb)
{
    if (a != NULL && b != NULL && strcmp(a, b) == 0)
        return;
    unit_check_mem(a, a ? strlen(a) : 0, b, b ? strlen(b) : 0, file, line, ea, eb);
    /* Both lengths and bytes can agree when exactly one side is NULL and the other "". */
    unit_fail_head(file, line);
    fprintf(stderr, "%s == %s: one side is NULL", ea, eb);
    unit_fail_end();
}

/* ASSERT(expr): expr is true. */
#define ASSERT(expr) unit_check(!!(expr), __FILE__, __LINE__, #expr)

/* Integers of any width and signedness that fit intmax_t, printed on mismatch. */
#define ASSERT_EQ_INT(a, b) unit_check_int((intmax_t)(a), (intmax_t)(b), __FILE__, __LINE__, #a, #b)

/* 0, the success value of the project's int functions. */
#define ASSERT_OK(expr) ASSERT_EQ_INT((expr), 0)

/* NUL-terminated strings; NULL on either side fails. */
#define ASSERT_EQ_STR(a, b) unit_check_str((a), (b), __FILE__, __LINE__, #a, #b)

/* Two byte ranges, equal in length and content. */
#define ASSERT_EQ_MEM(a, alen, b, blen)                                                            \
    unit_check_mem((const char *)(a), (alen), (const char *)(b), (blen), __FILE__, __LINE__, #a, #b)

/* A byte range equal to a NUL-terminated string (a view against a literal). */
#define ASSERT_MEM_STR(a, alen, s) ASSERT_EQ_MEM((a), (alen), (s), strlen(s))

/* The name filter: the first command-line argument, if any. */
static inline void unit_init(int argc, char **argv)
{
    unit_filter = argc > 1 ? argv[1] : NULL;
    setvbuf(stdout, NULL, _IONBF, 0);
}

/* Runs one `static void fn(void)` test unless the filter excludes it. */
#define RUN(fn)                                                                                    \
    do {                                                                                           \
        if (unit_filter == NULL || strstr(#fn, unit_filter) != NULL) {                             \
            unit_current = #fn;                                                                    \
            printf("%-52s", #fn);                                                                  \
            fn();                                                                                  \
            printf("ok\n");                                                                        \
            unit_ran++;                                                                            \
        }                                                                                          \
    } while (0)

/* Ends main: every test that ran passed (a failure has already exited). */
static inline int unit_done(void)
{
    printf("%d test%s passed\n", unit_ran, unit_ran == 1 ? "" : "s");
    if (unit_filter != NULL && unit_ran == 0) {
        fprintf(stderr, "no test matches '%s'\n", unit_filter);
        return 1;
    }
    return 0;
}

#endif
