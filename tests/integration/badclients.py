"""Bad clients for the slow-client tests, run in a process of their own.

    python3 badclients.py PORT IDLE SLOW

opens IDLE keep-alive connections that each make one request and then stay silent,
and SLOW connections that send a request one byte at a time, each byte a second
apart (spread evenly over the second, as many independent clients would be). It
prints "ready" once every connection is open, "sent 2" once every slow connection has
sent two bytes, keeps sending until its stdin closes, then prints how many of each
kind the server still holds open, as "open IDLE_OPEN SLOW_OPEN".

A process of its own so that its work never shares a GIL with the client whose
latency the test measures.
"""

import resource
import select
import socket
import sys
import time

from rawhttp import Reader, request


def still_open(sock):
    """True if the peer has not closed sock (nothing is expected from it)."""
    sock.setblocking(False)
    try:
        return sock.recv(1) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False


def main():
    port, n_idle, n_slow = (int(a) for a in sys.argv[1:4])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n_idle + n_slow + 64:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    idle = []
    for _ in range(n_idle):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(request())
        assert Reader(s).read_response().status == 200
        idle.append(s)
    slow = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(n_slow)]
    # Never completes: the padding is longer than the test lasts.
    line = request(headers=[("X-Padding", "p" * 4000)])
    print("ready", flush=True)

    gap = 1.0 / max(n_slow, 1)
    pos = 0
    next_at = time.monotonic()
    while True:
        for s in slow:
            next_at += gap
            delay = next_at - time.monotonic()
            # stdin closing (the test is done) ends the loop; it also paces the bytes.
            if select.select([sys.stdin], [], [], max(delay, 0))[0]:
                print("open", sum(map(still_open, idle)), sum(map(still_open, slow)),
                      flush=True)
                return
            try:
                s.send(line[pos:pos + 1])
            except OSError:
                pass
        pos += 1
        if pos == 2:
            print("sent 2", flush=True)


if __name__ == "__main__":
    main()
