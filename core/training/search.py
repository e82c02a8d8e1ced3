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

import numpy as np
from sqlmodel import Session, col, select

from core.domain.errors import InvalidInput
from core.domain.jobs import SearchParams, SearchResult
from core.domain.validation import parse
from core.ml.config import FAMILIES, PRETRAINED, TrainConfig
from core.ml.init import check_encoder, teacher_config
from core.store import jobs, vouched
from core.store.jobs import JobContext, handler
from core.store.models import Job, Project, TeacherRun, TrainingRun, User
from core.teacher import model_files
from core.teacher import runs as teacher_runs
from core.training import jobs as train_job  # noqa: F401 (registers the "train" handler the search runs here)
from core.training import pool, runs

JOB_KIND = jobs.JobKind.TRAIN_SEARCH
DEFAULT_BUDGET_S = 900.0
# Candidates within this much of the best validation score (accuracy, else agreement) count as equally good; the
# fastest of them wins. Where the runs say how many validation rows scored them, the margin is at least one
# standard error of the best score (``one_standard_error``).
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
        # Character 1- and 2-grams besides 3 and 4: short words and unspaced scripts (CJK) get features; on the
        # language-identification benchmark this took the student from 97 % to over 100 % of its teacher.
        {"family": "ngram", "size": "tiny", "lr": 0.02, "char_ngrams": [1, 2, 3, 4]},
        {"family": "ngram", "size": "small", "lr": 0.02},
        {"family": "ngram", "size": "small", "lr": 0.005},
    ],
    "transformer": [
        {"family": "transformer", "size": "tiny"},
        {"family": "transformer", "size": "small"},
        # Pre-trained here (masked-language modelling on the project's own texts, holdout excluded) before it is
        # distilled: the same size as the from-scratch one above, so the search can say what pre-training bought.
        {"family": "transformer", "size": "small", "domain_pretrain": True},
        # The teacher's width and half its layers, started from the teacher's layers (core.ml.init); only
        # where the teacher is a local transformers model.
        {"family": "transformer", "size": "half-teacher"},
        # The small size again with the teacher's hidden states as a second target (core.ml.layers, TinyBERT's
        # recipe; a learned projection bridges the widths), only where the teacher is a local transformers model.
        # Why: half-teacher cannot be much faster than its teacher (half the layers at the same width), so a
        # narrow student is the fast one, and it can learn from the teacher's layers only this way; measured
        # against the same size with soft labels alone in benchmarks/bench_strong_teacher.py.
        {"family": "transformer", "size": "small", "hidden_weight": 1.0},
    ],
}


def candidates(*, families: tuple[str, ...] = FAMILIES, base: dict | None = None,
               teacher_is_transformer: bool = False, student_init: str | None = None) -> list[dict]:
    """The search's configurations in the order they are tried: each family's cheapest first, the families
    taking turns, so a tight budget still tries a transformer after the first n-gram (seconds each). Given
    ``student_init`` (the team's encoder), a "pretrained" candidate is the first transformer tried."""
    unknown = [f for f in families if f not in GRID]
    if unknown or not families:
        raise InvalidInput(f"families {', '.join(unknown) or '(none)'}: choose from {', '.join(GRID)}.",
                           field="families")
    if student_init and "transformer" not in families:
        raise InvalidInput("student_init starts a transformer: search the transformer family too, or leave it "
                           "out.", field="student_init")
    per_family = []
    for family in (f for f in ("ngram", "transformer") if f in families):
        kept = [c for c in GRID[family] if teacher_is_transformer or not needs_teacher_layers(c)]
        if family == "transformer" and student_init:
            kept = [{"family": "transformer", "size": PRETRAINED, "student_init": student_init}, *kept]
        per_family.append(kept)
    out = []
    for turn in range(max(map(len, per_family))):
        for kept in per_family:
            if turn < len(kept):
                merged = {**(base or {}), **kept[turn]}
                parse(TrainConfig, merged)  # refuse a bad base setting before any job starts
                out.append(merged)
    return out


def needs_teacher_layers(config: dict) -> bool:
    """Whether a candidate learns from the teacher's own layers (started from them, or matching its hidden states
    or attention): only a local transformers teacher has layers, so elsewhere the search leaves it out."""
    return (config.get("size") == "half-teacher" or (config.get("hidden_weight") or 0) > 0
            or (config.get("attention_weight") or 0) > 0)


def start_search(session: Session, *, actor: User, project: Project, teacher_run_id: int,
                 filter_id: int | None = None, budget_s: float = DEFAULT_BUDGET_S,
                 families: tuple[str, ...] = FAMILIES, base: dict | None = None,
                 student_init: str | None = None) -> Job:
    """Queue the search as one job (driver only, under a locked gate, with a holdout); the caller runs it.
    ``student_init``: a pretrained encoder directory to try as a candidate (checked here, before anything)."""
    runs.require_can_train(session, actor=actor, project=project)
    teacher_run, _ = pool.teacher_source(session, project=project, teacher_run_id=teacher_run_id,
                                         filter_id=filter_id)
    pool.require_holdout(session, project=project)
    if not 1 <= budget_s <= 7 * 86_400:
        raise InvalidInput(f"budget {budget_s:g} s: give between 1 second and 7 days.", field="budget_s")
    student_init = (student_init or "").strip() or None
    if student_init:
        check_encoder(student_init)
    plan = candidates(families=tuple(families), base=base, student_init=student_init,
                      teacher_is_transformer=teacher_config(runs.teacher_tokenizer_dir(teacher_run)) is not None)
    return jobs.submit(session, actor=actor, project=project, kind=JOB_KIND, params=SearchParams(
        teacher_run_id=teacher_run_id, filter_id=filter_id, budget_s=float(budget_s), candidates=plan))


# --------------------------------------------------------------------------- the recommendation


@dataclass(frozen=True)
class TeacherBar:
    """The teacher's accuracy that "retained" divides by: where it did not train, or unknown. The rule, one place.

    The validation rows come from the teacher's own run, and a teacher is often trained on those very texts (the
    real-data benchmark's teacher scored 0.983 on them and 0.88 on the holdout), so its accuracy there is shown
    but never divided by. The holdout's rows with references are rows no model of the project trains on: the
    teacher's accuracy there is the bar; without it the share retained is unknown, and said to be."""

    holdout_accuracy: float | None = None  # on the holdout's rows with references
    holdout_rows: int = 0
    val_accuracy: float | None = None  # on the validation rows, where it may have trained: never a denominator

    def retained(self, student_accuracy: float | None) -> float | None:
        if student_accuracy is None or not self.holdout_accuracy:
            return None
        return student_accuracy / self.holdout_accuracy

    def sentence(self, student_accuracy: float | None) -> str:
        kept = self.retained(student_accuracy)
        if kept is not None:
            return (f"keeps about {kept:.1%} of the teacher's accuracy where it did not train (student "
                    f"{student_accuracy:.3f} on validation rows, teacher {self.holdout_accuracy:.3f} on the "
                    f"holdout's {self.holdout_rows:,} rows with references; the evaluation compares both on the "
                    "holdout)")
        seen = (f" (its {self.val_accuracy:.3f} on the validation rows is where it may have trained)"
                if self.val_accuracy is not None else "")
        return ("share of the teacher's accuracy kept: unknown, the teacher's accuracy where it did not train is "
                f"not known here{seen}; the evaluation on the holdout measures both")


@dataclass(frozen=True)
class Candidate:
    run_id: int
    family: str
    size: str
    lr: float | None
    status: str
    val_agreement: float | None
    val_accuracy: float | None
    retained: float | None  # the student's validation accuracy over the teacher's where it did not train
    single_p95_ms: float | None
    params: int | None
    epochs_done: int
    best_epoch: int | None
    seconds: float | None
    init: str | None  # what it started from, in words (core.ml.init.StudentStart's sentence)
    start_kind: str | None = None  # "config", "teacher layers", "pretrained", "pre-trained here"
    start_sha256: str | None = None  # the pretrained encoder's files, where it started from one
    char_ngrams: list[int] | None = None  # an n-gram student's character n-gram lengths, where the run set them
    val_labelled: int | None = None  # validation rows with a reference (what val_accuracy was measured on)
    n_val: int | None = None  # validation rows (what val_agreement was measured on)
    hidden_weight: float = 0.0  # the weight of the teacher's hidden states as a target (core.ml.layers), 0: none
    attention_weight: float = 0.0  # the weight of the teacher's attention as a target, 0: none

    @property
    def name(self) -> str:
        return (f"{self.family} {self.size}" + chars_words(self.char_ngrams)
                + (" pre-trained here" if self.start_kind == "pre-trained here" else "")
                + layer_words(self.hidden_weight, self.attention_weight))

    @property
    def kind(self) -> str:
        """The name without the family ("small + hidden states"): the size column of the CLI and the Train page."""
        return self.name.removeprefix(f"{self.family} ")

    @property
    def layered(self) -> bool:
        return self.hidden_weight > 0 or self.attention_weight > 0


def layer_words(hidden_weight: float | None, attention_weight: float | None) -> str:
    """" + hidden states" / " + attention" for a candidate that also learns from the teacher's layers, so it is
    told apart from the same size with soft labels alone wherever it is named."""
    return ((" + hidden states" if (hidden_weight or 0) > 0 else "")
            + (" + attention" if (attention_weight or 0) > 0 else ""))


def chars_words(char_ngrams: list[int] | None) -> str:
    """" chars 1,2,3,4" for a candidate that set its character n-gram lengths (else nothing), so two n-gram
    candidates of one size are told apart wherever they are named."""
    return " chars " + ",".join(map(str, char_ngrams)) if char_ngrams else ""


@dataclass(frozen=True)
class Recommendation:
    run_id: int | None
    reasons: list[str]
    candidates: list[Candidate] = field(default_factory=list)
    teacher_val_accuracy: float | None = None  # on the validation rows, where it may have trained
    skipped: list[str] = field(default_factory=list)  # "transformer small: skipped, 8 s of the budget left..."
    budget_line: str = ""  # "3 trained, 1 skipped, in 118 s of a 120 s budget"
    teacher_holdout_accuracy: float | None = None  # where it did not train: what "retained" divides by
    bought: list[str] = field(default_factory=list)  # what pre-training here bought against from scratch

    def as_dict(self) -> dict:
        return asdict(self)


def _candidate(run: TrainingRun, bar: TeacherBar) -> Candidate:
    m = run.metrics or {}
    acc = m.get("val_accuracy")
    seconds = ((run.finished_at - run.created_at).total_seconds()
               if run.finished_at and run.created_at else None)
    start = m.get("start") or {}
    return Candidate(run_id=run.id, family=run.family, size=run.size, lr=(run.config or {}).get("lr"),
                     status=run.status, val_agreement=m.get("val_agreement"), val_accuracy=acc,
                     retained=bar.retained(acc), single_p95_ms=m.get("single_p95_ms"), params=m.get("params"),
                     epochs_done=run.epochs_done, best_epoch=run.best_epoch, seconds=seconds, init=m.get("init"),
                     start_kind=start.get("kind") or ("pre-trained here" if (run.config or {}).get(
                         "domain_pretrain") else None), start_sha256=start.get("sha256"),
                     char_ngrams=(run.config or {}).get("char_ngrams"),
                     val_labelled=m.get("val_labelled"), n_val=m.get("n_val"),
                     hidden_weight=(run.config or {}).get("hidden_weight") or 0.0,
                     attention_weight=(run.config or {}).get("attention_weight") or 0.0)


def recommend(trained: list[TrainingRun], *, teacher_val_accuracy: float | None = None,
              teacher_holdout_accuracy: float | None = None, teacher_holdout_rows: int = 0,
              tolerance: float = AGREEMENT_TOLERANCE) -> Recommendation:
    """The student to evaluate: among finished runs within ``tolerance`` of the best validation score, the lowest
    single-request p95, then the fewest parameters; with the reasons in words.

    The score is validation accuracy against the references when every finished run has one (what the gate
    judges; a weak teacher's agreement can point the wrong way), else agreement with the teacher. The share of
    the teacher's accuracy kept is judged by ``TeacherBar`` (where the teacher did not train, or unknown)."""
    bar = TeacherBar(teacher_holdout_accuracy, teacher_holdout_rows, teacher_val_accuracy)
    cands = [_candidate(r, bar) for r in trained]
    done = [c for c in cands if c.status == "done" and c.val_agreement is not None]
    extra = {"teacher_holdout_accuracy": teacher_holdout_accuracy, "bought": pretraining_bought(cands)}
    if not done:
        return Recommendation(None, ["no candidate finished: look at the failed runs' errors"], cands,
                              teacher_val_accuracy, **extra)
    by_accuracy = all(c.val_accuracy is not None for c in done)
    what = "validation accuracy" if by_accuracy else "validation agreement with the teacher"

    def score(c: Candidate) -> float:
        return c.val_accuracy if by_accuracy else c.val_agreement

    best = max(score(c) for c in done)
    top = max(done, key=score)
    rows = (top.val_labelled if by_accuracy else top.n_val) or 0
    se = one_standard_error(best, rows)
    noise = (f", one standard error of the best score on {rows:,} validation rows: not told apart by it"
             if se > tolerance else "")
    tolerance = max(tolerance, se)
    close = [c for c in done if score(c) >= best - tolerance]
    pick = min(close, key=lambda c: (c.single_p95_ms if c.single_p95_ms is not None else float("inf"),
                                     c.params or 0))
    reasons = [f"{what} {score(pick):.3f}" + (" (the best of the search)" if score(pick) == best else
                                              f", within {tolerance:.3f} of the best ({best:.3f}{noise})")]
    if by_accuracy:
        reasons.append(f"agreement with the teacher {pick.val_agreement:.3f}")
        reasons.append(bar.sentence(pick.val_accuracy))
    if pick.init:
        reasons.append(f"started from: {pick.init}")
    others = [c for c in close if c.run_id != pick.run_id and c.single_p95_ms is not None]
    if pick.single_p95_ms is not None:
        faster = (f"; the next as good, run #{others[0].run_id} ({others[0].name}), takes "
                  f"{min(others, key=lambda c: c.single_p95_ms).single_p95_ms:.2f} ms") if others else ""
        reasons.append(f"single-request p95 {pick.single_p95_ms:.2f} ms{faster}")
    if pick.params is not None:
        reasons.append(f"{pick.params:,} parameters")
    dropped = [c for c in done if c not in close]
    if dropped:
        reasons.append(f"left out for lower {what.removeprefix('validation ')}: " + ", ".join(
            f"#{c.run_id} {c.name} ({score(c):.3f})" for c in dropped))
    return Recommendation(pick.run_id, reasons, cands, teacher_val_accuracy, **extra)


def one_standard_error(score: float, rows: int) -> float:
    """The standard error of a share ``score`` measured on ``rows`` validation rows (0 when unknown). Why: the
    one-standard-error rule (Breiman et al., CART; Hastie, Tibshirani and Friedman, ESL 7.10): candidates whose
    validation scores differ by less than the noise of the score itself are not told apart by it, so the search
    takes the cheapest of them rather than the one the noise put first. On the language-identification benchmark
    (1,058 validation rows at 0.87) one standard error is 0.010, twice the fixed 0.005."""
    return float(np.sqrt(score * (1 - score) / rows)) if rows > 0 else 0.0


def pretraining_bought(cands: list[Candidate]) -> list[str]:
    """For each finished candidate pre-trained here: its validation accuracy and agreement against the finished
    from-scratch candidate of the same family and size (where both ran), in words."""
    done = [c for c in cands if c.status == "done" and c.val_agreement is not None]
    out = []
    for pre in (c for c in done if c.start_kind == "pre-trained here"):
        twins = [c for c in done if c.family == pre.family and c.size == pre.size and not c.layered
                 and c.start_kind in ("config", "teacher layers", None)]
        if not twins:
            out.append(f"#{pre.run_id} {pre.name}: no finished {pre.family} {pre.size} from scratch to compare with")
            continue
        twin = twins[0]
        parts = [f"agreement {pre.val_agreement:.3f} vs {twin.val_agreement:.3f} "
                 f"({pre.val_agreement - twin.val_agreement:+.3f})"]
        if pre.val_accuracy is not None and twin.val_accuracy is not None:
            parts.insert(0, f"accuracy {pre.val_accuracy:.3f} vs {twin.val_accuracy:.3f} "
                            f"({pre.val_accuracy - twin.val_accuracy:+.3f})")
        out.append(f"pre-training here (#{pre.run_id}) against the same {pre.family} {pre.size} without it "
                   f"(#{twin.run_id}), on validation: " + ", ".join(parts))
    return out


def latest_search(session: Session, *, project_id: int) -> Job | None:
    return session.exec(select(Job).where(Job.project_id == project_id, Job.kind == JOB_KIND)
                        .order_by(col(Job.id).desc()).limit(1)).first()


def search_recommendation(session: Session, *, job: Job) -> Recommendation:
    """The recommendation over the runs a search job has trained so far (recomputed from the database)."""
    done = jobs.result_as(job, SearchResult) if job.status == "done" else None
    ids = (done.runs if done else None) or _runs_so_far(session, job)
    trained = [session.get(TrainingRun, i) for i in ids]
    rec = recommend([r for r in trained if r is not None],
                    teacher_val_accuracy=done.teacher_val_accuracy if done else None,
                    teacher_holdout_accuracy=done.teacher_holdout_accuracy if done else None,
                    teacher_holdout_rows=done.teacher_holdout_rows if done else 0)
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


def teacher_holdout_accuracy(session: Session, *, project: Project, teacher_run_id: int) -> tuple[float | None, int]:
    """(the teacher's accuracy on the holdout's rows with references, how many rows): from its stored outputs
    where they cover the holdout, else a local teacher answers them now; (None, 0) where neither can. Only the
    teacher is scored here (one figure for every candidate): no student ever sees the holdout in training."""
    from core.data import holdout  # lazy: datasketch and scipy, only for the search job

    held = holdout.holdout_rows(session, project_id=project.id)
    if held is None or "reference" not in held.columns:
        return None, 0
    held = held[held["reference"].notna() & (held["reference"].astype(str) != "")]
    teacher_run = session.get(TeacherRun, teacher_run_id)
    stored = teacher_runs.load_outputs(session, teacher_run).astype({"id": str}).drop_duplicates("id")
    answers = held["id"].astype(str).map(stored.set_index("id")["label"]) if "label" in stored.columns else None
    if answers is not None and answers.notna().all() and len(held):
        said = answers.astype(str).to_numpy()
    elif teacher_run.adapter == "local" and len(held):
        said = _local_answers(teacher_run, held["text"].astype(str).tolist())
    else:
        return None, 0
    return float((said == held["reference"].astype(str).to_numpy()).mean()), len(held)


def _local_answers(teacher_run: TeacherRun, texts: list[str]):
    from core.teacher.config import LocalConfig, read_config  # lazy: the local teacher imports torch
    from core.teacher.local import LocalAdapter

    config = read_config(teacher_run)
    assert isinstance(config, LocalConfig)  # the adapter column said so, and read_config checked it
    adapter = LocalAdapter(model_files.of_run(teacher_run), batch_size=config.batch_size or 64,
                           device=config.device)
    probs = adapter.predict_proba(texts)
    return np.array([adapter.labels[i] for i in probs.argmax(axis=1)], dtype=object).astype(str)


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
        held_acc, held_rows = teacher_holdout_accuracy(s, project=project, teacher_run_id=params.teacher_run_id)
    trained, skipped = [], []
    for i, cand in enumerate(plan):
        left = budget - (time.monotonic() - started)
        name = (f"{cand['family']} {cand['size']}" + chars_words(cand.get("char_ngrams"))
                + (" pre-trained here" if cand.get("domain_pretrain") else "")
                + layer_words(cand.get("hidden_weight"), cand.get("attention_weight"))
                + (f" lr {cand['lr']:g}" if cand.get("lr") else ""))
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
        rec = recommend([s.get(TrainingRun, i) for i in trained], teacher_val_accuracy=teacher_acc,
                        teacher_holdout_accuracy=held_acc, teacher_holdout_rows=held_rows)
    elapsed = round(time.monotonic() - started, 1)
    over = f", {elapsed - budget:.0f} s over it" if elapsed > budget else ""
    ctx.progress(1.0, f"{len(trained)} candidates trained, {len(skipped)} skipped, in {elapsed:.0f} s of a "
                      f"{budget:.0f} s budget{over}; recommended run #{rec.run_id}", force=True)
    return SearchResult(runs=trained, skipped=skipped, budget_s=budget, elapsed_s=elapsed,
                        teacher_val_accuracy=teacher_acc, recommended_run=rec.run_id, reasons=rec.reasons,
                        teacher_holdout_accuracy=held_acc, teacher_holdout_rows=held_rows)
