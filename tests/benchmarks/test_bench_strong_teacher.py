"""The strong-teacher benchmark runs the default flow end to end on four languages: every transformer candidate
evaluated on the holdout with its start and losses, the layer losses against soft labels alone for the best one,
and the goal line (timings never asserted)."""

from __future__ import annotations

import re

import pytest
from test_benchmarks_smoke import assert_figures, run_quick

# run, name, val, holdout, kept %, agreement, p95, teacher p95, ratio, seconds, epochs, then start; losses
ROW = (r"^  #\s*\d+  {name}\s+[\d.]+\s+[\d.]+\s+[\d.]+%\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+[\d.]+x\s+\d+"
       r"\s+\d+  {rest}")


@pytest.mark.timeout(400)  # a small teacher and five small students on shared cores
def test_the_benchmark_evaluates_every_transformer_candidate_and_compares_starts_and_losses():
    out = run_quick("bench_strong_teacher.py", timeout=360)
    assert re.search(r"ChatterBot corpus, 4 languages: 160 unique utterances, \d+ to train on, \d+ in the imported "
                     r"test split \(the holdout\)\.", out), out
    assert re.search(r"^Teacher BERT teacher: trained here in \d+ s", out, re.MULTILINE), out
    # Every candidate of the search's transformer family, with where it started and which losses trained it.
    assert re.search(ROW.format(name=r"tiny", rest=r"config; soft labels \(T 2, α 0\.5\) alone"), out, re.MULTILINE)
    assert re.search(ROW.format(name=r"tiny pre-trained here", rest="pre-trained here; soft labels"), out, re.MULTILINE)
    assert re.search(ROW.format(name=r"half-teacher", rest="teacher layers; soft labels"), out, re.MULTILINE), out
    # The best one's size and start with the layer losses (from the search, or trained again and marked *).
    best = r"\S+(?: pre-trained here)?"
    assert re.search(ROW.format(name=rf"{best} \+ hidden states(?: \*)?",
                                rest=r"[\w ]+; soft labels \(T 2, α 0\.5\) \+ hidden states \(weight 1;"),
                     out, re.MULTILINE), out
    assert re.search(ROW.format(name=rf"{best} \+ hidden states \+ attention \*", rest=r".* \+ attention \(weight 1;"),
                     out, re.MULTILINE), out
    assert_figures(out, ["transformer tiny pre-trained here / from scratch",
                         "transformer tiny pre-trained here / from scratch, agreement",
                         "teacher holdout accuracy", "best transformer holdout accuracy",
                         "accuracy retained (student / teacher)", "teacher p95 (local adapter)",
                         "best transformer p95 (lean path)", "p95 ratio teacher / student",
                         "p50 ratio teacher / student", "teacher training time (when it was trained)",
                         "default search time (all candidates)"])
    assert re.search(r"transformer half-teacher \(teacher's layers\) / transformer \w+ from scratch\s+[\d.]+x", out)
    assert re.search(r"^  transformer \S+.* \+ hidden states \+ attention / soft labels alone\s+[\d.]+x$", out,
                     re.MULTILINE), out
    assert re.search(r"^Goal \(>= 98% of the teacher's holdout accuracy at >= 5x lower p95\): (met|NOT met) "
                     r"\([\d.]+%, [\d.]+x\); load average [\d.]+", out, re.MULTILINE), out
