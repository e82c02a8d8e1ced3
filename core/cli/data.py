"""Data commands (step 3): import, list, dedup, coverage, oversample, holdout and leakage."""

from __future__ import annotations

import click

from core.access import projects
from core.cli.base import _actor, _session, _table, _viewable, cli
from core.data import coverage as coverage_mod
from core.data import datasets, dedup, holdout, importer, readers
from core.data.similarity import DEFAULT_THRESHOLD


@cli.group("data")
def data_group() -> None:
    """Step 3: production inputs, deduplication, coverage and the holdout."""


def _labels(value: str | None) -> list[str] | None:
    return [x.strip() for x in value.split(",")] if value else None


@data_group.command("preview")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--rows", "n", type=click.IntRange(1, 1000), default=5, show_default=True)
def data_preview(file: str, n: int) -> None:
    """Show FILE's columns and first rows (checks the file, stores nothing)."""
    p = importer.preview(path=file, n=n)
    click.echo(f"{p.format}: {p.n_rows:,} rows; columns: {', '.join(p.columns)}")
    _table(p.columns, p.rows.astype(str).to_numpy().tolist())


@data_group.command("import")
@click.argument("project")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--id", "id_col", required=True, help="The column holding each row's unique id.")
@click.option("--text", "text_col", required=True, help="The column holding the input text.")
@click.option("--slice", "slices", multiple=True, help="A slice column (queue, channel, tier...); repeatable.")
@click.option("--reference", help="The column holding the reference answer, if any.")
@click.option("--timestamp", help="The column holding each row's time (ISO 8601), if any.")
@click.option("--labels", help="Allowed reference labels, comma-separated (e.g. billing,refund).")
@click.option("--purpose", type=click.Choice(datasets.PURPOSES), default="prompts", show_default=True)
@click.option("--name", help="The dataset's name (default: the file name).")
@click.option("--max-mb", type=click.FloatRange(min=0.001), default=readers.MAX_UPLOAD_BYTES / 2**20,
              show_default=True, help="Refuse files larger than this many MiB.")
def data_import(project: str, file: str, id_col: str, text_col: str, slices: tuple[str, ...],
                reference: str | None, timestamp: str | None, labels: str | None, purpose: str,
                name: str | None, max_mb: float) -> None:
    """Validate FILE (CSV, JSONL or Parquet) and store it as a dataset of PROJECT (drivers only)."""
    mapping = {"id": id_col, "text": text_col, "slices": list(slices), "reference": reference,
               "timestamp": timestamp, "labels": _labels(labels)}
    with _session() as session:
        p = projects.get_project(session, project)
        ds = importer.import_dataset(session, actor=_actor(session), project=p, path=file, mapping=mapping,
                                     purpose=purpose, name=name, max_bytes=int(max_mb * 2**20))
    click.echo(f"Imported dataset #{ds.id} {ds.name!r} ({ds.purpose}): {ds.n_rows:,} rows.")


@data_group.command("list")
@click.argument("project")
def data_list(project: str) -> None:
    """PROJECT's datasets, with the holdout when one is fixed."""
    with _session() as session:
        _, p = _viewable(session, project)
        rows = [(d.id, d.name, d.purpose, d.operation, d.parent_id or "", d.n_rows, f"{d.created_at:%Y-%m-%d %H:%M}")
                for d in datasets.list_datasets(session, project_id=p.id)]
        held = holdout.get_holdout(session, project_id=p.id)
        later = holdout.versions(session, project_id=p.id)
    _table(["ID", "NAME", "PURPOSE", "OPERATION", "PARENT", "ROWS", "CREATED"], rows)
    if held:
        click.echo(f"Holdout: {held.n_rows:,} rows from dataset #{held.dataset_id}, fingerprint {held.fingerprint}")
    for v in later[1:]:
        click.echo(f"Holdout version {v.version}: {v.n_rows:,} rows (rows added from dataset #{v.dataset_id}), "
                   f"fingerprint {v.fingerprint}")


@data_group.command("dedup")
@click.argument("project")
@click.argument("dataset_id", type=int)
@click.option("--threshold", type=float, default=DEFAULT_THRESHOLD, show_default=True,
              help="Estimated word-shingle similarity from which two texts are near duplicates.")
@click.option("--apply", "apply_", is_flag=True, help="Store the deduplicated dataset (default: only report).")
def data_dedup(project: str, dataset_id: int, threshold: float, apply_: bool) -> None:
    """Count exact and near duplicates of a dataset, and drop them with --apply."""
    with _session() as session:
        actor, p = _viewable(session, project)
        if apply_:
            child, report = dedup.apply_dedup(session, actor=actor, project=p, dataset_id=dataset_id,
                                              threshold=threshold)
        else:
            child, report = None, dedup.preview_dedup(session, project=p, dataset_id=dataset_id, threshold=threshold)
    click.echo(report.sentence())
    _table(["KIND", "SIMILARITY", "KEPT", "DROPPED"],
           [(e.kind, f"{e.similarity:.2f}", f"{e.kept_id}: {e.kept_text[:50]}",
             f"{e.dropped_id}: {e.dropped_text[:50]}") for e in report.examples])
    if child is not None:
        click.echo(f"Stored dataset #{child.id} {child.name!r}: {child.n_rows:,} rows.")
    elif report.drop.any():
        click.echo("Nothing dropped yet: run again with --apply to store the deduplicated dataset.")


@data_group.command("coverage")
@click.argument("project")
@click.argument("dataset_id", type=int)
@click.option("--production", "production_id", type=int, help="A production dataset to compare shares with.")
def data_coverage(project: str, dataset_id: int, production_id: int | None) -> None:
    """Slice shares against production and the gate's slice minimums."""
    with _session() as session:
        _, p = _viewable(session, project)
        report = coverage_mod.coverage(session, project=p, dataset_id=dataset_id, production_id=production_id)
    for col in report.columns:
        js = "" if col.js_distance is None else f" (Jensen-Shannon distance to production {col.js_distance:.3f})"
        click.echo(f"{col.column}{js}")
        _table(["  VALUE", "ROWS", "SHARE", "PRODUCTION"],
               [(f"  {s.value}", s.count, f"{s.share:.1%}",
                 "" if s.production_share is None else f"{s.production_share:.1%}") for s in col.shares])
    if report.floors:
        click.echo("Gate slices (rows outside the holdout):")
        _table(["  SLICE", "ROWS", "IN HOLDOUT", "MIN", "OK"],
               [(f"  {f.column}={f.value}", f.count, f.in_holdout, f.min_n, "yes" if f.ok else "no")
                for f in report.floors])
    for s in report.sparse:
        click.echo(f"Sparse: {s.column}={s.value} is {s.share:.1%} of rows ({s.count}).")
    for sentence in report.missing:
        click.echo(f"Missing: {sentence}")
    for item in report.plan:
        click.echo(f"Oversampling offered: {item.copies:,} copies of {item.column}={item.value} to reach "
                   f"{item.target:,} (`stillroom data oversample`).")


@data_group.command("oversample")
@click.argument("project")
@click.argument("dataset_id", type=int)
@click.option("--seed", type=int, default=0, show_default=True)
def data_oversample(project: str, dataset_id: int, seed: int) -> None:
    """Copy rows of the gate's under-sampled slices until each reaches its minimum (drivers only)."""
    with _session() as session:
        p = projects.get_project(session, project)
        child = coverage_mod.apply_oversample(session, actor=_actor(session), project=p, dataset_id=dataset_id,
                                              seed=seed)
    for item in child.stats["plan"]:
        click.echo(f"{item['column']}={item['value']}: {item['have']:,} -> {item['target']:,} rows "
                   f"({item['copies']:,} copies)")
    click.echo(f"Stored dataset #{child.id} {child.name!r}: {child.n_rows:,} rows.")


@data_group.command("holdout")
@click.argument("project")
@click.argument("dataset_id", type=int)
@click.option("--fraction", type=float, help="The share of rows to hold out (e.g. 0.2).")
@click.option("--n", "n_rows", type=int, help="Or the number of rows to hold out.")
@click.option("--stratify", multiple=True, help="A slice column to stratify by; repeatable.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--group", "group_by", help="Hold out whole groups of this slice column (a ranking's query_id): "
              "--fraction and --n then count groups.")
def data_holdout(project: str, dataset_id: int, fraction: float | None, n_rows: int | None,
                 stratify: tuple[str, ...], seed: int, group_by: str | None) -> None:
    """Fix PROJECT's holdout once, drawn from a dataset (drivers only; a second attempt exits 3).

    Oversampled copies are never drawn; the holdout takes at most half the rows (or groups)."""
    with _session() as session:
        p = projects.get_project(session, project)
        h = holdout.fix_holdout(session, actor=_actor(session), project=p, dataset_id=dataset_id,
                                fraction=fraction, n=n_rows, stratify_by=stratify, seed=seed, group_by=group_by)
    click.echo(f"Fixed the holdout of {p.name!r}: {h.n_rows:,} rows from dataset #{h.dataset_id}, "
               f"fingerprint {h.fingerprint}.")


@data_group.command("holdout-import")
@click.argument("project")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--id", "id_col", required=True, help="The column holding each row's unique id.")
@click.option("--text", "text_col", required=True, help="The column holding the input text.")
@click.option("--reference", required=True, help="The column holding each row's answer (every row needs one).")
@click.option("--slice", "slices", multiple=True, help="A slice column (queue, language...); repeatable.")
@click.option("--labels", help="Allowed reference labels, comma-separated.")
@click.option("--name", help="The stored test split's name (default: from the file name).")
def data_holdout_import(project: str, file: str, id_col: str, text_col: str, reference: str,
                        slices: tuple[str, ...], labels: str | None, name: str | None) -> None:
    """Make your own test split FILE the holdout of PROJECT, once (drivers only): validated, fingerprinted,
    stored apart from the training data, and checked for leakage against every training row."""
    mapping = {"id": id_col, "text": text_col, "slices": list(slices), "reference": reference,
               "timestamp": None, "labels": _labels(labels)}
    with _session() as session:
        p = projects.get_project(session, project)
        done = holdout.import_holdout(session, actor=_actor(session), project=p, mapping=mapping, path=file,
                                      name=name)
    click.echo(done.sentence())
    click.echo(f"Fingerprint {done.holdout.fingerprint}.")


@data_group.command("holdout-export")
@click.argument("project")
@click.option("--format", "fmt", type=click.Choice(holdout.EXPORT_FORMATS), default="csv", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, writable=True), required=True,
              help="Where to write the file.")
def data_holdout_export(project: str, fmt: str, out: str) -> None:
    """Write PROJECT's holdout ids and inputs (and query_id for rankings), never its references, so a team
    predicting elsewhere predicts exactly those rows (CSV cells are formula-safe)."""
    with _session() as session:
        _, p = _viewable(session, project)
        body = holdout.export_holdout(session, project=p, fmt=fmt)
        n = len(holdout.export_rows(session, project=p))
    with open(out, "wb") as fh:
        fh.write(body)
    click.echo(f"Wrote the {n:,} holdout rows of {p.name!r} to {out} ({fmt}): predict every row, then "
               "`stillroom eval import`.")


@data_group.command("holdout-extend")
@click.argument("project")
@click.argument("dataset_id", type=int)
@click.option("--reason", required=True, help="Why the holdout grows (the data request it answers).")
@click.option("--ids", help="Only these rows of the dataset, comma-separated (default: all rows not yet held out).")
def data_holdout_extend(project: str, dataset_id: int, reason: str, ids: str | None) -> None:
    """Add rows of a dataset to PROJECT's holdout as a new, fingerprinted version (drivers only): never
    oversampled copies, never rows a teacher labelled for training, never text that (nearly) equals one."""
    with _session() as session:
        p = projects.get_project(session, project)
        v = holdout.extend_holdout(session, actor=_actor(session), project=p, dataset_id=dataset_id, reason=reason,
                                   ids=_labels(ids))
    click.echo(f"Holdout version {v.version} of {p.name!r}: {v.n_rows:,} rows ({v.n_added:,} added from dataset "
               f"#{v.dataset_id}), fingerprint {v.fingerprint}. Evaluations from now on are scored on it.")


@data_group.command("requests")
@click.argument("project")
def data_requests(project: str) -> None:
    """The data the latest iterate decision asked for, what was added since and by what, and whether it is met."""
    from core.decision import requests

    with _session() as session:
        _, p = _viewable(session, project)
        found = requests.status(session, project=p)
    if not found:
        click.echo(f"Project {p.name!r} has no open data request.")
    for r in found:
        click.echo(r.sentence())


@data_group.command("leakage")
@click.argument("project")
@click.argument("dataset_id", type=int)
def data_leakage(project: str, dataset_id: int) -> None:
    """Rows of a dataset that equal or nearly equal a holdout row."""
    with _session() as session:
        _, p = _viewable(session, project)
        report = holdout.dataset_leakage(session, project=p, dataset_id=dataset_id)
    click.echo(report.sentence())
    _table(["KIND", "SIMILARITY", "ROW", "HOLDOUT ROW"],
           [(e.kind, f"{e.similarity:.2f}", f"{e.row_id}: {e.text[:50]}", f"{e.holdout_id}: {e.holdout_text[:50]}")
            for e in report.examples])


@data_group.command("drop-overlap")
@click.argument("project")
@click.argument("dataset_id", type=int)
def data_drop_overlap(project: str, dataset_id: int) -> None:
    """Store a dataset without the rows that equal or nearly equal a holdout row (drivers only)."""
    with _session() as session:
        p = projects.get_project(session, project)
        child, report = holdout.drop_overlap(session, actor=_actor(session), project=p, dataset_id=dataset_id)
    click.echo(f"{report.sentence()} Stored dataset #{child.id} {child.name!r} without them ({child.n_rows:,} rows); "
               "run the teacher on it before training.")
