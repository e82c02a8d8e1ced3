"""Intermediate-layer distillation against soft labels alone, in the same run, on real data.

The data set, the project and its gate are bench_real_data.py's (the English ChatterBot corpus, its fixed-seed
20 % test split imported as the holdout). A 4-layer BERT teacher (4x256) is trained from scratch here and run
through the local teacher adapter; then transformer students are trained through the product's training runs
(core.training.runs, the same job the CLI runs), each pair with the same seed and settings, once with soft labels
alone and once with the hidden-state and/or attention losses of core.ml.layers added. Every student is scored on
the holdout: accuracy against the corpus's labels and agreement with the teacher.

    .venv/bin/python benchmarks/bench_distill_layers.py [--teacher-epochs 12] [--teacher-dir DIR] [--epochs 20]
                                  [--seeds 1234,7] [--sizes tiny,half-teacher] [--threads 1] [--quick]

``--teacher-dir`` keeps the trained teacher there and reuses it on the next run (the teacher takes the longest).

``--quick`` keeps six topics, a tiny teacher and one-epoch students: a smoke run, not figures.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_real_data, run as a script or imported by a test

from bench_real_data import csv, figure, load_corpus, setup, split  # noqa: E402

# (label, size, extra settings): soft labels alone first, then the layer losses, for each student size.
VARIANTS = [
    ("tiny, soft labels alone", "tiny", {}),
    ("tiny, + hidden states", "tiny", {"hidden_weight": 1.0}),
    ("tiny, + attention", "tiny", {"attention_weight": 1.0}),
    ("tiny, + hidden + attention", "tiny", {"hidden_weight": 1.0, "attention_weight": 1.0}),
    ("half-teacher, soft labels alone", "half-teacher", {}),
    ("half-teacher, + hidden + attention", "half-teacher", {"hidden_weight": 1.0, "attention_weight": 1.0}),
]
QUICK_VARIANTS = [VARIANTS[0], VARIANTS[3]]


def holdout_scores(student, texts: list[str], labels: list[str], teacher_labels: list[str]) -> tuple[float, float]:
    """(accuracy against the corpus's labels, agreement with the teacher) on the holdout."""
    predicted = student.predict(texts)
    n = len(texts)
    return (sum(p == y for p, y in zip(predicted, labels, strict=True)) / n,
            sum(p == t for p, t in zip(predicted, teacher_labels, strict=True)) / n)


def train_variant(session, engine, *, dana, project, teacher_run: int, size: str, extra: dict, seed: int,
                  epochs: int):
    from core.store import jobs
    from core.training import runs

    config = {"family": "transformer", "size": size, "epochs": epochs, "patience": epochs, "seed": seed,
              "max_length": 64, **extra}
    run, job = runs.start_training(session, actor=dana, project=project, teacher_run_id=teacher_run, config=config)
    started = time.monotonic()
    jobs.result_or_raise(jobs.run(job.id, engine=engine))
    seconds = time.monotonic() - started
    session.expire_all()
    run = runs.get_run(session, run.id)
    return run, runs.load_student(session, run), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher-epochs", type=int, default=12)
    parser.add_argument("--teacher-dir", type=Path,
                        help="keep the trained teacher here, and reuse the one already there (same data)")
    parser.add_argument("--teacher-size", default="teacher-4x256")
    parser.add_argument("--epochs", type=int, default=20, help="epochs of every student (no early stop)")
    parser.add_argument("--seeds", default="1234,7", help="student seeds, comma-separated (same for every variant)")
    parser.add_argument("--sizes", default="tiny,half-teacher", help="student sizes to compare, comma-separated")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads for everything (1: steadier figures on a shared machine)")
    parser.add_argument("--quick", action="store_true", help="six topics, tiny teacher, one-epoch students")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    from core.demo.teacher import train_teacher
    from core.store import jobs
    from core.teacher import runs as teacher_runs
    from core.teacher.local import LocalAdapter

    df = load_corpus()
    variants = [v for v in VARIANTS if v[1] in args.sizes.split(",")]
    if args.quick:
        keep = df["topic"].value_counts().index[:6]
        df = df[df["topic"].isin(keep)].groupby("topic", group_keys=False).head(30).reset_index(drop=True)
        args.teacher_size, args.teacher_epochs, args.epochs, args.seeds = "teacher", 1, 1, "1234"
        variants = QUICK_VARIANTS
    seeds = [int(s) for s in args.seeds.split(",")]
    train, test = split(df)
    print(f"ChatterBot corpus (English): {len(df):,} utterances, {df['topic'].nunique()} topics; "
          f"{len(train):,} to train on, {len(test):,} in the imported test split (the holdout)")

    workdir = Path(tempfile.mkdtemp(prefix="bench-layers-"))
    engine, session, project, dana = setup(workdir)
    dataset_id, train = _import(session, dana=dana, project=project, train=train, test=test)
    teacher_dir = args.teacher_dir or workdir / "teacher"
    if not (teacher_dir / "config.json").is_file():
        teacher = train_teacher(train, teacher_dir, size=args.teacher_size, epochs=args.teacher_epochs,
                                label_column="topic", eval_fraction=0.1, max_length=64, threads=args.threads)
        print(f"Teacher {args.teacher_size} trained in {teacher.seconds:.0f} s ({args.teacher_epochs} epochs at "
              f"most), saved at {teacher_dir}")
    job = teacher_runs.start_run(session, actor=dana, project=project, dataset_id=dataset_id, adapter="local",
                                 config={"model_dir": str(teacher_dir)})
    teacher_run = jobs.result_or_raise(jobs.run(job.id, engine=engine))["teacher_run"]
    texts, gold = test["text"].tolist(), test["topic"].tolist()
    teacher_labels = LocalAdapter(teacher_dir).predict(texts)
    t_acc = sum(p.label == y for p, y in zip(teacher_labels, gold, strict=True)) / len(texts)
    print(f"Teacher {teacher_dir.name}: holdout accuracy {t_acc:.3f}\n")

    scores: dict[str, list[tuple[float, float, float]]] = {}
    for seed in seeds:  # every variant once per seed, so a cut-short run still compares like with like
        for label, size, extra in variants:
            run, student, seconds = train_variant(session, engine, dana=dana, project=project,
                                                  teacher_run=teacher_run, size=size, extra=extra, seed=seed,
                                                  epochs=args.epochs)
            acc, agree = holdout_scores(student, texts, gold, [p.label for p in teacher_labels])
            scores.setdefault(label, []).append((acc, agree, seconds))
            print(f"    run #{run.id} {label}, seed {seed}: accuracy {acc:.3f}, agreement {agree:.3f}, "
                  f"{seconds:.0f} s; losses: {run.metrics.get('losses')}")
    _print_figures(scores, variants, t_acc)
    print(f"Load average {os.getloadavg()[0]:.1f} (1 min), {os.getloadavg()[1]:.1f} (5 min); "
          f"{args.threads} torch thread(s).")
    session.close()
    engine.dispose()
    shutil.rmtree(workdir, ignore_errors=True)


def _import(session, *, dana, project, train, test):
    """The training rows and the test split as the holdout: the dataset to train on and its rows (the teacher's)."""
    from core.data import datasets, holdout, importer

    mapping = {"id": "id", "text": "text", "reference": "answer", "slices": ["topic"]}
    dataset = importer.import_dataset(session, actor=dana, project=project, mapping=mapping, data=csv(train),
                                      filename="train.csv", name="Chat utterances (train)")
    imported = holdout.import_holdout(session, actor=dana, project=project, mapping=mapping, data=csv(test),
                                      filename="test.csv")
    if imported.leakage.leaked:  # near duplicates of test rows leave the training data, as a driver would drop them
        dataset, _ = holdout.drop_overlap(session, actor=dana, project=project, dataset_id=dataset.id)
        train = train[train["id"].isin(set(datasets.rows(session, dataset)["id"]))].reset_index(drop=True)
        print(f"Dropped {imported.leakage.leaked} training rows that nearly duplicate test rows: "
              f"{len(train):,} left (the teacher's too).")
    return dataset.id, train


def _print_figures(scores: dict, variants: list, t_acc: float) -> None:
    """Mean over seeds per variant, and each layered variant against soft labels alone for the same size."""
    def mean(label: str, k: int) -> float:
        return sum(s[k] for s in scores[label]) / len(scores[label])

    print("\nHoldout figures (mean over seeds):")
    figure("teacher accuracy", t_acc, "x")
    baseline: dict[str, str] = {}
    for label, size, extra in variants:
        baseline.setdefault(size, label)
        figure(f"{label}: accuracy", mean(label, 0), "x")
        figure(f"{label}: agreement", mean(label, 1), "x")
        figure(f"{label}: training time", mean(label, 2) * 1000, "ms")
        if extra:
            base = baseline[size]
            figure(f"{label}: accuracy / soft alone", mean(label, 0) / max(mean(base, 0), 1e-9), "x")
            figure(f"{label}: agreement / soft alone", mean(label, 1) / max(mean(base, 1), 1e-9), "x")
            figure(f"{label}: time / soft alone", mean(label, 2) / max(mean(base, 2), 1e-9), "x")


if __name__ == "__main__":
    main()
