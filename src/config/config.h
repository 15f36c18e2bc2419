/* config.h: settings, in one typed table, and the command line that fills it.
 *
 * Every setting is declared once in settings.def; this layer turns that table into an
 * enum of ids, default values, validators, the option parser (an emulation of
 * Gunicorn's argparse parser, down to its messages), -h, --print-config and the
 * settings documentation. Values live in a gc__config_t owned by the caller.
 *
 * This layer is plain C and knows nothing of Python: the config file and the order of
 * the sources (defaults < config file < GUNICORN_CMD_ARGS < command line) are in
 * src/python/config_file.c, which calls the setters below. */
#ifndef GC_CONFIG_CONFIG_H
#define GC_CONFIG_CONFIG_H

#include <stddef.h>
#include <stdio.h>

/* How a value is stored (see gc__setting_value_t). */
enum gc__setting_type {
    GC_T_INT,      /* .i */
    GC_T_BOOL,     /* .i (0 or 1); .none when the value is None */
    GC_T_STR,      /* .s, NULL for None */
    GC_T_LIST,     /* .items / .n */
    GC_T_DICT,     /* a Python dict from a config file; .s holds its repr */
    GC_T_CALLABLE, /* a Python callable from a config file; .s holds "<qualname()>" */
};

/* Whether gunicorn-c acts on a setting. */
enum gc__setting_status {
    GC_ACTIVE,    /* implemented */
    GC_PENDING,   /* accepted, not yet active: a start-up warning when set */
    GC_NO_EFFECT, /* accepted, has no effect by design */
    GC_NO_DIRTY,  /* cannot apply: dirty arbiters; an error when set */
};

enum gc__setting_id {
#define X(name, type, flags, metavar, def, section, status, check, help) GC_S_##name,
#include "config/settings.def"
#undef X
    GC_S__COUNT
};

/* A setting's row of the table. */
typedef struct {
    const char *name;
    enum gc__setting_type type;
    const char *flags;   /* "-b --bind", or NULL */
    const char *metavar; /* NULL for flags without an argument */
    const char *def;     /* the default as text (see settings.def) */
    const char *section;
    enum gc__setting_status status;
    const char *help;
} gc__setting_info_t;

const gc__setting_info_t *gc__setting_info(int id);
/* The id of a setting name ("workers"), or -1. */
int gc__setting_find(const char *name);
/* Callables: how many positional arguments the callable must take; -1 for
 * post_request, which may take 2, 3 or 4. 0 for settings that are not callables. */
int gc__setting_arity(int id);
/* Integer settings whose command-line argument may be octal or hex (umask). */
int gc__setting_is_auto_int(int id);
/* List settings given as one comma-separated string (forwarded_allow_ips). */
int gc__setting_is_csv(int id);
/* What a boolean setting's flag stores: 1, or 0 for --no-sendfile. */
int gc__setting_flag_value(int id);
/* Integer settings that also take a name (user, group). */
int gc__setting_takes_name(int id);

typedef struct {
    long i;       /* GC_T_INT, GC_T_BOOL; user and group: the resolved uid / gid */
    char *s;      /* owned; GC_T_STR (NULL is None); user and group: the name or number
                   * as given (NULL by default); DICT and CALLABLE: the printed form */
    char **items; /* GC_T_LIST: owned array of owned strings */
    size_t n;
    int set;  /* given by a source rather than left at the default */
    int none; /* GC_T_BOOL: the value is None (sendfile's default) */
} gc__setting_value_t;

typedef struct {
    gc__setting_value_t v[GC_S__COUNT];
    /* What to load: APP_MODULE, the wsgi_app setting, or for --paste the absolute ini
     * path (with its #section). Owned; NULL when none was given. */
    char *app_uri;
} gc__config_t;

/* Fills cfg with defaults, including those Gunicorn takes from the environment (PORT,
 * WEB_CONCURRENCY, FORWARDED_ALLOW_IPS, XDG_RUNTIME_DIR) and the process (the working
 * directory, euid, egid). The working directory is the one of the first call, so that
 * a reload resolves relative paths as the start did. Returns 0 or -ENOMEM. */
int gc__config_init(gc__config_t *cfg);
/* Frees every value; cfg is left empty (freeing twice is harmless). */
void gc__config_free(gc__config_t *cfg);

/* --- Setters: each validates as Gunicorn's validator for the setting does. ---------- */

/* Why a setter refused a value: the text of the exception Gunicorn's validator raises
 * (printed by the caller as "Error: <msg>"). */
typedef struct {
    char msg[1024];
} gc__config_err_t;

/* Each returns 0, -EINVAL (err filled in) or -ENOMEM, and marks the value as set. The
 * setter must fit the setting's type, except that set_str also takes an integer
 * setting's text the way a config file's string goes through int(x, 0), and user and
 * group take names. */
int gc__config_set_int(gc__config_t *cfg, int id, long value, gc__config_err_t *err);
/* value: 1, 0, or -1 for None. */
int gc__config_set_bool(gc__config_t *cfg, int id, int value, gc__config_err_t *err);
/* text is copied; NULL is None. Strings are stripped of surrounding blanks. */
int gc__config_set_str(gc__config_t *cfg, int id, const char *text, gc__config_err_t *err);
/* Replaces a list (lists from a higher source replace, never extend). */
int gc__config_set_list(gc__config_t *cfg, int id, const char *const *items, size_t n,
                        gc__config_err_t *err);
/* Stores the printed form of a DICT or CALLABLE value that lives on the Python side. */
int gc__config_set_repr(gc__config_t *cfg, int id, const char *repr);

/* --- The command line (and GUNICORN_CMD_ARGS, which uses the same parser). -------- */

enum gc__parse_result {
    GC_PARSE_OK = 0,
    GC_PARSE_EXIT_OK = 1, /* -h or -v handled; exit 0 */
    GC_PARSE_USAGE = 2,   /* usage error printed; exit 2 */
};

/* The options of one source, in the order given, before they are applied. */
typedef struct {
    struct gc__cli_opt {
        int id;
        char *text; /* owned; NULL for a flag */
    } * opts;
    size_t n;
    char **pos; /* positional arguments (APP_MODULE), owned */
    size_t npos;
} gc__cli_args_t;

/* Parses argv (without argv[0]) as Gunicorn's argparse parser would: abbreviated long
 * options, -xVALUE, --name=VALUE, clustered short flags, "--". Integer arguments are
 * checked here (argparse's type check); values are validated when applied. Prints -h,
 * -v and usage errors; returns a gc__parse_result or -ENOMEM. out is filled in either
 * way and must be freed with gc__cli_free. */
int gc__cli_parse(gc__cli_args_t *out, int argc, char **argv);
/* The text of the last use of setting id in args (NULL for a flag or when absent);
 * *found tells which. */
const char *gc__cli_get(const gc__cli_args_t *args, int id, int *found);
/* Applies every option of args to cfg, as Gunicorn applies one source: the last use of
 * an option wins, and a repeatable option's uses together replace the list. Returns 0,
 * -EINVAL (err filled in) or -ENOMEM. */
int gc__cli_apply(gc__config_t *cfg, const gc__cli_args_t *args, gc__config_err_t *err);
void gc__cli_free(gc__cli_args_t *args);
/* The setting a long option names (len bytes of word, without any "=value"): spelled
 * out, or an unambiguous prefix as argparse takes it. -1 for none or an ambiguous one. */
int gc__cli_long_option(const char *word, size_t len);

/* Parses argv (without argv[0]) and applies it to cfg, the first positional argument
 * becoming cfg->app_uri. A convenience for a command line as the only source: prints
 * "Error: ..." and returns -EINVAL for a value a validator refuses, otherwise as
 * gc__cli_parse. */
int gc__config_parse_args(gc__config_t *cfg, int argc, char **argv);

/* The checks made once every source is applied: settings that cannot apply to
 * gunicorn-c, set to anything but their default, are refused. Prints "Error: ..." and
 * returns -EINVAL. */
int gc__config_validate(const gc__config_t *cfg);
/* Calls warn with a message for every setting given a value that is accepted but not
 * yet active, or deprecated and ignored (the caller logs them). */
void gc__config_warn_inactive(const gc__config_t *cfg, void (*warn)(const char *msg));

/* --- Output ----------------------------------------------------------------------- */

/* Writes the value as Python's str() would show it (True, None, ['a', 'b'], ...). */
void gc__config_format_value(const gc__config_t *cfg, int id, FILE *out);
/* --print-config: every setting, "name = value", sorted by name and aligned. */
void gc__config_print(const gc__config_t *cfg, FILE *out);
/* -h. */
void gc__config_usage(FILE *out);
/* docs/settings.md (`gunicorn-c --print-settings-markdown`). */
void gc__config_markdown(FILE *out);

static inline long gc__cfg_int(const gc__config_t *cfg, enum gc__setting_id id)
{
    return cfg->v[id].i;
}
/* The worker class gunicorn-c runs for a worker_class value ("sync", "gthread" or
 * "gevent"; NULL means sync), in any of Gunicorn's spellings: the name,
 * "egg:gunicorn#NAME", "#NAME", the dotted class path. NULL for a value that names none
 * (the validator refuses those). */
const char *gc__worker_class_canonical(const char *uri);

static inline const char *gc__cfg_str(const gc__config_t *cfg, enum gc__setting_id id)
{
    return cfg->v[id].s;
}

/* 1 when the list setting `id` holds `item` (http_protocols names "h2", ...). */
int gc__cfg_list_has(const gc__config_t *cfg, enum gc__setting_id id, const char *item);

#endif
