"""Sponsor, step 2: define the success gate and lock it before any training.

A locked gate never changes; raising or lowering the bar locks a new version
with a reason, and the versions can be compared here.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.domain import gate_spec
from core.domain.gate_spec import FLOOR_MEANING, FloorKind, GateSpec, Metric, SevereErrors, SliceFloor
from core.domain.roles import Role
from core.gate import gate
from core.qualify import qualification
from pages._show import esc, short_hash, table
from pages._ui import act, comma_list, db, page_start, require_user

SLICE_COLUMNS = ["column", "value", "floor", "min_n"]
# The form's labels are the spec's field titles, so core's refusals name the fields as shown here.
label = gate_spec.field_title

user, project, is_sponsor = page_start(":material/lock: Success gate", role=Role.SPONSOR)
with db() as session:
    versions = gate.history(session, project_id=project.id)
    latest_q = qualification.latest(session, project_id=project.id)

st.caption(f"Project: {esc(project.name)}. The bar is fixed before training, so nobody grades their own work.")
current = versions[-1] if versions else None


def _render_spec(spec: GateSpec) -> None:
    floor = spec.quality_floor
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Metric", gate_spec.metric_label(spec.metric))
    c2.metric(f"Floor ({floor.kind})", f"{floor.value:g}")
    c3.metric("p95 latency target", f"{spec.p95_latency_ms:g} ms")
    c4.metric("Cost per 1k target", f"${spec.cost_per_1k:g}")
    meaning = gate_spec.floor_sentence(metric=spec.metric, kind=floor.kind, value=floor.value)
    st.caption(f"{meaning[:1].upper()}{meaning[1:]}; payback within {spec.payback_months:g} months.")
    if spec.slice_floors:
        st.markdown("**Production-critical slices**")
        table(pd.DataFrame([f.model_dump() for f in spec.slice_floors], columns=SLICE_COLUMNS), hide_index=True)
    severe = spec.severe_errors
    st.markdown("**Severe classes** ("
                + (", ".join(esc(c) for c in severe.classes) or "none named yet")
                + f"): of the holdout items whose truth is one of them, at most {severe.max_rate:.2%} may be "
                f"missed or mislabelled, judged on at least {severe.min_n} such items (fewer: "
                "INSUFFICIENT DATA); false alarms are shown, not gated.")
    if spec.min_reviews_per_critical_slice:
        st.markdown(f"Validators review at least {spec.min_reviews_per_critical_slice} items per critical slice.")
    if spec.notes:
        st.caption(esc(spec.notes))


if current is None:
    st.info("No gate is locked yet: training is refused until the sponsor locks one.")
else:
    ok = gate.hash_verifies(current)
    (st.success if ok else st.error)(
        f"Gate v{current.version} locked {current.locked_at:%Y-%m-%d %H:%M} UTC · "
        f"hash `{short_hash(current.content_hash)}` · "
        + ("content hash verifies" if ok else "CONTENT HASH DOES NOT VERIFY: the row was changed outside Stillroom"),
        icon=":material/lock:" if ok else ":material/warning:")
    if current.reason:
        st.markdown(f"Reason for this version: {esc(current.reason)}")
    _render_spec(gate.spec_of(current))

if len(versions) > 1:
    st.subheader("History")
    table(pd.DataFrame([{"Version": v.version, "Locked (UTC)": f"{v.locked_at:%Y-%m-%d %H:%M}",
                                "Reason": v.reason, "Hash": v.content_hash[:16],
                                "Supersedes": (v.supersedes_hash or "")[:16]} for v in versions]),
                 hide_index=True, width="stretch")
    nums = [v.version for v in versions]
    c1, c2 = st.columns(2)
    a = c1.selectbox("Compare version", nums, index=len(nums) - 2)
    b = c2.selectbox("with version", nums, index=len(nums) - 1)
    changes = gate.diff(versions[nums.index(a)], versions[nums.index(b)])
    if changes:
        table(pd.DataFrame([{"Criterion": c.path, "Change": c.change, f"v{a}": str(c.old),
                                    f"v{b}": str(c.new)} for c in changes]), hide_index=True, width="stretch")
    else:
        st.caption("The two versions set the same bar.")

if not is_sponsor:
    st.info(f"Only a sponsor of {esc(project.name)} locks or versions its gate.")
    st.stop()

st.subheader("Lock a new version" if current else "Define and lock the gate")
if current:
    base = gate.spec_of(current)
    st.caption("Starts from the locked version; changing the bar needs a reason.")
else:
    play = latest_q.inputs["play"] if latest_q else "cost-pressure"
    base = GateSpec.model_validate(gate.template(play, latest_q.inputs if latest_q else None))
    st.caption(f"Starts from the template of the {esc(play)} play; edit it before locking.")

k = f"{project.id}_{current.version if current else 0}"
metrics, kinds = list(Metric), list(FloorKind)
# Plain inputs, not a data grid: a grid's cell editor drops or shifts keystrokes typed quickly across Tab.
base_floors = [f.model_dump() for f in base.slice_floors]
n_floors = st.number_input("Slice floors to fill in", min_value=len(base_floors), max_value=50,
                           value=max(3, len(base_floors) + 1), step=1, key=f"n_floors_{k}",
                           help="Rows left empty are ignored; raise this to name more slices.")
with st.form(f"gate_{k}"):
    c1, c2, c3 = st.columns(3)
    metric = c1.selectbox(label(GateSpec, "metric"), metrics, format_func=gate_spec.metric_label,
                          index=metrics.index(Metric(base.metric)))
    kind = c2.selectbox("Quality floor", kinds, index=kinds.index(FloorKind(base.quality_floor.kind)),
                        help="; ".join(f"{k_.value}: {m}" for k_, m in FLOOR_MEANING.items()))
    floor = c3.number_input("Floor value", min_value=0.0, max_value=1.0, value=float(base.quality_floor.value),
                            step=0.01, format="%.3f", help="Its meaning is spelled out under the locked gate.")
    st.markdown("**Floors for production-critical slices** (column and value as in the data, the floor, "
                "and the fewest examples the slice needs in the holdout)")
    floor_rows = []
    for i in range(int(n_floors)):
        row = base_floors[i] if i < len(base_floors) else {}
        shown = "visible" if i == 0 else "collapsed"
        c0, c1, c2, c3, c4 = st.columns([1, 3, 3, 2, 2], vertical_alignment="bottom")
        c0.markdown(f"{label(GateSpec, 'slice_floors')} {i + 1}")
        floor_rows.append({
            "column": c1.text_input(label(SliceFloor, "column"), value=row.get("column", ""),
                                    key=f"sf_column_{k}_{i}", label_visibility=shown),
            "value": c2.text_input(label(SliceFloor, "value"), value=row.get("value", ""),
                                   key=f"sf_value_{k}_{i}", label_visibility=shown),
            "floor": c3.number_input(label(SliceFloor, "floor"), min_value=0.0, max_value=1.0,
                                     value=row.get("floor"), step=0.01, format="%.3f", key=f"sf_floor_{k}_{i}",
                                     label_visibility=shown),
            "min_n": c4.number_input(label(SliceFloor, "min_n"), min_value=1, value=row.get("min_n"), step=1,
                                     key=f"sf_min_n_{k}_{i}", label_visibility=shown),
        })
    c4, c5, c5n = st.columns(3)
    severe_classes = c4.text_input("Severe classes (comma-separated)",
                                   value=", ".join(base.severe_errors.classes),
                                   help="Answers whose wrong handling is severe: a refund, compliance or safety class.")
    severe_rate = c5.number_input(label(SevereErrors, "max_rate"), value=float(base.severe_errors.max_rate),
                                  step=0.001, format="%.3f",
                                  help="Of the items whose truth is a severe class, the share the student may miss.")
    severe_min_n = c5n.number_input(label(SevereErrors, "min_n"), min_value=1, step=1,
                                    value=int(base.severe_errors.min_n))
    c6, c7, c8, c9 = st.columns(4)
    p95 = c6.number_input(label(GateSpec, "p95_latency_ms"), value=float(base.p95_latency_ms), step=5.0)
    cost = c7.number_input(label(GateSpec, "cost_per_1k"), value=float(base.cost_per_1k), step=0.05)
    payback = c8.number_input(label(GateSpec, "payback_months"), value=float(base.payback_months), step=1.0)
    reviews = c9.number_input(label(GateSpec, "min_reviews_per_critical_slice"),
                              value=int(base.min_reviews_per_critical_slice), step=1)
    c10, c11 = st.columns(2)
    ranking_k = c10.number_input(label(GateSpec, "ranking_k"), min_value=1, max_value=1000,
                                 value=int(base.ranking_k), step=1, help="Rankings are judged by NDCG@k.")
    declared_ok = c11.checkbox(label(GateSpec, "declared_latency_acceptable"),
                               value=bool(base.declared_latency_acceptable),
                               help="Judge a p95 latency that a person declared (not measured by Stillroom); "
                                    "off: such a latency is INSUFFICIENT DATA until measured.")
    if base.field_floors or base.field_rules:
        st.caption("Field floors and field rules carry over from the base version; change them with "
                   "`stillroom gate lock --file`.")
    notes = st.text_area(label(GateSpec, "notes"), value=base.notes)
    reason = st.text_input("Reason for this version" + (" (required)" if current else " (optional)"))
    submitted = st.form_submit_button(f"Lock gate v{(current.version if current else 0) + 1}", type="primary")


if submitted:
    spec = {
        "metric": metric.value,
        "quality_floor": {"kind": kind.value, "value": floor},
        "slice_floors": gate_spec.filled_rows(floor_rows),
        "severe_errors": {"classes": comma_list(severe_classes),
                          "max_rate": severe_rate, "min_n": int(severe_min_n)},
        "p95_latency_ms": p95, "cost_per_1k": cost, "payback_months": payback,
        "min_reviews_per_critical_slice": int(reviews), "notes": notes, "ranking_k": int(ranking_k),
        "declared_latency_acceptable": bool(declared_ok), "field_floors": [f.model_dump() for f in base.field_floors],
        "field_rules": {name: list(rules) for name, rules in base.field_rules.items()},
    }
    with db() as session:
        user = require_user(session)
        act(lambda: gate.lock(session, actor=user, project=project, spec=spec, reason=reason),
            lambda g: f"Gate v{g.version} locked; content hash {g.content_hash[:16]}.", rerun=True)
