"""RFC 9396 authorization details: the claim's shape, and whether an entry grants what is needed.

    "authorization_details": [
        {"type": "payment_initiation", "actions": ["initiate"],
         "locations": ["https://bank.example/payments"], "instructedAmount": {...}}
    ]

The claim (RFC 9396 §9.1 for JWT access tokens) is checked once, when a token is verified
(``ClaimRules.check``): a claim that is not an array of objects each with a ``type`` string, or
whose common fields (§2.2) have the wrong JSON type, is ``claim_invalid`` (401), never a 500 in
the app that reads it. A :class:`DetailsNeed` says what a route needs (a type and, optionally,
values of the common fields); the requirement (``_http.authz``) asks :meth:`DetailsNeed.missing`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from .errors import ClaimInvalid, ConfigurationError, json_type

__all__ = ["CLAIM", "LIST_FIELDS", "DetailsNeed", "check_authorization_details"]

#: The claim's name (RFC 9396 §9.1).
CLAIM: Final = "authorization_details"
#: RFC 9396 §2.2: the common data fields whose values are arrays of strings.
LIST_FIELDS: Final = ("locations", "actions", "datatypes", "privileges")
#: RFC 9396 §2.2: the common data field whose value is a string.
STRING_FIELDS: Final = ("identifier",)


def _invalid(reason: str, index: int | None = None, found: object = None) -> ClaimInvalid:
    detail: dict[str, Any] = {"claim": CLAIM, "reason": reason}
    if index is not None:
        detail["entry"] = index
    if found is not None:
        detail["found"] = json_type(found)  # the JSON type only: values are the client's
    return ClaimInvalid(detail=detail)


def check_authorization_details(value: object) -> None:
    """Refuse an ``authorization_details`` claim that breaks RFC 9396 §2 and §2.2 (the shape
    only: what a type's own fields mean is the application's)."""
    if not isinstance(value, list):
        raise _invalid("must be a JSON array of objects (RFC 9396 §2)", found=value)
    for index, entry in enumerate(value):
        if not isinstance(entry, dict):
            raise _invalid("each entry must be a JSON object (RFC 9396 §2)", index, entry)
        kind = entry.get("type")
        if not isinstance(kind, str) or not kind:
            # §2: "type" is REQUIRED, a string naming the kind of authorization.
            raise _invalid("each entry needs a non-empty 'type' string (RFC 9396 §2)", index)
        for name in LIST_FIELDS:
            items = entry.get(name)
            if name in entry and not (
                isinstance(items, list) and all(isinstance(v, str) for v in items)
            ):
                raise _invalid(f"'{name}' must be an array of strings (RFC 9396 §2.2)", index)
        for name in STRING_FIELDS:
            if name in entry and not isinstance(entry[name], str):
                raise _invalid(f"'{name}' must be a string (RFC 9396 §2.2)", index)


def _names(value: str | Sequence[str], what: str) -> tuple[str, ...]:
    items = (value,) if isinstance(value, str) else tuple(value)
    if not all(isinstance(v, str) and v for v in items):
        raise ConfigurationError(f"{what} must be a non-empty string or a list of them")
    return items


@dataclass(frozen=True)
class DetailsNeed:
    """What a route needs from a token's authorization details: one entry of ``type`` that
    lists every value named here in its common fields (an entry grants its actions at its
    locations together, RFC 9396 §2: the values are never gathered from several entries)."""

    type: str
    #: Common list fields (``actions``, ``locations``, ``datatypes``, ``privileges``): the
    #: values the entry must list, all of them.
    fields: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: The ``identifier`` the entry must carry, ``None``: any.
    identifier: str | None = None

    @classmethod
    def of(
        cls,
        type: str,
        *,
        identifier: str | None = None,
        **fields: str | Sequence[str],
    ) -> DetailsNeed:
        """Validated at start-up: a type, known common fields, strings."""
        if not isinstance(type, str) or not type:
            raise ConfigurationError("require_authorization_details needs a type (a string)")
        unknown = sorted(set(fields) - set(LIST_FIELDS))
        if unknown:
            raise ConfigurationError(
                f"require_authorization_details: unknown field {unknown[0]!r}; the common "
                f"fields of RFC 9396 §2.2 are {', '.join(LIST_FIELDS)} and identifier (match a "
                "type's own fields in the view, from principal.authorization_details)"
            )
        if identifier is not None and (not isinstance(identifier, str) or not identifier):
            raise ConfigurationError("require_authorization_details: identifier must be a string")
        own = {name: _names(value, name) for name, value in fields.items()}
        return cls(type, {n: v for n, v in own.items() if v}, identifier)

    def grants(self, entry: Mapping[str, Any]) -> bool:
        """Whether one (checked) entry grants everything needed."""
        if entry.get("type") != self.type:
            return False
        if self.identifier is not None and entry.get("identifier") != self.identifier:
            return False
        for name, needed in self.fields.items():
            held = entry.get(name) or ()
            if not all(value in held for value in needed):
                return False
        return True

    def missing(self, entries: Iterable[Mapping[str, Any]]) -> dict[str, Any] | None:
        """``None`` when some entry grants what is needed; else the refusal's detail (for the
        developer: the type needed and the types the token has, no other claim value)."""
        entries = tuple(entries)
        if any(self.grants(entry) for entry in entries):
            return None
        present = sorted({str(e.get("type")) for e in entries})
        detail: dict[str, Any] = {"type": self.type, "present_types": present}
        if self.fields:
            detail["fields"] = {name: list(values) for name, values in self.fields.items()}
        if self.identifier is not None:
            detail["identifier"] = self.identifier
        detail["reason"] = (
            f"no entry of type {self.type!r}"
            if self.type not in present
            else f"no entry of type {self.type!r} grants every value needed"
        )
        return detail

    def as_written(self) -> str:
        """The call that made this need, as a user writes it."""
        args = [repr(self.type)]
        args += [f"{name}={list(values)!r}" for name, values in self.fields.items()]
        if self.identifier is not None:
            args.append(f"identifier={self.identifier!r}")
        return f"require_authorization_details({', '.join(args)})"
