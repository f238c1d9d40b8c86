"""Chat Completions through the ``openai`` client, with streaming, retries and an audit trail.

Works with OpenAI and any compatible server (vLLM, Ollama, llama.cpp). Retries on 429, 5xx,
timeouts and connection errors use the client's own exponential backoff with jitter (it also
honours ``Retry-After``), ``settings.llm_max_retries`` times. ``store=False`` asks OpenAI not
to keep the conversation. Every call, failed or not, is audited with endpoint, model, token
counts and the prompt's SHA-256, never the content.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from workbench.answer.egress import normalize_endpoint
from workbench.answer.text import estimate_tokens
from workbench.errors import ConfigError, LLMError
from workbench.settings import Settings, default_home

OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1"

Message = dict[str, str]
AuditSink = Callable[[str, dict[str, Any]], None]


class Auditor(Protocol):
    """Anything with the workspace's ``audit(action, **meta)`` method."""

    def audit(self, action: str, **meta: Any) -> None: ...


def _default_sink(action: str, meta: dict[str, Any]) -> None:
    # Without a workspace the trail still exists: one JSON line per call under WB_HOME.
    folder = default_home() / "audit"
    folder.mkdir(parents=True, exist_ok=True)
    line = json.dumps({"ts": time.time(), "action": action, **meta}, sort_keys=True, default=str)
    path = folder / "llm_calls.jsonl"
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(line + "\n")
    os.chmod(path, 0o600)


_audit_sink: AuditSink = _default_sink


def set_audit_sink(sink: AuditSink | None) -> AuditSink:
    """Route audit events of calls made without a workspace to ``sink``; returns the previous sink."""
    global _audit_sink
    previous = _audit_sink
    _audit_sink = sink or _default_sink
    return previous


def audit_file() -> Path:
    """Where the default sink writes (``WB_HOME/audit/llm_calls.jsonl``)."""
    return default_home() / "audit" / "llm_calls.jsonl"


def prompt_sha256(messages: list[Message]) -> str:
    """SHA-256 of the exact messages sent (canonical JSON)."""
    blob = json.dumps(messages, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


@dataclass(slots=True)
class LLMResult:
    """What the model returned, with the usage needed for the audit trail."""

    text: str
    model: str
    endpoint: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str | None
    prompt_sha256: str
    estimated_usage: bool = False


class ChatModel:
    """A configured Chat Completions endpoint."""

    def __init__(
        self,
        settings: Settings,
        *,
        auditor: Auditor | None = None,
        client: Any | None = None,
    ) -> None:
        if not settings.llm_model:
            raise ConfigError(
                "no model configured: set WB_LLM_MODEL (or OPENAI_MODEL) to use a language model"
            )
        self.settings = settings
        self.model = settings.llm_model
        self.base_url = settings.llm_base_url or OPENAI_DEFAULT_BASE_URL
        self.endpoint = normalize_endpoint(self.base_url)
        self.auditor = auditor
        if client is None:
            try:
                import openai
            except ImportError as exc:  # pragma: no cover - a core dependency
                from workbench.errors import DependencyMissing

                raise DependencyMissing("the openai client is missing: pip install openai") from exc
            key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
            # Local servers (Ollama, llama.cpp) take any key; the client insists on one.
            client = openai.OpenAI(
                api_key=key or "not-needed",
                base_url=self.base_url,
                timeout=settings.llm_timeout_s,
                max_retries=settings.llm_max_retries,
            )
        self.client = client

    def _audit(self, meta: dict[str, Any]) -> None:
        if self.auditor is not None:
            self.auditor.audit("llm_call", **meta)
        else:
            _audit_sink("llm_call", meta)

    def complete(
        self,
        messages: list[Message],
        *,
        stream: bool = True,
        on_token: Callable[[str], None] | None = None,
        max_tokens: int = 900,
        temperature: float = 0.0,
        deidentified: bool = True,
    ) -> LLMResult:
        """Send ``messages`` and return the reply; raises :class:`LLMError` after retries fail."""
        import openai

        digest = prompt_sha256(messages)
        meta: dict[str, Any] = {
            "endpoint": self.endpoint,
            "model": self.model,
            "prompt_sha256": digest,
            "stream": stream,
            "deidentified": deidentified,
        }
        started = time.monotonic()
        try:
            if stream:
                text, usage, finish = self._stream(messages, on_token, max_tokens, temperature)
            else:
                text, usage, finish = self._plain(messages, max_tokens, temperature)
        except openai.APIStatusError as exc:
            self._audit(
                {**meta, "status": "error", "error": f"HTTP {exc.status_code}", "seconds": _since(started)}
            )
            raise LLMError(
                f"the model endpoint {self.endpoint} answered HTTP {exc.status_code} "
                f"after {self.settings.llm_max_retries} retries; check the model name, key and server"
            ) from None
        except openai.APITimeoutError:
            self._audit({**meta, "status": "error", "error": "timeout", "seconds": _since(started)})
            raise LLMError(
                f"the model endpoint {self.endpoint} timed out after {self.settings.llm_timeout_s:g}s "
                f"({self.settings.llm_max_retries} retries); raise WB_LLM_TIMEOUT_S or check the server"
            ) from None
        except openai.APIConnectionError:
            self._audit({**meta, "status": "error", "error": "connection", "seconds": _since(started)})
            raise LLMError(
                f"could not connect to the model endpoint {self.endpoint}; is the server running?"
            ) from None
        except (openai.OpenAIError, ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
            # Malformed JSON, a body without choices, a broken event stream.
            self._audit({**meta, "status": "error", "error": type(exc).__name__, "seconds": _since(started)})
            raise LLMError(
                f"the model endpoint {self.endpoint} sent a response that is not valid Chat Completions "
                f"JSON ({type(exc).__name__}); check that it is OpenAI-compatible"
            ) from None
        prompt_text = "\n".join(m["content"] for m in messages)
        estimated = usage is None
        p_tok = usage[0] if usage else estimate_tokens(prompt_text)
        c_tok = usage[1] if usage else estimate_tokens(text)
        self._audit(
            {
                **meta,
                "status": "ok",
                "prompt_tokens": p_tok,
                "completion_tokens": c_tok,
                "estimated_usage": estimated,
                "finish_reason": finish,
                "seconds": _since(started),
            }
        )
        return LLMResult(text, self.model, self.endpoint, p_tok, c_tok, finish, digest, estimated)

    def _kwargs(self, messages: list[Message], max_tokens: int, temperature: float) -> dict[str, Any]:
        return {
            "model": self.model,
            "messages": messages,
            "temperature": temperature,
            "max_tokens": max_tokens,
            "store": False,
        }

    def _plain(
        self, messages: list[Message], max_tokens: int, temperature: float
    ) -> tuple[str, tuple[int, int] | None, str | None]:
        resp = self.client.chat.completions.create(**self._kwargs(messages, max_tokens, temperature))
        if not getattr(resp, "choices", None):
            raise ValueError("response has no choices")
        choice = resp.choices[0]
        text = choice.message.content
        if not isinstance(text, str):
            raise ValueError("response message has no text content")
        usage = (int(resp.usage.prompt_tokens), int(resp.usage.completion_tokens)) if resp.usage else None
        return text, usage, choice.finish_reason

    def _stream(
        self,
        messages: list[Message],
        on_token: Callable[[str], None] | None,
        max_tokens: int,
        temperature: float,
    ) -> tuple[str, tuple[int, int] | None, str | None]:
        kwargs = self._kwargs(messages, max_tokens, temperature)
        kwargs["stream"] = True
        kwargs["stream_options"] = {"include_usage": True}
        pieces: list[str] = []
        usage: tuple[int, int] | None = None
        finish: str | None = None
        events = 0
        for chunk in self.client.chat.completions.create(**kwargs):
            events += 1
            if getattr(chunk, "usage", None):
                usage = (int(chunk.usage.prompt_tokens), int(chunk.usage.completion_tokens))
            for choice in chunk.choices or []:
                delta = getattr(choice.delta, "content", None) if choice.delta else None
                if delta:
                    pieces.append(delta)
                    if on_token is not None:
                        on_token(delta)
                if choice.finish_reason:
                    finish = choice.finish_reason
        if events == 0:
            raise ValueError("empty event stream")
        return "".join(pieces), usage, finish


def _since(started: float) -> float:
    return round(time.monotonic() - started, 3)
