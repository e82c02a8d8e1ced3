"""The notification tests share a real local HTTP receiver (tests/notify_helpers.py)."""

from notify_helpers import receiver  # noqa: F401 (a fixture, offered to every test here)
