"""Turning pydantic's validation errors into one sentence a person can act on.

The sentence names the field as the form labels it: a model field's ``title``
(``Field(title="Floor value")``) is its label, in the app and in the CLI's
messages alike; a field without one is named by its path (``slice_floors[2].min_n``).
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from core.domain.errors import InvalidInput

M = TypeVar("M", bound=BaseModel)


def _where(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if not str(p).startswith("function-")]
    out = ""
    for p in parts:
        out += f"[{int(p) + 1}]" if p.isdigit() else (f".{p}" if out else p)
    return out or "input"


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds, looking inside list[...] and ... | None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (list, tuple, set, typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _inner_model(arg)
            if found is not None:
                return found
    return None


def field_label(model: type[BaseModel] | None, loc: tuple[Any, ...]) -> str:
    """The field at ``loc`` as a form labels it: titles joined, list items numbered from 1."""
    parts: list[str] = []
    current = model
    steps = [p for p in loc if not str(p).startswith("function-")]
    for i, p in enumerate(steps):
        if isinstance(p, int) or str(p).isdigit():
            if parts:
                parts[-1] = f"{parts[-1]} {int(p) + 1}"
            continue
        info = current.model_fields.get(str(p)) if current is not None else None
        if info is None or not info.title:
            return _where(loc)
        current = _inner_model(info.annotation)
        # A group of fields (a nested model, not a list of them) is labelled by its fields alone, as on a form.
        is_group = current is not None and current is info.annotation and i < len(steps) - 1
        if not is_group:
            parts.append(info.title if not parts else info.title[:1].lower() + info.title[1:])
    return ", ".join(parts) if parts else "The input"


def _problem(err: Mapping[str, Any]) -> str:
    kind, ctx = err.get("type", ""), err.get("ctx") or {}
    plain = {
        "missing": "must be filled in",
        "int_parsing": "must be a whole number", "int_type": "must be a whole number",
        "int_from_float": "must be a whole number",
        "float_parsing": "must be a number", "float_type": "must be a number", "finite_number": "must be a number",
        "string_type": "must be text", "list_type": "must be a list", "bool_parsing": "must be yes or no",
        "extra_forbidden": "is not a field Stillroom knows; remove it",
    }
    if kind in plain:
        return "must be filled in" if err.get("input", "") is None and kind.endswith("_type") else plain[kind]
    bounds = {"greater_than_equal": ("at least", "ge"), "less_than_equal": ("at most", "le"),
              "greater_than": ("more than", "gt"), "less_than": ("less than", "lt")}
    if kind in bounds:
        words, key = bounds[kind]
        return f"must be {words} {ctx.get(key):g}" if isinstance(ctx.get(key), int | float) else \
            f"must be {words} {ctx.get(key)}"
    if kind == "string_too_short":
        n = ctx.get("min_length", 1)
        return "must not be blank" if n == 1 else f"must be at least {n} characters"
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters"
    if kind == "too_long":
        return f"may hold at most {ctx.get('max_length')} items"
    if kind in ("enum", "literal_error"):
        return f"must be one of {ctx.get('expected', 'the offered choices')}"
    msg = str(err.get("msg", "is not valid"))
    return msg.removeprefix("Value error, ").removeprefix("Assertion failed, ").replace(
        "Input should be", "should be")


def sentence(err: Mapping[str, Any], model: type[BaseModel] | None = None) -> str:
    """One error as a sentence: the field as labelled, what is wrong, and what was given."""
    loc = tuple(err.get("loc", ()))
    label = field_label(model, loc) if loc else "The input"
    got = ""
    value = err.get("input")
    if value not in (None, "") and "input" in err and not isinstance(value, dict | list):
        got = f" (you gave {value!r})"
    problem = _problem(err)
    if err.get("type") == "value_error":  # our own validators already wrote a sentence
        text = f"{label}: {problem}" if loc else problem
        return f"{text[:1].upper()}{text[1:].rstrip('.')}."
    return f"{label} {problem.rstrip('.')}{got}."


def parse(model: type[M], data: Any) -> M:
    """Validate ``data`` into ``model`` or raise InvalidInput naming the field as labelled."""
    if isinstance(data, model):
        return data
    if not isinstance(data, dict):
        raise InvalidInput(f"expected a mapping of fields for {model.__name__}, got {type(data).__name__}.")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise InvalidInput(sentence(first, model), field=_where(tuple(first.get("loc", ())))) from None
