"""Notifications: when work becomes someone's, tell them in their inbox and on the admin's webhooks.

``rules`` says who an event is for and what it says; ``inbox`` records it (``notify``) and shows a person theirs;
``webhooks`` keeps the admin's subscriptions on the allow-list; ``delivery`` posts them, retried with backoff,
each try logged. The producers (evaluation, review, decision, rollout, jobs) call ``inbox.notify`` once, where
their event is recorded.
"""
