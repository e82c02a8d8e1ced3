"""A teacher run's settings as typed contracts: one model per adapter, told apart by ``adapter``.

A TeacherRun row stores its settings as JSON beside its ``adapter`` column (the JSON itself has no adapter
key, and keeps the bytes it was stored with); ``read_config`` validates the two together into one of these.
The "teacher-run" job's params and result are typed here too.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from core.domain.stored import read_stored
from core.domain.validation import sentence
from core.store.models import TeacherRun
from core.store.stored_dirs import DirFile
from core.teacher.chat import ChatConfig
from core.teacher.python import PythonConfig
from core.teacher.ray_engine import RAY_MAX_WORKERS, check_engine


class LocalConfig(BaseModel):
    """A saved classifier; ``model_sha256`` and ``model_files`` are recorded when the run is submitted."""

    model_config = ConfigDict(extra="forbid")
    adapter: Literal["local"] = "local"
    model_dir: str = Field(min_length=1)
    batch_size: int | None = Field(default=None, ge=1)
    max_length: int | None = Field(default=None, ge=1)
    model_sha256: str | None = None
    # The directory's files as submitted (core.teacher.model_files); None on runs recorded before they were.
    model_files: list[DirFile] | None = None
    model_stored: bool = False  # and copied to the artifact store, for a job on another host
    device: str | None = None  # "auto", "cpu", "cuda", "cuda:1", "mps" (core.ml.device.pick); None: auto
    # Where the batches run: in this process (the default, nothing to install), or across Ray workers, each
    # loading the model once (core.teacher.ray_engine; `pip install 'stillroom[ray]'`).
    engine: Literal["in-process", "ray"] = Field(default="in-process", title="Engine")
    # None: start a local Ray instance for the run and stop it after; "auto" or "ray://host:10001": a cluster.
    ray_address: str | None = Field(default=None, title="Ray address")
    ray_workers: int | None = Field(default=None, ge=1, le=RAY_MAX_WORKERS, title="Ray workers")

    @model_validator(mode="after")
    def _engine_fits(self) -> LocalConfig:
        check_engine(engine=self.engine, address=self.ray_address, workers=self.ray_workers)
        return self


class HttpConfig(ChatConfig):
    """A chat-completions endpoint (its base URL recorded without credentials)."""

    adapter: Literal["http"] = "http"


class FileConfig(BaseModel):
    """Outputs produced elsewhere and imported from a file."""

    model_config = ConfigDict(extra="forbid")
    adapter: Literal["file"] = "file"
    source: str
    source_sha256: str
    drop_foreign: bool = False


class EnsembleConfig(BaseModel):
    """Earlier runs of one dataset, combined."""

    model_config = ConfigDict(extra="forbid")
    adapter: Literal["ensemble"] = "ensemble"
    method: str
    runs: list[int]


AnyConfig = LocalConfig | HttpConfig | PythonConfig | FileConfig | EnsembleConfig
TeacherConfig = Annotated[AnyConfig, Field(discriminator="adapter")]
_CONFIG: TypeAdapter[AnyConfig] = TypeAdapter(TeacherConfig)


def read_config(run: TeacherRun) -> AnyConfig:
    """The settings a TeacherRun row stores, typed by its adapter (RecordTampered naming the field when the
    stored JSON no longer fits)."""
    return read_stored(_Stored, {"config": {**(run.config or {}), "adapter": run.adapter}},
                       what=f"teacher run #{run.id}'s settings").config


class _Stored(BaseModel):
    config: TeacherConfig


# --------------------------------------------------------------------------- the "teacher-run" job


class TeacherRunParams(BaseModel):
    """What a teacher-run job is submitted with: the adapter, its prepared settings, the dataset."""

    model_config = ConfigDict(extra="forbid")
    adapter: Literal["local", "http", "python"] = Field(title="Adapter")
    config: dict[str, Any] = Field(title="Teacher settings")
    dataset_id: int = Field(title="Dataset")

    @model_validator(mode="after")
    def _config_fits(self) -> TeacherRunParams:
        try:
            _CONFIG.validate_python({**self.config, "adapter": self.adapter})
        except ValidationError as exc:
            raise ValueError(f"the {self.adapter} teacher's settings: {sentence(dict(exc.errors()[0]))}") from None
        return self

    def teacher_config(self) -> AnyConfig:
        return _CONFIG.validate_python({**self.config, "adapter": self.adapter})


class TeacherRunResult(BaseModel):
    teacher_run: int
    n_rows: int
    n_unparseable: int
