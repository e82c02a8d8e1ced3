"""Every reader of a governance row goes through ``core.store.vouched`` (issue 16).

Attacks: an insider with raw database access INSERTs a threshold proposal (threshold 0), a CLI or serving token,
or UPDATEs a revoked token back to life. Each forged row must be ignored by the consumer that would use it, not
only reported by ``audit verify`` afterwards. The last test reads core/ and pages/ and fails when any module
reads a governed table around the reader module, so a new consumer cannot skip the vouching.
"""

from __future__ import annotations

import ast
import hashlib
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from review_helpers import approve, review_items
from sqlalchemy import text

from core.access import tokens
from core.cli import cli
from core.decision import decision
from core.domain import hashing
from core.domain.errors import GovernanceViolation, RecordTampered
from core.review import review
from core.rollout import rollout
from core.serving.app import Refused, check_token
from core.store import vouched
from core.store.config import get_settings

ROOT = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------- forged rows


def _forge_threshold(session, evaluation, threshold: float = 0.0) -> None:
    session.execute(text(
        "INSERT INTO threshold_proposal (project_id, evaluation_id, threshold, served_share, student_accuracy, "
        "fallback_rate, blended_cost_per_1k, created_by, created_at) VALUES (:p, :e, :t, 1.0, 0.5, 0.0, 0.4, "
        ":u, '2026-01-01 00:00:00')"), {"p": evaluation.project_id, "e": evaluation.id, "t": threshold,
                                        "u": evaluation.created_by})
    session.commit()


def _forge_token(session, *, kind: str, user_id: int, project_id: int | None) -> str:
    secret = ("stc_" if kind == tokens.CLI else "sts_") + "forged-by-raw-sql-0123456789"
    session.execute(text(
        "INSERT INTO access_token (kind, name, token_hash, prefix, user_id, project_id, created_at) "
        "VALUES (:k, 'forged', :h, :pre, :u, :p, '2026-01-01 00:00:00')"),
        {"k": kind, "h": hashlib.sha256(secret.encode()).hexdigest(), "pre": secret[:10], "u": user_id,
         "p": project_id})
    session.commit()
    return secret


def _cli(*args: str):
    get_settings.cache_clear()  # the environment as this command would read it
    return CliRunner().invoke(cli, list(args))


@pytest.fixture
def shipped(session, demo, gated, passing_eval):
    """The gated moderation project shipped on an approved evaluation whose only genuine threshold is 0.7."""
    approve(session, demo, gated, passing_eval, threshold=0.7)
    decision.decide(session, actor=demo["sam"], project=gated, decision="ship", rationale="passes",
                    evaluation_id=passing_eval.id)
    return passing_eval


def test_an_inserted_threshold_of_zero_is_not_what_the_rollout_starts_with(session, demo, gated, shipped):
    _forge_threshold(session, shipped, threshold=0.0)
    assert [t.threshold for t in review.threshold_proposals(session, evaluation_id=shipped.id)] == [0.7]
    event = rollout.start(session, actor=demo["oscar"], project=gated)
    assert event.threshold == 0.7


def test_an_inserted_threshold_does_not_stand_in_for_a_proposed_one(session, demo, gated, passing_eval):
    for item in review_items(session, passing_eval, column="category", value="threat", n=5):
        review.record_verdict(session, actor=demo["val"], project=gated, evaluation_id=passing_eval.id,
                              item_id=item, verdict="student-right", comment="")
    review.sign_off(session, actor=demo["val"], project=gated, evaluation_id=passing_eval.id, approve=True,
                    comment="looked at the threats")
    _forge_threshold(session, passing_eval, threshold=0.0)
    with pytest.raises(GovernanceViolation, match="threshold"):
        decision.decide(session, actor=demo["sam"], project=gated, decision="ship", rationale="passes",
                        evaluation_id=passing_eval.id)


def test_the_payback_figure_ignores_an_inserted_threshold(session, demo, gated, shipped):
    from core.evaluation.runs import load_report

    report = load_report(session, shipped)
    before = decision.payback(session, project=gated, evaluation=shipped, report=report)
    _forge_threshold(session, shipped, threshold=0.0)
    after = decision.payback(session, project=gated, evaluation=shipped, report=report)
    assert after == before


def test_an_inserted_cli_token_does_not_act_as_the_admin(engine, session, demo, monkeypatch):
    secret = _forge_token(session, kind=tokens.CLI, user_id=demo["admin"].id, project_id=None)
    monkeypatch.setenv("STILLROOM_TOKEN", secret)
    who = _cli("whoami")
    assert who.exit_code == 2 and "unknown or revoked" in who.stderr
    assert _cli("users", "list").exit_code == 2


def test_a_revoked_cli_token_updated_back_to_life_stays_dead(engine, session, demo, monkeypatch):
    made = tokens.create_cli_token(session, user=demo["dana"], name="laptop")
    tokens.revoke_cli_token(session, secret=made.secret)
    session.execute(text("UPDATE access_token SET revoked_at = NULL, revoked_by = NULL WHERE id = :i"),
                    {"i": made.row.id})
    session.commit()
    monkeypatch.setenv("STILLROOM_TOKEN", made.secret)
    who = _cli("whoami")
    assert who.exit_code == 2 and "unknown or revoked" in who.stderr


def test_serving_refuses_an_inserted_or_revived_serving_token(session, demo, moderation):
    genuine = tokens.create_serve_token(session, actor=demo["oscar"], project=moderation, name="client")
    revived = tokens.create_serve_token(session, actor=demo["oscar"], project=moderation, name="old client")
    tokens.revoke_serve_token(session, actor=demo["oscar"], project=moderation, token_id=revived.row.id)
    session.execute(text("UPDATE access_token SET revoked_at = NULL WHERE id = :i"), {"i": revived.row.id})
    session.commit()
    forged = _forge_token(session, kind=tokens.SERVE, user_id=demo["oscar"].id, project_id=moderation.id)
    hashes = tokens.active_serve_hashes(session, project_id=moderation.id)
    assert hashes == {hashing.token_hash(genuine.secret)}

    class Service:  # what check_token reads of the running service
        token_hashes = hashes

    check_token(Service, f"Bearer {genuine.secret}")
    for secret in (forged, revived.secret):
        with pytest.raises(Refused):
            check_token(Service, f"Bearer {secret}")


def test_monitoring_settings_loosened_or_inserted_by_sql_stop_the_rollout(session, demo, gated, shipped):
    from core.rollout import config

    rollout.start(session, actor=demo["oscar"], project=gated)
    assert rollout.check_advance(session, project_id=gated.id).criteria[0].threshold == 200  # the default
    session.execute(text("INSERT INTO monitor_config (project_id, settings, updated_by, updated_at) "
                         "VALUES (:p, '{\"min_requests\": 1, \"max_fallback_rate\": 1.0}', :u, "
                         "'2026-01-01 00:00:00')"), {"p": gated.id, "u": demo["oscar"].id})
    session.commit()
    with pytest.raises(RecordTampered, match="monitor_config"):
        rollout.check_advance(session, project_id=gated.id)
    session.execute(text("DELETE FROM monitor_config"))
    config.set_config(session, actor=demo["oscar"], project=gated, changes={"min_requests": 5000})
    session.execute(text("UPDATE monitor_config SET settings = '{\"min_requests\": 1}'"))
    session.commit()
    session.expire_all()
    with pytest.raises(RecordTampered, match="monitor_config"):
        rollout.check_advance(session, project_id=gated.id)


def test_an_inserted_role_grants_nothing(session, demo, moderation):
    from core.access import projects
    from core.domain.roles import Role
    from core.gate import gate as gate_mod

    session.execute(text("INSERT INTO role_assignment (project_id, user_id, role, assigned_at) "
                         "VALUES (:p, :u, 'sponsor', '2026-01-01 00:00:00')"),
                    {"p": moderation.id, "u": demo["dana"].id})
    session.commit()
    assert Role.SPONSOR not in projects.roles_of(session, project_id=moderation.id, user_id=demo["dana"].id)
    assert "dana" not in projects.roster(session, project_ids=[moderation.id])[moderation.id]["sponsor"]
    with pytest.raises(GovernanceViolation, match="Only a sponsor"):
        gate_mod.lock(session, actor=demo["dana"], project=moderation, spec={})


def test_an_inserted_approval_does_not_lift_blind_review(session, demo, gated, passing_eval):
    from core.access import visibility

    session.execute(text(
        "INSERT INTO sign_off (project_id, evaluation_id, evaluation_hash, approve, comment, validator_id, "
        "covers_declared_latency, created_at) VALUES (:p, :e, :h, 1, 'forged', :v, 0, '2026-01-01 00:00:00')"),
        {"p": gated.id, "e": passing_eval.id, "h": passing_eval.report_hash, "v": demo["val"].id})
    session.commit()
    assert not visibility.signed_off(session, evaluation_id=passing_eval.id)


def test_an_inserted_admin_account_cannot_log_in(session, demo):
    from core.access import people
    from core.domain.errors import AuthenticationFailed

    session.execute(text("INSERT INTO user (username, display_name, password_hash, is_admin, is_active, created_at, "
                         "session_epoch) VALUES ('mallory', 'Mallory', :h, 1, 1, '2026-01-01 00:00:00', 0)"),
                    {"h": people._hasher.hash("mallory-long-pass")})
    session.commit()
    with pytest.raises(AuthenticationFailed, match="Wrong username or password"):
        people.authenticate(session, username="mallory", password="mallory-long-pass")
    assert "mallory" not in [u.username for u in people.list_users(session)]


def test_an_inserted_proceed_qualification_locks_no_gate(session, demo, moderation):
    import json

    from conftest import good_qualification
    from core.gate import gate as gate_mod

    session.execute(text(
        "INSERT INTO qualification (project_id, version, inputs, recommendation, reasons, payback_months, verdict, "
        "rationale, recorded_by, recorded_at) VALUES (:p, 1, :i, 'proceed', '[]', 1.0, 'proceed', '', :u, "
        "'2026-01-01 00:00:00')"), {"p": moderation.id, "i": json.dumps(good_qualification()), "u": demo["sam"].id})
    session.commit()
    with pytest.raises(RecordTampered, match="qualification #"):
        gate_mod.lock(session, actor=demo["sam"], project=moderation,
                      spec=gate_mod.template("cost-pressure", good_qualification()))
    assert gate_mod.history(session, project_id=moderation.id) == []


# --------------------------------------------------------------------------- nobody reads around the door

# Reads of governed tables allowed outside core.store.vouched, as (file, function): each must see every row,
# forged ones included, and none decides anything on what it finds.
ALLOWED = {
    ("core/access/people.py", "user_count"),  # the bootstrap check: a forged account must block it, not slip by
    ("core/access/people.py", "create_user"),  # a username taken by any row, forged or not, is taken
}
# The vouching machinery itself, and schema history.
SKIPPED = ("core/store/vouched.py", "core/store/integrity.py", "core/store/audit.py",
           "core/store/migrations/")
READ_CALLS = {"select", "get", "join", "outerjoin", "select_from", "query", "scalar", "scalars"}
PASS_THROUGH = {"isinstance", "issubclass"}


def _governed_names(tree: ast.Module) -> dict[str, str]:
    """{name a module may use for a governed model: its table}, counting ``from core.store.models import X as Y``."""
    names = {m.__name__: m.__tablename__ for m in vouched.GOVERNED}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "core.store.models":
            names.update({a.asname: names[a.name] for a in node.names if a.asname and a.name in names})
    return names


def _refers(node: ast.AST, names: dict[str, str]) -> bool:
    """Does ``node`` name a governed model (``SignOff``, ``models.SignOff``, ``SignOff.id``...)?"""
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name) and sub.id in names:
            return True
        if isinstance(sub, ast.Attribute) and isinstance(sub.value, ast.Name) and sub.value.id == "models" \
                and sub.attr in names:
            return True
    return False


def _callee(call: ast.Call) -> tuple[str, str]:
    """(the object called on, the name called): ``session.get`` -> ("session", "get"), ``select`` -> ("", ...)."""
    func = call.func
    if isinstance(func, ast.Attribute):
        return (func.value.id if isinstance(func.value, ast.Name) else ""), func.attr
    return "", func.id if isinstance(func, ast.Name) else ""


def _functions(tree: ast.Module) -> list[tuple[str, ast.AST]]:
    """(name, node) of each top-level function and method, then the module's other statements as ("", ...)."""
    out = []
    for stmt in tree.body:
        inner = stmt.body if isinstance(stmt, ast.ClassDef) else [stmt]
        out += [(n.name if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) else "", n) for n in inner]
    return out


def _offences(source: str, rel: str) -> list[str]:
    """Every read of a governed table in ``source`` (the file ``rel``) that does not go through the reader."""
    tree = ast.parse(source)
    names = _governed_names(tree)
    # SQL keywords in capitals, as this code base writes them, so prose ("read from user input") is not SQL.
    raw_sql = re.compile(rf"\b(FROM|JOIN|UPDATE)\s+[\"`]?({'|'.join(set(names.values()))})\b")
    out = set()
    for fn_name, fn in _functions(tree):
        if (rel, fn_name) in ALLOWED:
            continue
        for node in ast.walk(fn):
            where = f"{rel}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and raw_sql.search(node.value):
                out.add(f"{where}: raw SQL on a governed table")
            if not isinstance(node, ast.Call):
                continue
            owner, name = _callee(node)
            if owner == "vouched" or name in PASS_THROUGH:
                continue
            if name in READ_CALLS and any(_refers(a, names) for a in node.args):
                out.add(f"{where}: {owner + '.' if owner else ''}{name}() of a governed model")
            elif any(isinstance(a, ast.Name) and a.id in names for a in node.args):
                out.add(f"{where}: {name}() is handed a governed model to read")
    return sorted(out, key=lambda o: int(o.split(":")[1]))


def test_no_module_reads_a_governed_table_around_the_vouched_reader():
    files = sorted([*(ROOT / "core").rglob("*.py"), *(ROOT / "pages").rglob("*.py")])
    offences = []
    for path in files:
        rel = path.relative_to(ROOT).as_posix()
        if not rel.startswith(SKIPPED):
            offences += _offences(path.read_text(encoding="utf-8"), rel)
    assert not offences, ("read these through core.store.vouched (rows/first/get), so a row forged with raw "
                          "SQL is ignored:\n" + "\n".join(offences))


def test_the_enumeration_names_each_way_of_reading_around_the_reader():
    sneaky = (
        "from sqlmodel import select\n"
        "from core.store.models import AccessToken as Token, SignOff\n"
        "def f(session, sid):\n"
        "    a = session.get(Token, sid)\n"
        "    b = session.exec(select(SignOff.id).where(SignOff.id == sid))\n"
        "    return _rows(session, SignOff), vouched.rows(session, SignOff), isinstance(a, SignOff)\n"
        "Q = 'SELECT * FROM access_token'\n"
    )
    assert _offences(sneaky, "core/sneaky.py") == [
        "core/sneaky.py:4: session.get() of a governed model", "core/sneaky.py:5: select() of a governed model",
        "core/sneaky.py:6: _rows() is handed a governed model to read", "core/sneaky.py:7: raw SQL on a governed table"]
