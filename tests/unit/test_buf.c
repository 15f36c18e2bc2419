/* test_buf.c: the growable byte buffer (src/common/buf.c): appends that keep every byte,
 * growth that doubles, and sizes no allocator can give failing with -ENOMEM, the buffer
 * left as it was, instead of wrapping around.
 *
 * The capacity once doubled until it wrapped to 0 and then doubled 0 for ever, so a
 * regression there is a hang, not a failed assertion: main arms an alarm that turns it
 * into a failure (SIGALRM) within seconds. */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "unit.h"

static void test_append_keeps_every_byte(void)
{
    gc__buf_t b;
    gc__buf_init(&b);
    ASSERT(b.data == NULL);
    ASSERT_EQ_INT(b.len, 0);
    char expect[5000];
    for (size_t i = 0; i < sizeof(expect); i++) {
        expect[i] = (char)(i * 7 + i / 251);
        ASSERT_OK(gc__buf_append(&b, &expect[i], 1));
    }
    ASSERT_EQ_MEM(b.data, b.len, expect, sizeof(expect));
    ASSERT(b.cap >= b.len);
    ASSERT_OK(gc__buf_append(&b, "ignored", 0));
    ASSERT_EQ_INT(b.len, sizeof(expect));
    gc__buf_free(&b);
    ASSERT(b.data == NULL);
    ASSERT_EQ_INT(b.cap, 0);
}

static void test_reserve_doubles(void)
{
    gc__buf_t b;
    gc__buf_init(&b);
    ASSERT_OK(gc__buf_reserve(&b, 1));
    ASSERT_EQ_INT(b.cap, 256);
    ASSERT_OK(gc__buf_reserve(&b, 256)); /* fits: no growth */
    ASSERT_EQ_INT(b.cap, 256);
    ASSERT_OK(gc__buf_reserve(&b, 257));
    ASSERT_EQ_INT(b.cap, 512);
    ASSERT_OK(gc__buf_reserve(&b, 3000));
    ASSERT_EQ_INT(b.cap, 4096);
    gc__buf_free(&b);
}

/* Sizes past PTRDIFF_MAX, and sizes that wrap once added to the length: -ENOMEM at
 * once, nothing allocated, nothing lost. */
static void test_reserve_too_big_fails(void)
{
    gc__buf_t b;
    gc__buf_init(&b);
    ASSERT_EQ_INT(gc__buf_reserve(&b, SIZE_MAX / 2 + 2), -ENOMEM);
    ASSERT_EQ_INT(gc__buf_reserve(&b, SIZE_MAX / 2 + 1), -ENOMEM);
    ASSERT_EQ_INT(gc__buf_reserve(&b, SIZE_MAX), -ENOMEM);
    ASSERT(b.data == NULL);
    ASSERT_EQ_INT(b.len, 0);
    ASSERT_EQ_INT(b.cap, 0);

    ASSERT_OK(gc__buf_append_str(&b, "0123456789"));
    size_t cap = b.cap;
    const char *data = b.data;
    ASSERT_EQ_INT(gc__buf_reserve(&b, SIZE_MAX / 2 + 2), -ENOMEM);
    ASSERT_EQ_INT(gc__buf_reserve(&b, (size_t)PTRDIFF_MAX - 5), -ENOMEM); /* past with len */
    ASSERT_EQ_INT(gc__buf_reserve(&b, SIZE_MAX - 5), -ENOMEM);            /* len + extra wraps */
    ASSERT_EQ_INT(gc__buf_append(&b, "x", SIZE_MAX / 2 + 2), -ENOMEM);    /* never reads "x" */
    ASSERT(b.data == data);
    ASSERT_EQ_INT(b.cap, cap);
    ASSERT_MEM_STR(b.data, b.len, "0123456789");

    /* Still usable. */
    ASSERT_OK(gc__buf_append_str(&b, "abc"));
    ASSERT_MEM_STR(b.data, b.len, "0123456789abc");
    gc__buf_free(&b);
}

static void test_printf_and_consume(void)
{
    gc__buf_t b;
    gc__buf_init(&b);
    ASSERT_OK(gc__buf_printf(&b, "%s=%d;", "a", 1));
    ASSERT_OK(gc__buf_printf(&b, "%s=%d;", "bb", 22));
    ASSERT_MEM_STR(b.data, b.len, "a=1;bb=22;");
    gc__buf_consume(&b, 4);
    ASSERT_MEM_STR(b.data, b.len, "bb=22;");
    gc__buf_consume(&b, 100);
    ASSERT_EQ_INT(b.len, 0);
    gc__buf_reset(&b);
    ASSERT_EQ_INT(b.len, 0);
    gc__buf_free(&b);
}

static void test_view_ieq(void)
{
    ASSERT(gc__view_ieq(GC_VIEW_LIT("Content-Length"), "content-length"));
    ASSERT(gc__view_ieq(GC_VIEW_LIT("content-length"), "content-length"));
    ASSERT(!gc__view_ieq(GC_VIEW_LIT("Content-Lengt"), "content-length"));
    ASSERT(!gc__view_ieq(GC_VIEW_LIT("Content-Lengths"), "content-length"));
    ASSERT(gc__view_ieq(gc__view("", 0), ""));
}

int main(int argc, char **argv)
{
    unit_init(argc, argv);
    signal(SIGALRM, SIG_DFL);
    alarm(10); /* a growth loop that never ends fails here instead of hanging ctest */
    RUN(test_append_keeps_every_byte);
    RUN(test_reserve_doubles);
    RUN(test_reserve_too_big_fails);
    RUN(test_printf_and_consume);
    RUN(test_view_ieq);
    return unit_done();
}
