"""The Evaluate page puts two or more evaluations side by side: a table of every criterion and slice with the
change from the base, and one plot."""

from __future__ import annotations

import json

from pages_helpers import app_as, by_label, frame_with
from review_helpers import make_evaluation, moderation_predictions, passing_predictions


def test_pick_two_evaluations_and_see_the_deltas_and_one_plot(session, demo, gated):
    worse = make_evaluation(session, project=gated, actor=demo["dana"], df=moderation_predictions())
    better = make_evaluation(session, project=gated, actor=demo["dana"], df=passing_predictions())
    at = app_as(demo["dana"], page="pages/evaluate.py", project_id=gated.id)
    by_label(at.multiselect, "Evaluations (the first is the base the changes are measured from)").set_value(
        [worse.id, better.id]).run()
    assert not at.exception
    side = frame_with(at, f"Δ #{better.id} r1")
    assert {"criterion", "slice"} <= set(side["What"]) and "category=threat: accuracy" in set(side["Name"])
    titles = [json.loads(c.proto.spec)["layout"].get("title", {}).get("text", "") for c in at.get("plotly_chart")]
    assert "Per slice: the student's accuracy with its 95 % interval" in titles
