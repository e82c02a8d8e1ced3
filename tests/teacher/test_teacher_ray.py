"""The local teacher across Ray workers, on a local Ray instance (2 CPUs, no dashboard) shut down after the module:
the in-process answers in input order, progress that moves, and a worker's failure told in one sentence."""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path

import numpy as np
import pytest
from teacher_helpers import LABELS, save_tiny_classifier, ticket_rows

from core.teacher.local import LocalAdapter
from core.teacher.ray_engine import EngineFailed, RayPlan

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                                reason="Ray is not installed (pip install -e '.[test]' brings the ray extra)")


@pytest.fixture(scope="module")
def local_ray():
    import ray

    # Workers find this checkout's core/ first, whatever the venv has installed.
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
             runtime_env={"env_vars": {"PYTHONPATH": str(REPO)}})
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_classifier(tmp_path_factory.mktemp("teacher") / "model")


def mixed_texts(n: int) -> list[str]:
    """Tickets of very different lengths in shuffled order, so sorting by length really reorders them."""
    texts = ticket_rows(n)["text"].tolist()
    rng = random.Random(7)
    texts = [t + " more words" * rng.randrange(0, 12) for t in texts]
    rng.shuffle(texts)
    return texts


def test_ray_workers_give_the_in_process_answers_in_input_order_and_progress_moves(local_ray, model_dir):
    texts = mixed_texts(40)
    here = LocalAdapter(model_dir, batch_size=2).predict(texts, labels=LABELS)
    seen: list[tuple[float, str]] = []
    # batch 2 -> chunks of 16 texts -> 3 chunks over 2 workers, more chunks than workers
    there = LocalAdapter(model_dir, batch_size=2, ray=RayPlan(workers=2)).predict(
        texts, labels=LABELS, progress=lambda f, m: seen.append((f, m)))
    assert [p.label for p in there] == [p.label for p in here]
    np.testing.assert_allclose([p.probs for p in there], [p.probs for p in here], atol=1e-6)
    assert [p.confidence for p in there] == pytest.approx([p.confidence for p in here], abs=1e-6)
    fractions = [f for f, _ in seen]
    assert fractions == [0.4, 0.8, 1.0]
    assert seen[-1][1] == "40 of 40 texts on 2 Ray workers"
    assert local_ray.is_initialized()  # a caller's own instance is used, not stopped


def test_a_worker_that_cannot_load_the_model_fails_the_run_in_one_sentence(local_ray, model_dir, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in model_dir.iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    (broken / "model.safetensors").write_bytes(b"not weights")
    adapter = LocalAdapter(broken, batch_size=4, ray=RayPlan(workers=2))  # labels read here; weights on the workers
    with pytest.raises(EngineFailed) as failed:
        adapter.predict(ticket_rows(10)["text"].tolist(), labels=LABELS)
    said = str(failed.value)
    assert said.startswith("A Ray worker could not run the teacher (SafetensorError: ")
    assert "\n" not in said and "Traceback" not in said and said.endswith("then run it again.")
