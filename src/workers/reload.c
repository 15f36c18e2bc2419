/* reload.c: --reload, a worker that stops when a file of the application changes.
 *
 * The files are those the imported modules came from, plus --reload-extra-file (a
 * pattern with * ? or [ is expanded by Python's glob, ** included). They are gathered
 * once the application is imported, and again each second while sys.modules grows or a
 * pattern matches new files, so that modules imported later (a Django view at its first
 * request) are watched too, as in Gunicorn. --reload-engine says how a change is
 * noticed:
 *
 *   inotify  one uv_fs_event_t (inotify) per file: the change is seen when it is made.
 *            A file inotify cannot take (no inotify in this kernel, the per-user limit
 *            of instances or watches reached) fails the worker's boot, as Gunicorn's
 *            inotify engine does without its inotify package.
 *   poll     every file is stat(2)ed once a second on the loop thread (one timer), and
 *            a file whose mtime, size or inode differs from the last look is a change.
 *            The first look is taken here, before the worker serves anything, so a
 *            change made once the worker has answered is never missed.
 *   auto     inotify, and polling for the files inotify cannot take.
 *
 * Gunicorn's inotify engine watches the files' directories and restarts the worker
 * for any event in them (a log file written there, an editor's swap file); this one
 * watches the files themselves, so only their changes count. */
#include "workers/internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log/log.h"
#include "python/interp.h"
#include "python/runtime.h"

typedef struct gc__reload gc__reload_t;

typedef struct reload_file {
    struct reload_file *next;
    gc__reload_t *r;
    uv_fs_event_t ev; /* inotify, when watched is set */
    int watched;
    int polled;
    int seen; /* st holds the last look (poll) */
    struct stat st;
    char path[]; /* the file never moves: its handle lives in it */
} reload_file_t;

struct gc__reload {
    gc__worker_t *w;
    uv_timer_t tick; /* each second: polled files, new modules, patterns */
    int fired;       /* a change was seen: the worker is stopping */
    int inotify;     /* the engine uses inotify (auto, inotify) */
    int strict;      /* --reload-engine inotify: no polling instead */
    int unavailable; /* inotify failed once: the files from then on are polled */
    int booted;      /* the first gathering is done: later files are logged one by one */
    reload_file_t *files;
    size_t nwatched, npolled;
    PyObject *known;     /* the set of paths in files */
    Py_ssize_t nmodules; /* len(sys.modules) at the last gathering */
    PyObject *patterns;  /* the extra files that are glob patterns (a list) */
};

static void changed(gc__reload_t *r, const char *path)
{
    if (r->fired)
        return;
    r->fired = 1;
    uv_timer_stop(&r->tick);
    gc__info("Worker reloading: %s modified", path);
    gc__worker_stop(r->w);
}

static void on_file_changed(uv_fs_event_t *h, const char *filename, int events, int status)
{
    (void)filename;
    (void)events;
    (void)status;
    reload_file_t *f = h->data;
    changed(f->r, f->path);
}

/* Returns 1 when the file differs from the last look (and remembers this one). */
static int looked(reload_file_t *f)
{
    struct stat st;
    if (stat(f->path, &st) < 0)
        return 0; /* gone for now: a file put back in its place is compared then */
    int differs = f->seen && (st.st_mtim.tv_sec != f->st.st_mtim.tv_sec ||
                              st.st_mtim.tv_nsec != f->st.st_mtim.tv_nsec ||
                              st.st_size != f->st.st_size || st.st_ino != f->st.st_ino);
    if (!f->seen && f->r->booted)
        gc__debug("Watching %s for changes: it exists now", f->path);
    f->st = st;
    f->seen = 1;
    return differs;
}

/* Starts inotify on one file. Returns 0, or a negative libuv error when inotify
 * itself cannot be had (a file that vanished since it was imported is only skipped). */
static int watch(gc__reload_t *r, reload_file_t *f)
{
    int err = uv_fs_event_init(r->w->loop, &f->ev);
    if (err == 0) {
        f->ev.data = f;
        err = uv_fs_event_start(&f->ev, on_file_changed, f->path, 0);
        if (err < 0)
            uv_close((uv_handle_t *)&f->ev, NULL);
    }
    if (err == 0)
        f->watched = 1;
    return err == UV_ENOENT || err == UV_EACCES || err == UV_ENOTDIR ? 0 : err;
}

/* Watches one more file (a path already watched is skipped), with the engine's means:
 * inotify, or a first look for polling. */
static void add_file(gc__reload_t *r, PyObject *path)
{
    if (PySet_Contains(r->known, path) != 0 || PySet_Add(r->known, path) < 0) {
        PyErr_Clear();
        return;
    }
    const char *s = PyUnicode_AsUTF8(path);
    size_t len = s ? strlen(s) : 0;
    reload_file_t *f = s ? calloc(1, sizeof(*f) + len + 1) : NULL;
    if (f == NULL) {
        PyErr_Clear();
        return;
    }
    memcpy(f->path, s, len + 1);
    f->r = r;
    f->next = r->files;
    r->files = f;
    int err = r->inotify && !r->unavailable ? watch(r, f) : 0;
    if (err < 0) {
        if (r->strict) {
            gc__error("Exception in worker process");
            gc__error("The inotify reloader cannot watch %s: %s", f->path, uv_strerror(err));
            gc__info("Worker exiting (pid: %ld)", (long)getpid());
            fflush(NULL);
            _exit(GC_EXIT_WORKER_BOOT_ERROR);
        }
        gc__warning("inotify cannot watch %s (%s): polling it and the files after it", f->path,
                    uv_strerror(err));
        r->unavailable = 1;
    }
    if (f->watched) {
        r->nwatched++;
    } else {
        /* The poll engine's files, and those inotify could not take: gone since their
         * import, or an extra file that does not exist yet (its first edit counts). */
        f->polled = 1;
        looked(f);
        r->npolled++;
    }
    if (r->booted)
        gc__debug("Watching %s for changes too", f->path);
}

/* Adds what is not watched yet: the files of modules imported since the last look
 * (only when sys.modules has grown) and what the patterns match now. Needs the GIL. */
static void gather(gc__reload_t *r)
{
    PyObject *modules = PyImport_GetModuleDict(); /* borrowed */
    Py_ssize_t n = PyDict_Size(modules);
    if (n != r->nmodules) {
        r->nmodules = n;
        PyObject *values = PyDict_Values(modules);
        for (Py_ssize_t i = 0; values && i < PyList_GET_SIZE(values); i++) {
            PyObject *file = PyObject_GetAttrString(PyList_GET_ITEM(values, i), "__file__");
            const char *path = file && PyUnicode_Check(file) ? PyUnicode_AsUTF8(file) : NULL;
            if (path != NULL && access(path, R_OK) == 0)
                add_file(r, file);
            Py_XDECREF(file);
            PyErr_Clear();
        }
        Py_XDECREF(values);
    }
    for (Py_ssize_t i = 0; r->patterns && i < PyList_GET_SIZE(r->patterns); i++) {
        PyObject *found = gc__rt_glob(PyList_GET_ITEM(r->patterns, i));
        for (Py_ssize_t j = 0; found && j < PyList_GET_SIZE(found); j++)
            add_file(r, PyList_GET_ITEM(found, j));
        Py_XDECREF(found);
    }
    PyErr_Clear();
}

static void on_tick(uv_timer_t *t)
{
    gc__reload_t *r = t->data;
    for (reload_file_t *f = r->files; f != NULL && !r->fired; f = f->next)
        if (f->polled && looked(f))
            changed(r, f->path);
    if (r->fired)
        return;
    gc__worker_gil(r->w);
    gather(r);
}

static int is_pattern(const char *s)
{
    return strpbrk(s, "*?[") != NULL;
}

void gc__reload_watch(gc__worker_t *w)
{
    gc__warning("Reloader is on. Use in development only!");
    const char *engine = gc__cfg_str(w->cfg, GC_S_reload_engine);
    gc__reload_t *r = calloc(1, sizeof(*r));
    if (r == NULL || (r->known = PySet_New(NULL)) == NULL ||
        (r->patterns = PyList_New(0)) == NULL) {
        PyErr_Clear();
        gc__error("Cannot watch the application's files: %s", strerror(ENOMEM));
        return; /* a worker that cannot reload still serves */
    }
    r->w = w;
    r->inotify = engine == NULL || strcmp(engine, "poll") != 0;
    r->strict = engine != NULL && strcmp(engine, "inotify") == 0;
    r->nmodules = -1;
    w->reload = r;
    const gc__setting_value_t *extra = &w->cfg->v[GC_S_reload_extra_files];
    for (size_t i = 0; i < extra->n; i++) {
        PyObject *path = PyUnicode_DecodeFSDefault(extra->items[i]);
        if (path != NULL && is_pattern(extra->items[i]))
            PyList_Append(r->patterns, path);
        else if (path != NULL)
            add_file(r, path);
        Py_XDECREF(path);
        PyErr_Clear();
    }
    gather(r);
    r->booted = 1;
    uv_timer_init(w->loop, &r->tick);
    r->tick.data = r;
    uv_timer_start(&r->tick, on_tick, 1000, 1000);
    uv_unref((uv_handle_t *)&r->tick);
    gc__debug("Watching %zu files for changes (%zu with inotify, %zu polled each second)",
              r->nwatched + r->npolled, r->nwatched, r->npolled);
}
