/* hooks.c: the registry of server hooks (see hooks.h). */
#include "python/hooks.h"

#include <string.h>

static PyObject *registry[GC_HOOK__COUNT];

static const char *const names[GC_HOOK__COUNT] = {
#define X(name) #name,
    GC_HOOKS(X)
#undef X
};

const char *gc__hook_name(enum gc__hook_id id)
{
    return names[id];
}

int gc__hook_find(const char *name)
{
    for (int i = 0; i < GC_HOOK__COUNT; i++)
        if (strcmp(names[i], name) == 0)
            return i;
    return -1;
}

PyObject *gc__hook_get(enum gc__hook_id id)
{
    return registry[id];
}

void gc__hook_set(enum gc__hook_id id, PyObject *callable)
{
    Py_XINCREF(callable);
    Py_XSETREF(registry[id], callable);
}

void gc__hooks_clear(void)
{
    for (int i = 0; i < GC_HOOK__COUNT; i++)
        Py_CLEAR(registry[i]);
}
