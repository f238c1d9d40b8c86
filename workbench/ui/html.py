"""HTML fragments for the widgets: search results, answer cards, findings, small tables.

Every piece of text that comes from a corpus, a record or a user is escaped before it is
placed in markup; only the tags written here are live. CSS class names start with ``wb-``
so the browser tests and user style sheets can find them.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from workbench.types import Hit

__all__ = [
    "STYLE",
    "answer_card",
    "findings_html",
    "highlight",
    "hits_html",
    "query_terms",
    "table_html",
]

#: Style sheet shared by the widgets (scoped by the wb- class names).
STYLE = """<style>
.wb-card{border:1px solid #d0d7de;border-radius:8px;padding:10px 14px;margin:8px 0;background:#fff}
.wb-card h4{margin:0 0 4px 0;font-size:1.05em}
.wb-meta{color:#57606a;font-size:.85em}
.wb-hit mark,.wb-snippet mark{background:#fff3b0;padding:0 1px}
.wb-answer-card{border-left:4px solid #0969da}
.wb-notice{color:#57606a;font-style:italic;font-size:.9em}
.wb-unsupported{color:#9a6700}
.wb-cite{font-size:.8em;vertical-align:super;text-decoration:none;margin-left:1px}
.wb-source,.wb-record{margin:3px 0}
.wb-source summary,.wb-record summary{cursor:pointer}
.wb-flag-high,.wb-flag-critical_high,.wb-flag-critical-high{color:#cf222e;font-weight:600}
.wb-flag-low,.wb-flag-critical_low,.wb-flag-critical-low{color:#0550ae;font-weight:600}
.wb-finding{border-left:4px solid #bf8700}
.wb-table{border-collapse:collapse;font-size:.9em}
.wb-table th,.wb-table td{border:1px solid #d0d7de;padding:3px 8px;text-align:left}
.wb-error{color:#cf222e}
</style>"""

_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-']*")
# Words too common to be worth marking in a snippet.
_STOP = frozenset(
    "a an and are as at be by does do for from has have how i in is it its my of on or "
    "the their this to was what when which who why with".split()
)


def _esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def query_terms(query: str) -> list[str]:
    """Distinct lower-cased words of ``query`` worth highlighting (stop words and 1-letter words dropped)."""
    seen: dict[str, None] = {}
    for w in _WORD.findall(query):
        lw = w.lower()
        if len(lw) > 1 and lw not in _STOP:
            seen.setdefault(lw, None)
    return list(seen)


def highlight(text: str, query: str) -> str:
    """``text`` escaped, with whole-word (or word-prefix) matches of the query's terms in ``<mark>``."""
    terms = query_terms(query)
    if not terms:
        return _esc(text)
    # Longest first so "hba1c" wins over "hb"; a term also matches its plural/inflected forms.
    alternation = "|".join(re.escape(t) for t in sorted(terms, key=len, reverse=True))
    pattern = re.compile(rf"\b(?:{alternation})\w*", re.IGNORECASE)
    out: list[str] = []
    last = 0
    for m in pattern.finditer(text):
        out.append(_esc(text[last : m.start()]))
        out.append(f"<mark>{_esc(m.group(0))}</mark>")
        last = m.end()
    out.append(_esc(text[last:]))
    return "".join(out)


def _safe_url(url: str) -> str:
    """Only http(s) links become anchors; anything else (javascript:, data:) is shown as text."""
    return url if re.match(r"^https?://", url or "", re.IGNORECASE) else ""


def hits_html(hits: Sequence[Hit], query: str) -> str:
    """Ranked search results as cards: rank, title, source link, meta and highlighted snippet."""
    if not hits:
        return '<div class="wb-results wb-empty">No results.</div>'
    parts = ['<div class="wb-results">']
    for rank, h in enumerate(hits, start=1):
        url = _safe_url(h.source)
        title = highlight(h.title or h.doc_id, query)
        link = (
            f'<a class="wb-source-link" href="{_esc(url)}" target="_blank" rel="noopener">{_esc(url)}</a>'
            if url
            else _esc(h.source)
        )
        meta = [h.corpus, h.source_kind, h.section, str(h.metadata.get("year") or "")]
        meta_text = " · ".join(_esc(m) for m in meta if m)
        parts.append(
            f'<div class="wb-card wb-hit" data-rank="{rank}" data-doc-id="{_esc(h.doc_id)}">'
            f"<h4>{rank}. {title}</h4>"
            f'<div class="wb-meta">{meta_text} · score {h.score:.3f} · {link}</div>'
            f'<div class="wb-snippet">{highlight(h.snippet, query)}</div></div>'
        )
    parts.append("</div>")
    return "".join(parts)


def _source_label(src: Mapping[str, Any]) -> str:
    bits = [str(src.get("title") or src.get("doc_id") or "source")]
    if src.get("section"):
        bits.append(str(src["section"]))
    if src.get("pmid"):
        bits.append(f"PMID {src['pmid']}")
    if src.get("doi"):
        bits.append(f"doi:{src['doi']}")
    if src.get("corpus"):
        bits.append(str(src["corpus"]))
    return " · ".join(bits)


def _source_link(src: Mapping[str, Any]) -> str:
    if src.get("url"):
        return _safe_url(str(src["url"]))
    if src.get("doi"):
        return f"https://doi.org/{src['doi']}"
    if src.get("pmid"):
        return f"https://pubmed.ncbi.nlm.nih.gov/{src['pmid']}/"
    return _safe_url(str(src.get("source") or ""))


def _record_label(rec: Mapping[str, Any]) -> str:
    when = str(rec.get("date") or "")[:10]
    name = rec.get("display") or rec.get("code") or rec.get("table") or "record"
    value = ""
    if rec.get("value") is not None:
        v = rec["value"]
        value = f": {v:.4g}" if isinstance(v, float) else f": {v}"
        if rec.get("unit"):
            value += f" {rec['unit']}"
    return f"{name}{value}" + (f" ({when})" if when else "")


def _range_text(rec: Mapping[str, Any]) -> str:
    low, high = rec.get("ref_low"), rec.get("ref_high")
    if low is None and high is None:
        return ""
    unit = f" {rec['unit']}" if rec.get("unit") else ""
    if low is not None and high is not None:
        return f"reference range {low:g}–{high:g}{unit}"
    return f"reference {'≥ ' + format(low, 'g') if low is not None else '≤ ' + format(high, 'g')}{unit}"


def answer_card(answer: Any) -> str:
    """An answer as a card: cited sentences, numbered expandable sources and the patient records cited.

    ``answer`` is a :class:`workbench.answer.Answer` (anything with ``to_dict()`` of that shape).
    """
    data = answer.to_dict()
    parts = ['<div class="wb-card wb-answer-card">']
    if data.get("question"):
        parts.append(f'<h4 class="wb-question">{_esc(data["question"])}</h4>')
    if data.get("notice"):
        parts.append(f'<div class="wb-notice">{_esc(data["notice"])}</div>')
    parts.append('<p class="wb-answer-text">')
    for s in data.get("sentences", []):
        cites = "".join(
            f'<a class="wb-cite" href="#wb-item-{int(n)}" title="item {int(n)}">[{int(n)}]</a>'
            for n in s.get("citations", [])
        )
        cls = "wb-sentence" if s.get("supported") else "wb-sentence wb-unsupported"
        tip = f"support {float(s.get('support_score') or 0):.2f}"
        if not s.get("supported"):
            tip += " (unsupported)"
        parts.append(f'<span class="{cls}" title="{_esc(tip)}">{_esc(s.get("text"))}{cites}</span> ')
    parts.append("</p>")
    sources = data.get("sources", [])
    if sources:
        parts.append(f'<div class="wb-sources"><b>Sources ({len(sources)})</b>')
        for src in sources:
            link = _source_link(src)
            anchor = (
                f' <a class="wb-source-link" href="{_esc(link)}" target="_blank" rel="noopener">open</a>'
                if link
                else ""
            )
            parts.append(
                f'<details class="wb-source" id="wb-item-{int(src["id"])}">'
                f"<summary>[{int(src['id'])}] {_esc(_source_label(src))}</summary>"
                f'<div class="wb-snippet">{_esc(src.get("snippet"))}{anchor}</div></details>'
            )
        parts.append("</div>")
    records = data.get("records", [])
    if records:
        parts.append(f'<div class="wb-records"><b>Patient records cited ({len(records)})</b>')
        for rec in records:
            flag = str(rec.get("flag") or "")
            flag_html = (
                f' <span class="wb-flag wb-flag-{_esc(flag.lower())}">{_esc(flag)}</span>' if flag else ""
            )
            ref = f"{rec.get('table')}/{rec.get('resource_id')}"
            rng = _range_text(rec)
            parts.append(
                f'<details class="wb-record" id="wb-item-{int(rec["id"])}">'
                f"<summary>[{int(rec['id'])}] {_esc(_record_label(rec))}{flag_html}</summary>"
                f'<div class="wb-meta">{_esc(rec.get("text"))}<br>record {_esc(ref)}'
                f"{'<br>' + _esc(rng) if rng else ''}</div></details>"
            )
        parts.append("</div>")
    if data.get("removed_citations"):
        nums = sorted({int(r["citation"]) for r in data["removed_citations"] if "citation" in r})
        parts.append(
            f'<div class="wb-meta">Removed citations to items not in the context: {_esc(", ".join(map(str, nums)))}</div>'
        )
    parts.append(
        f'<div class="wb-meta wb-disclaimer">Model: {_esc(data.get("model"))}. {_esc(data.get("disclaimer"))}</div>'
    )
    parts.append("</div>")
    return "".join(parts)


def findings_html(findings: Iterable[Any]) -> str:
    """Chronic-pattern findings as cards, each with its rule, references and supporting records."""
    items = [f.to_dict() if hasattr(f, "to_dict") else dict(f) for f in findings]
    if not items:
        return '<div class="wb-findings wb-empty">No chronic-pattern findings in these records.</div>'
    parts = ['<div class="wb-findings">']
    for f in items:
        refs = "".join(f"<li>{_esc(r)}</li>" for r in f.get("references", []))
        when = " to ".join(d[:10] for d in (f.get("first_date"), f.get("last_date")) if d)
        parts.append(
            f'<div class="wb-card wb-finding" data-pattern="{_esc(f.get("pattern_id"))}">'
            f"<h4>{_esc(f.get('label'))} — {_esc(f.get('stage'))}</h4>"
            f'<div class="wb-meta">{_esc(f.get("rule"))}'
            f"{' · ' + _esc(when) if when else ''} · {len(f.get('record_ids', []))} supporting records</div>"
            f"<details><summary>Why (references)</summary><ul>{refs}</ul></details>"
            f'<div class="wb-notice">{_esc(f.get("statement"))}</div></div>'
        )
    parts.append("</div>")
    return "".join(parts)


def table_html(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], *, css: str = "wb-table") -> str:
    """A small escaped HTML table of ``rows`` restricted to ``columns``."""
    head = "".join(f"<th>{_esc(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_esc(r.get(c))}</td>" for c in columns) + "</tr>" for r in rows)
    return f'<table class="{_esc(css)}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
