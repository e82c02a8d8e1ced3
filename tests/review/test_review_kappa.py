"""Agreement between validators: Cohen's kappa on the items both reviewed, checked against scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from review_helpers import add_validator
from sklearn.metrics import cohen_kappa_score

from core.review import review


@pytest.mark.parametrize("seed", range(5))
def test_kappa_matches_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    a = rng.choice(review.VERDICTS, size=200)
    b = np.where(rng.random(200) < 0.6, a, rng.choice(review.VERDICTS, size=200))
    assert review.cohen_kappa(a, b) == pytest.approx(cohen_kappa_score(a, b), abs=1e-12)


def test_kappa_is_undefined_when_both_use_one_verdict():
    assert review.cohen_kappa(["ambiguous"] * 3, ["ambiguous"] * 3) is None
    assert review.cohen_kappa([], []) is None


def test_agreement_per_pair_on_shared_items(session, demo, gated, failing_eval):
    vera = add_validator(session, demo, gated, "vera")
    rng = np.random.default_rng(7)
    a = rng.choice(review.VERDICTS, size=30)
    b = np.where(rng.random(30) < 0.7, a, rng.choice(review.VERDICTS, size=30))
    for i in range(30):
        review.record_verdict(session, actor=demo["val"], project=gated, evaluation_id=failing_eval.id,
                              item_id=f"c{i}", verdict=str(a[i]))
        review.record_verdict(session, actor=vera, project=gated, evaluation_id=failing_eval.id,
                              item_id=f"c{i}", verdict=str(b[i]))
    # An item only one of them reviewed does not count.
    review.record_verdict(session, actor=vera, project=gated, evaluation_id=failing_eval.id, item_id="c99",
                          verdict="ambiguous")
    [pair] = review.agreement(session, evaluation_id=failing_eval.id, viewer=demo["val"])
    assert (pair.validator_a, pair.validator_b, pair.n_items) == ("val", "vera", 30)
    assert pair.kappa == pytest.approx(cohen_kappa_score(a, b))


def test_no_verdicts_no_pairs(session, demo, failing_eval):
    assert review.agreement(session, evaluation_id=failing_eval.id, viewer=demo["val"]) == []
