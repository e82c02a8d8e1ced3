"""What Stillroom's outgoing HTTP calls share: the form of a URL that may be recorded, the admin's allow-list rule
(a URL is called only when it is exactly one the admin listed, and carries no user info, query or fragment), and
which answers are worth retrying. The chat teacher (core.teacher.chat) and the webhooks (core.notify) both use it.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from urllib.parse import urlsplit, urlunsplit

# Answers that say "try again later": a timeout, a conflict, too many requests, a server's own failure.
RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


class Refusal(StrEnum):
    """Why a URL may not be called (the caller words the sentence: it knows what the URL is for)."""

    SHAPE = "carries user info, a query or a fragment"
    UNLISTED = "is not on the admin's list"


def public_url(url: str) -> str:
    """The URL without user info, query or fragment: what may be recorded."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def refusal(url: str, allowed: Iterable[str]) -> Refusal | None:
    """None when ``url`` is exactly one of ``allowed`` (compared in their public form), else why not."""
    parts = urlsplit(url.strip())
    if parts.username or parts.password or parts.query or parts.fragment:
        return Refusal.SHAPE
    if public_url(url) not in {public_url(u) for u in allowed}:
        return Refusal.UNLISTED
    return None
