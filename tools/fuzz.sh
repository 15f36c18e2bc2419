#!/usr/bin/env bash
# fuzz.sh: builds the request parser's libFuzzer target and runs it for a while.
#
#   tools/fuzz.sh SECONDS [LIBFUZZER_ARGS...]   build, then fuzz for SECONDS
#   tools/fuzz.sh --install                     install clang and its fuzzer runtime
#                                               (Debian: clang, libclang-rt-14-dev)
#
# The target (tests/fuzz/fuzz_http_parser.c) is built with clang, libFuzzer, ASan and
# UBSan into build-fuzz/. It starts from the committed corpus (tests/fuzz/corpus/) and
# the inputs found by earlier runs (build-fuzz/corpus/, where new ones are kept), with
# the HTTP dictionary tests/fuzz/http.dict. A crash, a sanitizer report or a broken
# parser rule stops the run and leaves the input in build-fuzz/crashes/; once the bug
# is fixed, copy that file into tests/fuzz/corpus/ so the test suite replays it
# (ctest's fuzz_corpus).
#
# JOBS=N runs N fuzzing processes in parallel (default 1). TARGET=uwsgi fuzzes the uwsgi
# packet parser instead (tests/fuzz/fuzz_uwsgi.c, corpus tests/fuzz/corpus-uwsgi/,
# found inputs in build-fuzz/corpus-uwsgi/, no dictionary); TARGET=ws the WebSocket
# session (tests/fuzz/fuzz_ws.c, corpus tests/fuzz/corpus-ws/, build-fuzz/corpus-ws/).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=$ROOT/build-fuzz
PYTHON=${PYTHON:-/usr/bin/python3}

install_clang() {
    "$ROOT/tools/ensure-packages.sh" clang libclang-rt-14-dev
}

case "${1:-}" in
--install)
    install_clang
    exit 0
    ;;
'' | *[!0-9]*)
    echo "usage: tools/fuzz.sh SECONDS [LIBFUZZER_ARGS...] | tools/fuzz.sh --install" >&2
    exit 2
    ;;
esac
SECONDS_TO_RUN=$1
shift

if ! command -v clang >/dev/null; then
    echo "fuzz.sh: clang not found; run tools/fuzz.sh --install first" >&2
    exit 1
fi
CC=clang cmake -S "$ROOT" -B "$BUILD" -DPython3_EXECUTABLE="$PYTHON" -DGC_FUZZ=ON \
    -DGC_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
TARGET=${TARGET:-http_parser}
case "$TARGET" in
http_parser) corpus=corpus dict=(-dict="$ROOT/tests/fuzz/http.dict") ;;
uwsgi) corpus=corpus-uwsgi dict=() ;;
ws) corpus=corpus-ws dict=() ;;
*)
    echo "fuzz.sh: TARGET is http_parser, uwsgi or ws" >&2
    exit 2
    ;;
esac
cmake --build "$BUILD" -j"$(nproc)" --target "fuzz_$TARGET" >/dev/null

mkdir -p "$BUILD/$corpus" "$BUILD/crashes"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
jobs=${JOBS:-1}
parallel=()
[ "$jobs" -gt 1 ] && parallel=(-jobs="$jobs" -workers="$jobs")
echo "fuzz.sh: fuzzing for ${SECONDS_TO_RUN}s (crashes go to build-fuzz/crashes/)" >&2
# Body spooling writes temporary files; keep them out of the way.
export TMPDIR=$BUILD/tmp
mkdir -p "$TMPDIR"
cd "$BUILD"
exec "./fuzz_$TARGET" -max_total_time="$SECONDS_TO_RUN" -max_len=8192 -timeout=10 \
    "${dict[@]}" -artifact_prefix="$BUILD/crashes/" \
    -print_final_stats=1 "${parallel[@]}" "$@" "$BUILD/$corpus" "$ROOT/tests/fuzz/$corpus"
