"""The guard: one request from token to principal or answer, for ASGI and WSGI alike.

    adapter ─► request view (ASGIRequest | WSGIRequest, :mod:`.request`)
            ─► Guard.aauthenticate / authenticate: extract (header, cookie, WebSocket; CSRF)
               ─► verify (the verifier's async or sync driver; DPoP inputs from the view)
               ─► record (scope or environ), or raise the error
            ─► adapter places the principal, or writes Guard.answer(error)

The guard holds the adapters' settings (where tokens are looked for, exclusions, CSRF, realm,
``on_error``, the RFC 9728 document) and never calls back into an adapter; the adapters only
read the request and write the answer. No verification rule lives here or in an adapter.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any, Final

from .._core.dpop import request_url
from .._core.errors import (
    AuthenticationRequired,
    ConfigurationError,
    DPoPProofMissing,
    InvalidDPoPProof,
    InvalidRequest,
    JWTGuardError,
    MalformedToken,
)
from .._core.log import DEFAULT_LOG_LIMIT, RejectionLog, logger
from .._core.principal import Principal
from .._core.profiles import check_token_sources
from .._sources.verifier import Verifier
from .answer import Answer, ErrorHandler, Responder
from .client_cert import ClientCertificate
from .extract import (
    CSRF,
    Credentials,
    bearer_token,
    check_csrf,
    extract,
    is_token68,
    override_methods,
)
from .metadata import MetadataEndpoint, ProtectedResource
from .request import ASGIRequest, WSGIRequest

__all__ = [
    "DPOP_SCHEME_KEY",
    "EXCLUDED_KEY",
    "GUARD_KEY",
    "NOT_A_CORS_ANSWER",
    "PREFLIGHT_KEY",
    "PRINCIPAL_KEY",
    "REJECTION_KEY",
    "ROUTE_GUARD_KEY",
    "SOURCE_KEY",
    "VERIFIER_KEY",
    "Guard",
    "in_request_scheme",
]

#: Where the WSGI adapter stores the principal in the environ (and ASGI in the scope).
PRINCIPAL_KEY: Final = "jwt_guard.principal"
#: Where both adapters store their :class:`Guard`: it says a middleware ran, and lets a
#: requirement answer (Flask) or authenticate on an excluded path with its settings.
GUARD_KEY: Final = "jwt_guard.guard"
#: Where a per-route guard (``RouteGuard``, ``JWTBearer``) that verified the request itself
#: leaves its :class:`Guard`: later requirements on the same request answer with its settings
#: when no middleware ran (GUARD_KEY).
ROUTE_GUARD_KEY: Final = "jwt_guard.route_guard"
#: Set (to ``True``) by both adapters on a path they exclude: a dependency or decorator that
#: needs a principal there authenticates on demand with the adapter's guard (GUARD_KEY).
EXCLUDED_KEY: Final = "jwt_guard.excluded"
#: Where the WSGI adapter leaves a rejection for the Flask extension to raise inside Flask, so
#: that the app's after_request hooks (flask-cors) also run on the error answer.
REJECTION_KEY: Final = "jwt_guard.rejection"
#: Set (to ``True``) by the WSGI adapter on a CORS preflight it hands to the Flask extension,
#: which answers it with Flask's automatic ``OPTIONS`` answer where the matched rule has one
#: (no view runs; flask-cors adds its headers), else with a 401.
PREFLIGHT_KEY: Final = "jwt_guard.preflight"
#: Where both adapters store the verifier that accepted the principal: requirements that
#: depend on time (``require_auth_age``) read its clock and leeway.
VERIFIER_KEY: Final = "jwt_guard.verifier"
#: Set (to ``True``) by both adapters on a request authenticated with the DPoP scheme, so that
#: an error raised later in the route (a requirement's 403) is answered in the ``DPoP``
#: challenge, as the scheme the client used (RFC 9449 §7.1). Per request: the principal may
#: come from the verified-token cache, shared by requests.
DPOP_SCHEME_KEY: Final = "jwt_guard.dpop_scheme"
#: Where both adapters store where the principal's token came from and the CSRF settings it
#: passed, ``(source, csrf)``: a per-route guard reuses a cookie principal only if that check
#: was its own (else its CSRF rules would be skipped).
SOURCE_KEY: Final = "jwt_guard.source"

#: The fix for a preflight whose answer from inside the app is no CORS answer.
NOT_A_CORS_ANSWER: Final = (
    "the app's answer carries no Access-Control-Allow-Origin: no CORS layer (such as "
    "flask-cors) answered it, or the Origin is not one it allows"
)
#: Distinct "preflight refused" warnings a guard logs (each once): the fixes are few, and a
#: client cannot grow the set past this.
_PREFLIGHT_WARNINGS: Final = 16

_COOKIE_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 6265 §4.1.1 token


#: A malformed token that is not even token68 (RFC 6750 §2.1): the code and description of
#: its 400, for a header (``False``) and for a cookie (``True``).
_NOT_TOKEN68: Final = {
    False: ("header_malformed", "The Authorization header is malformed."),
    True: ("cookie_malformed", "The token cookie is malformed."),
}
_NOT_TOKEN68_REASON: Final = "the token has characters a bearer token cannot have (RFC 6750 §2.1)"


def in_request_scheme(exc: JWTGuardError, request: Mapping[str, Any] | None) -> JWTGuardError:
    """``exc``, marked for the ``DPoP`` challenge when ``request`` (an ASGI scope or a WSGI
    environ) was authenticated with the DPoP scheme (RFC 9449 §7.1)."""
    if request is not None and request.get(DPOP_SCHEME_KEY):
        exc.dpop_scheme = True
    return exc


class Guard:
    """Adapter settings and the framework-neutral steps of one request."""

    def __init__(
        self,
        *,
        verifier: Verifier,
        cookie: str | None = None,
        header: bool = True,
        optional: bool = False,
        exclude: Sequence[str] = (),
        csrf: bool | CSRF = True,
        realm: str | None = None,
        on_error: ErrorHandler | None = None,
        websocket_query_param: str | None = None,
        protected_resource: ProtectedResource | None = None,
        debug: bool = False,
        log_rejections: int | None = logging.INFO,
        log_limit: int = DEFAULT_LOG_LIMIT,
        unsafe_preflight_to_app: bool = False,
        client_certificate: ClientCertificate | None = None,
    ) -> None:
        if not isinstance(verifier, Verifier):
            raise ConfigurationError("verifier must be a jwt_guard.Verifier")
        if client_certificate is not None and not isinstance(client_certificate, ClientCertificate):
            raise ConfigurationError(
                "client_certificate must be a jwt_guard.ClientCertificate (.tls(), .environ(), "
                ".header(...), .nginx(...), .envoy_xfcc(...))"
            )
        if client_certificate is not None and not verifier.mtls:
            raise ConfigurationError(
                "client_certificate= is read only for Verifier(mtls=True): without it "
                "certificate-bound tokens are refused and the certificate is never used"
            )
        if cookie is not None and not (isinstance(cookie, str) and _COOKIE_NAME.fullmatch(cookie)):
            raise ConfigurationError("cookie must be a valid cookie name")
        if not header and cookie is None and websocket_query_param is None:
            raise ConfigurationError("enable the header, a cookie or both")
        if isinstance(exclude, str) or not all(
            isinstance(p, str) and p.startswith("/") for p in exclude
        ):
            raise ConfigurationError("exclude must be a list of paths starting with '/'")
        if not isinstance(csrf, (bool, CSRF)):
            raise ConfigurationError("csrf must be True, False or a jwt_guard.CSRF")
        if websocket_query_param is not None and (
            not isinstance(websocket_query_param, str) or not websocket_query_param
        ):
            raise ConfigurationError("websocket_query_param must be a parameter name")
        # A profile that takes tokens in the header only (fapi2) refuses other sources now.
        check_token_sources(
            verifier.profiles,
            header=header,
            query_param=websocket_query_param,
            where="where the token is read",
            cookie=cookie,
        )
        if on_error is not None and not callable(on_error):
            raise ConfigurationError("on_error must be callable")
        if not isinstance(debug, bool):
            raise ConfigurationError("debug must be True or False")
        if not isinstance(unsafe_preflight_to_app, bool):
            raise ConfigurationError("unsafe_preflight_to_app must be True or False")
        self.log = RejectionLog(log_rejections, log_limit)
        if debug:
            logger.warning(
                "debug=True: error bodies include the rejection detail; "
                "never turn this on in production"
            )
        if unsafe_preflight_to_app and not optional:
            logger.warning(
                "unsafe_preflight_to_app=True: CORS preflights run the app's code without a "
                "token (only an answer with Access-Control-Allow-Origin leaves); put a CORS "
                "layer outside the middleware instead"
            )
        #: Pass CORS preflights to the app without a token (the old behaviour), instead of
        #: answering 401 where no known CORS layer answers them.
        self.unsafe_preflight_to_app = unsafe_preflight_to_app
        self._preflight_warnings: set[str] = set()
        self.verifier = verifier
        #: Where the client certificate comes from (RFC 8705), ``None``: nowhere.
        self.client_certificate = client_certificate
        if (
            verifier.mtls
            and client_certificate is None
            and verifier.dpop is None
            and verifier.profile_all_sender_constrained
        ):
            # Every token is held to a sender-constrained profile (fapi2) and the only
            # constraint this verifier checks is the certificate, which nothing here reads:
            # no token can pass (review R28 F6).
            raise ConfigurationError(
                "Verifier(mtls=True) with a sender-constrained profile (fapi2) and no dpop= "
                "accepts only certificate-bound tokens, and this middleware or guard reads no "
                "certificate: pass client_certificate=ClientCertificate.tls() (ASGI), "
                ".environ('SSL_CLIENT_CERT') (WSGI) or a proxy header "
                "(.header/.nginx/.envoy_xfcc with trusted_proxies=...)"
            )
        if verifier.mtls and client_certificate is None:
            # Fail closed (a bound token gets client_certificate_missing), but say why.
            logger.warning(
                "Verifier(mtls=True) but no client_certificate= source on this middleware or "
                "guard: every certificate-bound token is refused (client_certificate_missing); "
                "pass client_certificate=ClientCertificate.tls() (ASGI), "
                ".environ('SSL_CLIENT_CERT') (WSGI) or a proxy header "
                "(.header/.nginx/.envoy_xfcc with trusted_proxies=...)"
            )
        self.cookie = cookie
        self.header = header
        self.optional = optional
        self.csrf: CSRF | None = CSRF() if csrf is True else (csrf or None)
        self.websocket_query_param = websocket_query_param
        self._exact = frozenset(p for p in exclude if not p.endswith("*"))
        self._prefixes = tuple(p[:-1] for p in exclude if p.endswith("*"))
        self.excludes = bool(exclude)
        #: The verifier's DPoP settings (RFC 9449), ``None`` when it accepts Bearer tokens only.
        self.dpop = verifier.dpop
        if self.dpop is not None and self.dpop.external_url is None and not self.dpop.allowed_hosts:
            # RFC 9449 §4.3 (9) compares htu with the request's URL, whose host is the Host
            # header: the client's to choose. Say so once, at start-up.
            logger.warning(
                "DPoP: the htu check trusts the request's Host header; set "
                "DPoP(external_url=...) or DPoP(allowed_hosts=...) to pin the host"
            )
        #: The RFC 9728 document, served by the adapters before any token is looked for.
        self.metadata: MetadataEndpoint | None = None
        if protected_resource is not None:
            self.metadata = MetadataEndpoint(
                protected_resource,
                issuer_audiences=verifier.issuer_audiences,
                # RFC 9728 §2 names RFC 6750 methods: a cookie is none of them, and the query
                # parameter is read on WebSocket handshakes only. DPoP(required=True) takes no
                # Bearer token at all.
                bearer_methods=(
                    ["header"] if header and not (self.dpop and self.dpop.required) else []
                ),
                dpop_algorithms=self.dpop.algorithms if self.dpop is not None else None,
                dpop_required=self.dpop is not None and self.dpop.required,
                # RFC 9728 §2: advertised only where a certificate is read (review R28 F5).
                mtls=verifier.mtls and client_certificate is not None,
            )
        try:
            self.responder = Responder(
                realm if realm is not None else "api",
                on_error,
                self.metadata.url if self.metadata is not None else None,
                debug,
                dpop=self.dpop,
                challenge_scopes=(
                    protected_resource.scopes_for_401 if protected_resource is not None else ()
                ),
            )
        except ValueError as exc:
            raise ConfigurationError(f"realm: {exc}") from exc

    def is_excluded(self, path: str) -> bool:
        """Public paths: exact matches, or prefixes given as ``"/static/*"``.

        ``path`` is the path as the app's own routes see it: without the prefix the app is
        mounted under (ASGI ``root_path``, WSGI ``SCRIPT_NAME``), percent-decoded as UTF-8.
        """
        return path in self._exact or (bool(self._prefixes) and path.startswith(self._prefixes))

    # -- the request path: extract, verify (the verifier's driver), record -----------------------

    def authenticate(self, request: ASGIRequest | WSGIRequest) -> Principal | None:
        """Extract the token, check CSRF and verify it with the sync driver (WSGI, a sync
        endpoint); record the authentication in the request. ``None`` for an anonymous request
        that ``optional`` allows; raises the :class:`JWTGuardError` to answer (:meth:`answer`).
        """
        found = None
        try:
            found = self.credentials(request)
            if found is None:
                return None
            source = self.client_certificate
            thumbprint = request.client_thumbprint(source) if source is not None else None
            if found.source == "dpop":
                proof, method, url = self.dpop_request(request)
                principal = self.verifier.verify(
                    found.token,
                    dpop_proof=proof,
                    method=method,
                    url=url,
                    certificate_thumbprint=thumbprint,
                )
            else:
                principal = self.verifier.verify(found.token, certificate_thumbprint=thumbprint)
        except JWTGuardError as exc:
            raise self.failed(found, exc) from None
        self.accepted(request.record, found)
        return principal

    async def aauthenticate(self, request: ASGIRequest | WSGIRequest) -> Principal | None:
        """:meth:`authenticate` with the async driver (ASGI)."""
        found = None
        try:
            found = self.credentials(request)
            if found is None:
                return None
            source = self.client_certificate
            thumbprint = request.client_thumbprint(source) if source is not None else None
            if found.source == "dpop":
                proof, method, url = self.dpop_request(request)
                principal = await self.verifier.averify(
                    found.token,
                    dpop_proof=proof,
                    method=method,
                    url=url,
                    certificate_thumbprint=thumbprint,
                )
            else:
                principal = await self.verifier.averify(
                    found.token, certificate_thumbprint=thumbprint
                )
        except JWTGuardError as exc:
            raise self.failed(found, exc) from None
        self.accepted(request.record, found)
        return principal

    def credentials(self, request: ASGIRequest | WSGIRequest) -> Credentials | None:
        """The token to verify, or ``None`` for an anonymous request allowed by ``optional``.

        The full request view is only read for the CSRF check, so the common header-token
        request never decodes headers it does not need. Raises :class:`AuthenticationRequired`
        (401), :class:`InvalidRequest` (400) or :class:`CSRFFailed` (403).
        """
        authorization = request.authorization
        cookie_headers = request.cookies
        websocket = request.websocket
        if len(authorization) == 1 and not cookie_headers and not websocket and self.header:
            # The common case (one Authorization header, nothing else): no general extraction.
            token = bearer_token(authorization[0])
            if token is not None:
                return Credentials(token, "header")
        found = extract(
            authorization,
            cookie_headers,
            request.query_string() if websocket else "",
            header=self.header,
            cookie=self.cookie,
            query_param=self.websocket_query_param if websocket else None,
            dpop=self.dpop is not None,
        )
        if found is None:
            if self.optional:
                return None
            raise AuthenticationRequired(detail=lambda: {"looked_in": self._places(websocket)})
        if found.source == "cookie" and self.csrf is not None:
            # The browser attaches cookies on its own; prove the request is same-site intent.
            check_csrf(request.view(), self.csrf, websocket=websocket, token=found.token)
        return found

    def preflight_refused(self, fix: str) -> AuthenticationRequired:
        """The 401 for a CORS preflight that no known CORS layer answers (Fetch §4.8: it
        carries no credentials, and no app code runs without them), saying once at WARNING
        level what would make it pass: a refused preflight is a browser's CORS failure, with
        nothing on the page to tell why."""
        if fix not in self._preflight_warnings and len(self._preflight_warnings) < (
            _PREFLIGHT_WARNINGS
        ):
            self._preflight_warnings.add(fix)
            logger.warning("a CORS preflight was answered 401 without running the app: %s", fix)
        return AuthenticationRequired(
            detail={"reason": "a CORS preflight that no known CORS layer answers", "fix": fix}
        )

    def _places(self, websocket: bool) -> list[str]:
        places = ["Authorization: Bearer header"] if self.header else []
        if self.cookie is not None:
            places.append(f"cookie {self.cookie!r}")
        if websocket and self.websocket_query_param is not None:
            places.append(f"query parameter {self.websocket_query_param!r}")
        return places

    @staticmethod
    def refine(found: Credentials, exc: JWTGuardError) -> JWTGuardError:
        """A malformed token that is not even token68 is a malformed *request* (400). An error
        of a request with the DPoP scheme is marked so, for its challenge (RFC 9449 §7.2)."""
        if found.source == "dpop":
            exc.dpop_scheme = True
        if isinstance(exc, MalformedToken) and not is_token68(found.token):
            source = found.source
            # Fixed texts; "dpop" is the header too.
            code, description = _NOT_TOKEN68[source == "cookie"]
            refined = InvalidRequest(
                code=code,
                description=description,
                detail=lambda: {"reason": _NOT_TOKEN68_REASON, "source": source},
            )
            refined.dpop_scheme = exc.dpop_scheme
            return refined
        return exc

    def failed(self, found: Credentials | None, exc: JWTGuardError) -> JWTGuardError:
        """The error to answer for a failed authentication (refined), counted in the metrics."""
        if found is not None:
            exc = self.refine(found, exc)
        metrics = self.verifier.metrics
        if metrics is not None:
            source = found.source if found is not None else "none"
            metrics.verification(exc.code, source)
        return exc

    def accepted(self, request: MutableMapping[str, Any], found: Credentials) -> None:
        """Record a successful authentication in the scope or environ (the token's source and
        the CSRF settings it passed, the DPoP scheme for later challenges) and count it: the
        same bookkeeping for both drivers and both adapters."""
        if found.source == "dpop":
            request[DPOP_SCHEME_KEY] = True
        request[SOURCE_KEY] = (found.source, self.csrf)
        metrics = self.verifier.metrics
        if metrics is not None:
            metrics.valid[found.source] += 1

    def answer(
        self,
        exc: JWTGuardError,
        request: Mapping[str, Any] | None = None,
        scopes: Sequence[str] = (),
    ) -> Answer:
        """Log the rejection (rate-limited) and build the answer; ``request`` (the scope or
        environ) says which scheme the client used, for an error raised after authentication;
        ``scopes`` are the route's, named in a 401's challenge."""
        self.log(exc)
        return self.responder.answer(in_request_scheme(exc, request), scopes)

    # -- DPoP (RFC 9449): what the adapters read from a request with the DPoP scheme --------------

    def dpop_request(self, request: ASGIRequest | WSGIRequest) -> tuple[str, str, str]:
        """For a token sent with the DPoP scheme: the proof, the method and the URL it must
        name (the ``htm`` and ``htu`` checks, RFC 9449 §4.3).

        Exactly one ``DPoP`` header is accepted (RFC 9449 §4.3 (1)). The URL is the request's
        scheme, host and path as received, unless ``DPoP(external_url=...)`` says what clients
        see in front of a proxy.
        """
        proofs, scheme, host, path, method, overrides, query = request.dpop_inputs()
        if len(proofs) != 1 or not proofs[0]:
            raise DPoPProofMissing(detail={"dpop_headers": len(proofs)})
        # RFC 9449 §4.3 (8): htm names the method the app will act on. An app (or a framework
        # middleware) honouring X-HTTP-Method-Override or _method acts on another one than the
        # proof was made for: refused rather than guessed.
        if any(named != method for named in override_methods(overrides, query)):
            raise InvalidDPoPProof(
                detail={"reason": "a method override names another method than htm"}
            )
        assert self.dpop is not None  # a "dpop" credential is only extracted with DPoP on
        return proofs[0], method, request_url(scheme, host, path, self.dpop.external_url)

    def dpop_nonce(self) -> str | None:
        """The nonce for an authenticated response when server nonces are configured, else
        ``None`` (RFC 9449 §8.2, §9: the client uses it in its next proof, no extra 401)."""
        dpop = self.dpop
        if dpop is None or dpop.nonce is None:
            return None
        return dpop.nonce.issue(self.verifier.now())
