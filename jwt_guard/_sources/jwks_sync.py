"""The sync driver of a remote key set (WSGI, ``Verifier.verify``): threads, single flight.

One daemon thread per fetch and a :class:`threading.Event` that every waiter waits on, for a
bounded time; a lock is held only to start a fetch, never across I/O. The whole fetch runs under
one total deadline (:func:`.deadline.call_with_deadline`), which shuts the fetch's sockets when
it passes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping

import httpx

from .._core.jwks_policy import Action, parse_document
from .._core.keyset import KeySet
from .deadline import DeadlineExceeded, call_with_deadline
from .fetch import Flight, Sockets, SyncGet, new_client
from .jwks_state import SHARED_POLL, WAIT_GRACE, Fetched, JWKSState, SharedCopy

__all__ = ["SyncDriver"]


class SyncDriver(JWKSState):
    """``keys``, ``prefetch``, ``close``: a remote key set driven from threads."""

    def keys(self, kid: str | None) -> KeySet:
        action = self._plan(kid)
        pending = False
        if action is Action.FETCH_AND_WAIT:
            self._start_sync_fetch().wait(self._timeout + WAIT_GRACE)
        elif action is Action.FETCH_FOR_KID:
            pending = not self._start_sync_fetch().wait(self._unknown_kid_wait)
        elif action is Action.USE_AND_REFRESH:
            self._start_sync_fetch()
        return self._current(kid, pending, action)

    def prefetch(self, *, required: bool = False) -> None:
        """Warm the cache. A failure is logged, and raised only when ``required``.

        The fetch runs in this thread (or joins one in flight), and no thread of ours is left
        running: an app that forks after it (gunicorn ``--preload``) forks a single-threaded
        process (Python 3.12+ warns about forking with threads running)."""
        self._wanted_kid = None
        self._start_sync_fetch(here=True).wait(self._timeout + WAIT_GRACE)
        self._check_prefetched(required)

    def close(self) -> None:
        """End a sync fetch in flight (its sockets shut down, its thread joined) and close the
        sync client made here (a client handed in is the caller's)."""
        flight = self._flight
        if flight is not None and flight.thread is not None:
            if not flight.done.is_set():
                flight.sockets.abort()
            # Bounded: the fetch's own deadline, after which it is aborted and ends.
            flight.thread.join(2 * self._timeout + WAIT_GRACE)
        client = self._take_sync_client()
        if client is not None:
            client.close()
        if self._shared is not None:
            # Its sync client made from a URL (made again if another source uses it later).
            self._shared.close()

    def retire(self) -> None:
        """Its tenant left the LRU: a fetch in flight is left to finish (a request waits on
        it) and closes the client when it ends; with none in flight, the client is closed
        now. A request routed here before it was retired may still fetch: that fetch closes
        its client when it ends too."""
        with self._start_lock:
            self._retiring = True
            flight = self._flight
            if flight is not None and not flight.done.is_set():
                return
            client = self._take_sync_client()
        if client is not None:
            client.close()

    def _take_sync_client(self) -> httpx.Client | None:
        """The sync client made here, no longer this source's (a client handed in is the
        caller's, never closed)."""
        client = self._sync_client if self._own_sync else None
        if client is not None:
            self._sync_client = None
        return client

    def _start_sync_fetch(self, *, here: bool = False) -> threading.Event:
        """The event of the sync fetch in flight, started if there is none (single flight):
        in a thread of its own, or ``here`` in the caller's (then over when this returns)."""
        with self._start_lock:
            flight = self._flight
            if flight is not None and not flight.done.is_set():
                return flight.done
            flight = self._flight = Flight()
            if not here:
                flight.thread = threading.Thread(
                    target=self._run_flight, args=(flight,), name="jwt_guard-jwks", daemon=True
                )
        if flight.thread is None:
            self._run_flight(flight)
            return flight.done
        try:
            flight.thread.start()
        except RuntimeError as exc:
            # "can't start new thread": a failed fetch like any other, and nothing stays held
            # (a flight that never ends would stop every later fetch).
            flight.thread = None
            self._fetches += 1
            self._failed(f"cannot start a fetch thread: {exc}", self._source_url())
            flight.done.set()
        return flight.done

    def _run_flight(self, flight: Flight) -> None:
        abandoned = None
        client = None
        try:
            abandoned = self._fetch_sync(flight.sockets)
        finally:
            with self._start_lock:  # against retire(): one of the two closes the client
                flight.done.set()
                if self._retiring:
                    client = self._take_sync_client()
        if client is not None:
            client.close()
        if abandoned is not None:
            # The call the deadline gave up on: its sockets are shut down, so it ends soon.
            # Waiters have their answer already; this thread ends after it, not before.
            abandoned.join(self._timeout)

    def _fetch_sync(self, sockets: Sockets) -> threading.Thread | None:
        """Fetch once, within one total deadline, and update the state. Returns the thread
        the deadline abandoned, if it passed."""
        seen: list[SharedCopy] = []
        try:
            client = self._sync_client
            if client is None:
                client = self._sync_client = new_client(httpx.Client)
            outcome = call_with_deadline(
                lambda: self._fetch_shared_sync(
                    SyncGet(client, self._timeout, self._max_bytes, sockets), seen
                ),
                self._timeout,
                abort=sockets.abort,
            )
        except Exception as exc:
            self._fallback(seen)
            self._fetch_error(exc)
            return exc.worker if isinstance(exc, DeadlineExceeded) else None
        self._record(outcome)
        return None

    def _fetch_shared_sync(self, get: SyncGet, seen: list[SharedCopy]) -> Fetched:
        """The fetch, with a shared cache (see ``JWKSState._adoptable``): its copy when it
        will do, else one worker of the cluster fetches (the lock) while the others keep
        theirs (or, cold, wait a little for its copy)."""
        cache = self._shared
        if cache is None:
            return self._fetch_document_sync(get)[:2]
        key = self._shared_key
        bound, store = self._store_bound, self._store

        def read() -> SharedCopy | None:
            return self._shared_copy(store.call(lambda: cache.get(key), bound, "read"))

        copy = read()
        seen.extend([copy] if copy is not None else [])
        if self._adoptable(copy):
            return copy
        # No answer in time: go ahead as without a shared cache ("").
        token = store.call(lambda: cache.lock(key + ":lock", self._lock_ttl), bound, "lock", "")
        if token is None:  # another worker is fetching
            if copy is not None and self._newer(copy):
                return copy
            if self._usable():
                return None
            until = time.monotonic() + self._timeout / 2
            while time.monotonic() < until:
                time.sleep(SHARED_POLL)
                copy = read()
                if self._newer(copy):
                    return copy
            token = ""  # cold and still nothing: fetch it here
        try:
            if token:  # another worker may have stored its copy since the read above
                copy = read()
                if self._adoptable(copy):
                    return copy
            key_set, headers, body = self._fetch_document_sync(get)
            entry = self._shared_entry(body, headers)
            store.call(lambda: cache.set(key, *entry), bound, "write")
            return key_set, headers
        finally:
            if token:
                store.call(lambda: cache.unlock(key + ":lock", token), bound, "unlock")

    def _fetch_document_sync(self, get: SyncGet) -> tuple[KeySet, Mapping[str, str], bytes]:
        self._fetches += 1
        body, headers = get(self._jwks_url_sync(get))
        return parse_document(body, self._state.key_set), headers, body

    def _jwks_url_sync(self, get: SyncGet) -> str:
        assert self._url is not None
        return self._url
