"""Named errors, each carrying one sentence a person can act on.

``InvalidInput`` means the request was malformed (CLI exit code 2);
``GovernanceViolation`` means the request was well formed but breaks a rule of
the playbook (CLI exit code 3).
"""

from __future__ import annotations


class StillroomError(Exception):
    """Base class: ``str(error)`` is the sentence shown to the person."""

    exit_code = 1


class InvalidInput(StillroomError):
    """Input that cannot be accepted; names the field and the fix."""

    exit_code = 2

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.field = field


class NotFound(InvalidInput):
    """A named user, project or record does not exist."""


class AuthenticationFailed(StillroomError):
    """Wrong username or password (deliberately does not say which)."""

    exit_code = 2


class GovernanceViolation(StillroomError):
    """A rule of the playbook forbids this action."""

    exit_code = 3


class PermissionDenied(GovernanceViolation):
    """The person lacks the role this action needs."""


class SeparationOfDuties(GovernanceViolation):
    """The driver and the validator of a project must be different people."""


class GateNotLocked(GovernanceViolation):
    """Work that needs a locked success gate was attempted without one."""


class ProjectBlocked(GovernanceViolation):
    """The project cannot proceed (for example the teacher's terms forbid it)."""


class RoundClosed(GovernanceViolation):
    """A decision closed the round (or the project) that new evidence would join."""


class RecordTampered(GovernanceViolation):
    """A governance row no longer matches the audit event that recorded it (issue 9)."""


class GateTampered(RecordTampered):
    """A locked gate's content no longer matches its lock-time hash and event."""


class ArtifactTampered(GovernanceViolation):
    """A file the database vouches for is missing or no longer has its recorded SHA-256."""
