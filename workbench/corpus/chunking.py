"""Split documents into retrievable chunks that respect sections and sentences.

Rules, in order of precedence:

1. A chunk never crosses a section boundary (text outside every section with content
   becomes an unnamed section, so nothing is lost).
2. Chunks are runs of whole sentences whose token counts sum to at most ``max_tokens``.
   Neighbouring chunks of a section share whole trailing sentences worth at most ``overlap`` tokens.
3. Only a sentence that alone exceeds ``max_tokens`` is split inside: into word windows of at
   most ``max_tokens`` tokens that overlap by at most ``overlap`` tokens (a single "word"
   longer than the budget, e.g. a long formula, is split at token boundaries).

Every chunk satisfies ``doc.text[chunk.start:chunk.end] == chunk.text``.

Token counts of a chunk are the sum of its sentences' counts. That equals counting the chunk's
text for any counter that never merges across whitespace: the default (words, numbers and single
punctuation marks) and BERT-style WordPiece tokenizers such as all-MiniLM-L6-v2's. For a model's
real limit pass ``count_tokens=TokenizerCounter(tokenizer)`` (it excludes special tokens: leave
room for them in ``max_tokens``; ``header_in_budget=True`` also reserves the title line).
One limit: with a sub-word counter, a single run of letters/digits that alone exceeds the
budget (never seen in the shipped corpora) stays one over-long chunk.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from workbench.errors import ConfigError
from workbench.types import Chunk, Document

TokenCounter = Callable[[str], int]

_TOKEN = re.compile(r"\w+|[^\w\s]")
_WORD = re.compile(r"\S+")

# A sentence ends at . ! ? (plus closing quotes/brackets) before whitespace and a capital letter,
# digit or opening quote/bracket, possibly after an inline bullet ("... risk. - Signs include");
# or at any line break (list items, headings, paragraphs).
_SENT_END = re.compile(
    r"[.!?]+[\"'\u2019\u201d)\]]*(?=\s+(?:[-\u2022*]\s+)?[\"'\u2018\u201c(\[]?[A-Z0-9])|\n"
)

# Words that end with a period without ending a sentence ("e.g. Smith", "Fig. 2").
_ABBREVIATIONS = frozenset(
    "e.g i.e et al vs cf ca approx fig figs dr mr mrs ms prof no nos st jr sr inc ltd co eq ref refs vol "
    "resp incl dept univ u.s".split()
)

#: Document metadata copied onto every chunk (citations and filters); other keys stay on the document.
CHUNK_METADATA_KEYS = (
    "pmid",
    "doi",
    "url",
    "year",
    "journal",
    "publication_types",
    "mesh",
    "source",
    "focus",
    "source_file",
)


class TokenizerCounter:
    """Count tokens with a Hugging Face tokenizer, without special tokens; batches a section's sentences.

    ``chunk_document(doc, count_tokens=TokenizerCounter(tok))`` keeps chunks within the model's
    real limit. A fast tokenizer is used through a private copy of its Rust backend (truncation and
    padding off, so counts are never capped and the model's own tokenizer is left untouched).
    """

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        backend = getattr(tokenizer, "backend_tokenizer", None)
        self._backend: Any = None
        if backend is not None:
            from tokenizers import Tokenizer

            self._backend = Tokenizer.from_str(backend.to_str())
            self._backend.no_truncation()
            self._backend.no_padding()

    def __call__(self, text: str) -> int:
        if self._backend is not None:
            return len(self._backend.encode(text, add_special_tokens=False).ids)
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def many(self, texts: list[str]) -> list[int]:
        """Token counts of several texts in one tokenizer call."""
        if not texts:
            return []
        if self._backend is not None:
            return [len(e.ids) for e in self._backend.encode_batch(texts, add_special_tokens=False)]
        return [len(x) for x in self.tokenizer(texts, add_special_tokens=False)["input_ids"]]


def count_tokens_default(text: str) -> int:
    """Count words, numbers and punctuation marks: a fast stand-in for a model tokenizer."""
    return len(_TOKEN.findall(text))


def _is_abbreviation(text: str, dot: int, floor: int) -> bool:
    """True when the period at ``dot`` closes an abbreviation or an initial rather than a sentence."""
    # Every listed abbreviation is at most 6 characters, so a short look-back is enough (and fast).
    tail = text[max(floor, dot - 7) : dot].rsplit(None, 1)
    word = tail[-1].lstrip("([") if tail else ""
    if len(word) == 1 and word.isalpha() and word.isupper():
        return True  # an initial: "J. Smith"
    return len(word) < 7 and word.lower() in _ABBREVIATIONS


def _trimmed(text: str, start: int, end: int, out: list[tuple[int, int]]) -> None:
    seg = text[start:end]
    stripped = seg.strip()
    if stripped:
        lead = len(seg) - len(seg.lstrip())
        out.append((start + lead, start + lead + len(stripped)))


def split_sentences(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Sentence spans ``[s, e)`` of ``text[start:end]``, trimmed of surrounding whitespace."""
    end = len(text) if end is None else end
    spans: list[tuple[int, int]] = []
    cur = start
    for m in _SENT_END.finditer(text, start, end):
        stop = m.end()
        if text[m.start()] == "." and stop - m.start() == 1 and _is_abbreviation(text, m.start(), cur):
            continue
        _trimmed(text, cur, stop, spans)
        cur = stop
    _trimmed(text, cur, end, spans)
    return spans


def _pack(counts: list[int], max_tokens: int, overlap: int) -> list[tuple[int, int]]:
    """Group consecutive units into ranges ``[i, j)``; a unit over budget gets a range of its own.

    Each range after the first starts with trailing units of the previous range worth at most
    ``overlap`` tokens, as long as the range still gains a new unit and stays within budget.
    """
    ranges: list[tuple[int, int]] = []
    n = len(counts)
    i = 0
    while i < n:
        if counts[i] > max_tokens:
            ranges.append((i, i + 1))
            i += 1
            continue
        j, total = i, 0
        while j < n and total + counts[j] <= max_tokens:
            total += counts[j]
            j += 1
        ranges.append((i, j))
        if j >= n:
            break
        if counts[j] > max_tokens or overlap <= 0:
            i = j
            continue
        k, shared = j, 0
        while (
            k - 1 > i
            and shared + counts[k - 1] <= overlap
            and shared + counts[k - 1] + counts[j] <= max_tokens
        ):
            k -= 1
            shared += counts[k]
        i = k
    return ranges


def _long_sentence_pieces(
    text: str, start: int, end: int, max_tokens: int, count: TokenCounter
) -> tuple[list[tuple[int, int]], list[int]]:
    """Word spans (words over budget broken into token spans) of an over-long sentence, with counts."""
    spans: list[tuple[int, int]] = []
    counts: list[int] = []
    for w in _WORD.finditer(text, start, end):
        c = count(w.group())
        if c <= max_tokens:
            spans.append(w.span())
            counts.append(c)
            continue
        for t in _TOKEN.finditer(text, w.start(), w.end()):
            spans.append(t.span())
            counts.append(count(t.group()))
    return spans, counts


def _section_spans(doc: Document) -> list[tuple[str, int, int]]:
    """Sections in text order, clipped so they never overlap, plus unnamed spans for uncovered text."""
    text = doc.text
    if not doc.sections:
        return [("", 0, len(text))]
    out: list[tuple[str, int, int]] = []
    pos = 0
    for sec in sorted(doc.sections, key=lambda s: (s.start, s.end)):
        s, e = max(sec.start, pos, 0), min(sec.end, len(text))
        if s > pos and text[pos:s].strip():
            out.append(("", pos, s))
        if e > s:
            out.append((sec.name, s, e))
            pos = e
    if pos < len(text) and text[pos:].strip():
        out.append(("", pos, len(text)))
    return out


def chunk_document(
    doc: Document,
    *,
    max_tokens: int = 200,
    overlap: int = 40,
    count_tokens: TokenCounter | None = None,
    header_in_budget: bool = False,
) -> list[Chunk]:
    """Split ``doc`` into chunks of whole sentences within sections; see the module docstring for rules.

    With ``header_in_budget`` the title/section line that :func:`passage_text` puts before each
    chunk counts against ``max_tokens`` too, so the whole passage fits a model's input (a header
    that leaves fewer than ``max_tokens // 4`` tokens is allowed to overrun rather than starve the text).
    """
    if max_tokens < 1:
        raise ConfigError(f"max_tokens must be at least 1 (got {max_tokens})")
    if not 0 <= overlap < max_tokens:
        raise ConfigError(f"overlap must be in [0, max_tokens) (got {overlap} with max_tokens={max_tokens})")
    count = count_tokens or count_tokens_default
    many: Callable[[list[str]], list[int]] | None = getattr(count, "many", None)
    text = doc.text
    meta: dict[str, Any] = {k: doc.metadata[k] for k in CHUNK_METADATA_KEYS if k in doc.metadata}
    spans: list[tuple[str, int, int]] = []  # (section, start, end)

    for name, s_start, s_end in _section_spans(doc):
        sents = split_sentences(text, s_start, s_end)
        if not sents:
            continue
        budget, shared = max_tokens, overlap
        if header_in_budget:
            head = passage_header(doc.title, name)
            budget = max(max_tokens - (count(head) if head else 0), max(1, max_tokens // 4))
            shared = min(overlap, budget - 1)
        counts = many([text[a:b] for a, b in sents]) if many else [count(text[a:b]) for a, b in sents]
        for i, j in _pack(counts, budget, shared):
            if j - i == 1 and counts[i] > budget:
                a, b = sents[i]
                pieces, pcounts = _long_sentence_pieces(text, a, b, budget, count)
                for pi, pj in _pack(pcounts, budget, shared):
                    spans.append((name, pieces[pi][0], pieces[pj - 1][1]))
            else:
                spans.append((name, sents[i][0], sents[j - 1][1]))

    doc_id = doc.doc_id
    return [
        Chunk(
            chunk_id=f"{doc_id}#{n}",
            doc_id=doc_id,
            text=text[a:b],
            corpus=doc.corpus,
            title=doc.title,
            section=name,
            start=a,
            end=b,
            source_kind=doc.source_kind,
            metadata=dict(meta),
        )
        for n, (name, a, b) in enumerate(spans)
    ]


def chunk_documents(
    docs: Iterable[Document],
    *,
    max_tokens: int = 200,
    overlap: int = 40,
    count_tokens: TokenCounter | None = None,
    header_in_budget: bool = False,
) -> Iterator[Chunk]:
    """Chunk a stream of documents lazily (see :func:`chunk_document`)."""
    for doc in docs:
        yield from chunk_document(
            doc,
            max_tokens=max_tokens,
            overlap=overlap,
            count_tokens=count_tokens,
            header_in_budget=header_in_budget,
        )


def passage_header(title: str, section: str) -> str:
    """The context line :func:`passage_text` puts before a chunk: title, and section when informative."""
    head = title
    if section and section not in ("Abstract", title):
        head = f"{head} | {section}" if head else section
    return head


def passage_text(chunk: Chunk) -> str:
    """Text to embed or index for a chunk: its title and section name give the passage context."""
    head = passage_header(chunk.title, chunk.section)
    return f"{head}\n{chunk.text}" if head else chunk.text
