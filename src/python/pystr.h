/* pystr.h: the one table of Python strings that C uses again and again.
 *
 * Environ keys, constant environ values, the names of the attributes and runtime
 * functions C looks up, and the server hooks' names: each is made once, interned,
 * when the interpreter starts (gc__py_start calls gc__pystr_init), so no request
 * builds a str for a name, and workers inherit the table through fork. Every layer
 * from python/ up takes its strings from here rather than from a literal of its own:
 * a name is added to the table, not made where it is used.
 *
 * The references are owned by the table and borrowed by every user; they live as long
 * as the interpreter. Using them needs the GIL. */
#ifndef GC_PYTHON_PYSTR_H
#define GC_PYTHON_PYSTR_H

#include <Python.h>

#include "python/hooks.h"

#define GC_PYSTRS(X)                                                                               \
    /* environ keys */                                                                             \
    X(REQUEST_METHOD, "REQUEST_METHOD")                                                            \
    X(SCRIPT_NAME, "SCRIPT_NAME")                                                                  \
    X(PATH_INFO, "PATH_INFO")                                                                      \
    X(QUERY_STRING, "QUERY_STRING")                                                                \
    X(RAW_URI, "RAW_URI")                                                                          \
    X(SERVER_PROTOCOL, "SERVER_PROTOCOL")                                                          \
    X(SERVER_SOFTWARE, "SERVER_SOFTWARE")                                                          \
    X(CONTENT_TYPE, "CONTENT_TYPE")                                                                \
    X(CONTENT_LENGTH, "CONTENT_LENGTH")                                                            \
    X(REMOTE_ADDR, "REMOTE_ADDR")                                                                  \
    X(REMOTE_PORT, "REMOTE_PORT")                                                                  \
    X(SERVER_NAME, "SERVER_NAME")                                                                  \
    X(SERVER_PORT, "SERVER_PORT")                                                                  \
    X(HTTP_AUTHORIZATION, "HTTP_AUTHORIZATION")                                                    \
    X(HTTP_REFERER, "HTTP_REFERER")                                                                \
    X(HTTP_USER_AGENT, "HTTP_USER_AGENT")                                                          \
    X(PROXY_PROTOCOL, "PROXY_PROTOCOL")                                                            \
    X(PROXY_ADDR, "PROXY_ADDR")                                                                    \
    X(PROXY_PORT, "PROXY_PORT")                                                                    \
    X(HTTPS, "HTTPS")                                                                              \
    X(SSL_PROTOCOL, "SSL_PROTOCOL")                                                                \
    X(SSL_CIPHER, "SSL_CIPHER")                                                                    \
    X(SSL_CLIENT_VERIFY, "SSL_CLIENT_VERIFY")                                                      \
    X(SSL_CLIENT_S_DN, "SSL_CLIENT_S_DN")                                                          \
    X(SSL_CLIENT_I_DN, "SSL_CLIENT_I_DN")                                                          \
    X(SSL_CLIENT_M_SERIAL, "SSL_CLIENT_M_SERIAL")                                                  \
    X(SSL_CLIENT_CERT, "SSL_CLIENT_CERT")                                                          \
    X(h2_priority_weight, "gunicorn.http2.priority_weight")                                        \
    X(h2_priority_depends_on, "gunicorn.http2.priority_depends_on")                                \
    X(wsgi_early_hints, "wsgi.early_hints")                                                        \
    X(h2_send_trailers, "gunicorn.http2.send_trailers")                                            \
    X(gunicorn_socket, "gunicorn.socket")                                                          \
    X(wsgi_version, "wsgi.version")                                                                \
    X(wsgi_url_scheme, "wsgi.url_scheme")                                                          \
    X(wsgi_errors, "wsgi.errors")                                                                  \
    X(wsgi_multithread, "wsgi.multithread")                                                        \
    X(wsgi_multiprocess, "wsgi.multiprocess")                                                      \
    X(wsgi_run_once, "wsgi.run_once")                                                              \
    X(wsgi_input_terminated, "wsgi.input_terminated")                                              \
    X(wsgi_file_wrapper, "wsgi.file_wrapper")                                                      \
    X(wsgi_input, "wsgi.input")                                                                    \
    /* environ values */                                                                           \
    X(HTTP_1_0, "HTTP/1.0")                                                                        \
    X(HTTP_1_1, "HTTP/1.1")                                                                        \
    X(http, "http")                                                                                \
    X(https, "https")                                                                              \
    X(on, "on")                                                                                    \
    /* attributes and methods */                                                                   \
    X(close, "close")                                                                              \
    X(fileno, "fileno")                                                                            \
    X(read, "read")                                                                                \
    X(write, "write")                                                                              \
    X(early_hints, "early_hints")                                                                  \
    X(send_trailers, "send_trailers")                                                              \
    X(upper, "upper")                                                                              \
    X(_gc_response, "_gc_response")                                                                \
    /* runtime.py's functions and classes that the request path calls */                           \
    X(call, "call")                                                                                \
    X(Request, "Request")                                                                          \
    X(Response, "Response")                                                                        \
    /* the ASGI scope's keys and values, and its messages' */                                      \
    X(type, "type")                                                                                \
    X(asgi, "asgi")                                                                                \
    X(http_version, "http_version")                                                                \
    X(method, "method")                                                                            \
    X(scheme, "scheme")                                                                            \
    X(path, "path")                                                                                \
    X(raw_path, "raw_path")                                                                        \
    X(query_string, "query_string")                                                                \
    X(root_path, "root_path")                                                                      \
    X(headers, "headers")                                                                          \
    X(client, "client")                                                                            \
    X(server, "server")                                                                            \
    X(extensions, "extensions")                                                                    \
    X(state, "state")                                                                              \
    X(body, "body")                                                                                \
    X(more_body, "more_body")                                                                      \
    X(status, "status")                                                                            \
    X(trailers, "trailers")                                                                        \
    X(more_trailers, "more_trailers")                                                              \
    X(v1_0, "1.0")                                                                                 \
    X(v1_1, "1.1")                                                                                 \
    X(v2, "2")                                                                                     \
    X(http_request, "http.request")                                                                \
    X(http_disconnect, "http.disconnect")                                                          \
    X(http_response_start, "http.response.start")                                                  \
    X(http_response_body, "http.response.body")                                                    \
    X(http_response_informational, "http.response.informational")                                  \
    X(http_response_trailers, "http.response.trailers")                                            \
    X(http_response_pathsend, "http.response.pathsend")                                            \
    X(_asyncio_future_blocking, "_asyncio_future_blocking")                                        \
    X(GET, "GET")                                                                                  \
    X(POST, "POST")                                                                                \
    X(websocket_connect, "websocket.connect")                                                      \
    X(websocket_receive, "websocket.receive")                                                      \
    X(websocket_send, "websocket.send")                                                            \
    X(websocket_accept, "websocket.accept")                                                        \
    X(websocket_close, "websocket.close")                                                          \
    X(websocket_http_response_start, "websocket.http.response.start")                              \
    X(websocket_http_response_body, "websocket.http.response.body")                                \
    X(bytes, "bytes")                                                                              \
    X(text, "text")                                                                                \
    X(code, "code")                                                                                \
    X(reason, "reason")                                                                            \
    X(subprotocol, "subprotocol")

enum gc__pystr_id {
#define X(id, text) GC_STR_##id,
    GC_PYSTRS(X)
#undef X
    /* Then one per server hook, in hooks.h's order: GC_STR_HOOK(id). */
    GC_STR__HOOKS,
    GC_STR__COUNT = GC_STR__HOOKS + GC_HOOK__COUNT
};

/* The table: owned by it, borrowed by everyone. NULL before gc__pystr_init. */
extern PyObject *gc__pystr[GC_STR__COUNT];

/* The interned str named `id` in GC_PYSTRS: GC_STR(PATH_INFO). Borrowed. */
#define GC_STR(id) (gc__pystr[GC_STR_##id])
/* A server hook's name as a str ("on_starting"). Borrowed. */
#define GC_STR_HOOK(hook) (gc__pystr[GC_STR__HOOKS + (int)(hook)])

/* Makes the table in a newly started interpreter (a table left from an interpreter
 * that has been finalized is replaced, not released). Returns 0, or -1 with a Python
 * exception set. */
int gc__pystr_init(void);

#endif
