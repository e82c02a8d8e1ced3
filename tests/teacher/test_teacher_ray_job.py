"""The Ray engine as a setting of the local teacher: chosen in the CLI and on the Teacher page, checked at submit,
recorded with the run; and the in-process default, which never imports Ray."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from pages_helpers import app_as, by_label
from sqlmodel import func, select
from teacher_helpers import make_dataset, routing, save_tiny_classifier, ticket_rows

from core.cli import cli
from core.domain.errors import InvalidInput
from core.domain.validation import parse
from core.store.models import Job, TeacherRun
from core.teacher import ray_engine, runs
from core.teacher.config import LocalConfig

REPO = Path(__file__).resolve().parents[2]
PROJECT = "Support ticket routing"
needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                               reason="Ray is not installed (pip install -e '.[test]' brings the ray extra)")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_classifier(tmp_path_factory.mktemp("teacher") / "model")


@pytest.fixture
def dataset(session, demo):
    return make_dataset(session, actor=demo["dana"], project=routing(session), df=ticket_rows(24))


def teacher_run(*args: str):
    return CliRunner().invoke(cli, ["--as", "dana", "teacher", "run", PROJECT, *args])


def jobs_count(session) -> int:
    session.expire_all()
    return session.exec(select(func.count()).select_from(Job)).one()


@needs_ray
def test_cli_engine_ray_records_the_engine_and_gives_the_in_process_outputs(session, dataset, model_dir):
    import ray

    common = ["--dataset", str(dataset.id), "--model-dir", str(model_dir), "--batch-size", "4"]
    here = teacher_run(*common)
    assert here.exit_code == 0, here.output
    # No Ray instance is running: the engine starts a local one for the run and stops it after.
    there = teacher_run(*common, "--engine", "ray", "--ray-workers", "2")
    assert there.exit_code == 0, there.output + there.stderr
    assert "Teacher run #2 (local): 24 rows, 0 unparseable" in there.output
    assert not ray.is_initialized()
    session.expire_all()
    first, second = session.get(TeacherRun, 1), session.get(TeacherRun, 2)
    assert first.config["engine"] == "in-process" and "ray_workers" not in first.config
    assert (second.config["engine"], second.config["ray_workers"]) == ("ray", 2)
    assert "ray_address" not in second.config  # a local instance: no address given
    a, b = runs.load_outputs(session, first), runs.load_outputs(session, second)
    assert a["id"].tolist() == b["id"].tolist() and a["label"].tolist() == b["label"].tolist()
    np.testing.assert_allclose(np.stack(a["probs"]), np.stack(b["probs"]), atol=1e-6)
    assert second.stats["label_counts"] == first.stats["label_counts"]


@needs_ray
@pytest.mark.parametrize("address", ["127.0.0.1:1", "ray://127.0.0.1:1"])
def test_a_cluster_that_does_not_answer_is_one_sentence_at_once(address):
    """Ray itself retries an unreachable head for minutes: the run says so within seconds instead."""
    with pytest.raises(InvalidInput) as refused:
        with ray_engine.connected(ray_engine.RayPlan(address=address)):
            pass
    assert str(refused.value).startswith(f"ray_address: the Ray cluster at {address!r} does not answer (")
    assert refused.value.field == "ray_address"


@pytest.mark.parametrize(("extra", "said"), [
    (["--ray-workers", "2"], "(ray_address, ray_workers) are settings of the Ray engine: add engine \"ray\""),
    (["--engine", "ray", "--ray-address", "http://head:8265"],
     "The Ray address (ray_address) 'http://head:8265' is not one Ray accepts: give \"auto\""),
    (["--engine", "ray", "--ray-workers", "0"], "Ray workers"),
])
def test_engine_settings_that_do_not_fit_are_refused_at_submit_and_queue_nothing(session, dataset, model_dir, extra,
                                                                                 said):
    result = teacher_run("--dataset", str(dataset.id), "--model-dir", str(model_dir), *extra)
    assert result.exit_code == 2 and said in result.stderr, result.stderr
    assert jobs_count(session) == 0


def test_a_missing_ray_is_one_sentence_naming_the_install_and_queues_nothing(session, dataset, model_dir,
                                                                            monkeypatch):
    monkeypatch.setattr(ray_engine.importlib.util, "find_spec", lambda name: None)
    result = teacher_run("--dataset", str(dataset.id), "--model-dir", str(model_dir), "--engine", "ray")
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == ("error: engine 'ray': Ray is not installed where Stillroom runs: pip install "
                                     "'stillroom[ray]', or run the teacher with engine 'in-process'.")
    assert jobs_count(session) == 0


def test_the_engine_settings_are_typed_and_the_addresses_a_cluster_has_are_accepted():
    for address in ("auto", "ray://head.example:10001", "10.0.0.5:6379"):
        cfg = parse(LocalConfig, {"model_dir": "m", "engine": "ray", "ray_address": address, "ray_workers": 8})
        assert ray_engine.plan_of(cfg.model_dump()) == ray_engine.RayPlan(address=address, workers=8)
    assert parse(LocalConfig, {"model_dir": "m"}).engine == "in-process"
    assert ray_engine.plan_of({"model_dir": "m", "engine": "ray"}) == ray_engine.RayPlan(address=None, workers=2)
    with pytest.raises(InvalidInput, match="Engine"):
        parse(LocalConfig, {"model_dir": "m", "engine": "spark"})


def test_the_teacher_page_sends_the_ray_settings_to_core(demo, session, model_dir):
    make_dataset(session, actor=demo["dana"], project=routing(session))
    at = app_as(demo["dana"], page="pages/teacher.py", project_id=routing(session).id)
    assert not [t for t in at.text_input if t.label == "Ray address"]  # in-process: no Ray fields
    by_label(at.radio, "Run the batches").set_value("ray").run()
    by_label(at.text_input, "Model directory (a saved transformers classifier)").set_value(str(model_dir))
    by_label(at.text_input, "Ray address").set_value("not an address")  # a form: sent with its button
    by_label(at.button, "Start teacher run").click().run()
    # core's refusal came back: the page sent engine "ray" and the address as typed
    assert any("(ray_address) 'not an address' is not one Ray accepts" in e.value for e in at.error), at.error
    assert jobs_count(session) == 0


# Builds a tiny teacher, answers with it in this process, checks Ray settings and loads the CLI's teacher command:
# Ray must stay unimported through all of it.
NO_RAY = """
import json, sys
sys.path.insert(0, "tests")
from pathlib import Path
from teacher_helpers import LABELS, save_tiny_classifier
from core.cli import cli
from core.teacher import runs
from core.teacher.config import LocalConfig
from core.teacher.local import LocalAdapter
cli.main(["teacher", "run", "--help"], prog_name="stillroom", standalone_mode=False)
LocalConfig(model_dir="m", engine="ray", ray_address="auto", ray_workers=3)
model = save_tiny_classifier(Path(sys.argv[1]) / "model")
out = LocalAdapter(model, batch_size=2).predict(["an invoice", "the app crashes"], labels=LABELS)
print("@" + json.dumps({"answers": len(out), "ray": sorted(m for m in sys.modules if m.split(".")[0] == "ray")}))
"""


def test_the_in_process_path_and_the_cli_never_import_ray(tmp_path):
    done = subprocess.run([sys.executable, "-c", NO_RAY, str(tmp_path)], capture_output=True, text=True, cwd=REPO,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    [line] = [x for x in done.stdout.splitlines() if x.startswith("@")]
    assert json.loads(line[1:]) == {"answers": 2, "ray": []}
