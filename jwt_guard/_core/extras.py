"""Optional dependencies: a missing extra is an ImportError that says what to install."""

from __future__ import annotations

import json
from importlib import metadata
from urllib.parse import unquote, urlsplit

__all__ = ["MissingExtra", "install_line"]


def install_line(extra: str) -> str:
    """The ``pip install`` line that adds ``extra`` to this installation of jwt_guard.

    Installed from a clone (``pip install -e .``, or a directory), the line names that directory,
    as PEP 610's ``direct_url.json`` records it: the package index may hold no jwt_guard, or
    another project's under the name. Otherwise it names the package. Never raises.
    """
    try:
        # The first copy that records where it came from: a stray jwt_guard.egg-info in the
        # working directory (an old setuptools build) comes first on sys.path and records none.
        found = (d.read_text("direct_url.json") for d in metadata.distributions(name="jwt_guard"))
        recorded = next((text for text in found if text), None)
        origin = json.loads(recorded) if recorded else None
        url = urlsplit(origin["url"]) if isinstance(origin, dict) else None
        if url is not None and url.scheme == "file" and not url.netloc:
            editable = origin.get("dir_info", {}).get("editable") is True  # type: ignore[union-attr]
            option = "-e " if editable else ""
            return f'pip install {option}"{unquote(url.path)}[{extra}]"'
    except Exception:  # noqa: S110 - a hint must never fail: the package's name below
        pass
    return f'pip install "jwt_guard[{extra}]"'


class MissingExtra(ImportError):
    """An optional dependency is not installed; the message names the ``pip install`` line."""

    def __init__(self, feature: str, module: str, extra: str) -> None:
        super().__init__(
            f'{feature} needs the "{module}" package, which is not installed: '
            f"{install_line(extra)}",
            name=module,
        )
        self.extra = extra
