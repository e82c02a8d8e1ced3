"""Cheap baselines a student must be worth more than: the majority class, and TF-IDF with logistic regression.

Both learn from the training pool (never the holdout): the reference answer where a row has one,
else the teacher's label.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Baseline:
    name: str
    predictions: list[str]  # one per holdout text


def targets(*, reference: np.ndarray, teacher_label: np.ndarray, labels: Sequence[str]) -> list[str]:
    """The label each training row teaches: its reference where known (index >= 0), else the teacher's."""
    chosen = np.where(reference >= 0, reference, teacher_label)
    return [labels[i] for i in chosen.tolist()]


def majority(train_labels: Sequence[str], texts: Sequence[str]) -> Baseline:
    # Ties go to the alphabetically first label so the baseline is the same on every run.
    counts = Counter(train_labels)
    top = min(counts, key=lambda label: (-counts[label], label))
    return Baseline("majority", [top] * len(texts))


def tfidf(train_texts: Sequence[str], train_labels: Sequence[str], texts: Sequence[str],
          *, seed: int = 0) -> Baseline:
    """Word 1-2 grams, TF-IDF weighted, into a logistic regression (scikit-learn)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    if len(set(train_labels)) < 2:  # logistic regression needs two classes; one class is the majority baseline
        return Baseline("tfidf", majority(train_labels, texts).predictions)
    model = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True),
                          LogisticRegression(max_iter=1000, random_state=seed))
    model.fit(list(train_texts), list(train_labels))
    return Baseline("tfidf", [str(p) for p in model.predict(list(texts))])
