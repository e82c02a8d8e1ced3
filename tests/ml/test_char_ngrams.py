"""An n-gram student's character n-gram lengths as a run setting: validated, handed to the featuriser, kept by
save and load, honoured by the served numpy forward pass."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.domain.errors import InvalidInput
from core.domain.validation import parse
from core.ml import students
from core.ml.config import TrainConfig
from core.ml.ngram import ArrayNgram

LABELS = ["english", "japanese"]
TEXTS = ["a cat is on the mat", "I am ok", "日本語です", "猫がいる"]


def ngram_student(chars: list[int] | None) -> students.NgramStudent:
    cfg = parse(TrainConfig, {"family": "ngram", "size": "tiny", **({"char_ngrams": chars} if chars else {})})
    student = students.new_student(cfg, labels=LABELS, texts=TEXTS)
    assert isinstance(student, students.NgramStudent)
    return student


def test_the_setting_reaches_the_featuriser_and_gives_short_words_and_unspaced_text_features():
    default, short = ngram_student(None), ngram_student([1, 2, 3, 4])
    assert default.featurizer.char_ngrams == (3, 4) and short.featurizer.char_ngrams == (1, 2, 3, 4)
    # "a" is "<a>": one 3-gram by default; 1- and 2-grams add "<", "a", ">", "<a", "a>"
    assert len(short.featurizer.features("a")) - len(default.featurizer.features("a")) == 5
    # an unspaced CJK sentence is one "word": its single characters become features of their own
    assert len(short.featurizer.features("日本語です")) > len(default.featurizer.features("日本語です")) + 5


def test_the_lengths_survive_save_and_load_and_the_served_forward_pass_uses_them(tmp_path):
    student = ngram_student([1, 2, 3, 4])
    student.save(tmp_path / "s")
    saved = json.loads((tmp_path / "s" / students.STUDENT_FILE).read_text(encoding="utf-8"))
    assert saved["featurizer"]["char_ngrams"] == [1, 2, 3, 4]
    loaded = students.load(tmp_path / "s")
    assert loaded.featurizer.char_ngrams == (1, 2, 3, 4)
    np.testing.assert_allclose(loaded.predict_proba(TEXTS), student.predict_proba(TEXTS), rtol=1e-6)
    np.testing.assert_allclose(ArrayNgram.of(loaded).predict_proba(TEXTS), student.predict_proba(TEXTS),
                               rtol=1e-5, atol=1e-6)


def test_a_student_saved_without_the_setting_loads_with_the_featurisers_default(tmp_path):
    ngram_student(None).save(tmp_path / "s")
    assert students.load(tmp_path / "s").featurizer.char_ngrams == (3, 4)


@pytest.mark.parametrize("bad", [[4, 3], [1, 1, 2], [0, 1], [7], []])
def test_lengths_that_are_not_distinct_rising_and_from_1_to_6_are_refused_naming_the_field(bad):
    with pytest.raises(InvalidInput) as err:
        parse(TrainConfig, {"family": "ngram", "char_ngrams": bad})
    assert err.value.field == "char_ngrams"
    assert str(err.value).startswith("Character n-gram lengths: give char_ngrams as distinct lengths from 1 to 6")


def test_a_transformer_is_refused_the_setting_with_the_fix():
    with pytest.raises(InvalidInput, match="Only an n-gram student takes char_ngrams: choose family ngram"):
        parse(TrainConfig, {"family": "transformer", "char_ngrams": [1, 2, 3]})
    assert parse(TrainConfig, {"family": "ngram", "char_ngrams": [2, 5, 6]}).char_ngrams == [2, 5, 6]
