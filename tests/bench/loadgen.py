"""A small HTTP/1.1 keep-alive load generator, run as its own process by the HTTP benchmarks.

    python loadgen.py HOST PORT PATH --connections 32 --seconds 5 --warmup 1

Each connection sends one GET at a time and reads the response (Content-Length or chunked
bodies), so the figure is closed-loop throughput, as wrk measures it. Prints one JSON line:
requests, failures (non-2xx answers and broken connections), req/s, and latency percentiles in ms.
A client this lean (asyncio protocols, no HTTP library) keeps the generator's share of the two
cores small next to the servers it measures; the same generator measures every server in a run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time


class _Conn(asyncio.Protocol):
    def __init__(self, request: bytes, stats: _Stats) -> None:
        self.request = request
        self.stats = stats
        self.buf = bytearray()
        self.sent = 0.0
        self.transport: asyncio.Transport | None = None
        self.lost = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._send()

    def _send(self) -> None:
        if not self.stats.running:
            assert self.transport is not None
            self.transport.close()
            return
        self.sent = time.perf_counter()
        assert self.transport is not None
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[:end]).decode("latin-1")
            status = int(head[9:12])
            lower = head.lower()
            pos = lower.find("content-length:")
            if pos >= 0:
                eol = lower.find("\r\n", pos)
                length = int(lower[pos + 15:eol if eol >= 0 else len(lower)])
                total = end + 4 + length
                if len(self.buf) < total:
                    return
            elif "transfer-encoding: chunked" in lower:
                term = self.buf.find(b"\r\n0\r\n\r\n", end)
                if term < 0:
                    return
                total = term + 7
            else:
                total = end + 4
            del self.buf[:total]
            self.stats.done(status, time.perf_counter() - self.sent)
            self._send()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.stats.running:
            self.stats.failures += 1
        if not self.lost.done():
            self.lost.set_result(None)


class _Stats:
    def __init__(self) -> None:
        self.running = True
        self.measuring = False
        self.requests = 0
        self.failures = 0
        self.latencies: list[float] = []

    def done(self, status: int, seconds: float) -> None:
        if not self.measuring:
            return
        self.requests += 1
        if not 200 <= status < 300:
            self.failures += 1
        self.latencies.append(seconds)


async def run(host: str, port: int, path: str, connections: int, seconds: float, warmup: float) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    stats = _Stats()
    request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: wippy-loadgen\r\n\r\n".encode()
    conns = []
    for _ in range(connections):
        _t, proto = await loop.create_connection(lambda: _Conn(request, stats), host, port)
        conns.append(proto)
    await asyncio.sleep(warmup)
    stats.measuring = True
    start = time.perf_counter()
    await asyncio.sleep(seconds)
    stats.measuring = False
    elapsed = time.perf_counter() - start
    stats.running = False
    await asyncio.wait([c.lost for c in conns], timeout=5)
    lat = sorted(stats.latencies)

    def pct(p: float) -> float:
        return round(lat[min(len(lat) - 1, int(len(lat) * p))] * 1000, 3) if lat else 0.0

    return {"requests": stats.requests, "failures": stats.failures, "rps": round(stats.requests / elapsed, 1),
            "p50_ms": pct(0.50), "p99_ms": pct(0.99), "seconds": round(elapsed, 2)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("path")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--warmup", type=float, default=1.0)
    a = ap.parse_args()
    print(json.dumps(asyncio.run(run(a.host, a.port, a.path, a.connections, a.seconds, a.warmup))), flush=True)


if __name__ == "__main__":
    main()
