"""Fixtures of the serving tests that run the real service."""

from __future__ import annotations

import pytest
from serve_helpers import shipped, start_stage


@pytest.fixture
def in_rollout(session, engine, demo, gated, tmp_path):
    """The gated project shipped and at stage 100 with the student answering everything (threshold 0, no
    teacher sample, nothing escalated)."""
    ev = shipped(session, engine, demo, gated, tmp_path)
    start_stage(session, actor=demo["oscar"], evaluation=ev, stage="100", threshold=0.0,
                settings={"teacher_sample_rate": 0.0, "must_escalate": []})
    return gated
