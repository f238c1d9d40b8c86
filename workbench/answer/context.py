"""Numbered context items (evidence passages, patient facts, note sentences) and the token budget."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

from workbench.answer.text import estimate_tokens
from workbench.types import Hit

ItemKind = Literal["passage", "record", "note"]


@dataclass(slots=True)
class ContextItem:
    """One numbered item of the model's context.

    ``text`` is what a local reader sees; ``prompt_text`` (when set) is the de-identified
    wording sent to endpoints that are not trusted (relative dates, pseudonymous ids).
    """

    kind: ItemKind
    text: str
    number: int = 0
    relevance: float = 0.0
    prompt_text: str | None = None
    # evidence passages
    doc_id: str = ""
    chunk_id: str = ""
    title: str = ""
    source: str = ""
    section: str = ""
    corpus: str = ""
    pmid: str = ""
    doi: str = ""
    url: str = ""
    # patient records
    table: str = ""
    resource_type: str = ""
    resource_id: str = ""
    date: datetime | None = None
    value: float | str | None = None
    unit: str = ""
    flag: str = ""
    ref_low: float | None = None
    ref_high: float | None = None
    code: str = ""
    display: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def text_for(self, *, deidentified: bool) -> str:
        """The wording for a prompt: de-identified when required and available."""
        if deidentified and self.prompt_text is not None:
            return self.prompt_text
        return self.text

    def header(self, *, deidentified: bool) -> str:
        """A one-line label shown before the item in the prompt."""
        if self.kind == "passage":
            bits = [b for b in (self.title, self.section) if b]
            ref = f"PMID {self.pmid}" if self.pmid else (self.doi or self.source or self.corpus)
            if ref:
                bits.insert(0, ref)
            return "evidence: " + " | ".join(bits)
        if self.kind == "record":
            rid = self.extra.get("pseudo_id", "") if deidentified else self.resource_id
            return f"patient record: {self.table}" + (f" {rid}" if rid else "")
        return "note sentence"

    def to_source(self) -> dict[str, Any]:
        snippet = self.text if len(self.text) <= 300 else self.text[:297].rstrip() + "..."
        return {
            "id": self.number,
            "doc_id": self.doc_id,
            "chunk_id": self.chunk_id,
            "title": self.title,
            "source": self.source,
            "snippet": snippet,
            "pmid": self.pmid or None,
            "doi": self.doi or None,
            "url": self.url or None,
            "section": self.section or None,
            "corpus": self.corpus or None,
            "kind": self.kind,
        }

    def to_record(self) -> dict[str, Any]:
        return {
            "id": self.number,
            "table": self.table,
            "resource_type": self.resource_type,
            "resource_id": self.resource_id,
            "date": self.date.isoformat() if self.date else None,
            "code": self.code or None,
            "display": self.display or None,
            "value": self.value,
            "unit": self.unit or None,
            "flag": self.flag or None,
            "ref_low": self.ref_low,
            "ref_high": self.ref_high,
            "text": self.text,
        }


def item_from_hit(hit: Hit, *, relevance: float | None = None) -> ContextItem:
    """A passage item from a search hit (citation fields taken from the hit's metadata)."""
    meta = hit.metadata or {}
    return ContextItem(
        kind="passage",
        text=(hit.text or hit.snippet).strip(),
        relevance=hit.score if relevance is None else relevance,
        doc_id=hit.doc_id,
        chunk_id=hit.chunk_id,
        title=hit.title,
        source=hit.source,
        section=hit.section,
        corpus=hit.corpus,
        pmid=str(meta.get("pmid") or ""),
        doi=str(meta.get("doi") or ""),
        url=str(meta.get("url") or ""),
    )


def select_within_budget(
    items: Sequence[ContextItem],
    budget_tokens: int,
    *,
    deidentified: bool = False,
    record_share: float = 0.5,
) -> list[ContextItem]:
    """Pick the most relevant items that fit ``budget_tokens`` and number them from 1.

    Items are taken greedily by relevance; one that does not fit is skipped (never cut
    mid-text) so a smaller, still relevant item can take its place. When records compete with
    passages, a first pass gives records at most ``record_share`` of the budget and passages
    the rest, so neither can crowd the other out; a second pass hands what is left to the
    remaining items by relevance.
    """
    ranked = sorted(enumerate(items), key=lambda p: (-p[1].relevance, p[0]))
    kinds = {it.kind for it in items}
    mixed = "record" in kinds and len(kinds) > 1
    caps = {"record": int(budget_tokens * record_share)} if mixed else {}
    other_cap = budget_tokens - caps.get("record", 0) if mixed else budget_tokens

    def cost(it: ContextItem) -> int:
        return (
            estimate_tokens(it.header(deidentified=deidentified) + it.text_for(deidentified=deidentified)) + 4
        )

    chosen: list[tuple[int, ContextItem]] = []
    taken: set[int] = set()
    used = 0
    used_by = {"record": 0, "other": 0}
    for pos, it in ranked:
        group = "record" if it.kind == "record" else "other"
        cap = caps.get("record", budget_tokens) if group == "record" else other_cap
        c = cost(it)
        if used + c <= budget_tokens and used_by[group] + c <= cap:
            chosen.append((pos, it))
            taken.add(pos)
            used += c
            used_by[group] += c
    for pos, it in ranked:  # leftovers, by relevance, whatever their kind
        c = cost(it)
        if pos not in taken and used + c <= budget_tokens:
            chosen.append((pos, it))
            taken.add(pos)
            used += c
    # Passages first, then records, then note sentences; each group in relevance order, except
    # note sentences, which keep document order so a rewrite can follow the note.
    order = {"passage": 0, "record": 1, "note": 2}
    chosen.sort(key=lambda p: (order[p[1].kind], p[0] if p[1].kind == "note" else -p[1].relevance, p[0]))
    return [replace(it, number=i) for i, (_, it) in enumerate(chosen, start=1)]
