"""The demo's generated support tickets: fixed seed, shares, slices, languages, duplicates and label noise."""

from __future__ import annotations

import pandas as pd
import pytest

from core.demo import tickets as demo_tickets

MARKERS = {  # common words of each language; nearly every ticket written in it has one
    "es": {"el", "la", "de", "mi", "que", "no", "por", "en", "con", "me"},
    "de": {"ich", "der", "die", "das", "nicht", "mein", "meine", "ist", "bitte", "mir", "den"},
    "fr": {"le", "la", "de", "je", "mon", "ma", "pas", "est", "merci", "du", "en"},
}


@pytest.fixture(scope="module")
def tickets() -> pd.DataFrame:
    return demo_tickets.generate(truth=True)


def _normalised(texts: pd.Series) -> pd.Series:
    return texts.str.casefold().str.split().str.join(" ")  # casefold: "GRÜSSE" and "Grüße" are one text


def _words(text: str) -> set[str]:
    return set(text.lower().replace("'", " ").replace(",", " ").replace("?", " ").split())


def test_same_seed_gives_the_identical_frame():
    pd.testing.assert_frame_equal(demo_tickets.generate(2000, 7), demo_tickets.generate(2000, 7))


def test_different_seed_gives_a_different_frame():
    a, b = demo_tickets.generate(2000, 7), demo_tickets.generate(2000, 8)
    assert (a["text"] != b["text"]).mean() > 0.9


def test_default_set_has_20000_rows_unique_ids_and_every_slice_column(tickets):
    public = demo_tickets.generate()
    assert len(public) >= 20_000
    assert list(public.columns) == ["id", "text", "queue", "channel", "tier", "language", "timestamp"]
    assert public["id"].is_unique and public["id"].str.fullmatch(r"T\d{6}").all()
    assert public["text"].str.strip().str.len().min() > 10
    assert set(public["channel"]) == {"email", "chat", "phone_transcript", "web_form"}
    assert set(public["tier"]) == {"free", "pro", "enterprise"}


def test_at_least_8_queues_and_the_rare_one_is_1_to_2_percent(tickets):
    shares = tickets["queue"].value_counts(normalize=True)
    assert len(shares) >= 8
    assert 0.01 <= shares[demo_tickets.RARE_QUEUE] <= 0.02
    assert shares.drop(demo_tickets.RARE_QUEUE).min() > 0.03  # the rare queue is the only rare one


def test_tickets_are_written_in_their_language_and_most_are_english(tickets):
    shares = tickets["language"].value_counts(normalize=True)
    assert set(shares.index) == {"en", "es", "de", "fr"} and shares.idxmax() == "en" and shares["en"] > 0.6
    for lang, markers in MARKERS.items():
        texts = tickets.loc[tickets["language"] == lang, "text"]
        assert texts.map(lambda t, m=markers: bool(_words(t) & m)).mean() > 0.9, lang
    english = tickets.loc[tickets["language"] == "en", "text"]
    assert english.map(lambda t: bool(_words(t) & {"ich", "nicht", "je", "mon", "quiero"})).mean() < 0.01


def test_timestamps_are_utc_and_span_90_days(tickets):
    ts = tickets["timestamp"]
    assert str(ts.dt.tz) == "UTC" and ts.is_monotonic_increasing
    assert pd.Timedelta(days=85) < ts.max() - ts.min() <= pd.Timedelta(days=90)


def test_some_tickets_repeat_after_normalising_case_and_whitespace(tickets):
    norm = _normalised(tickets["text"])
    exact = tickets["variant"] == "exact_duplicate"
    assert 0.015 <= exact.mean() <= 0.03
    assert (tickets.loc[exact, "text"] != tickets.loc[exact, "text"].str.strip()).any() or \
        (tickets.loc[exact, "text"].str.isupper()).any()  # they differ in raw form, not only after normalising
    assert norm[exact].isin(set(norm[~exact])).all()
    near = tickets["variant"] == "near_duplicate"
    assert 0.005 <= near.mean() <= 0.02 and not norm[near].isin(set(norm[~near])).all()


def test_a_small_share_of_reference_labels_are_wrong(tickets):
    wrong = tickets["queue"] != tickets["true_queue"]
    assert 0.01 <= wrong.mean() <= 0.03
    # A wrong label is a neighbouring queue an agent could confuse, never the rare queue by mistake.
    assert (tickets.loc[wrong, "queue"] != demo_tickets.RARE_QUEUE).all()


def test_write_csv_round_trips(tmp_path):
    path = demo_tickets.write_csv(tmp_path / "tickets.csv", n=300, seed=3)
    back = pd.read_csv(path, dtype=str, keep_default_na=False)
    original = demo_tickets.generate(300, 3)
    assert back["id"].tolist() == original["id"].tolist()
    assert back["text"].tolist() == original["text"].tolist()
    assert pd.to_datetime(back["timestamp"], utc=True).tolist() == original["timestamp"].tolist()
