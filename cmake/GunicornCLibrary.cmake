# GunicornCLibrary: the installed library for embedding (docs/embedding.md).
#
# Included by CMakeLists.txt once the layers' objects (gc_<layer>, compiled
# position-independent with hidden visibility) exist. From those same objects it builds:
#   libgunicorn-c.so.MAJOR (target gunicorn_c_shared): exports only gunicorn_c_*
#       (cmake/gunicorn-c.map); libpython, libuv and OpenSSL are its DT_NEEDED, llhttp is inside.
#   libgunicorn-c.a (target gunicorn_c_static): our objects and, when llhttp is compiled
#       from its sources, llhttp's, so that a static link needs nothing of this project
#       but the archive; it too shows only gunicorn_c_* (see below).
# and two pkg-config files, both relocatable (paths relative to ${pcfiledir}):
#   gunicorn-c.pc: `-lgunicorn-c`, which the linker resolves to the .so; --static adds
#       what the archive needs (for links that pick archives, e.g. -Wl,-Bstatic).
#   gunicorn-c-static.pc: names the archive itself, so that `pkg-config --static --libs
#       gunicorn-c-static` links it statically although the .so sits beside it (libuv
#       does the same with libuv-static.pc).

add_library(gunicorn_c_shared SHARED)
gc_link_layers(gunicorn_c_shared arbiter)
set_target_properties(gunicorn_c_shared PROPERTIES
    OUTPUT_NAME gunicorn-c
    VERSION ${PROJECT_VERSION}
    SOVERSION ${PROJECT_VERSION_MAJOR}
    LINK_DEPENDS "${CMAKE_CURRENT_LIST_DIR}/gunicorn-c.map")
target_link_options(gunicorn_c_shared PRIVATE
    "LINKER:--version-script=${CMAKE_CURRENT_LIST_DIR}/gunicorn-c.map")

# The archive holds one object, prelinked (ld -r) from all of ours and llhttp's, in which
# every symbol but gunicorn_c_* is made local: a program linking it statically can have
# its own llhttp_init or gc__buf_init without a clash, as with the shared library.
set(GC_STATIC_OBJECTS ${GC_LAYER_OBJECTS})
if(TARGET gc_llhttp)
    list(APPEND GC_STATIC_OBJECTS $<TARGET_OBJECTS:gc_llhttp>)
endif()
if(CMAKE_LINKER AND CMAKE_OBJCOPY)
    set(prelinked "${CMAKE_CURRENT_BINARY_DIR}/gunicorn-c-prelinked.o")
    add_custom_command(
        OUTPUT "${prelinked}"
        COMMAND "${CMAKE_LINKER}" -r -o "${prelinked}" ${GC_STATIC_OBJECTS}
        COMMAND "${CMAKE_OBJCOPY}" --wildcard --keep-global-symbol=gunicorn_c_* "${prelinked}"
        DEPENDS ${GC_STATIC_OBJECTS}
        COMMAND_EXPAND_LISTS
        COMMENT "Prelinking libgunicorn-c.a's objects")
    add_library(gunicorn_c_static STATIC "${prelinked}")
    set_target_properties(gunicorn_c_static PROPERTIES LINKER_LANGUAGE C)
    # Object paths in DEPENDS order nothing between targets: the objects' own must build
    # first.
    foreach(layer ${GC_LAYERS})
        add_dependencies(gunicorn_c_static gc_${layer})
    endforeach()
    if(TARGET gc_llhttp)
        add_dependencies(gunicorn_c_static gc_llhttp)
    endif()
else()
    add_library(gunicorn_c_static STATIC ${GC_STATIC_OBJECTS})
endif()
set_target_properties(gunicorn_c_static PROPERTIES OUTPUT_NAME gunicorn-c)

# --- What a static link needs besides the archive, as linker flags. -----------------

# Appends to `out` the flags that link the library file `lib` (a path, or already a
# flag): -L<dir> -l<name>, and a run path when <dir> is not one the linker searches
# anyway (a CPython under /opt, say).
function(gc_pc_lib_flags out lib)
    set(flags "${${out}}")
    if(lib MATCHES "^(optimized|debug|general)$")
        return()
    elseif(IS_ABSOLUTE "${lib}")
        get_filename_component(dir "${lib}" DIRECTORY)
        get_filename_component(file "${lib}" NAME)
        string(REGEX REPLACE "^lib(.*)\\.(so|a)(\\..*)?$" "\\1" name "${file}")
        list(FIND CMAKE_C_IMPLICIT_LINK_DIRECTORIES "${dir}" implicit)
        if(implicit EQUAL -1)
            list(APPEND flags "-L${dir}" "-Wl,-rpath,${dir}")
        endif()
        list(APPEND flags "-l${name}")
    elseif(lib MATCHES "^-")
        list(APPEND flags "${lib}")
    else()
        list(APPEND flags "-l${lib}")
    endif()
    set(${out} "${flags}" PARENT_SCOPE)
endfunction()

set(GC_PC_PRIVATE "")
foreach(lib ${Python3_LIBRARIES})
    gc_pc_lib_flags(GC_PC_PRIVATE "${lib}")
    if(lib MATCHES "\\.a$")
        # A static libpython brings its own system libraries (sysconfig's LIBS, SYSLIBS).
        execute_process(
            COMMAND "${Python3_EXECUTABLE}" -c
                "import sysconfig as s; print(s.get_config_var('LIBS') or '', s.get_config_var('SYSLIBS') or '')"
            OUTPUT_VARIABLE py_syslibs OUTPUT_STRIP_TRAILING_WHITESPACE)
        separate_arguments(py_syslibs UNIX_COMMAND "${py_syslibs}")
        list(APPEND GC_PC_PRIVATE ${py_syslibs})
    endif()
endforeach()
if(LLHTTP_LIBRARY AND NOT TARGET gc_llhttp)
    gc_pc_lib_flags(GC_PC_PRIVATE "${LLHTTP_LIBRARY}")
endif()
# wslay has no .pc file on Debian, so it cannot be in Requires.private: its flag goes
# here once a layer in the libraries uses src/ws/.
if("ws" IN_LIST GC_LAYER_CLOSURE_arbiter)
    list(APPEND GC_PC_PRIVATE -lwslay)
endif()
list(APPEND GC_PC_PRIVATE -lpthread)
list(REMOVE_DUPLICATES GC_PC_PRIVATE)
list(JOIN GC_PC_PRIVATE " " GC_PC_LIBS_PRIVATE)

# --- Relocatable paths, then the two files. ------------------------------------------

set(GC_PC_DIR "${CMAKE_INSTALL_LIBDIR}/pkgconfig")
if(IS_ABSOLUTE "${GC_PC_DIR}")
    set(GC_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
else()
    file(RELATIVE_PATH up "/p/${GC_PC_DIR}" "/p")
    string(REGEX REPLACE "/$" "" up "${up}")
    set(GC_PC_PREFIX "\${pcfiledir}/${up}")
endif()
foreach(kind LIBDIR INCLUDEDIR)
    if(IS_ABSOLUTE "${CMAKE_INSTALL_${kind}}")
        set(GC_PC_${kind} "${CMAKE_INSTALL_${kind}}")
    else()
        set(GC_PC_${kind} "\${prefix}/${CMAKE_INSTALL_${kind}}")
    endif()
endforeach()

set(GC_PC_NAME gunicorn-c)
set(GC_PC_WHAT "shared library")
set(GC_PC_LIBS "-L\${libdir} -lgunicorn-c")
configure_file("${CMAKE_CURRENT_LIST_DIR}/gunicorn-c.pc.in"
               "${CMAKE_CURRENT_BINARY_DIR}/gunicorn-c.pc" @ONLY)
set(GC_PC_NAME gunicorn-c-static)
set(GC_PC_WHAT "static library, use with --static")
set(GC_PC_LIBS "\${libdir}/libgunicorn-c.a")
configure_file("${CMAKE_CURRENT_LIST_DIR}/gunicorn-c.pc.in"
               "${CMAKE_CURRENT_BINARY_DIR}/gunicorn-c-static.pc" @ONLY)

install(TARGETS gunicorn_c_shared gunicorn_c_static
    LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
    ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(FILES "${PROJECT_SOURCE_DIR}/include/gunicorn_c.h"
    DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(FILES "${CMAKE_CURRENT_BINARY_DIR}/gunicorn-c.pc"
              "${CMAKE_CURRENT_BINARY_DIR}/gunicorn-c-static.pc"
    DESTINATION "${GC_PC_DIR}")
