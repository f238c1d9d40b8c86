"""Inline citations: parsing ``[n]``, ``[n, m]``, ``[n-m]`` markers and verifying them.

Support score (documented in ``docs/answers.md``)
--------------------------------------------------
For a sentence *s* and one cited context item *c*::

    cos(s, c)      = max(cosine(s, c.text), max_j cosine(s, sentence_j of c))    # bundled MiniLM
    recall(s, c)   = |content words of s ∩ content words of c| / |content words of s|
    support(s, c)  = 0.5 * max(cos(s, c), 0) + 0.5 * recall(s, c)

A sentence's ``support_score`` is the maximum of ``support(s, c)`` over its valid citations
(0.0 without any). A sentence is *supported* when it has at least one valid citation and its
score reaches :data:`SUPPORT_THRESHOLD`. Embedding similarity catches paraphrase; the lexical
term keeps numbers, drug names and units honest (a paraphrase that changes "7.2" to "9.1"
loses recall). Citations to numbers that were not in the context are removed from the text
and reported.

ALCE-style metrics (Gao et al. 2023) use the same support function in place of an NLI model:
citation *recall* is the share of sentences supported by the concatenation of their cited
items; a citation is *precise* when its sentence is supported jointly and either the citation
alone supports the sentence or the other citations alone do not.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from workbench.answer.text import content_words, split_sentences, token_recall

#: A sentence whose best support reaches this score counts as supported.
SUPPORT_THRESHOLD = 0.45
#: Weights of the two terms of the support score.
COSINE_WEIGHT = 0.5
LEXICAL_WEIGHT = 0.5
#: Longest range ``[n-m]`` that is expanded; longer ones are treated as invalid.
MAX_RANGE = 50

_MARKER = re.compile(r"\[\s*(\d+(?:\s*[-–,;]\s*\d+)*)\s*\]")
_TRAILING_PUNCT = re.compile(r"\s*([.!?:;]+)\s*$")


class Encoder(Protocol):
    """Anything with ``encode(list[str]) -> (n, d)`` unit vectors (the workbench embedder)."""

    def encode(self, texts: list[str]) -> np.ndarray: ...


@dataclass(frozen=True, slots=True)
class CitationMark:
    """One bracketed marker in a text: its span and the item numbers it names."""

    start: int
    end: int
    numbers: tuple[int, ...]
    malformed: bool = False


def _expand(body: str) -> tuple[tuple[int, ...], bool]:
    numbers: list[int] = []
    malformed = False
    for part in re.split(r"\s*[,;]\s*", body.strip()):
        if not part:
            continue
        bounds = re.split(r"\s*[-–]\s*", part)
        if len(bounds) == 1:
            numbers.append(int(bounds[0]))
            continue
        lo, hi = int(bounds[0]), int(bounds[-1])
        if len(bounds) != 2 or hi < lo or hi - lo > MAX_RANGE:
            # "[9-2]" or "[1-5000]" is not a citation anyone can check; keep the ends only.
            malformed = True
            numbers.extend([lo, hi])
            continue
        numbers.extend(range(lo, hi + 1))
    return tuple(dict.fromkeys(numbers)), malformed


def find_citations(text: str) -> list[CitationMark]:
    """All citation markers in ``text`` in order of appearance."""
    marks = []
    for m in _MARKER.finditer(text):
        numbers, malformed = _expand(m.group(1))
        marks.append(CitationMark(m.start(), m.end(), numbers, malformed))
    return marks


def parse_citations(text: str) -> list[int]:
    """The item numbers cited in ``text``, first appearance first, without duplicates."""
    seen: dict[int, None] = {}
    for mark in find_citations(text):
        for n in mark.numbers:
            seen.setdefault(n, None)
    return list(seen)


def strip_citations(text: str) -> str:
    """``text`` without citation markers, whitespace tidied."""
    out = _MARKER.sub("", text)
    out = re.sub(r"\s+([.,;:!?])", r"\1", out)
    return re.sub(r"\s{2,}", " ", out).strip()


def format_citations(numbers: Sequence[int]) -> str:
    """The marker for ``numbers`` (``[1, 3]``); empty string for none."""
    return f"[{', '.join(str(n) for n in numbers)}]" if numbers else ""


def attach_citations(sentence: str, numbers: Sequence[int]) -> str:
    """``sentence`` (without markers) with ``numbers`` placed before its final punctuation."""
    marker = format_citations(numbers)
    if not marker:
        return sentence
    m = _TRAILING_PUNCT.search(sentence)
    if m:
        return f"{sentence[: m.start()]} {marker}{m.group(1)}"
    return f"{sentence} {marker}"


@dataclass(slots=True)
class SentenceCheck:
    """One answer sentence after verification."""

    text: str
    citations: list[int]
    supported: bool
    support_score: float
    scores: dict[int, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "citations": list(self.citations),
            "supported": self.supported,
            "support_score": round(self.support_score, 4),
            "scores": {str(k): round(v, 4) for k, v in self.scores.items()},
        }


@dataclass(slots=True)
class Verification:
    """Result of verifying a generated text against its numbered context."""

    text: str
    sentences: list[SentenceCheck]
    removed_citations: list[dict[str, Any]]
    report: dict[str, Any]


class SupportScorer:
    """Scores how well a claim is supported by context items (method in the module docstring)."""

    def __init__(self, encoder: Encoder | None) -> None:
        self.encoder = encoder
        self._cache: dict[str, np.ndarray] = {}

    def _vectors(self, texts: list[str]) -> list[np.ndarray]:
        assert self.encoder is not None
        missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if missing:
            for t, v in zip(missing, self.encoder.encode(missing)):
                self._cache[t] = np.asarray(v, dtype=np.float32)
        return [self._cache[t] for t in texts]

    def prefetch(self, claims: Sequence[str], evidence: Sequence[str]) -> None:
        """Encode all claims and evidence (and its sentences) in one batch; later scores hit the cache."""
        if self.encoder is None:
            return
        texts = [strip_citations(c) for c in claims]
        for ev in evidence:
            texts += [ev, *split_sentences(ev)[:40]]
        self._vectors([t for t in texts if t.strip()])

    def cosine(self, claim: str, evidence: str) -> float:
        """Best cosine between the claim and the evidence or any of its sentences (0 without encoder)."""
        if self.encoder is None or not claim.strip() or not evidence.strip():
            return 0.0
        parts = [evidence, *[s for s in split_sentences(evidence) if s != evidence][:40]]
        vecs = self._vectors([claim, *parts])
        sims = [float(np.dot(vecs[0], v)) for v in vecs[1:]]
        return max(sims) if sims else 0.0

    def support(self, claim: str, evidence: str) -> float:
        """``COSINE_WEIGHT * max(cos, 0) + LEXICAL_WEIGHT * token_recall`` in [0, 1]."""
        claim = strip_citations(claim)
        if not content_words(claim):
            return 0.0
        cos = max(self.cosine(claim, evidence), 0.0)
        weight_cos = COSINE_WEIGHT if self.encoder is not None else 0.0
        weight_lex = LEXICAL_WEIGHT if self.encoder is not None else 1.0
        return min(1.0, weight_cos * cos + weight_lex * token_recall(claim, evidence))


def verify_text(
    text: str,
    items: Mapping[int, str],
    scorer: SupportScorer,
    *,
    threshold: float = SUPPORT_THRESHOLD,
) -> Verification:
    """Check every sentence of ``text`` against the numbered context ``items``.

    Citations to numbers not in ``items`` are removed and reported; each sentence gets a
    support score against what it validly cites and is marked unsupported without one.
    """
    checks: list[SentenceCheck] = []
    removed: list[dict[str, Any]] = []
    rebuilt: list[str] = []
    raw_sentences = split_sentences(text)
    scorer.prefetch(
        raw_sentences,
        [items[n] for n in {n for r in raw_sentences for n in parse_citations(r)} if n in items],
    )
    for idx, raw in enumerate(raw_sentences):
        cited = parse_citations(raw)
        valid = [n for n in cited if n in items]
        for n in cited:
            if n not in items:
                removed.append({"sentence": idx, "citation": n, "reason": "not in context"})
        clean = strip_citations(raw)
        if not clean:
            continue
        scores = {n: scorer.support(clean, items[n]) for n in valid}
        best = max(scores.values(), default=0.0)
        checks.append(
            SentenceCheck(
                text=clean,
                citations=valid,
                supported=bool(valid) and best >= threshold,
                support_score=best,
                scores=scores,
            )
        )
        rebuilt.append(attach_citations(clean, valid))
    n = len(checks)
    supported = sum(c.supported for c in checks)
    report = {
        "sentences": n,
        "supported": supported,
        "unsupported": n - supported,
        "citations": sum(len(c.citations) for c in checks),
        "removed_citations": len(removed),
        "mean_support": round(sum(c.support_score for c in checks) / n, 4) if n else 0.0,
        "threshold": threshold,
        "method": "max over cited items of 0.5*cosine(MiniLM) + 0.5*content-word recall"
        if scorer.encoder is not None
        else "max over cited items of content-word recall (no embedder)",
    }
    return Verification(" ".join(rebuilt), checks, removed, report)


def alce_scores(
    sentences: Sequence[tuple[str, Sequence[int]]],
    items: Mapping[int, str],
    scorer: SupportScorer,
    *,
    threshold: float = SUPPORT_THRESHOLD,
) -> dict[str, float]:
    """ALCE-style citation recall and precision with :class:`SupportScorer` standing in for NLI."""

    def joint(claim: str, numbers: Sequence[int]) -> bool:
        texts = [items[n] for n in numbers if n in items]
        return bool(texts) and scorer.support(claim, "\n".join(texts)) >= threshold

    n_sent = supported = n_cites = precise = 0
    for claim, numbers in sentences:
        n_sent += 1
        nums = list(dict.fromkeys(numbers))
        ok = joint(claim, nums)
        supported += ok
        for n in nums:
            n_cites += 1
            if not ok or n not in items:
                continue
            alone = scorer.support(claim, items[n]) >= threshold
            rest = [m for m in nums if m != n]
            if alone or not (rest and joint(claim, rest)):
                precise += 1
    return {
        "citation_recall": supported / n_sent if n_sent else 0.0,
        "citation_precision": precise / n_cites if n_cites else 0.0,
        "sentences": float(n_sent),
        "citations": float(n_cites),
    }
