"""The driver's journey in a real Chromium: import a file, fix the holdout, run the teacher, train a
student and watch its progress until the loss curve is there."""

from __future__ import annotations

import re

import pytest
from browser_helpers import chromium_page, demo_server, go_to, log_in, pick_project, require_chromium, wait_idle

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    require_chromium()
    from teacher_helpers import save_tiny_classifier

    from data import demo_tickets

    workdir = tmp_path_factory.mktemp("browser-driver")
    tickets = demo_tickets.generate(400, 5).rename(columns={"queue": "label"})
    csv = workdir / "tickets.csv"
    tickets[["id", "text", "label", "channel"]].to_csv(csv, index=False)
    model_dir = save_tiny_classifier(workdir / "teacher-model", labels=sorted(tickets["label"].unique()),
                                     texts=tickets["text"].tolist())
    srv = demo_server(workdir)
    yield srv, csv, model_dir
    srv.stop()


def test_driver_imports_runs_the_teacher_and_trains_with_progress(setup, tmp_path):
    from playwright.sync_api import expect

    srv, csv, model_dir = setup
    with chromium_page() as page:
        log_in(page, srv.url, "dana", "driver-demo-pass")
        pick_project(page, "Support ticket routing")

        go_to(page, "Data")
        page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(csv))
        wait_idle(page)
        expect(page.get_by_text("400 rows, 4 columns (csv)")).to_be_visible(timeout=30_000)
        page.get_by_role("button", name="Import").click()
        wait_idle(page)
        expect(page.get_by_text("imported: 400 rows")).to_be_visible()
        page.get_by_role("tab", name="Datasets and duplicates").last.click()
        page.get_by_role("button", name="Find duplicates").click()
        wait_idle(page)
        expect(page.locator('[data-testid="stMetricValue"]').first).to_be_visible()
        page.get_by_role("button", name=re.compile(r"^Drop [\d,]+ duplicates$")).click()
        wait_idle(page)
        expect(page.get_by_text(re.compile(r"Dataset #2 .* stored"))).to_be_visible()
        page.get_by_role("tab", name="Holdout").last.click()
        page.get_by_role("button", name="Fix the holdout").click()
        wait_idle(page)
        expect(page.get_by_text(re.compile(r"Holdout fixed: \d+ rows")).first).to_be_visible()

        go_to(page, "Teacher")
        page.get_by_label("Model directory (a saved transformers classifier)").fill(str(model_dir))
        page.get_by_role("button", name="Start teacher run").click()
        expect(page.locator('[data-testid="stProgress"]').first).to_be_visible(timeout=30_000)
        expect(page.locator('[data-testid="stProgress"]')).to_have_count(0, timeout=90_000)
        wait_idle(page)
        page.get_by_role("tab", name="Runs").last.click()
        expect(page.get_by_text("Teacher's labels")).to_be_visible(timeout=30_000)

        go_to(page, "Train students")
        page.get_by_text("hashed word and character n-grams (fastest)").click()
        wait_idle(page)
        page.get_by_role("button", name="Start training").click()
        expect(page.locator('[data-testid="stProgress"]').first).to_be_visible(timeout=30_000)
        page.screenshot(path=str(tmp_path / "training-progress.png"))
        expect(page.locator('[data-testid="stProgress"]')).to_have_count(0, timeout=120_000)
        wait_idle(page)
        expect(page.get_by_role("combobox", name="Loss curve of")).to_have_value("run #1 (ngram tiny, done)",
                                                                                 timeout=30_000)
        expect(page.locator('[data-testid="stPlotlyChart"]').first).to_be_visible()
        page.screenshot(path=str(tmp_path / "training-done.png"))
