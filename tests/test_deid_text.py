"""Free-text de-identification: each identifier type, known identifiers, offline engine, CLI."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.cli import main as cli_main
from workbench.cohort.deid import text as deid_text
from workbench.cohort.deid.text import DeidResult, deidentify_text
from workbench.errors import DeidError


@pytest.fixture(scope="module", autouse=True)
def _offline_engine() -> None:
    """Build the analyzer with every network connection refused: it must not need one."""
    deid_text._engines.cache_clear()
    real_connect = socket.socket.connect

    def refuse(self: socket.socket, address: Any) -> None:
        raise OSError(f"network access attempted: {address!r}")

    socket.socket.connect = refuse  # type: ignore[method-assign]
    try:
        deid_text._engines()
        # The first e-mail check is where tldextract would fetch its list.
        assert deidentify_text("write to someone@example.org").spans
    finally:
        socket.socket.connect = real_connect  # type: ignore[method-assign]


def _found(res: DeidResult, original: str, value: str) -> list[str]:
    """Types of the spans that cover ``value`` in ``original``."""
    start = original.index(value)
    end = start + len(value)
    return [s["type"] for s in res.spans if s["start"] <= start and s["end"] >= end]


@pytest.mark.parametrize(
    ("sentence", "value", "typ"),
    [
        ("Mrs. Ottilie Hartmann was admitted overnight.", "Ottilie Hartmann", "PERSON"),
        ("My name is Barnaby Quigley and I need a refill.", "Barnaby Quigley", "PERSON"),
        ("Patient seen with her husband Chidi Okonkwo.", "Chidi Okonkwo", "PERSON"),
        ("Dr. Lindqvist reviewed the films.", "Lindqvist", "PERSON"),
        ("She lives at 4821 Wexford Avenue, Apt. 12.", "4821 Wexford Avenue, Apt. 12", "STREET_ADDRESS"),
        ("Send the letter to 77 Mellemvej 32, please.", "Mellemvej 32", "STREET_ADDRESS"),
        ("Seen on 03/14/2021 in clinic.", "03/14/2021", "DATE_TIME"),
        ("Admitted 2021-03-14 08:30:00 via the ED.", "2021-03-14 08:30:00", "DATE_TIME"),
        ("Surgery on March 14, 2019 went well.", "March 14, 2019", "DATE_TIME"),
        ("Last visit 14 Jul 2020.", "14 Jul 2020", "DATE_TIME"),
        ("This 79 year old female complains of stomach pain.", "79", "AGE"),
        ("A 93-year-old man with dementia.", "93", "AGE"),
        ("Call (617) 555-0142 after 5.", "(617) 555-0142", "PHONE_NUMBER"),
        ("Her mobile is +44 7700 900123.", "+44 7700 900123", "PHONE_NUMBER"),
        ("Results sent to o.hartmann@example.org today.", "o.hartmann@example.org", "EMAIL_ADDRESS"),
        ("His social security number is 219-09-9999.", "219-09-9999", "US_SSN"),
        ("MRN: 00482913, bed 4.", "00482913", "MRN"),
        ("My zip code is 02139.", "02139", "ZIP_CODE"),
    ],
)
def test_each_identifier_type_is_redacted(sentence: str, value: str, typ: str) -> None:
    res = deidentify_text(sentence)
    assert typ in _found(res, sentence, value), res.spans
    assert value not in res.text
    assert f"<{typ}>" in res.text


def test_spans_are_offsets_in_the_original_text() -> None:
    original = "Mr. Barnaby Quigley, born 07/01/1950, phone 617-555-0199."
    res = deidentify_text(original)
    pieces = {original[s["start"] : s["end"]]: s["type"] for s in res.spans}
    assert pieces.get("Barnaby Quigley") == "PERSON"
    assert pieces.get("07/01/1950") == "DATE_TIME"
    assert pieces.get("617-555-0199") == "PHONE_NUMBER"
    # Rebuilding the redaction from the spans gives the anonymizer's text.
    rebuilt, last = [], 0
    for s in res.spans:
        rebuilt += [original[last : s["start"]], f"<{s['type']}>"]
        last = s["end"]
    assert "".join(rebuilt) + original[last:] == res.text


def test_clinical_text_without_identifiers_is_left_alone() -> None:
    note = "Patient denies chest pain. Continue metformin 500 mg twice daily and recheck HbA1c in 3 months."
    res = deidentify_text(note)
    assert res.text == note and res.spans == []


def test_known_identifiers_catch_what_rules_cannot() -> None:
    note = "Pt zyxwqa reports that vorlenko visited; reach at 617.555.0177 ext or 6175550177"
    blind = deidentify_text(note)
    assert "zyxwqa" in blind.text
    known = {"given": ["Zyxwqa"], "family": "Vorlenko", "phone": "+1 (617) 555-0177"}
    res = deidentify_text(note, known_identifiers=known)
    for secret in ("zyxwqa", "vorlenko", "617.555.0177", "6175550177"):
        assert secret not in res.text, res.text
    assert res.text.count("<PERSON>") == 2
    # Synthea-style names with digits match the plain name in notes.
    res2 = deidentify_text("Follow-up for Quorrin today.", known_identifiers={"given": "Quorrin123"})
    assert "Quorrin" not in res2.text
    # A plain list is taken as names.
    assert "zyxwqa" not in deidentify_text(note, known_identifiers=["zyxwqa"]).text


def test_all_lowercase_text_still_finds_names() -> None:
    # Words no English dictionary knows are treated as capitalised when nothing is.
    res = deidentify_text("my name is vitoria and i live with frederikke")
    assert "vitoria" not in res.text and "frederikke" not in res.text
    assert "my name is" in res.text and "i live with" in res.text


def test_entities_limit_what_is_redacted() -> None:
    sentence = "Mrs. Ottilie Hartmann called from (617) 555-0142 on 03/14/2021."
    res = deidentify_text(sentence, entities=["PHONE_NUMBER"])
    assert [s["type"] for s in res.spans] == ["PHONE_NUMBER"]
    assert "Ottilie Hartmann" in res.text and "03/14/2021" in res.text


def test_repeated_surname_is_redacted_everywhere() -> None:
    note = "Seen with Maciej Borkowski today. Borkowski reports less pain."
    res = deidentify_text(note)
    assert "Borkowski" not in res.text


def test_empty_and_bad_input() -> None:
    assert deidentify_text("") == DeidResult(text="", spans=[])
    assert deidentify_text("   \n").spans == []
    with pytest.raises(DeidError):
        deidentify_text(b"bytes")  # type: ignore[arg-type]


def test_analyzer_is_built_once() -> None:
    assert deid_text._engines() is deid_text._engines()
    info = deid_text.analyzer_info()
    assert "WbPersonRules" in info["recognizers"]


# --- CLI ------------------------------------------------------------------------------------


def test_cli_deid_text_writes_json_lines(
    fixtures: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = fixtures / "deid" / "notes.txt"
    lines = src.read_text("utf-8").splitlines()
    assert cli_main(["deid", "text", str(src)]) == 0
    out = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [o["line"] for o in out] == list(range(1, len(lines) + 1))
    for o, line in zip(out, lines, strict=True):
        for s in o["spans"]:
            assert 0 <= s["start"] < s["end"] <= len(line)
    joined = "\n".join(o["text"] for o in out)
    for secret in (
        "Ottilie",
        "Hartmann",
        "03/14/2021",
        "555-0142",
        "o.hartmann@example.org",
        "Wexford",
        "219-09-9999",
        "00482913",
    ):
        assert secret not in joined, secret
    assert out[-1]["spans"] == [] and out[-1]["text"] == lines[-1]

    target = tmp_path / "out.jsonl"
    assert cli_main(["deid", "text", str(src), "--out", str(target), "--entities", "EMAIL_ADDRESS"]) == 0
    rows = [json.loads(x) for x in target.read_text("utf-8").splitlines()]
    assert {s["type"] for r in rows for s in r["spans"]} == {"EMAIL_ADDRESS"}


def test_cli_deid_text_blocks_match_one_line_at_a_time(
    fixtures: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The CLI de-identifies lines in blocks; small blocks force several of them.
    from workbench.cli import deid_cmd

    src = fixtures / "deid" / "notes.txt"
    lines = src.read_text("utf-8").splitlines()
    monkeypatch.setattr(deid_cmd, "_BLOCK", 2)
    assert cli_main(["deid", "text", str(src)]) == 0
    out = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert len(lines) > 2 and [o["line"] for o in out] == list(range(1, len(lines) + 1))
    for o, line in zip(out, lines, strict=True):
        one = deid_text.deidentify_text(line)
        assert (o["spans"], o["text"]) == (one.spans, one.text)


def test_cli_deid_text_rejects_non_utf8(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("Señora Núñez\n".encode("latin-1"))
    assert cli_main(["deid", "text", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "latin1.txt" in err and "UTF-8" in err and "Núñez" not in err
    assert cli_main(["deid", "text", str(tmp_path / "missing.txt")]) == 1


def test_blank_pipeline_fallback_still_redacts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without an installed English model the analyzer runs on spacy.blank("en") and rules."""
    monkeypatch.setattr(deid_text, "spacy_model_name", lambda: None)
    deid_text._engines.cache_clear()
    try:
        assert deid_text.analyzer_info()["spacy_model"] == "blank"
        res = deidentify_text(
            "My name is Barnaby Quigley, call 617-555-0199 or visit 12 Elm Street on 03/14/2021."
        )
        for secret in ("Barnaby Quigley", "617-555-0199", "12 Elm Street", "03/14/2021"):
            assert secret not in res.text, secret
    finally:
        deid_text._engines.cache_clear()


# --- batch path -----------------------------------------------------------------------------

_NOTE = (
    "2021-03-14\n\n# Chief Complaint\n- Cough\n\n\n# History of Present Illness\nOttilie812 Hartmann55\n"
    " is a 61 year-old female. She lives at 4821 Wexford Avenue, Apt. 12.\n\n"
    "# Social History\nLives with her husband Chidi Okonkwo; call (617) 555-0142.\n\n"
    "## Plan\nFollow up on 04/02/2021 with Dr. Lindqvist.\n"
)


def test_batch_gives_the_same_results_as_one_text_at_a_time() -> None:
    known = {"given": ["Ottilie812"], "family": ["Hartmann55"], "phone": ["617-555-0142"]}
    texts = [_NOTE, _NOTE.replace("Cough", "Fever"), "", "Seen with Maciej Borkowski today.", _NOTE]
    knowns: list[Any] = [known, known, None, None, None]
    batch = deid_text.deidentify_texts(texts, known_identifiers=knowns)
    single = [deidentify_text(t, known_identifiers=k) for t, k in zip(texts, knowns, strict=True)]
    assert batch == single
    for secret in ("Ottilie", "Hartmann", "Wexford", "Okonkwo", "555-0142", "04/02/2021", "Lindqvist"):
        assert secret not in batch[0].text, secret
    assert "# Chief Complaint" in batch[0].text and "# Social History" in batch[0].text
    with pytest.raises(DeidError):
        deid_text.deidentify_texts(["a", "b"], known_identifiers=[None])


def test_one_recognizer_per_patient_in_a_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    from workbench.cohort.deid import recognizers

    built: list[object] = []
    real = recognizers.known_identifier_recognizer

    def counting(known: object) -> Any:
        built.append(known)
        return real(known)

    monkeypatch.setattr(recognizers, "known_identifier_recognizer", counting)
    ann = {"given": ["Zyxwqa"], "family": "Vorlenko"}
    texts = ["zyxwqa came in.", "Vorlenko again.", "Call Zyxwqa.", "No names."]
    res = deid_text.deidentify_texts(texts, known_identifiers=[ann, dict(ann), ann, {"given": "Quorrin"}])
    assert len(built) == 2
    assert all("zyxwqa" not in r.text.casefold() and "vorlenko" not in r.text.casefold() for r in res)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["a", "Bo", " ", "\n", "\t", ".", "-", "7", "é"]), max_size=40).map("".join))
def test_paragraph_pieces_rebuild_the_text_and_its_tokens(text: str) -> None:
    pieces = deid_text._paragraphs(text)
    assert "".join(pieces) == text
    assert all(pieces)
    # Cut only where the whole text's tokenizer also breaks: same tokens, same offsets.
    tok = deid_text._engines().nlp.tokenizer
    whole = [(t.idx, t.text) for t in tok(text)]
    parts, offset = [], 0
    for p in pieces:
        parts += [(t.idx + offset, t.text) for t in tok(p)]
        offset += len(p)
    assert parts == whole


def test_prefiltered_rules_match_exactly_as_without_the_filter() -> None:
    import regex

    from workbench.cohort.deid.recognizers import ADDRESS_RULES, Rule, RuleRecognizer

    rules = [r for r in ADDRESS_RULES if r.require is not None]
    assert rules
    texts = [
        "Send the letter to 77 Mellemvej 32, please.",
        "Hansinegata 4B, 0150 Oslo",
        "Pain during 3 days; no ring 5.",
        _NOTE,
        "Nothing here at all",
    ]
    plain = RuleRecognizer(
        "plain", [Rule(r.entity, r.pattern, r.score, r.group, r.flags, r.validate) for r in rules]
    )
    filtered = RuleRecognizer("filtered", rules)
    for text in texts:
        ents = ["STREET_ADDRESS"]
        assert [(x.start, x.end) for x in filtered.analyze(text, ents)] == [
            (x.start, x.end) for x in plain.analyze(text, ents)
        ]
        for rule in rules:
            for m in rule.compiled().finditer(text):
                assert regex.search(rule.require, m.group(0), rule.flags | regex.VERSION1), text
