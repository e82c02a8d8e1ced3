"""Issue 20: the artifact store is any fsspec URL a team mounts, and every read still checks the SHA-256.

fsspec's memory filesystem stands in for object storage and its local filesystem for a shared path (no network).
"Another host" is a second data directory pointed at the same store.
"""

from __future__ import annotations

import uuid

import fsspec
import pandas as pd
import pytest

from core.domain.errors import ArtifactTampered
from core.store import artifacts, integrity
from core.store.config import get_settings

TABLE = pd.DataFrame({"id": ["a", "b"], "text": ["hello", "world"]})


def use(monkeypatch, *, store: str | None = None, data_dir=None) -> None:
    if store is not None:
        monkeypatch.setenv("STILLROOM_ARTIFACT_STORE", store)
    if data_dir is not None:
        monkeypatch.setenv("STILLROOM_DATA_DIR", str(data_dir))
    get_settings.cache_clear()


@pytest.fixture
def memory_store(monkeypatch):
    url = f"memory://team-{uuid.uuid4().hex[:8]}/stillroom"
    use(monkeypatch, store=url)
    fs, root = fsspec.core.url_to_fs(url)
    yield fs, root
    fs.rm(root, recursive=True)
    get_settings.cache_clear()


def test_a_table_goes_to_the_store_and_a_tampered_one_is_refused_through_it(session, demo, moderation, engine,
                                                                             memory_store, tmp_path):
    fs, root = memory_store
    art = artifacts.store_table(session, project=moderation, actor=demo["dana"], df=TABLE, kind="inputs")
    session.commit()
    assert fs.exists(f"{root}/{art.path}") and not (tmp_path / art.path).exists()
    pd.testing.assert_frame_equal(artifacts.load_table(art), TABLE)
    fs.pipe_file(f"{root}/{art.path}", _parquet(pd.DataFrame({"id": ["a", "b"], "text": ["forged", "world"]})))
    with pytest.raises(ArtifactTampered, match="changed after it was recorded"):
        artifacts.load_table(art)
    with pytest.raises(ArtifactTampered, match="changed after it was recorded"):
        artifacts.verify(art)
    assert any(f"artifact #{art.id} (inputs)" in p for p in integrity.artifact_problems(engine))


def test_a_shared_path_serves_another_host_and_refuses_a_changed_file(session, demo, moderation, monkeypatch,
                                                                     tmp_path):
    shared = tmp_path / "shared"
    use(monkeypatch, store=f"file://{shared}")
    art = artifacts.store_table(session, project=moderation, actor=demo["dana"], df=TABLE, kind="inputs")
    session.commit()
    use(monkeypatch, data_dir=tmp_path / "other-host")
    pd.testing.assert_frame_equal(artifacts.load_table(art), TABLE)
    local = fsspec.filesystem("file")
    local.pipe_file(str(shared / art.path), _parquet(TABLE.iloc[:1]))
    with pytest.raises(ArtifactTampered):
        artifacts.load_table(art)
    get_settings.cache_clear()


def test_a_model_directory_is_copied_to_the_store_and_fetched_verified_elsewhere(session, demo, moderation,
                                                                                monkeypatch, memory_store, tmp_path):
    fs, root = memory_store
    model = artifacts.project_dir(moderation.id, "training", "run-1", "best")
    (model / "weights.bin").write_bytes(b"\x00\x01" * 100)
    (model / "sub").mkdir()
    (model / "sub" / "config.json").write_text('{"width": 8}')
    art = artifacts.register(session, project=moderation, actor=demo["dana"], path=model, kind="student")
    session.commit()
    assert fs.exists(f"{root}/{art.path}/sub/config.json")
    use(monkeypatch, data_dir=tmp_path / "other-host")
    fetched = artifacts.path_of(art)
    assert fetched != model and artifacts.dir_sha256(fetched) == art.sha256
    assert (fetched / "sub" / "config.json").read_text() == '{"width": 8}'
    fs.pipe_file(f"{root}/{art.path}/weights.bin", b"forged")
    use(monkeypatch, data_dir=tmp_path / "third-host")
    with pytest.raises(ArtifactTampered, match="changed after it was recorded"):
        artifacts.path_of(art)


def test_a_table_written_in_a_rolled_back_transaction_leaves_the_store(session, demo, moderation, memory_store):
    fs, root = memory_store
    art = artifacts.store_table(session, project=moderation, actor=demo["dana"], df=TABLE, kind="inputs")
    key = f"{root}/{art.path}"
    assert fs.exists(key)
    session.rollback()
    assert not fs.exists(key)


def test_the_default_store_is_the_data_directory(session, demo, moderation, tmp_path):
    art = artifacts.store_table(session, project=moderation, actor=demo["dana"], df=TABLE, kind="inputs")
    session.commit()
    assert artifacts.artifact_store().local and (tmp_path / art.path).is_file()
    assert artifacts.file_sha256(tmp_path / art.path) == art.sha256


def _parquet(df: pd.DataFrame) -> bytes:
    import io

    buffer = io.BytesIO()
    df.to_parquet(buffer, index=False)
    return buffer.getvalue()
