"""A file teacher's student on the pages: the missing fallback target warned about on Teacher, Decide and
Rollout, Start disabled with the reason until the operator chooses one in the Rollout page's form."""

from __future__ import annotations

import pytest
from fallback_helpers import ship_file_student
from pages_helpers import app_as, by_label, texts

from core.rollout import config, fallback, rollout


@pytest.fixture
def file_shipped(session, engine, demo, gated, tmp_path):
    ship_file_student(session, engine, demo, gated, tmp_path)
    return gated


def test_the_operator_chooses_a_fallback_before_start_is_offered(demo, session, file_shipped):
    at = app_as(demo["oscar"], page="pages/operate.py", project_id=file_shipped.id)
    assert any("No fallback target chosen" in w for w in texts(at.warning))
    assert any("stillroom serve` refuses" in w for w in texts(at.warning))
    assert by_label(at.button, "Apply").disabled
    assert any("Start is disabled until a fallback target is chosen" in c for c in texts(at.caption))

    by_label(at.button, "Choose the fallback target").click().run()  # nothing chosen: refused, nothing stored
    assert at.error and config.get_config(session, project_id=file_shipped.id).fallback is None
    by_label(at.radio, "Fallback target").set_value(fallback.ENDPOINT)
    by_label(at.text_input, "Endpoint URL (for an endpoint)").input("https://llm.example/v1")
    by_label(at.text_input, "Model (for an endpoint)").input("router-large")
    by_label(at.button, "Choose the fallback target").click().run()
    assert "not on the admin's list" in at.error[0].value
    assert config.get_config(session, project_id=file_shipped.id).fallback is None

    by_label(at.radio, "Fallback target").set_value(fallback.QUEUE)
    by_label(at.button, "Choose the fallback target").click().run()
    assert any("Fallback target chosen: queue." in s for s in texts(at.success))
    assert not by_label(at.button, "Apply").disabled
    assert any("a person's queue" in c for c in texts(at.caption))
    by_label(at.button, "Apply").click().run()
    assert rollout.current_stage(session, project_id=file_shipped.id) == "shadow"


def test_decide_and_teacher_pages_warn_about_the_file_teacher(demo, file_shipped):
    at = app_as(demo["sam"], page="pages/decide.py", project_id=file_shipped.id)
    assert any("Fallback target: No fallback target chosen" in w for w in texts(at.warning))
    at = app_as(demo["dana"], page="pages/teacher.py", project_id=file_shipped.id)
    assert any(fallback.FILE_TEACHER_CAPTION in c for c in texts(at.caption))
