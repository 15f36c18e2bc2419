#!/usr/bin/env bash
# dev.sh: the two commands of the README's quick start, and the steps under them.
#
#   ./dev.sh serve   install what is missing, build, serve examples/hello.py on :8000
#   ./dev.sh test    install what is missing, then the whole test suite: a -Werror
#                    build and an ASan + UBSan build, each with ctest and pytest (the
#                    two suites side by side); bench --quick;
#                    then, for every other CPython 3.8+ found (see other_pythons), a
#                    -Werror build into build-pyX.Y with ctest and the core of pytest
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

PACKAGES=(build-essential cmake pkg-config libuv1-dev node-llhttp python3-dev libssl-dev openssl libnghttp2-dev
          python3-pytest python3-requests python3-gevent python3-django python3-pastedeploy python3-whitenoise gunicorn
          python3-venv python3-pip python3-setuptools python3-wheel
          uwsgi uwsgi-plugin-python3 python3-waitress
          python3-trustme python3-httpx
          wrk nginx curl clang-format)

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

# The part of the integration suite each other CPython runs: the HTTP core, bodies and
# errors, configuration and application loading, hooks, signals, and the sync and
# gthread worker classes (about a minute a CPython).
CORE_TESTS=(test_basic.py test_bodies.py test_http_errors.py test_config.py test_hooks.py
            test_signals.py test_recycling.py test_process.py test_user_group.py test_reload.py
            test_systemd.py test_workers.py test_signal_race.py)

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

# test_others: for every CPython other_pythons finds, a -Werror build into build-pyX.Y,
# then its ctest and CORE_TESTS (pytest itself runs on the primary CPython). The builds
# go one after the other; the tests then run in three lanes side by side (they mostly
# wait on sockets and child processes, so three lanes on two cores take little longer
# than one, but compilers beside them would starve their timing). Each lane writes
# build-pyX.Y/dev-test.log, shown if it fails.
test_others() {
    local -a others lanes=()
    mapfile -t others < <(other_pythons | sort -V)
    if [ ${#others[@]} -eq 0 ]; then
        echo "== no other CPython 3.8+ with a shared libpython found" >&2
        return 0
    fi
    local entry version py lane status=0
    for entry in "${others[@]}"; do
        read -r version py <<<"$entry"
        echo "== build with -Werror against CPython $version ($py)" >&2
        cmake -S "$ROOT" -B "$ROOT/build-py$version" -DPython3_EXECUTABLE="$py" \
            -DGC_WERROR=ON >/dev/null
        cmake --build "$ROOT/build-py$version" -j"$(nproc)"
    done
    wait_bench || return
    phase "bench --quick and the other CPythons' builds"
    for lane in 0 1 2; do
        (
            for ((i = lane; i < ${#others[@]}; i += 3)); do
                read -r version _ <<<"${others[i]}"
                log=$ROOT/build-py$version/dev-test.log
                echo "== CPython $version: ctest and the core tests" >&2
                if run_suite "build-py$version" "${CORE_TESTS[@]/#/$ROOT/tests/integration/}" \
                    -k "not gevent" >"$log" 2>&1; then
                    echo "== CPython $version passed: $(tail -n 1 "$log")" >&2
                else
                    echo "== CPython $version FAILED; the end of $log:" >&2
                    tail -n 60 "$log" >&2
                    exit 1
                fi
            done
        ) &
        lanes+=($!)
    done
    for lane in "${lanes[@]}"; do
        wait "$lane" || status=1
    done
    return $status
}

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
    # The two suites run side by side: they mostly wait on sockets and child processes,
    # so two lanes on two cores take little longer than one. CPython frees little at
    # exit by design, so ASan's leak reports would be noise here; the long-run reference
    # check lives in bench/.
    lanes "-Werror build" "$ROOT/build-ci/dev-test.log" run_suite build-ci \
        -- "ASan + UBSan build" "$ROOT/build-asan/dev-test.log" \
        env ASAN_OPTIONS=detect_leaks=0:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
        GC_SANITIZED=1 "$ROOT/dev.sh" suite build-asan
    phase "the two suites"
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
    echo "usage: ./dev.sh serve|test|build|check [pytest args]" >&2
    exit 2
    ;;
esac
