"""Plotly figures for the widgets and notebooks: timelines, lab series, cohort distributions, metrics.

Each function takes a DataFrame shaped by :mod:`workbench.ui.data` or the core and returns a
``plotly.graph_objects.Figure``; nothing here reads the workspace or decides what is abnormal.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
import plotly.graph_objects as go

__all__ = [
    "ABNORMAL_FLAGS",
    "age_figure",
    "attrition_figure",
    "cohort_lab_figure",
    "lab_figure",
    "metrics_figure",
    "sex_figure",
    "timeline_figure",
]

#: Flags from :mod:`workbench.cohort.labs` that mark a result outside its reference range.
ABNORMAL_FLAGS = ("low", "high", "critical")

_LANES = ["encounter", "condition", "medication", "lab"]
_COLOURS = {"encounter": "#8c959f", "condition": "#8250df", "medication": "#1a7f37", "lab": "#0969da"}


def _layout(fig: go.Figure, title: str, height: int = 320) -> go.Figure:
    fig.update_layout(
        title=title,
        height=height,
        margin={"l": 10, "r": 10, "t": 40, "b": 30},
        template="plotly_white",
        legend={"orientation": "h", "y": -0.2},
    )
    return fig


def timeline_figure(events: pd.DataFrame, *, title: str = "Timeline") -> go.Figure:
    """One lane per kind (encounters, conditions, medications, labs); abnormal labs in red."""
    fig = go.Figure()
    if events.empty:
        return _layout(fig, f"{title} (no dated records)")
    for kind in _LANES:
        rows = events[events["kind"] == kind]
        if rows.empty:
            continue
        if kind == "lab":
            abnormal = rows["flag"].isin(ABNORMAL_FLAGS)
            for part, name, colour in (
                (rows[~abnormal], "lab / vital", _COLOURS["lab"]),
                (rows[abnormal], "abnormal result", "#cf222e"),
            ):
                if part.empty:
                    continue
                text = [
                    f"{lbl}: {v:.4g} {u or ''} ({f or 'no range'})"
                    for lbl, v, u, f in zip(part["label"], part["value"], part["unit"], part["flag"])
                ]
                fig.add_trace(
                    go.Scatter(
                        x=part["start"],
                        y=[kind] * len(part),
                        mode="markers",
                        name=name,
                        # abnormal results as open red rings, so normal results on the same day stay visible
                        marker=(
                            {"color": colour, "size": 12, "symbol": "circle-open", "line": {"width": 2}}
                            if name.startswith("abnormal")
                            else {"color": colour, "size": 6}
                        ),
                        text=text,
                        hovertemplate="%{x|%Y-%m-%d}<br>%{text}<extra></extra>",
                    )
                )
            continue
        fig.add_trace(
            go.Scatter(
                x=rows["start"],
                y=[kind] * len(rows),
                mode="markers",
                name=kind,
                marker={"color": _COLOURS[kind], "size": 9, "symbol": "diamond"},
                text=rows["label"].astype(str),
                hovertemplate="%{x|%Y-%m-%d}<br>%{text}<extra></extra>",
            )
        )
        spans = rows[rows["end"].notna()]
        for _, r in spans.iterrows():  # conditions that resolved / encounters with an end
            fig.add_trace(
                go.Scatter(
                    x=[r["start"], r["end"]],
                    y=[kind, kind],
                    mode="lines",
                    line={"color": _COLOURS[kind], "width": 4},
                    opacity=0.35,
                    showlegend=False,
                    hoverinfo="skip",
                )
            )
    fig.update_yaxes(categoryorder="array", categoryarray=list(reversed(_LANES)))
    return _layout(fig, title, height=300)


def lab_figure(events: pd.DataFrame, label: str, *, title: str | None = None) -> go.Figure:
    """One lab's results over time with its reference range shaded and abnormal points in red."""
    rows = events[(events["kind"] == "lab") & (events["label"] == label)].sort_values("start")
    fig = go.Figure()
    if rows.empty:
        return _layout(fig, f"{label}: no results")
    unit = next((u for u in rows["unit"] if u), "")
    low = rows["ref_low"].dropna()
    high = rows["ref_high"].dropna()
    if len(low) and len(high):
        fig.add_hrect(
            y0=float(low.iloc[-1]),
            y1=float(high.iloc[-1]),
            fillcolor="#2da44e",
            opacity=0.12,
            line_width=0,
            annotation_text="reference range",
            annotation_position="top left",
        )
    fig.add_trace(
        go.Scatter(
            x=rows["start"], y=rows["value"], mode="lines+markers", name=label, line={"color": "#0969da"}
        )
    )
    abnormal = rows[rows["flag"].isin(ABNORMAL_FLAGS)]
    if not abnormal.empty:
        fig.add_trace(
            go.Scatter(
                x=abnormal["start"],
                y=abnormal["value"],
                mode="markers",
                name="outside range",
                marker={"color": "#cf222e", "size": 11, "symbol": "circle-open", "line": {"width": 2}},
                text=abnormal["flag"],
                hovertemplate="%{x|%Y-%m-%d}: %{y:.4g} (%{text})<extra></extra>",
            )
        )
    fig.update_yaxes(title=unit)
    return _layout(fig, title or f"{label} ({unit})" if unit else label)


def age_figure(patients: pd.DataFrame, *, title: str = "Age at index date") -> go.Figure:
    """Histogram of the cohort's ages (10-year bins)."""
    fig = go.Figure(go.Histogram(x=patients["age"].dropna(), xbins={"size": 10}, marker_color="#0969da"))
    fig.update_xaxes(title="age (years)")
    fig.update_yaxes(title="patients")
    return _layout(fig, title, height=260)


def sex_figure(patients: pd.DataFrame, *, title: str = "Sex") -> go.Figure:
    """Bar chart of the cohort's recorded sex."""
    counts = patients["sex"].fillna("not recorded").value_counts().sort_index()
    fig = go.Figure(go.Bar(x=counts.index.tolist(), y=counts.values.tolist(), marker_color="#8250df"))
    fig.update_yaxes(title="patients")
    return _layout(fig, title, height=260)


def attrition_figure(attrition: pd.DataFrame, *, title: str = "Attrition") -> go.Figure:
    """Patients remaining after each criterion, as a funnel."""
    fig = go.Figure(go.Funnel(y=attrition["criterion"].astype(str).tolist(), x=attrition["n"].tolist()))
    return _layout(fig, title, height=80 + 45 * len(attrition))


def cohort_lab_figure(
    labs: pd.DataFrame, labels: Mapping[str, str], *, title: str = "Lab results across the cohort"
) -> go.Figure:
    """One line per patient (named by ``labels``: patient id -> pseudonym) of one lab's normalised values."""
    fig = go.Figure()
    if labs.empty:
        return _layout(fig, f"{title}: no results")
    unit = next((u for u in labs["unit_norm"] if u), "")
    for pid, g in labs.sort_values("effective").groupby("patient_id", sort=True):
        fig.add_trace(
            go.Scatter(
                x=pd.to_datetime(g["effective"]),
                y=g["value_norm"],
                mode="lines+markers",
                name=labels.get(str(pid), "patient"),
            )
        )
    fig.update_yaxes(title=unit)
    return _layout(fig, title, height=340)


def metrics_figure(
    methods: Mapping[str, Mapping[str, Any]], *, title: str = "Retrieval quality"
) -> go.Figure:
    """Grouped bars of nDCG@10, recall@100 and MRR@10 per method (the benchmark's JSON shape)."""
    metrics = [
        m for m in ("ndcg_at_10", "recall_at_100", "mrr_at_10") if any(m in v for v in methods.values())
    ]
    fig = go.Figure()
    for name in metrics:
        fig.add_trace(
            go.Bar(
                x=list(methods),
                y=[methods[m].get(name) for m in methods],
                name=name,
                text=[f"{methods[m].get(name, 0):.3f}" for m in methods],
                textposition="outside",
            )
        )
    fig.update_layout(barmode="group")
    fig.update_yaxes(range=[0, 1.05])
    return _layout(fig, title, height=340)


def latency_figure(
    methods: Mapping[str, Mapping[str, Any]], *, title: str = "Latency per query (ms)"
) -> go.Figure:
    """Grouped bars of p50 and p95 latency per method."""
    fig = go.Figure()
    for name in ("p50_ms", "p95_ms"):
        fig.add_trace(go.Bar(x=list(methods), y=[methods[m].get(name) for m in methods], name=name))
    fig.update_layout(barmode="group")
    return _layout(fig, title, height=300)
