"""The rollout and monitor commands: thin shells over core with the usual exit codes."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from monitor_helpers import MOD, live_like, ship, traffic, write_log

from core.cli import cli
from core.evaluation.runs import load_predictions
from core.rollout import drift, rollout


@pytest.fixture
def shipped(session, demo, gated):
    return ship(session, demo, gated)


def run(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args])


def assert_fails(result, code: int, fragment: str) -> None:
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert lines and fragment in lines[-1], result.stderr


def test_rollout_refused_without_ship_and_to_non_operators(gated, passing_eval):
    assert_fails(run("--as", "oscar", "rollout", "start", MOD), 3, "only a project its sponsor decided to ship")
    assert_fails(run("--as", "dana", "rollout", "start", MOD), 3, "Only an operator")


def test_rollout_journey(session, shipped):
    started = run("--as", "oscar", "rollout", "start", MOD, "--reason", "shipped")
    assert started.exit_code == 0 and "shadow" in started.output and "threshold 0.5" in started.output
    assert_fails(run("--as", "oscar", "rollout", "advance", MOD), 3, "waiting for traffic: 0 of 200 requests")
    write_log(shipped.id, traffic(240, stage="shadow"))
    status = run("--as", "oscar", "rollout", "status", MOD)
    assert status.exit_code == 0 and "Stage shadow" in status.output and "To advance to 5" in status.output
    advanced = run("--as", "oscar", "rollout", "advance", MOD, "--reason", "clean shadow")
    assert advanced.exit_code == 0 and "Advanced to stage 5" in advanced.output and "PASS" in advanced.output
    assert run("--as", "oscar", "rollout", "rollback", MOD).exit_code == 2  # --reason is required
    back = run("--as", "oscar", "rollout", "rollback", MOD, "--reason", "spike", "--to", "previous")
    assert back.exit_code == 0 and "from 5 to shadow" in back.output
    assert rollout.current_stage(session, project_id=shipped.id) == "shadow"


def test_monitor_summary_drift_and_config(shipped):
    write_log(shipped.id, traffic(60, stage="shadow", disagree_every=2))
    summary = run("--as", "oscar", "monitor", "summary", MOD)
    assert summary.exit_code == 0 and "60 requests" in summary.output and "agreement 0.500" in summary.output
    assert "category=ok" in summary.output
    report = run("--as", "oscar", "monitor", "drift", MOD)
    assert report.exit_code == 0 and "slice:category" in report.output and "student_confidence" in report.output
    shown = run("--as", "oscar", "monitor", "config", MOD, "--psi-warn", "0.15", "--must-escalate", "threat,legal")
    assert shown.exit_code == 0 and "0.15" in shown.output and "legal,threat" in shown.output
    assert_fails(run("--as", "oscar", "monitor", "config", MOD, "--psi-warn", "0.5"), 2, "below psi_alert")
    assert_fails(run("--as", "dana", "monitor", "config", MOD, "--psi-warn", "0.05"), 3, "Only an operator")
    assert run("--as", "dana", "monitor", "config", MOD).exit_code == 0  # anyone on the project may look


def test_monitor_redistill(session, shipped):
    predictions = load_predictions(session, drift.shipped_evaluation(session, project_id=shipped.id))
    write_log(shipped.id, live_like(predictions))
    assert_fails(run("--as", "oscar", "monitor", "redistill", MOD, "--reason", "routine"), 3, "refused")
    write_log(shipped.id, live_like(predictions, n=400))
    opened = run("--as", "oscar", "monitor", "redistill", MOD, "--reason", "threats surged")
    assert opened.exit_code == 0 and "category=threat" in opened.output
