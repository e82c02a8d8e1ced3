"""A database made before issue 16 and the move of core/ (issue 17) upgrades, reads and verifies.

The fixture was written by the code of commit 420f33c (`stillroom init` and `stillroom demo --teacher skip
--tickets 1000`): schema 0009, checkpoint lines without event ranges, legacy-free row hashes, a project waiting
on its validator and one shipped and rolled out. Of its artifact files (15 MB) only the evaluation reports are
kept, so files are not verified here; the rows, events, anchors and checkpoints are.
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

from sqlmodel import Session, select

from core.access import projects
from core.evaluation import rounds, runs
from core.store import db, verification
from core.store.models import Evaluation

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "pre-issue-16"


def _old_database(tmp_path: Path, db_url: str) -> Path:
    target = Path(db_url.split("///", 1)[1])
    with gzip.open(FIXTURE / "stillroom.db.gz") as src, open(target, "wb") as out:
        shutil.copyfileobj(src, out)
    shutil.copy(FIXTURE / "stillroom.audit-checkpoints.jsonl", target.with_name("stillroom.audit-checkpoints.jsonl"))
    shutil.copytree(FIXTURE / "artifacts", tmp_path / "artifacts")  # the evaluation reports only
    return target


def test_a_database_from_before_the_move_upgrades_and_verifies_intact(tmp_path, db_url):
    _old_database(tmp_path, db_url)
    engine = db.init_db(db.get_engine())
    assert db.schema_revision(engine) == db.HEAD_REVISION
    report = verification.verify(engine, files=False)  # only the reports' files are kept
    assert report.ok, report.lines()
    assert report.checked == 84


def test_its_records_read_through_the_new_house(tmp_path, db_url):
    _old_database(tmp_path, db_url)
    engine = db.init_db(db.get_engine())
    with Session(engine) as s:
        shipped = projects.get_project(s, "Ticket language detection")
        # The vouching reader takes the old decision: its event predates nothing and matches its row.
        assert [d.decision for d in rounds.decisions(s, project_id=shipped.id)] == ["ship"]
        waiting = projects.get_project(s, "Reseller ticket routing")
        [evaluation] = s.exec(select(Evaluation).where(Evaluation.project_id == waiting.id)).all()
        # A report stored before sources were recorded loads as the typed report, its hash checked as stored.
        report = runs.load_report(s, evaluation)
        assert report.passed and report.criteria
        assert {c.source for c in report.criteria} == {"not recorded (evaluated before sources were recorded)"}
