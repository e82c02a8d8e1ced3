"""A job says how long it has run and about how long is left, from the steps done and their rate."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from core.store.jobs import Timing, duration, timing
from core.store.models import Job

T0 = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)


def _job(**kwargs) -> Job:
    return Job(project_id=1, kind="train", created_by=1, **kwargs)


def test_a_queued_job_has_not_started():
    t = timing(_job(status="queued"), now=T0)
    assert t == Timing(None, None) and t.sentence() == "not started"


def test_the_time_left_is_the_rate_so_far_applied_to_what_is_left():
    # a quarter done in 60 s: three quarters left at that rate is 180 s
    t = timing(_job(status="running", progress=0.25, started_at=T0), now=T0 + timedelta(seconds=60))
    assert (t.elapsed_s, t.left_s) == (60.0, 180.0) and t.sentence() == "1m 00s elapsed, about 3m 00s left"


def test_too_little_progress_promises_nothing():
    t = timing(_job(status="running", progress=0.01, started_at=T0), now=T0 + timedelta(seconds=30))
    assert t.left_s is None and t.sentence() == "30s elapsed"


def test_a_finished_job_counts_to_its_end_and_zone_less_times_read_as_utc():
    # SQLite hands datetimes back without a zone: read as UTC, not as the machine's local time
    naive = T0.replace(tzinfo=None)
    t = timing(_job(status="done", progress=1.0, started_at=naive, finished_at=naive + timedelta(hours=1, minutes=2)),
               now=T0 + timedelta(days=3))
    assert t == Timing(3720.0, None) and t.sentence() == "1h 02m elapsed"


def test_durations_read_as_people_say_them():
    assert [duration(x) for x in (None, 0.4, 45, 185, 3600 * 25)] == ["—", "0s", "45s", "3m 05s", "25h 00m"]
