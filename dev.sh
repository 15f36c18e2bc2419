#!/usr/bin/env bash
# dev.sh: the two commands of the README's quick start, and the steps under them.
#
#   ./dev.sh serve   install what is missing, build, serve examples/hello.py on :8000
#   ./dev.sh test    install what is missing, then the whole test suite: a -Werror
#                    build and an ASan + UBSan build, each with ctest and pytest (the
#                    two suites side by side); bench --quick;
#                    then, for every other CPython 3.8+ found (see other_pythons), a
#                    -Werror build into build-pyX.Y (beside the two suites, niced) with
#                    ctest and the core of pytest
#   ./dev.sh others  just that last part: the other CPythons' builds and core tests
#   ./dev.sh build   just the (release) build into build/
#   ./dev.sh check [PYTEST ARGS]
#                    the inner loop: no package step; a -Werror build into build-ci/,
#                    ctest, then pytest on what the arguments name (default: the whole
#                    integration suite), e.g. ./dev.sh check tests/integration/test_basic.py -k pipelin
#
# PYTHON=/path/to/python3 chooses the primary CPython, the one embedded by the builds
# above and the one that runs pytest for every build (default: /usr/bin/python3, which
# has Debian's pytest, requests, gevent, django). GC_OTHER_PYTHONS=0 skips the others.
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$PWD
PYTHON=${PYTHON:-/usr/bin/python3}
export PYTHON

PACKAGES=(build-essential cmake pkg-config libuv1-dev node-llhttp python3-dev libssl-dev openssl libnghttp2-dev libwslay-dev
          python3-pytest python3-requests python3-gevent python3-django python3-pastedeploy python3-whitenoise gunicorn
          python3-venv python3-pip python3-setuptools python3-wheel
          uwsgi uwsgi-plugin-python3 python3-waitress
          python3-trustme python3-httpx python3-h2 nghttp2-client python3-wsproto python3-websockets
          python3-uvicorn python3-uvloop python3-httptools python3-hypercorn daphne python3-starlette
          python3-fastapi python3-asgiref python3-prometheus-client
          wrk nginx haproxy curl clang-format systemd)

install_deps() {
    "$ROOT/tools/ensure-packages.sh" "${PACKAGES[@]}"
}

# build DIR [cmake args...]
build() {
    local dir=$1
    shift
    cmake -S "$ROOT" -B "$ROOT/$dir" -DPython3_EXECUTABLE="$PYTHON" "$@" >/dev/null
    cmake --build "$ROOT/$dir" -j"$(nproc)"
}

# run_suite DIR [pytest args...]: C unit tests, then the integration tests (all of them
# unless arguments say otherwise) against DIR/gunicorn-c.
run_suite() {
    local dir=$1
    shift
    [ $# -gt 0 ] || set -- "$ROOT/tests/integration"
    (cd "$ROOT/$dir" && ctest --output-on-failure) || return
    GUNICORN_C_BIN="$ROOT/$dir/gunicorn-c" "$PYTHON" -m pytest -q -p no:cacheprovider "$@"
}

# other_pythons: one "X.Y /path/to/python3.X" line per CPython that can be embedded
# (3.8 or later, with Python.h and a shared libpython) other than the primary's X.Y; the
# first found of each X.Y wins. Searched in this order: python3.X in every PATH
# directory (pyenv shims resolve to the interpreter they run), /usr/bin/python3.X,
# /usr/local/bin/python3.X, ~/.pyenv/versions/*/bin/python3.
other_pythons() {
    local seen py found
    seen=" $("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])') "
    local -a candidates=() dirs=()
    IFS=: read -ra dirs <<<"$PATH"
    shopt -s nullglob
    for d in "${dirs[@]}" /usr/bin /usr/local/bin; do
        for py in "$d"/python3.[0-9] "$d"/python3.[0-9][0-9]; do candidates+=("$py"); done
    done
    candidates+=("$HOME"/.pyenv/versions/*/bin/python3)
    shopt -u nullglob
    for py in "${candidates[@]}"; do
        [ -x "$py" ] || continue
        # Prints "X.Y sys.executable" for an embeddable CPython, nothing otherwise.
        found=$("$py" -c '
import os, sys, sysconfig
v, cfg = sys.version_info, sysconfig.get_config_var
lib = os.path.join(cfg("LIBDIR") or "", cfg("LDLIBRARY") or "")
inc = os.path.join(sysconfig.get_paths()["include"], "Python.h")
if (sys.implementation.name == "cpython" and v >= (3, 8) and lib.endswith(".so")
        and os.path.exists(lib) and os.path.exists(inc)):
    print("%d.%d %s" % (v[0], v[1], os.path.realpath(sys.executable)))
' 2>/dev/null) || continue
        [ -n "$found" ] || continue
        case $seen in *" ${found%% *} "*) continue ;; esac
        seen+="${found%% *} "
        echo "$found"
    done
}

# The part of the integration suite the other CPythons run: what goes through Python and
# so may differ between its versions. The oldest and the newest of them run CORE_TESTS:
# the request path and WSGI objects, bodies, configuration files and application
# loading, hooks, Python-level signal handlers and their races with fork, --preload,
# --reload and --spew (sys.settrace), and the sync and gthread classes. The versions
# between run SMOKE_TESTS, the part of it that touches the most of the C API: serving,
# bodies, the config file, hooks, --reload and --spew. What tests C alone (the parser's
# error pages, the arbiter's recycling, systemd's notify socket, users and groups) runs
# on the primary CPython only.
CORE_TESTS=(test_basic.py test_bodies.py test_config.py test_hooks.py test_signals.py
            test_signal_race.py test_process.py test_reload.py test_debug.py test_workers.py)
SMOKE_TESTS=(test_basic.py test_bodies.py test_config.py test_hooks.py test_reload.py
             test_debug.py)

# phase NAME: how long the step that just ended took (since the previous phase).
phase_at=$SECONDS
phase() {
    echo "== $1: $((SECONDS - phase_at)) s" >&2
    phase_at=$SECONDS
}

# lanes NAME LOG CMD... -- NAME LOG CMD...: runs the two commands side by side, each
# writing LOG; prints the end of a failed lane's log. Fails when either failed.
lanes() {
    local -a first=() second=()
    while [ $# -gt 0 ] && [ "$1" != -- ]; do first+=("$1"); shift; done
    shift
    second=("$@")
    local -a pids=() names=() logs=()
    local lane status=0
    for lane in first second; do
        local -n spec=$lane
        names+=("${spec[0]}")
        logs+=("${spec[1]}")
        echo "== ${spec[0]}: ctest and pytest (log: ${spec[1]})" >&2
        "${spec[@]:2}" >"${spec[1]}" 2>&1 &
        pids+=($!)
    done
    for i in 0 1; do
        if wait "${pids[i]}"; then
            echo "== ${names[i]} passed: $(tail -n 1 "${logs[i]}")" >&2
        else
            echo "== ${names[i]} FAILED; the end of ${logs[i]}:" >&2
            tail -n 80 "${logs[i]}" >&2
            status=1
        fi
    done
    return $status
}

# wait_bench: waits for the bench --quick started in the background (if any) and shows
# the end of its log when it failed.
wait_bench() {
    [ -n "${BENCH_PID:-}" ] || return 0
    local pid=$BENCH_PID
    BENCH_PID=
    if ! wait "$pid"; then
        echo "== bench --quick FAILED; the end of $ROOT/build-ci/bench-quick.log:" >&2
        tail -n 40 "$ROOT/build-ci/bench-quick.log" >&2
        return 1
    fi
    echo "== bench --quick passed: every server answered" >&2
}

# build_others: for every CPython other_pythons finds, a -Werror build into build-pyX.Y,
# one after the other, at the lowest CPU priority: `test` starts them in the background
# as the two suites begin, which mostly wait on sockets and child processes, so the
# compilers take the idle CPU and have done by the time their tests run (at nice 19 a
# compiler gets about 1/70 of a core a test process wants: the suites' timing is kept).
build_others() {
    local entry version py
    for entry in "${OTHERS[@]}"; do
        read -r version py <<<"$entry"
        echo "== build with -Werror against CPython $version ($py)" >&2
        nice -n 19 cmake -S "$ROOT" -B "$ROOT/build-py$version" -DPython3_EXECUTABLE="$py" \
            -DGC_WERROR=ON >/dev/null || return
        nice -n 19 cmake --build "$ROOT/build-py$version" -j"$(nproc)" || return
    done
}

# start_build_others: build_others in the background, its log in build-others.log.
start_build_others() {
    mapfile -t OTHERS < <(other_pythons | sort -V)
    [ ${#OTHERS[@]} -gt 0 ] || return 0
    mkdir -p "$ROOT/build-ci"
    build_others >"$ROOT/build-ci/build-others.log" 2>&1 &
    OTHERS_BUILD_PID=$!
}

# test_others: waits for the builds of start_build_others, then runs each other
# CPython's ctest and CORE_TESTS or SMOKE_TESTS (pytest itself runs on the primary
# CPython), all of them side by side: the tests mostly wait, and one lane per CPython
# takes about as long as the slowest of them. Each lane writes build-pyX.Y/dev-test.log,
# shown if it fails.
test_others() {
    if [ ${#OTHERS[@]} -eq 0 ]; then
        echo "== no other CPython 3.8+ with a shared libpython found" >&2
        return 0
    fi
    if ! wait "$OTHERS_BUILD_PID"; then
        echo "== the other CPythons' builds FAILED; the end of $ROOT/build-ci/build-others.log:" >&2
        tail -n 60 "$ROOT/build-ci/build-others.log" >&2
        return 1
    fi
    wait_bench || return
    phase "bench --quick and the other CPythons' builds"
    local entry version lane i status=0
    local -a lanes=() tests=()
    for i in "${!OTHERS[@]}"; do
        read -r version _ <<<"${OTHERS[i]}"
        if [ "$i" -eq 0 ] || [ "$i" -eq $((${#OTHERS[@]} - 1)) ]; then
            tests=("${CORE_TESTS[@]}") # OTHERS is sorted by version
        else
            tests=("${SMOKE_TESTS[@]}")
        fi
        (
            log=$ROOT/build-py$version/dev-test.log
            echo "== CPython $version: ctest and ${#tests[@]} test files" >&2
            if run_suite "build-py$version" "${tests[@]/#/$ROOT/tests/integration/}" \
                -k "not gevent" >"$log" 2>&1; then
                echo "== CPython $version passed: $(tail -n 1 "$log")" >&2
            else
                echo "== CPython $version FAILED; the end of $log:" >&2
                tail -n 60 "$log" >&2
                exit 1
            fi
        ) &
        lanes+=($!)
    done
    for lane in "${lanes[@]}"; do
        wait "$lane" || status=1
    done
    return $status
}

OTHERS=()
OTHERS_BUILD_PID=

case "${1:-}" in
serve)
    install_deps
    build build -DCMAKE_BUILD_TYPE=Release
    echo "dev.sh: serving examples/hello.py at http://127.0.0.1:8000 (Ctrl-C stops)" >&2
    exec "$ROOT/build/gunicorn-c" --chdir "$ROOT/examples" --bind 127.0.0.1:8000 hello:app
    ;;
test)
    started=$SECONDS
    install_deps
    echo "== clang-format (the committed .clang-format)" >&2
    clang-format --dry-run --Werror src/*/*.c src/*/*.h src/main.c include/*.h \
        tests/unit/*.c tests/unit/*.h tests/fuzz/*.c examples/embed/*.c
    echo "== build with -Werror" >&2
    build build-ci -DGC_WERROR=ON
    echo "== build with AddressSanitizer + UndefinedBehaviorSanitizer" >&2
    build build-asan -DGC_WERROR=ON -DGC_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
    phase "builds"
    [ "${GC_OTHER_PYTHONS:-1}" = 0 ] || start_build_others
    # The two suites run side by side: they mostly wait on sockets and child processes,
    # so two lanes on two cores take little longer than one. CPython frees little at
    # exit by design, so ASan's leak reports would be noise here; the long-run reference
    # check lives in bench/.
    # Every package the suite needs is installed above: a test that would skip for want
    # of one fails instead (tests/integration/conftest.py, GC_REQUIRE_ALL).
    export GC_REQUIRE_ALL=1
    lanes "-Werror build" "$ROOT/build-ci/dev-test.log" run_suite build-ci \
        -- "ASan + UBSan build" "$ROOT/build-asan/dev-test.log" \
        env ASAN_OPTIONS=detect_leaks=0:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
        GC_SANITIZED=1 "$ROOT/dev.sh" suite build-asan
    phase "the two suites"
    # The other CPythons are pyenv builds without the server-side packages (gevent,
    # Django): their skips for those are expected.
    export GC_REQUIRE_ALL=0
    # bench --quick measures nothing (every server must answer), so it may run beside
    # the other CPythons' builds; their tests wait for it.
    echo "== bench/bench.py --quick (every server answers; speed is not asserted)" >&2
    "$ROOT/bench/bench.py" --quick --binary "$ROOT/build-ci/gunicorn-c" \
        >"$ROOT/build-ci/bench-quick.log" 2>&1 &
    BENCH_PID=$!
    if [ "${GC_OTHER_PYTHONS:-1}" != 0 ]; then
        test_others
        phase "the other CPythons' tests"
    fi
    wait_bench
    echo "== all tests passed in $((SECONDS - started)) s" >&2
    ;;
others)
    # The other CPythons alone (their builds, then the last phase of `test`).
    start_build_others
    test_others
    phase "the other CPythons' tests"
    ;;
suite)
    # Internal: run_suite for a lane started by `lanes` (a separate process, so that
    # its environment is the lane's own).
    shift
    run_suite "$@"
    ;;
build)
    install_deps
    build build -DCMAKE_BUILD_TYPE=Release
    ;;
check)
    shift
    build build-ci -DGC_WERROR=ON
    run_suite build-ci "$@"
    ;;
*)
    echo "usage: ./dev.sh serve|test|build|check|others [pytest args]" >&2
    exit 2
    ;;
esac
