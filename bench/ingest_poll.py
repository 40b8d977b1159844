#!/usr/bin/env python3
"""Route counts of a receiver in bench/bgp-ingest, polled every 20 ms.

One process for the whole round, and a poll of the same cost for both
receivers: petrel's /metrics over a plain socket, BIRD's protocol counters
over its control socket. (Spawning curl or birdc per poll cost 2-8 ms of
CPU each, from the very CPUs the sender and receiver share, and not the
same for both.)

  ingest_poll.py petrel HOST:PORT N N99 [settle]
  ingest_poll.py bird SOCKET N N99 [settle]

Prints, as Unix times: when 99% (N99) and all (N) routes were received,
and when petrel's published tables held N (for BIRD: the same as all).
With `settle`: waits until the count has held for 2 s at N99 or more and
prints when it last changed, and the count. Gives up after 60 s (exit 1).
TRACE=1 prints every poll to stderr.
"""
import os
import socket
import sys
import time

POLL = 0.02
LIMIT = 60.0


def petrel_counts(addr):
    host, port = addr.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(b"GET /metrics HTTP/1.0\r\nHost: petrel\r\n\r\n")
        data = bytearray()
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
    routes = published = 0
    for line in data.decode("utf-8", "replace").splitlines():
        if line.startswith("petrel_bgp_prefixes{"):
            routes += int(float(line.rsplit(" ", 1)[1]))
        elif line.startswith("petrel_bgp_published_routes "):
            published = int(float(line.rsplit(" ", 1)[1]))
    return routes, published


class Bird:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX)
        self.s.connect(path)
        self.f = self.s.makefile("rb", buffering=0)
        self.f.readline()  # greeting

    def counts(self):
        self.s.sendall(b"show protocols all\n")
        routes = 0
        while True:
            line = self.f.readline()
            if not line:
                raise SystemExit("BIRD closed its control socket")
            text = line.decode("utf-8", "replace")
            if "Routes:" in text:
                routes += int(text.split("Routes:")[1].split()[0])
            if text[:4].isdigit() and text[4:5] == " ":
                break
        return routes, routes


def main():
    kind, where, n, n99 = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    settle = len(sys.argv) > 5 and sys.argv[5] == "settle"
    trace = bool(os.environ.get("TRACE"))
    if kind == "petrel":
        counts = lambda: petrel_counts(where)  # noqa: E731
    else:
        counts = Bird(where).counts
    start = time.time()
    t99 = t100 = tpub = None
    last, changed = -1, start
    while time.time() - start < LIMIT:
        got, pub = counts()
        t = time.time()
        if trace:
            print(f"trace {kind} {t:.6f} {got} {pub}", file=sys.stderr)
        if settle:
            if got != last:
                last, changed = got, t
            elif got >= n99 and t - changed >= 2.0:
                print(f"{changed:.6f} {got}")
                return
        else:
            if t99 is None and got >= n99:
                t99 = t
            if t100 is None and got >= n:
                t100 = t
            if tpub is None and pub >= n:
                tpub = t
            if t100 is not None and tpub is not None:
                print(f"{t99:.6f} {t100:.6f} {tpub:.6f}")
                return
        time.sleep(POLL)
    print(f"{kind}: {last if settle else got} of {n} routes after {LIMIT:.0f} s", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
    main()
