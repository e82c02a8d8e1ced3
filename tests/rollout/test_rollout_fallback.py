"""A student distilled from a file teacher gets a path to production: its fallback target (a listed endpoint or a
person's queue) is the operator's explicit, audited choice, required before the rollout starts and obeyed when
served; a URL off the admin's list, a non-operator or a choice written with SQL changes nothing."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from fallback_helpers import ship_file_student
from monitor_helpers import traffic, write_log
from sqlmodel import select
from teacher_helpers import FakeChatServer

from core.domain.errors import GovernanceViolation, InvalidInput, PermissionDenied, RecordTampered
from core.rollout import config, fallback, rollout
from core.serving import app as serving
from core.store.config import get_settings
from core.store.models import AuditEvent, MonitorConfig, RolloutEvent

OFF_LIST = "https://llm.example/v1"


@pytest.fixture
def file_shipped(session, engine, demo, gated, tmp_path):
    """The gated project shipped on a student trained from an imported (file) teacher run."""
    ship_file_student(session, engine, demo, gated, tmp_path)
    return gated


def _start_refused(session, demo, project):
    with pytest.raises((GovernanceViolation, RecordTampered)) as exc:
        rollout.start(session, actor=demo["oscar"], project=project, reason="go")
    assert rollout.history(session, project_id=project.id) == []
    return str(exc.value)


def test_a_file_teacher_student_cannot_start_until_a_fallback_is_chosen(session, demo, file_shipped):
    target = rollout.fallback_target(session, project_id=file_shipped.id)
    assert (target.teacher_adapter, target.kind, target.ready) == ("file", None, False)
    assert "No fallback target chosen" in target.sentence()
    message = _start_refused(session, demo, file_shipped)
    assert "cannot answer live requests" in message and "stillroom rollout fallback" in message

    fallback.choose(session, actor=demo["oscar"], project=file_shipped, choice={"kind": "queue"})
    event = session.exec(select(AuditEvent).where(AuditEvent.action == "rollout.fallback")).one()
    assert json.loads(event.payload)["settings"]["fallback"]["kind"] == "queue"
    row = rollout.start(session, actor=demo["oscar"], project=file_shipped, reason="go")
    assert row.stage == "shadow"
    assert rollout.state(session, project_id=file_shipped.id).fallback == "queue"
    assert rollout.fallback_target(session, project_id=file_shipped.id).kind == "queue"


def test_a_url_off_the_admins_list_is_refused_when_chosen(session, demo, file_shipped):
    with pytest.raises(GovernanceViolation, match="not on the admin's list"):
        fallback.choose(session, actor=demo["oscar"], project=file_shipped,
                        choice={"kind": "endpoint", "endpoint": OFF_LIST, "model": "m"})
    with pytest.raises(InvalidInput, match="needs the model"):
        fallback.choose(session, actor=demo["oscar"], project=file_shipped,
                        choice={"kind": "endpoint", "endpoint": OFF_LIST})
    assert config.get_config(session, project_id=file_shipped.id).fallback is None
    _start_refused(session, demo, file_shipped)


def test_a_non_operator_cannot_choose_and_the_settings_form_cannot_smuggle_one(session, demo, file_shipped):
    with pytest.raises(PermissionDenied, match="choose the fallback target"):
        fallback.choose(session, actor=demo["dana"], project=file_shipped, choice={"kind": "queue"})
    with pytest.raises(InvalidInput, match="not a monitoring setting"):
        config.set_config(session, actor=demo["oscar"], project=file_shipped, changes={"fallback": {"kind": "queue"}})
    assert config.get_config(session, project_id=file_shipped.id).fallback is None
    _start_refused(session, demo, file_shipped)


def test_a_fallback_inserted_with_sql_is_not_vouched_and_changes_nothing(session, demo, file_shipped):
    session.add(MonitorConfig(project_id=file_shipped.id, settings={"fallback": {"kind": "queue"}},
                              updated_by=demo["oscar"].id))
    session.commit()
    with pytest.raises(RecordTampered):
        rollout.fallback_target(session, project_id=file_shipped.id)
    _start_refused(session, demo, file_shipped)


def test_an_edited_endpoint_is_not_obeyed(session, demo, file_shipped):
    fallback.choose(session, actor=demo["oscar"], project=file_shipped, choice={"kind": "queue"})
    row = session.exec(select(MonitorConfig)).one()
    row.settings = {"fallback": {"kind": "endpoint", "endpoint": OFF_LIST, "model": "m"}}
    session.add(row)
    session.commit()
    _start_refused(session, demo, file_shipped)


def test_queue_fallback_is_served_with_every_non_student_answer_queued(session, demo, file_shipped, tmp_path):
    fallback.choose(session, actor=demo["oscar"], project=file_shipped, choice={"kind": "queue"})
    rollout.start(session, actor=demo["oscar"], project=file_shipped)
    svc = serving.load_service(session, project=file_shipped, require_token=False)
    assert svc.teacher is None and svc.model["teacher"] == "queue" and svc.state.fallback == "queue"
    [answer] = _classify(svc, "please refund the invoice today")
    assert answer["served_by"] == "queue" and answer["label"] is None
    line = json.loads(next(svc.log.directory.glob("requests-*.jsonl")).read_text().splitlines()[-1])
    assert line["served_by"] == "queue" and line["teacher_asked"] is False and line["student_label"]


def test_queue_fallback_advances_on_traffic_without_a_live_agreement(session, demo, file_shipped):
    fallback.choose(session, actor=demo["oscar"], project=file_shipped, choice={"kind": "queue"})
    rollout.start(session, actor=demo["oscar"], project=file_shipped)
    write_log(file_shipped.id, queued(traffic(250, stage="shadow")))
    check = rollout.check_advance(session, project_id=file_shipped.id)
    agreement = next(c for c in check.criteria if c.name == "student-teacher agreement")
    assert agreement.status == rollout.NOT_APPLICABLE and "person's queue" in agreement.detail
    assert check.passed, [c.as_dict() for c in check.criteria]
    assert rollout.advance(session, actor=demo["oscar"], project=file_shipped).stage == "5"


def test_endpoint_fallback_is_served_and_refused_once_off_the_list(session, demo, file_shipped, monkeypatch):
    monkeypatch.setenv("STILLROOM_TEACHER_API_KEY", "sk-test")
    with FakeChatServer() as chat_server:
        chosen = fallback.choose(session, actor=demo["oscar"], project=file_shipped, choice={
            "kind": "endpoint", "endpoint": chat_server.base_url + "/", "model": "router-large"})
        assert chosen.endpoint == chat_server.base_url  # stored in the form called
        rollout.start(session, actor=demo["oscar"], project=file_shipped)
        assert rollout.state(session, project_id=file_shipped.id).fallback == "teacher"
        svc = serving.load_service(session, project=file_shipped, require_token=False)
        assert svc.model["teacher"] == f"endpoint {chat_server.base_url}"
        [answer] = _classify(svc, "the app crashes again since monday")
        assert answer.get("served_by") == "teacher", answer
        assert answer["label"] == "technical" and chat_server.calls == 1
    get_settings.cache_clear()  # the admin took the endpoint off the list: serving refuses it
    with pytest.raises(GovernanceViolation, match="not on the admin's list"):
        serving.load_service(session, project=file_shipped, require_token=False)
    assert session.exec(select(RolloutEvent)).one().stage == "shadow"


def queued(records: list[dict]) -> list[dict]:
    """Requests as a queue-fallback service logs them: a person answered, no teacher was asked."""
    return [{**r, "served_by": "queue" if r["served_by"] == "teacher" else r["served_by"], "teacher_label": None,
             "teacher_asked": False} for r in records]


def _classify(svc, *texts: str) -> list[dict]:
    async def go():
        transport = httpx.ASGITransport(app=serving.build_app(svc))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return [(await client.post("/v1/classify", json={"text": t})).json() for t in texts]

    return asyncio.run(go())
