"""The package's layout: folders are layers and imports only go down them, no import cycles, the
public import paths and names kept, an Architecture page (docs/architecture.md) that names every
module, and PyJWT off the verify path."""

from __future__ import annotations

import ast
import importlib
import json
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

import jwt_guard

PACKAGE_DIR = Path(jwt_guard.__file__).parent
ARCHITECTURE = PACKAGE_DIR.parent / "docs" / "architecture.md"


def module_files(package_dir: Path) -> dict[str, Path]:
    """Every module of the package by dotted name (``pkg``, ``pkg._x``, ``pkg.sub.y``)."""
    root = package_dir.parent
    modules = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def imported_modules(name: str, path: Path, modules: Mapping[str, Path]) -> set[str]:
    """The package's modules that ``name`` imports, anywhere in it: at the top, inside
    functions, under ``if TYPE_CHECKING``. Relative imports are resolved."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def add(target: str, names: list[str]) -> None:
        # ``from pkg import sub`` imports the submodule; ``from pkg import thing`` the package.
        for item in names:
            if f"{target}.{item}" in modules:
                found.add(f"{target}.{item}")
            elif target in modules:
                found.add(target)

    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in modules:
                    found.add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            add(target, [alias.name for alias in node.names])
    found.discard(name)
    return found


def import_graph(package_dir: Path) -> dict[str, set[str]]:
    modules = module_files(package_dir)
    return {name: imported_modules(name, path, modules) for name, path in modules.items()}


def find_cycle(graph: Mapping[str, set[str]]) -> list[str] | None:
    """One import cycle as ``[a, b, ..., a]``, or ``None``."""
    done: set[str] = set()
    path: list[str] = []
    on_path: set[str] = set()

    def visit(node: str) -> Iterator[list[str]]:
        path.append(node)
        on_path.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt in on_path:
                yield [*path[path.index(nxt) :], nxt]
            elif nxt not in done:
                yield from visit(nxt)
        on_path.discard(node)
        path.pop()
        done.add(node)

    for start in sorted(graph):
        if start not in done:
            for cycle in visit(start):
                return cycle
    return None


def test_no_import_cycles() -> None:
    graph = import_graph(PACKAGE_DIR)
    assert (
        "jwt_guard._sources.verifier" in graph
        and "jwt_guard._core.policy" in graph["jwt_guard._sources.verifier"]
    )
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or ())


def test_graph_sees_every_kind_of_import(tmp_path: Path) -> None:
    # Lazy imports, imports under TYPE_CHECKING, relative and absolute forms: a builder that
    # missed one would let the cycle and layer checks pass over it.
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from ._a import A\n")
    (pkg / "_a.py").write_text("def f():\n    from . import _b\n")
    (pkg / "_b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .sub import c\n"
    )
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "c.py").write_text("import pkg._d\nfrom .. import _e\n")
    (pkg / "_d.py").write_text("from pkg import A\n")
    (pkg / "_e.py").write_text("import os\nfrom pkg.sub.c import x\n")
    assert import_graph(pkg) == {
        "pkg": {"pkg._a"},
        "pkg._a": {"pkg._b"},
        "pkg._b": {"pkg.sub.c"},
        "pkg.sub": set(),
        "pkg.sub.c": {"pkg._d", "pkg._e"},
        "pkg._d": {"pkg"},
        "pkg._e": {"pkg.sub.c"},
    }


@pytest.mark.parametrize(
    ("graph", "cycle"),
    [
        ({"a": {"b"}, "b": {"c"}, "c": set()}, None),
        ({"a": {"b"}, "b": {"a"}}, ["a", "b", "a"]),
        ({"a": {"b"}, "b": {"c"}, "c": {"b"}}, ["b", "c", "b"]),
        ({"a": {"b", "c"}, "b": {"d"}, "c": {"d"}, "d": set()}, None),
    ],
)
def test_find_cycle(graph: dict[str, set[str]], cycle: list[str] | None) -> None:
    assert find_cycle(graph) == cycle


def test_a_lazy_upward_import_in_a_real_tree_is_caught(tmp_path: Path) -> None:
    # End to end on files: a function-local import of a public module from a core module.
    pkg = tmp_path / "jwt_guard"
    (pkg / "_core").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "_core" / "__init__.py").write_text("")
    (pkg / "_core" / "keys.py").write_text("def f():\n    import jwt_guard.demo\n")
    (pkg / "demo.py").write_text("from ._core import keys\n")
    assert upward_imports(import_graph(pkg)) == ["jwt_guard._core.keys -> jwt_guard.demo"]


#: The layers, lowest first: a module may import its own layer and the ones before it. Each
#: folder's ``__init__`` docstring says what lives there and what it may import.
LAYERS = ("_core", "_sources", "_http", "_integrations", "_tools")
#: The public modules stay at the top (their import paths are the API); each is in a layer.
PUBLIC_MODULES = {
    "asgi": "_http",
    "wsgi": "_http",
    "fastapi": "_integrations",
    "flask": "_integrations",
    "mcp": "_integrations",
    "testing": "_tools",
    "providers": "_tools",
    "pytest_plugin": "_tools",
    "cli": "_tools",
    "demo": "_tools",
    "__main__": "_tools",
}


def layer_of(module: str) -> int:
    """The rank of ``module``'s layer; the package itself (the API it re-exports) is above all."""
    parts = module.split(".")[1:]
    if not parts:
        return len(LAYERS)
    if parts[0] in LAYERS:
        return LAYERS.index(parts[0])
    assert parts[0] in PUBLIC_MODULES, f"{module}: a private module outside the layer folders"
    return LAYERS.index(PUBLIC_MODULES[parts[0]])


def upward_imports(graph: Mapping[str, set[str]]) -> list[str]:
    return sorted(
        f"{name} -> {target}"
        for name, targets in graph.items()
        for target in targets
        if layer_of(target) > layer_of(name)
    )


def test_imports_only_go_down_the_layers() -> None:
    graph = import_graph(PACKAGE_DIR)
    assert upward_imports(graph) == []
    # Every module is in a layer (layer_of asserts it), every layer has modules.
    assert {LAYERS[layer_of(name)] for name in graph if name != "jwt_guard"} == set(LAYERS)


def test_layer_check_catches_an_upward_import() -> None:
    graph = {
        "jwt_guard._core.parse": {"jwt_guard._core.errors"},
        "jwt_guard._core.errors": set(),
        "jwt_guard._http.guard": {"jwt_guard._core.parse", "jwt_guard.asgi"},
        "jwt_guard.asgi": {"jwt_guard._http.guard"},
        "jwt_guard._sources.jwks": {"jwt_guard._http.guard", "jwt_guard._core.parse"},
        "jwt_guard._core.keys": {"jwt_guard.testing"},
    }
    assert upward_imports(graph) == [
        "jwt_guard._core.keys -> jwt_guard.testing",
        "jwt_guard._sources.jwks -> jwt_guard._http.guard",
    ]
    with pytest.raises(AssertionError, match="outside the layer folders"):
        layer_of("jwt_guard._helpers")


def test_each_layer_folder_says_what_it_holds_and_may_import() -> None:
    for folder in LAYERS:
        doc = importlib.import_module(f"jwt_guard.{folder}").__doc__ or ""
        assert "May import" in doc, folder
    private_top = sorted(
        path.name
        for path in PACKAGE_DIR.iterdir()
        if path.suffix == ".py" and path.stem.startswith("_") and path.stem not in PUBLIC_MODULES
    )
    assert private_top == ["__init__.py"], "private modules belong in a layer folder"
    public_top = {p.stem for p in PACKAGE_DIR.glob("*.py")} - {"__init__"}
    assert public_top == set(PUBLIC_MODULES)


#: The public names of every public module (issue 24: the layout moved private modules only).
#: A name may be added; none may disappear.
PUBLIC_NAMES = {
    "jwt_guard": (
        "AlgorithmNotAllowed Answer AudienceInvalid AuthenticationRequired AuthenticationTooOld "
        "CSRF CSRFFailed ClaimError ClaimInvalid ClaimMissing ConfigurationError "
        "CriticalHeaderUnsupported DPoP DPoPBoundTokenAsBearer DPoPKeyMismatch "
        "DPoPNonceRequired DPoPNonces DPoPProofMissing DPoPProofReplayed DPoPReplayUnavailable "
        "Denylist DenylistUnavailable Forbidden InsufficientRole InsufficientScope "
        "InsufficientUserAuthentication InvalidDPoPProof InvalidRequest InvalidSignature "
        "InvalidToken IssuerInvalid JWK JWKSKeys JWKSStats JWTGuardError JWTGuardMiddleware "
        "JWTGuardWSGIMiddleware KeyNotFound KeySet KeySource KeySourceUnavailable "
        "MalformedToken MemoryDenylist MemoryReplayCache Metrics OIDCDiscovery Principal "
        "ProtectedResource RedisDenylist RedisReplayCache ReplayCache Requirement "
        "RevocationKeys RouteGuard ServiceUnavailable StaticKeys TokenBindingUnsupported "
        "TokenExpired TokenIssuedInFuture TokenNotYetValid TokenRevoked TokenTooLarge "
        "TrustedIssuer TypeInvalid Verifier bound_csrf_value clear_token_cookies require_acr "
        "require_auth_age require_roles require_scopes set_token_cookies"
    ),
    "jwt_guard.asgi": (
        "JWTGuardMiddleware authenticate authenticate_sync credentials place response send_answer"
    ),
    "jwt_guard.wsgi": "JWTGuardWSGIMiddleware authenticate",
    "jwt_guard.fastapi": (
        "CurrentPrincipal JWTBearer OAuth2Login OptionalPrincipal bearer_scheme claims_as "
        "get_optional_principal get_principal require_acr require_auth_age require_roles "
        "require_scopes serve_swagger_ui"
    ),
    "jwt_guard.flask": (
        "JWTGuard RouteGuard clear_token_cookies current_principal get_principal require_roles "
        "require_scopes set_token_cookies"
    ),
    "jwt_guard.mcp": "MAX_BODY_BYTES access_token get_principal protect require_scopes",
    "jwt_guard.testing": "FAULTS JWKSServer LocalIssuer compact dpop_jwk dpop_proof forge",
    "jwt_guard.providers": "auth0 cognito entra_id google keycloak okta",
    "jwt_guard.cli": "main",
    "jwt_guard.demo": "DemoIssuer build_app cross_site_app protect_api run",
    "jwt_guard.pytest_plugin": "jwt_issuer",
}


@pytest.mark.parametrize("module", sorted(PUBLIC_NAMES))
def test_public_names_stay(module: str) -> None:
    imported = importlib.import_module(module)
    names = PUBLIC_NAMES[module].split()
    missing = [name for name in names if not hasattr(imported, name)]
    assert missing == [], f"{module} lost public names"
    exported = getattr(imported, "__all__", None)
    if exported is not None:
        assert sorted(set(names) - set(exported)) == [], f"{module}.__all__ lost names"


_VERIFY_IN_A_FRESH_INTERPRETER = """
import asyncio, json, sys
import jwt_guard, jwt_guard.asgi, jwt_guard.wsgi, jwt_guard.fastapi, jwt_guard.flask
from jwt_guard import StaticKeys, Verifier

jwks, token, issuer, audience = json.loads(sys.stdin.read())
verifier = Verifier(
    keys=StaticKeys.from_jwks(jwks), algorithms=["ES256"], issuer=issuer, audience=audience
)
assert verifier.verify(token).subject == "fresh"
assert asyncio.run(verifier.averify(token)).subject == "fresh"

import io, os, tempfile
from jwt_guard.cli import main  # `jwt-guard verify` and `decode` stay off PyJWT too

with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "jwks.json")
    with open(path, "w") as fh:
        json.dump(jwks, fh)
    out = io.StringIO()
    argv = ["--jwks-file", path, "--algorithm", "ES256", "--issuer", issuer, "--audience", audience]
    assert main(["verify", token, *argv], stdout=out) == 0, out.getvalue()
    assert json.loads(out.getvalue())["valid"] is True
    assert main(["decode", token], stdout=io.StringIO()) == 0
loaded = lambda: sorted(m for m in sys.modules if m == "jwt" or m.startswith("jwt."))
print(json.dumps(loaded()))
import jwt_guard.testing  # the test kit mints with PyJWT: the check above can see it
print(json.dumps(loaded()[:1]))
"""


def test_verification_path_never_imports_pyjwt() -> None:
    # jwt_guard verifies with cryptography; PyJWT only makes tokens (testing, CLI keygen and
    # mint, demo). Checked with the library, the adapters and the CLI's verify and decode.
    from jwt_guard.testing import LocalIssuer

    issuer = LocalIssuer(algorithm="ES256")
    given = [issuer.jwks, issuer.mint(sub="fresh"), issuer.issuer, issuer.audience]
    result = subprocess.run(
        [sys.executable, "-c", _VERIFY_IN_A_FRESH_INTERPRETER],
        input=json.dumps(given),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    on_verify_path, with_test_kit = (json.loads(line) for line in result.stdout.splitlines())
    assert on_verify_path == []
    assert with_test_kit == ["jwt"]


def architecture_section(page: str) -> str:
    match = re.search(r"^# Architecture\n(.*?)(?=^# |\Z)", page, re.MULTILINE | re.DOTALL)
    assert match, "docs/architecture.md has no '# Architecture' page title"
    return match.group(1)


def architecture_modules(readme: str) -> dict[str, str]:
    """The modules the Architecture page lists (items "- `name`: its job"), each
    with the layer folder of the heading it is listed under ("**Core** (`_core/`): ...")."""
    listed: dict[str, str] = {}
    layer = ""
    for line in architecture_section(readme).splitlines():
        heading = re.match(r"^\*\*[^*]+\*\* \(`(_\w+)/`\)", line)
        if heading:
            layer = heading.group(1)
            continue
        item = re.match(r"^- `([\w.]+)`", line)
        if item:
            assert item.group(1) not in listed, f"{item.group(1)} is listed twice"
            listed[item.group(1)] = layer
    return listed


def test_readme_architecture_names_every_module_under_its_layer() -> None:
    listed = architecture_modules(ARCHITECTURE.read_text(encoding="utf-8"))
    modules = {
        name.removeprefix("jwt_guard.")
        for name in module_files(PACKAGE_DIR)
        if name != "jwt_guard"
        and not name.rpartition(".")[2].startswith("__")
        and name.removeprefix("jwt_guard.") not in LAYERS
    }
    assert sorted(modules - set(listed)) == [], "modules missing from docs/architecture.md"
    assert sorted(set(listed) - modules) == [], "docs/architecture.md names missing modules"
    wrong = sorted(m for m, layer in listed.items() if LAYERS[layer_of(f"jwt_guard.{m}")] != layer)
    assert wrong == [], "listed under another layer than the one it is in"
    # The headings go down the layers, as the imports do.
    headings = re.findall(
        r"^\*\*[^*]+\*\* \(`(_\w+)/`\)",
        architecture_section(ARCHITECTURE.read_text(encoding="utf-8")),
        re.MULTILINE,
    )
    assert headings == list(reversed(LAYERS))
