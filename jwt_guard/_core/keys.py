"""Key loading: every way a verification key enters jwt_guard, with the same checks on each.

A :class:`JWK` is one public (or, for HMAC, secret) verification key with its algorithm
binding. It is built from a JWK (:meth:`JWK.from_dict`), a JWKS document (:func:`load_jwks`),
a PEM key or certificate (:meth:`JWK.from_pem`, :meth:`JWK.from_der_certificate`), an HMAC
secret (:meth:`JWK.from_secret`) or any of these given to ``StaticKeys([...])``
(:func:`load_key`). Whatever the way in, the constructor makes the checks: no private key
material, RSA keys of 2048 to 8192 bits with e = 65537, curves we know with points on them,
an ``alg`` the key's type and curve can serve, HMAC secrets at least as long as the hash and
never a lookalike of a public key.

Choosing among loaded keys is ``keyset``'s job; the facts about algorithms are
``algorithms``'.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, NamedTuple

from cryptography.exceptions import InvalidSignature as _CryptoInvalidSignature
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509 import load_der_x509_certificate, load_pem_x509_certificate

from .algorithms import (
    ALGORITHMS,
    CURVES,
    HASHES,
    MAX_RSA_BITS,
    MIN_HMAC_BYTES,
    MIN_RSA_BITS,
    RSA_EXPONENT,
    Algorithm,
    curve_of,
    implied_algorithm,
)
from .errors import ConfigurationError, MalformedToken
from .parse import MAX_KID_LENGTH, b64url_decode

__all__ = ["JWK", "Skipped", "load_jwks", "load_key", "read_jwks"]

logger = logging.getLogger("jwt_guard")

#: RFC 7518 §6.3.2 (RSA), §6.2.2 (EC), RFC 8037 §2 (OKP): the members of a private JWK. A
#: verifier has no business holding private keys; a JWKS that publishes them is broken or
#: hostile.
_PRIVATE_MEMBERS: Final = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth"})
_PRIVATE_REASON: Final = "JWK contains private key material ('d' or other private members)"
#: The private key classes of cryptography that a caller might pass by mistake.
_PRIVATE_KEY_TYPES: Final[tuple[type, ...]] = (
    rsa.RSAPrivateKey,
    ec.EllipticCurvePrivateKey,
    *(c.okp_private for c in CURVES.values() if c.okp_private is not None),
)

# Secrets that look like key material: configuring one of these as an HMAC secret is the
# setup for algorithm confusion (CVE-2022-29217, CVE-2017-11424). _looks_like_key reads a
# secret as text, as JSON, and as the bytes its base64, base64url or hex text decodes to, and
# refuses it if any reading is key material. DER is recognised by parsing it, so a random
# secret that happens to start like one is not refused.
#
# Key material written as text, matched on any line and in any case: PEM armour anywhere
# (RFC 7468), the SSH2 armour (RFC 4716 §3.2), an OpenSSH public key line (a key type name
# of RFC 4253 §6.6, "sk-" for FIDO keys, then a space or tab), a JWK or JWKS as JSON (RFC
# 7517 §4.1 "kty", §5.1 "keys"; JSON that parses is judged by _is_jwk_json), and a "kty"
# member written as YAML.
_KEY_TEXT = re.compile(
    rb"-----BEGIN [A-Z0-9 ]+-----"
    rb"|---- BEGIN SSH2 [A-Z0-9 ]+----"
    rb"|^[ \t]*(sk-)?(ssh|ecdsa-sha2)-[a-z0-9@.-]+[ \t]"
    rb"|^[ \t]*[\[{].*[\"'](kty|keys)[\"']"
    rb"|^[ \t]*(-[ \t]+)?[\"']?kty[\"']?[ \t]*:",
    re.DOTALL | re.MULTILINE | re.IGNORECASE,
)
# An SSH public key blob (RFC 4253 §6.6): the length-prefixed key type name comes first.
_SSH_BLOB = re.compile(rb"\x00\x00\x00[\x07-\x40](sk-)?(ssh|ecdsa-sha2)-[a-z0-9@.-]", re.DOTALL)
# Text that may be an encoding of bytes, once whitespace is removed: base64 in either alphabet
# (RFC 4648 §4, §5; padded or not), and hex (with or without the colons of `openssl -text`).
_BASE64_TEXT = re.compile(rb"[A-Za-z0-9+/_-]+={0,2}")
_HEX_TEXT = re.compile(rb"(?:[0-9A-Fa-f]{2}:?)+")
_TO_STD_BASE64 = bytes.maketrans(b"-_", b"+/")
_BOM: Final = b"\xef\xbb\xbf"

Verify = Callable[[bytes, bytes], bool]


def _b64_field(jwk: Mapping[str, Any], name: str) -> bytes:
    value = jwk.get(name)
    if not isinstance(value, str) or not value:
        raise ValueError(f"JWK member {name!r} must be a non-empty base64url string")
    if re.fullmatch(r"[A-Za-z0-9_-]+", value) is None:
        raise ValueError(f"JWK member {name!r} is not base64url")
    try:
        return b64url_decode(value)
    except MalformedToken as exc:
        raise ValueError(f"JWK member {name!r} is not canonical base64url") from exc


def _describe(public: Any) -> tuple[str, str | None]:
    """The JWK ``kty`` and ``crv`` of a public key object; private and unknown keys refused."""
    if isinstance(public, _PRIVATE_KEY_TYPES):
        raise ValueError("pass the public key, not the private key")
    if isinstance(public, rsa.RSAPublicKey):
        return "RSA", None
    curve = curve_of(public)
    if curve is not None:
        return curve.kty, curve.name
    if isinstance(public, ec.EllipticCurvePublicKey):
        raise ValueError("unsupported EC curve")
    raise ValueError("unsupported public key type")


def _check_rsa(public: rsa.RSAPublicKey) -> None:
    bits = public.key_size
    if bits < MIN_RSA_BITS:
        raise ValueError(f"RSA keys must have at least {MIN_RSA_BITS} bits (RFC 7518 §3.3)")
    if bits > MAX_RSA_BITS:
        raise ValueError(f"RSA keys above {MAX_RSA_BITS} bits are refused (resource limit)")
    if public.public_numbers().e != RSA_EXPONENT:
        raise ValueError(f"RSA public exponent must be {RSA_EXPONENT}")


def _looks_like_key(raw: bytes) -> bool:
    """Whether ``raw``, read any way an operator might have pasted it, is key material."""
    raw = raw.removeprefix(_BOM)  # editors on Windows start UTF-8 files with one
    if _KEY_TEXT.search(raw) or _is_jwk_json(raw) or _is_der_key(raw):
        return True
    # One level of encoding: a key saved as base64, base64url or hex text.
    return any(
        _KEY_TEXT.search(data) or _SSH_BLOB.match(data) or _is_jwk_json(data) or _is_der_key(data)
        for data in _decodings(raw)
    )


def _decodings(raw: bytes) -> set[bytes]:
    """What ``raw`` decodes to as base64 (either alphabet, padded or not) or hex text."""
    text = b"".join(raw.split())
    found = set()
    if _HEX_TEXT.fullmatch(text):
        found.add(bytes.fromhex(text.replace(b":", b"").decode("ascii")))
    if _BASE64_TEXT.fullmatch(text):
        std = text.translate(_TO_STD_BASE64).rstrip(b"=")
        with contextlib.suppress(binascii.Error):  # a length no encoder makes
            found.add(base64.b64decode(std + b"=" * (-len(std) % 4), validate=True))
    return found


def _is_jwk_json(raw: bytes) -> bool:
    # Parsed, not matched: JSON may spell "kty" as "\u006bty".
    if raw.lstrip()[:1] not in (b"{", b"["):
        return False
    try:
        document = json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return False
    items = document if isinstance(document, list) else [document]
    return any(isinstance(item, dict) and ("kty" in item or "keys" in item) for item in items)


def _is_der_key(der: bytes) -> bool:
    if der[:1] != b"\x30":  # every DER key or certificate is a SEQUENCE
        return False
    for load in (serialization.load_der_public_key, load_der_x509_certificate):
        try:
            load(der)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            continue
        return True
    return False


def _check_secret(raw: bytes, algorithm: str | None) -> None:
    spec = ALGORITHMS.get(algorithm) if algorithm is not None else None
    if spec is not None and spec.family != "HMAC":
        raise ValueError("an HMAC secret can only be bound to HS256, HS384 or HS512")
    minimum = max(MIN_HMAC_BYTES, spec.min_key_bits // 8 if spec is not None else 0)
    if len(raw) < minimum:
        raise ValueError(
            f"HMAC secrets must be at least {minimum} bytes for this algorithm (RFC 7518 §3.2)"
        )
    if _looks_like_key(raw):
        # CVE-2022-29217: a public key used as an HMAC secret lets anyone who has the public
        # key forge tokens. Refuse anything that looks like key material, however it came.
        raise ValueError("this HMAC secret looks like a public key or JWK: refused")


class JWK:
    """One verification key and what it may be used for.

    Build it with :meth:`from_dict` (a JWK, RFC 7517), :meth:`from_pem` (a public key or
    certificate) or :meth:`from_secret` (an HMAC secret). Every way in ends in the constructor,
    which makes the checks. Instances are immutable and hashable by identity; the prepared
    verification routines are built once per algorithm.
    """

    __slots__ = (
        "_material",
        "_prepared",
        "_size",
        "algorithm",
        "crv",
        "fingerprint",
        "key_ops",
        "kid",
        "kty",
        "own_algorithm",
        "use",
    )

    kid: str | None
    algorithm: str | None
    #: The one algorithm this key is for when algorithms follow the keys: its ``alg``, else
    #: what its type and curve imply (``None`` for a secret without ``alg``).
    own_algorithm: str | None
    kty: str
    crv: str | None
    use: str | None
    key_ops: frozenset[str] | None
    fingerprint: str

    def __init__(
        self,
        *,
        kty: str,
        material: Any,
        kid: str | None = None,
        algorithm: str | None = None,
        crv: str | None = None,
        use: str | None = None,
        key_ops: Iterable[str] | None = None,
        fingerprint: str,
    ) -> None:
        if kid is not None and (not isinstance(kid, str) or len(kid) > MAX_KID_LENGTH):
            raise ValueError(f"kid must be a string of at most {MAX_KID_LENGTH} characters")
        if kty == "oct":
            if not isinstance(material, bytes):
                raise ValueError("an HMAC secret must be bytes")
            _check_secret(material, algorithm)
        else:
            found = _describe(material)
            if found[0] != kty or (crv is not None and found[1] != crv):
                raise ValueError("the key does not fit its kty/crv")
            crv = found[1]
            if kty == "RSA":
                _check_rsa(material)
        if algorithm is not None:
            spec = ALGORITHMS.get(algorithm)
            if spec is None:
                # An encryption key (RSA-OAEP, ECDH-ES: Keycloak publishes one) or a signature
                # algorithm jwt_guard does not verify: named, so the log says why it is skipped.
                # Listed for this key's kind: a public key never verifies HS* (and a JWKS
                # never carries a secret), so HS* is no fix to offer for it.
                shown = algorithm[:40] if isinstance(algorithm, str) else type(algorithm).__name__
                verified = sorted(
                    name for name, s in ALGORITHMS.items() if (s.family == "HMAC") == (kty == "oct")
                )
                raise ValueError(
                    f"alg {shown!r} is not a signature algorithm jwt_guard verifies "
                    f"({', '.join(verified)})"
                )
            if spec.kty != kty:
                raise ValueError("the key type does not fit the key's algorithm")
            if spec.curves and crv not in spec.curves:
                # RFC 7518 §3.4, RFC 9864 §2.2: ES256 only on P-256, Ed25519 only on
                # Ed25519. A key bound to an algorithm its curve cannot serve would load
                # and then never verify anything.
                raise ValueError(f"a key on {crv} cannot be bound to {algorithm}")
        self.kty = kty
        self._material = material
        self._size = len(material) if kty == "oct" else 0
        self.kid = kid
        self.algorithm = algorithm
        self.own_algorithm = algorithm or implied_algorithm(kty, crv)
        self.crv = crv
        self.use = use
        self.key_ops = frozenset(key_ops) if key_ops is not None else None
        self.fingerprint = fingerprint
        self._prepared: dict[str, Verify] = {}

    def __repr__(self) -> str:
        # Never the secret; the kid is the operator's own configuration, shown for debugging.
        return f"JWK(kty={self.kty!r}, kid={self.kid!r}, alg={self.algorithm!r})"

    # -- construction -------------------------------------------------------------------

    @classmethod
    def from_dict(
        cls,
        data: Mapping[str, Any],
        *,
        allow_symmetric: bool = True,
    ) -> JWK:
        """Load a public JWK (RFC 7517 §4, RFC 7518 §6). Private members are refused."""
        if not isinstance(data, Mapping):
            raise ValueError("a JWK must be a JSON object")
        kty = data.get("kty")
        kid = data.get("kid")
        alg = data.get("alg")
        use = data.get("use")
        key_ops = data.get("key_ops")
        if _publishes_private(data):
            # First, whatever else is wrong with the entry: the log must say a secret leaked.
            raise ValueError(_PRIVATE_REASON)
        # RFC 7517 §4.2-4.5: members with these types when present; null is not "absent"
        # ({"alg": null} must not become "the algorithm the key type implies").
        if "kid" in data and not isinstance(kid, str):
            raise ValueError("JWK kid must be a string")
        if "alg" in data and not isinstance(alg, str):
            raise ValueError("JWK alg must be a string")
        if "use" in data and not isinstance(use, str):
            raise ValueError("JWK use must be a string")
        if "key_ops" in data and (
            not isinstance(key_ops, list) or not all(isinstance(op, str) for op in key_ops)
        ):
            raise ValueError("JWK key_ops must be a list of strings")
        material: Any
        if kty == "RSA":
            n = int.from_bytes(_b64_field(data, "n"), "big")
            e = int.from_bytes(_b64_field(data, "e"), "big")
            if n.bit_length() > MAX_RSA_BITS:
                # Before building the key object, not only in the constructor's check: a
                # hostile JWKS must not make us build (and validate) a huge key first.
                raise ValueError(f"RSA keys above {MAX_RSA_BITS} bits are refused")
            try:
                material = rsa.RSAPublicNumbers(e, n).public_key()
            except ValueError as exc:
                raise ValueError("invalid RSA public key") from exc
        elif kty in ("EC", "OKP"):
            name = data.get("crv")
            curve = CURVES.get(name) if isinstance(name, str) else None
            if curve is None or curve.kty != kty:
                raise ValueError(f"unsupported {kty} curve")
            x = _b64_field(data, "x")
            if len(x) != curve.size:
                # RFC 7518 §6.2.1.2, RFC 8037 §2: fixed-length coordinates / keys.
                raise ValueError(f"{kty} key has the wrong length")
            if curve.ec_curve is not None:
                y = _b64_field(data, "y")
                if len(y) != curve.size:
                    raise ValueError("EC coordinates have the wrong length (RFC 7518 §6.2.1.2)")
                try:
                    # cryptography checks that the point is on the curve (invalid-curve attacks).
                    material = ec.EllipticCurvePublicNumbers(
                        int.from_bytes(x, "big"), int.from_bytes(y, "big"), curve.ec_curve()
                    ).public_key()
                except ValueError as exc:
                    raise ValueError("invalid EC public key") from exc
            else:
                assert curve.okp_public is not None  # every OKP curve of the table names it
                material = curve.okp_public.from_public_bytes(x)
        elif kty == "oct":
            if not allow_symmetric:
                raise ValueError("symmetric keys are not accepted from this source")
            material = _b64_field(data, "k")
        else:
            raise ValueError("unsupported key type")
        return cls(
            kty=kty,
            material=material,
            kid=kid,
            algorithm=alg,
            use=use,
            key_ops=key_ops,
            fingerprint=_fingerprint(data),
        )

    @classmethod
    def from_pem(
        cls,
        pem: str | bytes,
        *,
        kid: str | None = None,
        algorithm: str | None = None,
    ) -> JWK:
        """Load a PEM public key (SPKI or PKCS#1) or X.509 certificate."""
        data = pem.encode("ascii") if isinstance(pem, str) else bytes(pem)
        if b"PRIVATE KEY-----" in data:
            raise ValueError("pass the public key (or certificate), not the private key")
        try:
            if b"-----BEGIN CERTIFICATE-----" in data:
                public: Any = load_pem_x509_certificate(data).public_key()
            else:
                public = serialization.load_pem_public_key(data)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise ValueError("not a PEM public key or certificate") from exc
        return cls._from_public(public, kid=kid, algorithm=algorithm)

    @classmethod
    def from_der_certificate(
        cls, der: bytes, *, kid: str | None = None, algorithm: str | None = None
    ) -> JWK:
        """Load the public key of a DER X.509 certificate."""
        try:
            public = load_der_x509_certificate(der).public_key()
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            # UnsupportedAlgorithm (not a ValueError): a key type cryptography does not know.
            raise ValueError("not a DER certificate with a supported public key") from exc
        return cls._from_public(public, kid=kid, algorithm=algorithm)

    @classmethod
    def _from_public(cls, public: Any, *, kid: str | None, algorithm: str | None) -> JWK:
        kty, crv = _describe(public)
        spki = public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return cls(
            kty=kty,
            material=public,
            kid=kid,
            algorithm=algorithm,
            crv=crv,
            fingerprint="spki:" + hashlib.sha256(spki).hexdigest(),
        )

    @classmethod
    def from_secret(
        cls,
        secret: str | bytes,
        *,
        kid: str | None = None,
        algorithm: str | None = "HS256",
    ) -> JWK:
        """An HMAC secret bound to ``algorithm`` (``None``: every HS* it is long enough for)."""
        raw = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
        return cls(
            kty="oct",
            material=raw,
            kid=kid,
            algorithm=algorithm,
            fingerprint="oct:" + hashlib.sha256(b"jwt_guard-fp\x00" + raw).hexdigest(),
        )

    # -- use ----------------------------------------------------------------------------

    def fits(self, alg: str) -> bool:
        """Whether this key may verify a signature made with ``alg`` (RFC 8725 §3.1)."""
        spec = ALGORITHMS.get(alg)
        if spec is None or spec.kty != self.kty:
            # HMAC keys never verify RS/PS/ES/EdDSA and public keys never act as HMAC secrets.
            return False
        if self.algorithm is not None and self.algorithm != alg:
            # A JWK's "alg" binds the key to exactly one algorithm (RFC 7517 §4.4).
            return False
        if self.use is not None and self.use != "sig":
            return False  # RFC 7517 §4.2
        if self.key_ops is not None and "verify" not in self.key_ops:
            return False  # RFC 7517 §4.3
        if spec.curves:
            # ES256 only on P-256; Ed25519 only on Ed25519 (RFC 9864 §2.2); EdDSA on either.
            return self.crv in spec.curves
        if spec.family == "HMAC":
            return self._size * 8 >= spec.min_key_bits  # RFC 7518 §3.2
        return True

    def verify(self, alg: str, signing_input: bytes, signature: bytes) -> bool:
        """Check ``signature`` over ``signing_input``; the caller has checked :meth:`fits`."""
        prepared = self._prepared.get(alg)
        if prepared is None:
            prepared = self._prepared[alg] = self._prepare(ALGORITHMS[alg])
        return prepared(signing_input, signature)

    def _prepare(self, spec: Algorithm) -> Verify:
        key = self._material
        if spec.family == "HMAC":
            secret: bytes = key
            digest = spec.hash_name
            assert digest is not None

            def verify_hmac(data: bytes, sig: bytes) -> bool:
                return hmac.compare_digest(hmac.digest(secret, data, digest), sig)

            return verify_hmac
        if spec.family == "OKP":

            def verify_okp(data: bytes, sig: bytes) -> bool:
                try:
                    key.verify(sig, data)
                except _CryptoInvalidSignature:
                    return False
                return True

            return verify_okp
        assert spec.hash_name is not None
        hash_obj = HASHES[spec.hash_name]()
        if spec.family in ("RSA", "PSS"):
            pad: padding.AsymmetricPadding
            if spec.family == "RSA":
                pad = padding.PKCS1v15()
            else:
                # RFC 7518 §3.5: MGF1 with the same hash, salt as long as the hash output.
                pad = padding.PSS(mgf=padding.MGF1(hash_obj), salt_length=hash_obj.digest_size)
            expected_len = (key.key_size + 7) // 8

            def verify_rsa(data: bytes, sig: bytes) -> bool:
                if len(sig) != expected_len:
                    return False
                try:
                    key.verify(sig, data, pad, hash_obj)
                except _CryptoInvalidSignature:
                    return False
                return True

            return verify_rsa
        # ECDSA: RFC 7518 §3.4, the signature is R || S, each exactly the coordinate size.
        # DER-encoded signatures are refused, and so are R or S outside [1, n-1]
        # (CVE-2022-21449, "psychic signatures").
        assert self.crv is not None
        curve = CURVES[self.crv]
        size = curve.size
        order = curve.order
        assert order is not None
        ecdsa = ec.ECDSA(hash_obj)

        def verify_ec(data: bytes, sig: bytes) -> bool:
            if len(sig) != 2 * size:
                return False
            r = int.from_bytes(sig[:size], "big")
            s = int.from_bytes(sig[size:], "big")
            if not (0 < r < order and 0 < s < order):
                return False
            try:
                key.verify(encode_dss_signature(r, s), data, ecdsa)
            except _CryptoInvalidSignature:
                return False
            return True

        return verify_ec


def _fingerprint(data: Mapping[str, Any]) -> str:
    # Identity of a JWK as published: the same document entry maps to the same fingerprint,
    # so a refreshed key set can reuse the prepared key objects of the previous one.
    canonical = json.dumps(dict(data), sort_keys=True, separators=(",", ":"), default=str)
    return "jwk:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def load_key(item: JWK | str | bytes | Mapping[str, Any]) -> JWK:
    """One item of ``StaticKeys([...])``: a JWK object, a PEM key or certificate, a JWK dict."""
    if isinstance(item, JWK):
        return item
    if isinstance(item, (str, bytes)):
        return JWK.from_pem(item)
    if isinstance(item, Mapping):
        return JWK.from_dict(item)
    raise TypeError("keys must be JWK objects, PEM strings or JWK dicts")


class Skipped(NamedTuple):
    """A JWKS entry :func:`load_jwks` left out, for its source to log (once per entry)."""

    number: int  # its place in the "keys" list
    reason: str
    #: The entry as published (see ``_fingerprint``): the same entry at the next fetch has
    #: the same one, so a source warns once, not at every fetch anyone can trigger.
    fingerprint: str
    #: WARNING, or DEBUG for an encryption key (``"use": "enc"``): not ours to use.
    level: int


def _publishes_private(entry: Mapping[str, Any]) -> bool:
    # RFC 7518 §6.3.2, §6.2.2, RFC 8037 §2: a public key's private members. (An "oct" key is
    # a secret by nature: a remote set refuses it, allow_symmetric=False, with a warning.)
    return entry.get("kty") != "oct" and not _PRIVATE_MEMBERS.isdisjoint(entry)


def load_jwks(
    document: Mapping[str, Any],
    *,
    allow_symmetric: bool,
    strict: bool,
    reuse: Iterable[JWK] = (),
    max_keys: int = 100,
    skipped: list[Skipped] | None = None,
) -> list[JWK]:
    """The keys of a JWKS document (RFC 7517 §5).

    ``strict`` raises on the first bad entry (static configuration); otherwise bad entries
    are left out and listed in ``skipped`` (a remote document, where one odd key must not take
    the others down; its source logs them). Keys of ``reuse`` with the same fingerprint are
    taken over as they are, so a refresh keeps their prepared verification routines.
    """
    if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
        raise ValueError("a JWKS must be a JSON object with a 'keys' list")
    entries: list[Any] = document["keys"]
    if len(entries) > max_keys:
        raise ValueError(f"a JWKS may hold at most {max_keys} keys")
    previous = {k.fingerprint: k for k in reuse}
    loaded: list[JWK] = []
    for index, entry in enumerate(entries):
        fingerprint = ""
        try:
            if not isinstance(entry, Mapping):
                raise ValueError("a JWK must be a JSON object")
            fingerprint = _fingerprint(entry)
            key = previous.get(fingerprint)
            if key is None:
                key = JWK.from_dict(entry, allow_symmetric=allow_symmetric)
        except ValueError as exc:
            if strict:
                raise ConfigurationError(f"JWKS entry {index}: {exc}") from exc
            # An encryption key (RFC 7517 §4.2 "use": "enc") is not ours to use, and every
            # Keycloak JWKS has one: skipped quietly, unless it is published with its private
            # part (the provider leaked a secret). Anything else is worth a warning.
            quiet = (
                isinstance(entry, Mapping)
                and entry.get("use") == "enc"
                and not _publishes_private(entry)
            )
            level = logging.DEBUG if quiet else logging.WARNING
            if skipped is None:
                logger.log(level, "skipping JWKS entry %d: %s", index, exc)
            else:
                fingerprint = fingerprint or f"entry:{type(entry).__name__}:{index}"
                skipped.append(Skipped(index, str(exc), fingerprint, level))
            continue
        loaded.append(key)
    return loaded


def read_jwks(source: Mapping[str, Any] | str | bytes | os.PathLike[str]) -> Any:
    """A JWKS document given as a dict, its JSON text, or the path of a JSON file."""
    if isinstance(source, os.PathLike) or (
        isinstance(source, str) and not source.lstrip().startswith("{")
    ):
        with open(os.fspath(source), "rb") as fh:
            return json.loads(fh.read())
    if isinstance(source, (str, bytes)):
        return json.loads(source)
    return source
