"""A static HTTPS server for the lab's workstation (a site's chart mirror): serves a directory
with a given certificate, logs each request line to stdout. Stdlib only.

    python https_serve.py DIR ADDRESS PORT CERT_FILE KEY_FILE
"""
import functools
import http.server
import ssl
import sys


def main() -> None:
    directory, address, port, cert, key = sys.argv[1:6]
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=directory)
    server = http.server.ThreadingHTTPServer((address, int(port)), handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    print(f"Serving HTTPS on {address} port {port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
