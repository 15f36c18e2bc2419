/* config.c: defaults, the option parser and -h, all driven by settings.def. */
#include "config/config.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct {
    const char *name;
    enum gc__setting_type type;
    const char *sflag;
    const char *lflag;
    const char *metavar;
    const char *def;
    const char *section;
    const char *help;
} setting_meta_t;

static const setting_meta_t meta[GC_S__COUNT] = {
#define X(name, type, sflag, lflag, metavar, def, section, help)                               \
    {#name, type, sflag, lflag, metavar, def, section, help},
#include "config/settings.def"
#undef X
};

static int list_append(gc__setting_value_t *v, const char *s)
{
    char **items = realloc(v->items, (v->n + 1) * sizeof(*items));
    if (items == NULL)
        return -ENOMEM;
    v->items = items;
    if ((items[v->n] = strdup(s)) == NULL)
        return -ENOMEM;
    v->n++;
    return 0;
}

static void value_clear(gc__setting_value_t *v)
{
    free(v->s);
    for (size_t i = 0; i < v->n; i++)
        free(v->items[i]);
    free(v->items);
    memset(v, 0, sizeof(*v));
}

/* Parses a decimal integer the way argparse's int() does. */
static int parse_int(const char *s, long *out)
{
    while (*s == ' ' || *s == '\t')
        s++;
    if (*s == '\0')
        return -EINVAL;
    errno = 0;
    char *end;
    long n = strtol(s, &end, 10);
    while (*end == ' ' || *end == '\t')
        end++;
    if (*end != '\0' || errno == ERANGE)
        return -EINVAL;
    *out = n;
    return 0;
}

/* Stores a textual value for setting id. Returns 0, -EINVAL (bad value) or -ENOMEM. */
static int set_value(gc__config_t *cfg, int id, const char *text)
{
    gc__setting_value_t *v = &cfg->v[id];
    switch (meta[id].type) {
    case GC_T_INT:
        if (parse_int(text, &v->i) < 0)
            return -EINVAL;
        break;
    case GC_T_BOOL:
        v->i = strcasecmp(text, "true") == 0 || strcmp(text, "1") == 0;
        break;
    case GC_T_STR:
        free(v->s);
        if ((v->s = strdup(text)) == NULL)
            return -ENOMEM;
        break;
    case GC_T_LIST:
        if (list_append(v, text) < 0)
            return -ENOMEM;
        break;
    }
    return 0;
}

int gc__config_init(gc__config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    for (int id = 0; id < GC_S__COUNT; id++) {
        if (meta[id].def != NULL && set_value(cfg, id, meta[id].def) < 0)
            return -ENOMEM;
    }
    /* Gunicorn takes two defaults from the environment (platforms such as Heroku set
     * them). */
    const char *port = getenv("PORT");
    if (port != NULL && *port != '\0') {
        char bind[64];
        snprintf(bind, sizeof(bind), "0.0.0.0:%s", port);
        gc__setting_value_t *v = &cfg->v[GC_S_bind];
        value_clear(v);
        if (list_append(v, bind) < 0)
            return -ENOMEM;
    }
    const char *conc = getenv("WEB_CONCURRENCY");
    long n;
    if (conc != NULL && parse_int(conc, &n) == 0)
        cfg->v[GC_S_workers].i = n;
    return 0;
}

void gc__config_free(gc__config_t *cfg)
{
    for (int id = 0; id < GC_S__COUNT; id++)
        value_clear(&cfg->v[id]);
    free(cfg->app_uri);
    cfg->app_uri = NULL;
}

static const char usage_line[] = "usage: gunicorn-c [OPTIONS] [APP_MODULE]\n";

static int usage_error(const char *fmt, const char *a, const char *b)
{
    fputs(usage_line, stderr);
    fputs("gunicorn-c: error: ", stderr);
    fprintf(stderr, fmt, a, b);
    fputc('\n', stderr);
    return GC_PARSE_USAGE;
}

void gc__config_usage(FILE *out)
{
    fputs(usage_line, out);
    fputs("\npositional arguments:\n  APP_MODULE            A WSGI application: "
          "dotted.module[:variable], variable defaults to 'application'.\n\n"
          "options:\n  -h, --help            show this help message and exit\n"
          "  -v, --version         show program's version number and exit\n",
          out);
    for (int id = 0; id < GC_S__COUNT; id++) {
        const setting_meta_t *m = &meta[id];
        if (m->lflag == NULL)
            continue;
        char flags[96];
        if (m->metavar == NULL)
            snprintf(flags, sizeof(flags), "%s%s%s", m->sflag ? m->sflag : "",
                     m->sflag ? ", " : "", m->lflag);
        else if (m->sflag != NULL)
            snprintf(flags, sizeof(flags), "%s %s, %s %s", m->sflag, m->metavar, m->lflag,
                     m->metavar);
        else
            snprintf(flags, sizeof(flags), "%s %s", m->lflag, m->metavar);
        fprintf(out, "  %-21s %s [%s]\n", flags, m->help, m->def ? m->def : "None");
    }
}

/* Finds the setting for an option; `opt` may be "--name" or "-x". */
static int find_option(const char *opt, size_t len)
{
    for (int id = 0; id < GC_S__COUNT; id++) {
        const char *l = meta[id].lflag, *s = meta[id].sflag;
        if (l && strlen(l) == len && strncmp(l, opt, len) == 0)
            return id;
        if (s && strlen(s) == len && strncmp(s, opt, len) == 0)
            return id;
    }
    return -1;
}

static void flag_names(int id, char *out, size_t cap)
{
    if (meta[id].sflag)
        snprintf(out, cap, "%s/%s", meta[id].sflag, meta[id].lflag);
    else
        snprintf(out, cap, "%s", meta[id].lflag);
}

int gc__config_parse_args(gc__config_t *cfg, int argc, char **argv)
{
    int only_positional = 0;
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (only_positional || arg[0] != '-' || arg[1] == '\0') {
            if (cfg->app_uri != NULL)
                return usage_error("unrecognized arguments: %s%s", arg, "");
            if ((cfg->app_uri = strdup(arg)) == NULL)
                return -ENOMEM;
            continue;
        }
        if (strcmp(arg, "--") == 0) {
            only_positional = 1;
            continue;
        }
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            gc__config_usage(stdout);
            return GC_PARSE_EXIT_OK;
        }
        if (strcmp(arg, "-v") == 0 || strcmp(arg, "--version") == 0) {
            printf("gunicorn-c (version %s)\n", GC_VERSION);
            return GC_PARSE_EXIT_OK;
        }
        /* Forms: --name=value, --name value, -x value, -xvalue, and -x=value, which
         * argparse splits at the "=" just as it does a long option. */
        const char *value = NULL;
        size_t optlen = strlen(arg);
        if (arg[1] == '-') {
            const char *eq = strchr(arg, '=');
            if (eq != NULL) {
                optlen = (size_t)(eq - arg);
                value = eq + 1;
            }
        } else if (optlen > 2) {
            optlen = 2;
            value = arg[2] == '=' ? arg + 3 : arg + 2;
        }
        int id = find_option(arg, optlen);
        if (id < 0)
            return usage_error("unrecognized arguments: %s%s", arg, "");
        char names[64];
        flag_names(id, names, sizeof(names));
        if (meta[id].type == GC_T_BOOL && value == NULL) {
            cfg->v[id].i = 1;
            cfg->v[id].set = 1;
            continue;
        }
        if (value == NULL) {
            if (i + 1 >= argc)
                return usage_error("argument %s: expected one argument%s", names, "");
            value = argv[++i];
        }
        /* A list given on the command line replaces its default. */
        if (meta[id].type == GC_T_LIST && !cfg->v[id].set)
            value_clear(&cfg->v[id]);
        int rc = set_value(cfg, id, value);
        if (rc == -EINVAL)
            return usage_error("argument %s: invalid int value: '%s'", names, value);
        if (rc < 0)
            return rc;
        cfg->v[id].set = 1;
    }
    return GC_PARSE_OK;
}

static int config_error(const char *fmt, const char *a, long b)
{
    fputs("Error: ", stderr);
    fprintf(stderr, fmt, a, b);
    fputc('\n', stderr);
    return -EINVAL;
}

int gc__config_validate(const gc__config_t *cfg)
{
    for (int id = 0; id < GC_S__COUNT; id++) {
        if (meta[id].type == GC_T_INT && cfg->v[id].i < 0)
            return config_error("Value must be non-negative for setting '%s': %ld", meta[id].name,
                                cfg->v[id].i);
    }
    if (cfg->v[GC_S_workers].i < 1)
        return config_error("Value must be positive for setting '%s': %ld", "workers",
                            cfg->v[GC_S_workers].i);
    static const char *const levels[] = {"debug", "info", "warning", "error", "critical"};
    const char *lvl = cfg->v[GC_S_loglevel].s;
    int ok = 0;
    for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++)
        ok |= strcasecmp(lvl, levels[i]) == 0;
    if (!ok)
        return config_error("Invalid log level: '%s'%.0ld", lvl, 0L);
    return 0;
}
