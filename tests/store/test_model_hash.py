"""The trained student's hash lives in its append-only artifact row: serving and evaluation refuse a model
directory whose files changed, whatever the editable TrainingRun.metrics say (issue 9)."""

from __future__ import annotations

import pytest
from audit_attacks import raw
from serve_helpers import shipped, start_stage
from sqlmodel import select

from core.domain.errors import ArtifactTampered, RoundClosed
from core.evaluation import runs as eval_runs
from core.serving.app import load_service
from core.store import verification
from core.store.artifacts import dir_sha256, path_of
from core.store.models import Artifact, TrainingRun
from core.training import runs as training_runs


@pytest.fixture
def serving(session, engine, demo, gated, tmp_path):
    """A shipped, trained student at stage shadow, and its model directory."""
    ev = shipped(session, engine, demo, gated, tmp_path)
    start_stage(session, actor=demo["oscar"], evaluation=ev, stage="shadow")
    run = session.get(TrainingRun, ev.training_run_id)
    art = next(a for a in session.exec(select(Artifact).where(Artifact.kind == "student")).all()
               if a.meta.get("training_run") == run.id)
    return run, path_of(art)


def _swap_a_file(model_dir) -> None:
    victim = sorted(p for p in model_dir.rglob("*") if p.is_file())[0]
    victim.write_bytes(victim.read_bytes()[::-1] + b"swapped")


def test_a_swapped_model_file_is_refused_by_serving_and_by_evaluation(session, engine, demo, gated, serving):
    run, model_dir = serving
    # The metrics' copy of the hash is not what is checked: a wrong one changes nothing.
    raw(engine, "UPDATE training_run SET metrics = json_set(metrics, '$.model_sha256', 'x') WHERE id = :i",
        params={"i": run.id})
    session.expire_all()
    assert load_service(session, project=gated, require_token=False).model["training_run_id"] == run.id
    _swap_a_file(model_dir)
    # What the old check trusted: the editable metrics, now made to agree with the swapped files.
    raw(engine, "UPDATE training_run SET metrics = json_set(metrics, '$.model_sha256', :h) WHERE id = :i",
        params={"h": dir_sha256(model_dir), "i": run.id})
    session.expire_all()
    with pytest.raises(ArtifactTampered, match=f"the student of training run #{run.id} cannot be used"):
        load_service(session, project=gated, require_token=False)
    # The evaluate job loads the student through this same door.
    with pytest.raises(ArtifactTampered, match="no longer matches"):
        training_runs.load_student(session, session.get(TrainingRun, run.id))
    # And the shipped project records no new evaluation at all (issue 16: a decision closes its round).
    with pytest.raises(RoundClosed):
        eval_runs.start_evaluation(session, actor=demo["dana"], project=gated, training_run_id=run.id)
    assert any("no longer has its recorded SHA-256" in p for p in verification.verify(engine).problems)
