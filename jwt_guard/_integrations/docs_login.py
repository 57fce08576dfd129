"""A login in FastAPI's ``/docs``: the OAuth 2.0 authorization-code flow with PKCE.

Swagger UI logs the developer in at the identity provider (RFC 6749 §4.1, as a public client
with PKCE, RFC 7636) and sends the access token it gets as ``Authorization: Bearer``, so the
routes are tried with a real token instead of a pasted one. The OpenAPI document gains an
``oauth2`` scheme next to the plain Bearer one, with each operation's required scopes, and
every scope a route requires is offered in the login's scope list. Extra parameters of the
authorization request (``audience``, RFC 8707 ``resource``) are sent by Swagger UI.

With :meth:`OAuth2Login.from_discovery`, the endpoints and scopes come from OpenID Connect
discovery, read when the OpenAPI document is first asked for (asynchronously in the app, under
one total deadline) and read again after a failure, never at import: an identity provider that
is down must not stop the API from starting, nor its routes from answering. Until the document
is read, ``/docs`` says the login is unavailable and still offers the pasted token.

Swagger UI's files are served by the app itself when the ``fastapi-swagger`` package (Swagger
UI 5, for OpenAPI 3.1) is installed: no CDN needed.
"""

from __future__ import annotations

import asyncio
import copy
import importlib.resources
import json
import logging
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, Literal

import httpx
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.openapi.models import OAuth2 as OAuth2Model
from fastapi.security import OAuth2AuthorizationCodeBearer
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from .._core.errors import ConfigurationError
from .._core.jwks_policy import FetchFailed
from .._http.authz import openapi_bearer_scheme
from .._sources.deadline import DeadlineExceeded, acall_with_deadline, call_with_deadline
from .._sources.discovery import metadata_documents, read_metadata_async, read_metadata_sync
from .._sources.fetch import AsyncGet, Sockets, SyncGet, check_url, display_url, new_client
from .._sources.verifier import Verifier

__all__ = ["OAuth2Login", "serve_swagger_ui"]

logger = logging.getLogger("jwt_guard")

#: A discovery document is a few KiB; anything far larger is not one.
MAX_DISCOVERY_BYTES: Final = 256 * 1024

#: After a failed read of the discovery document, the next read waits at least this long
#: (seconds): the OpenAPI document is public, and its requests must not each become one to the
#: identity provider.
DISCOVERY_RETRY_INTERVAL: Final = 10.0

#: Parameters Swagger UI sets on the authorization request itself (RFC 6749 §4.1.1, RFC 7636
#: §4.3): an extra parameter of one of these names would be sent twice.
_RFC6749_PARAMETERS: Final = ("response_type", "client_id", "redirect_uri", "scope", "state")
_OWN_PARAMETERS: Final = frozenset(
    (*_RFC6749_PARAMETERS, "code_challenge", "code_challenge_method")
)

#: The OpenAPI document's description while the login's endpoints are unknown. Fixed text: the
#: document is public; the URL and the reason are in the log.
LOGIN_UNAVAILABLE: Final = (
    "**Login unavailable**: the identity provider's discovery document could not be read (the "
    "reason is in the API's log). Reload this page to try again; meanwhile, paste a token "
    "under HTTPBearer."
)

AudienceParam = Literal["audience", "resource", False] | None


def _check_resource(value: str, what: str) -> str:
    # RFC 8707 §2: the resource indicator is an absolute URI without a fragment.
    parts = urllib.parse.urlsplit(value)
    if not parts.scheme or parts.fragment or "#" in value:
        raise ConfigurationError(
            f"{what}: {value!r} is not an absolute URI without a fragment (RFC 8707 §2); "
            "use audience_param='audience' (or authorization_params={'audience': ...}) for an "
            "audience that is not a URI"
        )
    return value


def _authorization_params(params: Mapping[str, str] | None) -> dict[str, str]:
    found = dict(params or {})
    for name, value in found.items():
        if not isinstance(name, str) or not isinstance(value, str) or not name:
            raise ConfigurationError("authorization_params must map names to strings")
        if name in _OWN_PARAMETERS:
            raise ConfigurationError(
                f"authorization_params: {name!r} is set by Swagger UI itself"
                + (" (give scopes with scopes=/default_scopes=)" if name == "scope" else "")
            )
    if "resource" in found:
        _check_resource(found["resource"], "authorization_params['resource']")
    return found


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class _Discovery:
    """Where the login's endpoints come from: the document's URL and the issuers it may name,
    and the state of reading it (single flight, the time of the last failure)."""

    def __init__(
        self,
        issuer: str,
        *,
        allow_http: bool,
        timeout: float,
        retry_interval: float,
        client: httpx.Client | httpx.AsyncClient | None,
    ) -> None:
        check_url(issuer, allow_http, "issuer")
        if not (timeout > 0 and retry_interval >= 0):
            raise ConfigurationError("timeout must be > 0 and retry_interval >= 0")
        # The addresses the verifier's discovery reads too: OpenID Connect, then RFC 8414.
        self.documents, self.expected = metadata_documents(issuer)
        self.url = self.documents[0]
        self.timeout = timeout
        self.retry_interval = retry_interval
        self.client = client
        self.failed_at: float | None = None
        self.lock = threading.Lock()  # the sync reads: one at a time
        self.task: asyncio.Task[None] | None = None  # the async read in flight

    def due(self) -> bool:
        """May a read start now (none failed, or the last failure is old enough)?"""
        return self.failed_at is None or time.monotonic() - self.failed_at >= self.retry_interval

    def _failure(self, exc: Exception) -> ConfigurationError:
        if isinstance(exc, DeadlineExceeded):
            reason = "timed out"
        elif isinstance(exc, FetchFailed):
            reason = str(exc)
        else:
            reason = f"{type(exc).__name__}"
        return ConfigurationError(
            f"discovery document {display_url(self.url)}: {reason} (is the issuer up?)"
        )

    def get_sync(self) -> tuple[str, bytes]:
        """The document's URL and body, read in this thread under one total deadline."""
        client = self.client if isinstance(self.client, httpx.Client) else None
        http = client or new_client(httpx.Client)
        sockets = Sockets()
        try:
            get = SyncGet(http, self.timeout, MAX_DISCOVERY_BYTES, sockets)
            found = call_with_deadline(
                lambda: read_metadata_sync(get, self.documents), self.timeout, abort=sockets.abort
            )
        except DeadlineExceeded as exc:
            if exc.worker is not None:
                exc.worker.join(self.timeout)  # its sockets are shut: it ends soon
            raise self._failure(exc) from exc
        except (FetchFailed, httpx.HTTPError) as exc:
            raise self._failure(exc) from exc
        finally:
            if client is None:
                http.close()
        return found

    async def get_async(self) -> tuple[str, bytes]:
        """The document's URL and body, read on the event loop under one total deadline."""
        client = self.client if isinstance(self.client, httpx.AsyncClient) else None
        http = client or new_client(httpx.AsyncClient)
        try:
            get = AsyncGet(http, self.timeout, MAX_DISCOVERY_BYTES)
            found = await acall_with_deadline(
                read_metadata_async(get, self.documents), self.timeout
            )
        except (DeadlineExceeded, FetchFailed, httpx.HTTPError) as exc:
            raise self._failure(exc) from exc
        finally:
            if client is None:
                await http.aclose()
        return found

    def read(self, url: str, body: bytes) -> tuple[str, str, list[str]]:
        """The authorization and token endpoints and the scopes a document names."""
        where = f"discovery document {display_url(url)}"
        try:
            document = json.loads(body)
        except (ValueError, RecursionError) as exc:
            raise ConfigurationError(f"{where}: not JSON") from exc
        if not isinstance(document, dict):
            raise ConfigurationError(f"{where}: not a JSON object")
        found = document.get("issuer")
        # OpenID Connect Discovery 1.0 §4.3, RFC 8414 §3.3: exactly the configured issuer.
        if not isinstance(found, str) or found not in self.expected:
            raise ConfigurationError(f"{where}: issuer {found!r} is not {self.expected[0]!r}")
        endpoints = []
        for name in ("authorization_endpoint", "token_endpoint"):
            value = document.get(name)
            if not isinstance(value, str):
                raise ConfigurationError(f"{where}: no {name}")
            endpoints.append(value)
        supported = document.get("scopes_supported")
        listed = supported if isinstance(supported, list) else []
        return endpoints[0], endpoints[1], [s for s in listed if isinstance(s, str)]


class OAuth2Login:
    """The authorization-code login (PKCE) of ``/docs`` for a public client.

        login = OAuth2Login.from_discovery("https://idp.example.com", client_id="api-docs",
                                           audience_param="audience")
        app = FastAPI()
        app.add_middleware(JWTGuardMiddleware, verifier=verifier, exclude=[...])
        login.install(app)        # OpenAPI scheme, swagger_ui_init_oauth, local Swagger UI

    ``authorization_params`` are sent on the authorization request (Swagger UI's
    ``additionalQueryStringParams``); ``audience_param="audience"`` (Auth0) or ``"resource"``
    (RFC 8707) sends the verifier's audience under that name, ``False`` says the provider needs
    neither. ``scheme`` is FastAPI's :class:`OAuth2AuthorizationCodeBearer` for these endpoints
    (``auto_error=False``: the middleware or guard answers for tokens, with RFC 6750 errors);
    ``swagger_ui_init_oauth`` is what ``FastAPI(swagger_ui_init_oauth=...)`` takes.
    """

    def __init__(
        self,
        *,
        authorization_url: str,
        token_url: str,
        client_id: str,
        scopes: Mapping[str, str] | Iterable[str] = (),
        default_scopes: Iterable[str] | None = None,
        refresh_url: str | None = None,
        scheme_name: str = "OAuth2",
        allow_http: bool = False,
        authorization_params: Mapping[str, str] | None = None,
        audience_param: AudienceParam = None,
    ) -> None:
        self._setup(
            client_id,
            scopes,
            default_scopes,
            refresh_url,
            scheme_name,
            allow_http,
            authorization_params,
            audience_param,
        )
        self._endpoints(authorization_url, token_url)

    def _setup(
        self,
        client_id: str,
        scopes: Mapping[str, str] | Iterable[str],
        default_scopes: Iterable[str] | None,
        refresh_url: str | None,
        scheme_name: str,
        allow_http: bool,
        authorization_params: Mapping[str, str] | None,
        audience_param: AudienceParam,
    ) -> None:
        """Everything but the endpoints, which ``__init__`` takes and discovery reads."""
        if not isinstance(client_id, str) or not client_id:
            raise ConfigurationError("client_id must be a non-empty string")
        if audience_param not in ("audience", "resource", False, None):
            raise ConfigurationError("audience_param must be 'audience', 'resource' or False")
        self._allow_http = allow_http
        self.refresh_url = (
            check_url(refresh_url, allow_http, "refresh_url") if refresh_url else None
        )
        self.client_id = client_id
        self.scopes: dict[str, str] = (
            dict(scopes) if isinstance(scopes, Mapping) else dict.fromkeys(scopes, "")
        )
        self.default_scopes = tuple(default_scopes if default_scopes is not None else ())
        self.authorization_params = _authorization_params(authorization_params)
        if audience_param and audience_param in self.authorization_params:
            # One would silently replace the other at install().
            raise ConfigurationError(
                f"audience_param={audience_param!r} and authorization_params"
                f"[{audience_param!r}] both set it: give one"
            )
        self.audience_param = audience_param
        self.scheme_name = scheme_name
        #: ``None`` until discovery has read them (``from_discovery``).
        self.authorization_url: str | None = None
        self.token_url: str | None = None
        self._discovery: _Discovery | None = None
        self._scopes_given = True
        self.scheme = OAuth2AuthorizationCodeBearer(
            authorizationUrl="",  # set with the endpoints
            tokenUrl="",
            refreshUrl=self.refresh_url,
            scopes=self.scopes,
            scheme_name=scheme_name,
            description=f"Log in at the identity provider (client {client_id}, PKCE).",
            auto_error=False,
        )

    def __repr__(self) -> str:
        return f"OAuth2Login(client_id={self.client_id!r}, token_url={self.token_url!r})"

    def _endpoints(self, authorization_url: str, token_url: str) -> None:
        authorization_url = check_url(authorization_url, self._allow_http, "authorization_url")
        token_url = check_url(token_url, self._allow_http, "token_url")
        model = self.scheme.model
        flow = model.flows.authorizationCode if isinstance(model, OAuth2Model) else None
        if flow is not None:
            flow.authorizationUrl, flow.tokenUrl = authorization_url, token_url
            flow.scopes = self.scopes
        self.authorization_url, self.token_url = authorization_url, token_url

    @property
    def ready(self) -> bool:
        """Are the endpoints known (given, or read from discovery)?"""
        return self.authorization_url is not None

    @classmethod
    def from_discovery(
        cls,
        issuer: str,
        *,
        client_id: str,
        scopes: Mapping[str, str] | Iterable[str] | None = None,
        default_scopes: Iterable[str] | None = None,
        allow_http: bool = False,
        timeout: float = 5.0,
        retry_interval: float = DISCOVERY_RETRY_INTERVAL,
        client: httpx.Client | httpx.AsyncClient | None = None,
        authorization_params: Mapping[str, str] | None = None,
        audience_param: AudienceParam = None,
    ) -> OAuth2Login:
        """A login whose endpoints (and, unless given, scopes) come from the issuer's metadata.

        Nothing is fetched now.

        ``issuer`` is the issuer or a metadata document's URL; the addresses tried are the
        verifier's (OpenID Connect discovery, then RFC 8414). The document is read when the
        app's OpenAPI document is first asked for (or by :meth:`discover`/:meth:`adiscover`),
        within ``timeout`` seconds; after a failure, again at the first request
        ``retry_interval`` seconds later. Its ``issuer`` must equal the configured one (OpenID
        Connect Discovery 1.0 §4.3, RFC 8414 §3.3), and its ``authorization_endpoint`` and
        ``token_endpoint`` must be https (http on loopback). ``client`` (sync or async) is
        used for the reads it can make.
        """
        login = cls.__new__(cls)
        login._setup(
            client_id,
            scopes or (),
            default_scopes,
            None,
            "OAuth2",
            allow_http,
            authorization_params,
            audience_param,
        )
        login._scopes_given = scopes is not None
        login._discovery = _Discovery(
            issuer,
            allow_http=allow_http,
            timeout=timeout,
            retry_interval=retry_interval,
            client=client,
        )
        return login

    def _apply(self, discovery: _Discovery, found: tuple[str, bytes]) -> None:
        authorization_url, token_url, supported = discovery.read(*found)
        if not self._scopes_given:
            self.scopes = dict.fromkeys(supported, "")
        self._endpoints(authorization_url, token_url)
        discovery.failed_at = None

    def discover(self) -> None:
        """Read the discovery document now, in this thread.

        A :class:`ConfigurationError` says why it could not be read or used. Nothing to do
        without discovery."""
        if self._discovery is not None:
            self._apply(self._discovery, self._discovery.get_sync())

    async def adiscover(self) -> None:
        """:meth:`discover` on the event loop."""
        if self._discovery is not None:
            self._apply(self._discovery, await self._discovery.get_async())

    def _failed(self, discovery: _Discovery, exc: ConfigurationError) -> None:
        discovery.failed_at = time.monotonic()
        logger.warning(
            "/docs login unavailable: %s. The API is not affected (it verifies tokens with its "
            "own key source); the document is read again at the first request for the OpenAPI "
            "document after %g s",
            exc,
            discovery.retry_interval,
        )

    def _ensure_sync(self) -> None:
        discovery = self._discovery
        if discovery is None:
            return
        with discovery.lock:
            if self.ready or not discovery.due():
                return
            try:
                self.discover()
            except ConfigurationError as exc:
                self._failed(discovery, exc)

    async def _ensure_async(self) -> None:
        """Read the document unless it was read, or failed too recently; a read in flight on
        this loop is joined, not repeated (single flight)."""
        discovery = self._discovery
        if discovery is None or self.ready:
            return
        loop = asyncio.get_running_loop()
        task = discovery.task
        if task is None or task.done() or task.get_loop() is not loop:
            if not discovery.due():
                return
            task = discovery.task = loop.create_task(self._discover_async(discovery))
        await asyncio.shield(task)

    async def _discover_async(self, discovery: _Discovery) -> None:
        try:
            await self.adiscover()
        except ConfigurationError as exc:
            self._failed(discovery, exc)

    @property
    def swagger_ui_init_oauth(self) -> dict[str, Any]:
        """Swagger UI's ``initOAuth`` settings.

        This client, PKCE, the scopes ticked first, the extra parameters of the authorization
        request."""
        settings: dict[str, Any] = {
            "clientId": self.client_id,
            "usePkceWithAuthorizationCodeGrant": True,
        }
        if self.default_scopes:
            settings["scopes"] = " ".join(self.default_scopes)
        if self.authorization_params:
            settings["additionalQueryStringParams"] = dict(self.authorization_params)
        return settings

    def check_audience(self, verifier: Verifier | None) -> None:
        """Fill in ``audience_param`` from ``verifier``'s audience, or warn when it cannot.

        It warns when the verifier expects an audience and the login asks the provider for none
        (``install`` calls it)."""
        name = self.audience_param
        audiences = sorted(verifier.audiences) if verifier is not None else []
        if name:
            if verifier is None:
                raise ConfigurationError(
                    f"audience_param={name!r} sends the verifier's audience, but the app has no "
                    "JWTGuardMiddleware(verifier=...) yet: add it before install(app), or call "
                    "install(app, verifier=...)"
                )
            if len(audiences) != 1:
                raise ConfigurationError(
                    f"audience_param={name!r} sends the verifier's audience, but it accepts "
                    f"{len(audiences)} ({audiences}): name one with "
                    f"authorization_params={{{name!r}: ...}}"
                )
            value = audiences[0]
            if name == "resource":
                _check_resource(value, "audience_param='resource'")
            self.authorization_params[name] = value
        elif (
            name is None
            and audiences
            and not {"audience", "resource"} & self.authorization_params.keys()
        ):
            # Silence would be a bug: Auth0-like providers then issue an opaque token (or one
            # for another audience) that this API refuses, and nothing says why.
            logger.warning(
                "the /docs login (client_id %r) asks the identity provider for no audience, "
                "but this API accepts only tokens for %s: providers like Auth0 then issue a "
                "token it refuses (opaque, or for another audience). Fix: "
                "OAuth2Login(..., audience_param='audience') (Auth0) or "
                "audience_param='resource' (RFC 8707), or authorization_params={...}; "
                "audience_param=False if your provider needs neither",
                self.client_id,
                " or ".join(repr(a) for a in audiences),
            )

    def rewrite_openapi(self, schema: dict[str, Any]) -> dict[str, Any]:
        """Add the oauth2 scheme to the OpenAPI document.

        Where an operation accepts jwt_guard's Bearer scheme it accepts the login too, with the
        operation's scopes (merged into one requirement). Every scope an operation requires is in
        the scheme's scope list, whether discovery's ``scopes_supported`` names it or not."""
        bearer = openapi_bearer_scheme().scheme_name
        needed: dict[str, list[str]] = {}
        for path, item in schema.get("paths", {}).items():
            for method, operation in item.items():
                if not isinstance(operation, dict) or "security" not in operation:
                    continue
                requirements = operation["security"]
                if not any(bearer in requirement for requirement in requirements):
                    continue
                scopes = sorted(
                    {s for requirement in requirements for s in requirement.get(bearer, ())}
                )
                for scope in scopes:
                    needed.setdefault(scope, []).append(f"{method.upper()} {path}")
                others = [r for r in requirements if bearer not in r and self.scheme_name not in r]
                operation["security"] = [{self.scheme_name: scopes}, {bearer: []}, *others]
        offered = dict(self.scopes)
        for scope, operations in needed.items():
            if not offered.get(scope):
                shown = ", ".join(operations[:3]) + (", …" if len(operations) > 3 else "")
                offered[scope] = f"Required by {shown}"
        components = schema.setdefault("components", {})
        schemes = components.setdefault("securitySchemes", {})
        scheme = self.scheme.model.model_dump(mode="json", by_alias=True, exclude_none=True)
        scheme["flows"]["authorizationCode"]["scopes"] = offered
        schemes[self.scheme_name] = scheme
        return schema

    def without_login(self, schema: dict[str, Any]) -> dict[str, Any]:
        """The OpenAPI document while the endpoints are unknown.

        The Bearer scheme only, and a line saying the login is unavailable."""
        schemes = schema.get("components", {}).get("securitySchemes", {})
        schemes.pop(self.scheme_name, None)  # Security(login.scheme) on a route
        for item in schema.get("paths", {}).values():
            for operation in item.values():
                if isinstance(operation, dict) and "security" in operation:
                    kept = [r for r in operation["security"] if self.scheme_name not in r]
                    operation["security"] = kept or [{openapi_bearer_scheme().scheme_name: []}]
        info = schema.setdefault("info", {})
        described = info.get("description")
        info["description"] = (
            f"{LOGIN_UNAVAILABLE}\n\n{described}" if described else (LOGIN_UNAVAILABLE)
        )
        return schema

    def install(self, app: FastAPI, *, verifier: Verifier | None = None) -> None:
        """Give ``app`` the login: the OpenAPI scheme, Swagger UI's settings, local assets.

        ``verifier`` (else the one of the app's :class:`JWTGuardMiddleware`, added before this
        call) gives ``audience_param`` its value, or the start-up warning its audience.
        """
        self.check_audience(verifier or _app_verifier(app))
        app.swagger_ui_init_oauth = self.swagger_ui_init_oauth
        generate: Callable[[], dict[str, Any]] = app.openapi
        done: list[dict[str, Any]] = []

        def openapi() -> dict[str, Any]:
            if done:
                return done[0]
            if not self.ready and not _in_event_loop():
                self._ensure_sync()  # a script asking for the schema: read discovery now
            if not self.ready:
                # On the event loop the schema route has tried; never block the loop here.
                return self.without_login(copy.deepcopy(generate()))
            done.append(self.rewrite_openapi(generate()))
            app.openapi_schema = done[0]
            return done[0]

        app.openapi = openapi  # type: ignore[method-assign]
        _serve_openapi(app, self)
        serve_swagger_ui(app)


def _app_verifier(app: FastAPI) -> Verifier | None:
    """The verifier of the app's JWTGuardMiddleware (added with ``add_middleware``), if any."""
    for middleware in app.user_middleware:
        found = middleware.kwargs.get("verifier")
        if isinstance(found, Verifier):
            return found
    return None


def _serve_openapi(app: FastAPI, login: OAuth2Login) -> None:
    """Serve the OpenAPI document after reading discovery on the event loop (FastAPI's own
    route calls the sync ``app.openapi()``, which must not block the loop with a fetch)."""
    openapi_url = app.openapi_url
    if not openapi_url:
        return

    async def openapi(request: Request) -> JSONResponse:
        await login._ensure_async()
        schema = app.openapi()
        # As FastAPI's own route: behind a proxy prefix, the prefix is the first server.
        root_path = request.scope.get("root_path", "").rstrip("/")
        servers = schema.get("servers", [])
        if (
            root_path
            and app.root_path_in_servers
            and root_path not in {s.get("url") for s in servers}
        ):
            schema = {**schema, "servers": [{"url": root_path}, *schema.get("servers", [])]}
        return JSONResponse(schema)

    kept = [r for r in app.router.routes if not (isinstance(r, Route) and r.path == openapi_url)]
    app.router.routes[:] = [Route(openapi_url, openapi, include_in_schema=False), *kept]


def serve_swagger_ui(app: FastAPI) -> bool:
    """Serve ``/docs`` with Swagger UI's files from the ``fastapi-swagger`` package.

    Instead of a CDN, for machines without internet. Returns False, leaving FastAPI's page,
    when the package is not installed or the app has no docs."""
    try:
        files = importlib.resources.files("fastapi_swagger") / "resources"
    except ModuleNotFoundError:
        return False
    docs_url, openapi_url = app.docs_url, app.openapi_url
    if not docs_url or not openapi_url:
        return False
    redirect_url = app.swagger_ui_oauth2_redirect_url
    assets = f"{docs_url.rstrip('/')}/assets"

    async def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=root + redirect_url if redirect_url else None,
            init_oauth=app.swagger_ui_init_oauth,
            swagger_ui_parameters=app.swagger_ui_parameters,
            swagger_js_url=f"{root}{assets}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{assets}/swagger-ui.css",
            swagger_favicon_url=f"{root}{assets}/favicon-32x32.png",
        )

    async def redirect(request: Request) -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    # FastAPI added its CDN page at start-up: these replace it.
    replaced = {docs_url, redirect_url}
    kept: list[BaseRoute] = [
        r for r in app.router.routes if not (isinstance(r, Route) and r.path in replaced)
    ]
    added: list[BaseRoute] = [
        Route(docs_url, docs, include_in_schema=False),
        Mount(assets, StaticFiles(directory=str(files)), name="swagger-ui-assets"),
    ]
    if redirect_url:
        added.append(Route(redirect_url, redirect, include_in_schema=False))
    app.router.routes[:] = [*added, *kept]
    return True
