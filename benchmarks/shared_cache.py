"""A new worker's first request, with and without a shared cache.

``python -m benchmarks.shared_cache``.

Loopback only, a real redis-server (started here) and a JWKS server that answers after
``LATENCY`` seconds (0: loopback as it is; 0.05: a provider 50 ms away). For each driver:

* **cold start**: a new worker (a key source of its own) verifies its first token, ``ROUNDS``
  times: fetching the key set from the provider, or reading it from Redis (``RedisCache``),
  where another worker put it. Medians, in milliseconds.
* **one refresh for the cluster**: ``WORKERS`` new workers start at once (threads, or tasks on
  one loop) and each verifies a token; counted: requests the provider received, without and
  with the shared cache.

About 20 seconds in all.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import shutil
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import redis

from jwt_guard import JWKSKeys, RedisCache, Verifier
from jwt_guard.testing import JWKSServer, LocalIssuer

LATENCIES = (0.0, 0.05)  # seconds the provider takes to answer
ROUNDS = 30  # new workers per cold-start figure
WORKERS = 16  # workers starting at once


@contextmanager
def redis_server() -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", tmp]
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                        break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            proc.terminate()
            proc.wait(10)


def first_request(verifier: Verifier, token: str, driver: str) -> float:
    started = time.perf_counter()
    if driver == "sync":
        verifier.verify(token)
    else:
        asyncio.run(verifier.averify(token))
    return time.perf_counter() - started


def cold_start(idp: LocalIssuer, url: str, cache: RedisCache | None, driver: str) -> float:
    token = idp.mint()
    times = []
    for _ in range(ROUNDS):
        verifier = idp.verifier(keys=JWKSKeys(url, shared_cache=cache), cache_size=0)
        times.append(first_request(verifier, token, driver))
        verifier.close()
    return statistics.median(times) * 1000


def together(
    idp: LocalIssuer, server: JWKSServer, cache_for: Callable[[], RedisCache | None], driver: str
) -> int:
    """Requests the provider received when WORKERS new workers start at once."""
    before = server.count
    token = idp.mint()
    verifiers = [
        idp.verifier(keys=JWKSKeys(server.url, shared_cache=cache_for()), cache_size=0)
        for _ in range(WORKERS)
    ]
    if driver == "sync":
        threads = [threading.Thread(target=v.verify, args=(token,)) for v in verifiers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    else:

        async def all_at_once() -> None:
            await asyncio.gather(*(v.averify(token) for v in verifiers))
            for verifier in verifiers:
                await verifier.aclose()

        asyncio.run(all_at_once())
    for verifier in verifiers:
        verifier.close()
    return server.count - before


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    idp = LocalIssuer(algorithm="ES256")
    with redis_server() as redis_url, JWKSServer(lambda: idp.jwks) as server:
        caches: list[Any] = []
        integrity_key = secrets.token_hex(32)  # as a deployment's: entries carry their MAC

        def new_cache() -> RedisCache:
            caches.append(RedisCache(redis_url, integrity_key=integrity_key))
            return caches[-1]

        warm = new_cache()
        JWKSKeys(server.url, shared_cache=warm).prefetch(required=True)  # another worker
        print("cold start: a new worker's first verification (median ms)")
        print("| driver | provider latency | from the provider | from Redis |")
        print("|---|---|---|---|")
        for driver in ("sync", "async"):
            for latency in LATENCIES:
                server.delay = latency
                network = cold_start(idp, server.url, None, driver)
                shared = cold_start(idp, server.url, warm, driver)
                row = f"| {driver} | {latency * 1000:.0f} ms | {network:.1f} | {shared:.1f} |"
                print(row)
        server.delay = 0.05
        print(f"\n{WORKERS} new workers at once: requests to the provider")
        print("| driver | without a shared cache | with it (Redis empty) |")
        print("|---|---|---|")
        entry = "jwt_guard:cache:" + JWKSKeys(server.url)._shared_key
        for driver in ("sync", "async"):
            without = together(idp, server, lambda: None, driver)
            with redis.Redis.from_url(redis_url) as client:
                client.delete(entry)  # no copy yet: the cluster starts cold
            with_cache = together(idp, server, new_cache, driver)
            print(f"| {driver} | {without} | {with_cache} |")
        for cache in caches:
            cache.close()


if __name__ == "__main__":
    main()
