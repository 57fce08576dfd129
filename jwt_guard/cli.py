"""The ``jwt-guard`` command: verify, decode, keygen, mint, demo.

Exit codes: 0 every token valid (or the command succeeded), 1 a token was invalid, 2 a usage
or configuration error (with the reason on stderr).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

from ._algorithms import ALGORITHMS
from ._errors import ConfigurationError, JWTGuardError
from ._extras import MissingExtra
from ._jwks import JWKSKeys, OIDCDiscovery
from ._keyset import KeySource, StaticKeys
from ._parse import b64url_decode, parse_json, split_compact
from ._signing import (
    encode,
    generate_key,
    load_private_pem,
    private_pem,
    public_jwk,
    public_pem,
)
from ._verifier import Verifier

__all__ = ["main"]

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2
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
    hs = [a for a in args.algorithm or () if a.startswith("HS")]
    return StaticKeys.from_secret(secret, algorithm=hs[0] if len(hs) == 1 else None)


def _tokens(args: argparse.Namespace, stdin: TextIO) -> list[str]:
    if args.token in (None, "-"):
        return [line.strip() for line in stdin if line.strip()]
    return [args.token.strip()]


def cmd_verify(args: argparse.Namespace, stdin: TextIO, out: TextIO) -> int:
    if not args.algorithm:
        raise UsageError("give the accepted algorithms with --algorithm (e.g. RS256)")
    verifier = Verifier(
        keys=_key_source(args),
        algorithms=args.algorithm,
        issuer=args.issuer or None,
        audience=args.audience or None,
        leeway=args.leeway,
        typ=args.typ,
        required_claims=tuple(dict.fromkeys(["exp", *(args.require or [])])),
        cache_size=0,
    )
    status = EXIT_OK
    try:
        for token in _tokens(args, stdin):
            try:
                principal = verifier.verify(token)
            except JWTGuardError as exc:
                if isinstance(exc, ConfigurationError):
                    raise
                status = EXIT_INVALID
                result: dict[str, Any] = {
                    "valid": False,
                    "code": exc.code,
                    "error": exc.error,
                    "description": exc.description,
                }
            else:
                result = {
                    "valid": True,
                    "claims": dict(principal.claims),
                    "header": dict(principal.header),
                }
            out.write(json.dumps(result, sort_keys=True) + "\n")
    finally:
        verifier.close()
    return status


def _human_time(value: Any) -> str:
    if type(value) in (int, float) and 0 <= value < 253402300800:
        return dt.datetime.fromtimestamp(value, tz=dt.UTC).isoformat()
    return "(not a valid NumericDate)"


def cmd_decode(args: argparse.Namespace, stdin: TextIO, out: TextIO) -> int:
    text = args.token if args.token != "-" else stdin.readline()  # noqa: S105
    try:
        h64, p64, _ = split_compact(text.strip(), 65536)
        header = parse_json(b64url_decode(h64))
        claims = parse_json(b64url_decode(p64))
    except JWTGuardError as exc:
        raise UsageError(f"not a compact JWS: {exc.description}") from exc
    out.write("*** NOT VERIFIED: decoded without checking the signature or any claim ***\n")
    out.write("header:\n" + json.dumps(header, indent=2, sort_keys=True) + "\n")
    out.write("claims:\n" + json.dumps(claims, indent=2, sort_keys=True) + "\n")
    for name in ("iat", "nbf", "exp"):
        if name in claims:
            out.write(f"{name}: {_human_time(claims[name])}\n")
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
    for warning in warnings:
        out.write(f"warning: {warning}\n")
    return EXIT_OK


def cmd_keygen(args: argparse.Namespace, stdin: TextIO, out: TextIO) -> int:
    if args.alg.startswith("HS"):
        raise UsageError("keygen makes asymmetric key pairs; for HS* use a random secret")
    outdir = Path(args.out)
    kid = args.kid or uuid.uuid4().hex[:16]
    key = generate_key(args.alg)
    private_path = outdir / "private.pem"
    jwks = {"keys": [public_jwk(key, kid=kid, alg=args.alg)]}
    try:
        outdir.mkdir(parents=True, exist_ok=True)
        # 0600 from the start: never a moment where the private key is world-readable.
        fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(private_pem(key))
        os.chmod(private_path, 0o600)
        (outdir / "public.pem").write_bytes(public_pem(key))
        (outdir / "jwks.json").write_text(json.dumps(jwks, indent=2) + "\n")
    except OSError as exc:
        raise UsageError(f"cannot write to {outdir}: {exc.strerror}") from exc
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


def _claim_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def cmd_mint(args: argparse.Namespace, stdin: TextIO, out: TextIO) -> int:
    try:
        key = load_private_pem(Path(args.key).read_bytes())
    except OSError as exc:
        raise UsageError(f"cannot read {args.key}: {exc.strerror}") from exc
    except (ValueError, TypeError) as exc:
        raise UsageError("--key must be an unencrypted PEM private key") from exc
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
            raise UsageError("--claim takes name=value (value may be JSON)")
        claims[name] = _claim_value(value)
    header: dict[str, Any] = {"typ": args.typ}
    if args.kid:
        header["kid"] = args.kid
    try:
        token = encode(claims, key, args.alg, header=header)
    except (TypeError, ValueError, AttributeError) as exc:
        raise UsageError(f"the key does not fit {args.alg}") from exc
    out.write(token + "\n")
    return EXIT_OK


def cmd_demo(args: argparse.Namespace, stdin: TextIO, out: TextIO) -> int:
    from .demo import run

    run(host=args.host, port=args.port)
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jwt-guard", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    algs = sorted(ALGORITHMS)

    verify = sub.add_parser("verify", help="verify tokens; one JSON result per token")
    verify.add_argument("token", nargs="?", help="the token, or - to read one per line")
    verify.add_argument("--jwks-url")
    verify.add_argument("--jwks-file")
    verify.add_argument("--key", help="PEM public key or certificate file")
    verify.add_argument("--secret-env", help="environment variable holding an HMAC secret")
    verify.add_argument("--discover", metavar="ISSUER", help="OIDC discovery from this issuer")
    verify.add_argument("--issuer", action="append")
    verify.add_argument("--audience", action="append")
    verify.add_argument("--algorithm", action="append", choices=algs)
    verify.add_argument("--leeway", type=float, default=30)
    verify.add_argument("--typ")
    verify.add_argument("--require", action="append", metavar="CLAIM")
    verify.add_argument("--timeout", type=float, default=5.0)
    verify.add_argument("--allow-http", action="store_true", help="allow a plain-http JWKS URL")
    verify.set_defaults(func=cmd_verify)

    decode = sub.add_parser("decode", help="show a token's header and claims (NOT verified)")
    decode.add_argument("token")
    decode.set_defaults(func=cmd_decode)

    keygen = sub.add_parser("keygen", help="make a key pair and its public JWKS")
    keygen.add_argument("--alg", required=True, choices=[a for a in algs if not a.startswith("HS")])
    keygen.add_argument("--kid")
    keygen.add_argument("--out", required=True, help="directory for the files")
    keygen.set_defaults(func=cmd_keygen)

    mint = sub.add_parser("mint", help="sign a token (development and tests)")
    mint.add_argument("--key", required=True, help="PEM private key")
    mint.add_argument("--alg", required=True, choices=[a for a in algs if not a.startswith("HS")])
    mint.add_argument("--kid")
    mint.add_argument("--iss")
    mint.add_argument("--aud", action="append")
    mint.add_argument("--sub")
    mint.add_argument("--claim", action="append", metavar="NAME=VALUE")
    mint.add_argument("--ttl", type=_duration, default=900, help="e.g. 900, 15m, 2h")
    mint.add_argument("--typ", default="JWT")
    mint.set_defaults(func=cmd_mint)

    demo = sub.add_parser("demo", help="run the demo issuer + protected API on loopback")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8000)
    demo.set_defaults(func=cmd_demo)
    return parser


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
