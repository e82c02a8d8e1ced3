"""Governance commands: init, demo, users, projects, roles, qualify, gate, audit."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from core.cli.base import (
    _actor,
    _engine,
    _new_password,
    _session,
    _table,
    _username,
    _viewable,
    _yes,
    cli,
    lazy,
    load_mapping,
)
from core.domain.choices import Play
from core.domain.errors import GovernanceViolation, InvalidInput

if TYPE_CHECKING:  # the imports as mypy and import-linter read them; at run time each loads on first use
    import yaml
    from sqlmodel import Session

    from core.access import people, projects, visibility
    from core.decision import portfolio
    from core.domain import gate_spec
    from core.gate import gate
    from core.qualify import qualification
    from core.store import audit, db, integrity, verification
    from core.store.models import GateVersion, Project
else:  # lazy: `stillroom audit --help` loads neither SQLAlchemy, the table models nor pandas
    people, projects, visibility, portfolio, gate_spec, gate, qualification = lazy(
        "core.access.people", "core.access.projects", "core.access.visibility", "core.decision.portfolio",
        "core.domain.gate_spec", "core.gate.gate", "core.qualify.qualification")
    audit, db, integrity, verification = lazy(
        "core.store.audit", "core.store.db", "core.store.integrity", "core.store.verification")
    (yaml,) = lazy("yaml")


@cli.command()
@click.option("--admin", "admin_name", metavar="NAME", help="Bootstrap this first admin on an empty database.")
@click.option("--display-name", help="The first admin's full name (default: the username).")
def init(admin_name: str | None, display_name: str | None) -> None:
    """Create or upgrade the database, and optionally bootstrap the first admin.

    The admin's password comes from STILLROOM_ADMIN_PASSWORD or a hidden prompt.
    """
    engine = _engine()
    click.echo(f"Database ready: {engine.url.render_as_string(hide_password=True)}")
    if admin_name is None:
        return
    with db.session_scope(engine) as session:
        if people.user_count(session) > 0:
            click.echo("The database already has accounts: no admin bootstrapped; use `stillroom users add`.")
            return
        username = people.validate_username(admin_name)
        password = _new_password("STILLROOM_ADMIN_PASSWORD", from_stdin=False, for_whom=username)
        user = people.create_user(session, actor=None, username=username,
                                  display_name=display_name or username, password=password)
    click.echo(f"Created the first admin: {user.username}.")


@cli.command()
@click.option("--people-only", is_flag=True, help="Only the people and projects: no tickets, no teacher.")
@click.option("--teacher", type=click.Choice(["background", "wait", "skip"]), default="background",
              show_default=True, help="Train the demo teacher in the background, here with a progress bar, or not.")
@click.option("--tickets", "n", type=click.IntRange(1000, 200_000), help="How many tickets to generate "
              "(default 24,000).")
@click.option("--teacher-size", type=click.Choice(["teacher", "small", "tiny"]), default="teacher",
              show_default=True, help="The demo teacher's size (tiny: seconds instead of minutes).")
@click.option("--showcase/--no-showcase", default=True, show_default=True,
              help="Also seed a project waiting on its validator and one shipped at its 5 % stage (seconds).")
def demo(people_only: bool, teacher: str, n: int | None, teacher_size: str, showcase: bool) -> None:
    """Seed the demo (idempotent): people, projects, the routing project's tickets and holdout, and a job
    that trains the demo teacher and labels the tickets with it."""
    from core.demo import seed as demo_mod  # lazy: init, users and audit need neither the demo nor its scipy

    with _session() as session:
        added = demo_mod.seed(session)
    click.echo(f"Demo seeded: {added['people']} people and {added['projects']} projects added.")
    click.echo("Demo logins (public demo passwords: never reuse them for real accounts):")
    _table(["USERNAME", "NAME", "PASSWORD", "ADMIN"],
           [(p.username, p.display_name, p.password, _yes(p.is_admin)) for p in demo_mod.DEMO_PEOPLE])
    if people_only:
        return
    with _session() as session:
        data = demo_mod.seed_data(session, n=n)
        job_id = demo_mod.submit_setup(session, size=teacher_size, n=n) if teacher != "skip" else None
    if data:
        click.echo(f"Imported the generated tickets (dataset #{data.prompts_id}), dropped duplicates "
                   f"(dataset #{data.deduped_id}), a production log (#{data.production_id}), and fixed a "
                   f"holdout of {data.holdout_rows:,} rows.")
    if showcase:
        from core.demo import projects as demo_projects

        with _session() as session:
            shown = demo_projects.seed(session, _engine())
        if shown:
            click.echo(f"{demo_projects.REVIEW!r} waits on its validator (evaluation #{shown.review_evaluation}); "
                       f"{demo_projects.SHIPPED!r} shipped and serves at stage {shown.stage} ({shown.requests} "
                       f"requests answered by the router) ({shown.seconds:.1f} s).")
    if job_id is None:
        return
    if teacher == "wait":
        from core.cli.jobs import run_with_bar

        run_with_bar(job_id, "demo teacher")
    else:
        from core.store import jobs

        follow = f"its progress shows on the Teacher page and in `stillroom --as dana jobs list {demo_mod.ROUTING!r}`."
        if jobs.start_detached(job_id) is None:  # STILLROOM_JOB_RUNNER=workers: no process was started here
            click.echo(f"The demo teacher is queued for the workers as job #{job_id}: it trains only once a "
                       "`stillroom worker` runs on a host that reaches this database (STILLROOM_JOB_RUNNER=workers); "
                       f"start one if none runs. {follow[0].upper()}{follow[1:]}")
        else:
            click.echo(f"The demo teacher trains in the background as job #{job_id} (about 1-2 minutes on 2 cores); "
                       f"{follow}")


# --------------------------------------------------------------------------- users


@cli.group()
def users() -> None:
    """Manage people (admins only)."""


@users.command("add")
@click.argument("username")
@click.option("--display-name", required=True, help="The person's full name.")
@click.option("--admin", "is_admin", is_flag=True, help="Make the new person an admin.")
@click.option("--password-stdin", is_flag=True, help="Read the password from one line of stdin.")
def users_add(username: str, display_name: str, is_admin: bool, password_stdin: bool) -> None:
    """Create an account (password from --password-stdin, STILLROOM_NEW_PASSWORD or a prompt)."""
    with _session() as session:
        actor = _actor(session)
        people.require_admin(actor)
        password = _new_password("STILLROOM_NEW_PASSWORD", from_stdin=password_stdin, for_whom=username)
        user = people.create_user(session, actor=actor, username=username, display_name=display_name,
                                  password=password, is_admin=is_admin)
    click.echo(f"Created {user.username}{' (admin)' if user.is_admin else ''}.")


@users.command("list")
def users_list() -> None:
    """List every account."""
    with _session() as session:
        listed = people.user_rows(session, actor=_actor(session))
    if listed and "is_admin" in listed[0]:  # admins only: who holds admin rights is not everyone's business
        _table(["USERNAME", "NAME", "ADMIN", "ACTIVE"],
               [(u["username"], u["display_name"], _yes(u["is_admin"]), _yes(u["is_active"])) for u in listed])
    else:
        _table(["USERNAME", "NAME", "ACTIVE"],
               [(u["username"], u["display_name"], _yes(u["is_active"])) for u in listed])


def _set_active(username: str, active: bool) -> None:
    with _session() as session:
        user = people.set_active(session, actor=_actor(session), username=username, active=active)
    click.echo(f"{user.username} is now {'active' if active else 'deactivated'}.")


@users.command("deactivate")
@click.argument("username")
def users_deactivate(username: str) -> None:
    """Deactivate an account (it can no longer log in or act)."""
    _set_active(username, False)


@users.command("activate")
@click.argument("username")
def users_activate(username: str) -> None:
    """Reactivate an account."""
    _set_active(username, True)


@users.command("admin")
@click.argument("username")
@click.option("--revoke", is_flag=True, help="Take the admin flag away instead of granting it.")
def users_admin(username: str, revoke: bool) -> None:
    """Grant (or with --revoke take away) an account's admin flag; audited."""
    with _session() as session:
        user = people.set_admin(session, actor=_actor(session), username=username, admin=not revoke)
    click.echo(f"{user.username} is {'now' if user.is_admin else 'no longer'} an admin.")


@users.command("passwd")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the password from one line of stdin.")
def users_passwd(username: str, password_stdin: bool) -> None:
    """Set a password (an admin for anyone, a person for themselves)."""
    with _session() as session:
        actor = _actor(session)
        people.get_user(session, username)
        password = _new_password("STILLROOM_NEW_PASSWORD", from_stdin=password_stdin, for_whom=username)
        people.set_password(session, actor=actor, username=username, password=password)
    click.echo(f"Password of {username} changed.")


# --------------------------------------------------------------------------- projects and roles


@cli.group("projects")
def projects_group() -> None:
    """Create and list projects."""


@projects_group.command("create")
@click.argument("name")
@click.option("--description", default="", help="What the project distils, in a sentence.")
def projects_create(name: str, description: str) -> None:
    """Create a project (admins only)."""
    with _session() as session:
        project = projects.create_project(session, actor=_actor(session), name=name, description=description)
    click.echo(f"Created project {project.name!r}.")


@projects_group.command("list")
def projects_list() -> None:
    """The projects you can open, with their step of the playbook and their people."""
    with _session() as session:
        rows = portfolio.portfolio(session, user=_actor(session))
    _table(["PROJECT", "STEP", "STATUS", "ROLES"], [
        (s.name, f"{s.stage} {s.stage_name}", s.status,
         "; ".join(f"{r}: {', '.join(names)}" for r, names in sorted(s.roles.items())))
        for s in rows
    ])


@cli.group()
def roles() -> None:
    """Assign and remove project roles (admins only)."""


@roles.command("assign")
@click.argument("project")
@click.argument("username")
@click.argument("role")
def roles_assign(project: str, username: str, role: str) -> None:
    """Give USERNAME the ROLE (sponsor, driver, validator, operator) on PROJECT."""
    with _session() as session:
        p = projects.get_project(session, project)
        projects.assign_role(session, actor=_actor(session), project=p, username=username, role=role)
    click.echo(f"{username} is now {role.strip().lower()} of {p.name!r}.")


@roles.command("remove")
@click.argument("project")
@click.argument("username")
@click.argument("role")
def roles_remove(project: str, username: str, role: str) -> None:
    """Take the ROLE on PROJECT away from USERNAME."""
    with _session() as session:
        p = projects.get_project(session, project)
        projects.remove_role(session, actor=_actor(session), project=p, username=username, role=role)
    click.echo(f"{username} is no longer {role.strip().lower()} of {p.name!r}.")


@roles.command("list")
@click.argument("project")
def roles_list(project: str) -> None:
    """Who holds which role on PROJECT."""
    with _session() as session:
        _, p = _viewable(session, project)
        held = projects.roster(session, project_ids=[p.id]).get(p.id, {})
    _table(["ROLE", "USERNAME"], [(r, name) for r, names in sorted(held.items()) for name in names])


# --------------------------------------------------------------------------- qualify


@cli.group()
def qualify() -> None:
    """Step 1: qualify the trigger."""


def _echo_assessment(a: qualification.Assessment) -> None:
    click.echo(f"Recommendation: {a.recommendation.value}")
    for reason in a.reasons + a.warnings:
        click.echo(f"  - {reason}")
    click.echo(f"Teacher cost: ${a.monthly_teacher_cost:,.2f} a month; "
               f"student: ${a.monthly_student_cost:,.2f}; saving: ${a.monthly_saving:,.2f}")
    click.echo(_payback(a.payback_months))


def _payback(months: float | None) -> str:
    return "Payback: none (no saving)" if months is None else f"Payback: {months:.1f} months"


@qualify.command("assess")
@click.option("--file", "path", required=True, help="The answers, as a .yaml or .json file.")
def qualify_assess(path: str) -> None:
    """Stillroom's recommendation for the answers in a file (records nothing)."""
    _echo_assessment(qualification.assess(load_mapping(path)))


@qualify.command("record")
@click.argument("project")
@click.option("--file", "path", required=True, help="The answers, as a .yaml or .json file.")
@click.option("--verdict", required=True, help="proceed, fix-first or do-nothing.")
@click.option("--rationale", default="", help="Why, required when the verdict overrides the recommendation.")
def qualify_record(project: str, path: str, verdict: str, rationale: str) -> None:
    """Record the sponsor's verdict on PROJECT's trigger."""
    inputs = load_mapping(path)
    with _session() as session:
        p = projects.get_project(session, project)
        row = qualification.record(session, actor=_actor(session), project=p, inputs=inputs,
                                   verdict=verdict, rationale=rationale)
    click.echo(f"Recorded qualification v{row.version} of {p.name!r}: verdict {row.verdict} "
               f"(recommended {row.recommendation}).")


@qualify.command("show")
@click.argument("project")
def qualify_show(project: str) -> None:
    """PROJECT's latest qualification."""
    with _session() as session:
        _, p = _viewable(session, project)
        rows = qualification.history(session, project_id=p.id)
        if not rows:
            raise InvalidInput(f"project {p.name!r} has not been qualified yet: its sponsor runs "
                               "`stillroom qualify record`.", field="project")
        q, by = rows[-1], _username(session, rows[-1].recorded_by)
    click.echo(f"Qualification v{q.version} of {p.name!r} ({len(rows)} recorded), "
               f"by {by} at {q.recorded_at:%Y-%m-%d %H:%M}")
    click.echo(f"Verdict: {q.verdict} (recommended {q.recommendation})")
    if q.rationale:
        click.echo(f"Rationale: {q.rationale}")
    for reason in q.reasons:
        click.echo(f"  - {reason}")
    click.echo(_payback(q.payback_months))


# --------------------------------------------------------------------------- gate


@cli.group("gate")
def gate_group() -> None:
    """Step 2: the success gate, locked before building."""


def _template_header() -> str:
    lines = ["# Stillroom success gate. Edit, then: stillroom gate lock PROJECT --file gate.yaml",
             "# quality_floor.kind:"]
    lines += [f"#   {kind.value}: {meaning}" for kind, meaning in gate_spec.FLOOR_MEANING.items()]
    lines.append("# slice_floors: one {column, value, floor, min_n} per production-critical slice")
    return "\n".join(lines) + "\n"


@gate_group.command("template")
@click.option("--play", type=click.Choice([p.value for p in Play]),
              help="The play (default: the project's qualified play with --project).")
@click.option("--project", help="Fill targets from this project's latest qualification.")
def gate_template(play: str | None, project: str | None) -> None:
    """Print a starting gate as YAML."""
    inputs: dict = {}
    if project:
        with _session() as session:
            _, p = _viewable(session, project)
            q = qualification.latest(session, project_id=p.id)
            if q is None:
                raise InvalidInput(f"project {p.name!r} has no qualification to fill from: record one "
                                   "first, or leave out --project.", field="project")
            inputs = q.inputs
    play = play or inputs.get("play")
    if not play:
        raise InvalidInput("no play given: pass --play, or --project to use its qualified play.", field="play")
    spec = gate.template(play, inputs)
    click.echo(_template_header() + yaml.safe_dump(spec, sort_keys=False), nl=False)


@gate_group.command("lock")
@click.argument("project")
@click.option("--file", "path", required=True, help="The gate, as a .yaml or .json file.")
@click.option("--reason", default="", help="Why the bar changes (required for a new version).")
def gate_lock(project: str, path: str, reason: str) -> None:
    """Lock PROJECT's success gate (a new version when one is already locked)."""
    spec = load_mapping(path)
    with _session() as session:
        p = projects.get_project(session, project)
        g = gate.lock(session, actor=_actor(session), project=p, spec=spec, reason=reason)
    click.echo(f"Locked gate v{g.version} of {p.name!r}: hash {g.content_hash}")


def _gate_or_explain(session: Session, p: Project, version: int | None) -> GateVersion:
    if version is not None:
        return gate.get_version(session, project=p, version=version)
    g = gate.current(session, project_id=p.id)
    if g is None:
        raise InvalidInput(f"project {p.name!r} has no locked gate yet: its sponsor runs `stillroom gate lock`.",
                           field="project")
    return g


@gate_group.command("show")
@click.argument("project")
@click.option("--version", type=int, help="The gate version (default: the current one).")
def gate_show(project: str, version: int | None) -> None:
    """A gate version as YAML, with its hash and whether the hash verifies."""
    with _session() as session:
        _, p = _viewable(session, project)
        g = _gate_or_explain(session, p, version)
        by = _username(session, g.locked_by)
    click.echo(f"# Gate v{g.version} of {p.name!r}, locked by {by} at {g.locked_at:%Y-%m-%d %H:%M}")
    if g.reason:
        click.echo(f"# Reason: {g.reason}")
    click.echo(yaml.safe_dump(gate.spec_of(g).model_dump(mode="json", exclude_unset=True), sort_keys=False), nl=False)
    click.echo(f"# hash: {g.content_hash}")
    if not integrity.verify_gate(g):
        raise GovernanceViolation(f"gate v{g.version} of {p.name!r} no longer matches its hash: "
                                  "it was edited outside Stillroom.")
    click.echo("# hash verifies: yes")


@gate_group.command("history")
@click.argument("project")
def gate_history(project: str) -> None:
    """Every locked version of PROJECT's gate."""
    with _session() as session:
        _, p = _viewable(session, project)
        rows = [(f"v{g.version}", f"{g.locked_at:%Y-%m-%d %H:%M}", _username(session, g.locked_by),
                 g.content_hash[:16], g.reason) for g in gate.history(session, project_id=p.id)]
    if not rows:
        click.echo(f"Project {p.name!r} has no locked gate yet.")
        return
    _table(["VERSION", "LOCKED", "BY", "HASH", "REASON"], rows)


@gate_group.command("diff")
@click.argument("project")
@click.argument("v1", type=int)
@click.argument("v2", type=int)
def gate_diff(project: str, v1: int, v2: int) -> None:
    """Criterion-level changes from gate version V1 to V2."""
    with _session() as session:
        _, p = _viewable(session, project)
        old, new = (gate.get_version(session, project=p, version=v) for v in (v1, v2))
    changes = gate.diff(old, new)
    if not changes:
        click.echo(f"Gate v{v1} and v{v2} of {p.name!r} set the same bar.")
        return
    _table(["CRITERION", "CHANGE", f"V{v1}", f"V{v2}"], [(c.path, c.change, c.old, c.new) for c in changes])


# --------------------------------------------------------------------------- audit


@cli.group("audit")
def audit_group() -> None:
    """The audit hash chain."""


@audit_group.command("verify")
@click.option("--expect-head", metavar="HASH",
              help="A head hash quoted earlier (a decision record, an exported checkpoint): fails unless it is in "
                   "the chain, and says how many events follow it.")
@click.option("--no-files", is_flag=True, help="Skip re-hashing every artifact file (the slow part).")
@click.option("--record", is_flag=True,
              help="When the full check passes, record how far it reached (a verify checkpoint, with its own audit "
                   "event), for --since.")
@click.option("--since", metavar="CHECKPOINT",
              help="Check only what follows a verify checkpoint that a full verify --record wrote ('last' or its "
                   "number), in milliseconds; nothing before it is checked again. The full check is the default.")
def audit_verify(expect_head: str | None, no_files: bool, record: bool, since: str | None) -> None:
    """Check the audit chain, its anchors and checkpoints, every recorded row and artifact (exit 3 on a problem)."""
    engine = _engine()
    if since is not None and (expect_head is not None or record):
        raise InvalidInput("--since checks only the events after a verify checkpoint: give --expect-head or "
                           "--record to the full verify, without --since.", field="since")
    if since is not None:
        report = verification.verify_since(engine, since=since)
    else:
        report = verification.verify(engine, expect_head=expect_head, files=not no_files)
    # The verdict is one sentence (stderr when it fails); further problems and the limits go to stdout.
    more = report.lines()[1:]
    if not report.ok:
        if more:
            click.echo("\n".join(more))
        raise GovernanceViolation(report.sentence())
    click.echo("\n".join(report.lines()))
    if record:
        done = verification.record_verified(engine, report)
        click.echo(f"Recorded as verify checkpoint #{done.record_id} (event #{done.event_id}): "
                   "`stillroom audit verify --since last` checks only what follows it.")


@audit_group.group("checkpoint")
def audit_checkpoint() -> None:
    """The head checkpoints written outside the database."""


@audit_checkpoint.command("export")
@click.option("--out", type=click.Path(dir_okay=False, writable=True), help="Write to this file instead of stdout.")
def audit_checkpoint_export(out: str | None) -> None:
    """Print (or write) every head checkpoint as JSON lines, to keep where the database's users cannot write."""
    engine = _engine()
    text_ = audit.export_checkpoints(engine)
    if out:
        Path(out).write_text(text_, encoding="utf-8")
        click.echo(f"{len(text_.splitlines())} checkpoint(s) of {audit.checkpoint_path(engine)} written to {out}.")
    else:
        click.echo(text_, nl=False)


@audit_group.command("log")
@click.option("--project", help="Only this project's events.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True,
              help="How many of the newest events to show.")
def audit_log(project: str | None, limit: int) -> None:
    """The newest audit events (a project's, or all of them for an admin); hidden verdicts show as recorded."""
    with _session() as session:
        actor = _actor(session)
        project_id = _viewable(session, project)[1].id if project else None
        events, total = visibility.visible_events(session, viewer=actor, project_id=project_id, limit=limit)
    rows = [(e.id, e.ts[:19].replace("T", " "), e.actor, e.action, f"{e.entity}:{e.entity_id}", e.details)
            for e in events]
    _table(["ID", "TIME", "ACTOR", "ACTION", "ENTITY", "DETAILS"], rows)
    click.echo(f"{len(events)} of {total} events shown.")
