"""In-house Python teachers for the tests (imported by name, as an admin's allow-list names them).

``keyword_rules`` is a rule system that answers labels only; ``scored`` answers like a scikit-learn pipeline's
predict_proba, a label with a probability per label; the others break the return contract on purpose.
"""

from __future__ import annotations

from eval_helpers import KEYWORDS

CALLS: list[int] = []  # batch sizes seen, so a test can check the batching


def _label(text: str) -> str:
    words = text.split()
    return next((label for label, keys in KEYWORDS.items() if any(k in words for k in keys)), "billing")


def keyword_rules(texts: list[str]) -> list[str]:
    CALLS.append(len(texts))
    return [_label(t) for t in texts]


def scored(texts: list[str]) -> list[dict]:
    out = []
    for text in texts:
        label = _label(text)
        out.append({"label": label, "probs": {k: (0.8 if k == label else 0.1) for k in KEYWORDS}})
    return out


def unknown_label_on_third(texts: list[str]) -> list[str]:
    return [("refund-desk" if i == 2 else _label(t)) for i, t in enumerate(texts)]


def bad_probs_on_second(texts: list[str]) -> list[dict]:
    return [{"label": _label(t), "probs": {"billing": -1.0} if i == 1 else None} for i, t in enumerate(texts)]


def one_short(texts: list[str]) -> list[str]:
    return [_label(t) for t in texts][:-1]


def not_a_list(texts: list[str]) -> str:
    return "billing"
