"""A griffe extension for the docs site (mkdocs.yml) that reads the package's docstrings as they
are written:

- Sphinx roles (``:class:`Principal```, ``:meth:`Verifier.averify```), which Markdown would show
  as text, become links to the name's entry in the API reference when the name is one of
  ``jwt_guard``'s public names, else inline code;
- a paragraph that ends with reST's ``::`` before an indented example ends with ``:`` (the
  indented lines are a Markdown code block as they are);
- ``#:`` comments above an attribute or constant (the house style) are its docstring, as Sphinx
  reads them;
- a method without a docstring that overrides a documented one (``MemoryDenylist.check``,
  ``Denylist.check``'s) shows the one it overrides, as ``help()`` does."""

from __future__ import annotations

import importlib
import inspect
import re
from typing import Any

import griffe

import jwt_guard

_ROLE = re.compile(r":(?:class|func|meth|attr|data|mod|exc|obj):`(~?)([\w.]+)(?:\(\))?`")
# "overrides::", a blank line, then an indented block: reST's literal block marker.
_LITERAL = re.compile(r"(?<=\S)::(?=\n\n[ ]{4})")


def _public_names(module: str) -> tuple[str, ...]:
    """The ``__all__`` of ``module`` when it is one of the public modules (the reference shows
    each of those names), else nothing."""
    if any(part.startswith("_") for part in module.split(".")):
        return ()
    try:
        return tuple(getattr(importlib.import_module(module), "__all__", ()))
    except ImportError:
        return ()


def markdown_roles(text: str, module: str = "jwt_guard") -> str:
    """``text`` with each Sphinx role made a Markdown link or inline code, and each reST
    literal block marker (``::`` before an indented block) a colon.

    A role links to the name's entry when the name is one of ``jwt_guard``'s public names, or
    of the public ``module`` whose docstring it is in (``:class:`LocalIssuer``` in
    ``jwt_guard.testing``)."""
    local = _public_names(module) if module != "jwt_guard" else ()

    def replace(match: re.Match[str]) -> str:
        short, target = match.group(1), match.group(2)
        name = target.removeprefix("jwt_guard.")
        shown = name.rpartition(".")[2] if short else name
        if name.split(".")[0] in jwt_guard.__all__:
            return f"[`{shown}`][jwt_guard.{name}]"
        rest = target.removeprefix(f"{module}.")
        if rest.split(".")[0] in local:
            return f"[`{shown}`][{module}.{rest}]"
        return f"`{shown}`"

    return _LITERAL.sub(":", _ROLE.sub(replace, text))


def comment_above(obj: griffe.Object) -> str | None:
    """The ``#:`` comment lines right above ``obj``'s first line, without the markers."""
    if obj.lineno is None:
        return None
    lines = obj.module.lines
    found: list[str] = []
    index = obj.lineno - 2
    while index >= 0 and lines[index].strip().startswith("#:"):
        found.insert(0, lines[index].strip()[2:].strip())
        index -= 1
    return "\n".join(found) or None


def inherited_doc(obj: griffe.Object) -> str | None:
    """The docstring ``inspect.getdoc`` finds for the method ``obj`` in its class's bases."""
    cls = obj.parent
    if cls is None or not cls.is_class:
        return None
    try:
        runtime: Any = importlib.import_module(cls.module.path)
        for part in cls.path.removeprefix(cls.module.path + ".").split("."):
            runtime = getattr(runtime, part)
    except (ImportError, AttributeError):
        return None
    for base in runtime.__mro__[1:]:
        found = base.__dict__.get(obj.name)
        if isinstance(found, property):
            found = found.fget
        elif isinstance(found, (staticmethod, classmethod)):
            found = found.__func__
        doc = getattr(found, "__doc__", None)
        if doc:
            return inspect.cleandoc(doc)
    return None


class SphinxRoles(griffe.Extension):
    """Reads ``#:`` comments as docstrings and rewrites the roles of every docstring."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is None and obj.is_attribute:
            comment = comment_above(obj)
            if comment is not None:
                obj.docstring = griffe.Docstring(comment, parent=obj)
        if obj.docstring is None and obj.is_function:
            doc = inherited_doc(obj)
            if doc is not None:
                obj.docstring = griffe.Docstring(doc, parent=obj)
        if obj.docstring is not None:
            obj.docstring.value = markdown_roles(obj.docstring.value, obj.module.path)
