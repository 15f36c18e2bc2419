/* config.c: the settings table, defaults, setters and validators (see config.h).
 *
 * The setters are where Gunicorn's validators live on our side: every source (command
 * line, GUNICORN_CMD_ARGS, config file) goes through them, so a value is checked the
 * same way whichever source gave it, and a refusal carries the message Gunicorn's
 * validator would raise. The command-line parser is in cli.c; --print-config, -h and
 * the docs are in describe.c. */
#include "config/config.h"

#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "http/repr.h"
#include "http/trust.h"

/* --- Validators ------------------------------------------------------------------- */

/* Each gets the new value, already converted to the setting's type, and may normalise
 * it in place; a refusal fills err and returns -EINVAL. */
typedef int (*check_fn)(int id, gc__setting_value_t *nv, gc__config_err_t *err);

typedef struct {
    check_fn fn;
    int arity; /* callables: positional arguments required (-1: post_request's 2 to 4) */
    int auto_int;
    int csv;      /* a comma-separated string stored as a list */
    int flag_off; /* the BOOL flag stores False */
    int name_ok;  /* an INT setting that also takes a name (user, group) */
} check_t;

static int fail(gc__config_err_t *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(gc__config_err_t *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    return -EINVAL;
}

/* Python's repr() of a str, into buf (for messages that use %r). */
static const char *repr(const char *s, char *buf, size_t cap)
{
    return gc__http_repr_utf8(buf, cap, gc__view(s, strlen(s)));
}

/* A string that must be one of `choices` (NULL-terminated); `what` names it in the
 * message. */
static int one_of(const char *s, const char *const *choices, const char *what,
                  gc__config_err_t *err)
{
    for (size_t i = 0; s && choices[i]; i++)
        if (strcmp(s, choices[i]) == 0)
            return 0;
    char r[256];
    return fail(err, "Invalid %s: %s", what, s ? repr(s, r, sizeof(r)) : "None");
}

static int v_reload_engine(int id, gc__setting_value_t *nv, gc__config_err_t *err)
{
    static const char *const engines[] = {"auto", "poll", "inotify", NULL};
    return one_of(nv->s, engines, "reload_engine", err);
}

/* Gunicorn's words, without quotes around the value. */
static int v_asgi_choice(const char *s, const char *const *choices, const char *what,
                         gc__config_err_t *err)
{
    for (size_t i = 0; s && choices[i]; i++)
        if (strcmp(s, choices[i]) == 0)
            return 0;
    return fail(err, "Invalid ASGI %s: %s", what, s ? s : "None");
}

static int v_asgi_loop(int id, gc__setting_value_t *nv, gc__config_err_t *err)
{
    static const char *const loops[] = {"auto", "asyncio", "uvloop", NULL};
    return v_asgi_choice(nv->s, loops, "loop", err);
}

static int v_asgi_lifespan(int id, gc__setting_value_t *nv, gc__config_err_t *err)
{
    static const char *const modes[] = {"auto", "on", "off", NULL};
    return v_asgi_choice(nv->s, modes, "lifespan", err);
}

static int v_http_parser(int id, gc__setting_value_t *nv, gc__config_err_t *err)
{
    static const char *const parsers[] = {"auto", "fast", "python", NULL};
    return one_of(nv->s, parsers, "http_parser", err);
}

static int v_protocol(int id, gc__setting_value_t *nv, gc__config_err_t *err)
{
    static const char *const protocols[] = {"http", "uwsgi", NULL};
    return one_of(nv->s, protocols, "protocol", err);
}

static int v_http_protocols(int id, gc__setting_value_t *nv, gc__config_err_t *err)
{
    for (size_t i = 0; i < nv->n; i++) {
        for (char *p = nv->items[i]; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        const char *v = nv->items[i];
        if (strcmp(v, "h1") != 0 && strcmp(v, "h2") != 0 && strcmp(v, "h3") != 0)
            return fail(err, "Invalid protocol '%s'. Valid protocols: h1, h2, h3", v);
        for (size_t j = 0; j < i; j++)
            if (strcmp(nv->items[j], v) == 0)
                return fail(err, "Duplicate protocols specified");
    }
    return 0;
}

static int replace_str(gc__setting_value_t *nv, const char *s);

static int v_http2_cleartext(int id, gc__setting_value_t *nv, gc__config_err_t *err)
{
    /* A boolean True (a config file's) means prior knowledge, as in Gunicorn. */
    if (strcasecmp(nv->s, "true") == 0)
        return replace_str(nv, "prior-knowledge");
    if (strcasecmp(nv->s, "false") == 0)
        return replace_str(nv, "off");
    static const char *const modes[] = {"off", "prior-knowledge", "upgrade", "both", NULL};
    return one_of(nv->s, modes, "http2_cleartext", err);
}

static int v_http2_frame_size(int id, gc__setting_value_t *nv, gc__config_err_t *err)
{
    if (nv->i < 16384 || nv->i > 16777215)
        return fail(err, "http2_max_frame_size must be between 16384 and 16777215");
    return 0;
}

static int v_header_map(int id, gc__setting_value_t *nv, gc__config_err_t *err)
{
    static const char *const maps[] = {"drop", "refuse", "dangerous", NULL};
    return one_of(nv->s, maps, "header_map", err);
}

static int replace_str(gc__setting_value_t *nv, const char *s)
{
    char *copy = strdup(s);
    if (copy == NULL)
        return -ENOMEM;
    free(nv->s);
    nv->s = copy;
    return 0;
}

/* off, v1, v2 or auto; a true boolean (or the bare flag, which passes None) means auto
 * and a false one off. */
static int v_proxy_protocol(int id, gc__setting_value_t *nv, gc__config_err_t *err)
{
    static const char *const modes[] = {"off", "v1", "v2", "auto", NULL};
    if (nv->s == NULL || strcasecmp(nv->s, "true") == 0 || strcmp(nv->s, "1") == 0)
        return replace_str(nv, "auto");
    if (strcasecmp(nv->s, "false") == 0 || strcmp(nv->s, "0") == 0)
        return replace_str(nv, "off");
    for (char *p = nv->s; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    return one_of(nv->s, modes, "proxy_protocol", err);
}

/* Gunicorn accepts any name here and falls back to info; we refuse what the log layer
 * does not know, so that a typo is seen at once (docs/configuration.md). */
static int v_loglevel(int id, gc__setting_value_t *nv, gc__config_err_t *err)
{
    static const char *const levels[] = {"debug", "info", "warning", "error", "critical"};
    for (size_t i = 0; nv->s && i < sizeof(levels) / sizeof(levels[0]); i++)
        if (strcasecmp(nv->s, levels[i]) == 0)
            return 0;
    char r[256];
    return fail(err, "Invalid log level: %s", nv->s ? repr(nv->s, r, sizeof(r)) : "None");
}

/* The worker classes Gunicorn knows, and what gunicorn-c makes of them. */
static const struct {
    const char *name;
    const char *dotted;
    int ok;            /* 1: available; -1: cannot apply; -2: removed from Gunicorn */
    const char *canon; /* the class gunicorn-c runs for it */
} worker_classes[] = {
    {"sync", "gunicorn.workers.sync.SyncWorker", 1, "sync"},
    {"gthread", "gunicorn.workers.gthread.ThreadWorker", 1, "gthread"},
    {"gevent", "gunicorn.workers.ggevent.GeventWorker", 1, "gevent"},
    {"gevent_wsgi", "gunicorn.workers.ggevent.GeventPyWSGIWorker", 1, "gevent"},
    {"gevent_pywsgi", "gunicorn.workers.ggevent.GeventPyWSGIWorker", 1, "gevent"},
    {"tornado", "gunicorn.workers.gtornado.TornadoWorker", -1, NULL},
    {"asgi", "gunicorn.workers.gasgi.ASGIWorker", 1, "asgi"},
    /* uvicorn's Gunicorn worker classes: gunicorn-c's own asgi class runs instead. */
    {"uvicorn.workers.UvicornWorker", "uvicorn.workers.UvicornWorker", 1, "asgi"},
    {"uvicorn.workers.UvicornH11Worker", "uvicorn.workers.UvicornH11Worker", 1, "asgi"},
    {"eventlet", "gunicorn.workers.geventlet.EventletWorker", -2, NULL},
};

/* The entry of worker_classes that uri names (Gunicorn's spellings: the name,
 * "egg:gunicorn#NAME", "#NAME", the dotted class), or -1. */
static int worker_class_index(const char *uri)
{
    const char *name = uri;
    if (strncmp(name, "egg:gunicorn#", 13) == 0)
        name += 13;
    else if (name[0] == '#')
        name++;
    for (size_t i = 0; i < sizeof(worker_classes) / sizeof(worker_classes[0]); i++)
        if (strcmp(name, worker_classes[i].name) == 0 ||
            strcmp(name, worker_classes[i].dotted) == 0)
            return (int)i;
    return -1;
}

const char *gc__worker_class_canonical(const char *uri)
{
    int i = worker_class_index(uri != NULL ? uri : "sync");
    return i >= 0 ? worker_classes[i].canon : NULL;
}

static int v_worker_class(int id, gc__setting_value_t *nv, gc__config_err_t *err)
{
    char r[512];
    const char *uri = nv->s ? nv->s : "";
    const char *name = uri;
    if (strncmp(name, "egg:gunicorn#", 13) == 0)
        name += 13;
    else if (name[0] == '#')
        name++;
    int i = worker_class_index(uri);
    if (i >= 0) {
        if (worker_classes[i].ok == 1)
            return 0;
        if (worker_classes[i].ok == -2)
            return fail(err,
                        "worker class %s is not in gunicorn-c (Gunicorn 26 removed it too); "
                        "use 'gevent'",
                        repr(uri, r, sizeof(r)));
        return fail(err,
                    "worker class %s cannot apply to gunicorn-c; use 'gevent', 'gthread' or, for "
                    "an ASGI application, 'asgi'",
                    repr(uri, r, sizeof(r)));
    }
    /* A dotted path names a Python worker class: gunicorn-c's workers are C. */
    if (strchr(name, '.') != NULL || strncmp(uri, "egg:", 4) == 0)
        return fail(err,
                    "worker class %s: gunicorn-c cannot load Python worker classes; use 'sync', "
                    "'gthread', 'gevent' or 'asgi' (its own workers are written in C)",
                    repr(uri, r, sizeof(r)));
    return fail(err, "class uri %s invalid or not found", repr(uri, r, sizeof(r)));
}

/* The working directory as Gunicorn's util.getcwd() sees it: $PWD when it names the
 * same directory (it keeps symbolic links), else getcwd(). */
static int gunicorn_getcwd(char *out, size_t cap)
{
    if (getcwd(out, cap) == NULL)
        return -errno;
    const char *pwd = getenv("PWD");
    struct stat a, b;
    if (pwd && pwd[0] == '/' && strlen(pwd) < cap && stat(pwd, &a) == 0 && stat(out, &b) == 0 &&
        a.st_dev == b.st_dev && a.st_ino == b.st_ino)
        strcpy(out, pwd);
    return 0;
}

/* os.path.normpath of an absolute path: no empty, "." or ".." components. */
static void normpath(char *path)
{
    char *out = path, *p = path;
    while (*p) {
        while (*p == '/')
            p++;
        char *seg = p;
        while (*p && *p != '/')
            p++;
        size_t len = (size_t)(p - seg);
        if (len == 0 || (len == 1 && seg[0] == '.'))
            continue;
        if (len == 2 && seg[0] == '.' && seg[1] == '.') {
            while (out > path && *--out != '/')
                ;
            continue;
        }
        *out++ = '/';
        memmove(out, seg, len);
        out += len;
    }
    if (out == path)
        *out++ = '/';
    *out = '\0';
}

/* Made absolute against the working directory, normalised, and required to exist. */
static int v_chdir(int id, gc__setting_value_t *nv, gc__config_err_t *err)
{
    char r[PATH_MAX + 8];
    if (nv->s == NULL)
        return fail(err, "Not a string: None");
    char *path = malloc(2 * PATH_MAX + 2);
    if (path == NULL)
        return -ENOMEM;
    if (nv->s[0] == '/') {
        snprintf(path, 2 * PATH_MAX + 2, "%s", nv->s);
    } else {
        if (gunicorn_getcwd(path, PATH_MAX) < 0)
            strcpy(path, "/");
        size_t len = strlen(path);
        snprintf(path + len, 2 * PATH_MAX + 2 - len, "/%s", nv->s);
    }
    normpath(path);
    struct stat st;
    if (stat(path, &st) < 0) {
        free(path);
        return fail(err, "can't chdir to %s", repr(nv->s, r, sizeof(r)));
    }
    free(nv->s);
    nv->s = path;
    return 0;
}

/* user and group: a number, or a name looked up in the system's databases. The text
 * given stays in .s (NULL by default) for code that wants the name. */
static int v_user(int id, gc__setting_value_t *nv, gc__config_err_t *err)
{
    if (nv->s == NULL)
        return 0; /* a number was given */
    const char *s = nv->s;
    int digits = *s != '\0';
    for (const char *p = s; *p; p++)
        digits &= isdigit((unsigned char)*p) != 0;
    if (digits) {
        nv->i = strtol(s, NULL, 10);
        return 0;
    }
    if (id == GC_S_user) {
        struct passwd *pw = getpwnam(s);
        if (pw == NULL)
            return fail(err, "No such user: '%s'", s);
        nv->i = (long)pw->pw_uid;
    } else {
        struct group *gr = getgrnam(s);
        if (gr == NULL)
            return fail(err, "No such group: '%s'", s);
        nv->i = (long)gr->gr_gid;
    }
    return 0;
}

/* The table's `check` column names one of these rows. */
static const check_t check_none = {0};
static const check_t check_auto_int = {.auto_int = 1};
static const check_t check_csv = {.csv = 1};
static const check_t check_flag_off = {.flag_off = 1};
static const check_t check_arity1 = {.arity = 1};
static const check_t check_arity2 = {.arity = 2};
static const check_t check_arity3 = {.arity = 3};
static const check_t check_post_request = {.arity = -1};
static const check_t check_reload_engine = {.fn = v_reload_engine};
static const check_t check_http_parser = {.fn = v_http_parser};
static const check_t check_asgi_loop = {.fn = v_asgi_loop};
static const check_t check_asgi_lifespan = {.fn = v_asgi_lifespan};
static const check_t check_protocol = {.fn = v_protocol};
static const check_t check_http_protocols = {.fn = v_http_protocols, .csv = 1};
static const check_t check_http2_frame_size = {.fn = v_http2_frame_size};
static const check_t check_http2_cleartext = {.fn = v_http2_cleartext};
static const check_t check_header_map = {.fn = v_header_map};
static const check_t check_proxy_protocol = {.fn = v_proxy_protocol};
static const check_t check_loglevel = {.fn = v_loglevel};
static const check_t check_worker_class = {.fn = v_worker_class};
static const check_t check_chdir = {.fn = v_chdir};
static const check_t check_user = {.fn = v_user, .name_ok = 1};
static const check_t check_group = {.fn = v_user, .name_ok = 1};

/* --- The table -------------------------------------------------------------------- */

static const gc__setting_info_t table[GC_S__COUNT] = {
#define X(name, type, flags, metavar, def, section, status, check, help)                           \
    {#name, type, flags, metavar, def, section, status, help},
#include "config/settings.def"
#undef X
};

static const check_t *const checks[GC_S__COUNT] = {
#define X(name, type, flags, metavar, def, section, status, check, help) &check_##check,
#include "config/settings.def"
#undef X
};

const gc__setting_info_t *gc__setting_info(int id)
{
    return &table[id];
}

int gc__setting_find(const char *name)
{
    for (int id = 0; id < GC_S__COUNT; id++)
        if (strcmp(table[id].name, name) == 0)
            return id;
    return -1;
}

int gc__setting_arity(int id)
{
    return checks[id]->arity;
}

int gc__setting_is_auto_int(int id)
{
    return checks[id]->auto_int;
}

int gc__setting_is_csv(int id)
{
    return checks[id]->csv;
}

int gc__setting_flag_value(int id)
{
    return checks[id]->flag_off ? 0 : 1;
}

int gc__setting_takes_name(int id)
{
    return checks[id]->name_ok;
}

/* --- Values ----------------------------------------------------------------------- */

static void value_clear(gc__setting_value_t *v)
{
    free(v->s);
    for (size_t i = 0; i < v->n; i++)
        free(v->items[i]);
    free(v->items);
    memset(v, 0, sizeof(*v));
}

static int list_append(gc__setting_value_t *v, const char *s, size_t len)
{
    char **items = realloc(v->items, (v->n + 1) * sizeof(*items));
    if (items == NULL)
        return -ENOMEM;
    v->items = items;
    if ((items[v->n] = strndup(s, len)) == NULL)
        return -ENOMEM;
    v->n++;
    return 0;
}

/* Python's str.strip() for ASCII blanks: returns the start, sets *len. */
static const char *strip(const char *s, size_t *len)
{
    while (*s && isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        n--;
    *len = n;
    return s;
}

/* Runs the setting's validator on nv and, when it passes, makes nv the value. nv is
 * consumed either way. */
static int commit(gc__config_t *cfg, int id, gc__setting_value_t *nv, gc__config_err_t *err)
{
    int rc = checks[id]->fn ? checks[id]->fn(id, nv, err) : 0;
    if (rc < 0) {
        value_clear(nv);
        return rc;
    }
    nv->set = 1;
    value_clear(&cfg->v[id]);
    cfg->v[id] = *nv;
    return 0;
}

int gc__config_set_int(gc__config_t *cfg, int id, long value, gc__config_err_t *err)
{
    if (table[id].type != GC_T_INT)
        return fail(err, "setting '%s' is not an integer", table[id].name);
    if (value < 0)
        return fail(err, "Value must be positive: %ld", value);
    gc__setting_value_t nv = {.i = value};
    if (checks[id]->name_ok) {
        char num[32];
        snprintf(num, sizeof(num), "%ld", value);
        if ((nv.s = strdup(num)) == NULL)
            return -ENOMEM;
    }
    return commit(cfg, id, &nv, err);
}

int gc__config_set_bool(gc__config_t *cfg, int id, int value, gc__config_err_t *err)
{
    if (table[id].type != GC_T_BOOL)
        return fail(err, "setting '%s' is not a boolean", table[id].name);
    gc__setting_value_t nv = {.i = value > 0, .none = value < 0};
    return commit(cfg, id, &nv, err);
}

/* Python's int(text, 0) for the texts a config file may give an integer setting. */
static int parse_int_base0(const char *text, long *out)
{
    size_t len;
    const char *s = strip(text, &len);
    char buf[128];
    if (len == 0 || len >= sizeof(buf))
        return -EINVAL;
    memcpy(buf, s, len);
    buf[len] = '\0';
    int neg = 0;
    char *p = buf;
    if (*p == '+' || *p == '-')
        neg = *p++ == '-';
    int base = 10;
    if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X'))
        base = 16, p += 2;
    else if (p[0] == '0' && (p[1] == 'o' || p[1] == 'O'))
        base = 8, p += 2;
    else if (p[0] == '0' && (p[1] == 'b' || p[1] == 'B'))
        base = 2, p += 2;
    else if (p[0] == '0') {
        /* Base 0 allows no leading zeros in a decimal number except for 0 itself. */
        for (char *q = p; *q; q++)
            if (*q != '0')
                return -EINVAL;
    }
    if (!isalnum((unsigned char)*p))
        return -EINVAL;
    errno = 0;
    char *end;
    long n = strtol(p, &end, base);
    if (*end != '\0' || errno == ERANGE)
        return -EINVAL;
    *out = neg ? -n : n;
    return 0;
}

int gc__config_set_str(gc__config_t *cfg, int id, const char *text, gc__config_err_t *err)
{
    enum gc__setting_type type = table[id].type;
    gc__setting_value_t nv = {0};
    size_t len = 0;
    const char *s = text ? strip(text, &len) : NULL;
    char r[512];
    switch (type) {
    case GC_T_INT:
        if (checks[id]->name_ok) {
            if (s == NULL) { /* None: the process's own id */
                nv.i = id == GC_S_user ? (long)geteuid() : (long)getegid();
                return commit(cfg, id, &nv, err);
            }
            if ((nv.s = strndup(s, len)) == NULL)
                return -ENOMEM;
            return commit(cfg, id, &nv, err);
        }
        long n;
        if (text == NULL)
            return fail(err, "int() can't convert non-string with explicit base");
        if (parse_int_base0(text, &n) < 0)
            return fail(err, "invalid literal for int() with base 0: %s", repr(text, r, sizeof(r)));
        return gc__config_set_int(cfg, id, n, err);
    case GC_T_BOOL:
        if (text == NULL)
            return gc__config_set_bool(cfg, id, -1, err);
        if (len == 4 && strncasecmp(s, "true", 4) == 0)
            return gc__config_set_bool(cfg, id, 1, err);
        if (len == 5 && strncasecmp(s, "false", 5) == 0)
            return gc__config_set_bool(cfg, id, 0, err);
        return fail(err, "Invalid boolean: %s", text);
    case GC_T_STR:
        if (s != NULL && (nv.s = strndup(s, len)) == NULL)
            return -ENOMEM;
        return commit(cfg, id, &nv, err);
    case GC_T_LIST:
        if (s == NULL || len == 0)
            return commit(cfg, id, &nv, err);
        if (!checks[id]->csv) {
            /* A lone string stands for a one-item list (Gunicorn's "legacy syntax"). */
            if (list_append(&nv, s, len) < 0)
                goto nomem;
            return commit(cfg, id, &nv, err);
        }
        /* "a, b" -> ['a', 'b']; only empty pieces are dropped, as in Gunicorn. */
        for (const char *p = s, *end = s + len; p <= end;) {
            const char *comma = memchr(p, ',', (size_t)(end - p));
            const char *stop = comma ? comma : end;
            if (stop > p) {
                char piece[1024];
                size_t plen =
                    (size_t)(stop - p) < sizeof(piece) - 1 ? (size_t)(stop - p) : sizeof(piece) - 1;
                memcpy(piece, p, plen);
                piece[plen] = '\0';
                size_t ilen;
                const char *item = strip(piece, &ilen);
                if (list_append(&nv, item, ilen) < 0)
                    goto nomem;
            }
            p = stop + 1;
        }
        return commit(cfg, id, &nv, err);
    case GC_T_DICT:
    case GC_T_CALLABLE:
        return fail(err, "setting '%s' needs a Python value from a config file", table[id].name);
    }
    return -EINVAL;
nomem:
    value_clear(&nv);
    return -ENOMEM;
}

int gc__config_set_list(gc__config_t *cfg, int id, const char *const *items, size_t n,
                        gc__config_err_t *err)
{
    if (table[id].type != GC_T_LIST)
        return fail(err, "setting '%s' is not a list", table[id].name);
    gc__setting_value_t nv = {0};
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const char *s = strip(items[i], &len);
        if (list_append(&nv, s, len) < 0) {
            value_clear(&nv);
            return -ENOMEM;
        }
    }
    return commit(cfg, id, &nv, err);
}

int gc__config_set_repr(gc__config_t *cfg, int id, const char *text)
{
    gc__setting_value_t nv = {0};
    if (text != NULL && (nv.s = strdup(text)) == NULL)
        return -ENOMEM;
    gc__config_err_t unused;
    return commit(cfg, id, &nv, &unused);
}

/* --- Defaults --------------------------------------------------------------------- */

/* The directory of the first gc__config_init: a reload starts from it again. */
static char start_dir[PATH_MAX];

/* Stores a default without marking it as set. */
static int set_default(gc__config_t *cfg, int id, const char *text)
{
    gc__config_err_t err;
    int rc;
    if (table[id].type == GC_T_DICT || table[id].type == GC_T_CALLABLE)
        rc = gc__config_set_repr(cfg, id, text);
    else
        rc = gc__config_set_str(cfg, id, text, &err);
    if (rc < 0)
        return rc == -ENOMEM ? rc : -EINVAL;
    cfg->v[id].set = 0;
    return 0;
}

int gc__config_init(gc__config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    if (start_dir[0] == '\0' && gunicorn_getcwd(start_dir, sizeof(start_dir)) < 0)
        strcpy(start_dir, "/");
    for (int id = 0; id < GC_S__COUNT; id++) {
        const char *def = table[id].def;
        if (id == GC_S_chdir)
            def = start_dir;
        if (def == NULL && table[id].type != GC_T_BOOL && !checks[id]->name_ok)
            continue; /* None, or [] */
        int rc = set_default(cfg, id, def);
        if (rc < 0 && !(id == GC_S_chdir && rc == -EINVAL))
            return -ENOMEM;
    }
    /* Defaults Gunicorn takes from the environment (platforms such as Heroku set
     * them). */
    const char *port = getenv("PORT");
    if (port != NULL && *port != '\0') {
        char bind[128];
        snprintf(bind, sizeof(bind), "0.0.0.0:%s", port);
        if (set_default(cfg, GC_S_bind, bind) < 0)
            return -ENOMEM;
    }
    const char *conc = getenv("WEB_CONCURRENCY");
    long n;
    if (conc != NULL && parse_int_base0(conc, &n) == 0 && n >= 0)
        cfg->v[GC_S_workers].i = n;
    const char *fwd = getenv("FORWARDED_ALLOW_IPS");
    if (fwd != NULL && set_default(cfg, GC_S_forwarded_allow_ips, fwd) < 0)
        return -ENOMEM;
    char ctl[PATH_MAX + 32];
    const char *xdg = getenv("XDG_RUNTIME_DIR"), *home = getenv("HOME");
    struct stat st;
    if (xdg && *xdg && stat(xdg, &st) == 0 && S_ISDIR(st.st_mode))
        snprintf(ctl, sizeof(ctl), "%s/gunicorn.ctl", xdg);
    else
        snprintf(ctl, sizeof(ctl), "%s/.gunicorn/gunicorn.ctl", home && *home ? home : "");
    if (set_default(cfg, GC_S_control_socket, ctl) < 0)
        return -ENOMEM;
    return 0;
}

void gc__config_free(gc__config_t *cfg)
{
    for (int id = 0; id < GC_S__COUNT; id++)
        value_clear(&cfg->v[id]);
    free(cfg->app_uri);
    cfg->app_uri = NULL;
}

/* --- After every source ----------------------------------------------------------- */

/* True when setting id's value differs from its default (compared as printed). */
static int differs(const gc__config_t *cfg, const gc__config_t *defaults, int id)
{
    char *a = NULL, *b = NULL;
    size_t alen = 0, blen = 0;
    FILE *fa = open_memstream(&a, &alen), *fb = open_memstream(&b, &blen);
    if (fa == NULL || fb == NULL) {
        if (fa)
            fclose(fa);
        if (fb)
            fclose(fb);
        free(a);
        free(b);
        return cfg->v[id].set;
    }
    gc__config_format_value(cfg, id, fa);
    gc__config_format_value(defaults, id, fb);
    fclose(fa);
    fclose(fb);
    int rc = alen != blen || memcmp(a, b, alen) != 0;
    free(a);
    free(b);
    return rc;
}

int gc__config_validate(const gc__config_t *cfg)
{
    gc__config_t defaults;
    if (gc__config_init(&defaults) < 0) {
        gc__config_free(&defaults);
        return -ENOMEM;
    }
    int rc = 0;
    for (int id = 0; id < GC_S__COUNT && rc == 0; id++) {
        const char *why = NULL;
        switch (table[id].status) {
        case GC_NO_DIRTY:
            why = "gunicorn-c has no dirty arbiters";
            break;
        default:
            continue;
        }
        if (cfg->v[id].set && differs(cfg, &defaults, id)) {
            fprintf(stderr, "\nError: setting '%s' cannot apply: %s.\n", table[id].name, why);
            rc = -EINVAL;
        }
    }
    /* Address lists, as Gunicorn's validator: every entry but "*" must be an address
     * or a network without host bits. Checked here rather than in a setter so that a
     * bad $FORWARDED_ALLOW_IPS (a default) is reported the same way. */
    static const int addr_lists[] = {GC_S_forwarded_allow_ips, GC_S_proxy_allow_ips,
                                     GC_S_uwsgi_allow_ips};
    for (size_t i = 0; rc == 0 && i < sizeof(addr_lists) / sizeof(addr_lists[0]); i++) {
        const gc__setting_value_t *v = &cfg->v[addr_lists[i]];
        for (size_t j = 0; rc == 0 && j < v->n; j++) {
            gc__trust_net_t net;
            char msg[512];
            if (strcmp(v->items[j], "*") != 0 &&
                gc__trust_parse_net(v->items[j], &net, msg, sizeof(msg)) < 0) {
                fprintf(stderr, "\nError: %s\n", msg);
                rc = -EINVAL;
            }
        }
    }
    gc__config_free(&defaults);
    return rc;
}

void gc__config_warn_inactive(const gc__config_t *cfg, void (*warn)(const char *msg))
{
    gc__config_t defaults;
    if (gc__config_init(&defaults) < 0) {
        gc__config_free(&defaults);
        return;
    }
    for (int id = 0; id < GC_S__COUNT; id++) {
        if (!cfg->v[id].set || !differs(cfg, &defaults, id))
            continue;
        char msg[160];
        if (table[id].status == GC_PENDING) {
            snprintf(msg, sizeof(msg),
                     "Setting '%s' is accepted but not yet active in gunicorn-c: it has no "
                     "effect.",
                     table[id].name);
            warn(msg);
        } else if (id == GC_S_ssl_version) {
            warn("Setting 'ssl_version' is deprecated and ignored; use ssl_context.");
        }
    }
    gc__config_free(&defaults);
}

int gc__cfg_list_has(const gc__config_t *cfg, enum gc__setting_id id, const char *item)
{
    const gc__setting_value_t *v = &cfg->v[id];
    for (size_t i = 0; i < v->n; i++)
        if (strcmp(v->items[i], item) == 0)
            return 1;
    return 0;
}
