"""Shared fixtures: every test gets its own WB_HOME and no model endpoint."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WB_HOME", str(tmp_path / "wbhome"))
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_MODEL", "WB_LLM_MODEL", "WB_LLM_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    # The encrypted workspace needs a passphrase; the fast KDF profile keeps each open ~1 ms.
    monkeypatch.setenv("WB_PASSPHRASE", "test passphrase")
    monkeypatch.setenv("WB_KDF_PROFILE", "fast")


@pytest.fixture
def fixtures() -> Path:
    return FIXTURES
