"""Typed settings: one place to read what can be configured.

Values come from keyword arguments, then environment variables prefixed ``WB_``
(e.g. ``WB_INDEX_DIR``), then defaults. The OpenAI-compatible endpoint also honours
the standard ``OPENAI_API_KEY``, ``OPENAI_BASE_URL`` and ``OPENAI_MODEL`` variables.
Secrets are ``SecretStr`` so they never appear in reprs, logs or dumps.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Repository root when running from a checkout (corpora/ and the prebuilt index live there).
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def default_home() -> Path:
    """The user's data directory for the workbench (``WB_HOME`` overrides)."""
    env = os.environ.get("WB_HOME")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "health-evidence-workbench"


class Settings(BaseSettings):
    """All workbench settings. Every field documents itself."""

    model_config = SettingsConfigDict(env_prefix="WB_", extra="forbid", frozen=False, populate_by_name=True)

    home: Path = Field(default_factory=default_home, description="Root of the user's workbench data.")
    corpora_dir: Path = Field(
        default=PROJECT_ROOT / "corpora", description="Folder with the shipped corpora and their manifest."
    )
    index_dir: Path = Field(
        default=PROJECT_ROOT / "index",
        description="Evidence index folder (FAISS + BM25 + chunk store + manifest).",
    )
    embedding_model: str = Field(
        default="",
        description="Local folder of a sentence-transformers model; empty means the bundled all-MiniLM-L6-v2.",
    )
    query_precision: Literal["auto", "float32", "bfloat16"] = Field(
        default="auto",
        description="Precision of search-query encoding: auto = bfloat16 where the CPU has native bfloat16.",
    )
    embedding_batch_size: int = Field(default=64, ge=1, description="Batch size when encoding passages.")
    dense_index: Literal["flat", "hnsw", "ivfpq"] = Field(
        default="flat",
        description="FAISS index type: exact inner product, HNSW, or IVF-PQ for large corpora.",
    )
    fusion: Literal["zscore", "rrf", "weighted"] = Field(
        default="zscore",
        description="How dense and BM25 results combine: z-score sum, reciprocal rank fusion, or min-max weighted.",
    )
    chunk_tokens: int = Field(default=200, ge=32, description="Token budget of one chunk.")
    chunk_overlap: int = Field(default=40, ge=0, description="Tokens shared by neighbouring chunks.")

    llm_base_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("WB_LLM_BASE_URL", "OPENAI_BASE_URL"),
        description="OpenAI-compatible endpoint; unset with no API key means the offline answerer.",
    )
    llm_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("WB_LLM_API_KEY", "OPENAI_API_KEY"),
        description="API key for the endpoint (never logged).",
    )
    llm_model: str | None = Field(
        default=None,
        validation_alias=AliasChoices("WB_LLM_MODEL", "OPENAI_MODEL"),
        description="Model name for Chat Completions; unset means the offline evidence-only answerer.",
    )
    llm_timeout_s: float = Field(default=60.0, gt=0, description="Per-request timeout.")
    llm_max_retries: int = Field(default=3, ge=0, description="Retries with backoff on 429/5xx.")
    llm_context_tokens: int = Field(default=3000, ge=256, description="Token budget for evidence + facts.")
    trusted_endpoints: list[str] = Field(
        default_factory=list,
        description="Base URLs allowed to receive identifiable context. Everything else gets de-identified context.",
    )

    @property
    def offline(self) -> bool:
        """True when no model endpoint is configured."""
        return not self.llm_model


def get_settings(**overrides: object) -> Settings:
    """Settings from the environment, with keyword overrides."""
    return Settings(**overrides)  # type: ignore[arg-type]
