"""`stillroom webhooks` and `stillroom inbox`: thin shells over core.notify; a job that fails under
`stillroom jobs run` tells its submitter."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from notify_helpers import SECRET_PATH
from sqlmodel import select

from core.cli import cli
from core.domain.errors import GateNotLocked
from core.notify import inbox
from core.notify.rules import Kind
from core.store import jobs
from core.store.models import WebhookSubscription


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_the_admin_adds_lists_and_removes_a_webhook_and_the_secret_is_never_printed(session, demo, receiver):
    added = run("--as", "admin", "webhooks", "add", receiver.url, "--kind", "signoff.recorded",
                "--project", "Comment moderation")
    assert added.exit_code == 0, added.output
    (row,) = session.exec(select(WebhookSubscription)).all()
    assert added.output.strip() == f"Webhook #{row.id} added: {row.shown} hears signoff.recorded."
    listed = run("--as", "admin", "webhooks", "list")
    assert listed.exit_code == 0 and row.shown in listed.output
    assert SECRET_PATH not in added.output + listed.output and "t0k3n" not in added.output + listed.output
    removed = run("--as", "admin", "webhooks", "remove", str(row.id))
    assert removed.exit_code == 0 and "removed" in removed.output
    assert row.shown not in run("--as", "admin", "webhooks", "list").output


def test_webhooks_refuse_a_non_admin_and_an_unlisted_url(session, demo, receiver):
    refused = run("--as", "oscar", "webhooks", "add", receiver.url)
    assert refused.exit_code == 3 and "Only an admin" in refused.stderr
    unlisted = run("--as", "admin", "webhooks", "add", "https://hooks.example.com/services/x")
    assert unlisted.exit_code == 3 and "not on the admin's list" in unlisted.stderr
    assert session.exec(select(WebhookSubscription)).all() == []


def test_the_inbox_lists_and_marks_the_persons_own_items(session, demo, moderation):
    inbox.notify(session, kind=Kind.SIGNOFF, project_id=moderation.id, actor=demo["val"], detail="approved")
    session.commit()
    (item,) = inbox.inbox(session, viewer=demo["sam"])
    shown = run("--as", "sam", "inbox")
    assert shown.exit_code == 0 and item.link.query in shown.output and "1 unread." in shown.output
    assert "0 unread." in run("--as", "dana", "inbox").output
    other = run("--as", "dana", "inbox", "read", str(item.id))
    assert other.exit_code != 0 and "you have no notification" in other.stderr
    assert run("--as", "sam", "inbox", "read", str(item.id)).exit_code == 0
    assert inbox.unread_count(session, viewer=demo["sam"]) == 0


@pytest.fixture
def failing_kind():
    @jobs.handler("test-fail")
    def fail(ctx):
        raise GateNotLocked("The gate for project 'Comment moderation' is not locked: lock it before training.")

    yield "test-fail"
    jobs.HANDLERS.pop("test-fail")


def test_a_job_that_fails_under_jobs_run_tells_its_submitter(session, demo, moderation, failing_kind):
    job = jobs.submit(session, actor=demo["dana"], project=moderation, kind=failing_kind, params={})
    result = run("--as", "dana", "jobs", "run", str(job.id))
    assert result.exit_code != 0
    (item,) = inbox.inbox(session, viewer=demo["dana"])
    assert item.kind == Kind.JOB_FAILED.value and f"job #{job.id}" in item.text and "not locked" in item.text
    assert inbox.inbox(session, viewer=demo["sam"]) == []
