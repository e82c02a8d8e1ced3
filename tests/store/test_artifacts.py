"""Artifacts: files whose SHA-256 the database records and checks on every read."""

import pandas as pd
import pytest

from core.domain.errors import GovernanceViolation
from core.store import artifacts


def test_stored_table_round_trips_and_its_hash_is_recorded(session, demo, moderation):
    df = pd.DataFrame({"id": ["a", "b"], "text": ["hello", "world"]})
    art = artifacts.store_table(session, project=moderation, actor=demo["dana"], df=df, kind="inputs")
    session.commit()
    assert art.sha256 == artifacts.file_sha256(artifacts.path_of(art)) and art.n_rows == 2
    pd.testing.assert_frame_equal(artifacts.load_table(art), df)


def test_a_changed_file_is_refused_on_read(session, demo, moderation):
    df = pd.DataFrame({"id": ["a"], "text": ["hello"]})
    art = artifacts.store_table(session, project=moderation, actor=demo["dana"], df=df, kind="inputs")
    session.commit()
    pd.DataFrame({"id": ["a"], "text": ["forged"]}).to_parquet(artifacts.path_of(art), index=False)
    with pytest.raises(GovernanceViolation, match="changed after it was recorded"):
        artifacts.load_table(art)


def test_a_directory_is_hashed_over_names_and_contents(tmp_path):
    (tmp_path / "a.txt").write_text("one")
    first = artifacts.dir_sha256(tmp_path)
    (tmp_path / "a.txt").write_text("two")
    assert artifacts.dir_sha256(tmp_path) != first


def test_a_file_written_in_a_rolled_back_transaction_is_removed_and_a_committed_one_kept(session, demo, moderation):
    import pandas as pd

    from core.store.artifacts import path_of, store_table

    df = pd.DataFrame({"id": ["a"], "text": ["x"]})
    lost = path_of(store_table(session, project=moderation, actor=demo["dana"], df=df, kind="inputs"))
    assert lost.exists()
    session.rollback()  # as when the state change after it fails
    assert not lost.exists()
    kept = path_of(store_table(session, project=moderation, actor=demo["dana"], df=df, kind="inputs"))
    session.commit()
    session.rollback()  # a later rollback does not touch what was committed
    assert kept.exists()
