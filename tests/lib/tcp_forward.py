#!/usr/bin/python3
# A TCP forwarder standing for a VIP or load balancer in front of an API server (tests only).
#   tcp_forward.py LISTEN_HOST LISTEN_PORT TARGET_HOST TARGET_PORT LOG [PARENT_PID]
# Every accepted connection is one line "conn N" in LOG (flushed at once), so a test can count
# the connections a client made through it. Bytes are copied both ways, unchanged (TLS passes
# through). Exits when PARENT_PID is gone, so a failed test leaves nothing behind.
import os
import socket
import sys
import threading
import time


def pump(src, dst):
    try:
        while True:
            b = src.recv(65536)
            if not b:
                break
            dst.sendall(b)
    except OSError:
        pass
    finally:
        for s in (dst, src):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def serve(conn, target):
    try:
        up = socket.create_connection(target, timeout=10)
        up.settimeout(None)
    except OSError:
        conn.close()
        return
    a = threading.Thread(target=pump, args=(conn, up), daemon=True)
    b = threading.Thread(target=pump, args=(up, conn), daemon=True)
    a.start()
    b.start()
    a.join()
    b.join()
    conn.close()
    up.close()


def watch(parent):
    while True:
        try:
            os.kill(parent, 0)
        except OSError:
            os._exit(0)
        time.sleep(1)


def main():
    host, port, thost, tport, logp = sys.argv[1:6]
    if len(sys.argv) > 6:
        threading.Thread(target=watch, args=(int(sys.argv[6]),), daemon=True).start()
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((host, int(port)))
    ls.listen(64)
    log = open(logp, "a", buffering=1)
    log.write("listening %s:%s -> %s:%s\n" % (host, port, thost, tport))
    n = 0
    while True:
        conn, _ = ls.accept()
        n += 1
        log.write("conn %d\n" % n)
        threading.Thread(target=serve, args=(conn, (thost, int(tport))), daemon=True).start()


if __name__ == "__main__":
    main()
