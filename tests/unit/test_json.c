/* test_json.c: JSON string escaping and the UTF-8 check (src/common/json.c), which the
 * access log's JSON lines and the control socket's answers share: every byte of every
 * input gives valid JSON, valid UTF-8 passes untouched, and the check agrees with
 * Python's strict decoder on overlong forms, surrogates and code points past U+10FFFF. */
#include <string.h>

#include "common/json.h"
#include "unit.h"

/* Escapes n bytes and compares with the expected text (a NUL-terminated literal). */
static void check_escape(const char *in, size_t n, const char *expect)
{
    gc__buf_t b;
    gc__buf_init(&b);
    ASSERT_OK(gc__json_escape(&b, in, n));
    ASSERT_MEM_STR(b.data, b.len, expect);
    gc__buf_free(&b);
}

#define ESC(lit, expect) check_escape((lit), sizeof(lit) - 1, (expect))

static void test_escape_plain_text_is_copied(void)
{
    ESC("", "");
    ESC("GET /index.html?a=1&b=2 HTTP/1.1", "GET /index.html?a=1&b=2 HTTP/1.1");
    ESC("it's <ok> {} [] / ~", "it's <ok> {} [] / ~");
}

static void test_escape_quotes_and_backslashes(void)
{
    ESC("say \"hi\"", "say \\\"hi\\\"");
    ESC("C:\\dir\\", "C:\\\\dir\\\\");
}

static void test_escape_control_bytes(void)
{
    ESC("a\nb\rc\td", "a\\nb\\rc\\td");
    ESC("\x01\x1f\x7f", "\\u0001\\u001f\\u007f");
    ESC("\b\f", "\\u0008\\u000c");
    /* A NUL inside the range is escaped, not an end. */
    ESC("a\0b", "a\\u0000b");
}

static void test_escape_keeps_valid_utf8(void)
{
    ESC("caf\xc3\xa9", "caf\xc3\xa9");
    ESC("\xe2\x82\xac 5", "\xe2\x82\xac 5");
    ESC("\xf0\x9f\x98\x80!", "\xf0\x9f\x98\x80!");
    ESC("\xf4\x8f\xbf\xbf", "\xf4\x8f\xbf\xbf"); /* U+10FFFF */
}

/* Each byte that starts no valid sequence becomes one U+FFFD. */
static void test_escape_replaces_invalid_utf8(void)
{
    ESC("a\xff"
        "b",
        "a\\ufffdb");
    ESC("\xc3", "\\ufffd");                                  /* cut short at the end */
    ESC("\xc3(", "\\ufffd(");                                /* no continuation byte */
    ESC("\xc0\xaf", "\\ufffd\\ufffd");                       /* overlong "/" */
    ESC("\xe0\x80\x80", "\\ufffd\\ufffd\\ufffd");            /* overlong NUL */
    ESC("\xed\xa0\x80", "\\ufffd\\ufffd\\ufffd");            /* a surrogate */
    ESC("\xf4\x90\x80\x80", "\\ufffd\\ufffd\\ufffd\\ufffd"); /* past U+10FFFF */
    ESC("\x80x", "\\ufffdx");                                /* a lone continuation */
}

/* Appending keeps what the buffer held, and long inputs grow it as needed. */
static void test_escape_appends(void)
{
    gc__buf_t b;
    gc__buf_init(&b);
    ASSERT_OK(gc__buf_append_str(&b, "{\"k\":\""));
    ASSERT_OK(gc__json_escape(&b, "v\"", 2));
    ASSERT_OK(gc__buf_append_str(&b, "\"}"));
    ASSERT_MEM_STR(b.data, b.len, "{\"k\":\"v\\\"\"}");
    gc__buf_reset(&b);
    char big[3000];
    memset(big, '\n', sizeof(big));
    ASSERT_OK(gc__json_escape(&b, big, sizeof(big)));
    ASSERT_EQ_INT(b.len, 2 * sizeof(big));
    ASSERT(memcmp(b.data, "\\n\\n", 4) == 0);
    gc__buf_free(&b);
}

#define VALID(lit) gc__utf8_valid((lit), sizeof(lit) - 1)

static void test_utf8_valid(void)
{
    ASSERT_EQ_INT(VALID(""), 1);
    ASSERT_EQ_INT(VALID("plain ascii\n\x7f"), 1);
    ASSERT_EQ_INT(VALID("\xc2\x80"), 1);
    ASSERT_EQ_INT(VALID("\xdf\xbf"), 1);
    ASSERT_EQ_INT(VALID("\xe0\xa0\x80"), 1);
    ASSERT_EQ_INT(VALID("\xef\xbf\xbf"), 1);
    ASSERT_EQ_INT(VALID("\xf0\x90\x80\x80"), 1);
    ASSERT_EQ_INT(VALID("\xf4\x8f\xbf\xbf"), 1);
    ASSERT_EQ_INT(VALID("a\0b"), 1);
}

static void test_utf8_invalid(void)
{
    ASSERT_EQ_INT(VALID("\x80"), 0);
    ASSERT_EQ_INT(VALID("\xc0\x80"), 0);
    ASSERT_EQ_INT(VALID("\xc1\xbf"), 0);
    ASSERT_EQ_INT(VALID("\xe0\x9f\xbf"), 0);
    ASSERT_EQ_INT(VALID("\xed\xa0\x80"), 0);
    ASSERT_EQ_INT(VALID("\xed\xbf\xbf"), 0);
    ASSERT_EQ_INT(VALID("\xf0\x8f\xbf\xbf"), 0);
    ASSERT_EQ_INT(VALID("\xf4\x90\x80\x80"), 0);
    ASSERT_EQ_INT(VALID("\xf8\x88\x80\x80\x80"), 0);
    ASSERT_EQ_INT(VALID("\xff"), 0);
    ASSERT_EQ_INT(VALID("ok\xe2\x82"), 0);
    ASSERT_EQ_INT(VALID("\xe2\x28\xa1"), 0);
}

int main(int argc, char **argv)
{
    unit_init(argc, argv);
    RUN(test_escape_plain_text_is_copied);
    RUN(test_escape_quotes_and_backslashes);
    RUN(test_escape_control_bytes);
    RUN(test_escape_keeps_valid_utf8);
    RUN(test_escape_replaces_invalid_utf8);
    RUN(test_escape_appends);
    RUN(test_utf8_valid);
    RUN(test_utf8_invalid);
    return unit_done();
}
