"""wsgiref.validate over many application shapes: the server keeps PEP 3333's side of
the contract for lists, generators, late start_response, write(), empty and bodiless
responses, wsgi.file_wrapper, close(), exc_info, wsgi.input and HEAD.

The validator raises AssertionError (a 500 and a traceback in the log) or warns
(PYTHONWARNINGS=error makes that an exception too) whenever the server breaks a rule,
so every response must be the expected one and the log must stay clean.
"""

import os

import pytest

from rawhttp import Reader, request

EXPECTED = {
    "/list": (200, b"list-body"),
    "/generator": (200, b"gen-body"),
    "/late": (200, b"late-body"),
    "/write": (200, b"written-returned"),
    "/write-only": (200, b"write-only"),
    "/empty": (200, b""),
    "/204": (204, b""),
    "/closing": (200, b"closing-body"),
    "/exc-info": (500, b"replaced-by-500"),
}


@pytest.fixture
def srv(start_server):
    return start_server("validated_shapes", "-e", "PYTHONWARNINGS=error")


def clean_log(srv, mark):
    log = "\n".join(srv.lines[mark:])
    for word in ("Warning", "Error", "Traceback"):
        assert word not in log, log


def test_validator_response_shapes(srv):
    mark = srv.log_mark()
    with srv.connect() as s:
        reader = Reader(s)
        for path, (status, body) in EXPECTED.items():
            for method in ("GET", "HEAD"):
                s.sendall(request(method, path))
                resp = reader.read_response(method)
                assert resp.status == status, (path, method, srv.log_text())
                assert resp.body == (body if method == "GET" else b""), (path, method)
    srv.wait_for_log(r"validated close\(\) called", count=2, since=mark)
    clean_log(srv, mark)


def test_validator_file_wrapper(srv, tmp_path):
    data = os.urandom(100000)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    mark = srv.log_mark()
    with srv.connect() as s:
        reader = Reader(s)
        for method in ("GET", "HEAD", "GET"):
            s.sendall(request(method, f"/file?{path}"))
            resp = reader.read_response(method)
            assert resp.status == 200, srv.log_text()
            assert resp.body == (data if method == "GET" else b"")
    clean_log(srv, mark)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_validator_input(srv, chunked):
    body = b"line one\nline two\nthe rest\nand more\n"
    mark = srv.log_mark()
    with srv.connect() as s:
        if chunked:
            s.sendall(request("POST", "/input", headers=[("Transfer-Encoding", "chunked")],
                              body=b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)))
        else:
            s.sendall(request("POST", "/input", body=body))
        resp = Reader(s).read_response()
    assert resp.status == 200, srv.log_text()
    assert resp.body == b"line one\n|lin|e two\nthe rest\nand more\n|[]"
    clean_log(srv, mark)
