"""The column mapping of an import: which source column fills each field of the dataset schema.

A Dataset row stores the mapping it was imported with (plus the file's name and format) as JSON;
``read_mapping`` validates that JSON back into ``StoredMapping`` whenever it is read.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.domain.stored import read_stored


class ColumnMapping(BaseModel):
    """Which source column fills each field of the dataset schema."""

    model_config = ConfigDict(extra="forbid")
    # Titles are the Data page's labels, so a refusal names the field as the driver sees it.
    id: str = Field(min_length=1, max_length=200, title="Id column")
    text: str = Field(min_length=1, max_length=200, title="Input text column")
    slices: list[str] = Field(default_factory=list, title="Slice columns")
    reference: str | None = Field(default=None, title="Reference answer column")
    timestamp: str | None = Field(default=None, title="Timestamp column")
    labels: list[str] | None = Field(default=None, title="Allowed reference labels")

    @field_validator("id", "text", "reference", "timestamp", mode="before")
    @classmethod
    def _strip(cls, v: object) -> object:
        return (v.strip() or None) if isinstance(v, str) else v

    @field_validator("slices")
    @classmethod
    def _slices(cls, v: list[str]) -> list[str]:
        return [s.strip() for s in v if s and s.strip()]

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return None
        out = [str(x).strip() for x in v]
        if not out or any(not x for x in out):
            raise ValueError("the label list has a blank label; list each allowed label, e.g. billing,refund")
        if len(set(out)) != len(out):
            raise ValueError("the label list names a label twice; list each label once")
        return out

    def sources(self) -> list[tuple[str, str]]:
        """(field, source column) for every mapped field, in schema order."""
        pairs = [("id", self.id), ("text", self.text)]
        pairs += [("reference", self.reference)] if self.reference else []
        pairs += [("timestamp", self.timestamp)] if self.timestamp else []
        return pairs + [("slice", s) for s in self.slices]


class StoredMapping(ColumnMapping):
    """The mapping as a Dataset row stores it: the columns, and the file they came from."""

    source: str | None = Field(default=None, title="Source file")
    format: str | None = Field(default=None, title="Source format")

    @classmethod
    def of(cls, mapping: ColumnMapping, *, source: str, file_format: str | None = None) -> StoredMapping:
        given = {"format": file_format} if file_format is not None else {}
        return cls.model_validate({**mapping.model_dump(), "source": source, **given})

    def stored(self) -> dict[str, Any]:
        """The JSON the row stores: the fields given, in schema order (a holdout's import names no format)."""
        return self.model_dump(mode="json", exclude_unset=True)


def read_mapping(stored: Any, *, dataset_id: int | None = None) -> StoredMapping:
    """A Dataset row's stored mapping, typed (RecordTampered naming the field when it no longer fits)."""
    return read_stored(StoredMapping, stored, what=f"dataset #{dataset_id}'s column mapping")
