"""Small real documents for retrieval tests (written for these tests)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from workbench.retrieval import EvidenceIndex, load_embedder
from workbench.types import Document, Section

DOCS = [
    (
        "d1",
        "Statins lower LDL cholesterol",
        "Statin therapy lowers LDL cholesterol and reduces cardiovascular events in adults.",
        2015,
        ["Randomized Controlled Trial"],
        "pubmed",
    ),
    (
        "d2",
        "Metformin in type 2 diabetes",
        "Metformin is the first-line drug for type 2 diabetes and lowers HbA1c.",
        2018,
        ["Review"],
        "pubmed",
    ),
    (
        "d3",
        "Vitamin D and fractures",
        "Vitamin D supplementation alone did not reduce hip fractures in older adults.",
        2019,
        ["Meta-Analysis"],
        "pubmed",
    ),
    (
        "d4",
        "Blood pressure targets",
        "Intensive blood pressure control below 120 mmHg reduced cardiovascular events.",
        2015,
        ["Randomized Controlled Trial"],
        "pubmed",
    ),
    (
        "d5",
        "Influenza vaccination",
        "Annual influenza vaccination lowers the risk of hospitalisation in older adults.",
        2012,
        ["Review"],
        "pubmed",
    ),
    (
        "g1",
        "High blood pressure",
        "High blood pressure has no symptoms. Reduce salt, exercise, and take medicines as prescribed.",
        None,
        [],
        "guide",
    ),
    (
        "g2",
        "Diabetes self-care",
        "People with diabetes should check blood sugar and keep HbA1c near their target.",
        None,
        [],
        "guide",
    ),
]


def make_docs() -> list[Document]:
    out = []
    for doc_id, title, text, year, ptypes, corpus in DOCS:
        out.append(
            Document(
                doc_id=doc_id,
                title=title,
                text=text,
                corpus=corpus,
                source_kind="abstract" if corpus == "pubmed" else "guideline",
                sections=[Section("Abstract", 0, len(text))],
                metadata={
                    "year": year,
                    "publication_types": ptypes,
                    "pmid": doc_id if corpus == "pubmed" else None,
                },
            )
        )
    return out


@pytest.fixture(scope="session")
def built_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small index, built once per test session (embedding is the slow part)."""
    folder = tmp_path_factory.mktemp("idx") / "index"
    EvidenceIndex.build(make_docs(), folder, embedder=load_embedder())
    return folder


@pytest.fixture
def index_dir(built_index: Path, tmp_path: Path) -> Path:
    """A private copy of the small index that a test may change."""
    dest = tmp_path / "index"
    shutil.copytree(built_index, dest)
    return dest
