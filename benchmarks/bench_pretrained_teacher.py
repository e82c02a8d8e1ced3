"""A real pretrained teacher on real text, the product's default flow: lingua, a language identifier whose wheel
carries its models, distilled on the ChatterBot corpus's utterances, whose folders name their languages.

Teacher: ``lingua-language-detector`` (PyPI, Apache 2.0) in its high-accuracy mode over all 75 of its languages,
every model preloaded, entered as a Python teacher (``--adapter python --callable
benchmarks.teachers.lingua_teacher:identify``, allow-listed here through ``STILLROOM_TEACHER_CALLABLES``). Its
labels are its 75 languages and ``unknown`` (what it answers when it gives every language zero).

Data: every language folder of ``chatterbot-corpus`` 1.3.3 (BSD licence, in the ``test`` extra): human-written
conversation lines, the folder being the label. Each unique utterance is kept once (one written under two
languages is left out); ``traditionalchinese`` counts as ``chinese`` (lingua has one Chinese); ``hinglish``
(Hindi in Latin letters) and ``oriya`` are left out: lingua knows neither. A fixed-seed 20 % split per language
is imported as the holdout. Nothing is downloaded at run time.

Every step goes through core as a person would (benchmarks/bench_real_data.py's helpers): a project and its gate,
the utterances imported, the split imported as the holdout, the Python teacher run over the training rows, the
default training search over both families within its budget (core.training.search), the recommended student
evaluated on the holdout. Then each model is measured in its own fresh process, on the holdout's texts: its
answers, its single-text p50/p95 (the teacher's fastest single call, ``detect_language_of``; the student as
``stillroom serve`` holds it) and its resident memory (RSS) before and after its model is loaded.

    .venv/bin/python benchmarks/bench_pretrained_teacher.py [--budget 900] [--threads 1] [--quick]

``--quick`` keeps four languages, 40 utterances each, lingua's low-accuracy mode and one cheap candidate per
family: a smoke run, not figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]  # benchmarks.teachers and bench_real_data's helpers
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

from bench_real_data import QUICK_GRID, figure, import_split, search_and_recommend, setup, split  # noqa: E402

TEACHER_MODULE = "benchmarks.teachers.lingua_teacher"
CALLABLES = {"high": f"{TEACHER_MODULE}:identify", "low": f"{TEACHER_MODULE}:identify_low"}
# Corpus folders under another name in lingua, and those lingua does not know (left out, and said so).
FOLDER_TO_LANGUAGE = {"traditionalchinese": "chinese"}
NOT_IN_LINGUA = {"hinglish": "Hindi written in Latin letters", "oriya": "Odia"}
MIN_PER_LANGUAGE = 10
QUICK_LANGUAGES = ("english", "spanish", "italian", "japanese")
SINGLES = 300  # holdout texts timed one at a time, in each model's own process
GOALS = {"accuracy": 0.98, "p95": 3.0, "memory": 50.0}


def load_corpus():
    """(text, language) rows of every ChatterBot folder lingua knows, one per unique utterance; and the folders
    left out."""
    import chatterbot_corpus
    import pandas as pd
    import yaml

    seen: dict[str, set[str]] = {}
    left_out: dict[str, int] = {}
    for folder in sorted(p for p in (Path(chatterbot_corpus.__file__).parent / "data").iterdir() if p.is_dir()):
        language = FOLDER_TO_LANGUAGE.get(folder.name, folder.name)
        for path in sorted(folder.glob("*.yml")):
            doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            for line in (x for conversation in doc.get("conversations") or [] for x in conversation):
                if not (isinstance(line, str) and line.strip()):
                    continue
                if folder.name in NOT_IN_LINGUA:
                    left_out[folder.name] = left_out.get(folder.name, 0) + 1
                    continue
                seen.setdefault(" ".join(line.split()), set()).add(language)
    df = pd.DataFrame([(text, next(iter(langs))) for text, langs in seen.items() if len(langs) == 1],
                      columns=["text", "language"])
    counts = df["language"].value_counts()
    return df[df["language"].isin(counts[counts >= MIN_PER_LANGUAGE].index)].reset_index(drop=True), left_out


# --------------------------------------------------------------------------- each model in its own process


def rss_mb() -> float:
    """This process's resident memory now (VmRSS), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def single_latency(answer, texts: list[str]) -> dict:
    """p50/p95 of answering one text at a time (after ten warm-up calls), in ms."""
    import numpy as np

    for text in texts[:10]:
        answer(text)
    lat = []
    for text in texts:
        started = time.perf_counter()
        answer(text)
        lat.append((time.perf_counter() - started) * 1000)
    return {"p50_ms": float(np.percentile(lat, 50)), "p95_ms": float(np.percentile(lat, 95))}


def measure_teacher(texts: list[str], *, mode: str) -> dict:
    """In a fresh process: lingua's answers to ``texts`` (the callable the teacher run called), its single-text
    latency (``detect_language_of``, its fastest call) and its memory before and after its models load."""
    import gc

    bare = rss_mb()
    from benchmarks.teachers import lingua_teacher

    runtime = rss_mb()
    detector = lingua_teacher.detector(mode)
    labels = [lingua_teacher.label_of(a) for a in lingua_teacher.answers(texts, mode=mode)]
    gc.collect()
    loaded = rss_mb()
    speed = single_latency(detector.detect_language_of, texts[:SINGLES])
    return {"labels": labels, **speed, "bare_mb": bare, "runtime_mb": runtime, "loaded_mb": loaded,
            "weights_mb": None}


def measure_student(texts: list[str], *, student_dir: str) -> dict:
    """In a fresh process: the student as ``stillroom serve`` holds it (an n-gram student through its numpy
    forward pass, a transformer through its checked ONNX export), its answers, single-text latency and memory."""
    import gc

    bare = rss_mb()
    from core.serving.app import served_student  # the service's own choice: an n-gram student without torch

    runtime = rss_mb()
    served = served_student(Path(student_dir))
    weights_mb = (getattr(served, "weights_bytes", None)
                  or sum(p.numel() * p.element_size() for p in served.module.parameters())) / 2**20
    labels = [served.labels[i] for i in served.predict_proba(texts).argmax(axis=1)]
    gc.collect()
    after = rss_mb()
    speed = single_latency(lambda text: served.predict_proba([text]), texts[:SINGLES])
    return {"labels": labels, **speed, "bare_mb": bare, "runtime_mb": runtime, "loaded_mb": after,
            "weights_mb": weights_mb}


def in_own_process(what: str, texts: list[str], **options: str) -> dict:
    """Run ``measure_<what>`` in a fresh interpreter (so neither model's memory or warm caches touch the other's
    figures) and read back its JSON."""
    with tempfile.TemporaryDirectory(prefix="bench-measure-") as tmp:
        inputs, output = Path(tmp) / "texts.json", Path(tmp) / "out.json"
        inputs.write_text(json.dumps(texts), encoding="utf-8")
        flags = [x for k, v in options.items() for x in (f"--{k.replace('_', '-')}", v)]
        subprocess.run([sys.executable, __file__, "--measure", what, "--texts", str(inputs), "--out", str(output),
                        *flags], check=True, cwd=REPO)
        return json.loads(output.read_text(encoding="utf-8"))


def measure_main(args) -> None:
    texts = json.loads(Path(args.texts).read_text(encoding="utf-8"))
    result = (measure_teacher(texts, mode=args.mode) if args.measure == "teacher"
              else measure_student(texts, student_dir=args.student_dir))
    Path(args.out).write_text(json.dumps(result), encoding="utf-8")


# --------------------------------------------------------------------------- the default flow


def run_detached(session, job) -> dict:
    """Run a job in its own process, as the pages start one, and wait for it: where lingua loads (the teacher run,
    the evaluation), its gigabyte goes back when the job ends instead of staying with this process."""
    from core.store import jobs

    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    os.waitpid(jobs.start_detached(job.id), 0)
    session.expire_all()
    return jobs.result_or_raise(jobs.get(session, job.id))


def run_flow(args, train, test, workdir: Path):
    """Project, imports, the Python teacher run, the default search and the evaluation of its pick, through
    core; returns what the figures need."""
    from benchmarks.teachers import lingua_teacher
    from core.evaluation import runs as evaluations
    from core.teacher import runs as teacher_runs
    from core.training import runs as training_runs

    os.environ["STILLROOM_TEACHER_CALLABLES"] = ",".join(CALLABLES.values())  # the admin's allow-list
    engine, session, project, dana = setup(workdir, name="Language of a chat message",
                                           description="Route a chat message by its language (ChatterBot corpus).")
    dataset = import_split(session, actor=dana, project=project, train=train, test=test, label="language",
                           train_answers=args.train_labels)

    started = time.monotonic()
    job = teacher_runs.start_run(session, actor=dana, project=project, dataset_id=dataset.id, adapter="python",
                                 config={"callable": CALLABLES[args.mode], "labels": lingua_teacher.LABELS,
                                         "batch_size": 512})
    teacher_run = run_detached(session, job)["teacher_run"]
    teacher_s = time.monotonic() - started
    summary = teacher_runs.summarize(session, run=teacher_runs.get_run(session, teacher_run))
    agrees = (f"agrees with the corpus's labels on {summary.agreement_with_reference:.3f} of them"
              if summary.agreement_with_reference is not None else "imported without their labels")
    print(f"Teacher run #{teacher_run} ({CALLABLES[args.mode]}): {summary.n_rows:,} training rows answered in "
          f"{teacher_s:.1f} s; {agrees}; {summary.label_counts.get(lingua_teacher.UNKNOWN, 0):,} answered unknown.")

    rec, search_s = search_and_recommend(session, engine, actor=dana, project=project, teacher_run_id=teacher_run,
                                         budget_s=args.budget)

    job = evaluations.start_evaluation(session, actor=dana, project=project, training_run_id=rec.run_id)
    ev_id = run_detached(session, job)["evaluation"]  # the teacher answers the holdout there, and is timed
    session.expire_all()
    evaluation = evaluations.get_evaluation(session, project=project, evaluation_id=ev_id)
    report = evaluations.load_report(session, evaluation)
    run = training_runs.get_run(session, rec.run_id)
    student_dir = str(training_runs.path_of(training_runs.student_artifact(session, run)))
    flow = {"teacher_s": teacher_s, "search_s": search_s, "evaluation": ev_id,
            "student_accuracy": report.student.accuracy, "teacher_accuracy": report.teacher.accuracy,
            "student": f"{run.family} {run.size}", "student_p95_eval": report.latency.student_figures.p95_ms,
            "teacher_p95_eval": report.latency.teacher.p95_ms if report.latency.teacher else None,
            "student_dir": student_dir,
            "predictions": evaluations.load_predictions(session, evaluation)}
    return flow, (engine, session)


# --------------------------------------------------------------------------- figures


def accuracy(labels, truth) -> float:
    import numpy as np

    return float((np.asarray(labels, dtype=object) == np.asarray(truth, dtype=object)).mean())


def print_per_language(test, teacher_labels, student_labels) -> tuple[float, float]:
    """Each language's accuracy for both models; returns their means over languages (every language counts
    once, however few its utterances)."""
    import pandas as pd

    truth = test["language"].to_numpy(dtype=object)
    frame = pd.DataFrame({"language": truth, "teacher": teacher_labels == truth, "student": student_labels == truth})
    table = frame.groupby("language").agg(n=("teacher", "size"), teacher=("teacher", "mean"),
                                          student=("student", "mean")).sort_values("n", ascending=False)
    print("\nPer language on the holdout: utterances, teacher / student accuracy against the folder's label")
    print("    " + "  ".join(f"{lang} {int(r.n)} {r.teacher:.2f}/{r.student:.2f}" for lang, r in table.iterrows()))
    return float(table["teacher"].mean()), float(table["student"].mean())


def print_figures(flow: dict, test, teacher: dict, student: dict) -> dict:
    import numpy as np

    truth = test["answer"].to_numpy(dtype=object)
    t_labels, s_labels = np.array(teacher["labels"], dtype=object), np.array(student["labels"], dtype=object)
    preds = flow["predictions"].set_index("id").loc[test["id"]]
    t_acc, s_acc = accuracy(t_labels, truth), accuracy(s_labels, truth)
    if not np.array_equal(preds["student_label"].to_numpy(dtype=object), s_labels):
        print("NOTE: the student's answers in its own process differ from the evaluation's.")
    t_macro, s_macro = print_per_language(test, t_labels, s_labels)
    t_models = teacher["loaded_mb"] - teacher["runtime_mb"]
    s_models = student["loaded_mb"] - student["runtime_mb"]
    print(f"\nOn the imported holdout ({len(test):,} utterances), evaluation #{flow['evaluation']}; each model "
          "measured in its own process:")
    figure("teacher accuracy (corpus labels)", t_acc, "x")
    figure("student accuracy (corpus labels)", s_acc, "x")
    figure("student accuracy, as the evaluation scored it", flow["student_accuracy"], "x")
    if flow["teacher_accuracy"] is not None:
        figure("teacher accuracy, as the evaluation scored it", flow["teacher_accuracy"], "x")
    figure("accuracy retained (student / teacher)", s_acc / t_acc if t_acc else 0.0, "x")
    figure("teacher accuracy, mean over languages", t_macro, "x")
    figure("student accuracy, mean over languages", s_macro, "x")
    figure("student agreement with the teacher", accuracy(s_labels, t_labels), "x")
    figure("teacher single-text p50", teacher["p50_ms"], "ms")
    figure("teacher single-text p95", teacher["p95_ms"], "ms")
    figure(f"student single-text p50 ({flow['student']})", student["p50_ms"], "ms")
    figure(f"student single-text p95 ({flow['student']})", student["p95_ms"], "ms")
    if flow["teacher_p95_eval"] is not None:
        figure("teacher p95, evaluation (its callable)", flow["teacher_p95_eval"], "ms")
    figure("student p95, evaluation", flow["student_p95_eval"], "ms")
    figure("p95 ratio teacher / student", teacher["p95_ms"] / student["p95_ms"], "x")
    figure("teacher process RSS, models preloaded", teacher["loaded_mb"], " MB")
    figure("teacher models: RSS after load - before", t_models, " MB")
    figure("student process RSS, as served", student["loaded_mb"], " MB")
    figure("student runtime before the student", student["runtime_mb"], " MB")
    figure("student: RSS after load - before", s_models, " MB")
    figure("student weights", student["weights_mb"], " MB")
    figure("memory ratio teacher models / student", t_models / max(s_models, student["weights_mb"]), "x")
    figure("memory ratio teacher process / student process", teacher["loaded_mb"] / student["loaded_mb"], "x")
    figure("teacher run over the training rows", flow["teacher_s"] * 1000, "ms")
    figure("default search time (all candidates)", flow["search_s"] * 1000, "ms")
    return {"accuracy": s_acc / t_acc if t_acc else 0.0, "p95": teacher["p95_ms"] / student["p95_ms"],
            "memory": t_models / max(s_models, student["weights_mb"]),
            "memory_process": teacher["loaded_mb"] / student["loaded_mb"]}


def print_goals(ratios: dict) -> None:
    def verdict(key: str) -> str:
        return "met" if ratios[key] >= GOALS[key] else "NOT met"

    print(f"Goals: student at >= {GOALS['accuracy']:.0%} of the teacher's accuracy: {verdict('accuracy')} "
          f"({ratios['accuracy']:.1%}); >= {GOALS['p95']:g}x lower p95: {verdict('p95')} ({ratios['p95']:.1f}x); "
          f">= {GOALS['memory']:g}x less memory (the models): {verdict('memory')} ({ratios['memory']:.1f}x; whole "
          f"processes {ratios['memory_process']:.1f}x); load average "
          + " / ".join(f"{x:.1f}" for x in os.getloadavg()) + ".")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=900.0, help="seconds for the default training search")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads for everything (1: steadier figures on a shared machine)")
    parser.add_argument("--quick", action="store_true", help="four languages, low-accuracy lingua, tiny search")
    parser.add_argument("--mode", choices=("high", "low"), default="high", help="lingua's accuracy mode")
    parser.add_argument("--train-labels", action="store_true",
                        help="import the training rows with their languages too (by default they go in as "
                             "unlabelled text and the student learns from the teacher alone)")
    parser.add_argument("--measure", choices=("teacher", "student"), help=argparse.SUPPRESS)
    parser.add_argument("--texts", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--student-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        return measure_main(args)
    import torch

    torch.set_num_threads(args.threads)
    from core.training import search

    df, left_out = load_corpus()
    if args.quick:
        df = df[df["language"].isin(QUICK_LANGUAGES)].groupby("language", group_keys=False).head(40)
        df = df.reset_index(drop=True)
        args.mode, args.budget = "low", 120
        search.GRID = QUICK_GRID
    train, test = split(df, by="language")
    # The holdout in a fixed random order (split groups it by language), so every sample timed from its head, the
    # evaluation's included, mixes the languages: lingua answers a text in a script of its own (Chinese, Bengali)
    # without its n-gram models, in a hundredth of the time a Latin-script text takes.
    test = test.sample(frac=1, random_state=7).reset_index(drop=True)
    test = test.assign(id=[f"test-{i:05d}" for i in range(len(test))])
    print(f"ChatterBot corpus, {df['language'].nunique()} languages: {len(df):,} unique utterances, "
          f"{len(train):,} to train on, {len(test):,} in the imported test split. Left out (lingua does not "
          "know them): " + ", ".join(f"{k} ({NOT_IN_LINGUA[k]}, {n:,} lines)" for k, n in left_out.items()) + ". "
          + ("The training rows carry their languages (--train-labels): the student learns from them and the teacher."
             if args.train_labels else "The training rows go in unlabelled: the student learns from the teacher "
                                       "alone; only the holdout carries the corpus's labels."))
    workdir = Path(tempfile.mkdtemp(prefix="bench-pretrained-"))
    try:
        flow, (engine, session) = run_flow(args, train, test, workdir)
        texts = test["text"].astype(str).tolist()
        teacher = in_own_process("teacher", texts, mode=args.mode)
        student = in_own_process("student", texts, student_dir=flow["student_dir"])
        print_goals(print_figures(flow, test, teacher, student))
        session.close()
        engine.dispose()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
