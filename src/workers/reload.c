/* reload.c: --reload, a worker that stops when a file of the application changes.
 *
 * The files are those the imported modules came from, plus --reload-extra-file,
 * gathered once the application is imported. --reload-engine says how a change is
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

typedef struct gc__reload gc__reload_t;

typedef struct {
    gc__reload_t *r;
    char *path;       /* owned */
    uv_fs_event_t ev; /* inotify, when watched is set */
    int watched;
    int polled;
    int seen; /* st holds the last look (poll) */
    struct stat st;
} reload_file_t;

struct gc__reload {
    gc__worker_t *w;
    uv_timer_t poll; /* once a second while any file is polled */
    int fired;       /* a change was seen: the worker is stopping */
    size_t n;
    reload_file_t files[]; /* never moves: the handles live in it */
};

static void changed(gc__reload_t *r, const char *path)
{
    if (r->fired)
        return;
    r->fired = 1;
    uv_timer_stop(&r->poll);
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
    f->st = st;
    f->seen = 1;
    return differs;
}

static void on_poll(uv_timer_t *t)
{
    gc__reload_t *r = t->data;
    for (size_t i = 0; i < r->n && !r->fired; i++)
        if (r->files[i].polled && looked(&r->files[i]))
            changed(r, r->files[i].path);
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

static PyObject *module_files(void)
{
    PyObject *files = PyList_New(0);
    PyObject *values = PyDict_Values(PyImport_GetModuleDict());
    for (Py_ssize_t i = 0; files && values && i < PyList_GET_SIZE(values); i++) {
        PyObject *file = PyObject_GetAttrString(PyList_GET_ITEM(values, i), "__file__");
        if (file != NULL && PyUnicode_Check(file) && PyList_Append(files, file) < 0)
            Py_CLEAR(files);
        Py_XDECREF(file);
        PyErr_Clear();
    }
    Py_XDECREF(values);
    PyErr_Clear();
    return files;
}

void gc__reload_watch(gc__worker_t *w)
{
    gc__warning("Reloader is on. Use in development only!");
    const char *engine = gc__cfg_str(w->cfg, GC_S_reload_engine);
    int inotify = engine == NULL || strcmp(engine, "poll") != 0;
    int strict = engine != NULL && strcmp(engine, "inotify") == 0;

    PyObject *mods = module_files();
    size_t nmods = mods ? (size_t)PyList_GET_SIZE(mods) : 0;
    const gc__setting_value_t *extra = &w->cfg->v[GC_S_reload_extra_files];
    gc__reload_t *r = calloc(1, sizeof(*r) + (nmods + extra->n) * sizeof(r->files[0]));
    if (r == NULL) {
        Py_XDECREF(mods);
        gc__error("Cannot watch the application's files: %s", strerror(ENOMEM));
        return;
    }
    r->w = w;
    for (size_t i = 0; i < nmods; i++) {
        const char *path = PyUnicode_AsUTF8(PyList_GET_ITEM(mods, (Py_ssize_t)i));
        if (path != NULL && access(path, R_OK) == 0)
            r->files[r->n++].path = strdup(path);
        PyErr_Clear();
    }
    Py_XDECREF(mods);
    for (size_t i = 0; i < extra->n; i++)
        r->files[r->n++].path = strdup(extra->items[i]);

    w->reload = r;
    for (size_t i = 0; i < r->n; i++)
        r->files[i].r = r;
    uv_timer_init(w->loop, &r->poll);
    r->poll.data = r;
    uv_unref((uv_handle_t *)&r->poll);
    size_t nwatched = 0, npolled = 0;
    int unavailable = 0;
    for (size_t i = 0; i < r->n; i++) {
        reload_file_t *f = &r->files[i];
        if (f->path == NULL)
            continue;
        int err = inotify && !unavailable ? watch(r, f) : 0;
        if (err < 0) {
            if (strict) {
                gc__error("Exception in worker process");
                gc__error("The inotify reloader cannot watch %s: %s", f->path, uv_strerror(err));
                gc__info("Worker exiting (pid: %ld)", (long)getpid());
                fflush(NULL);
                _exit(GC_EXIT_WORKER_BOOT_ERROR);
            }
            gc__warning("inotify cannot watch %s (%s): polling it and the files after it", f->path,
                        uv_strerror(err));
            unavailable = 1;
        }
        if (f->watched) {
            nwatched++;
        } else if (!inotify || unavailable) {
            f->polled = 1;
            looked(f);
            npolled++;
        }
    }
    if (npolled > 0)
        uv_timer_start(&r->poll, on_poll, 1000, 1000);
    gc__debug("Watching %zu files for changes (%zu with inotify, %zu polled each second)",
              nwatched + npolled, nwatched, npolled);
}
