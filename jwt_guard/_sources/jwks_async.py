"""The async driver of a remote key set (ASGI, ``Verifier.averify``): tasks, single flight.

One ``asyncio`` task per fetch, shared by every waiter of the loop (``asyncio.wait`` and
``shield`` never cancel it for the others); an ``httpx.AsyncClient`` per event loop. The whole
fetch runs under one total deadline (:func:`.deadline.acall_with_deadline`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

import httpx

from .._core.jwks_policy import Action, parse_document
from .._core.keyset import KeySet
from .deadline import acall_with_deadline
from .fetch import AsyncGet, loop_client
from .jwks_state import SHARED_POLL, Fetched, JWKSState, SharedCopy

__all__ = ["AsyncDriver"]


class AsyncDriver(JWKSState):
    """``akeys``, ``aprefetch``, ``aclose``: a remote key set driven from an event loop."""

    async def akeys(self, kid: str | None) -> KeySet:
        action = self._plan(kid)
        pending = False
        if action is Action.FETCH_AND_WAIT:
            await self._wait_for(self._start_async_fetch())
        elif action is Action.FETCH_FOR_KID:
            # asyncio.wait never cancels the shared task: other waiters still get it.
            done, _ = await asyncio.wait(
                {self._start_async_fetch()}, timeout=self._unknown_kid_wait
            )
            pending = not done
        elif action is Action.USE_AND_REFRESH:
            self._start_async_fetch()
        return self._current(kid, pending, action)

    async def aprefetch(self, *, required: bool = False) -> None:
        """Warm the cache without blocking the loop (for an ASGI lifespan)."""
        self._wanted_kid = None
        await self._wait_for(self._start_async_fetch())
        self._check_prefetched(required)

    async def _wait_for(self, task: asyncio.Task[None]) -> None:
        """Wait for the shared fetch. When it is cancelled (its source closed at shutdown)
        and this caller is not, the caller goes on to the key set there is, or 503
        (KeySourceUnavailable), never CancelledError: under a server that is a 500."""
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is None or current.cancelling() or not task.cancelled():
                raise

    async def aretire(self) -> None:
        """Its tenant left the LRU: this loop's fetch in flight is left to finish (a request
        waits on it) and closes the client when it ends; with none in flight, the client is
        closed now (see ``retire`` for the sync side)."""
        self._retiring = True
        loop = asyncio.get_running_loop()
        if not any(t.get_loop() is loop and not t.done() for t in self._background):
            client = self._own_async.pop(loop, None)
            if client is not None:
                await client.aclose()
        self.retire()

    async def aclose(self) -> None:
        """Cancel this loop's background fetches and close its client (lifespan shutdown):
        a task left pending when the loop closes is destroyed with a warning."""
        loop = asyncio.get_running_loop()
        tasks = [t for t in self._background if t.get_loop() is loop and not t.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        client = self._own_async.pop(loop, None)
        if client is not None:
            await client.aclose()
        if self._shared is not None:
            await self._shared.aclose()
        self.close()

    def _start_async_fetch(self) -> asyncio.Task[None]:
        """The in-flight fetch task of this loop, started if there is none (single flight)."""
        task = self._inflight
        loop = asyncio.get_running_loop()
        if task is None or task.done() or task.get_loop() is not loop:
            task = loop.create_task(self._fetch_async())
            self._inflight = task
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        return task

    async def _fetch_async(self) -> None:
        seen: list[SharedCopy] = []
        try:
            get = AsyncGet(self._client_for_loop(), self._timeout, self._max_bytes)
            outcome = await acall_with_deadline(self._fetch_shared_async(get, seen), self._timeout)
        except Exception as exc:
            self._fallback(seen)
            self._fetch_error(exc)
        else:
            self._record(outcome)
        finally:
            if self._retiring:  # retired while in flight: nothing else will close it
                client = self._own_async.pop(asyncio.get_running_loop(), None)
                if client is not None:
                    await client.aclose()

    def _client_for_loop(self) -> httpx.AsyncClient:
        if self._async_client is not None:
            return self._async_client
        return loop_client(self._own_async)

    async def _fetch_shared_async(self, get: AsyncGet, seen: list[SharedCopy]) -> Fetched:
        """The twin of ``SyncDriver._fetch_shared_sync``."""
        cache = self._shared
        if cache is None:
            return (await self._fetch_document_async(get))[:2]
        key = self._shared_key
        bound, store = self._store_bound, self._store

        async def read() -> SharedCopy | None:
            return self._shared_copy(await store.acall(cache.aget(key), bound, "read"))

        copy = await read()
        seen.extend([copy] if copy is not None else [])
        if self._adoptable(copy):
            return copy
        token = await store.acall(cache.alock(key + ":lock", self._lock_ttl), bound, "lock", "")
        if token is None:  # another worker is fetching
            if copy is not None and self._newer(copy):
                return copy
            if self._usable():
                return None
            until = time.monotonic() + self._timeout / 2
            while time.monotonic() < until:
                await asyncio.sleep(SHARED_POLL)
                copy = await read()
                if self._newer(copy):
                    return copy
            token = ""  # cold and still nothing: fetch it here
        try:
            if token:  # another worker may have stored its copy since the read above
                copy = await read()
                if self._adoptable(copy):
                    return copy
            key_set, headers, body = await self._fetch_document_async(get)
            await store.acall(cache.aset(key, *self._shared_entry(body, headers)), bound, "write")
            return key_set, headers
        finally:
            if token:
                await store.acall(cache.aunlock(key + ":lock", token), bound, "unlock")

    async def _fetch_document_async(self, get: AsyncGet) -> tuple[KeySet, Mapping[str, str], bytes]:
        self._fetches += 1
        body, headers = await get(await self._jwks_url_async(get))
        return parse_document(body, self._state.key_set), headers, body

    async def _jwks_url_async(self, get: AsyncGet) -> str:
        assert self._url is not None
        return self._url
