"""Claims as a typed object: a pydantic model or a dataclass (``Principal.claims_as``).

pydantic is optional: a pydantic model is validated by pydantic; a dataclass is filled here,
with the same strict JSON types whether or not pydantic is installed (a ``str`` field takes a
JSON string, an ``int`` field a whole number and never ``true``). A claim whose name is not an
identifier maps to a field by ``field(metadata={"claim": "cognito:groups"})`` (a dataclass) or
``Field(alias="cognito:groups")`` (pydantic). A failure is :class:`ClaimInvalid` (401
``claim_invalid``) whose ``detail`` names the model, the field and what was wrong, never the
claim's value.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from .errors import ClaimInvalid, json_type

__all__ = ["CLAIM_METADATA", "claims_as"]

T = TypeVar("T")

#: The dataclass field metadata key naming the claim a field reads (default: the field name).
CLAIM_METADATA = "claim"

_MISSING = object()


def _invalid(model: type[Any], field: str, reason: str, **facts: Any) -> ClaimInvalid:
    return ClaimInvalid(detail={"model": model.__name__, "field": field, "reason": reason, **facts})


def claims_as(claims: Mapping[str, Any], model: type[T]) -> T:
    """``claims`` as an instance of ``model`` (a pydantic model or a dataclass)."""
    if not isinstance(model, type):
        raise TypeError("claims_as needs a pydantic model class or a dataclass")
    if _is_pydantic(model):
        return _pydantic(claims, model)
    if dataclasses.is_dataclass(model):
        return _dataclass(claims, model)
    raise TypeError(f"claims_as needs a pydantic model class or a dataclass, not {model!r}")


def _is_pydantic(model: type[Any]) -> bool:
    # Without importing pydantic: a model class has these, whatever the pydantic version 2.x.
    return hasattr(model, "model_validate") and hasattr(model, "model_fields")


def _pydantic(claims: Mapping[str, Any], model: type[T]) -> T:
    from pydantic import ValidationError

    try:
        result: T = model.model_validate(dict(claims))  # type: ignore[attr-defined]
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False, include_context=False)[0]
        field = ".".join(str(part) for part in first["loc"]) or "<root>"
        # pydantic's error type ("missing", "string_type", ...) is a fixed word: safe.
        raise _invalid(model, field, first["type"], errors=exc.error_count()) from None
    return result


def _dataclass(claims: Mapping[str, Any], model: type[T], prefix: str = "") -> T:
    hints = typing.get_type_hints(model)
    values: dict[str, Any] = {}
    for field in dataclasses.fields(model):  # type: ignore[arg-type]
        if not field.init:
            continue
        claim = field.metadata.get(CLAIM_METADATA, field.name)
        name = prefix + claim
        value = claims.get(claim, _MISSING)
        if value is _MISSING:
            if (
                field.default is dataclasses.MISSING
                and field.default_factory is dataclasses.MISSING
            ):
                raise _invalid(model, name, "missing")
            continue
        expected = hints.get(field.name, Any)
        values[field.name] = _check(model, name, value, expected)
    return model(**values)


def _check(model: type[Any], name: str, value: Any, expected: Any) -> Any:
    """``value`` if it has the JSON type ``expected`` names; a nested dataclass is built."""
    if expected is Any or expected is object:
        return value
    origin = typing.get_origin(expected)
    args = typing.get_args(expected)
    if origin is typing.Union or origin is types.UnionType:
        if value is not None:
            args = tuple(option for option in args if option is not type(None))
            if len(args) == 1:  # Optional[X] with a value: X's own error is the reason
                return _check(model, name, value, args[0])
        for option in args:
            try:
                return _check(model, name, value, option)
            except ClaimInvalid:
                continue
        raise _invalid(model, name, "type", expected=_name(expected), found=json_type(value))
    if origin is typing.Literal:
        if any(value == option and type(value) is type(option) for option in args):
            return value
        raise _invalid(model, name, "value", expected=_name(expected))
    if origin in (list, tuple, set, frozenset) or expected in (list, tuple, set, frozenset):
        if not isinstance(value, list):
            raise _invalid(model, name, "type", expected="array", found=json_type(value))
        kind = origin or expected
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            args = (args[0],)
        elif origin is tuple and args:
            raise TypeError("claims_as supports tuple[X, ...], not fixed-length tuples")
        item = args[0] if args else Any
        items = [_check(model, name, v, item) for v in value]
        try:
            return kind(items)
        except TypeError:  # a set of JSON arrays or objects: unhashable items
            raise _invalid(model, name, "unhashable", expected=_name(expected)) from None
    if origin in (dict, Mapping) or expected in (dict, Mapping):
        if not isinstance(value, dict):
            raise _invalid(model, name, "type", expected="object", found=json_type(value))
        item = args[1] if len(args) == 2 else Any
        return {k: _check(model, name, v, item) for k, v in value.items()}
    if dataclasses.is_dataclass(expected) and isinstance(expected, type):
        if not isinstance(value, dict):
            raise _invalid(model, name, "type", expected="object", found=json_type(value))
        return _dataclass(value, expected, prefix=name + ".")
    if expected is type(None):
        ok = value is None
    elif expected is bool:
        ok = type(value) is bool
    elif expected is int:
        ok = type(value) is int  # JSON true is not a number
    elif expected is float:
        ok = type(value) in (int, float)
        if ok:
            try:
                value = float(value)
            except OverflowError:  # a JSON integer beyond the float range
                raise _invalid(model, name, "range", expected="float") from None
    elif expected is str:
        ok = isinstance(value, str)
    else:
        return value  # a type JSON has no word for: handed over as parsed
    if not ok:
        raise _invalid(model, name, "type", expected=_name(expected), found=json_type(value))
    return value


def _name(expected: Any) -> str:
    return getattr(expected, "__name__", None) or str(expected).replace("typing.", "")
