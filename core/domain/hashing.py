"""The hashes the record is built on: one canonical JSON, SHA-256 over it, and the hash a secret is kept as.

Pure functions, below everything that stores, chains or compares them.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(obj: Any) -> str:
    """The one serialisation every hash in Stillroom is computed over."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def sha256_hex(text_: str) -> str:
    return hashlib.sha256(text_.encode("utf-8")).hexdigest()


def token_hash(secret: str) -> str:
    """What a bearer token or a job credential is stored as: its SHA-256, never the secret."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()
