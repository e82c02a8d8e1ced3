"""Two demo projects seeded to a later step in seconds, so every role has work on first view.

*Reseller ticket routing* is mid-review: data in, an LLM router's outputs imported as its teacher, an n-gram
student trained and evaluated by the real jobs (run here, in this process), waiting on the validator.
*Ticket language detection* has shipped and is at its 5 % stage: its teacher is a larger model trained here
in a second (a hashed n-gram classifier standing in for the vendor model a team would run locally, so nothing
has to train for minutes), its student passed the gate, the validator approved, the sponsor shipped, and the
operator's rollout went through shadow on traffic answered by the real router (``core.serving``), whose
request log the Rollout page reads. Everything goes through core's functions as the role holding it, with
its audit events; nothing is written behind core's back.
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sqlmodel import Session, select

from core.access import people, projects
from core.data import holdout, importer
from core.decision import decision
from core.demo import seed as demo
from core.demo import tickets as demo_tickets
from core.evaluation import jobs as evaluate_job  # noqa: F401 (registers the "evaluate" job run here)
from core.evaluation import runs as evaluations
from core.gate import gate
from core.ml.config import TrainConfig
from core.ml.data import KDData
from core.qualify import qualification
from core.review import review
from core.rollout import rollout
from core.serving.app import ClassifyRequest, classify, load_service
from core.store import jobs
from core.store.artifacts import data_dir
from core.store.models import Project
from core.teacher import jobs as teacher_job  # noqa: F401 (registers the "teacher-run" job run here)
from core.teacher import runs as teacher_runs
from core.training import jobs as train_job  # noqa: F401 (registers the "train" job run here)
from core.training import runs as training

REVIEW = "Reseller ticket routing"
SHIPPED = "Ticket language detection"
N_TICKETS = 1000
SHADOW_REQUESTS = 240  # above the default 200 the advance check asks for
STAGE_REQUESTS = 160
# Few, large steps over a smaller table: the demo's 1,200 training rows need no more, and each optimizer step
# over the default 65k-row table costs more than the whole forward pass.
STUDENT = {"family": "ngram", "size": "tiny", "size_overrides": {"buckets": 2**14}, "epochs": 10,
           "batch_size": 32, "lr": 0.05, "patience": 3, "points_per_epoch": 1}
LANGUAGES = ("de", "en", "es", "fr")

_DESCRIPTIONS = {
    REVIEW: "Route the reseller helpdesk's tickets to our queues; the LLM router's answers are the teacher.",
    SHIPPED: "Send each ticket to the team for its language; a local language-ID model is the teacher.",
}


@dataclass(frozen=True)
class Showcase:
    review_evaluation: int
    shipped_evaluation: int
    stage: str
    requests: int  # logged by the router for the shipped project
    seconds: float


def _tickets(n: int, seed: int) -> pd.DataFrame:
    df = demo_tickets.generate(n, seed)
    df["timestamp"] = df["timestamp"].astype(str)
    return df


def _parquet(df: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return buf.getvalue()


def _gate(kind: str) -> dict:
    spec = gate.template("cost-pressure", demo.ROUTING_QUALIFICATION)
    if kind == REVIEW:
        spec["slice_floors"] = [{"column": "language", "value": "de", "floor": 0.85, "min_n": 12},
                                {"column": "tier", "value": "enterprise", "floor": 0.85, "min_n": 12}]
        spec["quality_floor"] = {"kind": "relative-to-teacher", "value": 0.9}
        spec["min_reviews_per_critical_slice"] = 5
    else:
        spec["quality_floor"] = {"kind": "relative-to-teacher", "value": 0.95}
        spec["slice_floors"] = [{"column": "language", "value": "fr", "floor": 0.9, "min_n": 12}]
    spec["notes"] = "Demo gate, locked by the sponsor before any training."
    return spec


def _project(session: Session, name: str, admin) -> Project | None:
    """Create the project with the demo roles, qualified and gated; None when it exists already."""
    if session.exec(select(Project).where(Project.name == name)).first():
        return None
    project = projects.create_project(session, actor=admin, name=name, description=_DESCRIPTIONS[name])
    for username, role in demo._ROLES.items():
        projects.assign_role(session, actor=admin, project=project, username=username, role=role)
    sam = people.get_user(session, "sam")
    qualification.record(session, actor=sam, project=project, inputs=demo.ROUTING_QUALIFICATION, verdict="proceed")
    gate.lock(session, actor=sam, project=project, spec=_gate(name))
    return project


def _import(session: Session, project: Project, df: pd.DataFrame, *, reference: str, labels: list[str],
            stratify: str) -> int:
    dana = people.get_user(session, "dana")
    mapping = {"id": "id", "text": "text", "reference": "resolved", "timestamp": "timestamp",
               "slices": ["queue", "channel", "tier", "language"], "labels": labels}
    # The answer a person recorded, a column of its own as in a real export (a slice column may not double as it).
    df = df.assign(resolved=df[reference])
    dataset = importer.import_dataset(session, actor=dana, project=project, mapping=mapping, data=_parquet(df),
                                      filename="tickets.parquet", name="Tickets, last quarter")
    holdout.fix_holdout(session, actor=dana, project=project, dataset_id=dataset.id, fraction=0.2,
                        stratify_by=[stratify], seed=0)
    if holdout.dataset_leakage(session, project=project, dataset_id=dataset.id).leaked:
        dataset, _ = holdout.drop_overlap(session, actor=dana, project=project, dataset_id=dataset.id)
    return dataset.id


def _run_job(session: Session, job_id: int, engine) -> dict:
    """Run a queued job here; the caller's session then re-reads what the job changed."""
    result = jobs.result_or_raise(jobs.run(job_id, engine=engine))
    session.expire_all()
    return result


def _train_and_evaluate(session: Session, engine, project: Project, teacher_run_id: int) -> int:
    dana = people.get_user(session, "dana")
    run, job = training.start_training(session, actor=dana, project=project, teacher_run_id=teacher_run_id,
                                       config=STUDENT)
    _run_job(session, job.id, engine)
    job = evaluations.start_evaluation(session, actor=dana, project=project, training_run_id=run.id)
    return int(_run_job(session, job.id, engine)["evaluation"])


# --------------------------------------------------------------------------- mid-review


def _router_outputs(df: pd.DataFrame, seed: int) -> bytes:
    """What an LLM router answered for each ticket: mostly the true queue, a few confusions, with confidence."""
    rng = np.random.default_rng(seed)
    wrong = rng.random(len(df)) < 0.04
    labels = [demo_tickets.CONFUSABLE[q][0] if w else q for q, w in zip(df["queue"], wrong, strict=True)]
    confidence = np.where(wrong, rng.uniform(0.4, 0.75, len(df)), rng.uniform(0.8, 0.99, len(df)))
    out = pd.DataFrame({"id": df["id"], "label": labels, "confidence": confidence.round(3)})
    return out.to_csv(index=False).encode()


def seed_review(session: Session, engine, admin) -> int | None:
    """The mid-review project; returns its evaluation's id (None when it existed)."""
    project = _project(session, REVIEW, admin)
    if project is None:
        return None
    df = _tickets(N_TICKETS, demo_tickets.DEFAULT_SEED + 101)
    dataset_id = _import(session, project, df, reference="queue", labels=sorted(demo_tickets.QUEUE_SHARES),
                         stratify="queue")
    kept = set(teacher_runs.dataset_table(session, teacher_runs.get_dataset(
        session, project=project, dataset_id=dataset_id))["id"].astype(str))
    run = teacher_runs.import_upload(session, actor=people.get_user(session, "dana"), project=project,
                                     dataset_id=dataset_id, data=_router_outputs(df[df["id"].isin(kept)], 5),
                                     filename="llm_router.csv")
    return _train_and_evaluate(session, engine, project, run.id)


# --------------------------------------------------------------------------- shipped, at 5 %


def teacher_dir() -> Path:
    return data_dir() / "models" / "demo-language-teacher"


def train_language_teacher(df: pd.DataFrame, out_dir: Path) -> Path:
    """A supervised n-gram language classifier (the 'small' size) on its own tickets, saved as a model dir."""
    import tempfile

    from core.ml import loop, students  # lazy: imports torch

    labels = list(LANGUAGES)
    y = np.array([labels.index(v) for v in df["language"]], dtype=np.int64)
    data = KDData(texts=df["text"].astype(str).tolist(), probs=np.eye(len(labels))[y], reference=y, labels=labels)
    cfg = TrainConfig(family="ngram", size="small", size_overrides={"buckets": 2**15}, epochs=4, batch_size=128,
                      lr=0.05, alpha=0.0, points_per_epoch=0)
    with tempfile.TemporaryDirectory() as tmp:
        result = loop.fit(data, cfg, out_dir=Path(tmp),
                          new_student=lambda: students.new_student(cfg, labels=labels, texts=data.texts))
        students.load(result.best_dir).save(out_dir)
    return out_dir


def seed_shipped(session: Session, engine, admin) -> tuple[int, str, int] | None:
    """The shipped project at its 5 % stage: (evaluation id, stage, requests logged); None when it existed."""
    project = _project(session, SHIPPED, admin)
    if project is None:
        return None
    dana, val, sam, oscar = (people.get_user(session, u) for u in ("dana", "val", "sam", "oscar"))
    model_dir = train_language_teacher(_tickets(N_TICKETS, demo_tickets.DEFAULT_SEED + 202), teacher_dir())
    df = _tickets(N_TICKETS, demo_tickets.DEFAULT_SEED + 203)
    dataset_id = _import(session, project, df, reference="language", labels=list(LANGUAGES), stratify="language")
    job = teacher_runs.start_run(session, actor=dana, project=project, dataset_id=dataset_id, adapter="local",
                                 config={"model_dir": str(model_dir)})
    teacher_run = int(_run_job(session, job.id, engine)["teacher_run"])
    evaluation_id = _train_and_evaluate(session, engine, project, teacher_run)
    review.sign_off(session, actor=val, project=project, evaluation_id=evaluation_id, approve=True,
                    comment="Looked at every French and German disagreement: the student is right or both are.")
    review.propose_threshold(session, actor=oscar, project=project, evaluation_id=evaluation_id, threshold=0.6)
    decision.decide(session, actor=sam, project=project, decision="ship", evaluation_id=evaluation_id,
                    rationale="Passes every criterion and the validator approved it.")
    rollout.start(session, actor=oscar, project=project, reason="shipped: shadow first")
    traffic = _tickets(SHADOW_REQUESTS + STAGE_REQUESTS, demo_tickets.DEFAULT_SEED + 204)
    served = serve(session, project=project, texts=traffic.head(SHADOW_REQUESTS))
    rollout.advance(session, actor=oscar, project=project, reason="shadow traffic meets every criterion")
    served += serve(session, project=project, texts=traffic.tail(STAGE_REQUESTS))
    return evaluation_id, rollout.current_stage(session, project_id=project.id), served


def serve(session: Session, *, project: Project, texts: pd.DataFrame) -> int:
    """Answer ``texts`` through the real service (router, student, teacher, request log), in this process."""
    service = load_service(session, project=project, require_token=False)
    requests = [ClassifyRequest(text=str(r.text), id=f"demo-{r.id}-{service.state.stage}",
                                slices={"channel": str(r.channel), "tier": str(r.tier)})
                for r in texts.itertuples()]

    async def answer_all() -> int:
        return sum([(await classify(service, req))[1] == 200 for req in requests])

    return asyncio.run(answer_all())


@contextmanager
def _one_thread() -> Iterator[None]:
    """These models are tiny: a second thread only adds contention on a shared machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def seed(session: Session, engine) -> Showcase | None:
    """Both projects, each only if missing; None when both existed. Run after ``core.demo.seed``."""
    started = time.monotonic()
    admin = people.get_user(session, "admin")
    with _one_thread():
        review_id = seed_review(session, engine, admin)
        shipped = seed_shipped(session, engine, admin)
    if review_id is None and shipped is None:
        return None
    ev, stage, n = shipped or (0, "", 0)
    return Showcase(review_evaluation=review_id or 0, shipped_evaluation=ev, stage=stage, requests=n,
                    seconds=round(time.monotonic() - started, 1))
