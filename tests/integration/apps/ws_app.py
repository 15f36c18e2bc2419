"""WSGI applications that take the connection through environ["gunicorn.socket"]: a
WebSocket echo server that does the handshake and the framing itself with wsproto, as
WSGI WebSocket libraries (simple-websocket, flask-sock) do under Gunicorn.

Paths:
  /echo       handshake, then echo text and bytes, answer pings, close on request
  /stop       the same, but end as flask-sock does under Gunicorn: raise StopIteration
  /leave      handshake, then return without closing the socket
  /raise      handshake, then raise an exception
  /wrote      start_response and a body through write(), then raw bytes on the socket
  /peek       plain HTTP: look at the socket (type, peer, repr) without taking it
  other       plain HTTP "plain"
"""

import os
import socket

from wsproto import ConnectionType, WSConnection
from wsproto.events import (AcceptConnection, BytesMessage, CloseConnection, Ping,
                            Request, TextMessage)


def handshake(environ, sock):
    """Feeds wsproto the request the server parsed, answers it; returns the connection."""
    ws = WSConnection(ConnectionType.SERVER)
    lines = ["%s %s HTTP/1.1" % (environ["REQUEST_METHOD"], environ["RAW_URI"])]
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            lines.append("%s: %s" % (key[5:].replace("_", "-"), value))
    ws.receive_data(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    for event in ws.events():
        if isinstance(event, Request):
            sock.sendall(ws.send(AcceptConnection()))
    return ws


def serve(ws, sock):
    """Echoes until the client closes."""
    text = []
    while True:
        data = sock.recv(65536)
        if not data:
            return
        ws.receive_data(data)
        for event in ws.events():
            if isinstance(event, TextMessage):
                text.append(event.data)
                if event.message_finished:
                    message = "".join(text)
                    text = []
                    if message == "pid":
                        message = str(os.getpid())
                    sock.sendall(ws.send(TextMessage(data=message)))
            elif isinstance(event, BytesMessage):
                sock.sendall(ws.send(BytesMessage(data=event.data)))
            elif isinstance(event, Ping):
                sock.sendall(ws.send(event.response()))
            elif isinstance(event, CloseConnection):
                sock.sendall(ws.send(event.response()))
                return


def app(environ, start_response):
    path = environ["PATH_INFO"]
    sock = environ.get("gunicorn.socket")
    if path == "/peek":
        if sock is None:
            start_response("200 OK", [("Content-Length", "9")])
            return [b"no socket"]
        repr(environ)  # formats the socket: fileno() among others
        assert sock.fileno() >= 0
        peer = sock.getpeername() if sock.family != socket.AF_UNIX else ""
        body = ("%s %s %s" % (isinstance(sock, socket.socket), socket.AddressFamily(sock.family).name, peer)).encode()
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]
    if path == "/wrote":
        write = start_response("200 OK", [("Content-Length", "20")])
        write(b"0123456789")
        sock.sendall(b"abcdefghij")
        sock.close()
        return [b"never sent"]
    if environ.get("HTTP_UPGRADE", "").lower() != "websocket":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"plain"]
    ws = handshake(environ, sock)
    if path == "/leave":
        return []
    if path == "/raise":
        raise RuntimeError("broke after the handshake")
    serve(ws, sock)
    sock.close()
    if path == "/stop":
        raise StopIteration()
    return []
