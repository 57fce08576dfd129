"""The docs site's tables made from the code, so they cannot drift from it:

- docs/reference/errors.md: every error class of the error tree with its HTTP status, RFC 6750
  ``error``, ``code`` (and the other codes the package raises it with) and fixed description;
- docs/reference/configuration.md: every ``JWT_GUARD_*`` variable ``Verifier.from_env`` and the
  Flask extension read (``ENV_NAMES``, the Flask ``MIDDLEWARE_KEYS``).

    .venv/bin/python scripts/docs/tables.py          # rewrite the tables in place
    .venv/bin/python scripts/docs/tables.py --check  # exit 1 if a page is out of date

Each table sits between ``<!-- generated: NAME -->`` and ``<!-- end generated -->`` on its page;
tests/test_docs.py checks that the pages hold what this script makes.
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import jwt_guard
from jwt_guard import JWTGuardError
from jwt_guard._sources.config import ENV_NAMES, OPTION_VARIABLES, TOOLING_NAMES
from jwt_guard.flask import MIDDLEWARE_KEYS

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "jwt_guard"


def error_classes() -> Iterator[tuple[int, type[JWTGuardError]]]:
    """The public error tree, depth first in the order the classes are defined."""

    def walk(cls: type[JWTGuardError], depth: int) -> Iterator[tuple[int, type[JWTGuardError]]]:
        yield depth, cls
        for sub in cls.__subclasses__():
            if sub.__module__.startswith("jwt_guard.") and sub.__name__ in jwt_guard.__all__:
                yield from walk(sub, depth + 1)

    return walk(JWTGuardError, 0)


def raised_codes() -> dict[str, set[str]]:
    """The codes the package passes when it raises an error class (``ClaimInvalid(code=...)``),
    by class name: found in the source, so a new one shows up in the table."""
    names = {cls.__name__ for _, cls in error_classes()}
    found: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text("utf-8"), str(path))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
                continue
            if node.func.id not in names:
                continue
            for keyword in node.keywords:
                if keyword.arg == "code" and isinstance(keyword.value, ast.Constant):
                    found.setdefault(node.func.id, set()).add(str(keyword.value.value))
    return found


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def error_table() -> str:
    others = raised_codes()
    rows = [
        "| error class | HTTP | `error` (RFC 6750) | `code` | description |",
        "|---|---|---|---|---|",
    ]
    for depth, cls in error_classes():
        codes = [cls.code, *sorted(others.get(cls.__name__, set()) - {cls.code})]
        indent = "&nbsp;&nbsp;&nbsp;&nbsp;" * depth
        error = f"`{cls.error}`" if cls.error else "—"
        status = str(cls.status_code)
        rows.append(
            f"| {indent}[`{cls.__name__}`][jwt_guard.{cls.__name__}] | {status} | {error} | "
            + ", ".join(f"`{code}`" for code in codes)
            + f" | {_cell(cls.description)} |"
        )
    return "\n".join(rows)


#: What each variable means, one line; the table refuses a variable missing here or listed
#: here but read by nothing.
MEANINGS = {
    "ISSUER": "the exact `iss` of your tokens (required)",
    "AUDIENCE": "this API's identifier, the `aud` tokens must hold; comma-separated for several "
    "(required)",
    "JWKS_URL": "the identity provider's key set URL (this or `DISCOVERY_URL`)",
    "DISCOVERY_URL": "an issuer, or its OpenID Connect or RFC 8414 metadata URL "
    "(this or `JWKS_URL`)",
    "ALGORITHMS": "accepted `alg` values, comma-separated; unset: each published key's own",
    "LEEWAY": "clock skew in seconds (0 to 300, default 30)",
    "TYP": "the header `typ` tokens must carry (e.g. `at+jwt`)",
    "PROFILE": "profiles, comma-separated: `rfc9068`",
    "ROLES_CLAIM": "claim paths of the roles, comma-separated",
    "SCOPES_CLAIM": "claim paths of the scopes, comma-separated",
    "ALLOW_HTTP": "`1` (or `true`, `yes`) allows a plain-http key or metadata URL (development)",
    "SHARED_CACHE_URL": "a `redis://` URL: the key source's documents and introspection "
    "answers shared by every worker and instance ([`RedisCache`][jwt_guard.RedisCache]); needs "
    "`SHARED_CACHE_KEY`",
    "SHARED_CACHE_KEY": "the shared cache's integrity key (at least 32 bytes, the same on every "
    "instance): each entry carries its HMAC, one without is ignored",
    "SHARED_CACHE_TRUST_REDIS_WRITERS": "`1` runs the shared cache without `SHARED_CACHE_KEY`: "
    "anyone who can write to that Redis can then forge any token (a WARNING at start-up)",
    "MTLS": "`1` (or `true`, `yes`) checks certificate-bound tokens (RFC 8705): `mtls=True`, "
    "with the middleware's `client_certificate=`",
    "INTROSPECTION_URL": "the introspection endpoint (RFC 7662); without `JWKS_URL` or "
    "`DISCOVERY_URL` every token is introspected",
    "INTROSPECTION_DISCOVERY": "an issuer whose metadata names its `introspection_endpoint` "
    "(this or `INTROSPECTION_URL`)",
    "INTROSPECTION_CLIENT_ID": "this resource server's client id at the authorization server "
    "(required with an endpoint)",
    "INTROSPECTION_CLIENT_SECRET": "its client secret (`client_secret_basic` or "
    "`client_secret_post`)",
    "INTROSPECTION_AUTH_METHOD": "`client_secret_basic` (default with a secret), "
    "`client_secret_post` or `private_key_jwt` (default with a key file)",
    "INTROSPECTION_PRIVATE_KEY_FILE": "a PEM private key file for `private_key_jwt` (RFC 7523)",
    "INTROSPECT_JWTS": "`1` asks about JWTs too, after their local verification (revocation)",
    "COOKIE": "the cookie that may carry the token",
    "OPTIONAL": "requests without a token pass, as anonymous",
    "EXCLUDE": "paths that need no token (a list, or comma-separated)",
    "REALM": "the `realm` of the `WWW-Authenticate` challenge",
    "CSRF": "the CSRF check of cookie-borne tokens",
    "DEBUG": "the refusal's detail in the error body (development only)",
}


#: What a variable that sets no ``Verifier`` option of its own sets.
OTHER_SETS = {
    "ALLOW_HTTP": "the key source's and introspection endpoint's `allow_http=`",
    "SHARED_CACHE_URL": "the key source's and introspection endpoint's `shared_cache=`",
    "SHARED_CACHE_KEY": "`RedisCache(integrity_key=)`",
    "SHARED_CACHE_TRUST_REDIS_WRITERS": "`RedisCache(trust_redis_writers=)`",
}


def env_table() -> str:
    wanted = set(ENV_NAMES) | set(MIDDLEWARE_KEYS)
    if wanted != set(MEANINGS):
        raise SystemExit(
            f"scripts/docs/tables.py MEANINGS: add {sorted(wanted - set(MEANINGS))}, "
            f"drop {sorted(set(MEANINGS) - wanted)}"
        )
    option = {name: key for key, names in OPTION_VARIABLES.items() for name in names}
    rows = [
        "| variable | read by | sets | meaning |",
        "|---|---|---|---|",
    ]
    for name in ENV_NAMES:
        if name in option:
            sets = f"`Verifier({option[name]}=)`"
        elif name in OTHER_SETS:
            sets = OTHER_SETS[name]
        else:
            raise SystemExit(f"scripts/docs/tables.py: what does JWT_GUARD_{name} set?")
        rows.append(
            f"| `JWT_GUARD_{name}` | `Verifier.from_env`, Flask | {sets} | {MEANINGS[name]} |"
        )
    for name, (argument, _) in MIDDLEWARE_KEYS.items():
        rows.append(
            f"| `JWT_GUARD_{name}` | Flask (`app.config`) | "
            f"`JWTGuardWSGIMiddleware({argument}=)` | {MEANINGS[name]} |"
        )
    tooling = ", ".join(f"`JWT_GUARD_{name}`" for name in sorted(TOOLING_NAMES))
    rows.append("")
    rows.append(f"This repository's own scripts and tests read {tooling}: never settings.")
    return "\n".join(rows)


TABLES: dict[str, tuple[str, Callable[[], str]]] = {
    "errors": ("docs/reference/errors.md", error_table),
    "environment": ("docs/reference/configuration.md", env_table),
}


def region(name: str) -> re.Pattern[str]:
    return re.compile(rf"(<!-- generated: {name} -->\n)(.*?)(<!-- end generated -->)", re.DOTALL)


def render(text: str, name: str, make: Callable[[], str]) -> str:
    """``text`` with the region ``name`` holding what ``make`` gives."""
    pattern = region(name)
    if not pattern.search(text):
        raise SystemExit(f"no '<!-- generated: {name} -->' region")
    return pattern.sub(lambda m: m.group(1) + make() + "\n" + m.group(3), text, count=1)


def main(argv: list[str]) -> int:
    stale = []
    for name, (page, make) in TABLES.items():
        path = ROOT / page
        text = path.read_text("utf-8")
        new = render(text, name, make)
        if new != text:
            stale.append(page)
            if "--check" not in argv:
                path.write_text(new, "utf-8")
    if stale and "--check" in argv:
        print("out of date (run scripts/docs/tables.py):", ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
