"""The docs site (mkdocs.yml, docs/): it builds with ``--strict`` and offline, its reference shows
every public name, its tables are the code's, and the public docstrings are in one style. Its
examples run in tests/test_readme.py with the README's."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import itertools
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import jwt_guard

from .manual import README
from .test_structure import PUBLIC_NAMES

ROOT = Path(__file__).resolve().parent.parent


def tables_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_tables", ROOT / "scripts/docs/tables.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def public_names(module: str) -> list[str]:
    imported = importlib.import_module(module)
    return sorted(set(PUBLIC_NAMES[module].split()) | set(getattr(imported, "__all__", ())))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site as ``mkdocs build --strict`` makes it, with every proxy pointing at a closed
    port: a plugin that fetched anything at build time would fail it."""
    out = tmp_path_factory.mktemp("site")
    closed = "http://127.0.0.1:9"
    env = {
        **os.environ,
        "HTTP_PROXY": closed,
        "HTTPS_PROXY": closed,
        "ALL_PROXY": closed,
        "NO_PROXY": "",
        "NO_MKDOCS_2_WARNING": "1",
    }
    argv = [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)]
    result = subprocess.run(
        argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def public_members(cls: type) -> list[str]:
    """The public methods and properties ``cls`` defines itself."""
    kinds = (property, staticmethod, classmethod)
    return [
        name
        for name, value in vars(cls).items()
        if not name.startswith("_") and (isinstance(value, kinds) or inspect.isfunction(value))
    ]


@pytest.mark.parametrize("module", sorted(PUBLIC_NAMES))
def test_the_reference_shows_every_public_name(site: Path, module: str) -> None:
    page = "jwt_guard" if module == "jwt_guard" else module.removeprefix("jwt_guard.")
    html = (site / "reference" / page / "index.html").read_text("utf-8")
    imported = importlib.import_module(module)
    names = []
    for name in public_names(module):
        names.append(name)
        obj = getattr(imported, name)
        if inspect.isclass(obj):
            names += [f"{name}.{member}" for member in public_members(obj)]
    missing = [name for name in names if f'id="{module}.{name}"' not in html]
    assert missing == [], f"docs/reference/{page}.md does not show them (no docstring?)"


def test_the_site_has_the_generated_tables(site: Path) -> None:
    errors = (site / "reference" / "errors" / "index.html").read_text("utf-8")
    for cls in (jwt_guard.TokenExpired, jwt_guard.DPoPNonceRequired, jwt_guard.TooManyRequests):
        assert f'href="../jwt_guard/#jwt_guard.{cls.__name__}"' in errors
        assert f"<code>{cls.code}</code>" in errors
    configuration = (site / "reference" / "configuration" / "index.html").read_text("utf-8")
    assert "<code>JWT_GUARD_ALGORITHMS</code>" in configuration


def test_the_reference_shows_no_rest_markup(site: Path) -> None:
    """Docstrings are written for help() too, with Sphinx roles and reST's ``::`` before an
    example; the site shows links, inline code and a colon instead."""
    for page in sorted((site / "reference").glob("*/index.html")):
        html = page.read_text("utf-8")
        for markup in ("::</p>", ":class:", ":meth:", ":func:", "``"):
            assert markup not in html, (page.parent.name, markup)
    # A role naming one of its own module's public names links to it (":class:`LocalIssuer`").
    testing = (site / "reference" / "testing" / "index.html").read_text("utf-8")
    assert 'title="LocalIssuer" href="#jwt_guard.testing.LocalIssuer"' in testing


def test_generated_tables_are_current() -> None:
    assert tables_script().main(["--check"]) == 0, "run .venv/bin/python scripts/docs/tables.py"


def test_error_table_follows_the_tree(monkeypatch: pytest.MonkeyPatch) -> None:
    tables = tables_script()
    table = tables.error_table()
    for name in jwt_guard.__all__:
        obj = getattr(jwt_guard, name)
        if inspect.isclass(obj) and issubclass(obj, jwt_guard.JWTGuardError):
            assert f"[`{name}`][jwt_guard.{name}]" in table
    # A code the package raises a class with (ClaimInvalid(code="auth_time_in_future")).
    assert "`claim_invalid`, `auth_time_in_future`" in table
    # A new public error class shows up without anyone editing the page.

    class NewlyAdded(jwt_guard.InvalidToken):
        code = "newly_added"

    monkeypatch.setattr(NewlyAdded, "__module__", "jwt_guard._core.errors")
    monkeypatch.setattr(jwt_guard, "__all__", [*jwt_guard.__all__, "NewlyAdded"])
    assert "[`NewlyAdded`][jwt_guard.NewlyAdded] | 401 | `invalid_token` | `newly_added`" in (
        tables.error_table()
    )


def test_env_table_names_every_variable_read(monkeypatch: pytest.MonkeyPatch) -> None:
    tables = tables_script()
    table = tables.env_table()
    from jwt_guard._sources.config import ENV_NAMES
    from jwt_guard.flask import MIDDLEWARE_KEYS

    for name in (*ENV_NAMES, *MIDDLEWARE_KEYS):
        assert f"| `JWT_GUARD_{name}` |" in table
    # A variable added to the code without a meaning stops the script, naming it.
    monkeypatch.setattr(tables, "ENV_NAMES", (*ENV_NAMES, "NEW_SETTING"))
    with pytest.raises(SystemExit, match="add \\['NEW_SETTING'\\]"):
        tables.env_table()


def docstring_problem(obj: Any) -> str | None:
    """What keeps ``obj``'s docstring from the house style: a summary of one line ending with a
    full stop, then (optionally) a blank line and the details."""
    doc = inspect.getdoc(obj) if (inspect.isclass(obj) or inspect.isroutine(obj)) else None
    if not doc:
        return "no docstring"
    summary, _, rest = doc.partition("\n")
    if rest and not rest.startswith("\n"):
        return f"the summary runs on: {summary!r}"
    if not summary.rstrip().endswith((".", "?")):
        return f"the summary does not end with a full stop: {summary!r}"
    return None


@pytest.mark.parametrize("module", sorted(PUBLIC_NAMES))
def test_public_docstrings_are_one_line_then_details(module: str) -> None:
    imported = importlib.import_module(module)
    problems = {}
    for name in public_names(module):
        obj = getattr(imported, name)
        if inspect.isclass(obj) or inspect.isroutine(obj):
            problems[name] = docstring_problem(obj)
        if inspect.isclass(obj):
            for member in public_members(obj):
                value = inspect.getattr_static(obj, member)
                value = value.fget if isinstance(value, property) else value
                value = getattr(value, "__func__", value)
                problems[f"{name}.{member}"] = docstring_problem(inspect.unwrap(value))
    assert {name: problem for name, problem in problems.items() if problem} == {}


def test_docstring_style_check() -> None:
    def good() -> None:
        """One line.

        Details.
        """

    def runs_on() -> None:
        """One line
        that runs on."""

    assert docstring_problem(good) is None
    assert docstring_problem(runs_on) == "the summary runs on: 'One line'"
    assert docstring_problem(lambda: None) == "no docstring"


def headings(text: str) -> list[tuple[int, str]]:
    """A Markdown page's headings, in order, as (level, title); fenced blocks' comment lines
    are no headings."""
    found = []
    fence = False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fence = not fence
        elif not fence and (match := re.match(r"^(#{1,6}) (.*)", line)):
            found.append((len(match.group(1)), match.group(2).strip()))
    return found


def heading_anchors(text: str) -> set[str]:
    """The anchors of a Markdown page's headings as GitHub makes them; the site's
    (Python-Markdown's) are the same for these headings."""
    anchors = set()
    for _, title in headings(text):
        words = title.replace("`", "").lower()
        anchors.add(re.sub(r"[^\w\- ]", "", words).replace(" ", "-"))
    return anchors


@pytest.mark.parametrize(
    "page", sorted((ROOT / "docs").rglob("*.md")), ids=lambda p: p.relative_to(ROOT).as_posix()
)
def test_each_page_is_one_title_then_sections(page: Path) -> None:
    """A page of the site starts with its one ``#`` title (after any front matter), and its
    sections go down one level at a time: no cut-up README's second title or stray ``####``."""
    text = re.sub(r"\A---\n.*?\n---\n", "", page.read_text("utf-8"), flags=re.DOTALL)
    assert text.lstrip().startswith("# "), "the page does not start with its title"
    levels = [level for level, _ in headings(text)]
    assert levels.count(1) == 1, "more than one # title"
    jumps = [(a, b) for a, b in itertools.pairwise(levels) if b > a + 1]
    assert jumps == [], "a heading skips a level"


def broken_links(page: Path) -> list[str]:
    """The links of ``page`` to a file that is not there, or to an anchor its page lacks."""
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text("utf-8")):
        if target.startswith(("http://", "https://")):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        missing = not linked.exists()
        if missing or (anchor and anchor not in heading_anchors(linked.read_text("utf-8"))):
            broken.append(target)
    return broken


def test_the_readme_is_a_landing_page_whose_links_resolve() -> None:
    text = README.read_text("utf-8")
    assert len(text.splitlines()) < 200
    assert broken_links(README) == []
    # It links into every part of the docs site.
    for page in ("getting-started.md", "guides/fastapi.md", "reference/index.md"):
        assert f"](docs/{page}" in text, page


def test_broken_links_finds_a_missing_file_and_a_missing_anchor(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "guide.md").write_text("# Guide\n\n## A `code` heading\n")
    page = tmp_path / "README.md"
    page.write_text(
        "# Title\n\n```bash\n# not a heading\n```\n"
        "[ok](docs/guide.md#a-code-heading) [ok](#title) [web](https://example.com/#x)\n"
        "[gone](docs/nothing.md) [no anchor](docs/guide.md#guide-2) [here](#not-a-heading)\n"
    )
    assert broken_links(page) == ["docs/nothing.md", "docs/guide.md#guide-2", "#not-a-heading"]
