"""The four roles a person can hold on a project: the vocabulary core, the CLI and the pages share."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    SPONSOR = "sponsor"
    DRIVER = "driver"
    VALIDATOR = "validator"
    OPERATOR = "operator"
