"""Who may see what: blind review and the audit log.

Blind review: nobody sees another person's verdict, rating or comment on an item until they have recorded
their own verdict on that item, or a validator has approved the evaluation (the review is then over). Every
path that shows verdicts asks ``Blind`` here: the review page, the audit log (page and CLI), the decision
record and the CLI's review commands. An audit event of a hidden verdict still shows that a verdict was
recorded (the chain hashes its real content); only its verdict, rating and comment are withheld.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlmodel import Session, col, select

from core.access.projects import can_view, projects_for
from core.domain import hashing
from core.domain.errors import PermissionDenied
from core.store import audit, vouched
from core.store.models import AuditEvent, Evaluation, Project, ReviewVerdict, SignOff, User

VERDICT_ACTION = "review.verdict"
HIDDEN_FIELDS = ("verdict", "rating", "comment")
HIDDEN_MARK = "verdict recorded"


@dataclass(frozen=True)
class Blind:
    """What one viewer may see of the verdicts on one evaluation."""

    viewer_id: int
    signed_off: bool  # an approving sign-off names the evaluation's current hash: everything is visible
    own_items: frozenset[str]  # items the viewer has recorded a verdict on

    def sees(self, *, item_id: str, author_id: int) -> bool:
        """May the viewer see the verdict, rating and comment that ``author_id`` gave on ``item_id``?"""
        return self.signed_off or author_id == self.viewer_id or str(item_id) in self.own_items


def signed_off(session: Session, *, evaluation_id: int) -> bool:
    ev = session.get(Evaluation, evaluation_id)
    if ev is None:
        return False
    # Only a vouched approval lifts blind review: one INSERTed with raw SQL shows nobody the others' verdicts.
    return vouched.first(session, SignOff, SignOff.evaluation_id == evaluation_id, col(SignOff.approve),
                         SignOff.evaluation_hash == ev.report_hash) is not None


def blind(session: Session, *, viewer: User, evaluation_id: int) -> Blind:
    """The blind-review rule for ``viewer`` on one evaluation."""
    own = session.exec(select(ReviewVerdict.item_id).where(ReviewVerdict.evaluation_id == evaluation_id,
                                                           ReviewVerdict.validator_id == viewer.id)).all()
    return Blind(viewer_id=viewer.id, signed_off=signed_off(session, evaluation_id=evaluation_id),
                 own_items=frozenset(str(i) for i in own))


def visible_verdicts(session: Session, *, viewer: User, evaluation_id: int) -> list[ReviewVerdict]:
    """The verdicts on an evaluation that ``viewer`` may read, oldest first."""
    rule = blind(session, viewer=viewer, evaluation_id=evaluation_id)
    rows = session.exec(select(ReviewVerdict).where(ReviewVerdict.evaluation_id == evaluation_id)
                        .order_by(ReviewVerdict.id)).all()
    return [v for v in rows if rule.sees(item_id=v.item_id, author_id=v.validator_id)]


# --------------------------------------------------------------------------- the audit log


@dataclass(frozen=True)
class ShownEvent:
    """An audit event as a viewer may see it: ``details`` is the payload, with hidden fields withheld."""

    id: int
    ts: str
    actor: str
    project_id: int | None
    action: str
    entity: str
    entity_id: str
    details: str
    hash: str
    withheld: bool


def audit_scopes(session: Session, *, viewer: User) -> list[int | None]:
    """The scopes of the audit log a viewer may open: every event (None) for an admin, then each project
    they can open."""
    return ([None] if viewer.is_admin else []) + [p.id for p in projects_for(session, user=viewer)]


def _require_scope(session: Session, *, viewer: User, project_id: int | None) -> None:
    if project_id is None:
        if not viewer.is_admin:
            raise PermissionDenied(f"Only an admin can read every project's audit events; {viewer.username} "
                                   "can read the events of a project they hold a role on: name it.")
        return
    project = session.get(Project, project_id)
    if project is None:
        raise PermissionDenied(f"there is no project #{project_id} to read the audit events of.")
    can_view(session, user=viewer, project=project)


def _shown(event: AuditEvent, rules: dict[int, Blind], author_ids: dict[str, int]) -> ShownEvent:
    details, withheld = event.payload, False
    if event.action == VERDICT_ACTION:
        payload = json.loads(event.payload)
        rule = rules.get(int(payload.get("evaluation_id") or 0))
        author = author_ids.get(event.actor, -1)
        if rule is None or not rule.sees(item_id=str(payload.get("item_id")), author_id=author):
            kept = {k: v for k, v in payload.items() if k not in HIDDEN_FIELDS}
            details, withheld = hashing.canonical_json({**kept, "verdict": HIDDEN_MARK}), True
    return ShownEvent(event.id, event.ts, event.actor, event.project_id, event.action, event.entity,
                      event.entity_id, details, event.hash, withheld)


def visible_events(session: Session, *, viewer: User, project_id: int | None = None, action: str | None = None,
                   limit: int = 200, offset: int = 0) -> tuple[list[ShownEvent], int]:
    """The audit log as ``viewer`` may read it, newest first, with the total for paging.

    Everything (``project_id`` None) is for admins; anyone else reads the projects they hold a role on.
    Verdict events keep proving that a verdict exists; their content follows the blind-review rule.
    """
    _require_scope(session, viewer=viewer, project_id=project_id)
    events, total = audit.list_events(session, project_id=project_id, action=action, limit=limit, offset=offset)
    verdict_events = [e for e in events if e.action == VERDICT_ACTION]
    rules: dict[int, Blind] = {}
    author_ids: dict[str, int] = {}
    if verdict_events:
        for e in verdict_events:
            eid = int(json.loads(e.payload).get("evaluation_id") or 0)
            if eid not in rules:
                rules[eid] = blind(session, viewer=viewer, evaluation_id=eid)
        names = {e.actor for e in verdict_events}
        author_ids = {u.username: u.id for u in vouched.rows(session, User, col(User.username).in_(names))}
    return [_shown(e, rules, author_ids) for e in events], total
