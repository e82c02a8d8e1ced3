"""Turning pydantic's validation errors into one sentence a person can act on."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from core.errors import InvalidInput

M = TypeVar("M", bound=BaseModel)


def _where(loc: tuple) -> str:
    parts = [str(p) for p in loc if not str(p).startswith("function-")]
    out = ""
    for p in parts:
        out += f"[{int(p) + 1}]" if p.isdigit() else (f".{p}" if out else p)
    return out or "input"


def sentence(err: dict[str, Any]) -> str:
    where = _where(tuple(err.get("loc", ())))
    msg = str(err.get("msg", "is invalid"))
    msg = msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    msg = msg.replace("Input should be", "should be").replace("Field required", "is required")
    got = ""
    if err.get("type") not in ("missing",) and "input" in err and not isinstance(err["input"], dict):
        got = f" (got {err['input']!r})"
    return f"{where}: {msg}{got}."


def parse(model: type[M], data: Any) -> M:
    """Validate ``data`` into ``model`` or raise InvalidInput naming the field."""
    if isinstance(data, model):
        return data
    if not isinstance(data, dict):
        raise InvalidInput(f"expected a mapping of fields for {model.__name__}, got {type(data).__name__}.")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise InvalidInput(sentence(first), field=_where(tuple(first.get("loc", ())))) from None
