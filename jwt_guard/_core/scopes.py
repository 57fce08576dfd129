"""Scope hierarchies: a broader scope that implies narrower ones.

    Verifier(..., scope_implies={"notes:admin": ["notes:write"], "notes:write": ["notes:read"]})

The MCP authorization specification (2026-07-28) asks a resource server to "account for scope
hierarchies, where a broader scope implies narrower ones, when deciding whether a token is
sufficient". A hierarchy is the vocabulary of the authorization server that grants the scopes,
so it is configured per issuer (``TrustedIssuer(scope_implies=...)``) or for the verifier.

The closure (what each scope implies, directly or through others) is computed once, here, and a
cycle is refused: with ``a → b → a`` holding either grants the other, which is never a hierarchy
and usually a typo that widens a narrow scope. Only named scopes: a pattern (``notes:*``, or a
scope that implies every other) is refused, because what it grants could not be listed
(``Principal.effective_scopes``, the ``scope`` of a challenge) and a prefix rule matches names
its author never meant (``notes`` is a prefix of ``notes-admin``); build the mapping from your
list of scopes instead.

The token's own scopes are asked first: a hierarchy is looked up only for a scope the token
does not name, so a token that holds what the route needs costs nothing more.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Final

from .errors import ConfigurationError

__all__ = ["OFFLINE_ACCESS", "SCOPE_TOKEN", "ScopeHierarchy", "required_scopes"]

#: One name that can stand in a quoted header parameter as a space-separated list item: RFC
#: 6749 §3.3 scope-token = 1*( %x21 / %x23-5B / %x5D-7E ). Scopes, acr values (RFC 9470 §3),
#: algorithm names, and URLs placed in a quoted string (resource_metadata) all use it.
SCOPE_TOKEN: Final = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")

#: OpenID Connect Core §11: the scope asking the authorization server for a refresh token. It
#: grants nothing at a resource server, and the MCP authorization specification (2026-07-28)
#: says servers SHOULD NOT put it in a challenge's ``scope`` or in ``scopes_supported``.
OFFLINE_ACCESS: Final = "offline_access"


def _scope(name: object, option: str) -> str:
    if not isinstance(name, str) or not SCOPE_TOKEN.fullmatch(name):
        raise ConfigurationError(
            f"{option}: {name!r} is not a scope name (RFC 6749 §3.3: no spaces, quotes or "
            "backslashes)"
        )
    if "*" in name:
        raise ConfigurationError(
            f"{option}: {name!r} looks like a pattern; only named scopes are supported (what a "
            "pattern grants cannot be listed, and a prefix matches names it was not meant to): "
            "list the scopes, e.g. {s: [...] for s in your_scopes}"
        )
    return name


def required_scopes(names: Iterable[object], option: str) -> tuple[str, ...]:
    """``names``, each a scope a request may need: a name a challenge can carry, checked at
    start-up. A name that is no scope-token (RFC 6749 §3.3: a quote, a backslash, a space or a
    line break, a letter outside ASCII) could never be named in the ``scope`` of a 403, so the
    client, told to ask for the others, would come back refused forever; ``offline_access``
    grants nothing here and is never named in a challenge (MCP authorization), so a 403
    ``insufficient_scope`` would name no scope at all."""
    found: list[str] = []
    for name in names:
        if not isinstance(name, str) or not SCOPE_TOKEN.fullmatch(name):
            raise ConfigurationError(
                f"{option}: {name!r} is not a scope name (RFC 6749 §3.3: printable ASCII, no "
                "spaces, quotes or backslashes); no challenge could ask a client for it"
            )
        if name == OFFLINE_ACCESS:
            raise ConfigurationError(
                f"{option}: offline_access asks the authorization server for a refresh token "
                "and grants nothing at a resource server; require the scopes the route needs"
            )
        found.append(name)
    return tuple(found)


class ScopeHierarchy:
    """A validated ``scope_implies`` mapping with its transitive closure."""

    __slots__ = ("_implies",)

    _implies: dict[str, frozenset[str]]

    def __init__(self, implies: Mapping[str, str | Iterable[str]], option: str = "scope_implies"):
        if not isinstance(implies, Mapping):
            raise ConfigurationError(f"{option} maps a scope to the scopes it implies")
        direct: dict[str, tuple[str, ...]] = {}
        for broad, narrow in implies.items():
            _scope(broad, option)
            names = (narrow,) if isinstance(narrow, str) else narrow
            try:
                listed = tuple(_scope(n, option) for n in names)
            except TypeError:
                raise ConfigurationError(
                    f"{option}[{broad!r}] must be a scope or a list of scopes"
                ) from None
            if not listed:
                raise ConfigurationError(f"{option}[{broad!r}] implies no scope")
            direct[broad] = listed
        self._implies = _closure(direct, option)

    def __repr__(self) -> str:
        shown = {k: sorted(v) for k, v in sorted(self._implies.items())}
        return f"ScopeHierarchy({shown!r})"

    def implied(self, scope: str) -> frozenset[str]:
        """What ``scope`` implies, directly or through others (not ``scope`` itself)."""
        return self._implies.get(scope, frozenset())

    def effective(self, held: frozenset[str]) -> frozenset[str]:
        """``held`` with everything its scopes imply."""
        implies = self._implies
        extra = [implies[s] for s in held if s in implies]
        return held.union(*extra) if extra else held

    def grants(self, held: frozenset[str], scope: str) -> bool:
        """Whether a token holding ``held`` has ``scope``, itself or through a broader one."""
        if scope in held:
            return True
        implies = self._implies
        return any(scope in implies[s] for s in held if s in implies)


def _closure(direct: Mapping[str, tuple[str, ...]], option: str) -> dict[str, frozenset[str]]:
    """Each scope's transitive closure; a cycle is refused, named in the error."""
    done: dict[str, frozenset[str]] = {}
    path: list[str] = []

    def visit(scope: str) -> frozenset[str]:
        found = done.get(scope)
        if found is not None:
            return found
        if scope in path:
            cycle = [*path[path.index(scope) :], scope]
            raise ConfigurationError(
                f"{option} has a cycle: {' → '.join(cycle)} (each of these scopes would grant "
                "all the others); a hierarchy goes from broader to narrower scopes only"
            )
        path.append(scope)
        implied: set[str] = set()
        for narrow in direct.get(scope, ()):
            implied.add(narrow)
            implied.update(visit(narrow))
        path.pop()
        result = done[scope] = frozenset(implied)
        return result

    for scope in direct:
        visit(scope)
    return {scope: done[scope] for scope in direct}
