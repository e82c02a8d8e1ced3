"""In a real Chromium: the driver imports predictions on the Evaluate page, and the webhook reaches a local
receiver (the server's own sender thread posts it) while the validator finds it in their Inbox."""

from __future__ import annotations

import pytest
from browser_helpers import chromium_page, demo_server, go_to, log_in, pick_project, wait_idle
from notify_helpers import SECRET_PATH, serve

pytestmark = pytest.mark.browser

# Run in the server's environment: the routing project with a holdout and a locked gate, a webhook for
# evaluations ready for review, and the driver's predictions file (every holdout row answered right).
SEED = """
import os
from sqlmodel import Session
from eval_helpers import easy_gate, ticket_rows
from teacher_helpers import make_dataset
from core.store.db import get_engine
from core.access import people, projects
from core.data import holdout
from core.gate import gate
from core.notify import webhooks
with Session(get_engine(), expire_on_commit=False) as s:
    demo = {u: people.get_user(s, u) for u in ("admin", "sam", "dana")}
    p = projects.get_project(s, "Support ticket routing")
    ds = make_dataset(s, actor=demo["dana"], project=p, df=ticket_rows(80))
    holdout.fix_holdout(s, actor=demo["dana"], project=p, dataset_id=ds.id, fraction=0.5)
    gate.lock(s, actor=demo["sam"], project=p, spec=easy_gate(), reason="a bar for the test data")
    webhooks.add(s, actor=demo["admin"], url=os.environ["STILLROOM_WEBHOOK_URLS"], kinds=["evaluation.ready"])
    held = holdout.holdout_rows(s, project_id=p.id)
    held[["id"]].assign(student=held["queue"]).to_csv(os.environ["PREDICTIONS"], index=False)
"""


def test_a_webhook_reaches_a_local_receiver_when_an_evaluation_becomes_ready_for_review(tmp_path, monkeypatch):
    from playwright.sync_api import expect

    receiver, http = serve()
    predictions = tmp_path / "predictions.csv"
    monkeypatch.setenv("STILLROOM_WEBHOOK_URLS", receiver.url)
    monkeypatch.setenv("STILLROOM_APP_URL", "https://stillroom.example")
    monkeypatch.setenv("PREDICTIONS", str(predictions))
    server = demo_server(tmp_path, seed=SEED)
    try:
        with chromium_page(height=2600) as page:
            log_in(page, server.url, "dana", "driver-demo-pass")
            pick_project(page, "Support ticket routing")
            go_to(page, "Evaluate")
            page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(predictions))
            wait_idle(page)
            page.get_by_role("button", name="Import and evaluate").click()
            wait_idle(page)
            expect(page.get_by_test_id("stAlertContentSuccess")).to_contain_text("recorded")

            posts = receiver.wait_for(1, timeout=30)
            assert len(posts) == 1 and posts[0]["path"] == SECRET_PATH
            text = posts[0]["json"]["text"]
            assert "of Support ticket routing is ready for your review" in text
            assert "https://stillroom.example/review?project=" in text and "&evaluation=" in text

        with chromium_page(height=2000) as page:
            log_in(page, server.url, "val", "validator-demo-pass")
            go_to(page, "Inbox")
            expect(page.get_by_role("heading", name="Inbox · 1 unread")).to_be_visible()
            expect(page.get_by_text("of Support ticket routing is ready for your review")).to_be_visible()
    finally:
        server.stop()
        http.shutdown()
