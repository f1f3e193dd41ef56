#!/usr/bin/env python3
"""A basic-auth gate in front of the test Schema Registry.

Apicurio Registry 2.4 does basic auth only through an OIDC server, so the
tests put this gate in front of it, as an nginx with `auth_basic` is put in
front of a registry in many deployments: a request without the expected
`Authorization: Basic` header gets 401; the others are forwarded to the
registry as they came, and its answer is sent back.

    auth_proxy.py <port> <upstream base URL> <user:password>

Prints "listening" once it serves on 127.0.0.1:<port>.
"""
import base64
import sys
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT, UPSTREAM, USER_INFO = int(sys.argv[1]), sys.argv[2].rstrip("/"), sys.argv[3]
EXPECTED = "Basic " + base64.b64encode(USER_INFO.encode()).decode()


class Gate(BaseHTTPRequestHandler):
    def forward(self):
        if self.headers.get("Authorization") != EXPECTED:
            body = b'{"error_code":40101,"message":"Unauthorized"}'
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="registry"')
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        length = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(length) if length else None
        request = urllib.request.Request(UPSTREAM + self.path, data=data, method=self.command)
        for name in ("Content-Type", "Accept"):
            if self.headers.get(name):
                request.add_header(name, self.headers[name])
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                status, headers, body = answer.status, answer.headers, answer.read()
        except urllib.error.HTTPError as err:
            status, headers, body = err.code, err.headers, err.read()
        self.send_response(status)
        self.send_header("Content-Type", headers.get("Content-Type", "application/json"))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = forward

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", PORT), Gate)
print("listening", flush=True)
server.serve_forever()
