/* embed.c: a C program that runs a gunicorn-c server in its own process.
 *
 * It is `gunicorn-c` with a few lines around the call: its command line is Gunicorn's
 * (`./embed-shared -w 2 -b 127.0.0.1:8000 --chdir ../ hello:app`), handed unchanged to
 * gunicorn_c_main, which returns when the server stops. Forwarding main()'s own argv
 * also keeps USR2 upgrades working: they re-execute this program with the same
 * arguments. See README.md here and docs/embedding.md. */
#include <stdio.h>
#include <string.h>

#include <gunicorn_c.h>

int main(int argc, char **argv)
{
    /* A program built against one header may run with a newer shared library. */
    fprintf(stderr, "embed: built with gunicorn-c %s, running with %s\n", GUNICORN_C_VERSION_STRING,
            gunicorn_c_version());

    /* Everything the program wants to keep of argv must be copied first: the server
     * writes its process title over main()'s argv strings. */
    char name[64];
    snprintf(name, sizeof(name), "%s", argc > 0 ? argv[0] : "embed");

    int status = gunicorn_c_main(argc, argv);

    /* Only the original process gets here: workers leave with _exit(). */
    fprintf(stderr, "embed: %s: server stopped with status %d\n", name, status);
    return status;
}
