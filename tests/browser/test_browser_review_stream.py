"""The review stream in a real Chromium, driven by the keyboard only: a validator records 20 verdicts with keys 1-4
(nothing preselected), moves with the arrow keys, and the progress moves with each verdict. Prints the items per
minute of this scripted reviewer, with the machine's load (a figure to read, never asserted)."""

from __future__ import annotations

import os
import time

import pytest
from browser_helpers import (
    chromium_page,
    demo_server,
    gated_moderation_seed,
    go_to,
    log_in,
    pick_project,
    run_python,
    wait_idle,
)

pytestmark = pytest.mark.browser

SEED = gated_moderation_seed("make_evaluation(s, project=p, actor=demo['dana'], df=moderation_predictions())")

# Checks the database behind the page: 20 verdicts by val, the keys' verdicts in turn, no comment, no rating.
CHECK = """
from sqlmodel import Session, select
from core.store.db import get_engine
from core.store.models import ReviewVerdict
from core.review import review
with Session(get_engine()) as s:
    rows = s.exec(select(ReviewVerdict).order_by(ReviewVerdict.id)).all()
assert len(rows) == 20, len(rows)
assert [r.verdict for r in rows] == [review.VERDICTS[k % 4] for k in range(20)], [r.verdict for r in rows]
assert len({r.item_id for r in rows}) == 20 and all(r.comment == "" and r.rating is None for r in rows)
"""

N = 20


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = demo_server(tmp_path_factory.mktemp("browser-review-stream"), seed=SEED)
    yield srv
    srv.stop()


def test_twenty_verdicts_by_keyboard_with_nothing_preselected(server):
    from playwright.sync_api import expect

    with chromium_page(height=3000) as page:
        log_in(page, server.url, "val", "validator-demo-pass")
        pick_project(page, "Comment moderation")
        go_to(page, "Review and sign off")
        expect(page.get_by_text("Item 1 of", exact=False)).to_be_visible()
        signoff = page.locator('[data-testid="stRadio"]').filter(has_text="Your sign-off")
        expect(signoff.locator("input:checked")).to_have_count(0)  # nothing chosen for the validator
        expect(page.get_by_text("no rating").first).to_be_visible()

        page.keyboard.press("ArrowRight")  # next and previous by the arrow keys
        wait_idle(page)
        expect(page.get_by_text("Item 2 of", exact=False)).to_be_visible()
        page.keyboard.press("ArrowLeft")
        wait_idle(page)
        expect(page.get_by_text("Item 1 of", exact=False)).to_be_visible()

        start = time.perf_counter()
        for k in range(N):
            page.keyboard.press(str(k % 4 + 1))
            # The moved progress (a stale copy may stand beside it while the page reruns).
            expect(page.get_by_test_id("stProgress").filter(has_text=f"You reviewed {k + 1} of")).to_be_visible(
                timeout=30_000)
            wait_idle(page)
        elapsed = time.perf_counter() - start
    run_python(server.env, CHECK)
    print(f"\nreview stream: {N} verdicts by keyboard in {elapsed:.1f} s = {N / elapsed * 60:.0f} items per minute "
          f"(scripted reviewer, no think time; load {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores)")
