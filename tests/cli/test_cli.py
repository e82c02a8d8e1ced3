"""The `stillroom` command: exit codes, one-sentence errors, and each command's effect."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import click
import pytest
import yaml
from click.testing import CliRunner
from sqlmodel import Session, func, select

from conftest import good_qualification
from core.access import people, projects
from core.cli import cli
from core.demo import seed as demo_mod
from core.gate import gate
from core.qualify import qualification
from core.store.models import AuditEvent, User

MODERATION = demo_mod.MODERATION


def run(*args: str, input: str | None = None, env: dict | None = None):
    return CliRunner().invoke(cli, list(args), input=input, env=env)


def assert_fails(result, code: int, *fragments: str) -> None:
    """Exit ``code`` with exactly one `error:` sentence on stderr naming each fragment."""
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0]


def audit_count(engine) -> int:
    with Session(engine) as s:
        return s.exec(select(func.count()).select_from(AuditEvent)).one()


def write_yaml(tmp_path: Path, name: str, data) -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return str(path)


def gate_spec(**overrides) -> dict:
    spec = gate.template("cost-pressure", good_qualification())
    spec["slice_floors"] = [{"column": "queue", "value": "security", "floor": 0.95, "min_n": 100}]
    spec.update(overrides)
    return spec


# --------------------------------------------------------------------------- init and people


def test_init_bootstraps_first_admin_from_env(engine):
    result = run("init", "--admin", "root", "--display-name", "Root Admin",
                 env={"STILLROOM_ADMIN_PASSWORD": "root-secret-pw"})
    assert result.exit_code == 0, result.output
    assert "Created the first admin: root." in result.stdout
    assert "root-secret-pw" not in result.output
    with Session(engine) as s:
        root = people.get_user(s, "root")
        assert root.is_admin and root.display_name == "Root Admin"
        assert people.authenticate(s, username="root", password="root-secret-pw").id == root.id


def test_init_prompts_hidden_and_does_not_bootstrap_twice(engine):
    result = run("init", "--admin", "root", input="prompted-pw-1\nprompted-pw-1\n")
    assert result.exit_code == 0, result.output
    assert "prompted-pw-1" not in result.output
    again = run("init", "--admin", "other", env={"STILLROOM_ADMIN_PASSWORD": "whatever-pw"})
    assert again.exit_code == 0
    assert "already has accounts" in again.stdout
    with Session(engine) as s:
        assert [u.username for u in people.list_users(s)] == ["root"]


def test_users_add_and_list_never_reveal_the_password(db_url, engine, demo, tmp_path):
    secret = "erin-very-secret-pw"
    added = run("--as", "admin", "users", "add", "erin", "--display-name", "Erin Example",
                "--password-stdin", input=secret + "\n")
    assert added.exit_code == 0, added.output
    listed = run("--as", "admin", "users", "list")
    assert listed.exit_code == 0
    assert any(line.split()[:3] == ["erin", "Erin", "Example"] for line in listed.stdout.splitlines())
    assert secret not in added.output + listed.output
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("stillroom.db*"))
    assert secret.encode() not in stored
    with Session(engine) as s:
        assert people.authenticate(s, username="erin", password=secret).username == "erin"


def test_unknown_acting_user_exits_2_with_a_sentence(engine, demo):
    assert_fails(run("--as", "ghost", "users", "list"), 2, "no user named 'ghost'")


def test_missing_acting_user_exits_2(engine, demo, monkeypatch):
    monkeypatch.delenv("STILLROOM_USER", raising=False)
    assert_fails(run("users", "list"), 2, "--as NAME")


def test_non_admin_adding_a_user_exits_3(engine, demo):
    result = run("--as", "sam", "users", "add", "eve", "--display-name", "Eve", "--password-stdin",
                 input="eve-password-1\n")
    assert_fails(result, 3, "Only an admin", "sam is not an admin")
    with Session(engine) as s:
        assert "eve" not in [u.username for u in people.list_users(s)]


def test_deactivated_user_cannot_act(engine, demo):
    assert run("--as", "admin", "users", "deactivate", "dana").exit_code == 0
    assert_fails(run("--as", "dana", "projects", "list"), 2, "deactivated")
    assert run("--as", "admin", "users", "activate", "dana").exit_code == 0
    assert run("--as", "dana", "projects", "list").exit_code == 0


# --------------------------------------------------------------------------- projects and roles


def test_projects_create_and_list_show_stage_and_roles(engine, demo):
    assert run("--as", "admin", "projects", "create", "Fresh", "--description", "A new one").exit_code == 0
    assert run("--as", "admin", "roles", "assign", "Fresh", "sam", "sponsor").exit_code == 0
    listed = run("--as", "admin", "projects", "list")
    fresh = next(line for line in listed.stdout.splitlines() if line.startswith("Fresh"))
    assert "1 Qualify the trigger" in fresh and "sponsor: sam" in fresh


def test_driver_and_validator_on_same_person_exits_3(engine, demo):
    result = run("--as", "admin", "roles", "assign", MODERATION, "dana", "validator")
    assert_fails(result, 3, "cannot also be its validator", "must not validate it")
    roles = run("--as", "admin", "roles", "list", MODERATION)
    assert ["validator", "val"] in [line.split() for line in roles.stdout.splitlines()]
    assert ["validator", "dana"] not in [line.split() for line in roles.stdout.splitlines()]


# --------------------------------------------------------------------------- qualify


def test_qualify_assess_from_yaml_prints_recommendation_and_writes_nothing(engine, tmp_path):
    path = write_yaml(tmp_path, "q.yaml", good_qualification())
    before = audit_count(engine)
    result = run("qualify", "assess", "--file", path)
    assert result.exit_code == 0, result.output
    assert "Recommendation: proceed" in result.stdout
    assert "Payback: 2.8 months" in result.stdout
    assert audit_count(engine) == before


def test_qualify_record_from_yaml_then_show(engine, demo, moderation, tmp_path):
    path = write_yaml(tmp_path, "q.yaml", good_qualification())
    recorded = run("--as", "sam", "qualify", "record", MODERATION, "--file", path, "--verdict", "proceed")
    assert recorded.exit_code == 0, recorded.output
    shown = run("--as", "sam", "qualify", "show", MODERATION)
    assert "Qualification v1" in shown.stdout and "(1 recorded)" in shown.stdout
    assert "Verdict: proceed (recommended proceed)" in shown.stdout
    with Session(engine) as s:
        assert qualification.latest(s, project_id=moderation.id).verdict == "proceed"


def test_qualify_record_override_without_rationale_exits_2(engine, demo, moderation, tmp_path):
    path = write_yaml(tmp_path, "q.yaml", good_qualification())
    result = run("--as", "sam", "qualify", "record", MODERATION, "--file", path, "--verdict", "do-nothing")
    assert_fails(result, 2, "give a rationale")


@pytest.mark.parametrize(("name", "text", "fragment"), [
    ("absent.yaml", None, "no such file"),
    ("broken.yaml", "play: [cost-pressure\nevidence: x\n", "not valid YAML at line"),
    ("broken.json", '{"play": "latency",}', "not valid JSON at line 1"),
    ("list.yaml", "- a\n- b\n", "not a mapping"),
    ("answers.txt", "play: latency\n", "unknown file type"),
])
def test_unreadable_or_invalid_file_exits_2_naming_it(engine, tmp_path, name, text, fragment):
    path = tmp_path / name
    if text is not None:
        path.write_text(text, encoding="utf-8")
    assert_fails(run("qualify", "assess", "--file", str(path)), 2, str(path), fragment)


# --------------------------------------------------------------------------- gate


def test_gate_floor_outside_unit_range_exits_2_and_writes_nothing(engine, qualified, tmp_path):
    spec = gate_spec(slice_floors=[{"column": "queue", "value": "security", "floor": 1.5, "min_n": 100}])
    before = audit_count(engine)
    result = run("--as", "sam", "gate", "lock", MODERATION, "--file", write_yaml(tmp_path, "gate.yaml", spec))
    assert_fails(result, 2, "Slice floor 1, floor must be at most 1")
    with Session(engine) as s:
        assert gate.history(s, project_id=qualified.id) == []
    assert audit_count(engine) == before
    assert "no locked gate yet" in run("--as", "sam", "gate", "history", MODERATION).stdout


def test_gate_duplicate_slice_floors_exit_2(engine, qualified, tmp_path):
    floor = {"column": "queue", "value": "security", "floor": 0.9, "min_n": 50}
    spec = gate_spec(slice_floors=[floor, dict(floor, floor=0.95)])
    result = run("--as", "sam", "gate", "lock", MODERATION, "--file", write_yaml(tmp_path, "gate.yaml", spec))
    assert_fails(result, 2, "repeats queue=security")


def test_gate_lock_by_non_sponsor_exits_3(engine, qualified, tmp_path):
    result = run("--as", "dana", "gate", "lock", MODERATION,
                 "--file", write_yaml(tmp_path, "gate.yaml", gate_spec()))
    assert_fails(result, 3, "Only a sponsor", "dana holds driver")


def test_gate_template_fills_from_the_qualification(engine, qualified):
    result = run("--as", "sam", "gate", "template", "--project", MODERATION)
    assert result.exit_code == 0, result.output
    spec = yaml.safe_load(result.stdout)
    assert spec == gate.template("cost-pressure", good_qualification())


def test_gate_relock_needs_reason_then_versions_and_diffs(engine, qualified, tmp_path):
    first = write_yaml(tmp_path, "gate.yaml", gate_spec())
    assert run("--as", "sam", "gate", "lock", MODERATION, "--file", first).exit_code == 0
    second = write_yaml(tmp_path, "gate2.yaml", gate_spec(p95_latency_ms=80.0))
    assert_fails(run("--as", "sam", "gate", "lock", MODERATION, "--file", second), 2, "needs a reason")
    relocked = run("--as", "sam", "gate", "lock", MODERATION, "--file", second, "--reason", "GPU budget")
    assert relocked.exit_code == 0 and "Locked gate v2" in relocked.stdout
    diff = run("--as", "sam", "gate", "diff", MODERATION, "1", "2")
    assert diff.stdout.splitlines()[1].split() == ["p95_latency_ms", "changed", "50.0", "80.0"]
    shown = run("--as", "val", "gate", "show", MODERATION, "--version", "2")
    assert yaml.safe_load(shown.stdout)["p95_latency_ms"] == 80.0
    assert "# hash verifies: yes" in shown.stdout and "# Reason: GPU budget" in shown.stdout


# --------------------------------------------------------------------------- audit and demo


def test_audit_verify_intact_exits_0(engine, demo):
    result = run("audit", "verify")
    assert result.exit_code == 0
    assert result.stdout.startswith(f"Audit chain intact: {audit_count(engine)} events verified")


def test_audit_verify_reports_an_edited_row_exits_3(db_url, engine, demo):
    raw = sqlite3.connect(db_url.removeprefix("sqlite:///"))
    raw.execute("DROP TRIGGER audit_event_no_update")
    raw.execute("UPDATE audit_event SET actor = 'mallory' WHERE id = 3")
    raw.commit()
    raw.close()
    assert_fails(run("audit", "verify"), 3, "Audit chain broken at event #3", "edited outside Stillroom")


def test_audit_log_is_scoped_to_a_project(engine, demo):
    result = run("--as", "sam", "audit", "log", "--project", demo_mod.ROUTING, "--limit", "2")
    assert result.exit_code == 0
    assert [line.split()[4] for line in result.stdout.splitlines()[1:3]] == ["gate.lock", "qualification.record"]
    assert_fails(run("--as", "sam", "audit", "log"), 3, "Only an admin")


def test_demo_seeds_and_is_idempotent(engine):
    first = run("demo", "--people-only")
    assert first.exit_code == 0 and "5 people and 2 projects added" in first.stdout
    assert "sponsor-demo-pass" in first.stdout
    events = audit_count(engine)
    second = run("demo", "--people-only")
    assert second.exit_code == 0 and "0 people and 0 projects added" in second.stdout
    assert audit_count(engine) == events
    with Session(engine) as s:
        assert s.exec(select(func.count()).select_from(User)).one() == len(demo_mod.DEMO_PEOPLE)
        assert len(projects.list_projects(s)) == 2


def test_every_command_is_documented():
    def walk(cmd: click.Command, path: str):
        yield path, cmd
        for name, sub in getattr(cmd, "commands", {}).items():
            yield from walk(sub, f"{path} {name}")

    undocumented = [path for path, cmd in walk(cli, "stillroom") if not (cmd.help or "").strip()]
    assert undocumented == []


def test_installed_executable_exits_3_with_one_sentence(db_url, demo):
    exe = shutil.which("stillroom") or str(Path(sys.executable).with_name("stillroom"))
    proc = subprocess.run(
        [exe, "--as", "admin", "roles", "assign", MODERATION, "dana", "validator"],
        capture_output=True, text=True, timeout=120, env={**os.environ, "DATABASE_URL": db_url},
    )
    assert proc.returncode == 3
    assert proc.stderr.strip().splitlines() == [
        f"error: dana is the driver of {MODERATION!r} and cannot also be its validator: "
        "whoever builds the student must not validate it. Pick someone else."
    ]
