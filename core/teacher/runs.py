"""Teacher runs: started by the driver as a job (local model or chat endpoint), imported from a file,
or combined from earlier runs; each stored as a Parquet artifact with its TeacherRun row and audit event.

Settings recorded with a run never include a secret: a chat endpoint's API key
reaches the job from the environment (or, in this process, ``api_key_scope``).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sqlmodel import Session, col, select

from core.access.projects import require_role
from core.data.datasets import mapping_of
from core.domain.display import tidy
from core.domain.errors import InvalidInput, NotFound
from core.domain.roles import Role
from core.domain.validation import parse
from core.ml.device import check_name as check_device_name
from core.store import audit, jobs
from core.store.artifacts import data_dir, dir_sha256, file_sha256, load_table, project_dir, store_table
from core.store.config import get_settings
from core.store.models import Artifact, Dataset, Job, Project, TeacherRun, User
from core.teacher import chat, ensemble, files, model_files, python, ray_engine
from core.teacher.config import LocalConfig, TeacherRunParams
from core.teacher.local import LocalAdapter, model_labels
from core.teacher.outputs import Adapter, check_labels, run_stats

JOB_KIND = jobs.JobKind.TEACHER_RUN
JOB_ADAPTERS = ("local", "http", "python")
SECRET_WORDS = ("api_key", "apikey", "secret", "password", "token", "authorization", "bearer")
NOT_SECRET = {"api_key_env", "max_tokens", "top_logprobs"}
CONFIDENCE_BINS = [i / 10 for i in range(11)]

_API_KEY: ContextVar[str | None] = ContextVar("teacher_api_key", default=None)


# --------------------------------------------------------------------------- settings


def _reject_secrets(config: dict) -> None:
    for key, value in config.items():
        if key.lower() in NOT_SECRET:
            continue
        if any(word in key.lower() for word in SECRET_WORDS) or (
                isinstance(value, str) and value.lower().startswith(("bearer ", "sk-"))):
            raise InvalidInput(f"setting {key!r} looks like a secret, and run settings are recorded: put the API key "
                               "in the environment variable named by api_key_env instead.", field=key)


def _stored_path(path: Path) -> str:
    """A model directory as recorded: relative to the data directory when it is inside it."""
    path = path.resolve()
    try:
        return str(path.relative_to(data_dir()))
    except ValueError:
        return str(path)


def prepare_config(*, adapter: str, config: dict, dataset: Dataset) -> dict:
    """Validated, secret-free settings for a job of ``adapter`` on ``dataset`` (what the job and the run record)."""
    _reject_secrets(config)
    if adapter == "local":
        extra = set(config) - {"model_dir", "batch_size", "max_length", "device", *ray_engine.SETTINGS}
        if extra or not config.get("model_dir"):
            raise InvalidInput("the local teacher takes model_dir (a saved classifier's folder), and optionally "
                               "batch_size, max_length, device, engine, ray_address and ray_workers.",
                               field="model_dir")
        check_device_name(config.get("device"))
        path = Path(config["model_dir"]).expanduser()
        model_labels(path)
        for key in ("batch_size", "max_length"):
            value = config.get(key)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise InvalidInput(f"{key} {value!r}: give a whole number of at least 1.", field=key)
        if parse(LocalConfig, config).engine == "ray":  # the engine's settings, then Ray itself, checked now
            ray_engine.require_ray()
        return {**config, "model_dir": _stored_path(path), **model_files.snapshot(path)}
    if adapter == "http":
        cfg = parse(chat.ChatConfig, config)
        labels = cfg.labels or mapping_of(dataset).labels
        if not labels:
            raise InvalidInput(f"dataset #{dataset.id} has no label set: pass the labels the teacher chooses from "
                               "(--labels a,b,c).", field="labels")
        cfg.labels = check_labels(labels)
        chat.check_key_var(cfg.api_key_env)  # refused now, not when the job runs
        if cfg.base_url:
            cfg.base_url = chat.check_endpoint(cfg.base_url)
        return cfg.model_dump()
    if adapter == "python":
        return _python_config(config, dataset=dataset).model_dump(exclude={"adapter", "module_sha256"})
    raise InvalidInput(f"adapter {adapter!r}: a job runs local, http or python; import files with --adapter file and "
                       "combine runs with `teacher combine`.", field="adapter")


def _python_config(config: dict, *, dataset: Dataset) -> python.PythonConfig:
    """A Python teacher's settings, its callable on the admin's list (checked by name: nothing is imported)."""
    cfg = parse(python.PythonConfig, {**config, "adapter": "python"})
    labels = cfg.labels or mapping_of(dataset).labels
    if not labels:
        raise InvalidInput(f"dataset #{dataset.id} has no label set: pass the labels the teacher chooses from "
                           "(--labels a,b,c).", field="labels")
    python.check_allowed(cfg.callable)
    return cfg.model_copy(update={"labels": check_labels(labels)})


# --------------------------------------------------------------------------- datasets and runs


def get_dataset(session: Session, *, project: Project, dataset_id: int) -> Dataset:
    dataset = session.get(Dataset, dataset_id)
    if dataset is None or dataset.project_id != project.id:
        raise NotFound(f"project {project.name!r} has no dataset #{dataset_id}: pick one from `stillroom data list`.",
                       field="dataset")
    return dataset


def dataset_table(session: Session, dataset: Dataset) -> pd.DataFrame:
    df = load_table(session.get(Artifact, dataset.artifact_id))
    df["id"] = df["id"].astype(str)
    return df


def get_run(session: Session, run_id: int) -> TeacherRun:
    run = session.get(TeacherRun, run_id)
    if run is None:
        raise NotFound(f"no teacher run #{run_id}: list them with `stillroom teacher runs PROJECT`.", field="run")
    return run


def live_run_in_progress(session: Session, *, project_id: int) -> int | None:
    """The job id of a live teacher run still queued or running, else None: while one is, no second is offered."""
    for job in jobs.open_jobs(session, project_id=project_id, kinds=(JOB_KIND,)):
        if job.status in ("queued", "running"):
            return job.id
    return None


def list_runs(session: Session, *, project_id: int, dataset_id: int | None = None) -> list[TeacherRun]:
    query = select(TeacherRun).where(TeacherRun.project_id == project_id)
    if dataset_id is not None:
        query = query.where(TeacherRun.dataset_id == dataset_id)
    return list(session.exec(query.order_by(col(TeacherRun.id).desc())).all())


def load_outputs(session: Session, run: TeacherRun) -> pd.DataFrame:
    """The run's full outputs (teacher-run schema), hash-checked."""
    return load_table(session.get(Artifact, run.artifact_id))


def record_run(session: Session, *, actor: User, project: Project, dataset: Dataset, adapter: str, config: dict,
               labels: list[str], frame: pd.DataFrame, stats: dict, job_id: int | None = None) -> TeacherRun:
    """Store the outputs and add the TeacherRun row and its audit event, in one transaction."""
    art = store_table(session, project=project, actor=actor, df=frame, kind="teacher-outputs",
                      meta={"dataset": dataset.id, "adapter": adapter})
    run = TeacherRun(project_id=project.id, dataset_id=dataset.id, adapter=adapter, config=config,
                     artifact_id=art.id, n_rows=len(frame), labels=list(labels), stats=stats, job_id=job_id,
                     created_by=actor.id)
    session.add(run)
    session.flush()
    audit.record(session, actor=actor, action="teacher.run", entity="teacher_run", entity_id=run.id,
                 project_id=project.id, payload={"dataset": dataset.id, "adapter": adapter, "config": config,
                                                 "labels": list(labels), "n_rows": len(frame), "sha256": art.sha256,
                                                 "n_unparseable": stats.get("n_unparseable"), "job": job_id})
    session.commit()
    return run


def references_of(df: pd.DataFrame) -> pd.Series | None:
    if "reference" not in df.columns:
        return None
    return df.set_index("id")["reference"]


# --------------------------------------------------------------------------- jobs (local, http)


def start_run(session: Session, *, actor: User, project: Project, dataset_id: int, adapter: str,
              config: dict) -> Job:
    """Queue a teacher run (driver only); run it with ``jobs.run`` here or ``start_detached``."""
    require_role(session, actor=actor, project=project, role=Role.DRIVER, doing="run the teacher")
    dataset = get_dataset(session, project=project, dataset_id=dataset_id)
    params = TeacherRunParams(adapter=adapter, config=prepare_config(adapter=adapter, config=config,
                                                                      dataset=dataset), dataset_id=dataset.id)
    return jobs.submit(session, actor=actor, project=project, kind=JOB_KIND, params=params)


@contextmanager
def api_key_scope(api_key: str | None) -> Iterator[None]:
    """Hand a caller's API key (e.g. from Streamlit secrets) to teacher jobs run in this thread, unrecorded."""
    token = _API_KEY.set(api_key)
    try:
        yield
    finally:
        _API_KEY.reset(token)


def start_detached(job_id: int, *, api_key: str | None = None,
                   api_key_env: str = chat.DEFAULT_API_KEY_ENV) -> int:
    """Start the job in its own process; a caller's API key travels only in that process's environment."""
    return jobs.start_detached(job_id, extra_env={api_key_env: api_key} if api_key is not None else None)


def chat_cache(project_id: int) -> chat.ResponseCache:
    return chat.ResponseCache(project_dir(project_id, "teacher-cache") / "chat-answers.sqlite")


def build_adapter(*, adapter: str, config: dict, project_id: int) -> tuple[Adapter, list[str], dict]:
    """The adapter a job runs, its labels and the settings to record (resolved, still secret-free)."""
    if adapter == "local":
        recorded = parse(LocalConfig, config)
        path = model_files.dir_here(recorded, what="the teacher's model directory")  # exactly the files submitted
        plan = ray_engine.plan_of(config)
        local = LocalAdapter(path, batch_size=int(config.get("batch_size", 64)),
                             max_length=config.get("max_length"), device=config.get("device"), ray=plan)
        return local, local.labels, {**config, **ray_engine.recorded(plan),
                                     "model_sha256": recorded.model_sha256 if recorded.model_files is not None
                                     else dir_sha256(path)}
    if adapter == "python":
        cfg = python.PythonConfig(**config)
        teacher = python.PythonAdapter(cfg, labels=list(cfg.labels or []))  # checks the allow-list again first
        return teacher, teacher.labels, {**config, "module_sha256": teacher.module_sha256}
    cfg = chat.ChatConfig(**config)
    base_url = cfg.base_url or os.environ.get(cfg.base_url_env, "")
    if not base_url:
        raise InvalidInput(f"no base URL for the teacher endpoint: pass --base-url or set ${cfg.base_url_env}.",
                           field="base_url")
    chat.check_key_var(cfg.api_key_env)  # before the key is read from the environment at all
    api_key = _API_KEY.get() or os.environ.get(cfg.api_key_env, "")
    adapter_obj = chat.ChatAdapter(cfg, base_url=base_url, api_key=api_key, cache=chat_cache(project_id),
                                   base_url_source="--base-url" if cfg.base_url else cfg.base_url_env)
    return adapter_obj, list(cfg.labels), {**config, "base_url": chat.public_url(base_url)}


def estimate_cost(session: Session, *, project: Project, dataset_id: int, config: dict) -> chat.CostEstimate:
    """A chat teacher's dry run: the calls still to make (cached answers are free) and their estimated cost."""
    dataset = get_dataset(session, project=project, dataset_id=dataset_id)
    cfg = chat.ChatConfig(**prepare_config(adapter="http", config=config, dataset=dataset))
    texts = dataset_table(session, dataset)["text"].astype(str).tolist()
    cache = chat_cache(project.id)
    try:
        # No key is needed to estimate: nothing is sent. The base URL is part of each answer's cache key.
        base_url = cfg.base_url or os.environ.get(cfg.base_url_env, "")
        adapter = chat.ChatAdapter(cfg, base_url=base_url, api_key="", cache=cache, dry_run=True)
        return adapter.estimate(texts, labels=cfg.labels)
    finally:
        cache.close()


# --------------------------------------------------------------------------- file and ensemble


def import_file(session: Session, *, actor: User, project: Project, dataset_id: int, path: Path | str,
                labels: Sequence[str] | None = None, source_name: str | None = None,
                drop_foreign: bool = False) -> TeacherRun:
    """Record outputs produced elsewhere as a teacher run (driver only); nothing is stored if a row is bad.

    Rows for ids the dataset does not hold are refused, or with ``drop_foreign``
    left out and counted in the run's stats (``foreign_rows_dropped``).
    """
    require_role(session, actor=actor, project=project, role=Role.DRIVER, doing="import teacher outputs")
    dataset = get_dataset(session, project=project, dataset_id=dataset_id)
    df = dataset_table(session, dataset)
    frame, labels, n_foreign = files.read_outputs(
        path, dataset_ids=df["id"], labels=labels or mapping_of(dataset).labels,
        dataset_name=f"dataset #{dataset.id}", drop_foreign=drop_foreign)
    config = {"source": source_name or Path(path).name, "source_sha256": file_sha256(Path(path)),
              "drop_foreign": drop_foreign}
    stats = run_stats(frame, labels=labels, references=references_of(df))
    stats["dataset_rows_without_output"] = int(len(df) - len(frame))
    stats["foreign_rows_dropped"] = n_foreign
    return record_run(session, actor=actor, project=project, dataset=dataset, adapter="file", config=config,
                      labels=labels, frame=frame, stats=stats)


def import_upload(session: Session, *, actor: User, project: Project, dataset_id: int, data: bytes,
                  filename: str, labels: Sequence[str] | None = None, drop_foreign: bool = False) -> TeacherRun:
    """An uploaded file of outputs (the Teacher page's), read from a private temporary copy."""
    with tempfile.TemporaryDirectory(prefix="stillroom-upload-") as tmp:
        path = Path(tmp) / (Path(filename).name or "outputs")
        path.write_bytes(data)
        return import_file(session, actor=actor, project=project, dataset_id=dataset_id, path=path, labels=labels,
                           source_name=filename, drop_foreign=drop_foreign)


def combine_runs(session: Session, *, actor: User, project: Project, run_ids: Sequence[int],
                 method: str) -> TeacherRun:
    """A new run combining earlier runs on one dataset (their own outputs stay as they are)."""
    require_role(session, actor=actor, project=project, role=Role.DRIVER, doing="combine teacher runs")
    runs = [get_run(session, run_id) for run_id in dict.fromkeys(run_ids)]
    for run in runs:
        if run.project_id != project.id:
            raise NotFound(f"project {project.name!r} has no teacher run #{run.id}.", field="runs")
    if len({run.dataset_id for run in runs}) > 1:
        raise InvalidInput("the runs to combine answer different datasets (" + ", ".join(
            f"run #{r.id}: dataset #{r.dataset_id}" for r in runs) + "); combine runs of one dataset.", field="runs")
    members = [ensemble.Member(run.id, list(run.labels), load_outputs(session, run)) for run in runs]
    frame, labels = ensemble.combine(members, method=method)
    dataset = session.get(Dataset, runs[0].dataset_id)
    stats = run_stats(frame, labels=labels, references=references_of(dataset_table(session, dataset)))
    return record_run(session, actor=actor, project=project, dataset=dataset, adapter="ensemble",
                      config={"method": method, "runs": [r.id for r in runs]}, labels=labels, frame=frame,
                      stats=stats)


# --------------------------------------------------------------------------- summary


@dataclass(frozen=True)
class RunSummary:
    run_id: int
    adapter: str
    n_rows: int
    labels: list[str]
    label_counts: dict[str, int]
    n_unparseable: int
    n_with_probs: int
    mean_confidence: float | None
    confidence_bins: list[float]  # histogram edges, 0 to 1
    confidence_counts: list[int]  # rows per bin (rows without a confidence are not counted)
    agreement_with_reference: float | None
    n_with_reference: int

    @property
    def confidence_ranges(self) -> list[str]:
        """Each histogram bin as its range, "0.6–0.7"."""
        edges = self.confidence_bins
        return [f"{a:.1f}–{b:.1f}" for a, b in zip(edges, edges[1:], strict=False)]


def summarize(session: Session, *, run: TeacherRun) -> RunSummary:
    frame = load_outputs(session, run)
    dataset = session.get(Dataset, run.dataset_id)
    stats = run_stats(frame, labels=list(run.labels), references=references_of(dataset_table(session, dataset)))
    counts, _ = np.histogram(frame["confidence"].dropna().clip(0, 1), bins=CONFIDENCE_BINS)
    return RunSummary(run_id=run.id, adapter=run.adapter, n_rows=len(frame), labels=list(run.labels),
                      label_counts=stats["label_counts"], n_unparseable=stats["n_unparseable"],
                      n_with_probs=stats["n_with_probs"], mean_confidence=stats["mean_confidence"],
                      confidence_bins=CONFIDENCE_BINS, confidence_counts=[int(c) for c in counts],
                      agreement_with_reference=stats.get("agreement_with_reference"),
                      n_with_reference=stats.get("n_with_reference", 0))


def settings_text(run: TeacherRun) -> str:
    """A run's settings on one line ("batch_size=8, model_dir=..."), its recorded files as their count and size."""
    shown = dict(run.config or {})
    if isinstance(shown.get("model_files"), list):
        files = shown["model_files"]
        size = sum(int(f.get("size") or 0) for f in files if isinstance(f, dict))
        shown["model_files"] = f"{len(files)} files, {size / 2**20:.1f} MiB"
    return ", ".join(f"{k}={v}" for k, v in sorted(shown.items()))


def imported_sentence(run: TeacherRun) -> str:
    """What an import of outputs made elsewhere stored, and how many rows it dropped as foreign."""
    dropped = run.stats.get("foreign_rows_dropped")
    return (f"Teacher run #{run.id} imported: {run.n_rows:,} outputs"
            + (f"; {dropped:,} rows not in dataset #{run.dataset_id} dropped." if dropped else "."))


def combined_sentence(run: TeacherRun) -> str:
    """What a combined run is made of (its config names the runs it combines)."""
    return f"Teacher run #{run.id} combines runs {', '.join(map(str, run.config['runs']))}."


def runs_table(teacher_runs: list[TeacherRun]) -> pd.DataFrame:
    """One row per teacher run, as the Teacher page lists them."""
    return tidy([{
        "Run": r.id, "Teacher": r.adapter, "Dataset": r.dataset_id, "Rows": r.n_rows, "Labels": len(r.labels),
        "Agrees with reference": r.stats.get("agreement_with_reference"),
        "Mean confidence": r.stats.get("mean_confidence"), "When (UTC)": f"{r.created_at:%Y-%m-%d %H:%M}",
    } for r in teacher_runs])


def demo_model_dir() -> Path:
    """Where `stillroom demo` trains its teacher (core.demo.teacher saves it there)."""
    return data_dir() / "models" / "demo-teacher"


def offered_model_dir() -> str:
    """The model directory the Teacher page fills in: STILLROOM_TEACHER_MODEL_DIR, else the demo's teacher,
    when it exists; empty when neither does."""
    path = get_settings().teacher_model_dir or demo_model_dir()
    return str(path) if path.exists() else ""
