"""Every project the person can open, where it stands in the five steps, and what waits on them."""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from core.decision.portfolio import STAGES, portfolio
from core.domain.roles import Role
from pages._show import esc, table
from pages._ui import db, link_params, require_user

st.title(":material/dashboard: Portfolio")

with db() as session:
    user = require_user(session)
    rows = portfolio(session, user=user)

if not rows:
    st.info("No projects to show yet: an admin creates projects and assigns roles on the People & projects page.")
    st.stop()

waiting = [(r, todo) for r in rows for todo in r.waiting]
c1, c2, c3 = st.columns(3)
c1.metric("Projects", len(rows))
c2.metric("Waiting on you", len(waiting))
c3.metric("Gates locked", sum(1 for r in rows if r.gate_version))

st.subheader("Waiting on you")
if waiting:
    for r, todo in waiting[:50]:  # each line opens the page that does it, on its project (and evaluation)
        st.page_link(f"pages/{todo.page}.py", label=f"**{esc(todo.text)}** · {esc(r.name)}",
                     icon=":material/arrow_forward:",
                     query_params=link_params(project_id=r.project_id, evaluation_id=todo.evaluation_id))
    if len(waiting) > 50:
        st.caption(f"…and {len(waiting) - 50} more.")
else:
    st.caption("Nothing is waiting on you.")

st.subheader("Where every project stands")
standing = pd.DataFrame([{
    "Project": r.name,
    "Step": f"{r.stage}/5 · {r.stage_name}",
    "Status": r.status,
    **{role.value.capitalize(): ", ".join(r.roles.get(role.value, [])) for role in Role},
    "Payback (months)": r.payback_months,
    "Gate": f"v{r.gate_version} · {r.gate_hash[:12]}" if r.gate_version else "",
} for r in rows])
# Role columns are often empty, and a column sized to empty cells cuts its own name ("Operato").
roles = {role.value.capitalize(): st.column_config.TextColumn(width="medium") for role in Role}
table(standing, hide_index=True, width="stretch",
      column_config={"Payback (months)": st.column_config.NumberColumn(format="%.1f"), **roles})

counts = [sum(1 for r in rows if r.stage == i) for i in range(1, len(STAGES) + 1)]
fig = go.Figure(go.Bar(x=counts, y=[f"{i}. {s}" for i, s in enumerate(STAGES, start=1)], orientation="h",
                       marker_color="#4c78a8", text=counts, textposition="auto"))
fig.update_layout(title="Projects per step", height=260, margin=dict(l=10, r=10, t=40, b=10),
                  yaxis=dict(autorange="reversed"),
                  # Whole projects: integer ticks, never steps of 0.2.
                  xaxis=dict(title="projects", tickformat="d", dtick=max(1, math.ceil(max(counts) / 8))))
st.plotly_chart(fig, width="stretch")
