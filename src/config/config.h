/* config.h: settings, parsed from the command line into one typed table.
 *
 * Every setting is declared once in settings.def; this module turns that table into an
 * enum of ids, default values, the -h text and the option parser. Values live in a
 * gc__config_t owned by the caller. */
#ifndef GC_CONFIG_CONFIG_H
#define GC_CONFIG_CONFIG_H

#include <stddef.h>
#include <stdio.h>

enum gc__setting_type {
    GC_T_INT,
    GC_T_BOOL,
    GC_T_STR,
    GC_T_LIST, /* repeatable on the command line; each use appends */
};

enum gc__setting_id {
#define X(name, type, sflag, lflag, metavar, def, section, help) GC_S_##name,
#include "config/settings.def"
#undef X
    GC_S__COUNT
};

typedef struct {
    long i;       /* GC_T_INT, GC_T_BOOL */
    char *s;      /* GC_T_STR: owned, NULL when unset */
    char **items; /* GC_T_LIST: owned array of owned strings */
    size_t n;
    int set;      /* given explicitly (not the default) */
} gc__setting_value_t;

typedef struct {
    gc__setting_value_t v[GC_S__COUNT];
    char *app_uri; /* APP_MODULE, owned; NULL when not given */
} gc__config_t;

/* Fills cfg with defaults, including those read from the environment (PORT,
 * WEB_CONCURRENCY). Returns 0 or -ENOMEM. */
int gc__config_init(gc__config_t *cfg);
void gc__config_free(gc__config_t *cfg);

enum gc__parse_result {
    GC_PARSE_OK = 0,
    GC_PARSE_EXIT_OK = 1, /* -h or -v handled; exit 0 */
    GC_PARSE_USAGE = 2,   /* usage error printed; exit 2 */
};

/* Parses argv (without argv[0]) into cfg, printing -h / -v output and usage errors to
 * stdout/stderr as Gunicorn's argparse does. */
int gc__config_parse_args(gc__config_t *cfg, int argc, char **argv);

/* Checks values after all sources are applied; prints "Error: ..." and returns -EINVAL
 * when one is invalid. */
int gc__config_validate(const gc__config_t *cfg);

static inline long gc__cfg_int(const gc__config_t *cfg, enum gc__setting_id id)
{
    return cfg->v[id].i;
}
static inline const char *gc__cfg_str(const gc__config_t *cfg, enum gc__setting_id id)
{
    return cfg->v[id].s;
}

/* Prints the -h text. */
void gc__config_usage(FILE *out);

#endif
