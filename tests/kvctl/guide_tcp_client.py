#!/usr/bin/env python3
"""The Elixir guide's KVServer session, played over TCP by N clients at once.

Usage: guide_tcp_client.py HOST PORT CLIENTS

Each client connects (all connect before any sends: a barrier), then sends the guide's session one
line at a time, as a reader does in `telnet 127.0.0.1 4040`, and checks each answer byte for byte
before the next line. Even-numbered clients end lines with "\\r\\n" (telnet), odd ones with "\\n"
(nc). Client i works on bucket "shopping<i>", so that concurrent sessions do not see each other's
keys; the answers do not name the bucket, so every client expects the same bytes. At the end the
client half-closes (shutdown SHUT_WR) and the server must close without sending anything more.
Prints one line per failure and exits 1 if any client failed, else prints "ok N" and exits 0.
"""
import socket
import sys
import threading

# (request, answer) pairs with "{b}" for the bucket and "\n" for the line terminator.
SESSION = [
    ("CREATE {b}", "OK\n"),
    ("PUT {b} milk 1", "OK\n"),
    ("PUT {b} eggs 3", "OK\n"),
    ("GET {b} milk", "1\nOK\n"),
    ("DELETE {b} eggs", "OK\n"),
    ("GET {b} eggs", "\nOK\n"),
    ("GET {b}-nothere milk", "NOT FOUND\n"),
    ("PUT {b}-nothere milk 1", "NOT FOUND\n"),
    ("FROBNICATE {b}", "UNKNOWN COMMAND\n"),
    ("GET {b}", "UNKNOWN COMMAND\n"),
    ("", "UNKNOWN COMMAND\n"),
]
TIMEOUT_S = 30


def recv_exactly(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def play(host, port, index, barrier, failures):
    eol = "\r\n" if index % 2 == 0 else "\n"
    bucket = "shopping%d" % index
    try:
        sock = socket.create_connection((host, port), timeout=TIMEOUT_S)
        barrier.wait(TIMEOUT_S)
        with sock:
            for request, answer in SESSION:
                sock.sendall((request.format(b=bucket) + eol).encode())
                want = answer.replace("\n", eol).encode()
                got = recv_exactly(sock, len(want))
                if got != want:
                    failures.append("client %d: %r answered %r, want %r" % (index, request, got, want))
                    return
            sock.shutdown(socket.SHUT_WR)
            rest = recv_exactly(sock, 1)
            if rest:
                failures.append("client %d: extra bytes after the session: %r" % (index, rest))
    except Exception as e:  # noqa: BLE001 -- any failure of a client is reported the same way
        failures.append("client %d: %s: %s" % (index, type(e).__name__, e))


def main():
    host, port, clients = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    barrier = threading.Barrier(clients)
    failures = []
    threads = [
        threading.Thread(target=play, args=(host, port, i, barrier, failures)) for i in range(clients)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for f in failures:
        print(f)
    if failures:
        return 1
    print("ok %d" % clients)
    return 0


if __name__ == "__main__":
    sys.exit(main())
