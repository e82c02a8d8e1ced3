"""Issue 18: `audit verify --since CHECKPOINT` checks only what follows a full verify that Stillroom recorded.

Attacked here: an event forged, edited or deleted after the checkpoint, a row edited or INSERTed after it, and the
record of the checkpoint itself forged or edited with SQL. A tamper before the checkpoint is not its job: the test
that shows it passes there also shows that the full verify catches it and that --since says so in its limits.
"""

from __future__ import annotations

import pytest
from audit_attacks import append_forged, mac_everything, raw
from click.testing import CliRunner
from sqlalchemy import text
from sqlmodel import Session

from core.access import projects
from core.cli import cli
from core.domain.errors import InvalidInput, RecordTampered
from core.store import audit, config, rowhash, verification

KEY = "a-long-random-audit-key-for-since-tests"


def _record(engine) -> verification.Reached:
    report = verification.verify(engine, files=False)
    assert report.ok, report.lines()
    return verification.record_verified(engine, report)


def _commit(engine, demo, name: str = "After the checkpoint") -> int:
    """A genuine change after the checkpoint; returns the new project's id."""
    with Session(engine) as s:
        return projects.create_project(s, actor=s.merge(demo["admin"]), name=name).id


def _since_problems(engine, since: str = "last") -> list[str]:
    report = verification.verify_since(engine, since=since)
    assert not report.ok, "the tamper verified as intact since the checkpoint"
    return [report.sentence()] if not report.chain.ok else report.problems


def _head(engine) -> tuple[int, str]:
    with engine.connect() as conn:
        return tuple(conn.execute(text("SELECT id, hash FROM audit_event ORDER BY id DESC LIMIT 1")).one())


def test_since_checks_only_the_events_after_the_recorded_verify(engine, demo):
    point = _record(engine)
    _commit(engine, demo)
    report = verification.verify_since(engine)
    assert report.ok, report.lines()
    last_id, last_hash = _head(engine)
    # The record's own event, then the project's create and the admin's role on it.
    assert report.checked == last_id - point.event_id >= 2
    assert report.head_hash == last_hash
    assert report.since.record_id == point.record_id
    assert report.lines()[0].startswith(f"Audit chain intact since verify checkpoint #{point.record_id} "
                                        f"(event #{point.event_id}")
    # The full verify still checks everything, the recorded checkpoint included.
    assert verification.verify(engine, files=False).ok


def test_since_by_number_and_the_newest(engine, demo):
    first = _record(engine)
    _commit(engine, demo)
    second = _record(engine)
    assert verification.verify_since(engine, since=str(first.record_id)).checked > \
        verification.verify_since(engine, since="last").checked
    assert verification.verify_since(engine, since="last").since.record_id == second.record_id


@pytest.mark.parametrize("since, fragment", [("yesterday", "names no verify checkpoint"),
                                             ("99", "there is no verify checkpoint #99")])
def test_since_refuses_what_names_no_recorded_verify(engine, demo, since, fragment):
    _record(engine)
    with pytest.raises(InvalidInput, match=fragment):
        verification.verify_since(engine, since=since)


def test_since_refuses_before_any_full_verify_was_recorded(engine, demo):
    with pytest.raises(InvalidInput, match="no full verify has been recorded yet"):
        verification.verify_since(engine)


def test_only_a_full_verify_that_passed_is_recorded(engine, demo):
    raw(engine, "UPDATE project SET name = 'edited' WHERE id = 1")
    report = verification.verify(engine, files=False)
    assert not report.ok
    with pytest.raises(InvalidInput, match="only a full verify that passed"):
        verification.record_verified(engine, report)


def test_a_tamper_before_the_checkpoint_is_not_its_job_and_it_says_so(engine, demo):
    point = _record(engine)
    raw(engine, "UPDATE audit_event SET actor = 'mallory' WHERE id = 3")
    since = verification.verify_since(engine)
    assert since.ok
    assert any("at or before the checkpoint's event" in limit for limit in since.limits)
    assert f"Nothing at or before event #{point.event_id} was checked again" in since.sentence()
    full = verification.verify(engine, files=False)
    assert not full.ok and full.broken_at == 3


# --------------------------------------------------------------------------- events after the checkpoint


def test_an_event_forged_after_the_checkpoint_is_caught(engine, demo):
    _record(engine)
    forged = append_forged(engine, action="project.create", entity="project", entity_id="1", project_id=1)
    problems = _since_problems(engine)
    assert any(f"to event #{forged}: those events were appended outside Stillroom" in p for p in problems), problems
    _commit(engine, demo)  # a genuine commit after it: the forged event is covered by no line, later ones are
    problems = _since_problems(engine)
    assert any(f"event #{forged} was appended outside Stillroom" in p for p in problems), problems


@pytest.mark.parametrize("how", ["edited", "deleted"])
def test_an_event_edited_or_deleted_after_the_checkpoint_is_caught(engine, demo, how):
    _record(engine)
    _commit(engine, demo)
    last_id, _ = _head(engine)
    target = last_id - 1
    raw(engine, f"UPDATE audit_event SET actor = 'mallory' WHERE id = {target}" if how == "edited"
        else f"DELETE FROM audit_event WHERE id = {target}")
    want = {"edited": f"Audit chain broken at event #{target}: its content no longer matches its hash: the row was "
                      "edited outside Stillroom.",
            "deleted": f"Audit chain broken at event #{last_id}: it does not follow event #{target - 1}: an event "
                       "was deleted, inserted or reordered there."}
    assert _since_problems(engine) == [want[how]]


def test_the_checkpoint_event_rewritten_is_caught(engine, demo):
    point = _record(engine)
    _commit(engine, demo)
    raw(engine, f"UPDATE audit_event SET hash = '{'e' * 64}' WHERE id = {point.event_id}")
    assert any(f"event #{point.event_id}, where verify checkpoint #{point.record_id} ends, no longer has the hash"
               in p for p in _since_problems(engine))


def test_a_row_edited_after_the_checkpoint_is_caught(engine, demo):
    _record(engine)
    pid = _commit(engine, demo)
    raw(engine, f"UPDATE project SET description = 'edited' WHERE id = {pid}")
    assert any(f"project #{pid} differs from what event" in p for p in _since_problems(engine))


def test_a_row_inserted_after_the_checkpoint_without_an_event_is_caught(engine, demo):
    _record(engine)
    raw(engine, "INSERT INTO project (name, description, created_at) VALUES ('forged', '', '2026-12-01 00:00:00')")
    with engine.connect() as conn:
        pid = conn.execute(text("SELECT max(id) FROM project")).scalar()
    assert f"project #{pid} has no audit event: it was inserted outside Stillroom." in _since_problems(engine)


@pytest.fixture
def keyed(engine, monkeypatch):
    """STILLROOM_AUDIT_KEY set, and every event already written carrying its HMAC under it."""
    mac_everything(engine, KEY.encode())
    monkeypatch.setenv("STILLROOM_AUDIT_KEY", KEY)
    config.get_settings.cache_clear()
    yield KEY
    config.get_settings.cache_clear()


def test_under_the_key_an_event_without_its_hmac_after_the_checkpoint_is_caught(engine, demo, keyed):
    _record(engine)
    assert verification.verify_since(engine).ok
    forged = append_forged(engine, action="project.create", entity="project", entity_id="1", project_id=1)
    assert any(f"event #{forged} carries no HMAC" in p for p in _since_problems(engine))


def test_a_checkpoint_file_cut_before_the_recorded_offset_is_caught(engine, demo):
    point = _record(engine)
    path = audit.checkpoint_path(engine)
    path.write_bytes(path.read_bytes()[: point.file_offset - 10])
    assert any("no longer continues what verify checkpoint" in p for p in _since_problems(engine))


# --------------------------------------------------------------------------- the recorded checkpoint itself


def _forge_record(engine, *, event_id: int, head_hash: str, with_event: bool = False) -> int:
    """INSERT a verify_checkpoint row claiming a full verify reached ``event_id``; ``with_event`` also appends its
    event, chained with SHA-256 and carrying the row's true hash (no checkpoint line: the file is out of reach)."""
    size = audit.checkpoint_path(engine).stat().st_size
    raw(engine, "INSERT INTO verify_checkpoint (event_id, head_hash, count, anchor_id, file_offset, row_ids, "
        "verified_at) VALUES (:e, :h, :e, 999, :o, '{\"project\": 999}', '2026-12-01T00:00:00')",
        params={"e": event_id, "h": head_hash, "o": size})
    with engine.connect() as conn:
        rid = conn.execute(text("SELECT max(id) FROM verify_checkpoint")).scalar()
        row_hash = rowhash.digests(conn, "verify_checkpoint")[str(rid)]
    if with_event:
        append_forged(engine, action="audit.verified", entity="verify_checkpoint", entity_id=str(rid),
                      project_id=None, row_hash=row_hash)
    return rid


def test_a_checkpoint_inserted_with_sql_is_refused(engine, demo):
    _record(engine)
    raw(engine, "UPDATE audit_event SET actor = 'mallory' WHERE id = 3")  # the tamper it would hide
    _commit(engine, demo)
    rid = _forge_record(engine, event_id=_head(engine)[0], head_hash=_head(engine)[1])
    problems = _since_problems(engine)
    assert problems[0].startswith(f"verify checkpoint #{rid} has no audit event after event #"), problems


def test_a_checkpoint_inserted_with_its_own_forged_event_is_caught(engine, demo):
    _record(engine)
    _commit(engine, demo)
    last_id, last_hash = _head(engine)
    _forge_record(engine, event_id=last_id, head_hash=last_hash, with_event=True)
    problems = _since_problems(engine)
    assert any(f"to event #{last_id + 1}: those events were appended outside Stillroom" in p for p in problems), \
        problems


def test_under_the_key_a_forged_checkpoint_with_its_event_and_file_line_is_caught(engine, demo, keyed):
    """Write access to the database and to the checkpoint file, but not the key."""
    _record(engine)
    _commit(engine, demo)
    last_id, last_hash = _head(engine)
    _forge_record(engine, event_id=last_id, head_hash=last_hash, with_event=True)
    forged_id, forged_hash = _head(engine)
    audit.append_checkpoint(audit.checkpoint_path(engine), {"first": forged_id, "event_id": forged_id,
                                                            "head_hash": forged_hash, "count": forged_id, "legacy": 0})
    assert any(f"event #{forged_id} carries no HMAC" in p for p in _since_problems(engine))


def test_a_recorded_checkpoint_edited_to_reach_further_is_caught(engine, demo):
    point = _record(engine)
    _commit(engine, demo)
    last_id, last_hash = _head(engine)
    raw(engine, "UPDATE verify_checkpoint SET event_id = :e, head_hash = :h WHERE id = :i",
        params={"e": last_id, "h": last_hash, "i": point.record_id})
    assert any(f"verify checkpoint #{point.record_id} has no audit event after event #{last_id}" in p
               for p in _since_problems(engine))


def test_a_recorded_checkpoint_edited_to_reach_less_far_is_caught(engine, demo):
    point = _record(engine)
    _commit(engine, demo)
    with engine.connect() as conn:
        h = conn.execute(text(f"SELECT hash FROM audit_event WHERE id = {point.event_id - 1}")).scalar()
    raw(engine, "UPDATE verify_checkpoint SET event_id = :e, head_hash = :h WHERE id = :i",
        params={"e": point.event_id - 1, "h": h, "i": point.record_id})
    assert any(f"verify_checkpoint #{point.record_id} differs from what event" in p for p in _since_problems(engine))


def test_a_recorded_checkpoint_with_garbage_is_refused(engine, demo):
    point = _record(engine)
    raw(engine, "UPDATE verify_checkpoint SET row_ids = 'not json' WHERE id = :i", params={"i": point.record_id})
    with pytest.raises(RecordTampered, match=f"verify checkpoint #{point.record_id} is not one Stillroom wrote"):
        verification.verify_since(engine)


def test_the_full_verify_reports_a_forged_checkpoint_row(engine, demo):
    _record(engine)
    rid = _forge_record(engine, event_id=1, head_hash="0" * 64)
    problems = verification.verify(engine, files=False).problems
    assert f"verify_checkpoint #{rid} has no audit event: it was inserted outside Stillroom." in problems


# --------------------------------------------------------------------------- the command


def _cli(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_cli_full_verify_records_when_asked_and_since_follows(engine, demo):
    plain = _cli("audit", "verify", "--no-files")
    assert plain.exit_code == 0 and "Recorded as" not in plain.stdout  # a plain verify writes nothing
    assert "no full verify has been recorded yet" in _cli("audit", "verify", "--since", "last").stderr
    full = _cli("audit", "verify", "--no-files", "--record")
    assert full.exit_code == 0, full.output
    assert "Recorded as verify checkpoint #1 (event #" in full.stdout
    _commit(engine, demo)
    since = _cli("audit", "verify", "--since", "last")
    assert since.exit_code == 0, since.output
    assert since.stdout.startswith("Audit chain intact since verify checkpoint #1 ")


def test_cli_since_exits_3_on_a_forged_event_and_2_on_a_bad_checkpoint(engine, demo):
    assert _cli("audit", "verify", "--no-files", "--record").exit_code == 0
    append_forged(engine, action="project.create", entity="project", entity_id="1", project_id=1)
    assert _cli("audit", "verify", "--since", "last").exit_code == 3
    bad = _cli("audit", "verify", "--since", "nope")
    assert bad.exit_code == 2 and "names no verify checkpoint" in bad.stderr
    both = _cli("audit", "verify", "--since", "last", "--expect-head", "a" * 64)
    assert both.exit_code == 2 and "--expect-head" in both.stderr

