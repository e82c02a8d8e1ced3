"""Deduplication: exact and near duplicates counted and shown before anything is dropped, then applied."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from data_helpers import import_rows, routing, snapshot, ticket_rows
from datasketch import MinHash

from core.data import dedup, similarity
from core.domain.errors import InvalidInput, PermissionDenied
from core.store.artifacts import load_table
from core.store.models import Artifact, AuditEvent


def _frame(texts: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"id": [f"r{i}" for i in range(len(texts))], "text": texts})


def test_exact_duplicates_ignore_case_whitespace_and_unicode_width():
    df = _frame(["Refund my order", "  refund   MY order ", "ｒｅｆｕｎｄ my order", "something else entirely"])
    report = dedup.find_duplicates(df)
    assert (report.exact, report.near, report.kept) == (2, 0, 2)
    assert report.drop.tolist() == [False, True, True, False]
    assert {(p.kind, p.kept_id) for p in report.examples} == {("exact", "r0")}


def test_near_duplicates_are_found_and_distinct_texts_kept():
    base = "my parcel arrived damaged and the box was open when the courier left it at the door"
    df = _frame([base, base + " today", "please reset my password because the account is locked",
                 "the invoice for march shows the wrong billing address and vat number"])
    report = dedup.find_duplicates(df, threshold=0.8)
    assert (report.exact, report.near) == (0, 1)
    near = [p for p in report.examples if p.kind == "near"][0]
    assert (near.kept_id, near.dropped_id) == ("r0", "r1") and near.similarity >= 0.8
    assert report.drop.tolist() == [False, True, False, False]


def test_a_stricter_threshold_keeps_more_rows():
    base = "order 1182 has not arrived and tracking has shown no movement for nine days now"
    df = _frame([base, base.replace("nine", "ten"), "totally unrelated complaint about a broken login page"])
    assert dedup.find_duplicates(df, threshold=0.6).near == 1
    assert dedup.find_duplicates(df, threshold=0.95).near == 0


def test_signatures_equal_datasketch_minhash_on_the_same_shingles():
    norm = similarity.normalise(pd.Series(["Hello, world again", "a b c d e", "single"]))
    sig, usable = similarity.signatures(norm)
    uni, bi = similarity.shingle(norm)
    for i in range(len(norm)):
        m = MinHash(num_perm=similarity.NUM_PERM, seed=similarity.SEED, hashfunc=int)
        hv = [*uni.hashes[uni.starts[i]:uni.starts[i] + uni.counts[i]],
              *bi.hashes[bi.starts[i]:bi.starts[i] + bi.counts[i]]]
        m.update_batch(hv)
        assert np.array_equal(m.hashvalues, sig[i])
    assert usable.all()


def test_rows_without_words_are_not_near_duplicates_of_each_other():
    report = dedup.find_duplicates(_frame(["???", "!!!", "...", "real words here"]))
    assert (report.exact, report.near) == (0, 0)


def test_threshold_out_of_range_is_refused():
    with pytest.raises(InvalidInput, match="threshold 0.2 is outside"):
        dedup.find_duplicates(_frame(["a", "b"]), threshold=0.2)


def test_preview_writes_nothing_and_apply_stores_a_child_dataset(session, demo):
    rows = ticket_rows(60)
    rows.append({**rows[3], "ticket_id": "DUP1", "body": rows[3]["body"].upper()})
    rows.append({**rows[5], "ticket_id": "DUP2", "body": rows[5]["body"] + " please"})
    ds = import_rows(session, demo["dana"], rows)
    before = snapshot(session)
    report = dedup.preview_dedup(session, project=routing(session), dataset_id=ds.id, threshold=0.7)
    assert snapshot(session) == before
    assert report.exact == 1 and report.near >= 1
    child, applied = dedup.apply_dedup(session, actor=demo["dana"], project=routing(session), dataset_id=ds.id,
                                       threshold=0.7)
    assert (child.operation, child.parent_id, child.n_rows) == ("dedup", ds.id, applied.kept)
    kept = load_table(session.get(Artifact, child.artifact_id))
    assert "DUP1" not in set(kept["id"]) and "DUP2" not in set(kept["id"])
    assert child.stats["dropped_exact"] == 1 and child.mapping == ds.mapping
    event = session.exec(AuditEvent.__table__.select().order_by(AuditEvent.id.desc())).first()
    assert event.action == "dataset.dedup" and event.entity_id == str(child.id)


def test_apply_without_duplicates_or_by_a_non_driver_is_refused(session, demo):
    ds = import_rows(session, demo["dana"], ticket_rows(20))
    before = snapshot(session)
    with pytest.raises(InvalidInput, match="has no duplicates"):
        dedup.apply_dedup(session, actor=demo["dana"], project=routing(session), dataset_id=ds.id)
    with pytest.raises(PermissionDenied):
        dedup.apply_dedup(session, actor=demo["sam"], project=routing(session), dataset_id=ds.id)
    assert snapshot(session) == before


def test_case_folding_catches_german_sharp_s():
    import pandas as pd

    from core.data.similarity import normalise

    texts = pd.Series(["Lieferung in die Hauptstraße 5", "LIEFERUNG IN DIE HAUPTSTRASSE 5"])
    assert normalise(texts).nunique() == 1
