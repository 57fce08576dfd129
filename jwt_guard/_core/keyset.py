"""Key selection: which loaded keys may verify a token with this ``kid`` and ``alg``.

A :class:`KeySet` answers that question without any I/O. A key *source*
(:class:`KeySource`) hands the verifier a key set: :class:`StaticKeys` always the same one,
the remote JWKS source (``_sources.jwks``) a cached one that it refreshes. Selection is the
same code for both, as panva/jose keeps ``jwks/local`` apart from ``jwks/remote``. Loading and
checking the keys is ``keys``' job.
"""

from __future__ import annotations

import abc
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final

from .algorithms import ALGORITHMS
from .errors import AlgorithmNotAllowed, ConfigurationError, KeyNotFound, safe_value
from .keys import JWK, Skipped, load_jwks, load_key, read_jwks
from .metrics import Metrics

__all__ = ["KeySet", "KeySource", "StaticKeys", "unfit"]

logger = logging.getLogger("jwt_guard")

#: Tokens without ``kid`` are tried against at most this many fitting keys, so a flood of
#: kid-less tokens cannot multiply the signature checks per request.
MAX_KIDLESS_CANDIDATES: Final = 4


class KeySet:
    """An immutable set of keys with lookup by ``kid`` and algorithm."""

    __slots__ = (
        "_by_kid",
        "_fingerprints",
        "_memo",
        "_skipped",
        "algorithms",
        "keys",
        "skipped_entries",
    )

    def __init__(self, keys: Iterable[JWK]) -> None:
        self.keys: tuple[JWK, ...] = tuple(keys)
        by_kid: dict[str, list[JWK]] = {}
        for key in self.keys:
            if key.kid is not None:
                by_kid.setdefault(key.kid, []).append(key)
        self._by_kid = {kid: tuple(found) for kid, found in by_kid.items()}
        self._fingerprints = frozenset(k.fingerprint for k in self.keys)
        #: The algorithms the keys are for, each key its own (``JWK.own_algorithm``): what a
        #: policy that follows the keys accepts.
        self.algorithms: frozenset[str] = frozenset(
            k.own_algorithm
            for k in self.keys
            if k.own_algorithm is not None and k.fits(k.own_algorithm)
        )
        # (kid, alg) -> candidates, filled only for kids in the set (and no kid), so tokens
        # with made-up kids cannot grow it.
        self._memo: dict[tuple[str | None, str, bool], tuple[JWK, ...]] = {}
        # Why a kid this set lacks was not looked for again (see skipped_refetch).
        self._skipped: Callable[[], Mapping[str, Any]] | None = None
        #: The entries of the JWKS document left out (from_jwks): the source logs them.
        self.skipped_entries: tuple[Skipped, ...] = ()

    def __len__(self) -> int:
        return len(self.keys)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, JWK) and key.fingerprint in self._fingerprints

    def __repr__(self) -> str:
        return f"KeySet({len(self.keys)} keys)"

    @property
    def key_ids(self) -> tuple[str, ...]:
        """The ``kid`` of every key, sorted."""
        return tuple(sorted(self._by_kid))

    def has_kid(self, kid: str) -> bool:
        """Whether a key has this ``kid``."""
        return kid in self._by_kid

    def skipped_refetch(self, why: Callable[[], Mapping[str, Any]]) -> KeySet:
        """This set, for a token whose kid it lacks and whose refetch the source skipped.

        The source skipped it for its cooldown or backoff: a miss then says so with ``why``'s
        facts, instead of reading as "the provider has no such key". The keys, lookups and memo
        are shared."""
        view = object.__new__(KeySet)
        view.keys, view._by_kid, view.algorithms = self.keys, self._by_kid, self.algorithms
        view._fingerprints, view._memo = self._fingerprints, self._memo
        view._skipped, view.skipped_entries = why, self.skipped_entries
        return view

    def candidates(self, kid: str | None, alg: str, own: bool = False) -> Sequence[JWK]:
        """The keys that may verify a token with this header; raises :class:`KeyNotFound`.

        ``own``: algorithms follow the keys, so a key verifies only its own algorithm
        (``JWK.own_algorithm``: an RSA key without ``alg`` RS256, never PS256), and an ``alg``
        no key is for is :class:`AlgorithmNotAllowed`."""
        memo = self._memo.get((kid, alg, own))
        if memo:
            return memo
        if memo is not None or alg not in ALGORITHMS:
            raise self._not_found(kid, alg, own)
        found = self._select(kid, alg, own)
        if kid is None or kid in self._by_kid:
            self._memo[(kid, alg, own)] = found
        if not found:
            raise self._not_found(kid, alg, own)
        return found

    def _not_found(self, kid: str | None, alg: str, own: bool) -> KeyNotFound | AlgorithmNotAllowed:
        # Built when read (a flood of random kids builds none while its log lines are dropped).
        if own and alg not in self.algorithms and (kid is None or kid in self._by_kid):
            # No key is for this algorithm. (A kid the set lacks is key_not_found instead: a
            # new key of a new type may be on its way, see skipped_refetch.)
            return AlgorithmNotAllowed(detail=lambda: self._not_allowed_detail(alg))
        return KeyNotFound(detail=lambda: self._not_found_detail(kid, alg, own))

    def _not_allowed_detail(self, alg: str) -> dict[str, Any]:
        return {
            "alg": safe_value(alg),
            "allowed": sorted(self.algorithms),
            "reason": "no algorithms configured: the keys' own are allowed (each key's 'alg', "
            "else the one its type and curve imply)",
        }

    def _not_found_detail(self, kid: str | None, alg: str, own: bool = False) -> dict[str, Any]:
        detail: dict[str, Any] = {"kid": kid, "alg": alg, "key_set_kids": list(self.key_ids)}
        if kid is not None and kid in self._by_kid:
            detail["reason"] = "the key with this kid does not fit the algorithm"
            if own:
                detail["key_algs"] = sorted(
                    {k.own_algorithm for k in self._by_kid[kid] if k.own_algorithm}
                )
        elif kid is None and self.keys:
            detail["reason"] = "no key without a kid fits the algorithm"
        elif self._skipped is not None:
            # Not "the provider lacks the key": we did not ask it again (yet).
            detail.update(self._skipped())
        return {k: safe_value(v) for k, v in detail.items()}

    def _select(self, kid: str | None, alg: str, own: bool) -> tuple[JWK, ...]:
        def fits(key: JWK) -> bool:
            # RFC 8725 §3.1: with algorithms following the keys, each key has exactly one.
            return key.fits(alg) and (not own or key.own_algorithm == alg)

        if kid is not None:
            found = [k for k in self._by_kid.get(kid, ()) if fits(k)]
            if not found and kid not in self._by_kid:
                # A key configured without a kid (a PEM key, say) is not bound to any kid:
                # it may verify tokens whatever kid their issuer put in the header.
                found = [k for k in self.keys if k.kid is None and fits(k)]
                found = found[:MAX_KIDLESS_CANDIDATES]
        else:
            found = [k for k in self.keys if fits(k)][:MAX_KIDLESS_CANDIDATES]
        return tuple(found)

    @classmethod
    def from_jwks(
        cls,
        document: Mapping[str, Any],
        *,
        allow_symmetric: bool,
        strict: bool,
        reuse: KeySet | None = None,
        max_keys: int = 100,
    ) -> KeySet:
        """Build a key set from a JWKS document (RFC 7517 §5).

        ``strict`` raises on the first bad entry (static configuration); otherwise bad
        entries are left out, listed in ``skipped_entries`` for the source to log (a remote
        document, where one odd key must not take the others down). Keys sharing a ``kid``
        are refused either way, unless no algorithm fits more than one of them (RFC 7517
        §4.5: an RSA and an EC key, say).
        """
        skipped: list[Skipped] = []
        loaded = load_jwks(
            document,
            allow_symmetric=allow_symmetric,
            strict=strict,
            reuse=reuse.keys if reuse is not None else (),
            max_keys=max_keys,
            skipped=skipped,
        )
        duplicated = _ambiguous(loaded)
        if duplicated:
            if strict:
                raise ConfigurationError(
                    "JWKS has several keys with the same kid for the same algorithm"
                )
            # RFC 7517 §4.5: kids are meant to be distinct, except for keys of different types
            # that are alternatives (an RSA and an EC key, say): a token's kid *and* alg pick
            # one of those. Two keys that could verify the same alg under one kid are
            # ambiguous: neither is trusted.
            logger.warning("refusing %d JWKS keys with ambiguous kids", len(duplicated))
            loaded = [k for k in loaded if all(k is not d for d in duplicated)]
        key_set = cls(loaded)
        key_set.skipped_entries = tuple(skipped)
        return key_set


def _ambiguous(keys: Sequence[JWK]) -> list[JWK]:
    """Keys sharing a kid with another key that fits one same algorithm (RFC 7517 §4.5)."""
    by_kid: dict[str, list[JWK]] = {}
    for key in keys:
        if key.kid is not None:
            by_kid.setdefault(key.kid, []).append(key)
    ambiguous: list[JWK] = []
    for group in by_kid.values():
        if len(group) > 1:
            for alg in ALGORITHMS:
                fitting = [key for key in group if key.fits(alg)]
                if len(fitting) > 1:
                    ambiguous.extend(k for k in fitting if all(k is not a for a in ambiguous))
    return ambiguous


def unfit(key_set: KeySet, algorithms: frozenset[str], where: str) -> str | None:
    """The warning for a published key set none of whose keys fits the algorithms in force
    (``None`` when one does): no token could verify, and only the keys say why."""
    if any(key.fits(alg) for key in key_set.keys for alg in algorithms):
        return None
    published = sorted(key_set.algorithms)
    if not published:
        return f"{where} publishes no signing key jwt_guard can use: no token can verify"
    named = ",".join(published)
    return (
        f"{where} publishes only {'/'.join(published)} keys but algorithms="
        f"{sorted(algorithms)}: no token can verify; set algorithms={published} "
        f"(JWT_GUARD_ALGORITHMS={named}), or leave them unset to accept the keys' own"
    )


class KeySource(abc.ABC):
    """Where a verifier gets its keys: a static set, or a remote JWKS with a cache.

    ``keys(kid)`` / ``akeys(kid)`` return the key set to use for a token with that ``kid``,
    doing any I/O that is needed (sync and async drivers); a static source needs none.
    """

    #: ``True`` when the source hands out one key set for ever (:class:`StaticKeys`): a hit of
    #: the verified-token cache then needs no key-set check (the key it verified with is in it).
    fixed: bool = False
    #: ``True`` for keys their issuer publishes (a JWKS URL, discovery): a verifier that names
    #: no algorithms then accepts each key's own (``JWK.own_algorithm``; RFC 8725 §3.1).
    published: bool = False

    @property
    def pinned_issuers(self) -> tuple[str, ...] | None:
        """The ``iss`` values a verifier without ``issuer=`` accepts from this source's keys.

        ``None``: any. OIDC discovery pins the discovered issuer; a source of your own may pin
        its issuers by overriding this property."""
        return None

    def ready(self, kid: str | None) -> KeySet | None:
        """The key set, when it can be used right now without any I/O or background work.

        ``None`` sends the caller to :meth:`keys` / :meth:`akeys`. (A fast path: it saves the
        async driver a coroutine per request.)"""
        return None

    @property
    def loaded(self) -> KeySet | None:
        """The key set held now, fresh or not, with no I/O (``None``: none yet).

        What a refusal's detail says the keys allow."""
        return self.ready(None)

    @abc.abstractmethod
    def keys(self, kid: str | None) -> KeySet:
        """The key set for a token with this kid (may block on a fetch)."""

    @abc.abstractmethod
    async def akeys(self, kid: str | None) -> KeySet:
        """The key set for a token with this kid, without blocking the event loop."""

    def prefetch(self, *, required: bool = False) -> None:  # noqa: B027 - optional hook
        """Warm the cache (sync); raise only if ``required`` and no keys could be had."""

    async def aprefetch(self, *, required: bool = False) -> None:  # noqa: B027
        """Warm the cache (async); raise only if ``required`` and no keys could be had."""

    def close(self) -> None:  # noqa: B027
        """Release network resources."""

    async def aclose(self) -> None:  # noqa: B027
        """Release network resources (async)."""

    def retire(self) -> None:
        """Stop using this source without failing a request that still waits on it.

        Called when its tenant leaves the verifier's LRU: a remote source lets a fetch in flight
        finish and closes its client after. By default, :meth:`close`."""
        self.close()

    async def aretire(self) -> None:
        """:meth:`retire` from an event loop. By default, :meth:`aclose`."""
        await self.aclose()

    def inherit(self, previous: KeySource) -> None:  # noqa: B027 - optional hook
        """Take over the cache of ``previous``, a retired source for the same keys.

        Its tenant came back: no fetch before its cache and cooldown say so. By default, none."""

    #: The verifier's instruments, when metrics are on (see ``use_metrics``).
    _metrics: Metrics | None = None

    def use_metrics(self, metrics: Metrics) -> None:
        """Count fetches and stale serves on ``metrics`` (the verifier calls this)."""
        self._metrics = metrics

    def check_policy(  # noqa: B027 - optional hook
        self, algorithms: frozenset[str], issuers: frozenset[str] | None
    ) -> None:
        """Raise :class:`ConfigurationError` when no token could ever verify with this source.

        Under these algorithms and issuers; called once, when a verifier is built."""


class StaticKeys(KeySource):
    """Keys given in configuration: PEM keys, JWKs, a JWKS document or HMAC secrets.

    ``StaticKeys(keys)`` takes :class:`JWK` objects, PEM strings/bytes or JWK dicts; the
    ``from_*`` constructors cover the common cases. Everything is loaded by ``keys`` with
    the same checks, at construction, and a bad key raises :class:`ConfigurationError`.
    """

    def __init__(self, keys: Iterable[JWK | str | bytes | Mapping[str, Any]]) -> None:
        loaded: list[JWK] = []
        if isinstance(keys, (str, bytes, Mapping, JWK)):
            keys = [keys]
        for item in keys:
            try:
                loaded.append(load_key(item))
            except (ValueError, TypeError) as exc:
                raise ConfigurationError(f"invalid key: {exc}") from exc
        if not loaded:
            raise ConfigurationError("StaticKeys needs at least one key")
        if _ambiguous(loaded):
            # RFC 7517 §4.5: a kid may be shared only by keys no algorithm fits twice.
            raise ConfigurationError("several keys share a kid for the same algorithm")
        self._set = KeySet(loaded)

    fixed = True  # _set is made once, here, and never replaced

    def __repr__(self) -> str:
        return f"StaticKeys({len(self._set)} keys)"

    @property
    def key_set(self) -> KeySet:
        """The keys, as one :class:`KeySet`."""
        return self._set

    @classmethod
    def from_pem(
        cls, *pems: str | bytes, kid: str | None = None, algorithm: str | None = None
    ) -> StaticKeys:
        """One or more PEM public keys or certificates (``kid``/``algorithm`` bind a single key)."""
        if len(pems) > 1 and kid is not None:
            raise ConfigurationError("kid can only be given for a single key")
        try:
            return cls([JWK.from_pem(p, kid=kid, algorithm=algorithm) for p in pems])
        except ValueError as exc:
            if isinstance(exc, ConfigurationError):
                raise
            raise ConfigurationError(f"invalid PEM key: {exc}") from exc

    @classmethod
    def from_jwks(cls, document: Mapping[str, Any] | str | bytes | os.PathLike[str]) -> StaticKeys:
        """A JWKS document: a dict, its JSON text, or the path of a JSON file."""
        try:
            key_set = KeySet.from_jwks(read_jwks(document), allow_symmetric=True, strict=True)
        except ConfigurationError:
            raise
        except (OSError, ValueError) as exc:
            raise ConfigurationError(f"cannot read the JWKS document: {exc}") from exc
        return cls(key_set.keys)

    @classmethod
    def from_secret(
        cls,
        secret: str | bytes,
        *,
        algorithm: str | None = "HS256",
        kid: str | None = None,
    ) -> StaticKeys:
        """An HMAC secret of at least 32 bytes (RFC 7518 §3.2)."""
        try:
            return cls([JWK.from_secret(secret, algorithm=algorithm, kid=kid)])
        except ValueError as exc:
            if isinstance(exc, ConfigurationError):
                raise
            raise ConfigurationError(f"invalid HMAC secret: {exc}") from exc

    def check_policy(self, algorithms: frozenset[str], issuers: frozenset[str] | None) -> None:
        keys = self._set.keys
        if any(key.fits(alg) for key in keys for alg in algorithms):
            return
        # Name what the keys are and which algorithms would fit them.
        kinds = sorted({f"{k.kty}{'/' + k.crv if k.crv else ''}" for k in keys})
        fitting = sorted({alg for alg in ALGORITHMS for key in keys if key.fits(alg)})
        raise ConfigurationError(
            f"no configured key can verify {sorted(algorithms)}: the keys are {kinds}; "
            + (
                f"allow one of {fitting} or give keys for the algorithms"
                if fitting
                else "give keys that fit the algorithms (an HMAC secret long enough, a JWK "
                "whose 'alg' is listed, ...)"
            )
        )

    def ready(self, kid: str | None) -> KeySet | None:
        return self._set

    def keys(self, kid: str | None) -> KeySet:
        return self._set

    async def akeys(self, kid: str | None) -> KeySet:
        return self._set
