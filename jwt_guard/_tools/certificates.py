"""Making X.509 certificates for tests and development (mutual TLS, RFC 8705): a client
certificate, self-signed or issued by a small test CA, and the forms a proxy hands it over in.
Never on the verify path.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .._core.certificates import der_thumbprint

__all__ = ["CertificateAuthority", "TestCertificate", "make_client_certificate"]

_PRIVATE = ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class TestCertificate:
    """A certificate and its private key, in every form a test needs."""

    __test__ = False  # not a pytest test class

    key: _PRIVATE = field(repr=False)
    certificate: x509.Certificate = field(repr=False)

    @property
    def der(self) -> bytes:
        """The DER bytes: what ``verifier.verify(..., client_certificate=)`` takes."""
        return self.certificate.public_bytes(serialization.Encoding.DER)

    @property
    def pem(self) -> str:
        """The PEM text (``SSL_CLIENT_CERT``, the ASGI ``tls`` extension's chain)."""
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")

    @property
    def key_pem(self) -> str:
        """The private key, PKCS#8 PEM, unencrypted (for a TLS client in a test)."""
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode("ascii")

    @property
    def thumbprint(self) -> str:
        """RFC 8705 §3.1: the base64url SHA-256 of the DER, the token's ``cnf.x5t#S256``."""
        return der_thumbprint(self.der)

    @property
    def client_cert_header(self) -> str:
        """The RFC 9440 §2 ``Client-Cert`` value: ``:<base64 DER>:``."""
        return ":" + base64.b64encode(self.der).decode("ascii") + ":"

    @property
    def escaped_pem(self) -> str:
        """nginx's ``$ssl_client_escaped_cert``: the PEM, URL-escaped."""
        return urllib.parse.quote(self.pem, safe="")

    def xfcc(self, *, cert: bool = False) -> str:
        """An Envoy ``x-forwarded-client-cert`` element naming this certificate.

        Its ``Hash=``, and ``Cert=`` with ``cert=True``."""
        digest = self.certificate.fingerprint(hashes.SHA256()).hex()
        element = f'By=spiffe://test/proxy;Hash={digest};Subject="CN=test"'
        if cert:
            element += f';Cert="{self.escaped_pem}"'
        return element


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(
    subject: x509.Name, issuer: x509.Name, public: ec.EllipticCurvePublicKey, days: float
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
    )


def _leaf_extensions(
    builder: x509.CertificateBuilder,
    server: bool,
    dns_names: Sequence[str],
    ip_addresses: Sequence[str],
) -> x509.CertificateBuilder:
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(_key_usage(ca=False), critical=True)
    )
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    names += [x509.IPAddress(ipaddress.ip_address(a)) for a in ip_addresses]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    # RFC 5280 §4.2.1.3; a verifier in strict X.509 mode (Python 3.13's default context, newer
    # httpx) wants it on a CA, and the key identifiers below (§4.2.1.1, §4.2.1.2) on every
    # certificate a CA issues.
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def make_client_certificate(common_name: str = "client", *, days: float = 1) -> TestCertificate:
    """A self-signed client certificate (EC P-256) valid for ``days``."""
    key = ec.generate_private_key(ec.SECP256R1())
    builder = _builder(_name(common_name), _name(common_name), key.public_key(), days)
    builder = _leaf_extensions(builder, False, (), ()).add_extension(
        x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
    )
    return TestCertificate(key, builder.sign(key, hashes.SHA256()))


class CertificateAuthority:
    """A test CA (EC P-256) that issues client and server certificates.

    Its certificate (:attr:`pem`) is what a TLS server lists as trusted client CAs (nginx
    ``ssl_client_certificate``)."""

    __test__ = False

    def __init__(self, name: str = "jwt_guard test CA", *, days: float = 1) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = _name(name)
        builder = (
            _builder(subject, subject, self.key.public_key(), days)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(ca=True), critical=True)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False
            )
        )
        self.certificate = builder.sign(self.key, hashes.SHA256())
        self._days = days

    @property
    def pem(self) -> str:
        """The CA certificate's PEM text (what a server trusts client certificates by)."""
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")

    def issue(
        self,
        common_name: str = "client",
        *,
        server: bool = False,
        dns_names: Sequence[str] = (),
        ip_addresses: Sequence[str] = (),
    ) -> TestCertificate:
        """A certificate signed by this CA: a client certificate, or a server one.

        With ``server=True`` a server certificate, for ``dns_names``/``ip_addresses``."""
        key = ec.generate_private_key(ec.SECP256R1())
        builder = _builder(
            _name(common_name), self.certificate.subject, key.public_key(), self._days
        )
        builder = (
            _leaf_extensions(builder, server, dns_names, ip_addresses)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
        )
        return TestCertificate(key, builder.sign(self.key, hashes.SHA256()))
