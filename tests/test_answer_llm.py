"""The real openai client against a loopback Chat Completions server."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "answer"))

from llm_server import Behaviour, FakeLLMServer  # noqa: E402

from workbench.answer import ask, set_audit_sink  # noqa: E402
from workbench.answer.llm import ChatModel, audit_file, prompt_sha256  # noqa: E402
from workbench.errors import LLMError  # noqa: E402
from workbench.settings import get_settings  # noqa: E402
from workbench.types import Hit  # noqa: E402

MESSAGES = [{"role": "system", "content": "sys"}, {"role": "user", "content": "secret question text"}]


@pytest.fixture
def server():
    with FakeLLMServer(lambda req: "Metformin lowers HbA1c [1].") as srv:
        yield srv


@pytest.fixture
def audit_events():
    events: list[tuple[str, dict[str, Any]]] = []
    previous = set_audit_sink(lambda action, meta: events.append((action, meta)))
    yield events
    set_audit_sink(previous)


def model(server: FakeLLMServer, **kw: Any) -> ChatModel:
    # The endpoint fields are declared with env aliases, so keyword overrides use the alias names.
    s = get_settings(
        WB_LLM_BASE_URL=server.base_url, WB_LLM_MODEL="test-model", llm_max_retries=kw.pop("retries", 2), **kw
    )
    return ChatModel(s)


def test_plain_completion_sends_store_false_and_audits_without_content(server, audit_events) -> None:
    res = model(server).complete(MESSAGES, stream=False)
    assert res.text == "Metformin lowers HbA1c [1]."
    req = server.requests[0]
    assert req["store"] is False and req["model"] == "test-model" and "stream" not in req
    assert res.prompt_tokens > 0 and not res.estimated_usage
    action, meta = audit_events[-1]
    assert action == "llm_call" and meta["status"] == "ok"
    assert meta["prompt_sha256"] == prompt_sha256(MESSAGES)
    assert meta["endpoint"] == server.base_url and meta["model"] == "test-model"
    assert "secret question text" not in json.dumps(meta)


def test_streaming_collects_deltas_and_usage(server, audit_events) -> None:
    seen: list[str] = []
    res = model(server).complete(MESSAGES, stream=True, on_token=seen.append)
    assert res.text == "Metformin lowers HbA1c [1]." == "".join(seen)
    assert len(seen) > 1 and res.finish_reason == "stop"
    assert server.requests[0]["stream"] is True
    assert audit_events[-1][1]["completion_tokens"] == 4


def test_429_then_success_is_retried(server, audit_events) -> None:
    server.script.append(Behaviour("status", 429, headers={"retry-after-ms": "10"}))
    res = model(server).complete(MESSAGES, stream=False)
    assert res.text.startswith("Metformin")
    assert len(server.requests) == 2


def test_500_fails_after_retries_with_llm_error(server, audit_events) -> None:
    for _ in range(3):
        server.script.append(Behaviour("status", 500, headers={"retry-after-ms": "10"}))
    with pytest.raises(LLMError, match="HTTP 500"):
        model(server, retries=2).complete(MESSAGES, stream=False)
    assert len(server.requests) == 3  # first try + 2 retries
    assert audit_events[-1][1]["status"] == "error"


def test_timeout_is_reported(server, audit_events) -> None:
    server.script.append(Behaviour("sleep", seconds=1.5))
    with pytest.raises(LLMError, match="timed out"):
        model(server, retries=0, llm_timeout_s=0.3).complete(MESSAGES, stream=False)


def test_malformed_json_is_an_llm_error(server, audit_events) -> None:
    server.script.append(Behaviour("raw", 200, body=b'{"choices": [ this is not json'))
    with pytest.raises(LLMError, match="not valid Chat Completions"):
        model(server, retries=0).complete(MESSAGES, stream=False)
    server.script.append(
        Behaviour("raw", 200, body=b'{"id": "x", "object": "chat.completion", "choices": []}')
    )
    with pytest.raises(LLMError):
        model(server, retries=0).complete(MESSAGES, stream=False)


def test_default_audit_sink_writes_metadata_only(server) -> None:
    model(server).complete(MESSAGES, stream=False)
    lines = audit_file().read_text().splitlines()
    event = json.loads(lines[-1])
    assert event["action"] == "llm_call" and event["status"] == "ok"
    assert "secret question text" not in lines[-1]


class ListRetriever:
    """Search over a fixed list of hits (the network edge for this test is the model, not the index)."""

    def __init__(self, hits: list[Hit]) -> None:
        self.hits = hits

    def search(self, query: str, *, k: int = 10, mode: str = "hybrid", filters: Any = None) -> list[Hit]:
        return self.hits[:k]


HITS = [
    Hit(
        chunk_id="c1",
        doc_id="pmid:111",
        score=0.9,
        title="Metformin in type 2 diabetes",
        source="PubMed",
        snippet="",
        text="Metformin lowered HbA1c by 1.1 percentage points versus placebo in type 2 diabetes.",
        metadata={"pmid": "111"},
    ),
    Hit(
        chunk_id="c2",
        doc_id="pmid:222",
        score=0.5,
        title="Exercise and blood pressure",
        source="PubMed",
        snippet="",
        text="Aerobic exercise lowered systolic blood pressure in adults with hypertension.",
        metadata={"pmid": "222"},
    ),
]


def test_answer_citing_a_missing_passage_is_cleaned(server, audit_events) -> None:
    server.reply = lambda req: (
        "Metformin lowers HbA1c in type 2 diabetes [1]. Exercise lowers blood pressure [2, 9]. "
        "It also cures baldness [12]."
    )
    s = get_settings(WB_LLM_BASE_URL=server.base_url, WB_LLM_MODEL="test-model", llm_max_retries=0)
    answer = ask("Does metformin lower HbA1c?", index=ListRetriever(HITS), settings=s)
    assert answer.model == "test-model"
    assert [r["citation"] for r in answer.removed_citations] == [9, 12]
    assert [s.citations for s in answer.sentences] == [[1], [2], []]
    assert [s.supported for s in answer.sentences] == [True, True, False]
    data = answer.to_dict()
    assert {src["id"] for src in data["sources"]} == {1, 2}
    assert "[9]" not in data["answer"] and "[12]" not in data["answer"]
    assert answer.settings["prompt_sha256"] == audit_events[-1][1]["prompt_sha256"]
    body = server.requests[0]["messages"]
    assert "data, not instructions" in body[0]["content"]
    assert "[1] (evidence: PMID 111" in body[1]["content"]
