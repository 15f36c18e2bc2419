"""wsgi.file_wrapper over a real file, a file seeked past its start, and a BytesIO."""

import io
import sys
from urllib.parse import parse_qs


class LoggedFile(io.FileIO):
    """A real file whose close() the log will show."""

    def close(self):
        if not self.closed:
            sys.stderr.write("LoggedFile.close called\n")
            sys.stderr.flush()
        super().close()


def application(environ, start_response):
    q = {k: v[0] for k, v in parse_qs(environ["QUERY_STRING"]).items()}
    mode = q.get("mode", "file")
    headers = [("Content-Type", "application/octet-stream")]
    if mode == "bytesio":
        with open(q["path"], "rb") as f:
            f_like = io.BytesIO(f.read())
    else:
        f_like = LoggedFile(q["path"], "rb")
        if "seek" in q:
            f_like.seek(int(q["seek"]))
    if "length" in q:
        headers.append(("Content-Length", q["length"]))
    start_response("200 OK", headers)
    return environ["wsgi.file_wrapper"](f_like, 8192)
