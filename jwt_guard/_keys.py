"""Keys: loading and checking JWKs and PEM keys, and picking the key for a token.

A :class:`JWK` is one public (or, for HMAC, secret) verification key with its algorithm
binding. A :class:`KeySet` answers "which keys may verify a token with this ``kid`` and
``alg``" without any I/O. A key *source* (:class:`KeySource`) hands the verifier a key set:
:class:`StaticKeys` always the same one, the remote JWKS source (``_jwks``) a cached one that it
refreshes. Selection is the same code for both (panva/jose keeps ``jwks/local`` apart from
``jwks/remote`` in the same way).
"""

from __future__ import annotations

import abc
import hashlib
import hmac
import json
import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from cryptography.exceptions import InvalidSignature as _CryptoInvalidSignature
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509 import load_der_x509_certificate, load_pem_x509_certificate

from ._errors import ConfigurationError, KeyNotFound, MalformedToken
from ._parse import b64url_decode

__all__ = [
    "ALGORITHMS",
    "JWK",
    "KeySet",
    "KeySource",
    "StaticKeys",
]

logger = logging.getLogger("jwt_guard")

#: RFC 7518 §3.3 and RFC 8725 §3.5: RSA keys of 2048 bits or more.
MIN_RSA_BITS: Final = 2048
#: A 16,384-bit modulus makes each verification cost milliseconds; no provider uses more.
MAX_RSA_BITS: Final = 8192
#: Every mainstream provider uses F4. Small exponents (3) invite sloppy-padding forgeries and
#: huge ones cost time; the set is deliberately tiny.
ALLOWED_RSA_EXPONENTS: Final = frozenset({65537})
#: RFC 7518 §3.2: an HMAC key must be at least as long as the hash output; 32 bytes for HS256.
MIN_HMAC_BYTES: Final = 32
#: A ``kid`` is a lookup key, never a path or a query (RFC 7515 §4.1.4). Real ones are short.
MAX_KID_LENGTH: Final = 256
#: Tokens without ``kid`` are tried against at most this many fitting keys, so a flood of
#: kid-less tokens cannot multiply the signature checks per request.
MAX_KIDLESS_CANDIDATES: Final = 4


@dataclass(frozen=True)
class _Alg:
    name: str
    family: str  # "RSA", "PSS", "EC", "OKP", "HMAC"
    kty: str
    hash_name: str | None
    curve: str | None = None


#: The signature algorithms jwt_guard verifies (RFC 7518 §3.1, RFC 8037 §3.1).
ALGORITHMS: Final[Mapping[str, _Alg]] = {
    a.name: a
    for a in (
        _Alg("RS256", "RSA", "RSA", "sha256"),
        _Alg("RS384", "RSA", "RSA", "sha384"),
        _Alg("RS512", "RSA", "RSA", "sha512"),
        _Alg("PS256", "PSS", "RSA", "sha256"),
        _Alg("PS384", "PSS", "RSA", "sha384"),
        _Alg("PS512", "PSS", "RSA", "sha512"),
        _Alg("ES256", "EC", "EC", "sha256", "P-256"),
        _Alg("ES384", "EC", "EC", "sha384", "P-384"),
        _Alg("ES512", "EC", "EC", "sha512", "P-521"),
        _Alg("EdDSA", "OKP", "OKP", None),
        _Alg("HS256", "HMAC", "oct", "sha256"),
        _Alg("HS384", "HMAC", "oct", "sha384"),
        _Alg("HS512", "HMAC", "oct", "sha512"),
    )
}

_HASHES: Final[Mapping[str, Callable[[], hashes.HashAlgorithm]]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
_DIGEST_SIZE: Final = {"sha256": 32, "sha384": 48, "sha512": 64}

_CURVES: Final[Mapping[str, tuple[ec.EllipticCurve, int]]] = {
    # curve object and coordinate size in bytes (RFC 7518 §3.4, §6.2.1.2)
    "P-256": (ec.SECP256R1(), 32),
    "P-384": (ec.SECP384R1(), 48),
    "P-521": (ec.SECP521R1(), 66),
}
_CURVE_ORDERS: Final = {
    "P-256": 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
    "P-384": int(
        "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973",
        16,
    ),
    "P-521": int(
        "01FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF"
        "FA51868783BF2F966B7FCC0148F709A5D03BB5C9B8899C47AEBB6FB71E91386409",
        16,
    ),
}
_OKP_CURVES: Final = {"Ed25519": 32, "Ed448": 57}

# Secrets that look like key material: configuring one of these as an HMAC secret is the
# setup for algorithm confusion (CVE-2022-29217, CVE-2017-11424).
_KEY_LOOKALIKE = re.compile(
    rb"^\s*(-----BEGIN |ssh-(rsa|ed25519|dss) |ecdsa-sha2-|\{\s*\"(kty|keys)\"|MII)",
)

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


def _check_rsa(public: rsa.RSAPublicKey) -> None:
    numbers = public.public_numbers()
    bits = public.key_size
    if bits < MIN_RSA_BITS:
        raise ValueError(f"RSA keys must have at least {MIN_RSA_BITS} bits (RFC 7518 §3.3)")
    if bits > MAX_RSA_BITS:
        raise ValueError(f"RSA keys above {MAX_RSA_BITS} bits are refused (resource limit)")
    if numbers.e not in ALLOWED_RSA_EXPONENTS:
        raise ValueError("RSA public exponent must be 65537")


class JWK:
    """One verification key and what it may be used for.

    Build it with :meth:`from_dict` (a JWK, RFC 7517), :meth:`from_pem` (a public key or
    certificate) or :meth:`from_secret` (an HMAC secret). Instances are immutable and hashable
    by identity; the prepared verification routines are built once per algorithm.
    """

    __slots__ = (
        "_material",
        "_prepared",
        "_secret",
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
        if algorithm is not None and algorithm not in ALGORITHMS:
            raise ValueError("unsupported or unknown algorithm for this key")
        if algorithm is not None and ALGORITHMS[algorithm].kty != kty:
            raise ValueError("the key type does not fit the key's algorithm")
        if kid is not None and (not isinstance(kid, str) or len(kid) > MAX_KID_LENGTH):
            raise ValueError(f"kid must be a string of at most {MAX_KID_LENGTH} characters")
        self.kty = kty
        self._material = material
        self._secret = material if kty == "oct" else None
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
        if kid is not None and not isinstance(kid, str):
            raise ValueError("JWK kid must be a string")
        if alg is not None and not isinstance(alg, str):
            raise ValueError("JWK alg must be a string")
        if use is not None and not isinstance(use, str):
            raise ValueError("JWK use must be a string")
        if key_ops is not None and (
            not isinstance(key_ops, list) or not all(isinstance(op, str) for op in key_ops)
        ):
            raise ValueError("JWK key_ops must be a list of strings")
        if kty in ("RSA", "EC", "OKP") and "d" in data:
            # A verifier has no business holding private keys; a JWKS that publishes them is
            # broken or hostile.
            raise ValueError("JWK contains private key material ('d')")
        crv: str | None = None
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
            _check_rsa(material)
        elif kty == "EC":
            ec_crv = data.get("crv")
            if not isinstance(ec_crv, str) or ec_crv not in _CURVES:
                raise ValueError("unsupported EC curve")
            crv = ec_crv
            curve, size = _CURVES[crv]
            x, y = _b64_field(data, "x"), _b64_field(data, "y")
            if len(x) != size or len(y) != size:
                raise ValueError("EC coordinates have the wrong length (RFC 7518 §6.2.1.2)")
            try:
                # cryptography checks that the point is on the curve (invalid-curve attacks).
                material = ec.EllipticCurvePublicNumbers(
                    int.from_bytes(x, "big"), int.from_bytes(y, "big"), curve
                ).public_key()
            except ValueError as exc:
                raise ValueError("invalid EC public key") from exc
        elif kty == "OKP":
            okp_crv = data.get("crv")
            if not isinstance(okp_crv, str) or okp_crv not in _OKP_CURVES:
                raise ValueError("unsupported OKP curve")
            crv = okp_crv
            x = _b64_field(data, "x")
            if len(x) != _OKP_CURVES[crv]:
                raise ValueError("OKP key has the wrong length (RFC 8037 §2)")
            okp_cls: Any = ed25519.Ed25519PublicKey if crv == "Ed25519" else ed448.Ed448PublicKey
            material = okp_cls.from_public_bytes(x)
        elif kty == "oct":
            if not allow_symmetric:
                raise ValueError("symmetric keys are not accepted from this source")
            material = _b64_field(data, "k")
            _check_secret(material, alg)
        else:
            raise ValueError("unsupported key type")
        return cls(
            kty=kty,
            material=material,
            kid=kid,
            algorithm=alg,
            crv=crv,
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
        except ValueError as exc:
            raise ValueError("not a DER certificate") from exc
        return cls._from_public(public, kid=kid, algorithm=algorithm)

    @classmethod
    def _from_public(cls, public: Any, *, kid: str | None, algorithm: str | None) -> JWK:
        crv: str | None = None
        if isinstance(public, rsa.RSAPublicKey):
            _check_rsa(public)
            kty = "RSA"
        elif isinstance(public, ec.EllipticCurvePublicKey):
            kty = "EC"
            crv = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}.get(
                public.curve.name
            )
            if crv is None:
                raise ValueError("unsupported EC curve")
        elif isinstance(public, ed25519.Ed25519PublicKey):
            kty, crv = "OKP", "Ed25519"
        elif isinstance(public, ed448.Ed448PublicKey):
            kty, crv = "OKP", "Ed448"
        else:
            raise ValueError("unsupported public key type")
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
        if algorithm is not None and (
            algorithm not in ALGORITHMS or ALGORITHMS[algorithm].family != "HMAC"
        ):
            raise ValueError("an HMAC secret can only be bound to HS256, HS384 or HS512")
        raw = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
        _check_secret(raw, algorithm)
        if _KEY_LOOKALIKE.match(raw):
            # CVE-2022-29217: a public key used as an HMAC secret lets anyone who has the public
            # key forge tokens. Refuse anything that looks like key material.
            raise ValueError("this HMAC secret looks like a public key or JWK: refused")
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
        if spec.family == "EC":
            return self.crv == spec.curve
        if spec.family == "OKP":
            return self.crv in _OKP_CURVES
        if spec.family == "HMAC":
            assert spec.hash_name is not None
            return self._size >= _DIGEST_SIZE[spec.hash_name]  # RFC 7518 §3.2
        return True

    def verify(self, alg: str, signing_input: bytes, signature: bytes) -> bool:
        """Check ``signature`` over ``signing_input``; the caller has checked :meth:`fits`."""
        prepared = self._prepared.get(alg)
        if prepared is None:
            prepared = self._prepared[alg] = self._prepare(ALGORITHMS[alg])
        return prepared(signing_input, signature)

    def _prepare(self, spec: _Alg) -> Verify:
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
        assert spec.curve is not None
        size = _CURVES[spec.curve][1]
        order = _CURVE_ORDERS[spec.curve]
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


def _check_secret(raw: bytes, algorithm: str | None) -> None:
    minimum = MIN_HMAC_BYTES
    if algorithm is not None and algorithm in ALGORITHMS:
        hash_name = ALGORITHMS[algorithm].hash_name
        if hash_name is not None:
            minimum = max(minimum, _DIGEST_SIZE[hash_name])
    if len(raw) < minimum:
        raise ValueError(
            f"HMAC secrets must be at least {minimum} bytes for this algorithm (RFC 7518 §3.2)"
        )


def _fingerprint(data: Mapping[str, Any]) -> str:
    # Identity of a JWK as published: the same document entry maps to the same fingerprint,
    # so a refreshed key set can reuse the prepared key objects of the previous one.
    canonical = json.dumps(dict(data), sort_keys=True, separators=(",", ":"), default=str)
    return "jwk:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class KeySet:
    """An immutable set of keys with lookup by ``kid`` and algorithm."""

    __slots__ = ("_by_kid", "_fingerprints", "_memo", "keys")

    def __init__(self, keys: Iterable[JWK]) -> None:
        self.keys: tuple[JWK, ...] = tuple(keys)
        by_kid: dict[str, list[JWK]] = {}
        for key in self.keys:
            if key.kid is not None:
                by_kid.setdefault(key.kid, []).append(key)
        self._by_kid = {kid: tuple(found) for kid, found in by_kid.items()}
        self._fingerprints = frozenset(k.fingerprint for k in self.keys)
        # (kid, alg) -> candidates, filled only for kids in the set (and no kid), so tokens
        # with made-up kids cannot grow it.
        self._memo: dict[tuple[str | None, str], tuple[JWK, ...]] = {}

    def __len__(self) -> int:
        return len(self.keys)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, JWK) and key.fingerprint in self._fingerprints

    def __repr__(self) -> str:
        return f"KeySet({len(self.keys)} keys)"

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(sorted(self._by_kid))

    def has_kid(self, kid: str) -> bool:
        return kid in self._by_kid

    def candidates(self, kid: str | None, alg: str) -> Sequence[JWK]:
        """The keys that may verify a token with this header; raises :class:`KeyNotFound`."""
        memo = self._memo.get((kid, alg))
        if memo:
            return memo
        if memo is not None or alg not in ALGORITHMS:
            raise KeyNotFound()
        found = self._select(kid, alg)
        if kid is None or kid in self._by_kid:
            self._memo[(kid, alg)] = found
        if not found:
            raise KeyNotFound()
        return found

    def _select(self, kid: str | None, alg: str) -> tuple[JWK, ...]:
        if kid is not None:
            found = [k for k in self._by_kid.get(kid, ()) if k.fits(alg)]
            if not found and kid not in self._by_kid:
                # A key configured without a kid (a PEM key, say) is not bound to any kid:
                # it may verify tokens whatever kid their issuer put in the header.
                found = [k for k in self.keys if k.kid is None and k.fits(alg)]
                found = found[:MAX_KIDLESS_CANDIDATES]
        else:
            found = [k for k in self.keys if k.fits(alg)][:MAX_KIDLESS_CANDIDATES]
        return tuple(found)

    @classmethod
    def from_jwks(
        cls,
        document: Mapping[str, Any],
        *,
        allow_symmetric: bool,
        strict: bool,
        reuse: KeySet | None = None,
        max_keys: int = 100,
    ) -> KeySet:
        """Build a key set from a JWKS document (RFC 7517 §5).

        ``strict`` raises on the first bad entry (static configuration); otherwise bad
        entries are skipped with a log line (a remote document, where one odd key must not
        take the others down). Keys sharing a ``kid`` are refused either way.
        """
        if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
            raise ValueError("a JWKS must be a JSON object with a 'keys' list")
        entries: list[Any] = document["keys"]
        if len(entries) > max_keys:
            raise ValueError(f"a JWKS may hold at most {max_keys} keys")
        previous = {k.fingerprint: k for k in reuse.keys} if reuse is not None else {}
        loaded: list[JWK] = []
        for index, entry in enumerate(entries):
            try:
                if not isinstance(entry, Mapping):
                    raise ValueError("a JWK must be a JSON object")
                fp = _fingerprint(entry)
                key = previous.get(fp) or JWK.from_dict(entry, allow_symmetric=allow_symmetric)
            except ValueError as exc:
                if strict:
                    raise ConfigurationError(f"JWKS entry {index}: {exc}") from exc
                logger.warning("jwt_guard: skipping JWKS entry %d: %s", index, exc)
                continue
            loaded.append(key)
        counts: dict[str, int] = {}
        for key in loaded:
            if key.kid is not None:
                counts[key.kid] = counts.get(key.kid, 0) + 1
        duplicated = {kid for kid, n in counts.items() if n > 1}
        if duplicated:
            if strict:
                raise ConfigurationError("JWKS has several keys with the same kid")
            # RFC 7517 §4.5: kids are meant to be distinct. Which of two keys is "the" key for
            # a kid is ambiguous, so neither is trusted.
            logger.warning("jwt_guard: refusing %d JWKS keys with duplicated kids", len(duplicated))
            loaded = [k for k in loaded if k.kid not in duplicated]
        return cls(loaded)


class KeySource(abc.ABC):
    """Where a verifier gets its keys: a static set, or a remote JWKS with a cache.

    ``keys(kid)`` / ``akeys(kid)`` return the key set to use for a token with that ``kid``,
    doing any I/O that is needed (sync and async drivers); a static source needs none.
    """

    def ready(self, kid: str | None) -> KeySet | None:
        """The key set, when it can be used right now without any I/O or background work;
        ``None`` sends the caller to :meth:`keys` / :meth:`akeys`. (A fast path: it saves
        the async driver a coroutine per request.)"""
        return None

    @abc.abstractmethod
    def keys(self, kid: str | None) -> KeySet:
        """The key set for a token with this kid (may block on a fetch)."""

    @abc.abstractmethod
    async def akeys(self, kid: str | None) -> KeySet:
        """The key set for a token with this kid, without blocking the event loop."""

    def prefetch(self, *, required: bool = False) -> None:  # noqa: B027 - optional hook
        """Warm the cache (sync); raise only if ``required`` and no keys could be had."""

    async def aprefetch(self, *, required: bool = False) -> None:  # noqa: B027
        """Warm the cache (async); raise only if ``required`` and no keys could be had."""

    def close(self) -> None:  # noqa: B027
        """Release network resources."""

    async def aclose(self) -> None:  # noqa: B027
        """Release network resources (async)."""


class StaticKeys(KeySource):
    """Keys given in configuration: PEM keys, JWKs, a JWKS document or HMAC secrets.

    ``StaticKeys(keys)`` takes :class:`JWK` objects, PEM strings/bytes or JWK dicts; the
    ``from_*`` constructors cover the common cases. Everything is checked at construction and
    raises :class:`ConfigurationError`.
    """

    def __init__(self, keys: Iterable[JWK | str | bytes | Mapping[str, Any]]) -> None:
        loaded: list[JWK] = []
        if isinstance(keys, (str, bytes, Mapping, JWK)):
            keys = [keys]
        for item in keys:
            try:
                if isinstance(item, JWK):
                    loaded.append(item)
                elif isinstance(item, (str, bytes)):
                    loaded.append(JWK.from_pem(item))
                elif isinstance(item, Mapping):
                    loaded.append(JWK.from_dict(item))
                else:
                    raise TypeError("keys must be JWK objects, PEM strings or JWK dicts")
            except (ValueError, TypeError) as exc:
                raise ConfigurationError(f"invalid key: {exc}") from exc
        if not loaded:
            raise ConfigurationError("StaticKeys needs at least one key")
        kids = [k.kid for k in loaded if k.kid is not None]
        if len(kids) != len(set(kids)):
            raise ConfigurationError("several keys share a kid")
        self._set = KeySet(loaded)

    def __repr__(self) -> str:
        return f"StaticKeys({len(self._set)} keys)"

    @property
    def key_set(self) -> KeySet:
        return self._set

    @classmethod
    def from_pem(
        cls, *pems: str | bytes, kid: str | None = None, algorithm: str | None = None
    ) -> StaticKeys:
        """One or more PEM public keys or certificates (``kid``/``algorithm`` bind a single key)."""
        if len(pems) > 1 and kid is not None:
            raise ConfigurationError("kid can only be given for a single key")
        try:
            return cls([JWK.from_pem(p, kid=kid, algorithm=algorithm) for p in pems])
        except ValueError as exc:
            if isinstance(exc, ConfigurationError):
                raise
            raise ConfigurationError(f"invalid PEM key: {exc}") from exc

    @classmethod
    def from_jwks(cls, document: Mapping[str, Any] | str | bytes | os.PathLike[str]) -> StaticKeys:
        """A JWKS document: a dict, its JSON text, or the path of a JSON file."""
        data: Any = document
        try:
            if isinstance(document, os.PathLike) or (
                isinstance(document, str) and not document.lstrip().startswith("{")
            ):
                with open(os.fspath(document), "rb") as fh:
                    data = json.loads(fh.read())
            elif isinstance(document, (str, bytes)):
                data = json.loads(document)
            key_set = KeySet.from_jwks(data, allow_symmetric=True, strict=True)
        except ConfigurationError:
            raise
        except (OSError, ValueError) as exc:
            raise ConfigurationError(f"cannot read the JWKS document: {exc}") from exc
        return cls(key_set.keys)

    @classmethod
    def from_secret(
        cls,
        secret: str | bytes,
        *,
        algorithm: str | None = "HS256",
        kid: str | None = None,
    ) -> StaticKeys:
        """An HMAC secret of at least 32 bytes (RFC 7518 §3.2)."""
        try:
            return cls([JWK.from_secret(secret, algorithm=algorithm, kid=kid)])
        except ValueError as exc:
            if isinstance(exc, ConfigurationError):
                raise
            raise ConfigurationError(f"invalid HMAC secret: {exc}") from exc

    def ready(self, kid: str | None) -> KeySet | None:
        return self._set

    def keys(self, kid: str | None) -> KeySet:
        return self._set

    async def akeys(self, kid: str | None) -> KeySet:
        return self._set
