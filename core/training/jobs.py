"""The "train" job: distils one TrainingRun, recording its loss curve and progress as it goes.

Run by ``core.store.jobs.run`` (the CLI, with a terminal bar) or in a detached
process (the app, which polls the run and its points). Running the job again
after a crash resumes from the run's last checkpoint.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from sqlmodel import Session, col, delete, select

from core.domain.errors import InvalidInput
from core.domain.jobs import TrainParams, TrainResult
from core.ml import init
from core.ml.config import TrainConfig
from core.store import audit, vouched
from core.store.artifacts import data_dir, register
from core.store.jobs import JobContext, handler
from core.store.models import Job, Project, TrainingPoint, TrainingRun, User, utcnow
from core.training import checkpoints, pool, runs

# Share of the progress bar for the epochs; the rest is measuring and recording the best checkpoint.
TRAIN_SHARE = 0.95


@handler(runs.JOB_KIND, params=TrainParams, result=TrainResult)
def train(ctx: JobContext) -> TrainResult:
    from core.ml import loop, students  # lazy: imports torch

    run_id = ctx.read(TrainParams).run_id
    with Session(ctx.engine, expire_on_commit=False) as s:
        run = s.get(TrainingRun, run_id)
        if run is None or run.project_id != ctx.project_id:
            raise InvalidInput(f"job #{ctx.job_id} names no training run #{run_id} of its project.", field="run")
        if run.status == "done":
            raise InvalidInput(f"training run #{run_id} has already finished: start a new run instead.", field="run")
        actor_id = s.get(Job, ctx.job_id).created_by
    try:
        cfg = TrainConfig(**run.config)
        data, tokenizer_dir, resumed, encoder = _start(ctx, run_id, actor_id, cfg)
        out_dir = runs.checkpoint_path(run)
        ctx.progress(TRAIN_SHARE * resumed / cfg.epochs,
                     f"resuming after epoch {resumed}" if resumed else "starting", force=True)
        start_dir, fit_cfg = (None, cfg) if resumed else _prepare_start(ctx, run_id, cfg, tokenizer_dir=tokenizer_dir,
                                                                         encoder=encoder, out_dir=out_dir)
        result = loop.fit(
            data, fit_cfg, out_dir=out_dir,
            new_student=lambda: students.new_student(cfg, labels=data.labels, texts=data.texts,
                                                     tokenizer_dir=tokenizer_dir, start_dir=start_dir),
            on_step=lambda r: _record_step(ctx, run_id, r, cfg),
            on_epoch=lambda r: _record_epoch(ctx, run_id, r, cfg),
            teacher_dir=tokenizer_dir,  # a local transformers teacher can teach its layers too (core.ml.layers)
        )
        return _finish(ctx, run_id, actor_id, result, data, cfg)
    except BaseException as exc:
        _fail(ctx, run_id, actor_id, exc)
        raise


def _start(ctx: JobContext, run_id: int, actor_id: int, cfg: TrainConfig):
    """Check the rules again, load the rows, line the curve up with the checkpoints, mark the run running."""
    from core.ml import loop, students  # lazy: imports torch

    with Session(ctx.engine, expire_on_commit=False) as s:
        run, actor = s.get(TrainingRun, run_id), vouched.one(s, User, actor_id)
        project = s.get(Project, run.project_id)
        gate_version = runs.require_can_train(s, actor=actor, project=project)
        teacher_run, teacher_filter = pool.teacher_source(s, project=project, teacher_run_id=run.teacher_run_id,
                                                          filter_id=run.teacher_filter_id)
        ctx.progress(0.0, "loading rows", force=True)
        data, stats = pool.training_rows(s, project=project, teacher_run=teacher_run, teacher_filter=teacher_filter)
        tokenizer_dir = runs.teacher_tokenizer_dir(teacher_run) if cfg.family == "transformer" else None
        checkpoints.restore(run)  # from the artifact store, when the last epochs ran on another host
        found = loop.checkpoints(runs.checkpoint_path(run))
        resumed = max(found) if found else 0
        # The team's encoder is checked and hashed before anything runs, so the record names the very files.
        encoder = init.check_encoder(cfg.student_init) if cfg.student_init and not resumed else None
        _align_points(s, run, loop.read_state(found[resumed]) if found else None)
        run.status, run.gate_version_id, run.job_id = "running", gate_version.id, ctx.job_id
        run.metrics = {**{k: v for k, v in (run.metrics or {}).items() if k != "error"}, "rows": asdict(stats),
                       "tokenizer": _tokenizer_source(cfg, tokenizer_dir)}
        if not resumed:
            start = init.planned_start(family=cfg.family, plan=students.init_plan(cfg, tokenizer_dir), encoder=encoder,
                                       domain_pretrain=cfg.domain_pretrain)
            run.metrics = {**run.metrics, "init": start.sentence or None, "start": asdict(start)}
        s.add(run)
        audit.record(s, actor=actor, action="training.start", entity="training_run", entity_id=run.id,
                     project_id=project.id, payload={"job": ctx.job_id, "gate_version": gate_version.version,
                                                     "resumed_after_epoch": resumed, "rows": stats.rows,
                                                     "started_from": run.metrics.get("start")})
        s.commit()
    return data, tokenizer_dir, resumed, encoder


def _prepare_start(ctx: JobContext, run_id: int, cfg: TrainConfig, *, tokenizer_dir, encoder, out_dir):
    """(the directory the student starts from, the settings to distil with): the team's encoder as it is, or,
    with ``domain_pretrain``, pre-trained here first on the project's texts in its share of the time budget (the
    distillation then gets what is left)."""
    from core.ml import pretrain  # lazy: imports torch

    if not cfg.domain_pretrain:
        return (encoder.path if encoder else None), cfg
    start_dir = Path(out_dir) / "start"
    report = pretrain.read_report(start_dir)  # a crash after pre-training keeps it
    if report is None:
        with Session(ctx.engine, expire_on_commit=False) as s:
            run = s.get(TrainingRun, run_id)
            corpus = pool.pretraining_texts(s, project=s.get(Project, run.project_id))
        ctx.progress(0.0, f"pre-training on {len(corpus.texts):,} of the project's texts", force=True)
        enc_dir = encoder.path if encoder else None
        model_tok = pretrain.tokenizer_for(cfg, encoder_dir=enc_dir, teacher_dir=tokenizer_dir, texts=corpus.texts)
        model = pretrain.mlm_model(cfg, vocab_size=len(model_tok), encoder_dir=enc_dir, teacher_dir=tokenizer_dir)
        budget = cfg.max_seconds * cfg.pretrain_share if cfg.max_seconds else None
        report = pretrain.pretrain(model, model_tok, corpus.texts, out_dir=start_dir, cfg=cfg, max_seconds=budget)
        if cfg.max_seconds:
            cfg = cfg.model_copy(update={"max_seconds": max(1.0, cfg.max_seconds - report.seconds)})
    with Session(ctx.engine) as s:
        run = s.get(TrainingRun, run_id)
        start = init.pretrained_start(encoder=encoder, report=report)
        run.metrics = {**run.metrics, "init": start.sentence, "start": asdict(start)}
        s.add(run)
        s.commit()
    return start_dir, cfg


def _tokenizer_source(cfg: TrainConfig, tokenizer_dir) -> str | None:
    if cfg.family != "transformer":
        return None
    if cfg.student_init:
        return f"the encoder's own: {cfg.student_init}"
    if cfg.domain_pretrain and not tokenizer_dir:
        return "trained on the pre-training texts"
    return f"teacher: {tokenizer_dir}" if tokenizer_dir else "trained on the training rows"


def _align_points(s: Session, run: TrainingRun, state: dict | None) -> None:
    """Drop points past the last checkpoint (that work is redone) and restore epoch points it holds."""
    last = state["epoch"] if state else 0
    s.exec(delete(TrainingPoint).where(col(TrainingPoint.run_id) == run.id, col(TrainingPoint.epoch) > last))
    have = set(s.exec(select(TrainingPoint.epoch).where(
        TrainingPoint.run_id == run.id, col(TrainingPoint.val_loss).is_not(None))).all())
    for h in (state or {}).get("history", []):
        if h["epoch"] not in have:
            s.add(TrainingPoint(run_id=run.id, epoch=h["epoch"], step=h["step"], train_loss=h["train_loss"],
                                val_loss=h["val_loss"], val_agreement=h["val_agreement"]))
    if state:
        run.epochs_done, run.best_epoch, run.best_val_loss = state["epoch"], state["best_epoch"], state["best_val_loss"]


def _record_step(ctx: JobContext, run_id: int, r, cfg: TrainConfig) -> None:
    with Session(ctx.engine) as s:
        s.add(TrainingPoint(run_id=run_id, epoch=r.epoch, step=r.step, train_loss=r.train_loss))
        s.commit()
    ctx.progress(TRAIN_SHARE * r.fraction, f"epoch {r.epoch}/{cfg.epochs} · loss {r.train_loss:.4f}")


def _record_epoch(ctx: JobContext, run_id: int, r, cfg: TrainConfig) -> None:
    with Session(ctx.engine) as s:
        s.add(TrainingPoint(run_id=run_id, epoch=r.epoch, step=r.step, train_loss=r.train_loss,
                            val_loss=r.val_loss, val_agreement=r.val_agreement))
        run = s.get(TrainingRun, run_id)
        run.epochs_done = r.epoch
        if r.improved:
            run.best_epoch, run.best_val_loss = r.epoch, r.val_loss
        run.metrics = {**run.metrics, "last_val_agreement": r.val_agreement, "last_val_loss": r.val_loss}
        checkpoints.keep(s, run, epoch=r.epoch)  # to the artifact store, so another host can resume from it
        s.add(run)
        s.commit()
    ctx.progress(TRAIN_SHARE * r.epoch / cfg.epochs, f"epoch {r.epoch}/{cfg.epochs} · val loss {r.val_loss:.4f} · "
                                       f"agreement {r.val_agreement:.3f}", force=True)


def _finish(ctx: JobContext, run_id: int, actor_id: int, result, data, cfg: TrainConfig) -> dict:
    """Measure the best checkpoint, record it as an artifact, and mark the run done."""
    from core.ml import lean, loop, students  # lazy: imports torch

    ctx.progress(TRAIN_SHARE, "measuring the best checkpoint", force=True)
    best = next(h for h in result.history if h.epoch == result.best_epoch)
    student = lean.load_for_inference(result.best_dir)  # the path evaluation and serving answer through
    _, val_idx = loop.split_validation(len(data.texts), fraction=cfg.val_fraction, seed=cfg.seed)
    speed = students.measure_speed(student, [data.texts[i] for i in val_idx[:512]], singles=100, rounds=1)
    predicted = _label_counts(student.predict([data.texts[i] for i in val_idx]), data.labels)
    taught = _label_counts([data.labels[j] for j in data.teacher_label[val_idx]], data.labels)
    with Session(ctx.engine, expire_on_commit=False) as s:
        run, actor = s.get(TrainingRun, run_id), vouched.one(s, User, actor_id)
        project = s.get(Project, run.project_id)
        art = register(s, project=project, actor=actor, path=result.best_dir, kind="student",
                       meta={"training_run": run.id, "family": run.family, "size": run.size, "epoch": best.epoch})
        run.metrics = {
            **run.metrics, "val_agreement": best.val_agreement, "val_accuracy": best.val_accuracy,
            "val_labelled": best.val_labelled, "n_train": result.n_train, "n_val": result.n_val,
            "params": student.n_params, "ms_per_example": speed.ms_per_example,
            "examples_per_s": speed.examples_per_s, "single_p95_ms": speed.single_p95_ms,
            "runtime": student.runtime, "lean_note": student.lean_note,  # what the speed above was measured on
            "val_predicted": predicted, "val_teacher_labels": taught,
            "stopped_early": result.stopped_early, "model_artifact_id": art.id, "model_sha256": art.sha256,
            "losses": result.losses.sentence,  # which losses trained it (soft labels, layers), and why
            "model_path": str(result.best_dir.resolve().relative_to(data_dir())),
        }
        run.status, run.finished_at = "done", utcnow()
        run.epochs_done, run.best_epoch, run.best_val_loss = result.epochs_done, best.epoch, best.val_loss
        s.add(run)
        audit.record(s, actor=actor, action="training.finish", entity="training_run", entity_id=run.id,
                     project_id=project.id, payload={"best_epoch": best.epoch, "val_agreement": best.val_agreement,
                                                     "val_accuracy": best.val_accuracy, "model_sha256": art.sha256,
                                                     "epochs_done": result.epochs_done,
                                                     "started_from": run.metrics.get("init")})
        s.commit()
    return TrainResult(training_run=run_id, best_epoch=best.epoch, val_agreement=best.val_agreement,
                       val_accuracy=best.val_accuracy, model_artifact=art.id, started_from=run.metrics.get("init"))


def _label_counts(labels: list[str], order: list[str]) -> dict[str, int]:
    """How often each label was given, every label of the run listed (zeros included)."""
    counts = dict.fromkeys(order, 0)
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
    return counts


def _fail(ctx: JobContext, run_id: int, actor_id: int, exc: BaseException) -> None:
    error = str(exc) or type(exc).__name__
    with Session(ctx.engine) as s:
        run, actor = s.get(TrainingRun, run_id), vouched.one(s, User, actor_id)
        run.status = "failed"
        run.metrics = {**run.metrics, "error": error}
        s.add(run)
        audit.record(s, actor=actor, action="training.fail", entity="training_run", entity_id=run.id,
                     project_id=run.project_id, payload={"error": error, "epochs_done": run.epochs_done})
        s.commit()
