"""The package's layout: no import cycles between its modules, a README that names them, and
PyJWT off the verify path."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

import jwt_guard

PACKAGE_DIR = Path(jwt_guard.__file__).parent
README = PACKAGE_DIR.parent / "README.md"


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


def architecture_modules(readme: str) -> list[str]:
    """The modules the README's "Architecture" section lists (items "- `name`: its job")."""
    match = re.search(r"^## Architecture\n(.*?)(?=^## |\Z)", readme, re.MULTILINE | re.DOTALL)
    assert match, "the README has no '## Architecture' section"
    return re.findall(r"^- `([\w.]+)`", match.group(1), re.MULTILINE)


def test_readme_architecture_names_every_module() -> None:
    listed = architecture_modules(README.read_text(encoding="utf-8"))
    modules = {path.stem for path in PACKAGE_DIR.glob("*.py") if not path.stem.startswith("__")}
    assert sorted(modules - set(listed)) == [], "modules missing from README's Architecture"
    assert sorted(set(listed) - modules) == [], "README's Architecture names missing modules"
    assert len(listed) == len(set(listed)), "a module is listed twice"
