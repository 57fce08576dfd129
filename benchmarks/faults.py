"""A slow or failing identity provider under a bounded load: ``python -m benchmarks.faults``.

Loopback only, bounded in count and time (about a minute in all; ``--quick`` about 25 s).
Issue 13, items 26 and 27, for both drivers:

* **slow provider** (item 26): the cache is warm, the provider answers every JWKS request after
  ``SLOW`` seconds, and tokens with unknown kids (a rotation, or forged tokens with random kids)
  arrive at ``UNKNOWN_RATE``/s among tokens with known kids at ``KNOWN_RATE``/s (repeat tokens,
  as real traffic is). The figures are the latencies of the known-kid requests (p50/p99/max),
  and how long the unknown-kid ones were held.

  The sync driver runs in a fixed pool of ``WORKERS`` threads fed from a queue at fixed arrival
  times (open loop, like gunicorn ``--threads``): a request that holds a worker delays every
  request queued behind it, which is how a slow provider stalled Flask. Latency is measured from
  arrival, so queueing counts. The async driver runs one task per request on one event loop.

* **outage, then recovery** (item 27): the key set was fetched a minute ago; the provider then
  answers 500 for ``OUTAGE`` seconds, and recovers. A token signed with a new key (published
  during the outage) arrives every 0.1 s.
  Counted: answers during the outage (401 ``key_not_found`` tells the client to throw its token
  away; 503 tells it to retry), and the time from recovery to the first accepted token.

* **Redis down** (issue 22 item 8): a real redis-server backs the denylist, then is killed;
  requests arrive at ``REDIS_RATE``/s for a few seconds on both drivers. Measured: latency
  p50/p99 (all 503 ``denylist_unavailable``) and the connection attempts made (a listener on the
  dead port counts them), with the known-down interval (``DOWN_INTERVAL``) and without it (the
  old behaviour: two connections a request), in the same run.

The verifier is called directly (no HTTP server in front): these rows measure what the key
source makes requests wait for, not the framework.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import queue
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from jwt_guard import JWKSKeys, JWTGuardError, RedisDenylist, Verifier
from jwt_guard._sources import redis_connection as _redis
from jwt_guard.testing import JWKSServer, LocalIssuer, compact

SLOW = 3.0  # seconds the provider takes to answer a JWKS request
KNOWN_RATE = 200  # known-kid requests per second
UNKNOWN_RATE = 4  # unknown-kid requests per second (the figure)
WORKERS = 8  # sync worker threads
OUTAGE = 5.0  # seconds the provider fails in the recovery scenario
REDIS_RATE = 500  # requests per second while Redis is down


@dataclass
class Samples:
    known: list[float] = field(default_factory=list)
    unknown: list[float] = field(default_factory=list)
    outcomes: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, kind: str, seconds: float, outcome: str) -> None:
        with self.lock:
            (self.known if kind == "known" else self.unknown).append(seconds)
            key = f"{kind}:{outcome}"
            self.outcomes[key] = self.outcomes.get(key, 0) + 1


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def outcome_of(call: Callable[[], object]) -> str:
    try:
        call()
    except JWTGuardError as exc:
        return exc.code
    return "ok"


def schedule(duration: float) -> list[tuple[float, str]]:
    """Arrival times of the requests, evenly spaced, known and unknown interleaved."""
    arrivals = [(i / KNOWN_RATE, "known") for i in range(int(duration * KNOWN_RATE))]
    arrivals += [(0.05 + i / UNKNOWN_RATE, "unknown") for i in range(int(duration * UNKNOWN_RATE))]
    return sorted(arrivals)


def setup(idp: LocalIssuer, server: JWKSServer) -> tuple[Verifier, JWKSKeys, list[str]]:
    # cooldown=1: an unknown kid may refetch every second, so slow fetches keep coming.
    source = JWKSKeys(server.url, timeout=SLOW + 2, cooldown=1)
    verifier = idp.verifier(keys=source)
    verifier.prefetch(required=True)
    known = [idp.mint(sub=f"user-{i}", ttl=3600) for i in range(50)]
    return verifier, source, known


def forged(idp: LocalIssuer) -> str:
    return compact({"alg": idp.algorithm, "kid": uuid.uuid4().hex}, idp.claims(), b"\x01" * 64)


def slow_provider_sync(idp: LocalIssuer, server: JWKSServer, duration: float) -> Samples:
    verifier, source, known = setup(idp, server)
    server.delay = SLOW
    samples = Samples()
    work: queue.Queue[tuple[str, str, float] | None] = queue.Queue()

    def worker() -> None:
        while (item := work.get()) is not None:
            kind, token, arrival = item
            outcome = outcome_of(lambda: verifier.verify(token))  # noqa: B023
            samples.add(kind, time.perf_counter() - arrival, outcome)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(WORKERS)]
    for thread in threads:
        thread.start()
    start = time.perf_counter()
    for n, (at, kind) in enumerate(schedule(duration)):
        delay = start + at - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        token = known[n % len(known)] if kind == "known" else forged(idp)
        work.put((kind, token, time.perf_counter()))
    for _ in threads:
        work.put(None)
    for thread in threads:
        thread.join(SLOW * 10)
    server.delay = 0
    source.close()
    return samples


async def slow_provider_async(idp: LocalIssuer, server: JWKSServer, duration: float) -> Samples:
    verifier, source, known = setup(idp, server)
    await verifier.aprefetch(required=True)
    server.delay = SLOW
    samples = Samples()
    tasks: set[asyncio.Task[None]] = set()

    async def one(kind: str, token: str, arrival: float) -> None:
        try:
            await verifier.averify(token)
            outcome = "ok"
        except JWTGuardError as exc:
            outcome = exc.code
        samples.add(kind, time.perf_counter() - arrival, outcome)

    start = time.perf_counter()
    for n, (at, kind) in enumerate(schedule(duration)):
        delay = start + at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        token = known[n % len(known)] if kind == "known" else forged(idp)
        task = asyncio.create_task(one(kind, token, time.perf_counter()))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await asyncio.wait_for(asyncio.gather(*tasks), SLOW * 10)
    server.delay = 0
    await source.aclose()
    return samples


@dataclass
class Recovery:
    outage: dict[str, int] = field(default_factory=dict)
    after: dict[str, int] = field(default_factory=dict)
    first_ok_after: float | None = None


def recovery(idp: LocalIssuer, server: JWKSServer, driver: str, limit: float) -> Recovery:
    # Default cooldown (30 s) and backoff. The key source's clock runs a minute ahead: the
    # set was fetched a minute before the outage, as it would be in production.
    skew = [0.0]
    source = JWKSKeys(server.url, timeout=2, clock=lambda: time.time() + skew[0])
    verifier = idp.verifier(keys=source)
    verifier.prefetch(required=True)
    skew[0] = 60.0
    server.status = 500
    kid = idp.rotate()  # published during the outage: we could not fetch it
    result = Recovery()
    loop = asyncio.new_event_loop() if driver == "async" else None

    def check(token: str) -> str:
        if loop is not None:
            return outcome_of(lambda: loop.run_until_complete(verifier.averify(token)))
        return outcome_of(lambda: verifier.verify(token))

    start = time.perf_counter()
    recovered_at: float | None = None
    while time.perf_counter() - start < OUTAGE + limit:
        now = time.perf_counter()
        if recovered_at is None and now - start >= OUTAGE:
            server.status = 200
            recovered_at = now
        outcome = check(idp.mint(kid=kid))
        bucket = result.outage if recovered_at is None else result.after
        bucket[outcome] = bucket.get(outcome, 0) + 1
        if recovered_at is not None and outcome == "ok":
            result.first_ok_after = time.perf_counter() - recovered_at
            break
        time.sleep(0.1)
    if loop is not None:
        loop.run_until_complete(source.aclose())
        loop.close()
    source.close()
    server.status = 200
    return result


class CountingPort:
    """Listens on the dead Redis's port and closes each connection at once (connections are
    then counted; a refused port counts nothing)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(128)
        self.count = 0
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.count += 1
            conn.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self.thread.join(5)


def redis_down(driver: str, duration: float, interval: bool) -> tuple[Samples, int]:
    """Latencies of denylist checks at REDIS_RATE/s after the denylist's Redis was killed, and
    the connection attempts they made; ``interval=False`` turns the known-down interval off."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    server = subprocess.Popen(
        [
            shutil.which("redis-server") or "redis-server",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--bind",
            "127.0.0.1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    idp = LocalIssuer(algorithm="ES256")
    denylist = RedisDenylist(f"redis://127.0.0.1:{port}/0")
    verifier = idp.verifier(denylist=denylist)
    tokens = [idp.mint(sub=f"user-{i}", ttl=3600) for i in range(50)]
    loop = asyncio.new_event_loop() if driver == "async" else None
    deadline = time.monotonic() + 10
    while True:  # warm: Redis answers, the pool holds connections
        try:
            for token in tokens:
                if loop is not None:
                    loop.run_until_complete(verifier.averify(token))
                else:
                    verifier.verify(token)
            break
        except JWTGuardError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    server.kill()
    server.wait()
    listener = CountingPort(port)
    saved = _redis.DOWN_INTERVAL
    if not interval:
        _redis.DOWN_INTERVAL = 0.0  # type: ignore[misc]
    samples = Samples()
    try:
        start = time.perf_counter()
        for i in range(int(duration * REDIS_RATE)):
            delay = start + i / REDIS_RATE - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            token = tokens[i % len(tokens)]
            began = time.perf_counter()
            if loop is not None:
                outcome = outcome_of(lambda: loop.run_until_complete(verifier.averify(token)))  # noqa: B023
            else:
                outcome = outcome_of(lambda: verifier.verify(token))  # noqa: B023
            samples.add("known", time.perf_counter() - began, outcome)
    finally:
        _redis.DOWN_INTERVAL = saved  # type: ignore[misc]
        time.sleep(0.05)
        listener.close()
        if loop is not None:
            loop.run_until_complete(denylist.aclose())
            loop.close()
        denylist.close()
    return samples, listener.count


def describe(values: list[float]) -> str:
    if not values:
        return "-"
    return (
        f"p50 {percentile(values, 0.5) * 1000:8.1f} ms  p99 {percentile(values, 0.99) * 1000:8.1f}"
        f" ms  max {max(values) * 1000:8.1f} ms  (n={len(values)})"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs (about 25 s in all)")
    parser.add_argument("--redis-only", action="store_true", help="only the Redis-down rows")
    args = parser.parse_args(argv)
    duration = 4.0 if args.quick else 8.0
    limit = 10.0 if args.quick else 30.0
    logging.getLogger("jwt_guard").setLevel(logging.CRITICAL)  # failures are the point here
    if shutil.which("redis-server") is not None:
        seconds = duration / 2
        print(f"Redis down: {REDIS_RATE} denylist checks/s for {seconds:g} s after a kill")
        for driver in ("sync", "async"):
            for interval in (True, False):
                down, attempts = redis_down(driver, seconds, interval)
                label = f"known down for {_redis.DOWN_INTERVAL:g} s" if interval else "no interval"
                print(
                    f"  {driver:5} {label:20} {describe(down.known)}  "
                    f"connection attempts {attempts}  {dict(sorted(down.outcomes.items()))}"
                )
    else:
        print("Redis down: skipped (redis-server is not installed)")
    if args.redis_only:
        return
    idp = LocalIssuer(algorithm="ES256")
    with JWKSServer(lambda: idp.jwks, issuer=idp.issuer) as server:
        print(
            f"slow provider: JWKS answers after {SLOW:g} s; {KNOWN_RATE} known-kid and "
            f"{UNKNOWN_RATE} unknown-kid requests/s for {duration:g} s"
        )
        sync = slow_provider_sync(idp, server, duration)
        print(f"  sync  ({WORKERS} worker threads) known kid   {describe(sync.known)}")
        print(f"                             unknown kid {describe(sync.unknown)}")
        print(f"                             outcomes    {dict(sorted(sync.outcomes.items()))}")
        async_ = asyncio.run(slow_provider_async(idp, server, duration))
        print(f"  async (one event loop)     known kid   {describe(async_.known)}")
        print(f"                             unknown kid {describe(async_.unknown)}")
        print(f"                             outcomes    {dict(sorted(async_.outcomes.items()))}")
        print(f"outage, then recovery: the provider answers 500 for {OUTAGE:g} s")
        for driver in ("sync", "async"):
            result = recovery(idp, server, driver, limit)
            first = (
                f"{result.first_ok_after:.1f} s"
                if result.first_ok_after is not None
                else f"none within {limit:g} s"
            )
            during = dict(sorted(result.outage.items()))
            after = dict(sorted(result.after.items()))
            print(f"  {driver:5} new-kid token during the outage {during}")
            print(f"        after recovery {after}; first accepted {first}")


if __name__ == "__main__":
    main()
