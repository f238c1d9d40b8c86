"""Typed settings: keyword overrides, environment variables and the OpenAI aliases."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from workbench.settings import Settings, get_settings


def test_keyword_overrides_by_field_name() -> None:
    s = get_settings(llm_model="m", llm_base_url="http://127.0.0.1:9/v1", dense_index="hnsw")
    assert (s.llm_model, s.llm_base_url, s.dense_index) == ("m", "http://127.0.0.1:9/v1", "hnsw")
    assert not s.offline


def test_environment_and_openai_aliases(monkeypatch: pytest.MonkeyPatch) -> None:
    assert get_settings().offline
    monkeypatch.setenv("OPENAI_MODEL", "gpt-x")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-value")
    monkeypatch.setenv("WB_FUSION", "weighted")
    s = Settings()
    assert s.llm_model == "gpt-x" and s.fusion == "weighted"
    assert "sk-secret-value" not in repr(s) and "sk-secret-value" not in s.model_dump_json()


def test_unknown_or_invalid_settings_are_refused() -> None:
    with pytest.raises(ValidationError):
        Settings(no_such_field=1)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        Settings(dense_index="kdtree")  # type: ignore[arg-type]
