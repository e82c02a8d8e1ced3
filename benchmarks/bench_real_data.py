"""Real data, the product's default flow: a teacher trained from scratch against the student the default search
recommends, scored on the user's own test split imported as the holdout.

The data set is the English part of the ChatterBot corpus (``chatterbot-corpus`` on PyPI, BSD licence): questions
and answers people wrote for 21 conversation topics. Each unique utterance is labelled with its topic (utterances
found under two topics and topics with fewer than 20 utterances are left out), and a fixed-seed 20 % split per topic
is the test split. Nothing is downloaded at run time: the package is installed with the ``bench`` extra.

Every step goes through core as a person would: a project, its gate, the training rows imported, the test split
imported as the holdout (core.data.holdout.import_holdout), a 4-layer BERT teacher trained from scratch here and run
through the local teacher adapter, the default training search over both families within its budget
(core.training.search), and the evaluation of the recommended student against the teacher on the holdout.

    .venv/bin/python benchmarks/bench_real_data.py [--budget 900] [--teacher-epochs 6] [--threads 1]
        [--init-pretrain-s 180] [--quick]

Students that start from something (issue 20), in the same run: the search's transformer "small" from scratch,
the same size pre-trained here (masked-language modelling on the project's own imported texts, the test split
left out), and a "pretrained" encoder of that size given as ``--student-init`` would be. No pretrained English
encoder ships in a package here, so the benchmark makes one: a BERT of the same size MLM-pre-trained for
``--init-pretrain-s`` seconds on other text, the docstrings of Python's standard library (read with ast, nothing
imported or downloaded), with its own tokenizer. Each is scored on validation and on the test split.

``--quick`` keeps six topics, a tiny teacher and one cheap candidate per family: a smoke run, not figures.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

MIN_PER_TOPIC = 20
QUICK_TRANSFORMER = {"family": "transformer", "size": "tiny", "epochs": 1, "batch_size": 16, "max_length": 32}
QUICK_GRID = {"ngram": [{"family": "ngram", "size": "tiny", "lr": 0.05, "batch_size": 16, "epochs": 3}],
              "transformer": [QUICK_TRANSFORMER, {**QUICK_TRANSFORMER, "domain_pretrain": True, "pretrain_steps": 5}]}


def docstring_sentences(limit: int) -> list[str]:
    """English sentences of 6 to 60 words from the docstrings of Python's standard library, in a fixed order:
    text from elsewhere than the task, read with ast (no module imported)."""
    import ast
    import re
    import sysconfig

    out: list[str] = []
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("**/*.py")):
        if "test" in path.parts or "site-packages" in path.parts:
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                doc = ast.get_docstring(node) or ""
                for part in re.split(r"(?<=[.!?])\s+|\n\s*\n", doc):
                    words = part.split()
                    if 6 <= len(words) <= 60 and part[:1].isupper():
                        out.append(" ".join(words))
        if len(out) >= limit:
            break
    return out[:limit]


def docstring_encoder(out_dir: Path, *, size: str, seconds: float, quick: bool) -> tuple[Path, str]:
    """A BERT of ``size`` pre-trained here by masked-language modelling on standard-library docstrings, saved with
    its tokenizer as a model directory a team could hand to --student-init; and a line saying how it was made."""
    from core.ml import build, pretrain
    from core.ml.config import TrainConfig

    texts = docstring_sentences(300 if quick else 40_000)
    cfg = TrainConfig(family="transformer", size=size, domain_pretrain=True, max_length=64,
                      pretrain_steps=5 if quick else 1_000_000, batch_size=32)
    tok = build.train_tokenizer(texts, max_length=64)
    model = pretrain.mlm_model(cfg, vocab_size=len(tok), encoder_dir=None, teacher_dir=None)
    report = pretrain.pretrain(model, tok, texts, out_dir=out_dir, cfg=cfg, max_seconds=seconds)
    return out_dir, (f"BERT {size} MLM-pre-trained here on {report.texts:,} standard-library docstring sentences "
                     f"for {report.steps:,} steps ({report.seconds:.0f} s), masked-token loss {report.first_loss:.2f} "
                     f"-> {report.last_loss:.2f}")


def load_corpus():
    """(text, topic) rows of the English ChatterBot corpus, one per unique utterance."""
    import chatterbot_corpus
    import pandas as pd
    import yaml

    base = Path(chatterbot_corpus.__file__).parent / "data" / "english"
    seen: dict[str, set[str]] = {}
    first: dict[str, str] = {}
    for path in sorted(glob.glob(str(base / "*.yml"))):
        topic = Path(path).stem
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        for conversation in doc.get("conversations") or []:
            for line in conversation:
                if isinstance(line, str) and line.strip():
                    key = " ".join(line.lower().split())
                    seen.setdefault(key, set()).add(topic)
                    first.setdefault(key, " ".join(line.split()))
    df = pd.DataFrame([(first[k], next(iter(t))) for k, t in seen.items() if len(t) == 1], columns=["text", "topic"])
    counts = df["topic"].value_counts()
    return df[df["topic"].isin(counts[counts >= MIN_PER_TOPIC].index)].reset_index(drop=True)


def split(df, *, seed: int = 7, by: str = "topic"):
    """A fixed-seed 20 % test split per value of ``by`` (the label), and the rest to train on; ids that never
    collide."""
    test = df.groupby(by, group_keys=False).sample(frac=0.2, random_state=seed)
    train = df.drop(test.index)
    train = train.assign(id=[f"train-{i:05d}" for i in range(len(train))], answer=train[by])
    test = test.assign(id=[f"test-{i:05d}" for i in range(len(test))], answer=test[by])
    return train.reset_index(drop=True), test.reset_index(drop=True)


def setup(workdir: Path, *, name: str = "Chatbot topics",
          description: str = "Route a chat message to its topic (ChatterBot corpus)."):
    """A fresh database in ``workdir`` with the demo's people, one project with its roles, qualified, its gate
    locked: (engine, session, project, the driver)."""
    from core.access import people, projects
    from core.cli.jobs import register_handlers
    from core.demo import seed as demo_mod
    from core.gate import gate
    from core.qualify import qualification
    from core.store import config, db

    register_handlers()  # the jobs this script runs in its own process
    os.environ["DATABASE_URL"] = f"sqlite:///{workdir / 'stillroom.db'}"
    os.environ["STILLROOM_DATA_DIR"] = str(workdir)
    config.get_settings.cache_clear()
    db.get_engine.cache_clear()
    engine = db.get_engine()
    db.init_db(engine)
    session = db.Session(engine, expire_on_commit=False)
    demo_mod.seed(session)
    admin = people.get_user(session, "admin")
    project = projects.create_project(session, actor=admin, name=name, description=description)
    for username, role in (("sam", "sponsor"), ("dana", "driver"), ("val", "validator"), ("oscar", "operator")):
        projects.assign_role(session, actor=admin, project=project, username=username, role=role)
    sam = people.get_user(session, "sam")
    qualification.record(session, actor=sam, project=project, inputs=demo_mod.ROUTING_QUALIFICATION,
                         verdict="proceed")
    spec = gate.template("cost-pressure", demo_mod.ROUTING_QUALIFICATION)
    gate.lock(session, actor=sam, project=project, spec=spec)
    return engine, session, project, people.get_user(session, "dana")


def csv(df) -> bytes:
    return df.to_csv(index=False).encode("utf-8")


def figure(label: str, value: float, unit: str) -> None:
    print(f"  {label:<48} {value:,.3f}{' ' + unit if unit == 'ms' else unit}")


def _done(rec, size: str, kinds: tuple[str, ...]):
    return next((c for c in rec.candidates if c.family == "transformer" and c.status == "done" and c.size == size
                 and c.start_kind in kinds), None)


def starts(session, rec, test, size: str) -> None:
    """From scratch against pre-trained here and against the pretrained encoder, the same size, same run: validation
    and test-split accuracy with their ratios to from scratch."""
    import numpy as np

    from core.training import runs

    scratch = _done(rec, size, ("config", "teacher layers"))
    if scratch is None:
        print(f"No finished transformer {size} from scratch to compare the starts with.")
        return
    print(f"\nStudents that start from something, transformer {size} (same run, ratios to from scratch):")
    truth, base = test["topic"].to_numpy(), None
    for label, c in (("from scratch", scratch), ("pre-trained here", _done(rec, size, ("pre-trained here",))),
                     ("pretrained encoder", _done(rec, "pretrained", ("pretrained",)))):
        if c is None:
            print(f"  {label:<20} not trained (skipped by the budget, or no encoder given)")
            continue
        student = runs.load_student(session, runs.get_run(session, c.run_id))
        test_acc = float((np.array(student.predict(test["text"].tolist())) == truth).mean())
        base = test_acc if c is scratch else base
        ratio = (f"; x{c.val_accuracy / scratch.val_accuracy:.3f} val, x{test_acc / base:.3f} test"
                 if c is not scratch and scratch.val_accuracy and base else "")
        print(f"  {label:<20} run #{c.run_id}: val accuracy {c.val_accuracy or 0:.3f}, agreement "
              f"{c.val_agreement or 0:.3f}, test accuracy {test_acc:.3f}, {c.epochs_done} epochs{ratio}")


def import_split(session, *, actor, project, train, test, label: str = "topic", train_answers: bool = True):
    """The training rows imported as a dataset and the test split as the holdout, near duplicates of test rows
    dropped from the training data as a driver would drop them: the dataset to distil from. Without
    ``train_answers`` the training rows go in as unlabelled text (id and text only): the student learns from the
    teacher alone."""
    from core.data import holdout, importer

    mapping = {"id": "id", "text": "text", "reference": "answer", "slices": [label]}
    rows, train_mapping = ((train, mapping) if train_answers
                           else (train[["id", "text"]], {"id": "id", "text": "text", "slices": []}))
    dataset = importer.import_dataset(session, actor=actor, project=project, mapping=train_mapping, data=csv(rows),
                                      filename="train.csv", name="Chat utterances (train)")
    imported = holdout.import_holdout(session, actor=actor, project=project, mapping=mapping, data=csv(test),
                                      filename="test.csv")
    print(imported.sentence())
    if imported.leakage.leaked:
        dataset, _ = holdout.drop_overlap(session, actor=actor, project=project, dataset_id=dataset.id)
        print(f"Dropped them: dataset #{dataset.id} keeps {dataset.n_rows:,} training rows.")
    return dataset


def search_and_recommend(session, engine, *, actor, project, teacher_run_id: int, budget_s: float,
                         student_init: str | None = None):
    """The default training search run here, its candidates, recommendation and what each start bought printed:
    (recommendation, seconds)."""
    from core.store import jobs
    from core.training import search

    started = time.monotonic()
    job = search.start_search(session, actor=actor, project=project, teacher_run_id=teacher_run_id,
                              budget_s=budget_s, student_init=student_init)
    done = jobs.run(job.id, engine=engine)
    search_s = time.monotonic() - started
    session.expire_all()
    rec = search.search_recommendation(session, job=done)
    print("\nCandidates of the default search (validation rows, taken from the training split):")
    for c in rec.candidates:
        print(f"    run #{c.run_id} {c.family:<11} {c.name.removeprefix(c.family + ' '):<12} lr {c.lr or 'default'}: "
              f"{c.status}, "
              f"{c.epochs_done} epochs, agreement {c.val_agreement or 0:.3f}, accuracy "
              f"{'n/a' if c.val_accuracy is None else f'{c.val_accuracy:.3f}'}, "
              f"p95 {c.single_p95_ms or 0:.2f} ms, {c.params or 0:,} params, started from: {c.init or 'config'}")
    for line in rec.skipped:
        print(f"    {line}")
    print(f"Recommended run #{rec.run_id}: {'; '.join(rec.reasons)}. {rec.budget_line}.")
    for line in rec.bought:
        print(f"  {line}")
    return rec, search_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=900.0, help="seconds for the default training search")
    parser.add_argument("--teacher-epochs", type=int, default=6)
    parser.add_argument("--teacher-size", default="teacher-4x256")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads for everything (1: steadier figures on a shared machine)")
    parser.add_argument("--init-pretrain-s", type=float, default=180.0,
                        help="seconds to MLM-pre-train the docstring encoder given as --student-init (0: none)")
    parser.add_argument("--quick", action="store_true", help="six topics, tiny teacher, tiny search: a smoke run")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)

    from core.data import datasets
    from core.demo.teacher import train_teacher
    from core.evaluation import runs as evaluations
    from core.store import jobs
    from core.teacher import runs as teacher_runs
    from core.training import search

    df = load_corpus()
    if args.quick:
        keep = df["topic"].value_counts().index[:6]
        df = df[df["topic"].isin(keep)].groupby("topic", group_keys=False).head(40).reset_index(drop=True)
        args.teacher_size, args.teacher_epochs, args.budget = "tiny", 1, 120
        search.GRID = QUICK_GRID
    train, test = split(df)
    print(f"ChatterBot corpus (English): {len(df):,} utterances, {df['topic'].nunique()} topics; "
          f"{len(train):,} to train on, {len(test):,} in the imported test split")

    workdir = Path(tempfile.mkdtemp(prefix="bench-real-"))
    engine, session, project, dana = setup(workdir)
    dataset = import_split(session, actor=dana, project=project, train=train, test=test)
    train = train[train["id"].isin(set(datasets.rows(session, dataset)["id"]))].reset_index(drop=True)  # teacher's

    started = time.monotonic()
    teacher = train_teacher(train, workdir / "teacher", size=args.teacher_size, epochs=args.teacher_epochs,
                            label_column="topic", eval_fraction=0.1, max_length=64, threads=args.threads)
    teacher_s = time.monotonic() - started
    job = teacher_runs.start_run(session, actor=dana, project=project, dataset_id=dataset.id, adapter="local",
                                 config={"model_dir": str(teacher.path)})
    teacher_run = jobs.result_or_raise(jobs.run(job.id, engine=engine))["teacher_run"]

    compare_size = "tiny" if args.quick else "small"
    encoder, made = None, ""
    if args.init_pretrain_s > 0:
        encoder, made = docstring_encoder(workdir / "docstring-encoder", size=compare_size,
                                          seconds=args.init_pretrain_s, quick=args.quick)
        print(f"Encoder given as --student-init: {made}.")

    rec, search_s = search_and_recommend(session, engine, actor=dana, project=project, teacher_run_id=teacher_run,
                                         budget_s=args.budget, student_init=str(encoder) if encoder else None)
    starts(session, rec, test, compare_size)

    job = evaluations.start_evaluation(session, actor=dana, project=project, training_run_id=rec.run_id)
    ev_id = jobs.result_or_raise(jobs.run(job.id, engine=engine))["evaluation"]
    session.expire_all()
    report = evaluations.load_report(session, evaluations.get_evaluation(session, project=project,
                                                                          evaluation_id=ev_id))
    s_acc, t_acc = report.student.accuracy, report.teacher.accuracy
    s_p95 = report.latency.student_figures.p95_ms
    t_p95 = report.latency.teacher.p95_ms if report.latency.teacher else None
    print(f"\nOn the imported test split ({len(test):,} utterances), evaluation #{ev_id}:")
    figure("teacher accuracy", t_acc, "x")
    figure("student accuracy (recommended run)", s_acc, "x")
    figure("accuracy retained (student / teacher)", s_acc / t_acc if t_acc else 0.0, "x")
    figure("teacher single-request p95", t_p95, "ms")
    figure("student single-request p95", s_p95, "ms")
    figure("p95 ratio teacher / student", t_p95 / s_p95 if s_p95 else 0.0, "x")
    figure("teacher training time", teacher_s * 1000, "ms")
    figure("default search time (all candidates)", search_s * 1000, "ms")
    goal = s_acc >= t_acc and s_p95 and t_p95 / s_p95 >= 20
    print(f"Goal (student at or above the teacher's accuracy at 20x lower p95): {'met' if goal else 'NOT met'}; "
          f"load average {os.getloadavg()[0]:.1f}.")
    print("Load average (1, 5, 15 min): " + ", ".join(f"{x:.1f}" for x in os.getloadavg()))
    session.close()
    engine.dispose()
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
