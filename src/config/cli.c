/* cli.c: the command-line parser, an emulation of Gunicorn's argparse parser.
 *
 * Users swap `gunicorn` for `gunicorn-c` and keep their command lines, scripts and
 * GUNICORN_CMD_ARGS, so the corners of argparse matter: long options may be
 * abbreviated to any unambiguous prefix; "-w4", "-w=4" and "--workers=4" all work;
 * short flags cluster ("-Dw3"); "-1" is a value, not an option; "--" ends the options;
 * only the first run of positional arguments is taken, later ones are "unrecognized";
 * and every error message is argparse's. Parsing and applying are separate steps
 * because Gunicorn parses the command line first but applies it last (config.h). */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"

static const char usage_line[] = "usage: gunicorn-c [OPTIONS] [APP_MODULE]\n";

/* --- Option strings --------------------------------------------------------------- */

#define MAX_FLAGS 256

typedef struct {
    const char *name; /* points into the table's flags string; not NUL-terminated */
    size_t len;
    int id; /* setting id, or one of the built-in options below */
} flag_t;

enum { OPT_HELP = -1, OPT_VERSION = -2, OPT_MARKDOWN = -3 };

static flag_t flags[MAX_FLAGS];
static size_t nflags;

static void add_flag(const char *name, size_t len, int id)
{
    if (nflags < MAX_FLAGS)
        flags[nflags++] = (flag_t){name, len, id};
}

/* Splits every setting's flags string once, in table order (the order argparse's
 * "could match" lists follow). */
static void load_flags(void)
{
    if (nflags > 0)
        return;
    add_flag("-h", 2, OPT_HELP);
    add_flag("--help", 6, OPT_HELP);
    add_flag("-v", 2, OPT_VERSION);
    add_flag("--version", 9, OPT_VERSION);
    for (int id = 0; id < GC_S__COUNT; id++) {
        const char *p = gc__setting_info(id)->flags;
        while (p && *p) {
            while (*p == ' ')
                p++;
            const char *start = p;
            while (*p && *p != ' ')
                p++;
            if (p > start)
                add_flag(start, (size_t)(p - start), id);
        }
    }
    /* Hidden: docs/settings.md is generated with it (tools/gen-settings-doc.sh). */
    add_flag("--print-settings-markdown", 25, OPT_MARKDOWN);
}

static int flag_is(const flag_t *f, const char *s, size_t len)
{
    return f->len == len && memcmp(f->name, s, len) == 0;
}

static const flag_t *find_exact(const char *s, size_t len)
{
    for (size_t i = 0; i < nflags; i++)
        if (flag_is(&flags[i], s, len))
            return &flags[i];
    return NULL;
}

/* "-w/--workers": how argparse names an option in its messages. */
static void option_names(int id, char *out, size_t cap)
{
    out[0] = '\0';
    size_t used = 0;
    for (size_t i = 0; i < nflags; i++) {
        if (flags[i].id != id)
            continue;
        int n = snprintf(out + used, cap - used, "%s%.*s", used ? "/" : "", (int)flags[i].len,
                         flags[i].name);
        if (n < 0 || (size_t)n >= cap - used)
            break;
        used += (size_t)n;
    }
}

/* Whether a bare flag is all the option needs (booleans), or its argument is optional
 * (a metavar in brackets). */
static int takes_no_arg(int id)
{
    return id < 0 || gc__setting_info(id)->metavar == NULL;
}

static int optional_arg(int id)
{
    const char *m = id >= 0 ? gc__setting_info(id)->metavar : NULL;
    return m != NULL && m[0] == '[';
}

/* --- Argument classes ------------------------------------------------------------- */

/* argparse's test for "-1" and "-.5": such strings are values, not options. */
static int negative_number(const char *s)
{
    if (s[0] != '-' || s[1] == '\0')
        return 0;
    const char *p = s + 1;
    while (isdigit((unsigned char)*p))
        p++;
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p))
            return 0;
        while (isdigit((unsigned char)*p))
            p++;
    }
    return *p == '\0' && p > s + 1;
}

/* True when argparse would take s as a value ('A') rather than an option ('O'). */
static int is_value(const char *s)
{
    if (s[0] != '-' || s[1] == '\0')
        return 1;
    if (negative_number(s))
        return 1;
    size_t len = strcspn(s, "=");
    if (find_exact(s, len) != NULL)
        return 0;
    /* A string with a space that is not an option was meant as a value. */
    return strchr(s, ' ') != NULL;
}

/* --- Integer arguments: argparse's int() and Gunicorn's auto_int(). --------------- */

/* Python's int(s): decimal, blanks around, a sign, "_" between digits. */
static int parse_decimal(const char *s, long *out)
{
    while (isspace((unsigned char)*s))
        s++;
    char digits[64];
    size_t n = 0;
    int neg = 0;
    if (*s == '+' || *s == '-')
        neg = *s++ == '-';
    int prev_digit = 0;
    for (; *s && !isspace((unsigned char)*s); s++) {
        if (*s == '_' && prev_digit && isdigit((unsigned char)s[1])) {
            prev_digit = 0;
            continue;
        }
        if (!isdigit((unsigned char)*s) || n + 1 >= sizeof(digits))
            return -EINVAL;
        digits[n++] = *s;
        prev_digit = 1;
    }
    while (isspace((unsigned char)*s))
        s++;
    if (*s != '\0' || n == 0)
        return -EINVAL;
    digits[n] = '\0';
    errno = 0;
    long v = strtol(digits, NULL, 10);
    if (errno == ERANGE)
        return -EINVAL;
    *out = neg ? -v : v;
    return 0;
}

/* Gunicorn's auto_int: a leading 0 followed by a digit means octal (0022), and
 * Python's prefixes 0o, 0x and 0b work too. */
static int parse_auto_int(const char *s, long *out)
{
    while (isspace((unsigned char)*s))
        s++;
    char buf[64];
    size_t len = strlen(s);
    while (len > 0 && isspace((unsigned char)s[len - 1]))
        len--;
    if (len == 0 || len >= sizeof(buf))
        return -EINVAL;
    memcpy(buf, s, len);
    buf[len] = '\0';
    char *p = buf;
    int neg = 0;
    if (*p == '+' || *p == '-')
        neg = *p++ == '-';
    int base = 10;
    if (p[0] == '0' && isdigit((unsigned char)p[1]))
        base = 8, p += 1;
    else if (p[0] == '0' && (p[1] == 'o' || p[1] == 'O'))
        base = 8, p += 2;
    else if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X'))
        base = 16, p += 2;
    else if (p[0] == '0' && (p[1] == 'b' || p[1] == 'B'))
        base = 2, p += 2;
    if (!isalnum((unsigned char)*p))
        return -EINVAL;
    errno = 0;
    char *end;
    long v = strtol(p, &end, base);
    if (*end != '\0' || errno == ERANGE)
        return -EINVAL;
    *out = neg ? -v : v;
    return 0;
}

/* The argparse type of a setting's argument: 0 str, 1 int, 2 auto_int. */
static int int_kind(int id)
{
    if (id < 0 || gc__setting_info(id)->type != GC_T_INT || gc__setting_takes_name(id))
        return 0;
    return gc__setting_is_auto_int(id) ? 2 : 1;
}

static int parse_int_arg(int id, const char *text, long *out)
{
    return int_kind(id) == 2 ? parse_auto_int(text, out) : parse_decimal(text, out);
}

/* --- Parsing ---------------------------------------------------------------------- */

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
    fflush(stdout);
    fputs(usage_line, stderr);
    fputs("gunicorn-c: error: ", stderr);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return GC_PARSE_USAGE;
}

static int push_opt(gc__cli_args_t *out, int id, const char *text)
{
    struct gc__cli_opt *opts = realloc(out->opts, (out->n + 1) * sizeof(*opts));
    if (opts == NULL)
        return -ENOMEM;
    out->opts = opts;
    char *copy = NULL;
    if (text != NULL && (copy = strdup(text)) == NULL)
        return -ENOMEM;
    opts[out->n++] = (struct gc__cli_opt){id, copy};
    return 0;
}

static int push_str(char ***list, size_t *n, const char *s)
{
    char **l = realloc(*list, (*n + 1) * sizeof(*l));
    if (l == NULL)
        return -ENOMEM;
    *list = l;
    if ((l[*n] = strdup(s)) == NULL)
        return -ENOMEM;
    (*n)++;
    return 0;
}

/* Matches a long option that is not spelled out: returns the flag, NULL when none
 * matches, and reports ambiguity (returning NULL with *ambiguous set; `quiet` leaves
 * the usage message out). */
static const flag_t *find_prefix(const char *arg, size_t len, int *ambiguous, int quiet)
{
    const flag_t *match = NULL;
    char list[2048];
    size_t used = 0;
    int count = 0;
    *ambiguous = 0;
    for (size_t i = 0; i < nflags; i++) {
        const flag_t *f = &flags[i];
        if (f->id == OPT_MARKDOWN || f->len < 3 || f->name[1] != '-' || f->len < len ||
            memcmp(f->name, arg, len) != 0)
            continue;
        count++;
        match = f;
        int n = snprintf(list + used, sizeof(list) - used, "%s%.*s", used ? ", " : "", (int)f->len,
                         f->name);
        if (n > 0 && (size_t)n < sizeof(list) - used)
            used += (size_t)n;
    }
    if (count > 1) {
        *ambiguous = quiet ? 1 : usage_error("ambiguous option: %s could match %s", arg, list);
        return NULL;
    }
    return match;
}

int gc__cli_long_option(const char *word, size_t len)
{
    load_flags();
    for (size_t i = 0; i < nflags; i++)
        if (flag_is(&flags[i], word, len))
            return flags[i].id;
    int ambiguous;
    const flag_t *f = find_prefix(word, len, &ambiguous, 1);
    return f ? f->id : -1;
}

/* Handles one option that has been identified; `explicit` is its attached argument
 * ("--workers=4", "-w4"), or NULL. Returns 0 to go on, or a result to return. */
static int take_option(gc__cli_args_t *out, const flag_t *f, const char *explicit, int argc,
                       char **argv, int *i)
{
    char names[128];
    switch (f->id) {
    case OPT_HELP:
        gc__config_usage(stdout);
        return GC_PARSE_EXIT_OK;
    case OPT_VERSION:
        printf("gunicorn-c (version %s)\n", GC_VERSION);
        return GC_PARSE_EXIT_OK;
    case OPT_MARKDOWN:
        gc__config_markdown(stdout);
        return GC_PARSE_EXIT_OK;
    }
    option_names(f->id, names, sizeof(names));
    if (takes_no_arg(f->id)) {
        if (explicit != NULL)
            return usage_error("argument %s: ignored explicit argument '%s'", names, explicit);
        return push_opt(out, f->id, NULL);
    }
    const char *value = explicit;
    if (value == NULL && *i + 1 < argc && is_value(argv[*i + 1]))
        value = argv[++*i];
    if (value == NULL && !optional_arg(f->id))
        return usage_error("argument %s: expected one argument", names);
    long n;
    if (value != NULL && int_kind(f->id) && parse_int_arg(f->id, value, &n) < 0)
        return usage_error("argument %s: invalid %s value: '%s'", names,
                           int_kind(f->id) == 2 ? "auto_int" : "int", value);
    return push_opt(out, f->id, value);
}

int gc__cli_parse(gc__cli_args_t *out, int argc, char **argv)
{
    memset(out, 0, sizeof(*out));
    load_flags();
    char **extras = NULL;
    size_t nextras = 0;
    int rc = GC_PARSE_OK, only_values = 0;
    enum { BEFORE, IN_RUN, AFTER } positionals = BEFORE;
    for (int i = 0; i < argc && rc == GC_PARSE_OK; i++) {
        const char *arg = argv[i];
        if (!only_values && strcmp(arg, "--") == 0) {
            only_values = 1;
            continue;
        }
        if (only_values || is_value(arg)) {
            /* Only the first run of positional arguments is taken (nargs="*"). */
            if (positionals == AFTER)
                rc = push_str(&extras, &nextras, arg);
            else
                rc = push_str(&out->pos, &out->npos, arg);
            if (positionals == BEFORE)
                positionals = IN_RUN;
            continue;
        }
        if (positionals == IN_RUN)
            positionals = AFTER;
        if (arg[1] == '-') {
            /* --name, --name=value, or an unambiguous prefix of --name. */
            size_t len = strcspn(arg, "=");
            const char *explicit = arg[len] == '=' ? arg + len + 1 : NULL;
            const flag_t *f = find_exact(arg, len);
            int ambiguous = 0;
            if (f == NULL)
                f = find_prefix(arg, len, &ambiguous, 0);
            if (ambiguous) {
                rc = ambiguous;
                break;
            }
            if (f == NULL) {
                rc = push_str(&extras, &nextras, arg);
                continue;
            }
            rc = take_option(out, f, explicit, argc, argv, &i);
            continue;
        }
        /* -x, -xVALUE, -x=VALUE, or flags clustered with what follows ("-Dw3"). */
        for (size_t at = 1;; at++) {
            char opt[3] = {'-', arg[at], '\0'};
            const flag_t *f = find_exact(opt, 2);
            if (f == NULL) {
                rc = push_str(&extras, &nextras, arg);
                break;
            }
            const char *rest = arg[at + 1] ? arg + at + 1 : NULL;
            if (rest != NULL && rest[0] != '=' && f->id >= 0 && takes_no_arg(f->id)) {
                /* A cluster: this flag, then the rest as another short option. */
                char next[3] = {'-', rest[0], '\0'};
                if (find_exact(next, 2) == NULL) {
                    char names[128];
                    option_names(f->id, names, sizeof(names));
                    rc = usage_error("argument %s: ignored explicit argument '%s'", names, rest);
                    break;
                }
                if ((rc = push_opt(out, f->id, NULL)) != 0)
                    break;
                continue;
            }
            if (rest != NULL && rest[0] == '=')
                rest++;
            rc = take_option(out, f, rest, argc, argv, &i);
            break;
        }
    }
    if (rc == GC_PARSE_OK && nextras > 0) {
        size_t total = 1;
        for (size_t k = 0; k < nextras; k++)
            total += strlen(extras[k]) + 1;
        char *joined = calloc(1, total);
        if (joined == NULL) {
            rc = -ENOMEM;
        } else {
            for (size_t k = 0; k < nextras; k++) {
                if (k)
                    strcat(joined, " ");
                strcat(joined, extras[k]);
            }
            rc = usage_error("unrecognized arguments: %s", joined);
            free(joined);
        }
    }
    for (size_t k = 0; k < nextras; k++)
        free(extras[k]);
    free(extras);
    return rc;
}

void gc__cli_free(gc__cli_args_t *args)
{
    for (size_t i = 0; i < args->n; i++)
        free(args->opts[i].text);
    free(args->opts);
    for (size_t i = 0; i < args->npos; i++)
        free(args->pos[i]);
    free(args->pos);
    memset(args, 0, sizeof(*args));
}

const char *gc__cli_get(const gc__cli_args_t *args, int id, int *found)
{
    const char *text = NULL;
    *found = 0;
    for (size_t i = 0; i < args->n; i++) {
        if (args->opts[i].id == id) {
            *found = 1;
            text = args->opts[i].text;
        }
    }
    return text;
}

int gc__cli_apply(gc__config_t *cfg, const gc__cli_args_t *args, gc__config_err_t *err)
{
    /* Settings are applied in table order, as Gunicorn walks argparse's namespace. */
    for (int id = 0; id < GC_S__COUNT; id++) {
        int found;
        const char *text = gc__cli_get(args, id, &found);
        if (!found)
            continue;
        const gc__setting_info_t *info = gc__setting_info(id);
        int rc;
        if (info->type == GC_T_LIST && !gc__setting_is_csv(id)) {
            /* The uses of a repeatable option together replace the list. */
            const char **items = calloc(args->n, sizeof(*items));
            if (items == NULL)
                return -ENOMEM;
            size_t n = 0;
            for (size_t i = 0; i < args->n; i++)
                if (args->opts[i].id == id)
                    items[n++] = args->opts[i].text;
            rc = gc__config_set_list(cfg, id, items, n, err);
            free(items);
        } else if (info->type == GC_T_BOOL) {
            rc = gc__config_set_bool(cfg, id, gc__setting_flag_value(id), err);
        } else if (int_kind(id)) {
            long n = 0;
            parse_int_arg(id, text, &n); /* checked by the parser */
            rc = gc__config_set_int(cfg, id, n, err);
        } else {
            rc = gc__config_set_str(cfg, id, text, err);
        }
        if (rc < 0)
            return rc;
    }
    return 0;
}

int gc__config_parse_args(gc__config_t *cfg, int argc, char **argv)
{
    gc__cli_args_t args;
    int rc = gc__cli_parse(&args, argc, argv);
    if (rc == GC_PARSE_OK) {
        gc__config_err_t err;
        rc = gc__cli_apply(cfg, &args, &err);
        if (rc == -EINVAL)
            fprintf(stderr, "\nError: %s\n", err.msg);
        if (rc == 0 && args.npos > 0) {
            free(cfg->app_uri);
            if ((cfg->app_uri = strdup(args.pos[0])) == NULL)
                rc = -ENOMEM;
        }
    }
    gc__cli_free(&args);
    return rc;
}
