/* reload.c: --reload, a worker that stops when a file of the application changes. */
#include "workers/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log/log.h"

/* --- --reload: watch the application's files ------------------------------------- */

static void on_file_changed(uv_fs_event_t *h, const char *filename, int events, int status)
{
    gc__worker_t *w = h->loop->data;
    gc__info("Worker reloading: %s modified", (const char *)h->data);
    gc__worker_stop(w);
}

static int add_path(char ***paths, size_t *n, size_t *cap, const char *path)
{
    if (*n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 64;
        char **p = realloc(*paths, ncap * sizeof(*p));
        if (p == NULL)
            return -ENOMEM;
        *paths = p;
        *cap = ncap;
    }
    if (((*paths)[*n] = strdup(path)) == NULL)
        return -ENOMEM;
    (*n)++;
    return 0;
}

/* Watches every file the imported modules came from, plus --reload-extra-file. The
 * paths are gathered first: libuv handles must not move once initialised. */
void gc__reload_watch(gc__worker_t *w)
{
    char **paths = NULL;
    size_t n = 0, cap = 0;
    PyObject *values = PyDict_Values(PyImport_GetModuleDict());
    for (Py_ssize_t i = 0; values && i < PyList_GET_SIZE(values); i++) {
        PyObject *file = PyObject_GetAttrString(PyList_GET_ITEM(values, i), "__file__");
        const char *path = file && PyUnicode_Check(file) ? PyUnicode_AsUTF8(file) : NULL;
        if (path != NULL && access(path, R_OK) == 0)
            add_path(&paths, &n, &cap, path);
        Py_XDECREF(file);
        PyErr_Clear();
    }
    Py_XDECREF(values);
    const gc__setting_value_t *extra = &w->cfg->v[GC_S_reload_extra_files];
    for (size_t i = 0; i < extra->n; i++)
        add_path(&paths, &n, &cap, extra->items[i]);
    w->watches = calloc(n ? n : 1, sizeof(*w->watches));
    w->loop->data = w;
    for (size_t i = 0; w->watches && i < n; i++) {
        uv_fs_event_t *h = &w->watches[w->nwatches];
        if (uv_fs_event_init(w->loop, h) < 0)
            continue;
        h->data = paths[i]; /* the handle keeps the path for its log line */
        uv_fs_event_start(h, on_file_changed, paths[i], 0);
        w->nwatches++;
    }
    free(paths);
    gc__debug("Watching %zu files for changes", w->nwatches);
}
