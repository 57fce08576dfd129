"""The jwt-guard command: exit codes, JSON output, bad input."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jwt_guard._tools.signing import private_pem
from jwt_guard.cli import main
from jwt_guard.testing import JWKSServer, LocalIssuer

from .oidc_provider import AUDIENCE, SCOPE, OIDCProvider


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
    token = mint(
        keydir, "--claim-json", 'roles=["admin"]', "--claim", "tenant=acme", "--ttl", "15m"
    )
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
    # The principal as the middleware computes it (default roles claim "roles").
    assert result["roles"] == ["admin"] and result["scopes"] == []


def test_verify_batch_from_stdin_exit_1_when_any_invalid(keydir: Path) -> None:
    good = mint(keydir)
    expired = mint(keydir, "--ttl", "0")
    lines = "\n".join([good, "not-a-token", expired, ""]) + "\n"  # line 4 is blank
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
    # Every input line has its result, numbered; the blank line is reported, not skipped.
    assert [(r["line"], r["valid"]) for r in results] == [
        (1, True),
        (2, False),
        (3, False),
        (4, False),
    ]
    assert results[1] == {
        "line": 2,
        "valid": False,
        "code": "token_malformed",
        "error": "invalid_token",
        "description": "The access token is malformed.",
        "detail": {
            "reason": "not a JWT: an opaque token (no dots; a JWT has 3 segments, RFC 7515 §7.1)",
            "segments": 1,
            "hint": results[1]["detail"].get("hint"),
        },
    }
    assert results[1]["detail"]["hint"].startswith("ask the identity provider for a JWT access")
    assert results[2]["code"] == "token_expired"
    assert set(results[2]["detail"]) == {"claim", "exp", "now", "leeway", "expired_seconds_ago"}
    assert results[3] == {
        "line": 4,
        "valid": False,
        "code": "blank_line",
        "description": "The line is empty.",
    }


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


@pytest.mark.parametrize("source", ["--jwks-url", "--discover"])
def test_issue25_verify_against_a_provider_without_algorithm_follows_its_keys(
    keydir: Path, source: str
) -> None:
    jwks = json.loads((keydir / "jwks.json").read_text())  # an ES256 key with its "alg"
    with JWKSServer(jwks, issuer=None) as server:
        token = mint(keydir, iss=server.base_url)
        where = server.url if source == "--jwks-url" else server.base_url
        argv = ["verify", token, source, where, "--issuer", server.base_url, "--audience", "api"]
        code, out, _ = run(*argv)
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
    assert code == 2 and "NAME=VALUE" in err


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
        deadline = time.monotonic() + 60  # readiness, not speed: a loaded machine is slow
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


# -- issue #14: the CLI for debugging -----------------------------------------------------------


def _verify(keydir: Path, *argv: str, stdin: str = "") -> tuple[int, str, str]:
    return run(
        "verify", *argv, "--jwks-file", str(keydir / "jwks.json"), "--algorithm", "ES256",
        stdin=stdin,
    )  # fmt: skip


def test_verify_prints_the_detail_of_a_failure(keydir: Path) -> None:
    token = mint(keydir, iss="https://iss/")
    code, out, _ = _verify(keydir, token, "--issuer", "https://iss", "--audience", "api")
    result = json.loads(out)
    assert code == 1
    assert result["code"] == "issuer_invalid"
    assert result["detail"] == {
        "expected": ["https://iss"],
        "found": "https://iss/",
        "hint": "differs from a configured issuer only by a trailing slash",
    }
    assert token not in out


def test_verify_shows_roles_and_scopes_from_the_claim_paths(keydir: Path) -> None:
    token = mint(
        keydir,
        "--claim-json",
        'realm_access={"roles": ["admin", "user"]}',
        "--claim-json",
        'perms=["orders:read"]',
    )
    code, out, _ = _verify(
        keydir,
        token,
        "--audience",
        "api",
        "--roles-claim",
        "realm_access.roles",
        "--scopes-claim",
        "perms",
    )
    result = json.loads(out)
    assert code == 0
    assert result["roles"] == ["admin", "user"] and result["scopes"] == ["orders:read"]


def test_verify_with_the_rfc9068_profile_names_an_id_token(keydir: Path) -> None:
    """Issue 25 item 8 on the CLI: the refusal of an ID token (RFC 9068 §4), and the access
    token next to it accepted."""
    rules = ("--issuer", "https://iss", "--audience", "api", "--profile", "rfc9068")
    id_token = mint(keydir, "--claim", "nonce=n-1", "--claim", "client_id=web")
    code, out, _ = _verify(keydir, id_token, *rules)
    result = json.loads(out)
    assert code == 1 and result["code"] == "type_invalid"
    assert result["detail"]["id_token_claims"] == ["nonce"]
    access = mint(keydir, "--typ", "at+jwt", "--claim", "client_id=web")
    code, out, _ = _verify(keydir, access, *rules)
    assert code == 0 and json.loads(out)["valid"] is True
    code, _, err = _verify(keydir, access, "--audience", "api", "--profile", "rfc9086")
    assert code == 2 and "did you mean 'rfc9068'?" in err


def test_verify_with_a_provider_preset(tmp_path: Path) -> None:
    """--provider keycloak: issuer, roles and the preset's checks (typ Bearer), keys from a file."""
    assert run("keygen", "--alg", "RS256", "--kid", "kc", "--out", str(tmp_path))[0] == 0

    def kc_token(*extra: str) -> str:
        key = ["--key", str(tmp_path / "private.pem"), "--alg", "RS256", "--kid", "kc"]
        code, out, _ = run("mint", *key, "--iss", ISS_KC, "--aud", "api", *extra)
        assert code == 0
        return out.strip()

    base = ["--provider", "keycloak", "--provider-arg", "base_url=https://sso.acme.io"]
    base += ["--provider-arg", "realm=main", "--provider-arg", "client_id=web"]
    base += ["--audience", "api", "--jwks-file", str(tmp_path / "jwks.json")]
    roles = 'resource_access={"web": {"roles": ["editor"]}}'
    code, out, _ = run("verify", kc_token("--claim", "typ=Bearer", "--claim-json", roles), *base)
    assert code == 0, out
    assert json.loads(out)["roles"] == ["editor"]
    code, out, _ = run("verify", kc_token("--claim", "typ=ID"), *base)
    assert code == 1
    assert json.loads(out)["detail"] == {"claim": "typ", "expected": ["Bearer"], "found": "ID"}
    code, _, err = run("verify", kc_token(), *base, "--provider-arg", "colour=blue")
    assert code == 2 and "--provider-arg takes NAME=VALUE" in err


ISS_KC = "https://sso.acme.io/realms/main"


def test_verify_with_entra_organizations_and_a_tenant_list(tmp_path: Path) -> None:
    """--provider entra_id with tenant_id=organizations and repeated tenants= (issue 25,
    item 7): a listed tenant passes, another tenant's token is refused by its issuer."""
    assert run("keygen", "--alg", "RS256", "--kid", "ms", "--out", str(tmp_path))[0] == 0
    tenants = ["11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"]

    def token(tenant: str) -> str:
        key = ["--key", str(tmp_path / "private.pem"), "--alg", "RS256", "--kid", "ms"]
        iss = f"https://login.microsoftonline.com/{tenant}/v2.0"
        code, out, _ = run("mint", *key, "--iss", iss, "--aud", "api", "--claim", f"tid={tenant}")
        assert code == 0
        return out.strip()

    base = ["--provider", "entra_id", "--provider-arg", "tenant_id=organizations"]
    base += ["--provider-arg", f"tenants={tenants[0]}", "--provider-arg", f"tenants={tenants[1]}"]
    base += ["--audience", "api", "--jwks-file", str(tmp_path / "jwks.json")]
    for tenant in tenants:
        code, out, _ = run("verify", token(tenant), *base)
        assert code == 0, out
    other = "33333333-3333-4333-8333-333333333333"
    code, out, _ = run("verify", token(other), *base)
    assert code == 1
    result = json.loads(out)
    assert result["code"] == "issuer_invalid"
    assert result["detail"]["reason"] == "tenant not in the allow-list"


@pytest.mark.parametrize("argv", [["verify", ""], ["verify", "-"], ["verify"]])
def test_an_empty_token_or_empty_stdin_exits_2(keydir: Path, argv: list[str]) -> None:
    code, out, err = run(*argv, "--jwks-file", str(keydir / "jwks.json"), "--algorithm", "ES256")
    assert code == 2 and out == ""
    assert "empty" in err or "no token" in err


def test_decode_of_an_empty_token_exits_2() -> None:
    code, _, err = run("decode", "")
    assert code == 2 and "empty" in err


def test_an_unavailable_key_source_exits_3(keydir: Path) -> None:
    token = mint(keydir)
    # Nothing listens on port 9 of the loopback: the fetch is refused at once.
    code, out, _ = run(
        "verify",
        token,
        "--jwks-url",
        "http://127.0.0.1:9/jwks.json",
        "--algorithm",
        "ES256",
        "--audience",
        "api",
        "--timeout",
        "2",
    )
    result = json.loads(out)
    assert code == 3
    assert result["code"] == "jwks_unavailable"
    assert result["detail"]["url"] == "http://127.0.0.1:9/jwks.json"


def test_decode_json(keydir: Path) -> None:
    token = mint(keydir, "--ttl", "0")
    code, out, _ = run("decode", token, "--json")
    document = json.loads(out)
    assert code == 0
    assert document["verified"] is False
    assert document["header"]["kid"] == "cli-1" and document["claims"]["sub"] == "alice"
    assert set(document["times"]) == {"iat", "exp"}
    assert "expired" in document["warnings"]


def test_keygen_refuses_to_overwrite_without_force(keydir: Path) -> None:
    before = (keydir / "private.pem").read_bytes()
    code, out, err = run("keygen", "--alg", "ES256", "--out", str(keydir))
    assert code == 2 and out == "" and "--force" in err
    assert (keydir / "private.pem").read_bytes() == before
    code, _, _ = run("keygen", "--alg", "ES256", "--out", str(keydir), "--force")
    assert code == 0
    assert (keydir / "private.pem").read_bytes() != before
    assert stat.S_IMODE(os.stat(keydir / "private.pem").st_mode) == 0o600


KEY_FILES = ["private.pem", "public.pem", "jwks.json"]


@pytest.mark.parametrize("name", KEY_FILES)
def test_issue22_keygen_force_never_writes_through_a_symlink(tmp_path: Path, name: str) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious")
    keys = tmp_path / "keys"
    assert run("keygen", "--alg", "ES256", "--out", str(keys))[0] == 0
    (keys / name).unlink()
    (keys / name).symlink_to(victim)
    code, _, err = run("keygen", "--alg", "ES256", "--kid", "k2", "--out", str(keys), "--force")
    assert code == 0, err
    assert victim.read_text() == "precious"
    # rename(2) replaced the link itself: a regular file with the new content stands there.
    assert not (keys / name).is_symlink()
    assert json.loads((keys / "jwks.json").read_text())["keys"][0]["kid"] == "k2"
    assert sorted(p.name for p in keys.iterdir()) == sorted(KEY_FILES)  # no temporary left


@pytest.mark.parametrize("name", KEY_FILES)
def test_issue22_keygen_refuses_a_dangling_symlink_without_force(tmp_path: Path, name: str) -> None:
    victim = tmp_path / "victim"  # does not exist: the link dangles
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / name).symlink_to(victim)
    code, out, err = run("keygen", "--alg", "ES256", "--out", str(keys))
    assert code == 2 and out == "" and name in err and "--force" in err
    assert not victim.exists()
    assert [p.name for p in keys.iterdir()] == [name]


def test_issue22_keygen_a_name_taken_after_the_check_is_not_overwritten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The symlink "appears" between the existence check and the write (the check is blinded):
    # link(2) refuses the name, and what this run already placed is taken back.
    victim = tmp_path / "victim"
    victim.write_text("precious")
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "jwks.json").symlink_to(victim)
    monkeypatch.setattr(os.path, "lexists", lambda path: False)
    code, out, err = run("keygen", "--alg", "ES256", "--out", str(keys))
    assert code == 2 and out == "" and "jwks.json already exists" in err
    assert victim.read_text() == "precious"
    assert [p.name for p in keys.iterdir()] == ["jwks.json"]


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o077])
def test_issue22_keygen_private_key_is_0600_from_its_creation_whatever_the_umask(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, umask: int
) -> None:
    real_open = os.open
    created: dict[str, int] = {}

    def watching_open(path: Any, flags: int, mode: int = 0o777, **kw: Any) -> int:
        fd = real_open(path, flags, mode, **kw)
        created[str(path)] = stat.S_IMODE(os.fstat(fd).st_mode)  # before a byte is written
        return fd

    monkeypatch.setattr(os, "open", watching_open)
    previous = os.umask(umask)
    try:
        assert run("keygen", "--alg", "ES256", "--out", str(tmp_path))[0] == 0
    finally:
        os.umask(previous)
    [private] = [mode for path, mode in created.items() if "private.pem" in path]
    assert private == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "private.pem").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "public.pem").st_mode) == 0o644
    assert stat.S_IMODE(os.stat(tmp_path / "jwks.json").st_mode) == 0o644


def test_keygen_out_may_be_a_symlink_to_a_directory(tmp_path: Path) -> None:
    # The user named --out: a link to a directory is followed (the file names inside never are).
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "keys").symlink_to(real, target_is_directory=True)
    assert run("keygen", "--alg", "ES256", "--out", str(tmp_path / "keys"))[0] == 0
    assert sorted(p.name for p in real.iterdir()) == sorted(KEY_FILES)


def test_mint_claim_values_stay_strings_and_claim_json_is_json(keydir: Path) -> None:
    token = mint(
        keydir,
        "--claim",
        "zip=01234",
        "--claim",
        "n=5",
        "--claim",
        "flag=true",
        "--claim-json",
        "count=5",
        "--claim-json",
        'tags=["a"]',
    )
    code, out, _ = run("decode", token, "--json")
    claims = json.loads(out)["claims"]
    assert (claims["zip"], claims["n"], claims["flag"]) == ("01234", "5", "true")
    assert claims["count"] == 5 and claims["tags"] == ["a"]
    code, _, err = run(
        "mint", "--key", str(keydir / "private.pem"), "--alg", "ES256", "--claim-json", "x={"
    )
    assert code == 2 and "--claim-json x: not JSON" in err


def _parsers() -> list[Any]:
    import argparse

    from jwt_guard.cli import build_parser

    parser = build_parser()
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return [parser, *subs[0].choices.values()]


def test_every_option_has_help_text() -> None:
    import argparse

    for parser in _parsers():
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            assert action.help, f"{parser.prog} {action.option_strings or action.dest}"


@pytest.mark.parametrize(
    "command", ["", "verify", "decode", "keygen", "mint", "client-cert", "demo"]
)
def test_help_shows_no_rst_markup(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, _ = run(*([command] if command else []), "--help")
    out = capsys.readouterr().out
    assert code == 0 and "usage: jwt-guard" in out
    for markup in ("``", ":class:", ":func:", ":meth:", ":data:"):
        assert markup not in out, markup


# -- DPoP (RFC 9449): a bound token and its proofs, from the command line ------------------------


@pytest.fixture
def client_keydir(tmp_path: Path) -> Path:
    code, _, _ = run("keygen", "--alg", "ES256", "--out", str(tmp_path / "client"))
    assert code == 0
    return tmp_path / "client"


@pytest.mark.parametrize("half", ["private.pem", "public.pem"])
def test_mint_dpop_key_binds_the_token(keydir: Path, client_keydir: Path, half: str) -> None:
    from jwt_guard._core.dpop import jwk_thumbprint
    from jwt_guard._core.parse import parse_compact

    client_jwk = json.loads((client_keydir / "jwks.json").read_text())["keys"][0]
    token = mint(keydir, "--dpop-key", str(client_keydir / half))
    assert parse_compact(token).payload["cnf"] == {"jkt": jwk_thumbprint(client_jwk)}


def test_dpop_proof_round_trip_verifies(keydir: Path, client_keydir: Path) -> None:
    from jwt_guard import DPoP, StaticKeys, Verifier

    token = mint(keydir, "--dpop-key", str(client_keydir / "private.pem"))
    url = "https://api.example/orders"
    code, out, _ = run(
        "dpop-proof",
        "--key",
        str(client_keydir / "private.pem"),
        "--method",
        "POST",
        "--url",
        url,
        "--token",
        "-",
        stdin=token + "\n",
    )
    assert code == 0
    verifier = Verifier(
        keys=StaticKeys.from_pem((keydir / "public.pem").read_bytes()),
        algorithms=["ES256"],
        issuer="https://iss",
        audience="api",
        dpop=DPoP(),
    )
    principal = verifier.verify(token, dpop_proof=out.strip(), method="POST", url=url)
    assert principal.subject == "alice"


def test_dpop_proof_method_is_upper_cased(client_keydir: Path) -> None:
    from jwt_guard._core.parse import parse_compact

    key = str(client_keydir / "private.pem")
    code, out, _ = run("dpop-proof", "--key", key, "--method", "get", "--url", "https://a.example/")
    # RFC 9110 §9.1: "get" is not GET; a proof for it would never match a GET request.
    assert code == 0 and parse_compact(out.strip()).payload["htm"] == "GET"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--url", "ftp://x/y"], "--url must be the request's http(s) URL"),
        (["--url", "https://a.example/", "--alg", "RS256"], "the key does not fit RS256"),
    ],
)
def test_dpop_proof_usage_errors(client_keydir: Path, extra: list[str], message: str) -> None:
    code, _, err = run("dpop-proof", "--key", str(client_keydir / "private.pem"), *extra)
    assert code == 2 and message in err


def test_mint_dpop_key_must_be_a_key(keydir: Path, tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.pem"
    bogus.write_text("not a key")
    code, _, err = run(
        "mint", "--key", str(keydir / "private.pem"), "--alg", "ES256", "--dpop-key", str(bogus)
    )
    assert code == 2 and "--dpop-key must be a PEM private or public key" in err


def test_issue22_review_keygen_force_failing_midway_keeps_the_old_key_pair(tmp_path: Path) -> None:
    # Review of issue 22: --force renamed private.pem into place, then failed on public.pem (a
    # directory stands there): the old private key was gone and the public files left said
    # nothing of the new one. Nothing is replaced unless every name can be.
    keys = tmp_path / "keys"
    assert run("keygen", "--alg", "ES256", "--out", str(keys))[0] == 0
    before = {name: (keys / name).read_bytes() for name in ("private.pem", "jwks.json")}
    (keys / "public.pem").unlink()
    (keys / "public.pem").mkdir()
    code, out, err = run("keygen", "--alg", "ES256", "--out", str(keys), "--force")
    assert code == 2 and out == "" and "public.pem" in err and "directory" in err
    assert {name: (keys / name).read_bytes() for name in before} == before
    assert sorted(p.name for p in keys.iterdir()) == sorted(KEY_FILES)  # no temporary left


def test_issue25_decode_of_an_opaque_token_says_not_a_jwt() -> None:
    # Issue 25, item 3: "not a compact JWS (3 segments)" pointed at a broken token.
    code, _, err = run("decode", "2YotnFZFEjr1zCsicMWpAA")
    assert code == 2
    assert "not a JWT: an opaque token" in err
    assert "ask the identity provider for a JWT access token" in err


# -- certificate-bound tokens (RFC 8705): a client certificate, a bound token, verify --cert ----


AUD = ("--issuer", "https://iss", "--audience", "api")


def test_client_cert_mint_cert_and_verify_cert(keydir: Path, tmp_path: Path) -> None:
    from jwt_guard._core.certificates import der_from_pem, der_thumbprint
    from jwt_guard._core.parse import parse_compact

    code, out, _ = run("client-cert", "--out", str(tmp_path / "alice"), "--cn", "alice")
    made = json.loads(out)
    assert code == 0 and set(made) == {"certificate", "private_key", "x5t#S256"}
    assert stat.S_IMODE(os.stat(made["private_key"]).st_mode) == 0o600
    der = der_from_pem(Path(made["certificate"]).read_text())
    assert made["x5t#S256"] == der_thumbprint(der)
    token = mint(keydir, "--cert", made["certificate"])
    assert parse_compact(token).payload["cnf"] == {"x5t#S256": made["x5t#S256"]}

    code, out, _ = _verify(keydir, *AUD, "--cert", made["certificate"], token)
    assert code == 0 and json.loads(out)["valid"] is True
    code, out, _ = _verify(keydir, *AUD, token)  # no certificate: the binding cannot be checked
    assert code == 1 and json.loads(out)["code"] == "token_binding_unsupported"
    code, out, _ = run("client-cert", "--out", str(tmp_path / "other"), "--ca")
    other = json.loads(out)
    assert code == 0 and Path(other["ca"]).read_text().startswith("-----BEGIN CERTIFICATE")
    code, out, _ = _verify(keydir, *AUD, "--cert", other["certificate"], token)
    result = json.loads(out)
    assert code == 1 and result["code"] == "certificate_binding_mismatch"
    assert result["detail"]["presented"] == other["x5t#S256"]
    code, _, err = run("client-cert", "--out", str(tmp_path / "alice"))
    assert code == 2 and "--force" in err


def test_cert_options_must_be_a_certificate(keydir: Path) -> None:
    for argv in (
        ["mint", "--key", str(keydir / "private.pem"), "--alg", "ES256"],
        ["verify", "--jwks-file", str(keydir / "jwks.json"), "--algorithm", "ES256", "x.y.z"],
    ):
        code, _, err = run(*argv, "--cert", str(keydir / "private.pem"))
        assert code == 2 and "--cert must be one PEM certificate" in err
        code, _, err = run(*argv, "--cert", str(keydir / "missing.pem"))
        assert code == 2 and "cannot read" in err


# -- issue 27: jwt-guard introspect ------------------------------------------------------------


@pytest.fixture
def authorization_server() -> Iterator[tuple[LocalIssuer, JWKSServer]]:
    issuer = LocalIssuer(audience="api")
    issuer.register_client("cli-rs", client_secret="cli-secret")
    with issuer.serve(as_issuer=True) as server:
        yield issuer, server


def introspect(
    server: JWKSServer, token: str, *extra: str, stdin: str = ""
) -> tuple[int, str, str]:
    return run(
        "introspect",
        "--url",
        server.introspection_url,
        "--client-id",
        "cli-rs",
        "--client-secret-env",
        "RS_SECRET",
        "--issuer",
        server.base_url,
        "--audience",
        "api",
        *extra,
        "--",  # an opaque token may start with "-"
        token,
        stdin=stdin,
    )


def test_introspect_an_opaque_token_prints_its_principal_in_one_line(
    authorization_server: tuple[LocalIssuer, JWKSServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    issuer, server = authorization_server
    monkeypatch.setenv("RS_SECRET", "cli-secret")
    token = issuer.opaque_token(sub="alice", scopes=["notes:read"], roles=["admin"])
    code, out, err = introspect(server, token)
    assert code == 0, err
    assert out.count("\n") == 1
    result = json.loads(out)
    assert result["valid"] is True and result["claims"]["sub"] == "alice"
    assert result["scopes"] == ["notes:read"] and result["roles"] == ["admin"]
    assert issuer.introspection_requests == 1
    # a batch from stdin, numbered, as verify reads it
    code, out, _ = introspect(server, "-", stdin=f"{token}\nno-such-token\n")
    first, second = (json.loads(line) for line in out.splitlines())
    assert code == 1 and first["line"] == 1 and first["valid"] is True
    assert second == {**second, "line": 2, "valid": False, "code": "token_inactive"}


def test_introspect_refusals_and_exit_codes(
    authorization_server: tuple[LocalIssuer, JWKSServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    issuer, server = authorization_server
    monkeypatch.setenv("RS_SECRET", "cli-secret")
    revoked = issuer.opaque_token()
    issuer.revoke(revoked)
    code, out, _ = introspect(server, revoked)
    assert code == 1 and json.loads(out)["code"] == "token_inactive"
    code, out, _ = introspect(server, issuer.opaque_token(audience="other-api"))
    assert code == 1 and json.loads(out)["code"] == "audience_invalid"
    server.faults_on = "introspection"
    server.status = 503
    code, out, _ = introspect(server, issuer.opaque_token())
    result = json.loads(out)
    assert code == 3 and result["code"] == "introspection_unavailable"
    assert result["detail"]["status"] == 503
    server.status = 200
    monkeypatch.setenv("RS_SECRET", "not-the-secret")
    code, out, _ = introspect(server, issuer.opaque_token())
    result = json.loads(out)
    assert code == 3 and result["detail"]["status"] == 401
    assert "client authentication" in result["detail"]["reason"]


def test_introspect_by_discovery_with_private_key_jwt(
    authorization_server: tuple[LocalIssuer, JWKSServer], keydir: Path
) -> None:
    issuer, server = authorization_server
    public = json.loads((keydir / "jwks.json").read_text())["keys"][0]
    issuer.register_client("cli-jwt", public_key=public)
    code, out, err = run(
        "introspect",
        "--discovery",
        server.base_url,
        "--client-id",
        "cli-jwt",
        "--private-key",
        str(keydir / "private.pem"),
        "--audience",
        "api",
        "--",
        issuer.opaque_token(sub="bob"),
    )
    assert code == 0, out + err
    assert json.loads(out)["claims"]["sub"] == "bob"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--client-secret-env", "RS_SECRET"], "give the introspection endpoint with --url"),
        (
            ["--url", "http://127.0.0.1:9/i", "--discovery", "http://127.0.0.1:9"],
            "give the introspection endpoint with --url",
        ),
        (["--url", "http://127.0.0.1:9/i"], "give the client's credentials"),
        (["--url", "http://127.0.0.1:9/i", "--client-secret-env", "UNSET_X"], "is not set"),
        (["--url", "http://127.0.0.1:9/i", "--private-key", "/nonexistent.pem"], "cannot read"),
        (["--url", "https://as.test/i", "--private-key", __file__], "private_key must be"),
    ],
)
def test_introspect_usage_errors_exit_2(
    argv: list[str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RS_SECRET", "s")
    monkeypatch.delenv("UNSET_X", raising=False)
    code, _, err = run("introspect", "--client-id", "rs", *argv, "--", "opaque")
    assert code == 2 and message in err, err


def test_introspect_a_token_of_a_real_authorization_server(
    oidc_provider: OIDCProvider, tmp_path: Path
) -> None:
    """oidc-provider's opaque access token, introspected with private_key_jwt found by
    discovery (tests/oidc_provider.py)."""
    client = oidc_provider.client("private_key_jwt")
    pem = tmp_path / "rs.pem"
    pem.write_bytes(private_pem(client.private_key))
    code, out, err = run(
        "introspect",
        "--discovery",
        oidc_provider.issuer,
        "--client-id",
        client.client_id,
        "--private-key",
        str(pem),
        "--audience",
        AUDIENCE,
        "--",  # its tokens may start with "-"
        oidc_provider.token(),
    )
    assert code == 0, out + err
    result = json.loads(out)
    assert result["claims"]["iss"] == oidc_provider.issuer and result["scopes"] == sorted(
        SCOPE.split()
    )
