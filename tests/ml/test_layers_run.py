"""Intermediate-layer distillation through the product: `stillroom train start --hidden-weight --attention-weight`
against a local transformers teacher, the losses in the run's result, the CLI's output and the decision record."""

from __future__ import annotations

from click.testing import CliRunner
from eval_helpers import gated_routing, ticket_rows
from serve_helpers import local_teacher_run
from sqlmodel import select
from teacher_helpers import save_tiny_classifier

from core.decision import record
from core.store.models import TeacherRun, TrainingRun
from core.training import runs


def test_a_run_with_layer_weights_reports_its_losses_in_its_result_the_cli_and_the_record(session, engine, demo,
                                                                                           tmp_path):
    from core.cli import cli

    project = gated_routing(session, demo=demo, tmp_path=tmp_path)
    imported = session.exec(select(TeacherRun).where(TeacherRun.project_id == project.id)).one()
    model_dir = save_tiny_classifier(tmp_path / "teacher", texts=ticket_rows()["text"].tolist())
    teacher = local_teacher_run(session, file_run=imported, model_dir=model_dir)
    args = ["--as", "dana", "train", "start", project.name, "--teacher-run", str(teacher.id), "--family",
            "transformer", "--epochs", "1", "--batch-size", "64"]

    refused = CliRunner().invoke(cli, [*args, "--hidden-weight", "-1"])
    assert refused.exit_code != 0 and "Hidden-state weight must be at least 0 (you gave -1.0)." in refused.stderr
    assert session.exec(select(TrainingRun)).all() == []  # a refusal changes nothing

    done = CliRunner().invoke(cli, [*args, "--hidden-weight", "1", "--attention-weight", "2"])
    assert done.exit_code == 0, done.output
    losses = ("soft labels (T 2, α 0.5) + hidden states (weight 1; embeddings → embeddings, student layer 1 ← "
              "teacher layer 1) + attention (weight 2; student layer 1 ← teacher layer 1)")
    assert f"Losses: {losses}." in done.stdout
    session.expire_all()
    run = runs.get_run(session, session.exec(select(TrainingRun.id)).one())
    assert run.status == "done" and run.config["hidden_weight"] == 1.0 and run.metrics["losses"] == losses
    training = next(s for s in record.gather(session, actor=demo["sam"], project=project).sections
                    if s.title == "Training runs")
    assert f"Run #{run.id} trained with {losses}." in training.lines
