/* test_repr.c: Python's repr() of a request's bytes (src/http/repr.c), as the error
 * messages copied from Gunicorn show them ("Invalid PROXY line: %r").
 *
 * Every expected value here is what /usr/bin/python3 prints: for ASCII input repr() of
 * the text, the same as Gunicorn's "%r" of the latin-1 string it decodes. Past ASCII
 * the function escapes every byte as \xNN, which is repr() of the *bytes* without its
 * leading b: Python 3's repr() of the latin-1 text would show the printable letters
 * (repr("caf\xe9") is 'café'), which repr.h documents as the one difference. */
#include <string.h>

#include "common/buf.h"
#include "http/repr.h"
#include "unit.h"

static gc__view_t view(const char *s, size_t n)
{
    return (gc__view_t){.base = s, .len = n};
}

/* repr() of s (a literal, so sizeof gives its length with any NUL inside) */
#define CHECK_REPR(s, expect)                                                                      \
    do {                                                                                           \
        char out_[256];                                                                            \
        ASSERT_EQ_STR(gc__http_repr(out_, sizeof(out_), view((s), sizeof(s) - 1)), (expect));      \
    } while (0)

/* Python quotes with ' unless the text holds a ' and no ": then ", and inside the
 * quote it chose only that quote is escaped. */
static void test_quote_choice(void)
{
    CHECK_REPR("", "''");
    CHECK_REPR("abc", "'abc'");
    CHECK_REPR("it's", "\"it's\"");
    CHECK_REPR("say \"hi\"", "'say \"hi\"'");
    CHECK_REPR("it's \"x\"", "'it\\'s \"x\"'");
    CHECK_REPR("'", "\"'\"");
    CHECK_REPR("\"", "'\"'");
    CHECK_REPR("'\"", "'\\'\"'");
    CHECK_REPR("\\'", "\"\\\\'\"");
}

static void test_escapes(void)
{
    CHECK_REPR("a\\b", "'a\\\\b'");
    CHECK_REPR("\t\n\r", "'\\t\\n\\r'");
    CHECK_REPR("\x0b\x0c\x1b\x1f\x7f", "'\\x0b\\x0c\\x1b\\x1f\\x7f'");
    /* A NUL inside the view is a byte like any other, not the end. */
    CHECK_REPR("a\0b", "'a\\x00b'");
    CHECK_REPR("PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r", "'PROXY UDP4 1.2.3.4 5.6.7.8 1 2\\r'");
    CHECK_REPR("/a b?c=%22", "'/a b?c=%22'");
}

/* Non-ASCII: UTF-8 sequences, invalid UTF-8 and latin-1 letters alike, byte by byte. */
static void test_non_ascii_bytes(void)
{
    CHECK_REPR("caf\xc3\xa9", "'caf\\xc3\\xa9'"); /* UTF-8 "café" */
    CHECK_REPR("caf\xe9", "'caf\\xe9'");          /* latin-1 "café" */
    CHECK_REPR("\xff\xfe\x80", "'\\xff\\xfe\\x80'");
    CHECK_REPR("\xe2\x82", "'\\xe2\\x82'");          /* a UTF-8 sequence cut short */
    CHECK_REPR("\xed\xa0\x80", "'\\xed\\xa0\\x80'"); /* a surrogate, never valid UTF-8 */
    CHECK_REPR("\xa0\xad", "'\\xa0\\xad'");
}

/* Each of the 256 bytes alone, against python3 -c 'print(repr(bytes([c]))[1:])'. */
static const char *const single[256] = {
    "'\\x00'", "'\\x01'", "'\\x02'", "'\\x03'", "'\\x04'", "'\\x05'", "'\\x06'", "'\\x07'",
    "'\\x08'", "'\\t'",   "'\\n'",   "'\\x0b'", "'\\x0c'", "'\\r'",   "'\\x0e'", "'\\x0f'",
    "'\\x10'", "'\\x11'", "'\\x12'", "'\\x13'", "'\\x14'", "'\\x15'", "'\\x16'", "'\\x17'",
    "'\\x18'", "'\\x19'", "'\\x1a'", "'\\x1b'", "'\\x1c'", "'\\x1d'", "'\\x1e'", "'\\x1f'",
    "' '",     "'!'",     "'\"'",    "'#'",     "'$'",     "'%'",     "'&'",     "\"'\"",
    "'('",     "')'",     "'*'",     "'+'",     "','",     "'-'",     "'.'",     "'/'",
    "'0'",     "'1'",     "'2'",     "'3'",     "'4'",     "'5'",     "'6'",     "'7'",
    "'8'",     "'9'",     "':'",     "';'",     "'<'",     "'='",     "'>'",     "'?'",
    "'@'",     "'A'",     "'B'",     "'C'",     "'D'",     "'E'",     "'F'",     "'G'",
    "'H'",     "'I'",     "'J'",     "'K'",     "'L'",     "'M'",     "'N'",     "'O'",
    "'P'",     "'Q'",     "'R'",     "'S'",     "'T'",     "'U'",     "'V'",     "'W'",
    "'X'",     "'Y'",     "'Z'",     "'['",     "'\\\\'",  "']'",     "'^'",     "'_'",
    "'`'",     "'a'",     "'b'",     "'c'",     "'d'",     "'e'",     "'f'",     "'g'",
    "'h'",     "'i'",     "'j'",     "'k'",     "'l'",     "'m'",     "'n'",     "'o'",
    "'p'",     "'q'",     "'r'",     "'s'",     "'t'",     "'u'",     "'v'",     "'w'",
    "'x'",     "'y'",     "'z'",     "'{'",     "'|'",     "'}'",     "'~'",     "'\\x7f'",
    "'\\x80'", "'\\x81'", "'\\x82'", "'\\x83'", "'\\x84'", "'\\x85'", "'\\x86'", "'\\x87'",
    "'\\x88'", "'\\x89'", "'\\x8a'", "'\\x8b'", "'\\x8c'", "'\\x8d'", "'\\x8e'", "'\\x8f'",
    "'\\x90'", "'\\x91'", "'\\x92'", "'\\x93'", "'\\x94'", "'\\x95'", "'\\x96'", "'\\x97'",
    "'\\x98'", "'\\x99'", "'\\x9a'", "'\\x9b'", "'\\x9c'", "'\\x9d'", "'\\x9e'", "'\\x9f'",
    "'\\xa0'", "'\\xa1'", "'\\xa2'", "'\\xa3'", "'\\xa4'", "'\\xa5'", "'\\xa6'", "'\\xa7'",
    "'\\xa8'", "'\\xa9'", "'\\xaa'", "'\\xab'", "'\\xac'", "'\\xad'", "'\\xae'", "'\\xaf'",
    "'\\xb0'", "'\\xb1'", "'\\xb2'", "'\\xb3'", "'\\xb4'", "'\\xb5'", "'\\xb6'", "'\\xb7'",
    "'\\xb8'", "'\\xb9'", "'\\xba'", "'\\xbb'", "'\\xbc'", "'\\xbd'", "'\\xbe'", "'\\xbf'",
    "'\\xc0'", "'\\xc1'", "'\\xc2'", "'\\xc3'", "'\\xc4'", "'\\xc5'", "'\\xc6'", "'\\xc7'",
    "'\\xc8'", "'\\xc9'", "'\\xca'", "'\\xcb'", "'\\xcc'", "'\\xcd'", "'\\xce'", "'\\xcf'",
    "'\\xd0'", "'\\xd1'", "'\\xd2'", "'\\xd3'", "'\\xd4'", "'\\xd5'", "'\\xd6'", "'\\xd7'",
    "'\\xd8'", "'\\xd9'", "'\\xda'", "'\\xdb'", "'\\xdc'", "'\\xdd'", "'\\xde'", "'\\xdf'",
    "'\\xe0'", "'\\xe1'", "'\\xe2'", "'\\xe3'", "'\\xe4'", "'\\xe5'", "'\\xe6'", "'\\xe7'",
    "'\\xe8'", "'\\xe9'", "'\\xea'", "'\\xeb'", "'\\xec'", "'\\xed'", "'\\xee'", "'\\xef'",
    "'\\xf0'", "'\\xf1'", "'\\xf2'", "'\\xf3'", "'\\xf4'", "'\\xf5'", "'\\xf6'", "'\\xf7'",
    "'\\xf8'", "'\\xf9'", "'\\xfa'", "'\\xfb'", "'\\xfc'", "'\\xfd'", "'\\xfe'", "'\\xff'",
};

static void test_every_single_byte(void)
{
    for (int c = 0; c < 256; c++) {
        char in = (char)c, out[16];
        ASSERT_EQ_STR(gc__http_repr(out, sizeof(out), view(&in, 1)), single[c]);
    }
}

/* A buffer too small: the output is the longest run of whole pieces of the repr (a
 * quote, a character, an escape) that fits with its NUL in `cap`, and nothing past
 * `cap` is written. */
static void test_cut_to_the_buffer(void)
{
    static const char in[] = "x\xe9'\n\"y";
    const char *whole = "'x\\xe9\\'\\n\"y'";
    /* Where each piece of `whole` ends: ' x \xe9 \' \n " y ' */
    static const size_t ends[] = {0, 1, 2, 6, 8, 10, 11, 12, 13};
    size_t n = strlen(whole);
    ASSERT_EQ_INT(n, 13);
    for (size_t cap = 1; cap <= n + 2; cap++) {
        char out[64];
        memset(out, '#', sizeof(out));
        ASSERT(gc__http_repr(out, cap, view(in, sizeof(in) - 1)) == out);
        size_t expect = 0;
        for (size_t i = 0; i < sizeof(ends) / sizeof(ends[0]); i++)
            if (ends[i] < cap)
                expect = ends[i];
        ASSERT_EQ_INT(strlen(out), expect);
        ASSERT_EQ_MEM(out, expect, whole, expect);
        for (size_t i = cap; i < sizeof(out); i++)
            ASSERT_EQ_INT(out[i], '#');
    }
    /* cap 0: nothing is written at all. */
    char untouched = '#';
    ASSERT(gc__http_repr(&untouched, 0, view(in, 3)) == &untouched);
    ASSERT_EQ_INT(untouched, '#');
}

int main(int argc, char **argv)
{
    unit_init(argc, argv);
    RUN(test_quote_choice);
    RUN(test_escapes);
    RUN(test_non_ascii_bytes);
    RUN(test_every_single_byte);
    RUN(test_cut_to_the_buffer);
    return unit_done();
}
