"""A login in FastAPI's ``/docs``: the OAuth 2.0 authorization-code flow with PKCE.

Swagger UI logs the developer in at the identity provider (RFC 6749 §4.1, as a public client
with PKCE, RFC 7636) and sends the access token it gets as ``Authorization: Bearer``, so the
routes are tried with a real token instead of a pasted one. The endpoints and scopes come from
OpenID Connect discovery; the OpenAPI document gains an ``oauth2`` scheme next to the plain
Bearer one, with each operation's required scopes. Swagger UI's files are served by the app
itself when the ``fastapi-swagger`` package (Swagger UI 5, for OpenAPI 3.1) is installed: no
CDN needed.
"""

from __future__ import annotations

import importlib.resources
import json
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

import httpx
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.security import OAuth2AuthorizationCodeBearer
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from .._core.errors import ConfigurationError
from .._http.authz import openapi_bearer_scheme
from .._sources.discovery import WELL_KNOWN
from .._sources.fetch import check_url

__all__ = ["OAuth2Login", "serve_swagger_ui"]

#: A discovery document is a few KiB; anything far larger is not one.
MAX_DISCOVERY_BYTES: Final = 256 * 1024


def _fetch_discovery(
    url: str, *, timeout: float, client: httpx.Client | None
) -> tuple[str, dict[str, Any]]:
    """GET the discovery document: 200, no redirects, bounded size, a JSON object."""
    own = client is None
    http = client or httpx.Client()
    try:
        with http.stream(
            "GET",
            url,
            timeout=timeout,
            follow_redirects=False,
            headers={"Accept": "application/json"},
        ) as response:
            if response.status_code != 200:
                raise ConfigurationError(f"discovery document {url}: HTTP {response.status_code}")
            body = b""
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_DISCOVERY_BYTES:
                    raise ConfigurationError(f"discovery document {url}: too large")
    except httpx.HTTPError as exc:
        raise ConfigurationError(
            f"discovery document {url}: {type(exc).__name__} (is the issuer up?)"
        ) from exc
    finally:
        if own:
            http.close()
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise ConfigurationError(f"discovery document {url}: not JSON") from exc
    if not isinstance(document, dict):
        raise ConfigurationError(f"discovery document {url}: not a JSON object")
    return url, document


class OAuth2Login:
    """The authorization-code login (PKCE) of ``/docs`` for a public client.

        login = OAuth2Login.from_discovery("https://idp.example.com", client_id="api-docs")
        app = FastAPI()
        login.install(app)        # OpenAPI scheme, swagger_ui_init_oauth, local Swagger UI

    ``scheme`` is FastAPI's :class:`OAuth2AuthorizationCodeBearer` for these endpoints (with
    ``auto_error=False``: the middleware or guard answers for tokens, with RFC 6750 errors);
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
    ) -> None:
        if not isinstance(client_id, str) or not client_id:
            raise ConfigurationError("client_id must be a non-empty string")
        self.authorization_url = check_url(authorization_url, allow_http, "authorization_url")
        self.token_url = check_url(token_url, allow_http, "token_url")
        self.refresh_url = (
            check_url(refresh_url, allow_http, "refresh_url") if refresh_url else None
        )
        self.client_id = client_id
        self.scopes: dict[str, str] = (
            dict(scopes) if isinstance(scopes, Mapping) else dict.fromkeys(scopes, "")
        )
        self.default_scopes = tuple(default_scopes if default_scopes is not None else ())
        self.scheme_name = scheme_name
        self.scheme = OAuth2AuthorizationCodeBearer(
            authorizationUrl=self.authorization_url,
            tokenUrl=self.token_url,
            refreshUrl=self.refresh_url,
            scopes=self.scopes,
            scheme_name=scheme_name,
            description=f"Log in at the identity provider (client {client_id}, PKCE).",
            auto_error=False,
        )

    def __repr__(self) -> str:
        return f"OAuth2Login(client_id={self.client_id!r}, token_url={self.token_url!r})"

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
        client: httpx.Client | None = None,
    ) -> OAuth2Login:
        """Read the endpoints (and, unless given, the scopes) from OpenID Connect discovery.

        ``issuer`` is the issuer or the document's URL. The document is read once, now; its
        ``issuer`` must equal the configured one (OpenID Connect Discovery 1.0 §4.3), and its
        ``authorization_endpoint`` and ``token_endpoint`` must be https (http on loopback).
        """
        check_url(issuer, allow_http, "issuer")
        if urllib.parse.urlsplit(issuer).path.endswith(WELL_KNOWN):
            url = issuer
            base = issuer[: issuer.rindex(WELL_KNOWN)]
            expected: tuple[str, ...] = (base, base + "/")
        else:
            url, expected = issuer.rstrip("/") + WELL_KNOWN, (issuer,)
        _, document = _fetch_discovery(url, timeout=timeout, client=client)
        found = document.get("issuer")
        if not isinstance(found, str) or found not in expected:
            raise ConfigurationError(
                f"discovery document {url}: issuer {found!r} is not {expected[0]!r}"
            )
        endpoints = {}
        for name in ("authorization_endpoint", "token_endpoint"):
            value = document.get(name)
            if not isinstance(value, str):
                raise ConfigurationError(f"discovery document {url}: no {name}")
            endpoints[name] = value
        if scopes is None:
            supported = document.get("scopes_supported")
            listed = supported if isinstance(supported, list) else []
            scopes = [scope for scope in listed if isinstance(scope, str)]
        return cls(
            authorization_url=endpoints["authorization_endpoint"],
            token_url=endpoints["token_endpoint"],
            client_id=client_id,
            scopes=scopes,
            default_scopes=default_scopes,
            allow_http=allow_http,
        )

    @property
    def swagger_ui_init_oauth(self) -> dict[str, Any]:
        """Swagger UI's ``initOAuth`` settings: this client, PKCE, the scopes ticked first."""
        settings: dict[str, Any] = {
            "clientId": self.client_id,
            "usePkceWithAuthorizationCodeGrant": True,
        }
        if self.default_scopes:
            settings["scopes"] = " ".join(self.default_scopes)
        return settings

    def rewrite_openapi(self, schema: dict[str, Any]) -> dict[str, Any]:
        """Add the oauth2 scheme; where an operation accepts jwt_guard's Bearer scheme it
        accepts the login too, with the operation's scopes (merged into one requirement)."""
        bearer = openapi_bearer_scheme().scheme_name
        components = schema.setdefault("components", {})
        schemes = components.setdefault("securitySchemes", {})
        schemes[self.scheme_name] = self.scheme.model.model_dump(
            mode="json", by_alias=True, exclude_none=True
        )
        for item in schema.get("paths", {}).values():
            for operation in item.values():
                if not isinstance(operation, dict) or "security" not in operation:
                    continue
                requirements = operation["security"]
                if not any(bearer in requirement for requirement in requirements):
                    continue
                scopes = sorted(
                    {s for requirement in requirements for s in requirement.get(bearer, ())}
                )
                others = [r for r in requirements if bearer not in r]
                operation["security"] = [{self.scheme_name: scopes}, {bearer: []}, *others]
        return schema

    def install(self, app: FastAPI) -> None:
        """Give ``app`` the login: the OpenAPI scheme, Swagger UI's settings, local assets."""
        app.swagger_ui_init_oauth = self.swagger_ui_init_oauth
        generate: Callable[[], dict[str, Any]] = app.openapi
        done: list[dict[str, Any]] = []

        def openapi() -> dict[str, Any]:
            if not done:
                done.append(self.rewrite_openapi(generate()))
                app.openapi_schema = done[0]
            return done[0]

        app.openapi = openapi  # type: ignore[method-assign]
        serve_swagger_ui(app)


def serve_swagger_ui(app: FastAPI) -> bool:
    """Serve ``/docs`` with Swagger UI's files from the ``fastapi-swagger`` package instead of
    a CDN (for machines without internet). Returns False, leaving FastAPI's page, when the
    package is not installed or the app has no docs."""
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
