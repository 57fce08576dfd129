"""One regression test per known attack on JWT verifiers, named after its RFC section or CVE.

These drive the core directly; tests/security/ repeats them through the middleware.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Thread
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from jwt_guard import (
    JWK,
    AlgorithmNotAllowed,
    ClaimInvalid,
    CriticalHeaderUnsupported,
    InvalidSignature,
    IssuerInvalid,
    JWTGuardError,
    KeyNotFound,
    KeySet,
    MalformedToken,
    StaticKeys,
    TokenTooLarge,
    Verifier,
)
from jwt_guard._tools.signing import b64url, generate_key, public_jwk
from jwt_guard.testing import LocalIssuer, compact, forge

from .security.helpers import public_forms


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE", "NoNe"])
def test_rfc8725_3_1_alg_none_in_any_case(issuer: LocalIssuer, alg: str) -> None:
    verifier = issuer.verifier()
    claims = issuer.claims()
    for sig in (b"", b"x"):
        token = compact({"alg": alg, "kid": issuer.kid}, claims, sig)
        with pytest.raises((AlgorithmNotAllowed, MalformedToken)):
            verifier.verify(token)


@pytest.mark.parametrize("form", ["spki_pem", "pkcs1_pem", "der", "jwk_json"])
@pytest.mark.parametrize("allowed", [["RS256"], ["RS256", "HS256"]])
def test_cve_2022_29217_algorithm_confusion_public_key_as_hmac_secret(
    issuer: LocalIssuer, form: str, allowed: list[str]
) -> None:
    # The attacker signs HS256 with the server's public key, in every encoding.
    secret = public_forms(issuer)[form]
    token = forge({"alg": "HS256", "kid": issuer.kid}, issuer.claims(), secret, "HS256")
    verifier = issuer.verifier(algorithms=allowed)
    with pytest.raises((AlgorithmNotAllowed, KeyNotFound)):
        verifier.verify(token)


def test_rfc8725_3_1_jwk_alg_binding_ps256_key_rejects_rs256(clock: Any) -> None:
    private = generate_key("RS256")
    keys = StaticKeys.from_jwks({"keys": [public_jwk(private, kid="k", alg="PS256")]})
    verifier = Verifier(keys=keys, algorithms=["RS256", "PS256"], clock=clock)
    claims = {"exp": clock.now + 60}
    assert verifier.verify(forge({"alg": "PS256", "kid": "k"}, claims, private, "PS256"))
    with pytest.raises(KeyNotFound):
        verifier.verify(forge({"alg": "RS256", "kid": "k"}, claims, private, "RS256"))


def test_rfc8725_3_10_embedded_jwk_is_ignored(issuer: LocalIssuer) -> None:
    attacker = generate_key("RS256")
    header = {"alg": "RS256", "kid": issuer.kid, "jwk": public_jwk(attacker, kid=issuer.kid)}
    token = forge(header, issuer.claims(), attacker, "RS256")
    with pytest.raises(InvalidSignature):
        issuer.verifier().verify(token)
    # without a kid the attacker's embedded key is still not a candidate
    header.pop("kid")
    with pytest.raises(InvalidSignature):
        issuer.verifier().verify(forge(header, issuer.claims(), attacker, "RS256"))


class _Counter(BaseHTTPRequestHandler):
    hits = 0

    def do_GET(self) -> None:
        type(self).hits += 1
        attacker_jwks = json.dumps({"keys": []}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(attacker_jwks)))
        self.end_headers()
        self.wfile.write(attacker_jwks)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.mark.parametrize("member", ["jku", "x5u"])
def test_rfc8725_3_10_jku_and_x5u_are_never_fetched(issuer: LocalIssuer, member: str) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Counter)
    Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/jwks.json"
        attacker = generate_key("RS256")
        token = forge(
            {"alg": "RS256", "kid": "attacker", member: url}, issuer.claims(), attacker, "RS256"
        )
        with pytest.raises(KeyNotFound):
            issuer.verifier().verify(token)
        assert _Counter.hits == 0
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    "crit",
    [["exp"], ["b64"], ["http://example.com/ext"], [], "exp", [1]],
)
def test_rfc7515_4_1_11_unknown_or_malformed_crit(issuer: LocalIssuer, crit: Any) -> None:
    header = {"alg": "RS256", "kid": issuer.kid, "crit": crit, "exp": 1, "b64": True}
    if isinstance(crit, list) and crit and isinstance(crit[0], str):
        header[crit[0]] = True
    token = forge(header, issuer.claims(), issuer.private_key, "RS256")
    with pytest.raises((CriticalHeaderUnsupported, MalformedToken)):
        issuer.verifier().verify(token)


def test_rfc7797_7_b64_false_rejected(issuer: LocalIssuer) -> None:
    for header in (
        {"alg": "RS256", "kid": issuer.kid, "b64": False, "crit": ["b64"]},
        {"alg": "RS256", "kid": issuer.kid, "b64": False},
    ):
        token = forge(header, issuer.claims(), issuer.private_key, "RS256")
        with pytest.raises(CriticalHeaderUnsupported):
            issuer.verifier().verify(token)


def test_rfc7519_2_exp_as_string_rejected(issuer: LocalIssuer) -> None:
    claims = issuer.claims()
    claims["exp"] = str(claims["exp"])
    with pytest.raises(ClaimInvalid):
        issuer.verifier().verify(issuer.mint(claims))


@pytest.mark.parametrize("iss", ["https://issuer", "https://issuer.test.attacker", "issuer"])
def test_cve_2024_53861_issuer_prefix_or_substring_rejected(issuer: LocalIssuer, iss: str) -> None:
    with pytest.raises(IssuerInvalid):
        issuer.verifier().verify(issuer.mint(issuer=iss))


def test_rfc7518_3_4_der_encoded_es256_signature_rejected(
    make_issuer: Callable[[str], LocalIssuer],
) -> None:
    es = make_issuer("ES256")
    h = b64url(json.dumps({"alg": "ES256", "kid": es.kid}).encode())
    p = b64url(json.dumps(es.claims()).encode())
    der = es.private_key.sign(f"{h}.{p}".encode(), ec.ECDSA(hashes.SHA256()))
    with pytest.raises(InvalidSignature):
        es.verifier().verify(f"{h}.{p}.{b64url(der)}")


@pytest.mark.parametrize("alg,size", [("ES256", 64), ("ES384", 96), ("ES512", 132)])
def test_cve_2022_21449_all_zero_ecdsa_signature_rejected(
    make_issuer: Callable[[str], LocalIssuer], alg: str, size: int
) -> None:
    es = make_issuer(alg)
    token = compact({"alg": alg, "kid": es.kid}, es.claims(), b"\x00" * size)
    with pytest.raises(InvalidSignature):
        es.verifier().verify(token)


def test_ecdsa_signature_with_r_equal_to_curve_order_rejected(
    make_issuer: Callable[[str], LocalIssuer],
) -> None:
    es = make_issuer("ES256")
    n = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
    sig = n.to_bytes(32, "big") * 2
    with pytest.raises(InvalidSignature):
        es.verifier().verify(compact({"alg": "ES256", "kid": es.kid}, es.claims(), sig))


def test_rfc7515_2_padded_token_rejected(issuer: LocalIssuer) -> None:
    token = issuer.mint()
    for padded in (token + "=", token.replace(".", "=.", 1), token + "=="):
        with pytest.raises(MalformedToken):
            issuer.verifier().verify(padded)


def test_rfc7515_5_2_duplicate_header_names_rejected(issuer: LocalIssuer) -> None:
    header = f'{{"alg":"RS256","kid":"{issuer.kid}","alg":"HS256"}}'.encode()
    token = forge(header, issuer.claims(), issuer.private_key, "RS256")
    with pytest.raises(MalformedToken):
        issuer.verifier().verify(token)


def test_duplicate_claim_names_rejected(issuer: LocalIssuer) -> None:
    payload = b'{"iss":"https://issuer.test","aud":"api://test","exp":1,"exp":9999999999}'
    token = forge({"alg": "RS256", "kid": issuer.kid}, payload, issuer.private_key, "RS256")
    with pytest.raises(MalformedToken):
        issuer.verifier().verify(token)


def test_oversized_token_rejected_before_decoding(issuer: LocalIssuer) -> None:
    token = issuer.mint(padding="x" * 9000)
    with pytest.raises(TokenTooLarge):
        issuer.verifier().verify(token)


@pytest.mark.parametrize(
    "kid",
    ["../../etc/passwd", "' OR 1=1 --", "$(touch /tmp/pwned); `id`", "k" * 300, 5, None, ["a"]],
)
def test_rfc7515_4_1_4_kid_injection(issuer: LocalIssuer, kid: Any) -> None:
    attacker = generate_key("RS256")
    header: dict[str, Any] = {"alg": "RS256", "kid": kid}
    token = forge(header, issuer.claims(), attacker, "RS256")
    with pytest.raises((KeyNotFound, MalformedToken, InvalidSignature)):
        issuer.verifier().verify(token)


@pytest.mark.parametrize(
    "token",
    ["", "a", "a.b", "a.b.c", "....", "\x00.\x00.\x00", "é.é.é", "eyJ.eyJ.eyJ"],
)
def test_garbage_ends_in_our_error_type(issuer: LocalIssuer, token: str) -> None:
    with pytest.raises(JWTGuardError) as info:
        issuer.verifier().verify(token)
    assert info.value.status_code == 401


# -- CVE-2022-29217: a public key as the HMAC secret, through every way a key comes in --------


def _lookalikes(issuer: LocalIssuer) -> dict[str, bytes]:
    """The issuer's RSA public key in every shape an operator might paste as a 'secret'."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.x509.oid import NameOID

    private = issuer.private_key
    public = private.public_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "issuer.test")])
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(private, hashes.SHA256())
    )
    jwk = public_jwk(private, kid=issuer.kid)
    der = public_forms(issuer)["der"]
    openssh = public.public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    ssh_blob = openssh.split()[1]
    return {
        **public_forms(issuer),  # SPKI PEM, PKCS#1 PEM, DER, JWK JSON
        "spki_pem_lowercase": public_forms(issuer)["spki_pem"].lower(),
        "certificate_pem": certificate.public_bytes(serialization.Encoding.PEM),
        "jwk_json_sorted": json.dumps(jwk, sort_keys=True).encode(),  # "kty" not first
        "jwks_json": json.dumps({"keys": [jwk]}).encode(),
        "base64_der": base64.b64encode(public_forms(issuer)["der"]),
        "base64_der_lines": base64.encodebytes(
            certificate.public_bytes(serialization.Encoding.DER)
        ),
        "base64url_der": base64.urlsafe_b64encode(der).rstrip(b"="),  # RFC 4648 §5
        "base64url_der_padded": base64.urlsafe_b64encode(der),
        "hex_der": der.hex().encode(),
        "hex_der_colons": der.hex(":").upper().encode(),  # as `openssl ... -text` prints
        "openssh": openssh,
        "openssh_tab": openssh.replace(b" ", b"\t", 1),
        "openssh_comment_first": b"# deploy key\n" + openssh,
        "openssh_blob_base64": ssh_blob,  # the key without its type name
        "ssh2_rfc4716": b"---- BEGIN SSH2 PUBLIC KEY ----\n"
        + base64.encodebytes(base64.b64decode(ssh_blob))
        + b"---- END SSH2 PUBLIC KEY ----\n",
        "jwk_json_bom": b"\xef\xbb\xbf" + json.dumps(jwk).encode(),
        "jwk_json_escaped": json.dumps(jwk).replace('"kty"', '"\\u006bty"').encode(),
        "jwk_yaml": "\n".join(f"{k}: {v}" for k, v in jwk.items()).encode(),
        "jwk_json_base64": base64.b64encode(json.dumps(jwk).encode()),
    }


def _oct(secret: bytes) -> dict[str, str]:
    return {"kty": "oct", "k": b64url(secret), "kid": "hs"}


#: Every way an HMAC secret comes in. Each must refuse a lookalike at start-up.
SECRET_ENTRY_POINTS: dict[str, Callable[[bytes, Any], object]] = {
    "JWK.from_secret": lambda s, _: JWK.from_secret(s),
    "JWK.from_secret(alg=None)": lambda s, _: JWK.from_secret(s, algorithm=None),
    "JWK(kty='oct')": lambda s, _: JWK(kty="oct", material=s, fingerprint="t"),
    "JWK.from_dict(oct)": lambda s, _: JWK.from_dict(_oct(s)),
    "StaticKeys.from_secret": lambda s, _: StaticKeys.from_secret(s),
    "StaticKeys([oct])": lambda s, _: StaticKeys([_oct(s)]),
    "StaticKeys.from_jwks(dict)": lambda s, _: StaticKeys.from_jwks({"keys": [_oct(s)]}),
    "StaticKeys.from_jwks(json)": lambda s, _: StaticKeys.from_jwks(
        json.dumps({"keys": [_oct(s)]})
    ),
    "StaticKeys.from_jwks(path)": lambda s, tmp: StaticKeys.from_jwks(_write(tmp, s)),
    "KeySet.from_jwks(strict)": lambda s, _: KeySet.from_jwks(
        {"keys": [_oct(s)]}, allow_symmetric=True, strict=True
    ),
}


def _write(tmp: Any, secret: bytes) -> Any:
    path = tmp / "jwks.json"
    path.write_text(json.dumps({"keys": [_oct(secret)]}))
    return path


#: Every way a public key comes in: the lookalike is loaded as the typed public key it is
#: (never as an HMAC secret), or refused.
PUBLIC_ENTRY_POINTS: dict[str, Callable[[bytes], object]] = {
    "JWK.from_pem": lambda s: StaticKeys([JWK.from_pem(s)]),
    "JWK.from_der_certificate": lambda s: StaticKeys([JWK.from_der_certificate(s)]),
    "StaticKeys.from_pem": lambda s: StaticKeys.from_pem(s),
    "StaticKeys([bytes])": lambda s: StaticKeys([s]),
    "StaticKeys([str])": lambda s: StaticKeys([s.decode("latin-1")]),
}

LOOKALIKES = [
    "spki_pem",
    "spki_pem_lowercase",
    "pkcs1_pem",
    "certificate_pem",
    "der",
    "jwk_json",
    "jwk_json_sorted",
    "jwks_json",
    "jwk_json_bom",
    "jwk_json_escaped",
    "jwk_yaml",
    "jwk_json_base64",
    "base64_der",
    "base64_der_lines",
    "base64url_der",
    "base64url_der_padded",
    "hex_der",
    "hex_der_colons",
    "openssh",
    "openssh_tab",
    "openssh_comment_first",
    "openssh_blob_base64",
    "ssh2_rfc4716",
]


def test_cve_2022_29217_every_lookalike_form_is_listed(issuer: LocalIssuer) -> None:
    assert sorted(LOOKALIKES) == sorted(_lookalikes(issuer))


@pytest.mark.parametrize("entry", [*SECRET_ENTRY_POINTS, *PUBLIC_ENTRY_POINTS, "KeySet.remote"])
@pytest.mark.parametrize("form", LOOKALIKES)
def test_cve_2022_29217_key_lookalike_refused_through_every_entry_point(
    issuer: LocalIssuer,
    form: str,
    entry: str,
    tmp_path: Any,
) -> None:
    secret = _lookalikes(issuer)[form]
    token = forge({"alg": "HS256", "kid": "hs"}, issuer.claims(), secret, "HS256")
    if entry in SECRET_ENTRY_POINTS:
        with pytest.raises(ValueError, match="looks like"):
            SECRET_ENTRY_POINTS[entry](secret, tmp_path)
        return
    if entry == "KeySet.remote":
        # A fetched document: the entry is skipped with the reason its source logs, never used.
        keys = KeySet.from_jwks({"keys": [_oct(secret)]}, allow_symmetric=True, strict=False)
        assert len(keys) == 0
        assert "looks like" in keys.skipped_entries[0].reason
        return
    try:
        source = PUBLIC_ENTRY_POINTS[entry](secret)
    except ValueError:
        return  # not a public key in this shape: refused at start-up
    assert isinstance(source, StaticKeys)
    assert all(key.kty == "RSA" for key in source.key_set.keys)
    verifier = issuer.verifier(keys=source, algorithms=["HS256", "RS256"])
    with pytest.raises((KeyNotFound, AlgorithmNotAllowed)):
        verifier.verify(token)
    assert verifier.verify(issuer.mint(kid="hs", header={"kid": "hs"}))


@pytest.mark.parametrize(
    "secret",
    [
        "MIIB" + "A" * 60,
        "MFkwEwYHKoZIzj0CAQ" + "x" * 40,
        "0" * 48,
        '["not", "a", "key"]' + "." * 20,
    ],
)
def test_cve_2022_29217_random_secrets_that_merely_start_like_a_key_are_accepted(
    secret: str,
) -> None:
    # Lookalikes are recognised by parsing, not by their first letters.
    assert JWK.from_secret(secret).kty == "oct"


@pytest.mark.parametrize("size", [32, 48, 64])
def test_cve_2022_29217_random_secrets_are_accepted_raw_and_as_text(size: int) -> None:
    # The lookalike check reads a secret as base64, base64url and hex too: ordinary random
    # secrets, and the text forms operators keep them in, must never be taken for keys.
    import secrets

    for _ in range(1000):
        raw = secrets.token_bytes(size)
        for secret in (
            raw,
            raw.hex(),
            raw.hex().upper(),
            base64.b64encode(raw),
            base64.urlsafe_b64encode(raw).rstrip(b"="),
            secrets.token_urlsafe(size),
        ):
            assert JWK.from_secret(secret, algorithm=None).kty == "oct"


def test_cve_2022_29217_cli_secret_env_refuses_a_public_key(
    issuer: LocalIssuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    from jwt_guard.cli import main

    monkeypatch.setenv("HS_SECRET", public_forms(issuer)["spki_pem"].decode())
    token = forge({"alg": "HS256"}, issuer.claims(), public_forms(issuer)["spki_pem"], "HS256")
    err = io.StringIO()
    with pytest.raises(SystemExit) as exit_info:
        main(
            ["verify", token, "--secret-env", "HS_SECRET", "--algorithm", "HS256"],
            stdout=io.StringIO(),
            stderr=err,
        )
    assert exit_info.value.code == 2 and "looks like" in err.getvalue()
