"""Extraction: a teacher's JSON outputs checked against known records before anyone learns from them.

A known-records file holds, per id, field values that are known to be right (from a system of record: the
invoice's total in the ledger, the customer's country in the CRM). A teacher output whose field contradicts a
known value, compared under the locked gate's field rules, is dropped; the counts per field are kept.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pandas as pd

from core.domain.errors import InvalidInput
from core.domain.gate_spec import field_key
from core.domain.textsafe import csv_bytes


@dataclass(frozen=True)
class KnownCheck:
    kept: pd.DataFrame  # id, output
    dropped: pd.DataFrame  # id, output, reasons ("total: 12.00 != 12.50; ...")
    counts: dict  # total, kept, dropped, checked (outputs with a known record), by_field {field: contradicted}

    def kept_csv(self) -> bytes:
        """The kept outputs as CSV a spreadsheet shows and never runs (ids and outputs are the files' text)."""
        return csv_bytes(self.kept)

    def sentence(self) -> str:
        fields = ", ".join(f"{k} {v:,}" for k, v in self.counts["by_field"].items() if v) or "none"
        return (f"{self.counts['checked']:,} of {self.counts['total']:,} teacher outputs had a known record; "
                f"{self.counts['dropped']:,} contradicted it and were dropped (by field: {fields}); "
                f"{self.counts['kept']:,} kept.")


def check_known(outputs: pd.DataFrame, known: pd.DataFrame, *, rules: dict[str, list[str]]) -> KnownCheck:
    """Drop outputs (columns id, output: a JSON object) whose fields contradict ``known`` (column id and one
    column per known field; an empty cell is not known)."""
    for frame, need, what in ((outputs, ("id", "output"), "teacher outputs"), (known, ("id",), "known records")):
        missing = [c for c in need if c not in frame.columns]
        if missing:
            raise InvalidInput(f"the {what} have no column {missing[0]!r}: give the columns {', '.join(need)}.",
                               field=missing[0])
    records = known.assign(id=known["id"].astype(str)).drop_duplicates("id").set_index("id")
    fields = [c for c in records.columns]
    by_field = {f: 0 for f in fields}
    reasons, checked = [], 0
    for i, (rid, raw) in enumerate(zip(outputs["id"].astype(str), outputs["output"], strict=True)):
        try:
            out = json.loads(raw) if raw is not None else {}
        except json.JSONDecodeError:
            raise InvalidInput(f"teacher output row {i + 1} (id {rid!r}) is not valid JSON: write one JSON object.",
                               field="output") from None
        if rid not in records.index:
            reasons.append("")
            continue
        checked += 1
        wrong = []
        for f in fields:
            want = records.at[rid, f]
            if want is None or (isinstance(want, float) and pd.isna(want)) or str(want).strip() == "":
                continue
            key = field_key(list(rules.get(f, [])))
            got = out.get(f) if isinstance(out, dict) else None
            if key(None if got is None else str(got)) != key(str(want)):
                wrong.append(f"{f}: {got!r} is not the known {want!r}")
                by_field[f] += 1
        reasons.append("; ".join(wrong))
    reasons_s = pd.Series(reasons, index=outputs.index, dtype=str)
    drop = reasons_s.ne("")
    kept = outputs.loc[~drop, ["id", "output"]].reset_index(drop=True)
    dropped = outputs.loc[drop, ["id", "output"]].assign(reasons=reasons_s[drop]).reset_index(drop=True)
    counts = {"total": len(outputs), "checked": checked, "kept": len(kept), "dropped": len(dropped),
              "by_field": by_field}
    return KnownCheck(kept, dropped, counts)
