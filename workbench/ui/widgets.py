"""The notebook widgets: evidence search, cohort explorer, case explorer and workspace panel.

Each widget is an ``ipywidgets.VBox`` that lays out controls and outputs; each callback calls
one core function (search, run a cohort, load a case, ask, revoke consent, import) and renders
its result. Every interactive element carries a stable ``wb-*`` CSS class so the browser tests
(and users' style sheets) can find it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import ipywidgets as w
import pandas as pd
import plotly.graph_objects as go
from IPython.display import display

from workbench.errors import WorkbenchError
from workbench.ui import figures
from workbench.ui.html import STYLE, answer_card, findings_html, hits_html, table_html

__all__ = [
    "CaseExplorer",
    "CohortExplorer",
    "EvidenceSearch",
    "WorkspacePanel",
    "release_database",
    "show_figure",
]


def show_figure(out: w.Output, fig: go.Figure) -> None:
    """Render ``fig`` into ``out`` through the Plotly MIME type (bundled renderer; no CDN needed)."""
    out.clear_output(wait=True)
    with out:
        display(
            {
                # plotly's own encoder turns numpy arrays and datetimes into plain JSON
                "application/vnd.plotly.v1+json": json.loads(fig.to_json()),
                "text/plain": f"<plotly figure: {fig.layout.title.text or 'untitled'}>",
            },
            raw=True,
        )


def release_database(workspace: Any) -> None:
    """Let go of the workspace's database file between callbacks.

    DuckDB lets one process at a time open a database file. A Voilà app starts a kernel per
    page visit, and JupyterLab a kernel per notebook, so a widget that kept the file open
    would lock out every other page or notebook on the same workspace. The next call into the
    workspace reopens it (a few milliseconds).
    """
    reopen = getattr(workspace, "_reopen", None)  # TODO(lead): a public Workspace.release()
    if callable(reopen):
        reopen()


def _cls(widget: w.DOMWidget, name: str) -> w.DOMWidget:
    widget.add_class(name)
    return widget


def _error_html(exc: BaseException) -> str:
    import html

    return f'<div class="wb-error">{html.escape(type(exc).__name__)}: {html.escape(str(exc))}</div>'


class _Base(w.VBox):
    """Shared plumbing: a style sheet, a status line and error display for callbacks."""

    def __init__(self, css: str, **kwargs: Any) -> None:
        self.status = _cls(w.HTML(value=""), "wb-status")
        super().__init__(**kwargs)
        self.add_class("wb-widget")
        self.add_class(css)
        self._style = w.HTML(STYLE)
        self.last_error: BaseException | None = None

    def _set_status(self, text: str) -> None:
        import html

        self.status.value = f'<span class="wb-meta">{html.escape(text)}</span>'

    def _guard(self, fn: Callable[[], None], busy: str) -> None:
        """Run a callback with a busy status; show workbench errors instead of raising them."""
        self._set_status(busy)
        try:
            try:
                fn()
            finally:
                release_database(getattr(self, "ws", None))
        except (WorkbenchError, ValueError, FileNotFoundError, PermissionError) as exc:
            self.status.value = _error_html(exc)
            self.last_error = exc
        else:
            self.last_error = None
            if self.status.value.endswith(f"{busy}</span>"):
                self._set_status("")


# --------------------------------------------------------------------------- evidence search


class EvidenceSearch(_Base):
    """Query box, filters (corpus, years, source kind, mode) and ranked results with highlighted snippets."""

    def __init__(self, index: Any | None = None, *, k: int = 10) -> None:
        super().__init__("wb-evidence-search")
        self._index = index
        self.hits: list[Any] = []
        self.query = _cls(
            w.Text(placeholder="Search the evidence, e.g. statins LDL", description="Query"),
            "wb-search-query",
        )
        self.query.layout.width = "70%"
        corpora = sorted(self.index.manifest.get("corpora", {}))
        self.corpus = _cls(
            w.Dropdown(options=[("all corpora", "")] + [(c, c) for c in corpora], description="Corpus"),
            "wb-corpus",
        )
        self.use_years = _cls(
            w.Checkbox(value=False, description="Filter by year", indent=False), "wb-use-years"
        )
        self.years = _cls(
            w.IntRangeSlider(value=(2000, 2025), min=1950, max=2030, description="Years"), "wb-years"
        )
        self.kind = _cls(
            w.Dropdown(
                options=[
                    ("any source", ""),
                    ("abstracts", "abstract"),
                    ("guidelines", "guideline"),
                    ("Q&A", "qa"),
                    ("my documents", "user_document"),
                ],
                description="Source",
            ),
            "wb-source-kind",
        )
        self.mode = _cls(
            w.ToggleButtons(options=["hybrid", "dense", "bm25"], value="hybrid"), "wb-search-mode"
        )
        self.k = _cls(w.IntSlider(value=k, min=1, max=50, description="Results"), "wb-k")
        self.button = _cls(
            w.Button(description="Search", button_style="primary", icon="search"), "wb-search-button"
        )
        self.results = _cls(w.HTML(), "wb-results")
        self.button.on_click(lambda _b: self.search())
        # Enter (not every keystroke) commits the text and runs the search.
        self.query.continuous_update = False
        self.query.observe(lambda c: self.search() if c["new"].strip() else None, names="value")
        self.children = [
            self._style,
            w.HBox([self.query, self.button]),
            w.HBox([self.corpus, self.kind, self.mode]),
            w.HBox([self.use_years, self.years, self.k]),
            self.status,
            self.results,
        ]

    @property
    def index(self) -> Any:
        """The evidence index (loaded from settings' ``index_dir`` on first use)."""
        if self._index is None:
            from workbench.retrieval import EvidenceIndex

            self._index = EvidenceIndex.load()
        return self._index

    def filters(self) -> Any:
        """The :class:`SearchFilters` the controls describe (None when nothing is filtered)."""
        from workbench.retrieval import SearchFilters

        f = SearchFilters(
            corpora=[self.corpus.value] if self.corpus.value else None,
            year_min=self.years.value[0] if self.use_years.value else None,
            year_max=self.years.value[1] if self.use_years.value else None,
            source_kinds=[self.kind.value] if self.kind.value else None,
        )
        return None if f == SearchFilters() else f

    def search(self, query: str | None = None) -> list[Any]:
        """Run the search (callback of the button and the query box); returns the hits."""
        if query is not None and query != self.query.value:
            self.query.value = query  # the query box's observer runs the search
            return self.hits

        def run() -> None:
            q = self.query.value
            self.hits = self.index.search(
                q, k=int(self.k.value), mode=self.mode.value, filters=self.filters()
            )
            self.results.value = hits_html(self.hits, q)

        self._guard(run, "Searching…")
        return self.hits


# --------------------------------------------------------------------------- cohort explorer

_KINDS = [
    ("condition", "condition"),
    ("lab result", "lab"),
    ("medication", "medication"),
    ("age", "age"),
    ("sex", "sex"),
]


class CohortExplorer(_Base):
    """Criteria builder → cohort definition → attrition, age/sex distributions and lab trends."""

    def __init__(self, workspace: Any, *, name: str = "my cohort", index_date: date | None = None) -> None:
        super().__init__("wb-cohort-explorer")
        from workbench.ui.data import lab_choices

        self.ws = workspace
        self.criteria: list[dict[str, Any]] = []
        self.result: Any = None
        self.figures: dict[str, go.Figure] = {}
        con = self.ws.connect(read_only=True)
        try:
            self._labs = lab_choices(con)
        finally:
            con.close()
            release_database(self.ws)
        labs = [(x["label"], x["code"]) for x in self._labs]
        self.name = _cls(w.Text(value=name, description="Name"), "wb-cohort-name")
        self.index_date = _cls(
            w.DatePicker(value=index_date or date.today(), description="Index date"), "wb-index-date"
        )
        self.kind = _cls(
            w.Dropdown(options=_KINDS, value="condition", description="Criterion"), "wb-criterion-kind"
        )
        self.negate = _cls(w.Checkbox(value=False, description="NOT", indent=False), "wb-criterion-not")
        self.text = _cls(
            w.Text(placeholder="text in the display name, e.g. hypertension", description="Text"),
            "wb-criterion-text",
        )
        self.codes = _cls(
            w.Text(placeholder="codes, comma separated (E11* = prefix)", description="Codes"),
            "wb-criterion-codes",
        )
        self.lab = _cls(
            w.Dropdown(options=labs or [("no lab results", "")], description="Lab"), "wb-criterion-lab"
        )
        self.op = _cls(
            w.Dropdown(options=[">=", ">", "<=", "<"], value=">=", description="Op"), "wb-criterion-op"
        )
        self.value = _cls(w.FloatText(value=0.0, description="Value"), "wb-criterion-value")
        self.unit = _cls(w.Text(value="", description="Unit"), "wb-criterion-unit")
        self.which = _cls(
            w.Dropdown(options=["any", "latest"], value="any", description="Which"), "wb-criterion-which"
        )
        self.age = _cls(
            w.IntRangeSlider(value=(18, 90), min=0, max=120, description="Age"), "wb-criterion-age"
        )
        self.sex = _cls(
            w.SelectMultiple(
                options=["female", "male", "other", "unknown"], value=["female"], description="Sex"
            ),
            "wb-criterion-sex",
        )
        self.params = w.VBox()
        self.add_button = _cls(w.Button(description="Add criterion", icon="plus"), "wb-add-criterion")
        self.clear_button = _cls(w.Button(description="Clear", icon="trash"), "wb-clear-criteria")
        self.run_button = _cls(
            w.Button(description="Run cohort", button_style="primary", icon="play"), "wb-run-cohort"
        )
        self.criteria_html = _cls(w.HTML(), "wb-criteria")
        self.definition_json = _cls(w.Textarea(layout=w.Layout(width="95%", height="140px")), "wb-definition")
        self.attrition_html = _cls(w.HTML(), "wb-attrition")
        self.attrition_out = _cls(w.Output(), "wb-attrition-figure")
        self.age_out = _cls(w.Output(), "wb-age-figure")
        self.sex_out = _cls(w.Output(), "wb-sex-figure")
        self.trend_lab = _cls(
            w.Dropdown(options=labs or [("no lab results", "")], description="Trend of"), "wb-cohort-lab"
        )
        self.trend_out = _cls(w.Output(), "wb-cohort-trend")
        self.kind.observe(lambda _c: self._show_params(), names="value")
        self.lab.observe(lambda _c: self._default_unit(), names="value")
        self.add_button.on_click(lambda _b: self.add_criterion())
        self.clear_button.on_click(lambda _b: self.clear())
        self.run_button.on_click(lambda _b: self.run())
        self.trend_lab.observe(lambda _c: self.show_trend(), names="value")
        self._show_params()
        self._default_unit()
        self._refresh()
        self.children = [
            self._style,
            w.HBox([self.name, self.index_date]),
            w.HBox([self.kind, self.negate]),
            self.params,
            w.HBox([self.add_button, self.clear_button, self.run_button]),
            self.criteria_html,
            w.Accordion(children=[self.definition_json], titles=("Definition (JSON)",)),
            self.status,
            self.attrition_html,
            w.HBox([self.attrition_out, self.age_out, self.sex_out]),
            self.trend_lab,
            self.trend_out,
        ]

    def _show_params(self) -> None:
        kind = self.kind.value
        self.params.children = {
            "condition": [self.text, self.codes],
            "medication": [self.text, self.codes],
            "lab": [self.lab, w.HBox([self.op, self.value, self.unit, self.which])],
            "age": [self.age],
            "sex": [self.sex],
        }[kind]

    def _default_unit(self) -> None:
        units = {x["code"]: x["unit"] for x in self._labs}
        if self.lab.value:
            self.unit.value = units.get(self.lab.value, "")

    def criterion(self) -> dict[str, Any]:
        """The criterion the controls describe, as cohort-definition JSON."""
        kind = self.kind.value
        crit: dict[str, Any] = {"type": kind}
        if kind in ("condition", "medication"):
            codes = [c.strip() for c in self.codes.value.split(",") if c.strip()]
            if codes:
                crit["codes"] = codes
            if self.text.value.strip():
                crit["text"] = self.text.value.strip()
        elif kind == "lab":
            crit.update(
                codes=[self.lab.value],
                op=self.op.value,
                value=float(self.value.value),
                unit=self.unit.value,
                which=self.which.value,
            )
        elif kind == "age":
            crit.update(min=int(self.age.value[0]), max=int(self.age.value[1]))
        else:
            crit["values"] = list(self.sex.value)
        return {"type": "not", "criterion": crit} if self.negate.value else crit

    def add_criterion(self, criterion: dict[str, Any] | None = None) -> None:
        """Append a criterion (the controls' one by default) after validating the whole definition."""

        def run() -> None:
            from workbench.cohort.cohort_builder import parse_definition

            crit = criterion or self.criterion()
            parse_definition(self._definition([*self.criteria, crit]))  # CohortError names the bad field
            self.criteria.append(crit)
            self._refresh()

        self._guard(run, "Checking…")

    def clear(self) -> None:
        """Remove every criterion."""
        self.criteria = []
        self._refresh()

    def _definition(self, criteria: Sequence[dict[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {
            "schema_version": 1,
            "name": self.name.value or "cohort",
            "criteria": list(criteria),
        }
        if self.index_date.value:
            out["index_date"] = self.index_date.value.isoformat()
        return out

    @property
    def definition(self) -> dict[str, Any]:
        """The cohort definition (versioned JSON) built so far."""
        return self._definition(self.criteria)

    def _refresh(self) -> None:
        from workbench.cohort.cohort_builder import describe, parse_definition

        if not self.criteria:
            self.criteria_html.value = '<div class="wb-meta">No criteria yet: add some, then run.</div>'
        else:
            parsed = parse_definition(self.definition)
            items = "".join(f"<li>{_escape(describe(c))}</li>" for c in parsed.criteria)
            self.criteria_html.value = f'<ol class="wb-criteria-list">{items}</ol>'
        self.definition_json.value = json.dumps(self.definition, indent=2)

    def run(self, definition: dict[str, Any] | None = None) -> Any:
        """Run the definition (the JSON box's, which the builder keeps in sync) on the governed tables."""

        def go_() -> None:
            from workbench.cohort.cohort_builder import run_cohort

            data = definition or json.loads(self.definition_json.value or "{}")
            con = self.ws.connect(read_only=True)
            try:
                self.result = run_cohort(con, data)
            finally:
                con.close()
            self._render()

        self._guard(go_, "Running cohort…")
        return self.result

    def pseudonyms(self, patient_ids: Sequence[str]) -> dict[str, str]:
        """Keyed pseudonyms for display (the workspace's de-identification key)."""
        from workbench.cohort.deid import pseudonym, workspace_key

        key = workspace_key(self.ws)
        return {str(p): pseudonym(key, str(p), "patient") for p in patient_ids}

    def _render(self) -> None:
        res = self.result
        rows = res.attrition.to_dict("records")
        self.attrition_html.value = (
            f"<b>{_escape(res.definition.name)}</b>: {res.n} patients at {res.index_date.isoformat()}"
            + table_html(rows, ["step", "criterion", "n"], css="wb-table wb-attrition-table")
            + "".join(f'<div class="wb-notice">{_escape(wn)}</div>' for wn in res.warnings)
        )
        self.figures = {
            "attrition": figures.attrition_figure(res.attrition),
            "age": figures.age_figure(res.patients),
            "sex": figures.sex_figure(res.patients),
        }
        show_figure(self.attrition_out, self.figures["attrition"])
        show_figure(self.age_out, self.figures["age"])
        show_figure(self.sex_out, self.figures["sex"])
        self.show_trend()

    def show_trend(self) -> None:
        """Plot the chosen lab for every patient of the last cohort run."""
        if self.result is None or not self.trend_lab.value:
            return

        def run() -> None:
            from workbench.ui.data import cohort_labs

            ids = [str(p) for p in self.result.patients["patient_id"]]
            con = self.ws.connect(read_only=True)
            try:
                labs = cohort_labs(con, ids, self.trend_lab.value)
            finally:
                con.close()
            label = dict((v, k) for k, v in self.trend_lab.options).get(
                self.trend_lab.value, self.trend_lab.value
            )
            self.figures["trend"] = figures.cohort_lab_figure(
                labs, self.pseudonyms(ids), title=f"{label} across the cohort"
            )
            show_figure(self.trend_out, self.figures["trend"])

        self._guard(run, "Plotting…")


def _escape(text: Any) -> str:
    import html

    return html.escape(str(text))


# --------------------------------------------------------------------------- case explorer


class CaseExplorer(_Base):
    """One patient at a time: pseudonymous picker, timeline, flagged labs, findings and a cited ask box."""

    def __init__(
        self,
        workspace: Any,
        index: Any | None = None,
        *,
        encoder: Any | None = None,
        settings: Any | None = None,
        question: str = "What do my blood pressure results mean?",
    ) -> None:
        super().__init__("wb-case-explorer")
        from workbench.cohort.records import list_patients

        self.ws = workspace
        self._index = index
        self._encoder = encoder
        self._settings = settings
        self.patient_id: str | None = None
        self.pseudo_id: str | None = None
        self.events = pd.DataFrame()
        self.findings: list[Any] = []
        self.answer: Any = None
        self.figures: dict[str, go.Figure] = {}
        self._context: Any = None
        self.patients = list_patients(self.ws)
        release_database(self.ws)
        options = [("Choose a patient…", "")] + [
            (
                f"{p['patient']} · {p.get('sex') or 'sex ?'} · {p.get('age_band') or 'age ?'}"
                f"{' · deceased' if p.get('deceased') else ''} · {p['records']} records",
                p["patient"],
            )
            for p in self.patients
        ]
        self.picker = _cls(
            w.Dropdown(options=options, value="", description="Patient", layout=w.Layout(width="60%")),
            "wb-patient-picker",
        )
        self.summary = _cls(w.HTML(), "wb-case-summary")
        self.timeline_out = _cls(w.Output(), "wb-timeline")
        self.lab = _cls(w.Dropdown(options=[], description="Lab"), "wb-lab-picker")
        self.lab_out = _cls(w.Output(), "wb-lab-figure")
        self.abnormal_html = _cls(w.HTML(), "wb-abnormal")
        self.findings_html = _cls(w.HTML(), "wb-findings")
        self.question = _cls(
            w.Textarea(
                value=question,
                placeholder="Ask about this patient…",
                layout=w.Layout(width="70%", height="60px"),
            ),
            "wb-question",
        )
        self.ask_button = _cls(
            w.Button(description="Ask", button_style="primary", icon="question"), "wb-ask-button"
        )
        self.answer_html = _cls(w.HTML(), "wb-answer")
        self.picker.observe(lambda c: self.select(c["new"]) if c["new"] else None, names="value")
        self.lab.observe(lambda _c: self.show_lab(), names="value")
        self.ask_button.on_click(lambda _b: self.ask())
        self.children = [
            self._style,
            self.picker,
            self.summary,
            self.timeline_out,
            w.HBox([self.lab]),
            self.lab_out,
            self.abnormal_html,
            self.findings_html,
            w.HBox([self.question, self.ask_button]),
            self.status,
            self.answer_html,
        ]

    @property
    def index(self) -> Any:
        """The evidence index (loaded from settings' ``index_dir`` on first use)."""
        if self._index is None:
            from workbench.retrieval import EvidenceIndex

            self._index = EvidenceIndex.load()
        return self._index

    def select(self, pseudo_id: str) -> None:
        """Load one patient's events and chronic-pattern findings and draw them."""

        def run() -> None:
            from workbench.cohort.patterns import review_patterns
            from workbench.cohort.records import resolve_patient
            from workbench.ui.data import case_events

            if self.picker.value != pseudo_id:
                self.picker.value = pseudo_id  # observe() calls back into select
                return
            self.patient_id = resolve_patient(self.ws, pseudo_id)
            self.pseudo_id = pseudo_id
            self._context = None
            self.answer = None
            self.answer_html.value = ""
            con = self.ws.connect(read_only=True)
            try:
                self.events = case_events(con, self.patient_id)
                self.findings = review_patterns(con, self.patient_id)
            finally:
                con.close()
            self._render()

        self._guard(run, "Loading records…")

    def _render(self) -> None:
        ev = self.events
        info = next((p for p in self.patients if p["patient"] == self.pseudo_id), {})
        counts = ev["kind"].value_counts().to_dict() if not ev.empty else {}
        self.summary.value = (
            f'<div class="wb-card"><h4>Patient {_escape(self.pseudo_id)}</h4><div class="wb-meta">'
            f"{_escape(info.get('sex') or 'sex not recorded')} · age band {_escape(info.get('age_band') or 'unknown')}"
            f" · {counts.get('encounter', 0)} encounters · {counts.get('condition', 0)} conditions"
            f" · {counts.get('medication', 0)} medications · {counts.get('lab', 0)} results</div></div>"
        )
        self.figures["timeline"] = figures.timeline_figure(ev, title=f"Timeline of {self.pseudo_id}")
        show_figure(self.timeline_out, self.figures["timeline"])
        labs = ev[ev["kind"] == "lab"] if not ev.empty else ev
        abnormal = labs[labs["flag"].isin(figures.ABNORMAL_FLAGS)] if not labs.empty else labs
        # Labels with abnormal results first, then the most frequent ones.
        order = (
            labs.assign(abn=labs["flag"].isin(figures.ABNORMAL_FLAGS))
            .groupby("label")
            .agg(abn=("abn", "sum"), n=("abn", "size"))
            .sort_values(["abn", "n"], ascending=False)
            .index.tolist()
            if not labs.empty
            else []
        )
        self.lab.options = order
        self.lab.value = order[0] if order else None
        self.show_lab()
        rows = [
            {
                "date": r["start"].date().isoformat() if pd.notna(r["start"]) else "",
                "result": r["label"],
                "value": f"{r['value']:.4g} {r['unit'] or ''}".strip(),
                "flag": r["flag"],
                "reference range": _range(r["ref_low"], r["ref_high"]),
            }
            for _, r in abnormal.sort_values("start", ascending=False).head(15).iterrows()
        ]
        self.abnormal_html.value = f"<b>Results outside their reference range ({len(abnormal)})</b>" + (
            table_html(
                rows, ["date", "result", "value", "flag", "reference range"], css="wb-table wb-abnormal-table"
            )
            if rows
            else "<div class='wb-meta'>None.</div>"
        )
        self.findings_html.value = "<b>Chronic-pattern review</b>" + findings_html(self.findings)

    def show_lab(self) -> None:
        """Plot the chosen lab's series with its reference range."""
        if not self.lab.value or self.events.empty:
            self.lab_out.clear_output()
            return
        self.figures["lab"] = figures.lab_figure(self.events, self.lab.value)
        show_figure(self.lab_out, self.figures["lab"])

    def ask(self, question: str | None = None) -> Any:
        """Answer the question about the chosen patient, with cited evidence and records."""
        if question is not None:
            self.question.value = question

        def run() -> None:
            from workbench.answer import ask, load_patient_context

            if not self.patient_id:
                raise ValueError("choose a patient first")
            if self._context is None:
                self._context = load_patient_context(self.ws, self.patient_id, settings=self._settings)
            self.answer = ask(
                self.question.value,
                index=self.index,
                patient=self._context,
                settings=self._settings,
                encoder=self._encoder,
                stream=False,
            )
            self.answer_html.value = answer_card(self.answer)

        self.ask_button.disabled = True
        try:
            self._guard(run, "Answering… (the offline answerer takes a few seconds)")
        finally:
            self.ask_button.disabled = False
        return self.answer


def _range(low: Any, high: Any) -> str:
    lo = None if low is None or pd.isna(low) else float(low)
    hi = None if high is None or pd.isna(high) else float(high)
    if lo is not None and hi is not None:
        return f"{lo:g}–{hi:g}"
    if lo is not None:
        return f"≥ {lo:g}"
    if hi is not None:
        return f"≤ {hi:g}"
    return ""


# --------------------------------------------------------------------------- workspace panel


class WorkspacePanel(_Base):
    """Sources with their consent, import with progress, revoke-and-erase, audit verification."""

    def __init__(self, workspace: Any) -> None:
        super().__init__("wb-workspace-panel")
        self.ws = workspace
        self.last_report: dict[str, Any] | None = None
        self.sources_html = _cls(w.HTML(), "wb-sources-table")
        self.path = _cls(
            w.Text(placeholder="file or folder to import", description="Import"), "wb-import-path"
        )
        self.import_button = _cls(w.Button(description="Import", icon="upload"), "wb-import-button")
        self.progress = _cls(w.IntProgress(value=0, min=0, max=1, description="Files"), "wb-progress")
        self.source = _cls(w.Dropdown(options=[], description="Source"), "wb-source-picker")
        self.confirm = _cls(
            w.Checkbox(
                value=False, description="I understand this erases everything derived from it", indent=False
            ),
            "wb-erase-confirm",
        )
        self.erase_button = _cls(
            w.Button(description="Revoke consent and erase", button_style="danger", icon="trash"),
            "wb-erase-button",
        )
        self.verify_button = _cls(w.Button(description="Verify audit trail", icon="check"), "wb-audit-verify")
        self.report_html = _cls(w.HTML(), "wb-report")
        self.import_button.on_click(lambda _b: self.import_paths([self.path.value]))
        self.erase_button.on_click(lambda _b: self.erase(self.source.value))
        self.verify_button.on_click(lambda _b: self.verify_audit())
        self.refresh()
        release_database(self.ws)
        self.children = [
            self._style,
            self.sources_html,
            w.HBox([self.path, self.import_button, self.progress]),
            w.HBox([self.source, self.confirm, self.erase_button]),
            self.verify_button,
            self.status,
            self.report_html,
        ]

    def refresh(self) -> None:
        """Redraw the sources and their grants."""
        grants: dict[str, dict[str, Any]] = {}
        for g in self.ws.consent.list():
            grants.setdefault(g["source_id"], g)  # newest first
        rows = []
        for s in self.ws.sources():
            g = grants.get(s["source_id"], {})
            rows.append(
                {
                    "source": s["source_id"],
                    "kind": s.get("kind"),
                    "status": s.get("status"),
                    "registered": str(s.get("registered") or "")[:19],
                    "purpose": g.get("purpose"),
                    "consent": "active" if g.get("active") else ("revoked" if g.get("revoked") else "none"),
                    "expires": str(g.get("expires") or "")[:10],
                }
            )
        self.sources_rows = rows
        cols = ["source", "kind", "status", "registered", "purpose", "consent", "expires"]
        self.sources_html.value = "<b>Sources</b>" + (
            table_html(rows, cols, css="wb-table wb-sources")
            if rows
            else "<div class='wb-meta'>No sources yet.</div>"
        )
        self.source.options = [r["source"] for r in rows if r["consent"] == "active"]

    def import_paths(self, paths: Sequence[str | Path]) -> Any:
        """Import records files with a progress bar (one step per file)."""
        result: dict[str, Any] = {}

        def run() -> None:
            from workbench.ui.progress import import_with_progress

            result["r"] = import_with_progress(self.ws, paths, bar=self.progress)
            r = result["r"]
            self.report_html.value = (
                f'<div class="wb-card">Imported {r.patients} patients, {sum(r.rows.values())} rows; '
                f"{len(r.errors)} problems.</div>"
            )
            self.refresh()

        self._guard(run, "Importing…")
        return result.get("r")

    def erase(self, source_id: str) -> dict[str, Any] | None:
        """Revoke the source's consent and erase everything derived from it (after confirmation)."""

        def run() -> None:
            if not self.confirm.value:
                raise PermissionError("tick the confirmation box first: erasure cannot be undone")
            self.last_report = self.ws.consent.revoke(source_id)
            rep = self.last_report
            self.report_html.value = (
                f'<div class="wb-card wb-erasure">Erased {_escape(source_id)}: '
                f"{sum(v for k, v in rep.get('rows_deleted', {}).items() if not k.startswith('wb.'))} rows, "
                f"{rep.get('files_deleted', 0)} files; verified: {_escape(rep.get('verified'))}</div>"
            )
            self.confirm.value = False
            self.refresh()

        self._guard(run, "Erasing…")
        return self.last_report

    def verify_audit(self) -> Any:
        """Check the audit trail's hash chain."""
        out: dict[str, Any] = {}

        def run() -> None:
            out["r"] = self.ws.trail.verify()
            r = out["r"]
            ok = getattr(r, "ok", False)
            self.report_html.value = (
                f'<div class="wb-card wb-audit">Audit trail: {"verifies" if ok else "DOES NOT verify"} '
                f"({_escape(getattr(r, 'entries', '?'))} entries)</div>"
            )

        self._guard(run, "Verifying…")
        return out.get("r")
