"""The README and the docs site run as written: every fenced Python block, the CLI lines, the
example commands, on every page (README.md and docs/**/*.md).

Blocks are read from the pages themselves (no copies). An HTML comment on the line before a
fence says how a block is run:

- ``<!-- readme-test: given=token -->``: the block may use ``token``, minted by an issuer that
  stands for ``https://idp.example.com/`` (audience ``orders-api``).
- ``<!-- readme-test: requests: GET /path ROLE STATUS; ... -->``: the block defines ``app``
  (or an app factory ``create_app()``, called with no argument), which then answers these
  requests (ROLE ``anonymous`` sends no token).
- ``<!-- readme-test: pytest -->``: the block is a test module, run by pytest with the plugin
  (five tests pass; ``pytest: N passed`` says how many).
- ``<!-- readme-test: env -->``: an ``export`` line whose variables the Python blocks run with.
- ``<!-- readme-test: cli -->``: shell lines run in order in an empty directory.
- ``<!-- readme-test: examples -->``: the commands that run the examples against the demo.
- ``<!-- readme-test: getting-started -->``: Getting started's walkthrough: the demo, the page's
  app, a token and three ``curl`` calls, whose answers and log lines the page shows.
- ``<!-- readme-test: skip (reason) -->``: a shell block that needs the outside world.
- ``<!-- readme-test: run-by tests/x.py (reason) -->``: a block another test runs (in its own
  process, say, because it sets process-wide state or listens on a port).

``json``, ``http`` and ``text`` blocks show answers, not code (a ``json`` one must parse); an
``nginx`` block is a configuration another test runs (``run-by``).

``https://idp.example.com`` is this machine's JWKS server: requests httpx sends to that host go
to a real :class:`JWKSServer` on 127.0.0.1 (only the address changes, nothing else).
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import json
import os
import re
import shlex
import subprocess
import sys
import textwrap
import time
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from jwt_guard import Verifier
from jwt_guard.demo import build_app
from jwt_guard.testing import JWKSServer, LocalIssuer

from .manual import README, pages
from .redis_server import free_port, redis_server
from .servers import run_uvicorn

ROOT = Path(__file__).resolve().parent.parent
IDP = "https://idp.example.com/"
_FENCE = re.compile(
    r"^(?:(?P<mindent>[ ]*)<!-- readme-test: (?P<marker>.*?) -->\n)?"
    r"(?P<indent>[ ]*)```(?P<lang>\w*)\n(?P<body>.*?)^(?P=indent)```\n",
    re.DOTALL | re.MULTILINE,
)


@dataclass(frozen=True)
class Block:
    lang: str
    marker: str
    body: str
    line: int
    page: Path = README

    @property
    def where(self) -> str:
        """The page, as the repository names it (``docs/guides/dpop.md``)."""
        return self.page.relative_to(ROOT).as_posix()

    @property
    def id(self) -> str:
        prefix = "" if self.page == README else f"{self.where}:"
        return f"{prefix}{self.lang}-line{self.line}"


def blocks() -> list[Block]:
    found = []
    for page in pages():
        text = page.read_text("utf-8")
        found += [
            Block(
                m["lang"],
                m["marker"] or "",
                textwrap.dedent(m["body"]),
                text.count("\n", 0, m.start("body")) + 1,
                page,
            )
            for m in _FENCE.finditer(text)
        ]
    return found


def blocks_marked(lang: str, marker: str = "") -> list[Block]:
    return [b for b in blocks() if b.lang == lang and b.marker.startswith(marker)]


PYTHON = blocks_marked("python")


def test_every_block_has_a_way_to_run() -> None:
    for block in blocks():
        assert block.lang in ("python", "bash", "json", "http", "text", "nginx"), block.id
        if block.lang == "bash":
            assert block.marker, f"{block.where}: the block at line {block.line} is not tested"
        elif block.lang == "nginx":  # a configuration a test runs (tests/nginx_server.py)
            assert block.marker.startswith("run-by "), block.id
        elif block.lang == "json":  # a shown answer: at least valid JSON
            json.loads(block.body)
    assert len(PYTHON) >= 6


@pytest.fixture(scope="module")
def idp_issuer() -> LocalIssuer:
    return LocalIssuer(issuer=IDP, audience="orders-api")


@pytest.fixture
def idp(idp_issuer: LocalIssuer, monkeypatch: pytest.MonkeyPatch) -> Iterator[JWKSServer]:
    """Route httpx requests for idp.example.com to a JWKS server on 127.0.0.1."""
    discovery = {
        "authorization_endpoint": IDP + "authorize",
        "token_endpoint": IDP + "token",
        "scopes_supported": ["orders:read", "orders:write"],
    }
    with JWKSServer(lambda: idp_issuer.jwks, issuer=IDP, discovery=discovery) as server:
        local = httpx.URL(server.base_url)

        def rewrite(request: httpx.Request) -> None:
            if request.url.host == "idp.example.com":
                path = {"/.well-known/jwks.json": "/jwks.json"}.get(request.url.path)
                request.url = request.url.copy_with(
                    scheme="http", host=local.host, port=local.port, path=path or request.url.path
                )

        sync_send = httpx.HTTPTransport.handle_request
        async_send = httpx.AsyncHTTPTransport.handle_async_request

        def handle(self: httpx.HTTPTransport, request: httpx.Request) -> httpx.Response:
            rewrite(request)
            return sync_send(self, request)

        async def ahandle(self: httpx.AsyncHTTPTransport, request: httpx.Request) -> httpx.Response:
            rewrite(request)
            return await async_send(self, request)

        monkeypatch.setattr(httpx.HTTPTransport, "handle_request", handle)
        monkeypatch.setattr(httpx.AsyncHTTPTransport, "handle_async_request", ahandle)
        yield server


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


def readme_env() -> dict[str, str]:
    """The variables of the README's ``export`` line for the snippets."""
    (block,) = blocks_marked("bash", "env")
    words = shlex.split(block.body)
    assert words[0] == "export"
    return dict(word.split("=", 1) for word in words[1:])


def parse_requests(marker: str) -> list[tuple[str, str, str, int]]:
    spec = marker.removeprefix("requests:").strip()
    parsed = []
    for item in spec.split(";"):
        method, path, role, status = item.split()
        parsed.append((method, path, role, int(status)))
    return parsed


async def exercise(app: Any, issuer: LocalIssuer, marker: str) -> None:
    if hasattr(app, "wsgi_app"):  # Flask
        client: Any = httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://t")
    else:
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
    try:
        for method, path, role, status in parse_requests(marker):
            headers = {}
            if role != "anonymous":
                headers["Authorization"] = f"Bearer {issuer.mint(sub=role, roles=[role])}"
            response = client.request(method, path, headers=headers)
            if inspect.isawaitable(response):
                response = await response
            assert response.status_code == status, (method, path, role, response.text)
    finally:
        closed = client.aclose() if isinstance(client, httpx.AsyncClient) else client.close()
        if inspect.isawaitable(closed):
            await closed


@pytest.mark.parametrize(
    "block",
    [b for b in PYTHON if not b.marker.startswith(("pytest", "run-by "))],
    ids=lambda b: b.id,
)
def test_python_block(
    block: Block,
    idp: JWKSServer,
    idp_issuer: LocalIssuer,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in readme_env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("SHARED_CACHE_KEY", "readme-" + "k" * 32)  # RedisCache's integrity key
    made: list[Verifier] = []
    init = Verifier.__init__

    def recording_init(self: Verifier, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(Verifier, "__init__", recording_init)
    # A real module, as dataclasses and pickling look the defining module up.
    slug = re.sub(r"\W", "_", block.where.removesuffix(".md"))
    module = types.ModuleType(f"{slug}_line{block.line}")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    namespace: dict[str, Any] = module.__dict__
    if "given=token" in block.marker:
        namespace["token"] = idp_issuer.mint(sub="alice", roles=["admin"])
    code = compile(
        block.body, f"{block.where}:{block.line}", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    )

    # Outside any event loop, as `python example.py` runs it: a block may call asyncio.run()
    # itself. A block with a top-level await (a fragment "in async code") gives a coroutine,
    # awaited below.
    async def close() -> None:
        for verifier in made:  # the snippets leave their clients open, as apps do
            await verifier.aclose()
            verifier.close()
            denylist: Any = verifier.denylist
            if hasattr(denylist, "aclose"):
                await denylist.aclose()
                denylist.close()

    try:
        result = eval(code, namespace)  # noqa: S307 - the manual's own code, as written
    except BaseException:
        asyncio.run(close())
        raise

    async def run() -> None:
        try:
            if inspect.isawaitable(result):
                await result
            if block.marker.startswith("requests:"):
                app = namespace["app"] if "app" in namespace else namespace["create_app"]()
                await exercise(app, idp_issuer, block.marker)
        finally:
            await close()

    asyncio.run(run())
    if block.marker:
        assert made and idp.count >= 1  # the keys really came over HTTP


def run(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.parametrize("block", blocks_marked("python", "pytest"), ids=lambda b: b.id)
def test_pytest_block(block: Block, tmp_path: Path) -> None:
    (tmp_path / "test_from_readme.py").write_text(block.body)
    # Its own config, whatever the directory above: warnings are errors, as in this suite (a
    # block under the repository would read its pyproject, elsewhere none).
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nfilterwarnings = error\nasyncio_default_fixture_loop_scope = function\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)]
    result = run(argv, tmp_path, env)
    assert result.returncode == 0, result.stdout + result.stderr
    passed = block.marker.partition(":")[2].strip() or "5 passed"
    assert re.search(rf"\b{passed}\b", result.stdout), result.stdout


@pytest.fixture
def jwt_guard_on_path(tmp_path: Path) -> dict[str, str]:
    """An environment where ``jwt-guard`` is this checkout's command."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "jwt-guard"
    script.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m jwt_guard "$@"\n')
    script.chmod(0o755)
    return {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(ROOT),
    }


def test_cli_lines_work_together(tmp_path: Path, jwt_guard_on_path: dict[str, str]) -> None:
    (block,) = blocks_marked("bash", "cli")
    work = tmp_path / "work"
    work.mkdir()
    result = run(["bash", "-euo", "pipefail", "-c", block.body], work, jwt_guard_on_path)
    assert result.returncode == 0, result.stderr
    verified = [line for line in result.stdout.splitlines() if line.startswith('{"claims"')]
    assert len(verified) == 2 and all('"valid": true' in v for v in verified), result.stdout
    assert '"roles": ["admin"]' in verified[0]
    assert "NOT VERIFIED" in result.stdout
    assert textwrap.dedent(block.body).count("jwt-guard ") == 10
    # The mTLS lines: a client certificate and a token bound to it, verified with it (RFC 8705).
    lines = result.stdout.splitlines()
    made = json.loads(next(line for line in lines if line.startswith('{"certificate"')))
    assert f'"cnf": {{"x5t#S256": "{made["x5t#S256"]}"}}' in verified[1]
    # The DPoP lines: a bound token and a proof for it (RFC 9449).
    bound = (work / "bound.txt").read_text().strip()
    proof = result.stdout.strip().splitlines()[-1]
    assert proof.count(".") == 2 and proof != bound


def test_dpop_walkthrough_runs_against_the_demo(
    tmp_path: Path, jwt_guard_on_path: dict[str, str]
) -> None:
    """The DPoP section's curl + CLI walkthrough, run by bash against a real demo server."""
    (block,) = blocks_marked("bash", "dpop")
    lines = block.body.splitlines()
    assert lines[0].startswith("jwt-guard demo --port 8000 &")
    assert "API=http://127.0.0.1:8000" in lines
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    script = "\n".join(lines[1:]).replace("API=http://127.0.0.1:8000", f"API={base}")
    with run_uvicorn(build_app(base), port=port):
        result = run(["bash", "-euo", "pipefail", "-c", script], tmp_path, jwt_guard_on_path)
    assert result.returncode == 0, result.stderr
    answers = result.stdout.strip().splitlines()
    assert len(answers) == 3, result.stdout
    assert answers[0].endswith(" 200") and '"sub":"alice"' in answers[0]
    assert answers[1].endswith(" 401") and '"code":"dpop_proof_replayed"' in answers[1]
    assert answers[2].endswith(" 401") and '"code":"dpop_bound_token_as_bearer"' in answers[2]


MISSING_EXTRAS = [
    # (module made unimportable, the code a user runs, the extra the message must name)
    ("fastapi", "import jwt_guard.fastapi", "fastapi"),
    ("flask", "import jwt_guard.flask", "flask"),
    ("mcp", "import jwt_guard.mcp", "mcp"),
    ("redis", "from jwt_guard import RedisDenylist; RedisDenylist('redis://localhost')", "redis"),
    ("uvicorn", "from jwt_guard.cli import main; main(['demo', '--port', '0'])", "demo"),
]


@pytest.mark.parametrize(("module", "code", "extra"), MISSING_EXTRAS)
def test_a_missing_extra_names_the_install_command(module: str, code: str, extra: str) -> None:
    # sys.modules[name] = None makes "import name" fail as on an install without the extra.
    program = f"import sys; sys.modules[{module!r}] = None\n{code}"
    result = run([sys.executable, "-c", program], ROOT, {**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode != 0
    # This checkout's .venv installs it with `pip install -e .`: the line names the clone.
    assert f'pip install -e "{ROOT}[{extra}]"' in result.stderr, result.stderr
    if module == "uvicorn":  # the CLI says it in one line, without a traceback
        assert "Traceback" not in result.stderr and result.returncode == 2
    else:
        assert "ImportError" in result.stderr.splitlines()[-1] or "MissingExtra" in result.stderr


@pytest.mark.parametrize(
    ("recorded", "line"),
    [
        (
            '{"url": "file:///src/jwt%20guard", "dir_info": {"editable": true}}',
            'pip install -e "/src/jwt guard[redis]"',
        ),
        ('{"url": "file:///src/jwt_guard", "dir_info": {}}', 'pip install "/src/jwt_guard[redis]"'),
        (None, 'pip install "jwt_guard[redis]"'),  # from the package index: no direct_url.json
        (
            '{"url": "https://example.com/jwt_guard-0.1.0.tar.gz", "archive_info": {}}',
            'pip install "jwt_guard[redis]"',
        ),
        ("not json", 'pip install "jwt_guard[redis]"'),
        ('{"url": 42}', 'pip install "jwt_guard[redis]"'),
        ("[]", 'pip install "jwt_guard[redis]"'),
    ],
)
def test_the_install_line_names_where_jwt_guard_was_installed_from(
    monkeypatch: pytest.MonkeyPatch, recorded: str | None, line: str
) -> None:
    # PEP 610: pip records a directory install in direct_url.json. jwt_guard is not on the
    # package index, so `pip install "jwt_guard[x]"` after `pip install -e .` would ask the index
    # for a name this project does not own; the hint names the clone instead.
    from importlib import metadata

    from jwt_guard._core import extras

    class Installed:
        def read_text(self, name: str) -> str | None:
            assert name == "direct_url.json"
            return recorded

    class EggInfo:  # an old setuptools build's metadata in the clone: no direct_url.json
        def read_text(self, name: str) -> str | None:
            return None

    monkeypatch.setattr(metadata, "distributions", lambda name: [EggInfo(), Installed()])
    assert extras.install_line("redis") == line
    assert line in str(extras.MissingExtra("a shared cache", "redis", "redis"))


def wait_for(url: str, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(url).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            out, err = proc.communicate(timeout=5) if proc.poll() is not None else ("", "")
            raise AssertionError(f"{proc.args} did not start: {out}{err}")
        time.sleep(0.1)


def test_example_commands_run_against_the_demo() -> None:
    (block,) = blocks_marked("bash", "examples")
    lines = [line.split("  #")[0].strip() for line in block.body.splitlines()]
    demo_line, export_line, *commands = [line for line in lines if line]
    assert shlex.split(demo_line) == ["jwt-guard", "demo", "--port", "8000", "&"]
    demo_port = free_port()
    base = f"http://127.0.0.1:{demo_port}"
    words = shlex.split(export_line.replace(":8000", f":{demo_port}"))
    assert words[0] == "export"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.update(word.split("=", 1) for word in words[1:])
    assert len(commands) == 3
    with run_uvicorn(build_app(base), port=demo_port):
        alice = httpx.post(
            f"{base}/token",
            data={"grant_type": "password", "username": "alice", "password": "alice"},
        ).json()["access_token"]
        bob = httpx.post(
            f"{base}/token", data={"grant_type": "password", "username": "bob", "password": "bob"}
        ).json()["access_token"]
        for command in commands:
            argv = shlex.split(command)
            assert argv[0] in ("uvicorn", "flask") and argv[-2] == "--port"
            port = free_port()
            argv[-1] = str(port)
            proc = subprocess.Popen(
                [sys.executable, "-m", *argv],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            try:
                api = f"http://127.0.0.1:{port}"
                wait_for(f"{api}/health", proc)
                me = httpx.get(f"{api}/api/me", headers={"Authorization": f"Bearer {alice}"})
                assert me.status_code == 200 and me.json()["sub"] == "alice", command
                assert httpx.get(f"{api}/api/me").status_code == 401
                bob_admin = httpx.get(
                    f"{api}/api/admin", headers={"Authorization": f"Bearer {bob}"}
                )
                assert bob_admin.status_code == 403, command
                if "fastapi" in command:  # /docs logs in at the demo (tests/test_browser.py)
                    schemes = httpx.get(f"{api}/openapi.json").json()["components"]
                    flow = schemes["securitySchemes"]["OAuth2"]["flows"]["authorizationCode"]
                    assert flow["tokenUrl"] == f"{base}/token"
                    assert httpx.get(f"{api}/docs").status_code == 200
            finally:
                proc.terminate()
                _, err = proc.communicate(timeout=30)
            # Issue 25: the example configures logging, so the reason for bob's 403 is in the
            # terminal (under plain uvicorn or flask run it went nowhere).
            assert "INFO jwt_guard: refused insufficient_role (403): " in err, command


def test_getting_started_walkthrough_runs_as_written(tmp_path: Path) -> None:
    """Getting started's five minutes, as a newcomer types them: the demo, the page's app saved
    as ``main.py`` and served by uvicorn, a token from the demo, then ``curl`` with it, without
    one and with a damaged one; the page's 401 and the log lines it shows are what they print."""
    (block,) = blocks_marked("bash", "getting-started")
    page = block.page
    (app,) = [b for b in PYTHON if b.page == page and b.marker.startswith("requests:")]
    (main := tmp_path / "main.py").write_text(app.body)
    lines = [line for line in block.body.splitlines() if line.strip()]
    assert lines[0] == "jwt-guard demo --port 8000 &"
    assert lines[2] == "uvicorn --factory main:create_app --port 8001 &"
    demo_port, app_port = free_port(), free_port()

    def ports(text: str) -> str:
        return text.replace(":8000", f":{demo_port}").replace(":8001", f":{app_port}")

    words = shlex.split(ports(lines[1]))
    assert words[0] == "export"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.update(word.split("=", 1) for word in words[1:])
    base = f"http://127.0.0.1:{demo_port}"
    with run_uvicorn(build_app(base), port=demo_port):
        argv = [*shlex.split(lines[2])[:-3], "--port", str(app_port)]
        proc = subprocess.Popen(
            [sys.executable, "-m", *argv],
            cwd=main.parent,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            wait_for(f"http://127.0.0.1:{app_port}/health", proc)
            result = run(
                ["bash", "-euo", "pipefail", "-c", ports("\n".join(lines[3:]))], tmp_path, env
            )
        finally:
            proc.terminate()
            _, err = proc.communicate(timeout=30)
    assert result.returncode == 0, result.stderr
    out = result.stdout.replace("\r\n", "\n")
    assert out.startswith('{"sub":"alice"}\n'), out
    # The page's 401: its status line, headers and body, as the request without a token gets it.
    (shown,) = [b.body for b in blocks_marked("http") if b.page == page]
    head, _, body = shown.strip().partition("\n\n")
    for line in head.splitlines():
        assert f"{line}\n" in out, line
    assert f"\n{body}\n" in out
    assert ', error="invalid_token", ' in out and '"code":"token_malformed"' in out
    # The reasons the page shows are the ones the app's terminal printed.
    (logged,) = [b.body for b in blocks_marked("text") if b.page == page]
    for line in logged.splitlines():
        assert line in err, (line, err)


def _section_block(heading: str) -> Block:
    """The first Python block that builds an app (a ``requests:`` one) under ``heading``, on
    the page that has it."""
    for page in pages():
        text = page.read_text("utf-8")
        match = re.search(rf"^#+ {re.escape(heading)}\n", text, re.MULTILINE)
        if match:
            start = text.count("\n", 0, match.start()) + 2
            return next(
                b
                for b in PYTHON
                if b.page == page and b.line > start and b.marker.startswith("requests:")
            )
    raise AssertionError(f"no page has the heading {heading!r}")


@pytest.mark.parametrize(
    "heading",
    ["Starlette", "FastAPI", "A login in `/docs`", "Flask (and any WSGI app)"],
)
def test_issue25_2_readme_snippets_that_run_an_app_configure_logging(heading: str) -> None:
    """Issue 25 item 2: "README snippets that run an app configure logging", as the examples
    do: under plain uvicorn or flask run, jwt_guard's INFO reasons go nowhere otherwise. The
    /docs login's block built its app at import, too: an app factory now, like FastAPI's."""
    block = _section_block(heading)
    tree = ast.parse(block.body)
    calls = {ast.unparse(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)}
    assert "logging.basicConfig" in calls, block.id
    if "FastAPI" in block.body:
        top = {
            target.id
            for node in tree.body
            if isinstance(node, ast.Assign)
            for target in node.targets
            if isinstance(target, ast.Name)
        }
        functions = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
        assert "app" not in top and "create_app" in functions, block.id
