"""The curated API: every name in ``workbench.__all__`` resolves, and nothing public is missing."""

from __future__ import annotations

import inspect
import subprocess
import sys

import workbench

# helper types of the answer pipeline that users reach through `workbench.answer`
_NOT_TOP_LEVEL = {"ChatModel", "ContextItem", "Identifier", "LLMResult", "SentenceCheck", "SupportScorer"}


def test_all_names_resolve() -> None:
    for name in workbench.__all__:
        assert getattr(workbench, name) is not None, name


def test_all_is_unique_and_complete() -> None:
    assert len(set(workbench.__all__)) == len(workbench.__all__)
    public = {n for n, v in vars(workbench).items() if not n.startswith("_") and not inspect.ismodule(v)}
    public -= {"annotations", "TYPE_CHECKING", "Any"}
    assert public <= set(workbench.__all__)
    assert set(workbench._LAZY) <= set(workbench.__all__)
    for sub in ("workbench.retrieval", "workbench.answer", "workbench.workspace"):
        module = __import__(sub, fromlist=["__all__"])
        for name in module.__all__:
            if name[0].isupper() and not name.isupper() and name not in _NOT_TOP_LEVEL:
                assert name in workbench.__all__, f"{sub}.{name} is public but not exported from workbench"


def test_import_is_lazy() -> None:
    code = "import sys, workbench; print(any(m.startswith(('torch', 'duckdb', 'presidio')) for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
