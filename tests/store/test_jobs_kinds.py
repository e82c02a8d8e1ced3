"""Job kinds: named in store, registered by the modules that own them, refused with a sentence when not imported."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from core.domain.errors import StillroomError
from core.store import jobs
from core.store.models import Job


def test_every_kind_has_its_handler_once_the_cli_registers_them_and_no_handler_lacks_a_kind():
    # conftest calls core.cli.jobs.register_handlers, as `stillroom jobs run` does.
    registered = {kind for kind in jobs.HANDLERS if not kind.startswith("test-")}
    assert registered == {str(kind) for kind in jobs.JobKind}


def test_a_kind_whose_module_was_not_imported_is_refused_and_the_job_left_queued(
        session, engine, demo, moderation, monkeypatch):
    monkeypatch.delitem(jobs.HANDLERS, jobs.JobKind.TRAIN)
    job = jobs.submit(session, actor=demo["dana"], project=moderation, kind=jobs.JobKind.TRAIN,
                       params={"run_id": 1})
    with pytest.raises(StillroomError, match=r"no handler for job kind 'train' is registered in this process: "
                                             r"import the module that declares @handler\('train'\)"):
        jobs.run(job.id, engine=engine)
    session.expire_all()
    assert session.get(Job, job.id).status == "queued"


def test_a_kind_is_stored_as_its_plain_name(session, demo, moderation):
    job = jobs.submit(session, actor=demo["dana"], project=moderation, kind=jobs.JobKind.EVALUATE,
                       params={"training_run_id": 1})
    session.expire_all()
    stored = session.get(Job, job.id).kind
    assert type(stored) is str and stored == "evaluate"


def test_no_project_module_is_imported_by_string_but_the_cli_commands():
    """Job handlers (and everything else) are imported by name where they are used, so import-linter sees every
    dependency; the CLI's lazy command loader is the one place that loads core.cli modules by string."""
    core = Path(jobs.__file__).resolve().parents[1]
    by_string = []
    for path in core.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            name = node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else ""
            if name in ("import_module", "__import__"):
                by_string.append(str(path.relative_to(core.parent)))
    # ...and the Python teacher, whose module is named by the admin's allow-list (STILLROOM_TEACHER_CALLABLES) and
    # imported only after that check (tests/teacher/test_teacher_python.py attacks it).
    assert sorted(set(by_string)) == ["core/cli/base.py", "core/teacher/python.py"]
