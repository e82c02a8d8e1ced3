"""A shipped project in rollout, built directly: a local teacher, a trained ngram student, a passing evaluation of
that student, the sponsor's ship decision and a RolloutEvent; and a real ``stillroom serve`` process."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from eval_helpers import teacher_run_with_holdout, trained_student
from review_helpers import approve, build_report, passing_predictions, recorded
from sqlmodel import Session
from teacher_helpers import LABELS, save_tiny_classifier

from core.decision import decision
from core.domain.hashing import canonical_json
from core.gate import gate
from core.store import artifacts
from core.store.models import Evaluation, MonitorConfig, Project, RolloutEvent, TeacherRun, TrainingRun, User

REPO = Path(__file__).resolve().parent.parent


def local_teacher_run(session: Session, *, file_run: TeacherRun, model_dir: Path) -> TeacherRun:
    """The imported run's outputs, recorded as if a local model had produced them, so it can answer live."""
    run = TeacherRun(project_id=file_run.project_id, dataset_id=file_run.dataset_id, adapter="local",
                     config={"model_dir": str(model_dir)}, artifact_id=file_run.artifact_id, n_rows=file_run.n_rows,
                     labels=list(file_run.labels), stats=dict(file_run.stats), created_by=file_run.created_by)
    recorded(session, actor=session.get(User, file_run.created_by), action="teacher.run", entity="teacher_run",
             row=run)
    session.commit()
    return run


def evaluation_of(session: Session, *, project: Project, actor: User, run: TrainingRun) -> Evaluation:
    """A passing evaluation (the review helpers' predictions) that names ``run`` as its student."""
    gv = gate.current(session, project_id=project.id)
    df = passing_predictions()
    pred = artifacts.store_table(session, project=project, actor=actor, df=df, kind="predictions")
    report = build_report(df, gate.spec_of(gv).model_dump(mode="json"), evaluation={
        "project_id": project.id, "round": 1, "gate_version": gv.version, "gate_hash": gv.content_hash,
        "gate_superseded": False, "training_run_id": run.id, "source": "trained",
        "holdout_fingerprint": "f" * 64, "n": len(df)})
    data = canonical_json(report).encode()
    path = artifacts.project_dir(project.id, "evaluations") / f"report-{pred.id}.json"
    path.write_bytes(data)
    art = artifacts.register(session, project=project, actor=actor, path=path, kind="evaluation-report")
    ev = Evaluation(project_id=project.id, round=1, gate_version_id=gv.id, training_run_id=run.id, source="trained",
                    predictions_artifact_id=pred.id, report_artifact_id=art.id,
                    report_hash=hashlib.sha256(data).hexdigest(), passed=report["passed"],
                    summary={"passed": report["passed"], "criteria": report["criteria"]}, created_by=actor.id)
    recorded(session, actor=actor, action="evaluation.record", entity="evaluation", row=ev)
    session.commit()
    return ev


def shipped(session: Session, engine, demo: dict, project: Project, tmp_path: Path, *,
            threshold: float = 0.5, teacher_dir: Path | None = None) -> Evaluation:
    """``project`` (gated) with a trained student, shipped by its sponsor; no rollout event yet.

    The teacher that answers live is ``teacher_dir`` (a saved classifier over LABELS), by default a random tiny one.
    """
    file_run = teacher_run_with_holdout(session, actor=demo["dana"], project=project, tmp_path=tmp_path)
    teacher_dir = teacher_dir or save_tiny_classifier(tmp_path / "teacher", labels=LABELS)
    local = local_teacher_run(session, file_run=file_run, model_dir=teacher_dir)
    run = trained_student(session, engine, actor=demo["dana"], project=project, teacher_run=local)
    ev = evaluation_of(session, project=project, actor=demo["dana"], run=run)
    approve(session, demo, project, ev, threshold=threshold)
    decision.decide(session, actor=demo["sam"], project=project, decision="ship", rationale="passes the gate",
                    evaluation_id=ev.id)
    return ev


def start_stage(session: Session, *, actor: User, evaluation: Evaluation, stage: str, threshold: float = 0.5,
                settings: dict | None = None) -> RolloutEvent:
    if settings is not None:
        recorded(session, actor=actor, action="monitor.config", entity="monitor_config", row=MonitorConfig(
            project_id=evaluation.project_id, settings=settings, updated_by=actor.id))
    event = RolloutEvent(project_id=evaluation.project_id, action="start", stage=stage,
                         evaluation_id=evaluation.id, training_run_id=evaluation.training_run_id,
                         threshold=threshold, created_by=actor.id)
    recorded(session, actor=actor, action="rollout.start", entity="rollout_event", row=event)
    session.commit()
    return event


# --------------------------------------------------------------------------- a real process


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_token(project: str, *, actor: str = "oscar") -> str:
    """A new serving token for ``project``, made by ``actor`` (an operator) in the test's database."""
    from core.access import people, projects, tokens
    from core.store.db import get_engine

    with Session(get_engine()) as s:
        proj = projects.get_project(s, project)
        return tokens.create_serve_token(s, actor=people.get_user(s, actor), project=proj, name="tests").secret


class Server:
    """``python -m core.cli --as NAME serve PROJECT`` on a free loopback port, waited for until /health answers.

    Unless ``args`` holds ``--no-auth``, a serving token is created first; ``headers`` carries it. One worker
    process unless ``args`` names ``--workers`` (the per-process counts of /health are then the service's).
    """

    def __init__(self, project: str, *, actor: str = "oscar", args: tuple[str, ...] = (), env: dict | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = None if "--no-auth" in args else serve_token(project, actor=actor)
        self.headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        workers = () if "--workers" in args else ("--workers", "1")
        cmd = [sys.executable, "-m", "core.cli", "--as", actor, "serve", project, "--port", str(self.port), *workers,
               *args]
        self.proc = subprocess.Popen(cmd, cwd=REPO, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)

    def wait(self, timeout: float = 120.0) -> Server:
        """Until /health answers (loading the models takes a while on a busy machine); a server that does not
        come up is stopped, never left running."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited {self.proc.returncode}: {self.proc.stderr.read()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1.0).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.1)
        self.stop()
        raise AssertionError(f"serve did not answer /health within {timeout:g} s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            stream.close()


@pytest.fixture
def in_rollout(session, engine, demo, gated, tmp_path):
    """The gated project shipped and at stage 100 with the student answering everything (threshold 0, no
    teacher sample, nothing escalated)."""
    ev = shipped(session, engine, demo, gated, tmp_path)
    start_stage(session, actor=demo["oscar"], evaluation=ev, stage="100", threshold=0.0,
                settings={"teacher_sample_rate": 0.0, "must_escalate": []})
    return gated
