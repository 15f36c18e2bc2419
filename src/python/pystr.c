/* pystr.c: the table of interned Python strings (see pystr.h). */
#include "python/pystr.h"

PyObject *gc__pystr[GC_STR__COUNT];

int gc__pystr_init(void)
{
    static const char *const texts[GC_STR__HOOKS] = {
#define X(id, text) text,
        GC_PYSTRS(X)
#undef X
    };
    for (int i = 0; i < GC_STR__COUNT; i++) {
        const char *text =
            i < GC_STR__HOOKS ? texts[i] : gc__hook_name((enum gc__hook_id)(i - GC_STR__HOOKS));
        if ((gc__pystr[i] = PyUnicode_InternFromString(text)) == NULL)
            return -1;
    }
    return 0;
}
