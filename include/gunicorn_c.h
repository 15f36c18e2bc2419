/* gunicorn_c.h: the public interface of the gunicorn-c core library.
 *
 * The server is a library first: the `gunicorn-c` executable is a one-line main()
 * around gc_main, and another C program can link the core and run a server the same
 * way, with an argv-style list of Gunicorn options. */
#ifndef GUNICORN_C_H
#define GUNICORN_C_H

#ifdef __cplusplus
extern "C" {
#endif

/* Runs a server as `gunicorn-c argv[1] ... argv[argc-1]` would, in this process, until
 * it stops. Returns the process exit status Gunicorn would use (0 on a clean stop, 1
 * for a configuration error, 2 for a usage error, 3 when a worker cannot boot, 4 when
 * the application cannot be loaded). argv[0] is used as the program name. */
int gc_main(int argc, char **argv);

#ifdef __cplusplus
}
#endif

#endif
