"""Configuration: the :class:`Verifier`'s options, validated once, into per-issuer policies.

    Verifier(keys=..., issuer=..., ...)          ─► one Policy
    Verifier(issuers=[TrustedIssuer(...), ...])  ─► one Policy per issuer, routed by "iss"
    Verifier(issuers=[TenantIssuer(...), ...])   ─► one Policy per tenant, made on first use
                                                    (``.tenants``), routed by "iss" too

A :class:`Policy` is what one issuer's tokens are held to: its key source, its algorithms, its
claim rules and where its roles and scopes are read. :class:`Configuration` holds the policies,
the verifier-wide settings, and the routing from a token to its policy. Everything wrong is a
:class:`ConfigurationError` here, so a running verifier only raises errors about tokens.
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final

from .algorithms import ALGORITHMS, ASYMMETRIC
from .claims import (
    MAX_LEEWAY,
    SHOWN_CLAIM_VALUES,
    ClaimRules,
    Validator,
    claim_value_rules,
    issuer_invalid,
    normalize_typ,
)
from .errors import ClaimMissing, ConfigurationError
from .introspection import IntrospectionSource, NoKeys
from .keyset import KeySource
from .profiles import Profile, resolve_profile
from .revocation import Denylist
from .scopes import ScopeHierarchy
from .tenants import TemplateKeys, TenantIssuer, Tenants

__all__ = ["DEFAULT_CACHE_SIZE", "Configuration", "Policy", "TrustedIssuer", "configure"]

#: Default number of verified tokens remembered (issue #8); 0 turns the cache off.
DEFAULT_CACHE_SIZE: Final = 10_000
DEFAULT_ROLES_CLAIM: Final = ("roles",)
DEFAULT_SCOPES_CLAIM: Final = ("scope", "scp")


def _hooks(hook: Validator | None, option: str) -> tuple[Validator, ...]:
    """A hook option as the rules hold it: ``()`` when not given."""
    if hook is None:
        return ()
    if not callable(hook):
        raise ConfigurationError(f"{option} must be a callable taking the claims")
    if inspect.iscoroutinefunction(hook) or inspect.iscoroutinefunction(
        getattr(hook, "__call__", None)  # noqa: B004 - an instance's async __call__
    ):
        # Its verdict would be a coroutine, never False: every token would pass.
        raise ConfigurationError(
            f"{option} must be a plain function returning a verdict, not async: the claims "
            "are checked without awaiting; look up what it needs before (or use a sync client)"
        )
    return (hook,)


def _check_endpoint_issuer(
    names: tuple[str, ...] | None, endpoint: IntrospectionSource | None
) -> None:
    """An endpoint found through one issuer's discovery answers for that issuer only: given to
    another issuer, a response without "iss" would make the first's tokens the other's
    principals (review R27-11). Silence is a bug: refused at start-up."""
    pinned = endpoint.pinned_issuers if endpoint is not None else None
    if names is None or pinned is None or set(pinned) & set(names):
        return
    raise ConfigurationError(
        f"introspection= was found through the discovery of {pinned[0]!r}, which answers for "
        f"its own tokens, not for issuer {names[0]!r}: give an Introspection of {names[0]!r} "
        "(discovery= that issuer, or its endpoint URL)"
    )


def _strings(value: str | Sequence[str] | None, what: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    try:
        items = (value,) if isinstance(value, str) else tuple(value)
    except TypeError:
        items = ()
    if not items or not all(isinstance(v, str) and v for v in items):
        raise ConfigurationError(f"{what} must be a non-empty string or list of strings")
    return items


def _hierarchy(implies: Mapping[str, str | Sequence[str]] | None) -> ScopeHierarchy | None:
    """``scope_implies`` validated, its closure computed (``None`` and ``{}``: no hierarchy)."""
    if implies is None:
        return None
    hierarchy = ScopeHierarchy(implies)
    return hierarchy if implies else None


def check_algorithms(value: str | Sequence[str] | None) -> frozenset[str]:
    """The allowed algorithms, checked: given, never ``none``, each one jwt_guard supports."""
    algs = _strings(value, "algorithms")
    if algs is None:
        # RFC 8725 §3.1: the algorithms must be given by the application, never taken from
        # the token.
        raise ConfigurationError(
            "algorithms must be given, e.g. algorithms=['RS256'] (they may be left out with "
            "keys from a JWKS URL or discovery: each key's own algorithm is then accepted)"
        )
    for alg in algs:
        if alg.lower() == "none":
            raise ConfigurationError("'none' can never be an allowed algorithm (RFC 8725 §3.1)")
        if alg not in ALGORITHMS:
            raise ConfigurationError(
                f"unsupported algorithm {alg!r}; use one of {sorted(ALGORITHMS)}"
            )
    return frozenset(algs)


@dataclass(frozen=True, eq=False)  # identity: its claim rules may be a dict
class TrustedIssuer:
    """One issuer a multi-issuer :class:`Verifier` trusts, with its own keys and rules.

    ``audience``, ``algorithms``, ``roles_claim``, ``scopes_claim`` and ``scope_implies``
    default to the verifier's settings when ``None`` (a hierarchy is the vocabulary of the
    issuer that grants the scopes: ``scope_implies={}`` gives this issuer none). ``claims``
    (claim-value rules), ``validate`` and ``validate_each_request`` add to the verifier's:
    both apply, the issuer's rule winning for a claim both name. ``profile`` adds to the
    verifier's too (``_core.profiles``).

    ``introspection`` (``jwt_guard.Introspection``): opaque tokens are introspected at this
    issuer's endpoint (``keys`` may then be ``None``: every token is introspected). At most one
    trusted issuer may introspect: an opaque token names no issuer to route it by.
    """

    issuer: str
    keys: KeySource | None
    audience: str | Sequence[str] | None = None
    algorithms: str | Sequence[str] | None = None
    roles_claim: str | Sequence[str] | None = None
    scopes_claim: str | Sequence[str] | None = None
    claims: Mapping[str, Any] | None = None
    validate: Validator | None = None
    validate_each_request: Validator | None = None
    profile: str | Sequence[str] | None = None
    scope_implies: Mapping[str, str | Sequence[str]] | None = None
    introspection: IntrospectionSource | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.issuer, str) or not self.issuer:
            raise ConfigurationError("issuer must be a non-empty string")
        _check_introspection(self.introspection)
        if not isinstance(self.keys, KeySource) and not (
            self.keys is None and self.introspection is not None
        ):
            raise ConfigurationError(
                "keys must be a key source (StaticKeys, JWKSKeys, ...), or None with "
                "introspection=Introspection(...)"
            )
        claim_value_rules(self.claims, "claims")
        _hooks(self.validate, "validate")
        _hooks(self.validate_each_request, "validate_each_request")
        resolve_profile(self.profile)
        _hierarchy(self.scope_implies)


@dataclass(frozen=True)
class Policy:
    """What the tokens of one configured issuer (or of the single configuration) are held to."""

    keys: KeySource
    algorithms: frozenset[str]
    rules: ClaimRules
    roles_paths: tuple[str, ...]
    scopes_paths: tuple[str, ...]
    #: No algorithms named and published keys: each key verifies only its own algorithm
    #: (``JWK.own_algorithm``), and ``algorithms`` is every one a published key may be for.
    own_algorithms: bool = False
    #: Broader scopes implying narrower ones (``scope_implies``), ``None`` without.
    scope_hierarchy: ScopeHierarchy | None = None
    #: What the profiles demand of this issuer's tokens (``_core.profiles``), ``None`` without.
    profile: Profile | None = None
    #: The curves a verifying key may be on (a profile's, ``None``: any).
    curves: frozenset[str] | None = None
    #: The issuer's introspection endpoint (RFC 7662), ``None`` without.
    introspection: IntrospectionSource | None = None
    #: The claim rules of an introspection response: ``rules`` without "exp" required (RFC
    #: 7662 §2.2 makes it optional; ``active`` is the server's verdict on the token's life).
    introspection_rules: ClaimRules | None = None


@dataclass(frozen=True)
class Configuration:
    """Every option of a :class:`Verifier`, validated; built by :func:`configure`."""

    policies: tuple[Policy, ...]
    routes: Mapping[str, Policy] | None  # by configured issuer; None with a single policy
    algorithms: frozenset[str]  # the union of the policies' algorithms
    leeway: float
    max_age: float | None
    max_bytes: int
    clock: Callable[[], float]
    denylist: Denylist | None
    cache_size: int
    #: The tenant templates (``TenantIssuer``), tried after ``routes``; their own policies in
    #: ``policies`` are templates (issuer: the template, keys: none) for the properties below.
    tenants: tuple[Tenants[Policy], ...] = ()
    #: Tenants' policies dropped from their LRU whose key sources the driver must close.
    retired: list[Policy] = field(default_factory=list)
    #: The policy opaque tokens are introspected for (the one with an introspection endpoint).
    opaque: Policy | None = None

    @property
    def per_request(self) -> bool:
        """Whether some policy has ``validate_each_request`` hooks (then every request, a
        cached token's too, takes the verifier's after-steps)."""
        return any(p.rules.per_request for p in self.policies)

    def route(self, payload: Mapping[str, Any]) -> Policy:
        """The policy for a token, chosen by its (not yet verified) ``iss``."""
        routes = self.routes
        if routes is None:
            return self.policies[0]
        # The unverified "iss" only *selects* among configured issuers; an unknown one is
        # refused here, before any key source is asked (so before any network request).
        iss = payload.get("iss")
        if iss is None:
            raise ClaimMissing(detail={"claim": "iss", "reason": "needed to pick the issuer"})
        if isinstance(iss, str):
            policy = routes.get(iss)
            if policy is not None:
                return policy
            for tenants in self.tenants:
                tenant = tenants.tenant_of(iss)
                if tenant is not None:
                    return tenants.route(iss, tenant)
        raise issuer_invalid(iss, [*routes, *(t.template for t in self.tenants)])

    @property
    def profiles(self) -> tuple[Profile, ...]:
        """The profiles some policy holds its tokens to (each combination once)."""
        return tuple(dict.fromkeys(p.profile for p in self.policies if p.profile is not None))

    @property
    def own_algorithms(self) -> bool:
        """Whether some policy accepts its keys' own algorithms (none were named)."""
        return any(p.own_algorithms for p in self.policies)

    @property
    def key_sources(self) -> tuple[KeySource, ...]:
        """The key sources in use: the configured ones and the tenants' live ones."""
        sources = [p.keys for p in self.policies if not isinstance(p.keys, (TemplateKeys, NoKeys))]
        for tenants in self.tenants:
            sources.extend(tenants.key_sources)
        return tuple(dict.fromkeys(sources))

    @property
    def names_issuers(self) -> bool:
        """Whether tokens are held to configured issuers (then revocations are scoped by
        issuer)."""
        return any(p.rules.issuers for p in self.policies)

    def revocation_scope(self, issuer: str | None) -> str | None:
        """The issuer a subject revocation is scoped by: the same scope the check uses for
        a token of that issuer (``Verifier._revocation_keys``), so a revocation can never be
        stored where no check looks."""
        templates = {t.template for t in self.tenants}
        names = [n for p in self.policies for n in (p.rules.issuers or ()) if n not in templates]
        if issuer is not None and issuer not in names:
            # A tenant's issuer: trusted when its tenant is accepted now.
            for tenants in self.tenants:
                tenant = tenants.tenant_of(issuer)
                if tenant is not None and tenants.refusal(tenant) is None:
                    return issuer
        if not names and not templates:
            if issuer is not None:
                raise ConfigurationError(
                    "this verifier names no issuer, so revocations are not scoped by one: "
                    "revoke without issuer="
                )
            return None
        if issuer is None:
            if len(names) + len(templates) > 1:
                raise ConfigurationError("several issuers are trusted: pass issuer=")
            if templates:
                raise ConfigurationError("a tenant template is trusted: pass the tenant's issuer=")
            return names[0]
        if issuer not in names:
            raise ConfigurationError("issuer is not one this verifier trusts")
        return issuer


def _check_introspection(value: object) -> None:
    if value is not None and not isinstance(value, IntrospectionSource):
        raise ConfigurationError("introspection must be a jwt_guard.Introspection")


def _apply_profile(profile: Profile, rules: ClaimRules, without_jti: bool) -> ClaimRules:
    """The rules with what ``profile`` demands added; an explicit option that asks for less is
    a ConfigurationError naming both (the profile never silently wins or loses)."""
    where = f"profile {profile.name!r} ({profile.reference})"
    if profile.typ is not None and rules.typ is not None and rules.typ != profile.typ:
        raise ConfigurationError(
            f"typ={rules.typ!r} contradicts {where}, which requires typ {profile.typ!r}: "
            "drop typ= (the profile sets it)"
        )
    if without_jti and "jti" in profile.required_claims:
        raise ConfigurationError(
            f"allow_tokens_without_jti=True contradicts {where}, which requires 'jti'"
        )
    if profile.needs_audience and rules.audiences is None:
        raise ConfigurationError(
            f"{where} needs audience=: every token's 'aud' must name this resource server"
        )
    if profile.needs_issuer and rules.issuers is None:
        raise ConfigurationError(
            f"{where} needs issuer= (or keys=OIDCDiscovery(issuer)): every token's 'iss' must "
            "be the issuer's exact identifier"
        )
    return replace(
        rules,
        typ=profile.typ or rules.typ,
        required=tuple(dict.fromkeys(rules.required + profile.required_claims)),
        profile=profile.name,
        profile_claims=frozenset(profile.required_claims),
        profile_strings=profile.string_claims,
        sender_constrained=profile.sender_constrained,
    )


def _profile_algorithms(
    profile: Profile, allowed: frozenset[str], keys_decide: bool
) -> frozenset[str]:
    """The algorithms a policy allows under ``profile``: named ones it does not allow are a
    ConfigurationError naming them; with the keys deciding, those the profile allows."""
    if profile.algorithms is None:
        return allowed
    if keys_decide:
        return allowed & profile.algorithms
    refused = allowed - profile.algorithms
    if refused:
        raise ConfigurationError(
            f"algorithms {sorted(refused)} contradict profile {profile.name!r} "
            f"({profile.reference}), which allows only {sorted(profile.algorithms)}: drop them"
        )
    return allowed


def configure(
    *,
    keys: KeySource | None,
    algorithms: str | Sequence[str] | None,
    issuer: str | Sequence[str] | None,
    audience: str | Sequence[str] | None,
    leeway: float,
    required_claims: Sequence[str],
    typ: str | None,
    max_token_age: float | None,
    max_token_bytes: int,
    roles_claim: str | Sequence[str],
    scopes_claim: str | Sequence[str],
    clock: Callable[[], float] | None,
    issuers: Sequence[TrustedIssuer | TenantIssuer] | None,
    denylist: Denylist | None,
    allow_tokens_without_jti: bool,
    cache_size: int,
    claims: Mapping[str, Any] | None = None,
    validate: Validator | None = None,
    detail_claims: Sequence[str] = (),
    validate_each_request: Validator | None = None,
    profile: str | Sequence[str] | None = None,
    scope_implies: Mapping[str, str | Sequence[str]] | None = None,
    introspection: IntrospectionSource | None = None,
) -> Configuration:
    """Validate the options of :class:`Verifier` (see there) and build its policies."""
    _check_introspection(introspection)
    if isinstance(leeway, bool) or not isinstance(leeway, (int, float)):
        raise ConfigurationError("leeway must be a number of seconds")
    if not 0 <= leeway <= MAX_LEEWAY:
        raise ConfigurationError(f"leeway must be between 0 and {MAX_LEEWAY} seconds")
    if max_token_age is not None and (
        isinstance(max_token_age, bool)
        or not isinstance(max_token_age, (int, float))
        or not math.isfinite(max_token_age)  # NaN would silently disable the check
        or max_token_age <= 0
    ):
        raise ConfigurationError("max_token_age must be a positive number of seconds")
    if (
        isinstance(max_token_bytes, bool)
        or not isinstance(max_token_bytes, int)
        or not 256 <= max_token_bytes <= 65536
    ):
        raise ConfigurationError("max_token_bytes must be an integer from 256 to 65536")
    if isinstance(required_claims, str) or not all(
        isinstance(c, str) and c for c in required_claims
    ):
        raise ConfigurationError("required_claims must be a list of claim names")
    if typ is not None and (not isinstance(typ, str) or not typ):
        raise ConfigurationError("typ must be a non-empty string")
    if isinstance(cache_size, bool) or not isinstance(cache_size, int) or cache_size < 0:
        raise ConfigurationError("cache_size must be a non-negative integer")
    if clock is not None and not callable(clock):
        raise ConfigurationError("clock must be a callable returning epoch seconds")
    if denylist is not None and not isinstance(denylist, Denylist):
        raise ConfigurationError("denylist must be a MemoryDenylist, RedisDenylist or Denylist")
    roles_paths = _strings(roles_claim, "roles_claim") or ()
    scopes_paths = _strings(scopes_claim, "scopes_claim") or ()
    required = tuple(dict.fromkeys(required_claims))
    required_by: dict[str, str] = {}
    if denylist is not None and not allow_tokens_without_jti and "jti" not in required:
        # A token without jti could never be revoked (issue #6). Its refusal says so: the
        # claim is not in required_claims, so "required" alone points at the token.
        required += ("jti",)
        required_by["jti"] = (
            "denylist= needs it to revoke one token; allow_tokens_without_jti=True accepts "
            "tokens without one"
        )
    typ = normalize_typ(typ) if typ is not None else None
    verifier_profile = resolve_profile(profile)
    values = claim_value_rules(claims, "claims")
    validators = _hooks(validate, "validate")
    per_request = _hooks(validate_each_request, "validate_each_request")
    hierarchy = _hierarchy(scope_implies)
    if isinstance(detail_claims, str) or not all(isinstance(c, str) and c for c in detail_claims):
        raise ConfigurationError("detail_claims must be a list of claim names")
    # Opt-in: claim values a failed claim-value rule may show in its detail (issue #14).
    shown = SHOWN_CLAIM_VALUES | frozenset(detail_claims)

    def policy(
        source: KeySource | None,
        algs: str | Sequence[str] | None,
        issuer_names: tuple[str, ...] | None,
        aud: str | Sequence[str] | None,
        roles: tuple[str, ...],
        scopes: tuple[str, ...],
        trusted: TrustedIssuer | TenantIssuer | None = None,
        tenant: tuple[str, str] | None = None,  # (claim, tenant): the claim must equal it
        endpoint: IntrospectionSource | None = None,
    ) -> Policy:
        if source is None and endpoint is not None:
            source = NoKeys()
        if not isinstance(source, KeySource):
            raise ConfigurationError("keys must be a key source (StaticKeys, JWKSKeys, ...)")
        auds = _strings(aud, "audience")
        issuer_set = frozenset(issuer_names) if issuer_names is not None else None
        keys_decide = algs is None and source.published
        demands = verifier_profile
        issuer_profile = resolve_profile(trusted.profile) if trusted is not None else None
        if issuer_profile is not None:
            demands = issuer_profile if demands is None else demands + issuer_profile
        # RFC 8725 §3.1 and §2.1: with none named, the keys decide (each its own algorithm,
        # never HS*, never the token's choice); named algorithms win.
        allowed = ASYMMETRIC if keys_decide else check_algorithms(algs)
        if demands is not None:
            allowed = _profile_algorithms(demands, allowed, keys_decide)
        # Impossible combinations are refused now, naming the fix (issue #14).
        source.check_policy(allowed, issuer_set)
        own = claim_value_rules(trusted.claims if trusted else None, "claims")
        if tenant is not None:
            # Microsoft's guidance for multi-tenant apps: the tenant in "iss" must be the "tid".
            own[tenant[0]] = frozenset({(str, tenant[1])})
        rules = ClaimRules(
            issuers=issuer_set,
            audiences=frozenset(auds) if auds is not None else None,
            required=required,
            required_by=required_by,
            typ=typ,
            values={**values, **own},
            shown=shown,
            validators=validators + (_hooks(trusted.validate, "validate") if trusted else ()),
            per_request=per_request
            + (_hooks(trusted.validate_each_request, "validate_each_request") if trusted else ()),
        )
        if demands is not None:
            rules = _apply_profile(demands, rules, allow_tokens_without_jti)
        # The issuer's own hierarchy (a TenantIssuer's for every tenant), else the verifier's.
        implies = trusted.scope_implies if trusted is not None else None
        scope_hierarchy = hierarchy if implies is None else _hierarchy(implies)
        opaque_rules = None
        if endpoint is not None:
            # RFC 7662 §2.2: exp is optional in an answer. So is jti, and oidc-provider leaves
            # it out (an opaque token is its own id): the jti the denylist alone asks for is
            # not required of an introspected token, whose revocation the server answers
            # (active: false); the denylist still checks its subject, and its jti if it has one.
            optional = {"exp"}
            if "jti" in required_by and (demands is None or "jti" not in demands.required_claims):
                optional.add("jti")
            opaque_rules = replace(
                rules, required=tuple(c for c in rules.required if c not in optional)
            )
        return Policy(
            source,
            allowed,
            rules,
            roles,
            scopes,
            keys_decide,
            scope_hierarchy,
            profile=demands,
            curves=demands.curves if demands is not None else None,
            introspection=endpoint,
            introspection_rules=opaque_rules,
        )

    routes: dict[str, Policy] | None = None
    tenant_routes: list[Tenants[Policy]] = []
    retired: list[Policy] = []
    if issuers is not None:
        if keys is not None or issuer is not None:
            raise ConfigurationError("give either issuers=[...] or keys=/issuer=, not both")
        if not issuers:
            raise ConfigurationError("issuers must list at least one TrustedIssuer")
        routes = {}
        templates: list[Policy] = []
        for trusted in issuers:
            if not isinstance(trusted, (TrustedIssuer, TenantIssuer)):
                raise ConfigurationError("issuers must be TrustedIssuer or TenantIssuer objects")
            if trusted.issuer in routes or any(t.template == trusted.issuer for t in tenant_routes):
                raise ConfigurationError("an issuer is listed twice")
            algs = trusted.algorithms if trusted.algorithms is not None else algorithms
            aud = trusted.audience if trusted.audience is not None else audience
            roles = _strings(trusted.roles_claim, "roles_claim") or roles_paths
            scopes = _strings(trusted.scopes_claim, "scopes_claim") or scopes_paths
            if isinstance(trusted, TenantIssuer):
                # The template's own policy holds what every tenant shares (algorithms,
                # audiences, hooks); each tenant's policy is made on first use.
                template = policy(
                    TemplateKeys(trusted.issuer),
                    algs,
                    (trusted.issuer,),
                    aud,
                    roles,
                    scopes,
                    trusted,
                )
                templates.append(template)
                tenant_routes.append(
                    _tenants(trusted, _tenant_policy(policy, template, trusted), retired)
                )
                continue
            _check_endpoint_issuer((trusted.issuer,), trusted.introspection)
            routes[trusted.issuer] = policy(
                trusted.keys,
                algs,
                (trusted.issuer,),
                aud,
                roles,
                scopes,
                trusted,
                endpoint=trusted.introspection,
            )
        policies = (*routes.values(), *templates)
        if introspection is not None:
            raise ConfigurationError(
                "with issuers=[...], give introspection= to the TrustedIssuer whose endpoint it is"
            )
    elif keys is None and introspection is None:
        raise ConfigurationError(
            "keys must be given (StaticKeys, JWKSKeys, ...), or introspection=Introspection(...) "
            "to introspect every token"
        )
    else:
        names = _strings(issuer, "issuer")
        if names is None and isinstance(keys, KeySource):
            # Providers share signing keys between tenants: keys found through one issuer's
            # discovery document must not accept tokens of every issuer they sign for. The
            # discovered issuer is the expected one unless issuer= or allow_any_issuer says not.
            names = keys.pinned_issuers
        if names is None and introspection is not None:
            # From discovery, the endpoint answers for the discovered issuer only.
            names = introspection.pinned_issuers
        _check_endpoint_issuer(names, introspection)
        policies = (
            policy(
                keys,
                algorithms,
                names,
                audience,
                roles_paths,
                scopes_paths,
                endpoint=introspection,
            ),
        )
    introspecting = [p for p in policies if p.introspection is not None]
    if len(introspecting) > 1:
        # An opaque token carries no "iss" to route it by, and trying each endpoint in turn
        # would send every token to every authorization server.
        raise ConfigurationError(
            "only one TrustedIssuer may have introspection=: an opaque token names no issuer "
            "to choose an endpoint by (use one verifier per introspecting issuer)"
        )
    return Configuration(
        policies=policies,
        routes=routes,
        algorithms=frozenset().union(*(p.algorithms for p in policies)),
        leeway=float(leeway),
        max_age=float(max_token_age) if max_token_age is not None else None,
        max_bytes=max_token_bytes,
        clock=clock or time.time,
        denylist=denylist,
        cache_size=cache_size,
        tenants=tuple(tenant_routes),
        retired=retired,
        opaque=introspecting[0] if introspecting else None,
    )


def _tenant_policy(
    policy: Callable[..., Policy], template: Policy, spec: TenantIssuer
) -> Callable[[KeySource, str, str], Policy]:
    """How one tenant's policy is made: the template's, with the tenant's key source, its own
    issuer, and its ``tenant_claim`` rule."""
    rules = template.rules
    claim = spec.tenant_claim
    # None: the template's algorithms follow the keys, so each tenant's do (issue 25).
    algs = None if template.own_algorithms else sorted(template.algorithms)
    aud = sorted(rules.audiences) if rules.audiences is not None else None

    def make(source: KeySource, issuer: str, tenant: str) -> Policy:
        own = (claim, tenant) if claim is not None else None
        return policy(
            source, algs, (issuer,), aud, template.roles_paths, template.scopes_paths, spec, own
        )

    return make


def _tenants(
    spec: TenantIssuer,
    make: Callable[[KeySource, str, str], Policy],
    retired: list[Policy],
) -> Tenants[Policy]:
    """The routing of a tenant template, its factory tried now on every allowed tenant (or a
    sample one): a key source that can never verify a tenant's tokens (HS* from a JWKS,
    discovery for another issuer, a tenant the factory does not know) is a
    ``ConfigurationError`` at start-up, not at the first request. The sources made for the
    check do no I/O and are not kept: sources are made on first use."""
    tenants: Tenants[Policy] = Tenants(spec, make, retired)
    if spec.allowed:
        samples: Sequence[str] = sorted(spec.allowed)
    else:  # any tenant: a name the factory takes (a host name where the tenant is a host)
        names = ("tenant", "tenant.example")
        samples = [next((s for s in names if tenants.url_problem(s) is None), names[0])]
    for sample in samples:
        tenants.make(sample)
    return tenants
