"""A teacher that is strong on its task, real data, the product's default flow: does the best transformer student
keep 98 % of the teacher's holdout accuracy at 5x lower p95 (lean path)?

Data: every ChatterBot folder of ``chatterbot-corpus`` 1.3.3 that bench_pretrained_teacher.py reads (13,483 unique
utterances, 25 languages, the folder the label), the same fixed-seed 20 % split per language imported as the
holdout. The task is language identification, where a transformer trained from scratch on these utterances is
strong (the English topics of bench_real_data.py are not: teachers trainable there reach 0.31-0.44).

Teacher: a 4x256 BERT trained from scratch here on the training rows and their corpus labels (after the near
duplicates of holdout rows are dropped), run through the local teacher adapter. "Strong" is shown: its holdout
accuracy, and (``--lingua``) that of lingua, a pretrained language identifier, on the same holdout in its own
process. Then the default training search (core.training.search, both families, its budget). The best
transformer candidate, the one the search's own rule picks among its transformer runs on validation rows only (the
holdout chooses nothing), is evaluated on the holdout by the product's evaluation: the student through its checked
ONNX export (the lean path), the teacher as the local adapter runs it, both timed on the same holdout sample. Every
other transformer run is measured as that evaluation measures a student (same holdout, references, teacher
answers and timing sample), so the teacher is answered and timed once.

In the same run: from scratch against pre-trained here (masked-language modelling on the project's texts) and
against the teacher's own layers (half-teacher); soft labels alone against + hidden states and + hidden states and
attention (core.ml.layers) for the best transformer candidate's settings, trained again with the same seed and
time limit where the search has no such twin.

    nice .venv/bin/python benchmarks/bench_strong_teacher.py [--budget 900] [--teacher-epochs 5]
        [--teacher-dir DIR] [--threads 1] [--lingua] [--quick]

``--teacher-dir`` keeps the trained teacher there and reuses it on the next run (same data, same split).
``--quick`` keeps four languages, 40 utterances each, a two-layer teacher and one cheap candidate per family: a
smoke run, not figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the other benchmarks' helpers, as a script or a test

from bench_pretrained_teacher import QUICK_LANGUAGES, in_own_process, load_corpus  # noqa: E402
from bench_real_data import QUICK_GRID, figure, import_split, search_and_recommend, setup, split  # noqa: E402

GOALS = {"retained": 0.98, "p95": 5.0}
TEACHER_LR = 5e-4  # core.ml.config.WIDE_LR, given explicitly: at the narrow sizes' 2e-3 the 4x256 diverged here
# The losses compared for the best transformer candidate's size and start: soft labels alone, + the teacher's
# hidden states, + hidden states and attention (hidden_weight, attention_weight).
LOSSES = ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0))
# The default grid's transformer kinds, each cheap: from scratch, pre-trained here, half-teacher, + hidden states.
QUICK_SEARCH = {**QUICK_GRID, "transformer": [*QUICK_GRID["transformer"],
                                              {**QUICK_GRID["transformer"][0], "size": "half-teacher"},
                                              {**QUICK_GRID["transformer"][0], "hidden_weight": 1.0}]}


def teacher(args, train, workdir: Path) -> tuple[Path, float, str]:
    """The teacher's model directory (trained here, or reused from ``--teacher-dir``), its training seconds and a
    line saying how."""
    from core.demo.teacher import train_teacher

    out = args.teacher_dir or workdir / "teacher"
    if (out / "config.json").is_file():
        made = json.loads((out / "teacher.json").read_text(encoding="utf-8"))
        return out, made["seconds"], (
            f"reused from {out} (trained there in {made['seconds']:.0f} s, {made['epochs']} epochs at most, best "
            f"epoch's held-out accuracy {made['accuracy']:.3f} on its own 10 % of the training rows)")
    done = train_teacher(train, out, size=args.teacher_size, epochs=args.teacher_epochs, label_column="language",
                         eval_fraction=0.1, max_length=64, threads=args.threads, lr=TEACHER_LR,
                         progress=lambda _, message: print(f"    teacher: {message}", flush=True)
                         if "held-out" in message else None)
    return out, done.seconds, (f"trained here in {done.seconds:.0f} s ({args.teacher_epochs} epochs at most, lr "
                               f"{TEACHER_LR:g}), best epoch's held-out accuracy {done.accuracy:.3f} (its own 10 % "
                               "of the training rows)")


def evaluate(session, engine, *, actor, project, run_id: int) -> dict:
    """The product's evaluation of one training run on the holdout: accuracies, agreement, both p95s, and the
    predictions (the teacher's answers to the holdout among them)."""
    from core.evaluation import runs as evaluations
    from core.store import jobs

    job = evaluations.start_evaluation(session, actor=actor, project=project, training_run_id=run_id)
    ev_id = jobs.result_or_raise(jobs.run(job.id, engine=engine))["evaluation"]
    session.expire_all()
    ev = evaluations.get_evaluation(session, project=project, evaluation_id=ev_id)
    report, preds = evaluations.load_report(session, ev), evaluations.load_predictions(session, ev)
    return {"evaluation": ev_id, "accuracy": report.student.accuracy, "teacher_accuracy": report.teacher.accuracy,
            "agreement": float((preds["student_label"] == preds["teacher_label"]).mean()),
            "p95": report.latency.student_figures.p95_ms, "p50": report.latency.student_figures.p50_ms,
            "teacher_p95": report.latency.teacher.p95_ms if report.latency.teacher else None,
            "teacher_p50": report.latency.teacher.p50_ms if report.latency.teacher else None, "predictions": preds}


def measure(session, *, run_id: int, scored: dict) -> dict:
    """Another run measured as the evaluation ``scored`` measured its student, without answering and timing the
    teacher again: the student through its lean path (core.training.runs.load_student), its answers to the same
    holdout against the same references and teacher answers, its p95 on the same timing sample."""
    import numpy as np

    from core.evaluation.jobs import measure_latency
    from core.evaluation.latency import timing_sample
    from core.training import runs

    preds = scored["predictions"]
    student = runs.load_student(session, runs.get_run(session, run_id))
    texts = preds["text"].astype(str).tolist()
    said = np.array(student.labels, dtype=object)[student.predict_proba(texts).argmax(axis=1)]
    return {"evaluation": None, "accuracy": float((said == preds["reference"].to_numpy(dtype=object)).mean()),
            "teacher_accuracy": scored["teacher_accuracy"],
            "agreement": float((said == preds["teacher_label"].to_numpy(dtype=object)).mean()),
            **{k.removesuffix("_ms"): v for k, v in measure_latency(student, None, timing_sample(texts))["student"]
               .items() if k in ("p50_ms", "p95_ms")},
            "teacher_p95": scored["teacher_p95"], "teacher_p50": scored["teacher_p50"]}


def retrain(session, engine, *, actor, project, like, extra: dict) -> int:
    """``like``'s run trained again through the product's training run, same settings, seed and time limit, with
    ``extra`` settings instead: its run id."""
    from core.store import jobs
    from core.training import runs

    base = runs.get_run(session, like.run_id)
    config = {k: v for k, v in (base.config or {}).items() if v is not None}
    run, job = runs.start_training(session, actor=actor, project=project, teacher_run_id=base.teacher_run_id,
                                   config={**config, **extra})
    jobs.result_or_raise(jobs.run(job.id, engine=engine))
    session.expire_all()
    return run.id


def rows(session, rec, evaluated: dict) -> list[dict]:
    """One row per evaluated transformer run: what it started from, its losses, its figures."""
    from core.training import runs, search

    out = []
    for run_id, ev in evaluated.items():
        run = runs.get_run(session, run_id)
        c = next((c for c in rec.candidates if c.run_id == run_id), None) or search.recommend([run]).candidates[0]
        out.append({"run": run_id, "name": c.name, "start": c.start_kind or "config", "size": c.size,
                    "weights": (c.hidden_weight, c.attention_weight), "searched": c in rec.candidates,
                    "losses": (run.metrics or {}).get("losses") or "?", "val": c.val_accuracy, "seconds": c.seconds,
                    "epochs": c.epochs_done, "params": c.params, **ev})
    return out


def print_table(table: list[dict], *, teacher_acc: float) -> None:
    print(f"\nTransformer candidates on the holdout (teacher {teacher_acc:.3f}); the best one through the product's "
          "evaluation, the others measured as it measures a student (the same holdout, teacher answers and timing "
          "sample; the student through its lean path, the teacher's p95 as the local adapter runs it); * trained "
          "after the search, the best one's settings with other losses:")
    print(f"  {'run':>5}  {'transformer':<34} {'val':>6} {'holdout':>7} {'kept':>7} {'agree':>6} {'p95 ms':>7} "
          f"{'teacher':>8} {'ratio':>6} {'train s':>7} {'ep':>3}  start; losses")
    for r in table:
        kept = r["accuracy"] / teacher_acc if teacher_acc else 0.0
        ratio = r["teacher_p95"] / r["p95"] if r["teacher_p95"] and r["p95"] else 0.0
        name = r["name"].removeprefix("transformer ") + ("" if r["searched"] else " *")
        print(f"  #{r['run']:>4}  {name:<34} {r['val'] or 0:>6.3f} {r['accuracy']:>7.3f} "
              f"{kept:>6.1%} {r['agreement']:>6.3f} {r['p95']:>7.2f} {r['teacher_p95'] or 0:>8.2f} {ratio:>5.1f}x "
              f"{r['seconds'] or 0:>7.0f} {r['epochs']:>3}  {r['start']}; {r['losses']}")


def print_comparisons(table: list[dict], *, best: dict) -> None:
    """From scratch against the other starts (same size where both ran; the teacher's layers against the best
    from-scratch size), and soft labels alone against the layer losses for the best one's size and start, as
    ratios of holdout accuracy and agreement."""
    plain = [r for r in table if r["weights"] == (0.0, 0.0)]
    scratch = {r["size"]: r for r in plain if r["start"] == "config"}
    print("\nSame run, ratios of holdout accuracy (and agreement with the teacher):")
    for pre in (r for r in plain if r["start"] == "pre-trained here"):
        _ratio(f"{pre['name']} / from scratch", pre, scratch.get(pre["size"]))
    top = max(scratch.values(), key=lambda r: r["val"] or 0.0, default=None)
    for layers in (r for r in plain if r["start"] == "teacher layers"):
        _ratio(f"{layers['name']} (teacher's layers) / {top['name'] if top else '?'} from scratch", layers, top)
    twins = [r for r in table if r["size"] == best["size"] and r["start"] == best["start"]]
    soft = next((r for r in twins if r["weights"] == (0.0, 0.0)), None)
    for r in (r for r in twins if r["weights"] != (0.0, 0.0)):
        _ratio(f"{r['name']} / soft labels alone", r, soft)


def _ratio(label: str, row: dict, base: dict | None) -> None:
    if base is None:
        print(f"  {label}: not both trained (skipped by the budget)")
        return
    figure(label, row["accuracy"] / max(base["accuracy"], 1e-9), "x")
    figure(f"{label}, agreement", row["agreement"] / max(base["agreement"], 1e-9), "x")


def print_goal(best: dict, *, teacher_acc: float) -> None:
    kept = best["accuracy"] / teacher_acc if teacher_acc else 0.0
    ratio = best["teacher_p95"] / best["p95"] if best["teacher_p95"] and best["p95"] else 0.0
    met = kept >= GOALS["retained"] and ratio >= GOALS["p95"]
    print(f"\nBest transformer candidate (chosen on validation): run #{best['run']} {best['name']}")
    figure("teacher holdout accuracy", teacher_acc, "x")
    figure("best transformer holdout accuracy", best["accuracy"], "x")
    figure("accuracy retained (student / teacher)", kept, "x")
    figure("teacher p95 (local adapter)", best["teacher_p95"] or 0.0, "ms")
    figure("best transformer p95 (lean path)", best["p95"], "ms")
    figure("p95 ratio teacher / student", ratio, "x")
    figure("teacher p50 (local adapter)", best["teacher_p50"] or 0.0, "ms")
    figure("best transformer p50 (lean path)", best["p50"], "ms")
    figure("p50 ratio teacher / student", (best["teacher_p50"] or 0.0) / best["p50"] if best["p50"] else 0.0, "x")
    print(f"Goal (>= {GOALS['retained']:.0%} of the teacher's holdout accuracy at >= {GOALS['p95']:g}x lower p95): "
          f"{'met' if met else 'NOT met'} ({kept:.1%}, {ratio:.1f}x); load average "
          + " / ".join(f"{x:.1f}" for x in os.getloadavg()) + ".")


def best_transformer(session, rec) -> int | None:
    """The search's own rule (core.training.search.recommend) over its transformer runs: validation only."""
    from core.training import runs, search

    ids = [c.run_id for c in rec.candidates if c.family == "transformer"]
    return search.recommend([runs.get_run(session, i) for i in ids]).run_id if ids else None


def lingua_line(test, *, quick: bool) -> str:
    """lingua's accuracy on the same holdout, in its own process (high-accuracy mode; low in --quick)."""
    import numpy as np

    measured = in_own_process("teacher", test["text"].astype(str).tolist(), mode="low" if quick else "high")
    acc = float((np.array(measured["labels"], dtype=object) == test["answer"].to_numpy(dtype=object)).mean())
    return f"lingua on the same holdout: accuracy {acc:.3f}, single-text p95 {measured['p95_ms']:.2f} ms"


def run(args, train, test, workdir: Path) -> None:
    from core.data import datasets
    from core.store import jobs
    from core.teacher import runs as teacher_runs

    engine, session, project, dana = setup(workdir, name="Language of a chat message",
                                           description="Route a chat message by its language (ChatterBot corpus).")
    dataset = import_split(session, actor=dana, project=project, train=train, test=test, label="language")
    train = train[train["id"].isin(set(datasets.rows(session, dataset)["id"]))].reset_index(drop=True)
    teacher_dir, teacher_s, how = teacher(args, train, workdir)
    print(f"Teacher BERT {args.teacher_size}: {how}.")
    job = teacher_runs.start_run(session, actor=dana, project=project, dataset_id=dataset.id, adapter="local",
                                 config={"model_dir": str(teacher_dir)})
    teacher_run = jobs.result_or_raise(jobs.run(job.id, engine=engine))["teacher_run"]
    if args.lingua:
        print(lingua_line(test, quick=args.quick) + ".")

    rec, search_s = search_and_recommend(session, engine, actor=dana, project=project, teacher_run_id=teacher_run,
                                         budget_s=args.budget)
    best_id = best_transformer(session, rec)
    if best_id is None:
        print("No transformer candidate finished: nothing to compare.")
        return
    scored = evaluate(session, engine, actor=dana, project=project, run_id=best_id)
    finished = [c.run_id for c in rec.candidates if c.family == "transformer" and c.status == "done"]
    table = rows(session, rec, {i: scored if i == best_id else measure(session, run_id=i, scored=scored)
                                for i in finished})
    best = next(r for r in table if r["run"] == best_id)
    like = next(c for c in rec.candidates if c.run_id == best_id)
    for hidden, attention in LOSSES:  # the best one's size and start with each set of losses, from the search or
        if not any(r["size"] == best["size"] and r["start"] == best["start"] and r["weights"] == (hidden, attention)
                   for r in table):  # trained again with the same settings, seed and time limit
            run_id = retrain(session, engine, actor=dana, project=project, like=like,
                             extra={"hidden_weight": hidden, "attention_weight": attention})
            table += rows(session, rec, {run_id: measure(session, run_id=run_id, scored=scored)})
    teacher_acc = best["teacher_accuracy"]
    print_table(table, teacher_acc=teacher_acc)
    print_comparisons(table, best=best)
    figure("teacher training time (when it was trained)", teacher_s * 1000, "ms")
    figure("default search time (all candidates)", search_s * 1000, "ms")
    print_goal(best, teacher_acc=teacher_acc)
    session.close()
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=900.0, help="seconds for the default training search")
    parser.add_argument("--teacher-epochs", type=int, default=5)
    parser.add_argument("--teacher-size", default="teacher-4x256")
    parser.add_argument("--teacher-dir", type=Path, help="keep the trained teacher here and reuse the one there")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads for everything (1: steadier figures on a shared machine)")
    parser.add_argument("--lingua", action="store_true",
                        help="score lingua (a pretrained language identifier) on the same holdout, in its own process")
    parser.add_argument("--quick", action="store_true", help="four languages, a small teacher, a tiny search")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    from core.training import search

    df, _ = load_corpus()
    if args.quick:
        df = df[df["language"].isin(QUICK_LANGUAGES)].groupby("language", group_keys=False).head(40)
        df = df.reset_index(drop=True)
        args.teacher_size, args.teacher_epochs, args.budget = "teacher", 2, 120
        search.GRID = QUICK_SEARCH
    train, test = split(df, by="language")
    test = test.sample(frac=1, random_state=7).reset_index(drop=True)  # languages mixed (bench_pretrained_teacher)
    test = test.assign(id=[f"test-{i:05d}" for i in range(len(test))])
    print(f"ChatterBot corpus, {df['language'].nunique()} languages: {len(df):,} unique utterances, {len(train):,} to "
          f"train on, {len(test):,} in the imported test split (the holdout).")
    workdir = Path(tempfile.mkdtemp(prefix="bench-strong-"))
    try:
        run(args, train, test, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
