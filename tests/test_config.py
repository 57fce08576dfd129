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
from jwt_guard import ConfigurationError, JWKSKeys, Verifier
from jwt_guard._sources.config import ENV_NAMES, TOOLING_NAMES, options_from_env
from jwt_guard.flask import MIDDLEWARE_KEYS, PREFIX, JWTGuard
from jwt_guard.testing import LocalIssuer
from jwt_guard.wsgi import JWTGuardWSGIMiddleware

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
    "MTLS": ("1", "mtls"),
}


@pytest.mark.parametrize("name", ENV_NAMES)
def test_every_listed_name_sets_a_verifier_option(name: str) -> None:
    assert set(VALID) == set(ENV_NAMES)
    value, option = VALID[name]
    assert option in inspect.signature(Verifier).parameters
    base = dict(BASE)
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


def shown(value: object) -> object:
    """What a setting made: a key source by its class and URL (not in its repr)."""
    if isinstance(value, JWKSKeys):
        return (
            type(value),
            getattr(value, "_discovery_url", None),
            value._url,
            value._shared is not None,
        )
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
