"""Key loading, algorithm binding and selection (RFC 7517, RFC 7518 §3, RFC 8725 §3.1)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed448, ed25519, rsa

from jwt_guard import JWK, ConfigurationError, KeyNotFound, StaticKeys, Verifier
from jwt_guard._core.keyset import KeySet
from jwt_guard._core.parse import b64url_decode
from jwt_guard._tools.signing import encode, generate_key, public_jwk, public_pem, sign
from jwt_guard.testing import LocalIssuer, forge

DATA = b"header.payload"
#: Ed25519/Ed448 sign certificates without a separate hash.
EDDSA_KEYS = (ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)


@pytest.mark.parametrize(
    "alg",
    [
        *("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"),
        *("EdDSA", "Ed25519", "Ed448"),
    ],
)
def test_every_asymmetric_algorithm_round_trips(alg: str) -> None:
    private = generate_key(alg)
    key = JWK.from_dict(public_jwk(private, kid="k", alg=alg))
    assert key.fits(alg)
    assert key.verify(alg, DATA, sign(alg, private, DATA))
    assert not key.verify(alg, DATA + b"x", sign(alg, private, DATA))


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_hmac_round_trips(alg: str) -> None:
    secret = generate_key(alg)
    key = JWK.from_secret(secret, algorithm=alg)
    assert key.verify(alg, DATA, sign(alg, secret, DATA))
    assert not key.verify(alg, DATA, b"\x00" * len(sign(alg, secret, DATA)))


def test_pem_public_key_and_certificate_load() -> None:
    private = generate_key("ES256")
    key = JWK.from_pem(public_pem(private), kid="pem")
    assert key.kty == "EC" and key.crv == "P-256"
    assert key.verify("ES256", DATA, sign("ES256", private, DATA))


def _self_signed_der(private: Any) -> bytes:
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID

    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "t")])
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(private, None if isinstance(private, EDDSA_KEYS) else hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.DER)


def test_certificate_with_an_unknown_key_type_is_a_value_error() -> None:
    # cryptography raises UnsupportedAlgorithm (not a ValueError) for a key OID it does not
    # know; every loader turns it into the documented ValueError.
    import base64

    der = _self_signed_der(generate_key("RS256"))
    rsa_oid = bytes.fromhex("06092A864886F70D010101")  # 1.2.840.113549.1.1.1 rsaEncryption
    assert der.count(rsa_oid) == 1
    unknown = der.replace(rsa_oid, bytes.fromhex("06092A864886F70D010163"))
    pem = b"-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(unknown)
    pem += b"-----END CERTIFICATE-----\n"
    assert JWK.from_der_certificate(der).kty == "RSA"
    with pytest.raises(ValueError, match="DER certificate"):
        JWK.from_der_certificate(unknown)
    with pytest.raises(ValueError, match="certificate"):
        JWK.from_pem(pem)


def test_private_pem_is_refused() -> None:
    from jwt_guard._tools.signing import private_pem

    with pytest.raises(ValueError, match="public key"):
        JWK.from_pem(private_pem(generate_key("ES256")))


def test_rfc7518_3_3_rsa_under_2048_bits_refused() -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(ValueError, match="2048"):
        JWK.from_dict(public_jwk(small))
    with pytest.raises(ConfigurationError):
        StaticKeys.from_pem(public_pem(small))


def test_rsa_exponent_other_than_65537_refused() -> None:
    jwk = public_jwk(generate_key("RS256"))
    jwk["e"] = "Aw"  # 3
    with pytest.raises(ValueError, match="exponent"):
        JWK.from_dict(jwk)


def test_rfc7518_3_2_short_hmac_secret_refused() -> None:
    with pytest.raises(ConfigurationError, match="32"):
        StaticKeys.from_secret("too-short")
    with pytest.raises(ConfigurationError, match="64"):
        StaticKeys.from_secret("x" * 40, algorithm="HS512")
    StaticKeys.from_secret("s" * 32)


def test_hmac_key_too_short_for_a_longer_hash_does_not_fit() -> None:
    key = JWK.from_secret(b"k" * 32, algorithm=None)
    assert key.fits("HS256")
    assert not key.fits("HS512")


def test_jwk_private_material_refused() -> None:
    jwk = public_jwk(generate_key("ES256"))
    jwk["d"] = jwk["x"]
    with pytest.raises(ValueError, match="private"):
        JWK.from_dict(jwk)


def test_ec_point_not_on_curve_refused() -> None:
    jwk = public_jwk(generate_key("ES256"))
    jwk["y"] = jwk["x"]
    with pytest.raises(ValueError):
        JWK.from_dict(jwk)


def test_key_type_must_fit_algorithm() -> None:
    rsa_key = JWK.from_dict(public_jwk(generate_key("RS256")))
    ec_key = JWK.from_dict(public_jwk(generate_key("ES256")))
    assert rsa_key.fits("RS256") and rsa_key.fits("PS256")
    assert not rsa_key.fits("ES256") and not rsa_key.fits("HS256")
    assert ec_key.fits("ES256") and not ec_key.fits("ES384")  # curve mismatch


def test_use_and_key_ops_restrict_keys() -> None:
    jwk = public_jwk(generate_key("RS256"))
    assert not JWK.from_dict({**jwk, "use": "enc"}).fits("RS256")
    assert not JWK.from_dict({**jwk, "key_ops": ["encrypt"]}).fits("RS256")
    assert JWK.from_dict({**jwk, "key_ops": ["verify"]}).fits("RS256")


def test_rfc8725_3_1_jwk_alg_binds_key_to_one_algorithm() -> None:
    jwk = public_jwk(generate_key("RS256"), alg="PS256")
    key = JWK.from_dict(jwk)
    assert key.fits("PS256")
    assert not key.fits("RS256")


@pytest.mark.parametrize(
    ("curve_of", "bound"),
    [("ES256", "ES384"), ("ES512", "ES256"), ("Ed448", "Ed25519"), ("Ed25519", "Ed448")],
)
def test_rfc9864_key_bound_to_an_algorithm_its_curve_cannot_serve_is_refused(
    curve_of: str, bound: str
) -> None:
    # Such a key would load and then never verify anything: refused where it is configured,
    # through every entry point that takes an algorithm.
    private = generate_key(curve_of)
    jwk = public_jwk(private, kid="k", alg=bound)
    pem = public_pem(private)
    for load in (
        lambda: JWK.from_dict(jwk),
        lambda: JWK.from_pem(pem, algorithm=bound),
        lambda: JWK.from_der_certificate(_self_signed_der(private), algorithm=bound),
    ):
        with pytest.raises(ValueError, match=f"cannot be bound to {bound}"):
            load()
    for static in (
        lambda: StaticKeys([jwk]),
        lambda: StaticKeys.from_jwks({"keys": [jwk]}),
        lambda: StaticKeys.from_pem(pem, algorithm=bound),
    ):
        with pytest.raises(ConfigurationError, match=f"cannot be bound to {bound}"):
            static()
    # the same key bound to an algorithm of its own curve loads
    assert JWK.from_dict(public_jwk(private, alg=curve_of)).fits(curve_of)


def test_key_set_selects_by_kid_and_alg() -> None:
    a = JWK.from_dict(public_jwk(generate_key("ES256"), kid="a"))
    b = JWK.from_dict(public_jwk(generate_key("ES256"), kid="b"))
    keys = KeySet([a, b])
    assert list(keys.candidates("b", "ES256")) == [b]
    assert list(keys.candidates(None, "ES256")) == [a, b]
    with pytest.raises(KeyNotFound):
        keys.candidates("c", "ES256")
    with pytest.raises(KeyNotFound):
        keys.candidates("a", "RS256")


def test_static_keys_from_jwks_dict_text_and_file(tmp_path: Path) -> None:
    doc = {"keys": [public_jwk(generate_key("ES256"), kid="one")]}
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(doc))
    for source in (doc, json.dumps(doc), path, str(path)):
        assert StaticKeys.from_jwks(source).key_set.key_ids == ("one",)


@pytest.mark.parametrize(
    "doc",
    [
        {"keys": "nope"},
        {"nokeys": []},
        {"keys": [{"kty": "RSA"}]},
        {"keys": [{"kty": "XYZ", "kid": "a"}]},
    ],
)
def test_bad_static_jwks_is_a_configuration_error(doc: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        StaticKeys.from_jwks(doc)


def test_static_keys_refuse_duplicate_kids() -> None:
    jwk = public_jwk(generate_key("ES256"), kid="same")
    other = public_jwk(generate_key("ES256"), kid="same")
    with pytest.raises(ConfigurationError):
        StaticKeys.from_jwks({"keys": [jwk, other]})


def test_unreadable_jwks_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError):
        StaticKeys.from_jwks(tmp_path / "missing.json")


@pytest.mark.parametrize(
    "secret",
    [
        "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOC\n-----END PUBLIC KEY-----",
        '{"kty":"RSA","n":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","e":"AQAB"}',
        "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC0 user@host",
    ],
)
def test_cve_2022_29217_key_material_refused_as_hmac_secret(secret: str) -> None:
    with pytest.raises(ConfigurationError, match="looks like"):
        StaticKeys.from_secret(secret)


def test_repr_never_shows_secret() -> None:
    key = JWK.from_secret("a-very-secret-value-that-is-32-bytes!")
    assert "secret" not in repr(key)


def test_key_without_kid_matches_any_kid_but_kid_bound_keys_do_not() -> None:
    loose = JWK.from_dict(public_jwk(generate_key("ES256")))
    bound = JWK.from_dict(public_jwk(generate_key("ES256"), kid="a"))
    keys = KeySet([loose, bound])
    assert list(keys.candidates("anything", "ES256")) == [loose]
    assert list(keys.candidates("a", "ES256")) == [bound]


def test_candidates_are_memoized_without_growing_for_unknown_kids() -> None:
    a = JWK.from_dict(public_jwk(generate_key("ES256"), kid="a"))
    keys = KeySet([a])
    for _ in range(2):  # the second round answers from the memo, with the same outcomes
        assert keys.candidates("a", "ES256") == (a,)
        with pytest.raises(KeyNotFound):
            keys.candidates("a", "RS256")
        for i in range(50):
            with pytest.raises(KeyNotFound):
                keys.candidates(f"unknown-{i}", "ES256")
    assert len(keys._memo) == 2


# -- RFC 9864 §2.2: the fully specified EdDSA names ------------------------------------------


@pytest.mark.parametrize("alg", ["Ed25519", "Ed448", "EdDSA"])
def test_rfc9864_tokens_signed_with_each_name_verify(alg: str) -> None:
    # LocalIssuer signs with PyJWT and publishes "alg": <name> in its JWKS.
    issuer = LocalIssuer(algorithm=alg)
    assert issuer.jwks["keys"][0]["alg"] == alg
    token = issuer.mint(sub="ed")
    assert json.loads(b64url_decode(token.split(".")[0]))["alg"] == alg
    assert issuer.verifier().verify(token).subject == "ed"
    assert issuer.verifier(algorithms=[alg]).verify(token).subject == "ed"


@pytest.mark.parametrize(("name", "other"), [("Ed25519", "Ed448"), ("Ed448", "Ed25519")])
def test_rfc9864_a_key_of_the_other_curve_never_verifies_the_name(name: str, other: str) -> None:
    # A key published without "alg" (so only its curve decides), signing tokens that say
    # the other curve's name: refused. "EdDSA" keeps taking both curves, as before.
    private = generate_key(other)
    keys = StaticKeys([public_jwk(private, kid="k")])
    verifier = Verifier(keys=keys, algorithms=[name, "EdDSA"], audience=None, clock=lambda: 0)
    claims = {"sub": "x", "exp": 60}
    with pytest.raises(KeyNotFound):
        verifier.verify(forge({"alg": name, "kid": "k"}, claims, private, name))
    assert verifier.verify(forge({"alg": "EdDSA", "kid": "k"}, claims, private, "EdDSA"))
    # and minting refuses the mismatch outright
    with pytest.raises(ValueError, match="does not fit"):
        encode(claims, private, name)


def test_rfc9864_key_bound_to_eddsa_does_not_verify_ed25519_and_back() -> None:
    # RFC 7517 §4.4: a JWK's "alg" binds it to exactly that name.
    private = generate_key("Ed25519")
    claims = {"sub": "x", "exp": 60}
    for bound, used in (("EdDSA", "Ed25519"), ("Ed25519", "EdDSA")):
        keys = StaticKeys([public_jwk(private, kid="k", alg=bound)])
        # With only the other name allowed no token could verify: refused at start-up.
        with pytest.raises(ConfigurationError, match="no configured key can verify"):
            Verifier(keys=keys, algorithms=[used], clock=lambda: 0)
        verifier = Verifier(keys=keys, algorithms=[used, bound], clock=lambda: 0)
        with pytest.raises(KeyNotFound):
            verifier.verify(forge({"alg": used, "kid": "k"}, claims, private, used))


def test_rfc7517_4_5_static_keys_may_share_a_kid_across_key_types() -> None:
    rsa = public_jwk(generate_key("RS256"), kid="same")
    ec = public_jwk(generate_key("ES256"), kid="same")
    keys = StaticKeys.from_jwks({"keys": [rsa, ec]})
    key_set = keys.keys("same")
    assert [k.kty for k in key_set.candidates("same", "RS256")] == ["RSA"]
    assert [k.kty for k in key_set.candidates("same", "ES256")] == ["EC"]
