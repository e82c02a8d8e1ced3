"""Students trained elsewhere, end to end on fresh projects made only through the CLI: export the holdout,
predict it elsewhere, import the predictions, and reach a decision (or be refused)."""

from __future__ import annotations

import json
import random

import pandas as pd
from byo_helpers import (
    WORDS,
    _ship,
    _yaml,
    exported,
    new_project,
    ok,
    predictions,
    run,
    tickets,
    triage_gate,
)


def test_triage_passes_and_ships_with_latency_stillroom_measured_from_a_local_model(people, tmp_path,
                                                                                     saved_student):
    rows = tickets()
    new_project(tmp_path, "Triage", rows, triage_gate())
    held = exported(tmp_path, "Triage")
    assert list(held.columns) == ["id", "text"]
    path = tmp_path / "preds.csv"
    predictions(held, rows).to_csv(path, index=False)
    out = ok("eval", "import", "Triage", str(path), "--latency-model-dir", str(saved_student), who="drv")
    assert "PASSED the gate" in out and "measured by Stillroom: local model directory their-student" in out
    shown = ok("eval", "show", "1")
    assert "PASS               p95 latency" in shown or "PASS  p95 latency" in " ".join(shown.split("  "))
    assert "declared latency" not in shown and "measured  " in shown.split("p95 latency", 1)[1].splitlines()[0]
    assert "ship recorded" in _ship("Triage", 1)
    assert "student latency measured by Stillroom" in ok("record", "Triage", who="spon")


def test_declared_latency_is_shown_as_declared_and_judged_only_where_the_gate_accepts_it(people, tmp_path):
    rows = tickets()
    new_project(tmp_path, "Triage declared", rows, triage_gate())
    path = tmp_path / "preds.csv"
    predictions(exported(tmp_path, "Triage declared"), rows).to_csv(path, index=False)
    declared = ["--declared-p95-ms", "12", "--declared-by", "Mia Vendor", "--declared-method",
                "k6, 1 request at a time, 10k requests", "--declared-where", "their staging cluster, eu-west"]
    out = ok("eval", "import", "Triage declared", str(path), *declared, who="drv")
    assert "did NOT pass" in out and "declared by Mia Vendor" in out
    assert "does not accept declared latency" in ok("eval", "show", "1")
    gate = _yaml(tmp_path, "gate2.yaml", triage_gate(declared_latency_acceptable=True))
    ok("gate", "lock", "Triage declared", "--file", gate, "--reason", "their figures are audited", who="spon")
    out = ok("eval", "import", "Triage declared", str(path), *declared, who="drv")
    assert "PASSED the gate" in out and "declared by Mia Vendor" in out
    refused = run("review", "signoff", "Triage declared", "2", "--approve", who="val")
    assert refused.exit_code == 3 and "declared by Mia Vendor" in refused.stderr
    assert "ship recorded" in _ship("Triage declared", 2, "--covers-declared-latency")
    record = ok("record", "Triage declared", who="spon").replace("\\", "")
    assert "student latency declared by Mia Vendor (k6, 1 request at a time, 10k requests" in record


def test_moderation_fails_on_the_rare_slice_then_passes_after_a_fixed_file(people, tmp_path):
    rows = tickets()
    new_project(tmp_path, "Moderation", rows, triage_gate())
    held = exported(tmp_path, "Moderation")
    path = tmp_path / "preds.csv"
    predictions(held, rows, wrong_on="security").to_csv(path, index=False)
    assert "did NOT pass" in ok("eval", "import", "Moderation", str(path), who="drv")
    shown = ok("eval", "show", "1")
    assert "FAIL" in shown and "slice queue=security" in shown
    predictions(held, rows).to_csv(path, index=False)
    ok("eval", "import", "Moderation", str(path), who="drv")
    statuses = {line.split("  ")[0] for line in ok("eval", "show", "2").splitlines() if "slice queue=security" in line}
    assert statuses == {"PASS"}


def test_forged_references_are_not_used_and_foreign_rows_are_refused(people, tmp_path):
    rows = tickets()
    new_project(tmp_path, "Forgery", rows, triage_gate())
    held = exported(tmp_path, "Forgery")
    forged = predictions(held, rows, wrong_on="security")
    forged["reference"] = forged["student"]  # references copied from the failing student
    path = tmp_path / "forged.csv"
    forged.to_csv(path, index=False)
    out = ok("eval", "import", "Forgery", str(path), who="drv")
    assert "did NOT pass" in out and "The file's reference column was not used" in out
    foreign = predictions(held, rows)
    foreign["text"] = held["text"]
    foreign.loc[0, "text"] = "a different ticket entirely"
    foreign.to_csv(path, index=False)
    refused = run("eval", "import", "Forgery", str(path), who="drv")
    assert refused.exit_code == 2 and "differs from the holdout's text" in refused.stderr
    outsiders = predictions(held, rows)
    outsiders.loc[0, "id"] = "NOT-IN-HOLDOUT"
    outsiders.to_csv(path, index=False)
    refused = run("eval", "import", "Forgery", str(path), who="drv")
    assert refused.exit_code == 2 and "'NOT-IN-HOLDOUT'" in refused.stderr
    assert ok("eval", "list", "Forgery").count("imported") == 1  # the refused files recorded nothing


def test_ranking_is_judged_by_ndcg_at_k_on_a_query_split_holdout(people, tmp_path):
    from sklearn.metrics import ndcg_score

    rng = random.Random(2)
    rows = pd.DataFrame([{"id": f"D{q:03d}-{j}", "text": f"query {q} document {j} " + " ".join(rng.sample(WORDS, 4)),
                          "reference": str(rng.choice([0, 0, 1, 2, 3])), "query_id": f"Q{q:03d}"}
                         for q in range(60) for j in range(6)])
    gate = triage_gate(metric="ndcg@k", ranking_k=3, quality_floor={"kind": "absolute", "value": 0.5},
                       slice_floors=[])
    new_project(tmp_path, "Search", rows, gate, slices=("query_id",),
                holdout=("--fraction", "0.25", "--group", "query_id"))
    held = exported(tmp_path, "Search")
    assert held.groupby("query_id").size().eq(6).all() and held["query_id"].nunique() == 15
    truth = held["id"].map(rows.set_index("id")["reference"]).astype(float)
    noisy = truth + pd.Series([rng.random() * 1.5 for _ in range(len(held))])
    path = tmp_path / "ranks.csv"
    pd.DataFrame({"id": held["id"], "query_id": held["query_id"], "student": noisy, "teacher": truth}).to_csv(
        path, index=False)
    out = ok("eval", "import", "Search", str(path), "--kind", "ranking", who="drv")
    frame = pd.DataFrame({"t": truth, "s": noisy, "q": held["query_id"]})
    expected = [ndcg_score([g["t"].to_numpy()], [g["s"].to_numpy()], k=3) if g["t"].any() else 0.0
                for _, g in frame.groupby("q")]
    assert f"NDCG@3 {sum(expected) / len(expected):.3f}" in out
    assert "quality floor: ndcg@3" in ok("eval", "show", "1")


def test_extraction_reports_per_field_figures_against_per_field_floors(people, tmp_path):
    rng = random.Random(9)
    rows = pd.DataFrame([{"id": f"I{i:03d}", "text": f"invoice {i} vendor {i % 7} " + " ".join(rng.sample(WORDS, 3)),
                          "reference": json.dumps({"vendor": f"Vendor {i % 7}", "total": f"{i * 10}.00",
                                                   "due": f"2024-03-{1 + i % 28:02d}"}),
                          "kind": "invoice"} for i in range(200)])
    gate = triage_gate(metric="field-accuracy", quality_floor={"kind": "absolute", "value": 0.8}, slice_floors=[],
                       field_floors=[{"field": "total", "floor": 0.95, "min_n": 10},
                                     {"field": "due", "floor": 0.95, "min_n": 10}],
                       field_rules={"vendor": ["case"], "total": ["number"], "due": ["date"]})
    new_project(tmp_path, "Invoices", rows, gate, slices=("kind",), holdout=("--fraction", "0.3"))
    held = exported(tmp_path, "Invoices")
    refs = held["id"].map(rows.set_index("id")["reference"]).map(json.loads)
    student = [json.dumps({"vendor": r["vendor"].upper(), "total": str(float(r["total"])),
                           "due": pd.Timestamp(r["due"]).strftime("%d %B %Y") if i % 10 else "soon"})
               for i, r in enumerate(refs)]
    path = tmp_path / "fields.jsonl"
    pd.DataFrame({"id": held["id"], "student": student}).to_json(path, orient="records", lines=True)
    out = ok("eval", "import", "Invoices", str(path), "--kind", "json", who="drv")
    assert "Field total: accuracy 1.000" in out and "(floor 0.950) [number]" in out
    assert "Field vendor: accuracy 1.000" in out and "Field due: accuracy 0.900" in out
    shown = ok("eval", "show", "1")
    assert "FAIL" in shown and "field due: accuracy" in shown and "did NOT pass" in shown
    # The teacher's extractions on training rows, checked against known records under the gate's field rules.
    train = rows[~rows["id"].isin(held["id"])].head(20)
    teacher = [json.dumps({**json.loads(r), "total": "1" if i < 3 else json.loads(r)["total"]})
               for i, r in enumerate(train["reference"])]
    pd.DataFrame({"id": train["id"], "output": teacher}).to_json(tmp_path / "t.jsonl", orient="records", lines=True)
    known = pd.DataFrame({"id": train["id"], "total": [json.loads(r)["total"] for r in train["reference"]]})
    known.to_csv(tmp_path / "known.csv", index=False)
    out = ok("teacher", "known-records", "Invoices", str(tmp_path / "t.jsonl"), str(tmp_path / "known.csv"),
             "--out", str(tmp_path / "kept.csv"))
    assert "20 of 20 teacher outputs had a known record; 3 contradicted it and were dropped (by field: total 3)" in out
    assert len(pd.read_csv(tmp_path / "kept.csv")) == 17


def test_the_loop_closes_insufficient_data_asks_for_holdout_rows_and_a_new_holdout_version_judges_it(people,
                                                                                                   tmp_path):
    rows = tickets()
    gate = triage_gate(slice_floors=[{"column": "queue", "value": "security", "floor": 0.9, "min_n": 25}])
    new_project(tmp_path, "Loop", rows, gate)
    held = exported(tmp_path, "Loop")
    path = tmp_path / "preds.csv"
    predictions(held, rows).to_csv(path, index=False)
    ok("eval", "import", "Loop", str(path), who="drv")
    assert "INSUFFICIENT DATA  slice queue=security" in ok("eval", "show", "1")
    out = ok("decide", "Loop", "--decision", "iterate", "--evaluation", "1", "--rationale", "judge security",
             who="spon")
    assert "queue=security (INSUFFICIENT DATA): 10 more holdout examples" in out
    assert "open: 10 to go" in ok("data", "requests", "Loop")
    # A teacher labelled the training rows: none of them, nor their text under a new id, may join the holdout.
    teacher = tmp_path / "teacher.csv"
    rows.rename(columns={"reference": "label"})[["id", "label"]].to_csv(teacher, index=False)
    ok("teacher", "run", "Loop", "--dataset", "1", "--adapter", "file", "--file", str(teacher), who="drv")
    fresh = pd.DataFrame([{"id": f"S{i:03d}", "text": f"new breach report {i} account hijacked code {i * 7}",
                           "reference": "security", "queue": "security"} for i in range(12)])
    copied = rows[~rows["id"].isin(held["id"])].head(1).assign(id="S999")  # a training row's text, a new id
    for name, frame in (("copied", copied), ("fresh", fresh)):
        frame.to_csv(tmp_path / f"{name}.csv", index=False)
        ok("data", "import", "Loop", str(tmp_path / f"{name}.csv"), "--id", "id", "--text", "text", "--reference",
           "reference", "--slice", "queue", "--name", name, who="drv")
    refused = run("data", "holdout-extend", "Loop", "2", "--reason", "round 2 request", who="drv")
    assert refused.exit_code == 3 and "equal or nearly equal a training row" in refused.stderr
    out = ok("data", "holdout-extend", "Loop", "3", "--reason", "round 2 request", who="drv")
    assert "Holdout version 2" in out and "12 added from dataset #3" in out
    assert "12 added by holdout version 2 (12 rows); met" in ok("data", "requests", "Loop")
    held2 = exported(tmp_path, "Loop")
    truth = pd.concat([rows, fresh])
    predictions(held2, truth).to_csv(path, index=False)
    ok("eval", "import", "Loop", str(path), who="drv")
    shown = ok("eval", "show", "2")
    assert "(holdout version 2)" in shown and "PASS               slice queue=security" in shown


def test_latency_is_not_measured_on_a_model_that_cannot_give_the_scored_answers(people, tmp_path):
    from core.ml.students import NgramStudent

    rows = tickets()
    new_project(tmp_path, "Other model", rows, triage_gate())
    path = tmp_path / "preds.csv"
    predictions(exported(tmp_path, "Other model"), rows).to_csv(path, index=False)
    NgramStudent(labels=["billing", "shipping"], buckets=512, dim=8).save(tmp_path / "other")
    refused = run("eval", "import", "Other model", str(path), "--latency-model-dir", str(tmp_path / "other"))
    assert refused.exit_code == 2 and "cannot answer 'account', 'security'" in refused.stderr
