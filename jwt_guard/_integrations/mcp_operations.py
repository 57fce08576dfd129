"""The scopes each named MCP operation needs (``protect(tool_scopes=, prompt_scopes=,
resource_scopes=)``): a tool and a prompt by name, a resource by its URI or by an RFC 6570
level-1 URI template (``notes://{id}``).

The gate decides on the message's own name or URI (``params.name``, ``params.uri``), and the
SDK then routes that same string to a handler: names and URIs by exact lookup, templates by its
own matcher. A template here is matched strictly, as what a level-1 expansion produces
(RFC 6570 §3.2.2: each variable one or more unreserved characters or percent-encoded octets).
The SDK's matcher is more lenient (a ``{id}`` value there may hold ``:``, ``@``, a space...), so
a URI that only a lenient reading of a template matches is refused rather than let through
without the template's scopes. Matching is an NFA simulation, linear in the URI: no regular
expression, so no backtracking a crafted URI could make slow.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from .._core.errors import ConfigurationError
from .._core.scopes import required_scopes

__all__ = ["MAX_TEMPLATED_URI", "OperationScopes", "UnmatchedResource"]

#: The longest resource URI matched against templates (RFC 9110 §4.1 asks for URIs of at least
#: 8000 octets); a longer one that may be a template's is refused, not matched.
MAX_TEMPLATED_URI: Final = 8192

#: The MCP methods naming a resource (``params.uri``): reading it, or subscribing to its changes.
_RESOURCE_METHODS: Final = frozenset({"resources/read", "resources/subscribe"})

# RFC 3986 §2.3: what a level-1 expansion leaves as it is; "%" starts an octet checked apart.
_STRICT: Final = frozenset(string.ascii_letters + string.digits + "-._~%")
# A level-1 expansion encodes these, and no matcher reads a variable across them.
_STOP: Final = frozenset("/?#")
_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
# RFC 6570 §2.3 varname (without percent-encoded characters); level 1: no operator, no modifier.
_VARIABLE = re.compile(r"\{([A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*)\}")


class UnmatchedResource(ValueError):
    """A resource URI a template may be read as, but that no level-1 expansion produces."""


# A step of a template: "c", a literal character; "1", one character of a set; "*", any number
# of characters of a set; "~", any number of characters not in a set (a strict variable is "1"
# then "*": never empty).
_Step = tuple[str, str | frozenset[str]]


@dataclass(frozen=True)
class _Template:
    text: str
    prefix: str  # the literal before the first variable: most URIs fail on it at once
    strict: tuple[_Step, ...]
    lenient: tuple[_Step, ...]
    scopes: tuple[str, ...]

    @classmethod
    def parse(cls, text: str, scopes: tuple[str, ...]) -> _Template:
        pieces = _VARIABLE.split(text)  # literal, variable name, literal, ...
        literals = pieces[0::2]
        if any("{" in part or "}" in part for part in literals):
            raise ConfigurationError(
                f"resource_scopes: {text!r} is not an RFC 6570 level-1 template: only simple "
                "{name} variables (no {+path}, {/path}, {?query}...; list such URIs one by one)"
            )
        if any(not part for part in literals[1:-1]):
            raise ConfigurationError(
                f"resource_scopes: {text!r} has two variables with nothing between them: "
                "which characters belong to which cannot be told"
            )
        strict: list[_Step] = []
        lenient: list[_Step] = []
        for i, part in enumerate(pieces):
            if i % 2 == 0:
                strict.extend(("c", ch) for ch in part)
                lenient.extend(("c", ch) for ch in part)
            else:
                strict.extend((("1", _STRICT), ("*", _STRICT)))
                lenient.append(("~", _STOP))
        return cls(text, literals[0], tuple(strict), tuple(lenient), scopes)


def _matches(steps: tuple[_Step, ...], uri: str) -> bool:
    """Whether ``uri`` is read whole by ``steps`` (an NFA simulation: linear, no backtracking).

    ``("c", ch)`` is that character; ``("1", chars)`` one character in ``chars``; ``("*",
    chars)`` any number of characters in ``chars``; ``("~", chars)`` any number not in them."""
    end = len(steps)

    def closure(states: set[int]) -> set[int]:
        todo = list(states)
        while todo:
            i = todo.pop()
            if i < end and steps[i][0] in "*~" and i + 1 not in states:
                states.add(i + 1)
                todo.append(i + 1)
        return states

    states = closure({0})
    for ch in uri:
        following: set[int] = set()
        for i in states:
            if i == end:
                continue
            kind, value = steps[i]
            if kind == "c":
                if ch == value:
                    following.add(i + 1)
            elif kind == "1":
                if ch in value:
                    following.add(i + 1)
            elif (ch in value) == (kind == "*"):
                following.add(i)  # "*" or "~": stays in the variable
        if not following:
            return False
        states = closure(following)
    return end in states


def _scopes(option: str, table: Mapping[str, Sequence[str]] | None) -> dict[str, tuple[str, ...]]:
    if table is None:
        return {}
    what = "URIs or URI templates" if option == "resource_scopes" else "names"
    if not isinstance(table, Mapping) or not all(
        isinstance(name, str)
        and name
        and not any(ch.isspace() for ch in name)
        and not isinstance(scopes, str)
        and isinstance(scopes, Sequence)
        and scopes
        and all(isinstance(s, str) and s and " " not in s for s in scopes)
        for name, scopes in table.items()
    ):
        raise ConfigurationError(f"{option} maps {what} to non-empty lists of scopes")
    return {name: required_scopes(scopes, f"{option}[{name!r}]") for name, scopes in table.items()}


class OperationScopes:
    """Method → the name or URI it acts on → the scopes a call needs (all of them)."""

    def __init__(
        self,
        tools: Mapping[str, Sequence[str]] | None = None,
        prompts: Mapping[str, Sequence[str]] | None = None,
        resources: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self._tools = _scopes("tool_scopes", tools)
        self._prompts = _scopes("prompt_scopes", prompts)
        uris = self._listed = _scopes("resource_scopes", resources)
        self._uris = {u: s for u, s in uris.items() if "{" not in u and "}" not in u}
        self._templates = tuple(
            _Template.parse(u, s) for u, s in uris.items() if u not in self._uris
        )

    def __bool__(self) -> bool:
        """Whether any operation has scopes configured."""
        return bool(self._tools or self._prompts or self._listed)

    @property
    def tool_names(self) -> tuple[str, ...]:
        return tuple(self._tools)

    @property
    def prompt_names(self) -> tuple[str, ...]:
        return tuple(self._prompts)

    @property
    def resource_keys(self) -> tuple[str, ...]:
        """The resource URIs and URI templates, as listed."""
        return tuple(self._listed)

    @property
    def completions_checked(self) -> bool:
        """Whether a completion's reference must name a registered prompt or template:
        when prompts or resources have scopes (a completion draws on what they serve)."""
        return bool(self._prompts or self._listed)

    def completing(self, method: str, name: str) -> tuple[str, ...] | None:
        """The scopes a ``completion/complete`` for the prompt or resource ``name`` needs:
        those of ``method`` on it; a resource reference is a template (or URI) as listed, so
        the entry of that exact text first."""
        if method == "resources/read":
            listed = self._listed.get(name)
            if listed is not None:
                return listed
        return self.needed(method, name)

    def needed(self, method: str, name: str) -> tuple[str, ...] | None:
        """The scopes ``method`` on ``name`` needs; ``None``: no scope is configured for it.

        Raises :class:`UnmatchedResource` for a resource URI that a lenient reading of a
        template matches and its strict one does not (see the module docstring)."""
        if method == "tools/call":
            return self._tools.get(name)
        if method == "prompts/get":
            return self._prompts.get(name)
        if method not in _RESOURCE_METHODS:
            return None
        needed = list(self._uris.get(name, ()))
        exact = name in self._uris  # a resource of its own: the SDK looks those up first
        for template in self._templates:
            if not name.startswith(template.prefix):
                continue
            if len(name) > MAX_TEMPLATED_URI:
                raise UnmatchedResource(f"a resource URI over {MAX_TEMPLATED_URI} characters")
            if _PERCENT.search(name) is None and _matches(template.strict, name):
                # Every template that matches: the gate cannot know which one the SDK picks.
                needed.extend(template.scopes)
            elif not exact and _matches(template.lenient, name):
                raise UnmatchedResource(
                    f"a resource URI that template {template.text!r} may serve but no "
                    "expansion of it produces"
                )
        return tuple(dict.fromkeys(needed)) if needed else None
