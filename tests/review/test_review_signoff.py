"""Sign-off: validators only, never a driver, bound to the evaluation's hash, after enough reviews."""

from __future__ import annotations

import pytest
from review_helpers import review_items
from sqlmodel import select

from core.domain.errors import GovernanceViolation, InvalidInput, SeparationOfDuties
from core.review import review
from core.store import artifacts
from core.store.models import Artifact, AuditEvent, SignOff


def _review_threats(session, demo, project, ev, n):
    for item in review_items(session, ev, column="category", value="threat", n=n):
        review.record_verdict(session, actor=demo["val"], project=project, evaluation_id=ev.id, item_id=item,
                              verdict="teacher-right")


def test_approval_names_the_evaluation_hash(session, demo, gated, passing_eval):
    _review_threats(session, demo, gated, passing_eval, 5)
    row = review.sign_off(session, actor=demo["val"], project=gated, evaluation_id=passing_eval.id,
                          approve=True, comment="")
    assert row.approve and row.evaluation_hash == passing_eval.report_hash
    event = session.exec(select(AuditEvent).where(AuditEvent.action == "review.signoff")).one()
    assert passing_eval.report_hash in event.payload


def test_approval_waits_for_the_minimum_reviews_per_critical_slice(session, demo, gated, passing_eval):
    _review_threats(session, demo, gated, passing_eval, 4)
    [cov] = review.review_coverage(session, project=gated, evaluation_id=passing_eval.id)
    assert (cov.column, cov.value, cov.reviewed, cov.required, cov.met) == ("category", "threat", 4, 5, False)
    with pytest.raises(GovernanceViolation, match="category=threat has 4 of 5"):
        review.sign_off(session, actor=demo["val"], project=gated, evaluation_id=passing_eval.id, approve=True)
    assert session.exec(select(SignOff)).all() == []


def test_rejection_needs_a_comment_but_no_reviews(session, demo, gated, failing_eval):
    with pytest.raises(InvalidInput, match="rejection needs a comment"):
        review.sign_off(session, actor=demo["val"], project=gated, evaluation_id=failing_eval.id, approve=False)
    row = review.sign_off(session, actor=demo["val"], project=gated, evaluation_id=failing_eval.id,
                          approve=False, comment="threats are missed")
    assert not row.approve


def test_driver_can_never_sign_off(session, demo, gated, passing_eval):
    with pytest.raises(SeparationOfDuties, match="dana built evidence behind evaluation"):
        review.sign_off(session, actor=demo["dana"], project=gated, evaluation_id=passing_eval.id,
                        approve=False, comment="looks bad")


def test_tampered_report_is_refused(session, demo, gated, passing_eval):
    _review_threats(session, demo, gated, passing_eval, 5)
    path = artifacts.path_of(session.get(Artifact, passing_eval.report_artifact_id))
    path.write_bytes(path.read_bytes().replace(b'"passed":false', b'"passed":true') + b" ")
    with pytest.raises(GovernanceViolation, match="no longer matches"):
        review.sign_off(session, actor=demo["val"], project=gated, evaluation_id=passing_eval.id, approve=True)
    assert session.exec(select(SignOff)).all() == []
