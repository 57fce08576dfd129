"""Key loading: every way a verification key enters jwt_guard, with the same checks on each.

A :class:`JWK` is one public (or, for HMAC, secret) verification key with its algorithm
binding. It is built from a JWK (:meth:`JWK.from_dict`), a JWKS document (:func:`load_jwks`),
a PEM key or certificate (:meth:`JWK.from_pem`, :meth:`JWK.from_der_certificate`), an HMAC
secret (:meth:`JWK.from_secret`) or any of these given to ``StaticKeys([...])``
(:func:`load_key`). Whatever the way in, the constructor makes the checks: no private key
material, RSA keys of 2048 to 8192 bits with e = 65537, curves we know with points on them,
HMAC secrets at least as long as the hash and never a lookalike of a public key.

Choosing among loaded keys is ``_keyset``'s job; the facts about algorithms are
``_algorithms``'.
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
from typing import Any, Final

from cryptography.exceptions import InvalidSignature as _CryptoInvalidSignature
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509 import load_der_x509_certificate, load_pem_x509_certificate

from ._algorithms import ALGORITHMS, CURVES, MIN_HMAC_BYTES, MIN_RSA_BITS, Algorithm
from ._errors import ConfigurationError, MalformedToken
from ._parse import b64url_decode

__all__ = ["JWK", "load_jwks", "load_key", "read_jwks"]

logger = logging.getLogger("jwt_guard")

#: A 16,384-bit modulus makes each verification cost milliseconds; no provider uses more.
MAX_RSA_BITS: Final = 8192
#: Every mainstream provider uses F4. Small exponents (3) invite sloppy-padding forgeries and
#: huge ones cost time; the set is deliberately tiny.
ALLOWED_RSA_EXPONENTS: Final = frozenset({65537})
#: A ``kid`` is a lookup key, never a path or a query (RFC 7515 §4.1.4). Real ones are short.
MAX_KID_LENGTH: Final = 256
#: RFC 7518 §6.3.2 (RSA), §6.2.2 (EC), RFC 8037 §2 (OKP): the members of a private JWK. A
#: verifier has no business holding private keys; a JWKS that publishes them is broken or
#: hostile.
_PRIVATE_MEMBERS: Final = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth"})

# Secrets that look like key material: configuring one of these as an HMAC secret is the
# setup for algorithm confusion (CVE-2022-29217, CVE-2017-11424): PEM anywhere in it,
# OpenSSH public keys, JWK or JWKS JSON. DER, raw or base64, is recognised by parsing it
# (see _looks_like_key), so a random secret that happens to start like one is not refused.
_KEY_LOOKALIKE = re.compile(
    rb"-----BEGIN [A-Z0-9 ]+-----"
    rb"|^\s*(sk-)?(ssh-[a-z0-9@.-]+|ecdsa-sha2-[a-z0-9@.-]+) "
    rb"|^\s*[\[{].*\"(kty|keys)\"",
    re.DOTALL,
)
_BASE64 = re.compile(rb"[A-Za-z0-9+/]+={0,2}")

_HASHES: Final[Mapping[str, Callable[[], hashes.HashAlgorithm]]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}

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
    if isinstance(public, rsa.RSAPublicKey):
        return "RSA", None
    if isinstance(public, ec.EllipticCurvePublicKey):
        for curve in CURVES.values():
            if curve.ec_curve is not None and isinstance(public.curve, curve.ec_curve):
                return "EC", curve.name
        raise ValueError("unsupported EC curve")
    if isinstance(public, ed25519.Ed25519PublicKey):
        return "OKP", "Ed25519"
    if isinstance(public, ed448.Ed448PublicKey):
        return "OKP", "Ed448"
    if isinstance(
        public,
        (
            rsa.RSAPrivateKey,
            ec.EllipticCurvePrivateKey,
            ed25519.Ed25519PrivateKey,
            ed448.Ed448PrivateKey,
        ),
    ):
        raise ValueError("pass the public key, not the private key")
    raise ValueError("unsupported public key type")


def _check_rsa(public: rsa.RSAPublicKey) -> None:
    bits = public.key_size
    if bits < MIN_RSA_BITS:
        raise ValueError(f"RSA keys must have at least {MIN_RSA_BITS} bits (RFC 7518 §3.3)")
    if bits > MAX_RSA_BITS:
        raise ValueError(f"RSA keys above {MAX_RSA_BITS} bits are refused (resource limit)")
    if public.public_numbers().e not in ALLOWED_RSA_EXPONENTS:
        raise ValueError("RSA public exponent must be 65537")


def _looks_like_key(raw: bytes) -> bool:
    if _KEY_LOOKALIKE.search(raw):
        return True
    ders = [raw]
    text = b"".join(raw.split())
    if _BASE64.fullmatch(text):
        with contextlib.suppress(binascii.Error):
            ders.append(base64.b64decode(text + b"=" * (-len(text) % 4)))
    return any(_is_der_key(der) for der in ders)


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
        "use",
    )

    kid: str | None
    algorithm: str | None
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
        if algorithm is not None and algorithm not in ALGORITHMS:
            raise ValueError("unsupported or unknown algorithm for this key")
        if algorithm is not None and ALGORITHMS[algorithm].kty != kty:
            raise ValueError("the key type does not fit the key's algorithm")
        self.kty = kty
        self._material = material
        self._size = len(material) if kty == "oct" else 0
        self.kid = kid
        self.algorithm = algorithm
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
        if "kid" in data and not isinstance(kid, str):
            raise ValueError("JWK kid must be a string")  # RFC 7517 §4.5 ("kid": null too)
        if alg is not None and not isinstance(alg, str):
            raise ValueError("JWK alg must be a string")
        if use is not None and not isinstance(use, str):
            raise ValueError("JWK use must be a string")
        if key_ops is not None and (
            not isinstance(key_ops, list) or not all(isinstance(op, str) for op in key_ops)
        ):
            raise ValueError("JWK key_ops must be a list of strings")
        if kty != "oct" and not _PRIVATE_MEMBERS.isdisjoint(data):
            raise ValueError("JWK contains private key material ('d' or other private members)")
        material: Any
        if kty == "RSA":
            n = int.from_bytes(_b64_field(data, "n"), "big")
            e = int.from_bytes(_b64_field(data, "e"), "big")
            if n.bit_length() > MAX_RSA_BITS:
                raise ValueError(f"RSA keys above {MAX_RSA_BITS} bits are refused")
            if e not in ALLOWED_RSA_EXPONENTS:
                raise ValueError("RSA public exponent must be 65537")
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
                okp: Any = ed25519.Ed25519PublicKey if name == "Ed25519" else ed448.Ed448PublicKey
                material = okp.from_public_bytes(x)
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
        hash_obj = _HASHES[spec.hash_name]()
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


def load_jwks(
    document: Mapping[str, Any],
    *,
    allow_symmetric: bool,
    strict: bool,
    reuse: Iterable[JWK] = (),
    max_keys: int = 100,
) -> list[JWK]:
    """The keys of a JWKS document (RFC 7517 §5).

    ``strict`` raises on the first bad entry (static configuration); otherwise bad entries
    are skipped with a log line (a remote document, where one odd key must not take the
    others down). Keys of ``reuse`` with the same fingerprint are taken over as they are, so
    a refresh keeps their prepared verification routines.
    """
    if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
        raise ValueError("a JWKS must be a JSON object with a 'keys' list")
    entries: list[Any] = document["keys"]
    if len(entries) > max_keys:
        raise ValueError(f"a JWKS may hold at most {max_keys} keys")
    previous = {k.fingerprint: k for k in reuse}
    loaded: list[JWK] = []
    for index, entry in enumerate(entries):
        try:
            if not isinstance(entry, Mapping):
                raise ValueError("a JWK must be a JSON object")
            key = previous.get(_fingerprint(entry))
            if key is None:
                key = JWK.from_dict(entry, allow_symmetric=allow_symmetric)
        except ValueError as exc:
            if strict:
                raise ConfigurationError(f"JWKS entry {index}: {exc}") from exc
            logger.warning("skipping JWKS entry %d: %s", index, exc)
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
