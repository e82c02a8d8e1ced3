"""Several teacher runs on one dataset combined into one: averaged probabilities or a majority vote.

Each run counts on a row where it gave a label; a run without probabilities
counts as a one-hot distribution on its label.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.domain.errors import InvalidInput
from core.teacher.outputs import Prediction, has_probs, to_frame

METHODS = ("mean", "vote")


@dataclass(frozen=True)
class Member:
    run_id: int
    labels: list[str]
    frame: pd.DataFrame  # teacher-run schema


def combine(members: Sequence[Member], *, method: str) -> tuple[pd.DataFrame, list[str]]:
    if method not in METHODS:
        raise InvalidInput(f"method {method!r}: use mean (averaged probabilities) or vote (majority).",
                           field="method")
    if len(members) < 2:
        raise InvalidInput("combine needs at least two teacher runs: name two or more run ids.", field="runs")
    labels = list(dict.fromkeys(label for m in members for label in m.labels))
    ids = list(dict.fromkeys(str(i) for m in members for i in m.frame["id"]))
    position = {row_id: i for i, row_id in enumerate(ids)}
    dists = np.zeros((len(members), len(ids), len(labels)))
    answered = np.zeros((len(members), len(ids)), dtype=bool)
    for r, m in enumerate(members):
        cols = [labels.index(label) for label in m.labels]
        for row in m.frame.itertuples(index=False):
            if not isinstance(row.label, str):  # unparseable: this run does not count on the row
                continue
            i = position[str(row.id)]
            answered[r, i] = True
            if has_probs(row.probs):
                dists[r, i, cols] = np.asarray(row.probs, dtype=float)
            else:
                dists[r, i, labels.index(row.label)] = 1.0
    mean = dists.sum(axis=0) / np.maximum(answered.sum(axis=0), 1)[:, None]
    if method == "vote":
        votes = np.zeros((len(ids), len(labels)))
        for r in range(len(members)):
            winners = dists[r].argmax(axis=1)
            votes[np.arange(len(ids))[answered[r]], winners[answered[r]]] += 1
        scores = votes + mean * 1e-6  # ties go to the higher averaged probability
        final = votes / np.maximum(votes.sum(axis=1, keepdims=True), 1)
    else:
        scores = final = mean
    keep = answered.any(axis=0)
    predictions, out_ids = [], []
    for i in np.flatnonzero(keep):
        k = int(scores[i].argmax())
        each = {f"run {m.run_id}": (labels[int(dists[r, i].argmax())] if answered[r, i] else None)
                for r, m in enumerate(members)}
        predictions.append(Prediction(label=labels[k], confidence=float(final[i, k]),
                                      probs=[float(x) for x in final[i]], raw=json.dumps(each)))
        out_ids.append(ids[i])
    return to_frame(out_ids, predictions), labels

