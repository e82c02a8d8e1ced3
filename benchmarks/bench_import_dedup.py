"""Benchmark: importing and deduplicating 1,000,000 short texts (budget: under 60 s together).

Generates short support tickets (fixed seed) with planted exact duplicates (case
and spacing changed) and near duplicates (a word added), writes them as a CSV
file, then times ``core.data.importer.import_dataset`` from that file and
``core.data.dedup.apply_dedup`` on the stored dataset. Beside it, the naive way:
a datasketch ``MinHash`` built and queried against a ``MinHashLSH`` one row at a
time, timed on a subsample and extrapolated to the full size.
Run: ``.venv/bin/python benchmarks/bench_import_dedup.py [--quick] [--rows N] [--strict]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import unicodedata
from itertools import pairwise
from pathlib import Path

import _seed
import numpy as np
import pandas as pd
from datasketch import MinHash, MinHashLSH
from sqlmodel import Session

from core.access import people, projects
from core.data import dedup, importer, similarity
from core.demo import seed as demo
from core.store.db import init_db, make_engine

BUDGET_S = 60.0
EXACT_SHARE, NEAR_SHARE = 0.03, 0.03
WORDS = ("order", "parcel", "refund", "charged", "twice", "password", "reset", "account", "locked", "invoice",
         "address", "wrong", "missing", "damaged", "late", "courier", "billing", "card", "login", "error",
         "subscription", "cancel", "upgrade", "plan", "email", "phone", "app", "crash", "slow", "delivery")


def tickets(n: int, seed: int = 0) -> tuple[pd.DataFrame, int, int]:
    """``n`` short tickets; returns the frame and how many exact and near duplicates were planted."""
    rng = np.random.default_rng(seed)
    n_exact, n_near = int(n * EXACT_SHARE), int(n * NEAR_SHARE)
    n_base = n - n_exact - n_near
    words = np.array(WORDS)[rng.integers(0, len(WORDS), (n_base, 8))]
    numbers = rng.permutation(10 * n_base)[:n_base]
    base = pd.Series([f"ticket {k} " + " ".join(w) for k, w in zip(numbers, words, strict=True)])
    exact_src = rng.choice(n_base, n_exact, replace=False)
    exact = base.iloc[exact_src].str.upper().str.replace(" ", "  ", n=2)
    near_src = rng.choice(n_base, n_near, replace=False)
    near = base.iloc[near_src] + " " + np.array(WORDS)[rng.integers(0, len(WORDS), n_near)]
    texts = pd.concat([base, exact, near], ignore_index=True)
    order = rng.permutation(n)
    df = pd.DataFrame({"ticket_id": [f"T{i:07d}" for i in range(n)], "body": texts.iloc[order].to_numpy(),
                       "queue": np.array(["billing", "refund", "shipping", "security"])[rng.integers(0, 4, n)]})
    return df, n_exact, n_near


def naive_near_dedup(texts: list[str], threshold: float) -> int:
    """The per-row way: a datasketch MinHash per text, queried against and inserted into MinHashLSH."""
    lsh = MinHashLSH(threshold=threshold, num_perm=similarity.NUM_PERM)
    dropped = 0
    for i, text in enumerate(texts):
        words = unicodedata.normalize("NFKC", text).lower().split()
        m = MinHash(num_perm=similarity.NUM_PERM)
        m.update_batch([w.encode() for w in words] + [f"{a} {b}".encode() for a, b in pairwise(words)])
        if lsh.query(m):
            dropped += 1
            continue
        lsh.insert(str(i), m)
    return dropped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20,000 rows: a smoke run, not a measurement.")
    parser.add_argument("--rows", type=int, help="How many texts (default 1,000,000).")
    parser.add_argument("--naive-rows", type=int, default=20_000, help="Subsample timed the naive way.")
    parser.add_argument("--strict", action="store_true", help="Exit 1 when the budget is missed.")
    args = parser.parse_args(argv)
    n = args.rows or (20_000 if args.quick else 1_000_000)
    naive_n = min(args.naive_rows, n, 2_000 if args.quick else args.naive_rows)
    threshold = similarity.DEFAULT_THRESHOLD

    with tempfile.TemporaryDirectory(prefix="stillroom-bench-") as tmp:
        engine = make_engine(_seed.use_temp_database(Path(tmp)))
        init_db(engine)
        df, planted_exact, planted_near = tickets(n)
        csv = Path(tmp) / "tickets.csv"
        df.to_csv(csv, index=False)
        size_mb = csv.stat().st_size / 2**20
        with Session(engine, expire_on_commit=False) as session:
            demo.seed(session)
            dana = people.get_user(session, "dana")
            project = projects.get_project(session, demo.ROUTING)
            t0 = time.perf_counter()
            ds = importer.import_dataset(session, actor=dana, project=project, path=csv,
                                         mapping={"id": "ticket_id", "text": "body", "slices": ["queue"]})
            t_import = time.perf_counter() - t0
            t0 = time.perf_counter()
            child, report = dedup.apply_dedup(session, actor=dana, project=project, dataset_id=ds.id,
                                              threshold=threshold)
            t_dedup = time.perf_counter() - t0
        engine.dispose()

    sample = df["body"].iloc[:naive_n].tolist()
    fast_sample = _seed.measure(lambda: dedup.find_duplicates(df.iloc[:naive_n].rename(
        columns={"ticket_id": "id", "body": "text"}), threshold=threshold), 1)
    naive = _seed.measure(lambda: naive_near_dedup(sample, threshold), 1)
    naive_full = naive.best * n / naive_n
    total = t_import + t_dedup
    verdict = {True: "ok", False: "OVER BUDGET"}
    _seed.print_table(
        f"Import + dedup: {n:,} short texts ({size_mb:.1f} MiB CSV), {planted_exact:,} exact and "
        f"{planted_near:,} near duplicates planted, threshold {threshold}",
        [
            ("measure", "time", "budget", "verdict"),
            ("import from CSV (validate + store)", _seed.ms(t_import), "", ""),
            ("dedup exact + near (apply)", _seed.ms(t_dedup), "", ""),
            ("import + dedup", _seed.ms(total), f"< {BUDGET_S:,.0f} s", verdict[total < BUDGET_S]),
            (f"vectorised dedup, {naive_n:,} rows", _seed.ms(fast_sample.best), "", ""),
            (f"naive per-row datasketch, {naive_n:,} rows", _seed.ms(naive.best), "", ""),
            (f"naive extrapolated to {n:,} rows", _seed.ms(naive_full), "", ""),
            ("ratio naive / vectorised (same rows)", f"{naive.best / fast_sample.best:.1f}x", "", ""),
            ("ratio naive extrapolated / dedup", f"{naive_full / t_dedup:.1f}x", "", ""),
        ],
    )
    print(f"Found {report.exact:,} exact (planted {planted_exact:,}) and {report.near:,} near duplicates "
          f"(planted {planted_near:,}); kept {child.n_rows:,} of {n:,} rows.")
    return 1 if args.strict and total >= BUDGET_S else 0


if __name__ == "__main__":
    sys.exit(main())
