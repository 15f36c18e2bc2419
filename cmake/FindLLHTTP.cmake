# FindLLHTTP: locate llhttp, the HTTP/1.x parser.
#
# Prefers a system libllhttp (header llhttp.h + library). Debian 12 ships only the C
# sources of llhttp inside the node-llhttp package (/usr/share/llhttp/*.c and
# /usr/share/include/llhttp/llhttp.h); when no library is installed we compile those
# sources into our own static target. They are generated code that warns under
# -Wextra, so they are built with warnings off and never see our -Werror.
#
# Result: an imported or built target LLHTTP::llhttp, and LLHTTP_FOUND.

find_path(LLHTTP_INCLUDE_DIR llhttp.h PATHS /usr/include /usr/local/include)
find_library(LLHTTP_LIBRARY NAMES llhttp)

if(LLHTTP_INCLUDE_DIR AND LLHTTP_LIBRARY)
    add_library(LLHTTP::llhttp UNKNOWN IMPORTED)
    set_target_properties(LLHTTP::llhttp PROPERTIES
        IMPORTED_LOCATION "${LLHTTP_LIBRARY}"
        INTERFACE_INCLUDE_DIRECTORIES "${LLHTTP_INCLUDE_DIR}")
    set(LLHTTP_SOURCE "system library ${LLHTTP_LIBRARY}")
else()
    set(LLHTTP_SOURCE_DIR "/usr/share/llhttp" CACHE PATH "Directory with llhttp's C sources")
    find_path(LLHTTP_SRC_INCLUDE_DIR llhttp.h
        PATHS /usr/share/include/llhttp "${LLHTTP_SOURCE_DIR}/include" NO_DEFAULT_PATH)
    if(EXISTS "${LLHTTP_SOURCE_DIR}/llhttp.c" AND LLHTTP_SRC_INCLUDE_DIR)
        add_library(gc_llhttp STATIC
            "${LLHTTP_SOURCE_DIR}/llhttp.c"
            "${LLHTTP_SOURCE_DIR}/api.c"
            "${LLHTTP_SOURCE_DIR}/http.c")
        target_include_directories(gc_llhttp SYSTEM PUBLIC "${LLHTTP_SRC_INCLUDE_DIR}")
        target_compile_options(gc_llhttp PRIVATE -w)
        set_target_properties(gc_llhttp PROPERTIES POSITION_INDEPENDENT_CODE ON)
        add_library(LLHTTP::llhttp ALIAS gc_llhttp)
        set(LLHTTP_INCLUDE_DIR "${LLHTTP_SRC_INCLUDE_DIR}")
        set(LLHTTP_SOURCE "sources in ${LLHTTP_SOURCE_DIR}")
    endif()
endif()

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(LLHTTP REQUIRED_VARS LLHTTP_INCLUDE_DIR LLHTTP_SOURCE)
mark_as_advanced(LLHTTP_INCLUDE_DIR LLHTTP_LIBRARY LLHTTP_SRC_INCLUDE_DIR)
