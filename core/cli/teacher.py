"""Teacher commands: run a teacher (local model, chat endpoint, file) as a job, combine runs, filter outputs."""

from __future__ import annotations

from pathlib import Path

import click

from core.access import projects
from core.cli.base import _actor, _session, _table, _viewable, cli
from core.cli.jobs import run_with_bar, start_in_background
from core.domain.errors import InvalidInput
from core.store import jobs
from core.teacher import filter as teacher_filter
from core.teacher import runs
from core.teacher.chat import DEFAULT_API_KEY_ENV, DEFAULT_BASE_URL_ENV
from core.teacher.config import TeacherRunResult
from core.teacher.ensemble import METHODS


def _fmt(value, spec: str) -> str:
    return "" if value is None else format(value, spec)


def _labels(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def _http_config(opts: dict) -> dict:
    if not opts["model"]:
        raise InvalidInput("--adapter http needs --model (the endpoint's model name).", field="model")
    config = {"model": opts["model"], "base_url": opts["base_url"], "api_key_env": opts["api_key_env"],
              "base_url_env": opts["base_url_env"], "labels": _labels(opts["labels"]),
              "concurrency": opts["concurrency"], "max_cost": opts["max_cost"],
              "price_in_per_1k": opts["price_in"], "price_out_per_1k": opts["price_out"]}
    if opts["prompt_file"]:
        config["prompt_template"] = Path(opts["prompt_file"]).read_text(encoding="utf-8")
    return {k: v for k, v in config.items() if v is not None}


def _report(run_id: int) -> None:
    with _session() as session:
        run = runs.get_run(session, run_id)
    s = run.stats
    agreement = s.get("agreement_with_reference")
    click.echo(f"Teacher run #{run.id} ({run.adapter}): {run.n_rows:,} rows, {s.get('n_unparseable', 0):,} "
               f"unparseable, agreement with references "
               f"{_fmt(agreement, '.3f') or 'n/a'} on {s.get('n_with_reference', 0):,} rows"
               + (f"; {s['foreign_rows_dropped']:,} rows not in the dataset dropped." if s.get("foreign_rows_dropped")
                  else "."))


@cli.group("teacher")
def teacher_group() -> None:
    """Step 3: the teacher's outputs on a dataset, combined and filtered (driver only)."""


@teacher_group.command("run")
@click.argument("project")
@click.option("--dataset", "dataset_id", type=int, required=True, help="The dataset to answer.")
@click.option("--adapter", type=click.Choice(["local", "http", "python", "file"]), default="local",
              show_default=True)
@click.option("--model-dir", type=click.Path(file_okay=False), help="local: a saved classifier's folder.")
@click.option("--batch-size", type=int, default=64, show_default=True, help="local/python: texts per batch.")
@click.option("--device", help="local: auto (a GPU when one is present, else the CPU), cpu, cuda, cuda:N or mps.")
@click.option("--engine", type=click.Choice(["in-process", "ray"]),
              help="local: run the batches in this process (the default) or across Ray workers "
                   "(pip install 'stillroom[ray]').")
@click.option("--ray-address", help="local, --engine ray: 'auto' or ray://HOST:10001 for a team's cluster "
                                    "(default: a local Ray instance started for the run).")
@click.option("--ray-workers", type=int, help="local, --engine ray: Ray workers, each loading the model once "
                                              "(default 2).")
@click.option("--callable", "callable_name",
              help="python: package.module:function, on the admin's list (STILLROOM_TEACHER_CALLABLES).")
@click.option("--base-url", help=f"http: the endpoint up to /chat/completions (default ${DEFAULT_BASE_URL_ENV}).")
@click.option("--base-url-env", default=DEFAULT_BASE_URL_ENV, show_default=True,
              help="http: the variable holding the base URL.")
@click.option("--model", help="http: the endpoint's model name.")
@click.option("--api-key-env", default=DEFAULT_API_KEY_ENV, show_default=True,
              help="http: the environment variable holding the API key (the key itself is never recorded).")
@click.option("--labels", help="http/python/file: the label set, comma-separated (default: the dataset's).")
@click.option("--prompt-file", type=click.Path(dir_okay=False, exists=True),
              help="http: a prompt template with {labels} and {text}.")
@click.option("--concurrency", type=int, help="http: requests in flight at once (default 4).")
@click.option("--max-cost", type=float, help="http: stop the run when its calls would cost more than this.")
@click.option("--price-in", type=float, help="http: price per 1,000 input tokens.")
@click.option("--price-out", type=float, help="http: price per 1,000 output tokens.")
@click.option("--dry-run", is_flag=True, help="http: print the calls still to make and their estimated cost.")
@click.option("--file", "file_path", type=click.Path(dir_okay=False),
              help="file: a CSV, JSONL or Parquet file of outputs.")
@click.option("--drop-foreign", is_flag=True,
              help="file: leave out rows whose id is not in the dataset (counted in the run's stats).")
@click.option("--detach", is_flag=True, help="Run the job in the background instead of here.")
def teacher_run(project: str, dataset_id: int, adapter: str, detach: bool, dry_run: bool, **opts) -> None:
    """Run a teacher over PROJECT's dataset, showing a progress bar."""
    with _session() as session:
        actor = _actor(session)
        p = projects.get_project(session, project)
        if adapter == "file":
            if not opts["file_path"]:
                raise InvalidInput("--adapter file needs --file (a CSV, JSONL or Parquet file).", field="file")
            run = runs.import_file(session, actor=actor, project=p, dataset_id=dataset_id, path=opts["file_path"],
                                   labels=_labels(opts["labels"]), drop_foreign=opts["drop_foreign"])
            _report(run.id)
            return
        if adapter == "local":
            if not opts["model_dir"]:
                raise InvalidInput("--adapter local needs --model-dir (a saved classifier's folder).",
                                   field="model_dir")
            config = {"model_dir": opts["model_dir"], "batch_size": opts["batch_size"]}
            for key in ("device", "engine", "ray_address", "ray_workers"):  # core refuses what does not fit
                if opts[key] is not None:
                    config[key] = opts[key]
        elif adapter == "python":
            if not opts["callable_name"]:
                raise InvalidInput("--adapter python needs --callable (package.module:function).", field="callable")
            config = {"callable": opts["callable_name"], "batch_size": opts["batch_size"],
                      "labels": _labels(opts["labels"])}
        else:
            config = _http_config(opts)
            if dry_run:
                estimate = runs.estimate_cost(session, project=p, dataset_id=dataset_id, config=config)
                click.echo(f"Dry run, nothing sent: {estimate.sentence()}")
                return
        job = runs.start_run(session, actor=actor, project=p, dataset_id=dataset_id, adapter=adapter,
                             config=config)
        if adapter == "http":
            estimate = runs.estimate_cost(session, project=p, dataset_id=dataset_id, config=config)
            click.echo(f"Estimate: {estimate.sentence()}")
    click.echo(f"Teacher run queued as job #{job.id}.")
    if detach:
        start_in_background(job.id)
        return
    run_with_bar(job.id, f"teacher ({adapter})")
    with _session() as session:
        _report(jobs.result_as(jobs.get(session, job.id), TeacherRunResult).teacher_run)


@teacher_group.command("combine")
@click.argument("project")
@click.argument("run_ids", nargs=-1, required=True)
@click.option("--method", type=click.Choice(METHODS), default="mean", show_default=True,
              help="mean: averaged probabilities; vote: majority of labels.")
def teacher_combine(project: str, run_ids: tuple[str, ...], method: str) -> None:
    """Combine teacher runs on one dataset (RUN_IDS: '3 4' or '3,4') into a new run."""
    try:
        ids = [int(v) for part in run_ids for v in part.split(",") if v.strip()]
    except ValueError:
        raise InvalidInput(f"run ids {' '.join(run_ids)!r}: give numbers, e.g. 3 4 or 3,4.", field="runs") from None
    with _session() as session:
        actor = _actor(session)
        run = runs.combine_runs(session, actor=actor, project=projects.get_project(session, project), run_ids=ids,
                                method=method)
    _report(run.id)


@teacher_group.command("runs")
@click.argument("project")
def teacher_runs(project: str) -> None:
    """PROJECT's teacher runs and their filters."""
    with _session() as session:
        _, p = _viewable(session, project)
        rows = [(r.id, r.dataset_id, r.adapter, r.n_rows, r.stats.get("n_unparseable", ""),
                 _fmt(r.stats.get("mean_confidence"), ".3f"), _fmt(r.stats.get("agreement_with_reference"), ".3f"),
                 ",".join(str(f.id) for f in teacher_filter.list_filters(session, project_id=p.id, run_id=r.id)),
                 r.created_at.strftime("%Y-%m-%d %H:%M"))
                for r in runs.list_runs(session, project_id=p.id)]
    if not rows:
        click.echo(f"Project {p.name!r} has no teacher runs yet: start one with `stillroom teacher run`.")
        return
    _table(["RUN", "DATASET", "ADAPTER", "ROWS", "UNPARSEABLE", "MEAN CONF", "AGREEMENT", "FILTERS", "CREATED"], rows)


@teacher_group.command("show")
@click.argument("run_id", type=int)
def teacher_show(run_id: int) -> None:
    """A teacher run's settings, label counts and confidence histogram."""
    with _session() as session:
        run = runs.get_run(session, run_id)
        _viewable(session, str(run.project_id))
        summary = runs.summarize(session, run=run)
    click.echo(f"Teacher run #{run.id} ({run.adapter}) on dataset #{run.dataset_id}: {summary.n_rows:,} rows, "
               f"{summary.n_unparseable:,} unparseable, {summary.n_with_probs:,} with probabilities.")
    click.echo("Settings: " + runs.settings_text(run))
    _table(["LABEL", "ROWS"], list(summary.label_counts.items()))
    edges = summary.confidence_bins
    _table(["CONFIDENCE", "ROWS"], [(f"{edges[i]:.1f}-{edges[i + 1]:.1f}", n)
                                    for i, n in enumerate(summary.confidence_counts)])


@teacher_group.command("filter")
@click.argument("project")
@click.argument("run_id", type=int)
@click.option("--min-confidence", type=float, help="Drop outputs less confident than this (0 to 1).")
@click.option("--drop-reference-disagreement", is_flag=True, help="Drop outputs a reference answer contradicts.")
def teacher_filter_cmd(project: str, run_id: int, min_confidence: float | None,
                       drop_reference_disagreement: bool) -> None:
    """Filter a teacher run's errors by policy (with no option: keep every readable output)."""
    policy = teacher_filter.FilterPolicy(min_confidence=min_confidence,
                                         drop_reference_disagreement=drop_reference_disagreement)
    with _session() as session:
        filt = teacher_filter.apply_filter(session, actor=_actor(session),
                                           project=projects.get_project(session, project), run_id=run_id,
                                           policy=policy)
    c = filt.counts
    click.echo(f"Filter #{filt.id} of teacher run #{run_id}: kept {c['kept']:,} of {c['total']:,}, "
               f"dropped {c['dropped']:,}.")
    _table(["REASON", "ROWS", "MEANING"], [(name, c["by_reason"][name], meaning)
                                           for name, meaning in teacher_filter.REASONS.items()])


@teacher_group.command("dropped")
@click.argument("filter_id", type=int)
@click.option("--reason", type=click.Choice(list(teacher_filter.REASONS)), help="Only rows dropped for this reason.")
@click.option("--limit", type=int, default=50, show_default=True, help="Most rows to print.")
def teacher_dropped(filter_id: int, reason: str | None, limit: int) -> None:
    """The rows a filter dropped, with the input, the reference, the teacher's answer and the reasons."""
    with _session() as session:
        filt = teacher_filter.get_filter(session, filter_id)
        _viewable(session, str(filt.project_id))
        rows = teacher_filter.dropped_rows(session, filter_id=filter_id, reason=reason)
    click.echo(f"Filter #{filter_id} dropped {len(rows):,} rows" + (f" for {reason}" if reason else "") + ".")
    _table(["ID", "TEXT", "REFERENCE", "LABEL", "CONF", "REASONS"],
           [(r.id, str(r.text)[:50], getattr(r, "reference", None), r.label, _fmt(_num(r.confidence), ".2f"),
             r.reasons) for r in rows.head(limit).itertuples()])


def _num(value):
    return None if value is None or value != value else value  # NaN: no confidence


@teacher_group.command("known-records")
@click.argument("project")
@click.argument("outputs", type=click.Path(dir_okay=False, exists=True))
@click.argument("known", type=click.Path(dir_okay=False, exists=True))
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="Where to write the kept outputs (CSV).")
def teacher_known_records(project: str, outputs: str, known: str, out: str) -> None:
    """Extraction: drop teacher OUTPUTS (id, output: a JSON object) that contradict KNOWN records (id and one
    column per known field), compared under PROJECT's locked gate's field rules; print the counts per field."""
    from pathlib import Path

    from core.data import readers
    from core.gate import gate
    from core.teacher.known import check_known

    with _session() as session:
        _, p = _viewable(session, project)
        locked = gate.current(session, project_id=p.id)
        rules = gate.spec_of(locked).field_rules if locked else {}
    frames = [readers.read_source(Path(f).read_bytes(), Path(f).name).frame for f in (outputs, known)]
    done = check_known(frames[0], frames[1], rules=rules)
    Path(out).write_bytes(done.kept_csv())
    click.echo(done.sentence())
    for row in done.dropped.head(5).itertuples():
        click.echo(f"  dropped {row.id}: {row.reasons}")
