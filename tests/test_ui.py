"""Widgets over real parts: a tiny real index, an encrypted workspace with the Synthea fixtures, real callbacks."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "ui"))

from browser_support import build_tiny_index  # noqa: E402

from workbench.types import Hit  # noqa: E402
from workbench.ui import (  # noqa: E402
    CaseExplorer,
    CohortExplorer,
    EvidenceSearch,
    WorkspacePanel,
    answer_card,
    highlight,
    hits_html,
)
from workbench.ui.demo import DEMO_RECORDS, demo_workspace  # noqa: E402

# ----------------------------------------------------------------- pure HTML


def test_highlight_escapes_markup_and_marks_query_terms() -> None:
    out = highlight('LDL <script>alert("x")</script> & statins lowered ldl', "statin LDL")
    assert "<script>" not in out and "&lt;script&gt;" in out and "&amp;" in out
    assert out.count("<mark>") == 3  # LDL, statins (prefix match), ldl
    assert "<mark>statins</mark>" in out


def test_highlight_ignores_stop_words_and_regex_characters() -> None:
    assert highlight("the cause of it", "what is the") == "the cause of it"
    assert "<mark>" in highlight("a (b+c) test", "(b+c) test")


def test_hits_html_links_only_http_sources_and_escapes_titles() -> None:
    hits = [
        Hit(
            chunk_id="c1", doc_id="d1", score=0.5, title="<b>T</b>", source="javascript:alert(1)", snippet="x"
        ),
        Hit(
            chunk_id="c2",
            doc_id="d2",
            score=0.4,
            title="Two",
            source="https://pubmed.ncbi.nlm.nih.gov/1/",
            snippet="y",
        ),
    ]
    html = hits_html(hits, "two")
    assert "&lt;b&gt;T&lt;/b&gt;" in html
    assert 'href="javascript' not in html
    assert 'href="https://pubmed.ncbi.nlm.nih.gov/1/"' in html
    assert html.count("wb-hit") == 2


class _FakeAnswer:
    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def to_dict(self) -> dict[str, Any]:
        return self._data


def test_answer_card_numbers_expandable_sources_and_records() -> None:
    card = answer_card(
        _FakeAnswer(
            {
                "question": "Q <x>",
                "sentences": [
                    {"text": "A claim.", "citations": [1, 2], "supported": True, "support_score": 0.9},
                    {"text": "Weak.", "citations": [], "supported": False, "support_score": 0.1},
                ],
                "sources": [{"id": 1, "title": "Paper", "pmid": "123", "snippet": "s <i>"}],
                "records": [
                    {
                        "id": 2,
                        "table": "observations",
                        "resource_id": "r1",
                        "date": "2021-02-19T00:00:00",
                        "display": "LDL",
                        "value": 190.0,
                        "unit": "mg/dL",
                        "flag": "high",
                        "ref_low": None,
                        "ref_high": 130.0,
                        "text": "LDL 190",
                    }
                ],
                "model": "offline-extractive",
                "disclaimer": "Not advice.",
            }
        )
    )
    assert '<details class="wb-source" id="wb-item-1">' in card
    assert '<details class="wb-record" id="wb-item-2">' in card
    assert "https://pubmed.ncbi.nlm.nih.gov/123/" in card
    assert "Q &lt;x&gt;" in card and "s &lt;i&gt;" in card
    assert "wb-unsupported" in card and "wb-flag-high" in card and "≤ 130 mg/dL" in card


# ----------------------------------------------------------------- widgets on real parts


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from workbench.retrieval import EvidenceIndex

    return EvidenceIndex.load(build_tiny_index(tmp_path_factory.mktemp("ui-index") / "index"))


@pytest.fixture
def ws(tmp_path: Path) -> Any:
    return demo_workspace(folder=tmp_path / "ws", progress=False)


def test_evidence_search_filters_and_highlights(index: Any) -> None:
    search = EvidenceSearch(index)
    assert "beir_tiny" in [v for _, v in search.corpus.options]
    hits = search.search("statins LDL cholesterol")
    assert hits and hits[0].doc_id == "t5"
    assert "<mark>" in search.results.value and 'data-doc-id="t5"' in search.results.value
    search.kind.value = "guideline"  # no guideline in the fixture: the filter empties the list
    assert search.search("statins") == [] and "No results" in search.results.value
    search.kind.value = ""
    search.corpus.value = "beir_tiny"
    search.mode.value = "bm25"
    assert search.filters() is not None and search.search("kidney")[0].doc_id in {"t7", "t8"}


def test_cohort_explorer_builds_runs_and_plots(ws: Any) -> None:
    cohort = CohortExplorer(ws)
    cohort.kind.value = "age"
    cohort.age.value = (18, 120)
    cohort.add_criterion()
    cohort.kind.value = "sex"
    cohort.sex.value = ("male",)
    cohort.add_criterion()
    assert [c["type"] for c in cohort.definition["criteria"]] == ["age", "sex"]
    result = cohort.run()
    assert result is not None and cohort.last_error is None
    assert list(result.attrition["n"])[0] == 4 and result.n == 3  # three of the four fixture patients are men
    assert set(cohort.figures) >= {"attrition", "age", "sex", "trend"}
    assert (
        "P-" in "".join(t.name or "" for t in cohort.figures["trend"].data)
        or not cohort.figures["trend"].data
    )
    assert sum(cohort.figures["sex"].data[0].y) == 3
    cohort.add_criterion({"type": "lab", "codes": ["8480-6"], "op": ">=", "value": 1, "unit": "furlongs"})
    assert cohort.last_error is not None and "wb-error" in cohort.status.value
    assert len(cohort.definition["criteria"]) == 2  # the bad criterion was not added


def test_case_explorer_shows_patient_and_answers_with_citations(ws: Any, index: Any) -> None:
    case = CaseExplorer(ws, index)
    labels = [label for label, value in case.picker.options if value]
    assert len(labels) == 4 and all(label.startswith("P-") for label in labels)
    richest = max(case.patients, key=lambda p: p["records"])["patient"]
    case.picker.value = richest
    assert case.last_error is None, case.status.value
    kinds = set(case.events["kind"])
    assert {"encounter", "condition", "lab"} <= kinds
    assert "abnormal result" in {t.name for t in case.figures["timeline"].data}
    assert "wb-abnormal-table" in case.abnormal_html.value
    assert "hypertension" in case.findings_html.value
    answer = case.ask("What do my blood pressure results mean?")
    assert answer is not None and case.last_error is None, case.status.value
    data = answer.to_dict()
    assert data["sources"] and data["records"]
    assert "wb-answer-card" in case.answer_html.value and "wb-record" in case.answer_html.value
    # No identifiers of the underlying patient id in what the widget shows.
    assert case.patient_id not in case.summary.value + case.answer_html.value


def test_workspace_panel_revokes_and_erases_only_after_confirmation(ws: Any) -> None:
    panel = WorkspacePanel(ws)
    assert len(panel.sources_rows) == 1 and panel.sources_rows[0]["consent"] == "active"
    source = panel.sources_rows[0]["source"]
    assert panel.erase(source) is None and "confirmation" in panel.status.value
    panel.confirm.value = True
    report = panel.erase(source)
    assert report is not None and report["verified"] is True
    assert panel.sources_rows[0]["consent"] == "revoked" and panel.source.options == ()
    assert panel.verify_audit().ok


def test_workspace_panel_import_moves_the_progress_bar(tmp_path: Path) -> None:
    from workbench.workspace import open_workspace

    panel = WorkspacePanel(open_workspace(tmp_path / "ws2"))
    result = panel.import_paths([DEMO_RECORDS])
    assert result is not None and result.patients == 4
    assert panel.progress.value == panel.progress.max == 4 and panel.progress.bar_style == "success"
    assert len(panel.sources_rows) == 1
