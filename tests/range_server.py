"""A loopback HTTP server for the download tests: serves one folder with HTTP Range support.

`--cut-first N` sends only N bytes of the first response and drops the connection, like a network that fails half
way. Every request's Range header goes to `--log`; the chosen port goes to `--port-file`. The server stops by itself
after `--lifetime` seconds in case its test never gets to stop it.
"""

import argparse
import re
import threading
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class RangeHandler(BaseHTTPRequestHandler):
    def __init__(self, *args, root: Path, log: Path, cut: list[int], **kwargs):
        self.root, self.log, self.cut = root, log, cut
        super().__init__(*args, **kwargs)

    def do_GET(self):
        path = self.root / self.path.lstrip("/")
        with open(self.log, "a") as log:
            log.write(f"GET {self.path} range={self.headers.get('Range')}\n")
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        start = 0
        if match := re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", "")):
            start = int(match.group(1))
            if start >= len(data):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.cut:
            body = body[: self.cut.pop()]
            self.close_connection = True
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--root", type=Path, required=True)
    p.add_argument("--log", type=Path, required=True)
    p.add_argument("--port-file", type=Path, required=True)
    p.add_argument("--cut-first", type=int)
    p.add_argument("--lifetime", type=float, default=120)
    a = p.parse_args()
    cut = [a.cut_first] if a.cut_first is not None else []
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(RangeHandler, root=a.root, log=a.log, cut=cut))
    threading.Timer(a.lifetime, server.shutdown).start()
    written = a.port_file.with_name(a.port_file.name + ".tmp")
    written.write_text(str(server.server_address[1]))
    written.rename(a.port_file)  # the test reads the port only once it is whole
    server.serve_forever()


if __name__ == "__main__":
    main()
