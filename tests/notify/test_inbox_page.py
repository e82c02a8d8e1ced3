"""The Inbox page: the person's own notifications, newest first, each a link; an unread count; mark read."""

from __future__ import annotations

from pages_helpers import app_as, by_label

from core.notify import inbox
from core.notify.rules import Kind


def test_the_inbox_page_shows_the_persons_items_with_links_and_marks_them_read(session, demo, moderation):
    for detail in ("approved", "rejected"):
        inbox.notify(session, kind=Kind.SIGNOFF, project_id=moderation.id, actor=demo["val"], detail=detail)
    session.commit()
    newest, oldest = inbox.inbox(session, viewer=demo["sam"])

    at = app_as(demo["sam"], page="pages/inbox.py")
    assert at.title[0].value.endswith("Inbox · 2 unread")
    shown = [m.value for m in at.markdown if "?project=" in m.value]
    assert len(shown) == 2 and "rejected" in shown[0] and "approved" in shown[1]
    assert f"]({newest.link.query})" in shown[0]

    at.button(key=f"read_{newest.id}").click().run()
    assert not at.exception, at.exception
    assert at.title[0].value.endswith("Inbox · 1 unread")
    assert [i.read for i in inbox.inbox(session, viewer=demo["sam"])] == [True, False]
    by_label(at.button, "Mark all read").click().run()
    assert inbox.unread_count(session, viewer=demo["sam"]) == 0


def test_another_person_sees_none_of_it(session, demo, moderation):
    inbox.notify(session, kind=Kind.SIGNOFF, project_id=moderation.id, actor=demo["val"], detail="approved")
    session.commit()
    at = app_as(demo["dana"], page="pages/inbox.py")
    assert at.title[0].value.endswith("Inbox")
    assert not [m.value for m in at.markdown if "?project=" in m.value]
    assert not [b for b in at.button if b.label == "Mark read"]


def test_the_admin_adds_a_webhook_on_the_page(session, demo, receiver):
    at = app_as(demo["admin"], page="pages/inbox.py")
    by_label(at.text_input, "Webhook URL").input(receiver.url)
    by_label(at.button, "Add webhook").click().run()
    assert not at.exception, at.exception
    assert at.success[0].value.startswith("Webhook #") and "t0k3n" not in at.success[0].value
    by_label(at.text_input, "Webhook URL").input("https://elsewhere.example/hook")
    by_label(at.button, "Add webhook").click().run()
    assert "not on the admin's list" in at.error[0].value
