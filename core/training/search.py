"""The default training flow: both families, a small search over each family's key settings within a stated
time budget, early stopping on validation agreement, and a recommendation with its reasons.

One "train-search" job trains the candidates one after another (each an ordinary TrainingRun with its own
"train" job, run in this process), each family's cheapest first with the families taking turns. Each run gets
an even share of what is left of the budget as its own limit (the training loop stops mid-epoch at it), and a
candidate that cannot get the least its family needs is skipped with the reason, so the search ends inside its
budget and says what it tried and what it skipped. The recommendation is a pure function of the finished runs,
so the page and the CLI recompute it from the database.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace

from sqlmodel import Session, col, select

from core.domain.errors import InvalidInput
from core.domain.jobs import SearchParams, SearchResult
from core.domain.validation import parse
from core.ml.config import FAMILIES, TrainConfig
from core.ml.init import teacher_config
from core.store import jobs, vouched
from core.store.jobs import JobContext, handler
from core.store.models import Job, Project, TrainingRun, User
from core.training import jobs as train_job  # noqa: F401 (registers the "train" handler the search runs here)
from core.training import pool, runs

JOB_KIND = jobs.JobKind.TRAIN_SEARCH
DEFAULT_BUDGET_S = 900.0
# Candidates within this much of the best validation score (accuracy, else agreement) count as equally good; the
# fastest of them wins.
AGREEMENT_TOLERANCE = 0.005
# Below this many seconds a candidate of the family learns nothing worth comparing, so it is skipped and the
# search says so; an n-gram candidate is tried on whatever is left (it trains in seconds).
MIN_SECONDS = {"ngram": 0.0, "transformer": 15.0}
SHARE_MARGIN = 0.85  # of a candidate's share: room for its final validation pass and latency timing

# The key settings of each family, cheapest first. n-gram: table size and learning rate (the two that moved
# accuracy on real data); transformer: width, initialised from the teacher's layers where the width allows.
GRID: dict[str, list[dict]] = {
    "ngram": [
        {"family": "ngram", "size": "tiny", "lr": 0.02},
        {"family": "ngram", "size": "small", "lr": 0.02},
        {"family": "ngram", "size": "small", "lr": 0.005},
    ],
    "transformer": [
        {"family": "transformer", "size": "tiny"},
        {"family": "transformer", "size": "small"},
        # The teacher's width and half its layers, started from the teacher's layers (core.ml.init); only
        # where the teacher is a local transformers model.
        {"family": "transformer", "size": "half-teacher"},
    ],
}


def candidates(*, families: tuple[str, ...] = FAMILIES, base: dict | None = None,
               teacher_is_transformer: bool = False) -> list[dict]:
    """The search's configurations in the order they are tried: each family's cheapest first, the families
    taking turns, so a tight budget still tries a transformer after the first n-gram (seconds each)."""
    unknown = [f for f in families if f not in GRID]
    if unknown or not families:
        raise InvalidInput(f"families {', '.join(unknown) or '(none)'}: choose from {', '.join(GRID)}.",
                           field="families")
    per_family = []
    for family in (f for f in ("ngram", "transformer") if f in families):
        kept = [c for c in GRID[family] if c.get("size") != "half-teacher" or teacher_is_transformer]
        per_family.append(kept)
    out = []
    for turn in range(max(map(len, per_family))):
        for kept in per_family:
            if turn < len(kept):
                merged = {**(base or {}), **kept[turn]}
                parse(TrainConfig, merged)  # refuse a bad base setting before any job starts
                out.append(merged)
    return out


def start_search(session: Session, *, actor: User, project: Project, teacher_run_id: int,
                 filter_id: int | None = None, budget_s: float = DEFAULT_BUDGET_S,
                 families: tuple[str, ...] = FAMILIES, base: dict | None = None) -> Job:
    """Queue the search as one job (driver only, under a locked gate, with a holdout); the caller runs it."""
    runs.require_can_train(session, actor=actor, project=project)
    teacher_run, _ = pool.teacher_source(session, project=project, teacher_run_id=teacher_run_id,
                                         filter_id=filter_id)
    pool.require_holdout(session, project=project)
    if not 1 <= budget_s <= 7 * 86_400:
        raise InvalidInput(f"budget {budget_s:g} s: give between 1 second and 7 days.", field="budget_s")
    plan = candidates(families=tuple(families), base=base,
                      teacher_is_transformer=teacher_config(runs.teacher_tokenizer_dir(teacher_run)) is not None)
    return jobs.submit(session, actor=actor, project=project, kind=JOB_KIND, params=SearchParams(
        teacher_run_id=teacher_run_id, filter_id=filter_id, budget_s=float(budget_s), candidates=plan))


# --------------------------------------------------------------------------- the recommendation


@dataclass(frozen=True)
class Candidate:
    run_id: int
    family: str
    size: str
    lr: float | None
    status: str
    val_agreement: float | None
    val_accuracy: float | None
    retained: float | None  # the student's validation accuracy over the teacher's, on the same rows
    single_p95_ms: float | None
    params: int | None
    epochs_done: int
    best_epoch: int | None
    seconds: float | None
    init: str | None  # how a transformer's weights started (teacher layers, or config)


@dataclass(frozen=True)
class Recommendation:
    run_id: int | None
    reasons: list[str]
    candidates: list[Candidate] = field(default_factory=list)
    teacher_val_accuracy: float | None = None
    skipped: list[str] = field(default_factory=list)  # "transformer small: skipped, 8 s of the budget left..."
    budget_line: str = ""  # "3 trained, 1 skipped, in 118 s of a 120 s budget"

    def as_dict(self) -> dict:
        return asdict(self)


def _candidate(run: TrainingRun, teacher_val_accuracy: float | None) -> Candidate:
    m = run.metrics or {}
    acc = m.get("val_accuracy")
    retained = acc / teacher_val_accuracy if acc is not None and teacher_val_accuracy else None
    seconds = ((run.finished_at - run.created_at).total_seconds()
               if run.finished_at and run.created_at else None)
    return Candidate(run_id=run.id, family=run.family, size=run.size, lr=(run.config or {}).get("lr"),
                     status=run.status, val_agreement=m.get("val_agreement"), val_accuracy=acc, retained=retained,
                     single_p95_ms=m.get("single_p95_ms"), params=m.get("params"), epochs_done=run.epochs_done,
                     best_epoch=run.best_epoch, seconds=seconds, init=m.get("init"))


def recommend(trained: list[TrainingRun], *, teacher_val_accuracy: float | None = None,
              tolerance: float = AGREEMENT_TOLERANCE) -> Recommendation:
    """The student to evaluate: among finished runs within ``tolerance`` of the best validation score, the lowest
    single-request p95, then the fewest parameters; with the reasons in words.

    The score is validation accuracy against the references when every finished run has one (what the gate
    judges; a weak teacher's agreement can point the wrong way), else agreement with the teacher."""
    cands = [_candidate(r, teacher_val_accuracy) for r in trained]
    done = [c for c in cands if c.status == "done" and c.val_agreement is not None]
    if not done:
        return Recommendation(None, ["no candidate finished: look at the failed runs' errors"], cands,
                              teacher_val_accuracy)
    by_accuracy = all(c.val_accuracy is not None for c in done)
    what = "validation accuracy" if by_accuracy else "validation agreement with the teacher"

    def score(c: Candidate) -> float:
        return c.val_accuracy if by_accuracy else c.val_agreement

    best = max(score(c) for c in done)
    close = [c for c in done if score(c) >= best - tolerance]
    pick = min(close, key=lambda c: (c.single_p95_ms if c.single_p95_ms is not None else float("inf"),
                                     c.params or 0))
    reasons = [f"{what} {score(pick):.3f}" + (" (the best of the search)" if score(pick) == best else
                                              f", within {tolerance:.3f} of the best ({best:.3f})")]
    if by_accuracy:
        reasons.append(f"agreement with the teacher {pick.val_agreement:.3f}")
    if pick.retained is not None:
        reasons.append(f"keeps {pick.retained:.1%} of the teacher's validation accuracy "
                       f"({pick.val_accuracy:.3f} vs {teacher_val_accuracy:.3f})")
    others = [c for c in close if c.run_id != pick.run_id and c.single_p95_ms is not None]
    if pick.single_p95_ms is not None:
        faster = (f"; the next as good, run #{others[0].run_id} ({others[0].family} {others[0].size}), takes "
                  f"{min(others, key=lambda c: c.single_p95_ms).single_p95_ms:.2f} ms") if others else ""
        reasons.append(f"single-request p95 {pick.single_p95_ms:.2f} ms{faster}")
    if pick.params is not None:
        reasons.append(f"{pick.params:,} parameters")
    dropped = [c for c in done if c not in close]
    if dropped:
        reasons.append(f"left out for lower {what.removeprefix('validation ')}: " + ", ".join(
            f"#{c.run_id} {c.family} {c.size} ({score(c):.3f})" for c in dropped))
    return Recommendation(pick.run_id, reasons, cands, teacher_val_accuracy)


def latest_search(session: Session, *, project_id: int) -> Job | None:
    return session.exec(select(Job).where(Job.project_id == project_id, Job.kind == JOB_KIND)
                        .order_by(col(Job.id).desc()).limit(1)).first()


def search_recommendation(session: Session, *, job: Job) -> Recommendation:
    """The recommendation over the runs a search job has trained so far (recomputed from the database)."""
    done = jobs.result_as(job, SearchResult) if job.status == "done" else None
    ids = (done.runs if done else None) or _runs_so_far(session, job)
    trained = [session.get(TrainingRun, i) for i in ids]
    rec = recommend([r for r in trained if r is not None],
                    teacher_val_accuracy=done.teacher_val_accuracy if done else None)
    if done is None:
        return rec
    over = f", {done.elapsed_s - done.budget_s:.0f} s over it" if done.elapsed_s > done.budget_s else ""
    line = (f"{len(done.runs)} trained, {len(done.skipped)} skipped, in {done.elapsed_s:.0f} s of a "
            f"{done.budget_s:.0f} s budget{over}")
    return replace(rec, skipped=list(done.skipped), budget_line=line)


def _runs_so_far(session: Session, job: Job) -> list[int]:
    """While the search runs: the runs it started, told apart by the search job id their metrics carry."""
    return [r.id for r in runs.list_runs(session, project_id=job.project_id)
            if (r.metrics or {}).get("search_job") == job.id]


# --------------------------------------------------------------------------- the job


def teacher_val_accuracy(session: Session, *, project: Project, teacher_run_id: int, filter_id: int | None,
                         cfg: TrainConfig) -> float | None:
    """The teacher's accuracy on the validation rows every candidate is judged on (same split, same seed)."""
    from core.ml import loop  # lazy: imports torch

    teacher_run, teacher_filter = pool.teacher_source(session, project=project, teacher_run_id=teacher_run_id,
                                                      filter_id=filter_id)
    data, _ = pool.training_rows(session, project=project, teacher_run=teacher_run, teacher_filter=teacher_filter)
    _, val_idx = loop.split_validation(len(data.texts), fraction=cfg.val_fraction, seed=cfg.seed)
    ref = data.reference[val_idx]
    labelled = ref >= 0
    return float((data.teacher_label[val_idx][labelled] == ref[labelled]).mean()) if labelled.any() else None


def _share(family: str, *, left: float, candidates_left: int) -> tuple[float, str]:
    """A candidate's own time limit: an even share of what is left of the budget (a cheap candidate that ends
    early leaves its rest to the next), kept under ``SHARE_MARGIN`` so its last validation pass and its latency
    timing end inside the budget too; or, when too little is left, why it is skipped."""
    need = MIN_SECONDS.get(family, 0.0)
    if left <= 0 or left < need:
        return 0.0, (f"skipped: {max(0.0, left):.0f} s of the budget left, fewer than the {need:.0f} s a {family} "
                     "candidate needs" if need else "skipped: the budget was spent")
    return min(left, max(need, left / candidates_left)) * SHARE_MARGIN, ""


@handler(JOB_KIND, params=SearchParams, result=SearchResult)
def search_job(ctx: JobContext) -> SearchResult:
    params = ctx.read(SearchParams)
    budget, plan = params.budget_s, list(params.candidates)
    started = time.monotonic()
    with Session(ctx.engine, expire_on_commit=False) as s:
        actor, project = vouched.one(s, User, s.get(Job, ctx.job_id).created_by), s.get(Project, ctx.project_id)
        teacher_acc = teacher_val_accuracy(s, project=project, teacher_run_id=params.teacher_run_id,
                                           filter_id=params.filter_id, cfg=parse(TrainConfig, plan[0]))
    trained, skipped = [], []
    for i, cand in enumerate(plan):
        left = budget - (time.monotonic() - started)
        name = f"{cand['family']} {cand['size']}" + (f" lr {cand['lr']:g}" if cand.get("lr") else "")
        limit, why_not = _share(cand["family"], left=left, candidates_left=len(plan) - i)
        if why_not:
            skipped.append(f"{name}: {why_not}")
            continue
        with Session(ctx.engine, expire_on_commit=False) as s:
            actor, project = vouched.one(s, User, actor.id), s.get(Project, project.id)
            run, job = runs.start_training(s, actor=actor, project=project,
                                           teacher_run_id=params.teacher_run_id,
                                           filter_id=params.filter_id, config={**cand, "max_seconds": limit})
            run.metrics = {**run.metrics, "search_job": ctx.job_id}
            s.add(run)
            s.commit()
        trained.append(run.id)
        jobs.run(job.id, engine=ctx.engine, on_progress=lambda f, m, i=i, name=name: ctx.progress(
            (i + f) / len(plan), f"candidate {i + 1} of {len(plan)} ({name}): {m}"))
    with Session(ctx.engine, expire_on_commit=False) as s:
        rec = recommend([s.get(TrainingRun, i) for i in trained], teacher_val_accuracy=teacher_acc)
    elapsed = round(time.monotonic() - started, 1)
    over = f", {elapsed - budget:.0f} s over it" if elapsed > budget else ""
    ctx.progress(1.0, f"{len(trained)} candidates trained, {len(skipped)} skipped, in {elapsed:.0f} s of a "
                      f"{budget:.0f} s budget{over}; recommended run #{rec.run_id}", force=True)
    return SearchResult(runs=trained, skipped=skipped, budget_s=budget, elapsed_s=elapsed,
                        teacher_val_accuracy=teacher_acc, recommended_run=rec.run_id, reasons=rec.reasons)
