"""A real nginx terminating TLS with client certificates, in front of an app on 127.0.0.1.

The ``server`` block is the manual's ("Certificate-bound tokens", "Behind nginx"), read from the
docs page that has it: the deployment recipe users copy is the one these tests run. Only the
places a test machine differs are replaced (the listening address, the certificate files, the
app's URL), and each must be found, so an edit that drops one fails here rather than drifting.
nginx runs in the foreground as one process (``master_process off``) with its own prefix,
configuration, logs and temp paths under a temporary directory, on a free loopback port.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from jwt_guard.testing import CertificateAuthority

from .manual import manual
from .redis_server import free_port

#: What the README's block says that a test machine replaces, and with what (format fields).
PLACES = {
    "listen 443 ssl;": "listen 127.0.0.1:{port} ssl;",
    "/etc/nginx/tls/server.pem": "{prefix}/server.pem",
    "/etc/nginx/tls/server.key": "{prefix}/server.key",
    "http://127.0.0.1:8000": "{upstream}",
}


def nginx_binary() -> str:
    path = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if path is None:
        pytest.fail(
            "nginx is not installed: `bash scripts/test-env.sh` installs it with apt-get when "
            "run as root (Debian: apt-get install nginx)"
        )
    return path


def readme_server_block() -> str:
    """The manual's nginx ``server`` block (the one fenced block of language ``nginx``)."""
    blocks = re.findall(r"^```nginx\n(.*?)^```\n", manual(), re.S | re.M)
    assert len(blocks) == 1, "the manual (README.md, docs/) must have exactly one nginx block"
    return str(blocks[0])


def configuration(prefix: Path, port: int, upstream: str) -> str:
    server = readme_server_block()
    for found, replacement in PLACES.items():
        assert found in server, f"the manual's nginx block no longer says {found!r}"
        server = server.replace(
            found, replacement.format(prefix=prefix, port=port, upstream=upstream)
        )
    temp = "\n".join(
        f"    {name}_temp_path {prefix}/{name};"
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""daemon off;
master_process off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
{temp}
{server}
}}
"""


class Nginx:
    """nginx on a free loopback port with a server certificate from ``ca``, proxying to
    ``upstream``; ``url`` is its ``https://`` base URL."""

    def __init__(self, prefix: Path, ca: CertificateAuthority, upstream: str) -> None:
        prefix.mkdir(parents=True, exist_ok=True)
        self.prefix = prefix
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        server = ca.issue("nginx", server=True, ip_addresses=["127.0.0.1"])
        (prefix / "server.pem").write_text(server.pem)
        (prefix / "server.key").write_text(server.key_pem)
        (prefix / "ca.pem").write_text(ca.pem)
        self.conf = prefix / "nginx.conf"
        self.conf.write_text(configuration(prefix, self.port, upstream))
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = nginx_binary()
        check = subprocess.run(
            [binary, "-t", "-p", str(self.prefix), "-c", str(self.conf)],
            capture_output=True,
            check=False,
        )
        assert check.returncode == 0, check.stderr.decode(errors="replace")
        self._proc = subprocess.Popen(
            [binary, "-p", str(self.prefix), "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                pass
            if time.monotonic() > deadline or self._proc.poll() is not None:
                log = (
                    (self.prefix / "error.log").read_text()
                    if (self.prefix / "error.log").exists()
                    else ""
                )
                raise RuntimeError(f"nginx did not start: {log}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(10)
            self._proc = None


@contextmanager
def nginx_proxy(prefix: Path, ca: CertificateAuthority, upstream: str) -> Iterator[Nginx]:
    """Start nginx in front of ``upstream``; stopped on exit."""
    server = Nginx(prefix, ca, upstream)
    server.start()
    try:
        yield server
    finally:
        server.stop()
