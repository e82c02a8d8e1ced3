"""The kill recommendation: rounds in which the failing criteria did not move by the margin."""

from __future__ import annotations

from core.governance import decision


def _round(threat: float, overall: float = 0.99, threat_status: str = "FAIL") -> list[dict]:
    return [{"name": "overall", "status": "PASS", "value": overall, "n": 1000},
            {"name": "slice category=threat", "status": threat_status, "value": threat, "n": 40}]


def test_three_stuck_rounds_recommend_kill_with_the_reason():
    advice = decision.kill_recommendation([_round(0.80), _round(0.805), _round(0.801)])
    assert advice is not None and advice.stuck == ["slice category=threat"]
    assert "last 3 rounds" in advice.reason and "0.8 to 0.801" in advice.reason


def test_progress_by_the_margin_keeps_iterating():
    assert decision.kill_recommendation([_round(0.80), _round(0.805), _round(0.82)]) is None


def test_fewer_rounds_than_configured_is_too_soon():
    assert decision.kill_recommendation([_round(0.80), _round(0.80)]) is None
    assert decision.kill_recommendation([_round(0.80), _round(0.80)], after_rounds=2) is not None


def test_margin_is_configurable():
    rounds = [_round(0.80), _round(0.81), _round(0.815)]
    assert decision.kill_recommendation(rounds) is None
    assert decision.kill_recommendation(rounds, margin=0.05) is not None


def test_a_passing_latest_round_never_recommends_kill():
    assert decision.kill_recommendation([_round(0.8), _round(0.8), _round(0.95, threat_status="PASS")]) is None


def test_insufficient_data_without_values_is_judged_on_sample_size():
    def r(n):
        return [{"name": "slice x=y", "status": "INSUFFICIENT DATA", "value": None, "n": n}]

    assert decision.kill_recommendation([r(10), r(10), r(10)]) is not None
    assert decision.kill_recommendation([r(10), r(12), r(20)]) is None


def test_evidence_carries_the_recommendation(session, demo, gated):
    from review_helpers import make_evaluation, moderation_predictions

    for rnd in (1, 2, 3):
        ev = make_evaluation(session, project=gated, actor=demo["dana"], df=moderation_predictions(seed=0),
                             round_=rnd)
        if rnd < 3:
            decision.decide(session, actor=demo["sam"], project=gated, decision="iterate", rationale="again",
                            evaluation_id=ev.id)
    advice = decision.evidence(session, project=gated).kill
    assert advice is not None and "slice category=threat" in advice.stuck


def test_the_number_of_rounds_before_kill_is_a_setting(monkeypatch):
    from core import config
    from core.governance.decision import kill_recommendation

    stuck = [[{"name": "slice category=threat", "status": "FAIL", "value": 0.80}]] * 2
    assert kill_recommendation(stuck) is None  # two rounds: under the default three
    monkeypatch.setenv("STILLROOM_KILL_AFTER_ROUNDS", "2")
    config.get_settings.cache_clear()
    try:
        advice = kill_recommendation(stuck)
    finally:
        monkeypatch.delenv("STILLROOM_KILL_AFTER_ROUNDS")
        config.get_settings.cache_clear()
    assert advice is not None and "last 2 rounds" in advice.reason
