"""The :class:`Verifier`'s options read from environment variables (twelve-factor configuration).

``Verifier.from_env`` and the Flask extension pass them on to ``Verifier(...)``; this module
only reads and checks the variables, so it depends on the key sources but not on the verifier.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Final

from .._core.errors import ConfigurationError
from .._core.keyset import KeySource
from .._core.policy import check_algorithms
from .discovery import OIDCDiscovery
from .jwks import JWKSKeys

__all__ = ["DEFAULT_ALGORITHM", "options_from_env"]

#: The one algorithm jwt_guard picks when none is named: what the demo issuer, ``LocalIssuer``
#: and the ``jwt_issuer`` fixture sign with, and what ``Verifier.from_env`` accepts when
#: ``{prefix}ALGORITHMS`` is unset. ES256: small keys and signatures, no weak-key pitfalls
#: (RFC 7518 §3.4), supported by every identity provider. A verifier still accepts only what it
#: is told: set ``ALGORITHMS=RS256`` for providers that sign with RSA (most do by default).
DEFAULT_ALGORITHM: Final = "ES256"


def _list(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def options_from_env(
    prefix: str = "JWT_GUARD_", environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Read ``{prefix}ISSUER``, ``AUDIENCE`` (comma-separated), ``JWKS_URL`` or
    ``DISCOVERY_URL``, ``ALGORITHMS`` (comma-separated; default :data:`DEFAULT_ALGORITHM`),
    ``LEEWAY``, ``TYP``, ``ROLES_CLAIM`` and ``SCOPES_CLAIM`` (comma-separated paths),
    ``ALLOW_HTTP`` (``1`` to allow plain http).

    Returns the keyword arguments for ``Verifier(...)``. Every problem is reported at once in
    one :class:`ConfigurationError`.
    """
    env = os.environ if environ is None else environ

    def get(name: str) -> str | None:
        value = env.get(prefix + name)
        return value.strip() if value is not None and value.strip() else None

    problems: list[str] = []
    settings: dict[str, Any] = {}
    issuer = get("ISSUER")
    audience = get("AUDIENCE")
    jwks_url = get("JWKS_URL")
    discovery = get("DISCOVERY_URL")
    allow_http = get("ALLOW_HTTP") in ("1", "true", "yes")
    if issuer is None:
        problems.append(f"{prefix}ISSUER is required (the exact 'iss' of your tokens)")
    if audience is None:
        problems.append(f"{prefix}AUDIENCE is required (this API's identifier)")
    if (jwks_url is None) == (discovery is None):
        problems.append(f"set exactly one of {prefix}JWKS_URL or {prefix}DISCOVERY_URL")
    keys: KeySource | None = None
    try:
        if jwks_url is not None and discovery is None:
            keys = JWKSKeys(jwks_url, allow_http=allow_http)
        elif discovery is not None and jwks_url is None:
            keys = OIDCDiscovery(discovery, allow_http=allow_http)
    except ConfigurationError as exc:
        problems.append(f"key source: {exc.description}")
    algorithms = _list(get("ALGORITHMS") or DEFAULT_ALGORITHM)
    try:  # "none", an unknown name: reported with the rest, not after them
        check_algorithms(algorithms)
    except ConfigurationError as exc:
        problems.append(f"{prefix}ALGORITHMS: {exc.description}")
    leeway = get("LEEWAY")
    if leeway is not None:
        try:
            settings["leeway"] = float(leeway)
        except ValueError:
            problems.append(f"{prefix}LEEWAY must be a number of seconds")
    for name, key in (("ROLES_CLAIM", "roles_claim"), ("SCOPES_CLAIM", "scopes_claim")):
        value = get(name)
        if value is not None:
            settings[key] = _list(value)
    typ = get("TYP")
    if typ is not None:
        settings["typ"] = typ
    if problems:
        raise ConfigurationError("invalid configuration: " + "; ".join(problems))
    settings.update(
        keys=keys,
        issuer=issuer,
        audience=_list(audience or ""),
        algorithms=algorithms,
    )
    return settings
