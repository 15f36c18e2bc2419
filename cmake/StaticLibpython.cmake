# StaticLibpython.cmake: links the gunicorn-c executable with CPython's static library
# when the embedded CPython ships one (Debian's libpython3.X.a, which its own
# /usr/bin/python3 is made of), instead of libpython3.X.so.
#
# Why: libpython3.X.so is position-independent code, reached through the PLT; the same
# Python code runs about 11% slower in it (measured with bench/asgi_floor.py inside a
# worker: FastAPI's own code 24.1 us a call with the shared library, 21.5 us with the
# static one, 19.5 us in /usr/bin/python3). Everything an application does in Python
# pays that, under every worker class.
#
# How: the whole archive goes in (extension modules such as uvloop need every symbol
# of the C API, exported with --export-dynamic as the python3 executable does), the
# executable is position-dependent as that archive is (-no-pie), and --as-needed drops
# the shared library the layers link, so one CPython is in the process. The archive's
# own dependencies (MODLIBS, LIBS, SYSLIBS of sysconfig) follow.
#
#   -DGC_STATIC_LIBPYTHON=AUTO   (default) when the archive exists and a test link and
#                                run of an embedding program with it succeed
#   -DGC_STATIC_LIBPYTHON=OFF    always the shared library
# Sanitizer builds always use the shared library. libgunicorn-c (for embedding) and
# gunicorn-c-ctl always do.

set(GC_STATIC_LIBPYTHON AUTO CACHE STRING "Link the executable with CPython's static library (AUTO or OFF)")

function(gc_static_libpython target)
    if(GC_STATIC_LIBPYTHON STREQUAL "OFF" OR GC_SANITIZE OR NOT CMAKE_SYSTEM_NAME STREQUAL "Linux")
        message(STATUS "CPython for ${target}: the shared library")
        return()
    endif()
    execute_process(
        COMMAND ${Python3_EXECUTABLE} -c
"import os, sysconfig as s
g = lambda k: s.get_config_var(k) or ''
a = os.path.join(g('LIBPL'), g('LIBRARY'))
print(a if a.endswith('.a') and os.path.isfile(a) else '')
print(' '.join((g('MODLIBS') + ' ' + g('LIBS') + ' ' + g('SYSLIBS')).split()))"
        OUTPUT_VARIABLE out RESULT_VARIABLE rc OUTPUT_STRIP_TRAILING_WHITESPACE)
    string(REPLACE "\n" ";" out "${out}")
    list(LENGTH out n)
    if(NOT rc EQUAL 0 OR n LESS 1)
        message(STATUS "CPython for ${target}: the shared library (sysconfig failed)")
        return()
    endif()
    list(GET out 0 archive)
    set(deps "")
    if(n GREATER 1)
        list(GET out 1 deps)
        separate_arguments(deps UNIX_COMMAND "${deps}")
    endif()
    if(archive STREQUAL "")
        message(STATUS "CPython for ${target}: the shared library (no static library)")
        return()
    endif()
    # A test: an embedding program linked this way starts CPython and imports a module
    # written in C (math), which needs the exported symbols.
    set(dir "${CMAKE_BINARY_DIR}/static-libpython-check")
    file(WRITE "${dir}/check.c"
"#include <Python.h>
int main(void)
{
    Py_Initialize();
    int rc = PyRun_SimpleString(\"import math, sys; assert math.sqrt(4) == 2\");
    return Py_FinalizeEx() < 0 ? 1 : rc;
}
")
    try_run(run_rc compile_ok "${dir}/build" "${dir}/check.c"
        CMAKE_FLAGS "-DINCLUDE_DIRECTORIES=${Python3_INCLUDE_DIRS}"
        LINK_OPTIONS -no-pie -Wl,--export-dynamic -Wl,--whole-archive ${archive}
                     -Wl,--no-whole-archive
        LINK_LIBRARIES ${deps}
        COMPILE_OUTPUT_VARIABLE compile_out RUN_OUTPUT_VARIABLE run_out)
    if(NOT compile_ok OR NOT run_rc EQUAL 0)
        message(STATUS "CPython for ${target}: the shared library (${archive} did not link and run)")
        return()
    endif()
    message(STATUS "CPython for ${target}: the static library ${archive}")
    target_link_options(${target} PRIVATE -no-pie LINKER:--as-needed LINKER:--whole-archive
                        ${archive} LINKER:--no-whole-archive)
    target_link_libraries(${target} PRIVATE ${deps})
endfunction()
