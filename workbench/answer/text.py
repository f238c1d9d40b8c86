"""Small text utilities shared by the answer modules: sentences, content words, token estimates."""

from __future__ import annotations

import re

# Common English function words; content-word overlap ignores them so "the" never counts as support.
STOPWORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further had has
    have having he her here hers herself him himself his how i if in into is it its itself just me more
    most my myself no nor not now of off on once only or other our ours ourselves out over own same she
    should so some such than that the their theirs them themselves then there these they this those
    through to too under until up very was we were what when where which while who whom why will with
    would you your yours yourself yourselves may might must shall whether within without among upon
    per via vs versus et al i.e e.g using used use based""".split()
)

_WORD = re.compile(r"[a-z0-9]+(?:[.-][a-z0-9]+)*")

# Abbreviations whose trailing period does not end a sentence.
_ABBREV = (
    "e.g.",
    "i.e.",
    "vs.",
    "v.",
    "dr.",
    "mr.",
    "mrs.",
    "ms.",
    "prof.",
    "fig.",
    "figs.",
    "no.",
    "approx.",
    "al.",
    "etc.",
    "ref.",
    "resp.",
    "b.i.d.",
    "t.i.d.",
    "q.i.d.",
    "p.o.",
    "q.d.",
    "st.",
    "jr.",
    "sr.",
)
_SPLIT = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9•\-])|\n\s*\n|\n(?=\s*[•\-*]\s)")
_ONLY_CITES = re.compile(r"^\s*(\[\s*\d+(?:\s*[-–,]\s*\d+)*\s*\]\s*[.;,]?\s*)+$")
_LEAD_CITES = re.compile(r"^\s*((?:\[\s*\d+(?:\s*[-–,]\s*\d+)*\s*\]\s*)+)")


def words(text: str) -> list[str]:
    """Lower-cased word tokens (numbers and hyphenated words kept whole)."""
    return _WORD.findall(text.lower())


def _stem(word: str) -> str:
    # A light plural strip so "levels" matches "level"; enough for overlap, no stemmer needed.
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def content_words(text: str) -> set[str]:
    """The set of stemmed content words of ``text`` (stopwords and 1-letter tokens dropped)."""
    return {_stem(w) for w in words(text) if w not in STOPWORDS and len(w) > 1}


def token_recall(claim: str, evidence: str) -> float:
    """Share of the claim's content words that also occur in the evidence (1.0 for an empty claim)."""
    cw = content_words(claim)
    if not cw:
        return 1.0
    return len(cw & content_words(evidence)) / len(cw)


def estimate_tokens(text: str) -> int:
    """Rough token count for budgeting (about four characters per token, as for GPT-style BPE)."""
    return max(1, (len(text) + 3) // 4)


def split_sentences(text: str) -> list[str]:
    """Split prose into sentences; citation markers after a full stop stay with their sentence."""
    if not text or not text.strip():
        return []
    # Hide abbreviation periods and decimal points behind a private-use character the text
    # does not contain, so the splitter does not cut there.
    hole = next(chr(c) for c in range(0xE000, 0xF8FF) if chr(c) not in text)
    protected = text
    for abbr in _ABBREV:
        protected = re.sub(re.escape(abbr), lambda m: m.group(0).replace(".", hole), protected, flags=re.I)
    protected = re.sub(r"(?<=\d)\.(?=\d)", hole, protected)
    parts = [p.replace(hole, ".").strip() for p in _SPLIT.split(protected)]
    out: list[str] = []
    for part in parts:
        if not part:
            continue
        if out and _ONLY_CITES.match(part):
            out[-1] = f"{out[-1]} {part}"
            continue
        lead = _LEAD_CITES.match(part)
        if out and lead:
            # "claim. [2] Next claim." - the markers belong to the claim before them.
            out[-1] = f"{out[-1]} {lead.group(1).strip()}"
            part = part[lead.end() :].strip()
            if not part:
                continue
        out.append(part)
    return out
