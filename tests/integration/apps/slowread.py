"""Responses for the slow-reader tests. The socket buffers of a loopback connection
grow to megabytes, which would hide a slow reader from the server; `big` first shrinks
its own connection's send buffer (found through /proc/self/fd by the client's port),
so that what the kernel holds is a few KiB, as on a congested network."""

import os
import socket


def _shrink_send_buffer(remote_port):
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            s = socket.socket(fileno=os.dup(fd))
        except OSError:
            continue
        try:
            if s.type == socket.SOCK_STREAM and s.getpeername()[1] == remote_port:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
                return True
        except (OSError, IndexError, TypeError):
            pass
        finally:
            s.close()
    return False


def pattern(kib):
    return b"".join(bytes([i % 251]) * 1024 for i in range(kib))


def big(environ, start_response):
    """QUERY_STRING KiB (default 512) in 64 KiB pieces, with a known length."""
    kib = int(environ["QUERY_STRING"] or 512)
    assert _shrink_send_buffer(int(environ["REMOTE_PORT"]))
    data = pattern(kib)
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("Content-Length", str(len(data)))])
    return (data[i:i + 65536] for i in range(0, len(data), 65536))


def hello(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"hi"]


def application(environ, start_response):
    if environ["PATH_INFO"] == "/big":
        return big(environ, start_response)
    return hello(environ, start_response)
