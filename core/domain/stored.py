"""Reading stored JSON back into its typed contract.

A row keeps its JSON as written (its hash and its audit event cover those bytes); readers validate it into
the model on the way out, and a value that no longer fits is refused with a sentence naming the row and the
field, as a tampered record is.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from core.domain.errors import RecordTampered
from core.domain.validation import sentence

M = TypeVar("M", bound=BaseModel)


def read_stored(model: type[M], value: Any, *, what: str) -> M:
    """``value`` (stored JSON) as ``model``; RecordTampered naming ``what`` and the field when it does not fit."""
    if isinstance(value, model):
        return value
    try:
        return model.model_validate(value if value is not None else {})
    except ValidationError as exc:
        first = exc.errors()[0]
        raise RecordTampered(f"{what} no longer holds what Stillroom stored: {sentence(dict(first), model)} "
                             "Run `stillroom audit verify` to see what changed.") from None


def stored_json(model: BaseModel) -> dict[str, Any]:
    """What a row stores for ``model``: JSON types, field names as written (aliases where a field has one)."""
    return model.model_dump(mode="json", by_alias=True)
