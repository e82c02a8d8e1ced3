"""What answers behind the student when it does not: the fallback target of a project in rollout.

One rule: a student's fallback is the teacher it learned from when that teacher answers live (a local model or a
chat endpoint); a teacher that was a file of outputs made elsewhere (or a combination of runs) cannot, so the
operator chooses the target explicitly, before the rollout starts: a chat endpoint on the admin's allow-list
(``STILLROOM_TEACHER_ENDPOINTS``, checked when chosen and again when served) or a person's queue (served answers
below the threshold, must-escalate answers, and everything the student does not serve go to the queue, as
``stillroom serve --escalate-to queue`` does for must-escalate answers).

The choice is stored in the project's monitoring settings (``MonitorConfig``, audited as ``rollout.fallback`` and
read back only through ``core.store.vouched``), so a choice INSERTed or edited with SQL is refused, never obeyed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlmodel import Session

from core.access.projects import require_role
from core.domain.errors import GovernanceViolation
from core.domain.roles import Role
from core.domain.validation import parse
from core.rollout import config
from core.rollout.config import ENDPOINT, QUEUE, FallbackChoice
from core.store.models import Evaluation, Project, TeacherRun, TrainingRun, User
from core.teacher import chat
from core.teacher.runs import build_adapter

LIVE_ADAPTERS = ("local", "http")  # teacher runs that can answer a request as it arrives
TEACHER = "teacher"
FILE_TEACHER_CAPTION = "A student of a file teacher needs a fallback target before it can roll out."


def answers_live(adapter: str) -> bool:
    """Whether a teacher run of ``adapter`` can answer live requests (a file or a combination cannot)."""
    return adapter in LIVE_ADAPTERS


@dataclass(frozen=True)
class Fallback:
    """The fallback target of one student: its live teacher, the chosen endpoint or queue, or nothing yet."""

    teacher_run_id: int
    teacher_adapter: str
    choice: FallbackChoice | None

    @property
    def kind(self) -> str | None:
        """teacher, endpoint or queue; None while a file teacher's student has no chosen target."""
        if answers_live(self.teacher_adapter):
            return TEACHER
        return self.choice.kind if self.choice else None

    @property
    def ready(self) -> bool:
        return self.kind is not None

    @property
    def live(self) -> bool:
        """Whether something answers live behind the student (so agreement can be measured on live traffic)."""
        return self.kind in (TEACHER, ENDPOINT)

    def sentence(self) -> str:
        """The target in words, as the Decide and Rollout pages show it."""
        teacher = f"teacher run #{self.teacher_run_id} ({self.teacher_adapter})"
        if self.kind == TEACHER:
            return f"The fallback is the student's own teacher, {teacher}, which answers live."
        if self.kind is None:
            return (f"No fallback target chosen: the student learned from {teacher}, which cannot answer live "
                    "requests. An operator chooses a live endpoint on the admin's list or a person's queue "
                    "before the rollout starts.")
        if self.kind == ENDPOINT:
            return (f"The fallback is the endpoint {self.choice.endpoint} (model {self.choice.model}), chosen "
                    f"because {teacher} cannot answer live requests.")
        return (f"The fallback is a person's queue: answers the student does not give are escalated to it, "
                f"because {teacher} cannot answer live requests.")


# --------------------------------------------------------------------------- reading


def of_run(session: Session, *, project_id: int, training_run_id: int | None) -> Fallback | None:
    """The fallback of the student of ``training_run_id`` (None: no trained student, so nothing to serve)."""
    run = session.get(TrainingRun, training_run_id) if training_run_id is not None else None
    if run is None:
        return None
    teacher_run = session.get(TeacherRun, run.teacher_run_id)
    return Fallback(teacher_run_id=teacher_run.id, teacher_adapter=teacher_run.adapter,
                    choice=config.get_config(session, project_id=project_id).fallback)


def of_evaluation(session: Session, *, evaluation_id: int | None) -> Fallback | None:
    """The fallback the student of ``evaluation_id`` would have if it shipped (the Decide page's)."""
    evaluation = session.get(Evaluation, evaluation_id) if evaluation_id is not None else None
    if evaluation is None:
        return None
    return of_run(session, project_id=evaluation.project_id, training_run_id=evaluation.training_run_id)


def refusal(fallback: Fallback | None, *, project: Project, doing: str) -> str | None:
    """The sentence that refuses ``doing`` while the student's teacher cannot answer live and none was chosen."""
    if fallback is None or fallback.ready:
        return None
    return (f"Project {project.name!r} cannot {doing}: its student learned from teacher run "
            f"#{fallback.teacher_run_id}, a {fallback.teacher_adapter} teacher that cannot answer live requests, "
            "and no fallback target is chosen. An operator chooses one first: `stillroom rollout fallback "
            f"{project.name} --queue` (a person's queue) or `--endpoint URL --model NAME` (an endpoint on the "
            "admin's list), or the Rollout page's Fallback target form.")


def require_ready(fallback: Fallback | None, *, project: Project, doing: str) -> None:
    """GovernanceViolation naming the fix when the student's teacher cannot answer live and none was chosen."""
    sentence = refusal(fallback, project=project, doing=doing)
    if sentence is not None:
        raise GovernanceViolation(sentence)


# --------------------------------------------------------------------------- the operator's choice


def _checked(choice: FallbackChoice) -> FallbackChoice:
    """The choice with its endpoint in the form called, refused unless the admin listed it and its key variable."""
    if choice.kind != ENDPOINT:
        return choice
    chat.check_key_var(choice.api_key_env)
    return choice.model_copy(update={"endpoint": chat.check_endpoint(choice.endpoint or ""),
                                     "model": (choice.model or "").strip()})


def choose(session: Session, *, actor: User, project: Project, choice: FallbackChoice | dict) -> FallbackChoice:
    """Record the operator's fallback target (audited as ``rollout.fallback``); bad input changes nothing."""
    require_role(session, actor=actor, project=project, role=Role.OPERATOR, doing="choose the fallback target")
    checked = _checked(parse(FallbackChoice, choice))
    config.save(session, actor=actor, project=project, changes={"fallback": checked.model_dump()},
                action="rollout.fallback")
    return checked


# --------------------------------------------------------------------------- serving


def serving_teacher(session: Session, *, project: Project, run: TrainingRun) -> tuple[Any, list[str], str]:
    """What ``stillroom serve`` asks behind the student: (adapter or None for a queue, labels, name shown).

    The chosen endpoint is checked against the admin's list again here: one taken off the list since it was
    chosen is refused, not called."""
    teacher_run = session.get(TeacherRun, run.teacher_run_id)
    target = of_run(session, project_id=project.id, training_run_id=run.id)
    require_ready(target, project=project, doing="be served")
    if target.kind == TEACHER:
        adapter, labels, _ = build_adapter(adapter=teacher_run.adapter, config=teacher_run.config,
                                           project_id=project.id)
        return adapter, labels, teacher_run.adapter
    if target.kind == QUEUE:
        return None, list(teacher_run.labels), QUEUE
    choice = _checked(target.choice)
    cfg = {"model": choice.model, "base_url": choice.endpoint, "api_key_env": choice.api_key_env,
           "labels": list(teacher_run.labels)}
    adapter, labels, _ = build_adapter(adapter="http", config=cfg, project_id=project.id)
    return adapter, labels, f"endpoint {choice.endpoint}"
