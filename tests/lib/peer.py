"""What the python test peers share: serve a handler on 127.0.0.1 (any free port, written to
PORTFILE once it listens) until the test process that started it is gone.
Usage from a peer: peer.serve(Handler [, tls=(certfile, keyfile)]) with argv PORTFILE [PARENT_PID]."""
import os
import ssl
import sys
import threading
import time
from http.server import ThreadingHTTPServer


def exit_with(parent):
    """Stop when the test process is gone, even if it died before killing us."""
    while True:
        time.sleep(0.5)
        try:
            os.kill(parent, 0)
        except ProcessLookupError:
            os._exit(0)


def serve(handler, tls=None):
    if len(sys.argv) > 2:
        threading.Thread(target=exit_with, args=(int(sys.argv[2]),), daemon=True).start()
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    srv.daemon_threads = True
    if tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(tls[0], tls[1])
        # the handshake runs in the request's thread, on its first read: a client that aborts it
        # (a failed verification) cannot stall the accept loop
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True, do_handshake_on_connect=False)
    # KBOOT_PEER_ALSO="127.0.0.2 ...": the same server on these loopback addresses too, same port
    # (a node address behind a VIP, for tests that tell the two apart)
    for addr in os.environ.get("KBOOT_PEER_ALSO", "").split():
        also = ThreadingHTTPServer((addr, srv.server_address[1]), handler)
        also.daemon_threads = True
        also.socket = srv.socket.context.wrap_socket(also.socket, server_side=True, do_handshake_on_connect=False) if tls else also.socket
        threading.Thread(target=also.serve_forever, daemon=True).start()
    with open(sys.argv[1] + ".tmp", "w") as f:
        f.write(str(srv.server_address[1]))
    os.rename(sys.argv[1] + ".tmp", sys.argv[1])
    srv.serve_forever()
