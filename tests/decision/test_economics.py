"""One economics rule: the student's cost and where it comes from, the blended cost at a fallback rate and the
payback, the same in a threshold proposal, the payback ship blocker and the record."""

from __future__ import annotations

import pytest
from review_helpers import approve, lock_moderation_gate, make_evaluation, passing_predictions

from conftest import good_qualification
from core.decision import decision, record
from core.domain import economics
from core.domain.economics import CostBasis
from core.evaluation import runs
from core.qualify import qualification
from core.review import review

# The student measured at 1/20 of the teacher's compute: 0.2 per 1,000 against the teacher's 4.0, where the
# qualification (no student figure given) assumed 10 %, 0.4.
MEASURED_LATENCY = {"student": {"ms_per_example": 0.5}, "teacher": {"ms_per_example": 10.0}}


# --------------------------------------------------------------------------- the rule itself


def test_a_declared_student_cost_wins_and_names_who_declared_it():
    cost = economics.student_cost(teacher_per_1k=4.0, declared_per_1k=0.3, declared_by="sam", teacher_ms=10.0,
                                  student_ms=0.5)
    assert (cost.student_per_1k, cost.basis) == (0.3, CostBasis.DECLARED)
    assert cost.source == "declared by sam in the qualification"


def test_without_a_declared_cost_the_measured_compute_ratio_prices_the_student():
    cost = economics.student_cost(teacher_per_1k=4.0, declared_by="sam", teacher_ms=10.0, student_ms=0.5)
    assert cost.student_per_1k == pytest.approx(0.2) and cost.basis is CostBasis.MEASURED
    assert cost.source == "measured compute ratio x the teacher's cost declared by sam"


def test_with_nothing_measured_the_cost_is_an_assumed_share_and_says_so():
    cost = economics.student_cost(teacher_per_1k=4.0, declared_by="sam", teacher_ms=None, student_ms=0.5)
    assert cost.student_per_1k == pytest.approx(4.0 * economics.DEFAULT_STUDENT_COST_SHARE)
    assert cost.basis is CostBasis.ASSUMED and cost.source == "assumed: 10% of the teacher's cost declared by sam"
    assert economics.cost_sentence(cost) == "the student's cost (0.4 per 1,000) is assumed: 10% of the teacher's " \
                                            "cost declared by sam"


def test_without_a_teacher_cost_nothing_is_priced():
    cost = economics.student_cost(teacher_per_1k=None)
    assert not cost.known and cost.basis is CostBasis.NOT_GIVEN and cost.source == "not given"
    assert economics.cost_sentence(cost) == "the student's cost per 1,000 is not known"


@pytest.mark.parametrize("cost", [
    economics.student_cost(teacher_per_1k=4.0, declared_per_1k=0.3, declared_by="sam"),
    economics.student_cost(teacher_per_1k=4.0, declared_by="sam", teacher_ms=10.0, student_ms=0.5),
    economics.student_cost(teacher_per_1k=4.0, declared_by="sam"),
    economics.student_cost(teacher_per_1k=None),
])
def test_a_cost_reads_back_from_the_report_words_it_writes(cost):
    assert economics.StudentCost.from_report(cost.as_report()) == cost


def test_a_report_without_a_teacher_cost_takes_the_qualifications():
    cost = economics.StudentCost.from_report({"student_per_1k": 0.5}, teacher_per_1k=4.0)
    assert (cost.teacher_per_1k, cost.student_per_1k) == (4.0, 0.5)


def test_blended_cost_and_payback():
    cost = economics.student_cost(teacher_per_1k=4.0, declared_per_1k=2.0)
    assert economics.blended_per_1k(student_per_1k=2.0, teacher_per_1k=4.0, fallback_rate=0.25) == 2.5
    paid = economics.payback(cost=cost, fallback_rate=0.5, monthly_volume=1_000_000, build_cost=10_000)
    assert (paid.blended_per_1k, paid.monthly_saving, paid.months) == (3.0, pytest.approx(1000.0),
                                                                       pytest.approx(10.0))
    never = economics.payback(cost=economics.student_cost(teacher_per_1k=4.0, declared_per_1k=5.0),
                              fallback_rate=0.0, monthly_volume=1_000_000, build_cost=10_000)
    assert never.months is None and never.monthly_saving < 0


def test_the_qualifications_first_estimate_uses_the_same_rule():
    a = qualification.assess(good_qualification(student_cost_per_1k=None))
    paid = economics.payback(cost=economics.student_cost(teacher_per_1k=4.0), fallback_rate=0.0,
                             monthly_volume=1_000_000, build_cost=10_000.0)
    assert a.payback_months == pytest.approx(paid.months) and a.monthly_saving == pytest.approx(paid.monthly_saving)
    assert any("assumed at 10%" in w for w in a.warnings)


# --------------------------------------------------------------------------- one figure across the steps


def test_a_proposal_the_payback_blocker_and_the_record_give_the_same_blended_cost_and_payback(
        session, demo, qualified):
    # The sponsor gave no student cost; the evaluation measured one (cheaper than the assumed share).
    qualification.record(session, actor=demo["sam"], project=qualified, verdict="proceed",
                         inputs=good_qualification(student_cost_per_1k=None))
    lock_moderation_gate(session, demo, qualified, payback_months=1.0)
    cost = runs.cost_figures(session, project_id=qualified.id, latency=MEASURED_LATENCY)
    assert cost["source"] == "measured compute ratio x the teacher's cost declared by sam"
    ev = make_evaluation(session, project=qualified, actor=demo["dana"], df=passing_predictions(),
                         report_overrides={"cost": cost})
    approve(session, demo, qualified, ev, threshold=0.9)

    proposal = review.threshold_proposals(session, evaluation_id=ev.id)[-1]
    assert 0 < proposal.fallback_rate < 1
    expected = economics.payback(cost=economics.StudentCost.from_report(cost), fallback_rate=proposal.fallback_rate,
                                 monthly_volume=1_000_000, build_cost=10_000.0)
    assert expected.blended_per_1k == pytest.approx(proposal.fallback_rate * 4.0 + (1 - proposal.fallback_rate) * 0.2)

    # the threshold proposal
    assert proposal.blended_cost_per_1k == pytest.approx(expected.blended_per_1k)
    # the payback ship blocker
    evidence = decision.evidence(session, project=qualified)
    assert evidence.payback.blended_per_1k == pytest.approx(expected.blended_per_1k)
    assert evidence.payback_months == pytest.approx(expected.months)
    said = (f"{expected.blended_per_1k:.4g} per 1,000 blended; the student's cost (0.2 per 1,000) is measured "
            f"compute ratio x the teacher's cost declared by sam")
    [blocker] = [b for b in evidence.ship_blockers if b.startswith("payback window FAIL")]
    assert said in blocker and f"payback of {expected.months:.1f} months" in blocker
    # the record: the proposal's row and the payback line
    text = record.export(session, actor=demo["sam"], project=qualified, fmt="md").replace("\\", "")
    assert f"| {expected.blended_per_1k:.4g} |" in text
    assert said in text and f"payback of {expected.months:.1f} months" in text
