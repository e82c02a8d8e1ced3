"""The README's story of the demo is what `stillroom demo` does: the routing project's first student passes on
aggregate accuracy, misses the rare legal_compliance queue's floor and misses too many severe tickets, so the gate
fails. The demo's setup runs on one thread with torch's deterministic algorithms and a tokenizer built the same way
in every process, so the figures are the same on every run.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner
from sqlmodel import select

from core.cli import cli
from core.demo import seed as demo_mod
from core.demo import tickets as demo_tickets
from core.domain.criteria import FAIL, PASS
from core.evaluation import runs as evaluations
from core.store.models import Evaluation, Job

# The story as the README tells it, measured on the full demo (24,000 tickets, the two-layer teacher).
# Counts are exact here; on another CPU (other vector instructions add floats in another order) a borderline
# ticket may flip, so each count may move by TOLERANCE tickets. The holdout's sizes and every verdict are exact.
TOLERANCE = 2
STORY = {
    "quality floor: accuracy": (PASS, 3819, 3971),  # aggregate accuracy 0.96
    "slice queue=legal_compliance: accuracy": (FAIL, 56, 67),  # 0.84 against its 0.9 floor
    "slice tier=enterprise: accuracy": (PASS, 484, 500),
    "slice language=de: accuracy": (PASS, 377, 393),
    "severe classes missed": (FAIL, 49, 589),  # 0.083 against the 0.05 ceiling
}
TEACHER_ACCURACY = 0.973  # held out from its own 24,000 tickets


@pytest.fixture(scope="module")
def story(tmp_path_factory, request):
    """`stillroom demo --teacher wait` at its full size (without the two showcase projects, which are not part
    of this story): the teacher, its labels, the first student and its evaluation."""
    from core.store import config, db

    home = tmp_path_factory.mktemp("story")
    patch = pytest.MonkeyPatch()
    request.addfinalizer(patch.undo)
    patch.setenv("DATABASE_URL", f"sqlite:///{home / 'stillroom.db'}")
    patch.setenv("STILLROOM_DATA_DIR", str(home))
    config.get_settings.cache_clear()
    db.get_engine.cache_clear()
    request.addfinalizer(db.get_engine.cache_clear)
    request.addfinalizer(config.get_settings.cache_clear)
    assert CliRunner().invoke(cli, ["init"]).exit_code == 0
    result = CliRunner().invoke(cli, ["demo", "--teacher", "wait", "--no-showcase"])
    assert result.exit_code == 0, result.output
    with db.session_scope(db.get_engine()) as session:
        job = session.exec(select(Job).where(Job.kind == demo_mod.SETUP_JOB)).one()
        evaluation = session.exec(select(Evaluation)).one()
        report = evaluations.load_report(session, evaluation)
        return job.result, evaluation.passed, report


@pytest.mark.timeout(900)  # the whole demo setup: about a minute and a half of CPU, more on shared cores
def test_the_gate_fails_on_the_rare_queue_and_the_severe_misses_not_on_aggregate_accuracy(story):
    _, passed, report = story
    verdicts = {c.name: c for c in report.criteria}
    assert not passed
    assert {name: verdicts[name].status for name in STORY} == {name: want[0] for name, want in STORY.items()}
    failing = {c.name for c in report.criteria if c.status == FAIL}
    assert failing == {"slice queue=legal_compliance: accuracy", "severe classes missed"}


def test_the_story_figures_are_the_readmes(story):
    _, _, report = story
    verdicts = {c.name: c for c in report.criteria}
    for name, (_, k, n) in STORY.items():
        got = verdicts[name]
        assert got.n == n, name
        assert abs(got.value * n - k) <= TOLERANCE + 1e-6, f"{name}: {got.value * n:.0f} of {n}, told {k}"
    assert verdicts["slice queue=legal_compliance: accuracy"].threshold == 0.9
    assert verdicts["severe classes missed"].threshold == 0.05
    assert report.severe.classes == ["legal_compliance", "refunds"]


def test_the_teacher_is_trained_here_and_beats_its_student(story):
    result, _, report = story
    assert result["teacher_accuracy"] == pytest.approx(TEACHER_ACCURACY, abs=TOLERANCE / 1600)
    assert report.student.accuracy < result["teacher_accuracy"]
    assert result["seconds"] > 0 and result["cpu_seconds"] > 0  # the README's figure for the demo comes from here


PRINT_VOCAB = """
import hashlib, json
from core.demo import tickets
from core.ml import build
tok = build.fixed_tokenizer(tickets.generate(1500, 3)["text"].tolist(), max_length=64)
print(hashlib.sha256(json.dumps(sorted(tok.get_vocab().items())).encode()).hexdigest())
"""


def test_the_teachers_tokenizer_is_the_same_in_every_process():
    # The trained WordPiece tokenizer breaks ties in hash-map order, so it differed from process to process and
    # with it the teacher; the demo's is built from counts alone.
    vocabularies = {subprocess.run([sys.executable, "-c", PRINT_VOCAB], check=True, capture_output=True,
                                   text=True).stdout for _ in range(2)}
    assert len(vocabularies) == 1 and len(vocabularies.pop().strip()) == 64


def test_the_demo_teacher_trains_the_same_twice(tmp_path):
    import torch

    from core.demo import teacher as demo_teacher
    from core.ml import build

    rows = demo_tickets.generate(300, 8)
    first, second = (demo_teacher.train_teacher(rows, tmp_path / name, size="tiny", epochs=2, batch_size=16)
                     for name in ("a", "b"))
    assert first.accuracy == second.accuracy
    a, b = (build.load_classifier(r.path).state_dict() for r in (first, second))
    assert all(torch.equal(a[key], b[key]) for key in a)
    assert not torch.are_deterministic_algorithms_enabled()  # the process-wide setting is given back


def test_the_readme_tells_the_story_the_test_checks():
    # The story's counts are written once (STORY); the README must say exactly those, so neither drifts alone.
    from pathlib import Path

    readme = " ".join((Path(__file__).resolve().parents[2] / "README.md").read_text().split())
    legal, severe = STORY["slice queue=legal_compliance: accuracy"], STORY["severe classes missed"]
    assert f"({legal[1] / legal[2]:.2f}: {legal[1]} of {legal[2]} holdout tickets) misses its 0.9 floor" in readme
    assert f"missed {severe[1] / severe[2]:.1%} of the time ({severe[1]} of {severe[2]})".replace("%", " %") in readme
