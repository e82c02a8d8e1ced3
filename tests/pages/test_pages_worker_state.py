"""Issue 20: the app's job panel reads a job through core (core.store.jobs.state): one whose worker went quiet is
shown stalled, with who held it and what happens next, never as running for ever."""

from __future__ import annotations

from datetime import timedelta

from pages_helpers import app_as
from sqlalchemy import update
from sqlmodel import Session, col

from core.store import jobs
from core.store.models import Job, utcnow
from core.store.worker import claim_next

WORKER = "host-a:1:aaaaaa"


def test_the_job_panel_shows_a_job_whose_worker_went_quiet_as_stalled(engine, session, demo, moderation):
    job = jobs.submit(session, actor=demo["dana"], project=moderation, kind="demo-setup", params={"dataset_id": 1})
    jobs.hand_to_workers(job.id)

    def panel() -> tuple[list[str], list[str]]:
        at = app_as(demo["dana"], page="pages/teacher.py", project_id=moderation.id)
        bars = [bar.proto.text for bar in at.get("progress")]
        return [b for b in bars if f"job #{job.id}" in b], [w.value for w in at.warning] + [c.value for c in at.caption]

    bars, notes = panel()  # no worker has claimed it yet: the panel says one must
    assert len(bars) == 1 and bars[0].startswith(f"Demo set-up · job #{job.id} · queued · "), bars
    assert "queued: for the workers: it starts when a `stillroom worker` claims it" in notes
    assert claim_next(engine, worker=WORKER).job_id == job.id

    bars, warnings = panel()
    assert len(bars) == 1 and bars[0].startswith(f"Demo set-up · job #{job.id} · running · "), bars
    assert not any("stalled" in w for w in warnings)

    with Session(engine) as s:  # the worker went quiet ten minutes ago
        s.execute(update(Job).where(col(Job.id) == job.id).values(heartbeat_at=utcnow() - timedelta(minutes=10)))
        s.commit()
    bars, warnings = panel()
    assert len(bars) == 1 and bars[0].startswith(f"Demo set-up · job #{job.id} · stalled · "), bars
    stalled = [w for w in warnings if w.startswith("stalled: ")]
    assert len(stalled) == 1 and f"worker {WORKER} silent since " in stalled[0]
    assert "another worker will take it over" in stalled[0]
