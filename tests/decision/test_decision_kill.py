"""The kill recommendation: rounds in which no failing criterion improved beyond its margin (in its own unit) and
the noise of its estimate; a criterion that got worse is never progress."""

from __future__ import annotations

from core.decision import decision


def _round(threat: float, overall: float = 0.99, threat_status: str = "FAIL", n: int = 40) -> list[dict]:
    return [{"name": "overall", "status": "PASS", "value": overall, "n": 1000},
            {"name": "slice category=threat", "status": threat_status, "value": threat, "n": n}]


def test_three_stuck_rounds_recommend_kill_with_the_reason():
    advice = decision.kill_recommendation([_round(0.80), _round(0.805), _round(0.801)])
    assert advice is not None and advice.stuck == ["slice category=threat"]
    assert "last 3 rounds" in advice.reason and "0.8 to 0.801" in advice.reason


def test_progress_beyond_the_margin_and_the_noise_keeps_iterating():
    assert decision.kill_recommendation([_round(0.80, n=4000), _round(0.81, n=4000), _round(0.83, n=4000)]) is None
    # the same two points on 40 examples are within sampling noise
    assert decision.kill_recommendation([_round(0.80), _round(0.81), _round(0.83)]) is not None


def test_fewer_rounds_than_configured_is_too_soon():
    assert decision.kill_recommendation([_round(0.80), _round(0.80)]) is None
    assert decision.kill_recommendation([_round(0.80), _round(0.80)], after_rounds=2) is not None


def test_margin_is_configurable_in_points():
    rounds = [_round(0.80, n=4000), _round(0.81, n=4000), _round(0.83, n=4000)]
    assert decision.kill_recommendation(rounds) is None
    advice = decision.kill_recommendation(rounds, margins=decision.Margins(points=5.0, ms=5.0, cost=0.01))
    assert advice is not None and "under the margin of 5 points" in advice.reason


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
    from core.decision.decision import kill_recommendation
    from core.store import config

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


def _latency(ms: float, threat: float = 0.80, n: int = 4000) -> list[dict]:
    return [{"name": "slice category=threat", "status": "FAIL", "value": threat, "n": n, "direction": "higher",
             "unit": "proportion"},
            {"name": "p95 latency", "status": "FAIL", "value": ms, "n": None, "direction": "lower", "unit": "ms",
             "threshold": 50.0}]


def test_a_regressing_criterion_is_never_progress():
    # the slice fell by 20 points on 4,000 examples: a large, real change, but the wrong way
    advice = decision.kill_recommendation([_round(0.90, n=4000), _round(0.80, n=4000), _round(0.70, n=4000)])
    assert advice is not None and "0.9 to 0.7 (worse)" in advice.reason
    # latency doubling is not movement either; both criteria stuck or worse means kill
    advice = decision.kill_recommendation([_latency(40.0), _latency(60.0), _latency(80.0)])
    assert advice is not None and advice.stuck == ["slice category=threat", "p95 latency"]


def test_four_noisy_rounds_without_real_movement_recommend_kill():
    noisy = [_round(v, n=50) for v in (0.80, 0.78, 0.86, 0.84)]  # ups and downs of a few examples in 50
    for after in (3, 4):
        advice = decision.kill_recommendation(noisy, after_rounds=after)
        assert advice is not None and "within the noise" in advice.reason


def test_margins_are_per_criterion_in_their_own_unit():
    margins = decision.Margins(points=1.0, ms=5.0, cost=0.01)
    # 3 ms faster is under a 5 ms margin; the slice did not move either
    assert decision.kill_recommendation([_latency(60.0), _latency(59.0), _latency(57.0)], margins=margins)
    # 10 ms faster is progress, whatever the slice does
    assert decision.kill_recommendation([_latency(60.0), _latency(55.0), _latency(50.0)], margins=margins) is None
    cost = [[{"name": "cost per 1,000 requests", "status": "FAIL", "value": v, "n": None}] for v in (0.5, 0.498, 0.495)]
    assert decision.kill_recommendation(cost, margins=margins) is not None
    assert decision.kill_recommendation(cost, margins=decision.Margins(points=1.0, ms=5.0, cost=0.001)) is None


def test_margins_come_from_the_settings(monkeypatch):
    from core.store import config

    rounds = [_latency(60.0), _latency(57.0), _latency(54.0)]  # 6 ms faster
    monkeypatch.setenv("STILLROOM_KILL_MARGIN_MS", "10")
    config.get_settings.cache_clear()
    try:
        assert decision.kill_recommendation(rounds) is not None
    finally:
        monkeypatch.delenv("STILLROOM_KILL_MARGIN_MS")
        config.get_settings.cache_clear()
    assert decision.kill_recommendation(rounds) is None  # the default 5 ms margin
