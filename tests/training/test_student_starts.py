"""Students that start from something (issue 20): a team's encoder directory, checked and named by its hash
through the run, the search, the CLI and the decision record; and pre-training here on the project's texts, where
no holdout text ever reaches a masked-language-model batch."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from encoder_helpers import save_tiny_encoder, searched
from eval_helpers import teacher_run_with_holdout, ticket_rows
from sqlmodel import func, select
from teacher_helpers import routing

from core.data import holdout
from core.decision import record
from core.domain.errors import InvalidInput
from core.ml import build, init, loop, pretrain
from core.store import artifacts, audit, jobs
from core.store.models import Dataset, Job, TrainingRun
from core.training import pool, runs, search

QUICK = {"family": "transformer", "epochs": 1, "batch_size": 16, "max_length": 32}


def _train(session, engine, demo, teacher, config) -> TrainingRun:
    run, job = runs.start_training(session, actor=demo["dana"], project=routing(session),
                                   teacher_run_id=teacher.id, config=config)
    done = jobs.run(job.id, engine=engine)
    assert done.status == "done", done.error
    session.expire_all()
    run = runs.get_run(session, run.id)
    assert done.result["started_from"] == run.metrics["init"]  # the job's result says it too
    return run


def test_a_run_from_the_teams_encoder_records_the_directory_and_its_hash_everywhere(
        session, engine, demo, tmp_path):
    project = routing(session)
    teacher = teacher_run_with_holdout(session, actor=demo["dana"], project=project, tmp_path=tmp_path)
    path = save_tiny_encoder(tmp_path / "encoder", texts=ticket_rows()["text"].tolist())
    sha = init.check_encoder(str(path)).sha256
    run = _train(session, engine, demo, teacher, {**QUICK, "student_init": str(path)})
    start = run.metrics["start"]
    assert run.size == "pretrained" and start["kind"] == "pretrained"
    assert start["directory"] == str(path.resolve()) and start["sha256"] == sha
    assert run.metrics["init"].startswith(f"pretrained encoder {path.resolve()} (bert, 2 layers × 32, sha256 "
                                          f"{sha[:12]}")
    assert run.metrics["tokenizer"] == f"the encoder's own: {path}"
    [started], _ = audit.list_events(session, project_id=project.id, action="training.start")
    assert json.loads(started.payload)["started_from"]["sha256"] == sha
    [submitted], _ = audit.list_events(session, project_id=project.id, action="training.submit")
    assert json.loads(submitted.payload)["student_init_sha256"] == sha
    markdown = record.to_markdown(record.gather(session, actor=demo["dana"], project=project))
    assert sha in markdown and "started from" in markdown
    assert [c.started_from for c in runs.compare_runs(session, project_id=project.id)] == [run.metrics["init"]]


def test_a_bad_encoder_directory_is_refused_before_any_run_or_job_is_queued(session, engine, demo, tmp_path):
    project = routing(session)
    teacher = teacher_run_with_holdout(session, actor=demo["dana"], project=project, tmp_path=tmp_path)
    (tmp_path / "empty").mkdir()
    count = lambda model: session.exec(select(func.count()).select_from(model)).one()  # noqa: E731
    before = (count(TrainingRun), count(Job))
    with pytest.raises(InvalidInput, match="has no config.json"):
        runs.start_training(session, actor=demo["dana"], project=project, teacher_run_id=teacher.id,
                            config={**QUICK, "student_init": str(tmp_path / "empty")})
    with pytest.raises(InvalidInput, match="is not a directory"):
        search.start_search(session, actor=demo["dana"], project=project, teacher_run_id=teacher.id,
                            student_init=str(tmp_path / "nowhere"))
    session.rollback()
    assert (count(TrainingRun), count(Job)) == before


def _production_log_with_holdout_texts(session, demo, project) -> list[str]:
    """A production log that repeats a holdout text under another id, and a near copy of another: the attack."""
    held = holdout.holdout_rows(session, project_id=project.id)
    exact, near = held["text"].iloc[0], held["text"].iloc[1]
    df = pd.DataFrame({"id": ["P1", "P2", "P3"], "text": [exact.upper(), f"{near} today", "a new production text"]})
    art = artifacts.store_table(session, project=project, actor=demo["dana"], df=df, kind="production")
    session.add(Dataset(project_id=project.id, name="production log", purpose="production", artifact_id=art.id,
                        operation="import", n_rows=len(df), created_by=demo["dana"].id,
                        mapping={"id": "id", "text": "text"}))
    session.commit()
    return held["text"].astype(str).tolist()


def test_no_holdout_text_reaches_a_pretraining_batch_and_pretraining_stays_inside_the_budget(
        session, engine, demo, tmp_path, monkeypatch):
    project = routing(session)
    teacher = teacher_run_with_holdout(session, actor=demo["dana"], project=project, tmp_path=tmp_path)
    held_texts = _production_log_with_holdout_texts(session, demo, project)
    corpus = pool.pretraining_texts(session, project=project)
    assert corpus.holdout_by_text >= 2 and corpus.holdout_by_id == len(held_texts)
    assert "a new production text" in corpus.texts
    batches: list[list[int]] = []
    real = pretrain.collate

    def spy(rows, pad_id):
        batches.extend(rows)
        return real(rows, pad_id)

    monkeypatch.setattr(pretrain, "collate", spy)
    run = _train(session, engine, demo, teacher, {**QUICK, "size": "tiny", "domain_pretrain": True,
                                                  "pretrain_steps": 15, "max_seconds": 600})
    tok = build.load_tokenizer(runs.checkpoint_path(run) / "start")
    seen = {tok.decode(r, skip_special_tokens=True) for r in batches}
    held = {tok.decode(tok(t, truncation=True, max_length=32)["input_ids"], skip_special_tokens=True)
            for t in held_texts}
    assert len(seen) == len(corpus.texts) and not seen & held  # every text reached a batch, no holdout one
    start = run.metrics["start"]
    assert start["kind"] == "pre-trained here" and start["pretrain_texts"] == len(corpus.texts)
    assert start["pretrain_steps"] == 15 and "15 steps" in run.metrics["init"]
    # the distillation got what pre-training left of the run's 600 s
    fit_limit = loop.read_state(runs.checkpoint_path(run) / f"epoch-{run.best_epoch}")["config"]["max_seconds"]
    assert fit_limit == pytest.approx(600 - start["pretrain_seconds"])


def test_the_search_says_what_pretraining_here_bought_against_the_same_size_from_scratch(
        session, engine, demo, tmp_path, monkeypatch):
    monkeypatch.setattr(search, "GRID", {"ngram": [], "transformer": [
        {**QUICK, "size": "tiny"}, {**QUICK, "size": "tiny", "domain_pretrain": True, "pretrain_steps": 5}]})
    project = routing(session)
    teacher = teacher_run_with_holdout(session, actor=demo["dana"], project=project, tmp_path=tmp_path)
    done = searched(session, engine, actor=demo["dana"], project=project, teacher=teacher)
    rec = search.search_recommendation(session, job=done)
    scratch, pre = rec.candidates
    assert (scratch.start_kind, pre.start_kind) == ("config", "pre-trained here") and pre.name.endswith("here")
    [bought] = rec.bought
    assert bought.startswith(f"pre-training here (#{pre.run_id}) against the same transformer tiny without it "
                             f"(#{scratch.run_id}), on validation: accuracy {pre.val_accuracy:.3f} vs "
                             f"{scratch.val_accuracy:.3f}")
    assert any(r.startswith("started from: ") for r in rec.reasons)


def test_train_start_with_student_init_searches_the_encoder_as_a_candidate_and_prints_its_start(
        session, engine, demo, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from core.cli import cli

    monkeypatch.setattr(search, "GRID", {"ngram": [{"family": "ngram", "size": "tiny", "epochs": 2}],
                                         "transformer": [{**QUICK, "size": "tiny", "domain_pretrain": True}]})
    project = routing(session)
    teacher = teacher_run_with_holdout(session, actor=demo["dana"], project=project, tmp_path=tmp_path)
    path = save_tiny_encoder(tmp_path / "encoder", texts=ticket_rows()["text"].tolist())
    plan = search.candidates(student_init=str(path))
    assert [c.get("size") for c in plan] == ["tiny", "pretrained", "tiny"]  # the team's encoder is tried first
    monkeypatch.setattr(search, "GRID", {**search.GRID, "transformer": []})
    result = CliRunner().invoke(cli, ["--as", "dana", "train", "start", project.name, "--teacher-run",
                                      str(teacher.id), "--budget", "300", "--epochs", "1", "--student-init",
                                      str(path)])
    assert result.exit_code == 0, result.output
    assert "Search of 2 candidates (ngram and transformer)" in result.stdout
    assert "started from: pretrained encoder" in result.stdout and "sha256" in result.stdout
    assert "keeps about" in result.stdout  # the teacher's stored holdout answers set the bar
