/* config_file.c: loading the configuration from every source (see config_file.h).
 *
 * The C settings layer (src/config) validates values; this file runs the sources in
 * Gunicorn's order: defaults, what the application brings (--paste), the config file
 * (run as the module __config__), GUNICORN_CMD_ARGS and the command line. The config
 * module's names are applied by config_values.c, which keeps what only Python can
 * hold: hook callables in the hook registry, dicts and other callables in `objects`
 * here. */
#include "python/config_file.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "http/repr.h"
#include "log/log.h"
#include "python/config_values.h"
#include "python/hooks.h"
#include "python/interp.h"
#include "python/pycompat.h"

/* Values of DICT and CALLABLE settings that are not server hooks, by setting name. */
static PyObject *objects;

PyObject *gc__config_object(enum gc__setting_id id)
{
    if (objects == NULL)
        return NULL;
    return PyDict_GetItemString(objects, gc__setting_info(id)->name); /* borrowed */
}

/* --- Small helpers ---------------------------------------------------------------- */

static void warn_line(const char *msg)
{
    gc__warning("%s", msg);
}

/* Gunicorn's util.warn: a "!!!" banner on stderr. */
static void warn_banner(const char *msg)
{
    fflush(stdout);
    fprintf(stderr, "!!!\n!!! WARNING: %s\n!!!\n\n", msg);
}

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* --- The config file ------------------------------------------------------------- */

/* Runs a config file as the module __config__, as Gunicorn does. Returns the module's
 * dict (owned) or NULL after printing why. */
static PyObject *exec_config_file(const char *filename)
{
    if (!file_exists(filename)) {
        fflush(stdout);
        fputs("\nError: ", stderr);
        gc__http_repr_print(stderr, filename);
        fputs(" doesn't exist\n", stderr);
        return NULL;
    }
    const char *ext = strrchr(filename, '.');
    const char *slash = strrchr(filename, '/');
    int python_ext =
        ext && (!slash || ext > slash) && (strcmp(ext, ".py") == 0 || strcmp(ext, ".pyc") == 0);
    PyObject *util = NULL, *machinery = NULL, *loader = NULL, *spec = NULL, *mod = NULL;
    PyObject *res = NULL, *dict = NULL, *modules, *spec_loader = NULL;
    if (!python_ext)
        warn_banner("configuration file should have a valid Python extension.");
    if ((util = PyImport_ImportModule("importlib.util")) == NULL ||
        (machinery = PyImport_ImportModule("importlib.machinery")) == NULL)
        goto fail;
    if (python_ext) {
        spec = PyObject_CallMethod(util, "spec_from_file_location", "ss", "__config__", filename);
    } else {
        loader = PyObject_CallMethod(machinery, "SourceFileLoader", "ss", "__config__", filename);
        PyObject *func = PyObject_GetAttrString(util, "spec_from_file_location");
        PyObject *args = Py_BuildValue("(ss)", "__config__", filename);
        PyObject *kwargs = loader ? Py_BuildValue("{s:O}", "loader", loader) : NULL;
        if (func && args && kwargs)
            spec = PyObject_Call(func, args, kwargs);
        Py_XDECREF(func);
        Py_XDECREF(args);
        Py_XDECREF(kwargs);
    }
    if (spec == NULL || (mod = PyObject_CallMethod(util, "module_from_spec", "O", spec)) == NULL)
        goto fail;
    modules = PyImport_GetModuleDict(); /* borrowed */
    if (PyDict_SetItemString(modules, "__config__", mod) < 0)
        goto fail;
    if ((spec_loader = PyObject_GetAttrString(spec, "loader")) == NULL ||
        (res = PyObject_CallMethod(spec_loader, "exec_module", "O", mod)) == NULL)
        goto fail;
    dict = Py_NewRef(PyModule_GetDict(mod));
    goto out;
fail:
    fflush(stdout);
    fprintf(stderr, "Failed to read config file: %s\n", filename);
    gc__py_print_exception();
out:
    Py_XDECREF(res);
    Py_XDECREF(spec_loader);
    Py_XDECREF(mod);
    Py_XDECREF(spec);
    Py_XDECREF(loader);
    Py_XDECREF(machinery);
    Py_XDECREF(util);
    return dict;
}

/* -c LOCATION: "python:MODULE", "file:PATH" or PATH. Returns 0 or -1 (printed). */
static int load_config_file(gc__config_t *cfg, const char *location)
{
    if (strncmp(location, "python:", 7) == 0) {
        PyObject *mod = PyImport_ImportModule(location + 7);
        if (mod == NULL) {
            gc__config_err_t err;
            gc__pyconfig_err_from_exception(&err);
            gc__pyconfig_error(err.msg);
            return -1;
        }
        int rc = gc__pyconfig_apply_module(cfg, PyModule_GetDict(mod), location + 7, objects);
        Py_DECREF(mod);
        return rc;
    }
    const char *filename = strncmp(location, "file:", 5) == 0 ? location + 5 : location;
    PyObject *dict = exec_config_file(filename);
    if (dict == NULL)
        return -1;
    int rc = gc__pyconfig_apply_module(cfg, dict, "__config__", objects);
    Py_DECREF(dict);
    return rc;
}

/* --- The other sources ------------------------------------------------------------ */

/* GUNICORN_CMD_ARGS, split as shlex.split does, through the same parser. */
static int parse_env_args(gc__cli_args_t *out)
{
    memset(out, 0, sizeof(*out));
    const char *text = getenv("GUNICORN_CMD_ARGS");
    if (text == NULL)
        return GC_PARSE_OK;
    PyObject *shlex = PyImport_ImportModule("shlex");
    PyObject *list = shlex ? PyObject_CallMethod(shlex, "split", "s", text) : NULL;
    Py_XDECREF(shlex);
    if (list == NULL) {
        gc__config_err_t err;
        gc__pyconfig_err_from_exception(&err);
        gc__pyconfig_error(err.msg);
        return -1;
    }
    Py_ssize_t n = PyList_GET_SIZE(list);
    char **argv = calloc((size_t)n + 1, sizeof(*argv));
    int rc = argv ? GC_PARSE_OK : -ENOMEM;
    for (Py_ssize_t i = 0; rc == GC_PARSE_OK && i < n; i++)
        if ((argv[i] = (char *)PyUnicode_AsUTF8(PyList_GET_ITEM(list, i))) == NULL)
            rc = -1;
    if (rc == GC_PARSE_OK)
        rc = gc__cli_parse(out, (int)n, argv);
    PyErr_Clear();
    free(argv);
    Py_DECREF(list);
    return rc;
}

/* Reads one key of an ini section with PasteDeploy's defaults (here, __file__);
 * returns owned UTF-8 or NULL. */
static char *ini_get(PyObject *parser, const char *section, const char *key)
{
    PyObject *v = PyObject_CallMethod(parser, "get", "ss", section, key);
    if (v == NULL) {
        PyErr_Clear();
        PyObject *kwargs = Py_BuildValue("{s:O,s:s}", "raw", Py_True, "fallback", "");
        PyObject *get = PyObject_GetAttrString(parser, "get");
        PyObject *args = Py_BuildValue("(ss)", section, key);
        if (kwargs && get && args)
            v = PyObject_Call(get, args, kwargs);
        Py_XDECREF(args);
        Py_XDECREF(get);
        Py_XDECREF(kwargs);
    }
    const char *s = v && PyUnicode_Check(v) ? PyUnicode_AsUTF8(v) : NULL;
    char *out = s && *s ? strdup(s) : NULL;
    Py_XDECREF(v);
    PyErr_Clear();
    return out;
}

/* --paste FILE[#SECTION]: the application comes from a PasteDeploy ini. As in
 * Gunicorn, default_proc_name becomes the file and logconfig the file when it has a
 * [loggers] section. Gunicorn 20+ reads [server:main] only under `pserve`; we also
 * take its host and port as the default bind (docs/configuration.md). */
static int init_paste(gc__config_t *cfg, const char *text)
{
    gc__config_err_t err;
    PyObject *os_path = PyImport_ImportModule("os.path"), *abs = NULL;
    PyObject *configparser = NULL, *parser = NULL, *res = NULL;
    int rc = -1;
    if (os_path == NULL || (abs = PyObject_CallMethod(os_path, "abspath", "s", text)) == NULL)
        goto py_fail;
    const char *uri = PyUnicode_AsUTF8(abs);
    if (uri == NULL)
        goto py_fail;
    char *file = strndup(uri, strcspn(uri, "#"));
    if (file == NULL)
        goto py_fail;
    if (!file_exists(file)) {
        fflush(stdout);
        fputs("\nError: ", stderr);
        gc__http_repr_print(stderr, file);
        fputs(" not found\n", stderr);
        free(file);
        goto out;
    }
    free(cfg->app_uri);
    if ((cfg->app_uri = strdup(uri)) == NULL ||
        gc__config_set_str(cfg, GC_S_default_proc_name, file, &err) < 0) {
        free(file);
        goto out;
    }
    PyObject *dir = PyObject_CallMethod(os_path, "dirname", "s", file);
    PyObject *defaults = dir ? Py_BuildValue("{s:O,s:s}", "here", dir, "__file__", file) : NULL;
    Py_XDECREF(dir);
    if (defaults == NULL || (configparser = PyImport_ImportModule("configparser")) == NULL ||
        (parser = PyObject_CallMethod(configparser, "ConfigParser", "O", defaults)) == NULL ||
        (res = PyObject_CallMethod(parser, "read", "s", file)) == NULL) {
        Py_XDECREF(defaults);
        free(file);
        goto py_fail;
    }
    Py_DECREF(defaults);
    PyObject *loggers = PyObject_CallMethod(parser, "has_section", "s", "loggers");
    if (loggers == Py_True && gc__config_set_str(cfg, GC_S_logconfig, file, &err) < 0) {
        Py_DECREF(loggers);
        free(file);
        goto out;
    }
    Py_XDECREF(loggers);
    free(file);
    char *host = ini_get(parser, "server:main", "host");
    char *port = ini_get(parser, "server:main", "port");
    if (host != NULL) {
        char bind[1024];
        if (port != NULL)
            snprintf(bind, sizeof(bind), "%s:%s", host, port);
        else
            snprintf(bind, sizeof(bind), "%s", host);
        /* Like Gunicorn's server runner: "host:port", or a comma-separated host list. */
        int brc = port != NULL ? gc__config_set_str(cfg, GC_S_bind, bind, &err) : 0;
        if (port == NULL) {
            const char *items[64];
            size_t n = 0;
            char *save = NULL;
            for (char *t = strtok_r(bind, ",", &save); t && n < 64; t = strtok_r(NULL, ",", &save))
                items[n++] = t;
            brc = gc__config_set_list(cfg, GC_S_bind, items, n, &err);
        }
        if (brc < 0) {
            free(host);
            free(port);
            gc__pyconfig_error(err.msg);
            goto out;
        }
    }
    free(host);
    free(port);
    rc = 0;
    goto out;
py_fail:
    if (PyErr_Occurred()) {
        gc__pyconfig_err_from_exception(&err);
        gc__pyconfig_error(err.msg);
    }
out:
    Py_XDECREF(res);
    Py_XDECREF(parser);
    Py_XDECREF(configparser);
    Py_XDECREF(abs);
    Py_XDECREF(os_path);
    return rc;
}

/* Gunicorn's Application.chdir with the current chdir setting. */
static int apply_chdir(const gc__config_t *cfg)
{
    const char *dir = gc__cfg_str(cfg, GC_S_chdir);
    if (dir == NULL || gc__py_chdir(dir) == 0)
        return 0;
    gc__config_err_t err;
    gc__pyconfig_err_from_exception(&err);
    gc__pyconfig_error(err.msg);
    return -1;
}

static int apply_source(gc__config_t *cfg, const gc__cli_args_t *args)
{
    gc__config_err_t err;
    int rc = gc__cli_apply(cfg, args, &err);
    if (rc == -ENOMEM)
        snprintf(err.msg, sizeof(err.msg), "out of memory");
    if (rc < 0) {
        gc__pyconfig_error(err.msg);
        return -1;
    }
    return 0;
}

/* The hooks and objects of the configuration in force, kept while a new one loads so
 * that a failed reload leaves them as they were. */
typedef struct {
    PyObject *hooks[GC_HOOK__COUNT];
    PyObject *objects;
} saved_t;

static void save_python_values(saved_t *saved)
{
    for (int h = 0; h < GC_HOOK__COUNT; h++)
        saved->hooks[h] = Py_XNewRef(gc__hook_get((enum gc__hook_id)h));
    saved->objects = objects; /* takes the reference */
    objects = NULL;
    gc__hooks_clear();
}

/* Puts the saved values back (restore) or drops them. */
static void end_saved(saved_t *saved, int restore)
{
    for (int h = 0; h < GC_HOOK__COUNT; h++) {
        if (restore)
            gc__hook_set((enum gc__hook_id)h, saved->hooks[h]);
        Py_CLEAR(saved->hooks[h]);
    }
    if (restore) {
        Py_XSETREF(objects, saved->objects);
        saved->objects = NULL;
    }
    Py_CLEAR(saved->objects);
}

int gc__config_load(gc__config_t *cfg, int argc, char **argv)
{
    gc__cli_args_t cli, env;
    memset(&cli, 0, sizeof(cli));
    memset(&env, 0, sizeof(env));
    int rc = -1;
    if (gc__config_init(cfg) < 0) {
        gc__pyconfig_error("out of memory");
        return -1;
    }
    saved_t saved;
    save_python_values(&saved);
    if ((objects = PyDict_New()) == NULL)
        goto out;

    /* The command line is parsed first (a usage error costs nothing more), but applied
     * last. */
    int parsed = gc__cli_parse(&cli, argc > 0 ? argc - 1 : 0, argv + (argc > 0));
    if (parsed != GC_PARSE_OK) {
        rc = parsed < 0 ? -1 : parsed;
        goto out;
    }
    /* What the application brings (Gunicorn's WSGIApplication.init). */
    int found;
    const char *paste = gc__cli_get(&cli, GC_S_paste, &found);
    if (paste != NULL) {
        if (init_paste(cfg, paste) < 0)
            goto out;
    } else if (cli.npos > 0) {
        gc__config_err_t err;
        if ((cfg->app_uri = strdup(cli.pos[0])) == NULL ||
            gc__config_set_str(cfg, GC_S_default_proc_name, cli.pos[0], &err) < 0)
            goto out;
    }
    if (apply_chdir(cfg) < 0)
        goto out;

    parsed = parse_env_args(&env);
    if (parsed != GC_PARSE_OK) {
        rc = parsed < 0 ? -1 : parsed;
        goto out;
    }
    /* One config file: -c from the command line, else from GUNICORN_CMD_ARGS, else
     * ./gunicorn.conf.py when it exists. */
    const char *location = gc__cli_get(&cli, GC_S_config, &found);
    if (location == NULL)
        location = gc__cli_get(&env, GC_S_config, &found);
    char default_file[PATH_MAX + 32];
    if (location == NULL) {
        char cwd[PATH_MAX];
        if (getcwd(cwd, sizeof(cwd)) != NULL) {
            snprintf(default_file, sizeof(default_file), "%s/gunicorn.conf.py", cwd);
            if (file_exists(default_file))
                location = default_file;
        }
    }
    if (location != NULL && load_config_file(cfg, location) < 0)
        goto out;
    if (apply_source(cfg, &env) < 0 || apply_source(cfg, &cli) < 0)
        goto out;
    /* The directory may have changed with the sources. */
    if (apply_chdir(cfg) < 0)
        goto out;

    if (cfg->app_uri == NULL && gc__cfg_str(cfg, GC_S_wsgi_app) != NULL &&
        (cfg->app_uri = strdup(gc__cfg_str(cfg, GC_S_wsgi_app))) == NULL)
        goto out;
    if (cfg->app_uri == NULL) {
        gc__pyconfig_error("No application module specified.");
        goto out;
    }
    if (gc__config_validate(cfg) < 0)
        goto out;
    if (gc__py_set_app_source(cfg) < 0)
        goto out;
    gc__log_set_level_name(gc__cfg_str(cfg, GC_S_loglevel));
    gc__config_warn_inactive(cfg, warn_line);
    rc = GC_PARSE_OK;
out:
    if (PyErr_Occurred())
        gc__py_print_exception();
    end_saved(&saved, rc != GC_PARSE_OK);
    gc__cli_free(&env);
    gc__cli_free(&cli);
    return rc;
}
