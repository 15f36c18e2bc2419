/* environ.h: the per-request environ (internal to the wsgi layer). */
#ifndef GC_WSGI_ENVIRON_H
#define GC_WSGI_ENVIRON_H

#include "wsgi/wsgi.h"

/* Returns a new environ dict for req, with `input` (borrowed) as wsgi.input, or NULL
 * with an exception set. */
PyObject *gc__wsgi_environ(gc__wsgi_state_t *st, const gc__http_request_t *req,
                           const gc__wsgi_peer_t *peer, PyObject *input);

#endif
