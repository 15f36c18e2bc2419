/* main.c: the gunicorn-c executable. Everything lives in the core library. */
#include "gunicorn_c.h"

int main(int argc, char **argv)
{
    return gc_main(argc, argv);
}
