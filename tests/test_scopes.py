"""Scope hierarchies (``scope_implies``) and challenges a client can act on (issue 26).

The MCP authorization specification (2026-07-28): a server "MUST account for scope
hierarchies, where a broader scope implies narrower ones"; a 403 ``insufficient_scope`` names
the scopes the operation needs in a single challenge (RFC 6750 §3.1); a 401 may name the scopes
to ask for (the client's scope selection strategy); ``offline_access`` is never in a challenge
or in ``scopes_supported``. Every scope decision, on every adapter: the decorators (Starlette,
Flask), the FastAPI dependencies and ``Security`` scopes, ``RouteGuard``, Starlette's
``@requires``, ``Principal.has_scopes``; the MCP gate is in ``test_mcp.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Security
from starlette.applications import Starlette
from starlette.authentication import requires
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import jwt_guard.fastapi as jg_fastapi
from jwt_guard import (
    ConfigurationError,
    JWTGuardMiddleware,
    JWTGuardWSGIMiddleware,
    Principal,
    ProtectedResource,
    RouteGuard,
    TrustedIssuer,
    Verifier,
    require_acr,
    require_scopes,
)
from jwt_guard.testing import LocalIssuer

from .conftest import bearer, challenge
from .servers import run_wsgi

RESOURCE = "https://api.example.com/notes"
#: The issuer's vocabulary: admin ⊃ write ⊃ read; sync is its own branch.
HIERARCHY = {"notes:admin": ["notes:write", "notes:sync"], "notes:write": "notes:read"}


def params(value: str) -> dict[str, str]:
    import re

    return dict(re.findall(r'(\w+)="([^"]*)"', value))


# -- the hierarchy itself (core) ------------------------------------------------------------------


def test_issue26_scope_implies_is_transitive(issuer: LocalIssuer) -> None:
    principal = issuer.verifier(scope_implies=HIERARCHY).verify(issuer.mint(scopes=["notes:admin"]))
    assert principal.scopes == {"notes:admin"}  # the token's own, unchanged
    assert principal.effective_scopes == {"notes:admin", "notes:write", "notes:read", "notes:sync"}
    assert principal.has_scopes("notes:read", "notes:sync")  # two steps down, and a branch
    assert not principal.has_scopes("notes:read", "files:read")
    narrow = issuer.verifier(scope_implies=HIERARCHY).verify(issuer.mint(scopes=["notes:write"]))
    assert narrow.has_scopes("notes:read") and not narrow.has_scopes("notes:admin")
    assert not narrow.has_scopes("notes:sync")  # implied by admin, not by write


@pytest.mark.parametrize(
    ("implies", "cycle"),
    [
        ({"a": ["b"], "b": ["c"], "c": ["a"]}, "a → b → c → a"),
        ({"notes:read": "notes:read"}, "notes:read → notes:read"),
        ({"x": ["a"], "a": ["b"], "b": ["a"]}, "a → b → a"),
    ],
)
def test_issue26_scope_implies_cycle_is_refused_naming_it(
    issuer: LocalIssuer, implies: dict[str, Any], cycle: str
) -> None:
    with pytest.raises(ConfigurationError, match=f"cycle: {cycle} "):
        issuer.verifier(scope_implies=implies)
    with pytest.raises(ConfigurationError, match="cycle"):
        TrustedIssuer(issuer.issuer, issuer.keys(), scope_implies=implies)


@pytest.mark.parametrize(
    "implies",
    [
        {"notes:admin": ["notes:*"]},  # a prefix: "notes" is also a prefix of "notes-admin"
        {"admin": "*"},  # everything
        {"notes:*": ["notes:read"]},
        {"a b": ["c"]},  # not one scope (RFC 6749 §3.3)
        {"a": ['say "hi"']},
        {"a": []},  # implies nothing: a mistake, said at start-up
        {"a": [1]},
        ["a", "b"],
    ],
)
def test_issue26_scope_implies_takes_named_scopes_only(issuer: LocalIssuer, implies: Any) -> None:
    with pytest.raises(ConfigurationError, match="scope_implies"):
        issuer.verifier(scope_implies=implies)


@pytest.mark.parametrize("driver", ["verify", "averify"])
async def test_issue26_scope_implies_on_both_drivers_and_the_cache(
    issuer: LocalIssuer, driver: str
) -> None:
    verifier = issuer.verifier(scope_implies=HIERARCHY)
    token = issuer.mint(scopes=["notes:write"])
    for _ in range(2):  # the second is the verified-token cache's principal
        result = getattr(verifier, driver)(token)
        principal = await result if driver == "averify" else result
        assert principal.has_scopes("notes:read") and principal.scopes == {"notes:write"}


def test_issue26_scope_implies_belongs_to_the_issuer(
    make_issuer: Callable[..., LocalIssuer],
) -> None:
    """A hierarchy is the vocabulary of the issuer granting the scopes: one issuer's must not
    widen another's tokens. ``TrustedIssuer(scope_implies=...)`` replaces the verifier's;
    ``{}`` gives that issuer none."""
    first, second = make_issuer("RS256"), make_issuer("ES256")
    second = LocalIssuer(issuer="https://second.test", algorithm="ES256", clock=first.clock)
    third = LocalIssuer(issuer="https://third.test", algorithm="ES256", clock=first.clock)
    verifier = Verifier(
        algorithms=["RS256", "ES256"],
        audience=first.audience,
        clock=first.clock,
        scope_implies={"notes:write": ["notes:read"]},
        issuers=[
            TrustedIssuer(first.issuer, first.keys(), scope_implies={"admin": ["notes:read"]}),
            TrustedIssuer(second.issuer, second.keys(), scope_implies={}),
            TrustedIssuer(third.issuer, third.keys()),  # the verifier's
        ],
    )
    of_first = verifier.verify(first.mint(scopes=["admin", "notes:write"]))
    assert of_first.effective_scopes == {"admin", "notes:write", "notes:read"}
    assert verifier.verify(first.mint(scopes=["notes:write"])).has_scopes("notes:read") is False
    assert not verifier.verify(second.mint(scopes=["notes:write"])).has_scopes("notes:read")
    assert verifier.verify(third.mint(scopes=["notes:write"])).has_scopes("notes:read")


def test_issue26_principal_built_by_hand_takes_a_hierarchy() -> None:
    principal = Principal(
        claims={"sub": "a"}, header={}, scopes=frozenset({"b"}), scope_implies={"b": ["c"]}
    )
    assert principal.has_scopes("c") and principal.scopes == {"b"}
    assert Principal(claims={}, header={}, scopes=frozenset({"b"})).effective_scopes == {"b"}


# -- every adapter decides with it -----------------------------------------------------------------


def starlette_notes(verifier: Verifier, **options: Any) -> Starlette:
    @require_scopes("notes:read")
    async def read(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    @require_scopes("notes:read")  # stacked: the route needs both
    @require_scopes("notes:write")
    def write(request: Request) -> JSONResponse:  # a sync endpoint
        return JSONResponse({"ok": True})

    @require_scopes("notes:read", "files:read", any_of=True)
    async def either(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    @requires("notes:read")  # Starlette's own, on request.auth.scopes
    async def starlette_requires(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    return Starlette(
        routes=[
            Route("/read", read),
            Route("/write", write, methods=["GET", "POST"]),
            Route("/either", either),
            Route("/requires", starlette_requires),
        ],
        middleware=[Middleware(JWTGuardMiddleware, verifier=verifier, **options)],
    )


def flask_notes(verifier: Verifier, *, extension: bool, **options: Any) -> Any:
    from flask import Flask, jsonify

    from jwt_guard.flask import JWTGuard

    app = Flask(__name__)
    if extension:
        JWTGuard(app, verifier=verifier, **options)
    else:
        app.wsgi_app = JWTGuardWSGIMiddleware(  # type: ignore[method-assign]
            app.wsgi_app, verifier=verifier, **options
        )

    @app.get("/read")
    @require_scopes("notes:read")
    def read() -> Any:
        return jsonify({"ok": True})

    @app.route("/write", methods=["GET", "POST"])
    @require_scopes("notes:read")
    @require_scopes("notes:write")
    def write() -> Any:
        return jsonify({"ok": True})

    @app.get("/either")
    @require_scopes("notes:read", "files:read", any_of=True)
    def either() -> Any:
        return jsonify({"ok": True})

    return app


Notes = Callable[..., httpx.AsyncClient]


@pytest.fixture(params=["asgi", "wsgi", "wsgi-plain"])
async def notes(request: pytest.FixtureRequest, issuer: LocalIssuer) -> AsyncIterator[Notes]:
    """The notes app, under the ASGI middleware, the Flask extension or the plain WSGI
    middleware (a real server for both WSGI ones)."""
    async with AsyncExitStack() as stack:

        def make(**options: Any) -> httpx.AsyncClient:
            implies = options.pop("scope_implies", HIERARCHY)
            hierarchy = {"scope_implies": implies} if implies is not None else {}
            verifier = issuer.verifier(audience=[issuer.audience, RESOURCE], **hierarchy)
            if request.param == "asgi":
                app = starlette_notes(verifier, **options)
                transport = httpx.ASGITransport(app=app)
                client = httpx.AsyncClient(transport=transport, base_url="http://testserver")
            else:
                app = flask_notes(verifier, extension=request.param == "wsgi", **options)
                client = httpx.AsyncClient(base_url=stack.enter_context(run_wsgi(app)))
            stack.push_async_callback(client.aclose)
            return client

        yield make


async def test_issue26_broader_scope_passes_require_scopes(
    notes: Notes, issuer: LocalIssuer
) -> None:
    client = notes()
    admin = bearer(issuer.mint(scopes=["notes:admin"]))
    for path in ("/read", "/write", "/either"):
        assert (await client.get(path, headers=admin)).status_code == 200, path
    writer = bearer(issuer.mint(scopes=["notes:write"]))
    assert (await client.get("/write", headers=writer)).status_code == 200  # read: implied
    syncer = bearer(issuer.mint(scopes=["notes:sync"]))
    assert (await client.get("/read", headers=syncer)).status_code == 403  # a sibling, not above
    # Without the hierarchy, exact names only (the behaviour before issue 26).
    plain = notes(scope_implies=None)
    assert (await plain.get("/read", headers=admin)).status_code == 403


async def test_issue26_starlette_requires_sees_implied_scopes(issuer: LocalIssuer) -> None:
    app = starlette_notes(issuer.verifier(scope_implies=HIERARCHY))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as client:
        ok = await client.get("/requires", headers=bearer(issuer.mint(scopes=["notes:admin"])))
        denied = await client.get("/requires", headers=bearer(issuer.mint(scopes=["notes:sync"])))
    assert (ok.status_code, denied.status_code) == (200, 403)


async def test_issue26_rfc6750_3_1_one_challenge_names_every_scope_the_route_needs(
    notes: Notes, issuer: LocalIssuer
) -> None:
    """Two requirements on one view: the first to refuse names both, so one new token does
    (MCP scope challenge handling; before, each refusal named its own and the client needed
    one round trip, and one token, per requirement)."""
    client = notes(scope_implies=None)
    for scopes in ([], ["notes:read"], ["notes:write"]):
        denied = await client.get("/write", headers=bearer(issuer.mint(scopes=scopes)))
        assert denied.status_code == 403, scopes
        found = params(challenge(denied))
        assert found["error"] == "insufficient_scope"
        assert sorted(found["scope"].split()) == ["notes:read", "notes:write"], scopes


async def test_issue26_401_names_the_scopes_to_ask_for(notes: Notes, issuer: LocalIssuer) -> None:
    """RFC 9728 + MCP scope selection: the first 401 names what to ask for; by default the
    document's ``scopes_supported``, else ``challenge_scopes``; ``[]`` names none."""
    supported = ["notes:read", "notes:write", "notes:admin"]
    default = notes(
        scope_implies=None,
        protected_resource=ProtectedResource(RESOURCE, [issuer.issuer], supported),
    )
    found = params(challenge(await default.get("/read")))
    assert found["scope"] == "notes:read notes:write notes:admin"
    assert "error" not in found
    expired = params(
        challenge(await default.get("/read", headers=bearer(issuer.mint(expired=True))))
    )
    assert expired["error"] == "invalid_token" and expired["scope"] == found["scope"]
    least = notes(
        scope_implies=None,
        protected_resource=ProtectedResource(
            RESOURCE, [issuer.issuer], supported, challenge_scopes=["notes:read"]
        ),
    )
    assert params(challenge(await least.get("/read")))["scope"] == "notes:read"
    off = notes(
        scope_implies=None,
        protected_resource=ProtectedResource(
            RESOURCE, [issuer.issuer], supported, challenge_scopes=[]
        ),
    )
    assert "scope" not in params(challenge(await off.get("/read")))


def test_issue26_offline_access_is_refused_in_the_metadata() -> None:
    for options in (
        {"scopes_supported": ["notes:read", "offline_access"]},
        {"challenge_scopes": ["offline_access"]},
    ):
        with pytest.raises(ConfigurationError, match="offline_access"):
            ProtectedResource(RESOURCE, ["https://login.example.com"], **options)


# -- FastAPI: dependencies, Security scopes, RouteGuard ------------------------------------------


def fastapi_notes(issuer: LocalIssuer, *, middleware: bool, hierarchy: bool = True) -> FastAPI:
    implies = {"scope_implies": HIERARCHY} if hierarchy else {}
    verifier = issuer.verifier(audience=[issuer.audience, RESOURCE], **implies)
    resource = ProtectedResource(RESOURCE, [issuer.issuer], ["notes:read", "notes:write"])
    guard = jg_fastapi.JWTBearer(verifier, protected_resource=resource)
    # A router-wide requirement plus each route's own: the common shape.
    router = APIRouter(dependencies=[Depends(jg_fastapi.require_scopes("notes:read"))])

    @router.post("/notes", dependencies=[Depends(jg_fastapi.require_scopes("notes:write"))])
    async def add() -> dict[str, bool]:
        return {"ok": True}

    @router.post("/sync", dependencies=[Depends(require_scopes("notes:sync"))])  # the neutral one
    def sync() -> dict[str, bool]:
        return {"ok": True}

    app = FastAPI()
    app.include_router(router)

    @app.get("/security")
    # Defaults, not Annotated: the guard is a local name the postponed annotations can't see.
    async def security(
        principal: Principal = Security(guard, scopes=["notes:read", "notes:write"]),
    ) -> dict[str, str | None]:
        return {"sub": principal.subject}

    @app.get("/mixed", dependencies=[Depends(jg_fastapi.require_scopes("files:read"))])
    async def mixed(principal: Principal = Security(guard, scopes=["notes:read"])) -> Any:
        return {"ok": True}

    if middleware:
        app.add_middleware(JWTGuardMiddleware, verifier=verifier, protected_resource=resource)
    return app


@pytest.mark.parametrize("middleware", [True, False])
async def test_issue26_fastapi_dependencies_and_security_scopes(
    issuer: LocalIssuer, middleware: bool
) -> None:
    app = fastapi_notes(issuer, middleware=middleware)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as client:
        admin = bearer(issuer.mint(scopes=["notes:admin"], audience=RESOURCE))
        reader = bearer(issuer.mint(scopes=["notes:read"], audience=RESOURCE))
        assert (await client.get("/security", headers=admin)).status_code == 200
        denied = await client.get("/security", headers=reader)
        assert denied.status_code == 403
        assert params(challenge(denied))["scope"] == "notes:read notes:write"
        if not middleware:
            # Only the guard dependencies verify here: the router's requirements need the
            # middleware (or JWTBearer) to have placed a principal.
            missing = await client.get("/security")
            assert missing.status_code == 401
            assert params(challenge(missing))["scope"] == "notes:read notes:write"
            return
        assert (await client.post("/notes", headers=admin)).status_code == 200
        assert (await client.post("/sync", headers=admin)).status_code == 200


async def test_issue26_fastapi_router_and_route_requirements_in_one_challenge(
    issuer: LocalIssuer,
) -> None:
    app = fastapi_notes(issuer, middleware=True, hierarchy=False)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as client:
        reader = bearer(issuer.mint(scopes=["notes:read"], audience=RESOURCE))
        # The router's requirement and the route's, in one challenge, whichever refuses.
        refused = await client.post("/notes", headers=bearer(issuer.mint(audience=RESOURCE)))
        assert refused.status_code == 403
        assert sorted(params(challenge(refused))["scope"].split()) == ["notes:read", "notes:write"]
        refused = await client.post("/notes", headers=reader)
        assert sorted(params(challenge(refused))["scope"].split()) == ["notes:read", "notes:write"]
        # Security scopes and a requirement beside them: one challenge for both.
        mixed = await client.get("/mixed", headers=reader)
        assert mixed.status_code == 403
        assert sorted(params(challenge(mixed))["scope"].split()) == ["files:read", "notes:read"]


@pytest.mark.parametrize("kind", ["asgi", "flask"])
async def test_issue26_route_guard_honours_the_hierarchy_and_names_its_scopes(
    issuer: LocalIssuer, kind: str
) -> None:
    verifier = issuer.verifier(scope_implies=HIERARCHY)
    guard = RouteGuard(verifier)
    async with AsyncExitStack() as stack:
        if kind == "asgi":

            @guard.protect(scopes=["notes:write"])
            @require_scopes("notes:read")
            async def write(request: Request) -> JSONResponse:
                return JSONResponse({"ok": True})

            app: Any = Starlette(routes=[Route("/write", write)])
            client = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://testserver"
            )
        else:
            from flask import Flask, jsonify

            app = Flask(__name__)

            @app.get("/write")
            @guard.protect(scopes=["notes:write"])
            @require_scopes("notes:read")
            def write_view() -> Any:
                return jsonify({"ok": True})

            client = httpx.AsyncClient(base_url=stack.enter_context(run_wsgi(app)))
        stack.push_async_callback(client.aclose)
        ok = await client.get("/write", headers=bearer(issuer.mint(scopes=["notes:admin"])))
        assert ok.status_code == 200
        missing = await client.get("/write")
        assert missing.status_code == 401
        assert sorted(params(challenge(missing))["scope"].split()) == ["notes:read", "notes:write"]
        denied = await client.get("/write", headers=bearer(issuer.mint(scopes=["notes:sync"])))
        assert denied.status_code == 403
        assert sorted(params(challenge(denied))["scope"].split()) == ["notes:read", "notes:write"]


# -- what a challenge never says -----------------------------------------------------------------


def test_issue26_offline_access_never_in_a_challenge() -> None:
    """A route requiring ``offline_access`` would be refused with a challenge that cannot name
    it: refused at start-up (review H7-3; the metadata's options refuse it too)."""
    with pytest.raises(ConfigurationError, match="offline_access"):
        require_scopes("offline_access", "notes:read")


async def test_rfc9470_step_up_401_claims_no_scope(issuer: LocalIssuer) -> None:
    """A step-up is fixed by signing in again (``acr_values``), not by asking for a scope: its
    401 names none, even where other 401s name ``scopes_supported``."""

    @require_acr("urn:example:mfa")
    async def strong(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    verifier = issuer.verifier(audience=[issuer.audience, RESOURCE])
    resource = ProtectedResource(RESOURCE, [issuer.issuer], ["notes:read"])
    app = Starlette(
        routes=[Route("/strong", strong)],
        middleware=[Middleware(JWTGuardMiddleware, verifier=verifier, protected_resource=resource)],
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as client:
        weak = await client.get("/strong", headers=bearer(issuer.mint(acr="pwd")))
    found = params(challenge(weak))
    assert weak.status_code == 401 and found["error"] == "insufficient_user_authentication"
    assert "scope" not in found and found["acr_values"] == "urn:example:mfa"


# -- review H7 (/work/notes/reviews/h7.md): each test is named after its finding -----------------


@pytest.mark.parametrize("separator", ["\u00a0", "\u2003", "\x1f", "\x85", "\u2028", "\t", "\n"])
def test_h7_2_rfc6749_3_3_scope_is_split_on_space_only(issuer: LocalIssuer, separator: str) -> None:
    """RFC 6749 §3.3: ``scope = scope-token *( SP scope-token )``. Where a client gets text of
    its own into one scope (``file:<name>``), another whitespace must not split it into a scope
    the issuer never granted (and, with a hierarchy, everything below it)."""
    verifier = issuer.verifier(scope_implies=HIERARCHY)
    principal = verifier.verify(issuer.mint(scope=f"file:x{separator}notes:admin notes:sync"))
    assert principal.scopes == {"notes:sync"}  # the item that is no scope-token is dropped
    assert not principal.has_scopes("notes:read")
    listed = verifier.verify(issuer.mint(scp=[f"file:x{separator}notes:admin", "notes:sync"]))
    assert listed.scopes == {"notes:sync"}


def test_h7_2_spaces_around_and_between_scopes_are_no_scope(issuer: LocalIssuer) -> None:
    principal = issuer.verifier().verify(issuer.mint(scope="  notes:read   notes:sync "))
    assert principal.scopes == {"notes:read", "notes:sync"}


@pytest.mark.parametrize("kind", ["asgi", "asgi-sync", "flask", "route-guard"])
async def test_h7_1_sibling_routes_do_not_share_their_challenge_scopes(
    issuer: LocalIssuer, kind: str
) -> None:
    """One view decorated once more for each of two routes: ``functools.wraps`` copied the inner
    list onto both wrappers and each extended it in place, so /edit's 401 and 403 asked for
    /purge's scope (``notes:admin``), which an OAuth or MCP client then requests."""
    verifier = issuer.verifier()
    guard = RouteGuard(verifier)
    outer: Callable[[str], Any] = (
        (lambda s: guard.protect(scopes=[s])) if kind == "route-guard" else require_scopes
    )
    async with AsyncExitStack() as stack:
        if kind == "flask":
            from flask import Flask, jsonify

            app: Any = Flask(__name__)

            @require_scopes("notes:read")
            def show_view() -> Any:
                return jsonify({"ok": True})

            app.add_url_rule("/edit", "edit", outer("notes:write")(show_view))
            app.add_url_rule("/purge", "purge", outer("notes:admin")(show_view))
            app.wsgi_app = JWTGuardWSGIMiddleware(
                app.wsgi_app, verifier=verifier, exclude=["/edit"]
            )
            client = httpx.AsyncClient(base_url=stack.enter_context(run_wsgi(app)))
        else:
            if kind == "asgi-sync":

                @require_scopes("notes:read")
                def show(request: Request) -> JSONResponse:
                    return JSONResponse({"ok": True})
            else:

                @require_scopes("notes:read")
                async def show(request: Request) -> JSONResponse:
                    return JSONResponse({"ok": True})

            routes = [Route("/edit", outer("notes:write")(show))]
            routes.append(Route("/purge", outer("notes:admin")(show)))
            middleware = (
                []
                if kind == "route-guard"
                else [Middleware(JWTGuardMiddleware, verifier=verifier, exclude=["/edit"])]
            )
            client = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=Starlette(routes=routes, middleware=middleware)),
                base_url="http://testserver",
            )
        stack.push_async_callback(client.aclose)
        both = ["notes:read", "notes:write"]
        denied = await client.get("/edit", headers=bearer(issuer.mint(scopes=["notes:read"])))
        assert denied.status_code == 403
        assert sorted(params(challenge(denied))["scope"].split()) == both
        # The inner requirement refusing still names the outer one's scope (the route's list).
        inner = await client.get("/edit", headers=bearer(issuer.mint(scopes=["notes:write"])))
        assert inner.status_code == 403
        assert sorted(params(challenge(inner))["scope"].split()) == both
        anonymous = await client.get("/edit")  # excluded: the requirement answers the 401
        assert anonymous.status_code == 401
        assert sorted(params(challenge(anonymous))["scope"].split()) == both
        purge = await client.get("/purge", headers=bearer(issuer.mint(scopes=["notes:read"])))
        assert sorted(params(challenge(purge))["scope"].split()) == ["notes:admin", "notes:read"]
        ok = await client.get("/edit", headers=bearer(issuer.mint(scopes=both)))
        assert ok.status_code == 200


NOT_SCOPES = ['notes"read', "notes\\read", "notes:read\r\nX-Injected: 1", "nötes:read", "a b"]


@pytest.mark.parametrize("name", [*NOT_SCOPES, "offline_access"])
def test_h7_3_every_required_scope_is_one_a_challenge_can_name(
    issuer: LocalIssuer, name: str
) -> None:
    """A name outside RFC 6749 §3.3 was silently dropped from every challenge (the client,
    told to ask for the others, came back refused forever), and ``offline_access`` made a 403
    ``insufficient_scope`` naming no scope: refused at start-up on every path."""
    from jwt_guard._integrations.mcp_operations import OperationScopes

    said = "offline_access" if name == "offline_access" else "not a scope name"
    for build in (
        lambda: require_scopes(name),
        lambda: require_scopes("notes:read", name, any_of=True),
        lambda: jg_fastapi.require_scopes(name),
        lambda: RouteGuard(issuer.verifier()).protect(scopes=[name]),
    ):
        with pytest.raises(ConfigurationError, match=said):
            build()
    for table in ({"tools": {"add_note": [name]}}, {"resources": {"notes://{i}": ["a", name]}}):
        with pytest.raises(ConfigurationError):  # MCP tool_scopes, resource_scopes
            OperationScopes(**table)


@pytest.mark.parametrize("name", [NOT_SCOPES[0], "offline_access"])
async def test_h7_3_jwtbearer_security_scopes_are_scope_names(
    issuer: LocalIssuer, name: str
) -> None:
    guard = jg_fastapi.JWTBearer(issuer.verifier())
    app = FastAPI()

    @app.get("/notes")
    async def notes(principal: Principal = Security(guard, scopes=[name])) -> Any:
        return {"ok": True}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        for headers in ({}, bearer(issuer.mint(scopes=["notes:read"]))):
            with pytest.raises(ConfigurationError, match="Security"):
                await client.get("/notes", headers=headers)


async def test_h7_jwtbearer_refusals_build_no_requirement_per_request(
    issuer: LocalIssuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review H7 (cost): ``JWTBearer`` built a new requirement (an ``inspect.Signature`` with a
    ``Security`` parameter) for every request with Security scopes and every refusal, and walked
    the route's dependencies again: after the first, a refusal costs a dictionary lookup."""
    from jwt_guard._http import authz

    guard = jg_fastapi.JWTBearer(issuer.verifier())
    app = FastAPI()

    writes = jg_fastapi.require_scopes("notes:write")

    @app.get("/notes")
    async def notes(
        principal: Principal = Security(guard, scopes=["notes:read"]),
        writer: Principal = Depends(writes),
    ) -> Any:
        return {"ok": True}

    made: list[object] = []
    walked: list[object] = []
    signature, walk = authz.Requirement._declare_signature, authz._dependency_scopes
    monkeypatch.setattr(
        authz.Requirement, "_declare_signature", lambda self: made.append(signature(self))
    )
    monkeypatch.setattr(authz, "_dependency_scopes", lambda d: walked.append(d) or walk(d))
    reader = bearer(issuer.mint(scopes=["notes:read"]))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        writer = bearer(issuer.mint(scopes=["notes:write"]))
        for warm in (True, False):  # the first request of each kind makes what it needs
            made.clear(), walked.clear()
            for _ in range(1 if warm else 5):
                denied = await client.get("/notes", headers=reader)
                anonymous = await client.get("/notes")
                lacks_read = await client.get("/notes", headers=writer)
    assert (denied.status_code, anonymous.status_code) == (403, 401)
    assert lacks_read.status_code == 403  # the Security scope notes:read is missing
    wanted = ["notes:read", "notes:write"]
    assert sorted(params(challenge(denied))["scope"].split()) == wanted
    assert sorted(params(challenge(anonymous))["scope"].split()) == wanted
    assert made == [] and walked == []


async def test_h7_6_readme_says_request_auth_scopes_holds_the_implied_scopes(
    issuer: LocalIssuer,
) -> None:
    """README said ``request.auth.scopes`` held the token's scopes; it holds the implied ones
    too (what ``@requires`` decides on), and code forwarding it downstream would widen them."""

    from .manual import manual

    readme = " ".join(manual().split())
    assert '`"authenticated"` plus the token\'s scopes, so Starlette' not in readme
    said = '`request.auth.scopes` holds `"authenticated"` plus the principal\'s `effective_scopes`'
    assert said in readme

    async def show(request: Request) -> JSONResponse:
        auth, own = sorted(request.auth.scopes), sorted(request.user.scopes)
        return JSONResponse({"auth": auth, "own": own})

    verifier = issuer.verifier(scope_implies=HIERARCHY)
    app = Starlette(
        routes=[Route("/", show)], middleware=[Middleware(JWTGuardMiddleware, verifier=verifier)]
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        seen = (await client.get("/", headers=bearer(issuer.mint(scopes=["notes:write"])))).json()
    assert seen == {"auth": ["authenticated", "notes:read", "notes:write"], "own": ["notes:write"]}


def test_h7_5_tenant_issuer_takes_scope_implies(issuer: LocalIssuer) -> None:
    """``TrustedIssuer(scope_implies=...)`` existed, a ``TenantIssuer`` always took the
    verifier's hierarchy and saying otherwise was a TypeError: now its tenants take its own
    (``{}``: none), and a cycle in it is refused at construction."""
    from jwt_guard import TenantIssuer

    template = "https://login.example.com/{tid}/v2.0"

    def tenants(**options: Any) -> Verifier:
        trusted = TenantIssuer(
            template, lambda tid: issuer.keys(), tenants=["t1"], algorithms=["RS256"], **options
        )
        return Verifier(issuers=[trusted], audience=issuer.audience, clock=issuer.clock, **outer)

    admin = issuer.mint(scopes=["notes:admin"], issuer=template.format(tid="t1"))
    outer: dict[str, Any] = {}
    assert tenants(scope_implies=HIERARCHY).verify(admin).has_scopes("notes:read")
    assert not tenants().verify(admin).has_scopes("notes:read")
    outer = {"scope_implies": HIERARCHY}
    assert tenants().verify(admin).has_scopes("notes:read")  # the verifier's
    assert not tenants(scope_implies={}).verify(admin).has_scopes("notes:read")  # its own: none
    with pytest.raises(ConfigurationError, match="cycle"):
        tenants(scope_implies={"a": "b", "b": "a"})


def test_h7_8_mcp_sdk_access_token_agrees_with_the_gate(issuer: LocalIssuer) -> None:
    """The gate and ``scope["auth"]`` decide on the effective scopes; the SDK's ``AccessToken``
    (``get_access_token()`` in a tool) carried the token's own, so a tool checking
    ``"notes:read" in get_access_token().scopes`` refused the admin the gate let in."""
    from jwt_guard.mcp import access_token

    principal = issuer.verifier(scope_implies=HIERARCHY).verify(issuer.mint(scopes=["notes:admin"]))
    seen = access_token(principal, RESOURCE).scopes
    assert seen == sorted(principal.effective_scopes)
    assert "notes:read" in seen and principal.scopes == {"notes:admin"}


async def test_h7_4_any_of_refusal_does_not_ask_for_the_broadest_alternative(
    notes: Notes, issuer: LocalIssuer
) -> None:
    """``require_scopes("notes:read", "files:read", any_of=True)``: one of them will do, yet
    the 403 named both, and a client acting on it (the MCP SDK's does at once) came back holding
    every alternative, the broadest too. It names the first listed, with the route's others."""
    nothing = bearer(issuer.mint(scopes=["notes:sync"]))
    denied = await notes().get("/either", headers=nothing)  # decorator: ASGI, Flask, WSGI
    assert denied.status_code == 403
    assert params(challenge(denied))["scope"] == "notes:read"

    verifier = issuer.verifier(scope_implies=HIERARCHY)
    guard = RouteGuard(verifier)

    @guard.protect(scopes=["notes:read", "notes:admin"], any_of=True)
    @require_scopes("notes:sync")
    async def guarded(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    reader = jg_fastapi.require_scopes("notes:read", "notes:admin", any_of=True)
    app = FastAPI(routes=[Route("/guarded", guarded)])

    @app.get("/fastapi", dependencies=[Depends(reader), Depends(require_scopes("files:read"))])
    async def fastapi_route() -> dict[str, bool]:
        return {"ok": True}

    app.add_middleware(JWTGuardMiddleware, verifier=verifier, exclude=["/guarded"])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        for path, wanted in (("/guarded", "notes:read notes:sync"), ("/fastapi", "notes:read")):
            denied = await client.get(path, headers=bearer(issuer.mint(scopes=["files:read"])))
            assert denied.status_code == 403, path
            assert sorted(params(challenge(denied))["scope"].split()) == sorted(
                wanted.split() + (["files:read"] if path == "/fastapi" else [])
            ), path


async def test_h7_7_route_scopes_in_a_401_are_turned_off_by_challenge_scopes(
    issuer: LocalIssuer,
) -> None:
    """Review H7-7 (design, documented in README "Roles and scopes"): without RFC 9728 metadata,
    a 401 a guard answers names the route's scopes to a caller without a token; the switch is
    ``ProtectedResource(challenge_scopes=[])``, on a ``RouteGuard`` as on the middleware."""
    verifier = issuer.verifier(audience=[issuer.audience, RESOURCE])
    quiet = ProtectedResource(RESOURCE, [issuer.issuer], ["notes:read"], challenge_scopes=[])
    routes = []
    for path, guard in (
        ("/named", RouteGuard(verifier)),
        ("/quiet", RouteGuard(verifier, protected_resource=quiet)),
    ):

        @guard.protect(scopes=["billing:export"])
        async def export(request: Request) -> JSONResponse:
            return JSONResponse({"ok": True})

        routes.append(Route(path, export))
    transport = httpx.ASGITransport(app=Starlette(routes=routes))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        named, quiet_401 = await client.get("/named"), await client.get("/quiet")
        denied = await client.get("/quiet", headers=bearer(issuer.mint(scopes=["notes:read"])))
    assert (named.status_code, quiet_401.status_code, denied.status_code) == (401, 401, 403)
    assert params(challenge(named))["scope"] == "billing:export"
    assert "scope" not in params(challenge(quiet_401))
    assert params(challenge(denied))["scope"] == "billing:export"
