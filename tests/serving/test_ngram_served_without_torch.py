"""A served n-gram student is read from its files with numpy: the serving process never imports torch for it,
the answers are the torch module's, and its files are hash-checked as every student's are."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from eval_helpers import teacher_run_with_holdout, trained_student
from serve_helpers import REPO

from core.domain.errors import ArtifactTampered
from core.ml.ngram_array import ArrayNgram
from core.ml.students import NgramStudent
from core.serving import app as app_mod
from core.store.artifacts import path_of
from core.training.runs import student_artifact

TEXTS = ["please refund the invoice today", "日本語です", "a", ""]
CHILD = """
import json, resource, sys
import core.serving.app  # what `stillroom serve` imports before it loads a student
from core.ml.ngram_array import ArrayNgram
served = ArrayNgram.load(sys.argv[1])
print(json.dumps({"probs": served.predict_proba(json.loads(sys.argv[2])).tolist(),
                  "torch": sorted(m for m in sys.modules if m == "torch" or m.startswith("torch.")),
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def test_a_saved_ngram_student_serves_in_a_process_that_never_imports_torch(tmp_path):
    import torch

    torch.manual_seed(3)
    student = NgramStudent(labels=["billing", "technical", "account"], buckets=4096, dim=16,
                           char_ngrams=(1, 2, 3, 4))
    with torch.no_grad():
        student.module.bag.weight.normal_()
    student.save(tmp_path / "s")
    done = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "s"), json.dumps(TEXTS)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["torch"] == []
    np.testing.assert_allclose(out["probs"], student.predict_proba(TEXTS), atol=1e-5)


def test_serving_loads_an_ngram_run_as_arrays_and_refuses_its_changed_files(session, engine, demo, gated, tmp_path):
    teacher = teacher_run_with_holdout(session, actor=demo["dana"], project=gated, tmp_path=tmp_path)
    run = trained_student(session, engine, actor=demo["dana"], project=gated, teacher_run=teacher)
    served = app_mod._load_student(session, run)
    assert isinstance(served, ArrayNgram)
    assert served.predict_proba(["please refund the invoice"]).shape == (1, len(served.labels))
    weights = path_of(student_artifact(session, run)) / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(ArtifactTampered):
        app_mod._load_student(session, run)


SHARE = """
import json, sys
if sys.argv[1] == "torch":
    import torch
from core.serving import worker
worker._share_cores(2)  # what each of two workers does once its models are loaded
torch = sys.modules.get("torch")
print(json.dumps({"torch": torch is not None, "threads": torch.get_num_threads() if torch else None,
                  "share": max(1, worker.default_workers() // 2)}))
"""


@pytest.mark.parametrize("loaded", ["torch", "numpy only"])
def test_workers_share_the_cores_of_torch_models_and_import_no_torch_for_an_ngram(loaded):
    done = subprocess.run([sys.executable, "-c", SHARE, loaded], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["torch"] is (loaded == "torch")
    if loaded == "torch":
        assert out["threads"] == out["share"]
