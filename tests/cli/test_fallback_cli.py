"""`stillroom rollout fallback`: a thin shell over core.rollout.fallback, refusals as sentences with exit codes."""

from __future__ import annotations

from click.testing import CliRunner
from fallback_helpers import ship_file_student
from monitor_helpers import MOD

from core.cli import cli
from core.rollout import config


def run(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_the_operator_chooses_a_queue_from_the_cli_and_the_rollout_starts(session, engine, demo, gated, tmp_path):
    ship_file_student(session, engine, demo, gated, tmp_path)
    shown = run("--as", "oscar", "rollout", "fallback", MOD)
    assert shown.exit_code == 0 and "No fallback target chosen" in shown.output
    refused = run("--as", "oscar", "rollout", "start", MOD)
    assert refused.exit_code == 3 and "stillroom rollout fallback" in refused.stderr
    both = run("--as", "oscar", "rollout", "fallback", MOD, "--queue", "--endpoint", "https://llm.example/v1")
    assert both.exit_code == 2 and "either --queue or --endpoint" in both.output
    off_list = run("--as", "oscar", "rollout", "fallback", MOD, "--endpoint", "https://llm.example/v1",
                   "--model", "m")
    assert off_list.exit_code == 3 and "not on the admin's list" in off_list.stderr
    assert run("--as", "dana", "rollout", "fallback", MOD, "--queue").exit_code == 3
    session.expire_all()
    assert config.get_config(session, project_id=gated.id).fallback is None
    chosen = run("--as", "oscar", "rollout", "fallback", MOD, "--queue")
    assert chosen.exit_code == 0 and "The fallback is a person's queue" in chosen.output, chosen.output
    assert run("--as", "oscar", "rollout", "start", MOD).exit_code == 0
