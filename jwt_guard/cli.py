"""The jwt-guard command: verify, introspect, decode, keygen, mint, dpop-proof, client-cert,
demo.

Exit codes: 0 every token valid (or the command succeeded), 1 a token was invalid, 2 a usage
or configuration error (with the reason on stderr), 3 the key source (or the introspection
endpoint) was unavailable.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import errno
import inspect
import json
import os
import re
import stat
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

from cryptography.hazmat.primitives import serialization

from ._core.algorithms import ALGORITHMS
from ._core.certificates import der_from_pem, der_thumbprint
from ._core.dpop import jwk_thumbprint, normalize_htu
from ._core.errors import ConfigurationError, JWTGuardError, ServiceUnavailable
from ._core.extras import MissingExtra
from ._core.keyset import KeySource, StaticKeys
from ._core.parse import b64url_decode, parse_json, segments_detail, split_compact
from ._core.policy import TrustedIssuer
from ._sources.discovery import OIDCDiscovery
from ._sources.introspection import Introspection
from ._sources.jwks import JWKSKeys
from ._sources.verifier import Verifier

__all__ = ["main"]

EXIT_OK, EXIT_INVALID, EXIT_USAGE, EXIT_UNAVAILABLE = 0, 1, 2, 3
_DESCRIPTION = "Verify, decode and make JWTs the way jwt_guard does (a local debugging tool)."
_EPILOG = (
    "exit codes: 0 every token valid (or the command succeeded), 1 a token was invalid, "
    "2 a usage or configuration error, 3 the key source (or the introspection endpoint) was "
    "unavailable"
)
_DURATION = re.compile(r"(\d+)([smhd]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


class UsageError(Exception):
    """Bad arguments or configuration: exit 2 with the message."""


def _duration(text: str) -> int:
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError("use a duration like 900, 15m, 2h or 1d")
    return int(match.group(1)) * _UNITS[match.group(2)]


def _key_source(args: argparse.Namespace) -> KeySource:
    given = [
        name
        for name in ("jwks_url", "jwks_file", "key", "secret_env", "discover")
        if getattr(args, name)
    ]
    if len(given) != 1:
        raise UsageError(
            "give exactly one key source: --jwks-url, --jwks-file, --key, --secret-env "
            "or --discover"
        )
    if args.jwks_url:
        return JWKSKeys(args.jwks_url, allow_http=args.allow_http, timeout=args.timeout)
    if args.discover:
        return OIDCDiscovery(args.discover, allow_http=args.allow_http, timeout=args.timeout)
    if args.jwks_file:
        return StaticKeys.from_jwks(Path(args.jwks_file))
    if args.key:
        try:
            pem = Path(args.key).read_bytes()
        except OSError as exc:
            raise UsageError(f"cannot read {args.key}: {exc.strerror}") from exc
        return StaticKeys.from_pem(pem)
    secret = os.environ.get(args.secret_env)
    if not secret:
        raise UsageError(f"environment variable {args.secret_env} is not set")
    hs = [a for a in args.algorithm or () if ALGORITHMS[a].family == "HMAC"]
    return StaticKeys.from_secret(secret, algorithm=hs[0] if len(hs) == 1 else None)


def _lines(args: argparse.Namespace, stdin: TextIO) -> list[tuple[int | None, str]]:
    """(line number, token) pairs: numbered when read from standard input."""
    if args.token not in (None, "-"):
        token = args.token.strip()
        if not token:
            raise UsageError("the token is empty")
        return [(None, token)]
    lines: list[tuple[int | None, str]] = [
        (number, line.strip()) for number, line in enumerate(stdin, start=1)
    ]
    if not lines:
        raise UsageError("no token on standard input (give one per line, or the token itself)")
    return lines


def _provider(args: argparse.Namespace, keys: KeySource | None) -> TrustedIssuer:
    """``--provider NAME --provider-arg KEY=VALUE ...``: the preset as the middleware gets it."""
    from . import providers

    preset = getattr(providers, args.provider)
    parameters = inspect.signature(preset).parameters
    settings: dict[str, Any] = {}
    for item in args.provider_arg or ():
        name, sep, value = item.partition("=")
        if not sep or name not in parameters or name in ("keys", "claims", "validate"):
            allowed = [n for n in parameters if n not in ("keys", "claims", "validate", "options")]
            raise UsageError(f"--provider-arg takes NAME=VALUE with NAME one of {allowed}")
        # Repeated names make a list (several audiences or client ids).
        if name in settings:
            previous = settings[name]
            settings[name] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            settings[name] = value
    if "version" in settings:
        settings["version"] = int(settings["version"])
    if args.audience and "audience" in parameters and "audience" not in settings:
        settings["audience"] = args.audience
    if keys is not None:
        settings["keys"] = keys
    elif args.allow_http:
        settings["allow_http"] = True
    try:
        trusted: TrustedIssuer = preset(**settings)
    except TypeError as exc:
        raise UsageError(f"--provider {args.provider}: {exc}") from exc
    return trusted


def _verifier(args: argparse.Namespace) -> Verifier:
    common: dict[str, Any] = {
        "leeway": args.leeway,
        "typ": args.typ,
        "profile": args.profile,
        "required_claims": tuple(dict.fromkeys(["exp", *(args.require or [])])),
        "cache_size": 0,
        "metrics": False,
        # --cert: certificate-bound tokens are checked against it (RFC 8705).
        "mtls": args.cert is not None,
    }
    if args.roles_claim:
        common["roles_claim"] = args.roles_claim
    if args.scopes_claim:
        common["scopes_claim"] = args.scopes_claim
    if args.provider:
        if args.issuer:
            raise UsageError("--issuer comes from --provider: give one or the other")
        given = any(getattr(args, n) for n in ("jwks_url", "jwks_file", "key", "secret_env"))
        keys = _key_source(args) if given else None
        return Verifier(
            algorithms=args.algorithm or None,
            issuers=[_provider(args, keys)],
            **common,
        )
    if not args.algorithm and not (args.jwks_url or args.discover):
        # Published keys say what each is for (issue 25); keys given here must be named.
        raise UsageError(
            "give the accepted algorithms with --algorithm (e.g. RS256); with --jwks-url or "
            "--discover they may be left out: each published key's own is then accepted"
        )
    return Verifier(
        keys=_key_source(args),
        algorithms=args.algorithm or None,
        issuer=args.issuer or None,
        audience=args.audience or None,
        **common,
    )


def _certificate(path: str, option: str) -> bytes:
    """The DER bytes of the one PEM certificate in ``path``."""
    try:
        text = Path(path).read_text("ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {path} as a PEM certificate") from exc
    try:
        return der_from_pem(text)
    except JWTGuardError as exc:
        raise UsageError(f"{option} must be one PEM certificate ({exc.detail['reason']})") from exc


def cmd_verify(args: argparse.Namespace, stdin: TextIO, out: TextIO) -> int:
    certificate = _certificate(args.cert, "--cert") if args.cert else None
    return _report(_verifier(args), args, stdin, out, certificate)


def _introspection(args: argparse.Namespace) -> Introspection:
    """``--url`` or ``--discovery``, the client id and its secret (from the environment) or
    key (a PEM file): the endpoint as ``Introspection`` takes it."""
    if bool(args.url) == bool(args.discovery):
        raise UsageError(
            "give the introspection endpoint with --url, or the issuer whose metadata names it "
            "with --discovery"
        )
    secret = None
    if args.client_secret_env:
        secret = os.environ.get(args.client_secret_env)
        if not secret:
            raise UsageError(f"environment variable {args.client_secret_env} is not set")
    private_key = None
    if args.private_key:
        try:
            private_key = Path(args.private_key).read_bytes()
        except OSError as exc:
            raise UsageError(f"cannot read {args.private_key}: {exc.strerror}") from exc
    if (secret is None) == (private_key is None):
        raise UsageError(
            "give the client's credentials: --client-secret-env NAME (a secret in the "
            "environment, never on the command line) or --private-key PATH (private_key_jwt)"
        )
    return Introspection(
        args.url or None,
        discovery=args.discovery or None,
        client_id=args.client_id,
        client_secret=secret,
        private_key=private_key,
        auth_method=args.auth_method,
        allow_http=args.allow_http,
        timeout=args.timeout,
        cache_size=0,
    )


def cmd_introspect(args: argparse.Namespace, stdin: TextIO, out: TextIO) -> int:
    settings: dict[str, Any] = {}
    if args.roles_claim:
        settings["roles_claim"] = args.roles_claim
    if args.scopes_claim:
        settings["scopes_claim"] = args.scopes_claim
    verifier = Verifier(
        introspection=_introspection(args),
        issuer=args.issuer or None,
        audience=args.audience or None,
        leeway=args.leeway,
        cache_size=0,
        metrics=False,
        **settings,
    )
    return _report(verifier, args, stdin, out)


def _report(
    verifier: Verifier,
    args: argparse.Namespace,
    stdin: TextIO,
    out: TextIO,
    certificate: bytes | None = None,
) -> int:
    """Verify each token given; one JSON line per token: its principal, or why it was refused
    (the detail too: a local tool). The verifier is closed at the end."""
    status = EXIT_OK
    try:
        for number, token in _lines(args, stdin):
            result: dict[str, Any] = {} if number is None else {"line": number}
            if not token:
                # Reported, not skipped: a blank line in a batch is an input mistake.
                status = max(status, EXIT_INVALID)
                result.update(valid=False, code="blank_line", description="The line is empty.")
                out.write(json.dumps(result, sort_keys=True) + "\n")
                continue
            try:
                principal = verifier.verify(token, client_certificate=certificate)
            except JWTGuardError as exc:
                if isinstance(exc, ConfigurationError):
                    raise
                unavailable = isinstance(exc, ServiceUnavailable)
                status = max(status, EXIT_UNAVAILABLE if unavailable else EXIT_INVALID)
                # A local tool: the detail is shown (it holds no token and no secret).
                result.update(
                    valid=False,
                    code=exc.code,
                    error=exc.error,
                    description=exc.description,
                    detail=exc.detail,
                )
            else:
                result.update(
                    valid=True,
                    claims=dict(principal.claims),
                    header=dict(principal.header),
                    roles=sorted(principal.roles),
                    scopes=sorted(principal.scopes),
                )
            out.write(json.dumps(result, sort_keys=True, default=str) + "\n")
    finally:
        verifier.close()
    return status


def _human_time(value: Any) -> str:
    if type(value) in (int, float) and 0 <= value < 253402300800:
        return dt.datetime.fromtimestamp(value, tz=dt.UTC).isoformat()
    return "(not a valid NumericDate)"


def _decode_warnings(header: dict[str, Any], claims: dict[str, Any]) -> list[str]:
    warnings = []
    alg = header.get("alg")
    if isinstance(alg, str) and alg.lower() == "none":
        warnings.append("alg is 'none': this token is unsigned")
    elif alg not in ALGORITHMS:
        warnings.append("alg is not a supported signature algorithm")
    if "exp" not in claims:
        warnings.append("no exp claim: the token never expires")
    elif type(claims["exp"]) in (int, float) and claims["exp"] < time.time():
        warnings.append("expired")
    for name in ("jwk", "jku", "x5u", "x5c"):
        if name in header:
            warnings.append(f"header carries '{name}' (key material in a token is never trusted)")
    if "crit" in header:
        warnings.append("header has 'crit' extensions")
    return warnings


def cmd_decode(args: argparse.Namespace, stdin: TextIO, out: TextIO) -> int:
    text = (args.token if args.token != "-" else stdin.readline()).strip()  # noqa: S105
    if not text:
        raise UsageError("the token is empty")
    try:
        h64, p64, _ = split_compact(text, 65536)
        header = parse_json(b64url_decode(h64))
        claims = parse_json(b64url_decode(p64))
    except JWTGuardError as exc:
        detail = exc.detail
        if "segments" in detail:  # an opaque or encrypted access token says so
            detail = segments_detail(detail["segments"])
        reason = "; ".join(str(detail[k]) for k in ("reason", "hint") if k in detail)
        raise UsageError(
            f"not a compact JWS: {exc.description}" + (f" ({reason})" if reason else "")
        ) from exc
    times = {name: _human_time(claims[name]) for name in ("iat", "nbf", "exp") if name in claims}
    warnings = _decode_warnings(header, claims)
    if args.json:
        document = {
            "verified": False,
            "header": header,
            "claims": claims,
            "times": times,
            "warnings": warnings,
        }
        out.write(json.dumps(document, sort_keys=True) + "\n")
        return EXIT_OK
    out.write("*** NOT VERIFIED: decoded without checking the signature or any claim ***\n")
    out.write("header:\n" + json.dumps(header, indent=2, sort_keys=True) + "\n")
    out.write("claims:\n" + json.dumps(claims, indent=2, sort_keys=True) + "\n")
    for name, when in times.items():
        out.write(f"{name}: {when}\n")
    for warning in warnings:
        out.write(f"warning: {warning}\n")
    return EXIT_OK


# keygen's file modes: the private key is 0600 from the moment it exists (created so, then
# fchmod'ed so that no umask narrows or widens it); the public halves are meant to be read.
_PRIVATE_MODE, _PUBLIC_MODE = 0o600, 0o644


def _write_files(outdir: Path, files: dict[str, tuple[bytes, int]], *, replace: bool) -> None:
    """Write each ``name: (data, mode)`` into ``outdir`` without following a symlink at a name.

    Each file is written to a fresh temporary name (O_CREAT|O_EXCL|O_NOFOLLOW: never an existing
    file, never through a link), fsync'ed, then put in place: with ``replace`` by rename(2), which
    replaces a symlink at the name itself and never the file it points to; without, by link(2),
    which fails if anything (a file, a dangling symlink) appeared at the name since the check.
    ``outdir`` itself may be a symlink to a directory: the user named it. It is opened once and
    every name is resolved in that directory, so swapping it midway redirects nothing.
    """
    try:
        outdir.mkdir(parents=True, exist_ok=True)
        dir_fd = os.open(outdir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise UsageError(f"cannot write to {outdir}: {exc.strerror}") from exc
    temporary: dict[str, str] = {}
    placed: list[str] = []
    at = outdir
    try:
        for name, (data, mode) in files.items():
            temp = f".{name}.{uuid.uuid4().hex}.tmp"
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = os.open(temp, flags, mode, dir_fd=dir_fd)
            temporary[name] = temp
            with os.fdopen(fd, "wb") as fh:
                os.fchmod(fd, mode)
                fh.write(data)
                fh.flush()
                os.fsync(fd)
        if replace:
            # rename(2) fails over a directory: found before any name is replaced, so that a
            # failed --force leaves the old key pair whole, not a new private key beside it.
            for name in temporary:
                with contextlib.suppress(FileNotFoundError):
                    if stat.S_ISDIR(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode):
                        raise UsageError(f"{outdir / name} is a directory; nothing was replaced")
        for name, temp in temporary.items():
            at = outdir / name
            if replace:
                os.replace(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            else:
                os.link(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
                os.unlink(temp, dir_fd=dir_fd)
            placed.append(name)
        os.fsync(dir_fd)  # the renames survive a crash
    except OSError as exc:
        if not replace:  # all three or none: take back what this run placed
            for name in placed:
                os.unlink(name, dir_fd=dir_fd)
        if exc.errno == errno.EEXIST and not replace:
            raise UsageError(f"{at} already exists; --force overwrites it") from exc
        raise UsageError(f"cannot write to {outdir}: {exc.strerror}") from exc
    finally:
        for temp in temporary.values():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp, dir_fd=dir_fd)
        os.close(dir_fd)


def cmd_keygen(args: argparse.Namespace, stdin: TextIO, out: TextIO) -> int:
    # Imported here, not at the top: _tools.signing imports PyJWT, which `verify` never loads.
    from ._tools.signing import generate_key, private_pem, public_jwk, public_pem

    if ALGORITHMS[args.alg].family == "HMAC":
        raise UsageError("keygen makes asymmetric key pairs; for HS* use a random secret")
    outdir = Path(args.out)
    kid = args.kid or uuid.uuid4().hex[:16]
    key = generate_key(args.alg)
    private_path = outdir / "private.pem"
    jwks = {"keys": [public_jwk(key, kid=kid, alg=args.alg)]}
    files = {
        "private.pem": (private_pem(key), _PRIVATE_MODE),
        "public.pem": (public_pem(key), _PUBLIC_MODE),
        "jwks.json": ((json.dumps(jwks, indent=2) + "\n").encode(), _PUBLIC_MODE),
    }
    # lexists, not exists: a dangling symlink is "something there" too.
    existing = [str(outdir / name) for name in files if os.path.lexists(outdir / name)]
    if existing and not args.force:
        raise UsageError(f"{', '.join(existing)} already exist; --force overwrites them")
    _write_files(outdir, files, replace=args.force)
    out.write(
        json.dumps(
            {
                "kid": kid,
                "alg": args.alg,
                "private_key": str(private_path),
                "public_key": str(outdir / "public.pem"),
                "jwks": str(outdir / "jwks.json"),
            }
        )
        + "\n"
    )
    return EXIT_OK


def _pem_key(path: str, option: str, *, public_ok: bool = False) -> Any:
    """A PEM private key (or, with ``public_ok``, a public key) read from ``path``."""
    from ._tools.signing import load_private_pem  # PyJWT: see cmd_keygen

    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        return load_private_pem(data)
    except (ValueError, TypeError) as exc:
        if public_ok:
            try:
                return serialization.load_pem_public_key(data)
            except (ValueError, TypeError):
                pass
        what = "a PEM private or public key" if public_ok else "an unencrypted PEM private key"
        raise UsageError(f"{option} must be {what}") from exc


def cmd_mint(args: argparse.Namespace, stdin: TextIO, out: TextIO) -> int:
    from ._tools.signing import dpop_jwk, encode  # PyJWT: see cmd_keygen

    key = _pem_key(args.key, "--key")
    now = int(time.time())
    claims: dict[str, Any] = {"iat": now, "exp": now + args.ttl, "jti": uuid.uuid4().hex}
    for name in ("iss", "sub"):
        if getattr(args, name):
            claims[name] = getattr(args, name)
    if args.aud:
        claims["aud"] = args.aud[0] if len(args.aud) == 1 else args.aud
    for item in args.claim or ():
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise UsageError("--claim takes NAME=VALUE (the value is a string)")
        claims[name] = value  # always a string: "--claim zip=01234" stays "01234"
    for item in args.claim_json or ():
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise UsageError("--claim-json takes NAME=JSON")
        try:
            claims[name] = json.loads(value)
        except ValueError as exc:
            raise UsageError(f"--claim-json {name}: not JSON ({exc.args[0]})") from exc
    if args.dpop_key:
        # RFC 9449 §6.1: the token is bound to the client's key by its RFC 7638 thumbprint.
        try:
            jwk = dpop_jwk(_pem_key(args.dpop_key, "--dpop-key", public_ok=True))
        except TypeError as exc:
            raise UsageError("--dpop-key must be an EC, RSA or Ed25519/Ed448 key") from exc
        claims["cnf"] = {"jkt": jwk_thumbprint(jwk)}
    if args.cert:
        # RFC 8705 §3.1: bound to the client certificate by its SHA-256 thumbprint.
        thumbprint = der_thumbprint(_certificate(args.cert, "--cert"))
        claims["cnf"] = {**claims.get("cnf", {}), "x5t#S256": thumbprint}
    header: dict[str, Any] = {"typ": args.typ}
    if args.kid:
        header["kid"] = args.kid
    try:
        token = encode(claims, key, args.alg, header=header)
    except (TypeError, ValueError, AttributeError) as exc:
        raise UsageError(f"the key does not fit {args.alg}") from exc
    out.write(token + "\n")
    return EXIT_OK


def cmd_dpop_proof(args: argparse.Namespace, stdin: TextIO, out: TextIO) -> int:
    from ._tools.signing import dpop_proof  # PyJWT: see cmd_keygen

    key = _pem_key(args.key, "--key")
    token = args.token
    if token == "-":  # noqa: S105 - "read it from stdin", not a secret
        token = stdin.readline().strip()
    if normalize_htu(args.url) is None:
        raise UsageError("--url must be the request's http(s) URL, e.g. https://api.example/me")
    try:
        # RFC 9110 §9.1: methods are case-sensitive and the standard ones upper-case; htm
        # must equal the method the request is sent with ("curl -X get" sends "get", rarely
        # meant): "get" becomes "GET".
        method = args.method.upper()
        proof = dpop_proof(
            key, method, args.url, access_token=token or None, nonce=args.nonce, alg=args.alg
        )
    except (TypeError, ValueError, KeyError) as exc:
        raise UsageError(f"the key does not fit {args.alg or 'a DPoP algorithm'}") from exc
    out.write(proof + "\n")
    return EXIT_OK


def cmd_client_cert(args: argparse.Namespace, stdin: TextIO, out: TextIO) -> int:
    from ._tools.certificates import CertificateAuthority, make_client_certificate

    outdir = Path(args.out)
    if args.ca:
        ca = CertificateAuthority(days=args.days)
        cert = ca.issue(args.cn)
    else:
        cert = make_client_certificate(args.cn, days=args.days)
    files = {
        "client.pem": (cert.pem.encode("ascii"), _PUBLIC_MODE),
        "client.key": (cert.key_pem.encode("ascii"), _PRIVATE_MODE),
    }
    if args.ca:
        files["ca.pem"] = (ca.pem.encode("ascii"), _PUBLIC_MODE)
    existing = [str(outdir / name) for name in files if os.path.lexists(outdir / name)]
    if existing and not args.force:
        raise UsageError(f"{', '.join(existing)} already exist; --force overwrites them")
    _write_files(outdir, files, replace=args.force)
    result = {
        "certificate": str(outdir / "client.pem"),
        "private_key": str(outdir / "client.key"),
        "x5t#S256": cert.thumbprint,
    }
    if args.ca:
        result["ca"] = str(outdir / "ca.pem")
    out.write(json.dumps(result) + "\n")
    return EXIT_OK


def cmd_demo(args: argparse.Namespace, stdin: TextIO, out: TextIO) -> int:
    from .demo import run

    run(host=args.host, port=args.port)
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    from . import providers

    parser = argparse.ArgumentParser(prog="jwt-guard", description=_DESCRIPTION, epilog=_EPILOG)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    algs = sorted(ALGORITHMS)
    asymmetric = [a for a in algs if ALGORITHMS[a].family != "HMAC"]

    verify = sub.add_parser(
        "verify",
        help="verify tokens; one JSON result per token, with the reason of a failure",
        description="Verify tokens as the middleware would; one JSON result per token. A "
        "failure shows its code and detail; a success the claims, header, roles and scopes.",
        epilog=_EPILOG,
    )
    verify.add_argument(
        "token", nargs="?", help="the token, or - (the default) to read one per line from stdin"
    )
    keys = verify.add_argument_group("key source (exactly one; optional with --provider)")
    keys.add_argument("--jwks-url", metavar="URL", help="fetch the keys from this JWKS URL")
    keys.add_argument("--jwks-file", metavar="PATH", help="read the keys from a JWKS file")
    keys.add_argument("--key", metavar="PATH", help="a PEM public key or certificate file")
    keys.add_argument(
        "--secret-env", metavar="NAME", help="environment variable holding an HMAC secret"
    )
    keys.add_argument(
        "--discover",
        metavar="ISSUER",
        help="discovery (OpenID or RFC 8414 metadata) from this issuer",
    )
    rules = verify.add_argument_group("rules")
    rules.add_argument(
        "--algorithm", action="append", choices=algs, help="an accepted alg (repeatable)"
    )
    rules.add_argument("--issuer", action="append", help="the exact expected iss (repeatable)")
    rules.add_argument("--audience", action="append", help="an accepted aud (repeatable)")
    rules.add_argument(
        "--leeway", type=float, default=30, help="clock skew in seconds (default: 30)"
    )
    rules.add_argument("--typ", help="the expected header typ, e.g. at+jwt")
    rules.add_argument(
        "--profile",
        action="append",
        metavar="NAME",
        help="a verification profile, e.g. rfc9068 (typ at+jwt, its claims; repeatable)",
    )
    rules.add_argument(
        "--require", action="append", metavar="CLAIM", help="a claim that must be present"
    )
    _claim_paths(rules)
    preset = verify.add_argument_group("provider preset")
    preset.add_argument(
        "--provider",
        choices=providers.__all__,
        help="trust settings of jwt_guard.providers (issuer, keys, roles, the IdP's checks)",
    )
    preset.add_argument(
        "--provider-arg",
        action="append",
        metavar="NAME=VALUE",
        help="an argument of the preset, e.g. realm=acme (repeat a name for a list)",
    )
    net = verify.add_argument_group("network")
    net.add_argument(
        "--timeout", type=float, default=5.0, help="key fetch timeout in seconds (default: 5)"
    )
    net.add_argument("--allow-http", action="store_true", help="allow a plain-http key URL")
    verify.add_argument(
        "--cert",
        metavar="PATH",
        help="the client certificate (PEM) the token is presented with: a certificate-bound "
        "token (cnf.x5t#S256, RFC 8705) must be bound to it",
    )
    verify.set_defaults(func=cmd_verify)

    introspect = sub.add_parser(
        "introspect",
        help="ask an authorization server about tokens (RFC 7662); one JSON result per token",
        description="Introspect tokens (opaque or not) at the authorization server's token "
        "introspection endpoint (RFC 7662), judged by the rules the middleware applies; one "
        "JSON result per token: the principal, or the refusal with its code and detail.",
        epilog=_EPILOG,
    )
    introspect.add_argument(
        "token", nargs="?", help="the token, or - (the default) to read one per line from stdin"
    )
    endpoint = introspect.add_argument_group("endpoint (exactly one)")
    endpoint.add_argument("--url", help="the introspection endpoint's URL")
    endpoint.add_argument(
        "--discovery",
        metavar="ISSUER",
        help="the issuer whose metadata (OpenID or RFC 8414) names introspection_endpoint",
    )
    client = introspect.add_argument_group("this resource server's client authentication")
    client.add_argument("--client-id", required=True, help="its client id at the server")
    client.add_argument(
        "--client-secret-env",
        metavar="NAME",
        help="environment variable holding its client secret (client_secret_basic by default)",
    )
    client.add_argument(
        "--private-key", metavar="PATH", help="its PEM private key (private_key_jwt, RFC 7523)"
    )
    client.add_argument(
        "--auth-method",
        choices=["client_secret_basic", "client_secret_post", "private_key_jwt"],
        help="how it authenticates (default: client_secret_basic with a secret, "
        "private_key_jwt with a key)",
    )
    checks = introspect.add_argument_group("rules")
    checks.add_argument("--issuer", action="append", help="the exact expected iss (repeatable)")
    checks.add_argument("--audience", action="append", help="an accepted aud (repeatable)")
    checks.add_argument(
        "--leeway", type=float, default=30, help="clock skew in seconds (default: 30)"
    )
    _claim_paths(checks)
    net = introspect.add_argument_group("network")
    net.add_argument(
        "--timeout", type=float, default=5.0, help="the call's deadline in seconds (default: 5)"
    )
    net.add_argument(
        "--allow-http", action="store_true", help="allow a plain-http endpoint (not loopback)"
    )
    introspect.set_defaults(func=cmd_introspect)

    decode = sub.add_parser(
        "decode",
        help="show a token's header and claims (NOT verified)",
        description="Show a token's header and claims without verifying anything.",
    )
    decode.add_argument("token", help="the token, or - to read it from stdin")
    decode.add_argument("--json", action="store_true", help="one JSON document instead of text")
    decode.set_defaults(func=cmd_decode)

    keygen = sub.add_parser(
        "keygen",
        help="make a key pair and its public JWKS",
        description="Write private.pem (mode 0600), public.pem and jwks.json.",
    )
    keygen.add_argument("--alg", required=True, choices=asymmetric, help="the key's algorithm")
    keygen.add_argument("--kid", help="the key id (default: random)")
    keygen.add_argument("--out", required=True, metavar="DIR", help="directory for the files")
    keygen.add_argument("--force", action="store_true", help="overwrite existing files")
    keygen.set_defaults(func=cmd_keygen)

    mint = sub.add_parser(
        "mint",
        help="sign a token (development and tests)",
        description="Sign a token with a private key, for development and tests.",
    )
    mint.add_argument("--key", required=True, metavar="PATH", help="a PEM private key file")
    mint.add_argument("--alg", required=True, choices=asymmetric, help="the signing algorithm")
    mint.add_argument("--kid", help="the header kid")
    mint.add_argument("--iss", help="the iss claim")
    mint.add_argument("--aud", action="append", help="the aud claim (repeat for a list)")
    mint.add_argument("--sub", help="the sub claim")
    mint.add_argument(
        "--claim",
        action="append",
        metavar="NAME=VALUE",
        help="a claim whose value is a string, kept as written (repeatable)",
    )
    mint.add_argument(
        "--claim-json",
        action="append",
        metavar="NAME=JSON",
        help="a claim with a JSON value, e.g. roles='[\"admin\"]' (repeatable)",
    )
    mint.add_argument(
        "--ttl", type=_duration, default=900, help="lifetime: 900, 15m, 2h or 1d (default: 15m)"
    )
    mint.add_argument("--typ", default="JWT", help="the header typ (default: JWT)")
    mint.add_argument(
        "--dpop-key",
        metavar="PATH",
        help="bind the token to this client key (PEM, private or public): cnf.jkt, RFC 9449",
    )
    mint.add_argument(
        "--cert",
        metavar="PATH",
        help="bind the token to this client certificate (PEM): cnf.x5t#S256, RFC 8705",
    )
    mint.set_defaults(func=cmd_mint)

    client_cert = sub.add_parser(
        "client-cert",
        help="make a client certificate for mutual TLS (development and tests)",
        description="Write client.pem and client.key (mode 0600): a self-signed client "
        "certificate, or with --ca one signed by a new test CA (ca.pem, for the TLS server's "
        "list of client CAs). Prints its x5t#S256 thumbprint (RFC 8705).",
    )
    client_cert.add_argument("--out", required=True, metavar="DIR", help="directory for the files")
    client_cert.add_argument("--cn", default="client", help="the subject's common name")
    client_cert.add_argument(
        "--days", type=float, default=30, help="validity in days (default: 30)"
    )
    client_cert.add_argument("--ca", action="store_true", help="sign it with a new test CA")
    client_cert.add_argument("--force", action="store_true", help="overwrite existing files")
    client_cert.set_defaults(func=cmd_client_cert)

    proof = sub.add_parser(
        "dpop-proof",
        help="make a DPoP proof (RFC 9449) for one request (development and tests)",
        description="Make the DPoP proof a client sends with one request, signed with its key.",
    )
    proof.add_argument("--key", required=True, metavar="PATH", help="the client's PEM private key")
    proof.add_argument("--url", required=True, help="the request URL (htu)")
    proof.add_argument(
        "--method", default="GET", help="the request method (htm, upper-cased; default: GET)"
    )
    proof.add_argument("--token", help="the access token it goes with (ath); - reads stdin")
    proof.add_argument("--nonce", help="the server's DPoP-Nonce, when it asks for one")
    proof.add_argument(
        "--alg",
        choices=asymmetric,
        help="the proof algorithm (default: by key; P-384/P-521 keys give ES384/ES512, "
        "which DPoP() accepts only when its algorithms list them)",
    )
    proof.set_defaults(func=cmd_dpop_proof)

    demo = sub.add_parser(
        "demo",
        help="run the demo issuer + protected API on loopback",
        description="Run the demo: an issuer and a protected API in one process.",
    )
    demo.add_argument("--host", default="127.0.0.1", help="address (default: 127.0.0.1)")
    demo.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    demo.set_defaults(func=cmd_demo)
    return parser


def _claim_paths(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--roles-claim",
        action="append",
        metavar="PATH",
        help="where roles are read, e.g. realm_access.roles (repeatable; default: roles)",
    )
    group.add_argument(
        "--scopes-claim",
        action="append",
        metavar="PATH",
        help="where scopes are read (repeatable; default: scope and scp)",
    )


def _fail(message: str, err: TextIO) -> NoReturn:
    err.write(f"jwt-guard: error: {message}\n")
    raise SystemExit(EXIT_USAGE)


def main(
    argv: Sequence[str] | None = None,
    *,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run the CLI; returns the exit code (``SystemExit`` for argparse usage errors)."""
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args, stdin, stdout)
    except UsageError as exc:
        _fail(str(exc), stderr)
    except ConfigurationError as exc:
        _fail(exc.description, stderr)
    except MissingExtra as exc:
        _fail(str(exc), stderr)
    return code
