"""The :class:`Verifier`'s options read from environment variables (twelve-factor configuration).

``Verifier.from_env`` and the Flask extension pass them on to ``Verifier(...)``; this module
only reads and checks the variables, so it depends on the key sources but not on the verifier.
A variable with the prefix that no option reads (``JWT_GUARD_ALGORITHM`` for
``JWT_GUARD_ALGORITHMS``) is refused with the closest name (:func:`unknown_settings`): a typo
must not leave a default in force without a word.
"""

from __future__ import annotations

import difflib
import fnmatch
import os
from collections.abc import Collection, Iterable, Mapping
from typing import Any, Final

from .._core.errors import ConfigurationError
from .._core.extras import MissingExtra
from .._core.keyset import KeySource
from .._core.policy import check_algorithms
from .._core.profiles import resolve_profile
from .discovery import OIDCDiscovery
from .jwks import JWKSKeys
from .redis_cache import RedisCache

__all__ = [
    "DEFAULT_ALGORITHM",
    "ENV_NAMES",
    "OPTION_VARIABLES",
    "TOOLING_NAMES",
    "options_from_env",
    "overridden_settings",
    "unknown_settings",
]

#: The one algorithm jwt_guard signs with when none is named: the demo issuer, ``LocalIssuer``
#: and the ``jwt_issuer`` fixture. ES256: small keys and signatures, no weak-key pitfalls
#: (RFC 7518 §3.4), supported by every identity provider. A verifier never picks one: named
#: algorithms are accepted, or else (keys from a JWKS URL or discovery) each key's own.
DEFAULT_ALGORITHM: Final = "ES256"


#: Every variable :func:`options_from_env` reads, after the prefix; it reads no other (``get``
#: refuses a name not listed), so the unknown-name check cannot drift from the code.
ENV_NAMES: Final = (
    "ISSUER",
    "AUDIENCE",
    "JWKS_URL",
    "DISCOVERY_URL",
    "ALGORITHMS",
    "LEEWAY",
    "TYP",
    "PROFILE",
    "ROLES_CLAIM",
    "SCOPES_CLAIM",
    "ALLOW_HTTP",
    "SHARED_CACHE_URL",
    "MTLS",
)

#: Variables with the default prefix that this repository's own scripts and tests read, never
#: an app (``JWT_GUARD_PYTHON=python3.12 bash scripts/test-env.sh``, the fuzz campaign's size,
#: the browser tests' screenshots): set in a developer's shell, they are not typos.
TOOLING_NAMES: Final = frozenset({"PYTHON", "FUZZ_EXAMPLES", "SCREENSHOT", "DOCS_SCREENSHOT"})


def unknown_settings(
    names: Iterable[str],
    prefix: str,
    known: Collection[str],
    ignore: Collection[str] = (),
    *,
    where: str = "",
) -> list[str]:
    """One problem for each of ``names`` that starts with ``prefix`` (in any case) but is not
    ``prefix`` + one of ``known``, with the closest known name (difflib) or the list of them.

    ``ignore`` holds names or shell-style patterns (``"JWT_GUARD_OTHER_TOOL_*"``) another
    program reads under the same prefix. An empty prefix checks nothing: every variable of
    the environment would be "unknown".
    """
    if not prefix:
        return []
    upper = prefix.upper()
    known_names = {prefix + name for name in known}
    problems = []
    for name in sorted(names):
        if name in known_names or not name.upper().startswith(upper):
            continue
        if prefix == "JWT_GUARD_" and name[len(prefix) :] in TOOLING_NAMES:
            continue
        if any(fnmatch.fnmatchcase(name, pattern) for pattern in ignore):
            continue
        rest = name[len(prefix) :].upper()
        close = difflib.get_close_matches(rest, list(known), n=1, cutoff=0.6)
        if close:
            hint = f"did you mean {prefix}{close[0]}?"
        else:
            hint = "known: " + ", ".join(prefix + k for k in known)
        problems.append(f"{name}{where} is not a jwt_guard setting ({hint})")
    return problems


#: The variables (after the prefix) that give each ``Verifier`` option :func:`options_from_env`
#: returns: a keyword argument to ``Verifier.from_env`` for the option replaces them.
OPTION_VARIABLES: Final = {
    "issuer": ("ISSUER",),
    "audience": ("AUDIENCE",),
    "keys": ("JWKS_URL", "DISCOVERY_URL"),
    "algorithms": ("ALGORITHMS",),
    "leeway": ("LEEWAY",),
    "typ": ("TYP",),
    "profile": ("PROFILE",),
    "roles_claim": ("ROLES_CLAIM",),
    "scopes_claim": ("SCOPES_CLAIM",),
    "mtls": ("MTLS",),
}


def _same(read: Any, given: Any) -> bool:
    """Whether a keyword argument says what the variable said (a list read from a
    comma-separated variable and one string or any sequence of the same strings)."""
    if isinstance(given, str) and isinstance(read, list):
        return read == [given]
    if isinstance(given, (list, tuple)) and isinstance(read, list):
        return read == list(given)
    if isinstance(read, float) and isinstance(given, (int, float)) and not isinstance(given, bool):
        return read == given
    return bool(read == given)


def overridden_settings(
    options: Mapping[str, Any],
    overrides: Mapping[str, Any],
    prefix: str = "JWT_GUARD_",
    environ: Mapping[str, str] | None = None,
) -> list[str]:
    """One line for each keyword argument to ``Verifier.from_env`` that replaces a set
    variable with another value: the variable and the argument by name, never their values
    (an issuer or URL may be internal). A key source is never the same as the URL's."""
    env = os.environ if environ is None else environ
    lines = []
    for option, given in overrides.items():
        names = [
            prefix + name
            for name in OPTION_VARIABLES.get(option, ())
            if (env.get(prefix + name) or "").strip()
        ]
        if names and not _same(options.get(option), given):
            lines.append(
                f"{option}= given to Verifier.from_env() replaces {' and '.join(names)} from the "
                f"environment, which says otherwise: the keyword argument wins (drop one of them)"
            )
    return lines


def _list(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def options_from_env(
    prefix: str = "JWT_GUARD_",
    environ: Mapping[str, str] | None = None,
    *,
    ignore_unknown: Collection[str] = (),
) -> dict[str, Any]:
    """Read ``{prefix}ISSUER``, ``AUDIENCE`` (comma-separated), ``JWKS_URL`` or
    ``DISCOVERY_URL``, ``ALGORITHMS`` (comma-separated; unset: each published key's own),
    ``LEEWAY``, ``TYP``, ``PROFILE`` (comma-separated names, e.g. ``rfc9068``), ``ROLES_CLAIM``
    and ``SCOPES_CLAIM`` (comma-separated paths),
    ``ALLOW_HTTP`` (``1`` to allow plain http), ``SHARED_CACHE_URL`` (a ``redis://`` URL: the
    key source's documents shared by every worker, :class:`RedisCache`), ``MTLS`` (``1`` to
    check certificate-bound tokens, RFC 8705).

    Returns the keyword arguments for ``Verifier(...)``. Every problem is reported at once in
    one :class:`ConfigurationError`; among them, each variable with the prefix that is none of
    these, with the closest name (``ignore_unknown``: names or patterns another program reads
    under the same prefix).
    """
    env = os.environ if environ is None else environ

    def get(name: str) -> str | None:
        if name not in ENV_NAMES:  # the list the unknown-name check trusts
            raise KeyError(f"{name} is read but not in ENV_NAMES")
        value = env.get(prefix + name)
        return value.strip() if value is not None and value.strip() else None

    problems = unknown_settings(env, prefix, ENV_NAMES, ignore_unknown)
    if problems:
        problems.append(
            "if another program reads such a variable, pass ignore_unknown="
            f"({prefix + 'OTHER_*'!r},) with its names or patterns"
        )
    settings: dict[str, Any] = {}
    issuer = get("ISSUER")
    audience = get("AUDIENCE")
    jwks_url = get("JWKS_URL")
    discovery = get("DISCOVERY_URL")
    allow_http = get("ALLOW_HTTP") in ("1", "true", "yes")
    shared_url = get("SHARED_CACHE_URL")
    if issuer is None:
        problems.append(f"{prefix}ISSUER is required (the exact 'iss' of your tokens)")
    if audience is None:
        problems.append(f"{prefix}AUDIENCE is required (this API's identifier)")
    if (jwks_url is None) == (discovery is None):
        problems.append(f"set exactly one of {prefix}JWKS_URL or {prefix}DISCOVERY_URL")
    keys: KeySource | None = None
    shared: RedisCache | None = None
    try:
        if shared_url is not None:
            shared = RedisCache(shared_url)
    except ConfigurationError as exc:
        problems.append(f"{prefix}SHARED_CACHE_URL: {exc.description}")
    except MissingExtra as exc:
        problems.append(f"{prefix}SHARED_CACHE_URL: {exc}")
    try:
        if jwks_url is not None and discovery is None:
            keys = JWKSKeys(jwks_url, allow_http=allow_http, shared_cache=shared)
        elif discovery is not None and jwks_url is None:
            keys = OIDCDiscovery(discovery, allow_http=allow_http, shared_cache=shared)
    except ConfigurationError as exc:
        problems.append(f"key source: {exc.description}")
    named = get("ALGORITHMS")
    # Unset: the keys decide, each its own algorithm (issue 25: an RS256 provider's tokens
    # were all refused under a default of ES256).
    algorithms = _list(named) if named is not None else None
    try:  # "none", an unknown name: reported with the rest, not after them
        if algorithms is not None:
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
    profile = get("PROFILE")
    if profile is not None:
        settings["profile"] = _list(profile)
        try:  # an unknown name is reported with the rest
            resolve_profile(settings["profile"], f"{prefix}PROFILE")
        except ConfigurationError as exc:
            problems.append(exc.description)
    mtls = get("MTLS")
    if mtls is not None:
        if mtls.lower() in ("1", "true", "yes"):
            settings["mtls"] = True
        elif mtls.lower() in ("0", "false", "no"):
            settings["mtls"] = False
        else:
            problems.append(f"{prefix}MTLS must be 1 (or true, yes) or 0 (or false, no)")
    if problems:
        raise ConfigurationError("invalid configuration: " + "; ".join(problems))
    settings.update(
        keys=keys,
        issuer=issuer,
        audience=_list(audience or ""),
        algorithms=algorithms,
    )
    return settings
