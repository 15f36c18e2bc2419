/* main.c: the gunicorn-c executable. Everything lives in the library (include/gunicorn_c.h),
 * which this program links statically. */
#include "gunicorn_c.h"

int main(int argc, char **argv)
{
    return gunicorn_c_main(argc, argv);
}
