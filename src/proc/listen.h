/* listen.h: the listening sockets the arbiter binds and its workers accept on.
 *
 * Addresses follow Gunicorn's --bind forms: HOST, HOST:PORT, [IPv6]:PORT, :PORT and
 * unix:PATH and fd://N. Sockets are bound in the arbiter, at start and again when a
 * HUP changes --bind, and inherited by every worker forked after. */
#ifndef GC_PROC_LISTEN_H
#define GC_PROC_LISTEN_H

#include <stddef.h>
#include <sys/types.h>

typedef struct {
    int backlog;
    int reuse_port; /* SO_REUSEPORT */
    int umask;      /* applied while a unix socket file is created */
    /* The owner a new unix socket file is given (the workers' user and group, so that
     * a front end in that group may connect); (uid_t)-1 / (gid_t)-1 leave it alone. */
    uid_t uid;
    gid_t gid;
} gc__bind_opts_t;

typedef struct {
    int fd;
    int is_unix;
    int adopted;     /* inherited (fd://N, systemd, USR2): never unlink its file */
    char *unix_path; /* owned; unlinked on close when the arbiter created it */
    char host[256];  /* numeric address for SERVER_NAME */
    char port[8];    /* for SERVER_PORT; "" for unix sockets */
    char url[300];   /* "http://127.0.0.1:8000" or "unix:/path", for the log */
} gc__listener_t;

typedef struct {
    char host[256];
    char port[8];
    char *unix_path; /* owned */
} gc__address_t;

/* Parses a --bind value. Returns 0 or -EINVAL; on success the caller frees
 * addr->unix_path. */
int gc__address_parse(const char *text, gc__address_t *addr);

/* Binds and listens on `text`, retrying as Gunicorn does ("Connection in use", five
 * attempts a second apart). "fd://N" adopts descriptor N instead. Returns 0 or a
 * negative errno (logged). */
int gc__listener_open(gc__listener_t *l, const char *text, const gc__bind_opts_t *opts);

/* Whether l is bound to the address `text` names (a --bind value): the same unix
 * path, the same descriptor for fd://N, or the same resolved address and port (never
 * port 0, which asks for a new one). */
int gc__listener_matches(const gc__listener_t *l, const char *text);

/* Takes over an inherited listening socket (fd://N, systemd, a USR2 parent). Returns 0
 * or -ENOTSOCK. */
int gc__listener_adopt(gc__listener_t *l, int fd);

/* Closes the socket; unlinks its file when `unlink_path` is set. */
void gc__listener_close(gc__listener_t *l, int unlink_path);

#endif
