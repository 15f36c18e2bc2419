/* gunicorn_c.h: the public interface of the gunicorn-c library.
 *
 * The server is a library first: the `gunicorn-c` executable is a one-line main() around
 * gunicorn_c_main, and any C (or C++) program can link libgunicorn-c (shared or static;
 * `pkg-config gunicorn-c` / `pkg-config --static gunicorn-c-static`) and run a server in
 * its own process the same way, with Gunicorn's command line as an argv-style list.
 * docs/embedding.md is the guide; this header is the contract.
 *
 * Everything exported starts with `gunicorn_c_` (functions) or `GUNICORN_C_` (macros);
 * the shared library exports nothing else. */
#ifndef GUNICORN_C_H
#define GUNICORN_C_H

#ifdef __cplusplus
extern "C" {
#endif

/* The version of this header. gunicorn_c_version() gives the library's, which differs
 * when a program built against one release runs with another release's shared library
 * (the SONAME changes with the major version, so only minor and patch can differ).
 * These three numbers are the project's only statement of its version: CMake's
 * project(VERSION) and the Python package's version are read from them (CMakeLists.txt,
 * python/gunicorn_c_build.py). */
#define GUNICORN_C_VERSION_MAJOR 0
#define GUNICORN_C_VERSION_MINOR 1
#define GUNICORN_C_VERSION_PATCH 0
/* "MAJOR.MINOR.PATCH", a string literal made from the numbers above. */
#define GUNICORN_C_VERSION_STRING                                                                  \
    GUNICORN_C__XSTR(GUNICORN_C_VERSION_MAJOR)                                                     \
    "." GUNICORN_C__XSTR(GUNICORN_C_VERSION_MINOR) "." GUNICORN_C__XSTR(GUNICORN_C_VERSION_PATCH)
#define GUNICORN_C__STR(x) #x
#define GUNICORN_C__XSTR(x) GUNICORN_C__STR(x)
/* 0xMMmmpp: compares in the obvious order (`#if GUNICORN_C_VERSION_HEX >= 0x000200`). */
#define GUNICORN_C_VERSION_HEX                                                                     \
    ((GUNICORN_C_VERSION_MAJOR << 16) | (GUNICORN_C_VERSION_MINOR << 8) | GUNICORN_C_VERSION_PATCH)

/* Marks the library's public functions: default visibility when the library itself is
 * built (everything else in it is hidden), nothing special for a program using it. */
#if defined(GUNICORN_C_BUILDING) && defined(__GNUC__)
#define GUNICORN_C_EXPORT __attribute__((visibility("default")))
#else
#define GUNICORN_C_EXPORT
#endif

/* Runs a server in the calling process exactly as `gunicorn-c argv[1] ... argv[argc-1]`
 * would, and returns when it stops, with the exit status the gunicorn-c executable would
 * have: 0 after a clean stop (TERM, INT, QUIT) or after -h, --version, --check-config,
 * --print-config; 1 for a configuration error (or one of the refusals below, with a
 * message on stderr); 2 for a usage error; 3 when a worker cannot boot (the module does
 * not import); 4 when the application cannot be loaded. Settings come from the same
 * sources as for the executable: defaults, the config file (`gunicorn.conf.py` in the
 * working directory, or -c), GUNICORN_CMD_ARGS, then argv.
 *
 * argv: borrowed for the duration of the call, argc entries, argv[0] the program name
 * (used in messages and in `--help`). When argv is the process's own argument vector, as
 * main() received it, its strings are overwritten with the process title (`gunicorn:
 * master [app]`, as Gunicorn shows in ps); pass a copy if the program needs them after
 * the call. USR2 re-executes this program (/proc/self/exe) with a copy of argv, so a
 * program that wants USR2 upgrades must start the server again when it is run with the
 * same arguments (forwarding its own argv, as examples/embed does, is enough).
 *
 * What it does to the process, as the executable does, for the whole call:
 *  - Embeds CPython: it initialises the interpreter (the one the library was built
 *    against) and finalises it before returning. The program must not have initialised
 *    Python itself: if Py_IsInitialized() is true the call returns 1 at once.
 *  - Forks: the arbiter forks --workers worker processes (and, with --daemon, forks
 *    twice and exits the original process with status 0, so the call never returns
 *    there; a USR2 re-exec also forks). Workers never return from this function: they
 *    leave with _exit(). Whatever the program's other threads hold (locks, open files
 *    without O_CLOEXEC) is copied into every worker, without the threads.
 *  - Installs signal handlers through libuv's default loop, which it owns for the call:
 *    TERM, INT, QUIT, HUP, TTIN, TTOU, USR1, USR2, WINCH, CHLD and ALRM in the arbiter;
 *    SIGPIPE is ignored. They are not restored on return. Do not block these signals in
 *    the calling thread, and do not use libuv's default loop meanwhile.
 *  - Applies settings process-wide: --chdir (the working directory), --env (the
 *    environment), --umask, --user and --group (credentials), --capture-output and
 *    --daemon (file descriptors 0, 1 and 2), --pythonpath (sys.path).
 *
 * Threads and reentrancy: the function runs at most once per process (CPython and libuv
 * keep process-wide state that a second server cannot restart cleanly); a second call,
 * from any thread, returns 1 at once. Call it from the program's main thread, before it
 * starts other threads if it can: workers are forked from this thread. */
GUNICORN_C_EXPORT int gunicorn_c_main(int argc, char **argv);

/* The library's version as "MAJOR.MINOR.PATCH": a static string, never freed. */
GUNICORN_C_EXPORT const char *gunicorn_c_version(void);

#ifdef __cplusplus
}
#endif

#endif
