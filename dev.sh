#!/usr/bin/env bash
# dev.sh: the two commands of the README's quick start, and the steps under them.
#
#   ./dev.sh serve   install what is missing, build, serve examples/hello.py on :8000
#   ./dev.sh test    install what is missing, then the whole test suite: a -Werror
#                    build with ctest and pytest, then the same under ASan + UBSan
#   ./dev.sh build   just the (release) build into build/
#
# PYTHON=/path/to/python3 chooses the CPython to embed and to run pytest with
# (default: /usr/bin/python3, which has Debian's pytest, requests, gevent, django).
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$PWD
PYTHON=${PYTHON:-/usr/bin/python3}
export PYTHON

PACKAGES=(build-essential cmake pkg-config libuv1-dev node-llhttp python3-dev
          python3-pytest python3-requests python3-gevent python3-django python3-pastedeploy python3-whitenoise gunicorn
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

# run_suite DIR: C unit tests, then the integration tests against DIR/gunicorn-c.
run_suite() {
    local dir=$1
    (cd "$ROOT/$dir" && ctest --output-on-failure)
    GUNICORN_C_BIN="$ROOT/$dir/gunicorn-c" "$PYTHON" -m pytest -q -p no:cacheprovider \
        "$ROOT/tests/integration"
}

case "${1:-}" in
serve)
    install_deps
    build build -DCMAKE_BUILD_TYPE=Release
    echo "dev.sh: serving examples/hello.py at http://127.0.0.1:8000 (Ctrl-C stops)" >&2
    exec "$ROOT/build/gunicorn-c" --chdir "$ROOT/examples" --bind 127.0.0.1:8000 hello:app
    ;;
test)
    install_deps
    echo "== clang-format (the committed .clang-format)" >&2
    clang-format --dry-run --Werror src/*/*.c src/*/*.h src/main.c include/*.h \
        tests/unit/*.c tests/unit/*.h tests/fuzz/*.c
    echo "== build with -Werror" >&2
    build build-ci -DGC_WERROR=ON
    run_suite build-ci
    echo "== build with AddressSanitizer + UndefinedBehaviorSanitizer" >&2
    build build-asan -DGC_WERROR=ON -DGC_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
    # CPython frees little at exit by design, so leak reports would be noise here; the
    # long-run reference check lives in bench/.
    ASAN_OPTIONS=detect_leaks=0:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
        GC_SANITIZED=1 run_suite build-asan
    echo "== all tests passed" >&2
    ;;
build)
    install_deps
    build build -DCMAKE_BUILD_TYPE=Release
    ;;
*)
    echo "usage: ./dev.sh serve|test|build" >&2
    exit 2
    ;;
esac
