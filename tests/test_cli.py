"""The jwt-guard command: exit codes, JSON output, bad input."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from jwt_guard.cli import main
from jwt_guard.testing import JWKSServer, LocalIssuer


def run(*argv: str, stdin: str = "") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        code = main(list(argv), stdin=io.StringIO(stdin), stdout=out, stderr=err)
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def keydir(tmp_path: Path) -> Path:
    code, out, _ = run("keygen", "--alg", "ES256", "--kid", "cli-1", "--out", str(tmp_path))
    assert code == 0 and json.loads(out)["kid"] == "cli-1"
    return tmp_path


def mint(keydir: Path, *extra: str, iss: str = "https://iss") -> str:
    code, out, _ = run(
        "mint",
        "--key",
        str(keydir / "private.pem"),
        "--alg",
        "ES256",
        "--kid",
        "cli-1",
        "--iss",
        iss,
        "--aud",
        "api",
        "--sub",
        "alice",
        *extra,
    )
    assert code == 0
    return out.strip()


def test_keygen_writes_private_key_0600_and_jwks(keydir: Path) -> None:
    mode = stat.S_IMODE(os.stat(keydir / "private.pem").st_mode)
    assert mode == 0o600
    jwks = json.loads((keydir / "jwks.json").read_text())
    assert jwks["keys"][0]["kid"] == "cli-1" and "d" not in jwks["keys"][0]
    assert b"PRIVATE" not in (keydir / "public.pem").read_bytes()


@pytest.mark.parametrize("alg", ["RS256", "PS256", "ES384", "ES512", "EdDSA", "Ed25519", "Ed448"])
def test_keygen_mint_verify_each_algorithm(tmp_path: Path, alg: str) -> None:
    assert run("keygen", "--alg", alg, "--kid", "k", "--out", str(tmp_path))[0] == 0
    code, token, _ = run(
        "mint", "--key", str(tmp_path / "private.pem"), "--alg", alg, "--kid", "k", "--sub", "s"
    )
    assert code == 0
    code, out, _ = run(
        "verify", token.strip(), "--jwks-file", str(tmp_path / "jwks.json"), "--algorithm", alg
    )
    assert code == 0 and json.loads(out)["valid"] is True


def test_verify_valid_token_prints_claims_and_header(keydir: Path) -> None:
    token = mint(keydir, "--claim", 'roles=["admin"]', "--claim", "tenant=acme", "--ttl", "15m")
    code, out, err = run(
        "verify",
        token,
        "--jwks-file",
        str(keydir / "jwks.json"),
        "--algorithm",
        "ES256",
        "--issuer",
        "https://iss",
        "--audience",
        "api",
    )
    assert code == 0 and err == ""
    result = json.loads(out)
    assert result["valid"] is True
    assert result["claims"]["roles"] == ["admin"] and result["claims"]["tenant"] == "acme"
    assert result["claims"]["exp"] - result["claims"]["iat"] == 900
    assert result["header"] == {"alg": "ES256", "kid": "cli-1", "typ": "JWT"}


def test_verify_batch_from_stdin_exit_1_when_any_invalid(keydir: Path) -> None:
    good = mint(keydir)
    expired = mint(keydir, "--ttl", "0")
    lines = "\n".join([good, "not-a-token", expired, ""]) + "\n"
    code, out, _ = run(
        "verify",
        "-",
        "--key",
        str(keydir / "public.pem"),
        "--algorithm",
        "ES256",
        "--audience",
        "api",
        "--leeway",
        "0",
        stdin=lines,
    )
    results = [json.loads(line) for line in out.splitlines()]
    assert code == 1
    assert [r["valid"] for r in results] == [True, False, False]
    assert results[1] == {
        "valid": False,
        "code": "token_malformed",
        "error": "invalid_token",
        "description": "The access token is malformed.",
    }
    assert results[2]["code"] == "token_expired"


def test_verify_against_a_jwks_url(keydir: Path) -> None:
    jwks = json.loads((keydir / "jwks.json").read_text())
    with JWKSServer(jwks) as server:
        code, out, _ = run(
            "verify",
            mint(keydir),
            "--jwks-url",
            server.url,
            "--algorithm",
            "ES256",
            "--audience",
            "api",
        )
    assert code == 0 and json.loads(out)["valid"]


def test_verify_with_oidc_discovery(keydir: Path) -> None:
    jwks = json.loads((keydir / "jwks.json").read_text())
    with JWKSServer(jwks, issuer=None) as server:
        token = mint(keydir, iss=server.base_url)
        code, out, _ = run(
            "verify",
            token,
            "--discover",
            server.base_url,
            "--issuer",
            server.base_url,
            "--algorithm",
            "ES256",
            "--audience",
            "api",
        )
        assert server.requests["/.well-known/openid-configuration"] == 1
    assert code == 0 and json.loads(out)["valid"]


def test_verify_with_hmac_secret_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import jwt

    secret = "s" * 32
    monkeypatch.setenv("MY_SECRET", secret)
    token = jwt.encode({"exp": 4_000_000_000}, secret, algorithm="HS256")
    code, out, _ = run("verify", token, "--secret-env", "MY_SECRET", "--algorithm", "HS256")
    assert code == 0 and json.loads(out)["valid"]
    monkeypatch.setenv("MY_SECRET", "short")
    code, _, err = run("verify", token, "--secret-env", "MY_SECRET", "--algorithm", "HS256")
    assert code == 2 and "32 bytes" in err


@pytest.mark.parametrize(
    "argv,message",
    [
        (["verify", "x", "--algorithm", "ES256"], "exactly one key source"),
        (["verify", "x", "--jwks-file", "/nonexistent.json", "--algorithm", "ES256"], "JWKS"),
        (["verify", "x", "--key", "/nonexistent.pem", "--algorithm", "ES256"], "cannot read"),
        (["verify", "x", "--jwks-url", "http://idp.example/j", "--algorithm", "RS256"], "https"),
        (["verify", "x", "--secret-env", "UNSET_VAR_X", "--algorithm", "HS256"], "not set"),
        (["decode", "garbage"], "not a compact JWS"),
        (["mint", "--key", "/nonexistent", "--alg", "ES256"], "cannot read"),
    ],
)
def test_usage_errors_exit_2_with_message(argv: list[str], message: str) -> None:
    code, out, err = run(*argv)
    assert code == 2
    assert message in err and out == ""


def test_verify_requires_algorithm(keydir: Path) -> None:
    code, _, err = run("verify", "x", "--jwks-file", str(keydir / "jwks.json"))
    assert code == 2 and "--algorithm" in err


def test_argparse_errors_exit_2() -> None:
    assert run("verify", "--algorithm", "none")[0] == 2
    assert run("frobnicate")[0] == 2
    assert run("mint", "--key", "k", "--alg", "ES256", "--ttl", "soon")[0] == 2


def test_decode_is_labelled_not_verified_and_warns(keydir: Path) -> None:
    from jwt_guard.testing import compact

    token = compact(
        {"alg": "none", "jku": "https://evil.example/jwks"}, {"sub": "x", "iat": 1}, b""
    )
    token += "x"  # a non-empty signature segment
    code, out, _ = run("decode", token)
    assert code == 0
    assert out.startswith("*** NOT VERIFIED")
    assert "alg is 'none'" in out and "no exp claim" in out and "'jku'" in out
    assert "iat: 1970-01-01T00:00:01+00:00" in out
    code, out, _ = run("decode", mint(keydir, "--ttl", "0"))
    assert "warning: expired" in out


def test_python_dash_m_and_console_script(keydir: Path) -> None:
    token = mint(keydir)
    args = [
        "verify",
        token,
        "--jwks-file",
        str(keydir / "jwks.json"),
        "--algorithm",
        "ES256",
        "--audience",
        "api",
    ]
    module = subprocess.run(
        [sys.executable, "-m", "jwt_guard", *args], capture_output=True, text=True, check=False
    )
    assert module.returncode == 0 and json.loads(module.stdout)["valid"]
    script = Path(sys.executable).parent / "jwt-guard"
    if script.exists():
        console = subprocess.run([str(script), *args], capture_output=True, text=True, check=False)
        assert console.returncode == 0
    bad = subprocess.run(
        [sys.executable, "-m", "jwt_guard", "verify", token, "--algorithm", "ES256"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2 and "key source" in bad.stderr


def test_issuer_fixture_unused_is_fine(issuer: LocalIssuer) -> None:
    # The CLI verifies what the library issues.
    token = issuer.mint()
    assert token.count(".") == 2


def test_keygen_refuses_hmac_and_bad_paths(tmp_path: Path) -> None:
    assert run("keygen", "--alg", "HS256", "--out", str(tmp_path))[0] == 2
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = run("keygen", "--alg", "ES256", "--out", str(blocker / "sub"))
    assert code == 2 and "cannot write" in err


def test_mint_refuses_a_key_that_does_not_fit(keydir: Path) -> None:
    code, _, err = run("mint", "--key", str(keydir / "private.pem"), "--alg", "RS256")
    assert code == 2 and "does not fit" in err
    code, _, err = run("mint", "--key", str(keydir / "jwks.json"), "--alg", "ES256")
    assert code == 2 and "PEM private key" in err
    code, _, err = run(
        "mint", "--key", str(keydir / "private.pem"), "--alg", "ES256", "--claim", "novalue"
    )
    assert code == 2 and "name=value" in err


@pytest.mark.parametrize(("made", "named"), [("Ed448", "Ed25519"), ("Ed25519", "Ed448")])
def test_rfc9864_mint_refuses_a_key_on_the_other_curve(
    tmp_path: Path, made: str, named: str
) -> None:
    assert run("keygen", "--alg", made, "--out", str(tmp_path))[0] == 0
    code, _, err = run("mint", "--key", str(tmp_path / "private.pem"), "--alg", named)
    assert code == 2 and "does not fit" in err
    assert run("mint", "--key", str(tmp_path / "private.pem"), "--alg", "EdDSA")[0] == 0


def test_demo_command_serves_and_prints_a_working_curl(tmp_path: Path) -> None:
    import re
    import time

    import httpx

    from .redis_server import free_port

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "jwt_guard", "demo", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        banner = ""
        assert proc.stdout is not None
        while "Authorization: Bearer" not in banner:
            line = proc.stdout.readline()
            assert line, "demo exited early: " + banner
            banner += line
        assert "alice / alice" in banner and "bob / bob" in banner
        match = re.search(r"Bearer ([A-Za-z0-9_.-]+)' (http://\S+)", banner)
        assert match is not None
        token, url = match.groups()
        deadline = time.monotonic() + 10
        while True:
            try:
                response = httpx.get(url, headers={"Authorization": f"Bearer {token}"})
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert response.status_code == 200 and response.json()["sub"] == "alice"
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
