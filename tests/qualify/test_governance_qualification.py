"""Qualifying the trigger: the recommendation, its reasons, and the sponsor's verdict."""

import pytest
from sqlmodel import func, select

from conftest import good_qualification
from core.domain.errors import InvalidInput, PermissionDenied, ProjectBlocked
from core.qualify import qualification
from core.qualify.qualification import QualificationInput, Recommendation, assess
from core.store.models import AuditEvent, Qualification


def test_narrow_high_volume_task_with_no_better_move_proceeds_with_payback():
    a = assess(good_qualification())
    assert a.recommendation == Recommendation.PROCEED
    # 1M requests at $4/1k = $4,000 a month; student $400; saving $3,600; 10,000 / 3,600
    assert a.monthly_teacher_cost == pytest.approx(4000.0)
    assert a.monthly_saving == pytest.approx(3600.0)
    assert a.payback_months == pytest.approx(10_000 / 3600)
    assert any("pays back" in r for r in a.reasons)


def test_third_party_terms_forbidding_training_blocks_the_project():
    a = assess(good_qualification(teacher_third_party=True, terms_permit_training="no"))
    assert a.recommendation == Recommendation.BLOCKED
    assert "terms do not permit" in a.reasons[0]


def test_unknown_terms_mean_fix_first():
    a = assess(good_qualification(teacher_third_party=True, terms_permit_training="unknown"))
    assert a.recommendation == Recommendation.FIX_FIRST


def test_broad_task_gets_do_nothing():
    a = assess(good_qualification(task_scope="broad"))
    assert a.recommendation == Recommendation.DO_NOTHING
    assert "broad" in a.reasons[0]


def test_low_volume_gets_do_nothing_because_the_teacher_is_cheap_enough():
    a = assess(good_qualification(monthly_volume=20_000))
    assert a.recommendation == Recommendation.DO_NOTHING
    assert "cheap enough" in a.reasons[0]


def test_a_simpler_move_that_would_fix_it_comes_first():
    moves = good_qualification()["better_first_moves"] | {"prompt-caching": "would-fix"}
    a = assess(good_qualification(better_first_moves=moves))
    assert a.recommendation == Recommendation.FIX_FIRST
    assert "Prompt caching" in a.reasons[0]


def test_latency_play_with_target_already_met_gets_do_nothing():
    a = assess(good_qualification(play="latency", current_p95_ms=40.0, target_p95_ms=50.0))
    assert a.recommendation == Recommendation.DO_NOTHING
    assert "already meets" in a.reasons[0]


def test_cost_play_with_payback_beyond_two_years_gets_do_nothing():
    a = assess(good_qualification(build_cost=1_000_000.0))
    assert a.recommendation == Recommendation.DO_NOTHING
    assert "Payback would take" in a.reasons[0]


def test_student_cost_defaults_to_a_stated_share_of_the_teacher():
    a = assess(good_qualification(student_cost_per_1k=None))
    assert a.monthly_student_cost == pytest.approx(400.0)
    assert any("assumed" in w for w in a.warnings)


@pytest.mark.parametrize("override,field", [
    ({"monthly_volume": -5}, "monthly_volume"),
    ({"current_p95_ms": -1.0}, "current_p95_ms"),
    ({"evidence": ""}, "evidence"),
    ({"play": "vibes"}, "play"),
])
def test_invalid_answers_name_the_field(override, field):
    with pytest.raises(InvalidInput) as err:
        assess(good_qualification(**override))
    assert err.value.field == field
    assert field not in str(err.value)  # the sentence names the field as the form labels it
    assert str(err.value).startswith(QualificationInput.model_fields[field].title)


def test_third_party_teacher_needs_an_answer_about_its_terms():
    with pytest.raises(InvalidInput, match="Do its terms permit training on its outputs.*needs an answer"):
        assess(good_qualification(teacher_third_party=True))


def test_every_better_first_move_must_be_answered():
    moves = dict(good_qualification()["better_first_moves"])
    moves.pop("workflow-redesign")
    with pytest.raises(InvalidInput, match="workflow-redesign"):
        assess(good_qualification(better_first_moves=moves))


def test_sponsor_records_verdict_with_audit_event(session, demo, moderation):
    row = qualification.record(session, actor=demo["sam"], project=moderation,
                               inputs=good_qualification(), verdict="proceed")
    assert (row.version, row.recommendation, row.verdict) == (1, "proceed", "proceed")
    ev = session.exec(select(AuditEvent).where(AuditEvent.action == "qualification.record")
                      .where(AuditEvent.project_id == moderation.id)).one()
    assert '"verdict":"proceed"' in ev.payload


def test_only_the_sponsor_qualifies(session, demo, moderation):
    with pytest.raises(PermissionDenied, match="Only a sponsor"):
        qualification.record(session, actor=demo["dana"], project=moderation,
                             inputs=good_qualification(), verdict="proceed")


def test_overriding_the_recommendation_needs_a_rationale(session, demo, moderation):
    low = good_qualification(monthly_volume=1_000)
    with pytest.raises(InvalidInput, match="give a rationale"):
        qualification.record(session, actor=demo["sam"], project=moderation, inputs=low, verdict="proceed")
    row = qualification.record(session, actor=demo["sam"], project=moderation, inputs=low,
                               verdict="proceed", rationale="Volume triples next quarter (signed contract).")
    assert row.recommendation == "do-nothing" and row.verdict == "proceed"


def test_proceeding_on_a_blocked_project_is_a_governance_violation(session, demo, moderation):
    blocked = good_qualification(teacher_third_party=True, terms_permit_training="no")
    with pytest.raises(ProjectBlocked, match="blocked"):
        qualification.record(session, actor=demo["sam"], project=moderation, inputs=blocked,
                             verdict="proceed", rationale="We will ask nicely.")
    assert session.exec(select(func.count()).select_from(Qualification)
                        .where(Qualification.project_id == moderation.id)).one() == 0


def test_requalifying_appends_a_new_version(session, demo, qualified):
    qualification.record(session, actor=demo["sam"], project=qualified,
                         inputs=good_qualification(monthly_volume=2_000_000), verdict="proceed")
    assert [q.version for q in qualification.history(session, project_id=qualified.id)] == [1, 2]
