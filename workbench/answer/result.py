"""The :class:`Answer` object: verified text, sentences, sources, records; Markdown/HTML/JSON."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from typing import Any

from workbench.answer.citations import SentenceCheck, attach_citations
from workbench.answer.context import ContextItem

DISCLAIMER = (
    "For research and information only. This workbench does not diagnose, does not prescribe and "
    "does not replace a clinician; discuss any decision about your health with one."
)
EXTRACTIVE_NOTICE = (
    "Offline extractive answer: no language model was used. Each sentence below is quoted or "
    "lightly adapted from the numbered source it cites; it is not a synthesis."
)


@dataclass(slots=True)
class Answer:
    """A verified, cited answer produced by one of the answer tasks."""

    task: str
    question: str
    text: str
    sentences: list[SentenceCheck]
    context: list[ContextItem]
    removed_citations: list[dict[str, Any]] = field(default_factory=list)
    verification: dict[str, Any] = field(default_factory=dict)
    model: str = "offline-extractive"
    settings: dict[str, Any] = field(default_factory=dict)
    disclaimer: str = DISCLAIMER
    notice: str = ""

    @property
    def cited_numbers(self) -> list[int]:
        """Item numbers cited by at least one sentence, in first-cited order."""
        seen: dict[int, None] = {}
        for s in self.sentences:
            for n in s.citations:
                seen.setdefault(n, None)
        return list(seen)

    def _cited(self, kinds: tuple[str, ...]) -> list[ContextItem]:
        by_number = {it.number: it for it in self.context}
        return [
            by_number[n] for n in sorted(self.cited_numbers) if n in by_number and by_number[n].kind in kinds
        ]

    @property
    def sources(self) -> list[dict[str, Any]]:
        """Cited evidence passages and note sentences, by item number."""
        return [it.to_source() for it in self._cited(("passage", "note"))]

    @property
    def records(self) -> list[dict[str, Any]]:
        """Cited patient records (table, resource id, date, value, unit, flag, range)."""
        return [it.to_record() for it in self._cited(("record",))]

    @property
    def supported_ratio(self) -> float:
        """Share of sentences that are supported by what they cite."""
        return sum(s.supported for s in self.sentences) / len(self.sentences) if self.sentences else 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (the CLI's ``--json`` output)."""
        return {
            "task": self.task,
            "question": self.question,
            "answer": self.text,
            "sentences": [s.to_dict() for s in self.sentences],
            "sources": self.sources,
            "records": self.records,
            "removed_citations": list(self.removed_citations),
            "verification": dict(self.verification),
            "model": self.model,
            "settings": dict(self.settings),
            "notice": self.notice,
            "disclaimer": self.disclaimer,
        }

    def to_json(self, *, indent: int | None = 2) -> str:
        """The answer as a JSON string."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False, default=str)

    def _source_line(self, item: dict[str, Any]) -> str:
        bits = [item.get("title") or item.get("doc_id") or ""]
        if item.get("section"):
            bits.append(str(item["section"]))
        if item.get("pmid"):
            bits.append(f"PMID {item['pmid']}")
        if item.get("doi"):
            bits.append(f"doi:{item['doi']}")
        if item.get("url"):
            bits.append(str(item["url"]))
        elif item.get("source") and not item.get("pmid"):
            bits.append(str(item["source"]))
        return " · ".join(b for b in bits if b)

    @staticmethod
    def _record_line(rec: dict[str, Any]) -> str:
        when = (rec.get("date") or "")[:10]
        ref = f"{rec['table']}/{rec['resource_id']}"
        return f"{rec['text']} ({ref}{', ' + when if when else ''})"

    def to_markdown(self) -> str:
        """Markdown with the answer, unsupported sentences flagged, sources and records listed."""
        out = [f"**{self.question}**", ""] if self.question else []
        if self.notice:
            out += [f"> {self.notice}", ""]
        for s in self.sentences:
            line = attach_citations(s.text, s.citations)
            out.append(line if s.supported else f"{line} _(unsupported)_")
        out.append("")
        if self.sources:
            out += ["**Sources**", ""]
            out += [f"[{it['id']}] {self._source_line(it)}" for it in self.sources]
            out.append("")
        if self.records:
            out += ["**Your records cited**", ""]
            out += [f"[{r['id']}] {self._record_line(r)}" for r in self.records]
            out.append("")
        if self.removed_citations:
            nums = sorted({int(r["citation"]) for r in self.removed_citations})
            out += [f"_Removed citations to items not in the context: {', '.join(map(str, nums))}._", ""]
        out += [f"_Model: {self.model}._ _{self.disclaimer}_"]
        return "\n".join(out)

    def to_html(self) -> str:
        """A self-contained HTML fragment; every piece of text is escaped."""
        e = html.escape
        parts = ['<div class="wb-answer">']
        if self.question:
            parts.append(f'<p class="wb-question"><strong>{e(self.question)}</strong></p>')
        if self.notice:
            parts.append(f'<p class="wb-notice">{e(self.notice)}</p>')
        parts.append("<p>")
        for s in self.sentences:
            cites = "".join(f'<a class="wb-cite" href="#wb-src-{n}">[{n}]</a>' for n in s.citations)
            cls = "wb-sentence" if s.supported else "wb-sentence wb-unsupported"
            title = f"support {s.support_score:.2f}" + ("" if s.supported else " (unsupported)")
            parts.append(f'<span class="{cls}" title="{e(title)}">{e(s.text)} {cites}</span> ')
        parts.append("</p>")
        if self.sources:
            parts.append('<ol class="wb-sources">')
            for it in self.sources:
                link = it.get("url") or (
                    f"https://pubmed.ncbi.nlm.nih.gov/{it['pmid']}/" if it.get("pmid") else ""
                )
                label = e(self._source_line(it))
                body = f'<a href="{e(link)}" rel="noopener">{label}</a>' if link else label
                parts.append(
                    f'<li id="wb-src-{it["id"]}" value="{it["id"]}">{body}<br><small>{e(it["snippet"])}</small></li>'
                )
            parts.append("</ol>")
        if self.records:
            parts.append('<ol class="wb-records">')
            for r in self.records:
                parts.append(f'<li id="wb-src-{r["id"]}" value="{r["id"]}">{e(self._record_line(r))}</li>')
            parts.append("</ol>")
        parts.append(
            f'<p class="wb-disclaimer"><small>Model: {e(self.model)}. {e(self.disclaimer)}</small></p>'
        )
        parts.append("</div>")
        return "\n".join(parts)

    def _repr_markdown_(self) -> str:  # notebooks render the answer directly
        return self.to_markdown()
