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
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any, Final

from .._core.errors import ConfigurationError
from .._core.extras import MissingExtra
from .._core.keyset import KeySource
from .._core.policy import check_algorithms
from .._core.profiles import resolve_profile
from .discovery import OIDCDiscovery
from .introspection import Introspection
from .jwks import JWKSKeys
from .redis_cache import RedisCache

__all__ = [
    "DEFAULT_ALGORITHM",
    "ENV_NAMES",
    "INTROSPECTION_NAMES",
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
    "SHARED_CACHE_KEY",
    "SHARED_CACHE_TRUST_REDIS_WRITERS",
    "MTLS",
    "INTROSPECTION_URL",
    "INTROSPECTION_DISCOVERY",
    "INTROSPECTION_CLIENT_ID",
    "INTROSPECTION_CLIENT_SECRET",
    "INTROSPECTION_AUTH_METHOD",
    "INTROSPECTION_PRIVATE_KEY_FILE",
    "INTROSPECT_JWTS",
)

#: The variables that configure the introspection endpoint (``Verifier(introspection=)``).
INTROSPECTION_NAMES: Final = tuple(name for name in ENV_NAMES if name.startswith("INTROSPECT"))

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
    "introspection": INTROSPECTION_NAMES,
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
    key source's documents and introspection answers shared by every worker,
    :class:`RedisCache`) with ``SHARED_CACHE_KEY`` (its ``integrity_key``) or
    ``SHARED_CACHE_TRUST_REDIS_WRITERS=1``, ``MTLS`` (``1`` to check certificate-bound tokens,
    RFC 8705), and the introspection endpoint (RFC 7662): ``INTROSPECTION_URL`` or
    ``INTROSPECTION_DISCOVERY``, ``INTROSPECTION_CLIENT_ID``, ``INTROSPECTION_CLIENT_SECRET``
    or ``INTROSPECTION_PRIVATE_KEY_FILE``, ``INTROSPECTION_AUTH_METHOD``, ``INTROSPECT_JWTS``.

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

    def flag(name: str) -> bool | None:
        value = get(name)
        if value is None:
            return None
        if value.lower() in ("1", "true", "yes"):
            return True
        if value.lower() in ("0", "false", "no"):
            return False
        problems.append(f"{prefix}{name} must be 1 (or true, yes) or 0 (or false, no)")
        return None

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
    if issuer is None:
        problems.append(f"{prefix}ISSUER is required (the exact 'iss' of your tokens)")
    if audience is None:
        problems.append(f"{prefix}AUDIENCE is required (this API's identifier)")
    shared = _shared_cache(get, flag, prefix, problems)
    introspection = _introspection(get, flag, prefix, problems, allow_http, shared)
    if jwks_url is not None and discovery is not None:
        problems.append(f"set exactly one of {prefix}JWKS_URL or {prefix}DISCOVERY_URL, not both")
    elif jwks_url is None and discovery is None and introspection is None:
        # Keyless (every token introspected) only with an introspection endpoint.
        problems.append(
            f"set exactly one of {prefix}JWKS_URL or {prefix}DISCOVERY_URL (or "
            f"{prefix}INTROSPECTION_URL to introspect every token)"
        )
    keys: KeySource | None = None
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
    mtls = flag("MTLS")
    if mtls is not None:
        settings["mtls"] = mtls
    if problems:
        raise ConfigurationError("invalid configuration: " + "; ".join(problems))
    settings.update(
        keys=keys,
        issuer=issuer,
        audience=_list(audience or ""),
        algorithms=algorithms,
    )
    if introspection is not None:
        settings["introspection"] = introspection
    return settings


def _shared_cache(
    get: Callable[[str], str | None],
    flag: Callable[[str], bool | None],
    prefix: str,
    problems: list[str],
) -> RedisCache | None:
    """``SHARED_CACHE_URL`` with its ``SHARED_CACHE_KEY`` (or the loudly named opt-out
    ``SHARED_CACHE_TRUST_REDIS_WRITERS``): a :class:`RedisCache`, or ``None``."""
    url = get("SHARED_CACHE_URL")
    key = get("SHARED_CACHE_KEY")
    trust = flag("SHARED_CACHE_TRUST_REDIS_WRITERS")
    if url is None:
        for name, value in (("SHARED_CACHE_KEY", key), ("SHARED_CACHE_TRUST_REDIS_WRITERS", trust)):
            if value is not None:
                problems.append(f"{prefix}{name} is set without {prefix}SHARED_CACHE_URL")
        return None
    if key is None and not trust:
        # Review R27-8: whoever can write to that Redis could forge any token.
        problems.append(
            f"{prefix}SHARED_CACHE_URL needs {prefix}SHARED_CACHE_KEY (the integrity key: at "
            "least 32 bytes, e.g. python -c 'import secrets; print(secrets.token_hex(32))', the "
            "same on every instance): without it anyone who can write to that Redis could "
            f"forge any token; {prefix}SHARED_CACHE_TRUST_REDIS_WRITERS=1 runs without it on a "
            "Redis only this deployment can write"
        )
        return None
    try:
        return RedisCache(url, integrity_key=key, trust_redis_writers=bool(trust))
    except ConfigurationError as exc:
        problems.append(f"{prefix}SHARED_CACHE_URL: {exc.description}")
    except MissingExtra as exc:
        problems.append(f"{prefix}SHARED_CACHE_URL: {exc}")
    return None


def _introspection(
    get: Callable[[str], str | None],
    flag: Callable[[str], bool | None],
    prefix: str,
    problems: list[str],
    allow_http: bool,
    shared: RedisCache | None,
) -> Introspection | None:
    """The ``INTROSPECTION_*`` variables as an :class:`Introspection`, or ``None`` when none is
    set; half a configuration (a client id without an endpoint, an endpoint without a client
    id) is a problem naming what is missing."""
    values = {name: get(name) for name in INTROSPECTION_NAMES}
    if all(value is None for value in values.values()):
        return None
    url, discovery = values["INTROSPECTION_URL"], values["INTROSPECTION_DISCOVERY"]
    client_id = values["INTROSPECTION_CLIENT_ID"]
    given = ", ".join(prefix + name for name, value in values.items() if value is not None)
    start = len(problems)
    if url is None and discovery is None:
        problems.append(
            f"{given} set without {prefix}INTROSPECTION_URL (the endpoint) or "
            f"{prefix}INTROSPECTION_DISCOVERY (the issuer whose metadata names it)"
        )
    elif url is not None and discovery is not None:
        problems.append(
            f"set one of {prefix}INTROSPECTION_URL or {prefix}INTROSPECTION_DISCOVERY, not both"
        )
    if client_id is None:
        problems.append(
            f"{prefix}INTROSPECTION_CLIENT_ID is required with {given} (this resource server's "
            "client id at the authorization server, RFC 7662 §2.1)"
        )
    introspect_jwts = flag("INTROSPECT_JWTS")
    private_key: bytes | None = None
    key_file = values["INTROSPECTION_PRIVATE_KEY_FILE"]
    if key_file is not None:
        try:
            with open(key_file, "rb") as file:
                private_key = file.read()
        except OSError as exc:
            problems.append(
                f"{prefix}INTROSPECTION_PRIVATE_KEY_FILE cannot be read ({exc.strerror})"
            )
    if len(problems) > start:
        return None
    try:
        return Introspection(
            url,
            discovery=discovery,
            client_id=client_id or "",
            client_secret=values["INTROSPECTION_CLIENT_SECRET"],
            private_key=private_key,
            auth_method=values["INTROSPECTION_AUTH_METHOD"],
            introspect_jwts=bool(introspect_jwts),
            allow_http=allow_http,
            shared_cache=shared,
        )
    except ConfigurationError as exc:
        problems.append(f"introspection ({given}): {exc.description}")
    return None
