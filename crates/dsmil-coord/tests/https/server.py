"""An HTTPS agent on Python's standard library (http.server + ssl), an implementation DSMIL
did not write. Usage: python server.py CERT KEY [CLIENT_CA]; with CLIENT_CA the server
requires a client certificate signed by it (mutual TLS). Prints the port, then serves
POST /run: {"result": {"doubled": 2 * input_data.n, "client": <client cert CN or null>}}.
"""

import http.server
import json
import ssl
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        peer = self.connection.getpeercert()
        client = None
        if peer:
            client = dict(x[0] for x in peer["subject"]).get("commonName")
        answer = json.dumps(
            {"result": {"doubled": 2 * body["input_data"]["n"], "client": client}}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


def main():
    cert, key = sys.argv[1], sys.argv[2]
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    if len(sys.argv) > 3:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(sys.argv[3])
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
