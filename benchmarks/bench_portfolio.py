"""Benchmark: the portfolio page (budget: a script run under 300 ms with 200 projects, 50,000 audit events).

Times the page's whole script run through Streamlit's AppTest (app.py and
pages/portfolio.py, logged in as the admin, who sees every project), then
``core.decision.portfolio.portfolio`` alone, beside the naive N+1 way of
building the same rows (a few ORM queries per project). Every governance read vouches for its rows (see
core/store/vouched.py); the table says how much of each figure those checks take, and the machine's load.
Run: ``.venv/bin/python benchmarks/bench_portfolio.py [--quick] [--strict]``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import _pages
import _seed
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from core.access import projects
from core.decision import portfolio
from core.decision.portfolio import ProjectStatus
from core.gate import gate
from core.qualify import qualification
from core.store.db import make_engine
from core.store.models import RoleAssignment, User

if TYPE_CHECKING:
    from streamlit.testing.v1 import AppTest

BUDGET_S = 0.300
PAGE = "pages/portfolio.py"


def fast_rows(engine: Engine, user_id: int) -> list[ProjectStatus]:
    with Session(engine) as session:
        return portfolio.portfolio(session, user=session.get(User, user_id))


def naive_rows(engine: Engine, user_id: int) -> list[ProjectStatus]:
    """The same rows built the obvious way: a handful of queries per project (N+1)."""
    out = []
    with Session(engine) as session:
        user = session.get(User, user_id)
        for p in projects.projects_for(session, user=user):
            roles: dict[str, list[str]] = {}
            assignments = session.exec(select(RoleAssignment).where(RoleAssignment.project_id == p.id)).all()
            for a in assignments:
                roles.setdefault(a.role, []).append(session.get(User, a.user_id).username)
            roles = {r: sorted(names) for r, names in roles.items()}
            q = qualification.latest(session, project_id=p.id)
            g = gate.current(session, project_id=p.id)
            mine = {r.value for r in projects.roles_of(session, project_id=p.id, user_id=user.id)}
            # The stage and to-do rules are core's own, so both ways must give equal rows.
            stage, status = portfolio._stage(q, g)
            out.append(ProjectStatus(
                project_id=p.id, name=p.name, stage=stage, status=status, roles=roles,
                qualification_verdict=q.verdict if q else None, payback_months=q.payback_months if q else None,
                gate_version=g.version if g else None, gate_hash=g.content_hash if g else None,
                waiting=portfolio._waiting(stage, mine, roles, user.is_admin, since=portfolio.moved_at(p, q, g),
                                           created=portfolio.moved_at(p, None, None)),
            ))
    return out


def page_runner(user_id: int) -> AppTest:
    """An AppTest on the portfolio page, logged in, after its first (cold) run."""
    # AppTest's own set-up calls st outside a script run, which logs a harmless warning.
    logging.getLogger("streamlit.runtime.scriptrunner_utils.script_run_context").setLevel(logging.ERROR)
    at = _seed.logged_in_app(user_id=user_id)
    at.run()
    at.switch_page(PAGE).run()
    return at


def check_page(at: AppTest, n_projects: int) -> None:
    if at.exception:
        raise SystemExit(f"{PAGE} raised: {at.exception[0].message}")
    shown = {m.label: m.value for m in at.metric}
    if shown.get("Projects") != str(n_projects):
        raise SystemExit(f"{PAGE} shows {shown.get('Projects')!r} projects, expected {n_projects}.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 projects, 2,000 events: a smoke run.")
    parser.add_argument("--repeat", type=int, help="Measured runs per measure (median; default 10, 3 with --quick).")
    parser.add_argument("--strict", action="store_true", help="Exit 1 when the budget is missed.")
    args = parser.parse_args(argv)
    n_projects, n_events = (20, 2_000) if args.quick else (200, 50_000)
    repeat = args.repeat or (3 if args.quick else 10)
    has_page = (_seed.REPO_ROOT / PAGE).exists()

    with tempfile.TemporaryDirectory(prefix="stillroom-bench-") as tmp:
        engine = make_engine(_seed.use_temp_database(Path(tmp)))
        seeded = _seed.seed(engine, n_projects=n_projects, n_events=n_events)
        uid = seeded.admin_id
        core = _seed.measure(lambda: fast_rows(engine, uid), repeat, warmup=1)
        naive = _seed.measure(lambda: naive_rows(engine, uid), repeat, warmup=1)
        if naive.result != core.result or len(core.result) != n_projects:
            raise SystemExit("the naive rows differ from portfolio(): the benchmark compares unlike work.")
        core_vouching = _pages.vouching_per_call(lambda: fast_rows(engine, uid), repeat)
        page = cold = page_vouching = None
        if has_page:
            cold = _seed.measure(lambda: page_runner(uid), 1)
            at = cold.result
            check_page(at, n_projects)
            page = _seed.measure(at.run, repeat, warmup=1)
            check_page(at, n_projects)
            page_vouching = _pages.vouching_per_call(at.run, repeat)
        engine.dispose()

    _seed.print_table(
        f"Portfolio: {n_projects} projects, {n_events:,} audit events, as the admin "
        f"(seeded in {seeded.seconds:.1f} s), median of {repeat} after a warm-up; {_pages.load()}",
        [
            ("measure", "time", "budget", "verdict"),
            _seed.page_row(page, page=PAGE, budget_s=BUDGET_S),
            ("page script run, slowest", _seed.ms(page.worst) if page else "skipped", "", ""),
            ("first view, cold (imports, 2 runs)", _seed.ms(cold.best) if cold else "skipped", "", ""),
            ("portfolio() alone", _seed.ms(core.median), "", ""),
            ("naive N+1 queries", _seed.ms(naive.median), "", ""),
            ("ratio naive / portfolio()", f"{naive.median / core.median:.1f}x", "", ""),
            ("ratio page / portfolio()", f"{page.median / core.median:.1f}x" if page else "skipped", "", ""),
            _pages.vouching_row("vouching checks, per page run", *page_vouching, of=page.median) if page
            else ("vouching checks, per page run", "skipped", "", ""),
            _pages.vouching_row("vouching checks in portfolio()", *core_vouching, of=core.median),
        ],
    )
    print(f"  after: {_pages.load()}")
    return 1 if args.strict and (page is None or page.median >= BUDGET_S) else 0


if __name__ == "__main__":
    sys.exit(main())
