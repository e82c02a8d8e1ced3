"""The rows a student is distilled on, as the training loop takes them: texts, teacher distributions, references.

Built by ``core.training.pool`` from the database; here it is plain numpy, so the loop needs no database.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class KDData:
    """Rows to distil on: texts, the teacher's distribution and the reference where known."""

    texts: list[str]
    probs: np.ndarray  # (n, k) teacher probabilities; one-hot where the teacher gave only a label
    reference: np.ndarray  # (n,) label index, -1 where there is no reference
    labels: list[str]

    def __post_init__(self) -> None:
        # Copies: pandas 3 hands out read-only arrays, and training writes into these.
        self.probs = np.array(self.probs, dtype=np.float32)
        self.reference = np.array(self.reference, dtype=np.int64)

    @property
    def teacher_label(self) -> np.ndarray:
        return self.probs.argmax(axis=1)
