"""OpenTelemetry metrics: ``pip install "jwt_guard[otel]"``, only ``opentelemetry-api`` to run.

- ``jwt_guard.verifications`` (counter): ``jwt_guard.outcome`` (``valid`` or the error code)
  and ``jwt_guard.source`` (``header``, ``cookie``, ``query``, ``none``);
- ``jwt_guard.verification.duration`` (histogram, s): fresh verifications (cache misses: parse,
  key set, signature, claims), by ``jwt_guard.outcome``;
- ``jwt_guard.cache.lookups`` (counter): ``jwt_guard.cache.hit`` (true or false);
- ``jwt_guard.jwks.fetches`` (counter): ``jwt_guard.key_source`` (its URL) and
  ``jwt_guard.outcome`` (``success`` or ``failure``);
- ``jwt_guard.jwks.stale_serves`` (counter): ``jwt_guard.key_source``;
- ``jwt_guard.denylist.errors`` (counter): ``jwt_guard.store`` (``redis`` or ``memory``);
- ``jwt_guard.introspection.calls`` (counter): ``jwt_guard.endpoint`` (its URL) and
  ``jwt_guard.outcome`` (``active``, ``inactive`` or ``failure``; RFC 7662);
- ``jwt_guard.introspection.duration`` (histogram, s): each call, by the same attributes;
- ``jwt_guard.introspection.skipped`` (counter): calls not made, answered 503 at once, by
  ``jwt_guard.endpoint`` and ``jwt_guard.reason`` (``cooldown``: the endpoint failed lately;
  ``max_concurrent_calls``: too many calls in flight);
- ``jwt_guard.introspection.cache.lookups`` (counter): ``jwt_guard.cache.hit``.

Cost. An SDK ``Counter.add`` costs microseconds, as much as a whole cached verification, so
the two per-request counters (verifications, cache lookups) are counted here in plain integers
(one C-level increment each) and reported through observable counters when a reader collects;
the duration histogram is recorded only for fresh verifications, where a signature check
dwarfs it.
Without the API installed, or with ``Verifier(metrics=False)``, nothing here runs: the callers
hold ``None`` and test it, one attribute check per request.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any, Final

from .errors import ConfigurationError
from .extras import install_line

try:  # the optional [otel] extra
    from opentelemetry import metrics as _otel
except ImportError:  # pragma: no cover - exercised in a subprocess without the package
    _otel = None  # type: ignore[assignment]

__all__ = ["OTEL_AVAILABLE", "Metrics", "default_metrics", "resolve_metrics"]

OTEL_AVAILABLE: Final = _otel is not None
_VERSION: Final = "0.1.0"
#: Histogram boundaries, in seconds.
DURATION_BUCKETS: Final = (
    0.00002, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
_HIT: Final = {"jwt_guard.cache.hit": True}
_MISS: Final = {"jwt_guard.cache.hit": False}


class Metrics:
    """The jwt_guard instruments on one OpenTelemetry meter provider.

    ``Metrics()`` uses the global provider (``opentelemetry.metrics.set_meter_provider``);
    ``Metrics(meter_provider=provider)`` another one. Pass it as ``Verifier(metrics=...)``.
    """

    def __init__(self, meter_provider: Any = None) -> None:
        if _otel is None:
            raise ConfigurationError(
                f"metrics need OpenTelemetry: {install_line('otel')} (or metrics=False)"
            )
        if meter_provider is None:
            meter = _otel.get_meter("jwt_guard", _VERSION)
        else:
            meter = meter_provider.get_meter("jwt_guard", _VERSION)
        # Per-request counts: valid verifications by source, failures by (code, source), and
        # cache lookups [misses, hits]. Each count is one "+= 1" on a dict or a list with no
        # Python code inside it, which CPython's GIL does not interleave: exact without a lock
        # (a free-threaded build may lose a rare increment). Read when a reader collects.
        self.valid: defaultdict[str, int] = defaultdict(int)
        self.failed: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.lookups = [0, 0]
        meter.create_observable_counter(
            "jwt_guard.verifications",
            callbacks=[self._observe_verifications],
            unit="{verification}",
            description="Token verifications, by outcome (valid or the error code) and source",
        )
        meter.create_observable_counter(
            "jwt_guard.cache.lookups",
            callbacks=[self._observe_lookups],
            unit="{lookup}",
            description="Verified-token cache lookups (jwt_guard.cache.hit: true or false)",
        )
        self._duration = meter.create_histogram(
            "jwt_guard.verification.duration",
            unit="s",
            description="Time of a fresh verification (parse, key set, signature, claims)",
            # Seconds: from a 20 µs signature check to a key fetch hitting its timeout.
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self._jwks_fetches = meter.create_counter(
            "jwt_guard.jwks.fetches",
            unit="{fetch}",
            description="JWKS (and discovery) fetches, by key source and outcome",
        )
        self._jwks_stale = meter.create_counter(
            "jwt_guard.jwks.stale_serves",
            unit="{request}",
            description="Requests answered with a key set past its TTL (the provider failing)",
        )
        self._denylist_errors = meter.create_counter(
            "jwt_guard.denylist.errors",
            unit="{error}",
            description="Revocation store errors (a request refused, or let through fail-open)",
        )
        self._introspections = meter.create_counter(
            "jwt_guard.introspection.calls",
            unit="{call}",
            description="Token introspection calls (RFC 7662), by endpoint and outcome",
        )
        self._introspection_duration = meter.create_histogram(
            "jwt_guard.introspection.duration",
            unit="s",
            description="Time of a token introspection call, by endpoint and outcome",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self._introspections_skipped = meter.create_counter(
            "jwt_guard.introspection.skipped",
            unit="{call}",
            description="Token introspection calls not made (503 at once), by endpoint and "
            "reason: cooldown or max_concurrent_calls",
        )
        #: Introspection cache lookups [misses, hits], counted like ``lookups``.
        self.introspection_lookups = [0, 0]
        meter.create_observable_counter(
            "jwt_guard.introspection.cache.lookups",
            callbacks=[self._observe_introspection_lookups],
            unit="{lookup}",
            description="Introspection cache lookups (jwt_guard.cache.hit: true or false)",
        )
        self._attributes: dict[tuple[str, ...], Mapping[str, Any]] = {}

    def __repr__(self) -> str:
        return "Metrics()"

    def _attrs(self, *pairs: str) -> Mapping[str, Any]:
        # Built once per distinct set: the values are our codes, sources and configured URLs.
        attrs = self._attributes.get(pairs)
        if attrs is None:
            attrs = self._attributes[pairs] = dict(zip(pairs[::2], pairs[1::2], strict=True))
        return attrs

    # -- per request: plain integers ------------------------------------------------------------

    def verification(self, outcome: str, source: str) -> None:
        """Count one verification (the adapters bump ``valid`` inline on the cached path)."""
        if outcome == "valid":
            self.valid[source] += 1
        else:
            self.failed[(outcome, source)] += 1

    def _observe_verifications(self, options: Any) -> Iterable[Any]:
        counts = [(("valid", k), v) for k, v in list(self.valid.items())]
        counts += list(self.failed.items())
        for (outcome, source), count in counts:
            attrs = self._attrs("jwt_guard.outcome", outcome, "jwt_guard.source", source)
            yield _otel.Observation(count, attrs)

    def _observe_lookups(self, options: Any) -> Iterable[Any]:
        misses, hits = self.lookups
        yield _otel.Observation(hits, _HIT)
        yield _otel.Observation(misses, _MISS)

    def introspection_lookup(self, hit: bool) -> None:
        """Count one lookup of the introspection cache: a hit or a miss."""
        self.introspection_lookups[hit] += 1

    def _observe_introspection_lookups(self, options: Any) -> Iterable[Any]:
        misses, hits = self.introspection_lookups
        yield _otel.Observation(hits, _HIT)
        yield _otel.Observation(misses, _MISS)

    # -- off the cached path: the instruments directly ---------------------------------------------

    def fresh_verification(self, outcome: str, seconds: float) -> None:
        """Record one verification that was not a cache hit: its outcome and its duration."""
        self._duration.record(seconds, self._attrs("jwt_guard.outcome", outcome))

    def jwks_fetch(self, source: str, ok: bool) -> None:
        """Count one fetch of a key set or metadata document, and whether it succeeded."""
        outcome = "success" if ok else "failure"
        self._jwks_fetches.add(
            1, self._attrs("jwt_guard.key_source", source, "jwt_guard.outcome", outcome)
        )

    def jwks_shared_hit(self, source: str) -> None:
        """A key set taken from the shared cache (RedisCache) instead of a fetch."""
        self._jwks_fetches.add(
            1, self._attrs("jwt_guard.key_source", source, "jwt_guard.outcome", "shared")
        )

    def jwks_stale_serve(self, source: str) -> None:
        """Count one request served from a stale key set while its source is failing."""
        self._jwks_stale.add(1, self._attrs("jwt_guard.key_source", source))

    def introspection_call(self, endpoint: str, outcome: str, seconds: float) -> None:
        """Record one call to an introspection endpoint: its outcome and its duration."""
        attrs = self._attrs("jwt_guard.endpoint", endpoint, "jwt_guard.outcome", outcome)
        self._introspections.add(1, attrs)
        self._introspection_duration.record(seconds, attrs)

    def introspection_skipped(self, endpoint: str, reason: str) -> None:
        """Count an introspection call not made, answered 503 at once.

        ``reason`` is ``cooldown`` (the endpoint failed lately) or ``max_concurrent_calls``
        (too many calls in flight).
        """
        attrs = self._attrs("jwt_guard.endpoint", endpoint, "jwt_guard.reason", reason)
        self._introspections_skipped.add(1, attrs)

    def denylist_error(self, store: str) -> None:
        """Count one denylist lookup that failed (the request got a 503)."""
        self._denylist_errors.add(1, self._attrs("jwt_guard.store", store))


_default: Metrics | None = None


def default_metrics() -> Metrics | None:
    """The instruments on the global meter provider, or ``None`` without OpenTelemetry."""
    global _default
    if _default is None and _otel is not None:
        _default = Metrics()
    return _default


def resolve_metrics(value: object) -> Metrics | None:
    """``Verifier(metrics=...)``: ``True`` (on when OpenTelemetry is installed), ``False``, or
    a :class:`Metrics`."""
    if value is True:
        return default_metrics()
    if value is False:
        return None
    if isinstance(value, Metrics):
        return value
    raise ConfigurationError("metrics must be True, False or a jwt_guard.Metrics")
