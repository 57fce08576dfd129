"""Settings read from the environment (``Verifier.from_env``) and from Flask's ``app.config``
(the extension): a name with the prefix that no option reads is refused at start-up with the
closest one (issue 25, item 4), and the lists the check trusts are the names the code reads."""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

import jwt_guard.flask
from jwt_guard import ConfigurationError, Introspection, JWKSKeys, Verifier
from jwt_guard._sources.config import ENV_NAMES, TOOLING_NAMES, options_from_env
from jwt_guard.flask import MIDDLEWARE_KEYS, PREFIX, JWTGuard
from jwt_guard.testing import LocalIssuer
from jwt_guard.wsgi import JWTGuardWSGIMiddleware

from .conftest import bearer
from .manual import manual, section

ROOT = Path(__file__).resolve().parent.parent
BASE = {
    "JWT_GUARD_ISSUER": "https://idp.example.com/",
    "JWT_GUARD_AUDIENCE": "orders-api",
    "JWT_GUARD_JWKS_URL": "https://idp.example.com/.well-known/jwks.json",
}

#: Configures from settings (full names → values) with extra keyword arguments, the way an
#: app does: Verifier.from_env on the environment, or the Flask extension on app.config.
Configure = Callable[..., object]


@pytest.fixture(params=["from_env", "flask"])
def configure(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Configure:
    for name in ENV_NAMES:
        monkeypatch.delenv(PREFIX + name, raising=False)

    def from_env(settings: dict[str, str], **kwargs: Any) -> object:
        for name, value in settings.items():
            monkeypatch.setenv(name, value)
        return Verifier.from_env(**kwargs)

    def flask(settings: dict[str, str], **kwargs: Any) -> object:
        app = Flask(__name__)
        app.config.update(settings)
        return JWTGuard(app, **kwargs)

    return from_env if request.param == "from_env" else flask


def test_issue25_4_singular_algorithm_is_refused_with_the_plural(configure: Configure) -> None:
    """JWT_GUARD_ALGORITHM=RS256 was ignored: ES256 stayed in force, every RS256 token refused."""
    with pytest.raises(ConfigurationError) as info:
        configure({**BASE, "JWT_GUARD_ALGORITHM": "RS256"})
    message = str(info.value)
    assert "JWT_GUARD_ALGORITHM" in message
    assert "did you mean JWT_GUARD_ALGORITHMS?" in message
    assert "ignore_unknown=('JWT_GUARD_OTHER_*',)" in message  # the way out, named


def test_issue25_4_flask_excludes_is_refused_with_exclude() -> None:
    """Flask's JWT_GUARD_EXCLUDES=["/health"] was ignored: /health needed a token."""
    app = Flask(__name__)
    app.config.update(BASE, JWT_GUARD_EXCLUDES=["/health"])
    with pytest.raises(ConfigurationError, match=r"did you mean JWT_GUARD_EXCLUDE\?"):
        JWTGuard(app)


def test_issue25_4_a_name_like_none_lists_the_settings(configure: Configure) -> None:
    with pytest.raises(ConfigurationError) as info:
        configure({**BASE, "JWT_GUARD_XYZZY": "1"})
    assert "JWT_GUARD_XYZZY" in str(info.value)
    assert "known: JWT_GUARD_ISSUER, JWT_GUARD_AUDIENCE" in str(info.value)


def test_issue25_4_lower_case_spelling_is_refused(configure: Configure) -> None:
    """jwt_guard_typ is not JWT_GUARD_TYP: the environment and app.config are case-sensitive."""
    with pytest.raises(ConfigurationError, match=r"jwt_guard_typ .*did you mean JWT_GUARD_TYP\?"):
        configure({**BASE, "jwt_guard_typ": "at+jwt"})


def test_issue25_4_ignore_unknown_lets_another_programs_names_pass(configure: Configure) -> None:
    others = {"JWT_GUARD_OTHER_TOOL_URL": "x", "JWT_GUARD_OTHER_TOOL_MODE": "y"}
    settings = {**BASE, **others, "JWT_GUARD_DEBUGGER": "1"}
    with pytest.raises(ConfigurationError) as info:
        configure(settings, ignore_unknown=["JWT_GUARD_OTHER_TOOL_*"])
    assert "JWT_GUARD_DEBUGGER" in str(info.value)  # only what the patterns name passes
    assert "OTHER_TOOL" not in str(info.value)
    configure(settings, ignore_unknown=["JWT_GUARD_OTHER_TOOL_*", "JWT_GUARD_DEBUGGER"])


def test_this_repositorys_tooling_variables_are_not_typos(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """JWT_GUARD_PYTHON=python3.12 bash scripts/test-env.sh, the fuzz campaign's size: set in
    a developer's shell, they must not stop an app (or the tests) from starting."""
    for name in TOOLING_NAMES:
        monkeypatch.setenv(PREFIX + name, "1")
    for name, value in BASE.items():
        monkeypatch.setenv(name, value)
    assert Verifier.from_env() is not None
    # Only under jwt_guard's own prefix.
    other = {name.replace(PREFIX, "X_"): value for name, value in BASE.items()}
    with pytest.raises(ConfigurationError, match="X_PYTHON is not"):
        options_from_env("X_", {**other, "X_PYTHON": "python3.12"})


def test_an_empty_prefix_checks_no_names() -> None:
    """Every variable of the environment (PATH, HOME) has the empty prefix."""
    bare = {name.removeprefix(PREFIX): value for name, value in BASE.items()}
    options = options_from_env("", {**bare, "PATH": "/bin", "HOME": "/root"})
    assert options["audience"] == ["orders-api"]


class Recording(dict[str, str]):
    """An environment that records which names were looked up."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.read: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return super().get(key, default)


def test_every_name_read_is_listed_and_every_listed_name_is_read() -> None:
    """ENV_NAMES is what the unknown-name check trusts: it must be exactly what is read."""
    discovery = {"JWT_GUARD_JWKS_URL": "", "JWT_GUARD_DISCOVERY_URL": "https://idp.example.com"}
    for settings in (BASE, {**BASE, **discovery}):
        env = Recording(settings)
        options_from_env(environ=env)
        assert {name for name in env.read if name.startswith(PREFIX)} == {
            PREFIX + name for name in ENV_NAMES
        }


VALID = {
    "ISSUER": ("https://other.example/", "issuer"),
    "AUDIENCE": ("a,b", "audience"),
    "JWKS_URL": ("https://idp.example.com/keys", "keys"),
    "DISCOVERY_URL": ("https://idp.example.com", "keys"),
    "ALGORITHMS": ("RS256", "algorithms"),
    "LEEWAY": ("5", "leeway"),
    "TYP": ("at+jwt", "typ"),
    "PROFILE": ("rfc9068", "profile"),
    "ROLES_CLAIM": ("realm_access.roles", "roles_claim"),
    "SCOPES_CLAIM": ("scp", "scopes_claim"),
    "ALLOW_HTTP": ("1", "keys"),
    "SHARED_CACHE_URL": ("redis://127.0.0.1:1/0", "keys"),
    "SHARED_CACHE_KEY": ("k" * 32, "keys"),
    "SHARED_CACHE_TRUST_REDIS_WRITERS": ("1", "keys"),
    "MTLS": ("1", "mtls"),
    "INTROSPECTION_URL": ("https://as.example/introspect", "introspection"),
    "INTROSPECTION_DISCOVERY": ("https://as.example", "introspection"),
    "INTROSPECTION_CLIENT_ID": ("orders-api", "introspection"),
    "INTROSPECTION_CLIENT_SECRET": ("s3cret", "introspection"),
    "INTROSPECTION_AUTH_METHOD": ("client_secret_post", "introspection"),
    "INTROSPECTION_PRIVATE_KEY_FILE": ("", "introspection"),  # a file: see PEM below
    "INTROSPECT_JWTS": ("1", "introspection"),
}

_REDIS = {"SHARED_CACHE_URL": "redis://127.0.0.1:1/0"}
_ENDPOINT = {
    "INTROSPECTION_URL": "https://as.example/introspect",
    "INTROSPECTION_CLIENT_ID": "rs",
    "INTROSPECTION_CLIENT_SECRET": "s3cret",
}
#: The settings a variable needs beside it (half a configuration is refused): the settings
#: before, and those after (with the variable), for the variables that cannot stand alone.
CASES: dict[str, tuple[dict[str, str], dict[str, str]]] = {
    "SHARED_CACHE_URL": ({}, {**_REDIS, "SHARED_CACHE_KEY": "k" * 32}),
    "SHARED_CACHE_KEY": (
        {**_REDIS, "SHARED_CACHE_TRUST_REDIS_WRITERS": "1"},
        {**_REDIS, "SHARED_CACHE_KEY": "k" * 32},
    ),
    "SHARED_CACHE_TRUST_REDIS_WRITERS": (
        {**_REDIS, "SHARED_CACHE_KEY": "k" * 32},
        {**_REDIS, "SHARED_CACHE_TRUST_REDIS_WRITERS": "1"},
    ),
    "INTROSPECTION_URL": ({}, _ENDPOINT),
    "INTROSPECTION_DISCOVERY": (
        _ENDPOINT,
        {**_ENDPOINT, "INTROSPECTION_URL": "", "INTROSPECTION_DISCOVERY": "https://as.example"},
    ),
    "INTROSPECTION_CLIENT_ID": (_ENDPOINT, {**_ENDPOINT, "INTROSPECTION_CLIENT_ID": "api"}),
    "INTROSPECTION_CLIENT_SECRET": (_ENDPOINT, {**_ENDPOINT, "INTROSPECTION_CLIENT_SECRET": "x"}),
    "INTROSPECTION_AUTH_METHOD": (
        _ENDPOINT,
        {**_ENDPOINT, "INTROSPECTION_AUTH_METHOD": "client_secret_post"},
    ),
    "INTROSPECTION_PRIVATE_KEY_FILE": (
        _ENDPOINT,
        {**_ENDPOINT, "INTROSPECTION_CLIENT_SECRET": "", "INTROSPECTION_PRIVATE_KEY_FILE": "*"},
    ),
    "INTROSPECT_JWTS": (_ENDPOINT, {**_ENDPOINT, "INTROSPECT_JWTS": "1"}),
}


@pytest.mark.parametrize("name", ENV_NAMES)
def test_every_listed_name_sets_a_verifier_option(name: str, tmp_path: Path) -> None:
    assert set(VALID) == set(ENV_NAMES)
    value, option = VALID[name]
    assert option in inspect.signature(Verifier).parameters
    base = dict(BASE)
    if name in CASES:
        pem = tmp_path / "rs.pem"
        pem.write_bytes(private_pem())
        before, after = ({PREFIX + k: v for k, v in case.items()} for case in CASES[name])
        if "*" in after.values():
            after[PREFIX + name] = str(pem)
        assert after.get(PREFIX + name)  # the variable itself is set, not only what it needs
        old = options_from_env(environ={**base, **before})
        new = options_from_env(environ={**base, **after})
        assert shown(new[option]) != shown(old.get(option))
        return
    if name == "ALLOW_HTTP":
        base[PREFIX + "JWKS_URL"] = "http://idp.example.com/keys"
        with pytest.raises(ConfigurationError):
            options_from_env(environ=base)  # plain http needs ALLOW_HTTP
        assert options_from_env(environ={**base, PREFIX + name: value})[option]
        return
    before = options_from_env(environ=base)
    changed = {**base, PREFIX + name: value}
    if name == "DISCOVERY_URL":
        del changed[PREFIX + "JWKS_URL"]
    after = options_from_env(environ=changed)
    assert shown(after[option]) != shown(before.get(option))


def private_pem() -> bytes:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def shown(value: object) -> object:
    """What a setting made: a key source by its class and URL (not in its repr)."""
    if isinstance(value, JWKSKeys):
        return (
            type(value),
            getattr(value, "_discovery_url", None),
            value._url,
            value._shared is not None and repr(value._shared),
        )
    if isinstance(value, Introspection):
        auth = value._auth
        return (value._url, value._documents, auth.method, auth.client_id, auth._secret,
                value.introspect_jwts)  # fmt: skip
    return value


def test_flask_keys_are_the_settings_and_the_middlewares_options() -> None:
    """Each app.config key is a verifier setting or a middleware option, and each middleware
    option a value can configure (not an object such as on_error) has a key."""
    assert not set(ENV_NAMES) & set(MIDDLEWARE_KEYS)
    parameters = set(inspect.signature(JWTGuardWSGIMiddleware).parameters)
    options = {option for option, _ in MIDDLEWARE_KEYS.values()}
    assert options <= parameters
    objects_or_unsafe = {
        "app",
        "verifier",
        "on_error",
        "protected_resource",
        "header",
        "log_rejections",
        "log_limit",
        "unsafe_preflight_to_app",
        "client_certificate",
    }
    assert parameters - options == objects_or_unsafe


def test_flask_keys_read_are_the_keys_listed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each middleware key reaches its JWTGuardWSGIMiddleware argument."""
    given: dict[str, Any] = {}

    class Recording(JWTGuardWSGIMiddleware):
        def __init__(self, app: Any, **options: Any) -> None:
            given.update(options)
            super().__init__(app, **options)

    monkeypatch.setattr(jwt_guard.flask, "JWTGuardWSGIMiddleware", Recording)
    values = {"COOKIE": "at", "OPTIONAL": True, "EXCLUDE": ["/h"]}
    values |= {"REALM": "r", "CSRF": False, "DEBUG": True}
    assert set(values) == set(MIDDLEWARE_KEYS)
    app = Flask(__name__)
    app.config.update(BASE, **{PREFIX + key: value for key, value in values.items()})
    JWTGuard(app)
    for key, value in values.items():
        option = MIDDLEWARE_KEYS[key][0]
        assert given[option] == (tuple(value) if isinstance(value, list) else value), key


def test_issue25_4_flask_key_not_read_because_of_an_argument() -> None:
    """A key the code overrides (verifier=, cookie=) is not read either: it says so."""
    issuer = LocalIssuer()
    app = Flask(__name__)
    app.config.update(JWT_GUARD_ISSUER="https://elsewhere.example/", JWT_GUARD_COOKIE="a")
    with pytest.raises(ConfigurationError) as info:
        JWTGuard(app, verifier=issuer.verifier(), cookie="b")
    assert "JWT_GUARD_ISSUER (app.config) is not read: JWTGuard was given verifier=" in str(
        info.value
    )
    assert "JWT_GUARD_COOKIE (app.config) is not read: JWTGuard was given cookie=" in str(
        info.value
    )


def _names_in_repository() -> Iterator[tuple[str, str]]:
    pattern = re.compile(r"\bJWT_GUARD_([A-Z0-9_]*[A-Z0-9])\b(?![*_])")
    for folder in ("jwt_guard", "examples", "scripts", "tests", "benchmarks", "docs"):
        for path in sorted((ROOT / folder).rglob("*")):
            if path.suffix in (".py", ".sh", ".md", ".html") and path.is_file():
                for match in pattern.finditer(path.read_text("utf-8")):
                    yield match[1], str(path.relative_to(ROOT))
    for match in pattern.finditer((ROOT / "README.md").read_text("utf-8")):
        yield match[1], "README.md"


def test_every_jwt_guard_name_in_the_repository_is_a_setting_or_tooling() -> None:
    """A variable this repository adds under the prefix is a setting or a tool's own
    (TOOLING_NAMES: an app never reads it): else an app run in the same shell would be
    refused. An example's own variable is named outside the prefix (the FastAPI example's
    DOCS_CLIENT_ID: as JWT_GUARD_DOCS_CLIENT_ID, every example had to pass ignore_unknown,
    a workaround a user copying one learned)."""
    typos_shown = {"ALGORITHM", "EXCLUDES"}  # the docs' examples of what is refused
    allowed = {*ENV_NAMES, *MIDDLEWARE_KEYS, *TOOLING_NAMES, *typos_shown}
    strays = {
        (name, where)
        for name, where in _names_in_repository()
        if name not in allowed and where != "tests/test_config.py"
    }
    assert not strays, "add them to config.TOOLING_NAMES or read them as settings"


def test_readme_lists_every_setting() -> None:
    readme = manual()
    paragraph = readme[readme.index('`Verifier.from_env(prefix="JWT_GUARD_")` reads') :]
    paragraph = paragraph[: paragraph.index("\n\n")]
    assert re.findall(r"`([A-Z_]+)`", paragraph)[: len(ENV_NAMES)] == list(ENV_NAMES)
    flask = section("Flask (and any WSGI app)")
    for key in MIDDLEWARE_KEYS:
        assert f"JWT_GUARD_{key}" in flask, key


# -- from_env: a keyword argument over a set variable says so (issue 25 follow-up) ------------


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_NAMES:
        monkeypatch.delenv(f"JWT_GUARD_{name}", raising=False)
    monkeypatch.setenv("JWT_GUARD_ISSUER", "https://idp.example.com/")
    monkeypatch.setenv("JWT_GUARD_AUDIENCE", "orders-api")
    monkeypatch.setenv("JWT_GUARD_JWKS_URL", "https://idp.example.com/jwks.json")
    monkeypatch.setenv("JWT_GUARD_ALGORITHMS", "ES256")
    monkeypatch.setenv("JWT_GUARD_LEEWAY", "5")


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_issue25_from_env_keyword_over_a_set_variable_logs_which_wins(
    settings: None, caplog: pytest.LogCaptureFixture
) -> None:
    """``Verifier.from_env(algorithms=...)`` with JWT_GUARD_ALGORITHMS set to another value
    silently replaced it: the deployment's variable looked in force and was not."""
    keys = LocalIssuer(algorithm="RS256").keys()
    with caplog.at_level(logging.WARNING, logger="jwt_guard"):
        verifier = Verifier.from_env(algorithms=["RS256"], leeway=2, keys=keys)
    assert verifier.leeway == 2
    (warning,) = _warnings(caplog)  # one WARNING, naming each
    assert warning.startswith("Verifier.from_env: ")
    assert (
        "algorithms= given to Verifier.from_env() replaces JWT_GUARD_ALGORITHMS from the "
        "environment, which says otherwise: the keyword argument wins (drop one of them)"
    ) in warning
    assert "leeway= given to Verifier.from_env() replaces JWT_GUARD_LEEWAY" in warning
    assert "keys= given to Verifier.from_env() replaces JWT_GUARD_JWKS_URL" in warning
    # Names, never values (an issuer or a URL may be internal).
    assert "RS256" not in warning and "idp.example.com" not in warning


def test_issue25_from_env_keyword_saying_what_the_variable_says_is_quiet(
    settings: None, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="jwt_guard"):
        Verifier.from_env(
            algorithms="ES256", audience=["orders-api"], leeway=5, cache_size=10, typ="at+jwt"
        )
    # typ=: JWT_GUARD_TYP is unset; cache_size has no variable.
    assert _warnings(caplog) == []


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("JWT_GUARD_PROFILE", "rfc9068"),  # an ID token would pass
        ("JWT_GUARD_TYP", "at+jwt"),
        ("JWT_GUARD_OPTIONAL", True),
        ("JWT_GUARD_EXCLUDE", ["/health"]),
        ("JWT_GUARD_AUDIENCE", "other-api"),  # changed
        ("JWT_GUARD_EXCLUDES", ["/health"]),  # a misspelled key, added later
    ],
)
def test_issue25_4_flask_key_set_after_init_app_is_not_silent(
    key: str, value: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Review 25b F4: init_app reads app.config once; a key written after it
    (app.config.from_prefixed_env() after JWTGuard(app)) was ignored without a word. Now the
    first request is refused (fail closed) and the log names the key and the fix."""
    issuer = LocalIssuer()
    app = Flask(__name__)
    ran: list[str] = []

    @app.get("/me")
    def me() -> Any:
        ran.append("me")
        return {"ok": True}

    token = issuer.mint(header={"typ": "JWT"}, nonce="n", at_hash="x")  # an ID token
    with issuer.serve() as server:
        app.config.update(
            JWT_GUARD_ISSUER=issuer.issuer,
            JWT_GUARD_AUDIENCE=issuer.audience,
            JWT_GUARD_JWKS_URL=server.url,
            JWT_GUARD_ALLOW_HTTP="1",
        )
        JWTGuard(app)
        app.config[key] = value
        client = app.test_client()
        for _ in range(2):
            with caplog.at_level(logging.ERROR, "jwt_guard"):
                response = client.get("/me", headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 500
    assert ran == []
    change = "changed" if key == "JWT_GUARD_AUDIENCE" else "set"
    assert f"{key} (app.config) was {change} after JWTGuard(app) (init_app)" in caplog.text
    assert "set it before JWTGuard(app) or guard.init_app(app)" in caplog.text


def test_flask_keys_unchanged_after_init_app_and_other_extensions_keys_pass() -> None:
    issuer = LocalIssuer()
    app = Flask(__name__)
    JWTGuard(app, verifier=issuer.verifier(), ignore_unknown=("JWT_GUARD_OTHER_*",))
    app.config["JWT_GUARD_OTHER_TOOL"] = "x"  # another extension's key, any time
    app.config["SECRET_KEY"] = "y"  # not ours

    @app.get("/me")
    def me() -> Any:
        return {"ok": True}

    response = app.test_client().get("/me", headers={"Authorization": f"Bearer {issuer.mint()}"})
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("value", "paths"),
    [("/health", ("/health",)), ("/health, /metrics", ("/health", "/metrics"))],
)
def test_flask_exclude_given_as_a_string_is_its_paths(value: str, paths: tuple[str, ...]) -> None:
    """Review 25b, low: JWT_GUARD_EXCLUDE="/health" became the tuple of its characters and the
    message said "exclude must be a list of paths starting with '/'"; a string now names its
    paths (one, or several separated by commas, as from_prefixed_env gives them)."""
    app = Flask(__name__)
    app.config.update(BASE, JWT_GUARD_EXCLUDE=value)
    guard = JWTGuard(app)

    @app.get("/health")
    def health() -> Any:
        return {"ok": True}

    assert guard.middleware is not None
    assert all(guard.middleware.guard.is_excluded(path) for path in paths)
    assert not guard.middleware.guard.is_excluded("/me")
    assert app.test_client().get("/health").status_code == 200


@pytest.mark.parametrize(("value", "mtls"), [("true", True), ("yes", True), ("0", False)])
def test_mtls_variable_sets_the_option(value: str, mtls: bool) -> None:
    # Review R28 F8: the Flask config / from_env path could not turn mtls on.
    assert options_from_env(environ={**BASE, PREFIX + "MTLS": value})["mtls"] is mtls


def test_mtls_variable_that_is_not_a_boolean_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="MTLS must be 1"):
        options_from_env(environ={**BASE, PREFIX + "MTLS": "on please"})


# -- the shared cache's integrity key (review R27-8) ---------------------------------------------

REDIS = {PREFIX + "SHARED_CACHE_URL": "redis://127.0.0.1:1/0"}


def test_r27_8_shared_cache_url_without_its_integrity_key_is_refused(
    configure: Configure,
) -> None:
    """JWT_GUARD_SHARED_CACHE_URL alone made a RedisCache without integrity key: anyone who
    can write to that Redis could forge any token, silently."""
    for alone in ("SHARED_CACHE_KEY", "SHARED_CACHE_TRUST_REDIS_WRITERS"):
        with pytest.raises(ConfigurationError, match=f"{alone} is set without"):
            configure({**BASE, PREFIX + alone: "k" * 32 if alone.endswith("KEY") else "1"})
    unset = {PREFIX + "SHARED_CACHE_KEY": "", PREFIX + "SHARED_CACHE_TRUST_REDIS_WRITERS": ""}
    with pytest.raises(ConfigurationError) as info:
        configure({**BASE, **REDIS, **unset})
    message = str(info.value)
    assert "JWT_GUARD_SHARED_CACHE_URL needs JWT_GUARD_SHARED_CACHE_KEY" in message
    assert "forge any token" in message
    assert "JWT_GUARD_SHARED_CACHE_TRUST_REDIS_WRITERS=1" in message  # the loud way out


def test_r27_8_shared_cache_key_and_the_loud_opt_out(
    configure: Configure, caplog: pytest.LogCaptureFixture
) -> None:
    made = configure({**BASE, **REDIS, PREFIX + "SHARED_CACHE_KEY": "k" * 32})
    assert "integrity=on" in repr(keys_of(made)._shared)
    with pytest.raises(ConfigurationError, match="at least 32 bytes"):
        configure({**BASE, **REDIS, PREFIX + "SHARED_CACHE_KEY": "short"})
    with caplog.at_level(logging.WARNING, "jwt_guard"):
        made = configure(
            {
                **BASE,
                **REDIS,
                PREFIX + "SHARED_CACHE_KEY": "",
                PREFIX + "SHARED_CACHE_TRUST_REDIS_WRITERS": "1",
            }
        )
    assert "integrity=off" in repr(keys_of(made)._shared)
    assert any("forge any token" in r.getMessage() for r in caplog.records)


def keys_of(made: object) -> Any:
    """The key source of what ``configure`` made (a verifier, or the Flask extension)."""
    verifier = made if isinstance(made, Verifier) else made.middleware.verifier  # type: ignore[attr-defined]
    return verifier._config.policies[0].keys


# -- the introspection endpoint (RFC 7662) -------------------------------------------------------

ENDPOINT = {PREFIX + name: value for name, value in _ENDPOINT.items()}


def test_introspection_settings_make_the_endpoint(configure: Configure, tmp_path: Path) -> None:
    """JWT_GUARD_INTROSPECTION_* configure Verifier(introspection=...) from the environment
    and from app.config alike (review R27, noticed: neither had any)."""
    made = configure(
        {
            **BASE,
            **ENDPOINT,
            **REDIS,
            PREFIX + "SHARED_CACHE_KEY": "k" * 32,
            PREFIX + "INTROSPECTION_AUTH_METHOD": "client_secret_post",
            PREFIX + "INTROSPECT_JWTS": "1",
        }
    )
    endpoint = verifier_of(made).introspection
    assert isinstance(endpoint, Introspection)
    assert endpoint._url == "https://as.example/introspect"
    assert (endpoint._auth.method, endpoint._auth.client_id) == ("client_secret_post", "rs")
    assert endpoint.introspect_jwts
    assert endpoint._shared is keys_of(made)._shared  # one RedisCache for both
    assert "s3cret" not in repr(endpoint) and "s3cret" not in repr(endpoint._auth)


def test_introspection_by_discovery_and_private_key_jwt(tmp_path: Path) -> None:
    pem = tmp_path / "rs.pem"
    pem.write_bytes(private_pem())
    options = options_from_env(
        environ={
            **BASE,
            PREFIX + "INTROSPECTION_DISCOVERY": "https://as.example",
            PREFIX + "INTROSPECTION_CLIENT_ID": "rs",
            PREFIX + "INTROSPECTION_PRIVATE_KEY_FILE": str(pem),
        }
    )
    endpoint = options["introspection"]
    assert endpoint._documents and endpoint._auth.method == "private_key_jwt"


def test_without_key_variables_every_token_is_introspected(configure: Configure) -> None:
    keyless = {k: v for k, v in BASE.items() if k != PREFIX + "JWKS_URL"}
    with pytest.raises(ConfigurationError, match="INTROSPECTION_URL to introspect every token"):
        configure(keyless)
    verifier = verifier_of(configure({**keyless, **ENDPOINT}))
    assert verifier._keyless and verifier.introspection is not None


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        (
            {"INTROSPECTION_CLIENT_ID": "rs"},
            "INTROSPECTION_CLIENT_ID set without JWT_GUARD_INTROSPECTION_URL",
        ),
        ({"INTROSPECT_JWTS": "1"}, "INTROSPECT_JWTS set without JWT_GUARD_INTROSPECTION_URL"),
        (
            {"INTROSPECTION_URL": "https://as.example/i"},
            "INTROSPECTION_CLIENT_ID is required",
        ),
        (
            {**_ENDPOINT, "INTROSPECTION_DISCOVERY": "https://as.example"},
            "INTROSPECTION_URL or JWT_GUARD_INTROSPECTION_DISCOVERY, not both",
        ),
        (
            {**_ENDPOINT, "INTROSPECTION_CLIENT_SECRET": ""},
            "needs client_secret=",
        ),
        ({**_ENDPOINT, "INTROSPECTION_AUTH_METHOD": "tls_client_auth"}, "auth_method must be"),
        (
            {**_ENDPOINT, "INTROSPECTION_PRIVATE_KEY_FILE": "/nonexistent/rs.pem"},
            "INTROSPECTION_PRIVATE_KEY_FILE cannot be read",
        ),
        ({**_ENDPOINT, "INTROSPECT_JWTS": "maybe"}, "INTROSPECT_JWTS must be 1"),
        ({**_ENDPOINT, "INTROSPECTION_URL": "http://as.example/i"}, "https"),
    ],
    ids=[
        "client-id-alone",
        "introspect-jwts-alone",
        "url-without-client-id",
        "url-and-discovery",
        "no-secret",
        "unknown-auth-method",
        "unreadable-key-file",
        "not-a-flag",
        "plain-http",
    ],
)
def test_half_an_introspection_configuration_is_refused(
    configure: Configure, settings: dict[str, str], match: str
) -> None:
    with pytest.raises(ConfigurationError, match=match):
        configure({**BASE, **{PREFIX + name: value for name, value in settings.items()}})


def verifier_of(made: object) -> Verifier:
    if isinstance(made, Verifier):
        return made
    return made.middleware.verifier  # type: ignore[attr-defined,no-any-return]


@pytest.mark.parametrize("adapter", ["asgi", "wsgi"])
async def test_an_app_configured_by_settings_introspects_opaque_tokens(
    adapter: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """End to end against a real endpoint on loopback: Verifier.from_env under the ASGI
    middleware (async driver), app.config under the Flask extension (sync driver)."""
    import httpx
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from jwt_guard.asgi import JWTGuardMiddleware

    from .servers import IntrospectionServer

    with IntrospectionServer() as server:
        server.tokens["2YotnFZFEjr1zCsicMWpAA"] = {
            "active": True,
            "iss": BASE[PREFIX + "ISSUER"],
            "aud": BASE[PREFIX + "AUDIENCE"],
            "sub": "alice",
            "token_type": "Bearer",
        }
        settings = {
            **{k: v for k, v in BASE.items() if k != PREFIX + "JWKS_URL"},
            **ENDPOINT,
            PREFIX + "INTROSPECTION_URL": server.url,
        }
        if adapter == "asgi":
            for name in ENV_NAMES:
                monkeypatch.delenv(PREFIX + name, raising=False)
            for name, value in settings.items():
                monkeypatch.setenv(name, value)
            verifier = Verifier.from_env()

            async def me(request: Any) -> PlainTextResponse:
                return PlainTextResponse(request.user.subject)

            app = JWTGuardMiddleware(Starlette(routes=[Route("/me", me)]), verifier=verifier)
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://api.test"
            ) as client:
                good = await client.get("/me", headers=bearer("2YotnFZFEjr1zCsicMWpAA"))
                bad = await client.get("/me", headers=bearer("unknown-token"))
            await verifier.aclose()
            good_status, good_text, bad_status = good.status_code, good.text, bad.status_code
            bad_code = bad.json()["code"]
        else:
            flask_app = Flask(__name__)
            flask_app.config.update(settings)
            flask_app.add_url_rule(
                "/me", "me", lambda: jwt_guard.flask.current_principal.subject or ""
            )
            guard = JWTGuard(flask_app)
            with flask_app.test_client() as client:
                answer = client.get("/me", headers=bearer("2YotnFZFEjr1zCsicMWpAA"))
                refused = client.get("/me", headers=bearer("unknown-token"))
            assert guard.middleware is not None
            guard.middleware.verifier.close()
            good_status, good_text = answer.status_code, answer.get_data(as_text=True)
            bad_status, bad_code = refused.status_code, refused.get_json()["code"]
    assert (good_status, good_text) == (200, "alice")
    assert (bad_status, bad_code) == (401, "token_inactive")
    assert server.count == 2


def test_r27_8_flask_shared_cache_key_given_as_bytes_is_the_same_key() -> None:
    """app.config values become the environment's text: bytes were str()-ed ("b'...'"), a key
    other than the one written; bytes that are no text are refused with the fix."""
    app = Flask(__name__)
    app.config.update(BASE, **REDIS, JWT_GUARD_SHARED_CACHE_KEY=b"k" * 32)
    guard = JWTGuard(app)
    assert keys_of(guard)._shared._integrity == b"k" * 32
    other = Flask(__name__)
    other.config.update(BASE, **REDIS, JWT_GUARD_SHARED_CACHE_KEY=bytes(range(128, 160)))
    with pytest.raises(ConfigurationError, match="must be UTF-8 text"):
        JWTGuard(other)
