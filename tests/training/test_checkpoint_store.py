"""Issue 20: with an artifact store that is not the data directory, a training job taken over on another host
resumes from the checkpoint its first worker recorded (core.training.checkpoints), checked against its SHA-256.
No copy leaks: a worker that lost its job removes the copy it could not record, and `stillroom jobs
sweep-checkpoints` removes what a dead process left; `stillroom audit verify` checks every recorded copy.

fsspec's memory filesystem stands in for object storage; "another host" is a second, empty data directory. The
first worker's host dies right after it recorded epoch 3 (its process ends mid-job, as on a lost host)."""

from __future__ import annotations

from datetime import timedelta

import fence_helpers as fh
import pytest
from click.testing import CliRunner
from eval_helpers import FAST, easy_gate, teacher_run_with_holdout
from fence_helpers import store_elsewhere  # noqa: F401  (the fixture "store": an artifact store elsewhere)
from sqlmodel import Session, col, select

from core.access import projects
from core.cli import cli
from core.domain.errors import InvalidInput, PermissionDenied
from core.gate import gate
from core.store import checkpoint_copies, jobs, verification
from core.store.config import get_settings
from core.store.models import AuditEvent, Job, TrainingPoint, TrainingRun, utcnow
from core.store.worker import claim_next, give_back
from core.training import checkpoints
from core.training import runs as training_runs

DIES_AFTER = 3


class HostDied(BaseException):
    """The first worker's host went away: nothing of the job's process runs after it."""


def first_host_dies(session, engine, demo, tmp_path) -> tuple[int, int]:
    """A training job whose first worker records epoch DIES_AFTER and dies; (job id, run id)."""
    project = projects.get_project(session, "Support ticket routing")
    teacher = teacher_run_with_holdout(session, actor=demo["dana"], project=project, tmp_path=tmp_path)
    gate.lock(session, actor=demo["sam"], project=project, spec=easy_gate(), reason="a bar for the test data")
    run, job = training_runs.start_training(session, actor=demo["dana"], project=project,
                                            teacher_run_id=teacher.id, config={**FAST, "patience": 40})
    jobs.hand_to_workers(job.id, engine=engine)
    first = claim_next(engine, worker=fh.FIRST, rules=fh.RULES)

    def dies(_fraction: float, message: str) -> None:
        if message.startswith(f"epoch {DIES_AFTER}/") and "val loss" in message:  # recorded, then gone
            raise HostDied

    with pytest.raises(HostDied):
        jobs.run(job.id, engine=engine, on_progress=dies, credential=first.credential)
    fh.go_quiet(engine, job.id)
    return job.id, run.id


def on_another_host(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("STILLROOM_DATA_DIR", str(tmp_path / "host-b"))
    get_settings.cache_clear()


def take_over(engine, job_id: int) -> Job:
    second = claim_next(engine, worker=fh.SECOND, rules=fh.RULES)
    assert second is not None and second.took_over_from == fh.FIRST
    return jobs.run(job_id, engine=engine, credential=second.credential)


def resumed_after(engine, run_id: int) -> list[int]:
    with Session(engine) as s:
        return [e.payload for e in s.exec(select(AuditEvent).where(
            AuditEvent.action == "training.start", AuditEvent.entity_id == str(run_id)).order_by(col(AuditEvent.id)))]


def test_a_run_taken_over_on_another_host_resumes_from_the_checkpoint_in_the_store(engine, session, demo, store,
                                                                                   monkeypatch, tmp_path):
    fs, root = store
    job_id, run_id = first_host_dies(session, engine, demo, tmp_path)
    with Session(engine) as s:
        recorded = s.get_one(TrainingRun, run_id).metrics[checkpoints.KEY]
    assert recorded["last"]["epoch"] == DIES_AFTER
    for kept in recorded.values():  # in the store, under a name carrying its hash
        assert fs.exists(f"{root}/{kept['path']}") and kept["sha256"][:16] in kept["path"]
    assert len(fs.ls(f"{root}/{recursive_parent(recorded)}")) == len({k["path"] for k in recorded.values()})
    on_another_host(monkeypatch, tmp_path)
    done = take_over(engine, job_id)
    assert done.status == "done", done.error
    starts = resumed_after(engine, run_id)
    assert [f'"resumed_after_epoch":{n}' in p for p, n in zip(starts, (0, DIES_AFTER), strict=True)] == [True, True]
    with Session(engine) as s:
        run = s.get_one(TrainingRun, run_id)
        epochs = sorted(p.epoch for p in s.exec(select(TrainingPoint).where(
            TrainingPoint.run_id == run_id, col(TrainingPoint.val_loss).is_not(None))))
    assert run.status == "done" and epochs == list(range(1, run.epochs_done + 1))  # no epoch lost or repeated
    assert (tmp_path / "host-b" / run.metrics["model_path"]).is_dir()


def test_a_checkpoint_changed_in_the_store_is_refused_and_nothing_resumes_from_it(engine, session, demo, store,
                                                                                 monkeypatch, tmp_path):
    fs, root = store
    job_id, run_id = first_host_dies(session, engine, demo, tmp_path)
    with Session(engine) as s:
        last = s.get_one(TrainingRun, run_id).metrics[checkpoints.KEY]["last"]
    state = next(k for k in fs.find(f"{root}/{last['path']}") if k.endswith("state.json"))
    fs.pipe_file(state, fs.cat_file(state).replace(b'"epoch": 3', b'"epoch": 30'))
    on_another_host(monkeypatch, tmp_path)
    failed = take_over(engine, job_id)
    assert failed.status == "failed"
    assert f"checkpoint of epoch {DIES_AFTER} was changed in the artifact store" in failed.error
    assert "Restore it from backup, or start a new run" in failed.error
    assert not list((tmp_path / "host-b").rglob(f"epoch-{DIES_AFTER}"))  # nothing unverified was kept


def test_with_the_default_store_nothing_is_copied_or_recorded(engine, session, demo, tmp_path):
    project = projects.get_project(session, "Support ticket routing")
    teacher = teacher_run_with_holdout(session, actor=demo["dana"], project=project, tmp_path=tmp_path)
    gate.lock(session, actor=demo["sam"], project=project, spec=easy_gate(), reason="a bar for the test data")
    run, job = training_runs.start_training(session, actor=demo["dana"], project=project,
                                            teacher_run_id=teacher.id, config=FAST)
    assert jobs.run(job.id, engine=engine).status == "done"
    session.expire_all()
    assert checkpoints.KEY not in training_runs.get_run(session, run.id).metrics


def recursive_parent(recorded: dict) -> str:
    return recorded["last"]["path"].rsplit("/", 1)[0]


def test_a_worker_that_lost_its_job_before_recording_an_epoch_leaves_no_copy_behind(engine, session, demo, store,
                                                                                   monkeypatch, tmp_path):
    lost = fh.lost_before_recording_an_epoch(session, engine, demo=demo, tmp_path=tmp_path, monkeypatch=monkeypatch,
                                             store=store)
    assert lost.copied, "the first holder never copied its checkpoint"
    assert lost.left == [], "the lost worker's copy stayed in the store"
    assert lost.there == lost.recorded and len(lost.recorded) >= 1  # every copy in the store is one the run records


def test_the_sweep_removes_only_an_unrecorded_copy_past_its_grace_of_a_job_not_running(engine, session, demo, store,
                                                                                     monkeypatch, tmp_path):
    fs, root = store
    job_id, run_id = first_host_dies(session, engine, demo, tmp_path)
    _, recorded = fh.stored_copies(fs, root, engine, run_id)
    with Session(engine) as s:  # what a process that died between copying epoch 4 and recording it left
        last = s.get_one(TrainingRun, run_id).metrics[checkpoints.KEY]["last"]["path"]
    orphan = f"{last.rsplit('/', 1)[0]}/epoch-4-0123456789abcdef-deadbeef"
    fs.cp(f"{root}/{last}", f"{root}/{orphan}", recursive=True)
    later = utcnow() + timedelta(hours=2)
    running = checkpoints.sweep(session, actor=demo["admin"], grace=timedelta(hours=1), now=later)
    assert (running.removed, running.left) == ([], 1)  # its job still runs (stalled): it may yet record it
    assert give_back(engine, job_id=job_id, worker=fh.FIRST, reason="its host died", counted=False) == "queued"
    young = checkpoints.sweep(session, actor=demo["admin"], grace=timedelta(hours=1))
    assert (young.removed, young.left) == ([], 1)  # written within the grace
    with pytest.raises(PermissionDenied, match="Only an admin sweeps"):
        checkpoints.sweep(session, actor=demo["dana"], grace=timedelta(0), now=later)
    assert fs.exists(f"{root}/{orphan}")
    swept = CliRunner().invoke(cli, ["--as", "admin", "jobs", "sweep-checkpoints", "--grace-hours", "0"])
    assert swept.exit_code == 0, swept.output
    assert swept.output.splitlines() == ["Removed 1 checkpoint copy(ies) that no training run records.",
                                         f"- {orphan}"]
    there, still_recorded = fh.stored_copies(fs, root, engine, run_id)
    assert there == still_recorded == recorded  # the recorded copies survive
    assert checkpoint_copies.copy_problems(engine) == []
    assert [p for p in verification.verify(engine).problems if "training" in p] == []  # the run's row and events agree
    with pytest.raises(InvalidInput, match="grace: .* zero or more"):
        checkpoints.sweep(session, actor=demo["admin"], grace=timedelta(hours=-1))
    with Session(engine) as s:
        (event,) = s.exec(select(AuditEvent).where(AuditEvent.action == "training.checkpoints_swept")).all()
    assert (event.actor, event.entity_id, orphan in event.payload) == ("admin", str(run_id), True)


def checkpoint_problems(engine, *, files: bool = True) -> list[str]:
    # The test data's dataset was inserted without its event (eval_helpers): only the checkpoints' lines matter here.
    return [p for p in verification.verify(engine, files=files).problems if "checkpoint" in p]


def test_audit_verify_names_the_job_and_the_file_of_a_recorded_copy_changed_in_the_store(engine, session, demo,
                                                                                       store, tmp_path):
    fs, root = store
    job_id, run_id = first_host_dies(session, engine, demo, tmp_path)
    assert checkpoint_problems(engine) == []
    with Session(engine) as s:
        kept = s.get_one(TrainingRun, run_id).metrics[checkpoints.KEY]
    last = kept["last"]
    state = next(k for k in fs.find(f"{root}/{last['path']}") if k.endswith("state.json"))
    fs.pipe_file(state, fs.cat_file(state) + b" ")
    changed = checkpoint_problems(engine)
    assert changed and all(last["path"] in p for p in changed), changed  # as last, and as best when it is both
    assert changed[0] == (f"training run #{run_id} (job #{job_id})'s last checkpoint (epoch {DIES_AFTER}) at "
                          f"{last['path']} no longer has its recorded SHA-256: it was changed. Restore it from "
                          "backup, or start a new run.")
    assert checkpoint_problems(engine, files=False) == []  # the file checks are the part --no-files skips
    no_files = CliRunner().invoke(cli, ["audit", "verify", "--no-files"])
    assert last["path"] not in no_files.output
    assert last["path"] in CliRunner().invoke(cli, ["audit", "verify"]).output
    fs.rm(f"{root}/{last['path']}", recursive=True)
    assert checkpoint_problems(engine)[0] == (
        f"training run #{run_id} (job #{job_id})'s last checkpoint (epoch {DIES_AFTER}) at {last['path']} is "
        "missing from the artifact store: restore it from backup.")
