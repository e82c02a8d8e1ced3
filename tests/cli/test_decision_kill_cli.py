"""Four noisy rounds, driven through the CLI: the failing slice bounces by a few examples in 40 and never moves
beyond the noise of its estimate, so Stillroom recommends kill (after the iterate and in the record)."""

from __future__ import annotations

from click.testing import CliRunner
from review_helpers import make_evaluation, moderation_predictions

from core.cli import cli

MOD = "Comment moderation"


def _run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_four_noisy_rounds_without_real_movement_recommend_kill(session, demo, gated):
    outputs = []
    for rnd, wrong in enumerate((8, 9, 6, 8), start=1):  # threat accuracy 0.8, 0.775, 0.85, 0.8 on 40 items
        ev = make_evaluation(session, project=gated, actor=demo["dana"], round_=rnd,
                             df=moderation_predictions(threat_wrong=wrong, seed=rnd))
        if rnd < 4:
            result = _run("--as", "sam", "decide", MOD, "--decision", "iterate", "--evaluation", ev.id,
                          "--rationale", f"round {rnd}: more threat examples")
            assert result.exit_code == 0, result.output
            outputs.append(result.output)
    assert "recommends kill" not in outputs[0] + outputs[1]  # fewer rounds than the window: too soon
    assert "Stillroom recommends kill" in outputs[2] and "within the noise" in outputs[2]
    record = _run("--as", "sam", "record", MOD)
    assert record.exit_code == 0 and "Stillroom recommends kill" in record.output
    assert "category=threat went from 0.775 to 0.8" in record.output.replace("\\", "")
