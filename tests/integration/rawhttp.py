"""A strict little HTTP/1.x response reader for raw-socket tests.

http.client hides what the tests need to see (framing, the exact bytes on the wire,
several responses on one socket), so pipelining, keep-alive and error-page tests read
responses with this instead. One `Reader` wraps one socket and keeps the bytes it has
read past the end of a response for the next one.
"""

import socket

# How long a deliberate close may take to arrive. It is well under the server's default
# keep-alive (2s), so an idle-timer close cannot pass for a deliberate one.
CLOSE_TIMEOUT = 1.0


class Response:
    def __init__(self, version, status, reason, headers, body, framing, raw_head):
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers  # list of (name, value), as sent
        self.body = body
        self.framing = framing  # "length", "chunked", "close" or "none"
        self.raw_head = raw_head

    def header(self, name, default=None):
        values = self.headers_all(name)
        return values[0] if values else default

    def headers_all(self, name):
        return [v for n, v in self.headers if n.lower() == name.lower()]

    def __repr__(self):
        return f"<Response {self.status} {self.framing} {self.body[:60]!r}>"


class Reader:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("connection closed")
        self.buf += data

    def read_until(self, sep):
        while sep not in self.buf:
            self._fill()
        i = self.buf.index(sep) + len(sep)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def read_exact(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_to_close(self, idle_timeout=CLOSE_TIMEOUT):
        """Reads until the peer closes. If the peer goes quiet for `idle_timeout`
        seconds without closing, socket.timeout propagates: a hang is a failure."""
        old = self.sock.gettimeout()
        self.sock.settimeout(idle_timeout)
        try:
            while True:
                try:
                    self._fill()
                except (EOFError, ConnectionResetError):
                    break
        finally:
            self.sock.settimeout(old)
        out, self.buf = self.buf, b""
        return out

    def at_eof(self):
        """True when the peer has closed and nothing is buffered."""
        if self.buf:
            return False
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            return True
        if data:
            self.buf += data
            return False
        return True

    def read_head(self):
        raw = self.read_until(b"\r\n\r\n")
        lines = raw[:-4].split(b"\r\n")
        version, _, rest = lines[0].decode("latin-1").partition(" ")
        code, _, reason = rest.partition(" ")
        headers = []
        for line in lines[1:]:
            name, sep, value = line.decode("latin-1").partition(":")
            assert sep, f"malformed header line {line!r} in {raw!r}"
            headers.append((name, value.strip()))
        return version, int(code), reason, headers, raw

    def read_response(self, method="GET"):
        """Reads one complete response. Informational (1xx) responses are returned as
        they are; call again for the final one."""
        version, status, reason, headers, raw = self.read_head()
        resp = Response(version, status, reason, headers, b"", "none", raw)
        te = resp.header("Transfer-Encoding")
        cl = resp.headers_all("Content-Length")
        if method == "HEAD" or status < 200 or status in (204, 304):
            return resp
        if te is not None:
            assert te.lower() == "chunked", te
            assert not cl, "both Content-Length and Transfer-Encoding"
            resp.framing = "chunked"
            resp.body = self._read_chunked()
        elif cl:
            assert len(cl) == 1, f"several Content-Length headers: {cl}"
            resp.framing = "length"
            resp.body = self.read_exact(int(cl[0]))
        else:
            resp.framing = "close"
            resp.body = self.read_to_close()
        return resp

    def _read_chunked(self):
        body = b""
        while True:
            line = self.read_until(b"\r\n")
            size = int(line.split(b";")[0].strip(), 16)
            if size == 0:
                # No trailers from this server: the last chunk ends with an empty line.
                assert self.read_until(b"\r\n") == b"\r\n"
                return body
            body += self.read_exact(size)
            assert self.read_exact(2) == b"\r\n", "chunk not followed by CRLF"


def request(method="GET", path="/", headers=None, body=b"", version="HTTP/1.1", host="test"):
    """Builds request bytes. `headers` is a list of (name, value); Host is added unless
    given (pass host=None to leave it out)."""
    lines = [f"{method} {path} {version}"]
    hdrs = list(headers or [])
    if host is not None and not any(n.lower() == "host" for n, _ in hdrs):
        hdrs.insert(0, ("Host", host))
    if body and not any(n.lower() in ("content-length", "transfer-encoding") for n, _ in hdrs):
        hdrs.append(("Content-Length", str(len(body))))
    lines += [f"{n}: {v}" for n, v in hdrs]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def exchange(sock, data, method="GET"):
    """Sends `data` and reads one response on a fresh reader."""
    sock.sendall(data)
    return Reader(sock).read_response(method)


def closed_by_peer(sock, timeout=CLOSE_TIMEOUT):
    """True if the peer closes the connection within `timeout` (reading leftovers)."""
    sock.settimeout(timeout)
    try:
        while True:
            if not sock.recv(65536):
                return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False
