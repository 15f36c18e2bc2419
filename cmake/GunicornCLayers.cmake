# GunicornCLayers.cmake: one CMake OBJECT library per folder of src/, so that the layering
# in docs/architecture.md is checked by every build instead of by review.
#
#   gc_layer(NAME http DEPS common LIBS LLHTTP::llhttp)
#
# makes gc_http from src/http/*.c. Each layer compiles against a staging directory,
# build/layers/NAME/, that holds a symbolic link for the layer itself and for each
# layer below it (DEPS and theirs), and nothing else: an #include "workers/worker.h" in
# src/http finds no such file. A layer gets CPython's headers only when it says PYTHON,
# so <Python.h> under src/http, src/log or src/proc is a build error too. Since a layer
# can only name layers declared before it, no include cycle between folders can build.
#
#   gc_link_layers(target LAYER [PUBLIC])
#
# links the objects of LAYER and of every layer below it into target (a unit test of a
# Python-free layer then links no libpython).

add_library(gc_build_flags INTERFACE)
target_compile_definitions(gc_build_flags INTERFACE
    GC_VERSION="${PROJECT_VERSION}" GC_PYTHON_EXECUTABLE="${Python3_EXECUTABLE}" _GNU_SOURCE)
set(GC_LAYERS "")

function(gc_layer)
    cmake_parse_arguments(L "PYTHON" "NAME" "DEPS;LIBS;EXTRA_SOURCES;INCLUDES" ${ARGN})
    set(closure ${L_NAME})
    set(libs ${L_LIBS})
    foreach(dep ${L_DEPS})
        if(NOT dep IN_LIST GC_LAYERS)
            message(FATAL_ERROR "layer ${L_NAME}: '${dep}' is not a layer declared before it")
        endif()
        list(APPEND closure ${GC_LAYER_CLOSURE_${dep}})
        list(APPEND libs ${GC_LAYER_LIBS_${dep}})
        if(GC_LAYER_PYTHON_${dep} AND NOT L_PYTHON)
            message(FATAL_ERROR "layer ${L_NAME} uses the Python layer ${dep}: mark it PYTHON")
        endif()
    endforeach()
    list(REMOVE_DUPLICATES libs)
    list(REMOVE_DUPLICATES closure)
    set(stage "${CMAKE_CURRENT_BINARY_DIR}/layers/${L_NAME}")
    file(REMOVE_RECURSE "${stage}")
    file(MAKE_DIRECTORY "${stage}")
    foreach(layer ${closure})
        file(CREATE_LINK "${PROJECT_SOURCE_DIR}/src/${layer}" "${stage}/${layer}" SYMBOLIC)
    endforeach()

    file(GLOB sources CONFIGURE_DEPENDS "${PROJECT_SOURCE_DIR}/src/${L_NAME}/*.c")
    set(target gc_${L_NAME})
    add_library(${target} OBJECT ${sources} ${L_EXTRA_SOURCES})
    target_include_directories(${target} PUBLIC "${stage}" PRIVATE ${L_INCLUDES})
    target_compile_options(${target} PRIVATE ${GC_WARNINGS})
    target_compile_definitions(${target} PRIVATE GUNICORN_C_BUILDING)
    set_target_properties(${target} PROPERTIES C_VISIBILITY_PRESET hidden)
    target_link_libraries(${target} PUBLIC gc_build_flags ${libs})
    if(L_PYTHON)
        target_link_libraries(${target} PUBLIC Python3::Python)
    endif()
    set(GC_LAYER_CLOSURE_${L_NAME} ${closure} PARENT_SCOPE)
    set(GC_LAYER_LIBS_${L_NAME} ${libs} PARENT_SCOPE)
    set(GC_LAYER_PYTHON_${L_NAME} ${L_PYTHON} PARENT_SCOPE)
    set(GC_LAYERS ${GC_LAYERS} ${L_NAME} PARENT_SCOPE)
endfunction()

function(gc_link_layers target layer)
    set(scope PRIVATE)
    if(ARGN)
        set(scope ${ARGN}) # PUBLIC: the target's users get the headers and libraries too
    endif()
    foreach(l ${GC_LAYER_CLOSURE_${layer}})
        target_link_libraries(${target} ${scope} gc_${l})
    endforeach()
endfunction()
