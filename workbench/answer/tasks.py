"""The answer tasks: ``ask``, ``explain_labs``, ``prepare_visit`` and ``plain_language``.

Each builds a numbered context (evidence passages, patient facts or note sentences), then
runs the shared pipeline: a configured model through the egress guard, or the offline
extractive writer, and citation verification either way. None of them diagnoses or
prescribes; each answer carries the disclaimer and says so in its notice.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from workbench.answer.citations import Encoder, attach_citations
from workbench.answer.context import ContextItem
from workbench.answer.egress import EgressGuard
from workbench.answer.offline import extractive_answer, select_sentences
from workbench.answer.pipeline import (
    PatientContext,
    Retriever,
    _deidentify_free_text,
    default_encoder,
    items_from_hits,
    load_patient_context,
    rank_relevance,
    run_pipeline,
)
from workbench.answer.records import FLAG_WORDS
from workbench.answer.result import EXTRACTIVE_NOTICE, Answer
from workbench.answer.text import split_sentences
from workbench.errors import ReaderError
from workbench.settings import Settings, get_settings

NO_ADVICE = "This does not diagnose and does not recommend treatment; discuss it with your clinician."


def _load_index(index: Retriever | str | Path | None) -> Retriever:
    if index is not None and hasattr(index, "search"):
        return index  # type: ignore[return-value]
    from workbench.retrieval import EvidenceIndex

    return EvidenceIndex.load(index)


def _patient(
    patient: str | PatientContext | None, workspace: Any, settings: Settings
) -> PatientContext | None:
    if patient is None or isinstance(patient, PatientContext):
        return patient
    return load_patient_context(workspace, patient, settings=settings)


def ask(
    question: str,
    *,
    index: Retriever | str | Path | None = None,
    patient: str | PatientContext | None = None,
    workspace: Any = None,
    k: int = 8,
    settings: Settings | None = None,
    encoder: Encoder | None = None,
    offline: bool | None = None,
    stream: bool = True,
    on_token: Callable[[str], None] | None = None,
    filters: Any = None,
    client: Any | None = None,
) -> Answer:
    """Answer ``question`` from the evidence index (and a patient's records), with citations."""
    settings = settings or get_settings()
    encoder = encoder or default_encoder()
    pctx = _patient(patient, workspace, settings)
    guard = pctx.guard if pctx else EgressGuard(trusted_endpoints=settings.trusted_endpoints)
    # The search query never carries identifiers into logs or caches of the index.
    query = guard.redact(question)
    hits = _load_index(index).search(query, k=k, mode="hybrid", filters=filters)
    items = items_from_hits(hits)
    rank_relevance(items, query, encoder)
    if pctx is not None:
        facts = [_copy(f) for f in pctx.facts]
        rank_relevance(facts, query, encoder)
        items += facts
    return run_pipeline(
        task="ask",
        question=question,
        items=items,
        settings=settings,
        encoder=encoder,
        guard=guard,
        auditor=pctx.auditor if pctx else None,
        patient=pctx,
        instructions=(
            "Answer the question from the evidence passages"
            + (" and the patient's records" if pctx else "")
            + ". Say where evidence is weak or missing. Do not diagnose or prescribe."
        ),
        offline=offline,
        stream=stream,
        on_token=on_token,
        extra_settings={"k": k, "mode": "hybrid", "patient": pctx.pseudo_id if pctx else None},
        client=client,
    )


def _copy(item: ContextItem) -> ContextItem:
    from dataclasses import replace

    return replace(item, extra=dict(item.extra))


def _lab_results(pctx: PatientContext, limit: int) -> list[ContextItem]:
    labs = [
        f
        for f in pctx.facts
        if f.table == "observations"
        and f.extra.get("category", "laboratory") in ("laboratory", "vital-signs", "")
        and f.extra.get("fact_kind") in ("lab_abnormal", "lab_changing")
    ]
    labs.sort(key=lambda f: (f.extra.get("fact_kind") != "lab_abnormal", -abs(f.extra.get("change") or 0.0)))
    return [_copy(f) for f in labs[:limit]]


def explain_labs(
    patient: str | PatientContext,
    *,
    workspace: Any = None,
    index: Retriever | str | Path | None = None,
    k: int = 2,
    limit: int = 8,
    settings: Settings | None = None,
    encoder: Encoder | None = None,
    offline: bool | None = None,
    stream: bool = True,
    on_token: Callable[[str], None] | None = None,
    client: Any | None = None,
) -> Answer:
    """Explain a patient's results that are outside their range or changing, with evidence."""
    settings = settings or get_settings()
    encoder = encoder or default_encoder()
    pctx = _patient(patient, workspace, settings)
    assert pctx is not None
    labs = _lab_results(pctx, limit)
    for rank, f in enumerate(labs):
        f.relevance = 2.0 - rank / max(len(labs), 1)  # the results themselves come first in the budget
    items: list[ContextItem] = list(labs)
    retriever = _load_index(index) if index is not None else None
    for f in labs:
        if retriever is None:
            break
        word = FLAG_WORDS.get(f.flag, "changing")
        topic = f"{f.display} {word}: what it means and common causes"
        for h in items_from_hits(retriever.search(topic, k=k, mode="hybrid")):
            h.extra["for"] = f.resource_id
            h.extra["topic"] = topic
            items.append(h)
        rank_relevance([it for it in items if it.extra.get("for") == f.resource_id], topic, encoder)

    def writer(_q: str, ctx: list[ContextItem]) -> str:
        out = []
        for fact in (it for it in ctx if it.kind == "record"):
            out.append(attach_citations(fact.text.rstrip("."), [fact.number]) + ".")
            support = [it for it in ctx if it.kind == "passage" and it.extra.get("for") == fact.resource_id]
            picked = (
                select_sentences(support[0].extra["topic"], support, encoder, max_sentences=1)
                if support
                else []
            )
            out += [attach_citations(_end(c.text), [c.item]) for c in picked]
        return " ".join(out)

    question = "Which of my results are outside their reference range or changing, and what do they mean?"
    return run_pipeline(
        task="explain-labs",
        question=question,
        items=items,
        settings=settings,
        encoder=encoder,
        guard=pctx.guard,
        auditor=pctx.auditor,
        patient=pctx,
        instructions=(
            "For each patient result in the context, say in plain words what was measured, how it compares "
            "with its reference range or earlier value, and what the evidence passages say such a result can "
            "mean in general. Do not diagnose, do not recommend treatment, and suggest discussing it with a clinician."
        ),
        offline=offline,
        offline_writer=writer,
        stream=stream,
        on_token=on_token,
        notice=(EXTRACTIVE_NOTICE + " " if _is_offline(settings, offline) else "")
        + (
            NO_ADVICE
            if labs
            else "No results outside their reference range or changing markedly were found. " + NO_ADVICE
        ),
        extra_settings={"patient": pctx.pseudo_id, "results": len(labs), "k": k},
        client=client,
    )


def _is_offline(settings: Settings, offline: bool | None) -> bool:
    return settings.offline if offline is None else offline


def _end(sentence: str) -> str:
    s = sentence.strip()
    return s if s.endswith((".", "!", "?")) else s + "."


def _question_for(fact: ContextItem) -> str:
    """A question for the clinician that restates the fact it comes from (so it stays checkable)."""
    kind = fact.extra.get("fact_kind")
    name = fact.display or "this"
    value = f"{fact.value:g}" if isinstance(fact.value, float) else str(fact.value or "")
    unit = f" {fact.unit}" if fact.unit else ""
    if kind == "lab_abnormal":
        word = FLAG_WORDS.get(fact.flag, "abnormal")
        return (
            f"My {name} was {value}{unit}, which is {word}: what does that mean, and should it be rechecked?"
        )
    if kind == "lab_changing":
        prev = fact.extra.get("previous_value")
        moved = "up" if prev is not None and isinstance(fact.value, float) and fact.value > prev else "down"
        was = f" from {prev:g}" if isinstance(prev, float) else ""
        return f"My {name} went {moved}{was} to {value}{unit}: why, and does the change matter?"
    body = _unlabelled(fact.text)
    if kind == "condition_active":
        return f"My {name} is listed as active: how is it doing, and what are the next steps?"
    if kind == "medication_active":
        return f"My active medicine {name}: what is it for, and which side effects should I watch for?"
    return f"Is there anything I should know about {body}?"


def _unlabelled(text: str) -> str:
    """A fact's wording without its record-type label ("Condition: ...") and final full stop."""
    return re.sub(
        r"^(Encounter|Condition|Medication|Procedure|Immunization|Allergy or intolerance): ", "", text
    ).rstrip(".")


def prepare_visit(
    patient: str | PatientContext,
    *,
    workspace: Any = None,
    settings: Settings | None = None,
    encoder: Encoder | None = None,
    offline: bool | None = None,
    max_items: int = 8,
    stream: bool = True,
    on_token: Callable[[str], None] | None = None,
    client: Any | None = None,
) -> Answer:
    """What changed since the last encounter, open problems and questions to ask, all cited."""
    settings = settings or get_settings()
    encoder = encoder or default_encoder()
    pctx = _patient(patient, workspace, settings)
    assert pctx is not None
    facts = [_copy(f) for f in pctx.facts]
    encounters = sorted(
        (f for f in facts if f.table == "encounters" and f.date), key=lambda f: f.date or datetime.min
    )
    last = encounters[-1] if encounters else None
    since = last.date if last else None
    # Day-level: results of the last encounter are often stamped earlier that day than the visit.
    changed = [
        f
        for f in facts
        if f.table != "encounters"
        and since is not None
        and f.date is not None
        and f.date.date() >= since.date()
    ]
    changed.sort(key=lambda f: -f.relevance)
    changed = changed[:max_items]
    problems = [f for f in facts if f.extra.get("fact_kind") == "condition_active" and f not in changed][
        :max_items
    ]
    meds = [f for f in facts if f.extra.get("fact_kind") == "medication_active" and f not in changed][
        :max_items
    ]
    for f in changed:
        f.extra["section"] = "changed"
    for f in problems:
        f.extra["section"] = "problem"
    for f in meds:
        f.extra["section"] = "medication"
    items: list[ContextItem] = ([last] if last else []) + changed + problems + meds
    for rank, it in enumerate(items):
        it.relevance = 2.0 - rank / max(len(items), 1)

    def writer(_q: str, ctx: list[ContextItem]) -> str:
        out: list[str] = []
        for it in ctx:
            sec = it.extra.get("section")
            body = _unlabelled(it.text)
            label = {
                "changed": "New or updated at that encounter or since",
                "problem": "Open problem",
                "medication": "Current medicine",
            }.get(str(sec), "")
            if it.table == "encounters":
                label = "Your last encounter"
            if label:
                out.append(attach_citations(f"{label}: {body}", [it.number]) + ".")
        asked = [
            it
            for it in ctx
            if it.extra.get("fact_kind") in ("lab_abnormal", "lab_changing", "condition_active")
        ]
        asked += [it for it in ctx if it.extra.get("fact_kind") == "medication_active"]
        for it in asked[:5]:
            out.append(f"Question to ask: {attach_citations(_question_for(it), [it.number])}")
        return " ".join(out)

    return run_pipeline(
        task="prepare-visit",
        question="What has changed since my last visit, which problems are open, and what could I ask?",
        items=items,
        settings=settings,
        encoder=encoder,
        guard=pctx.guard,
        auditor=pctx.auditor,
        patient=pctx,
        instructions=(
            "Help the patient prepare for a visit: list what changed since the last encounter, the open "
            "problems and current medicines, then suggest a few questions to ask the clinician. Cite the "
            "records for every statement and question. Do not diagnose or recommend treatment."
        ),
        offline=offline,
        offline_writer=writer,
        stream=stream,
        on_token=on_token,
        notice=(EXTRACTIVE_NOTICE + " " if _is_offline(settings, offline) else "") + NO_ADVICE,
        extra_settings={"patient": pctx.pseudo_id, "since": since.date().isoformat() if since else None},
        client=client,
    )


# --- plain language -----------------------------------------------------------------------

SECTION_NAMES = {
    "CHIEF COMPLAINT": "Why you came in",
    "HISTORY OF PRESENT ILLNESS": "Your story",
    "REVIEW OF SYSTEMS": "Symptoms you were asked about",
    "PHYSICAL EXAMINATION": "What the exam found",
    "PHYSICAL EXAM": "What the exam found",
    "RESULTS": "Test results",
    "ASSESSMENT AND PLAN": "What it means and the plan",
    "ASSESSMENT": "What it means",
    "PLAN": "The plan",
    "INSTRUCTIONS": "Instructions",
    "PAST HISTORY": "Your past history",
    "MEDICATIONS": "Your medicines",
    "ALLERGIES": "Allergies",
    "SOCIAL HISTORY": "Your daily life",
    "FAMILY HISTORY": "Family history",
    "VITALS": "Vital signs",
}
_HEADING = re.compile(r"^[A-Z][A-Z /&-]{2,60}:?$")


@lru_cache(maxsize=1)
def glossary() -> tuple[dict[str, str], frozenset[str]]:
    """The plain-language glossary shipped with the package: term -> meaning, and shorthand to replace."""
    data = json.loads(resources.files("workbench.answer").joinpath("data/glossary.json").read_text("utf-8"))
    return dict(data["terms"]), frozenset(data["replace"])


def _glossary_pattern() -> re.Pattern[str]:
    terms, _ = glossary()
    alts = sorted(terms, key=len, reverse=True)  # longest first: "heart failure" before "failure"
    return re.compile(r"(?<![\w/.])(" + "|".join(re.escape(t) for t in alts) + r")(?![\w/])", re.I)


def simplify_sentence(sentence: str, explained: set[str]) -> str:
    """One note sentence in plainer words: shorthand spelled out, medical terms explained once."""
    terms, replace_set = glossary()
    text = re.sub(r"^\s*[•*\-]\s*", "", sentence).strip()
    # "Medical Reasoning: ..." labels are note structure, not content.
    text = re.sub(
        r"^(Medical Reasoning|Additional Testing|Medical Treatment|Patient Education and Counseling):\s*",
        "",
        text,
    )

    def sub(m: re.Match[str]) -> str:
        word = m.group(1)
        key = word.lower()
        meaning = terms.get(key)
        if meaning is None:
            return word
        if key in replace_set:
            # Keep sentence-initial capitals so the sentence splitter still sees a new sentence.
            return meaning[:1].upper() + meaning[1:] if word[:1].isupper() else meaning
        if key in explained or meaning.lower() == key:
            return word
        explained.add(key)
        if meaning.lower().startswith(key):
            return meaning
        return f"{word} ({meaning})"

    return _glossary_pattern().sub(sub, text)


def note_items(note: str) -> list[ContextItem]:
    """The note split into numbered sentence items (headings kept as each item's section)."""
    items: list[ContextItem] = []
    section = ""
    for block in re.split(r"\n\s*\n|\n(?=\s*[•*\-]\s)", note):
        block = block.strip()
        if not block:
            continue
        if _HEADING.match(block):
            section = block.rstrip(":").strip()
            continue
        for sent in split_sentences(block):
            if sent.strip():
                items.append(
                    ContextItem(
                        kind="note", text=sent.strip(), relevance=1.0, section=section, title="clinical note"
                    )
                )
    for i, it in enumerate(items, start=1):
        it.number = i
    return items


def plain_language(
    note: str | Path,
    *,
    settings: Settings | None = None,
    encoder: Encoder | None = None,
    offline: bool | None = None,
    guard: EgressGuard | None = None,
    source_name: str = "",
    stream: bool = True,
    on_token: Callable[[str], None] | None = None,
    client: Any | None = None,
) -> Answer:
    """Rewrite a clinical note for its patient; every sentence cites the note sentence(s) it restates."""
    settings = settings or get_settings()
    encoder = encoder or default_encoder()
    if isinstance(note, Path):
        try:
            text = note.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ReaderError(
                f"cannot read note file {note}: {type(exc).__name__}; give a UTF-8 text file"
            ) from exc
        source_name = source_name or note.name
    else:
        text = note
    items = note_items(text)
    for it in items:
        it.doc_id = source_name or "note"
    guard = guard or EgressGuard(trusted_endpoints=settings.trusted_endpoints)
    use_offline = _is_offline(settings, offline)
    if not use_offline and not guard.is_trusted(settings.llm_base_url or "https://api.openai.com/v1"):
        for it in items:  # the note is free text about a person: de-identify each sentence
            it.prompt_text = _deidentify_free_text(it.text, guard)

    def writer(_q: str, ctx: list[ContextItem]) -> str:
        explained: set[str] = set()
        out = []
        current = None
        for it in ctx:
            plain = simplify_sentence(it.text, explained)
            if not plain:
                continue
            if it.section != current:
                current = it.section
                label = SECTION_NAMES.get(current.upper(), current.capitalize() if current else "")
                plain = f"{label}: {plain}" if label else plain
            out.append(attach_citations(_end(plain), [it.number]))
        return " ".join(out)

    budget = max(settings.llm_context_tokens, sum(len(it.text) // 4 + 12 for it in items) + 64)
    return run_pipeline(
        task="plain-language",
        question=f"Plain-language version of {source_name or 'the note'}",
        items=items,
        settings=settings,
        encoder=encoder,
        guard=guard,
        instructions=(
            "Rewrite the clinical note for the patient in plain, friendly language at about a 6th-grade "
            "reading level. Keep every fact; add nothing that is not in the note. End every sentence with the "
            "number(s) of the note sentence(s) it restates. Do not add a diagnosis or advice."
        ),
        offline=offline,
        offline_writer=writer,
        stream=stream,
        on_token=on_token,
        budget_tokens=budget,
        notice=(
            "Offline plain-language version: each sentence restates the numbered note sentence it cites, with "
            "medical terms explained from a built-in glossary; no language model was used. "
            if use_offline
            else ""
        )
        + "It explains the note and does not add a diagnosis or advice; ask your care team about anything unclear.",
        extra_settings={"source": source_name or None},
        client=client,
    )


__all__ = ["ask", "explain_labs", "extractive_answer", "plain_language", "prepare_visit"]
