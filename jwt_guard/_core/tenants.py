"""Multi-tenant issuers: one issuer template standing for many issuers, one per tenant.

    TenantIssuer("https://login.microsoftonline.com/{tid}/v2.0", keys=..., tenants=[...])
      token "iss" ─► matches the template? ─► tenant: a plain name? ─► allowed? ─► its policy
                        no: issuer_invalid     no: issuer_invalid    no: issuer_invalid
                                                                         (made on first use,
                                                                          LRU-bounded)

A token's ``iss`` is not verified when it is routed, so the tenant read from it is the
attacker's choice until the signature is checked. Everything that happens before then is
decided here, without I/O: the tenant must be a plain name (it goes into a URL: no ``/``,
``?``, ``#``, ``%``, ``..``, nothing outside ASCII) matching the tenant pattern, then be on the
allow-list or accepted by the application's validator. Only then is its key source made (by the
application's factory, e.g. :class:`~jwt_guard.TenantKeys`), and only then can a fetch happen:
a tenant that is not allowed costs no request to anyone.

Each tenant's policy is the template's with its own key source and its own issuer, compared
exactly like a :class:`TrustedIssuer`'s (a per-tenant OIDC discovery source pins that issuer:
OpenID Connect Discovery 1.0 §4.3, RFC 8414 §3.3). At most ``max_tenants`` are kept; the least
recently used is dropped beyond that, and its key source, unless another tenant shares it, is
handed to the verifier's driver to close (closing is I/O).
"""

from __future__ import annotations

import inspect
import logging
import os
import re
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Generic, Protocol, TypeVar

from .claims import Validator, claim_value_rules
from .errors import ConfigurationError, IssuerInvalid, safe_value
from .keyset import KeySet, KeySource
from .metrics import Metrics
from .profiles import resolve_profile
from .scopes import ScopeHierarchy

__all__ = [
    "DEFAULT_MAX_TENANTS",
    "MAX_TENANT_LENGTH",
    "RECENT_PER_LIVE",
    "TemplateKeys",
    "TenantIssuer",
    "Tenants",
    "host_in",
    "host_problem",
    "split_template",
    "tenant_problem",
]

#: Tenants whose key sources are kept at once, by default (least recently used dropped first):
#: enough for an API with a few dozen customers, small enough that a flood of tenants an
#: ``any_tenant`` validator accepts cannot grow memory or connections without bound.
DEFAULT_MAX_TENANTS: Final = 100

#: The longest tenant accepted: a DNS name (an Auth0 custom domain) is at most 253 characters.
MAX_TENANT_LENGTH: Final = 253

logger = logging.getLogger("jwt_guard")

#: Tenants whose retired key source is remembered (``any_tenant``), per ``max_tenants``: a
#: tenant that comes back gets its cached keys and fetch times (cooldown, backoff) again, so
#: cycling more accepted tenants than ``max_tenants`` is not one fetch per request.
RECENT_PER_LIVE: Final = 10

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
#: What any tenant must be, whatever the pattern: letters, digits, ``.``, ``_``, ``-``, starting
#: and ending with a letter or digit. Nothing that can change a URL's meaning (``/ ? # % @ :``,
#: a backslash, spaces), no percent-escape, nothing outside ASCII (IDNA, look-alikes).
_PLAIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?", re.ASCII)


def split_template(template: object, what: str) -> tuple[str, str, str]:
    """``(prefix, placeholder name, suffix)`` of a template with exactly one ``{name}``."""
    if not isinstance(template, str) or not template:
        raise ConfigurationError(f"{what} must be a non-empty string with one {{tenant}}")
    found = _PLACEHOLDER.findall(template)
    if len(found) != 1 or template.count("{") != 1 or template.count("}") != 1:
        raise ConfigurationError(
            f"{what} must hold exactly one placeholder, e.g. "
            "'https://login.microsoftonline.com/{tid}/v2.0'"
        )
    prefix, _, rest = template.partition("{" + found[0] + "}")
    if not template.startswith(("https://", "http://")) or "://" not in prefix:
        raise ConfigurationError(f"{what} must be an http(s) URL with the placeholder after '//'")
    return prefix, found[0], rest


#: A label an IPv4 parser reads as a number: ``inet_aton`` (which ``getaddrinfo`` uses) takes
#: 1 to 4 parts in decimal, octal (``0177``) or hex (``0x7f``): ``127.1``, ``127.0.0x1``,
#: ``0177.0.0.0x1`` and ``169.254.169.0xfe`` are all addresses.
_NUMERIC_LABEL = re.compile(r"[0-9]+|0[xX][0-9A-Fa-f]*", re.ASCII)


def host_in(template: str) -> bool:
    """Whether the placeholder of ``template`` (an http(s) URL) is in its host."""
    prefix, _, _ = split_template(template, "template")
    return "/" not in prefix.split("://", 1)[1]


def host_problem(tenant: str) -> str | None:
    """Why ``tenant``, put where a URL's host is, is not a lowercase DNS name with a dot, or
    ``None``. Server-side request forgery: ``localhost``, ``169.254.169.254`` (cloud metadata)
    and its numeric spellings. No top-level domain starts with a digit (RFC 3696 §2), so a last
    label that does, or any label that is a number, is an address. A name that *resolves* to
    an internal address is stopped only by the allow-list or the validator."""
    labels = tenant.split(".")
    if len(labels) < 2:
        return "not a host name with a dot (a local name)"
    if labels[-1][:1].isdigit() or any(_NUMERIC_LABEL.fullmatch(label) for label in labels):
        return (
            "not a host name (an IP address: a label is a number, or the last starts with a digit)"
        )
    if tenant != tenant.lower():
        # Providers write the host of "iss" in lowercase; LOGIN.acme.test would be a second
        # tenant (a source and a fetch) for one server.
        return "not lowercase (a host name in an issuer is written in lowercase)"
    return None


def tenant_problem(tenant: str, pattern: re.Pattern[str] | None) -> str | None:
    """Why ``tenant`` cannot go into a URL or is not one of the pattern's, or ``None``."""
    if not tenant:
        return "empty"
    if len(tenant) > MAX_TENANT_LENGTH:
        return f"longer than {MAX_TENANT_LENGTH} characters"
    if not tenant.isascii():
        return "not ASCII"
    if not _PLAIN.fullmatch(tenant):
        return "not a plain name (letters, digits, '.', '_', '-' only)"
    if ".." in tenant:
        return "contains '..'"
    if pattern is not None and not pattern.fullmatch(tenant):
        return "does not match the tenant pattern"
    return None


def _pattern(value: str | re.Pattern[str] | None) -> re.Pattern[str] | None:
    if value is None:
        return None
    try:
        return re.compile(value, re.ASCII) if isinstance(value, str) else value
    except (re.error, TypeError) as exc:
        raise ConfigurationError(f"tenant_pattern is not a regular expression: {exc}") from exc


@dataclass(frozen=True, eq=False)  # identity, like TrustedIssuer: its rules may be a dict
class TenantIssuer:
    """Many issuers of one shape, one per tenant, each with its own key source.

    ``issuer`` is a template with one placeholder, the tenant
    (``"https://login.microsoftonline.com/{tid}/v2.0"``), and ``keys`` makes a tenant's key
    source when its first token comes (``TenantKeys.jwks(url_template)``,
    ``TenantKeys.discovery(issuer_template)``, or any callable taking the tenant).

    Which tenants: ``tenants=[...]`` (an allow-list), or ``any_tenant=True`` with
    ``validate_tenant`` (a callable: the tenant → ``True`` to accept). Either way the tenant
    must also be a plain name that fits ``tenant_pattern`` (a regular expression, matched
    whole). ``tenant_claim`` names a claim that must equal the tenant (Entra's ``tid``). At most
    ``max_tenants`` key sources are kept (least recently used dropped first).

    The other fields are :class:`TrustedIssuer`'s and apply to every tenant.
    """

    issuer: str
    keys: Callable[[str], KeySource]
    tenants: Sequence[str] | None = None
    any_tenant: bool = False
    validate_tenant: Callable[[str], bool] | None = None
    tenant_pattern: str | re.Pattern[str] | None = None
    tenant_claim: str | None = None
    max_tenants: int | None = None
    audience: str | Sequence[str] | None = None
    algorithms: str | Sequence[str] | None = None
    roles_claim: str | Sequence[str] | None = None
    scopes_claim: str | Sequence[str] | None = None
    claims: Mapping[str, Any] | None = None
    validate: Validator | None = None
    validate_each_request: Validator | None = None
    profile: str | Sequence[str] | None = None
    scope_implies: Mapping[str, str | Sequence[str]] | None = None

    def __post_init__(self) -> None:
        _, name, _ = split_template(self.issuer, "issuer")
        resolve_profile(self.profile)
        if self.scope_implies is not None:
            ScopeHierarchy(self.scope_implies)  # a cycle or a pattern refused here, named
        if not callable(self.keys) or isinstance(self.keys, KeySource):
            raise ConfigurationError(
                "keys must make a tenant's key source: TenantKeys.jwks('https://.../{"
                + name
                + "}/keys'), TenantKeys.discovery(issuer template), or a callable"
            )
        placeholder = getattr(self.keys, "placeholder", name)
        if placeholder != name:
            raise ConfigurationError(
                f"the issuer's placeholder is {{{name}}} but the key URL's is {{{placeholder}}}"
            )
        if not isinstance(self.any_tenant, bool):
            raise ConfigurationError("any_tenant must be True or False")
        pattern = _pattern(self.tenant_pattern)
        if self.any_tenant:
            if self.tenants is not None:
                raise ConfigurationError("give tenants=[...] or any_tenant=True, not both")
            if self.validate_tenant is None:
                # "Any tenant" with nothing to say no would accept every tenant of the provider,
                # an attacker's own included.
                raise ConfigurationError(
                    "any_tenant=True needs validate_tenant=, a callable that returns True for "
                    "the tenants you accept (your customer table, say)"
                )
        elif self.tenants is None:
            raise ConfigurationError(
                f"say which tenants: tenants=[...] (an allow-list of {{{name}}} values), or "
                "any_tenant=True with validate_tenant="
            )
        elif self.validate_tenant is not None:
            raise ConfigurationError("validate_tenant goes with any_tenant=True")
        if self.validate_tenant is not None and (
            not callable(self.validate_tenant)
            or inspect.iscoroutinefunction(self.validate_tenant)
            or inspect.iscoroutinefunction(getattr(self.validate_tenant, "__call__", None))  # noqa: B004
        ):
            raise ConfigurationError(
                "validate_tenant must be a plain function: the tenant -> True to accept it"
            )
        if self.tenants is not None:
            items = (self.tenants,) if isinstance(self.tenants, str) else tuple(self.tenants)
            if not items:
                raise ConfigurationError("tenants must list at least one tenant")
            in_host = host_in(self.issuer)
            for tenant in items:
                problem = tenant_problem(tenant, pattern) if isinstance(tenant, str) else "str"
                if problem is None and in_host:
                    problem = host_problem(tenant)
                if problem is not None:
                    raise ConfigurationError(
                        f"tenants: {safe_value(tenant)!r} cannot be a tenant ({problem})"
                    )
        if self.tenant_claim is not None and (
            not isinstance(self.tenant_claim, str) or not self.tenant_claim
        ):
            raise ConfigurationError("tenant_claim must be a claim name")
        if self.max_tenants is not None and (
            isinstance(self.max_tenants, bool)
            or not isinstance(self.max_tenants, int)
            or self.max_tenants < 1
        ):
            raise ConfigurationError("max_tenants must be a positive integer")
        allowed = self.allowed
        if allowed is not None and self.max_tenants is not None and self.max_tenants < len(allowed):
            # Anyone can name the listed tenants in turn (a tenant id is no secret; the fetch
            # comes before the signature check): each token would evict one and fetch again.
            raise ConfigurationError(
                f"max_tenants={self.max_tenants} is less than the {len(allowed)} tenants allowed: "
                "tokens naming them in turn would make a key fetch per request; leave "
                "max_tenants out (an allow-list keeps every listed tenant)"
            )
        claim_value_rules(self.claims, "claims")

    @property
    def tenant_bound(self) -> int:
        """How many tenants' key sources are kept at once.

        Every listed tenant with an allow-list, else ``max_tenants`` (``DEFAULT_MAX_TENANTS``
        when not given)."""
        if self.max_tenants is not None:
            return self.max_tenants
        allowed = self.allowed
        return len(allowed) if allowed is not None else DEFAULT_MAX_TENANTS

    @property
    def allowed(self) -> frozenset[str] | None:
        """The allow-list, or ``None`` with ``any_tenant``."""
        if self.tenants is None:
            return None
        return frozenset((self.tenants,) if isinstance(self.tenants, str) else self.tenants)


class _Keyed(Protocol):
    @property
    def keys(self) -> KeySource: ...


P = TypeVar("P", bound=_Keyed)  # a Policy (``.policy`` imports this module, not the reverse)


class TemplateKeys(KeySource):
    """The key source of a template's own policy, which never verifies a token: every token
    is routed to its tenant's policy (a bug if asked)."""

    def __init__(self, template: str) -> None:
        self.template = template

    #: It stands for the tenants' sources: with no algorithms named, each tenant's keys decide
    #: (a tenant's own source that is not published is refused when its policy is made).
    published = True

    def __repr__(self) -> str:
        return f"TemplateKeys({self.template!r})"

    def keys(self, kid: str | None) -> KeySet:
        raise ConfigurationError("a tenant template's policy has no keys (routing bug)")

    async def akeys(self, kid: str | None) -> KeySet:
        raise ConfigurationError("a tenant template's policy has no keys (routing bug)")


class Tenants(Generic[P]):
    """The routing of one :class:`TenantIssuer`: from a token's ``iss`` to its tenant's policy,
    made on first use and kept in a bounded LRU.

    ``make(source, issuer, tenant)`` builds a tenant's policy (``configure`` passes it: the same
    checks as a :class:`TrustedIssuer`'s). ``retired`` is shared with the verifier: the policies
    whose key sources must be closed (and whose cached tokens forgotten) by its driver.
    """

    def __init__(
        self,
        spec: TenantIssuer,
        make: Callable[[KeySource, str, str], P],
        retired: list[P],
    ) -> None:
        self.spec = spec
        self.template = spec.issuer
        self._prefix, self.placeholder, self._suffix = split_template(spec.issuer, "issuer")
        self._pattern = _pattern(spec.tenant_pattern)
        #: The tenant names the server of the issuer (an Auth0 custom domain): the host rule
        #: holds whatever makes the key sources (a factory of the app's own included).
        self._in_host = host_in(spec.issuer)
        self._allowed = spec.allowed
        self._validate = spec.validate_tenant
        self._make = make
        #: The factory's own check of a tenant before it goes into a URL (TenantKeys has one).
        self._url_check: Callable[[str], str | None] | None = getattr(
            spec.keys, "tenant_problem", None
        )
        self._max = spec.tenant_bound
        self._live: OrderedDict[str, P] = OrderedDict()  # tenant -> Policy, LRU order
        #: Retired tenants' key sources (bounded, oldest dropped): their cache state is handed
        #: to the tenant's next source (see ``RECENT_PER_LIVE``).
        self._recent: OrderedDict[str, KeySource] = OrderedDict()
        self._lock = threading.Lock()  # held for dict updates only, never across I/O or hooks
        self._retired = retired
        #: The verifier's instruments, given to each key source made (the verifier sets it).
        self.metrics: Metrics | None = None
        _INSTANCES.add(self)

    def __repr__(self) -> str:
        return f"Tenants({self.template!r}, live={len(self._live)})"

    def tenant_of(self, iss: str) -> str | None:
        """The tenant in ``iss`` when it has the template's shape, else ``None``."""
        prefix, suffix = self._prefix, self._suffix
        if len(iss) > len(prefix) + len(suffix) and iss.startswith(prefix) and iss.endswith(suffix):
            return iss[len(prefix) : len(iss) - len(suffix)]
        return None

    def issuer_for(self, tenant: str) -> str:
        return self._prefix + tenant + self._suffix

    def refusal(self, tenant: str) -> str | None:
        """Why this tenant is refused, or ``None`` when it is accepted (no I/O)."""
        problem = tenant_problem(tenant, self._pattern)
        if problem is None and self._in_host:
            problem = host_problem(tenant)
        problem = problem or self.url_problem(tenant)
        if problem is not None:
            return f"tenant {problem}"
        if self._allowed is not None:
            return None if tenant in self._allowed else "tenant not in the allow-list"
        assert self._validate is not None
        try:
            verdict = self._validate(tenant)
        except Exception as exc:  # fail closed: the app's hook decides nothing by raising
            return f"validate_tenant raised {type(exc).__name__}"
        if inspect.isawaitable(verdict):
            # Never awaited here (routing is sans-IO): its answer is unknown, so refused; a
            # coroutine closed so Python does not warn that it was never awaited.
            if inspect.iscoroutine(verdict):
                verdict.close()
            logger.error(
                "%s",
                ConfigurationError(
                    "validate_tenant returned an awaitable: make it a plain "
                    "function returning True (look the tenant up in memory)"
                ),
            )
            return "validate_tenant returned an awaitable (it must be a plain function)"
        return None if verdict is True else "validate_tenant did not return True"

    def url_problem(self, tenant: str) -> str | None:
        """The key factory's own objection to ``tenant`` in its URL (``TenantKeys`` refuses an
        IP address where the tenant is the host), or ``None``."""
        return self._url_check(tenant) if self._url_check is not None else None

    def make(self, tenant: str) -> P:
        """A new policy for ``tenant``, with a new key source (no I/O: nothing is fetched)."""
        try:
            source = self.spec.keys(tenant)
        except ConfigurationError:
            raise
        except Exception as exc:  # the app's factory: a deployment bug, never a token's fault
            raise ConfigurationError(
                f"keys= raised {type(exc).__name__} making the key source of a tenant of "
                f"{self.template}"
            ) from exc
        return self._make(source, self.issuer_for(tenant), tenant)

    def route(self, iss: str, tenant: str) -> P:
        """The policy for a token of ``tenant`` (whose ``iss`` has the template's shape);
        raises :class:`IssuerInvalid` for a tenant that is refused, before any key source
        exists for it."""
        reason = self.refusal(tenant)
        if reason is not None:
            template = self.template
            raise IssuerInvalid(
                detail={
                    "expected": [template],
                    "found": safe_value(iss),
                    "tenant": safe_value(tenant),
                    "reason": reason,
                }
            )
        live = self._live
        with self._lock:
            policy = live.get(tenant)
            if policy is not None:
                live.move_to_end(tenant)
                return policy
        # Made outside the lock: the factory and the policy's checks are the app's code.
        made = self.make(tenant)
        if self.metrics is not None:
            made.keys.use_metrics(self.metrics)
        with self._lock:
            policy = live.get(tenant)
            if policy is not None:  # another thread made it first: ours never fetched
                return policy
            previous = self._recent.pop(tenant, None)
            if previous is not None:
                made.keys.inherit(previous)
            live[tenant] = made
            while len(live) > self._max:
                name, dropped = live.popitem(last=False)
                self._retire(dropped)
                self._recent[name] = dropped.keys
                while len(self._recent) > RECENT_PER_LIVE * self._max:
                    self._recent.popitem(last=False)
        return made

    def _retire(self, policy: P) -> None:
        # Close only what no live tenant shares (a factory may hand one source to several).
        if all(p.keys is not policy.keys for p in self._live.values()):
            self._retired.append(policy)

    @property
    def key_sources(self) -> tuple[KeySource, ...]:
        """The live tenants' key sources (for close, stats)."""
        return tuple(p.keys for p in list(self._live.values()))

    @property
    def tenants(self) -> tuple[str, ...]:
        """The tenants whose key sources are kept now, least recently used first."""
        return tuple(self._live)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()


_INSTANCES: weakref.WeakSet[Tenants[Any]] = weakref.WeakSet()


def _after_fork() -> None:
    """In a forked child, a lock a parent's thread held stays held for ever: start afresh (the
    tenants' key sources reset their own state, ``_sources.jwks_state``)."""
    for tenants in list(_INSTANCES):
        tenants._after_fork()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_after_fork)
