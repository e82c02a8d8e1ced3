"""Who an event is for and what it says: the one place that maps a kind of event to the roles it concerns, the
page that does the work, and its sentence. Never the actor: nobody is told about their own act."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlencode

from core.domain.errors import InvalidInput
from core.domain.roles import Role


class Kind(StrEnum):
    EVALUATION_READY = "evaluation.ready"
    SIGNOFF = "signoff.recorded"
    DECISION = "decision.taken"
    ROLLOUT_READY = "rollout.ready"
    ROLLOUT_REFUSED = "rollout.refused"
    ROLLOUT_MOVED = "rollout.moved"
    DRIFT_ALERT = "drift.alert"
    JOB_FAILED = "job.failed"


@dataclass(frozen=True)
class Rule:
    roles: frozenset[Role]  # empty: only the people the producer names (a job's submitter)
    page: str  # the url path of the page that does the work (app.py's navigation)
    says: str  # filled with project, evaluation, actor and detail


RULES: dict[Kind, Rule] = {
    Kind.EVALUATION_READY: Rule(frozenset({Role.VALIDATOR}), "review",
                                "Evaluation #{evaluation} of {project} is ready for your review ({detail})."),
    Kind.SIGNOFF: Rule(frozenset({Role.SPONSOR}), "decide",
                       "{actor} {detail} evaluation #{evaluation} of {project}: the decision is yours."),
    Kind.DECISION: Rule(frozenset({Role.DRIVER, Role.OPERATOR}), "record",
                        "{actor} decided {detail} for {project}."),
    Kind.ROLLOUT_READY: Rule(frozenset({Role.OPERATOR}), "operate",
                             "The rollout of {project} at {detail} meets every criterion: advance it when ready."),
    Kind.ROLLOUT_REFUSED: Rule(frozenset({Role.OPERATOR}), "operate",
                               "The rollout of {project} cannot advance: {detail}. Roll back or let more traffic "
                               "through."),
    # A person moved the rollout (start, advance, rollback): the sponsor who decided to ship, the driver whose
    # student it is and the other operators learn where live traffic now goes, and why.
    Kind.ROLLOUT_MOVED: Rule(frozenset({Role.SPONSOR, Role.DRIVER, Role.OPERATOR}), "operate",
                             "{actor} {detail}."),
    Kind.DRIFT_ALERT: Rule(frozenset({Role.OPERATOR, Role.DRIVER}), "operate",
                           "Live inputs of {project} drifted past the alert line: {detail}."),
    Kind.JOB_FAILED: Rule(frozenset(), "portfolio", "Your job on {project} failed: {detail}."),
}
# A failed job links to the page that runs its kind (core.store.jobs.JobKind values).
JOB_PAGES = {"teacher-run": "teacher", "train": "train", "train-search": "train", "evaluate": "evaluate"}


def parse_kind(value: str) -> Kind:
    try:
        return Kind(value.strip())
    except ValueError:
        raise InvalidInput(f"unknown notification kind {value!r}: use one of "
                           f"{', '.join(k.value for k in Kind)}.", field="kinds") from None


@dataclass(frozen=True)
class Link:
    """Where a notification sends its reader: the keys the app's deep links read (project, page, evaluation)."""

    project_id: int
    page: str
    evaluation_id: int | None = None

    @property
    def query(self) -> str:
        """The app's deep link, relative to its root: the page's address, then the project (and evaluation) it
        opens on, as ``app.py`` reads them (``review?project=3&evaluation=7``); the portfolio is the root."""
        keys: dict[str, int | str] = {"project": self.project_id}
        if self.evaluation_id is not None:
            keys["evaluation"] = self.evaluation_id
        return ("" if self.page == "portfolio" else self.page) + "?" + urlencode(keys)

    def absolute(self, app_url: str | None) -> str | None:
        return f"{app_url.rstrip('/')}/{self.query}" if app_url else None


def link_of(kind: Kind, *, project_id: int, evaluation_id: int | None, job_kind: str | None = None) -> Link:
    page = JOB_PAGES.get(job_kind or "", RULES[kind].page) if kind == Kind.JOB_FAILED else RULES[kind].page
    return Link(project_id, page, evaluation_id)


def message(kind: Kind, *, project: str, actor: str, detail: str, evaluation_id: int | None) -> str:
    return RULES[kind].says.format(project=project, actor=actor or "Stillroom", detail=detail,
                                   evaluation=evaluation_id if evaluation_id is not None else "?")
