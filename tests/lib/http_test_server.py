#!/usr/bin/env python3
"""Plain-HTTP peer for kboot.http tests: status codes, retries, Retry-After, Kubernetes Status
bodies, chunked watch streams. Usage: http_test_server.py PORTFILE [PARENT_PID]  (binds 127.0.0.1:0 and
writes the port to PORTFILE once it listens)."""
import json
import threading
import time
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

import peer

hits = {}
lock = threading.Lock()


def hit(key):
    with lock:
        hits[key] = hits.get(key, 0) + 1
        return hits[key]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so connection reuse can be counted

    def log_message(self, fmt, *args):
        pass

    def send(self, status, body=b"", ctype="text/plain", headers=()):
        if isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def handle_any(self):
        u = urlsplit(self.path)
        parts = u.path.strip("/").split("/")
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        name, key = parts[0], "/".join(parts[1:])
        count = hit(u.path)
        if name == "echo":
            self.send(200, json.dumps({
                "method": self.command, "path": u.path, "rawquery": u.query,
                "query": parse_qs(u.query, keep_blank_values=True),
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body.decode("latin-1"), "n": 7, "f": 1.5,
            }), "application/json", [("X-Multi", "a"), ("X-Multi", "b")])
        elif name == "flaky":  # 503 twice, then 200
            if count <= 2:
                self.send(503, "try later")
            else:
                self.send(200, "ok after %d" % count)
        elif name == "ratelimit":  # 429 with Retry-After once, then 200
            if count == 1:
                self.send(429, "slow down", headers=[("Retry-After", "1")])
            else:
                self.send(200, "ok after %d" % count)
        elif name == "status":  # /status/CODE: always that status
            self.send(int(key), "status %s body" % key)
        elif name == "hits":  # how often /KEY was requested
            self.send(200, str(hits.get("/" + key, 0)))
        elif name == "conflict":
            self.send(409, json.dumps({
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": 'secrets "x" already exists', "reason": "AlreadyExists",
                "details": {"name": "x", "kind": "secrets"}, "code": 409}), "application/json")
        elif name == "longerror":
            self.send(400, "y" * 1000)
        elif name == "notjson":
            self.send(200, "this is not json", "application/json")
        elif name == "empty":
            self.send_response(204)
            self.end_headers()
        elif name == "watch":  # /watch/N: N JSON lines, chunked, one per flush
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(int(key or 3)):
                self.chunk(b'{"type":"ADDED","object":{"n":%d}}\n' % i)
                time.sleep(0.02)
            self.wfile.write(b"0\r\n\r\n")
        elif name == "forever":  # chunked lines until the client goes away
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            try:
                for i in range(100000):
                    self.chunk(b"line %d\n" % i)
                    time.sleep(0.01)
            except (BrokenPipeError, ConnectionResetError):
                pass
            self.close_connection = True
        elif name == "slow":  # answers after KEY seconds
            time.sleep(float(key))
            self.send(200, "slow")
        elif name == "close":  # accept then close without a response
            self.close_connection = True
        else:
            self.send(404, "no such test endpoint " + u.path)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = handle_any


def main():
    peer.serve(Handler)


if __name__ == "__main__":
    main()
